//! One behaviour suite, run against every store backend: whatever the
//! backend, a token is issued, found, listed, revoked, regenerated and
//! rotated the same way, and the same audit events say so.
//!
//! `store_suite!` instantiates every behaviour below for one backend: the
//! in-memory store always, PostgreSQL with the `postgres` feature (a real
//! server: see `tests/support/pg.rs`), and both behind a `CachedStore` with
//! the `cache` feature.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_auth::audit::{Audit, AuditEvent, AuditObserver};
use tower_token_auth::store::{
    FamilyId, GrantError, InvalidGrantReason, IssuePolicy, IssueRequest, StoreError, TokenId,
    TokenManager,
};
use tower_token_auth::token::{Clock, ManualClock, TokenDigest, TokenKind};
use tower_token_auth::{PayRequestScopes as S, TokenAuthLayer};

#[cfg(feature = "postgres")]
#[path = "../support/pg.rs"]
mod pg;

/// Where every clock of the suite starts: a whole second, so no time is
/// rounded by any backend.
fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Names of the audit events a store emitted, in order.
#[derive(Default)]
struct Events(Mutex<Vec<&'static str>>);

impl AuditObserver for Events {
    fn observe(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.name());
    }
}

impl Events {
    /// The events since the last call.
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A store under test, a second instance on the same data (another pool,
/// for PostgreSQL), and the clock and audit events they share.
struct Ctx<St> {
    store: St,
    twin: St,
    clock: Arc<ManualClock>,
    events: Arc<Events>,
    #[cfg(feature = "postgres")]
    db: Option<pg::TestDb>,
}

impl<St> Ctx<St> {
    fn policy() -> (IssuePolicy, Arc<ManualClock>, Arc<Events>) {
        let clock = Arc::new(ManualClock::new(start_time()));
        let events = Arc::new(Events::default());
        let policy = IssuePolicy::default()
            .clock(clock.clone())
            .audit(Audit::new().observer(events.clone()));
        (policy, clock, events)
    }

    async fn finish(self) {
        #[cfg(feature = "postgres")]
        if let Some(db) = self.db {
            db.finish().await;
        }
    }
}

// ---- backends ----

mod backends {
    use super::*;
    use tower_token_auth::MemoryStore;

    pub async fn memory() -> Ctx<MemoryStore<S>> {
        let (policy, clock, events) = Ctx::<()>::policy();
        let store = MemoryStore::with_policy(policy);
        Ctx {
            twin: store.clone(),
            store,
            clock,
            events,
            #[cfg(feature = "postgres")]
            db: None,
        }
    }

    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Ctx<tower_token_auth::store::PgStore<S>> {
        use tower_token_auth::store::PgStore;
        let (policy, clock, events) = Ctx::<()>::policy();
        let db = super::pg::database().await;
        let store = PgStore::with_policy(db.pool().await, policy.clone());
        store.migrate().await.expect("migrations apply");
        let twin = PgStore::with_policy(db.pool().await, policy);
        Ctx {
            store,
            twin,
            clock,
            events,
            db: Some(db),
        }
    }

    #[cfg(feature = "cache")]
    pub async fn cached_memory() -> Ctx<tower_token_auth::store::CachedStore<MemoryStore<S>>> {
        use tower_token_auth::store::CachedStore;
        let ctx = memory().await;
        let cache = CachedStore::builder(ctx.store)
            .clock(ctx.clock.clone())
            .build();
        Ctx {
            twin: cache.clone(),
            store: cache,
            clock: ctx.clock,
            events: ctx.events,
            #[cfg(feature = "postgres")]
            db: None,
        }
    }

    /// The cache is one instance: its twin is itself (revocations across
    /// instances are the subject of `tests/postgres`).
    #[cfg(all(feature = "cache", feature = "postgres"))]
    pub async fn cached_postgres(
    ) -> Ctx<tower_token_auth::store::CachedStore<tower_token_auth::store::PgStore<S>>> {
        use tower_token_auth::store::CachedStore;
        let ctx = postgres().await;
        let cache = CachedStore::builder(ctx.store.clone())
            .clock(ctx.clock.clone())
            .build();
        ctx.store
            .spawn_revocation_listener(cache.clone())
            .listening()
            .await;
        Ctx {
            twin: cache.clone(),
            store: cache,
            clock: ctx.clock,
            events: ctx.events,
            db: ctx.db,
        }
    }
}

macro_rules! store_suite {
    ($backend:ident: $($behaviour:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let ctx = super::backends::$backend().await;
                    super::$behaviour(&ctx).await;
                    ctx.finish().await;
                }
            )*
        }
    };
    ($($backend:ident),* $(,)?) => {
        $(
            store_suite!($backend:
                issue_find_list_get_and_revoke,
                listings_are_oldest_first_and_per_owner,
                default_scopes_and_refused_requests,
                revoke_family_revokes_every_token_of_it,
                revoke_by_digest_follows_rfc_7009,
                regenerate_replaces_the_secret,
                refresh_rotates_within_the_family,
                reusing_a_spent_refresh_token_revokes_the_family,
                refresh_scope_may_narrow_but_not_widen,
                concurrent_exchanges_have_exactly_one_winner,
                replays_exchanges_and_family_revocations_race_safely,
                record_use_keeps_the_latest_time,
                expiry_is_judged_at_the_boundary,
                refresh_tokens_expire_and_families_age_out,
            );
        )*
    };
}

store_suite!(memory);
#[cfg(feature = "postgres")]
store_suite!(postgres);
#[cfg(feature = "cache")]
store_suite!(cached_memory);
#[cfg(all(feature = "cache", feature = "postgres"))]
store_suite!(cached_postgres);

// ---- behaviours ----

async fn issue_find_list_get_and_revoke<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let issued = store
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "u1")
                .scopes(S::BILLING_AGENT),
        )
        .await
        .unwrap();
    store
        .issue(IssueRequest::new(TokenKind::Access, "other", "u2"))
        .await
        .unwrap();
    assert_eq!(ctx.events.take(), ["token_created", "token_created"]);

    let digest = issued.secret.digest();
    let found = store.find(&digest).await.unwrap().expect("stored");
    assert_eq!(
        *found, *issued.record,
        "the stored record is the issued one"
    );
    assert_eq!(found.scopes, S::BILLING_AGENT);
    assert_eq!(found.created_at, start_time());
    assert!(store
        .find(&TokenDigest::of("pr_pat_unknown"))
        .await
        .unwrap()
        .is_none());
    // The twin instance sees the same token.
    assert_eq!(
        ctx.twin.find(&digest).await.unwrap().unwrap().id,
        issued.record.id
    );

    let listed = store.list("u1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, issued.record.id);
    assert_eq!(listed[0].hint, issued.secret.hint());
    assert_eq!(listed[0].name, "MCP Billing Agent");
    let got = store.get(issued.record.id).await.unwrap().unwrap();
    assert_eq!(got, listed[0]);
    assert!(store
        .get(TokenId::from_u64(u64::MAX))
        .await
        .unwrap()
        .is_none());

    ctx.clock.advance(Duration::from_secs(7));
    assert!(store.revoke(issued.record.id).await.unwrap());
    assert!(
        !store.revoke(issued.record.id).await.unwrap(),
        "a second revoke is a no-op"
    );
    assert!(!store.revoke(TokenId::from_u64(7)).await.unwrap());
    assert_eq!(ctx.events.take(), ["token_revoked"]);
    let revoked = ctx.twin.find(&digest).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(ctx.clock.now()));
    assert_eq!(
        store
            .get(issued.record.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(ctx.clock.now())
    );
}

async fn listings_are_oldest_first_and_per_owner<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let issued = store
            .issue(IssueRequest::new(TokenKind::PersonalAccess, name, "owner"))
            .await
            .unwrap();
        ids.push(issued.record.id);
        ctx.clock.advance(Duration::from_secs(1));
    }
    // Two tokens created in the same instant: ordered by id.
    let a = store
        .issue(IssueRequest::new(TokenKind::Access, "same-1", "owner"))
        .await
        .unwrap();
    let b = store
        .issue(IssueRequest::new(TokenKind::Access, "same-2", "owner"))
        .await
        .unwrap();
    let mut same = [a.record.id, b.record.id];
    same.sort();
    ids.extend(same);
    store.revoke(ids[1]).await.unwrap();
    store
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "x",
            "someone-else",
        ))
        .await
        .unwrap();

    let listed = store.list("owner").await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
    assert!(listed[1].revoked_at.is_some(), "revoked tokens are listed");
    assert!(store.list("nobody").await.unwrap().is_empty());
}

async fn default_scopes_and_refused_requests<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let none = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "none", "u1"))
        .await
        .unwrap();
    assert_eq!(none.record.scopes, S::BILLING_READ);
    let empty = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "empty", "u1").scopes(S::empty()))
        .await
        .unwrap();
    assert_eq!(empty.record.scopes, S::BILLING_READ);
    let pair = store.issue_pair("grant", "u1", None).await.unwrap();
    assert_eq!(pair.access.record.scopes, S::BILLING_READ);
    assert_eq!(pair.refresh.record.scopes, S::BILLING_READ);
    let found = store.find(&none.secret.digest()).await.unwrap().unwrap();
    assert_eq!(found.scopes, S::BILLING_READ);
    assert_eq!(
        found.expires_at,
        start_time() + Duration::from_secs(180 * 86_400)
    );
    ctx.events.take();

    for refused in [
        IssueRequest::new(TokenKind::PersonalAccess, "  ", "u1"),
        IssueRequest::new(TokenKind::PersonalAccess, "x", ""),
        IssueRequest::new(TokenKind::Access, "x", "u1").lifetime(Duration::from_secs(16 * 86_400)),
    ] {
        assert!(matches!(
            store.issue(refused).await,
            Err(StoreError::InvalidInput(_))
        ));
    }
    assert!(
        ctx.events.take().is_empty(),
        "nothing issued, nothing audited"
    );
    assert_eq!(store.list("u1").await.unwrap().len(), 4);
}

async fn revoke_family_revokes_every_token_of_it<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    let other = store.issue_pair("agent", "u1", None).await.unwrap();
    let pat = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    let family = pair.refresh.record.family.unwrap().id;
    assert_eq!(pair.access.record.family.unwrap().id, family);
    ctx.events.take();

    assert_eq!(store.revoke_family(family).await.unwrap(), 2);
    assert_eq!(ctx.events.take(), ["family_revoked"]);
    assert_eq!(store.revoke_family(family).await.unwrap(), 0);
    assert_eq!(
        ctx.events.take(),
        ["family_revoked"],
        "a known family is audited even when nothing was left to revoke"
    );
    assert_eq!(
        store
            .revoke_family(FamilyId::from_u64(12345))
            .await
            .unwrap(),
        0
    );
    assert!(ctx.events.take().is_empty(), "an unknown family is not");

    for token in [&pair.access, &pair.refresh] {
        assert!(ctx
            .twin
            .find(&token.secret.digest())
            .await
            .unwrap()
            .unwrap()
            .is_revoked());
    }
    for token in [&other.access, &other.refresh, &pat] {
        assert!(!ctx
            .twin
            .find(&token.secret.digest())
            .await
            .unwrap()
            .unwrap()
            .is_revoked());
    }
}

async fn revoke_by_digest_follows_rfc_7009<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    // An access token goes alone.
    assert!(store
        .revoke_by_digest(&pair.access.secret.digest())
        .await
        .unwrap());
    assert!(!store
        .find(&pair.refresh.secret.digest())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    // A refresh token takes its family.
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    ctx.events.take();
    assert!(store
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .unwrap());
    assert_eq!(ctx.events.take(), ["family_revoked"]);
    assert!(store
        .find(&pair.access.secret.digest())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    // Idempotent, and an unknown token is no error.
    assert!(!store
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .unwrap());
    assert!(!store
        .revoke_by_digest(&TokenDigest::of("unknown"))
        .await
        .unwrap());
    let pat = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    ctx.events.take();
    assert!(store.revoke_by_digest(&pat.secret.digest()).await.unwrap());
    assert_eq!(ctx.events.take(), ["token_revoked"]);
}

async fn regenerate_replaces_the_secret<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let old = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1").scopes(S::PRODUCTS_WRITE))
        .await
        .unwrap();
    ctx.clock.advance(Duration::from_secs(60));
    ctx.events.take();
    let new = store.regenerate(old.record.id).await.unwrap().unwrap();
    assert_eq!(ctx.events.take(), ["token_created", "token_regenerated"]);
    assert_ne!(new.secret, old.secret);
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(new.record.name, "CI");
    assert_eq!(new.record.owner, "u1");
    assert_eq!(new.record.scopes, S::PRODUCTS_WRITE);
    assert_eq!(new.record.created_at, ctx.clock.now(), "a fresh lifetime");
    assert_eq!(
        *ctx.twin.find(&new.secret.digest()).await.unwrap().unwrap(),
        *new.record
    );
    let was = ctx.twin.find(&old.secret.digest()).await.unwrap().unwrap();
    assert_eq!(was.revoked_at, Some(ctx.clock.now()));

    assert!(matches!(
        store.regenerate(old.record.id).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(store
        .regenerate(TokenId::from_u64(1))
        .await
        .unwrap()
        .is_none());
    let access = store
        .issue(IssueRequest::new(TokenKind::Access, "at", "u1"))
        .await
        .unwrap();
    assert!(matches!(
        store.regenerate(access.record.id).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(
        !store
            .find(&access.secret.digest())
            .await
            .unwrap()
            .unwrap()
            .is_revoked(),
        "a refused regeneration revokes nothing"
    );
}

async fn refresh_rotates_within_the_family<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let pair = store
        .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
        .await
        .unwrap();
    let family = pair.refresh.record.family.unwrap();
    assert_eq!(family.started_at, start_time());
    ctx.clock.advance(Duration::from_secs(3600));
    ctx.events.take();

    let next = store
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    assert_eq!(
        ctx.events.take(),
        ["token_created", "token_created", "refresh_rotated"]
    );
    assert_eq!(next.access.record.kind, TokenKind::Access);
    assert_eq!(next.refresh.record.kind, TokenKind::Refresh);
    assert_eq!(next.access.record.family, Some(family));
    assert_eq!(next.refresh.record.family, Some(family));
    assert_eq!(next.access.record.scopes, S::BILLING_AGENT);
    assert_eq!(next.access.record.name, "agent");
    assert_eq!(next.access.record.created_at, ctx.clock.now());

    let old = ctx
        .twin
        .find(&pair.refresh.secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.spent_at, Some(ctx.clock.now()));
    assert!(!old.is_revoked(), "spent, not revoked");
    for token in [&next.access, &next.refresh] {
        assert_eq!(
            *ctx.twin
                .find(&token.secret.digest())
                .await
                .unwrap()
                .unwrap(),
            *token.record
        );
    }
    // The previous access token stays valid until it expires.
    assert!(!store
        .find(&pair.access.secret.digest())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());

    // An unknown token, or one of another kind.
    assert!(matches!(
        store.refresh(&TokenDigest::of("unknown"), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
    ));
    assert!(matches!(
        store.refresh(&next.access.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(
            InvalidGrantReason::NotARefreshToken
        ))
    ));
    // And the new refresh token rotates in turn.
    store
        .refresh(&next.refresh.secret.digest(), None)
        .await
        .unwrap();
}

async fn reusing_a_spent_refresh_token_revokes_the_family<St: TokenManager<Scopes = S>>(
    ctx: &Ctx<St>,
) {
    let store = &ctx.store;
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    let next = store
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    ctx.events.take();
    let reuse = ctx.twin.refresh(&pair.refresh.secret.digest(), None).await;
    assert!(matches!(
        reuse,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
    ));
    assert_eq!(ctx.events.take(), ["family_revoked_on_reuse"]);
    for token in [&pair.access, &pair.refresh, &next.access, &next.refresh] {
        let r = store.find(&token.secret.digest()).await.unwrap().unwrap();
        assert!(r.is_revoked(), "{:?} should be revoked", r.kind);
    }
    assert!(matches!(
        store.refresh(&next.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
    ));
}

async fn refresh_scope_may_narrow_but_not_widen<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let pair = store
        .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
        .await
        .unwrap();
    assert!(matches!(
        store
            .refresh(&pair.refresh.secret.digest(), Some(S::CUSTOMERS_READ))
            .await,
        Err(GrantError::InvalidScope)
    ));
    assert!(matches!(
        store
            .refresh(
                &pair.refresh.secret.digest(),
                Some(S::BILLING_AGENT | S::PRODUCTS_READ)
            )
            .await,
        Err(GrantError::InvalidScope)
    ));
    // A refused widening spends nothing.
    let narrowed = store
        .refresh(&pair.refresh.secret.digest(), Some(S::BILLING_READ))
        .await
        .unwrap();
    assert_eq!(narrowed.access.record.scopes, S::BILLING_READ);
    // The new refresh token keeps the old one's scope (RFC 6749 §6).
    assert_eq!(narrowed.refresh.record.scopes, S::BILLING_AGENT);
    let again = store
        .refresh(&narrowed.refresh.secret.digest(), Some(S::empty()))
        .await
        .unwrap();
    assert_eq!(again.access.record.scopes, S::BILLING_AGENT);
}

async fn concurrent_exchanges_have_exactly_one_winner<St>(ctx: &Ctx<St>)
where
    St: TokenManager<Scopes = S> + Clone,
{
    let pair = ctx.store.issue_pair("agent", "u1", None).await.unwrap();
    let digest = pair.refresh.secret.digest();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                ctx.store.clone()
            } else {
                ctx.twin.clone()
            };
            tokio::spawn(async move { store.refresh(&digest, None).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(GrantError::InvalidGrant(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one exchange wins");
}

/// Replays of spent refresh tokens, an exchange of the live one and
/// revocations of the family, all at once and through both handles: every
/// call ends as a grant answer (never a store error, such as a deadlock
/// victim), and the family ends revoked, including a pair the exchange may
/// have won while it was being revoked.
async fn replays_exchanges_and_family_revocations_race_safely<St>(ctx: &Ctx<St>)
where
    St: TokenManager<Scopes = S> + Clone,
{
    for round in 0..30 {
        let first = ctx.store.issue_pair("agent", "u1", None).await.unwrap();
        let spent_0 = first.refresh.secret.digest();
        let second = ctx.store.refresh(&spent_0, None).await.unwrap();
        let spent_1 = second.refresh.secret.digest();
        let third = ctx.twin.refresh(&spent_1, None).await.unwrap();
        let live = third.refresh.secret.digest();
        let family = third.refresh.record.family.expect("a grant's family").id;

        let handle = |i: usize| if i % 2 == 0 { &ctx.store } else { &ctx.twin }.clone();
        let exchanges: Vec<_> = [spent_0, live, spent_1, spent_0]
            .into_iter()
            .enumerate()
            .map(|(i, digest)| {
                let store = handle(i);
                tokio::spawn(async move { store.refresh(&digest, None).await })
            })
            .collect();
        let revocations: Vec<_> = (0..2)
            .map(|i| {
                let store = handle(i);
                tokio::spawn(async move { store.revoke_family(family).await })
            })
            .collect();
        let mut issued = vec![first, second, third];
        for task in exchanges {
            match task.await.unwrap() {
                Ok(pair) => issued.push(pair),
                Err(GrantError::InvalidGrant(
                    InvalidGrantReason::Reused | InvalidGrantReason::Revoked,
                )) => {}
                Err(other) => panic!("round {round}: an exchange failed with {other:?}"),
            }
        }
        for task in revocations {
            if let Err(error) = task.await.unwrap() {
                panic!("round {round}: a family revocation failed with {error:?}");
            }
        }
        for pair in &issued {
            for token in [&pair.access, &pair.refresh] {
                let info = ctx.store.get(token.record.id).await.unwrap().unwrap();
                assert!(
                    info.revoked_at.is_some(),
                    "round {round}: {:?} {} of the revoked family is still live",
                    info.kind,
                    info.id
                );
            }
        }
    }
}

async fn record_use_keeps_the_latest_time<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let a = store
        .issue(IssueRequest::new(TokenKind::Access, "a", "u1"))
        .await
        .unwrap();
    let b = store
        .issue(IssueRequest::new(TokenKind::Access, "b", "u1"))
        .await
        .unwrap();
    let now = ctx.clock.now();
    let earlier = now - Duration::from_secs(5);
    store.record_use(&[]).await.unwrap();
    store
        .record_use(&[
            (a.record.id, now),
            (a.record.id, earlier),
            (b.record.id, earlier),
            (TokenId::from_u64(99), now),
        ])
        .await
        .unwrap();
    let last_used = |id| async move { store.get(id).await.unwrap().unwrap().last_used_at };
    assert_eq!(last_used(a.record.id).await, Some(now));
    assert_eq!(last_used(b.record.id).await, Some(earlier));
    // An older use written later does not move the time back.
    ctx.twin
        .record_use(&[(a.record.id, earlier), (b.record.id, now)])
        .await
        .unwrap();
    assert_eq!(last_used(a.record.id).await, Some(now));
    assert_eq!(last_used(b.record.id).await, Some(now));
}

async fn expiry_is_judged_at_the_boundary<St>(ctx: &Ctx<St>)
where
    St: TokenManager<Scopes = S> + Clone,
{
    let lifetime = Duration::from_secs(60);
    let issued = ctx
        .store
        .issue(IssueRequest::new(TokenKind::Access, "short", "u1").lifetime(lifetime))
        .await
        .unwrap();
    let record = ctx
        .twin
        .find(&issued.secret.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.expires_at, start_time() + lifetime);

    // Through the middleware, judged by the same clock.
    let token = issued.secret.expose_secret();
    ctx.clock
        .set(start_time() + lifetime - Duration::from_micros(1));
    assert!(!record.is_expired_at(ctx.clock.now()));
    assert_eq!(status(&ctx.twin, &ctx.clock, token).await, StatusCode::OK);
    ctx.clock.set(start_time() + lifetime);
    assert!(record.is_expired_at(ctx.clock.now()));
    assert_eq!(
        status(&ctx.twin, &ctx.clock, token).await,
        StatusCode::UNAUTHORIZED
    );
}

/// The status of a request with `token` through `TokenAuthLayer` over
/// `store`, with `clock` as the layer's clock.
async fn status<St>(store: &St, clock: &Arc<ManualClock>, token: &str) -> StatusCode
where
    St: TokenManager<Scopes = S> + Clone,
{
    let service = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(store.clone()).clock(clock.clone()))
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
        }));
    let request = Request::get("/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

async fn refresh_tokens_expire_and_families_age_out<St: TokenManager<Scopes = S>>(ctx: &Ctx<St>) {
    let store = &ctx.store;
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    let expires_at = pair.refresh.record.expires_at;
    assert_eq!(expires_at, start_time() + Duration::from_secs(30 * 86_400));
    ctx.clock.set(expires_at);
    assert!(matches!(
        store.refresh(&pair.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
    ));
    ctx.clock.set(expires_at - Duration::from_secs(1));
    let mut current = store
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    // Rotate until the family's 90-day cap: the refresh tokens never
    // outlive it, and then no more exchanges.
    let family_end = start_time() + Duration::from_secs(90 * 86_400);
    while ctx.clock.now() + Duration::from_secs(29 * 86_400) < family_end {
        assert!(current.refresh.record.expires_at <= family_end);
        ctx.clock.advance(Duration::from_secs(29 * 86_400));
        current = store
            .refresh(&current.refresh.secret.digest(), None)
            .await
            .unwrap();
    }
    assert_eq!(current.refresh.record.expires_at, family_end);
    ctx.clock.set(family_end);
    assert!(matches!(
        store.refresh(&current.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(
            InvalidGrantReason::Expired | InvalidGrantReason::FamilyExpired
        ))
    ));
}
