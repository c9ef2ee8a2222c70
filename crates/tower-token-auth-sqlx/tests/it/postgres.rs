//! `PgStore` on a real PostgreSQL, as several instances of a service use it:
//! revocations reaching every instance's cache, a database outage and the
//! recovery after it, concurrent refresh exchanges on two pools, the schema
//! and its identifiers.
//!
//! The store behaviours shared with every backend are checked by the
//! conformance kit (`conformance.rs`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_auth::audit::{Audit, AuditEvent, AuditObserver};
use tower_token_auth::body::ResponseBody;
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{
    GrantError, InvalidGrantReason, IssuePolicy, IssueRequest, TokenError, TokenManager,
};
use tower_token_auth::scope::PayRequestScopes as S;
use tower_token_auth::store::{CachedStore, TokenStore};
use tower_token_auth::token::{TokenDigest, TokenFormat, TokenKind};
use tower_token_auth::TokenAuthLayer;
use tower_token_auth_sqlx::sqlx::postgres::{PgListener, PgPoolOptions};
use tower_token_auth_sqlx::sqlx::{self, Row};
use tower_token_auth_sqlx::PgStore;

use crate::pg;

/// How long a revocation may take to reach another instance.
const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// A cache TTL far longer than any test: whatever a cache forgets, it
/// forgets because it was told to.
const LONG_TTL: Duration = Duration::from_secs(600);

type App = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

/// A service behind `TokenAuthLayer` over `store` (a store, a cache or a
/// manager: the lookup of one instance, for `pr_…` tokens), built once per
/// instance.
fn app<St: TokenStore<Scopes = S> + Clone>(store: St) -> App {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(TokenAuthLayer::over(store, Some(TokenFormat::default())))
            .service(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("invoices"))))
            })),
    )
}

/// What a request with `token` got: the status, the body's `error` and
/// whether a challenge came with it.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    error: Option<String>,
    challenged: bool,
}

async fn send(app: &App, token: &str) -> Outcome {
    let request = Request::get("/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let challenged = response.headers().contains_key(WWW_AUTHENTICATE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    Outcome {
        status,
        error,
        challenged,
    }
}

/// Sends requests with `token` until one answers `status`, for at most
/// `bound`; returns how long it took.
async fn until_status(app: &App, token: &str, status: StatusCode, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let outcome = send(app, token).await;
        if outcome.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "still {outcome:?} after {bound:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Names of audit events, in order.
#[derive(Default)]
struct Events(Mutex<Vec<&'static str>>);

impl AuditObserver for Events {
    fn observe(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.name());
    }
}

impl Events {
    fn count(&self, name: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| **n == name)
            .count()
    }
}

async fn within<F: std::future::Future>(bound: Duration, what: &str, f: F) -> F::Output {
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {bound:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_is_refused_by_another_within_a_second() {
    let db = pg::database().await;
    let pg::TwoInstances {
        store_a,
        cache_a,
        cache_b,
        listeners: _listeners,
    } = pg::two_instances(&db, LONG_TTL).await;
    // Instance A manages tokens through its cache; instance B serves them.
    let tokens_a = TokenManager::new(cache_a.clone());
    let app_b = app(cache_b.clone());

    let issued = tokens_a
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    let token = issued.secret.expose_secret();
    assert_eq!(send(&app_b, token).await.status, StatusCode::OK);

    // Instance B serves the token from its cache: a revocation written
    // behind the store's back (no notification) goes unseen.
    sqlx::query(&format!(
        "UPDATE {} SET revoked_at = now() WHERE digest = $1",
        store_a.table()
    ))
    .bind(issued.record.digest.as_bytes().to_vec())
    .execute(store_a.pool())
    .await
    .unwrap();
    assert_eq!(send(&app_b, token).await.status, StatusCode::OK);
    sqlx::query(&format!(
        "UPDATE {} SET revoked_at = NULL WHERE digest = $1",
        store_a.table()
    ))
    .bind(issued.record.digest.as_bytes().to_vec())
    .execute(store_a.pool())
    .await
    .unwrap();

    // A revocation through instance A reaches B by NOTIFY.
    let started = Instant::now();
    assert!(tokens_a.revoke(issued.record.id).await.unwrap());
    let committed = started.elapsed();
    let refused = until_status(&app_b, token, StatusCode::UNAUTHORIZED, PROPAGATION_BOUND).await;
    let latency = started.elapsed();
    println!(
        "revocation through instance A refused by instance B after {latency:?} \
         (revoke call {committed:?}, then B refused {refused:?} later)"
    );
    assert!(latency < PROPAGATION_BOUND, "took {latency:?}");
    let outcome = send(&app_b, token).await;
    assert_eq!(outcome.error.as_deref(), Some("invalid_token"));
    db.finish().await;
}

/// A scope change is a change of what a cached record says: made through
/// instance A, it reaches instance B's cache the way a revocation does, by
/// NOTIFY and eviction, within [`PROPAGATION_BOUND`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_change_on_one_instance_holds_on_another_within_a_second() {
    let db = pg::database().await;
    let pg::TwoInstances {
        cache_a,
        cache_b,
        listeners,
        ..
    } = pg::two_instances(&db, LONG_TTL).await;
    let tokens_a = TokenManager::new(cache_a.clone());

    let issued = tokens_a
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1").scopes(S::BILLING_READ))
        .await
        .unwrap();
    let digest = issued.record.digest;
    // Instance B looks the token up once: from now on it answers from its
    // cache, without the database.
    let warm = cache_b.find(digest.into()).await.unwrap().unwrap();
    assert_eq!(warm.scopes, S::BILLING_READ);
    let cached = cache_b
        .find_now(&digest)
        .expect("B's cache holds the token");
    assert_eq!(cached.unwrap().unwrap().scopes, S::BILLING_READ);

    let started = Instant::now();
    tokens_a
        .set_scopes(issued.record.id, S::CUSTOMERS_READ)
        .await
        .unwrap()
        .unwrap();
    loop {
        let seen = cache_b.find(digest.into()).await.unwrap().unwrap().scopes;
        if seen == S::CUSTOMERS_READ {
            break;
        }
        assert_eq!(seen, S::BILLING_READ, "the old scopes or the new ones");
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "instance B still sees {seen:?} after {PROPAGATION_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "scope change through instance A seen by instance B after {:?}",
        started.elapsed()
    );
    listeners.iter().for_each(|l| l.abort());
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_answers_503_then_recovers_by_itself() {
    let cluster = tokio::task::spawn_blocking(pg::Cluster::start_owned)
        .await
        .unwrap();
    let db = pg::database_on(&cluster).await;
    let store_a = PgStore::new(db.pool().await);
    store_a.migrate().await.unwrap();
    let store_b = PgStore::new(db.pool().await);
    let cache_b = CachedStore::builder(store_b.clone()).ttl(LONG_TTL).build();
    let mut listener_b = store_b
        .revocation_listener()
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .spawn(cache_b.clone());
    within(Duration::from_secs(5), "listener B", listener_b.listening()).await;
    // Instance A looks tokens up in the database directly, instance B
    // through its cache; both services are built once.
    let app_a = app(store_a.clone());
    let app_b = app(cache_b.clone());
    let tokens_a = TokenManager::new(store_a.clone());

    let first = tokens_a
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "first",
            "user-1",
        ))
        .await
        .unwrap();
    let second = tokens_a
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "second",
            "user-1",
        ))
        .await
        .unwrap();
    let (first, second) = (first.secret.expose_secret(), second.secret.expose_secret());
    let mut transcript = Vec::new();
    for (label, app, token) in [
        ("A", &app_a, first),
        ("B", &app_b, first),
        ("B", &app_b, second),
    ] {
        let outcome = send(app, token).await;
        transcript.push(format!("before: instance {label} -> {}", outcome.status));
        assert_eq!(outcome.status, StatusCode::OK);
    }

    // The database goes down.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    within(
        Duration::from_secs(5),
        "listener B notices the outage",
        listener_b.disconnected(),
    )
    .await;
    for (label, app, token) in [
        ("A", &app_a, first),
        ("B", &app_b, first),
        ("B", &app_b, second),
    ] {
        let started = Instant::now();
        let outcome = send(app, token).await;
        transcript.push(format!(
            "during: instance {label} -> {} {} in {:?}",
            outcome.status,
            outcome.error.as_deref().unwrap_or("-"),
            started.elapsed()
        ));
        assert_eq!(
            outcome.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{outcome:?}"
        );
        assert_eq!(outcome.error.as_deref(), Some("temporarily_unavailable"));
        assert!(!outcome.challenged, "a 503 carries no challenge");
    }
    assert!(matches!(
        store_a.find(TokenDigest::of(first).into()).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        tokens_a.refresh(&TokenDigest::of(first), None).await,
        Err(GrantError::Store(StoreError::Unavailable(_)))
    ));

    // It comes back: the same services recover on their own.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again();
        cluster
    })
    .await
    .unwrap();
    for (label, app, token) in [
        ("A", &app_a, first),
        ("B", &app_b, first),
        ("B", &app_b, second),
    ] {
        let took = until_status(app, token, StatusCode::OK, Duration::from_secs(10)).await;
        transcript.push(format!("after: instance {label} -> 200 OK within {took:?}"));
    }
    within(
        Duration::from_secs(10),
        "listener B reconnects",
        listener_b.listening(),
    )
    .await;

    // The listener listens again: a revocation after the restart reaches
    // instance B's cache.
    let started = Instant::now();
    assert!(tokens_a
        .revoke_by_digest(&TokenDigest::of(first))
        .await
        .unwrap());
    until_status(&app_b, first, StatusCode::UNAUTHORIZED, PROPAGATION_BOUND).await;
    transcript.push(format!(
        "after: revoked through A, instance B -> 401 after {:?}",
        started.elapsed()
    ));
    assert_eq!(send(&app_b, second).await.status, StatusCode::OK);
    println!("outage transcript:\n  {}", transcript.join("\n  "));

    listener_b.abort();
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_on_two_instances_has_exactly_one_winner() {
    let db = pg::database().await;
    let events = Arc::new(Events::default());
    let policy = IssuePolicy::default().audit(Audit::new().observer(events.clone()));
    let tokens_a = TokenManager::with_policy(PgStore::new(db.pool().await), policy.clone());
    tokens_a.backend().migrate().await.unwrap();
    let tokens_b = TokenManager::with_policy(PgStore::<S>::with_scopes(db.pool().await), policy);

    for _ in 0..3 {
        let pair = tokens_a.issue_pair("agent", "user-1", None).await.unwrap();
        let digest = pair.refresh.secret.digest();
        let before = events.count("refresh_rotated");
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let tokens = if i % 2 == 0 {
                    tokens_a.clone()
                } else {
                    tokens_b.clone()
                };
                tokio::spawn(async move { tokens.refresh(&digest, None).await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(pair) => winners.push(pair),
                Err(GrantError::InvalidGrant(
                    InvalidGrantReason::Reused | InvalidGrantReason::Revoked,
                )) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one exchange wins");
        assert_eq!(events.count("refresh_rotated") - before, 1);
        // The losers were replays: the winner's tokens went with the family.
        let won = tokens_b
            .find(winners[0].access.secret.lookup())
            .await
            .unwrap()
            .unwrap();
        assert!(won.is_revoked());
    }
    assert!(events.count("family_revoked_on_reuse") >= 3);
    db.finish().await;
}

/// Last-used batches from two instances, naming the same tokens in
/// opposite orders, racing each other and a family revocation: every call
/// succeeds (none is chosen as a deadlock victim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_last_used_batches_and_family_revocations_never_fail() {
    let db = pg::database().await;
    let tokens_a = TokenManager::new(PgStore::<S>::with_scopes(db.pool().await));
    tokens_a.backend().migrate().await.unwrap();
    let tokens_b = TokenManager::new(PgStore::<S>::with_scopes(db.pool().await));

    for round in 0..20 {
        // A grant rotated seven times: its newest two access tokens are
        // live (the older ones are deleted), and its eight refresh tokens
        // are kept, seven spent and one live. The batches name every token
        // the grant ever had, so they share every row that is left.
        let mut pair = tokens_a.issue_pair("agent", "user-1", None).await.unwrap();
        let family = pair.refresh.record.family.expect("a grant's family").id;
        let mut ids = vec![pair.access.record.id, pair.refresh.record.id];
        for _ in 0..7 {
            pair = tokens_a
                .refresh(&pair.refresh.secret.digest(), None)
                .await
                .unwrap();
            ids.extend([pair.access.record.id, pair.refresh.record.id]);
        }
        let at = std::time::SystemTime::now();
        let forward: Vec<_> = ids.iter().map(|id| (*id, at)).collect();
        let backward: Vec<_> = forward.iter().rev().copied().collect();
        let (a, b, revoked) = tokio::join!(
            tokens_a.record_use(&forward),
            tokens_b.record_use(&backward),
            tokens_b.revoke_family(family),
        );
        a.unwrap_or_else(|e| panic!("round {round}: instance A's batch failed: {e:?}"));
        b.unwrap_or_else(|e| panic!("round {round}: instance B's batch failed: {e:?}"));
        assert_eq!(
            revoked.unwrap_or_else(|e| panic!("round {round}: the revocation failed: {e:?}")),
            2 + 8,
            "round {round}: the two access tokens kept, and every refresh token (spent or live)"
        );
    }
    db.finish().await;
}

#[tokio::test]
async fn a_table_prefix_is_validated_and_names_table_and_channel() {
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://127.0.0.1:1/none")
        .unwrap();
    for bad in [
        "",
        "Tokens_",
        "1x",
        "x-y",
        "x.y",
        "x\"; DROP TABLE t; --",
        &"x".repeat(47),
    ] {
        assert!(
            matches!(
                PgStore::new(pool.clone()).table_prefix(bad),
                Err(StoreError::Misconfigured(_))
            ),
            "{bad:?} must be refused"
        );
    }

    let db = pg::database().await;
    let store = PgStore::new(db.pool().await)
        .table_prefix("billing_")
        .unwrap();
    assert_eq!(store.table(), "billing_tokens");
    assert_eq!(store.channel(), "billing_revoked");
    store.migrate().await.unwrap();
    let mut listener = PgListener::connect_with(store.pool()).await.unwrap();
    listener.listen(store.channel()).await.unwrap();
    let tokens = TokenManager::new(store.clone());
    let issued = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    assert!(store.find(issued.secret.lookup()).await.unwrap().is_some());
    let tables: Vec<String> = sqlx::query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("tablename"))
    .collect();
    assert_eq!(tables, ["billing_migrations", "billing_tokens"]);
    tokens.revoke(issued.record.id).await.unwrap();
    let note = within(Duration::from_secs(5), "notification", listener.recv())
        .await
        .unwrap();
    assert_eq!(note.channel(), "billing_revoked");
    db.finish().await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_to_run_at_once() {
    let db = pg::database().await;
    let stores: Vec<PgStore<S>> = stores_on(&db, 3).await;
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    stores[0].migrate().await.unwrap();
    let applied: i64 = sqlx::query("SELECT count(*) AS n FROM tower_token_auth_migrations")
        .fetch_one(stores[0].pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(applied, 5, "every shipped migration, once");
    // The shipped SQL can also be applied by hand, again and again.
    for sql in [
        include_str!("../../migrations/0001_tokens.sql"),
        include_str!("../../migrations/0002_purge_indexes.sql"),
        include_str!("../../migrations/0003_audience.sql"),
        include_str!("../../migrations/0004_oauth_kinds.sql"),
        include_str!("../../migrations/0005_client_id.sql"),
    ] {
        sqlx::raw_sql(sql).execute(stores[0].pool()).await.unwrap();
    }
    db.finish().await;
}

async fn stores_on(db: &pg::TestDb, n: usize) -> Vec<PgStore<S>> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(PgStore::new(db.pool().await));
    }
    stores
}

#[tokio::test]
async fn rows_are_readable_in_sql() {
    let db = pg::database().await;
    let store = PgStore::new(db.pool().await);
    store.migrate().await.unwrap();
    let issued = TokenManager::new(store.clone())
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "agent", "user-1")
                .scopes(S::BILLING_AGENT | S::PRODUCTS_READ),
        )
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT id, kind, scopes, scope_names, hint, digest = sha256($2::bytea) AS digest_ok \
         FROM tower_token_auth_tokens WHERE digest = $1",
    )
    .bind(issued.record.digest.as_bytes().to_vec())
    .bind(issued.secret.expose_secret().as_bytes().to_vec())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>("id") as u64, issued.record.id.as_u64());
    assert_eq!(row.get::<String, _>("kind"), "personal_access");
    assert_eq!(
        row.get::<i64, _>("scopes") as u64,
        (S::BILLING_AGENT | S::PRODUCTS_READ).bits()
    );
    assert_eq!(
        row.get::<Vec<String>, _>("scope_names"),
        [
            "billing.read",
            "billing.write",
            "billing.agent",
            "products.read"
        ]
    );
    assert_eq!(row.get::<String, _>("hint"), issued.secret.hint());
    assert!(
        row.get::<bool, _>("digest_ok"),
        "the digest is SHA-256 of the token"
    );
    // The plaintext is nowhere in the table.
    let leaked: i64 = sqlx::query(
        "SELECT count(*) AS n FROM tower_token_auth_tokens t WHERE t::text LIKE '%' || $1 || '%'",
    )
    .bind(issued.secret.expose_secret())
    .fetch_one(store.pool())
    .await
    .unwrap()
    .get("n");
    assert_eq!(leaked, 0);
    db.finish().await;
}

#[tokio::test]
async fn family_revocations_publish_every_digest_and_other_payloads_flush_caches() {
    let db = pg::database().await;
    let store = PgStore::new(db.pool().await);
    store.migrate().await.unwrap();
    let mut listener = PgListener::connect_with(store.pool()).await.unwrap();
    listener.listen(store.channel()).await.unwrap();
    let tokens = TokenManager::new(store.clone());
    let pair = tokens.issue_pair("agent", "user-1", None).await.unwrap();
    tokens
        .revoke_by_digest(&pair.refresh.secret.digest())
        .await
        .unwrap();
    let mut heard = Vec::new();
    for _ in 0..2 {
        let note = within(Duration::from_secs(5), "notification", listener.recv())
            .await
            .unwrap();
        heard.push(note.payload().to_owned());
    }
    heard.sort();
    let mut expected: Vec<String> = [&pair.access, &pair.refresh]
        .iter()
        .map(|t| hex(t.record.digest.as_bytes()))
        .collect();
    expected.sort();
    assert_eq!(heard, expected);

    // An operator's `NOTIFY <channel>, 'all'` empties every cache.
    let cache = CachedStore::builder(store.clone()).ttl(LONG_TTL).build();
    let mut handle = store.spawn_revocation_listener(cache.clone());
    within(Duration::from_secs(5), "listener", handle.listening()).await;
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    let digest = pat.secret.digest();
    assert!(!cache
        .find(digest.into())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    sqlx::query(&format!(
        "UPDATE {} SET revoked_at = now() WHERE digest = $1",
        store.table()
    ))
    .bind(digest.as_bytes().to_vec())
    .execute(store.pool())
    .await
    .unwrap();
    assert!(!cache
        .find(digest.into())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    sqlx::query("SELECT pg_notify($1, 'all')")
        .bind(store.channel())
        .execute(store.pool())
        .await
        .unwrap();
    let started = Instant::now();
    while !cache
        .find(digest.into())
        .await
        .unwrap()
        .unwrap()
        .is_revoked()
    {
        assert!(started.elapsed() < PROPAGATION_BOUND, "cache not flushed");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    handle.abort();
    db.finish().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_never_unknown() {
    // Nothing listens on port 1.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let store = PgStore::new(pool);
    let digest = TokenDigest::of("pr_pat_x");
    assert!(matches!(
        store.find(digest.into()).await,
        Err(StoreError::Unavailable(_))
    ));
    let tokens = TokenManager::new(store.clone());
    let refused = tokens.refresh(&digest, None).await.unwrap_err();
    assert_eq!(refused.error_code(), "temporarily_unavailable");
    assert!(matches!(
        tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u"))
            .await,
        Err(TokenError::Store(StoreError::Unavailable(_)))
    ));
    // Behind a cache too: errors are never cached.
    let cache = CachedStore::new(store);
    for _ in 0..2 {
        assert!(matches!(
            cache.find(digest.into()).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

/// The heartbeat of the listener in
/// [`a_silently_dead_listener_connection_bypasses_the_cache_until_it_is_back`].
const TEST_HEARTBEAT: Duration = Duration::from_millis(200);

/// How long a silent listener connection may go unnoticed there: the
/// documented two heartbeats (one without a notification, one waiting for
/// the answer to the query it then sends), plus 1 s for a loaded 2-core CI
/// machine to schedule the listener's task and the test's.
const SILENCE_NOTICED_BOUND: Duration =
    Duration::from_millis(2 * TEST_HEARTBEAT.as_millis() as u64 + 1000);

/// A listener connection that goes silent (no error, no answers) is
/// noticed within [`SILENCE_NOTICED_BOUND`]: two heartbeats plus 1 s of
/// scheduling margin. From then until it is back, the cache is bypassed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_listener_connection_bypasses_the_cache_until_it_is_back() {
    let db = pg::database().await;
    let store_a = PgStore::new(db.pool().await);
    store_a.migrate().await.unwrap();
    let tokens_a = TokenManager::new(store_a);
    let store_b = PgStore::new(db.pool().await);
    let cache_b = CachedStore::builder(store_b.clone()).ttl(LONG_TTL).build();
    let app_b = app(cache_b.clone());
    // Instance B's listener reaches the database through a proxy that can
    // go silent, as a firewall that forgets an idle connection does.
    let proxy = SilentProxy::start(db.options.get_port()).await;
    let listener_pool = pg::pool_options()
        .connect_with(db.options.clone().port(proxy.port))
        .await
        .unwrap();
    let mut listener_b = PgStore::new(listener_pool)
        .revocation_listener()
        .heartbeat(TEST_HEARTBEAT)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .spawn(cache_b.clone());
    within(Duration::from_secs(5), "listener B", listener_b.listening()).await;

    let first = tokens_a
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "first",
            "user-1",
        ))
        .await
        .unwrap();
    let second = tokens_a
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "second",
            "user-1",
        ))
        .await
        .unwrap();
    for token in [&first, &second] {
        assert_eq!(
            send(&app_b, token.secret.expose_secret()).await.status,
            StatusCode::OK
        );
    }

    proxy.go_silent(true);
    let started = Instant::now();
    within(
        SILENCE_NOTICED_BOUND,
        "the heartbeat notices the silence",
        listener_b.disconnected(),
    )
    .await;
    println!(
        "silent listener connection noticed after {:?} (heartbeat {TEST_HEARTBEAT:?}, \
         bound {SILENCE_NOTICED_BOUND:?})",
        started.elapsed()
    );
    // The notification of this revocation cannot reach instance B, yet B
    // refuses the token at once: its cache is bypassed.
    tokens_a.revoke(first.record.id).await.unwrap();
    assert_eq!(
        send(&app_b, first.secret.expose_secret()).await.status,
        StatusCode::UNAUTHORIZED
    );

    proxy.go_silent(false);
    within(
        Duration::from_secs(10),
        "listener B reconnects",
        listener_b.listening(),
    )
    .await;
    assert_eq!(
        send(&app_b, second.secret.expose_secret()).await.status,
        StatusCode::OK
    );
    tokens_a.revoke(second.record.id).await.unwrap();
    until_status(
        &app_b,
        second.secret.expose_secret(),
        StatusCode::UNAUTHORIZED,
        PROPAGATION_BOUND,
    )
    .await;
    listener_b.abort();
    proxy.task.abort();
    db.finish().await;
}

/// A listener that stops, by `abort` or because its runtime is gone (a
/// panic in the task ends it the same way), leaves nothing to evict the
/// cache: the cache must then be bypassed, not trusted until its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_listener_leaves_the_cache_bypassed_whatever_stopped_it() {
    let db = pg::database().await;
    let store = PgStore::new(db.pool().await);
    store.migrate().await.unwrap();
    let cache = CachedStore::builder(store.clone()).ttl(LONG_TTL).build();
    let app = app(cache.clone());
    // Revoked behind the store's back: only a bypassed cache sees it.
    let revoke_silently = |digest: TokenDigest, revoked: bool| {
        let (store, value) = (store.clone(), if revoked { "now()" } else { "NULL" });
        async move {
            sqlx::query(&format!(
                "UPDATE {} SET revoked_at = {value} WHERE digest = $1",
                store.table()
            ))
            .bind(digest.as_bytes().to_vec())
            .execute(store.pool())
            .await
            .unwrap();
        }
    };

    // Stopped by `abort`.
    let mut handle = store.spawn_revocation_listener(cache.clone());
    within(Duration::from_secs(5), "listener", handle.listening()).await;
    let issued = TokenManager::new(store.clone())
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    let (token, digest) = (issued.secret.expose_secret(), issued.record.digest);
    assert_eq!(send(&app, token).await.status, StatusCode::OK, "now cached");
    handle.abort();
    let stopped = Instant::now();
    while handle.is_listening() {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "still listening"
        );
        tokio::task::yield_now().await;
    }
    let _ = within(
        Duration::from_secs(5),
        "the task ends",
        handle.into_join_handle(),
    )
    .await;
    revoke_silently(digest, true).await;
    assert_eq!(
        send(&app, token).await.status,
        StatusCode::UNAUTHORIZED,
        "an aborted listener left the cache live"
    );
    revoke_silently(digest, false).await;

    // Stopped because its runtime shut down (a service's runtime going
    // away, or a task dropped for any other reason).
    let listener_pool = pg::pool_options().connect_lazy_with(db.options.clone());
    let cache_for_thread = cache.clone();
    let dropped_runtime = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut handle = PgStore::new(listener_pool)
                .revocation_listener()
                .spawn(cache_for_thread);
            within(Duration::from_secs(5), "listener", handle.listening()).await;
            handle
        })
        // The runtime is dropped here, and the listener's task with it.
    });
    let handle = tokio::task::spawn_blocking(move || dropped_runtime.join().unwrap())
        .await
        .unwrap();
    assert!(!handle.is_listening(), "the listener's task is gone");
    assert_eq!(send(&app, token).await.status, StatusCode::OK);
    revoke_silently(digest, true).await;
    assert_eq!(
        send(&app, token).await.status,
        StatusCode::UNAUTHORIZED,
        "a listener dropped with its runtime left the cache live"
    );
    db.finish().await;
}

/// The listener asks the server for TCP keepalive on its connection, so
/// an idle connection is not forgotten by a NAT or firewall in between
/// and a dead one is closed by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_connection_has_tcp_keepalive() {
    let db = pg::database().await;
    let store = PgStore::new(db.pool().await);
    store.migrate().await.unwrap();
    let cache = CachedStore::new(store.clone());
    // One connection: the one the listener uses, back in the pool after it.
    let listener_pool = pg::pool_options()
        .max_connections(1)
        .connect_with(db.options.clone())
        .await
        .unwrap();
    let default: String = sqlx::query_scalar("SHOW tcp_keepalives_idle")
        .fetch_one(&listener_pool)
        .await
        .unwrap();
    let mut handle = PgStore::new(listener_pool.clone())
        .revocation_listener()
        .spawn(cache);
    within(Duration::from_secs(5), "listener", handle.listening()).await;
    handle.abort();
    let _ = handle.into_join_handle().await;
    let settings: Vec<String> = within(Duration::from_secs(5), "the connection back", async {
        let mut settings = Vec::new();
        for name in [
            "tcp_keepalives_idle",
            "tcp_keepalives_interval",
            "tcp_keepalives_count",
        ] {
            let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
                .fetch_one(&listener_pool)
                .await
                .unwrap();
            settings.push(value);
        }
        settings
    })
    .await;
    println!("listener connection: keepalive idle, interval, count = {settings:?} (default idle {default})");
    assert_eq!(settings, ["15", "5", "3"]);
    db.finish().await;
}

/// A TCP proxy to the PostgreSQL on 127.0.0.1:`target` that can go silent:
/// it keeps every connection open but passes no more bytes.
struct SilentProxy {
    port: u16,
    silent: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentProxy {
    async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = silent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, flag.clone()));
                tokio::spawn(pump(server_read, client_write, flag.clone()));
            }
        });
        Self { port, silent, task }
    }

    fn go_silent(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes from `from` to `to`, dropping them while `silent` is set.
async fn pump(
    from: tokio::net::tcp::OwnedReadHalf,
    to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::ErrorKind::WouldBlock;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if from.readable().await.is_err() {
            return;
        }
        let n = match from.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == WouldBlock => continue,
            Err(_) => return,
        };
        if silent.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let mut sent = 0;
        while sent < n {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}
