//! The OAuth side of the service: the refresh grant (RFC 6749 §6),
//! revocation (RFC 7009) and protected resource metadata (RFC 9728), all
//! provided by the library over the service's tokens.
//!
//! | route | needs |
//! |---|---|
//! | `POST /oauth/token` (`grant_type=refresh_token`, form-encoded) | a refresh token |
//! | `POST /oauth/revoke` (`token=…`, form-encoded) | the token being revoked |
//! | `GET /.well-known/oauth-protected-resource` | nothing |

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_token_auth::oauth::{ProtectedResourceMetadata, RevocationEndpoint, TokenEndpoint};
use tower_token_auth::PayRequestScopes;

use super::AppState;

/// The path of the RFC 9728 metadata document.
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The URL of the metadata document of the service at `base_url`, named in
/// every Bearer challenge (`resource_metadata`).
pub(super) fn metadata_url(base_url: &str) -> String {
    format!("{base_url}{METADATA_PATH}")
}

/// `/oauth/token`, `/oauth/revoke` and the metadata document.
pub(super) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route_service("/oauth/token", TokenEndpoint::new(state.tokens.clone()))
        .route_service(
            "/oauth/revoke",
            RevocationEndpoint::new(state.tokens.clone()),
        )
        .route(METADATA_PATH, get(metadata))
}

/// The service is its own authorization server: its token endpoint is
/// under the same base URL.
async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let document = ProtectedResourceMetadata::<PayRequestScopes>::new(&*state.base_url)
        .authorization_server(&*state.base_url)
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
