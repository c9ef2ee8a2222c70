//! `TokenAuthLayer`: the header grammar through the stack, the offline
//! check before any store call, expiry at the boundary, revocation,
//! refresh tokens, optional mode, the principal, readiness, and body types.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_token_auth::error::InvalidTokenReason;
use tower_token_auth::manager::{IssueRequest, TokenManager};
use tower_token_auth::token::{TokenFormat, TokenKind};
use tower_token_auth::{AuthError, MemoryStore, PayRequestScopes as S, TokenAuth, TokenAuthLayer};

use crate::support::*;

type Counted = CountingStore<Tokens>;

/// A stack over a counting wrapper of the fixture's manager (a lookup with
/// no clock of its own: the layer is given the fixture's).
fn counted(fixture: &Fixture) -> (TokenAuth<Inner<S>, Counted>, Counted, Inner<S>) {
    let store = CountingStore::new(fixture.tokens.clone());
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(crate::support::layer_over(store.clone()).clock(fixture.clock.clone()))
        .service(inner.clone());
    (service, store, inner)
}

async fn status_of<Svc>(service: &Svc, request: Request<Full<Bytes>>) -> StatusCode
where
    Svc: Service<
            Request<Full<Bytes>>,
            Response = Response<tower_token_auth::body::ResponseBody<Full<Bytes>>>,
        > + Clone,
    Svc::Error: std::fmt::Debug,
{
    service.clone().oneshot(request).await.unwrap().status()
}

// ---- header grammar ----

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let (service, _, inner) = counted(&fixture);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {}", issued.secret.expose_secret());
        let request = with_authorization(HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            status_of(&service, request).await,
            StatusCode::OK,
            "{scheme}"
        );
    }
    assert_eq!(inner.calls(), 4);
}

#[tokio::test]
async fn several_spaces_after_the_scheme_are_accepted() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let (service, _, _) = counted(&fixture);
    for spaces in [" ", "  ", "     "] {
        let value = format!("Bearer{spaces}{}", issued.secret.expose_secret());
        let request = with_authorization(HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            status_of(&service, request).await,
            StatusCode::OK,
            "{spaces:?}"
        );
    }
}

/// Header values that carry a Bearer credential of the wrong form: each is
/// 401 `invalid_token` (malformed), with no store call.
#[tokio::test]
async fn malformed_bearer_credentials_are_invalid_token_without_a_store_call() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let long = "A".repeat(16 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "tab instead of space",
            format!("Bearer\t{token}").into_bytes(),
        ),
        ("scheme alone", b"Bearer".to_vec()),
        ("scheme and a space", b"Bearer ".to_vec()),
        (
            "padding after a real token",
            format!("Bearer {token}==").into_bytes(),
        ),
        ("two tokens", format!("Bearer {token} {token}").into_bytes()),
        ("two tokens, short", b"Bearer a b".to_vec()),
        ("trailing comma", format!("Bearer {token},").into_bytes()),
        ("trailing space", format!("Bearer {token} ").into_bytes()),
        ("quoted token", format!("Bearer \"{token}\"").into_bytes()),
        (
            "non-ASCII after the scheme",
            b"Bearer \x80\xff\xfe".to_vec(),
        ),
        (
            "non-ASCII inside a token",
            [b"Bearer pr_pat_\xc3\xa9".as_slice(), &token.as_bytes()[8..]].concat(),
        ),
        ("16 KiB b64token", format!("Bearer {long}").into_bytes()),
        ("padding only", b"Bearer ===".to_vec()),
        ("a prefix alone", b"Bearer pr_pat_".to_vec()),
    ];
    for (label, value) in cases {
        let (service, store, inner) = counted(&fixture);
        let value = HeaderValue::from_bytes(&value).expect(label);
        let response = service.oneshot(with_authorization(value)).await.unwrap();
        let rejection = rejection(response).await;
        assert_eq!(rejection.status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(rejection.field("error"), "invalid_token", "{label}");
        assert!(
            matches!(
                rejection.error,
                Some(AuthError::InvalidToken(InvalidTokenReason::Malformed))
            ),
            "{label}: {:?}",
            rejection.error
        );
        assert_eq!(
            rejection.www_authenticate.as_deref(),
            MALFORMED.challenge,
            "{label}"
        );
        assert_eq!(store.finds(), 0, "{label}: no store call");
        assert_eq!(inner.calls(), 0, "{label}");
    }
}

/// Header values that carry no Bearer credential at all: 401 with a bare
/// challenge (no error code), no store call.
#[tokio::test]
async fn other_schemes_and_empty_values_are_missing_credentials() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty value", Vec::new()),
        ("Basic", b"Basic dXNlcjpwYXNz".to_vec()),
        ("Digest", b"Digest username=\"u\", realm=\"api\"".to_vec()),
        (
            "Token scheme with a real token",
            format!("Token {token}").into_bytes(),
        ),
        (
            "no space after Bearer",
            format!("Bearer{token}").into_bytes(),
        ),
        ("a bare token", token.as_bytes().to_vec()),
        ("non-ASCII scheme", b"\xc2\xa0Bearer abc".to_vec()),
    ];
    for (label, value) in cases {
        let (service, store, inner) = counted(&fixture);
        let value = HeaderValue::from_bytes(&value).expect(label);
        let response = service.oneshot(with_authorization(value)).await.unwrap();
        let rejection = rejection(response).await;
        assert_eq!(rejection.status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(
            rejection.www_authenticate.as_deref(),
            MISSING.challenge,
            "{label}"
        );
        assert!(
            matches!(rejection.error, Some(AuthError::MissingToken)),
            "{label}"
        );
        assert_eq!(store.finds(), 0, "{label}: no store call");
        assert_eq!(inner.calls(), 0, "{label}");
    }
}

// ---- the offline check ----

#[tokio::test]
async fn checksum_failures_are_rejected_without_a_store_call() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    // One base62 character changed in the random part.
    let mut typo = token.to_owned();
    let at = 10;
    let replacement = if &typo[at..=at] == "x" { "y" } else { "x" };
    typo.replace_range(at..=at, replacement);
    // The checksum itself changed.
    let mut bad_checksum = token.to_owned();
    let last = bad_checksum.len() - 1;
    let replacement = if &bad_checksum[last..] == "0" {
        "1"
    } else {
        "0"
    };
    bad_checksum.replace_range(last.., replacement);
    let refresh = fixture.issue(TokenKind::Refresh, S::BILLING_READ).await;
    let other_service = TokenFormat::new("acme")
        .unwrap()
        .generate(TokenKind::PersonalAccess)
        .unwrap();

    let cases = [
        ("garbage", Some("garbage".to_owned())),
        ("typo", Some(typo)),
        ("bad checksum", Some(bad_checksum)),
        ("kind tag swapped", Some(token.replacen("_pat_", "_at_", 1))),
        (
            "another service's prefix",
            Some(other_service.expose_secret().to_owned()),
        ),
        (
            "refresh prefix",
            Some(refresh.secret.expose_secret().to_owned()),
        ),
        ("missing header", None),
    ];
    for (label, token) in cases {
        let (service, store, inner) = counted(&fixture);
        let request = match &token {
            Some(token) => bearer(token),
            None => request("/v1/invoices"),
        };
        let status = service.oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert_eq!(store.finds(), 0, "{label}: no store call");
        assert_eq!(inner.calls(), 0, "{label}");
    }
}

#[tokio::test]
async fn a_well_formed_token_costs_exactly_one_store_call() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let unknown = TokenFormat::default().generate(TokenKind::Access).unwrap();

    let (service, store, _) = counted(&fixture);
    let status = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.finds(), 1);

    let (service, store, _) = counted(&fixture);
    let status = service
        .oneshot(bearer(unknown.expose_secret()))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.finds(), 1);
}

#[tokio::test]
async fn tokens_of_a_custom_format_need_the_same_format_on_the_layer() {
    let format = TokenFormat::new("acme").unwrap();
    let tokens = TokenManager::with_policy(
        MemoryStore::<S>::new(),
        tower_token_auth::manager::IssuePolicy::default().format(format),
    );
    let issued = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    assert!(issued.secret.expose_secret().starts_with("acme_pat_"));

    // The layer over the manager takes the manager's format.
    let matching = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(tokens.clone()))
        .service(Inner::<S>::new());
    let response = matching
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The bare backend knows no format but the default one.
    let default_format = ServiceBuilder::new()
        .layer(crate::support::layer_over(tokens.backend().clone()))
        .service(Inner::<S>::new());
    let response = default_format
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, MALFORMED);
}

// ---- expiry ----

async fn expiring_token(fixture: &Fixture) -> tower_token_auth::manager::IssuedToken<S> {
    let issued = fixture
        .tokens
        .issue(
            IssueRequest::new(TokenKind::Access, "hourly", "user-1")
                .lifetime(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert_eq!(issued.record.created_at, start_time());
    assert_eq!(
        issued.record.expires_at,
        start_time() + Duration::from_secs(3600)
    );
    issued
}

#[tokio::test]
async fn token_is_accepted_one_nanosecond_before_it_expires() {
    let fixture = Fixture::new();
    let issued = expiring_token(&fixture).await;
    let (service, _, inner) = counted(&fixture);
    fixture
        .clock
        .set(issued.record.expires_at - Duration::from_nanos(1));
    let status = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inner.calls(), 1);
}

#[tokio::test]
async fn token_is_rejected_at_exactly_its_expiry() {
    let fixture = Fixture::new();
    let issued = expiring_token(&fixture).await;
    let (service, _, inner) = counted(&fixture);
    fixture.clock.set(issued.record.expires_at);
    let response = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, EXPIRED);
    assert!(rejection.field("error_description").contains("expired"));
    assert!(rejection
        .www_authenticate
        .as_deref()
        .unwrap()
        .contains("expired"));
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn expiry_follows_the_clock_from_request_to_request() {
    let fixture = Fixture::new();
    let issued = expiring_token(&fixture).await;
    let (service, _, _) = counted(&fixture);
    let token = issued.secret.expose_secret();
    assert_eq!(status_of(&service, bearer(token)).await, StatusCode::OK);
    fixture.clock.advance(Duration::from_secs(3599));
    assert_eq!(status_of(&service, bearer(token)).await, StatusCode::OK);
    fixture.clock.advance(Duration::from_secs(1));
    assert_eq!(
        status_of(&service, bearer(token)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn default_lifetimes_are_180_days_for_pats_and_15_for_access_tokens() {
    let fixture = Fixture::new();
    let pat = fixture.pat(S::BILLING_READ).await;
    let access = fixture.issue(TokenKind::Access, S::BILLING_READ).await;
    let (service, _, _) = counted(&fixture);
    let day = Duration::from_secs(86_400);

    fixture
        .clock
        .set(start_time() + day * 15 - Duration::from_nanos(1));
    assert_eq!(
        status_of(&service, bearer(access.secret.expose_secret())).await,
        StatusCode::OK
    );
    fixture.clock.set(start_time() + day * 15);
    assert_eq!(
        status_of(&service, bearer(access.secret.expose_secret())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_of(&service, bearer(pat.secret.expose_secret())).await,
        StatusCode::OK
    );
    fixture.clock.set(start_time() + day * 180);
    assert_eq!(
        status_of(&service, bearer(pat.secret.expose_secret())).await,
        StatusCode::UNAUTHORIZED
    );
}

// ---- revocation and refresh tokens ----

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request() {
    let fixture = Fixture::new();
    let revoked = fixture.pat(S::BILLING_READ).await;
    let kept = fixture.pat(S::BILLING_READ).await;
    let (service, _, inner) = counted(&fixture);

    assert_eq!(
        status_of(&service, bearer(revoked.secret.expose_secret())).await,
        StatusCode::OK
    );
    assert!(fixture.tokens.revoke(revoked.record.id).await.unwrap());

    let response = service
        .clone()
        .oneshot(bearer(revoked.secret.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, INVALID);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidToken(InvalidTokenReason::Revoked))
    ));
    assert_eq!(
        status_of(&service, bearer(kept.secret.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(inner.calls(), 2);
}

#[tokio::test]
async fn refresh_token_is_refused_as_a_credential() {
    let fixture = Fixture::new();
    let refresh = fixture.issue(TokenKind::Refresh, S::BILLING_AGENT).await;
    let (service, store, inner) = counted(&fixture);
    let response = service
        .oneshot(bearer(refresh.secret.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, REFRESH);
    assert_eq!(store.finds(), 0, "refused by its prefix");
    assert_eq!(inner.calls(), 0);
}

// ---- optional mode ----

#[tokio::test]
async fn optional_auth_passes_a_request_without_credentials_with_no_principal() {
    let fixture = Fixture::new();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(fixture.layer().optional())
        .service(inner.clone());
    for request in [
        request("/v1/public"),
        with_authorization(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
    ] {
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_bytes(response.into_body()).await, INNER_BODY);
    }
    let seen = inner.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(Option::is_none), "no principal: {seen:?}");
}

#[tokio::test]
async fn optional_auth_sets_the_principal_for_a_valid_token() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::CUSTOMERS_READ).await;
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(fixture.layer().optional())
        .service(inner.clone());
    let response = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = inner.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].as_ref().map(|p| p.token_id()),
        Some(issued.record.id)
    );
}

#[tokio::test]
async fn optional_auth_still_rejects_a_bad_token() {
    let fixture = Fixture::new();
    let revoked = fixture.pat(S::BILLING_READ).await;
    fixture.tokens.revoke(revoked.record.id).await.unwrap();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(fixture.layer().optional())
        .service(inner.clone());

    let response = service.clone().oneshot(bearer("garbage")).await.unwrap();
    assert_rejection(&rejection(response).await, MALFORMED);
    let response = service
        .clone()
        .oneshot(bearer(revoked.secret.expose_secret()))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, INVALID);
    let response = service
        .oneshot(request("/v1/public?access_token=abc"))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, IN_URL);
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn scope_layer_behind_optional_auth_challenges_a_request_without_credentials() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let auth = fixture.layer().optional();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_READ))
        .service(inner.clone());

    let response = service
        .clone()
        .oneshot(request("/v1/invoices"))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, MISSING);
    assert!(matches!(rejection.error, Some(AuthError::MissingToken)));
    assert_eq!(inner.calls(), 0);

    let response = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(inner.calls(), 1);
}

// ---- the principal ----

#[tokio::test]
async fn principal_carries_the_token_record() {
    let fixture = Fixture::new();
    let issued = fixture
        .tokens
        .issue(
            IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "user-42")
                .scopes(S::BILLING_AGENT | S::PRODUCTS_READ),
        )
        .await
        .unwrap();
    let access = fixture
        .tokens
        .issue(IssueRequest::new(
            TokenKind::Access,
            "dashboard session",
            "user-7",
        ))
        .await
        .unwrap();
    let (service, _, inner) = counted(&fixture);
    assert_eq!(
        status_of(&service, bearer(issued.secret.expose_secret())).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&service, bearer(access.secret.expose_secret())).await,
        StatusCode::OK
    );

    let seen = inner.seen();
    let principal = seen[0].as_ref().expect("a principal");
    assert_eq!(principal.token_id(), issued.record.id);
    assert_eq!(principal.name(), "MCP Billing Agent");
    assert_eq!(principal.owner(), "user-42");
    assert_eq!(principal.kind(), TokenKind::PersonalAccess);
    assert_eq!(principal.scopes(), S::BILLING_AGENT | S::PRODUCTS_READ);
    assert!(principal.has(S::BILLING_WRITE), "implied by billing.agent");
    assert!(!principal.has(S::CUSTOMERS_READ));
    assert_eq!(
        principal.expires_at(),
        start_time() + Duration::from_secs(180 * 86_400)
    );
    assert_eq!(principal.record().id, issued.record.id);

    let principal = seen[1].as_ref().expect("a principal");
    assert_eq!(principal.token_id(), access.record.id);
    assert_eq!(principal.name(), "dashboard session");
    assert_eq!(principal.owner(), "user-7");
    assert_eq!(principal.kind(), TokenKind::Access);
    assert_eq!(principal.scopes(), S::BILLING_READ, "the default scope");
    assert_eq!(
        principal.expires_at(),
        start_time() + Duration::from_secs(15 * 86_400)
    );
}

// ---- readiness ----

/// A service that refuses `call` unless this very instance was readied by
/// `poll_ready` since its last call. Its clones start unready.
struct Strict {
    ready: bool,
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        Self {
            ready: false,
            polls: Arc::clone(&self.polls),
            calls: Arc::clone(&self.calls),
        }
    }
}

impl<B> Service<Request<B>> for Strict {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        if !std::mem::take(&mut self.ready) {
            return std::future::ready(Err("called without poll_ready on this instance"));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"strict")))))
    }
}

#[tokio::test]
async fn the_inner_service_readied_by_poll_ready_is_the_one_called() {
    // The memory store answers at once (`find_now`): the request is judged
    // inside `call`.
    let fixture = Fixture::new();
    readied_service_is_called(&fixture, fixture.layer()).await;
}

#[tokio::test]
async fn the_readied_service_is_called_after_a_lookup_that_waits() {
    // The counting wrapper only answers through `find`: the request waits
    // in the response future for the lookup.
    let fixture = Fixture::new();
    let store = CountingStore::new(fixture.tokens.clone());
    let layer = crate::support::layer_over(store.clone()).clock(fixture.clock.clone());
    readied_service_is_called(&fixture, layer).await;
    assert_eq!(store.finds(), 3, "three well-formed tokens, three lookups");
}

async fn readied_service_is_called<St>(fixture: &Fixture, layer: TokenAuthLayer<St>)
where
    St: tower_token_auth::store::TokenStore<Scopes = S> + Clone,
{
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let strict = Strict {
        ready: false,
        polls: Arc::default(),
        calls: Arc::default(),
    };
    let calls = Arc::clone(&strict.calls);
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .layer(fixture.layer().require(S::BILLING_READ))
        .service(strict);

    // Two calls in flight at once, each readied first.
    let first = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(bearer(token));
    let second = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(bearer(token));
    let (first, second) = (first.await, second.await);
    assert_eq!(first.expect("first call").status(), StatusCode::OK);
    assert_eq!(second.expect("second call").status(), StatusCode::OK);

    // A rejection leaves the readied service unused; the next call uses it.
    let rejected = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(bearer("garbage"))
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    let third = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(bearer(token))
        .await;
    assert_eq!(third.expect("third call").status(), StatusCode::OK);

    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_readied_service_is_called_behind_optional_auth_too() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let strict = Strict {
        ready: false,
        polls: Arc::default(),
        calls: Arc::default(),
    };
    let calls = Arc::clone(&strict.calls);
    let mut service = ServiceBuilder::new()
        .layer(fixture.layer().optional())
        .service(strict);
    let anonymous = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(request("/v1/public"))
        .await;
    assert_eq!(anonymous.expect("anonymous call").status(), StatusCode::OK);
    let authenticated = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
        .await
        .unwrap()
        .call(bearer(issued.secret.expose_secret()))
        .await;
    assert_eq!(
        authenticated.expect("authenticated call").status(),
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

// ---- lookups that answer at once and lookups that wait ----

#[tokio::test]
async fn lookups_that_answer_at_once_and_lookups_that_wait_give_the_same_responses() {
    let fixture = Fixture::new();
    let valid = fixture.pat(S::BILLING_READ).await;
    let revoked = fixture.pat(S::BILLING_READ).await;
    fixture.tokens.revoke(revoked.record.id).await.unwrap();
    let expired = expiring_token(&fixture).await;
    fixture.clock.advance(Duration::from_secs(3600));
    let refresh = fixture.issue(TokenKind::Refresh, S::BILLING_READ).await;
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    let cases = [
        ("valid", &valid.secret, StatusCode::OK),
        ("revoked", &revoked.secret, StatusCode::UNAUTHORIZED),
        ("expired", &expired.secret, StatusCode::UNAUTHORIZED),
        ("refresh", &refresh.secret, StatusCode::UNAUTHORIZED),
        ("unknown", &unknown, StatusCode::UNAUTHORIZED),
    ];

    let now_inner = Inner::<S>::new();
    let at_once = ServiceBuilder::new()
        .layer(fixture.layer())
        .service(now_inner.clone());
    let (waiting, counted_store, waiting_inner) = counted(&fixture);
    for (label, secret, status) in cases {
        use tower_token_auth::store::TokenStore;
        assert!(
            fixture.tokens.find_now(&secret.digest()).is_some(),
            "{label}: the memory store answers at once"
        );
        let token = secret.expose_secret();
        let a = at_once.clone().oneshot(bearer(token)).await.unwrap();
        let b = waiting.clone().oneshot(bearer(token)).await.unwrap();
        assert_eq!(a.status(), status, "{label}, at once");
        assert_eq!(b.status(), status, "{label}, waiting");
        assert_eq!(a.headers(), b.headers(), "{label}: same headers");
        assert_eq!(
            body_bytes(a.into_body()).await,
            body_bytes(b.into_body()).await,
            "{label}: same body"
        );
    }
    assert_eq!(
        counted_store.finds(),
        4,
        "every waiting lookup went to find; the refresh token is refused by its prefix first"
    );
    let (a, b) = (now_inner.seen(), waiting_inner.seen());
    assert_eq!(
        (a.len(), b.len()),
        (1, 1),
        "only the valid token got through"
    );
    let (a, b) = (a[0].as_ref().unwrap(), b[0].as_ref().unwrap());
    assert_eq!(a.token_id(), valid.record.id);
    assert_eq!(b.token_id(), valid.record.id);
    assert_eq!(a.scopes(), b.scopes());
}

// ---- body types ----

async fn body_type_round_trip<B>(make: fn(&'static str) -> B)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let auth = fixture.layer();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_READ))
        .service(service_fn(move |_request: Request<B>| async move {
            Ok::<_, Infallible>(Response::new(make("invoices")))
        }));

    let request = Request::get("/v1/invoices")
        .header(
            AUTHORIZATION,
            format!("Bearer {}", issued.secret.expose_secret()),
        )
        .body(make(""))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let expected: &[u8] = if make("x").is_end_stream() {
        b""
    } else {
        b"invoices"
    };
    assert_eq!(body_bytes(response.into_body()).await, expected);

    let request = Request::get("/v1/invoices").body(make("")).unwrap();
    let response = service.oneshot(request).await.unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, MISSING);
}

#[tokio::test]
async fn works_with_axum_bodies() {
    body_type_round_trip::<axum::body::Body>(axum::body::Body::from).await;
}

#[tokio::test]
async fn works_with_full_bodies() {
    body_type_round_trip::<Full<Bytes>>(|s| Full::new(Bytes::from_static(s.as_bytes()))).await;
}

#[tokio::test]
async fn works_with_empty_bodies() {
    body_type_round_trip::<Empty<Bytes>>(|_| Empty::new()).await;
}

#[tokio::test]
async fn services_can_be_built_without_the_layer_and_give_back_their_inner_service() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let inner = Inner::<S>::new();
    let scoped = tower_token_auth::RequireScope::new(inner.clone(), S::BILLING_READ);
    // `TokenAuth::new` judges expiry by the clock of the store it is given.
    // The fixture's bare backend has none of its own: the system clock,
    // and the fixture's tokens were issued in 2023 with lifetimes of months.
    let mut service = tower_layer::Layer::layer(
        &crate::support::layer_over(fixture.tokens.backend().clone()),
        scoped,
    );
    assert_eq!(service.get_ref().get_ref().calls(), 0);
    assert_eq!(service.get_mut().get_mut().calls(), 0);

    let response = service
        .clone()
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, EXPIRED);
    let fresh = TokenManager::new(MemoryStore::new());
    let issued = fresh
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "fresh", "u"))
        .await
        .unwrap();
    let service = TokenAuth::new(service.into_inner(), fresh);
    let response = service
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(inner.calls(), 1);
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through_and_rejections_are_ok_responses() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let service = ServiceBuilder::new()
        .layer(fixture.layer())
        .service(service_fn(|_request: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>("inner failure")
        }));

    let error = service
        .clone()
        .oneshot(bearer(issued.secret.expose_secret()))
        .await
        .unwrap_err();
    assert_eq!(error, "inner failure");

    let rejected = service.oneshot(bearer("garbage")).await;
    let response = rejected.expect("a rejection is a response, not a service error");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
