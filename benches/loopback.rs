//! End to end over loopback: an axum server with three routes running the
//! same handler, `/auth` behind `TokenAuthLayer` + `RequireScopeLayer`,
//! `/floor` behind the auth bench's floor check (`MinimalAuth`) and `/open`
//! behind nothing, each driven by `wrk` in turn; prints the throughput
//! ratios authenticated ÷ unauthenticated and floor ÷ unauthenticated (what
//! any hashed-at-rest check that hands the handler a principal leaves).
//!
//! ```text
//! apt-get install -y wrk
//! cargo bench --bench loopback                 # 5 rounds of 3 s per route
//! cargo bench --bench loopback -- --rounds 7 --seconds 5 --connections 32
//! cargo bench --bench loopback -- --test       # no wrk: one request per route (CI)
//! ```
//!
//! The server listens on 127.0.0.1 only and runs on one tokio worker
//! thread, so that on a two-core machine it, not `wrk` (one thread), is the
//! bottleneck: the ratio is then the ratio of the server's cost per
//! request. Every request on both routes carries the same `Authorization`
//! header, so both parse the same bytes. The result is written to
//! `<target>/bench-results/loopback.json`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower::layer::layer_fn;
use tower::ServiceBuilder;
use tower_token_auth::TokenAuthLayer;

use support::{fixture, minimal_auth, test_mode, Echo, MinimalAuth, Tokens, REQUIRED};

/// The handler of both routes.
async fn hello() -> &'static str {
    "hello"
}

/// `/open` with no authentication, `/auth` with the full stack, `/floor`
/// with the floor check of the auth bench (`MinimalAuth`: hash, lookup,
/// expiry, principal; no grammar, checksum, scope or rejection body).
fn router(tokens: Tokens, floor: MinimalAuth<Echo>) -> Router {
    let auth = TokenAuthLayer::new(tokens);
    let stack = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(REQUIRED));
    Router::new()
        .route("/open", get(hello))
        .route("/auth", get(hello).route_layer(stack))
        .route(
            "/floor",
            get(hello).route_layer(layer_fn(move |inner| floor.wrap(inner))),
        )
}

struct Options {
    rounds: usize,
    seconds: u64,
    connections: usize,
    server_threads: usize,
}

impl Options {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str, default: u64| -> u64 {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{name} takes a number"))
                })
                .unwrap_or(default)
        };
        Self {
            rounds: value("--rounds", 5) as usize,
            seconds: value("--seconds", 3),
            connections: value("--connections", 32) as usize,
            server_threads: value("--server-threads", 1) as usize,
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; the status line.
fn status_line(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    response.lines().next().unwrap_or_default().to_owned()
}

/// Requests per second `wrk` reached on `path`.
fn wrk(addr: SocketAddr, path: &str, token: &str, seconds: u64, connections: usize) -> f64 {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("running wrk (apt-get install -y wrk)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {stdout}");
    assert!(
        !stdout.contains("Non-2xx") && !stdout.contains("Socket errors"),
        "wrk saw errors on {path}:\n{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{stdout}"))
}

fn main() {
    let options = Options::from_args();
    let fixture = fixture(1_000, 1);
    let token = fixture.writers[0].clone();
    let floor = minimal_auth(&fixture.store, &fixture.writers);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.server_threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("binding 127.0.0.1");
    let addr = listener.local_addr().expect("the bound address");
    rt.spawn(async move { axum::serve(listener, router(fixture.tokens, floor)).await });

    // Every route answers as it should, whatever the mode.
    for path in ["/open", "/auth", "/floor"] {
        let status = status_line(addr, path, Some(&token));
        assert!(status.contains(" 200 "), "{path}: {status}");
    }
    let anonymous = status_line(addr, "/auth", None);
    assert!(
        anonymous.contains(" 401 "),
        "/auth without a token: {anonymous}"
    );
    if test_mode() {
        println!(
            "loopback: /open, /auth and /floor 200, /auth without a token 401 (test mode: no load)"
        );
        return;
    }

    println!(
        "loopback: server on {addr} ({} worker thread(s)), wrk -t1 -c{} -d{}s, {} rounds",
        options.server_threads, options.connections, options.seconds, options.rounds
    );
    let paths = ["/open", "/auth", "/floor"];
    // Warm up every route.
    for path in paths {
        wrk(addr, path, &token, 1, options.connections);
    }
    // Requests per second of each path, round by round.
    let mut rps: [Vec<f64>; 3] = Default::default();
    for round in 0..options.rounds {
        // Rotate which route goes first, so that a drift in the machine's
        // load favours none.
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            rps[i].push(wrk(
                addr,
                paths[i],
                &token,
                options.seconds,
                options.connections,
            ));
        }
        println!(
            "  round {}: /open {:.0} req/s, /auth {:.0} req/s: {:.3}; /floor {:.0} req/s: {:.3}",
            round + 1,
            rps[0][round],
            rps[1][round],
            rps[1][round] / rps[0][round],
            rps[2][round],
            rps[2][round] / rps[0][round],
        );
    }
    let [open, auth, floor] = &rps;
    // The ratio of the totals, and the median of the rounds' ratios.
    let ratios = |of: &[f64]| -> (f64, f64) {
        let total = of.iter().sum::<f64>() / open.iter().sum::<f64>();
        let mut each: Vec<f64> = open.iter().zip(of).map(|(o, a)| a / o).collect();
        each.sort_by(f64::total_cmp);
        (total, each[each.len() / 2])
    };
    let (ratio, median) = ratios(auth);
    let (floor_ratio, floor_median) = ratios(floor);
    println!(
        "loopback: authenticated / unauthenticated = {ratio:.3} (totals), {median:.3} (median round)"
    );
    println!(
        "loopback: floor check / unauthenticated = {floor_ratio:.3} (totals), {floor_median:.3} (median round)"
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let json = format!(
        "{{\n  \"connections\": {}, \"seconds\": {}, \"server_threads\": {},\n  \"open\": [{}],\n  \"auth\": [{}],\n  \"floor\": [{}],\n  \"ratio\": {ratio:.4},\n  \"median_round_ratio\": {median:.4},\n  \"floor_ratio\": {floor_ratio:.4},\n  \"floor_median_round_ratio\": {floor_median:.4}\n}}\n",
        options.connections,
        options.seconds,
        options.server_threads,
        list(open),
        list(auth),
        list(floor),
    );
    support::write_result("loopback", &json);
    rt.shutdown_timeout(Duration::from_secs(1));
}
