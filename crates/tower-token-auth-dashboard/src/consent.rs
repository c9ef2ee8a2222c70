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
//! The page's `Content-Security-Policy` lets its form lead to the origin
//! of the client's redirect URI (`form-action` covers the redirect after
//! the POST), and nowhere else. Only the origin goes into the header,
//! rebuilt from a scheme, a host and a port of their plain characters; a
//! redirect URI with no such origin is shown as an error (400), and its
//! path and query, which may hold `;` or `,`, never reach the header.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_token_auth::oauth::AuthorizationError;
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
            let Some(policy) = consent_policy(&pending.redirect_uri) else {
                return Problem::BadAuthorization(
                    "The client's redirect URI has no plain origin (scheme, host and port) \
                     this page could send the answer to.",
                )
                .into_response();
            };
            let page = views::consent(state.brand(), &consent, &pending);
            let mut response = (StatusCode::OK, page).into_response();
            response
                .headers_mut()
                .insert(CONTENT_SECURITY_POLICY, policy);
            response
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

/// The dashboard's policy, with the origin of the client's redirect URI
/// as a second form target: the browser follows the POST's 303 there.
/// `None` when the URI has no plain origin.
fn consent_policy(redirect_uri: &str) -> Option<HeaderValue> {
    let origin = origin(redirect_uri)?;
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    );
    HeaderValue::from_str(&policy).ok()
}

/// `scheme://host[:port]` of an absolute URI, rebuilt from its parts, when
/// each is plain: the scheme a letter and then letters, digits, `+`, `-`
/// or `.`; the host letters, digits, `.` and `-`, or a bracketed IPv6
/// literal (hex digits, `:` and `.`); the port 1 to 65535. No user
/// information, nothing else in the authority. The path and query are left
/// out, whatever they hold.
fn origin(uri: &str) -> Option<String> {
    let parsed: axum::http::Uri = uri.parse().ok()?;
    let scheme = parsed.scheme_str()?;
    let mut letters = scheme.bytes();
    let scheme_ok = letters.next().is_some_and(|b| b.is_ascii_alphabetic())
        && letters.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    let authority = parsed.authority()?.as_str();
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ipv6, rest) = bracketed.split_once(']')?;
            let ipv6_ok = !ipv6.is_empty()
                && ipv6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
            if !ipv6_ok {
                return None;
            }
            let port = match rest {
                "" => None,
                rest => Some(rest.strip_prefix(':')?),
            };
            (&authority[..ipv6.len() + 2], port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            if !host_ok {
                return None;
            }
            (host, port)
        }
    };
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(port) => {
            let plain = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
            plain.then(|| format!("{scheme}://{host}:{port}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23, row 3: only a plain origin reaches the header; the path
    /// and query are dropped whatever they hold, and an authority with
    /// anything but host characters and a port is no origin at all.
    #[test]
    fn the_form_may_lead_to_the_redirect_origin_only() {
        for (uri, expected) in [
            ("http://127.0.0.1:8123/cb?x=1", "http://127.0.0.1:8123"),
            (
                "https://app.example/cb;script-src%20*",
                "https://app.example",
            ),
            ("https://app.example/a,b?c=d;e,f", "https://app.example"),
            ("https://App-1.example:8443/", "https://App-1.example:8443"),
            ("http://[::1]:9000/cb", "http://[::1]:9000"),
            ("http://[::1]/cb", "http://[::1]"),
        ] {
            assert_eq!(origin(uri).as_deref(), Some(expected), "{uri}");
        }
        for uri in [
            "/relative",
            "https://a;b.example/cb",
            "https://a,b.example/cb",
            "https://a.example;report-uri=x/cb",
            "https://user@a.example/cb",
            "https://user:pw@a.example/cb",
            "https://a.example:99999/cb",
            "https://a.example:0/cb",
            "https://a.example:/cb",
            "https://a.example:80:81/cb",
            "https://a_b.example/cb",
            "https://a!b.example/cb",
            "https://a$b.example/cb",
            "http://[::1;x]/cb",
            "http://[::1]x/cb",
            "http://[::1]:x/cb",
        ] {
            assert_eq!(origin(uri), None, "{uri}");
            assert!(consent_policy(uri).is_none(), "{uri}");
        }
        let policy = consent_policy("https://app.example/cb;script-src%20*").unwrap();
        let directives: Vec<&str> = policy.to_str().unwrap().split(';').map(str::trim).collect();
        assert_eq!(directives.len(), CSP.split(';').count());
        assert!(directives.contains(&"form-action 'self' https://app.example"));
        assert!(directives.contains(&"script-src 'self'"));
    }
}
