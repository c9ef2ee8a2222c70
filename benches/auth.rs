//! Time per request through `TokenAuthLayer` + `RequireScopeLayer`, and
//! what it is compared with: the bare handler, one SHA-256, tower-http's
//! single-token check and a JWT HS256 check, all over the same echo handler.
//!
//! Run with `scripts/bench.sh` (which also prints the ratios of
//! `BENCHMARKS.md`), or `cargo bench --bench auth`. Each figure is the time
//! of `ServiceExt::oneshot` on a clone of the stack, as a router does per
//! request; building the request is not timed.
//!
//! The `postgres/` rows (the same stack over `PgStore` on a real server)
//! are the `postgres` bench of the `tower-token-auth-sqlx` crate.

mod support;

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
use tower_token_auth::token::{TokenDigest, TokenFormat};
use tower_token_auth::{Principal, TokenStore};

use support::{auth_stack, cycle, fixture, request, test_mode, Body, Echo, Fixture};

/// Requests per timed batch: small enough that a batch's requests stay in
/// cache, large enough that reading the clock is noise.
const BATCH: u64 = 128;

/// Tokens of the large store the requests cycle through: far more than the
/// CPU caches hold, as when many clients call.
const LARGE_SAMPLE: usize = 65_536;

/// The runtime of every row. Rows whose futures finish at the first poll
/// never reach its drivers.
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
