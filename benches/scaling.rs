//! How the memory store scales: resident bytes per stored token, and the
//! throughput of N threads against one (N = 2 unless `--threads N`).
//!
//! ```text
//! cargo bench --bench scaling                  # both, written to <target>/bench-results/scaling.json
//! cargo bench --bench scaling -- --test        # a quick run with small sizes (CI)
//! cargo bench --bench scaling -- --parallel-only
//! cargo bench --bench scaling -- --parallel-only --threads 4
//! cargo bench --bench scaling -- --memory-only  # resident bytes per token only
//! cargo bench --bench scaling -- --profile accepted 100000
//! ```
//!
//! At N threads the bench reports the ratio N threads ÷ 1 thread and the
//! efficiency, throughput ÷ (N × one thread), of the stack next to the bare
//! echo's: the echo is the control for what the machine itself allows
//! (on 2 cores, N > 2 measures oversubscription).
//!
//! `--profile <path> <requests>` only sends `requests` requests down one
//! path of the stack (`accepted`, `accepted_1m`, `baseline`, `missing_header`,
//! `bad_checksum`, `unknown_token`, `insufficient_scope`) on one thread, for
//! `valgrind --tool=callgrind` or `perf`: see BENCHMARKS.md.

mod support;

use std::convert::Infallible;
use std::sync::Barrier;
use std::time::Instant;

use http::{Request, Response};
use tower::{Service, ServiceExt};
use tower_token_auth::token::TokenRecord;
use tower_token_auth::token::{TokenFormat, TokenKind};
use tower_token_auth::PayRequestScopes;

use support::{auth_stack, fixture, request, test_mode, Body, Echo, Fixture};

/// Reads the resident set size of this process, in bytes, from
/// `/proc/self/status` (`VmRSS`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

struct Memory {
    tokens: usize,
    before: u64,
    after: u64,
}

impl Memory {
    fn per_token(&self) -> f64 {
        (self.after - self.before) as f64 / self.tokens as f64
    }
}

/// Resident bytes before and after filling a memory store with `tokens`
/// tokens (20-character names). The plaintexts are dropped as they are
/// minted, so what remains is what the store keeps.
fn memory(tokens: usize) -> (Memory, Fixture) {
    let before = resident_bytes();
    let fixture = fixture(tokens, 0);
    let after = resident_bytes();
    (
        Memory {
            tokens,
            before,
            after,
        },
        fixture,
    )
}

/// Requests per second of `threads` threads, each sending `per_thread`
/// requests through its own clone of `service` on a current-thread
/// runtime, with its own share of `tokens`.
fn throughput<Svc, ResBody>(
    service: &Svc,
    threads: usize,
    per_thread: usize,
    tokens: &[String],
    clone_per_request: bool,
) -> f64
where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + Sync,
    Svc::Future: Send,
{
    let start = Barrier::new(threads);
    // Each thread times itself from the common start to its own end: the
    // span from the earliest start to the latest end is the run's duration.
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mut service = service.clone();
                let start = &start;
                // Each thread its own tokens, as each connection has its own
                // client.
                let mine: Vec<&str> = tokens
                    .iter()
                    .skip(t)
                    .step_by(threads)
                    .map(String::as_str)
                    .collect();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("a tokio runtime");
                    start.wait();
                    let began = Instant::now();
                    rt.block_on(async {
                        for i in 0..per_thread {
                            let request = request(Some(mine[i % mine.len()]));
                            let response = if clone_per_request {
                                // As a router does: a clone per request.
                                service.clone().oneshot(request).await
                            } else {
                                // One service per thread, readied and called.
                                match service.ready().await {
                                    Ok(ready) => ready.call(request).await,
                                    Err(e) => Err(e),
                                }
                            };
                            std::hint::black_box(response).unwrap_or_else(|e| match e {});
                        }
                    });
                    (began, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread"))
            .collect()
    });
    let began = spans.iter().map(|s| s.0).min().expect("a thread");
    let ended = spans.iter().map(|s| s.1).max().expect("a thread");
    let elapsed = ended - began;
    (threads * per_thread) as f64 / elapsed.as_secs_f64()
}

struct Parallel {
    threads: usize,
    one: Vec<f64>,
    many: Vec<f64>,
}

impl Parallel {
    /// N threads ÷ 1 thread.
    fn ratio(&self) -> f64 {
        median(&self.many) / median(&self.one)
    }

    /// Throughput ÷ (N × one thread): 1.0 is perfect scaling.
    fn efficiency(&self) -> f64 {
        self.ratio() / self.threads as f64
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One thread, then `threads`, `rounds` times alternately.
fn parallel<Svc, ResBody>(
    service: &Svc,
    threads: usize,
    rounds: usize,
    per_thread: usize,
    tokens: &[String],
    clone_per_request: bool,
) -> Parallel
where
    Svc: Service<Request<Body>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + Sync,
    Svc::Future: Send,
{
    // Warm up: caches, allocator arenas of both threads.
    throughput(
        service,
        threads,
        per_thread / 4 + 1,
        tokens,
        clone_per_request,
    );
    let mut result = Parallel {
        threads,
        one: Vec::new(),
        many: Vec::new(),
    };
    for _ in 0..rounds {
        result.one.push(throughput(
            service,
            1,
            per_thread,
            tokens,
            clone_per_request,
        ));
        result.many.push(throughput(
            service,
            threads,
            per_thread,
            tokens,
            clone_per_request,
        ));
    }
    result
}

fn json_list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
    format!("[{}]", items.join(", "))
}

/// `--profile <path> <requests>`: one path of the stack, nothing else.
fn profile(path: &str, requests: usize) {
    // `accepted_1m`: the accepted path over a store of 10^6 tokens, 65 536
    // of them in turn, as `token_auth/memory/1m` measures it.
    let fixture = if path == "accepted_1m" {
        fixture(1_000_000, 65_536)
    } else {
        fixture(1_000, 1_000)
    };
    let stack = auth_stack(fixture.tokens.clone());
    let mut typo = fixture.writers[0].clone();
    typo.replace_range(
        typo.len() - 1..,
        if typo.ends_with('0') { "1" } else { "0" },
    );
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .expect("a token");
    let unknown = unknown.expose_secret().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let writers = &fixture.writers;
    let make = |i: usize| -> Request<Body> {
        match path {
            "accepted" | "accepted_1m" | "baseline" => request(Some(&writers[i % writers.len()])),
            "missing_header" => request(None),
            "bad_checksum" => request(Some(&typo)),
            "unknown_token" => request(Some(&unknown)),
            "insufficient_scope" => request(Some(&fixture.readers[i % fixture.readers.len()])),
            other => panic!("unknown path {other:?}"),
        }
    };
    rt.block_on(async {
        for i in 0..requests {
            let request = make(i);
            if path == "baseline" {
                let response = Echo.oneshot(request).await;
                std::hint::black_box(response).unwrap_or_else(|e| match e {});
            } else {
                let response = stack.clone().oneshot(request).await;
                std::hint::black_box(response).unwrap_or_else(|e| match e {});
            }
        }
    });
    println!("{path}: {requests} requests");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let path = args.get(i + 1).map_or("accepted", String::as_str);
        let requests = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        profile(path, requests);
        return;
    }

    let quick = test_mode();
    let (tokens, rounds, per_thread) = if quick {
        (10_000, 1, 2_000)
    } else {
        (1_000_000, 5, 400_000)
    };

    // Memory first, while the heap holds nothing else.
    let memory = (!args.iter().any(|a| a == "--parallel-only")).then(|| {
        let started = Instant::now();
        let (memory, large) = memory(tokens);
        println!(
            "memory: {} tokens, resident {:.1} MiB -> {:.1} MiB: {:.0} bytes per token ({:.1?} to fill)",
            memory.tokens,
            memory.before as f64 / 1048576.0,
            memory.after as f64 / 1048576.0,
            memory.per_token(),
            started.elapsed()
        );
        println!(
            "  TokenRecord is {} B (+16 B of Arc counts); name, owner, hint and client id are inline up to 24 bytes (none is on the heap here)",
            std::mem::size_of::<TokenRecord<PayRequestScopes>>()
        );
        drop(large);
        memory
    });
    if args.iter().any(|a| a == "--memory-only") {
        return;
    }

    let threads: usize = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--threads takes a number"))
        .unwrap_or(2);
    assert!(threads >= 1, "--threads must be at least 1");

    let small = fixture(1_000, 1_000);
    let stack = auth_stack(small.tokens.clone());
    let leaked = support::leaked_auth_stack(small.tokens.clone());
    let floor = support::minimal_auth(&small.store, &small.writers);
    let load = support::load_average();
    let runs = [
        (
            "token_auth",
            parallel(&stack, threads, rounds, per_thread, &small.writers, true),
        ),
        (
            "baseline",
            parallel(&Echo, threads, rounds, per_thread, &small.writers, true),
        ),
        (
            "token_auth_ready",
            parallel(&stack, threads, rounds, per_thread, &small.writers, false),
        ),
        (
            "token_auth_leaked",
            parallel(&leaked, threads, rounds, per_thread, &small.writers, true),
        ),
        // The floor of the issue (digest, map lookup, expiry, principal in
        // the extensions) with no shared write at all: how far the machine
        // lets a SHA-256 and a lookup per request scale, whatever the stack.
        (
            "minimal_auth_ready",
            parallel(&floor, threads, rounds, per_thread, &small.writers, false),
        ),
    ];
    println!("parallel, {threads} threads (load average {load:.2} before):");
    for (name, run) in &runs {
        println!(
            "  {name:18} 1 thread {:9.0} req/s, {threads} threads {:9.0} req/s: x{:.2}, efficiency {:.3}",
            median(&run.one),
            median(&run.many),
            run.ratio(),
            run.efficiency()
        );
    }
    println!("  (token_auth_ready: one readied service per thread instead of a clone per request;");
    println!("   token_auth_leaked: a clone per request of a stack whose layers were leaked;");
    println!(
        "   minimal_auth_ready: the floor stack of the auth bench, one readied service per thread)"
    );
    let parallel_json: Vec<String> = runs
        .iter()
        .map(|(name, run)| {
            format!(
                "    \"{name}\": {{\"one\": {}, \"many\": {}, \"ratio\": {:.3}, \"efficiency\": {:.3}}}",
                json_list(&run.one),
                json_list(&run.many),
                run.ratio(),
                run.efficiency()
            )
        })
        .collect();
    let memory_json = memory.map_or("null".to_owned(), |m| {
        format!(
            "{{\"tokens\": {}, \"rss_before\": {}, \"rss_after\": {}, \"bytes_per_token\": {:.1}}}",
            m.tokens,
            m.before,
            m.after,
            m.per_token()
        )
    });
    let json = format!(
        "{{\n  \"quick\": {quick},\n  \"memory\": {memory_json},\n  \"parallel\": {{\n    \"threads\": {threads},\n    \"load_average\": {load:.2},\n    \"requests_per_thread\": {per_thread},\n{}\n  }}\n}}\n",
        parallel_json.join(",\n")
    );
    support::write_result("scaling", &json);
}
