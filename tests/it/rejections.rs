//! The RFC 6750 rejections: one test per situation of the error table
//! (status, exact `WWW-Authenticate`, JSON body, `Cache-Control`, typed
//! error), plus custom realms and replaced responses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::error::{InvalidRequestReason, InvalidTokenReason};
use tower_token_auth::manager::IssueRequest;
use tower_token_auth::token::{TokenFormat, TokenKind};
use tower_token_auth::{AuthError, PayRequestScopes as S, Rejections, TokenAuthLayer};

use crate::support::*;

/// Sends `request` through `TokenAuthLayer` (over the fixture's store) and
/// an inner service; returns the rejection and how often the inner service
/// was called.
async fn reject(
    fixture: &Fixture,
    request: http::Request<http_body_util::Full<Bytes>>,
) -> (Rejection, usize) {
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(fixture.layer())
        .service(inner.clone());
    let response = service.oneshot(request).await.unwrap();
    (rejection(response).await, inner.calls())
}

#[tokio::test]
async fn missing_credentials_are_401_with_a_bare_challenge() {
    let fixture = Fixture::new();
    let (rejection, calls) = reject(&fixture, request("/v1/invoices")).await;
    assert_rejection(&rejection, MISSING);
    assert!(matches!(rejection.error, Some(AuthError::MissingToken)));
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn another_scheme_is_answered_like_missing_credentials() {
    let fixture = Fixture::new();
    let request = with_authorization(HeaderValue::from_static("Basic dXNlcjpwYXNz"));
    let (rejection, calls) = reject(&fixture, request).await;
    assert_rejection(&rejection, MISSING);
    assert!(matches!(rejection.error, Some(AuthError::MissingToken)));
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn two_authorization_headers_are_400_invalid_request() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let mut request = bearer(issued.secret.expose_secret());
    let second =
        HeaderValue::from_str(&format!("Bearer {}", issued.secret.expose_secret())).unwrap();
    request.headers_mut().append(AUTHORIZATION, second);

    let (rejection, calls) = reject(&fixture, request).await;
    assert_rejection(&rejection, REPEATED);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidRequest(
            InvalidRequestReason::RepeatedCredentials
        ))
    ));
    rejection.assert_does_not_contain(issued.secret.expose_secret());
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn token_in_header_and_query_is_400_invalid_request() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let mut request = bearer(token);
    *request.uri_mut() = format!("/v1/invoices?limit=5&access_token={token}")
        .parse()
        .unwrap();

    let (rejection, calls) = reject(&fixture, request).await;
    assert_rejection(&rejection, REPEATED);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidRequest(
            InvalidRequestReason::RepeatedCredentials
        ))
    ));
    rejection.assert_does_not_contain(token);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn token_only_in_the_url_is_400_invalid_request() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let request = request(&format!("/v1/invoices?access_token={token}"));

    let (rejection, calls) = reject(&fixture, request).await;
    assert_rejection(&rejection, IN_URL);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidRequest(InvalidRequestReason::TokenInUrl))
    ));
    rejection.assert_does_not_contain(token);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn url_token_next_to_another_scheme_is_still_400_invalid_request() {
    let fixture = Fixture::new();
    let mut request = with_authorization(HeaderValue::from_static("Basic dXNlcjpwYXNz"));
    *request.uri_mut() = "/v1/invoices?access_token=abc".parse().unwrap();
    let (rejection, _) = reject(&fixture, request).await;
    assert_rejection(&rejection, IN_URL);
}

#[tokio::test]
async fn malformed_token_is_401_invalid_token() {
    let fixture = Fixture::new();
    let (rejection, calls) = reject(&fixture, bearer("not-a-token")).await;
    assert_rejection(&rejection, MALFORMED);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidToken(InvalidTokenReason::Malformed))
    ));
    rejection.assert_does_not_contain("not-a-token");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let fixture = Fixture::new();
    fixture.pat(S::BILLING_READ).await;
    // Well formed, valid checksum, never stored.
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();

    let (rejection, calls) = reject(&fixture, bearer(unknown.expose_secret())).await;
    assert_rejection(&rejection, INVALID);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidToken(InvalidTokenReason::Unknown))
    ));
    rejection.assert_does_not_contain(unknown.expose_secret());
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn revoked_token_is_401_invalid_token_and_looks_like_an_unknown_one() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    assert!(fixture.tokens.revoke(issued.record.id).await.unwrap());

    let (revoked, calls) = reject(&fixture, bearer(issued.secret.expose_secret())).await;
    assert_rejection(&revoked, INVALID);
    assert!(matches!(
        revoked.error,
        Some(AuthError::InvalidToken(InvalidTokenReason::Revoked))
    ));
    revoked.assert_does_not_contain(issued.secret.expose_secret());
    assert_eq!(calls, 0);

    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    let (unknown, _) = reject(&fixture, bearer(unknown.expose_secret())).await;
    assert_eq!(revoked.www_authenticate, unknown.www_authenticate);
    assert_eq!(
        revoked.body, unknown.body,
        "the client cannot tell them apart"
    );
}

#[tokio::test]
async fn refresh_token_as_a_credential_is_401_invalid_token() {
    let fixture = Fixture::new();
    let refresh = fixture.issue(TokenKind::Refresh, S::BILLING_READ).await;

    let (rejection, calls) = reject(&fixture, bearer(refresh.secret.expose_secret())).await;
    assert_rejection(&rejection, REFRESH);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidToken(
            InvalidTokenReason::NotAnAccessCredential
        ))
    ));
    rejection.assert_does_not_contain(refresh.secret.expose_secret());
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn refresh_record_behind_an_access_prefix_is_401_invalid_token() {
    // The prefix is attacker-controlled: the record's kind decides.
    let (secret, record) = minted(IssueRequest::<S>::new(
        TokenKind::Access,
        "refresh in disguise",
        "user-1",
    ))
    .await;
    assert!(secret.expose_secret().starts_with("pr_at_"));
    let mut record = record;
    record.kind = TokenKind::Refresh;
    let store = CountingStore::new(FixedStore::new(record));
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(crate::support::layer_over(store.clone()))
        .service(inner.clone());

    let response = service
        .oneshot(bearer(secret.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, REFRESH);
    assert!(matches!(
        rejection.error,
        Some(AuthError::InvalidToken(
            InvalidTokenReason::NotAnAccessCredential
        ))
    ));
    assert_eq!(store.finds(), 1, "the kind is judged after the lookup");
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn record_of_another_token_is_401_invalid_token() {
    // A store that answers with a record whose digest is not the presented
    // token's must not lend that record's identity.
    let (_, record) = minted(IssueRequest::<S>::new(
        TokenKind::PersonalAccess,
        "someone else",
        "user-2",
    ))
    .await;
    let presented = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(crate::support::layer_over(FixedStore::new(record)))
        .service(inner.clone());

    let response = service
        .oneshot(bearer(presented.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    assert_rejection(&rejection, INVALID);
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn expired_token_is_rejected_with_invalid_token() {
    let fixture = Fixture::new();
    let issued = fixture
        .tokens
        .issue(
            IssueRequest::new(TokenKind::Access, "short", "user-1")
                .lifetime(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    fixture.clock.advance(Duration::from_secs(61));

    let (rejection, calls) = reject(&fixture, bearer(issued.secret.expose_secret())).await;
    assert_rejection(&rejection, EXPIRED);
    assert!(matches!(rejection.error, Some(AuthError::ExpiredToken)));
    assert!(rejection.field("error_description").contains("expired"));
    let challenge = rejection.www_authenticate.as_deref().unwrap();
    let description = challenge_params(challenge)
        .into_iter()
        .find(|(name, _)| name == "error_description")
        .unwrap()
        .1;
    assert!(description.contains("expired"), "{challenge}");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let auth = fixture.layer();
    let inner = Inner::<S>::new();
    let create_invoice = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_WRITE))
        .service(inner.clone());

    let response = create_invoice
        .oneshot(bearer(reader.secret.expose_secret()))
        .await
        .unwrap();
    let rejection = rejection(response).await;
    let challenge = insufficient_scope_challenge("billing.write");
    assert_rejection(&rejection, insufficient(&challenge));
    assert_eq!(rejection.field("scope"), "billing.write");
    match &rejection.error {
        Some(AuthError::InsufficientScope { required }) => assert_eq!(&**required, "billing.write"),
        other => panic!("expected InsufficientScope, got {other:?}"),
    }
    rejection.assert_does_not_contain(reader.secret.expose_secret());
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn invalid_token_is_401_not_403_on_a_route_requiring_scopes() {
    let fixture = Fixture::new();
    let auth = fixture.layer();
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_AGENT))
        .service(inner.clone());
    let unknown = TokenFormat::default().generate(TokenKind::Access).unwrap();

    let response = service
        .clone()
        .oneshot(bearer(unknown.expose_secret()))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, INVALID);

    let response = service.oneshot(request("/v1/agent")).await.unwrap();
    assert_rejection(&rejection(response).await, MISSING);
    assert_eq!(inner.calls(), 0);
}

async fn store_failure_is_503_without_challenge(failure: Failure) {
    let store = FailingStore::new(failure);
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(crate::support::layer_over(store.clone()))
        .service(inner.clone());
    let token = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();

    let response = service
        .oneshot(bearer(token.expose_secret()))
        .await
        .unwrap();
    assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    let rejection = rejection(response).await;
    assert_rejection(&rejection, UNAVAILABLE);
    assert!(matches!(
        rejection.error,
        Some(AuthError::StoreUnavailable(_))
    ));
    rejection.assert_does_not_contain(token.expose_secret());
    assert_eq!(store.finds(), 1);
    assert_eq!(
        inner.calls(),
        0,
        "a failing store never lets a request through"
    );
}

#[tokio::test]
async fn unavailable_store_is_503_temporarily_unavailable_and_never_passes() {
    store_failure_is_503_without_challenge(Failure::Unavailable).await;
}

#[tokio::test]
async fn failing_store_backend_is_503_temporarily_unavailable_and_never_passes() {
    store_failure_is_503_without_challenge(Failure::Backend).await;
}

#[tokio::test]
async fn store_failure_is_503_even_behind_optional_authentication() {
    let store = FailingStore::new(Failure::Unavailable);
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(crate::support::layer_over(store).optional())
        .service(inner.clone());
    let token = TokenFormat::default().generate(TokenKind::Access).unwrap();
    let response = service
        .oneshot(bearer(token.expose_secret()))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, UNAVAILABLE);
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn custom_realm_and_resource_metadata_are_quoted_once_in_every_challenge() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let challenge = Rejections::new(r#"billing "eu""#)
        .resource_metadata("https://api.example.test/.well-known/oauth-protected-resource");
    let auth = fixture.layer().rejections(challenge);
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_WRITE))
        .service(Inner::<S>::new());

    let head = r#"Bearer realm="billing \"eu\"""#;
    let metadata =
        r#"resource_metadata="https://api.example.test/.well-known/oauth-protected-resource""#;
    let cases = [
        (request("/v1/invoices"), format!("{head}, {metadata}")),
        (
            bearer("garbage"),
            format!(
                r#"{head}, error="invalid_token", error_description="The access token is malformed.", {metadata}"#
            ),
        ),
        (
            bearer(reader.secret.expose_secret()),
            format!(
                r#"{head}, error="insufficient_scope", error_description="The access token does not have the scope this request requires.", scope="billing.write", {metadata}"#
            ),
        ),
    ];
    for (request, expected) in cases {
        let response = service.clone().oneshot(request).await.unwrap();
        let rejection = rejection(response).await;
        let value = rejection.www_authenticate.as_deref().unwrap();
        assert_eq!(value, expected);
        let params = challenge_params(value);
        assert_eq!(
            params[0],
            ("realm".to_owned(), r#"billing "eu""#.to_owned())
        );
        let names: Vec<_> = params.iter().map(|(n, _)| n.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "each attribute once: {value}");
    }
}

#[tokio::test]
async fn on_rejection_replaces_the_whole_response() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let seen = Arc::new(Mutex::new(Vec::<(String, StatusCode)>::new()));
    let record = Arc::clone(&seen);
    let challenge = Rejections::default().on_rejection(move |error, default| {
        record
            .lock()
            .unwrap()
            .push((error.error_code().to_owned(), default.status()));
        let mut response = Response::new(Bytes::from(format!("custom:{}", error.error_code())));
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
        response
            .headers_mut()
            .insert("x-auth-error", HeaderValue::from_static(error.error_code()));
        response
    });
    let auth = fixture.layer().rejections(challenge);
    let inner = Inner::<S>::new();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_WRITE))
        .service(inner.clone());

    // Rejected by the authentication layer.
    let response = service.clone().oneshot(bearer("garbage")).await.unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["x-auth-error"], "invalid_token");
    assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    assert_eq!(
        body_bytes(response.into_body()).await,
        "custom:invalid_token"
    );

    // Rejected by the scope layer built from the same layer.
    let response = service
        .clone()
        .oneshot(bearer(reader.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(
        body_bytes(response.into_body()).await,
        "custom:insufficient_scope"
    );

    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("invalid_token".to_owned(), StatusCode::UNAUTHORIZED),
            ("insufficient_scope".to_owned(), StatusCode::FORBIDDEN),
        ]
    );
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn a_shared_challenge_keeps_its_custom_response_when_given_resource_metadata() {
    // A challenge is configured once and handed to several layers; adding
    // the metadata URL to one copy must not drop the custom response.
    let custom = Rejections::new("billing").on_rejection(|error, _default| {
        let mut response = Response::new(Bytes::from(format!("custom:{}", error.error_code())));
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
        response
    });
    let other_layer = TokenAuthLayer::new(Fixture::new().tokens).rejections(custom.clone());
    let with_metadata =
        custom.resource_metadata("https://api.example.test/.well-known/oauth-protected-resource");
    let service = ServiceBuilder::new()
        .layer(Fixture::new().layer().rejections(with_metadata))
        .service(Inner::<S>::new());

    let response = service.oneshot(request("/v1/invoices")).await.unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(
        body_bytes(response.into_body()).await,
        "custom:missing_token"
    );
    drop(other_layer);
}

/// Every audit event, in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<tower_token_auth::audit::AuditEvent>>);

impl tower_token_auth::audit::AuditObserver for Recorded {
    fn observe(&self, event: &tower_token_auth::audit::AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// The rejection audit events carry the token's id when the store knew it,
/// and the exact error; a scope denial names the token, its owner and what
/// the route requires.
#[tokio::test]
async fn rejection_audit_events_name_the_token_and_the_exact_error() {
    use tower_token_auth::audit::{Audit, AuditEvent};

    let fixture = Fixture::new();
    let recorded = Arc::new(Recorded::default());
    let audit = Audit::new().observer(recorded.clone());
    let auth = fixture
        .layer()
        .audit(audit)
        .resource("https://api.example.com/");
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_WRITE))
        .service(Inner::<S>::new());
    let issue = |request: IssueRequest<S>| {
        let tokens = fixture.tokens.clone();
        async move { tokens.issue(request).await.unwrap() }
    };
    let ours = |name: &'static str| {
        IssueRequest::new(TokenKind::PersonalAccess, name, "user-1")
            .audience(["https://api.example.com/"])
    };
    let revoked = issue(ours("revoked")).await;
    fixture.tokens.revoke(revoked.record.id).await.unwrap();
    let expired = issue(ours("expired").lifetime(Duration::from_secs(1))).await;
    let foreign = issue(
        IssueRequest::new(TokenKind::PersonalAccess, "foreign", "user-1")
            .audience(["https://other.example/"]),
    )
    .await;
    let reader = issue(ours("reader").scopes(S::BILLING_READ)).await;
    fixture.clock.advance(Duration::from_secs(1));
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    recorded.0.lock().unwrap().clear();

    let cases: [(Option<&str>, Option<_>, &str, AuthError); 5] = [
        (None, None, "missing_token", AuthError::MissingToken),
        (
            Some(unknown.expose_secret()),
            None,
            "invalid_token",
            AuthError::InvalidToken(InvalidTokenReason::Unknown),
        ),
        (
            Some(revoked.secret.expose_secret()),
            Some(revoked.record.id),
            "invalid_token",
            AuthError::InvalidToken(InvalidTokenReason::Revoked),
        ),
        (
            Some(expired.secret.expose_secret()),
            Some(expired.record.id),
            "invalid_token",
            AuthError::ExpiredToken,
        ),
        (
            Some(foreign.secret.expose_secret()),
            Some(foreign.record.id),
            "invalid_token",
            AuthError::InvalidToken(InvalidTokenReason::WrongAudience),
        ),
    ];
    for (token, id, code, error) in cases {
        let request = match token {
            Some(token) => bearer(token),
            None => request("/v1/invoices"),
        };
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), error.status(), "{error}");
        let events = std::mem::take(&mut *recorded.0.lock().unwrap());
        match &events[..] {
            [AuditEvent::AuthenticationRejected { id: got, error: e }] => {
                assert_eq!(*got, id, "{error}: the token's id when the store knew it");
                assert_eq!(e.error_code(), code);
                assert_eq!(e.to_string(), error.to_string());
            }
            other => panic!("{error}: expected one authentication_rejected, got {other:?}"),
        }
    }

    let response = service
        .clone()
        .oneshot(bearer(reader.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let events = std::mem::take(&mut *recorded.0.lock().unwrap());
    match &events[..] {
        [AuditEvent::ScopeDenied {
            id,
            owner,
            required,
        }] => {
            assert_eq!(*id, reader.record.id);
            assert_eq!(owner, "user-1");
            assert_eq!(&**required, "billing.write");
        }
        other => panic!("expected one scope_denied, got {other:?}"),
    }
}
