//! What the benchmarks share: the echo handler every configuration wraps,
//! stores filled with many tokens, requests, and where results are written.

// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::path::PathBuf;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Method, Request, Response};
use http_body_util::Full;
use tower::{Service, ServiceBuilder};
use tower_token_auth::auth::TokenAuth;
use tower_token_auth::scope::RequireScope;
use tower_token_auth::store::{IssuePolicy, IssueRequest};
use tower_token_auth::token::TokenKind;
use tower_token_auth::{MemoryStore, PayRequestScopes as S, TokenAuthLayer};

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

/// The full stack: `TokenAuthLayer` + `RequireScopeLayer(billing.write)`
/// over [`Echo`].
pub type AuthStack = TokenAuth<RequireScope<Echo, S>, MemoryStore<S>>;

/// Builds [`AuthStack`] over `store`.
pub fn auth_stack(store: MemoryStore<S>) -> AuthStack {
    let auth = TokenAuthLayer::new(store);
    ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(REQUIRED))
        .service(Echo)
}

/// How many tokens of a fixture hold only `billing.read` (for the
/// insufficient-scope rejection); the rest hold `billing.read
/// billing.write`.
pub const READERS: usize = 8;

/// A memory store holding `tokens` personal access tokens, and the
/// plaintexts of some of them.
pub struct Fixture {
    /// The store.
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

/// Fills a memory store with `tokens` tokens minted by the default
/// [`IssuePolicy`] (what `TokenManager::issue` does, without the audit
/// event) and keeps the plaintexts of `sample` of them.
pub fn fixture(tokens: usize, sample: usize) -> Fixture {
    assert!(tokens > READERS);
    let policy = IssuePolicy::default();
    let store = MemoryStore::with_policy(policy.clone());
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
        let (secret, record) = policy.mint(request).expect("minting a token");
        if i < READERS {
            readers.push(secret.expose_secret().to_owned());
        } else if (i - READERS) % every == 0 && writers.len() < sample {
            writers.push(secret.expose_secret().to_owned());
        }
        store.insert(record);
    }
    Fixture {
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
/// `scripts/bench-ratios.py` reads it, and returns the path.
pub fn write_result(name: &str, json: &str) -> PathBuf {
    let dir = target_dir().join("bench-results");
    std::fs::create_dir_all(&dir).expect("creating the results directory");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json).expect("writing the results");
    path
}

/// The 1-minute load average, to judge how busy the machine was.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
