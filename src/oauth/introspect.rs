//! Token introspection (RFC 7662): other services ask whether a token is
//! active.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tower_service::Service;

use super::form::{json_response, oauth_error, read_token_form, store_error};
use crate::error::BoxError;
use crate::error::FailedAuthentication;
use crate::json::escape_into;
use crate::manager::TokenManager;
use crate::scope::ScopeSet;
use crate::store::{TokenBackend, TokenStore};
use crate::token::Lookup;
use crate::token::TokenRecord;

/// Decides whether the caller of the introspection endpoint may ask.
type CallerCheck = Arc<dyn Fn(&HeaderMap) -> bool + Send + Sync>;

/// The token introspection endpoint (RFC 7662).
///
/// `POST` with `token` (and an optional `token_type_hint`), form-encoded,
/// from an authenticated caller (RFC 7662 §2.1): by default HTTP Basic with
/// the credentials given to [`new`](Self::new), compared in constant time.
/// A caller that does not authenticate gets 401 `invalid_client` and
/// learns nothing about the token; the response carries
/// [`FailedAuthentication`] for a throttle in front.
///
/// An active token (a personal access or access token that is not
/// revoked, not expired, and was found) answers `200` with `active: true`,
/// `scope`, `exp`, `iat`, `sub` (its owner), `token_type` (`Bearer`) and,
/// where the token records them, `aud` and `client_id` (the OAuth client
/// of an authorization code grant). Anything else (unknown, revoked,
/// expired, a spent or live refresh token, a malformed string) answers
/// exactly `{"active":false}`, never a reason (§2.2). A malformed token is
/// answered without a store call. The store being down is 503
/// `temporarily_unavailable`, never `active: false`. Every answer is
/// `Cache-Control: no-store`.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use tower::ServiceExt;
/// use tower_token_auth::oauth::IntrospectionEndpoint;
/// use tower_token_auth::manager::{IssueRequest, TokenManager};
/// use tower_token_auth::token::TokenKind;
/// use tower_token_auth::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenManager::new(MemoryStore::new());
/// let issued = tokens
///     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
///     .await?;
/// let endpoint = IntrospectionEndpoint::new(tokens, "gateway", "s3cret");
///
/// let request = Request::post("/oauth/introspect")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .header("authorization", "Basic Z2F0ZXdheTpzM2NyZXQ=") // gateway:s3cret
///     .body(Full::new(Bytes::from(format!("token={}", issued.secret.expose_secret()))))?;
/// let response = endpoint.clone().oneshot(request).await?;
/// let json: serde_json::Value =
///     serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
/// assert_eq!(json["active"], true);
/// assert_eq!(json["scope"], "billing.read");
/// assert_eq!(json["sub"], "user-1");
///
/// let anonymous = Request::post("/oauth/introspect")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Full::new(Bytes::from("token=anything")))?;
/// assert_eq!(endpoint.oneshot(anonymous).await?.status(), StatusCode::UNAUTHORIZED);
/// # Ok(())
/// # }
/// ```
pub struct IntrospectionEndpoint<B> {
    tokens: TokenManager<B>,
    caller: CallerCheck,
}

impl<B> Clone for IntrospectionEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            caller: Arc::clone(&self.caller),
        }
    }
}

impl<B> fmt::Debug for IntrospectionEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionEndpoint")
            .finish_non_exhaustive()
    }
}

impl<B: TokenBackend> IntrospectionEndpoint<B> {
    /// An endpoint over `tokens` whose callers authenticate with HTTP Basic
    /// as `username` and `password`.
    pub fn new(tokens: TokenManager<B>, username: &str, password: &str) -> Self {
        let expected = credential_digest(format!("{username}:{password}").as_bytes());
        Self::with_caller_check(tokens, move |headers| {
            basic_credentials(headers).is_some_and(|given| credentials_match(&given, &expected))
        })
    }

    /// An endpoint over `tokens` whose callers `check` admits (a mutual-TLS
    /// identity, a gateway's own header, …). `check` sees the request's
    /// headers and must compare secrets in constant time.
    pub fn with_caller_check<F>(tokens: TokenManager<B>, check: F) -> Self
    where
        F: Fn(&HeaderMap) -> bool + Send + Sync + 'static,
    {
        Self {
            tokens,
            caller: Arc::new(check),
        }
    }

    async fn handle<Rb>(self, request: Request<Rb>) -> Response<Full<Bytes>>
    where
        Rb: Body + Send + 'static,
        Rb::Data: Send,
        Rb::Error: Into<BoxError>,
    {
        if !(self.caller)(request.headers()) {
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The caller must authenticate to introspect tokens.",
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"introspection\""),
            );
            // A caller guessing credentials counts for a throttle in front.
            response.extensions_mut().insert(FailedAuthentication);
            return response;
        }
        let form = match read_token_form(request).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        let token = form.token();
        let policy = self.tokens.policy();
        let authenticates = policy
            .get_format()
            .check(token)
            .is_ok_and(|kind| kind.authenticates());
        if !authenticates {
            return inactive();
        }
        match self.tokens.find(Lookup::of_token(token)).await {
            Ok(Some(record)) if is_active(&record, policy.now()) => active(&record),
            Ok(_) => inactive(),
            Err(error) => store_error(&error),
        }
    }
}

/// Whether `record` authenticates requests at `now`.
fn is_active<S>(record: &TokenRecord<S>, now: SystemTime) -> bool {
    record.kind.authenticates()
        && !record.is_revoked()
        && !record.is_spent()
        && !record.is_expired_at(now)
}

/// `{"active":false}`, and nothing else.
fn inactive() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, "{\"active\":false}".to_owned())
}

fn active<S: ScopeSet>(record: &TokenRecord<S>) -> Response<Full<Bytes>> {
    let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut body = String::with_capacity(192);
    body.push_str("{\"active\":true,\"scope\":\"");
    escape_into(&mut body, &record.scopes.scope_string());
    body.push_str("\",\"exp\":");
    body.push_str(&seconds(record.expires_at).to_string());
    body.push_str(",\"iat\":");
    body.push_str(&seconds(record.created_at).to_string());
    body.push_str(",\"sub\":\"");
    escape_into(&mut body, &record.owner);
    body.push_str("\",\"token_type\":\"Bearer\"");
    if !record.audience.is_empty() {
        body.push_str(",\"aud\":[");
        for (i, resource) in record.audience.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push('"');
            escape_into(&mut body, resource);
            body.push('"');
        }
        body.push(']');
    }
    if let Some(client_id) = &record.client_id {
        body.push_str(",\"client_id\":\"");
        escape_into(&mut body, client_id);
        body.push('"');
    }
    body.push('}');
    json_response(StatusCode::OK, body)
}

/// The SHA-256 of a `user:password`: what the caller's credentials are
/// compared by.
fn credential_digest(credentials: &[u8]) -> [u8; 32] {
    Sha256::digest(credentials).into()
}

/// Whether `given` is the credential whose digest is `expected`. Both
/// sides are hashed first, so the constant-time comparison runs over two
/// 32-byte digests whatever the lengths: neither the length of the
/// expected credential nor how much of it a guess got right shows in the
/// time it takes.
fn credentials_match(given: &[u8], expected: &[u8; 32]) -> bool {
    bool::from(credential_digest(given).ct_eq(expected))
}

/// The decoded `user:password` of an HTTP Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, rest) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
}

impl<Bk, Rb> Service<Request<Rb>> for IntrospectionEndpoint<Bk>
where
    Bk: TokenBackend,
    Rb: Body + Send + 'static,
    Rb::Data: Send,
    Rb::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Rb>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::manager::{IssuePolicy, IssueRequest};
    use crate::scope::PayRequestScopes as S;
    use crate::store::MemoryStore;
    use crate::token::{ManualClock, TokenKind};

    /// Issue 23, row 11: the caller's credentials are compared as digests
    /// (equal lengths whatever was sent), and still exactly.
    #[test]
    fn credentials_are_compared_as_digests_and_exactly() {
        let expected = credential_digest(b"caller:s3cret");
        assert_eq!(expected.len(), 32);
        assert!(credentials_match(b"caller:s3cret", &expected));
        for wrong in [
            &b""[..],
            b"caller:s3cre",
            b"caller:s3cret ",
            b"caller:s3cres",
            b"Caller:s3cret",
            b"caller:s3cretcaller:s3cret",
        ] {
            assert!(!credentials_match(wrong, &expected), "{wrong:?}");
        }
    }

    const CALLER: &str = "Basic Z2F0ZXdheTpzM2NyZXQ="; // gateway:s3cret

    async fn introspect(
        endpoint: &IntrospectionEndpoint<MemoryStore<S>>,
        authorization: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        let mut request = Request::post("/oauth/introspect")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = endpoint.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "no-store",
            "RFC 7662 §2.2"
        );
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn rfc_7662_2_2_active_tokens_carry_their_claims_and_the_rest_only_active_false() {
        let clock = Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let tokens = TokenManager::with_policy(
            MemoryStore::<S>::new(),
            IssuePolicy::default().clock(clock.clone()),
        );
        let endpoint = IntrospectionEndpoint::new(tokens.clone(), "gateway", "s3cret");
        let pat = tokens
            .issue(
                IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1")
                    .scopes(S::BILLING_AGENT)
                    .audience(["https://api.example.com/"]),
            )
            .await
            .unwrap();
        let (status, body) = introspect(
            &endpoint,
            Some(CALLER),
            &format!(
                "token={}&token_type_hint=access_token",
                pat.secret.expose_secret()
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["active"], true);
        assert_eq!(json["scope"], "billing.agent");
        assert_eq!(json["sub"], "user-1");
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["aud"], serde_json::json!(["https://api.example.com/"]));
        assert_eq!(json["iat"], 1_700_000_000);
        assert_eq!(json["exp"], 1_700_000_000 + 180 * 86_400);
        assert_eq!(json.get("client_id"), None, "issued to no client");

        let agent = tokens
            .issue(
                IssueRequest::new(TokenKind::Access, "MCP Billing Agent", "user-1")
                    .client_id("client-\"7\""),
            )
            .await
            .unwrap();
        let (_, body) = introspect(
            &endpoint,
            Some(CALLER),
            &format!("token={}", agent.secret.expose_secret()),
        )
        .await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["client_id"], "client-\"7\"", "where known, escaped");

        let pair = tokens.issue_pair("agent", "user-1", None).await.unwrap();
        let revoked = tokens
            .issue(IssueRequest::new(
                TokenKind::PersonalAccess,
                "old",
                "user-1",
            ))
            .await
            .unwrap();
        tokens.revoke(revoked.record.id).await.unwrap();
        let short = tokens
            .issue(
                IssueRequest::new(TokenKind::Access, "short", "user-1")
                    .lifetime(Duration::from_secs(1)),
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
        let unknown = tokens
            .policy()
            .get_format()
            .generate(TokenKind::PersonalAccess)
            .unwrap();
        for (what, token) in [
            ("refresh token", pair.refresh.secret.expose_secret()),
            ("revoked", revoked.secret.expose_secret()),
            ("expired", short.secret.expose_secret()),
            ("unknown", unknown.expose_secret()),
            ("malformed", "not-a-token"),
        ] {
            let (status, body) =
                introspect(&endpoint, Some(CALLER), &format!("token={token}")).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, r#"{"active":false}"#),
                "{what}"
            );
        }
    }

    #[tokio::test]
    async fn rfc_7662_2_1_an_unauthenticated_caller_learns_nothing() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let endpoint = IntrospectionEndpoint::new(tokens.clone(), "gateway", "s3cret");
        let pat = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
            .await
            .unwrap();
        let body = format!("token={}", pat.secret.expose_secret());
        for caller in [
            None,
            Some("Basic Z2F0ZXdheTp3cm9uZw=="), // gateway:wrong
            Some("Bearer Z2F0ZXdheTpzM2NyZXQ="),
            Some("Basic !!!"),
        ] {
            let (status, answer) = introspect(&endpoint, caller, &body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{caller:?}");
            assert!(!answer.contains("active"), "{caller:?}: {answer}");
            assert!(answer.contains("invalid_client"));
        }
        let (status, _) = introspect(&endpoint, Some(CALLER), "token_type_hint=x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no token: invalid_request");
    }
}
