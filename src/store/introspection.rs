//! A lookup that asks a remote RFC 7662 introspection endpoint, for a
//! service that holds no tokens itself.
//!
//! [`IntrospectionStore`] is a [`TokenStore`]: give it to the
//! [`TokenAuthLayer`](crate::TokenAuthLayer) and the same middleware
//! protects a service in front of this crate's own
//! [`IntrospectionEndpoint`](crate::oauth::IntrospectionEndpoint) or of
//! another authorization server's (Ory Hydra, Keycloak) with opaque tokens.
//! Put it behind a [`CachedStore`] ([`IntrospectionStore::cached`] does,
//! with short lifetimes) so that not every request asks the remote server.
//!
//! - A positive answer becomes a record that expires at the answer's `exp`;
//!   cached, it lives at most until then and at most the cache's TTL, from
//!   the moment it was fetched: using a token never extends its entry.
//! - `{"active": false}` is "no such token": 401 `invalid_token`, cached
//!   for the cache's negative TTL.
//! - A remote failure (connection refused, a timeout, any status but 200,
//!   a body that is not an introspection answer) is
//!   [`StoreError::Unavailable`]: the middleware answers 503, never 401.
//! - The remote `scope` string maps onto the application's scope set:
//!   names the set does not define are dropped (a token never gains a scope
//!   it was not given; it may lack one the remote server knows).
//! - `aud` (a string or an array) becomes the record's audience, checked by
//!   the layer like a local token's.
//! - An active answer that names a refresh token becomes a
//!   [`TokenKind::Refresh`] record, which the layer refuses (401
//!   `invalid_token`): a refresh token is exchanged at the token endpoint,
//!   never presented to an API. The answer names one when `token_type`
//!   (RFC 7662 §2.2), `typ` (Keycloak) or `token_use` (Ory Hydra) is
//!   `refresh_token`, `Refresh` or the RFC 8693 URI
//!   `urn:ietf:params:oauth:token-type:refresh_token`, compared without
//!   regard to case. Any other active answer is an access token.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_token_auth::store::IntrospectionStore;
//! use tower_token_auth::{PayRequestScopes, TokenAuthLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = IntrospectionStore::<PayRequestScopes>::new(
//!     "https://auth.example.com/oauth/introspect",
//!     "billing-api",
//!     "s3cret",
//! )?
//! .timeout(Duration::from_secs(2))
//! .cached(); // positive answers ≤ 5 s, negative ≤ 1 s
//! // Opaque tokens of another issuer: no offline format check.
//! let layer = TokenAuthLayer::over(store, None);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{CachedStore, FindResult, TokenStore};
use crate::error::StoreError;
use crate::scope::ScopeSet;
use crate::token::{Clock, Lookup, SystemClock, TokenDigest, TokenId, TokenKind, TokenRecord};

/// How long a remote answer may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long [`IntrospectionStore::cached`] keeps a positive answer.
pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(5);

/// How long [`IntrospectionStore::cached`] keeps a negative answer.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// The largest answer read from the remote server.
const MAX_ANSWER: usize = 64 * 1024;

/// Why an [`IntrospectionStore`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectionConfigError {
    /// The endpoint is not an absolute `http` or `https` URL.
    #[error("the introspection endpoint must be an absolute http(s) URL")]
    InvalidUrl,
    /// The credentials cannot be sent in a header.
    #[error("the introspection credentials cannot be sent in an HTTP header")]
    InvalidCredentials,
}

/// A [`TokenStore`] that asks a remote RFC 7662 endpoint. See the
/// [module docs](self).
pub struct IntrospectionStore<S> {
    inner: Arc<Inner>,
    _scopes: PhantomData<fn() -> S>,
}

struct Inner {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: Uri,
    authorization: HeaderValue,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl<S> Clone for IntrospectionStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _scopes: PhantomData,
        }
    }
}

impl<S> fmt::Debug for IntrospectionStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionStore")
            .field("endpoint", &self.inner.endpoint)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl<S: ScopeSet> IntrospectionStore<S> {
    /// A lookup that asks `endpoint`, authenticating with HTTP Basic as
    /// `username` and `password`. Give the layer over it the format of the
    /// remote server's tokens ([`TokenAuthLayer::over`](crate::TokenAuthLayer::over)):
    /// `None` for opaque tokens of another issuer, `Some(format)` when the
    /// remote server is this crate's and garbage should be refused without
    /// a remote call.
    pub fn new(
        endpoint: &str,
        username: &str,
        password: &str,
    ) -> Result<Self, IntrospectionConfigError> {
        let endpoint: Uri = endpoint
            .parse()
            .map_err(|_| IntrospectionConfigError::InvalidUrl)?;
        if !matches!(endpoint.scheme_str(), Some("http" | "https")) || endpoint.host().is_none() {
            return Err(IntrospectionConfigError::InvalidUrl);
        }
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| IntrospectionConfigError::InvalidCredentials)?;
        authorization.set_sensitive(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                endpoint,
                authorization,
                timeout: DEFAULT_TIMEOUT,
                clock: Arc::new(SystemClock),
            }),
            _scopes: PhantomData,
        })
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                client: shared.client.clone(),
                endpoint: shared.endpoint.clone(),
                authorization: shared.authorization.clone(),
                timeout: shared.timeout,
                clock: Arc::clone(&shared.clock),
            },
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
            _scopes: PhantomData,
        }
    }

    /// How long a remote answer may take (default [`DEFAULT_TIMEOUT`]);
    /// after that the request is answered 503.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with(|inner| inner.timeout = timeout)
    }

    /// The clock records are dated by (default the system clock).
    #[must_use]
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.with(|inner| inner.clock = clock)
    }

    /// This lookup behind a [`CachedStore`] with the recommended short
    /// lifetimes: positive answers at most [`DEFAULT_POSITIVE_TTL`] (and
    /// never past `exp`), negative ones [`DEFAULT_NEGATIVE_TTL`].
    pub fn cached(self) -> CachedStore<Self> {
        let clock = Arc::clone(&self.inner.clock);
        CachedStore::builder(self)
            .clock(clock)
            .ttl(DEFAULT_POSITIVE_TTL)
            .negative_ttl(DEFAULT_NEGATIVE_TTL)
            .build()
    }

    async fn ask(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<Arc<TokenRecord<S>>>, StoreError> {
        let inner = &self.inner;
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let mut request = Request::post(inner.endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, inner.authorization.clone());
        let exchange = async {
            let response = inner
                .client
                .request(request)
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            if response.status() != StatusCode::OK {
                return Err(StoreError::Unavailable(
                    format!("the introspection endpoint answered {}", response.status()).into(),
                ));
            }
            Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(StoreError::Unavailable)
        };
        let answer = tokio::time::timeout(inner.timeout, exchange)
            .await
            .map_err(|_| {
                StoreError::Unavailable("the introspection endpoint timed out".into())
            })??;
        parse_answer(&answer, digest, inner.clock.now()).map(|r| r.map(Arc::new))
    }
}

/// The record an introspection answer describes, or `None` for an inactive
/// token.
fn parse_answer<S: ScopeSet>(
    answer: &[u8],
    digest: &TokenDigest,
    now: SystemTime,
) -> Result<Option<TokenRecord<S>>, StoreError> {
    let malformed = || StoreError::Unavailable("the introspection answer is malformed".into());
    let json: serde_json::Value = serde_json::from_slice(answer).map_err(|_| malformed())?;
    match json.get("active") {
        Some(serde_json::Value::Bool(true)) => {}
        Some(serde_json::Value::Bool(false)) => return Ok(None),
        _ => return Err(malformed()),
    }
    let time = |field: &str| {
        json.get(field)
            .and_then(serde_json::Value::as_u64)
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    };
    let text = |field: &str| json.get(field).and_then(serde_json::Value::as_str);
    let scopes = text("scope")
        .unwrap_or("")
        .split(' ')
        .filter_map(|name| S::parse_scope(name).ok())
        .fold(S::empty(), |all, s| all.union(s));
    let audience = match json.get("aud") {
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Array(many)) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let kind = if names_a_refresh_token(&json) {
        TokenKind::Refresh
    } else {
        TokenKind::Access
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest.as_bytes()[..8]);
    Ok(Some(TokenRecord {
        id: TokenId::from_u64(u64::from_le_bytes(id)),
        digest: *digest,
        name: text("client_id").unwrap_or("introspected token").into(),
        owner: text("sub").unwrap_or_default().into(),
        kind,
        scopes,
        created_at: time("iat").unwrap_or(now),
        // An answer without `exp` is valid now; the cache's TTL bounds it.
        expires_at: time("exp").unwrap_or(now + DEFAULT_POSITIVE_TTL),
        revoked_at: None,
        hint: Default::default(),
        family: None,
        spent_at: None,
        last_used_at: None,
        audience,
        client_id: text("client_id").map(Into::into),
    }))
}

/// Whether an answer says its token is a refresh token, in any of the
/// spellings of the [module docs](self).
fn names_a_refresh_token(json: &serde_json::Value) -> bool {
    const REFRESH: [&str; 3] = [
        "refresh_token",
        "refresh",
        "urn:ietf:params:oauth:token-type:refresh_token",
    ];
    ["token_type", "typ", "token_use"]
        .into_iter()
        .filter_map(|field| json.get(field).and_then(serde_json::Value::as_str))
        .any(|named| REFRESH.iter().any(|r| named.eq_ignore_ascii_case(r)))
}

#[async_trait]
impl<S: ScopeSet> TokenStore for IntrospectionStore<S> {
    type Scopes = S;

    /// Asks the remote server about the presented token. A lookup by
    /// digest alone is unanswerable (the remote server needs the token) and
    /// fails: the middleware always presents the token.
    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        match key.token() {
            Some(token) => self.ask(token, &key.digest()).await,
            None => Err(StoreError::Misconfigured(
                "an introspection lookup needs the presented token, not only its digest".into(),
            )),
        }
    }

    /// Never: every answer is the remote server's (a [`CachedStore`] in
    /// front answers hits at once).
    fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<S>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;

    fn parse(json: &str) -> Result<Option<TokenRecord<S>>, StoreError> {
        parse_answer(json.as_bytes(), &TokenDigest::of("t"), UNIX_EPOCH)
    }

    #[test]
    fn rfc_7662_2_2_answers_become_records_or_nothing() {
        let record = parse(
            r#"{"active":true,"scope":"billing.read products.fly","exp":2000000000,
                "iat":1700000000,"sub":"user-1","aud":["https://api.example.com/"]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(record.scopes, S::BILLING_READ, "unknown names are dropped");
        assert_eq!(record.owner, "user-1");
        assert_eq!(
            record.expires_at,
            UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
        assert_eq!(record.audience, ["https://api.example.com/"]);
        assert_eq!(record.kind, TokenKind::Access);
        assert!(parse(r#"{"active":false}"#).unwrap().is_none());
        for broken in [
            r#"{"scope":"billing.read"}"#,
            "not json",
            r#"{"active":"yes"}"#,
        ] {
            assert!(
                matches!(parse(broken), Err(StoreError::Unavailable(_))),
                "{broken}: a broken answer is the remote failing, never a 401"
            );
        }
    }

    #[test]
    fn rfc_7662_2_2_an_active_refresh_token_is_no_api_credential() {
        for refresh in [
            r#"{"active":true,"token_type":"refresh_token"}"#,
            r#"{"active":true,"token_type":"Refresh_Token"}"#,
            r#"{"active":true,"token_type":"urn:ietf:params:oauth:token-type:refresh_token"}"#,
            r#"{"active":true,"token_type":"Bearer","typ":"Refresh"}"#,
            r#"{"active":true,"token_type":"bearer","token_use":"refresh_token"}"#,
        ] {
            let record = parse(refresh).unwrap().unwrap();
            assert_eq!(record.kind, TokenKind::Refresh, "{refresh}");
        }
        for access in [
            r#"{"active":true}"#,
            r#"{"active":true,"token_type":"Bearer","typ":"Bearer"}"#,
            r#"{"active":true,"token_type":"access_token","token_use":"access_token"}"#,
            r#"{"active":true,"token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
        ] {
            let record = parse(access).unwrap().unwrap();
            assert_eq!(record.kind, TokenKind::Access, "{access}");
        }
    }

    /// A local introspection endpoint that answers every request with
    /// `status` and `body`; its URL.
    async fn remote(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let answer = hyper::service::service_fn(move |_request| async move {
                    let mut response =
                        http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Ok::<_, std::convert::Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), answer),
                );
            }
        });
        format!("http://{address}/oauth/introspect")
    }

    /// A local endpoint that accepts connections and never answers.
    async fn silent_remote() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap());
            }
        });
        format!("http://{address}/oauth/introspect")
    }

    fn store(url: &str) -> IntrospectionStore<S> {
        IntrospectionStore::new(url, "billing-api", "s3cret")
            .unwrap()
            .timeout(Duration::from_millis(200))
    }

    /// The store's answer for a token, and the status the layer gives a
    /// request presenting it; bounded, so that a missing timeout fails
    /// the test instead of hanging it.
    async fn lookup(
        store: IntrospectionStore<S>,
    ) -> (Result<Option<Arc<TokenRecord<S>>>, StoreError>, StatusCode) {
        use tower::ServiceExt as _;
        use tower_layer::Layer as _;
        let token = "opaque-token-of-another-issuer";
        let bounded = async {
            let found = store.find(Lookup::of_token(token)).await;
            let service = crate::TokenAuthLayer::over(store, None).layer(tower::service_fn(
                |_request: Request<Full<Bytes>>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
                },
            ));
            let request = Request::get("/v1/me")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::default())
                .unwrap();
            let status = service.oneshot(request).await.unwrap().status();
            (found, status)
        };
        tokio::time::timeout(Duration::from_secs(5), bounded)
            .await
            .expect("the lookup ended within its timeout")
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_times_out_as_unavailable() {
        let (found, status) = lookup(store(&silent_remote().await)).await;
        assert!(
            matches!(found, Err(StoreError::Unavailable(_))),
            "{found:?}"
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn rfc_7662_2_3_an_endpoint_that_fails_is_unavailable_not_an_unknown_token() {
        let (found, status) = lookup(store(&remote(500, r#"{"active":false}"#).await)).await;
        assert!(
            matches!(found, Err(StoreError::Unavailable(_))),
            "{found:?}"
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    /// RFC 7662 §2.3: a 401 refuses the protected resource's own
    /// credentials; it says nothing of the token (an inactive token is a
    /// 200 with `"active": false`, §2.2).
    #[tokio::test]
    async fn rfc_7662_2_3_a_401_for_our_credentials_is_unavailable_not_an_unknown_token() {
        let refused = r#"{"error":"invalid_client","active":false}"#;
        let (found, status) = lookup(store(&remote(401, refused).await)).await;
        assert!(
            matches!(found, Err(StoreError::Unavailable(_))),
            "{found:?}"
        );
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn rfc_7662_2_2_an_active_refresh_token_is_refused_by_the_layer() {
        let (found, status) = lookup(store(
            &remote(200, r#"{"active":true,"token_type":"refresh_token"}"#).await,
        ))
        .await;
        assert_eq!(found.unwrap().unwrap().kind, TokenKind::Refresh);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (found, status) = lookup(store(
            &remote(200, r#"{"active":true,"token_type":"Bearer"}"#).await,
        ))
        .await;
        assert_eq!(found.unwrap().unwrap().kind, TokenKind::Access);
        assert_eq!(
            status,
            StatusCode::OK,
            "the same answer for an access token"
        );
    }

    #[test]
    fn endpoints_must_be_absolute_http_urls() {
        for bad in ["/oauth/introspect", "ftp://x/introspect", "not a url"] {
            assert!(
                IntrospectionStore::<S>::new(bad, "u", "p").is_err(),
                "{bad}"
            );
        }
    }
}
