//! The OAuth side of the service: the token endpoint (authorization code
//! with PKCE, RFC 6749 §4.1.3 / RFC 7636, and refresh, §6), dynamic client
//! registration (RFC 7591), revocation (RFC 7009), introspection (RFC
//! 7662), protected resource metadata (RFC 9728) and authorization server
//! metadata (RFC 8414), all provided by the library over the service's
//! tokens. The authorization endpoint, which needs the user's login and
//! consent, is the dashboard's ([`tower_token_auth_dashboard`]).
//!
//! | route | needs |
//! |---|---|
//! | `POST /oauth/token` (`grant_type=authorization_code` or `refresh_token`, form-encoded, optional `resource`) | a code and its PKCE verifier, or a refresh token |
//! | `POST /oauth/register` (JSON client metadata) | nothing (capped per client network, throttled) |
//! | `POST /oauth/revoke` (`token=…`, form-encoded) | the token being revoked |
//! | `POST /oauth/introspect` (`token=…`, form-encoded) | the demo file's `introspection` login (HTTP Basic) |
//! | `GET /.well-known/oauth-protected-resource` | nothing |
//! | `GET /.well-known/oauth-authorization-server` | nothing |

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_token_auth::oauth::{
    AuthorizationServerMetadata, IntrospectionEndpoint, ProtectedResourceMetadata,
    RegistrationEndpoint, RevocationEndpoint, TokenEndpoint,
};
use tower_token_auth::PayRequestScopes;

use super::AppState;

/// The path of the RFC 9728 metadata document.
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The URL of the metadata document of the service at `base_url`, named in
/// every Bearer challenge (`resource_metadata`).
pub(super) fn metadata_url(base_url: &str) -> String {
    format!("{base_url}{METADATA_PATH}")
}

/// The path of the RFC 8414 metadata document.
const SERVER_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// `/oauth/token`, `/oauth/register`, `/oauth/revoke`, `/oauth/introspect`
/// and the two metadata documents.
pub(super) fn router(state: &AppState) -> Router<AppState> {
    let login = &state.introspection;
    let base = &state.base_url;
    // The service is its own authorization server: the issuer is its base
    // URL, and its endpoints are under it.
    let server = AuthorizationServerMetadata::<PayRequestScopes>::new(&**base)
        .authorization_endpoint(format!("{base}/oauth/authorize"))
        .registration_endpoint(format!("{base}/oauth/register"))
        .token_endpoint(format!("{base}/oauth/token"))
        .revocation_endpoint(format!("{base}/oauth/revoke"))
        .introspection_endpoint(format!("{base}/oauth/introspect"));
    let introspection = if login.password.is_empty() {
        IntrospectionEndpoint::with_caller_check(state.tokens.clone(), |_| false)
    } else {
        IntrospectionEndpoint::new(state.tokens.clone(), &login.username, &login.password)
    };
    Router::new()
        .route_service("/oauth/token", TokenEndpoint::new(state.tokens.clone()))
        .route_service(
            "/oauth/revoke",
            RevocationEndpoint::new(state.tokens.clone()),
        )
        .route_service("/oauth/introspect", introspection)
        .route_service(
            "/oauth/register",
            RegistrationEndpoint::new(state.tokens.clone()).peers(state.peers.clone()),
        )
        .route(METADATA_PATH, get(metadata))
        .route_service(SERVER_METADATA_PATH, server.into_service())
}

/// The RFC 9728 document: the service is its own authorization server,
/// unless it validates tokens by asking another one (`INTROSPECTION_URL`).
async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let document = ProtectedResourceMetadata::<PayRequestScopes>::new(&*state.resource)
        .authorization_server(&*state.authorization_server)
        .resource_name("PayRequest billing API (example)")
        .to_json();
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        document,
    )
}
