//! The Settings → API Tokens page and the OAuth consent page of
//! [`tower-token-auth`](tower_token_auth), as axum routes: creating,
//! listing, editing, regenerating and deleting API tokens, and granting an
//! OAuth client access, as server-rendered HTML (maud templates, checked at
//! compile time),
//! a small stylesheet and a few lines of plain JavaScript, all served by
//! this crate.
//!
//! A [`Dashboard`] holds the service's [`TokenManager`], the one
//! [`Login`] that may use the pages, and a few settings;
//! [`Dashboard::router`] gives its routes, ready to merge into the host
//! application's router:
//!
//! ```no_run
//! use tower_token_auth::{MemoryStore, PayRequestScopes, TokenManager};
//! use tower_token_auth_dashboard::{Dashboard, Login};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let tokens = TokenManager::new(MemoryStore::<PayRequestScopes>::new());
//! let login = Login::new("admin", "correct horse battery staple").for_owner("user-1");
//! let dashboard = Dashboard::new(tokens.clone(), "https://billing.example", login)
//!     .secure_cookies(true);
//! let app = axum::Router::new().merge(dashboard.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
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
//! The routes are absolute paths: merge them (do not nest them), behind
//! whatever the application puts in front of its other pages (an HTTPS
//! rule, a throttle).
//!
//! The words and ids a user, or a browser test, goes by stay as they are:
//! the login form's fields `Username` and `Password` and its button
//! `Log in`; `Log out`; the create form's `Name`, one checkbox per scope
//! (its `value` the scope's name, its label the name and description) and
//! `Create`; the new token as the text of `#new-token`; each row's `Edit`
//! (scope checkboxes and `Save`), `Regenerate` and `Delete` (a `<dialog>`
//! with `Confirm` and `Cancel`); on the consent page, the requested scopes
//! as checked boxes and `Allow` / `Deny`.
//!
//! The rules of the pages:
//!
//! - The session is a [`tower_sessions`] cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` with [`Dashboard::secure_cookies`]) over an
//!   in-memory store; the id changes at login, and logging out deletes it.
//!   A session ends after an hour without a request, and expired sessions
//!   are deleted from the store (every minute, by a task the router spawns
//!   on its first request, on the tokio runtime serving it), not only
//!   ignored.
//! - Every state-changing request carries a CSRF token in a hidden field,
//!   compared in constant time with the session's (the login form's with a
//!   cookie of its own, as there is no session yet); without it: 403. The
//!   token is checked before anything else is done with the form, and a
//!   form body is at most 16 KiB (413 beyond).
//! - A new token travels from the POST to the page in the session, for
//!   exactly one render (post-redirect-get): never in a URL, never again
//!   after a reload.
//! - Every response sends `Cache-Control: no-store` (the static files
//!   `no-cache`), a strict `Content-Security-Policy` (no inline script or
//!   style: the page's script and stylesheet are same-origin files),
//!   `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! - A failed login answers 401 and carries
//!   [`FailedAuthentication`](tower_token_auth::error::FailedAuthentication),
//!   so a throttle of failed authentications in front of the routes
//!   (`tower_token_auth::throttle::ThrottleLayer`, feature `throttle`)
//!   counts it against the client.
//!
//! The pages work without CSS, and without JavaScript too: the script only
//! adds the copy button and opens the delete confirmation as a modal
//! `<dialog>`; without it, `Delete` leads to a confirmation page.
//!
//! The scopes are [`PayRequestScopes`], each shown with its description
//! from the PayRequest API's documentation.

mod consent;
mod form;
mod login;
mod sessions;
mod tokens;
mod views;

use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration as StdDuration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::cookie::time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_token_auth::manager::TokenManager;
use tower_token_auth::oauth::AuthorizationEndpoint;
use tower_token_auth::store::TokenBackend;
use tower_token_auth::PayRequestScopes;

/// Where the token page is.
pub const TOKENS_PATH: &str = "/dashboard/settings/api-tokens";

/// Where the login form is.
pub const LOGIN_PATH: &str = "/dashboard/login";

/// Where the authorization endpoint (the consent page) is.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// The policy of every dashboard response: nothing but same-origin
/// stylesheets, scripts, images and form targets; no framing, no `<base>`.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A session ends after this long without a request.
const SESSION_IDLE: Duration = Duration::hours(1);

/// The largest form body the pages read (413 beyond): a form of the
/// dashboard is a few hundred bytes.
const FORM_LIMIT: usize = 16 * 1024;

/// The dashboard: the token page and the consent page over a
/// [`TokenManager`], for the one [`Login`] that may use them.
///
/// Build it with [`new`](Self::new) and the settings methods, then merge
/// [`router`](Self::router) into the application. Cloning is cheap.
pub struct Dashboard<B> {
    inner: Arc<Inner<B>>,
}

/// What the handlers share.
struct Inner<B> {
    tokens: TokenManager<B>,
    authorize: AuthorizationEndpoint<B>,
    login: Login,
    secure_cookies: bool,
    product_name: String,
    subtitle: String,
    login_note: Option<String>,
}

impl<B> Clone for Inner<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            authorize: self.authorize.clone(),
            login: self.login.clone(),
            secure_cookies: self.secure_cookies,
            product_name: self.product_name.clone(),
            subtitle: self.subtitle.clone(),
            login_note: self.login_note.clone(),
        }
    }
}

impl<B> Clone for Dashboard<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B> fmt::Debug for Dashboard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("login", &self.inner.login)
            .field("authorize", &self.inner.authorize)
            .field("secure_cookies", &self.inner.secure_cookies)
            .field("product_name", &self.inner.product_name)
            .finish_non_exhaustive()
    }
}

impl<B: TokenBackend<Scopes = PayRequestScopes>> Dashboard<B> {
    /// A dashboard over `tokens` whose consent page answers for the
    /// authorization server `issuer` (its RFC 8414 `issuer`, sent back to
    /// clients as `iss`), used by `login`.
    ///
    /// Cookies are not `Secure` until [`secure_cookies`](Self::secure_cookies)
    /// says so.
    pub fn new(tokens: TokenManager<B>, issuer: impl Into<String>, login: Login) -> Self {
        let authorize = AuthorizationEndpoint::new(tokens.clone(), issuer);
        Self {
            inner: Arc::new(Inner {
                tokens,
                authorize,
                login,
                secure_cookies: false,
                product_name: "PayRequest".to_owned(),
                subtitle: "dashboard".to_owned(),
                login_note: None,
            }),
        }
    }

    /// Whether the cookies are `Secure`: on for a service served over
    /// HTTPS (browsers then send them over HTTPS only). The session cookie
    /// then carries the `__Host-` prefix, which browsers accept only on a
    /// `Secure`, host-only cookie of path `/`.
    pub fn secure_cookies(self, secure: bool) -> Self {
        self.with(|inner| inner.secure_cookies = secure)
    }

    /// The product the pages belong to, in every title and heading
    /// (default `PayRequest`).
    pub fn product_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|inner| inner.product_name = name)
    }

    /// The words after the product name in the page header (default
    /// `dashboard`).
    pub fn subtitle(self, subtitle: impl Into<String>) -> Self {
        let subtitle = subtitle.into();
        self.with(|inner| inner.subtitle = subtitle)
    }

    /// A line of help under the login form, e.g. where a demo's login is
    /// written (default none).
    pub fn login_note(self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.with(|inner| inner.login_note = Some(note))
    }

    /// The token manager the pages act on.
    pub fn tokens(&self) -> &TokenManager<B> {
        &self.inner.tokens
    }

    /// The dashboard's routes (see the [crate docs](crate)), with its
    /// session layer and security headers, for any router state.
    ///
    /// Each call makes a new session store: call it once per application.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.router_over(sessions::Sessions::default())
    }

    /// [`router`](Self::router) over the session store `store`.
    fn router_over<S>(&self, store: sessions::Sessions) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let secure = self.inner.secure_cookies;
        // The task that deletes expired sessions starts with the first
        // request, on the runtime that serves it.
        let sweeper = Arc::new(Once::new());
        let first_request = {
            let store = store.clone();
            move |request: Request, next: Next| {
                sweeper.call_once(|| store.spawn_sweeper(sessions::SWEEP_PERIOD));
                next.run(request)
            }
        };
        let sessions = SessionManagerLayer::new(store)
            .with_name(session_cookie_name(secure))
            .with_secure(secure)
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
            .layer(DefaultBodyLimit::max(FORM_LIMIT))
            .layer(middleware::map_response_with_state(
                self.clone(),
                render_problems::<B>,
            ))
            .layer(sessions)
            .layer(middleware::from_fn(first_request))
            .layer(middleware::map_response(security_headers))
            .with_state(self.clone())
    }

    /// Changes a setting (of a copy, when the dashboard is shared already).
    fn with(mut self, change: impl FnOnce(&mut Inner<B>)) -> Self {
        change(Arc::make_mut(&mut self.inner));
        self
    }
}

impl<B> Dashboard<B> {
    /// The words of the page frame.
    fn brand(&self) -> views::Brand<'_> {
        views::Brand {
            product: &self.inner.product_name,
            subtitle: &self.inner.subtitle,
        }
    }
}

/// The one user who may log in to the dashboard, and whose tokens the pages
/// manage: a stand-in for the host application's own login.
///
/// The password is compared in constant time; an empty password admits
/// nobody. `Debug` does not show it.
#[derive(Clone)]
pub struct Login {
    username: String,
    password: String,
    owner: String,
}

impl Login {
    /// The login `username` / `password`, managing the tokens of the owner
    /// `username` until [`for_owner`](Self::for_owner) names another.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        let username = username.into();
        Self {
            owner: username.clone(),
            username,
            password: password.into(),
        }
    }

    /// The owner ([`IssueRequest`](tower_token_auth::IssueRequest)'s
    /// `owner`) whose tokens the logged-in user sees and creates.
    pub fn for_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The owner of the tokens this login manages.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether `username` and `password` are this login's, in time that
    /// does not depend on where they differ: both sides are hashed to a
    /// fixed length first, and both comparisons always run. An empty
    /// password never matches.
    pub fn matches(&self, username: &str, password: &str) -> bool {
        let digest = |text: &str| Sha256::digest(text.as_bytes());
        let user = digest(username).ct_eq(&digest(&self.username));
        let pass = digest(password).ct_eq(&digest(&self.password));
        bool::from(user & pass) && !self.password.is_empty()
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("owner", &self.owner)
            .finish()
    }
}

/// The session cookie's name, with and without `Secure`.
const fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-dashboard_session"
    } else {
        "dashboard_session"
    }
}

/// Writes the page of a [`Problem`](views::Problem) a handler or an
/// extractor answered with, in the dashboard's frame.
async fn render_problems<B>(State(dashboard): State<Dashboard<B>>, response: Response) -> Response {
    let Some(problem) = response.extensions().get::<views::Problem>().copied() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let page = problem.page(dashboard.brand()).into_response();
    parts.headers.extend(page.headers().clone());
    Response::from_parts(parts, page.into_body())
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

/// A static file: revalidated on every use, so a new version shows at once.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// A lifetime in whole days, as the consent page states it ("15 days").
fn days(lifetime: StdDuration) -> String {
    match lifetime.as_secs() / 86_400 {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23, row 5: both sides are hashed before the constant-time
    /// comparison, and the answer is still exact for equal, different,
    /// longer, shorter and empty inputs.
    #[test]
    fn a_login_matches_its_own_credentials_only() {
        let login = Login::new("demo", "secret").for_owner("demo-user");
        assert!(login.matches("demo", "secret"));
        for (user, password) in [
            ("demo", "secreT"),
            ("demo", "secret0"),
            ("demo", "secre"),
            ("demo", ""),
            ("demo2", "secret"),
            ("dem", "secret"),
            ("", "secret"),
            ("demosecret", ""),
            ("demo:secret", ""),
            ("", ""),
        ] {
            assert!(!login.matches(user, password), "{user:?} {password:?}");
        }
        assert_eq!(login.owner(), "demo-user");
        assert!(!format!("{login:?}").contains("secret"));
        let open = Login::new("demo", "");
        assert!(!open.matches("demo", ""), "an empty password admits nobody");
    }

    /// The router's first request starts the task that deletes expired
    /// sessions from its store.
    #[tokio::test(start_paused = true)]
    async fn the_router_deletes_expired_sessions_once_it_serves() {
        use tower::ServiceExt as _;
        use tower_sessions::session::{Id, Record};
        use tower_sessions::SessionStore as _;

        let tokens = TokenManager::new(tower_token_auth::MemoryStore::<PayRequestScopes>::new());
        let dashboard = Dashboard::new(tokens, "http://127.0.0.1:3000", Login::new("a", "b"));
        let store = sessions::Sessions::default();
        let router: Router = dashboard.router_over(store.clone());
        let mut expired = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
                - Duration::seconds(1),
        };
        store.create(&mut expired).await.unwrap();
        let request = axum::http::Request::get(LOGIN_PATH)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert_eq!(store.len(), 1);
        tokio::time::advance(sessions::SWEEP_PERIOD).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.len(), 0, "the expired session is deleted");
    }

    #[test]
    fn lifetimes_read_in_days() {
        assert_eq!(days(StdDuration::from_secs(15 * 86_400)), "15 days");
        assert_eq!(days(StdDuration::from_secs(86_400)), "1 day");
        assert_eq!(days(StdDuration::from_secs(60)), "less than a day");
    }
}
