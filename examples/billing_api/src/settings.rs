//! `/settings/api-tokens`: the dashboard's token management, behind the
//! dashboard login (HTTP Basic, a stand-in for the host application's own
//! user login).
//!
//! | route | does |
//! |---|---|
//! | `POST /settings/api-tokens` (JSON `name`, optional `scopes`) | 201 with the token, shown once |
//! | `GET /settings/api-tokens` | metadata only (no token, no digest), each with its `status` |
//! | `PATCH /settings/api-tokens/{id}` (JSON `scopes`) | 200 with the token's metadata; the new scopes hold from the next request |
//! | `DELETE /settings/api-tokens/{id}` | 204; the token (a grant: all of its tokens) stops working at once |
//! | `POST /settings/api-tokens/{id}/regenerate` | 201 with a new token; the old one is revoked |
//!
//! Every `POST` and `PATCH` that carries a body or a `Content-Type` must be
//! `application/json` (415 otherwise; a regenerate may send neither), so
//! that no cross-site HTML form, which can only send `text/plain`, a
//! urlencoded or a multipart body, changes a token with the browser's
//! cached Basic credentials. Every answer is `Cache-Control: no-store` and
//! `X-Content-Type-Options: nosniff`.
//!
//! The web page over the same tokens is the dashboard's
//! ([`tower_token_auth_dashboard`]).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tower_token_auth::error::FailedAuthentication;
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssueRequest, IssuedToken, TokenError};
use tower_token_auth::token::TokenInfo;
use tower_token_auth::token::TokenKind;
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use super::api::rfc3339;
use super::demo::DEMO_OWNER;
use super::{error_response, manage, AppState};

/// The dashboard routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/api-tokens", get(list).post(create))
        .route(
            "/settings/api-tokens/{id}",
            delete(remove).patch(change_scopes),
        )
        .route("/settings/api-tokens/{id}/regenerate", post(regenerate))
        .route_layer(middleware::map_response(not_stored))
}

/// The headers of every answer of these routes: token metadata (and a
/// token, once) is for this caller only, never for a cache, and JSON is
/// read as nothing else.
async fn not_stored(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A `POST` or `PATCH` whose body, if any, is declared JSON: a request
/// with a `Content-Type` other than `application/json` (parameters such
/// as `charset` aside), or with a body and no `Content-Type`, is refused
/// with 415 before anything is done.
struct JsonOnly;

impl<St: Send + Sync> FromRequestParts<St> for JsonOnly {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Response> {
        if declares_json_or_nothing(&parts.headers) {
            Ok(Self)
        } else {
            Err(not_json())
        }
    }
}

/// 415: a body that is not declared JSON.
fn not_json() -> Response {
    error_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        "Send the body as JSON, with `Content-Type: application/json`.",
    )
}

/// Whether the headers declare a JSON body, or no body at all.
fn declares_json_or_nothing(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (Some(value), None) => value
            .to_str()
            .ok()
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json")),
        // Two `Content-Type` headers: nothing to rely on.
        (Some(_), Some(_)) => false,
        (None, _) => {
            let empty_length = headers
                .get(CONTENT_LENGTH)
                .is_none_or(|length| length.as_bytes() == b"0");
            empty_length && !headers.contains_key(TRANSFER_ENCODING)
        }
    }
}

/// A request that passed the dashboard login. Every demo token belongs to
/// the one dashboard user, [`DEMO_OWNER`].
struct DashboardUser {
    owner: &'static str,
}

impl FromRequestParts<AppState> for DashboardUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let presented = parts.headers.contains_key(AUTHORIZATION);
        let given = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
            })
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
        match given {
            Some(given) if state.dashboard.matches(&given) => Ok(Self { owner: DEMO_OWNER }),
            _ => {
                let mut response = error_response(
                    StatusCode::UNAUTHORIZED,
                    "login_required",
                    "Log in to the dashboard (HTTP Basic) to manage API tokens.",
                );
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    "Basic realm=\"dashboard\", charset=\"UTF-8\""
                        .parse()
                        .expect("static header value"),
                );
                // Credentials that did not work (not missing ones) count
                // against the client in the throttle in front of the route.
                if presented {
                    response.extensions_mut().insert(FailedAuthentication);
                }
                Err(response)
            }
        }
    }
}

/// The body of `POST /settings/api-tokens`.
#[derive(Deserialize)]
struct CreateToken {
    name: String,
    /// Space-separated scope names; absent or empty means `billing.read`.
    scopes: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    user: DashboardUser,
    _: JsonOnly,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error_response(
                rejection.status(),
                "invalid_request",
                "Send a JSON object with `name` and optional `scopes`.",
            )
        }
    };
    let scopes = match S::parse_scope_or_default(body.scopes.as_deref()) {
        Ok(scopes) => scopes,
        Err(error) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_scope", &error.to_string())
        }
    };
    let request =
        IssueRequest::new(TokenKind::PersonalAccess, body.name, user.owner).scopes(scopes);
    match manage::issue(&state.tokens, request).await {
        Ok(issued) => shown_once(&issued),
        Err(error) => token_error(error),
    }
}

async fn list(State(state): State<AppState>, user: DashboardUser) -> Response {
    match manage::list(&state.tokens, user.owner).await {
        Ok(tokens) => {
            let tokens: Vec<Value> = tokens.iter().map(metadata).collect();
            Json(json!({ "tokens": tokens })).into_response()
        }
        Err(error) => store_error(&error),
    }
}

async fn remove(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
) -> Response {
    let info = match manage::owned(&state.tokens, user.owner, &id).await {
        Ok(Some(info)) => info,
        Ok(None) => return not_found(),
        Err(error) => return store_error(&error),
    };
    match manage::revoke(&state.tokens, info.id).await {
        // Revoking an already revoked token is still a success.
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => store_error(&error),
    }
}

/// `POST …/{id}/regenerate`: no body, or a JSON object (whose fields are
/// ignored: the old token is revoked at once).
async fn regenerate(
    State(state): State<AppState>,
    user: DashboardUser,
    _: JsonOnly,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error_response(
                rejection.status(),
                "invalid_request",
                &rejection.body_text(),
            )
        }
    };
    // A body whose length no header announced, and no type.
    if !body.is_empty() && !headers.contains_key(CONTENT_TYPE) {
        return not_json();
    }
    if !body.is_empty() && !matches!(serde_json::from_slice(&body), Ok(Value::Object(_))) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send no body, or a JSON object.",
        );
    }
    let info = match manage::owned(&state.tokens, user.owner, &id).await {
        Ok(Some(info)) => info,
        Ok(None) => return not_found(),
        Err(error) => return store_error(&error),
    };
    match manage::regenerate(&state.tokens, info.id).await {
        Ok(Some(issued)) => shown_once(&issued),
        Ok(None) => not_found(),
        Err(error) => token_error(error),
    }
}

/// `PATCH /settings/api-tokens/{id}`: new scopes for an active personal
/// access token, from its next request on. 400 `invalid_scope` for an
/// unknown name or none at all, 404 for a token that is unknown or not the
/// caller's, 409 for one that is not an active personal access token.
async fn change_scopes(
    State(state): State<AppState>,
    user: DashboardUser,
    _: JsonOnly,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    // A JSON object whose `scopes` is a string: space-separated names, at
    // least one.
    let scopes = match &body {
        Ok(Json(Value::Object(body))) => body.get("scopes").and_then(Value::as_str),
        _ => None,
    };
    let Some(scopes) = scopes else {
        let status = body.err().map_or(StatusCode::BAD_REQUEST, |r| r.status());
        return error_response(
            status,
            "invalid_request",
            r#"Send a JSON object with `scopes`, e.g. {"scopes": "billing.read"}."#,
        );
    };
    let scopes = match S::parse_scope(scopes) {
        Ok(scopes) if scopes.is_empty() => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "A token needs at least one scope.",
            )
        }
        Ok(scopes) => scopes,
        Err(error) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_scope", &error.to_string())
        }
    };
    let info = match manage::owned(&state.tokens, user.owner, &id).await {
        Ok(Some(info)) => info,
        Ok(None) => return not_found(),
        Err(error) => return store_error(&error),
    };
    match manage::set_scopes(&state.tokens, info.id, scopes).await {
        Ok(Some(updated)) => Json(metadata(&updated)).into_response(),
        Ok(None) => not_found(),
        // Not a personal access token, or not an active one.
        Err(TokenError::Conflict(message)) => {
            error_response(StatusCode::CONFLICT, "conflict", message)
        }
        Err(error) => token_error(error),
    }
}

/// 201 with the token: the only time it is ever shown.
fn shown_once(issued: &IssuedToken<S>) -> Response {
    let record = &issued.record;
    let body = json!({
        "id": record.id.to_string(),
        "name": record.name(),
        "kind": record.kind.as_str(),
        "scopes": record.scopes.scope_string(),
        "token": issued.secret.expose_secret(),
        "hint": record.hint(),
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
        "note": "Store this token now: it is not shown again.",
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

fn metadata(info: &TokenInfo<S>) -> Value {
    json!({
        "id": info.id.to_string(),
        "name": info.name,
        "kind": info.kind.as_str(),
        "scopes": info.scopes.scope_names().collect::<Vec<_>>(),
        "hint": info.hint,
        "status": info.status.as_str(),
        // The grant an access or refresh token belongs to: deleting any
        // token of it deletes them all. `null` for personal access tokens.
        "family": info.family.map(|f| f.to_string()),
        "created_at": rfc3339(info.created_at),
        "expires_at": rfc3339(info.expires_at),
        "last_used_at": info.last_used_at.map(rfc3339),
        "revoked_at": info.revoked_at.map(rfc3339),
    })
}

fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "No such token.")
}

/// The answer to a refused or failed token operation.
fn token_error(error: TokenError) -> Response {
    match error {
        TokenError::InvalidInput(message) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", &message)
        }
        // Regenerating a revoked token, or one that is not a personal
        // access token.
        TokenError::Conflict(message) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
        TokenError::Store(error) => store_error(&error),
        _ => store_error(&StoreError::Backend("unknown token error".into())),
    }
}

fn store_error(error: &StoreError) -> Response {
    match error {
        StoreError::Unavailable(_) => {
            tracing::error!(%error, "token store unavailable");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The token store is temporarily unavailable.",
            )
        }
        _ => {
            tracing::error!(%error, "token store failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The request could not be completed.",
            )
        }
    }
}
