//! What the endpoint targets share: the in-memory fixture (a registered
//! client, live refresh and access tokens, a personal access token, an
//! authorization code, and dead tokens of each sort), the request envelope
//! decoded from the first bytes of an input, and the checks every answer
//! of an OAuth endpoint must pass.
//!
//! The fixture's tokens are fixed strings (a known random part and its
//! checksum), so the seed corpora can carry them: `pr_rt_FuzzRefreshA…`,
//! `pr_cl_FuzzClientA…` and so on (see `fixture_tokens`). An input that
//! changes the fixture (exchanges the refresh token or the code, revokes a
//! token, replays a spent one) is followed by a fresh fixture, so every
//! input starts from the same state and the store stays bounded.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tower_token_auth::manager::{IssuePolicy, TokenManager};
use tower_token_auth::oauth::CodeExchange;
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{Family, FamilyId, TokenDigest, TokenId, TokenKind, TokenRecord};
use tower_token_auth::{MemoryStore, PayRequestScopes, ScopeSet};

pub use futures_executor::block_on;

pub type S = PayRequestScopes;
pub type Store = MemoryStore<S>;
pub type Manager = TokenManager<Store>;

/// The fixture client's redirect URIs: a loopback IP literal with a port
/// (any port matches, RFC 8252 §7.3), an https URI with a query, an IPv6
/// loopback literal without a port.
pub const REDIRECTS: [&str; 3] = [
    "http://127.0.0.1:8123/cb",
    "https://app.example/cb?x=1",
    "http://[::1]/native",
];
pub const CLIENT_NAME: &str = "Fuzz Agent";
pub const OWNER: &str = "user-1";
/// The resource the fixture's grants and code are for.
pub const RESOURCE: &str = "https://api.example/";
pub const OTHER_RESOURCE: &str = "https://other.example/";
/// RFC 7636 appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const ISSUER: &str = "https://auth.example";
pub const INTROSPECTION_USER: &str = "gateway";
pub const INTROSPECTION_PASSWORD: &str = "s3cret";
/// The form endpoints' body limit (and one past it for the oversize case).
pub const MAX_FORM_BODY: usize = 8 * 1024;
pub const MAX_JSON_BODY: usize = 16 * 1024;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `pr_<tag>_<random>` with its base62 CRC-32 checksum (the format of
/// `TokenFormat::default()`).
pub fn make_token(kind: TokenKind, random: &str) -> String {
    assert_eq!(random.len(), 30, "{random}");
    let mut token = format!("pr_{}_{random}", kind.tag());
    let mut crc = crc32fast_free(token.as_bytes());
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    token.push_str(std::str::from_utf8(&digits).expect("ASCII"));
    token
}

/// CRC-32 (IEEE, as zlib), bit by bit.
fn crc32fast_free(bytes: &[u8]) -> u32 {
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

/// The fixture's token strings.
pub struct Tokens {
    /// The registered client.
    pub client_id: String,
    /// A live refresh token of a grant of the client (`billing.read
    /// customers.read`, audience `RESOURCE` and `OTHER_RESOURCE`).
    pub refresh: String,
    /// The live access token of that grant.
    pub access: String,
    /// A live refresh token of a grant of no client (`billing.agent`).
    pub refresh_no_client: String,
    /// A spent refresh token of that grant: presenting it revokes the grant.
    pub refresh_spent: String,
    /// A live personal access token.
    pub pat: String,
    /// A revoked personal access token.
    pub pat_revoked: String,
    /// An expired access token.
    pub access_expired: String,
    /// A live authorization code of the client for `REDIRECTS[0]` and
    /// `CHALLENGE`, for `RESOURCE`.
    pub code: String,
    /// A well-formed refresh token the store does not hold.
    pub refresh_unknown: String,
}

pub static TOKENS: LazyLock<Tokens> = LazyLock::new(|| Tokens {
    client_id: make_token(TokenKind::Client, "FuzzClientA0000000000000000000"),
    refresh: make_token(TokenKind::Refresh, "FuzzRefreshA000000000000000000"),
    access: make_token(TokenKind::Access, "FuzzAccessA0000000000000000000"),
    refresh_no_client: make_token(TokenKind::Refresh, "FuzzRefreshB000000000000000000"),
    refresh_spent: make_token(TokenKind::Refresh, "FuzzSpentB00000000000000000000"),
    pat: make_token(TokenKind::PersonalAccess, "FuzzPersonalA00000000000000000"),
    pat_revoked: make_token(TokenKind::PersonalAccess, "FuzzRevokedA000000000000000000"),
    access_expired: make_token(TokenKind::Access, "FuzzExpiredA000000000000000000"),
    code: make_token(
        TokenKind::AuthorizationCode,
        "FuzzCodeA000000000000000000000",
    ),
    refresh_unknown: make_token(TokenKind::Refresh, "FuzzUnknownA000000000000000000"),
});

/// The stored digest of an authorization code, as the core computes it
/// (`oauth::grant::code_digest`, private): checked at startup by
/// exchanging the fixture's code on a scratch fixture.
fn code_digest(code: &str, client_id: &str, redirect_uri: &str, challenge: &str) -> TokenDigest {
    let mut hash = Sha256::new();
    hash.update(b"tower-token-auth authorization code v1\0");
    for part in [code, client_id, redirect_uri, challenge] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    TokenDigest::from_bytes(hash.finalize().into())
}

/// The grant scopes of the fixture client's refresh token and code.
pub fn grant_scopes() -> S {
    S::BILLING_READ | S::CUSTOMERS_READ
}

fn records(now: SystemTime) -> Vec<TokenRecord<S>> {
    let t = &*TOKENS;
    let day = Duration::from_secs(86_400);
    let later = now + day;
    let mut id = 0x00f0_0000_0000_0000u64;
    let mut record = |secret: &str, kind: TokenKind, scopes: S| {
        id += 1;
        TokenRecord::new(
            TokenId::from_u64(id),
            TokenDigest::of(secret),
            kind,
            scopes,
            now,
            later,
        )
        .with_owner(OWNER)
        .with_name(CLIENT_NAME)
    };
    let family = |n: u64| {
        Some(Family {
            id: FamilyId::from_u64(0x00fa_0000_0000_0000 + n),
            started_at: now,
        })
    };
    let audience = vec![RESOURCE.to_owned(), OTHER_RESOURCE.to_owned()];

    let mut client = record(&t.client_id, TokenKind::Client, S::all())
        .with_owner("oauth-client-registrations:198.51.100.250");
    client.audience = REDIRECTS.iter().map(|s| (*s).to_owned()).collect();

    let mut refresh =
        record(&t.refresh, TokenKind::Refresh, grant_scopes()).with_client_id(Some(&t.client_id));
    refresh.family = family(1);
    refresh.audience = audience.clone();
    let mut access =
        record(&t.access, TokenKind::Access, grant_scopes()).with_client_id(Some(&t.client_id));
    access.family = family(1);
    access.audience = audience;

    let mut refresh_b = record(&t.refresh_no_client, TokenKind::Refresh, S::BILLING_AGENT)
        .with_name("MCP Billing Agent");
    refresh_b.family = family(2);
    let mut spent_b = record(&t.refresh_spent, TokenKind::Refresh, S::BILLING_AGENT)
        .with_name("MCP Billing Agent");
    spent_b.family = family(2);
    spent_b.spent_at = Some(now);

    let mut pat = record(&t.pat, TokenKind::PersonalAccess, S::BILLING_READ).with_name("CI");
    pat.audience = vec![RESOURCE.to_owned()];
    let mut pat_revoked =
        record(&t.pat_revoked, TokenKind::PersonalAccess, S::BILLING_READ).with_name("old");
    pat_revoked.revoked_at = Some(now);
    let mut expired = record(&t.access_expired, TokenKind::Access, S::BILLING_READ);
    expired.created_at = now - Duration::from_secs(3600);
    expired.expires_at = now - Duration::from_secs(1);

    let mut code = record(&t.code, TokenKind::AuthorizationCode, grant_scopes())
        .with_client_id(Some(&t.client_id));
    code.digest = code_digest(&t.code, &t.client_id, REDIRECTS[0], CHALLENGE);
    code.family = family(3);
    code.audience = vec![RESOURCE.to_owned()];

    vec![
        client,
        refresh,
        access,
        refresh_b,
        spent_b,
        pat,
        pat_revoked,
        expired,
        code,
    ]
}

/// A manager over a fresh store holding the fixture, and the records as
/// they were stored.
fn build(policy: IssuePolicy) -> (Manager, Vec<TokenRecord<S>>) {
    let tokens = TokenManager::with_policy(Store::default(), policy);
    let records = records(tokens.policy().now());
    block_on(tokens.backend().insert(&records)).expect("the memory store takes the fixture");
    (tokens, records)
}

/// The fixture of a process: rebuilt when an input changed it, when it is
/// an hour old (its tokens live a day), or when inputs added
/// `MAX_ADDITIONS` records to it.
struct Fixture {
    tokens: Manager,
    originals: Vec<TokenRecord<S>>,
    built: Instant,
    additions: usize,
}

const MAX_ADDITIONS: usize = 4096;

impl Fixture {
    fn new() -> Self {
        let (tokens, originals) = build(IssuePolicy::default());
        Self {
            tokens,
            originals,
            built: Instant::now(),
            additions: 0,
        }
    }

    fn is_pristine(&self) -> bool {
        self.additions < MAX_ADDITIONS
            && self.built.elapsed() < Duration::from_secs(3600)
            && self.originals.iter().all(|original| {
                block_on(self.tokens.backend().get(original.id))
                    .expect("memory store")
                    .is_some_and(|stored| *stored == *original)
            })
    }
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

/// Checks once per process that the fixture works as the core expects: the
/// code digest matches the core's (the code is exchanged), the refresh
/// token rotates, and the client is found.
fn self_check() {
    let t = &*TOKENS;
    let (tokens, _) = build(IssuePolicy::default());
    let format = tokens.policy().get_format().clone();
    for (token, kind) in [
        (&t.client_id, TokenKind::Client),
        (&t.refresh, TokenKind::Refresh),
        (&t.access, TokenKind::Access),
        (&t.code, TokenKind::AuthorizationCode),
        (&t.pat, TokenKind::PersonalAccess),
        (&t.refresh_unknown, TokenKind::Refresh),
    ] {
        assert_eq!(format.check(token), Ok(kind), "{token}");
    }
    let client = block_on(tokens.client(&t.client_id))
        .expect("memory store")
        .expect("the fixture client is registered");
    assert!(client.accepts_redirect_uri(REDIRECTS[1]));
    block_on(tokens.exchange_code(&CodeExchange::new(
        &t.code,
        &t.client_id,
        REDIRECTS[0],
        VERIFIER,
    )))
    .expect("the fixture code is exchanged: has the core's code digest changed?");
    block_on(tokens.refresh_by(&TokenDigest::of(&t.refresh), Some(&t.client_id), None, &[]))
        .expect("the fixture refresh token rotates");
}

/// The manager of the fixture, pristine.
pub fn manager() -> Manager {
    let mut fixture = FIXTURE.lock().expect("no earlier panic");
    match &*fixture {
        Some(f) if f.is_pristine() => {}
        Some(_) => *fixture = Some(Fixture::new()),
        None => {
            self_check();
            let f = Fixture::new();
            assert!(f.is_pristine(), "a new fixture is pristine");
            *fixture = Some(f);
        }
    }
    fixture.as_ref().expect("built").tokens.clone()
}

/// Records that an input added `n` records to the fixture without
/// changing one of its own (an authorization code issued by `approve`).
pub fn note_additions(n: usize) {
    if let Some(f) = FIXTURE.lock().expect("no earlier panic").as_mut() {
        f.additions += n;
    }
}

/// A request body of the given frames.
pub struct Frames(VecDeque<Bytes>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the first two bytes of an input say about the request, and the
/// rest: the body.
///
/// Byte 0: bits 0-2 the method (0-5 `POST`, 6 `GET`, 7 `PUT`), bits 3-5
/// the `Content-Type` (an index into the target's table of eight), bits
/// 6-7 the framing (0-1 one frame, 2 two frames, 3 the body padded past
/// the endpoint's limit). Byte 1: the target's own choice (credentials,
/// source address).
pub struct Envelope<'a> {
    pub method: Method,
    pub content_type: Option<&'static str>,
    pub framing: u8,
    pub arg: u8,
    pub body: &'a [u8],
}

impl<'a> Envelope<'a> {
    pub fn parse(data: &'a [u8], content_types: &[Option<&'static str>; 8]) -> Self {
        let control = data.first().copied().unwrap_or(0);
        let arg = data.get(1).copied().unwrap_or(0);
        let method = match control & 7 {
            0..=5 => Method::POST,
            6 => Method::GET,
            _ => Method::PUT,
        };
        Self {
            method,
            content_type: content_types[usize::from((control >> 3) & 7)],
            framing: control >> 6,
            arg,
            body: data.get(2..).unwrap_or_default(),
        }
    }

    /// The body as it is sent: framed, or padded past `limit`.
    pub fn frames(&self, body: &[u8], limit: usize) -> Frames {
        let frames = match self.framing {
            0 | 1 => vec![Bytes::copy_from_slice(body)],
            2 => {
                let (a, b) = body.split_at(body.len() / 2);
                vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]
            }
            _ => {
                let mut padded = body.to_vec();
                padded.extend_from_slice(b"&pad=");
                padded.resize(limit + 1, b'x');
                vec![Bytes::from(padded)]
            }
        };
        Frames(frames.into())
    }

    pub fn request(&self, uri: &str, body: &[u8], limit: usize) -> Request<Frames> {
        let mut request = Request::builder().method(self.method.clone()).uri(uri);
        if let Some(content_type) = self.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request
            .body(self.frames(body, limit))
            .expect("a valid request")
    }
}

/// The content types of the form endpoints, by the envelope's index.
pub const FORM_TYPES: [Option<&str>; 8] = [
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    Some(" Application/X-WWW-Form-URLencoded ;x=y"),
    None,
    Some("application/json"),
];

/// Whether the content type is one the form endpoints take.
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// An endpoint's answer, read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body, when the answer says it is JSON.
    pub json: Option<Value>,
}

impl Answer {
    /// The RFC 6749 §5.2 `error` code.
    pub fn error(&self) -> Option<&str> {
        self.json.as_ref()?.get("error")?.as_str()
    }

    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Reads an answer and checks what every answer of the OAuth endpoints
/// must be: not a 5xx (no input a client sends turns into one, and the
/// memory store is never unavailable), `Cache-Control: no-store`, and
/// when it says it is JSON, a JSON object with `X-Content-Type-Options:
/// nosniff`; an error answer names its `error` and `error_description`
/// as strings.
pub fn answer(response: Response<Full<Bytes>>, what: &dyn std::fmt::Debug) -> Answer {
    let (parts, body) = response.into_parts();
    let body = block_on(body.collect())
        .unwrap_or_else(|e: Infallible| match e {})
        .to_bytes();
    assert!(
        !parts.status.is_server_error(),
        "{} for {what:?}: {}",
        parts.status,
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        parts.headers.get(CACHE_CONTROL),
        Some(&HeaderValue::from_static("no-store")),
        "{} for {what:?}",
        parts.status
    );
    let json = match parts.headers.get(CONTENT_TYPE) {
        Some(c) if c == "application/json" => {
            assert_eq!(
                parts.headers.get(X_CONTENT_TYPE_OPTIONS),
                Some(&HeaderValue::from_static("nosniff")),
                "{} for {what:?}",
                parts.status
            );
            let value: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
            assert!(value.is_object(), "{value}");
            Some(value)
        }
        Some(other) => panic!("content type {other:?}"),
        None => None,
    };
    trace(format_args!(
        "{} {}",
        parts.status,
        String::from_utf8_lossy(&body[..body.len().min(160)])
    ));
    let answer = Answer {
        status: parts.status,
        headers: parts.headers,
        body,
        json,
    };
    if answer.status.is_client_error() {
        let json = answer
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("{} without a JSON body", answer.status));
        assert!(json["error"].is_string(), "{json}");
        assert!(json["error_description"].is_string(), "{json}");
    }
    answer
}

/// Whether `FUZZ_TRACE` is set: then each target prints what it saw, to
/// check which branches the seeds reach (`cargo fuzz run <target>
/// corpus/<target> -- -runs=0`).
pub static TRACE: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_TRACE").is_some());

/// Prints `what` when `FUZZ_TRACE` is set.
pub fn trace(what: std::fmt::Arguments<'_>) {
    if *TRACE {
        eprintln!("{what}");
    }
}

/// Parses a scope string of an answer.
pub fn scopes_of(value: &Value) -> S {
    let text = value.as_str().unwrap_or_else(|| panic!("scope {value}"));
    S::parse_scope(text).unwrap_or_else(|e| panic!("scope {text:?}: {e}"))
}
