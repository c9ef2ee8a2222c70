//! Shared scaffolding of the behaviour tests: a clock-controlled store, an
//! inner service that records what it saw, stores that count or fail, a
//! parsed view of a rejection to assert RFC 6750 responses against, and the
//! log of the test binary.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::Service;
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssuePolicy, IssueRequest, IssuedToken, TokenManager};
use tower_token_auth::store::FindResult;
use tower_token_auth::store::TokenStore;
use tower_token_auth::token::TokenRecord;
use tower_token_auth::token::{Lookup, TokenFormat};
use tower_token_auth::token::{ManualClock, TokenDigest, TokenKind, TokenSecret};
use tower_token_auth::{
    AuthError, MemoryStore, PayRequestScopes, Principal, ScopeSet, TokenAuthLayer,
};

/// What the inner test service answers with.
pub const INNER_BODY: &str = "inner";

/// Where every test clock starts.
pub fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

// ---- store and layer ----

/// The manager the tests issue through: over a memory store.
pub type Tokens<S = PayRequestScopes> = TokenManager<MemoryStore<S>>;

/// A manager over a memory store, with a manual clock: the layer built over
/// it judges expiry by that clock.
pub struct Fixture<S = PayRequestScopes> {
    pub tokens: Tokens<S>,
    pub clock: Arc<ManualClock>,
}

impl Fixture<PayRequestScopes> {
    pub fn new() -> Self {
        Self::with_scopes()
    }
}

impl<S: ScopeSet> Fixture<S> {
    /// A fixture for any scope set.
    pub fn with_scopes() -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let tokens = TokenManager::with_policy(
            MemoryStore::default(),
            IssuePolicy::default().clock(clock.clone()),
        );
        Self { tokens, clock }
    }

    /// A required-authentication layer over the manager: its format, and
    /// expiry judged by the fixture's clock.
    pub fn layer(&self) -> TokenAuthLayer<Tokens<S>> {
        TokenAuthLayer::new(self.tokens.clone())
    }

    /// Issues a token of `kind` holding `scopes`.
    pub async fn issue(&self, kind: TokenKind, scopes: S) -> IssuedToken<S> {
        self.tokens
            .issue(IssueRequest::new(kind, "test token", "user-1").scopes(scopes))
            .await
            .expect("the memory store issues tokens")
    }

    /// Issues a personal access token holding `scopes`.
    pub async fn pat(&self, scopes: S) -> IssuedToken<S> {
        self.issue(TokenKind::PersonalAccess, scopes).await
    }
}

/// A layer over a lookup that is not a manager, for tokens of the default
/// format (`pr_…`), expiry by the system clock.
pub fn layer_over<St: TokenStore>(store: St) -> TokenAuthLayer<St> {
    TokenAuthLayer::over(store, Some(TokenFormat::default()))
}

/// A token minted by a manager of its own, and its record: for a lookup
/// that answers with a record no store of the test holds.
pub async fn minted<S: ScopeSet>(request: IssueRequest<S>) -> (TokenSecret, TokenRecord<S>) {
    let issued = TokenManager::new(MemoryStore::<S>::default())
        .issue(request)
        .await
        .expect("the memory store issues tokens");
    (issued.secret, TokenRecord::clone(&issued.record))
}

// ---- inner service ----

/// The service behind the layers: answers 200 `inner` and records the
/// principal (or its absence) of every request it is called with.
#[derive(Debug)]
pub struct Inner<S = PayRequestScopes> {
    seen: Arc<Mutex<Vec<Option<Principal<S>>>>>,
}

impl<S> Clone for Inner<S> {
    fn clone(&self) -> Self {
        Self {
            seen: Arc::clone(&self.seen),
        }
    }
}

impl<S> Default for Inner<S> {
    fn default() -> Self {
        Self {
            seen: Arc::default(),
        }
    }
}

impl<S: ScopeSet> Inner<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many requests reached the inner service.
    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The principal of each request that reached the inner service.
    pub fn seen(&self) -> Vec<Option<Principal<S>>> {
        self.seen.lock().unwrap().clone()
    }
}

impl<S: ScopeSet, B> Service<Request<B>> for Inner<S> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let principal = request.extensions().get::<Principal<S>>().cloned();
        self.seen.lock().unwrap().push(principal);
        ready(Ok(Response::new(Full::new(Bytes::from_static(
            INNER_BODY.as_bytes(),
        )))))
    }
}

// ---- stores ----

/// Counts lookups (`find` and `find_now` calls) and forwards them to
/// another store.
#[derive(Clone)]
pub struct CountingStore<St> {
    inner: St,
    finds: Arc<AtomicUsize>,
}

impl<St> CountingStore<St> {
    pub fn new(inner: St) -> Self {
        Self {
            inner,
            finds: Arc::default(),
        }
    }

    pub fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<St: TokenStore> TokenStore for CountingStore<St> {
    type Scopes = St::Scopes;

    async fn find(&self, key: Lookup<'_>) -> FindResult<Self::Scopes> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find(key).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<Self::Scopes>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find_now(digest)
    }
}

/// How [`FailingStore`] fails.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    Unavailable,
    Backend,
}

/// A store that cannot answer.
#[derive(Clone)]
pub struct FailingStore {
    failure: Failure,
    finds: Arc<AtomicUsize>,
}

impl FailingStore {
    pub fn new(failure: Failure) -> Self {
        Self {
            failure,
            finds: Arc::default(),
        }
    }

    pub fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenStore for FailingStore {
    type Scopes = PayRequestScopes;

    async fn find(&self, _key: Lookup<'_>) -> FindResult<PayRequestScopes> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        Err(match self.failure {
            Failure::Unavailable => StoreError::Unavailable("connection refused".into()),
            Failure::Backend => StoreError::Backend("relation does not exist".into()),
        })
    }

    /// A remote store: it always has to wait.
    fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<PayRequestScopes>> {
        None
    }
}

/// A store that answers every lookup with the same record, whatever the
/// digest asked for.
#[derive(Clone)]
pub struct FixedStore<S> {
    record: Arc<TokenRecord<S>>,
}

impl<S> FixedStore<S> {
    pub fn new(record: TokenRecord<S>) -> Self {
        Self {
            record: Arc::new(record),
        }
    }
}

#[async_trait]
impl<S: ScopeSet> TokenStore for FixedStore<S> {
    type Scopes = S;

    async fn find(&self, _key: Lookup<'_>) -> FindResult<S> {
        Ok(Some(Arc::clone(&self.record)))
    }

    fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<S>> {
        Some(Ok(Some(Arc::clone(&self.record))))
    }
}

// ---- requests ----

/// A request to `uri` with an empty body.
pub fn request(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

/// A request whose `Authorization` header is `value`.
pub fn with_authorization(value: HeaderValue) -> Request<Full<Bytes>> {
    let mut request = request("/v1/invoices");
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value);
    request
}

/// A request with `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> Request<Full<Bytes>> {
    with_authorization(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

// ---- responses ----

/// Collects a body into bytes.
pub async fn body_bytes<B>(body: B) -> Bytes
where
    B: Body,
    B::Error: Debug,
{
    body.collect().await.expect("body collects").to_bytes()
}

/// Everything a client (or an outer layer) sees of a rejection.
#[derive(Debug)]
pub struct Rejection {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    /// The raw body.
    pub raw: Bytes,
    /// The body as JSON.
    pub body: serde_json::Value,
    /// The typed error in the response extensions.
    pub error: Option<AuthError>,
}

impl Rejection {
    /// The body's field `name` as a string.
    pub fn field(&self, name: &str) -> &str {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("body field `{name}` is a string: {}", self.body))
    }

    /// Panics if `secret` appears anywhere in the response.
    pub fn assert_does_not_contain(&self, secret: &str) {
        let raw = String::from_utf8_lossy(&self.raw);
        assert!(!raw.contains(secret), "body leaks the token: {raw}");
        let header = self.www_authenticate.as_deref().unwrap_or_default();
        assert!(
            !header.contains(secret),
            "challenge leaks the token: {header}"
        );
    }
}

/// Reads a response as a rejection; panics when its body is not JSON.
pub async fn rejection<B>(response: Response<B>) -> Rejection
where
    B: Body,
    B::Error: Debug,
{
    let (parts, body) = response.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().expect("ASCII header").to_owned())
    };
    let raw = body_bytes(body).await;
    let json = serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "rejection body is JSON ({e}): {:?}",
            String::from_utf8_lossy(&raw)
        )
    });
    assert_eq!(
        parts.headers.get_all(WWW_AUTHENTICATE).iter().count(),
        usize::from(parts.headers.contains_key(WWW_AUTHENTICATE)),
        "one WWW-Authenticate header at most"
    );
    Rejection {
        status: parts.status,
        www_authenticate: header(WWW_AUTHENTICATE),
        cache_control: header(CACHE_CONTROL),
        content_type: header(CONTENT_TYPE),
        raw,
        body: json,
        error: parts.extensions.get::<AuthError>().cloned(),
    }
}

/// The auth-params of a `Bearer` challenge, in order, with quoted-string
/// escapes undone. Panics when the value is not `Bearer` followed by
/// `name="value"` pairs separated by `, `.
pub fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("challenge uses the Bearer scheme: {value}"));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "attribute name {name:?} in {value}"
        );
        assert_eq!(chars.next(), Some('"'), "{name} is quoted in {value}");
        let mut param = String::new();
        loop {
            match chars.next() {
                Some('\\') => param.push(chars.next().expect("escaped character")),
                Some('"') => break,
                Some(c) => param.push(c),
                None => panic!("unterminated quoted-string in {value}"),
            }
        }
        params.push((name, param));
        match chars.next() {
            None => break,
            Some(',') => assert_eq!(chars.next(), Some(' '), "`, ` between params: {value}"),
            Some(c) => panic!("unexpected {c:?} after a param in {value}"),
        }
    }
    params
}

/// What a rejection must look like.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub status: StatusCode,
    /// The exact `WWW-Authenticate` value, or `None` for no header.
    pub challenge: Option<&'a str>,
    /// The body's `error`.
    pub error: &'a str,
    /// The body's `error_description`.
    pub description: &'a str,
}

/// Asserts the RFC 6750 shape of a rejection: status, exact challenge with
/// each attribute once and consistent with the body, JSON body with
/// `error`, `error_description` and `solution`, `Cache-Control: no-store`,
/// and the typed error in the extensions.
pub fn assert_rejection(rejection: &Rejection, expected: Expected<'_>) {
    assert_eq!(
        rejection.status, expected.status,
        "status of {rejection:#?}"
    );
    assert_eq!(
        rejection.www_authenticate.as_deref(),
        expected.challenge,
        "WWW-Authenticate"
    );
    if let Some(challenge) = &rejection.www_authenticate {
        let params = challenge_params(challenge);
        for (i, (name, _)) in params.iter().enumerate() {
            assert!(
                params[i + 1..].iter().all(|(other, _)| other != name),
                "`{name}` appears once in {challenge}"
            );
        }
        assert_eq!(params[0].0, "realm", "realm comes first: {challenge}");
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        if rejection.field("error") == "missing_token" {
            assert_eq!(param("error"), None, "no error code without credentials");
            assert_eq!(param("error_description"), None);
        } else {
            assert_eq!(param("error"), Some(rejection.field("error")));
            assert_eq!(
                param("error_description"),
                Some(rejection.field("error_description"))
            );
        }
        if expected.status == StatusCode::FORBIDDEN {
            assert_eq!(
                param("scope"),
                rejection.body["scope"].as_str(),
                "the body names the same scope as the challenge"
            );
            assert!(param("scope").is_some(), "403 names the scope: {challenge}");
        } else {
            assert_eq!(param("scope"), None, "scope only on 403: {challenge}");
        }
    }
    assert_eq!(rejection.field("error"), expected.error, "body error");
    assert_eq!(
        rejection.field("error_description"),
        expected.description,
        "body error_description"
    );
    assert!(
        rejection.field("solution").len() > 10,
        "a solution hint: {}",
        rejection.body
    );
    assert_eq!(rejection.cache_control.as_deref(), Some("no-store"));
    assert_eq!(rejection.content_type.as_deref(), Some("application/json"));
    let error = rejection
        .error
        .as_ref()
        .expect("the typed AuthError rides in the response extensions");
    assert_eq!(error.status(), expected.status, "typed error status");
    assert_eq!(error.error_code(), expected.error, "typed error code");
    assert_eq!(error.description(), expected.description);
}

// ---- redaction ----

/// The strings that must never appear for a token: the plaintext, its
/// random part, and the hex of its digest (whole, and its first 8 bytes).
pub fn forbidden(secret: &TokenSecret) -> Vec<String> {
    let token = secret.expose_secret();
    let random = &token[token.rfind('_').unwrap() + 1..];
    let hex: String = secret
        .digest()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex.len(), 64);
    vec![
        token.to_owned(),
        random.to_owned(),
        random[..12].to_owned(),
        hex.clone(),
        hex[..16].to_owned(),
        hex.to_uppercase(),
    ]
}

pub fn assert_redacted(label: &str, text: &str, secrets: &[&TokenSecret]) {
    for secret in secrets {
        for needle in forbidden(secret) {
            assert!(!text.contains(&needle), "{label} shows {needle:?}:\n{text}");
        }
    }
}

// ---- the RFC 6750 rows of this crate, realm `api` ----

pub const MISSING: Expected<'static> = Expected {
    status: StatusCode::UNAUTHORIZED,
    challenge: Some(r#"Bearer realm="api""#),
    error: "missing_token",
    description: "No bearer token was sent.",
};

pub const REPEATED: Expected<'static> = Expected {
    status: StatusCode::BAD_REQUEST,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_request", error_description="The request carries more than one access token.""#,
    ),
    error: "invalid_request",
    description: "The request carries more than one access token.",
};

pub const IN_URL: Expected<'static> = Expected {
    status: StatusCode::BAD_REQUEST,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_request", error_description="Access tokens are not accepted in the URL.""#,
    ),
    error: "invalid_request",
    description: "Access tokens are not accepted in the URL.",
};

pub const MALFORMED: Expected<'static> = Expected {
    status: StatusCode::UNAUTHORIZED,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_token", error_description="The access token is malformed.""#,
    ),
    error: "invalid_token",
    description: "The access token is malformed.",
};

pub const INVALID: Expected<'static> = Expected {
    status: StatusCode::UNAUTHORIZED,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid or has been revoked.""#,
    ),
    error: "invalid_token",
    description: "The access token is invalid or has been revoked.",
};

pub const REFRESH: Expected<'static> = Expected {
    status: StatusCode::UNAUTHORIZED,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_token", error_description="A refresh token cannot be used as an API credential.""#,
    ),
    error: "invalid_token",
    description: "A refresh token cannot be used as an API credential.",
};

pub const EXPIRED: Expected<'static> = Expected {
    status: StatusCode::UNAUTHORIZED,
    challenge: Some(
        r#"Bearer realm="api", error="invalid_token", error_description="The access token expired.""#,
    ),
    error: "invalid_token",
    description: "The access token expired.",
};

pub const UNAVAILABLE: Expected<'static> = Expected {
    status: StatusCode::SERVICE_UNAVAILABLE,
    challenge: None,
    error: "temporarily_unavailable",
    description: "The token store is temporarily unavailable.",
};

/// The 403 of a route requiring `scope` (the exact challenge value).
pub fn insufficient_scope_challenge(scope: &str) -> String {
    format!(
        r#"Bearer realm="api", error="insufficient_scope", error_description="The access token does not have the scope this request requires.", scope="{scope}""#
    )
}

pub fn insufficient(challenge: &str) -> Expected<'_> {
    Expected {
        status: StatusCode::FORBIDDEN,
        challenge: Some(challenge),
        error: "insufficient_scope",
        description: "The access token does not have the scope this request requires.",
    }
}

// ---- the log ----

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far, by every test.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines logged inside the [`test_span`] named `test`: what that
    /// test logged, whatever ran next to it.
    pub fn of(&self, test: &str) -> String {
        let mark = format!("it{{test={test}}}");
        self.text()
            .lines()
            .filter(|line| line.contains(&mark))
            .fold(String::new(), |mut of, line| {
                of.push_str(line);
                of.push('\n');
                of
            })
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of this test binary: every event and span (with its fields) at
/// TRACE, of every test from the first call on.
///
/// The subscriber is the process-wide default, installed once: a
/// thread-local one (`set_default`) can miss events whose callsite another
/// test thread reached first, because `tracing` caches callsite interest
/// globally. A test picks out its own lines with [`Logs::of`].
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

/// The span a test runs its logging part in (with
/// `tracing::Instrument::instrument`): every line logged inside it names
/// `test`, and [`Logs::of`] finds it by that.
pub fn test_span(test: &'static str) -> tracing::Span {
    tracing::info_span!("it", test = %test)
}
