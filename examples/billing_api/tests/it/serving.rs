//! The serving limits of DESIGN §6 (issue 23, row 1), over real sockets
//! against the example's real router, served by `billing_api::serve` with
//! short timeouts (the binary uses the design's: 10 s for headers, 60 s
//! idle, 4 096 connections): a client that never finishes its headers, an
//! idle kept-alive connection, a stalled or trickled body are all cut off;
//! past the connection cap a client waits until a connection closes; a
//! body past the limit is 413.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::socket::send;
use billing_api as app;
use billing_api::serve::Limits;

/// The example served within `limits` on a loopback port.
struct Served {
    addr: SocketAddr,
    state: app::AppState,
    /// The demo token with `billing.write`.
    writer: String,
    task: JoinHandle<()>,
}

impl Served {
    async fn start(limits: Limits) -> Self {
        let state = app::AppState::new().expect("state");
        let issued = app::demo::issue(&state).await.expect("demo tokens");
        let writer = serde_json::to_value(&issued)
            .expect("demo credentials serialize")
            .as_array()
            .expect("an array")
            .iter()
            .find(|entry| entry["label"] == "billing.write")
            .and_then(|entry| entry["token"].as_str())
            .expect("a billing.write token")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let router = app::app(state.clone());
        let task = tokio::spawn(async move {
            app::serve::serve(listener, router, limits, std::future::pending())
                .await
                .expect("the server runs");
        });
        Self {
            addr,
            state,
            writer,
            task,
        }
    }

    fn basic(&self) -> String {
        use base64::Engine as _;
        let pair = format!(
            "{}:{}",
            self.state.dashboard.username, self.state.dashboard.password
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Short timeouts for the tests, and room for 16 connections.
fn short() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_connections: 16,
    }
}

/// A test waits at most this long for the server to close a connection.
const PATIENCE: Duration = Duration::from_secs(6);

/// Reads until the server closes the connection (end of file, or a reset);
/// what it sent and how long that took, or `None` when it kept the
/// connection open for `PATIENCE`.
async fn until_closed(stream: &mut TcpStream) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| (received, start.elapsed()))
}

/// Reads one response with a `Content-Length` body; its status line.
async fn one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read a response");
        assert!(n > 0, "the server closed the connection before answering");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text.lines().next().unwrap_or_default().to_owned();
            }
        }
    }
}

/// `GET /health` on a kept-alive connection.
const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = Served::start(short()).await;
    // Half a header, then nothing.
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, after) = until_closed(&mut half)
        .await
        .expect("a client with half a header is disconnected");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");

    // A header sent a byte at a time keeps bytes moving, and is still cut
    // off when the header time is up.
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    trickle
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .unwrap();
    let (mut read, mut write) = trickle.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    writer.abort();
    assert!(closed.is_ok(), "a header sent a byte at a time is cut off");
    assert!(start.elapsed() < Duration::from_secs(4));

    // The server goes on serving.
    let mut good = TcpStream::connect(server.addr).await.unwrap();
    good.write_all(HEALTH).await.unwrap();
    assert_eq!(one_response(&mut good).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = Served::start(short()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(one_response(&mut stream).await, "HTTP/1.1 200 OK");
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(
        one_response(&mut stream).await,
        "HTTP/1.1 200 OK",
        "kept alive"
    );
    let (_, after) = until_closed(&mut stream)
        .await
        .expect("an idle connection is closed");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");
}

#[tokio::test]
async fn a_stalled_or_trickled_body_is_cut_off() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        ..short()
    };
    let server = Served::start(limits).await;
    let head = format!(
        "POST /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"amount\":",
        server.writer
    );
    // A body that stops: the connection is idle, and closed.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (_, after) = until_closed(&mut stalled)
        .await
        .expect("a stalled body's connection is closed");
    assert!(after < Duration::from_secs(4), "closed after {after:?}");

    // A body sent a byte every 200 ms is never idle: the request time runs
    // out, 408, and the connection is closed.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b"1").await.is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    writer.abort();
    assert!(closed.is_ok(), "a trickled body is cut off");
    assert!(start.elapsed() < Duration::from_secs(4));
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_one_closes() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..short()
    };
    let server = Served::start(limits).await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(HEALTH).await.unwrap();
    assert_eq!(one_response(&mut first).await, "HTTP/1.1 200 OK");
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(HEALTH).await.unwrap();
    assert_eq!(one_response(&mut second).await, "HTTP/1.1 200 OK");

    // The third connects (the accept queue takes it) but is not served.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(1500), one_response(&mut third)).await;
    assert!(waiting.is_err(), "served past the cap: {waiting:?}");

    // One closes: the third is served, and the second still is.
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(3), one_response(&mut third))
        .await
        .expect("served once a connection closed");
    assert_eq!(served, "HTTP/1.1 200 OK");
    second.write_all(HEALTH).await.unwrap();
    assert_eq!(one_response(&mut second).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn a_body_past_the_limit_is_413_and_one_within_it_is_read() {
    let server = Served::start(short()).await;
    let bearer = format!("Bearer {}", server.writer);
    let padded = |size: usize| {
        let body = json!({ "customer": "cus_000001", "note": "" }).to_string();
        let note = "a".repeat(size - body.len());
        json!({ "customer": "cus_000001", "note": note }).to_string()
    };
    let within = padded(app::BODY_LIMIT - 1024);
    let reply = send(
        server.addr,
        Method::POST,
        "/v1/invoices",
        Some(&bearer),
        Some(("application/json", within)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let past = padded(app::BODY_LIMIT + 1);
    for (path, authorization) in [
        ("/v1/invoices", bearer.clone()),
        ("/settings/api-tokens", server.basic()),
    ] {
        let reply = send(
            server.addr,
            Method::POST,
            path,
            Some(&authorization),
            Some(("application/json", past.clone())),
        )
        .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // No token was created by the refused body.
    let listed = send(
        server.addr,
        Method::GET,
        "/settings/api-tokens",
        Some(&server.basic()),
        None,
    )
    .await;
    assert!(!listed.text.contains("aaaaaaaa"), "{}", listed.text);

    // Without a length, a chunked body is cut off where it passes the limit.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {bearer}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
    for _ in 0..(app::BODY_LIMIT / 0x4000 + 2) {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let (received, _) = until_closed(&mut stream).await.expect("an answer");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
