use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use tower_service::Service;

use crate::error::FailedAuthentication;
use crate::json::escape_into;
use crate::scope::ScopeSet;
use crate::error::{BoxError, StoreError};
use crate::manager::{GrantError, InvalidGrantReason, TokenManager, TokenPair};
use crate::oauth::CodeExchange;
use crate::store::TokenBackend;
use crate::token::{TokenDigest, TokenKind};

/// The largest form body the endpoints read.
const MAX_BODY: usize = 8 * 1024;

/// The token endpoint (RFC 6749 §3.2, §5.1, §5.2): the authorization code
/// grant with PKCE and the refresh grant.
///
/// `POST` with `grant_type=authorization_code`, `code`, `redirect_uri`,
/// `client_id` and `code_verifier` (RFC 7636), and optional `resource`
/// parameters, exchanges a code from the
/// [`AuthorizationEndpoint`](super::AuthorizationEndpoint) for an access
/// token and a refresh token of a new grant (see
/// [`TokenManager::exchange_code`]); a wrong verifier, a code of another
/// client or redirect URI, an expired or spent code are `invalid_grant`, and
/// a spent code presented again revokes the grant's tokens.
///
/// `POST` with `grant_type=refresh_token`, `refresh_token`, an optional
/// `scope` that keeps or narrows the scopes, and optional RFC 8707
/// `resource` parameters (repeatable) that narrow the new access token's
/// audience to resources the grant holds. Answers 200 with
/// `access_token`, `token_type` (`Bearer`), `expires_in`, `refresh_token`
/// and `scope`; errors are 400 with `invalid_request`,
/// `unsupported_grant_type`, `invalid_grant`, `invalid_scope` or
/// `invalid_target`, and 503
/// `temporarily_unavailable` when the store is down. A spent refresh token
/// presented again revokes its whole family (see
/// [`TokenManager::refresh`]). Tokens are checked against the manager's
/// format, and `expires_in` is computed with its clock.
pub struct TokenEndpoint<B> {
    tokens: TokenManager<B>,
}

/// The revocation endpoint (RFC 7009).
///
/// `POST` with `token` and an optional `token_type_hint`. Answers 200 for
/// any token, known or not (§2.2); a token of a grant takes its family with
/// it. A token that is not well-formed for the manager's token format
/// (prefix, kind, length, checksum) is answered 200 without a store call.
/// A token the store does not hold, or a malformed one, is marked
/// [`FailedAuthentication`] (the answer stays 200): a `ThrottleLayer` in
/// front counts it, as it counts a bad bearer token. Revoking a known
/// token, even one already revoked, is no failure.
/// 400 `invalid_request` without a `token`; 503 when the store is down.
pub struct RevocationEndpoint<B> {
    tokens: TokenManager<B>,
}

impl<B> Clone for TokenEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
        }
    }
}

impl<B> Clone for RevocationEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
        }
    }
}

impl<B> fmt::Debug for TokenEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint").finish_non_exhaustive()
    }
}

impl<B> fmt::Debug for RevocationEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationEndpoint").finish_non_exhaustive()
    }
}

impl<B: TokenBackend> TokenEndpoint<B> {
    /// A token endpoint over `tokens`.
    pub fn new(tokens: TokenManager<B>) -> Self {
        Self { tokens }
    }

    async fn handle<Rb>(self, request: Request<Rb>) -> Response<Full<Bytes>>
    where
        Rb: Body + Send + 'static,
        Rb::Data: Send,
        Rb::Error: Into<BoxError>,
    {
        let form = match read_form(request).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        let grant_type = match form.one("grant_type") {
            Ok(Some(g)) => g,
            Ok(None) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required.",
                )
            }
            Err(repeated) => return repeated.response(),
        };
        match grant_type {
            "refresh_token" => self.refresh_grant(&form).await,
            "authorization_code" => self.code_grant(&form).await,
            _ => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only grant_type=authorization_code and refresh_token are supported here.",
            ),
        }
    }

    /// RFC 8707 §2: `resource` may be repeated; each must be an absolute URI
    /// without a fragment (else the 400 `invalid_target` answer).
    fn resources(form: &Form) -> Result<Vec<String>, Box<Response<Full<Bytes>>>> {
        let resources = form.all("resource");
        if resources
            .iter()
            .any(|r| r.contains('#') || !r.contains("://"))
        {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "A resource must be an absolute URI without a fragment.",
            )));
        }
        Ok(resources)
    }

    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    async fn code_grant(&self, form: &Form) -> Response<Full<Bytes>> {
        let mut values = [""; 4];
        for (value, name) in
            values
                .iter_mut()
                .zip(["code", "redirect_uri", "client_id", "code_verifier"])
        {
            match form.one(name) {
                Ok(Some(v)) => *value = v,
                Ok(None) => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        &format!("{name} is required."),
                    )
                }
                Err(repeated) => return repeated.response(),
            }
        }
        let [code, redirect_uri, client_id, code_verifier] = values;
        let resources = match Self::resources(form) {
            Ok(r) => r,
            Err(response) => return *response,
        };
        let exchange =
            CodeExchange::new(code, client_id, redirect_uri, code_verifier).resources(&resources);
        match self.tokens.exchange_code(&exchange).await {
            Ok(pair) => success(&pair, self.tokens.policy().now()),
            Err(GrantError::InvalidGrant(reason)) => {
                let mut response = oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    match reason {
                        InvalidGrantReason::Expired => "The authorization code has expired.",
                        _ => "The authorization code is invalid or was already used, or the request does not match it.",
                    },
                );
                response.extensions_mut().insert(FailedAuthentication);
                response
            }
            Err(error) => grant_error(&error),
        }
    }

    /// `grant_type=refresh_token` (RFC 6749 §6).
    async fn refresh_grant(&self, form: &Form) -> Response<Full<Bytes>> {
        let token = match form.one("refresh_token") {
            Ok(Some(t)) => t,
            Ok(None) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is required.",
                )
            }
            Err(repeated) => return repeated.response(),
        };
        let scopes = match form.one("scope") {
            Ok(None) => None,
            Ok(Some(s)) => match B::Scopes::parse_scope(s) {
                Ok(s) => Some(s),
                Err(_) => {
                    return grant_error(&GrantError::InvalidScope);
                }
            },
            Err(repeated) => return repeated.response(),
        };
        let resources = match Self::resources(form) {
            Ok(r) => r,
            Err(response) => return *response,
        };
        let policy = self.tokens.policy();
        if policy.get_format().check(token) != Ok(TokenKind::Refresh) {
            return grant_error(&GrantError::InvalidGrant(InvalidGrantReason::Malformed));
        }
        let digest = TokenDigest::of(token);
        match self.tokens.refresh_for(&digest, scopes, &resources).await {
            Ok(pair) => success(&pair, policy.now()),
            Err(error) => grant_error(&error),
        }
    }
}

impl<B: TokenBackend> RevocationEndpoint<B> {
    /// A revocation endpoint over `tokens`.
    pub fn new(tokens: TokenManager<B>) -> Self {
        Self { tokens }
    }

    async fn handle<Rb>(self, request: Request<Rb>) -> Response<Full<Bytes>>
    where
        Rb: Body + Send + 'static,
        Rb::Data: Send,
        Rb::Error: Into<BoxError>,
    {
        let form = match read_token_form(request).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        let token = form.token();
        // Not one of this service's tokens: nothing to revoke, and no
        // reason to spend a store call on it (RFC 7009 §2.2: still 200).
        if self.tokens.policy().get_format().check(token).is_err() {
            return not_a_token();
        }
        match self.tokens.revoke_presented(&TokenDigest::of(token)).await {
            Ok(Some(_)) => no_store(Response::new(Full::default())),
            Ok(None) => not_a_token(),
            Err(error) => store_error(&error),
        }
    }
}

/// The revocation of a token that is not one of the service's (malformed,
/// or well-formed and unknown): 200 as RFC 7009 §2.2 says, marked
/// [`FailedAuthentication`] so that a throttle in front bounds the lookups
/// a client can make with made-up tokens.
fn not_a_token() -> Response<Full<Bytes>> {
    let mut response = no_store(Response::new(Full::default()));
    response.extensions_mut().insert(FailedAuthentication);
    response
}

/// The tower `Service` of an endpoint with an
/// `async fn handle(self, Request<B>) -> Response<Full<Bytes>>`: ready at
/// once, never failing. Expanded where the endpoint is defined, with
/// `Service`, `Request`, `Response`, `Body`, `Full`, `Bytes`, `BoxError`,
/// `BoxFuture`, `Infallible`, `Context`, `Poll` and `TokenBackend` in
/// scope.
macro_rules! endpoint_service {
    ($endpoint:ident) => {
        impl<Bk, B> Service<Request<B>> for $endpoint<Bk>
        where
            Bk: TokenBackend,
            B: Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<BoxError>,
        {
            type Response = Response<Full<Bytes>>;
            type Error = Infallible;
            type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, request: Request<B>) -> Self::Future {
                let this = self.clone();
                Box::pin(async move { Ok(this.handle(request).await) })
            }
        }
    };
}

// Used by the registration endpoint, which its feature may leave out.
#[cfg_attr(not(feature = "registration"), allow(unused_imports))]
pub(super) use endpoint_service;

endpoint_service!(TokenEndpoint);
endpoint_service!(RevocationEndpoint);

/// A decoded form body.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes `application/x-www-form-urlencoded` bytes (a body or a
    /// query string).
    pub(super) fn parse(bytes: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`; a repeated parameter is an error
    /// (RFC 6749 §3.2: parameters must not be included more than once).
    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Repeated);
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// Every non-empty value of `name`, for parameters that may repeat.
    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The `token` of a form with exactly one `token` and at most one
/// `token_type_hint`: the body of revocation (RFC 7009 §2.1) and
/// introspection (RFC 7662 §2.1).
pub(super) struct TokenForm(String);

impl TokenForm {
    /// The `token` parameter.
    pub(super) fn token(&self) -> &str {
        &self.0
    }
}

/// Reads a [`TokenForm`], or the 400 `invalid_request` answer.
pub(super) async fn read_token_form<B>(
    request: Request<B>,
) -> Result<TokenForm, Response<Full<Bytes>>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let form = read_form(request).await?;
    if let Err(repeated) = form.one("token_type_hint") {
        return Err(repeated.response());
    }
    match form.one("token") {
        Ok(Some(token)) => Ok(TokenForm(token.to_owned())),
        Ok(None) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required.",
        )),
        Err(repeated) => Err(repeated.response()),
    }
}

/// A form parameter given more than once.
pub(super) struct Repeated;

impl Repeated {
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "A parameter is repeated.",
        )
    }
}

/// The 405 answer, with `Allow: POST`, for a request that is no `POST`.
pub(super) fn unless_post<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if request.method() == Method::POST {
        return None;
    }
    let mut response = oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "Use POST.",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    Some(response)
}

/// Whether the request's media type (parameters aside) is `media_type`.
pub(super) fn has_content_type<B>(request: &Request<B>, media_type: &str) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

pub(super) async fn read_form<B>(request: Request<B>) -> Result<Form, Response<Full<Bytes>>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if let Some(response) = unless_post(&request) {
        return Err(response);
    }
    if !has_content_type(&request, "application/x-www-form-urlencoded") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The body is too large or could not be read.",
            )
        })?
        .to_bytes();
    Ok(Form::parse(&body))
}

fn success<S: ScopeSet>(pair: &TokenPair<S>, now: SystemTime) -> Response<Full<Bytes>> {
    let expires_in = pair
        .access
        .record
        .expires_at
        .duration_since(now)
        // Rounded to the nearest second: a token issued a few microseconds
        // ago still says 15 days.
        .map_or(0, |d| d.as_secs() + u64::from(d.subsec_millis() >= 500));
    let mut body = String::with_capacity(256);
    body.push_str("{\"access_token\":\"");
    escape_into(&mut body, pair.access.secret.expose_secret());
    body.push_str("\",\"token_type\":\"Bearer\",\"expires_in\":");
    body.push_str(&expires_in.to_string());
    body.push_str(",\"refresh_token\":\"");
    escape_into(&mut body, pair.refresh.secret.expose_secret());
    body.push_str("\",\"scope\":\"");
    escape_into(&mut body, &pair.access.record.scopes.scope_string());
    body.push_str("\"}");
    json_response(StatusCode::OK, body)
}

fn grant_error(error: &GrantError) -> Response<Full<Bytes>> {
    match error {
        GrantError::Store(store) => store_error(store),
        other => {
            let mut response = oauth_error(
                StatusCode::BAD_REQUEST,
                other.error_code(),
                other.description(),
            );
            // A refresh token that did not work is a failed credential: the
            // throttle in front of the endpoint counts it.
            if matches!(other, GrantError::InvalidGrant(_)) {
                response.extensions_mut().insert(FailedAuthentication);
            }
            response
        }
    }
}

pub(super) fn store_error(error: &StoreError) -> Response<Full<Bytes>> {
    match error {
        StoreError::Unavailable(_) => {
            tracing::error!(target: "tower_token_auth::oauth", %error, "token store unavailable");
            let mut response = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The token store is temporarily unavailable.",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        _ => {
            tracing::error!(target: "tower_token_auth::oauth", %error, "token store failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The request could not be completed.",
            )
        }
    }
}

/// An RFC 6749 §5.2 error response.
pub(super) fn oauth_error(
    status: StatusCode,
    code: &str,
    description: &str,
) -> Response<Full<Bytes>> {
    let mut body = String::with_capacity(128);
    body.push_str("{\"error\":\"");
    escape_into(&mut body, code);
    body.push_str("\",\"error_description\":\"");
    escape_into(&mut body, description);
    body.push_str("\"}");
    json_response(status, body)
}

pub(super) fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    no_store(response)
}

fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;
    use crate::manager::IssueRequest;
    use crate::store::{MemoryStore, TokenStore};
    use std::sync::Arc;
    use std::time::SystemTime;
    use tower::ServiceExt;

    async fn post<Svc>(svc: Svc, body: &str) -> (StatusCode, serde_json::Value)
    where
        Svc: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
    {
        let request = Request::post("/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = svc.oneshot(request).await.unwrap();
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, json)
    }

    #[tokio::test]
    async fn refresh_grant_rotates_and_reports_errors() {
        let clock = Arc::new(crate::token::ManualClock::new(SystemTime::now()));
        let store = TokenManager::with_policy(
            MemoryStore::<S>::new(),
            crate::manager::IssuePolicy::default().clock(clock),
        );
        let pair = store
            .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
            .await
            .unwrap();
        let endpoint = TokenEndpoint::new(store.clone());
        let rt = pair.refresh.secret.expose_secret();

        let (status, json) = post(
            endpoint.clone(),
            &format!("grant_type=refresh_token&refresh_token={rt}&scope=billing.read"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["scope"], "billing.read");
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["expires_in"], 15 * 86_400);
        let access = json["access_token"].as_str().unwrap();
        assert!(access.starts_with("pr_at_"));
        assert!(json["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("pr_rt_"));

        // Reuse: invalid_grant, and the family is revoked.
        let (status, json) = post(
            endpoint.clone(),
            &format!("grant_type=refresh_token&refresh_token={rt}"),
        )
        .await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let rotated = store.find(TokenDigest::of(access).into()).await.unwrap().unwrap();
        assert!(rotated.is_revoked());

        for (body, error) in [
            ("grant_type=password&username=a", "unsupported_grant_type"),
            ("refresh_token=x", "invalid_request"),
            ("grant_type=refresh_token", "invalid_request"),
            (
                "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
                "invalid_request",
            ),
            (
                "grant_type=refresh_token&refresh_token=garbage",
                "invalid_grant",
            ),
            (
                "grant_type=refresh_token&refresh_token=x&scope=billing.delete",
                "invalid_scope",
            ),
        ] {
            let (status, json) = post(endpoint.clone(), body).await;
            assert_eq!(
                (status, json["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some(error)),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn widening_the_scope_is_invalid_scope() {
        let store = TokenManager::new(MemoryStore::new());
        let pair = store.issue_pair("agent", "u1", None).await.unwrap();
        let body = format!(
            "grant_type=refresh_token&refresh_token={}&scope=billing.write",
            pair.refresh.secret.expose_secret()
        );
        let (status, json) = post(TokenEndpoint::new(store), &body).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_scope"))
        );
    }

    #[tokio::test]
    async fn wrong_method_and_content_type_are_rejected() {
        let endpoint = TokenEndpoint::new(TokenManager::new(MemoryStore::new()));
        let get = Request::get("/").body(Full::<Bytes>::default()).unwrap();
        let response = endpoint.clone().oneshot(get).await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let json = Request::post("/")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        assert_eq!(
            endpoint.clone().oneshot(json).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
        let huge = Request::post("/")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(vec![b'a'; MAX_BODY + 1])))
            .unwrap();
        assert_eq!(
            endpoint.oneshot(huge).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn revocation_is_idempotent_and_takes_the_family() {
        let store = TokenManager::new(MemoryStore::new());
        let pair = store.issue_pair("agent", "u1", None).await.unwrap();
        let pat = store
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "ci", "u1"))
            .await
            .unwrap();
        let endpoint = RevocationEndpoint::new(store.clone());
        let body = format!(
            "token={}&token_type_hint=refresh_token",
            pair.refresh.secret.expose_secret()
        );
        assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
        assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
        assert!(store
            .find(pair.access.secret.digest().into())
            .await
            .unwrap()
            .unwrap()
            .is_revoked());
        let body = format!("token={}", pat.secret.expose_secret());
        assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
        assert!(store
            .find(pat.secret.digest().into())
            .await
            .unwrap()
            .unwrap()
            .is_revoked());
        assert_eq!(
            post(endpoint.clone(), "token=unknown").await.0,
            StatusCode::OK
        );
        let (status, json) = post(endpoint, "token_type_hint=access_token").await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request"))
        );
    }

    /// A backend that is down: every call fails as unreachable. Counts the
    /// lookups that reach it.
    #[derive(Default)]
    struct Down {
        lookups: std::sync::atomic::AtomicUsize,
    }

    fn down<T>() -> Result<T, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }

    #[async_trait::async_trait]
    impl TokenStore for Down {
        type Scopes = S;

        async fn find(&self, _: crate::token::Lookup<'_>) -> crate::store::FindResult<S> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            down()
        }

        fn find_now(&self, _: &TokenDigest) -> Option<crate::store::FindResult<S>> {
            None
        }
    }

    #[async_trait::async_trait]
    impl TokenBackend for Down {
        async fn insert(&self, _: &[crate::token::TokenRecord<S>]) -> Result<(), StoreError> {
            down()
        }
        async fn get(
            &self,
            _: crate::token::TokenId,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            down()
        }
        async fn list(&self, _: &str) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
            down()
        }
        async fn update_scopes(
            &self,
            _: crate::token::TokenId,
            _: S,
            _: SystemTime,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            down()
        }
        async fn revoke(
            &self,
            _: crate::token::TokenId,
            _: SystemTime,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            down()
        }
        async fn revoke_family(
            &self,
            _: crate::token::FamilyId,
            _: SystemTime,
        ) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
            down()
        }
        async fn exchange(
            &self,
            _: &crate::store::Exchange<S>,
        ) -> Result<crate::store::ExchangeOutcome, StoreError> {
            down()
        }
        async fn record_use(
            &self,
            _: &[(crate::token::TokenId, SystemTime)],
        ) -> Result<(), StoreError> {
            down()
        }
        async fn purge(&self, _: SystemTime) -> Result<u64, StoreError> {
            down()
        }
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_503_never_200() {
        let format = crate::token::TokenFormat::default();
        let refresh = format.generate(TokenKind::Refresh).unwrap();
        let pat = format.generate(TokenKind::PersonalAccess).unwrap();
        let tokens = TokenManager::new(Down::default());

        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            refresh.expose_secret()
        );
        let (status, json) = post(TokenEndpoint::new(tokens.clone()), &body).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable")
            )
        );
        assert!(json.get("access_token").is_none());

        // A revocation that did not happen is never reported as done.
        let body = format!("token={}", pat.expose_secret());
        let (status, json) = post(RevocationEndpoint::new(tokens), &body).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable")
            )
        );
    }

    /// A backend whose reads work and whose writes that end tokens can be
    /// made to fail: a database that answers lookups (a replica, a cache in
    /// front) but cannot take the revocation or the exchange. Every other
    /// call goes to the [`MemoryStore`] inside.
    #[derive(Default)]
    struct WritesDown {
        inner: MemoryStore<S>,
        failing: std::sync::atomic::AtomicBool,
    }

    impl WritesDown {
        fn fail(&self) {
            self.failing
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }

        fn check(&self) -> Result<(), StoreError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                down()
            } else {
                Ok(())
            }
        }
    }

    #[async_trait::async_trait]
    impl TokenStore for WritesDown {
        type Scopes = S;

        async fn find(&self, key: crate::token::Lookup<'_>) -> crate::store::FindResult<S> {
            self.inner.find(key).await
        }

        fn find_now(&self, digest: &TokenDigest) -> Option<crate::store::FindResult<S>> {
            self.inner.find_now(digest)
        }
    }

    #[async_trait::async_trait]
    impl TokenBackend for WritesDown {
        async fn insert(&self, records: &[crate::token::TokenRecord<S>]) -> Result<(), StoreError> {
            self.inner.insert(records).await
        }
        async fn get(
            &self,
            id: crate::token::TokenId,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            self.inner.get(id).await
        }
        async fn list(
            &self,
            owner: &str,
        ) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
            self.inner.list(owner).await
        }
        async fn update_scopes(
            &self,
            id: crate::token::TokenId,
            scopes: S,
            now: SystemTime,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            self.inner.update_scopes(id, scopes, now).await
        }
        async fn revoke(
            &self,
            id: crate::token::TokenId,
            at: SystemTime,
        ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
            self.check()?;
            self.inner.revoke(id, at).await
        }
        async fn revoke_family(
            &self,
            family: crate::token::FamilyId,
            at: SystemTime,
        ) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
            self.check()?;
            self.inner.revoke_family(family, at).await
        }
        async fn exchange(
            &self,
            exchange: &crate::store::Exchange<S>,
        ) -> Result<crate::store::ExchangeOutcome, StoreError> {
            self.check()?;
            self.inner.exchange(exchange).await
        }
        async fn record_use(
            &self,
            uses: &[(crate::token::TokenId, SystemTime)],
        ) -> Result<(), StoreError> {
            self.inner.record_use(uses).await
        }
        async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
            self.inner.purge(cutoff).await
        }
    }

    /// The lookup finds the token, the write that would end or exchange it
    /// fails: the client is told to try again (503), never that it worked
    /// (200), and never that the grant is bad (400) when the family it
    /// should have revoked is still live.
    #[tokio::test]
    async fn a_failed_revoke_or_exchange_after_a_good_lookup_is_503_never_200() {
        let tokens = TokenManager::new(WritesDown::default());
        let unavailable = (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable"),
        );
        let grant = |rt: &str| format!("grant_type=refresh_token&refresh_token={rt}");

        // One grant with a spent refresh token (its replay must revoke the
        // family), one untouched, and a personal access token.
        let replayed = tokens.issue_pair("agent", "u1", None).await.unwrap();
        let replayed_rt = replayed.refresh.secret.expose_secret();
        let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(replayed_rt)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let live = tokens.issue_pair("agent", "u1", None).await.unwrap();
        let pat = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
            .await
            .unwrap();
        tokens.backend().fail();

        // The exchange fails.
        let live_rt = live.refresh.secret.expose_secret();
        let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(live_rt)).await;
        assert_eq!((status, json["error"].as_str()), unavailable, "{json}");
        assert!(json.get("access_token").is_none());
        // The replay's family revocation fails.
        let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(replayed_rt)).await;
        assert_eq!((status, json["error"].as_str()), unavailable, "{json}");

        // RFC 7009: revoke (a personal access token) and revoke_family (a
        // refresh token, an access token) fail.
        for token in [
            pat.secret.expose_secret(),
            live_rt,
            live.access.secret.expose_secret(),
        ] {
            let body = format!("token={token}");
            let (status, json) = post(RevocationEndpoint::new(tokens.clone()), &body).await;
            assert_eq!((status, json["error"].as_str()), unavailable, "{json}");
        }
        // None of it happened: every token is still live.
        for token in [&pat, &live.refresh, &live.access, &replayed.access] {
            let record = tokens.find(token.record.digest.into()).await.unwrap().unwrap();
            assert!(
                !record.is_revoked() && !record.is_spent(),
                "{}",
                record.name
            );
        }
    }

    #[tokio::test]
    async fn rfc_8707_2_resource_narrows_the_audience_and_never_widens_it() {
        let api = "https://api.example.com/";
        let billing = "https://billing.example.com/";
        let tokens = TokenManager::with_policy(
            MemoryStore::<S>::new(),
            crate::manager::IssuePolicy::default().default_audience([api, billing]),
        );
        let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
        let rt = pair.refresh.secret.expose_secret();
        let endpoint = TokenEndpoint::new(tokens.clone());

        let other = "https%3A%2F%2Fother.example%2F";
        let (status, json) = post(
            endpoint.clone(),
            &format!("grant_type=refresh_token&refresh_token={rt}&resource={other}"),
        )
        .await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_target"))
        );
        let (status, json) = post(
            endpoint.clone(),
            &format!("grant_type=refresh_token&refresh_token={rt}&resource=relative%2Fpath"),
        )
        .await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_target"))
        );

        let (status, json) = post(
            endpoint,
            &format!("grant_type=refresh_token&refresh_token={rt}&resource=https%3A%2F%2Fapi.example.com%2F"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let access = TokenDigest::of(json["access_token"].as_str().unwrap());
        let refresh = TokenDigest::of(json["refresh_token"].as_str().unwrap());
        assert_eq!(tokens.find(access.into()).await.unwrap().unwrap().audience, [api]);
        assert_eq!(
            tokens.find(refresh.into()).await.unwrap().unwrap().audience,
            [api, billing],
            "the grant keeps its whole audience"
        );
    }

    /// RFC 7009 §2.2 answers 200 for an invalid token; one that is not
    /// even well-formed (prefix, kind, length, checksum) is answered so
    /// without asking the store, as the bearer middleware does.
    #[tokio::test]
    async fn revoking_garbage_answers_200_without_a_store_call() {
        let tokens = TokenManager::new(Down::default());
        let endpoint = RevocationEndpoint::new(tokens.clone());
        let format = crate::token::TokenFormat::default();
        let real = format.generate(TokenKind::Refresh).unwrap();
        let real = real.expose_secret();
        let wrong_checksum = format!(
            "{}{}",
            &real[..real.len() - 1],
            if real.ends_with('0') { '1' } else { '0' }
        );
        let other_service = crate::token::TokenFormat::new("xx")
            .unwrap()
            .generate(TokenKind::Refresh)
            .unwrap();
        for garbage in [
            "garbage".to_owned(),
            "pr_rt_".to_owned(),
            wrong_checksum,
            real.to_uppercase(),
            format!("{real}x"),
            other_service.expose_secret().to_owned(),
            "x".repeat(4000),
        ] {
            let (status, _) = post(endpoint.clone(), &format!("token={garbage}")).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{}",
                &garbage[..garbage.len().min(40)]
            );
        }
        let lookups = || {
            tokens
                .backend()
                .lookups
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        assert_eq!(lookups(), 0, "garbage reached the store");
        // A well-formed token is looked up (here: the store is down).
        let (status, json) = post(endpoint, &format!("token={real}")).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Some("temporarily_unavailable")
            )
        );
        assert_eq!(lookups(), 1);
    }
}
