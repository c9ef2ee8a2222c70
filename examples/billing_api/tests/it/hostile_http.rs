//! Hostile requests over a real socket: the `billing_api` example's router
//! served on 127.0.0.1, and requests written as raw bytes, so that nothing
//! between the attacker and the middleware cleans them up first.
//!
//! Each case names the exact status and `WWW-Authenticate` value it must
//! get. None may get a 200 or a 5xx, none may echo a token back, and the
//! server must still serve good requests afterwards. Cases that hyper
//! refuses before the router sees them (bytes no header may hold, obsolete
//! line folding, too many or too large headers) are marked `hyper` and get
//! hyper's own 400 or 431, without a challenge; the OAuth endpoints, which
//! read tokens from a form body, answer with RFC 6749 errors and no
//! challenge either.
//!
//! The example throttles failed authentications per client, so each case
//! connects from a loopback address of its own (127.1.x.y); the throttle
//! itself (on the API, the OAuth endpoints and the dashboard login, and in
//! the production profile behind a trusted proxy) and the production
//! profile's HTTPS rule are tested over the socket too, each client at its
//! own address.
//!
//! `cargo test --all-features --test it hostile_http -- --nocapture` prints
//! the table.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_token_auth::token::{TokenFormat, TokenKind};

use billing_api as app;

/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

// ---- the challenges of the example (realm `billing`) ----

/// The example's challenge: realm, then `attrs`, then the RFC 9728
/// metadata URL of the default base URL.
macro_rules! challenge {
    ($($attrs:literal)?) => {
        concat!(
            r#"Bearer realm="billing""#,
            $($attrs,)?
            r#", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource""#
        )
    };
}

/// A 401 challenge of the example: also the scope to ask for
/// (`Rejections::scope`).
macro_rules! challenge_401 {
    ($($attrs:literal)?) => {
        concat!(
            r#"Bearer realm="billing""#,
            $($attrs,)?
            r#", scope="billing.read""#,
            r#", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource""#
        )
    };
}

const MISSING: &str = challenge_401!();
const MALFORMED: &str = challenge_401!(
    r#", error="invalid_token", error_description="The access token is malformed.""#
);
const INVALID: &str = challenge_401!(
    r#", error="invalid_token", error_description="The access token is invalid or has been revoked.""#
);
const REFRESH: &str = challenge_401!(
    r#", error="invalid_token", error_description="A refresh token cannot be used as an API credential.""#
);
const EXPIRED: &str =
    challenge_401!(r#", error="invalid_token", error_description="The access token expired.""#);
const REPEATED: &str = challenge!(
    r#", error="invalid_request", error_description="The request carries more than one access token.""#
);
const IN_URL: &str = challenge!(
    r#", error="invalid_request", error_description="Access tokens are not accepted in the URL.""#
);
const NEEDS_BILLING_READ: &str = challenge!(
    r#", error="insufficient_scope", error_description="The access token does not have the scope this request requires.", scope="billing.read""#
);

// ---- the server ----

/// The example's router on a loopback socket, and its demo tokens.
struct Server {
    addr: SocketAddr,
    tokens: HashMap<String, String>,
    task: JoinHandle<()>,
    /// The last client address [`exchange`](Self::exchange) used.
    clients: AtomicU32,
    /// The dashboard login, as `Basic …`.
    dashboard: String,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(app::AppState::new().expect("state")).await
    }

    /// The example over `state`, e.g. with its production profile.
    async fn start_with(state: app::AppState) -> Self {
        let issued = app::demo::issue(&state).await.expect("demo tokens");
        let tokens = serde_json::to_value(&issued)
            .expect("demo credentials serialize")
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|entry| {
                let label = entry["label"].as_str()?.to_owned();
                Some((label, entry["token"].as_str()?.to_owned()))
            })
            .collect();
        let dashboard = basic(&state.dashboard.username, &state.dashboard.password);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let router = app::app(state);
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("the server runs");
        });
        Self {
            addr,
            tokens,
            task,
            clients: AtomicU32::new(0),
            dashboard,
        }
    }

    fn token(&self, label: &str) -> String {
        self.tokens
            .get(label)
            .unwrap_or_else(|| panic!("no demo token `{label}`"))
            .clone()
    }

    /// Sends `raw` on a new connection from a loopback address of its own
    /// (127.1.x.y), so the throttle counts each exchange as another client,
    /// and reads every response until the server closes it.
    async fn exchange(&self, raw: &[u8]) -> Vec<Reply> {
        let n = self.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let [_, _, x, y] = n.to_be_bytes();
        self.exchange_from(Ipv4Addr::new(127, 1, x, y), raw).await
    }

    /// Sends `raw` on a new connection from `client` (a loopback address)
    /// and reads every response until the server closes it (plain blocking
    /// socket I/O, on a blocking thread).
    async fn exchange_from(&self, client: Ipv4Addr, raw: &[u8]) -> Vec<Reply> {
        let (addr, raw) = (self.addr, raw.to_vec());
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from((client, 0)))
            .expect("bind the client address");
        let stream = socket.connect(addr).await.expect("connect");
        let stream = stream.into_std().expect("a std stream");
        stream.set_nonblocking(false).expect("blocking");
        let received = tokio::task::spawn_blocking(move || {
            let mut stream = stream;
            stream.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
            stream.set_write_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
            // The server may answer and close before it has read everything
            // (a header too large); what it answered is still readable.
            let _ = stream.write_all(&raw);
            let mut received = Vec::new();
            let read = stream.read_to_end(&mut received);
            if let Err(error) = read {
                assert!(
                    error.kind() != std::io::ErrorKind::WouldBlock
                        && error.kind() != std::io::ErrorKind::TimedOut,
                    "the server answers and closes the connection in time"
                );
            }
            received
        })
        .await
        .expect("the exchange thread");
        parse_replies(&received)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---- raw requests and replies ----

/// `GET path` with the given header lines (each without its CRLF) and
/// `Connection: close`.
fn get(path: &str, lines: &[&[u8]]) -> Vec<u8> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    for line in lines {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    raw
}

/// An `Authorization` header line with `value`.
fn authorization(value: impl AsRef<[u8]>) -> Vec<u8> {
    let mut line = b"Authorization: ".to_vec();
    line.extend_from_slice(value.as_ref());
    line
}

/// `GET /v1/invoices` with one `Authorization` header.
fn invoices_with(value: impl AsRef<[u8]>) -> Vec<u8> {
    get("/v1/invoices", &[&authorization(value)])
}

/// `POST path` with a form body.
fn post_form(path: &str, body: &str) -> Vec<u8> {
    post(path, "application/x-www-form-urlencoded", body)
}

/// `POST path` with a body of `content_type`.
fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `Bearer <token>`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// One HTTP response as read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Header names lower-cased, values as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }
}

/// Splits what the server sent into responses (bodies by `content-length`,
/// as this server sends them).
fn parse_replies(mut bytes: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("a complete head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next();
        assert!(
            matches!(version, Some("HTTP/1.1" | "HTTP/1.0")),
            "{status_line}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status code in {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("name: value");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        let rest = &bytes[end + 4..];
        assert!(rest.len() >= length, "a complete body");
        replies.push(Reply {
            status,
            headers,
            body: rest[..length].to_vec(),
        });
        bytes = &rest[length..];
    }
    replies
}

// ---- crafted tokens ----

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE, as zlib), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `prefix` + `random` + its base62 checksum: a token that passes the
/// offline check whatever the store holds.
fn with_checksum(prefix: &str, random: &str) -> String {
    let mut token = format!("{prefix}{random}");
    let mut value = crc32(token.as_bytes());
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    token.push_str(std::str::from_utf8(&digits).unwrap());
    token
}

/// The 30 random characters of a token.
fn random_part(token: &str) -> &str {
    let body = &token[token.rfind('_').unwrap() + 1..];
    &body[..30]
}

/// `token` with its last character replaced: same prefix, wrong checksum.
fn wrong_checksum(token: &str) -> String {
    let last = if token.ends_with('0') { "1" } else { "0" };
    format!("{}{last}", &token[..token.len() - 1])
}

// ---- the table ----

/// One hostile request and what it must get.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// The exact `WWW-Authenticate` value, or `None` for no header.
    challenge: Option<&'static str>,
    /// Who answers: the middleware, the router, or hyper itself.
    by: &'static str,
}

fn case(
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    challenge: Option<&'static str>,
) -> Case {
    Case {
        name,
        request,
        status,
        challenge,
        by: "middleware",
    }
}

fn endpoint(name: &'static str, request: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        request,
        status,
        challenge: None,
        by: "endpoint",
    }
}

fn hyper(name: &'static str, request: Vec<u8>, status: u16) -> Case {
    Case {
        name,
        request,
        status,
        challenge: None,
        by: "hyper",
    }
}

#[rustfmt::skip] // One case a line reads as a table.
fn cases(server: &Server) -> Vec<Case> {
    let read = server.token("billing.read");
    let customers = server.token("customers.read");
    let refresh = server.token("refresh");
    let access = server.token("access");
    let revoked = server.token("revoked");
    let expired = server.token("expired");
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    let unknown = unknown.expose_secret();
    let bad_sum = wrong_checksum(&read);
    // The refresh token's random part under the access-token prefix, with
    // a checksum that matches: well-formed, but no such access token.
    let relabelled = with_checksum("pr_at_", random_part(&refresh));
    // The access token's random part under the refresh prefix.
    let as_refresh = with_checksum("pr_rt_", random_part(&access));
    let other_service = with_checksum("xx_pat_", random_part(&read));
    let unknown_kind = with_checksum("pr_adm_", random_part(&read));
    let url = |token: &str| format!("/v1/invoices?access_token={token}");

    let mut nul = bearer(&read).into_bytes();
    nul.insert(20, 0);
    let mut del = bearer(&read).into_bytes();
    del.insert(20, 0x7f);
    let mut latin1 = bearer(&read).into_bytes();
    latin1.push(0xff);
    let mut utf8 = bearer(&read[..read.len() - 1]).into_bytes();
    utf8.extend_from_slice("é".as_bytes());
    let mut cr = authorization(bearer(&read));
    cr.insert(24, b'\r');

    let long_token = "A".repeat(60 * 1024);
    let huge_token = "A".repeat(1024 * 1024);
    let many_headers: Vec<Vec<u8>> = (0..120)
        .map(|i| format!("X-Filler-{i}: {i}").into_bytes())
        .chain([authorization(bearer(&read))])
        .collect();
    let many_headers: Vec<&[u8]> = many_headers.iter().map(Vec::as_slice).collect();

    vec![
        // No credentials, or not bearer credentials.
        case("no Authorization header", get("/v1/invoices", &[]), 401, Some(MISSING)),
        case("empty Authorization value", invoices_with(""), 401, Some(MISSING)),
        case("Basic scheme", invoices_with("Basic ZGVtbzpwYXNzd29yZA=="), 401, Some(MISSING)),
        case("Token scheme with a valid token", invoices_with(format!("Token {read}")), 401, Some(MISSING)),
        case("scheme glued to the token", invoices_with(format!("Bearer{read}")), 401, Some(MISSING)),
        case("Cyrillic e in Bearer", invoices_with(format!("B\u{435}arer {read}")), 401, Some(MISSING)),
        case("token alone, no scheme", invoices_with(&read), 401, Some(MISSING)),
        case("token in X-Api-Key", get("/v1/invoices", &[format!("X-Api-Key: {read}").as_bytes()]), 401, Some(MISSING)),
        case("token in a cookie", get("/v1/invoices", &[format!("Cookie: access_token={read}").as_bytes()]), 401, Some(MISSING)),
        case("Proxy-Authorization only", get("/v1/invoices", &[format!("Proxy-Authorization: Bearer {read}").as_bytes()]), 401, Some(MISSING)),
        // Bearer, but not `1*SP b64token`.
        case("Bearer without a token", invoices_with("Bearer"), 401, Some(MALFORMED)),
        case("Bearer and trailing spaces only", invoices_with("Bearer    "), 401, Some(MALFORMED)),
        case("tab after Bearer", invoices_with(format!("Bearer\t{read}")), 401, Some(MALFORMED)),
        case("colon after Bearer", invoices_with(format!("Bearer: {read}")), 401, Some(MALFORMED)),
        case("quoted token", invoices_with(format!("Bearer \"{read}\"")), 401, Some(MALFORMED)),
        case("two tokens, comma", invoices_with(format!("Bearer {read}, Bearer {read}")), 401, Some(MALFORMED)),
        case("token then a word", invoices_with(format!("Bearer {read} x")), 401, Some(MALFORMED)),
        case("tab inside the token", invoices_with(format!("Bearer {}\t{}", &read[..10], &read[10..])), 401, Some(MALFORMED)),
        case("non-ASCII UTF-8 in the token", invoices_with(utf8), 401, Some(MALFORMED)),
        case("Latin-1 byte after the token", invoices_with(latin1), 401, Some(MALFORMED)),
        case("padding only", invoices_with("Bearer ==="), 401, Some(MALFORMED)),
        case("60 KiB token", invoices_with(bearer(&long_token)), 401, Some(MALFORMED)),
        // Bytes and framing hyper refuses before any service runs.
        hyper("NUL inside the token", invoices_with(nul), 400),
        hyper("DEL inside the token", invoices_with(del), 400),
        hyper("bare CR inside the token", get("/v1/invoices", &[&cr]), 400),
        hyper("obs-fold continuation line", get("/v1/invoices", &[b"Authorization: Bearer", format!(" {read}").as_bytes()]), 400),
        hyper("space before the colon", get("/v1/invoices", &[format!("Authorization : Bearer {read}").as_bytes()]), 400),
        hyper("1 MiB Authorization header", invoices_with(bearer(&huge_token)), 431),
        hyper("121 header fields", get("/v1/invoices", &many_headers), 431),
        // Repeated credentials.
        case("two Authorization headers", get("/v1/invoices", &[&authorization(bearer(&read)), &authorization(bearer(&read))]), 400, Some(REPEATED)),
        case("Basic then Bearer headers", get("/v1/invoices", &[&authorization("Basic ZGVtbzp4"), &authorization(bearer(&read))]), 400, Some(REPEATED)),
        case("two empty Authorization headers", get("/v1/invoices", &[b"Authorization: ", b"Authorization: "]), 400, Some(REPEATED)),
        // Well-formed tokens the store must refuse.
        case("valid prefix, wrong checksum", invoices_with(bearer(&bad_sum)), 401, Some(MALFORMED)),
        case("token cut short", invoices_with(bearer(&read[..read.len() - 1])), 401, Some(MALFORMED)),
        case("token with padding", invoices_with(bearer(&format!("{read}=="))), 401, Some(MALFORMED)),
        case("token in upper case", invoices_with(bearer(&read.to_uppercase())), 401, Some(MALFORMED)),
        case("valid checksum, unknown digest", invoices_with(bearer(unknown)), 401, Some(INVALID)),
        case("refresh token as a credential", invoices_with(bearer(&refresh)), 401, Some(REFRESH)),
        case("refresh body under the access prefix", invoices_with(bearer(&relabelled)), 401, Some(INVALID)),
        case("access body under the refresh prefix", invoices_with(bearer(&as_refresh)), 401, Some(REFRESH)),
        case("another service's prefix", invoices_with(bearer(&other_service)), 401, Some(MALFORMED)),
        case("unknown kind tag, valid checksum", invoices_with(bearer(&unknown_kind)), 401, Some(MALFORMED)),
        case("revoked token", invoices_with(bearer(&revoked)), 401, Some(INVALID)),
        case("expired token", invoices_with(bearer(&expired)), 401, Some(EXPIRED)),
        case("valid token, scope missing", invoices_with(bearer(&customers)), 403, Some(NEEDS_BILLING_READ)),
        // Tokens in the URL.
        case("URL token only", get(&url(&read), &[]), 400, Some(IN_URL)),
        case("URL token, empty value", get("/v1/invoices?access_token=", &[]), 400, Some(IN_URL)),
        case("URL token, no value", get("/v1/invoices?x=1&access_token", &[]), 400, Some(IN_URL)),
        case("URL token with a Basic header", get(&url(&read), &[&authorization("Basic ZGVtbzp4")]), 400, Some(IN_URL)),
        case("URL token and the same in the header", get(&url(&read), &[&authorization(bearer(&read))]), 400, Some(REPEATED)),
        case("URL token and a malformed header", get(&url(&read), &[&authorization("Bearer ===")]), 400, Some(REPEATED)),
        case("absolute-form URI with a URL token", get(&format!("http://127.0.0.1{}", url(&read)), &[]), 400, Some(IN_URL)),
        case("parameter name in upper case", get(&format!("/v1/invoices?ACCESS_TOKEN={read}"), &[]), 401, Some(MISSING)),
        // The OAuth endpoints, which read tokens from the body.
        endpoint("token endpoint: access token as refresh_token", post_form("/oauth/token", &format!("grant_type=refresh_token&refresh_token={access}")), 400),
        endpoint("token endpoint: refresh_token twice", post_form("/oauth/token", &format!("grant_type=refresh_token&refresh_token={refresh}&refresh_token={refresh}")), 400),
        endpoint("token endpoint: refresh token in the query", post_form(&format!("/oauth/token?grant_type=refresh_token&refresh_token={refresh}"), ""), 400),
        endpoint("token endpoint: 9 KiB body", post_form("/oauth/token", &format!("grant_type=refresh_token&refresh_token={refresh}&pad={}", "x".repeat(9 * 1024))), 400),
        endpoint("token endpoint: GET", get(&format!("/oauth/token?grant_type=refresh_token&refresh_token={refresh}"), &[]), 405),
        endpoint("revocation endpoint: no token", post_form("/oauth/revoke", "token_type_hint=access_token"), 400),
        // Elsewhere in the router.
        case("HTTP/1.0 without Host", format!("GET /v1/me HTTP/1.0\r\nAuthorization: Bearer {bad_sum}\r\n\r\n").into_bytes(), 401, Some(MALFORMED)),
        Case {
            name: "unknown path with a bad token",
            request: get("/v1/nothing", &[&authorization(bearer(&bad_sum))]),
            status: 404,
            challenge: None,
            by: "router",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_exact_rejections_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let secrets: Vec<String> = server.tokens.values().cloned().collect();
    let cases = cases(&server);
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let mut table = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let replies = server.exchange(&case.request).await;
        let [reply] = replies.as_slice() else {
            panic!("{}: expected one response, got {replies:#?}", case.name);
        };
        let challenges = reply.all("www-authenticate");
        let challenge = challenges.first().copied();
        table.push(format!(
            "{:<48} {:>3}  {:<10} {}",
            case.name,
            reply.status,
            case.by,
            challenge.unwrap_or("-")
        ));
        assert!(
            reply.status != 200 && reply.status < 500,
            "{}: {}",
            case.name,
            reply.status
        );
        assert!(challenges.len() <= 1, "{}: {challenges:?}", case.name);
        let text = String::from_utf8_lossy(&reply.body);
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{}: body echoes a token",
                case.name
            );
        }
        if reply.status != case.status || challenge != case.challenge {
            failures.push(format!(
                "{}: got {} {challenge:?}, expected {} {:?}",
                case.name, reply.status, case.status, case.challenge
            ));
        }
        if case.by == "middleware" {
            assert_eq!(
                reply.header("cache-control"),
                Some("no-store"),
                "{}",
                case.name
            );
            assert_eq!(
                reply.header("content-type"),
                Some("application/json"),
                "{}",
                case.name
            );
        }
    }
    println!(
        "{} hostile requests (name, status, answered by, WWW-Authenticate):",
        cases.len()
    );
    for row in &table {
        println!("  {row}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Still serving, and the grammar's legal variants are accepted.
    let read = server.token("billing.read");
    for (name, request) in [
        ("canonical", invoices_with(bearer(&read))),
        ("lower-case scheme", invoices_with(format!("bearer {read}"))),
        ("upper-case scheme", invoices_with(format!("BEARER {read}"))),
        ("several spaces", invoices_with(format!("Bearer    {read}"))),
        (
            "whitespace around the value (OWS, trimmed by hyper)",
            invoices_with(format!(" \tBearer {read} \t")),
        ),
        (
            "lower-case header name",
            get(
                "/v1/invoices",
                &[format!("authorization: Bearer {read}").as_bytes()],
            ),
        ),
        ("health", get("/health", &[])),
    ] {
        let replies = server.exchange(&request).await;
        assert_eq!(replies.len(), 1, "{name}");
        assert_eq!(replies[0].status, 200, "{name}: {:?}", replies[0]);
        println!("  still served: {name:<50} 200");
    }
    // The demo refresh token survived the abuse of the token endpoint.
    let refresh = server.token("refresh");
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let replies = server.exchange(&post_form("/oauth/token", &body)).await;
    assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
    let granted: serde_json::Value = serde_json::from_slice(&replies[0].body).unwrap();
    let access = granted["access_token"].as_str().unwrap();
    let replies = server.exchange(&invoices_with(bearer(access))).await;
    assert_eq!(replies[0].status, 200);
    println!(
        "  still served: {:<50} 200",
        "refresh exchange, then its access token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_carries_no_credential_to_the_next_request() {
    let server = Server::start().await;
    let read = server.token("billing.read");
    // Three pipelined requests on one connection: a good one, one without
    // credentials, one with a bad token.
    let mut raw = format!(
        "GET /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {read}\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(b"GET /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    raw.extend_from_slice(&invoices_with(bearer(&wrong_checksum(&read))));
    let replies = server.exchange(&raw).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 401]);
    assert_eq!(replies[1].header("www-authenticate"), Some(MISSING));
    assert_eq!(replies[2].header("www-authenticate"), Some(MALFORMED));
}

/// RFC 6750 §2.3 defines `access_token` as a form-encoded query parameter,
/// and form decoding turns `access%5Ftoken` into `access_token`. Such a URL
/// carries a token in the URL (400), and with a header it carries the token
/// twice (400), as DESIGN.md §4 says for "header and query".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_access_token_parameter_is_a_token_in_the_url() {
    let server = Server::start().await;
    let read = server.token("billing.read");
    let mut got = Vec::new();
    for (name, request, status, challenge) in [
        (
            "access%5Ftoken in the query",
            get(&format!("/v1/invoices?access%5Ftoken={read}"), &[]),
            400,
            IN_URL,
        ),
        (
            "%61ccess_token in the query",
            get(&format!("/v1/invoices?%61ccess_token={read}"), &[]),
            400,
            IN_URL,
        ),
        (
            "access%5Ftoken in the query and the header",
            get(
                &format!("/v1/invoices?access%5Ftoken={read}"),
                &[&authorization(bearer(&read))],
            ),
            400,
            REPEATED,
        ),
    ] {
        let replies = server.exchange(&request).await;
        let reply = &replies[0];
        let challenge_got = reply.header("www-authenticate").map(str::to_owned);
        println!(
            "  {name:<44} {} {}",
            reply.status,
            challenge_got.as_deref().unwrap_or("-")
        );
        got.push((name, reply.status, challenge_got, status, challenge));
    }
    let wrong: Vec<String> = got
        .iter()
        .filter(|(_, status, challenge, want, want_challenge)| {
            status != want || challenge.as_deref() != Some(*want_challenge)
        })
        .map(|(name, status, challenge, want, want_challenge)| {
            format!("{name}: got {status} {challenge:?}, expected {want} {want_challenge:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The production profile refuses what is not known to arrive over TLS. A
/// request line in absolute form names its scheme, but over a plain TCP
/// connection `https://` is only the client's word: it gets the same 403
/// as the origin form, before the token is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_an_https_request_line_over_plain_http() {
    let state = app::AppState::new().expect("state").require_https();
    let server = Server::start_with(state).await;
    let read = server.token("billing.read");
    let mut statuses = Vec::new();
    for (name, path) in [
        ("origin form", "/v1/invoices".to_owned()),
        ("absolute form, https", "https://x/v1/invoices".to_owned()),
        (
            "absolute form, https, this host",
            format!("https://{}/v1/invoices", server.addr),
        ),
        ("absolute form, HTTPS", "HTTPS://x/v1/invoices".to_owned()),
    ] {
        let replies = server
            .exchange(&get(&path, &[&authorization(bearer(&read))]))
            .await;
        let [reply] = replies.as_slice() else {
            panic!("{name}: expected one response, got {replies:#?}");
        };
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        println!("  {name:<36} {} {}", reply.status, body["error"]);
        statuses.push((name, reply.status, body["error"].clone()));
    }
    for (name, status, error) in &statuses {
        assert_eq!(
            (*status, error.as_str()),
            (403, Some("https_required")),
            "{name}"
        );
    }
    // /health stays open.
    let replies = server.exchange(&get("/health", &[])).await;
    assert_eq!(replies[0].status, 200);
}

/// `Basic <base64(user:password)>` (RFC 7617).
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The `Retry-After` of a 429, checked against the example's quota: a
/// failure comes back every 60 s / `FAILURES_PER_MINUTE`, so no client waits
/// longer than that.
fn retry_after(reply: &Reply) -> u64 {
    let seconds: u64 = reply
        .header("retry-after")
        .expect("a 429 says when to retry")
        .parse()
        .expect("whole seconds");
    let period = 60 / u64::from(app::FAILURES_PER_MINUTE);
    assert!((1..=period).contains(&seconds), "Retry-After {seconds}");
    seconds
}

/// A client that keeps sending bad tokens is throttled (429, `Retry-After`)
/// once the example's budget is spent, even with a good token then; another
/// client's good token still works. Every connection of a client comes from
/// its own loopback address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_failing_gets_429_while_another_clients_token_works() {
    let server = Server::start().await;
    let read = server.token("billing.read");
    let attacker = Ipv4Addr::new(127, 2, 0, 1);
    let client = Ipv4Addr::new(127, 2, 0, 2);
    let budget = app::FAILURES_PER_MINUTE as usize;
    let mut statuses = Vec::new();
    for _ in 0..budget + 3 {
        let guess = TokenFormat::default()
            .generate(TokenKind::PersonalAccess)
            .unwrap();
        let replies = server
            .exchange_from(attacker, &invoices_with(bearer(guess.expose_secret())))
            .await;
        if replies[0].status == 429 {
            retry_after(&replies[0]);
            let body: serde_json::Value = serde_json::from_slice(&replies[0].body).unwrap();
            assert_eq!(body["error"], "too_many_requests");
        }
        statuses.push(replies[0].status);
    }
    println!("  bad tokens from one client: {statuses:?}");
    assert_eq!(statuses[..budget], vec![401; budget][..]);
    assert_eq!(statuses[budget..], [429, 429, 429]);
    // Refused before its token is read: a good one does not help.
    let replies = server
        .exchange_from(attacker, &invoices_with(bearer(&read)))
        .await;
    assert_eq!(replies[0].status, 429);
    // Another client is not affected.
    let replies = server
        .exchange_from(client, &invoices_with(bearer(&read)))
        .await;
    assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
    // The same budget covers the token endpoint: refused grants count, and
    // a throttled client's grant is refused before it is looked at.
    let grants = Ipv4Addr::new(127, 2, 0, 3);
    let made_up = TokenFormat::default().generate(TokenKind::Refresh).unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}",
        made_up.expose_secret()
    );
    let mut statuses = Vec::new();
    for _ in 0..budget + 1 {
        let replies = server
            .exchange_from(grants, &post_form("/oauth/token", &body))
            .await;
        statuses.push(replies[0].status);
    }
    assert_eq!(statuses[..budget], vec![400; budget][..]);
    assert_eq!(statuses[budget], 429);
}

/// A client that keeps failing the dashboard login (HTTP Basic on the JSON
/// API) is throttled too; the right password from another client works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_failing_the_dashboard_login_gets_429() {
    let server = Server::start().await;
    let guesser = Ipv4Addr::new(127, 3, 0, 1);
    let budget = app::FAILURES_PER_MINUTE as usize;
    let mut statuses = Vec::new();
    for attempt in 0..budget + 2 {
        let wrong = basic("demo", &format!("guess-{attempt}"));
        let replies = server
            .exchange_from(
                guesser,
                &get("/settings/api-tokens", &[&authorization(&wrong)]),
            )
            .await;
        if replies[0].status == 429 {
            retry_after(&replies[0]);
        }
        statuses.push(replies[0].status);
    }
    println!("  wrong dashboard passwords from one client: {statuses:?}");
    assert_eq!(statuses[..budget], vec![401; budget][..]);
    assert_eq!(statuses[budget..], [429, 429]);
    // The right password does not get the guesser in while throttled.
    let login = authorization(&server.dashboard);
    let replies = server
        .exchange_from(guesser, &get("/settings/api-tokens", &[&login]))
        .await;
    assert_eq!(replies[0].status, 429);
    // Not logging in at all is not guessing: another client can ask as
    // often as it likes, then log in.
    let other = Ipv4Addr::new(127, 3, 0, 2);
    for _ in 0..budget + 2 {
        let replies = server
            .exchange_from(other, &get("/settings/api-tokens", &[]))
            .await;
        assert_eq!(replies[0].status, 401);
    }
    let replies = server
        .exchange_from(other, &get("/settings/api-tokens", &[&login]))
        .await;
    assert_eq!(replies[0].status, 200, "{:?}", replies[0]);
}

/// Spends `client`'s budget with made-up tokens sent as `request` builds
/// them (each 401), so that its next failure would be refused.
async fn spend_the_budget(server: &Server, client: Ipv4Addr, request: impl Fn(&str) -> Vec<u8>) {
    for _ in 0..app::FAILURES_PER_MINUTE {
        let guess = TokenFormat::default()
            .generate(TokenKind::PersonalAccess)
            .unwrap();
        let replies = server
            .exchange_from(client, &request(&bearer(guess.expose_secret())))
            .await;
        assert_eq!(replies[0].status, 401, "{:?}", replies[0]);
    }
}

/// The throttle covers the OAuth endpoints: a client whose budget is spent
/// is refused (429, `Retry-After`) on revocation, registration and the
/// authorization endpoint, before they run; another client gets each
/// endpoint's own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_client_is_refused_on_the_oauth_endpoints_too() {
    let server = Server::start().await;
    let attacker = Ipv4Addr::new(127, 4, 0, 1);
    let client = Ipv4Addr::new(127, 4, 0, 2);
    spend_the_budget(&server, attacker, |value| invoices_with(value)).await;
    let made_up = TokenFormat::default().generate(TokenKind::Refresh).unwrap();
    let revoke = post_form(
        "/oauth/revoke",
        &format!("token={}", made_up.expose_secret()),
    );
    let register = post(
        "/oauth/register",
        "application/json",
        r#"{"redirect_uris":["http://127.0.0.1:8976/callback"],"token_endpoint_auth_method":"none"}"#,
    );
    let authorize = get(
        "/oauth/authorize?response_type=code&client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb",
        &[],
    );
    for (name, raw) in [
        ("/oauth/revoke", &revoke),
        ("/oauth/register", &register),
        ("/oauth/authorize", &authorize),
    ] {
        let refused = server.exchange_from(attacker, raw).await;
        assert_eq!(refused[0].status, 429, "{name}: {:?}", refused[0]);
        retry_after(&refused[0]);
        let answered = server.exchange_from(client, raw).await;
        assert_ne!(answered[0].status, 429, "{name} from another client");
        println!(
            "  {name}: 429 for the throttled client, {} for another",
            answered[0].status
        );
    }
}

/// The production profile throttles too. Its HTTPS comes from the trusted
/// proxy's `X-Forwarded-Proto`, and the throttle tells the clients behind
/// that proxy apart by `X-Forwarded-For`: one that keeps failing is
/// refused (429, `Retry-After`), even with a good token, while another
/// client behind the same proxy is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_throttles_each_client_behind_the_trusted_proxy() {
    let proxy = Ipv4Addr::new(127, 5, 0, 1);
    let state = app::AppState::new()
        .expect("state")
        .peers(tower_token_auth::peer::Peers::new().trust_proxy(proxy.into()))
        .require_https();
    let server = Server::start_with(state).await;
    let read = server.token("billing.read");
    let via_proxy = |client: &'static str| {
        move |value: &str| {
            get(
                "/v1/invoices",
                &[
                    b"X-Forwarded-Proto: https",
                    format!("X-Forwarded-For: {client}").as_bytes(),
                    &authorization(value),
                ],
            )
        }
    };
    let attacker = via_proxy("203.0.113.9");
    spend_the_budget(&server, proxy, attacker).await;
    let refused = server.exchange_from(proxy, &attacker(&bearer(&read))).await;
    assert_eq!(refused[0].status, 429, "{:?}", refused[0]);
    retry_after(&refused[0]);
    let client = via_proxy("198.51.100.7");
    let served = server.exchange_from(proxy, &client(&bearer(&read))).await;
    assert_eq!(served[0].status, 200, "{:?}", served[0]);
    // Without the proxy's word the request is not HTTPS: 403, not 429.
    let plain = server
        .exchange_from(proxy, &invoices_with(bearer(&read)))
        .await;
    assert_eq!(plain[0].status, 403, "{:?}", plain[0]);
}
