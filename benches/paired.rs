//! The per-request figures of `benches/auth.rs` again, measured interleaved:
//! round after round, each configuration handles one batch of 128 requests
//! in turn, and each figure is the median over the rounds of its batch's
//! time per request.
//!
//! criterion measures one benchmark after another, so a burst of load on a
//! shared machine lands on whichever benchmark runs then, and skews every
//! difference and ratio that involves it. Interleaving spreads the load
//! over all configurations alike; the ratios of BENCHMARKS.md are printed
//! from both measurements (`scripts/bench-ratios.py`).
//!
//! ```text
//! cargo bench --bench paired             # writes <target>/bench-results/paired.json
//! cargo bench --bench paired -- --test   # a few rounds, small store (CI)
//! ```
//!
//! The 1 000 000-token store is paired only with the 1 000-token one: its
//! lookups evict the caches, which would slow whichever configuration came
//! next.

mod support;

use std::convert::Infallible;
use std::time::Instant;

use http::{Request, Response, StatusCode};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt};
use tower_token_auth::token::TokenDigest;

use support::{auth_stack, cycle, fixture, request, test_mode, Body, Echo};

/// Requests per batch, as in `benches/auth.rs`.
const BATCH: usize = 128;

/// Times `n` requests made by `next`: nanoseconds per request.
type Timer<'a> = Box<dyn FnMut(usize) -> f64 + 'a>;

/// A [`Timer`] of `service.clone().oneshot(request)`; the requests are made
/// before and the responses dropped after the timed part.
fn timer<'a, Svc, ResBody>(
    rt: &'a Runtime,
    service: Svc,
    expected: StatusCode,
    mut next: impl FnMut() -> Request<Body> + 'a,
) -> Timer<'a>
where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible> + Clone + 'a,
    ResBody: 'a,
{
    let first = rt
        .block_on(service.clone().oneshot(next()))
        .unwrap_or_else(|e| match e {});
    assert_eq!(first.status(), expected);
    Box::new(move |n| {
        let requests: Vec<Request<Body>> = (0..n).map(|_| next()).collect();
        let mut responses = Vec::with_capacity(n);
        let started = Instant::now();
        rt.block_on(async {
            for request in requests {
                responses.push(service.clone().oneshot(request).await);
            }
        });
        let elapsed = started.elapsed();
        drop(responses);
        elapsed.as_nanos() as f64 / n as f64
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `rounds` rounds of one batch per timer, the order rotating each round;
/// the median time per request of each.
fn interleave(timers: &mut [(&str, Timer<'_>)], rounds: usize) -> Vec<(String, f64)> {
    let mut samples = vec![Vec::with_capacity(rounds); timers.len()];
    // Warm-up round.
    for (_, time) in timers.iter_mut() {
        time(BATCH);
    }
    for round in 0..rounds {
        for k in 0..timers.len() {
            let i = (round + k) % timers.len();
            samples[i].push((timers[i].1)(BATCH));
        }
    }
    timers
        .iter()
        .zip(&mut samples)
        .map(|((name, _), s)| (name.to_string(), median(s)))
        .collect()
}

fn main() {
    let quick = test_mode();
    let (large_tokens, rounds) = if quick {
        (10_000, 5)
    } else {
        (1_000_000, 2_000)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let small = fixture(1_000, 1_000);
    let large = fixture(large_tokens, 65_536);

    let typo = support::typo(&small.writers[0]);
    let unknown = support::unknown_tokens(64);
    let (jwt, jwts) = support::jwt_hs256(64);
    let bearer = small.writers[0].clone();
    let floor_token = small.writers[0].clone();

    let stack = auth_stack(small.tokens.clone());
    let mut timers: Vec<(&str, Timer<'_>)> = vec![
        (
            "baseline",
            timer(&rt, Echo, StatusCode::OK, cycle(&small.writers)),
        ),
        (
            "sha256_floor",
            Box::new(|n| {
                let started = Instant::now();
                for _ in 0..n {
                    std::hint::black_box(TokenDigest::of(std::hint::black_box(&floor_token)));
                }
                started.elapsed().as_nanos() as f64 / n as f64
            }),
        ),
        (
            "token_auth/memory/1k",
            timer(&rt, stack.clone(), StatusCode::OK, cycle(&small.writers)),
        ),
        (
            "rejections/missing_header",
            timer(&rt, stack.clone(), StatusCode::UNAUTHORIZED, || {
                request(None)
            }),
        ),
        (
            "rejections/bad_checksum",
            timer(&rt, stack.clone(), StatusCode::UNAUTHORIZED, || {
                request(Some(&typo))
            }),
        ),
        (
            "rejections/unknown_token",
            timer(
                &rt,
                stack.clone(),
                StatusCode::UNAUTHORIZED,
                cycle(&unknown),
            ),
        ),
        (
            "rejections/insufficient_scope",
            timer(
                &rt,
                stack.clone(),
                StatusCode::FORBIDDEN,
                cycle(&small.readers),
            ),
        ),
        (
            "tower_http_bearer",
            timer(
                &rt,
                support::tower_http_bearer(&bearer),
                StatusCode::OK,
                || request(Some(&bearer)),
            ),
        ),
        (
            "minimal_auth",
            timer(
                &rt,
                support::minimal_auth(&small.store, &small.writers),
                StatusCode::OK,
                cycle(&small.writers),
            ),
        ),
        ("jwt_hs256", timer(&rt, jwt, StatusCode::OK, cycle(&jwts))),
    ];
    let load = support::load_average();
    let mut results = interleave(&mut timers, rounds);
    drop(timers);

    let mut scale: Vec<(&str, Timer<'_>)> = vec![
        (
            "token_auth/memory/1k",
            timer(&rt, stack.clone(), StatusCode::OK, cycle(&small.writers)),
        ),
        (
            "token_auth/memory/1m",
            timer(
                &rt,
                auth_stack(large.tokens.clone()),
                StatusCode::OK,
                cycle(&large.writers),
            ),
        ),
    ];
    let scale = interleave(&mut scale, rounds);
    // The 1m figure is reported relative to the 1k figure of its own pairing.
    let ratio = scale[1].1 / scale[0].1;
    let small_time = results
        .iter()
        .find(|(name, _)| name == "token_auth/memory/1k")
        .map(|r| r.1)
        .expect("the 1k figure");
    results.push(("token_auth/memory/1m".to_owned(), small_time * ratio));

    println!("paired ({rounds} rounds of {BATCH} requests, load average {load:.2} before):");
    for (name, ns) in &results {
        println!("  {name:32} {ns:9.1} ns");
    }
    println!("  memory/1m ÷ memory/1k in their own pairing: {ratio:.3}");
    let entries: Vec<String> = results
        .iter()
        .map(|(name, ns)| format!("    \"{name}\": {ns:.1}"))
        .collect();
    let json = format!(
        "{{\n  \"quick\": {quick},\n  \"rounds\": {rounds},\n  \"batch\": {BATCH},\n  \"load_average\": {load:.2},\n  \"scale_ratio\": {ratio:.4},\n  \"median_ns\": {{\n{}\n  }}\n}}\n",
        entries.join(",\n")
    );
    support::write_result("paired", &json);
}
