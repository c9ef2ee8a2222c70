//! What the benchmarks share: the echo handler every configuration wraps,
//! stores filled with many tokens, requests, and where results are written.

// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tower::{Service, ServiceBuilder};
// Deprecated by tower-http as too basic for real applications; it is the
// stock single-token check users compare with, so it is measured.
#[allow(deprecated)]
use tower_http::auth::require_authorization::Bearer;
use tower_http::validate_request::{ValidateRequestHeader, ValidateRequestHeaderLayer};
use tower_token_auth::auth::TokenAuth;
use tower_token_auth::manager::{IssueRequest, TokenManager};
use tower_token_auth::require_scope::RequireScope;
use tower_token_auth::token::TokenRecord;
use tower_token_auth::token::{TokenDigest, TokenFormat, TokenKind};
use tower_token_auth::{MemoryStore, PayRequestScopes as S, TokenAuthLayer, TokenStore};

/// The request and response body of every benchmark.
pub type Body = Full<Bytes>;

/// The handler: answers 200 with the request's body. Every configuration
/// (no auth, this crate, tower-http, JWT) wraps this same service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service<Request<Body>> for Echo {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        ready(Ok(Response::new(request.into_body())))
    }
}

/// The scope the benchmarked route requires.
pub const REQUIRED: S = S::BILLING_WRITE;

/// The tokens of the benchmarks: a manager with the default policy over a
/// memory store. The stack is built over it, as a service builds it over
/// the manager that issues its tokens.
pub type Tokens = TokenManager<MemoryStore<S>>;

/// The full stack: `TokenAuthLayer` + `RequireScopeLayer(billing.write)`
/// over [`Echo`].
pub type AuthStack = TokenAuth<RequireScope<Echo, S>, Tokens>;

/// Builds [`AuthStack`] over `tokens`.
pub fn auth_stack(tokens: Tokens) -> AuthStack {
    let auth = TokenAuthLayer::new(tokens);
    ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(REQUIRED))
        .service(Echo)
}

/// [`AuthStack`] over `tokens` with both layers leaked
/// (`TokenAuthLayer::leak`): a clone of it writes no shared reference
/// count. Leaks the layers' state: call it once per benchmark run.
pub fn leaked_auth_stack(tokens: Tokens) -> AuthStack {
    let auth = TokenAuthLayer::new(tokens).leak();
    ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(REQUIRED).leak())
        .service(Echo)
}

/// How many tokens of a fixture hold only `billing.read` (for the
/// insufficient-scope rejection); the rest hold `billing.read
/// billing.write`.
pub const READERS: usize = 8;

/// A memory store holding `tokens` personal access tokens, the manager
/// they were issued through, and the plaintexts of some of them.
pub struct Fixture {
    /// The manager over [`store`](Self::store): what the stack goes over.
    pub tokens: Tokens,
    /// The store itself, for lookups without the stack.
    pub store: MemoryStore<S>,
    /// Plaintexts of up to `sample` tokens holding `billing.write`, spread
    /// evenly over the store.
    pub writers: Vec<String>,
    /// Plaintexts of the [`READERS`] tokens holding only `billing.read`.
    pub readers: Vec<String>,
}

/// A token's name: 20 characters, as in the memory target.
pub fn token_name(i: usize) -> String {
    format!("bench-token-{i:08}")
}

/// A token's owner: four tokens per user.
pub fn token_owner(i: usize) -> String {
    format!("user-{:06}", i / 4)
}

/// Fills a memory store with `tokens` tokens issued through a
/// [`TokenManager`] with the default policy, and keeps the plaintexts of
/// `sample` of them.
pub fn fixture(tokens: usize, sample: usize) -> Fixture {
    assert!(tokens > READERS);
    let store = MemoryStore::new();
    let manager = TokenManager::new(store.clone());
    let every = ((tokens - READERS) / sample.max(1)).max(1);
    let mut writers = Vec::with_capacity(sample);
    let mut readers = Vec::with_capacity(READERS);
    for i in 0..tokens {
        let scopes = if i < READERS {
            S::BILLING_READ
        } else {
            S::BILLING_READ | S::BILLING_WRITE
        };
        let request = IssueRequest::new(TokenKind::PersonalAccess, token_name(i), token_owner(i))
            .scopes(scopes);
        let issued = manager
            .issue(request)
            .now_or_never()
            .expect("the memory store never waits")
            .expect("issuing a token");
        if i < READERS {
            readers.push(issued.secret.expose_secret().to_owned());
        } else if (i - READERS) % every == 0 && writers.len() < sample {
            writers.push(issued.secret.expose_secret().to_owned());
        }
    }
    Fixture {
        tokens: manager,
        store,
        writers,
        readers,
    }
}

/// `POST /v1/invoices`, with `Authorization: Bearer <token>` when a token
/// is given.
pub fn request(token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::POST).uri("/v1/invoices");
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::default()).expect("a valid request")
}

/// `token` with its last character changed: the checksum no longer matches.
pub fn typo(token: &str) -> String {
    let mut typo = token.to_owned();
    let last = if typo.ends_with('0') { "1" } else { "0" };
    typo.replace_range(typo.len() - 1.., last);
    typo
}

/// `n` well-formed tokens that no store holds.
pub fn unknown_tokens(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let secret = TokenFormat::default()
                .generate(TokenKind::PersonalAccess)
                .expect("a token");
            secret.expose_secret().to_owned()
        })
        .collect()
}

/// tower-http's stock single-token check over [`Echo`].
#[allow(deprecated)]
pub fn tower_http_bearer(token: &str) -> ValidateRequestHeader<Echo, Bearer<Body>> {
    ServiceBuilder::new()
        .layer(ValidateRequestHeaderLayer::bearer(token))
        .service(Echo)
}

/// The claims of the JWT alternative.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    sub: String,
    exp: u64,
    scope: String,
}

/// A JWT HS256 bearer check as services write it with `jsonwebtoken`:
/// signature and `exp` validated, the `scope` claim read, the claims put
/// into the request for the handler.
#[derive(Clone)]
pub struct JwtAuth<Svc> {
    inner: Svc,
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    required: &'static str,
}

impl<Svc> Service<Request<Body>> for JwtAuth<Svc>
where
    Svc: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, Svc::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let claims = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| jsonwebtoken::decode::<Claims>(t, &self.key, &self.validation).ok());
        let status = match claims {
            Some(data) if data.claims.scope.split(' ').any(|s| s == self.required) => {
                request.extensions_mut().insert(data.claims);
                return Either::Right(self.inner.call(request));
            }
            Some(_) => StatusCode::FORBIDDEN,
            None => StatusCode::UNAUTHORIZED,
        };
        let mut response = Response::new(Body::default());
        *response.status_mut() = status;
        Either::Left(ready(Ok(response)))
    }
}

/// The JWT check over [`Echo`] requiring `billing.write`, and `n` tokens
/// it accepts (`billing.read billing.write`, valid for an hour).
pub fn jwt_hs256(n: usize) -> (JwtAuth<Echo>, Vec<String>) {
    let secret = b"a 256-bit secret for the HS256 benchmark";
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 3_600;
    let tokens = (0..n)
        .map(|i| {
            let claims = Claims {
                sub: token_owner(i),
                exp,
                scope: "billing.read billing.write".to_owned(),
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("a JWT")
        })
        .collect();
    let service = JwtAuth {
        inner: Echo,
        key: Arc::new(DecodingKey::from_secret(secret)),
        validation: Arc::new(Validation::new(Algorithm::HS256)),
        required: "billing.write",
    };
    (service, tokens)
}

/// The least a hashed-at-rest bearer check that hands the handler a
/// principal can do, written for the benchmark alone: no checksum, no
/// rejection bodies, no audit, no scope check. It reads the header, hashes
/// the token, looks the digest up in a plain `HashMap` (the digest's first
/// eight bytes as the hash), checks the expiry against the clock and puts
/// the record into the request extensions.
#[derive(Clone)]
pub struct MinimalAuth<Svc> {
    inner: Svc,
    tokens: Arc<DigestMap>,
}

/// Records by the bytes of their digest.
type DigestMap = HashMap<[u8; 32], Arc<TokenRecord<S>>, BuildHasherDefault<DigestHasher>>;

/// A hasher that takes a digest's first eight bytes as they are.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes its length first, then its bytes.
        if let Some(head) = bytes.get(..8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(head);
            self.0 = u64::from_le_bytes(word);
        }
    }
}

impl<Svc, ReqBody, ResBody> Service<Request<ReqBody>> for MinimalAuth<Svc>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = Svc::Error;
    type Future = Either<Ready<Result<Response<ResBody>, Svc::Error>>, Svc::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Svc::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let record = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .and_then(|token| {
                let digest = Sha256::digest(token);
                self.tokens.get(digest.as_slice()).cloned()
            })
            .filter(|record| SystemTime::now() < record.expires_at);
        match record {
            Some(record) => {
                request.extensions_mut().insert(record);
                Either::Right(self.inner.call(request))
            }
            None => {
                let mut response = Response::new(ResBody::default());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                Either::Left(ready(Ok(response)))
            }
        }
    }
}

impl<T> MinimalAuth<T> {
    /// The same check, over the same records, in front of `inner` (for a
    /// router's `route_layer`).
    pub fn wrap<Svc>(&self, inner: Svc) -> MinimalAuth<Svc> {
        MinimalAuth {
            inner,
            tokens: Arc::clone(&self.tokens),
        }
    }
}

/// [`MinimalAuth`] over [`Echo`], holding the records of `tokens` from
/// `store`.
pub fn minimal_auth(store: &MemoryStore<S>, tokens: &[String]) -> MinimalAuth<Echo> {
    let mut map = HashMap::default();
    for token in tokens {
        let digest = TokenDigest::of(token);
        let record = store
            .find(digest.into())
            .now_or_never()
            .expect("the memory store never waits")
            .expect("the memory store never fails")
            .expect("a stored token");
        map.insert(*digest.as_bytes(), record);
    }
    MinimalAuth {
        inner: Echo,
        tokens: Arc::new(map),
    }
}

/// Requests bearing each of `tokens` in turn, round and round.
pub fn cycle(tokens: &[String]) -> impl FnMut() -> Request<Body> + '_ {
    let mut next = 0;
    move || {
        let token = &tokens[next % tokens.len()];
        next += 1;
        request(Some(token))
    }
}

/// Whether the bench binary runs in criterion's test mode (`cargo bench --
/// --test`, as CI does): every benchmark once, small fixtures.
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

/// The Cargo target directory this bench binary was built in
/// (`<target>/release/deps/<bench>-<hash>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Writes `json` to `<target>/bench-results/<name>.json`, where
/// `scripts/bench-ratios.py` reads it, and says where. In test mode it
/// writes nothing, so that a CI-style run leaves the last real results.
pub fn write_result(name: &str, json: &str) {
    if test_mode() {
        println!("test mode: {name}.json not written");
        return;
    }
    let dir = target_dir().join("bench-results");
    std::fs::create_dir_all(&dir).expect("creating the results directory");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json).expect("writing the results");
    println!("written to {}", path.display());
}

/// The 1-minute load average, to judge how busy the machine was.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
