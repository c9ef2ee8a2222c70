//! The dashboard web page, Settings → API Tokens: the seed's token flow as
//! server-rendered HTML (maud templates, checked at compile time), a small
//! stylesheet and a few lines of plain JavaScript, all served from here.
//!
//! | route | does |
//! |---|---|
//! | `GET /dashboard/login` (`?next=/path`) | the login form (`Username`, `Password`, `Log in`) |
//! | `POST /dashboard/login` | 303 to `next` with a session cookie; 401 and the form again when the login is wrong |
//! | `POST /dashboard/logout` | ends the session |
//! | `GET /dashboard/settings/api-tokens` | the page: a form to create a token, the new token once, the list |
//! | `POST /dashboard/settings/api-tokens` | creates a token, 303 back to the page, which shows it once |
//! | `GET`/`POST /dashboard/settings/api-tokens/{id}/edit` | the scope form of an active personal access token / saves it |
//! | `POST /dashboard/settings/api-tokens/{id}/regenerate` | a new secret, shown once; the old one stops working |
//! | `GET`/`POST /dashboard/settings/api-tokens/{id}/delete` | the confirmation (without JavaScript) / deletes |
//! | `GET /dashboard/static/…` | the stylesheet and the script |
//! | `GET /oauth/authorize` | the consent page of an OAuth client's request (after the login) |
//! | `POST /oauth/authorize` | the user's `Allow` / `Deny`: 303 back to the client |
//!
//! The rules of the page:
//!
//! - The session is a [`tower_sessions`] cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` in the production profile) over an
//!   in-memory store; the id changes at login, and logging out deletes it.
//! - Every state-changing request carries a CSRF token in a hidden field,
//!   compared in constant time with the session's (the login form's with a
//!   cookie of its own, as there is no session yet); without it: 403.
//! - A new token travels from the POST to the page in the session, for
//!   exactly one render (post-redirect-get): never in a URL, never again
//!   after a reload.
//! - Every response sends `Cache-Control: no-store` (the static files
//!   `no-cache`), a strict `Content-Security-Policy` (no inline script or
//!   style: the page's script and stylesheet are same-origin files),
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! - A failed login answers 401 and carries `FailedAuthentication`, so the
//!   service's throttle counts it against the client (the routes are under
//!   it, see `app.rs`).
//!
//! The page works without CSS, and without JavaScript too: the script only
//! adds the copy button and opens the delete confirmation as a modal
//! `<dialog>`; without it, `Delete` leads to a confirmation page.

// Child modules by explicit path: see `app.rs`.
#[path = "consent.rs"]
mod consent;
#[path = "form.rs"]
mod form;
#[path = "login.rs"]
mod login;
#[path = "tokens.rs"]
mod tokens;
#[path = "views.rs"]
mod views;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_sessions::cookie::time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};

use super::AppState;

/// Where the token page is.
const TOKENS_PATH: &str = "/dashboard/settings/api-tokens";

/// Where the login form is.
const LOGIN_PATH: &str = "/dashboard/login";

/// The policy of every dashboard response: nothing but same-origin
/// stylesheets, scripts, images and form targets; no framing, no `<base>`.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A session ends after this long without a request.
const SESSION_IDLE: Duration = Duration::hours(1);

/// The dashboard's routes, with its session layer and security headers.
///
/// The session cookie is `Secure` in the production profile (HTTPS
/// required); its name then carries the `__Host-` prefix, which browsers
/// accept only on a `Secure`, host-only cookie of path `/`.
pub(super) fn router(state: &AppState) -> Router<AppState> {
    let production = state.https_required;
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name(session_cookie_name(production))
        .with_secure(production)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE));
    Router::new()
        .route("/dashboard", get(|| async { Redirect::to(TOKENS_PATH) }))
        .route("/dashboard/static/dashboard.css", get(stylesheet))
        .route("/dashboard/static/dashboard.js", get(script))
        .merge(login::router())
        .merge(tokens::router())
        .merge(consent::router())
        .layer(sessions)
        .layer(middleware::map_response(security_headers))
}

/// The session cookie's name in each profile.
const fn session_cookie_name(production: bool) -> &'static str {
    if production {
        "__Host-dashboard_session"
    } else {
        "dashboard_session"
    }
}

/// The headers of every dashboard response.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // A page may widen `form-action` for itself (the consent page does).
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("static/dashboard.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/dashboard.js"),
    )
}

/// A static file: revalidated on every use, so an edited example shows at
/// once.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}
