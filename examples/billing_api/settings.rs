//! `/settings/api-tokens`: the dashboard's token management, behind the
//! dashboard login (HTTP Basic, a stand-in for the host application's own
//! user login).
//!
//! | route | does |
//! |---|---|
//! | `POST /settings/api-tokens` (JSON `name`, optional `scopes`) | 201 with the token, shown once |
//! | `GET /settings/api-tokens` | metadata only: no token, no digest |
//! | `DELETE /settings/api-tokens/{id}` | 204; the token stops working at once |
//! | `POST /settings/api-tokens/{id}/regenerate` | 201 with a new token; the old one is revoked |

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tower_token_auth::error::FailedAuthentication;
use tower_token_auth::store::{IssueRequest, IssuedToken, StoreError, TokenId, TokenInfo};
use tower_token_auth::token::TokenKind;
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use super::api::rfc3339;
use super::demo::DEMO_OWNER;
use super::{error_response, AppState};

/// The dashboard routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/api-tokens", get(list).post(create))
        .route("/settings/api-tokens/{id}", delete(remove))
        .route("/settings/api-tokens/{id}/regenerate", post(regenerate))
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
        let expected = format!("{}:{}", state.dashboard.username, state.dashboard.password);
        match given {
            Some(given) if bool::from(given.ct_eq(expected.as_bytes())) => {
                Ok(Self { owner: DEMO_OWNER })
            }
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
    match send::issue(&state.tokens, request).await {
        Ok(issued) => shown_once(&issued),
        Err(error) => store_error(&error),
    }
}

async fn list(State(state): State<AppState>, user: DashboardUser) -> Response {
    match send::list(&state.tokens, user.owner).await {
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
    let Some(id) = owned(&state, user.owner, &id).await else {
        return not_found();
    };
    match send::revoke(&state.tokens, id).await {
        // Revoking an already revoked token is still a success.
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => store_error(&error),
    }
}

async fn regenerate(
    State(state): State<AppState>,
    user: DashboardUser,
    Path(id): Path<String>,
) -> Response {
    let Some(id) = owned(&state, user.owner, &id).await else {
        return not_found();
    };
    match send::regenerate(&state.tokens, id).await {
        Ok(Some(issued)) => shown_once(&issued),
        Ok(None) => not_found(),
        Err(error) => store_error(&error),
    }
}

/// The id, when it parses and names a token of `owner`.
async fn owned(state: &AppState, owner: &str, id: &str) -> Option<TokenId> {
    let id = id.parse::<TokenId>().ok()?;
    let info = send::get(&state.tokens, id).await.ok().flatten()?;
    (info.owner == owner).then_some(id)
}

/// 201 with the token: the only time it is ever shown.
fn shown_once(issued: &IssuedToken<S>) -> Response {
    let record = &issued.record;
    let body = json!({
        "id": record.id.to_string(),
        "name": record.name,
        "kind": record.kind.as_str(),
        "scopes": record.scopes.scope_string(),
        "token": issued.secret.expose_secret(),
        "hint": record.hint,
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at),
        "note": "Store this token now: it is not shown again.",
    });
    (
        StatusCode::CREATED,
        [(CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

fn metadata(info: &TokenInfo<S>) -> Value {
    json!({
        "id": info.id.to_string(),
        "name": info.name,
        "kind": info.kind.as_str(),
        "scopes": info.scopes.scope_names().collect::<Vec<_>>(),
        "hint": info.hint,
        "created_at": rfc3339(info.created_at),
        "expires_at": rfc3339(info.expires_at),
        "last_used_at": info.last_used_at.map(rfc3339),
        "revoked_at": info.revoked_at.map(rfc3339),
    })
}

fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "No such token.")
}

fn store_error(error: &StoreError) -> Response {
    match error {
        StoreError::InvalidInput(message) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
        // Regenerating a revoked token, or one that is not a personal
        // access token.
        StoreError::Conflict(message) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
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

/// The manager's calls of the dashboard, as boxed `Send` futures.
///
/// rustc (1.95) cannot prove that the future of a borrowing
/// `TokenManager` method is `Send` when the backend is a trait object: it
/// erases the `'static` of `dyn TokenBackend` in the proof, and
/// `TokenStore: 'static` then no longer holds (rust-lang/rust#110338). A
/// handler that awaits such a future directly is no axum `Handler`. Boxed
/// here, in code generic over the backend, the proof is made once for any
/// backend, and the box is `Send` by its type.
mod send {
    use std::future::Future;
    use std::pin::Pin;

    use tower_token_auth::store::{
        IssueRequest, IssuedToken, StoreError, TokenBackend, TokenId, TokenInfo, TokenManager,
    };

    type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

    pub(super) fn issue<B: TokenBackend>(
        tokens: &TokenManager<B>,
        request: IssueRequest<B::Scopes>,
    ) -> Boxed<IssuedToken<B::Scopes>> {
        let tokens = tokens.clone();
        Box::pin(async move { tokens.issue(request).await })
    }

    pub(super) fn list<B: TokenBackend>(
        tokens: &TokenManager<B>,
        owner: &'static str,
    ) -> Boxed<Vec<TokenInfo<B::Scopes>>> {
        let tokens = tokens.clone();
        Box::pin(async move { tokens.list(owner).await })
    }

    pub(super) fn get<B: TokenBackend>(
        tokens: &TokenManager<B>,
        id: TokenId,
    ) -> Boxed<Option<TokenInfo<B::Scopes>>> {
        let tokens = tokens.clone();
        Box::pin(async move { tokens.get(id).await })
    }

    pub(super) fn revoke<B: TokenBackend>(tokens: &TokenManager<B>, id: TokenId) -> Boxed<bool> {
        let tokens = tokens.clone();
        Box::pin(async move { tokens.revoke(id).await })
    }

    pub(super) fn regenerate<B: TokenBackend>(
        tokens: &TokenManager<B>,
        id: TokenId,
    ) -> Boxed<Option<IssuedToken<B::Scopes>>> {
        let tokens = tokens.clone();
        Box::pin(async move { tokens.regenerate(id).await })
    }
}
