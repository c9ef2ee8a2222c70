//! Settings → API Tokens: create a token (shown once), list them, change a
//! token's scopes, regenerate it, delete it.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssueRequest, TokenError};
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{FamilyId, TokenId, TokenInfo, TokenKind, TokenStatus};
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use crate::form::Fields;
use crate::login::LoggedIn;
use crate::views::{self, Problem, Row, TokensPage};
use crate::{Dashboard, TOKENS_PATH};

/// The session key of the token to show once.
const NEW_TOKEN_KEY: &str = "dashboard.new_token";
/// The session key of a one-time notice ("Token deleted.").
const NOTICE_KEY: &str = "dashboard.notice";

/// The token page and the actions on its rows.
pub(crate) fn router<B: TokenBackend<Scopes = S>>() -> Router<Dashboard<B>> {
    Router::new()
        .route(TOKENS_PATH, get(page::<B>).post(create::<B>))
        .route(
            "/dashboard/settings/api-tokens/{id}/edit",
            get(edit_form::<B>).post(save_scopes::<B>),
        )
        .route(
            "/dashboard/settings/api-tokens/{id}/regenerate",
            post(regenerate::<B>),
        )
        .route(
            "/dashboard/settings/api-tokens/{id}/delete",
            get(confirm_delete::<B>).post(delete::<B>),
        )
}

/// A token on its way from the POST that made it to the one page that
/// shows it. No `Debug`: it holds the plaintext.
#[derive(Serialize, Deserialize)]
pub(crate) struct NewToken {
    /// The token's name.
    pub(crate) name: String,
    /// The token itself.
    pub(crate) token: String,
}

/// `GET /dashboard/settings/api-tokens`: the token carried from the POST
/// before (taken out of the session: a reload does not show it again), the
/// create form, the list.
async fn page<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
) -> Response {
    let new_token = match user.session.remove::<NewToken>(NEW_TOKEN_KEY).await {
        Ok(new_token) => new_token,
        Err(_) => return Problem::SessionFailed.into_response(),
    };
    let notice = match user.session.remove::<String>(NOTICE_KEY).await {
        Ok(notice) => notice,
        Err(_) => return Problem::SessionFailed.into_response(),
    };
    let extras = Extras {
        new_token: new_token.as_ref(),
        notice: notice.as_deref(),
        ..Extras::default()
    };
    render_page(&state, &user, StatusCode::OK, extras).await
}

/// What the token page shows besides the list and the empty form.
#[derive(Default)]
struct Extras<'a> {
    new_token: Option<&'a NewToken>,
    notice: Option<&'a str>,
    /// Why the create form was refused, with the form as it was sent.
    error: Option<&'a str>,
    name: &'a str,
    checked: Option<S>,
}

/// The token page, with `status`.
async fn render_page<B: TokenBackend<Scopes = S>>(
    state: &Dashboard<B>,
    user: &LoggedIn,
    status: StatusCode,
    extras: Extras<'_>,
) -> Response {
    let tokens = match state.inner.tokens.list(&user.owner).await {
        Ok(tokens) => tokens,
        Err(error) => return store_failed(&error).into_response(),
    };
    let rows = rows(&tokens);
    let page = TokensPage {
        csrf: &user.csrf,
        now: SystemTime::now(),
        rows: &rows,
        new_token: extras.new_token,
        notice: extras.notice,
        error: extras.error,
        name: extras.name,
        checked: extras.checked.unwrap_or_else(S::empty),
    };
    (status, views::tokens(state.brand(), &page)).into_response()
}

/// `POST /dashboard/settings/api-tokens`: `name`, `scope` (repeated), the
/// CSRF token. No scope means `billing.read`.
async fn create<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let fields = match form(&user, body) {
        Ok(fields) => fields,
        Err(refused) => return refused.into_response(),
    };
    let name = fields.one("name").unwrap_or_default().trim();
    let scopes = match checked_scopes(&fields) {
        Ok(scopes) => scopes,
        Err(message) => return invalid(&state, &user, name, S::empty(), &message).await,
    };
    if name.is_empty() {
        return invalid(&state, &user, name, scopes, "Give the token a name.").await;
    }
    let scopes = if scopes.is_empty() {
        S::DEFAULT
    } else {
        scopes
    };
    let request =
        IssueRequest::new(TokenKind::PersonalAccess, name, user.owner.as_str()).scopes(scopes);
    match state.inner.tokens.issue(request).await {
        Ok(issued) => {
            let shown = NewToken {
                name: issued.record.name().to_owned(),
                token: issued.secret.expose_secret().to_owned(),
            };
            carry(&user.session, NEW_TOKEN_KEY, shown).await
        }
        Err(TokenError::InvalidInput(message)) => {
            invalid(&state, &user, name, scopes, &message).await
        }
        Err(error) => token_failed(error).into_response(),
    }
}

/// The page again, 422, with `message` and the form as it was sent.
async fn invalid<B: TokenBackend<Scopes = S>>(
    state: &Dashboard<B>,
    user: &LoggedIn,
    name: &str,
    scopes: S,
    message: &str,
) -> Response {
    let extras = Extras {
        error: Some(message),
        name,
        checked: Some(scopes),
        ..Extras::default()
    };
    render_page(state, user, StatusCode::UNPROCESSABLE_ENTITY, extras).await
}

/// `GET …/{id}/edit`: the scope checkboxes of an active personal access
/// token, its scopes checked, and `Save`.
async fn edit_form<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Response {
    match editable(&state, &user, &id).await {
        Ok(info) => {
            views::edit(state.brand(), &user.csrf, &info, info.scopes, None).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// `POST …/{id}/edit`: the checked scopes become the token's, from its
/// next request on. At least one is needed.
async fn save_scopes<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let fields = match form(&user, body) {
        Ok(fields) => fields,
        Err(refused) => return refused.into_response(),
    };
    let info = match editable(&state, &user, &id).await {
        Ok(info) => info,
        Err(refused) => return refused.into_response(),
    };
    let scopes = match checked_scopes(&fields) {
        Ok(scopes) if scopes.is_empty() => {
            let message = "Check at least one scope.";
            let page = views::edit(state.brand(), &user.csrf, &info, scopes, Some(message));
            return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
        }
        Ok(scopes) => scopes,
        Err(message) => {
            let page = views::edit(
                state.brand(),
                &user.csrf,
                &info,
                info.scopes,
                Some(&message),
            );
            return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
        }
    };
    match state.inner.tokens.set_scopes(info.id, scopes).await {
        Ok(Some(updated)) => {
            let notice = format!(
                "The scopes of “{}” are now: {}.",
                updated.name,
                updated.scopes.scope_string()
            );
            carry(&user.session, NOTICE_KEY, notice).await
        }
        Ok(None) => Problem::NotFound.into_response(),
        Err(TokenError::Conflict(message)) => Problem::Conflict(message).into_response(),
        Err(error) => token_failed(error).into_response(),
    }
}

/// `POST …/{id}/regenerate`: a new secret for an active personal access
/// token, shown once; the old one stops working at once.
async fn regenerate<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(refused) = form(&user, body) {
        return refused.into_response();
    }
    let info = match editable(&state, &user, &id).await {
        Ok(info) => info,
        Err(refused) => return refused.into_response(),
    };
    match state.inner.tokens.regenerate(info.id).await {
        Ok(Some(issued)) => {
            let shown = NewToken {
                name: issued.record.name().to_owned(),
                token: issued.secret.expose_secret().to_owned(),
            };
            carry(&user.session, NEW_TOKEN_KEY, shown).await
        }
        Ok(None) => Problem::NotFound.into_response(),
        Err(TokenError::Conflict(message)) => Problem::Conflict(message).into_response(),
        Err(error) => token_failed(error).into_response(),
    }
}

/// `GET …/{id}/delete`: the confirmation as a page of its own, for a
/// browser without JavaScript (with it, `Delete` opens the same `<dialog>`
/// on the list page).
async fn confirm_delete<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Response {
    match deletable(&state, &user, &id).await {
        Ok(info) => views::confirm_delete(state.brand(), &user.csrf, &info).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `POST …/{id}/delete`: revokes the token (a grant: all of its tokens).
async fn delete<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(refused) = form(&user, body) {
        return refused.into_response();
    }
    let info = match deletable(&state, &user, &id).await {
        Ok(info) => info,
        Err(refused) => return refused.into_response(),
    };
    match state.inner.tokens.revoke(info.id).await {
        Ok(_) => {
            let notice = format!(
                "“{}” is deleted: requests made with it are refused from now on.",
                info.name
            );
            carry(&user.session, NOTICE_KEY, notice).await
        }
        Err(error) => store_failed(&error).into_response(),
    }
}

/// The posted form, when it carries the session's CSRF token.
fn form(user: &LoggedIn, body: Result<Bytes, BytesRejection>) -> Result<Fields, Problem> {
    let body = body.map_err(|rejection| Problem::BadForm(rejection.status()))?;
    let fields = Fields::parse(&body);
    user.check_csrf(&fields)?;
    Ok(fields)
}

/// The checked scopes (possibly none); a message naming a value that is
/// no scope.
fn checked_scopes(fields: &Fields) -> Result<S, String> {
    fields.all("scope").try_fold(S::empty(), |set, name| {
        match S::SCOPES.iter().find(|(known, _)| *known == name) {
            Some((_, flags)) => Ok(set | *flags),
            None => Err(format!(
                "“{}” is not a scope of this service.",
                name.chars().take(64).collect::<String>()
            )),
        }
    })
}

/// The user's token `id`, when it is an active personal access token:
/// the ones whose scopes can change and that can be regenerated.
async fn editable<B: TokenBackend<Scopes = S>>(
    state: &Dashboard<B>,
    user: &LoggedIn,
    id: &str,
) -> Result<TokenInfo<S>, Problem> {
    let info = owned(state, user, id).await?;
    if info.kind != TokenKind::PersonalAccess || info.status != TokenStatus::Active {
        return Err(Problem::Conflict(
            "Only an active personal access token can be edited or regenerated.",
        ));
    }
    Ok(info)
}

/// The user's token `id`, when deleting it changes something: an active
/// token, or any token of a grant (revoking one revokes the grant, whose
/// other tokens may still be active while this one is spent).
async fn deletable<B: TokenBackend<Scopes = S>>(
    state: &Dashboard<B>,
    user: &LoggedIn,
    id: &str,
) -> Result<TokenInfo<S>, Problem> {
    let info = owned(state, user, id).await?;
    if info.status != TokenStatus::Active && info.family.is_none() {
        return Err(Problem::Conflict("This token is no longer active."));
    }
    Ok(info)
}

/// The user's token `id`; a 404 page for an id that is malformed, unknown
/// or someone else's.
async fn owned<B: TokenBackend<Scopes = S>>(
    state: &Dashboard<B>,
    user: &LoggedIn,
    id: &str,
) -> Result<TokenInfo<S>, Problem> {
    // A malformed id, an unknown one and someone else's answer alike, so
    // that the ids of other users' tokens cannot be probed.
    let Ok(id) = id.parse::<TokenId>() else {
        return Err(Problem::NotFound);
    };
    match state.inner.tokens.get(id).await {
        Ok(Some(info)) if info.owner == user.owner => Ok(info),
        Ok(_) => Err(Problem::NotFound),
        Err(error) => Err(store_failed(&error)),
    }
}

/// Puts `value` into the session for the next render of the token page,
/// and sends the browser there (post-redirect-get).
async fn carry(session: &Session, key: &str, value: impl Serialize) -> Response {
    match session.insert(key, value).await {
        Ok(()) => Redirect::to(TOKENS_PATH).into_response(),
        Err(_) => Problem::SessionFailed.into_response(),
    }
}

/// The page of a token operation that was refused or failed.
pub(crate) fn token_failed(error: TokenError) -> Problem {
    match error {
        TokenError::Conflict(message) => Problem::Conflict(message),
        TokenError::Store(error) => store_failed(&error),
        _ => Problem::BadForm(StatusCode::BAD_REQUEST),
    }
}

/// The page of a store that failed.
pub(crate) fn store_failed(error: &StoreError) -> Problem {
    match error {
        StoreError::Unavailable(_) => {
            tracing::error!(%error, "token store unavailable");
            Problem::Unavailable
        }
        _ => {
            tracing::error!(%error, "token store failed");
            Problem::ServerError
        }
    }
}

/// The rows of the list, newest first: a personal access token is a row,
/// and so is a grant (an OAuth family: its access and refresh tokens).
fn rows(tokens: &[TokenInfo<S>]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut grants: HashMap<FamilyId, usize> = HashMap::new();
    for info in tokens {
        let Some(family) = info.family else {
            rows.push(Row::of(info));
            continue;
        };
        match grants.get(&family) {
            Some(&at) => rows[at].add_to_grant(info),
            None => {
                grants.insert(family, rows.len());
                rows.push(Row::grant(info));
            }
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.created_at));
    rows
}
