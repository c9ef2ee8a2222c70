//! The billing API example: the PayRequest demo service as a library, the
//! router, its state and the demo credentials, without `main`.
//!
//! [`app`] builds the whole service from an [`AppState`]; the binary
//! (`src/main.rs`) serves it on a socket, and the tests under `tests/`
//! drive it in memory:
//!
//! ```no_run
//! # async fn run() -> Result<(), billing_api::demo::DemoError> {
//! let state = billing_api::AppState::new()?;
//! let demo = billing_api::demo::issue(&state).await?;
//! let router = billing_api::app(state);
//! # drop((demo, router));
//! # Ok(())
//! # }
//! ```
//!
//! Every route group is its own module returning a `Router<AppState>`;
//! [`app`] merges them, the dashboard pages of
//! [`tower_token_auth_dashboard`] among them.

mod api;
pub mod demo;
mod manage;
mod oauth;
mod public;
pub mod serve;
mod settings;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::header::X_CONTENT_TYPE_OPTIONS;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_token_auth::manager::{IssuePolicy, TokenManager, UsageTracker};
use tower_token_auth::peer::Peers;
use tower_token_auth::require_https::RequireHttpsLayer;
use tower_token_auth::store::{TokenBackend, TokenStore};
use tower_token_auth::throttle::ThrottleLayer;
use tower_token_auth::{MemoryStore, PayRequestScopes, Rejections, TokenAuthLayer};
use tower_token_auth_dashboard::{Dashboard, Login};
use tracing::Level;

use demo::{DashboardLogin, DEMO_OWNER};

/// Where the service's tokens are stored: in memory by default, SQLite or
/// PostgreSQL when `DATABASE_URL` is set (features `sqlite`, `postgres`).
/// Chosen at start-up, so it is a trait object; the manager over it is
/// generic over it.
pub type Backend = Arc<dyn TokenBackend<Scopes = PayRequestScopes>>;

/// The service's tokens: the lifecycle engine (issue, list, revoke,
/// refresh) over the backend. The middleware and the OAuth endpoints are
/// built over it, so they check tokens with its format and clock.
pub type Tokens = TokenManager<Backend>;

/// Where the `/v1` routes look tokens up: the service's own tokens, or a
/// remote RFC 7662 endpoint when `INTROSPECTION_URL` is set.
pub type Lookup = Arc<dyn TokenStore<Scopes = PayRequestScopes>>;

/// The authentication layer of the service, shared by every route group.
pub type Auth = TokenAuthLayer<Lookup>;

/// The realm named in every `WWW-Authenticate` challenge.
pub const REALM: &str = "billing";

/// Failed authentications a client (an IPv4 address, an IPv6 /64) may make
/// per minute, in bursts of as many; then one more every 6 s. Bad bearer
/// tokens, refused refresh grants and wrong dashboard passwords all count.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// The largest request body any route reads: 64 KiB (413 beyond). A JSON
/// object of the management API or the `/v1` routes is far smaller; the
/// OAuth endpoints and the dashboard's forms have smaller limits of their
/// own.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share: the tokens, the authentication layer built over
/// them, the dashboard login and the public URL of the service.
#[derive(Clone)]
pub struct AppState {
    /// The tokens. The middleware looks tokens up here; the management side
    /// (issue, list, revoke) goes through here.
    pub tokens: Tokens,
    /// The bearer-token layer; `auth.require(…)` builds per-route scope
    /// checks with the same challenge.
    pub auth: Auth,
    /// The dashboard login: a stand-in for the host application's own login
    /// (HTTP Basic), used by the routes that manage tokens.
    pub dashboard: Arc<DashboardLogin>,
    /// The URL clients reach the service at, e.g. `http://127.0.0.1:3000`:
    /// the issuer of its tokens and the base of its endpoints.
    pub base_url: Arc<str>,
    /// The authorization server the RFC 9728 document names: the service
    /// itself (its base URL), or, when it validates tokens by asking another
    /// server, that server's issuer.
    pub authorization_server: Arc<str>,
    /// This server's resource identifier (RFC 8707, RFC 9728 `resource`):
    /// the tokens it issues are for it, and tokens for another resource
    /// are refused. `RESOURCE`, by default the base URL.
    pub resource: Arc<str>,
    /// The login of callers of `/oauth/introspect` (RFC 7662), random per
    /// process, written to the demo file.
    pub introspection: Arc<DashboardLogin>,
    /// Who is on the other end: the peer address, and the proxies whose
    /// forwarding headers count (`TRUSTED_PROXIES`). The HTTPS rule and the
    /// throttle share it.
    pub peers: Peers,
    /// The production profile: every route but `/health` refuses requests
    /// not known to arrive over TLS.
    pub https_required: bool,
    /// Counts failed authentications per client on every route that
    /// authenticates: one budget across the API, the OAuth endpoints and
    /// the dashboard.
    pub throttle: ThrottleLayer,
}

/// The challenge of every rejection: the realm, the RFC 9728 metadata
/// document, and, in a 401, the scope a client without a token should ask
/// for (the seed's default, `billing.read`): an MCP client requests it
/// rather than every scope the metadata lists.
fn challenge(base_url: &str) -> Rejections {
    Rejections::new(REALM)
        .scope("billing.read")
        .resource_metadata(&oauth::metadata_url(base_url))
}

/// The default public URL, of a state that serves no socket.
const DEFAULT_BASE_URL: &str = "http://127.0.0.1:3000";

impl AppState {
    /// Tokens in a fresh in-memory store and a random dashboard password,
    /// served at the default URL.
    pub fn new() -> Result<Self, demo::DemoError> {
        Ok(Self::with_store(
            tokens_for(Arc::new(MemoryStore::new()), DEFAULT_BASE_URL),
            DashboardLogin::generate()?,
            DEFAULT_BASE_URL,
        ))
    }

    /// State over existing tokens and login, served at `base_url`. The
    /// resource is the first of the manager's default audience (see
    /// [`tokens_for`]); a manager with none issues unbound tokens, and the
    /// layer then checks no audience (the resource is then the base URL).
    pub fn with_store(tokens: Tokens, dashboard: DashboardLogin, base_url: &str) -> Self {
        let base_url: Arc<str> = base_url.trim_end_matches('/').into();
        // The layer checks audiences exactly when the manager binds the
        // tokens it issues to a resource: the two cannot disagree.
        let bound: Option<Arc<str>> = tokens
            .policy()
            .get_default_audience()
            .first()
            .map(|r| r.as_str().into());
        let resource = bound.clone().unwrap_or_else(|| Arc::clone(&base_url));
        let challenge = challenge(&base_url);
        // The manager's format and clock: tokens are checked as they were
        // minted.
        let policy = tokens.policy();
        let lookup: Lookup = Arc::new(tokens.clone());
        let mut auth = TokenAuthLayer::over(lookup, Some(policy.get_format().clone()))
            .clock(Arc::clone(policy.get_clock()))
            .rejections(challenge.clone());
        if let Some(bound) = &bound {
            auth = auth.resource(&**bound);
        }
        let throttle = ThrottleLayer::per_minute(
            NonZeroU32::new(FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
        )
        .rejections(challenge);
        Self {
            tokens,
            auth,
            dashboard: Arc::new(dashboard),
            // With no random password (the OS generator failed), no caller
            // is admitted: an empty password refuses everyone.
            introspection: Arc::new(DashboardLogin {
                username: "introspection".to_owned(),
                password: DashboardLogin::generate()
                    .map(|login| login.password)
                    .unwrap_or_default(),
            }),
            authorization_server: Arc::clone(&base_url),
            base_url,
            resource,
            peers: Peers::new(),
            https_required: false,
            throttle,
        }
    }

    /// Trusts the forwarding headers of the proxies `peers` names: for the
    /// HTTPS rule, and for the throttle to tell the clients behind them
    /// apart.
    pub fn peers(mut self, peers: Peers) -> Self {
        self.throttle = self.throttle.peers(peers.clone());
        self.peers = peers;
        self
    }

    /// The production profile: every route but `/health` refuses requests
    /// not known to arrive over TLS (403 `https_required`), before any token
    /// is read.
    pub fn require_https(mut self) -> Self {
        self.https_required = true;
        self
    }

    /// The `/v1` routes validate tokens by asking `remote` (an RFC 7662
    /// endpoint, cached) of the authorization server `issuer` instead of
    /// the service's own store: the mode of a service that holds no tokens.
    /// Its RFC 9728 document names `issuer`, so that a client discovering
    /// it gets its tokens where they can be validated. Audience and
    /// challenge stay the same.
    pub fn validate_remotely(mut self, remote: Lookup, issuer: &str) -> Self {
        self.authorization_server = issuer.trim_end_matches('/').into();
        let challenge = challenge(&self.base_url);
        // The remote server's tokens are opaque here: every well-formed
        // bearer token is asked about.
        self.auth = TokenAuthLayer::over(remote, None)
            .rejections(challenge)
            .resource(&*self.resource);
        self
    }

    /// Allows each client `failures` failed authentications per minute
    /// (`FAILED_AUTH_PER_MINUTE`) instead of [`FAILURES_PER_MINUTE`]; counts
    /// start afresh.
    pub fn failed_auth_per_minute(mut self, failures: NonZeroU32) -> Self {
        self.throttle = ThrottleLayer::per_minute(failures)
            .rejections(challenge(&self.base_url))
            .peers(self.peers.clone());
        self
    }

    /// Records when tokens are used, at most once per token per `interval`,
    /// written by a task spawned on the current tokio runtime; listings show
    /// it as `last_used_at`.
    pub fn track_usage(mut self, interval: Duration) -> Self {
        let (tracker, worker) = UsageTracker::new(self.tokens.clone(), interval);
        tokio::spawn(worker.run());
        self.auth = self.auth.track_usage(tracker);
        self
    }
}

/// `docs/serving.md`, the guide to serving the middleware within limits:
/// its example is compiled as a test of this package.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/serving.md")]
pub struct ServingGuide;

/// The service's token manager over `backend`: tokens it issues (the
/// dashboard's, the demo's, the grants') are for `resource` (RFC 8707).
pub fn tokens_for(backend: Backend, resource: &str) -> Tokens {
    TokenManager::with_policy(
        backend,
        IssuePolicy::default().default_audience([resource.trim_end_matches('/')]),
    )
}

/// The whole service: public routes, the bearer-protected `/v1` API, the
/// token endpoints and the dashboard (JSON API and web page), a JSON 404
/// for everything else, and request logging.
///
/// Every body is limited to [`BODY_LIMIT`] (413 beyond, before any
/// credential is looked at when the `Content-Length` says so), and every
/// answer carries `X-Content-Type-Options: nosniff`. Serve it with
/// [`serve::serve`], which bounds the connections.
///
/// Every route but `/health` is throttled (failed authentications per
/// client) and, in production, requires HTTPS. The layers are added with
/// `route_layer`, so they run only for requests that match a route: an
/// unknown path is a 404 with or without a token.
pub fn app(state: AppState) -> Router {
    let mut guarded = Router::new()
        .merge(api::router(&state.auth))
        .merge(oauth::router(&state))
        .merge(settings::router())
        .merge(dashboard(&state).router())
        .route_layer(state.throttle.clone());
    if state.https_required {
        let https = RequireHttpsLayer::new(state.peers.clone()).rejections(Rejections::new(REALM));
        guarded = guarded.route_layer(https);
    }
    Router::new()
        .merge(public::router())
        .merge(guarded)
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::map_response(nosniff))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// The dashboard pages (Settings → API Tokens, the consent page of
/// `/oauth/authorize`) over the service's tokens, for the demo login.
fn dashboard(state: &AppState) -> Dashboard<Backend> {
    let login =
        Login::new(&state.dashboard.username, &state.dashboard.password).for_owner(DEMO_OWNER);
    Dashboard::new(state.tokens.clone(), &*state.base_url, login)
        .secure_cookies(state.https_required)
        .subtitle("dashboard (billing_api example)")
        .login_note(
            "The demo's login is in the file that --demo-tokens wrote: \
             jq '.[] | select(.label == \"dashboard\")' /tmp/tokens.json",
        )
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

/// No answer of the service is to be read as anything but its declared
/// type.
async fn nosniff(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
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
