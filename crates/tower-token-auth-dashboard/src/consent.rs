//! `/oauth/authorize`: the user's side of the authorization code grant.
//! The library's [`AuthorizationEndpoint`](tower_token_auth::oauth::AuthorizationEndpoint) checks the request and builds
//! the redirects; this module adds the login (the dashboard's) and the
//! consent page.
//!
//! - `GET /oauth/authorize?…` without a session: the login form, then back
//!   here. With one: the request is checked. An unknown client or a
//!   redirect URI it did not register is shown as an error (400), never
//!   redirected; other errors go back to the client. A good request shows
//!   the consent page: the client's name, its `client_id` and redirect URI,
//!   one checked box per requested scope with its description, and
//!   `Allow` / `Deny`.
//! - `POST /oauth/authorize` (the page's form: the original query, the
//!   ticked scopes, the CSRF token): the request is checked again, then 303
//!   to the client's redirect URI with `code`, `state` and `iss`, or with
//!   `error=access_denied`.
//!
//! The page's `Content-Security-Policy` lets its form lead to the client's
//! redirect URI (`form-action` covers the redirect after the POST), and
//! nowhere else.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_token_auth::oauth::{AuthorizationError, PendingAuthorization};
use tower_token_auth::store::TokenBackend;
use tower_token_auth::{PayRequestScopes as S, ScopeSet};

use crate::form::Fields;
use crate::login::LoggedIn;
use crate::views::{self, Consent, Problem};
use crate::{days, Dashboard, AUTHORIZE_PATH, CSP};

/// The hidden field that carries the authorization request's query.
const REQUEST_FIELD: &str = "request";

/// `GET` and `POST /oauth/authorize`.
pub(crate) fn router<B: TokenBackend<Scopes = S>>() -> Router<Dashboard<B>> {
    Router::new().route(AUTHORIZE_PATH, get(ask::<B>).post(decide::<B>))
}

/// `GET`: the consent page for a good request.
async fn ask<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    match state.inner.authorize.validate(&query).await {
        Ok(pending) => {
            let lifetimes = state.inner.tokens.policy().get_lifetimes();
            let access = days(lifetimes.access);
            let refresh = days(lifetimes.refresh);
            let consent = Consent {
                csrf: &user.csrf,
                query: &query,
                access_lifetime: &access,
                refresh_lifetime: &refresh,
            };
            let page = views::consent(state.brand(), &consent, &pending);
            with_form_action((StatusCode::OK, page).into_response(), &pending)
        }
        Err(refusal) => refused(refusal),
    }
}

/// `POST`: the user's decision.
async fn decide<B: TokenBackend<Scopes = S>>(
    State(state): State<Dashboard<B>>,
    user: LoggedIn,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let fields = match body {
        Ok(body) => Fields::parse(&body),
        Err(rejection) => return Problem::BadForm(rejection.status()).into_response(),
    };
    if let Err(problem) = user.check_csrf(&fields) {
        return problem.into_response();
    }
    let query = fields.one(REQUEST_FIELD).unwrap_or_default().to_owned();
    let endpoint = &state.inner.authorize;
    let pending = match endpoint.validate(&query).await {
        Ok(pending) => pending,
        Err(refusal) => return refused(refusal),
    };
    if fields.one("decision") != Some("allow") {
        return see_other(&endpoint.deny(&pending));
    }
    // Only names of this service count; anything else is left unticked.
    let granted = fields
        .all("scope")
        .filter_map(|name| S::SCOPES.iter().find(|(known, _)| *known == name))
        .fold(S::empty(), |set, (_, flags)| set | *flags);
    match endpoint.approve(&pending, &user.owner, granted).await {
        Ok(url) => see_other(&url),
        Err(error) => crate::tokens::token_failed(error).into_response(),
    }
}

/// What a refused request shows or where it sends the browser.
fn refused(refusal: AuthorizationError) -> Response {
    match refusal {
        AuthorizationError::Invalid(why) => Problem::BadAuthorization(why).into_response(),
        AuthorizationError::Redirect(url) => see_other(&url),
        AuthorizationError::Store(error) => crate::tokens::store_failed(&error).into_response(),
        _ => Problem::ServerError.into_response(),
    }
}

/// 303 to `url` (one of the client's registered redirect URIs).
fn see_other(url: &str) -> Response {
    match HeaderValue::from_str(url) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => Problem::ServerError.into_response(),
    }
}

/// The dashboard's policy, with the client's redirect URI as a second
/// form target: the browser follows the POST's 303 there.
fn with_form_action(mut response: Response, pending: &PendingAuthorization<S>) -> Response {
    let Some(origin) = origin(&pending.redirect_uri) else {
        return response;
    };
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// `scheme://authority` of an absolute URI.
fn origin(uri: &str) -> Option<String> {
    let parsed: axum::http::Uri = uri.parse().ok()?;
    let authority = parsed.authority()?;
    Some(format!("{}://{authority}", parsed.scheme_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_may_lead_to_the_redirect_origin_only() {
        assert_eq!(
            origin("http://127.0.0.1:8123/cb?x=1").as_deref(),
            Some("http://127.0.0.1:8123")
        );
        assert_eq!(origin("/relative"), None);
    }
}
