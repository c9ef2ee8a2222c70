//! Rejections: the typed [`AuthError`] and the RFC 6750 response it becomes.
//!
//! | situation | status | `WWW-Authenticate` | body `error` |
//! |---|---|---|---|
//! | no credentials, or another scheme | 401 | `Bearer realm="…"` | `missing_token` |
//! | token sent twice, or in the URL | 400 | `… error="invalid_request"` | `invalid_request` |
//! | malformed, unknown, revoked token; refresh token as a credential | 401 | `… error="invalid_token"` | `invalid_token` |
//! | expired token | 401 | `… error="invalid_token", error_description="…expired…"` | `invalid_token` |
//! | valid token, scope missing | 403 | `… error="insufficient_scope", scope="…"` | `insufficient_scope` |
//! | store unreachable or failing | 503 | none | `temporarily_unavailable` |
//! | not known to arrive over TLS ([`RequireHttpsLayer`](crate::auth::RequireHttpsLayer)) | 403 | none | `https_required` |
//! | too many failed authentications ([`ThrottleLayer`](crate::auth::ThrottleLayer)) | 429 + `Retry-After` | none | `too_many_requests` |
//!
//! Every rejection has a JSON body with `error`, `error_description` and a
//! `solution` hint, `Cache-Control: no-store`, and the [`AuthError`] in its
//! extensions so outer layers can inspect it. A [`Challenge`] renders it and
//! can hand it to a service's own function to replace the response.
//!
//! ```
//! use http::StatusCode;
//! use tower_token_auth::error::{AuthError, Challenge, InvalidTokenReason};
//!
//! let challenge = Challenge::new("billing");
//! let response = challenge.render(&AuthError::InvalidToken(InvalidTokenReason::Unknown));
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="billing", error="invalid_token", error_description="The access token is invalid or has been revoked.""#
//! );
//! assert!(response.extensions().get::<AuthError>().is_some());
//!
//! // A service can replace the response entirely.
//! let custom = Challenge::new("billing").on_rejection(|error, _default| {
//!     http::Response::builder()
//!         .status(error.status())
//!         .body(bytes::Bytes::from_static(b"nope"))
//!         .unwrap()
//! });
//! assert_eq!(custom.render(&AuthError::MissingToken).body().as_ref(), b"nope");
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::json::escape_into;
use crate::store::StoreError;

/// Why a request was not let through.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No bearer credentials: no `Authorization` header, or another scheme.
    #[error("no bearer token in the request")]
    MissingToken,
    /// The request carries its token in a way RFC 6750 forbids.
    #[error("invalid request: {0}")]
    InvalidRequest(InvalidRequestReason),
    /// The token is malformed, unknown, revoked, or not an API credential.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidTokenReason),
    /// The token has expired.
    #[error("the token has expired")]
    ExpiredToken,
    /// The token is valid but lacks a scope the route requires.
    #[error("insufficient scope: the route requires `{required}`")]
    InsufficientScope {
        /// The `scope` attribute of the challenge: what the route requires.
        required: Arc<str>,
    },
    /// The token store could not answer. The request is refused with 503.
    #[error("the token store is unavailable")]
    StoreUnavailable(Arc<StoreError>),
    /// The request is not known to have arrived over TLS and the route
    /// requires it ([`RequireHttpsLayer`](crate::auth::RequireHttpsLayer)).
    #[error("the request did not arrive over HTTPS")]
    HttpsRequired,
    /// The client spent its budget of failed authentications
    /// ([`ThrottleLayer`](crate::auth::ThrottleLayer)).
    #[error("too many failed authentications")]
    TooManyRequests {
        /// How long until the client may try again.
        retry_after: std::time::Duration,
    },
}

/// A response extension saying the request presented a credential that
/// did not authenticate it: a wrong password, a refresh token or
/// authorization code the grant refused.
///
/// [`ThrottleLayer`](crate::auth::ThrottleLayer) counts responses that
/// carry it against their client, as it counts the [`AuthError`]s of
/// invalid bearer tokens, so one budget covers guessing on every route. Put
/// it on your own login's failures; the crate's
/// [`TokenEndpoint`](crate::oauth::TokenEndpoint) puts it on its
/// `invalid_grant` answers. A missing credential is not a failed one: leave
/// it off there.
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_token_auth::error::FailedAuthentication;
///
/// let mut refused = Response::new("wrong user name or password");
/// *refused.status_mut() = StatusCode::UNAUTHORIZED;
/// refused.extensions_mut().insert(FailedAuthentication);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailedAuthentication;

/// Why a request was `invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequestReason {
    /// More than one `Authorization` header, or a token both in the header
    /// and in the URL.
    #[error("more than one credential")]
    RepeatedCredentials,
    /// An `access_token` in the URL query; this crate never accepts one.
    #[error("token in the URL")]
    TokenInUrl,
}

/// Why a token was `invalid_token`.
///
/// `Unknown` and `Revoked` are told apart in logs and in the typed error,
/// but look the same to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// The header or the token does not have the required form (grammar,
    /// prefix, length or checksum). No store was asked.
    #[error("malformed")]
    Malformed,
    /// No token with this digest exists.
    #[error("unknown")]
    Unknown,
    /// The token has been revoked.
    #[error("revoked")]
    Revoked,
    /// A refresh token was presented as an API credential.
    #[error("refresh token used as a credential")]
    NotAnAccessCredential,
    /// The token was issued for another resource (RFC 8707 audience).
    #[error("issued for another resource")]
    WrongAudience,
}

impl AuthError {
    /// The HTTP status of the rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::ExpiredToken => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::HttpsRequired => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `error` code of the body (and of the challenge, where it has one).
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) | Self::ExpiredToken => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::StoreUnavailable(_) => "temporarily_unavailable",
            Self::HttpsRequired => "https_required",
            Self::TooManyRequests { .. } => "too_many_requests",
        }
    }

    /// The `error_description`: static, in the characters RFC 6750 §3
    /// allows, and never containing the token.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "No bearer token was sent.",
            Self::InvalidRequest(InvalidRequestReason::RepeatedCredentials) => {
                "The request carries more than one access token."
            }
            Self::InvalidRequest(InvalidRequestReason::TokenInUrl) => {
                "Access tokens are not accepted in the URL."
            }
            Self::InvalidToken(InvalidTokenReason::Malformed) => "The access token is malformed.",
            Self::InvalidToken(InvalidTokenReason::Unknown | InvalidTokenReason::Revoked) => {
                "The access token is invalid or has been revoked."
            }
            Self::InvalidToken(InvalidTokenReason::NotAnAccessCredential) => {
                "A refresh token cannot be used as an API credential."
            }
            Self::InvalidToken(InvalidTokenReason::WrongAudience) => {
                "The access token was issued for another resource."
            }
            Self::ExpiredToken => "The access token expired.",
            Self::InsufficientScope { .. } => {
                "The access token does not have the scope this request requires."
            }
            Self::StoreUnavailable(_) => "The token store is temporarily unavailable.",
            Self::HttpsRequired => "This API is served over HTTPS only.",
            Self::TooManyRequests { .. } => "Too many failed authentication attempts.",
        }
    }

    /// A hint for the client, in the spirit of the PayRequest docs.
    pub fn solution(&self) -> &'static str {
        match self {
            Self::MissingToken | Self::InvalidToken(InvalidTokenReason::Malformed) => {
                "Ensure you're including a valid token in the Authorization header: Authorization: Bearer <token>."
            }
            Self::InvalidToken(InvalidTokenReason::NotAnAccessCredential) => {
                "Exchange the refresh token at the token endpoint and send the access token it returns."
            }
            Self::InvalidToken(InvalidTokenReason::WrongAudience) => {
                "Request a token for this API's resource (see its protected resource metadata)."
            }
            Self::InvalidToken(_) => {
                "Ensure you're including a valid token in the Authorization header."
            }
            Self::InvalidRequest(_) => {
                "Send the token once, in the Authorization header and nowhere else."
            }
            Self::ExpiredToken => "Generate a new access token from the dashboard.",
            Self::InsufficientScope { .. } => {
                "Create a new token with the required scopes or update your existing token's permissions."
            }
            Self::StoreUnavailable(_) => {
                "Retry the request shortly. Your token was not rejected; keep it."
            }
            Self::HttpsRequired => {
                "Send the request to the https:// URL. Treat a token sent over plain HTTP as leaked: revoke it."
            }
            Self::TooManyRequests { .. } => {
                "Wait for the time in the Retry-After header, then retry with a valid token."
            }
        }
    }

    /// Whether the response carries a `WWW-Authenticate` challenge.
    fn has_challenge(&self) -> bool {
        !matches!(
            self,
            Self::StoreUnavailable(_) | Self::HttpsRequired | Self::TooManyRequests { .. }
        )
    }
}

type Replace = dyn Fn(&AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync;

/// Renders rejections: the realm and `resource_metadata` of the
/// `WWW-Authenticate` challenge, and an optional function that replaces the
/// default response.
///
/// Cloning is cheap (one reference count).
#[derive(Clone)]
pub struct Challenge {
    inner: Arc<ChallengeInner>,
}

struct ChallengeInner {
    /// `Bearer realm="…"[, resource_metadata="…"]`, escaped.
    head: String,
    /// `, resource_metadata="…"` when set, or empty.
    metadata: String,
    /// `, scope="…"` for the 401 challenges when set, or empty.
    scope_hint: String,
    realm: String,
    replace: Option<Arc<Replace>>,
    /// The rejections that do not depend on the route, rendered once at
    /// construction, by [`fixed_slot`].
    prepared: Box<[Prepared]>,
}

/// A rejection's challenge and body, rendered once and then shared by every
/// response for the same error (cloning either is a reference count).
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    challenge: Option<HeaderValue>,
    body: Bytes,
}

/// One error of each kind whose response does not depend on the request or
/// the route, in [`fixed_slot`] order. The payloads are placeholders: no
/// response shows a store error's text or a retry delay in its body or
/// challenge (the delay goes into `Retry-After`, set per response).
fn fixed_errors() -> [AuthError; 12] {
    [
        AuthError::MissingToken,
        AuthError::InvalidRequest(InvalidRequestReason::RepeatedCredentials),
        AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl),
        AuthError::InvalidToken(InvalidTokenReason::Malformed),
        AuthError::InvalidToken(InvalidTokenReason::Unknown),
        AuthError::InvalidToken(InvalidTokenReason::Revoked),
        AuthError::InvalidToken(InvalidTokenReason::NotAnAccessCredential),
        AuthError::ExpiredToken,
        AuthError::StoreUnavailable(Arc::new(StoreError::InvalidInput(String::new()))),
        AuthError::HttpsRequired,
        AuthError::TooManyRequests {
            retry_after: std::time::Duration::ZERO,
        },
        AuthError::InvalidToken(InvalidTokenReason::WrongAudience),
    ]
}

/// Where `error`'s prepared rejection sits in [`fixed_errors`], or `None`
/// when its response names the route's requirement.
fn fixed_slot(error: &AuthError) -> Option<usize> {
    Some(match error {
        AuthError::MissingToken => 0,
        AuthError::InvalidRequest(InvalidRequestReason::RepeatedCredentials) => 1,
        AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl) => 2,
        AuthError::InvalidToken(InvalidTokenReason::Malformed) => 3,
        AuthError::InvalidToken(InvalidTokenReason::Unknown) => 4,
        AuthError::InvalidToken(InvalidTokenReason::Revoked) => 5,
        AuthError::InvalidToken(InvalidTokenReason::NotAnAccessCredential) => 6,
        AuthError::ExpiredToken => 7,
        AuthError::StoreUnavailable(_) => 8,
        AuthError::HttpsRequired => 9,
        AuthError::TooManyRequests { .. } => 10,
        AuthError::InvalidToken(InvalidTokenReason::WrongAudience) => 11,
        AuthError::InsufficientScope { .. } => return None,
    })
}

impl ChallengeInner {
    fn header_value(&self, error: &AuthError) -> Option<HeaderValue> {
        if !error.has_challenge() {
            return None;
        }
        // Room for the longest code and description and a scope list.
        let mut value = String::with_capacity(self.head.len() + self.metadata.len() + 256);
        value.push_str(&self.head);
        if !matches!(error, AuthError::MissingToken) {
            value.push_str(", error=\"");
            value.push_str(error.error_code());
            value.push_str("\", error_description=\"");
            value.push_str(error.description());
            value.push('"');
        }
        if let AuthError::InsufficientScope { required } = error {
            value.push_str(", scope=\"");
            value.push_str(&quote(required));
            value.push('"');
        } else if error.status() == StatusCode::UNAUTHORIZED {
            value.push_str(&self.scope_hint);
        }
        value.push_str(&self.metadata);
        HeaderValue::from_str(&value).ok()
    }

    fn prepare(&self, error: &AuthError) -> Prepared {
        let mut body = String::with_capacity(256);
        body.push_str("{\"error\":\"");
        body.push_str(error.error_code());
        body.push_str("\",\"error_description\":\"");
        body.push_str(error.description());
        body.push_str("\",\"solution\":\"");
        body.push_str(error.solution());
        body.push('"');
        if let AuthError::InsufficientScope { required } = error {
            body.push_str(",\"scope\":\"");
            escape_into(&mut body, required);
            body.push('"');
        }
        body.push('}');
        Prepared {
            challenge: self.header_value(error),
            body: Bytes::from(body),
        }
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("realm", &self.inner.realm)
            .field("resource_metadata", &self.inner.metadata)
            .field("scope", &self.inner.scope_hint)
            .field("custom_response", &self.inner.replace.is_some())
            .finish()
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::new("api")
    }
}

impl Challenge {
    /// A challenge for `realm`. Quotes and backslashes are escaped and
    /// control characters dropped, so any string is safe here.
    pub fn new(realm: &str) -> Self {
        Self::build(realm.to_owned(), String::new(), String::new(), None)
    }

    fn build(
        realm: String,
        metadata: String,
        scope_hint: String,
        replace: Option<Arc<Replace>>,
    ) -> Self {
        let head = format!("Bearer realm=\"{}\"", quote(&realm));
        let mut inner = ChallengeInner {
            head,
            metadata,
            scope_hint,
            realm,
            replace,
            prepared: Box::default(),
        };
        let prepared = fixed_errors().iter().map(|e| inner.prepare(e)).collect();
        inner.prepared = prepared;
        Self {
            inner: Arc::new(inner),
        }
    }

    fn rebuild(
        self,
        metadata: Option<String>,
        scope_hint: Option<String>,
        replace: Option<Arc<Replace>>,
    ) -> Self {
        let (realm, old_metadata, old_scope, old_replace) = match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.realm, inner.metadata, inner.scope_hint, inner.replace),
            Err(shared) => (
                shared.realm.clone(),
                shared.metadata.clone(),
                shared.scope_hint.clone(),
                shared.replace.clone(),
            ),
        };
        Self::build(
            realm,
            metadata.unwrap_or(old_metadata),
            scope_hint.unwrap_or(old_scope),
            replace.or(old_replace),
        )
    }

    /// Adds the RFC 9728 `resource_metadata` attribute (the URL of the
    /// protected resource metadata document) to every challenge.
    #[must_use]
    pub fn resource_metadata(self, url: &str) -> Self {
        self.rebuild(
            Some(format!(", resource_metadata=\"{}\"", quote(url))),
            None,
            None,
        )
    }

    /// Names `scope` (an RFC 6749 §3.3 scope string) in every 401
    /// challenge (RFC 6750 §3): the scope a client should ask for when it
    /// has no token yet. An MCP client takes it from the challenge and
    /// requests it, instead of every scope the metadata lists. A 403
    /// `insufficient_scope` names the route's own requirement instead.
    #[must_use]
    pub fn scope(self, scope: &str) -> Self {
        self.rebuild(None, Some(format!(", scope=\"{}\"", quote(scope))), None)
    }

    /// Replaces the rejection response: `f` receives the error and the
    /// default response, and returns the response to send.
    #[must_use]
    pub fn on_rejection<F>(self, f: F) -> Self
    where
        F: Fn(&AuthError, Response<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.rebuild(None, None, Some(Arc::new(f)))
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The `WWW-Authenticate` value for `error`, or `None` for errors that
    /// have no challenge (503).
    pub fn header_value(&self, error: &AuthError) -> Option<HeaderValue> {
        self.inner.header_value(error)
    }

    /// The response for `error`: status, challenge, JSON body,
    /// `Cache-Control: no-store`, and the error in the extensions; or what
    /// the [`on_rejection`](Self::on_rejection) function makes of it.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        match fixed_slot(error).and_then(|i| self.inner.prepared.get(i)) {
            Some(prepared) => self.respond(error, prepared),
            None => self.respond(error, &self.prepare(error)),
        }
    }

    /// Renders `error`'s challenge and body, for [`respond`](Self::respond)
    /// to reuse on every response for the same error.
    pub(crate) fn prepare(&self, error: &AuthError) -> Prepared {
        self.inner.prepare(error)
    }

    /// The response for `error` from its prepared parts.
    pub(crate) fn respond(&self, error: &AuthError, prepared: &Prepared) -> Response<Bytes> {
        let mut response = Response::new(prepared.body.clone());
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = &prepared.challenge {
            headers.insert(WWW_AUTHENTICATE, challenge.clone());
        }
        if let AuthError::TooManyRequests { retry_after } = error {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response.extensions_mut().insert(error.clone());
        match &self.inner.replace {
            Some(replace) => replace(error, response),
            None => response,
        }
    }
}

/// Escapes a value for an RFC 9110 quoted-string; drops control characters.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every kind, and the kinds with a payload again with
    /// another payload than [`fixed_errors`]' placeholders.
    fn every_error() -> Vec<AuthError> {
        let mut errors = fixed_errors().to_vec();
        errors.extend([
            AuthError::InsufficientScope {
                required: "billing.write".into(),
            },
            AuthError::StoreUnavailable(Arc::new(StoreError::InvalidInput("down".into()))),
            AuthError::TooManyRequests {
                retry_after: std::time::Duration::from_millis(1500),
            },
        ]);
        errors
    }

    #[test]
    fn prepared_rejections_match_a_fresh_rendering_of_every_error() {
        let plain = Challenge::new("billing");
        let with_metadata = Challenge::new("billing")
            .resource_metadata("https://api.example/.well-known/oauth-protected-resource");
        for challenge in [plain, with_metadata] {
            for error in every_error() {
                let fresh = challenge.prepare(&error);
                if let Some(slot) = fixed_slot(&error) {
                    let prepared = &challenge.inner.prepared[slot];
                    assert_eq!(prepared.challenge, fresh.challenge, "{error:?}");
                    assert_eq!(prepared.body, fresh.body, "{error:?}");
                }
                let rendered = challenge.render(&error);
                assert_eq!(
                    rendered.headers().get(WWW_AUTHENTICATE),
                    fresh.challenge.as_ref(),
                    "{error:?}"
                );
                assert_eq!(rendered.body(), &fresh.body, "{error:?}");
                assert_eq!(rendered.status(), error.status());
            }
        }
        // Every error of a fixed kind has its slot filled.
        assert_eq!(
            Challenge::default().inner.prepared.len(),
            fixed_errors().len()
        );
        for (i, error) in fixed_errors().iter().enumerate() {
            assert_eq!(fixed_slot(error), Some(i), "{error:?}");
        }
    }

    #[test]
    fn descriptions_use_only_rfc6750_characters() {
        // error-description = *( %x20-21 / %x23-5B / %x5D-7E )
        for e in every_error() {
            for b in e.description().bytes() {
                assert!(
                    b == 0x20
                        || b == 0x21
                        || (0x23..=0x5B).contains(&b)
                        || (0x5D..=0x7E).contains(&b),
                    "{e:?}: {:?}",
                    char::from(b)
                );
            }
        }
    }

    #[test]
    fn bodies_are_json_with_error_description_and_solution() {
        let c = Challenge::default();
        for e in every_error() {
            let r = c.render(&e);
            let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(v["error"], e.error_code());
            assert_eq!(v["error_description"], e.description());
            assert_eq!(v["solution"], e.solution());
            assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(r.status(), e.status());
            // RFC 6750 challenges belong to 400, 401 and insufficient_scope.
            let challenged = matches!(e.status().as_u16(), 400 | 401)
                || matches!(e, AuthError::InsufficientScope { .. });
            assert_eq!(
                r.headers().contains_key(WWW_AUTHENTICATE),
                challenged,
                "{e:?}"
            );
        }
    }

    #[test]
    fn challenge_attributes_appear_once_and_realm_is_quoted() {
        let c = Challenge::new("a \"quoted\" realm\n")
            .resource_metadata("https://x.test/.well-known/oauth-protected-resource");
        let v = c
            .header_value(&AuthError::InsufficientScope {
                required: "billing.write".into(),
            })
            .unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with(r#"Bearer realm="a \"quoted\" realm""#), "{v}");
        for attr in [
            "realm=",
            "error=",
            "error_description=",
            "scope=",
            "resource_metadata=",
        ] {
            assert_eq!(v.matches(attr).count(), 1, "{attr} in {v}");
        }
        assert_eq!(
            c.header_value(&AuthError::MissingToken).unwrap(),
            r#"Bearer realm="a \"quoted\" realm", resource_metadata="https://x.test/.well-known/oauth-protected-resource""#
        );
    }

    #[test]
    fn the_scope_hint_is_named_in_401_challenges_only() {
        let c = Challenge::new("billing")
            .scope("billing.read")
            .resource_metadata("https://x.test/m");
        assert_eq!(
            c.header_value(&AuthError::MissingToken).unwrap(),
            r#"Bearer realm="billing", scope="billing.read", resource_metadata="https://x.test/m""#
        );
        for error in every_error() {
            let Some(value) = c.header_value(&error) else {
                continue;
            };
            let value = value.to_str().unwrap();
            let hinted = value.contains(r#"scope="billing.read""#);
            assert_eq!(
                hinted,
                error.status() == StatusCode::UNAUTHORIZED,
                "{error:?}: {value}"
            );
            assert!(value.matches("scope=").count() <= 1, "{value}");
            // The prepared responses carry the hint exactly as rendered now.
            let rendered = c.render(&error);
            assert_eq!(
                rendered.headers().get(http::header::WWW_AUTHENTICATE),
                Some(&c.header_value(&error).unwrap())
            );
        }
    }

    #[test]
    fn throttled_responses_say_when_to_retry() {
        let r = Challenge::default().render(&AuthError::TooManyRequests {
            retry_after: std::time::Duration::from_millis(1500),
        });
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn expired_description_says_expired() {
        let v = Challenge::default()
            .header_value(&AuthError::ExpiredToken)
            .unwrap();
        assert!(v.to_str().unwrap().contains("expired"));
    }
}
