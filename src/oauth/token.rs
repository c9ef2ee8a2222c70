//! The token endpoint (RFC 6749 §3.2): the authorization code grant with
//! PKCE and the refresh grant.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;

use super::form::{endpoint_service, json_response, oauth_error, read_form, store_error, Form};
use super::grant::distinct_resources;
use crate::error::{BoxError, FailedAuthentication};
use crate::json::escape_into;
use crate::manager::{GrantError, InvalidGrantReason, TokenManager, TokenPair};
use crate::oauth::CodeExchange;
use crate::scope::ScopeSet;
use crate::store::TokenBackend;
use crate::token::{TokenDigest, TokenKind};

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

impl<B> Clone for TokenEndpoint<B> {
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
        let Some(resources) = distinct_resources(form.all("resource")) else {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "Too many resources are requested.",
            )));
        };
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
        // A public client names itself (RFC 6749 §6); the grant must be its.
        let client_id = match form.one("client_id") {
            Ok(client_id) => client_id,
            Err(repeated) => return repeated.response(),
        };
        let policy = self.tokens.policy();
        if policy.get_format().check(token) != Ok(TokenKind::Refresh) {
            return grant_error(&GrantError::InvalidGrant(InvalidGrantReason::Malformed));
        }
        let digest = TokenDigest::of(token);
        match self
            .tokens
            .refresh_by(&digest, client_id, scopes, &resources)
            .await
        {
            Ok(pair) => success(&pair, policy.now()),
            Err(error) => grant_error(&error),
        }
    }
}

endpoint_service!(TokenEndpoint);

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
