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
//! | not known to arrive over TLS ([`RequireHttpsLayer`](crate::require_https::RequireHttpsLayer)) | 403 | none | `https_required` |
//! | too many failed authentications ([`ThrottleLayer`](crate::throttle::ThrottleLayer)) | 429 + `Retry-After` | none | `too_many_requests` |
//!
//! Every rejection has a JSON body with `error`, `error_description` and a
//! `solution` hint, `Cache-Control: no-store`, and the [`AuthError`] in its
//! extensions so outer layers can inspect it. A [`Rejections`] renders it and
//! can hand it to a service's own function to replace the response.
//!
//! ```
//! use http::StatusCode;
//! use tower_token_auth::error::{AuthError, Rejections, InvalidTokenReason};
//!
//! let challenge = Rejections::new("billing");
//! let response = challenge.render(&AuthError::InvalidToken(InvalidTokenReason::Unknown));
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="billing", error="invalid_token", error_description="The access token is invalid or has been revoked.""#
//! );
//! assert!(response.extensions().get::<AuthError>().is_some());
//!
//! // A service can replace the response entirely.
//! let custom = Rejections::new("billing").on_rejection(|error, _default| {
//!     http::Response::builder()
//!         .status(error.status())
//!         .body(bytes::Bytes::from_static(b"nope"))
//!         .unwrap()
//! });
//! assert_eq!(custom.render(&AuthError::MissingToken).body().as_ref(), b"nope");
//! ```

mod render;

use std::sync::Arc;

use http::StatusCode;

pub(crate) use render::Prepared;
pub use render::Rejections;

/// A boxed error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed: the infrastructure's problem, for whoever runs
/// the service. The caller's mistakes are
/// [`TokenError`](crate::manager::TokenError)s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (connection refused, pool timed out).
    /// The middleware answers 503 `temporarily_unavailable`.
    #[error("token store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store answered with an error, or cannot hold a value.
    #[error("token store failed: {0}")]
    Backend(#[source] BoxError),
    /// The store is configured wrongly (a table prefix that is not a safe
    /// SQL identifier, …).
    #[error("token store misconfigured: {0}")]
    Misconfigured(String),
    /// The operating system's random number generator failed.
    #[error("could not generate a token: the random number generator failed")]
    Randomness,
}

impl From<crate::token::RandomnessError> for StoreError {
    fn from(_: crate::token::RandomnessError) -> Self {
        Self::Randomness
    }
}

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
    /// requires it ([`RequireHttpsLayer`](crate::require_https::RequireHttpsLayer)).
    #[error("the request did not arrive over HTTPS")]
    HttpsRequired,
    /// The client spent its budget of failed authentications
    /// ([`ThrottleLayer`](crate::throttle::ThrottleLayer)).
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
/// [`ThrottleLayer`](crate::throttle::ThrottleLayer) counts responses that
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

    /// A hint for the client (the body's `solution`), in words that name no
    /// product; replace the whole response with
    /// [`Rejections::on_rejection`] to say it in a service's own words.
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
            Self::ExpiredToken => "Refresh the access token, or create a new token, and retry.",
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

#[cfg(test)]
pub(crate) mod tests {
    use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};

    use super::*;

    /// One error of every kind, and the kinds with a payload again with
    /// another payload than [`render::fixed_errors`]' placeholders.
    pub(crate) fn every_error() -> Vec<AuthError> {
        let mut errors = render::fixed_errors().to_vec();
        errors.extend([
            AuthError::InsufficientScope {
                required: "billing.write".into(),
            },
            AuthError::StoreUnavailable(Arc::new(StoreError::Unavailable("down".into()))),
            AuthError::TooManyRequests {
                retry_after: std::time::Duration::from_millis(1500),
            },
        ]);
        errors
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
        let c = Rejections::default();
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
    fn expired_description_says_expired() {
        let v = Rejections::default()
            .header_value(&AuthError::ExpiredToken)
            .unwrap();
        assert!(v.to_str().unwrap().contains("expired"));
    }
}
