//! The billing API: state, router and demo credentials, without `main`.
//!
//! [`app`] builds the whole service from an [`AppState`]; `main.rs` serves
//! it on a socket and tests drive it in memory:
//!
//! ```ignore
//! #[path = "../examples/billing_api/app.rs"]
//! mod app;
//!
//! let state = app::AppState::new()?;
//! let demo = app::demo::issue(&state).await?;
//! let router = app::app(state);
//! ```
//!
//! Every route group is its own module returning a `Router<AppState>`;
//! [`app`] merges them. A new group (a token endpoint, a dashboard) is one
//! more module and one more `merge`.

// Child modules are loaded by explicit path so that this file works both as
// `mod app;` of `main.rs` and as `#[path = "…/app.rs"] mod app;` of a test.
#[path = "api.rs"]
mod api;
#[path = "demo.rs"]
pub mod demo;
#[path = "public.rs"]
mod public;

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_token_auth::{Challenge, MemoryStore, TokenAuthLayer};
use tracing::Level;

use demo::DashboardLogin;

/// The token store of the service.
pub type Store = MemoryStore;

/// The authentication layer of the service, shared by every route group.
pub type Auth = TokenAuthLayer<Store>;

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "billing";

/// What the handlers share: the token store, the authentication layer built
/// over it, and the dashboard login.
#[derive(Clone)]
pub struct AppState {
    /// Where tokens live. The middleware looks tokens up here; the
    /// management side (issue, list, revoke) writes here.
    pub store: Store,
    /// The bearer-token layer; `auth.require(…)` builds per-route scope
    /// checks with the same challenge.
    pub auth: Auth,
    /// The dashboard login: a stand-in for the host application's own login
    /// (HTTP Basic), used by the routes that manage tokens.
    pub dashboard: Arc<DashboardLogin>,
}

impl AppState {
    /// A fresh in-memory store and a random dashboard password.
    pub fn new() -> Result<Self, demo::DemoError> {
        Ok(Self::with_store(
            MemoryStore::new(),
            DashboardLogin::generate()?,
        ))
    }

    /// State over an existing store and login.
    pub fn with_store(store: Store, dashboard: DashboardLogin) -> Self {
        let auth = TokenAuthLayer::new(store.clone()).challenge(Challenge::new(REALM));
        Self {
            store,
            auth,
            dashboard: Arc::new(dashboard),
        }
    }
}

/// The whole service: public routes, the bearer-protected `/v1` API, a JSON
/// 404 for everything else, and request logging.
///
/// Authentication is added with `route_layer`, so it runs only for requests
/// that match a route: an unknown path is a 404 with or without a token.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(public::router())
        .merge(api::router(&state.auth))
        .fallback(not_found)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The span of one request: method and matched route only.
///
/// Neither the raw path nor the query is recorded, so a token a client puts
/// into the URL by mistake never reaches the logs.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<no route>", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), route)
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "No route matches this path.",
    )
}

/// A JSON error body in the shape of the middleware's rejections.
pub fn error_response(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}
