//! The dashboard login: the form, the session it starts, the CSRF token of
//! that session, and the extractor every page behind the login uses.
//!
//! There is one user, the dashboard's [`Login`]: a stand-in for the host
//! application's own login.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower_sessions::Session;
use tower_token_auth::error::FailedAuthentication;
use tower_token_auth::store::TokenBackend;
use tower_token_auth::PayRequestScopes as S;

use crate::form::{csrf_matches, new_csrf_token, same_site_path, Fields};
use crate::views::{self, LoginForm, Problem};
use crate::{Dashboard, Login, LOGIN_PATH, TOKENS_PATH};

/// The session's user (the token owner whose tokens the pages manage).
const USER_KEY: &str = "dashboard.user";
/// The session's CSRF token.
const CSRF_KEY: &str = "dashboard.csrf";

/// The cookie that carries the login form's CSRF token (there is no
/// session before the login), scoped to the login path.
const LOGIN_CSRF_COOKIE: &str = "dashboard_login_csrf";

/// `/dashboard/login` and `/dashboard/logout`.
pub(crate) fn router<B: TokenBackend<Scopes = S>>() -> Router<Dashboard<B>> {
    Router::new()
        .route(LOGIN_PATH, get(login_form::<B>).post(log_in::<B>))
        .route("/dashboard/logout", post(log_out))
}

/// A request of a logged-in user, with the session's CSRF token for the
/// forms of the page.
///
/// Without a session, a `GET` is sent to the login form and comes back
/// afterwards (`?next=`); any other request is sent to the login form
/// without doing anything.
pub(crate) struct LoggedIn {
    /// The owner of the tokens the user manages.
    pub(crate) owner: String,
    /// The session's CSRF token.
    pub(crate) csrf: String,
    /// The session, for the values a page carries to the next one.
    pub(crate) session: Session,
}

impl<St: Send + Sync> FromRequestParts<St> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::SessionFailed.into_response())?;
        let user = session.get::<String>(USER_KEY).await;
        let csrf = session.get::<String>(CSRF_KEY).await;
        match (user, csrf) {
            (Ok(Some(owner)), Ok(Some(csrf))) => Ok(Self {
                owner,
                csrf,
                session,
            }),
            (Err(_), _) | (_, Err(_)) => Err(Problem::SessionFailed.into_response()),
            _ => {
                let back = if parts.method == Method::GET {
                    parts.uri.path_and_query().map(|p| p.as_str())
                } else {
                    None
                };
                Err(to_login(back).into_response())
            }
        }
    }
}

impl LoggedIn {
    /// `Ok` when the form carries the session's CSRF token; a 403 page
    /// otherwise.
    pub(crate) fn check_csrf(&self, fields: &Fields) -> Result<(), Problem> {
        if csrf_matches(fields, &self.csrf) {
            Ok(())
        } else {
            Err(Problem::CsrfRefused)
        }
    }
}

/// A redirect to the login form that comes back to `next` afterwards.
pub(crate) fn to_login(next: Option<&str>) -> Redirect {
    match next.and_then(same_site_path) {
        Some(next) => {
            let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            Redirect::to(&format!("{LOGIN_PATH}?next={next}"))
        }
        None => Redirect::to(LOGIN_PATH),
    }
}

/// `GET /dashboard/login`: the form, or straight on to `next` for a user
/// who is logged in already.
async fn login_form<B>(
    State(dashboard): State<Dashboard<B>>,
    session: Session,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let next = query_next(uri.query().unwrap_or_default());
    let next = next
        .as_deref()
        .and_then(same_site_path)
        .unwrap_or(TOKENS_PATH);
    if matches!(session.get::<String>(USER_KEY).await, Ok(Some(_))) {
        return Redirect::to(next).into_response();
    }
    let csrf = match login_csrf(&headers) {
        Some(csrf) => csrf.to_owned(),
        None => match new_csrf_token() {
            Ok(csrf) => csrf,
            Err(_) => return Problem::RandomnessFailed.into_response(),
        },
    };
    let page = views::login(
        dashboard.brand(),
        &LoginForm {
            csrf: &csrf,
            next,
            username: "",
            failed: false,
            note: dashboard.inner.login_note.as_deref(),
        },
    );
    (
        [(
            SET_COOKIE,
            login_csrf_cookie(&csrf, dashboard.inner.secure_cookies),
        )],
        page,
    )
        .into_response()
}

/// `next` of a query string, if any. A malformed query is no error: it
/// only loses its `next`.
fn query_next(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "next")
        .map(|(_, value)| value.into_owned())
}

/// The login form's CSRF token, from its cookie: without one, a login is
/// refused (403) before its body is read.
struct LoginCsrf(String);

impl<St: Send + Sync> FromRequestParts<St> for LoginCsrf {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Response> {
        match login_csrf(&parts.headers) {
            Some(csrf) => Ok(Self(csrf.to_owned())),
            None => Err(Problem::CsrfRefused.into_response()),
        }
    }
}

/// `POST /dashboard/login`: the CSRF token first (the cookie before the
/// body is read, then the field), then the credentials.
async fn log_in<B>(
    State(dashboard): State<Dashboard<B>>,
    LoginCsrf(csrf): LoginCsrf,
    session: Session,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return Problem::BadForm(rejection.status()).into_response(),
    };
    let fields = Fields::parse(&body);
    // The login form's own CSRF token: the cookie's value in the field.
    if !csrf_matches(&fields, &csrf) {
        return Problem::CsrfRefused.into_response();
    }
    let csrf = csrf.as_str();
    let next = fields
        .one("next")
        .and_then(same_site_path)
        .unwrap_or(TOKENS_PATH);
    let username = fields.one("username").unwrap_or_default();
    let password = fields.one("password").unwrap_or_default();
    let login: &Login = &dashboard.inner.login;
    if !login.matches(username, password) {
        // 401, marked for the throttle, which counts it against the client.
        let page = views::login(
            dashboard.brand(),
            &LoginForm {
                csrf,
                next,
                username,
                failed: true,
                note: dashboard.inner.login_note.as_deref(),
            },
        );
        return (
            StatusCode::UNAUTHORIZED,
            Extension(FailedAuthentication),
            page,
        )
            .into_response();
    }
    let Ok(session_csrf) = new_csrf_token() else {
        return Problem::RandomnessFailed.into_response();
    };
    // A new session id at login: an id planted before it is worth nothing.
    let started = async {
        session.cycle_id().await?;
        session.insert(USER_KEY, login.owner()).await?;
        session.insert(CSRF_KEY, session_csrf).await
    };
    if started.await.is_err() {
        return Problem::SessionFailed.into_response();
    }
    (
        [(
            SET_COOKIE,
            expired_login_csrf_cookie(dashboard.inner.secure_cookies),
        )],
        Redirect::to(next),
    )
        .into_response()
}

/// `POST /dashboard/logout`: the session is deleted, its cookie removed.
async fn log_out(user: LoggedIn, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return Problem::BadForm(rejection.status()).into_response(),
    };
    if let Err(refused) = user.check_csrf(&Fields::parse(&body)) {
        return refused.into_response();
    }
    if user.session.flush().await.is_err() {
        return Problem::SessionFailed.into_response();
    }
    Redirect::to(LOGIN_PATH).into_response()
}

/// The login form's CSRF token from its cookie, when it has the shape of
/// one.
fn login_csrf(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_CSRF_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The cookie of the login form's CSRF token: an hour, the login path only.
fn login_csrf_cookie(csrf: &str, production: bool) -> String {
    let secure = if production { "; Secure" } else { "" };
    format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; Path={LOGIN_PATH}; Max-Age=3600; HttpOnly; SameSite=Strict{secure}"
    )
}

/// The same cookie, removed (after a successful login).
fn expired_login_csrf_cookie(production: bool) -> String {
    let secure = if production { "; Secure" } else { "" };
    format!("{LOGIN_CSRF_COOKIE}=; Path={LOGIN_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}
