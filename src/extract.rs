//! axum extractors for [`Principal`] (feature `axum`).
//!
//! `Principal` takes the principal that [`TokenAuthLayer`](crate::TokenAuthLayer)
//! put into the request; `Option<Principal>` is `None` for a request that
//! passed an [optional](crate::TokenAuthLayer::optional) layer without
//! credentials. Using `Principal` on a route with no authentication layer in
//! front is a bug in the service, answered with a 500 that names the missing
//! layer.
//!
//! Add the layers with [`Router::route_layer`](https://docs.rs/axum/latest/axum/struct.Router.html#method.route_layer),
//! not `layer`: `route_layer` runs only for requests that matched a route,
//! so an unknown path stays a 404 instead of turning into a 401.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_token_auth::{MemoryStore, Principal, TokenAuthLayer, TokenManager};
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//!
//! async fn me(principal: Principal<PayRequestScopes>) -> String {
//!     format!("{} holds {}", principal.name(), principal.scopes().scope_string())
//! }
//!
//! async fn invoices(_: Principal<PayRequestScopes>) -> &'static str {
//!     "[]"
//! }
//!
//! let auth = TokenAuthLayer::new(TokenManager::new(MemoryStore::new()));
//! let app: Router = Router::new()
//!     .merge(Router::new().route("/v1/me", get(me)))
//!     .merge(
//!         Router::new()
//!             .route("/v1/invoices", get(invoices))
//!             .route_layer(auth.require(PayRequestScopes::BILLING_READ)),
//!     )
//!     .route_layer(auth);
//! ```

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::principal::Principal;
use crate::scope::ScopeSet;

/// The rejection of the [`Principal`] extractor: the route has no
/// [`TokenAuthLayer`](crate::TokenAuthLayer) in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no Principal in the request: add tower_token_auth::TokenAuthLayer in front of this route \
     (or use Option<Principal> behind an optional layer)"
)]
pub struct MissingPrincipal;

impl MissingPrincipal {
    /// Always 500: a missing layer is a bug in the service, not the client.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> Response {
        (self.status(), self.to_string()).into_response()
    }
}

impl<S: ScopeSet, State: Send + Sync> FromRequestParts<State> for Principal<S> {
    type Rejection = MissingPrincipal;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal<S>>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}

impl<S: ScopeSet, State: Send + Sync> OptionalFromRequestParts<State> for Principal<S> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal<S>>().cloned())
    }
}
