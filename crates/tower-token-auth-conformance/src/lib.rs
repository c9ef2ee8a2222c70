//! The conformance kit: the crate's whole lifecycle behaviour suite, to run
//! against any [`TokenBackend`], the races included.
//!
//! Every backend of this crate (memory, SQLite, PostgreSQL, each also behind
//! the cache) passes it in CI. A backend for another database runs it from
//! its own tests with one macro call, given an async function that returns a
//! fresh, empty backend of [`PayRequestScopes`](crate::PayRequestScopes) tokens:
//!
//! ```
//! // tests/conformance.rs of the crate that writes `MyBackend`
//! // (dev-dependencies: tokio with the `macros` and `rt-multi-thread`
//! // features, and tower-token-auth with the `conformance` feature).
//! # mod my_crate {
//! #     // Here the memory store stands in for your backend.
//! #     pub type MyBackend<S> = tower_token_auth::MemoryStore<S>;
//! #     pub trait Connect { async fn connect_to_an_empty_database() -> Self; }
//! #     impl<S: tower_token_auth::ScopeSet> Connect for MyBackend<S> {
//! #         async fn connect_to_an_empty_database() -> Self { Self::default() }
//! #     }
//! # }
//! # use my_crate::Connect as _;
//! use std::sync::Arc;
//! use tower_token_auth::token::ManualClock;
//!
//! async fn fresh_backend(_clock: Arc<ManualClock>) -> my_crate::MyBackend<tower_token_auth::PayRequestScopes> {
//!     my_crate::MyBackend::connect_to_an_empty_database().await
//! }
//!
//! tower_token_auth::conformance_tests!(fresh_backend);
//! # fn main() {}
//! ```
//!
//! That expands to one `#[tokio::test]` per behaviour below (a
//! multi-threaded runtime with two workers). The function gets the clock
//! the manager will run by; a backend that judges time itself (a cache in
//! front of another backend) takes it too. Each test builds a
//! [`Harness`]: a [`TokenManager`] over the backend, with a
//! [`ManualClock`] and an audit log, and a [`Gated`] wrapper that can park
//! the manager between its check of a refresh token and the backend's
//! atomic [`exchange`](TokenBackend::exchange), so that the races of the
//! trait's contract are forced, not hoped for.
//!
//! Each behaviour is also a public function, to call from a harness of
//! one's own:
//!
//! ```
//! use tower_token_auth::conformance::{self, Harness};
//! use tower_token_auth::MemoryStore;
//!
//! # #[tokio::main]
//! # async fn main() {
//! conformance::exchange_racing_a_family_revocation_stores_nothing_live(
//!     Harness::new(MemoryStore::new()),
//! )
//! .await;
//! # }
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::oneshot;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{Audit, AuditEvent, AuditObserver};
use crate::scope::PayRequestScopes as S;
use crate::oauth::{s256_challenge, ClientRegistration, CodeExchange, CodeRequest, OAuthClient, RegistrationError};
use crate::error::StoreError;
use crate::manager::{GrantError, InvalidGrantReason, IssuePolicy, IssueRequest, TokenError, TokenManager};
use crate::store::{Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore};
use crate::token::{FamilyId, TokenId, TokenRecord, TokenStatus};
use crate::token::{Clock, ManualClock, TokenDigest, TokenFormat, TokenKind};
use crate::TokenAuthLayer;

/// Where every clock of the kit starts: a whole second, so no backend
/// rounds a time.
pub fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Every audit event the manager emitted, in order.
#[derive(Debug, Default)]
pub struct EventLog(Mutex<Vec<AuditEvent>>);

impl AuditObserver for EventLog {
    fn observe(&self, event: &AuditEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
    }
}

impl EventLog {
    /// The events since the last call, taken out of the log.
    pub fn take(&self) -> Vec<AuditEvent> {
        self.0
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// The names of the events since the last call.
    pub fn take_names(&self) -> Vec<&'static str> {
        self.take().iter().map(AuditEvent::name).collect()
    }
}

/// A backend under test, wrapped so that a test can park the next
/// [`exchange`](TokenBackend::exchange) before it reaches the backend.
///
/// Every call goes straight through to the backend unless
/// [`park_next_exchange`](Self::park_next_exchange) armed the gate.
pub struct Gated<B> {
    backend: Arc<B>,
    gate: Arc<Mutex<Option<Parking>>>,
}

/// The two ends of a parked exchange, held by the gate.
struct Parking {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's end of a parked exchange.
#[derive(Debug)]
pub struct Parked {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl Parked {
    /// Waits until the exchange is parked: the manager has checked the
    /// refresh token and is about to call the backend's atomic step.
    ///
    /// # Panics
    ///
    /// When the gated exchange was dropped without reaching the gate, or
    /// did not reach it within 10 seconds (the manager answered before its
    /// atomic step: a test of a broken manager fails instead of hanging).
    pub async fn reached(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), &mut self.reached)
            .await
            .expect("the exchange did not reach the backend's atomic step within 10 s")
            .expect("the parked exchange never reached the gate");
    }

    /// Lets the parked exchange go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl<B> Clone for Gated<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            gate: Arc::clone(&self.gate),
        }
    }
}

impl<B> std::fmt::Debug for Gated<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").finish_non_exhaustive()
    }
}

impl<B> Gated<B> {
    /// `backend`, with the gate open.
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            gate: Arc::new(Mutex::new(None)),
        }
    }

    /// The backend itself.
    pub fn inner(&self) -> &B {
        &self.backend
    }

    /// Parks the next exchange before it reaches the backend, until the
    /// returned handle is released.
    ///
    /// # Panics
    ///
    /// When the gate's lock is poisoned (a test panicked while holding it).
    pub fn park_next_exchange(&self) -> Parked {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.gate.lock().expect("gate lock") = Some(Parking {
            reached: reached_tx,
            release: release_rx,
        });
        Parked {
            reached: reached_rx,
            release: release_tx,
        }
    }
}

#[async_trait]
impl<B: TokenBackend> TokenStore for Gated<B> {
    type Scopes = B::Scopes;

    async fn find(&self, digest: &TokenDigest) -> FindResult<B::Scopes> {
        self.backend.find(digest).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<B::Scopes>> {
        self.backend.find_now(digest)
    }

    fn token_format(&self) -> Option<TokenFormat> {
        self.backend.token_format()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.backend.clock()
    }
}

#[async_trait]
impl<B: TokenBackend> TokenBackend for Gated<B> {
    async fn insert(&self, records: &[TokenRecord<B::Scopes>]) -> Result<(), StoreError> {
        self.backend.insert(records).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.get(id).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.list(owner).await
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: B::Scopes,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.update_scopes(id, scopes, now).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.revoke(id, at).await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.revoke_family(family, at).await
    }

    async fn exchange(
        &self,
        exchange: &Exchange<B::Scopes>,
    ) -> Result<ExchangeOutcome, StoreError> {
        let parking = self.gate.lock().ok().and_then(|mut gate| gate.take());
        if let Some(parking) = parking {
            let _ = parking.reached.send(());
            let _ = parking.release.await;
        }
        self.backend.exchange(exchange).await
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        self.backend.record_use(uses).await
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        self.backend.purge(cutoff).await
    }
}

/// What each behaviour runs against: a manager over the backend under test
/// (behind a [`Gated`] wrapper), its manual clock and its audit log.
pub struct Harness<B> {
    /// The manager over the backend.
    pub tokens: TokenManager<Gated<B>>,
    /// The manager's clock, at [`start_time`] when the test begins.
    pub clock: Arc<ManualClock>,
    /// Every audit event the manager emitted.
    pub events: Arc<EventLog>,
}

impl<B> std::fmt::Debug for Harness<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl<B: TokenBackend<Scopes = S>> Harness<B> {
    /// A harness over `backend`, which must be empty, with a clock at
    /// [`start_time`].
    pub fn new(backend: B) -> Self {
        Self::with_clock(backend, Arc::new(ManualClock::new(start_time())))
    }

    /// A harness over `backend`, which must be empty, whose manager runs by
    /// `clock` (give a backend that judges time itself, such as a cache,
    /// the same clock).
    pub fn with_clock(backend: B, clock: Arc<ManualClock>) -> Self {
        let events = Arc::new(EventLog::default());
        let tokens = TokenManager::with_policy(Gated::new(backend), Self::policy(&clock, &events));
        Self {
            tokens,
            clock,
            events,
        }
    }

    fn policy(clock: &Arc<ManualClock>, events: &Arc<EventLog>) -> IssuePolicy {
        IssuePolicy::default()
            .clock(clock.clone())
            .audit(Audit::new().observer(events.clone()))
    }

    /// A second manager over the same backend, with `policy` applied to the
    /// harness's own (same clock, same audit log).
    pub fn manager_with(
        &self,
        policy: impl FnOnce(IssuePolicy) -> IssuePolicy,
    ) -> TokenManager<Gated<B>> {
        TokenManager::with_policy(
            self.tokens.backend().clone(),
            policy(Self::policy(&self.clock, &self.events)),
        )
    }

    /// The record of `digest`, which must exist.
    async fn record(&self, digest: &TokenDigest) -> SharedRecord<S> {
        self.tokens
            .find(digest)
            .await
            .expect("the backend answers")
            .expect("the record exists")
    }

    /// Whether the record of `digest` exists and is revoked.
    async fn is_revoked(&self, digest: &TokenDigest) -> bool {
        self.record(digest).await.is_revoked()
    }
}

/// Runs one behaviour per `#[tokio::test]` against the backends that
/// `$new_backend` makes: an async function or closure that takes the
/// harness's clock (`Arc<ManualClock>`, at [`start_time`](crate::conformance::start_time);
/// most backends ignore it, a cache judges its entries by it) and returns a
/// fresh, empty backend. See the [module docs](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($new_backend:expr) => {
        $crate::conformance_tests!(@each $new_backend;
            issue_find_list_get_and_revoke,
            listings_are_oldest_first_per_owner_with_a_status,
            default_scopes_and_refused_requests,
            revoke_family_revokes_every_token_of_it,
            revoking_any_member_revokes_the_whole_grant,
            revoke_by_digest_follows_rfc_7009,
            regenerate_replaces_the_secret,
            concurrent_regenerations_have_one_winner,
            scope_changes_hold_from_the_next_lookup,
            refresh_rotates_within_the_family,
            refresh_token_of_no_family_is_refused,
            reusing_a_spent_refresh_token_revokes_the_family,
            refresh_scope_may_narrow_but_not_widen,
            racing_exchanges_end_with_the_family_revoked,
            exchange_racing_a_family_revocation_stores_nothing_live,
            replays_exchanges_and_revocations_at_once_leave_nothing_live,
            a_grant_stays_bounded_however_often_it_rotates,
            record_use_keeps_the_latest_time,
            expiry_is_judged_at_the_boundary,
            refresh_tokens_expire_and_families_age_out,
            purge_deletes_only_what_is_dead_past_retention,
            authorization_codes_are_single_use_and_bound,
            a_reused_authorization_code_revokes_its_grant,
            racing_code_exchanges_end_with_the_grant_revoked,
            authorization_codes_expire,
            client_registrations_are_stored_capped_and_expire,
        );
    };
    (@each $new_backend:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let clock = ::std::sync::Arc::new($crate::token::ManualClock::new(
                    $crate::conformance::start_time(),
                ));
                let backend = ($new_backend)(::std::sync::Arc::clone(&clock)).await;
                let harness = $crate::conformance::Harness::with_clock(backend, clock);
                $crate::conformance::$behaviour(harness).await;
            }
        )*
    };
}

// ---- issuing, listing, revoking ----

/// A token is issued, found by digest exactly as issued, listed, got and
/// revoked once; each step is audited.
pub async fn issue_find_list_get_and_revoke<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let issued = tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "u1")
                .scopes(S::BILLING_AGENT)
                .audience(["https://api.example.com/", "https://billing.example.com/"]),
        )
        .await
        .unwrap();
    tokens
        .issue(IssueRequest::new(TokenKind::Access, "other", "u2"))
        .await
        .unwrap();
    let events = h.events.take();
    match &events[..] {
        [AuditEvent::TokenCreated { id, owner, kind }, AuditEvent::TokenCreated { .. }] => {
            assert_eq!(
                (*id, owner.as_str(), *kind),
                (issued.record.id, "u1", TokenKind::PersonalAccess)
            );
        }
        other => panic!("expected two token_created events, got {other:?}"),
    }

    let digest = issued.secret.digest();
    let found = h.record(&digest).await;
    assert_eq!(
        *found, *issued.record,
        "the stored record is the issued one"
    );
    assert_eq!(found.audience.len(), 2, "the audience is stored");
    assert_eq!(found.created_at, start_time());
    assert!(tokens
        .find(&TokenDigest::of("pr_pat_unknown"))
        .await
        .unwrap()
        .is_none());

    // An id or a digest already stored is an error, never an overwrite.
    for (what, taken) in [
        (
            "the same id",
            TokenRecord {
                digest: TokenDigest::of("pr_pat_other"),
                name: "impostor".into(),
                ..(*issued.record).clone()
            },
        ),
        (
            "the same digest",
            TokenRecord {
                id: TokenId::random().unwrap(),
                name: "impostor".into(),
                ..(*issued.record).clone()
            },
        ),
    ] {
        assert!(
            tokens.backend().insert(&[taken]).await.is_err(),
            "{what} is refused"
        );
    }
    assert_eq!(h.record(&digest).await.name, "MCP Billing Agent");
    assert!(tokens
        .find(&TokenDigest::of("pr_pat_other"))
        .await
        .unwrap()
        .is_none());

    let listed = tokens.list("u1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, issued.record.id);
    assert_eq!(listed[0].hint, issued.secret.hint());
    assert_eq!(listed[0].name, "MCP Billing Agent");
    assert_eq!(listed[0].status, TokenStatus::Active);
    assert_eq!(
        tokens.get(issued.record.id).await.unwrap().unwrap(),
        listed[0]
    );
    assert!(tokens
        .get(TokenId::from_u64(u64::MAX))
        .await
        .unwrap()
        .is_none());

    h.clock.advance(Duration::from_secs(7));
    assert!(tokens.revoke(issued.record.id).await.unwrap());
    assert!(
        !tokens.revoke(issued.record.id).await.unwrap(),
        "a second revoke is a no-op"
    );
    assert!(!tokens.revoke(TokenId::from_u64(7)).await.unwrap());
    match &h.events.take()[..] {
        [AuditEvent::TokenRevoked { id, owner }] => {
            assert_eq!((*id, owner.as_str()), (issued.record.id, "u1"));
        }
        other => panic!("expected one token_revoked event, got {other:?}"),
    }
    assert_eq!(h.record(&digest).await.revoked_at, Some(h.clock.now()));
    let got = tokens.get(issued.record.id).await.unwrap().unwrap();
    assert_eq!(got.revoked_at, Some(h.clock.now()));
    assert_eq!(got.status, TokenStatus::Revoked);
}

/// Listings are one owner's, oldest first (ties by id), dead tokens
/// included, each with its status.
pub async fn listings_are_oldest_first_per_owner_with_a_status<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = &h.tokens;
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let issued = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, name, "owner"))
            .await
            .unwrap();
        ids.push(issued.record.id);
        h.clock.advance(Duration::from_secs(1));
    }
    let short = tokens
        .issue(
            IssueRequest::new(TokenKind::Access, "short", "owner").lifetime(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let other = tokens
        .issue(IssueRequest::new(
            TokenKind::Access,
            "same-instant",
            "owner",
        ))
        .await
        .unwrap();
    let pair = tokens.issue_pair("grant", "owner", None).await.unwrap();
    // Four tokens created in the same instant: ordered by id.
    let mut same = [
        short.record.id,
        other.record.id,
        pair.access.record.id,
        pair.refresh.record.id,
    ];
    same.sort();
    ids.extend(same);
    tokens.revoke(ids[1]).await.unwrap();
    tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "x",
            "someone-else",
        ))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    let mut next_ids = [next.access.record.id, next.refresh.record.id];
    next_ids.sort();
    ids.extend(next_ids);

    let listed = tokens.list("owner").await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
    let status = |id: TokenId| listed.iter().find(|t| t.id == id).map(|t| t.status);
    assert_eq!(status(ids[0]), Some(TokenStatus::Active));
    assert_eq!(status(ids[1]), Some(TokenStatus::Revoked));
    assert_eq!(status(short.record.id), Some(TokenStatus::Expired));
    assert_eq!(status(pair.refresh.record.id), Some(TokenStatus::Spent));
    assert_eq!(status(next.refresh.record.id), Some(TokenStatus::Active));
    assert!(tokens.list("nobody").await.unwrap().is_empty());
}

/// No scopes (or an empty set) means the default set; invalid requests are
/// refused with nothing stored and nothing audited.
pub async fn default_scopes_and_refused_requests<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let none = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "none", "u1"))
        .await
        .unwrap();
    assert_eq!(none.record.scopes, S::BILLING_READ);
    let empty = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "empty", "u1").scopes(S::empty()))
        .await
        .unwrap();
    assert_eq!(empty.record.scopes, S::BILLING_READ);
    let pair = tokens.issue_pair("grant", "u1", None).await.unwrap();
    assert_eq!(pair.access.record.scopes, S::BILLING_READ);
    assert_eq!(pair.refresh.record.scopes, S::BILLING_READ);
    let found = h.record(&none.secret.digest()).await;
    assert_eq!(found.scopes, S::BILLING_READ);
    assert_eq!(
        found.expires_at,
        start_time() + Duration::from_secs(180 * 86_400)
    );
    h.events.take();

    for refused in [
        IssueRequest::new(TokenKind::PersonalAccess, "  ", "u1"),
        IssueRequest::new(TokenKind::PersonalAccess, "x", ""),
        IssueRequest::new(TokenKind::Access, "x", "u1").lifetime(Duration::from_secs(16 * 86_400)),
    ] {
        assert!(matches!(
            tokens.issue(refused).await,
            Err(TokenError::InvalidInput(_))
        ));
    }
    assert!(
        h.events.take().is_empty(),
        "nothing issued, nothing audited"
    );
    assert_eq!(tokens.list("u1").await.unwrap().len(), 4);
}

/// Revoking a family revokes each of its tokens and nothing else, once.
pub async fn revoke_family_revokes_every_token_of_it<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let other = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    let family = pair.refresh.record.family.unwrap().id;
    assert_eq!(pair.access.record.family.unwrap().id, family);
    h.events.take();

    assert_eq!(tokens.revoke_family(family).await.unwrap(), 2);
    match &h.events.take()[..] {
        [AuditEvent::FamilyRevoked {
            family: f,
            owner,
            tokens: n,
        }] => assert_eq!((*f, owner.as_str(), *n), (family, "u1", 2)),
        other => panic!("expected one family_revoked event, got {other:?}"),
    }
    assert_eq!(tokens.revoke_family(family).await.unwrap(), 0);
    assert_eq!(
        tokens
            .revoke_family(FamilyId::from_u64(12345))
            .await
            .unwrap(),
        0
    );
    assert!(
        h.events.take().is_empty(),
        "nothing revoked, nothing audited"
    );
    for token in [&pair.access, &pair.refresh] {
        assert!(h.is_revoked(&token.secret.digest()).await);
    }
    for token in [&other.access, &other.refresh, &pat] {
        assert!(!h.is_revoked(&token.secret.digest()).await);
    }
}

/// A grant is one thing: revoking any of its tokens, by id or by digest,
/// revokes all of them.
pub async fn revoking_any_member_revokes_the_whole_grant<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = &h.tokens;
    // By id, the refresh token of a rotated grant: its access token dies too.
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    assert!(tokens.revoke(next.refresh.record.id).await.unwrap());
    assert!(h.is_revoked(&next.access.secret.digest()).await);
    assert!(h.is_revoked(&pair.access.secret.digest()).await);
    // By id, the access token: the refresh token cannot be exchanged.
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    assert!(tokens.revoke(pair.access.record.id).await.unwrap());
    assert!(h.is_revoked(&pair.refresh.secret.digest()).await);
    assert!(matches!(
        tokens.refresh(&pair.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
    ));
    // By digest, the access token.
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    assert!(tokens
        .revoke_by_digest(&pair.access.secret.digest())
        .await
        .unwrap());
    assert!(h.is_revoked(&pair.refresh.secret.digest()).await);
}

/// RFC 7009: a refresh token takes its family; idempotent; an unknown
/// token is no error.
pub async fn revoke_by_digest_follows_rfc_7009<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    h.events.take();
    assert!(tokens
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .unwrap());
    assert_eq!(h.events.take_names(), ["family_revoked"]);
    assert!(h.is_revoked(&pair.access.secret.digest()).await);
    assert!(!tokens
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .unwrap());
    assert!(!tokens
        .revoke_by_digest(&TokenDigest::of("unknown"))
        .await
        .unwrap());
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    h.events.take();
    assert!(tokens.revoke_by_digest(&pat.secret.digest()).await.unwrap());
    assert_eq!(h.events.take_names(), ["token_revoked"]);
}

/// Regeneration: a new secret, same name, owner and scopes, a fresh
/// lifetime; the old one revoked; refused for other kinds and revoked
/// tokens, revoking nothing then.
pub async fn regenerate_replaces_the_secret<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let old = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1").scopes(S::PRODUCTS_WRITE))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(60));
    h.events.take();
    let new = tokens.regenerate(old.record.id).await.unwrap().unwrap();
    match &h.events.take()[..] {
        [AuditEvent::TokenCreated { id, .. }, AuditEvent::TokenRegenerated {
            old: o,
            new: n,
            owner,
        }] => {
            assert_eq!(*id, new.record.id);
            assert_eq!(
                (*o, *n, owner.as_str()),
                (old.record.id, new.record.id, "u1")
            );
        }
        other => panic!("expected token_created and token_regenerated, got {other:?}"),
    }
    assert_ne!(new.secret.expose_secret(), old.secret.expose_secret());
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(
        (new.record.name.as_str(), new.record.owner.as_str()),
        ("CI", "u1")
    );
    assert_eq!(new.record.scopes, S::PRODUCTS_WRITE);
    assert_eq!(new.record.created_at, h.clock.now(), "a fresh lifetime");
    assert_eq!(*h.record(&new.secret.digest()).await, *new.record);
    assert_eq!(
        h.record(&old.secret.digest()).await.revoked_at,
        Some(h.clock.now())
    );

    assert!(matches!(
        tokens.regenerate(old.record.id).await,
        Err(TokenError::Conflict(_))
    ));
    assert!(tokens
        .regenerate(TokenId::from_u64(1))
        .await
        .unwrap()
        .is_none());
    let access = tokens
        .issue(IssueRequest::new(TokenKind::Access, "at", "u1"))
        .await
        .unwrap();
    assert!(matches!(
        tokens.regenerate(access.record.id).await,
        Err(TokenError::Conflict(_))
    ));
    assert!(
        !h.is_revoked(&access.secret.digest()).await,
        "a refused regeneration revokes nothing"
    );
    assert_eq!(
        tokens.list("u1").await.unwrap().len(),
        3,
        "nothing left behind"
    );
}

/// Of concurrent regenerations of one token, one wins; the losers leave no
/// live token behind.
pub async fn concurrent_regenerations_have_one_winner<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let old = h
        .tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let tokens = h.tokens.clone();
            let id = old.record.id;
            tokio::spawn(async move { tokens.regenerate(id).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("the task ends") {
            Ok(Some(_)) => wins += 1,
            Err(TokenError::Conflict(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one regeneration wins");
    let live: Vec<_> = h
        .tokens
        .list("u1")
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.status == TokenStatus::Active)
        .collect();
    assert_eq!(live.len(), 1, "one live token: the winner's");
}

/// A personal access token's scopes change from the next lookup; other
/// kinds and dead tokens refuse; the change is audited with old and new.
pub async fn scope_changes_hold_from_the_next_lookup<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "agent", "u1").scopes(S::BILLING_AGENT))
        .await
        .unwrap();
    h.events.take();
    let changed = tokens
        .set_scopes(pat.record.id, S::BILLING_READ)
        .await
        .unwrap()
        .expect("a known token");
    assert_eq!(changed.scopes, S::BILLING_READ);
    assert_eq!(h.record(&pat.secret.digest()).await.scopes, S::BILLING_READ);
    match &h.events.take()[..] {
        [AuditEvent::ScopesChanged {
            id,
            owner,
            old,
            new,
        }] => {
            assert_eq!(*id, pat.record.id);
            assert_eq!(owner, "u1");
            assert_eq!(old, "billing.agent");
            assert_eq!(new, "billing.read");
        }
        other => panic!("expected one scopes_changed event, got {other:?}"),
    }
    // Through the middleware: the next request is judged by the new scopes.
    let principal = tokens.find(&pat.secret.digest()).await.unwrap().unwrap();
    assert!(!principal.scopes.contains(S::BILLING_WRITE));

    assert!(matches!(
        tokens.set_scopes(pat.record.id, S::empty()).await,
        Err(TokenError::InvalidInput(_))
    ));
    assert!(tokens
        .set_scopes(TokenId::from_u64(3), S::BILLING_READ)
        .await
        .unwrap()
        .is_none());
    assert!(
        h.events.take().is_empty(),
        "refused changes are not audited"
    );
    let pair = tokens.issue_pair("grant", "u1", None).await.unwrap();
    assert!(matches!(
        tokens
            .set_scopes(pair.access.record.id, S::BILLING_AGENT)
            .await,
        Err(TokenError::Conflict(_))
    ));
    tokens.revoke(pat.record.id).await.unwrap();
    assert!(matches!(
        tokens.set_scopes(pat.record.id, S::BILLING_AGENT).await,
        Err(TokenError::Conflict(_))
    ));
    let short = tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "short", "u1")
                .lifetime(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(5));
    assert!(matches!(
        tokens.set_scopes(short.record.id, S::BILLING_AGENT).await,
        Err(TokenError::Conflict(_))
    ));
    assert_eq!(
        h.record(&short.secret.digest()).await.scopes,
        S::BILLING_READ
    );
}

// ---- the refresh exchange ----

/// An exchange spends the refresh token and stores a new pair of the same
/// family; the new refresh token rotates in turn.
pub async fn refresh_rotates_within_the_family<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
        .await
        .unwrap();
    let family = pair.refresh.record.family.unwrap();
    assert_eq!(family.started_at, start_time());
    h.clock.advance(Duration::from_secs(3600));
    h.events.take();

    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    match &h.events.take()[..] {
        [AuditEvent::TokenCreated { .. }, AuditEvent::TokenCreated { .. }, AuditEvent::RefreshRotated {
            old,
            access,
            refresh,
            owner,
        }] => assert_eq!(
            (*old, *access, *refresh, owner.as_str()),
            (
                pair.refresh.record.id,
                next.access.record.id,
                next.refresh.record.id,
                "u1"
            )
        ),
        other => panic!("expected two token_created and refresh_rotated, got {other:?}"),
    }
    assert_eq!(next.access.record.kind, TokenKind::Access);
    assert_eq!(next.refresh.record.kind, TokenKind::Refresh);
    assert_eq!(next.access.record.family, Some(family));
    assert_eq!(next.refresh.record.family, Some(family));
    assert_eq!(next.access.record.scopes, S::BILLING_AGENT);
    assert_eq!(next.access.record.name, "agent");
    assert_eq!(next.access.record.created_at, h.clock.now());

    let old = h.record(&pair.refresh.secret.digest()).await;
    assert_eq!(old.spent_at, Some(h.clock.now()));
    assert!(!old.is_revoked(), "spent, not revoked");
    for token in [&next.access, &next.refresh] {
        assert_eq!(*h.record(&token.secret.digest()).await, *token.record);
    }
    // The access token before the new one stays valid (requests on their
    // way); the grant keeps two.
    assert!(!h.is_revoked(&pair.access.secret.digest()).await);

    assert!(matches!(
        tokens.refresh(&TokenDigest::of("unknown"), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
    ));
    assert!(matches!(
        tokens.refresh(&next.access.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(
            InvalidGrantReason::NotARefreshToken
        ))
    ));
    let third = tokens
        .refresh(&next.refresh.secret.digest(), None)
        .await
        .unwrap();
    assert!(
        tokens
            .find(&pair.access.secret.digest())
            .await
            .unwrap()
            .is_none(),
        "an access token two rotations old is gone"
    );
    assert!(!h.is_revoked(&third.access.secret.digest()).await);
}

/// A refresh token that belongs to no family is never exchanged: its reuse
/// could not revoke a grant.
pub async fn refresh_token_of_no_family_is_refused<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let pair = h.tokens.issue_pair("agent", "u1", None).await.unwrap();
    let orphan = TokenRecord {
        id: TokenId::random().unwrap(),
        digest: TokenDigest::of("pr_rt_orphan"),
        family: None,
        ..(*pair.refresh.record).clone()
    };
    h.tokens.backend().insert(&[orphan]).await.unwrap();
    assert!(matches!(
        h.tokens
            .refresh(&TokenDigest::of("pr_rt_orphan"), None)
            .await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::NoFamily))
    ));
    let still = h.record(&TokenDigest::of("pr_rt_orphan")).await;
    assert!(still.spent_at.is_none(), "nothing was spent");
}

/// A spent refresh token presented again revokes its whole family, and is
/// audited as the critical event it is.
pub async fn reusing_a_spent_refresh_token_revokes_the_family<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = &h.tokens;
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    h.events.take();
    let reuse = tokens.refresh(&pair.refresh.secret.digest(), None).await;
    assert!(matches!(
        reuse,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
    ));
    match &h.events.take()[..] {
        [AuditEvent::FamilyRevokedOnReuse {
            family,
            presented,
            owner,
            tokens: n,
        }] => assert_eq!(
            (*family, *presented, owner.as_str(), *n),
            (
                pair.refresh.record.family.unwrap().id,
                pair.refresh.record.id,
                "u1",
                4
            )
        ),
        other => panic!("expected one family_revoked_on_reuse event, got {other:?}"),
    }
    for token in [&pair.access, &pair.refresh, &next.access, &next.refresh] {
        assert!(h.is_revoked(&token.secret.digest()).await);
    }
    assert!(matches!(
        tokens.refresh(&next.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
    ));
}

/// `scope` may narrow the access token, never widen it; a refused widening
/// spends nothing; the new refresh token keeps the old one's scope.
pub async fn refresh_scope_may_narrow_but_not_widen<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let pair = tokens
        .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
        .await
        .unwrap();
    let digest = pair.refresh.secret.digest();
    for wider in [S::CUSTOMERS_READ, S::BILLING_AGENT | S::PRODUCTS_READ] {
        assert!(matches!(
            tokens.refresh(&digest, Some(wider)).await,
            Err(GrantError::InvalidScope)
        ));
    }
    let narrowed = tokens
        .refresh(&digest, Some(S::BILLING_READ))
        .await
        .unwrap();
    assert_eq!(narrowed.access.record.scopes, S::BILLING_READ);
    assert_eq!(narrowed.refresh.record.scopes, S::BILLING_AGENT);
    let again = tokens
        .refresh(&narrowed.refresh.secret.digest(), Some(S::empty()))
        .await
        .unwrap();
    assert_eq!(again.access.record.scopes, S::BILLING_AGENT);
}

/// Two exchanges of one refresh token, forced to interleave: the first is
/// parked after its check, the second completes, then the first reaches the
/// backend. The backend must see the token spent: the parked one is a
/// replay, and the family (with the winner's pair) ends revoked.
pub async fn racing_exchanges_end_with_the_family_revoked<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let pair = h.tokens.issue_pair("agent", "u1", None).await.unwrap();
    let digest = pair.refresh.secret.digest();
    let mut parked = h.tokens.backend().park_next_exchange();
    let first = {
        let tokens = h.tokens.clone();
        tokio::spawn(async move { tokens.refresh(&digest, None).await })
    };
    parked.reached().await;
    let winner = h
        .tokens
        .refresh(&digest, None)
        .await
        .expect("the second wins");
    parked.release();
    let loser = first.await.expect("the task ends");
    assert!(
        matches!(
            loser,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        "the parked exchange must find the token spent, got {loser:?}"
    );
    for token in [&pair.access, &winner.access, &winner.refresh] {
        assert!(
            h.is_revoked(&token.secret.digest()).await,
            "the winner's pair ends revoked with its family"
        );
    }
    assert_eq!(
        h.tokens
            .list("u1")
            .await
            .unwrap()
            .iter()
            .filter(|t| t.status == TokenStatus::Active)
            .count(),
        0
    );
}

/// An exchange parked after its check while the family is revoked: when
/// it reaches the backend, it must store nothing live.
pub async fn exchange_racing_a_family_revocation_stores_nothing_live<
    B: TokenBackend<Scopes = S>,
>(
    h: Harness<B>,
) {
    let pair = h.tokens.issue_pair("agent", "u1", None).await.unwrap();
    let digest = pair.refresh.secret.digest();
    let family = pair.refresh.record.family.unwrap().id;
    let mut parked = h.tokens.backend().park_next_exchange();
    let exchange = {
        let tokens = h.tokens.clone();
        tokio::spawn(async move { tokens.refresh(&digest, None).await })
    };
    parked.reached().await;
    assert_eq!(h.tokens.revoke_family(family).await.unwrap(), 2);
    parked.release();
    let outcome = exchange.await.expect("the task ends");
    assert!(
        matches!(
            outcome,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
        ),
        "the exchange must find its token revoked, got {outcome:?}"
    );
    let live: Vec<_> = h
        .tokens
        .list("u1")
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.status == TokenStatus::Active)
        .collect();
    assert!(live.is_empty(), "a revoked grant lives on: {live:?}");
}

/// Replays, an exchange of the live token and family revocations all at
/// once, without forcing an order: every call ends as a grant answer (never
/// a store error such as a deadlock), and the family ends revoked, a pair
/// won during the revocation included.
pub async fn replays_exchanges_and_revocations_at_once_leave_nothing_live<
    B: TokenBackend<Scopes = S>,
>(
    h: Harness<B>,
) {
    for round in 0..10 {
        let first = h.tokens.issue_pair("agent", "u1", None).await.unwrap();
        let spent_0 = first.refresh.secret.digest();
        let second = h.tokens.refresh(&spent_0, None).await.unwrap();
        let spent_1 = second.refresh.secret.digest();
        let third = h.tokens.refresh(&spent_1, None).await.unwrap();
        let live = third.refresh.secret.digest();
        let family = third.refresh.record.family.expect("a grant's family").id;
        let exchanges: Vec<_> = [spent_0, live, spent_1, spent_0]
            .into_iter()
            .map(|digest| {
                let tokens = h.tokens.clone();
                tokio::spawn(async move { tokens.refresh(&digest, None).await })
            })
            .collect();
        let revocations: Vec<_> = (0..2)
            .map(|_| {
                let tokens = h.tokens.clone();
                tokio::spawn(async move { tokens.revoke_family(family).await })
            })
            .collect();
        for task in exchanges {
            match task.await.expect("the task ends") {
                Ok(_)
                | Err(GrantError::InvalidGrant(
                    InvalidGrantReason::Reused | InvalidGrantReason::Revoked,
                )) => {}
                Err(other) => panic!("round {round}: an exchange failed with {other:?}"),
            }
        }
        for task in revocations {
            if let Err(error) = task.await.expect("the task ends") {
                panic!("round {round}: a family revocation failed with {error:?}");
            }
        }
        let live = h
            .tokens
            .list("u1")
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.family == Some(family) && t.status == TokenStatus::Active)
            .count();
        assert_eq!(
            live, 0,
            "round {round}: a token of the revoked family is live"
        );
    }
}

/// One grant rotated a thousand times costs a bounded number of records:
/// its two newest access tokens, its refresh token and the reuse window of
/// spent ones; its listing is a handful of rows.
pub async fn a_grant_stays_bounded_however_often_it_rotates<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = h.manager_with(|p| p.reuse_window(4));
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let mut current = pair.refresh;
    let mut spent = Vec::new();
    for _ in 0..1_000 {
        h.clock.advance(Duration::from_millis(1));
        let next = tokens
            .refresh(&current.secret.digest(), None)
            .await
            .unwrap();
        spent.push(current.secret.digest());
        current = next.refresh;
    }
    let stored = tokens.backend().list("u1").await.unwrap();
    assert_eq!(
        stored.len(),
        2 + 1 + 4,
        "two access tokens, the refresh token, four spent ones"
    );
    let listed = tokens.list("u1").await.unwrap();
    assert_eq!(listed.len(), 4, "a handful of rows: {listed:?}");
    // Within the window, reuse is detected; older spent tokens are unknown.
    let recent = spent[spent.len() - 2];
    let ancient = spent[0];
    assert!(matches!(
        tokens.refresh(&ancient, None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
    ));
    assert!(matches!(
        tokens.refresh(&recent, None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
    ));
    assert!(h.is_revoked(&current.secret.digest()).await);
}

// ---- authorization codes and client registrations ----

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:8123/callback";

/// A registered client, and a code for `u1` with `billing.read` for the
/// resource `https://api.example/`.
async fn client_and_code<B: TokenBackend<Scopes = S>>(h: &Harness<B>) -> (OAuthClient<S>, String) {
    let client = h
        .tokens
        .register_client(
            ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1").name("MCP Billing Agent"),
        )
        .await
        .expect("registered");
    let request = CodeRequest::new(
        &client,
        REDIRECT,
        s256_challenge(VERIFIER),
        "u1",
        S::BILLING_READ,
    )
    .resources(vec!["https://api.example/".into()]);
    let code = h.tokens.issue_code(request).await.expect("code issued");
    (client, code.expose_secret().to_owned())
}

/// A code is exchanged once, only with the client, redirect URI and
/// verifier it was issued for, for a pair of a new grant that carries its
/// scopes, audience and the client's name; codes and clients never show in
/// a user's listing and never authenticate.
pub async fn authorization_codes_are_single_use_and_bound<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let (client, code) = client_and_code(&h).await;
    let other_verifier = "x".repeat(43);
    let other_client = h
        .tokens
        .register_client(ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1"))
        .await
        .unwrap();
    for (client_id, redirect, verifier) in [
        (client.client_id.as_str(), REDIRECT, other_verifier.as_str()),
        (other_client.client_id.as_str(), REDIRECT, VERIFIER),
        (
            client.client_id.as_str(),
            "http://127.0.0.1:8124/callback",
            VERIFIER,
        ),
    ] {
        let refused = h
            .tokens
            .exchange_code(&CodeExchange::new(&code, client_id, redirect, verifier))
            .await;
        assert!(
            matches!(
                refused,
                Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
            ),
            "a mismatched exchange must be refused, got {refused:?}"
        );
    }
    assert!(
        h.tokens.list("u1").await.unwrap().is_empty(),
        "codes are not listed"
    );

    let pair = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await
        .expect("the bound exchange succeeds");
    assert_eq!(pair.access.record.kind, TokenKind::Access);
    assert_eq!(pair.refresh.record.kind, TokenKind::Refresh);
    for token in [&pair.access, &pair.refresh] {
        assert_eq!(token.record.scopes, S::BILLING_READ);
        assert_eq!(token.record.audience, ["https://api.example/"]);
        assert_eq!(token.record.name, "MCP Billing Agent");
        assert_eq!(token.record.owner, "u1");
        assert_eq!(
            token.record.client_id.as_deref(),
            Some(client.client_id.as_str()),
            "the grant's tokens name their client"
        );
        let stored = h.record(&token.secret.digest()).await;
        assert_eq!(stored.id, token.record.id);
        assert_eq!(stored.client_id, token.record.client_id, "stored as issued");
    }
    assert_eq!(pair.access.record.family, pair.refresh.record.family);
    let listed = h.tokens.list("u1").await.unwrap();
    assert_eq!(
        listed.len(),
        2,
        "the grant's access and refresh tokens: {listed:?}"
    );
    assert!(listed.iter().all(|t| t.kind.is_token()));
    // The grant's refresh token works like any other.
    let rotated = h
        .tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .expect("the refresh token of a code grant rotates");
    assert_eq!(rotated.access.record.audience, ["https://api.example/"]);
    for token in [&rotated.access, &rotated.refresh] {
        assert_eq!(
            h.record(&token.secret.digest()).await.client_id.as_deref(),
            Some(client.client_id.as_str()),
            "a rotation keeps the grant's client"
        );
    }
    // A client_id is public: it revokes nothing and is no token.
    assert!(!h
        .tokens
        .revoke_by_digest(&TokenDigest::of(&client.client_id))
        .await
        .unwrap());
    assert_eq!(
        h.tokens.client(&client.client_id).await.unwrap().as_ref(),
        Some(&client)
    );
    let events = h.events.take_names();
    for name in [
        "client_registered",
        "authorization_code_issued",
        "authorization_code_exchanged",
    ] {
        assert!(events.contains(&name), "{name} in {events:?}");
    }
}

/// RFC 6749 §4.1.2: a code presented again revokes every token issued from
/// it, refreshed ones included.
pub async fn a_reused_authorization_code_revokes_its_grant<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let (client, code) = client_and_code(&h).await;
    let exchange = CodeExchange::new(&code, &client.client_id, REDIRECT, VERIFIER);
    let pair = h.tokens.exchange_code(&exchange).await.unwrap();
    let rotated = h
        .tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    let again = h.tokens.exchange_code(&exchange).await;
    assert!(
        matches!(
            again,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        "got {again:?}"
    );
    for token in [&pair.access, &rotated.access, &rotated.refresh] {
        assert!(h.is_revoked(&token.secret.digest()).await);
    }
    assert!(h.events.take_names().contains(&"family_revoked_on_reuse"));
}

/// Two exchanges of one code at once, the first parked between its check
/// and the backend's atomic step: one wins, and the grant ends revoked.
pub async fn racing_code_exchanges_end_with_the_grant_revoked<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let (client, code) = client_and_code(&h).await;
    let mut parked = h.tokens.backend().park_next_exchange();
    let first = {
        let tokens = h.tokens.clone();
        let (code, client_id) = (code.clone(), client.client_id.clone());
        tokio::spawn(async move {
            tokens
                .exchange_code(&CodeExchange::new(&code, &client_id, REDIRECT, VERIFIER))
                .await
        })
    };
    parked.reached().await;
    let winner = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await
        .expect("the second wins");
    parked.release();
    let loser = first.await.expect("the task ends");
    assert!(
        matches!(
            loser,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ),
        "the parked exchange must find the code spent, got {loser:?}"
    );
    for token in [&winner.access, &winner.refresh] {
        assert!(h.is_revoked(&token.secret.digest()).await);
    }
}

/// A code is good for 60 seconds: at the boundary it is expired, and a
/// code presented as a refresh token is never exchanged.
pub async fn authorization_codes_expire<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let (client, code) = client_and_code(&h).await;
    let refused = h.tokens.refresh(&TokenDigest::of(&code), None).await;
    assert!(
        matches!(
            refused,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown))
        ),
        "got {refused:?}"
    );
    h.clock.advance(Duration::from_secs(60));
    let late = h
        .tokens
        .exchange_code(&CodeExchange::new(
            &code,
            &client.client_id,
            REDIRECT,
            VERIFIER,
        ))
        .await;
    assert!(
        matches!(
            late,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
        ),
        "got {late:?}"
    );
}

/// Registrations round-trip through the backend, are capped per source,
/// refuse unacceptable redirect URIs and end after their lifetime.
pub async fn client_registrations_are_stored_capped_and_expire<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = h.manager_with(|p| p.clients_per_source(2));
    let register = |source: &str| {
        tokens.register_client(
            ClientRegistration::new(vec!["https://app.example/cb".into()], source)
                .scopes(S::CUSTOMERS_READ),
        )
    };
    let first = register("10.0.0.1").await.unwrap();
    assert_eq!(first.name, "app.example", "named after the redirect host");
    assert_eq!(first.scopes, S::CUSTOMERS_READ);
    assert_eq!(first.redirect_uris, ["https://app.example/cb"]);
    assert!(first.accepts_redirect_uri("https://app.example/cb"));
    assert!(!first.accepts_redirect_uri("https://app.example/other"));
    register("10.0.0.1").await.unwrap();
    assert!(matches!(
        register("10.0.0.1").await,
        Err(RegistrationError::TooMany)
    ));
    register("10.0.0.2")
        .await
        .expect("other sources are not affected");
    assert!(matches!(
        tokens
            .register_client(ClientRegistration::new(
                vec!["http://app.example/cb".into()],
                "10.0.0.3"
            ))
            .await,
        Err(RegistrationError::InvalidRedirectUri(_))
    ));
    assert!(matches!(
        tokens
            .register_client(ClientRegistration::new(Vec::new(), "10.0.0.3"))
            .await,
        Err(RegistrationError::InvalidRedirectUri(_))
    ));
    assert_eq!(tokens.client("pr_cl_garbage").await.unwrap(), None);
    h.clock.advance(tokens.policy().get_lifetimes().client);
    assert_eq!(tokens.client(&first.client_id).await.unwrap(), None);
    register("10.0.0.1")
        .await
        .expect("expired registrations no longer count");
}

// ---- usage, expiry, purge ----

/// The latest use wins, whatever the order of batches.
pub async fn record_use_keeps_the_latest_time<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let tokens = &h.tokens;
    let a = tokens
        .issue(IssueRequest::new(TokenKind::Access, "a", "u1"))
        .await
        .unwrap();
    let b = tokens
        .issue(IssueRequest::new(TokenKind::Access, "b", "u1"))
        .await
        .unwrap();
    let now = h.clock.now();
    let earlier = now - Duration::from_secs(5);
    tokens.record_use(&[]).await.unwrap();
    tokens
        .record_use(&[
            (a.record.id, now),
            (a.record.id, earlier),
            (b.record.id, earlier),
            (TokenId::from_u64(99), now),
        ])
        .await
        .unwrap();
    let last_used = |id| async move { tokens.get(id).await.unwrap().unwrap().last_used_at };
    assert_eq!(last_used(a.record.id).await, Some(now));
    assert_eq!(last_used(b.record.id).await, Some(earlier));
    tokens
        .record_use(&[(a.record.id, earlier), (b.record.id, now)])
        .await
        .unwrap();
    assert_eq!(last_used(a.record.id).await, Some(now));
    assert_eq!(last_used(b.record.id).await, Some(now));
}

/// Valid while `now < expires_at`: through the middleware, by the
/// manager's clock, on both sides of the boundary.
pub async fn expiry_is_judged_at_the_boundary<B: TokenBackend<Scopes = S>>(h: Harness<B>) {
    let lifetime = Duration::from_secs(60);
    let issued = h
        .tokens
        .issue(IssueRequest::new(TokenKind::Access, "short", "u1").lifetime(lifetime))
        .await
        .unwrap();
    assert_eq!(
        h.record(&issued.secret.digest()).await.expires_at,
        start_time() + lifetime
    );
    let token = issued.secret.expose_secret();
    h.clock
        .set(start_time() + lifetime - Duration::from_micros(1));
    assert_eq!(status(&h.tokens, token).await, StatusCode::OK);
    h.clock.set(start_time() + lifetime);
    assert_eq!(status(&h.tokens, token).await, StatusCode::UNAUTHORIZED);
}

/// The status of a request with `token` through a [`TokenAuthLayer`] over
/// `tokens`.
async fn status<B: TokenBackend<Scopes = S>>(tokens: &TokenManager<B>, token: &str) -> StatusCode {
    let ok = tower_service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
    });
    let mut service = TokenAuthLayer::new(tokens.clone()).layer(ok);
    let request = Request::get("/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .expect("a valid request");
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .expect("ready");
    service.call(request).await.expect("answered").status()
}

/// A `Service` from an async function (tower's `service_fn`, without the
/// dependency).
fn tower_service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

#[derive(Clone)]
struct ServiceFn<F>(F);

impl<F, Fut, Req, Res, E> Service<Req> for ServiceFn<F>
where
    F: FnMut(Req) -> Fut,
    Fut: std::future::Future<Output = Result<Res, E>>,
{
    type Response = Res;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Fut {
        (self.0)(request)
    }
}

/// Refresh tokens expire; a family stops rotating at its age cap even while
/// its refresh token is still valid ([`InvalidGrantReason::FamilyExpired`]).
pub async fn refresh_tokens_expire_and_families_age_out<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let tokens = &h.tokens;
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let expires_at = pair.refresh.record.expires_at;
    assert_eq!(expires_at, start_time() + Duration::from_secs(30 * 86_400));
    h.clock.set(expires_at);
    assert!(matches!(
        tokens.refresh(&pair.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
    ));
    h.clock.set(expires_at - Duration::from_secs(1));
    let mut current = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    let family_end = start_time() + Duration::from_secs(90 * 86_400);
    while h.clock.now() + Duration::from_secs(29 * 86_400) < family_end {
        assert!(current.refresh.record.expires_at <= family_end);
        h.clock.advance(Duration::from_secs(29 * 86_400));
        current = tokens
            .refresh(&current.refresh.secret.digest(), None)
            .await
            .unwrap();
    }
    assert_eq!(current.refresh.record.expires_at, family_end);

    // The cap itself: a manager whose cap is shorter than the refresh
    // token's remaining life (a policy tightened after the grant began).
    let pair = tokens.issue_pair("agent", "u2", None).await.unwrap();
    let capped = h.manager_with(|p| p.family_max_age(Duration::from_secs(86_400)));
    h.clock.advance(Duration::from_secs(86_400));
    assert!(!h
        .record(&pair.refresh.secret.digest())
        .await
        .is_expired_at(h.clock.now()));
    assert!(matches!(
        capped.refresh(&pair.refresh.secret.digest(), None).await,
        Err(GrantError::InvalidGrant(InvalidGrantReason::FamilyExpired))
    ));
    assert!(
        h.record(&pair.refresh.secret.digest())
            .await
            .spent_at
            .is_none(),
        "a refused exchange spends nothing"
    );
}

/// Purge deletes records dead for longer than the retention, and nothing
/// else: live tokens, and spent refresh tokens until they expire, stay.
pub async fn purge_deletes_only_what_is_dead_past_retention<B: TokenBackend<Scopes = S>>(
    h: Harness<B>,
) {
    let day = Duration::from_secs(86_400);
    let tokens = h.manager_with(|p| {
        p.retention(day).lifetimes(crate::token::Lifetimes {
            access: day,
            ..crate::token::Lifetimes::default()
        })
    });
    let live = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "live", "u1"))
        .await
        .unwrap();
    let revoked = tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "revoked",
            "u1",
        ))
        .await
        .unwrap();
    let expired = tokens
        .issue(IssueRequest::new(TokenKind::Access, "expired", "u1").lifetime(day))
        .await
        .unwrap();
    // A grant whose access tokens (a day) die long before its refresh
    // token (30 days).
    let pair = tokens.issue_pair("grant", "u1", None).await.unwrap();
    let rotated = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    tokens.revoke(revoked.record.id).await.unwrap();

    h.clock.advance(day);
    assert_eq!(
        tokens.purge().await.unwrap(),
        0,
        "revoked exactly a retention ago: not longer, kept"
    );
    h.clock.advance(day);
    assert_eq!(
        tokens.purge().await.unwrap(),
        1,
        "the revoked token; the expired ones expired exactly a retention ago"
    );
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        tokens.purge().await.unwrap(),
        3,
        "the expired token and the grant's two access tokens"
    );
    for gone in [&revoked, &expired, &pair.access, &rotated.access] {
        assert!(tokens.find(&gone.secret.digest()).await.unwrap().is_none());
    }
    assert!(tokens.find(&live.secret.digest()).await.unwrap().is_some());
    assert!(
        tokens
            .find(&pair.refresh.secret.digest())
            .await
            .unwrap()
            .is_some(),
        "a spent refresh token stays until it expires: reuse detection needs it"
    );
    assert_eq!(tokens.list("u1").await.unwrap().len(), 3);
    // What is left of the grant is still one family: revoking it reaches
    // the live refresh token.
    let family = rotated.refresh.record.family.unwrap().id;
    assert!(tokens.revoke_family(family).await.unwrap() >= 1);
    assert!(
        h.is_revoked(&rotated.refresh.secret.digest()).await,
        "purging part of a grant leaves the rest of it revocable"
    );
}

#[cfg(test)]
mod tests {
    use crate::MemoryStore;

    crate::conformance_tests!(|_clock| async { MemoryStore::new() });

    #[cfg(feature = "cache")]
    mod cached {
        use std::sync::Arc;

        use crate::store::CachedStore;
        use crate::token::ManualClock;
        use crate::MemoryStore;

        async fn cached_memory(
            clock: Arc<ManualClock>,
        ) -> CachedStore<MemoryStore<crate::PayRequestScopes>> {
            CachedStore::builder(MemoryStore::new())
                .clock(clock)
                .build()
        }

        crate::conformance_tests!(cached_memory);
    }
}
