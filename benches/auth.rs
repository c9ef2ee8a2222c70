//! Time per request through `TokenAuthLayer` + `RequireScopeLayer`, and
//! what it is compared with: the bare handler, one SHA-256, tower-http's
//! single-token check and a JWT HS256 check, all over the same echo handler.
//!
//! Run with `scripts/bench.sh` (which also prints the ratios of
//! `BENCHMARKS.md`), or `cargo bench --bench auth`. Each figure is the time
//! of `ServiceExt::oneshot` on a clone of the stack, as a router does per
//! request; building the request is not timed.
//!
//! With the `postgres` feature (and `cache` for the cached row) the
//! `postgres/` rows run the same stack over `PgStore` on a real server: the
//! one `DATABASE_URL` names, or else a throwaway cluster started by
//! `tests/it/support/pg.rs`. The server is started only when a `postgres/` row
//! is selected; without PostgreSQL those rows fail and say how to get one.

mod support;

// The tests' PostgreSQL helper: the bench uses its server and pools only.
#[cfg(feature = "postgres")]
#[allow(dead_code)]
#[path = "../tests/it/support/pg.rs"]
mod pg;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{black_box, BatchSize, Bencher, Criterion};
use dashmap::DashMap;
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use tower_token_auth::auth::parse_authorization;
#[cfg(all(feature = "postgres", feature = "cache"))]
use tower_token_auth::store::CachedStore;
#[cfg(feature = "postgres")]
use tower_token_auth::manager::TokenManager;
use tower_token_auth::store::PgStore;
use tower_token_auth::token::{TokenDigest, TokenFormat};
#[cfg(feature = "postgres")]
use tower_token_auth::PayRequestScopes as S;
use tower_token_auth::{Principal, TokenStore};

use support::{auth_stack, cycle, fixture, request, test_mode, Body, Echo, Fixture};

/// Requests per timed batch: small enough that a batch's requests stay in
/// cache, large enough that reading the clock is noise.
const BATCH: u64 = 128;

/// Tokens of the large store the requests cycle through: far more than the
/// CPU caches hold, as when many clients call.
const LARGE_SAMPLE: usize = 65_536;

/// The runtime of every row. sqlx needs its I/O and timer drivers; rows
/// whose futures finish at the first poll never reach them.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Benchmarks `id`: `service.clone().oneshot(request)` for requests made by
/// `next`, after checking that the first answer has status `expected`.
fn per_request<Svc, ResBody>(
    c: &mut Criterion,
    rt: &Runtime,
    id: &str,
    service: &Svc,
    expected: StatusCode,
    mut next: impl FnMut() -> Request<Body>,
) where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible> + Clone,
{
    let response = rt
        .block_on(service.clone().oneshot(next()))
        .unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), expected, "{id}");
    c.bench_function(id, |b| oneshot_batches(b, rt, service, &mut next));
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

// ---- the accepted path and what bounds it ----

fn accepted(c: &mut Criterion, rt: &Runtime, small: &Fixture, large: &Fixture) {
    per_request(
        c,
        rt,
        "baseline",
        &Echo,
        StatusCode::OK,
        cycle(&small.writers),
    );

    let token = small.writers[0].clone();
    c.bench_function("sha256_floor", |b| {
        b.iter(|| TokenDigest::of(black_box(&token)))
    });

    let stack = auth_stack(small.tokens.clone());
    per_request(
        c,
        rt,
        "token_auth/memory/1k",
        &stack,
        StatusCode::OK,
        cycle(&small.writers),
    );
    let stack = auth_stack(large.tokens.clone());
    per_request(
        c,
        rt,
        "token_auth/memory/1m",
        &stack,
        StatusCode::OK,
        cycle(&large.writers),
    );
}

// ---- rejections: bad input must be cheap ----

fn rejections(c: &mut Criterion, rt: &Runtime, small: &Fixture) {
    let stack = auth_stack(small.tokens.clone());

    per_request(
        c,
        rt,
        "rejections/missing_header",
        &stack,
        StatusCode::UNAUTHORIZED,
        || request(None),
    );

    // Last character changed: the checksum no longer matches.
    let typo = support::typo(&small.writers[0]);
    per_request(
        c,
        rt,
        "rejections/bad_checksum",
        &stack,
        StatusCode::UNAUTHORIZED,
        || request(Some(&typo)),
    );

    // Well-formed, but never stored.
    let unknown = support::unknown_tokens(64);
    per_request(
        c,
        rt,
        "rejections/unknown_token",
        &stack,
        StatusCode::UNAUTHORIZED,
        cycle(&unknown),
    );

    per_request(
        c,
        rt,
        "rejections/insufficient_scope",
        &stack,
        StatusCode::FORBIDDEN,
        cycle(&small.readers),
    );
}

// ---- what users compare us with ----

fn alternatives(c: &mut Criterion, rt: &Runtime, small: &Fixture) {
    let token = &small.writers[0];
    per_request(
        c,
        rt,
        "tower_http_bearer",
        &support::tower_http_bearer(token),
        StatusCode::OK,
        || request(Some(token)),
    );

    per_request(
        c,
        rt,
        "minimal_auth",
        &support::minimal_auth(&small.store, &small.writers),
        StatusCode::OK,
        cycle(&small.writers),
    );

    let (jwt, tokens) = support::jwt_hs256(64);
    per_request(c, rt, "jwt_hs256", &jwt, StatusCode::OK, cycle(&tokens));
}

// ---- PostgreSQL: the same stack over `PgStore` ----

/// The stack of [`support::auth_stack`] over any store.
#[cfg(feature = "postgres")]
type StackOver<St> = tower_token_auth::TokenAuth<tower_token_auth::RequireScope<Echo, S>, St>;

/// `TokenAuthLayer` + `RequireScopeLayer(billing.write)` over [`Echo`], as
/// [`support::auth_stack`] builds it, over `store`.
#[cfg(feature = "postgres")]
fn stack_over<St: TokenStore<Scopes = S> + Clone>(store: St) -> StackOver<St> {
    let auth = tower_token_auth::TokenAuthLayer::new(store);
    tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(support::REQUIRED))
        .service(Echo)
}

/// A database holding the tokens of a [`fixture`] (same names, owners and
/// scopes, issued through a manager over `PgStore`), and the stacks over
/// it, each over a manager as [`support::auth_stack`] is.
#[cfg(feature = "postgres")]
struct PgBench {
    db: pg::TestDb,
    pool: sqlx::PgPool,
    store: PgStore<S>,
    /// The stack over the store: one query per request.
    uncached: StackOver<TokenManager<PgStore<S>>>,
    /// The stack over a cache in front of the store, every writer cached.
    #[cfg(feature = "cache")]
    cached: StackOver<TokenManager<CachedStore<PgStore<S>>>>,
    /// Plaintexts of every `billing.write` token.
    writers: Vec<String>,
}

#[cfg(feature = "postgres")]
impl PgBench {
    async fn start(tokens: usize) -> Self {
        use sqlx::Executor as _;
        use tower_token_auth::manager::IssueRequest;
        use tower_token_auth::token::TokenKind;

        let started = std::time::Instant::now();
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
        let answer = uncached
            .clone()
            .oneshot(request(Some(&writers[0])))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(answer.status(), StatusCode::OK, "postgres/uncached");

        #[cfg(feature = "cache")]
        let cached = {
            // Long enough that no entry expires during a run.
            let cache = CachedStore::builder(store.clone())
                .ttl(Duration::from_secs(3_600))
                .build();
            let cached = stack_over(TokenManager::new(cache));
            for token in &writers {
                let answer = cached
                    .clone()
                    .oneshot(request(Some(token)))
                    .await
                    .unwrap_or_else(|e| match e {});
                assert_eq!(answer.status(), StatusCode::OK, "postgres/cached_hit");
            }
            cached
        };

        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .expect("SELECT 1");
        assert_eq!(one, 1);
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
            #[cfg(feature = "cache")]
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
}

/// The `postgres/` rows, over a database of `tokens` tokens. The server is
/// started at the first selected row, so a filter that selects none of
/// them needs no PostgreSQL.
#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion, rt: &Runtime, tokens: usize) {
    let bench = std::cell::OnceCell::new();
    let get = || bench.get_or_init(|| rt.block_on(PgBench::start(tokens)));

    // Requests cycle through every writer, as in `token_auth/memory/1k`;
    // `turn` carries on from one sample to the next.
    fn requests<'a>(pg: &'a PgBench, turn: &'a mut usize) -> impl FnMut() -> Request<Body> + 'a {
        move || {
            *turn += 1;
            request(Some(&pg.writers[*turn % pg.writers.len()]))
        }
    }

    // The stack over `CachedStore<PgStore>`, every token cached: what
    // `token_auth/memory/1k` costs with the cache in place of the memory
    // store.
    #[cfg(feature = "cache")]
    {
        let mut turn = 0;
        c.bench_function("postgres/cached_hit", |b| {
            let pg = get();
            oneshot_batches(b, rt, &pg.cached, requests(pg, &mut turn))
        });
    }

    // The stack over `PgStore`: one `SELECT … WHERE digest = $1` per request.
    let mut turn = 0;
    c.bench_function("postgres/uncached", |b| {
        let pg = get();
        oneshot_batches(b, rt, &pg.uncached, requests(pg, &mut turn))
    });

    // The floor of any lookup: a round trip of a prepared `SELECT 1` on the
    // same pool (acquire, ping, bind/execute, release), no stack.
    c.bench_function("postgres/select_1", |b| {
        let pg = get();
        b.to_async(rt).iter_batched(
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

    // `PgStore::find` alone, no stack: the store's query and the decoding of
    // its row. Between `select_1` and `uncached`.
    let mut turn = 0;
    c.bench_function("postgres/store_find", |b| {
        let pg = get();
        b.to_async(rt).iter_batched(
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
}

// ---- the parts of the hot path, one by one ----

fn parts(c: &mut Criterion, rt: &Runtime, small: &Fixture, large: &Fixture) {
    let value = format!("Bearer {}", small.writers[0]);
    c.bench_function("parts/parse_authorization", |b| {
        b.iter(|| parse_authorization(black_box(value.as_bytes())))
    });

    let format = TokenFormat::default();
    let token = small.writers[0].clone();
    c.bench_function("parts/format_check", |b| {
        b.iter(|| format.check(black_box(&token)))
    });

    // `TokenStore::find` as the middleware calls it: an async-trait call,
    // which boxes its future, finished at the first poll.
    let digests = |f: &Fixture| -> Vec<TokenDigest> {
        f.writers.iter().map(|t| TokenDigest::of(t)).collect()
    };
    for (id, fixture) in [
        ("parts/store_find/1k", small),
        ("parts/store_find/1m", large),
    ] {
        let digests = digests(fixture);
        let store = fixture.store.clone();
        let mut next = 0;
        c.bench_function(id, |b| {
            b.iter(|| {
                next = (next + 1) % digests.len();
                store.find(digests[next].into()).now_or_never()
            })
        });
    }

    // The same lookup in a plain DashMap with its default hasher, without
    // the async-trait box: what the map itself costs.
    let map: DashMap<TokenDigest, Arc<_>> = DashMap::new();
    let small_digests = digests(small);
    for d in &small_digests {
        let record = rt
            .block_on(small.store.find(d.into()))
            .expect("store")
            .expect("stored");
        map.insert(*d, record);
    }
    let mut next = 0;
    c.bench_function("parts/dashmap_get/1k", |b| {
        b.iter(|| {
            next = (next + 1) % small_digests.len();
            map.get(&small_digests[next]).map(|r| Arc::clone(&r))
        })
    });

    // Putting the principal into the request: http's extensions map is
    // allocated on the first insert.
    let record = map
        .get(&small_digests[0])
        .map(|r| Arc::clone(&r))
        .expect("stored");
    c.bench_function("parts/extensions_insert", |b| {
        b.iter_batched(
            || (request(Some(&token)), Principal::new(Arc::clone(&record))),
            |(mut request, principal)| {
                request.extensions_mut().insert(principal);
                request
            },
            BatchSize::NumIterations(BATCH),
        )
    });

    c.bench_function("parts/system_clock", |b| b.iter(SystemTime::now));

    // What `oneshot` on a clone of the stack costs beyond the echo: cloning
    // and dropping it (reference counts of the store, the settings, the
    // scope requirement and the challenge).
    let stack = auth_stack(small.tokens.clone());
    c.bench_function("parts/stack_clone", |b| b.iter(|| black_box(stack.clone())));
}

fn all(c: &mut Criterion) {
    // In test mode (CI) every benchmark runs once: keep the large store small.
    let (small_tokens, large_tokens) = if test_mode() {
        (1_000, 10_000)
    } else {
        (1_000, 1_000_000)
    };
    let rt = runtime();
    let small = fixture(small_tokens, small_tokens);
    let started = std::time::Instant::now();
    let large = fixture(large_tokens, LARGE_SAMPLE);
    eprintln!(
        "filled a memory store with {} tokens in {:.1?}",
        large.store.len(),
        started.elapsed()
    );

    accepted(c, &rt, &small, &large);
    #[cfg(feature = "postgres")]
    postgres(c, &rt, small_tokens);
    rejections(c, &rt, &small);
    alternatives(c, &rt, &small);
    parts(c, &rt, &small, &large);
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
