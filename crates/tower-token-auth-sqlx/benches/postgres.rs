//! Time per request through `TokenAuthLayer` + `RequireScopeLayer` over
//! `PgStore` on a real PostgreSQL server, cached and uncached, and the
//! memory store's figure of the same run to compare them with.
//!
//! ```text
//! cargo bench -p tower-token-auth-sqlx --bench postgres
//! cargo bench -p tower-token-auth-sqlx --bench postgres -- --test   # every row once (CI)
//! ```
//!
//! The rows, each the time of `ServiceExt::oneshot` on a clone of the stack
//! as a router does per request (building the request is not timed):
//!
//! - `postgres/memory_baseline`: the stack over a manager over a memory
//!   store of the same tokens (the core's `token_auth/memory/1k`). The
//!   ratio `postgres/cached_hit` ÷ `postgres/memory_baseline` is measured
//!   within one run, on one machine state.
//! - `postgres/cached_hit`: the stack over a `CachedStore<PgStore>`, every
//!   token cached.
//! - `postgres/uncached`: the stack over `PgStore`, one `SELECT … WHERE
//!   digest = $1` per request.
//! - `postgres/select_1`: a prepared `SELECT 1` on the same pool, no stack:
//!   the floor of any lookup.
//! - `postgres/store_find`: `PgStore::find` alone, no stack.
//!
//! The server is the one `DATABASE_URL` names, or else a throwaway cluster
//! started by the tests' helper (`tests/it/pg.rs`). It is started only when
//! a row that needs it is selected; without PostgreSQL those rows fail and
//! say how to get one.

// The core's bench helpers: the echo handler, the memory fixture, requests.
#[path = "../../../benches/support/mod.rs"]
mod support;

// The tests' PostgreSQL helper: the bench uses its server and pools only.
#[allow(dead_code)]
#[path = "../tests/it/pg.rs"]
mod pg;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Bencher, Criterion};
use http::{Request, Response, StatusCode};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use tower_token_auth::manager::{IssueRequest, TokenManager};
use tower_token_auth::require_scope::RequireScope;
use tower_token_auth::scope::PayRequestScopes as S;
use tower_token_auth::store::{CachedStore, TokenBackend, TokenStore};
use tower_token_auth::token::{TokenDigest, TokenKind};
use tower_token_auth::{TokenAuth, TokenAuthLayer};
use tower_token_auth_sqlx::sqlx::{self, Executor as _};
use tower_token_auth_sqlx::PgStore;

use support::{cycle, fixture, request, test_mode, Body, Echo};

/// Requests per timed batch: small enough that a batch's requests stay in
/// cache, large enough that reading the clock is noise.
const BATCH: u64 = 128;

/// The runtime of every row. sqlx needs its I/O and timer drivers; rows
/// whose futures finish at the first poll never reach them.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Times `service.clone().oneshot(request)` for requests made by `next`, in
/// batches of [`BATCH`]; the requests are built outside the timing.
fn oneshot_batches<Svc, ResBody>(
    b: &mut Bencher<'_>,
    rt: &Runtime,
    service: &Svc,
    next: impl FnMut() -> Request<Body>,
) where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible> + Clone,
{
    b.to_async(rt).iter_batched(
        next,
        |request| service.clone().oneshot(request),
        BatchSize::NumIterations(BATCH),
    )
}

/// The stack of the core's `support::auth_stack`, over the manager of any
/// backend.
type StackOver<B> = TokenAuth<RequireScope<Echo, S>, TokenManager<B>>;

/// `TokenAuthLayer` + `RequireScopeLayer(billing.write)` over [`Echo`], as
/// `support::auth_stack` builds it over a memory store, over `tokens`.
fn stack_over<B: TokenBackend<Scopes = S>>(tokens: TokenManager<B>) -> StackOver<B> {
    let auth = TokenAuthLayer::new(tokens);
    tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(support::REQUIRED))
        .service(Echo)
}

/// The first answer of `service` to `request`, which must have `status`.
async fn check<Svc, ResBody>(service: &Svc, request: Request<Body>, status: StatusCode, id: &str)
where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible> + Clone,
{
    let answer = service
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(answer.status(), status, "{id}");
}

/// A database holding `tokens` tokens of the core's fixture (same names,
/// owners and scopes, issued through a manager over `PgStore`), and the
/// stacks over it.
struct PgBench {
    db: pg::TestDb,
    pool: sqlx::PgPool,
    store: PgStore<S>,
    /// The stack over the store: one query per request.
    uncached: StackOver<PgStore<S>>,
    /// The stack over a cache in front of the store, every writer cached.
    cached: StackOver<CachedStore<PgStore<S>>>,
    /// Plaintexts of every `billing.write` token.
    writers: Vec<String>,
}

impl PgBench {
    async fn start(tokens: usize) -> Self {
        let started = Instant::now();
        let db = pg::database().await;
        // The tests' pool: at most 8 connections, sqlx's defaults otherwise
        // (a ping before an idle connection is handed out). Requests here
        // run one at a time.
        let pool = db.pool().await;
        let store = PgStore::new(pool.clone());
        store.migrate().await.expect("migrating the bench database");
        let manager = TokenManager::new(store.clone());
        let mut writers = Vec::with_capacity(tokens);
        for i in 0..tokens {
            let scopes = if i < support::READERS {
                S::BILLING_READ
            } else {
                S::BILLING_READ | S::BILLING_WRITE
            };
            let request = IssueRequest::new(
                TokenKind::PersonalAccess,
                support::token_name(i),
                support::token_owner(i),
            )
            .scopes(scopes);
            let issued = manager.issue(request).await.expect("issuing a token");
            if i >= support::READERS {
                writers.push(issued.secret.expose_secret().to_owned());
            }
        }
        // Fresh statistics and no autovacuum run due in the middle of a row.
        pool.execute(format!("VACUUM ANALYZE {}", store.table()).as_str())
            .await
            .expect("VACUUM ANALYZE");

        let uncached = stack_over(manager);
        check(
            &uncached,
            request(Some(&writers[0])),
            StatusCode::OK,
            "postgres/uncached",
        )
        .await;

        // Long enough that no entry expires during a run.
        let cache = CachedStore::builder(store.clone())
            .ttl(Duration::from_secs(3_600))
            .build();
        let cached = stack_over(TokenManager::new(cache));
        for token in &writers {
            check(
                &cached,
                request(Some(token)),
                StatusCode::OK,
                "postgres/cached_hit",
            )
            .await;
        }

        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&pool)
            .await
            .expect("the server's version");
        eprintln!(
            "postgres: server {version}, {} tokens issued, ready in {:.1?}",
            writers.len() + support::READERS,
            started.elapsed()
        );
        Self {
            db,
            pool,
            store,
            uncached,
            cached,
            writers,
        }
    }

    /// Closes the pool and drops the database if it is on `DATABASE_URL`'s
    /// server (a throwaway cluster goes whole when the process exits).
    async fn finish(self) {
        eprintln!(
            "postgres: the pool held {} connections (at most {})",
            self.pool.size(),
            self.pool.options().get_max_connections()
        );
        let Self { db, pool, .. } = self;
        pool.close().await;
        db.finish().await;
    }

    /// Requests cycling through every writer, as the memory baseline's do;
    /// `turn` carries on from one sample to the next.
    fn requests<'a>(&'a self, turn: &'a mut usize) -> impl FnMut() -> Request<Body> + 'a {
        move || {
            *turn += 1;
            request(Some(&self.writers[*turn % self.writers.len()]))
        }
    }
}

/// The rows, over `tokens` tokens. The server is started at the first
/// selected row that needs it, so a filter that selects none of them (or
/// only `postgres/memory_baseline`) needs no PostgreSQL.
fn all(c: &mut Criterion) {
    // In test mode (CI) every row runs once: a small database fills fast.
    let tokens = if test_mode() { 64 } else { 1_000 };
    let rt = runtime();

    // The memory store of the same tokens: the core's `token_auth/memory/1k`.
    let memory = fixture(tokens, tokens);
    let stack = support::auth_stack(memory.tokens.clone());
    rt.block_on(check(
        &stack,
        request(Some(&memory.writers[0])),
        StatusCode::OK,
        "postgres/memory_baseline",
    ));
    let mut next = cycle(&memory.writers);
    c.bench_function("postgres/memory_baseline", |b| {
        oneshot_batches(b, &rt, &stack, &mut next)
    });

    let bench = std::cell::OnceCell::new();
    let get = || bench.get_or_init(|| rt.block_on(PgBench::start(tokens)));

    let mut turn = 0;
    c.bench_function("postgres/cached_hit", |b| {
        let pg = get();
        oneshot_batches(b, &rt, &pg.cached, pg.requests(&mut turn))
    });

    let mut turn = 0;
    c.bench_function("postgres/uncached", |b| {
        let pg = get();
        oneshot_batches(b, &rt, &pg.uncached, pg.requests(&mut turn))
    });

    // A round trip of a prepared `SELECT 1` on the same pool (acquire,
    // ping, bind/execute, release), no stack.
    c.bench_function("postgres/select_1", |b| {
        let pg = get();
        b.to_async(&rt).iter_batched(
            || (),
            |()| async {
                sqlx::query_scalar::<_, i32>("SELECT 1")
                    .fetch_one(&pg.pool)
                    .await
                    .expect("SELECT 1")
            },
            BatchSize::NumIterations(BATCH),
        )
    });

    // The store's query and the decoding of its row: between `select_1`
    // and `uncached`.
    let mut turn = 0;
    c.bench_function("postgres/store_find", |b| {
        let pg = get();
        b.to_async(&rt).iter_batched(
            || {
                turn += 1;
                TokenDigest::of(&pg.writers[turn % pg.writers.len()])
            },
            |digest| async move {
                pg.store
                    .find(digest.into())
                    .await
                    .expect("PgStore::find")
                    .expect("a stored token")
            },
            BatchSize::NumIterations(BATCH),
        )
    });

    if let Some(pg) = bench.into_inner() {
        rt.block_on(pg.finish());
    }
    if test_mode() {
        eprintln!("test mode: every row ran once, over {tokens} tokens");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn main() {
    let mut c = config().configure_from_args();
    all(&mut c);
    c.final_summary();
}
