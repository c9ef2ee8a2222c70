//! Dynamic client registration (RFC 7591) for public clients.

use std::fmt;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use super::form::{
    endpoint_service, has_content_type, json_response, oauth_error, store_error, unless_post,
};
use crate::error::BoxError;
use crate::error::FailedAuthentication;
use crate::manager::TokenManager;
use crate::oauth::{ClientRegistration, RegistrationError};
use crate::peer::Peers;
use crate::scope::ScopeSet;
use crate::store::TokenBackend;

/// The largest registration body read.
const MAX_BODY: usize = 16 * 1024;

/// The registration endpoint (RFC 7591 §3) for public clients: `POST` a
/// JSON object of client metadata, get 201 with a `client_id`.
///
/// Accepted metadata: `redirect_uris` (required; each `https`, or `http` on
/// a loopback host for native apps, RFC 8252 §7.3), `client_name`,
/// `scope`, `grant_types` (within `authorization_code` and
/// `refresh_token`), `response_types` (`code`) and
/// `token_endpoint_auth_method` (`none`: clients are public and PKCE
/// protects their codes). Other fields are ignored. Errors are 400
/// `invalid_redirect_uri` or `invalid_client_metadata`; a source (the
/// client IP address, an IPv6 address counted by its /64) that already
/// holds its cap of live registrations gets 429. Registrations expire
/// after [`Lifetimes::client`](crate::token::Lifetimes::client).
///
/// Registration is open to anyone: put the brute-force
/// [`ThrottleLayer`](crate::throttle::ThrottleLayer) in front, which counts
/// refused registrations.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use tower::ServiceExt;
/// use tower_token_auth::oauth::RegistrationEndpoint;
/// use tower_token_auth::manager::TokenManager;
/// use tower_token_auth::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenManager::new(MemoryStore::new());
/// let request = Request::post("/oauth/register")
///     .header("content-type", "application/json")
///     .body(Full::new(Bytes::from(
///         r#"{"client_name":"MCP Billing Agent","redirect_uris":["http://127.0.0.1:33418/callback"]}"#,
///     )))?;
/// let response = RegistrationEndpoint::new(tokens.clone()).oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::CREATED);
/// let json: serde_json::Value =
///     serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
/// let client_id = json["client_id"].as_str().unwrap();
/// assert!(tokens.client(client_id).await?.is_some());
/// assert_eq!(json["token_endpoint_auth_method"], "none");
/// # Ok(())
/// # }
/// ```
pub struct RegistrationEndpoint<B> {
    tokens: TokenManager<B>,
    peers: Peers,
}

impl<B> Clone for RegistrationEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            peers: self.peers.clone(),
        }
    }
}

impl<B> fmt::Debug for RegistrationEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationEndpoint")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl<B: TokenBackend> RegistrationEndpoint<B> {
    /// An endpoint that registers clients with `tokens`.
    pub fn new(tokens: TokenManager<B>) -> Self {
        Self {
            tokens,
            peers: Peers::new(),
        }
    }

    /// How the client's address is found (trusted proxies): the source a
    /// registration is counted against.
    #[must_use]
    pub fn peers(mut self, peers: Peers) -> Self {
        self.peers = peers;
        self
    }

    async fn handle<Rb>(self, request: Request<Rb>) -> Response<Full<Bytes>>
    where
        Rb: Body + Send + 'static,
        Rb::Data: Send,
        Rb::Error: Into<BoxError>,
    {
        if let Some(response) = unless_post(&request) {
            return response;
        }
        if !has_content_type(&request, "application/json") {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "The body must be application/json.",
            );
        }
        let source = match self.peers.client_ip(&request) {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Some(IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .map(|v4| v4.to_string())
                .unwrap_or_default(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => "unknown".to_owned(),
        };
        let Ok(body) = Limited::new(request.into_body(), MAX_BODY).collect().await else {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "The body is too large or could not be read.",
            );
        };
        let metadata: Value = match serde_json::from_slice(&body.to_bytes()) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "invalid_client_metadata",
                    "The body must be a JSON object.",
                )
            }
        };
        let registration = match parse::<B::Scopes>(&metadata, source) {
            Ok(r) => r,
            Err((code, description)) => {
                return refused(StatusCode::BAD_REQUEST, code, &description)
            }
        };
        match self.tokens.register_client(registration).await {
            Ok(client) => {
                let issued_at = client
                    .registered_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let expires_at = client
                    .expires_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let body = json!({
                    "client_id": client.client_id,
                    "client_id_issued_at": issued_at,
                    "client_secret_expires_at": 0,
                    "client_name": client.name,
                    "redirect_uris": client.redirect_uris,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                    "scope": client.scopes.scope_string(),
                    "registration_expires_at": expires_at,
                });
                json_response(StatusCode::CREATED, body.to_string())
            }
            Err(RegistrationError::InvalidRedirectUri(why)) => {
                refused(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &why)
            }
            Err(RegistrationError::InvalidClientMetadata(why)) => {
                refused(StatusCode::BAD_REQUEST, "invalid_client_metadata", &why)
            }
            Err(RegistrationError::TooMany) => refused(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_client_metadata",
                "This network holds too many client registrations; reuse one or wait until they expire.",
            ),
            Err(RegistrationError::Store(error)) => store_error(&error),
        }
    }
}

/// A refused registration: counted by the throttle in front.
fn refused(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    let mut response = oauth_error(status, code, description);
    response.extensions_mut().insert(FailedAuthentication);
    response
}

type Refusal = (&'static str, String);

fn metadata_error(why: impl Into<String>) -> Refusal {
    ("invalid_client_metadata", why.into())
}

/// The registration of a metadata object, or the refusal.
fn parse<S: ScopeSet>(metadata: &Value, source: String) -> Result<ClientRegistration<S>, Refusal> {
    let strings = |name: &str| -> Result<Option<Vec<String>>, Refusal> {
        match metadata.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| metadata_error(format!("{name} must be an array of strings"))),
            Some(_) => Err(metadata_error(format!(
                "{name} must be an array of strings"
            ))),
        }
    };
    let string = |name: &str| -> Result<Option<&str>, Refusal> {
        match metadata.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(metadata_error(format!("{name} must be a string"))),
        }
    };
    let redirect_uris = match strings("redirect_uris") {
        Ok(Some(uris)) => uris,
        Ok(None) => {
            return Err((
                "invalid_redirect_uri",
                "redirect_uris is required".to_owned(),
            ))
        }
        Err((_, why)) => return Err(("invalid_redirect_uri", why)),
    };
    if let Some(method) = string("token_endpoint_auth_method")? {
        if method != "none" {
            return Err(metadata_error(
                "token_endpoint_auth_method must be none: clients are public and use PKCE",
            ));
        }
    }
    if let Some(grants) = strings("grant_types")? {
        if grants
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(metadata_error(
                "grant_types are authorization_code and refresh_token",
            ));
        }
    }
    if let Some(types) = strings("response_types")? {
        if types.iter().any(|t| t != "code") {
            return Err(metadata_error("response_types is code"));
        }
    }
    let mut registration = ClientRegistration::new(redirect_uris, source);
    if let Some(name) = string("client_name")? {
        registration = registration.name(name);
    }
    if let Some(scope) = string("scope")? {
        let scopes = S::parse_scope(scope)
            .map_err(|_| metadata_error("scope names a scope this server does not have"))?;
        if !scopes.is_empty() {
            registration = registration.scopes(scopes);
        }
    }
    Ok(registration)
}

endpoint_service!(RegistrationEndpoint);
