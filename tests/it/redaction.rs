//! A token never shows up in the `Debug` output of any type that holds or
//! handles one, nor in error messages.

use http::header::AUTHORIZATION;
use http::HeaderValue;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::manager::{IssueRequest, IssuedToken};
use tower_token_auth::token::{TokenDigest, TokenFormat, TokenKind};
use tower_token_auth::{AuthError, PayRequestScopes as S};

use crate::support::*;

/// `{:?}` and `{:#?}` of `value`.
fn debug_both(value: &dyn std::fmt::Debug) -> [String; 2] {
    [format!("{value:?}"), format!("{value:#?}")]
}

async fn issue(fixture: &Fixture, kind: TokenKind, name: &str) -> IssuedToken<S> {
    fixture
        .tokens
        .issue(IssueRequest::new(kind, name, "user-1").scopes(S::BILLING_READ))
        .await
        .unwrap()
}

#[tokio::test]
async fn debug_of_every_secret_holding_type_is_redacted() {
    let fixture = Fixture::new();
    let issued = issue(&fixture, TokenKind::PersonalAccess, "debugged").await;
    let refresh = issue(&fixture, TokenKind::Refresh, "refresh").await;
    let secrets = [&issued.secret, &refresh.secret];
    let auth = fixture.layer();
    let inner = Inner::<S>::new();
    let require = auth.require(S::BILLING_WRITE);
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(require.clone())
        .service(inner.clone());

    // A principal and a few typed errors, as the stack produces them.
    let token = issued.secret.expose_secret();
    let ok_service = ServiceBuilder::new()
        .layer(auth.clone())
        .service(inner.clone());
    let response = ok_service.oneshot(bearer(token)).await.unwrap();
    assert_eq!(response.status(), 200);
    let principal = inner.seen()[0].clone().expect("a principal");
    let forbidden_response = service.clone().oneshot(bearer(token)).await.unwrap();
    assert_eq!(forbidden_response.status(), 403);
    let mut twice = bearer(token);
    twice.headers_mut().append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let repeated = service.clone().oneshot(twice).await.unwrap();
    let refresh_rejected = service
        .clone()
        .oneshot(bearer(refresh.secret.expose_secret()))
        .await
        .unwrap();
    let errors: Vec<AuthError> = [&forbidden_response, &repeated, &refresh_rejected]
        .iter()
        .map(|r| {
            r.extensions()
                .get::<AuthError>()
                .cloned()
                .expect("typed error")
        })
        .collect();
    let listed = fixture.tokens.list("user-1").await.unwrap();
    let digest = issued.secret.digest();
    assert_eq!(listed.len(), 2);

    let values: Vec<(&str, &dyn std::fmt::Debug)> = vec![
        ("TokenSecret", &issued.secret),
        ("IssuedToken", &issued),
        ("Arc<TokenRecord>", &issued.record),
        ("TokenRecord", &*issued.record),
        ("TokenDigest", &digest),
        ("TokenInfo listing", &listed),
        ("MemoryStore", &fixture.tokens),
        ("Principal", &principal),
        ("AuthError", &errors),
        ("TokenAuthLayer", &auth),
        ("TokenAuth", &service),
        ("RequireScopeLayer", &require),
        ("rejection response", &forbidden_response),
        ("refresh IssuedToken", &refresh),
    ];
    for (label, value) in values {
        for text in debug_both(value) {
            assert_redacted(label, &text, &secrets);
        }
    }
    for error in &errors {
        assert_redacted("AuthError Display", &error.to_string(), &secrets);
    }

    // Redacted, but still useful: the id and hint name the token.
    let record = format!("{:?}", issued.record);
    assert!(record.contains(&issued.record.id.to_string()), "{record}");
    assert!(record.contains(&issued.secret.hint()), "{record}");
    let principal = format!("{principal:?}");
    assert!(
        principal.contains(&issued.record.id.to_string()),
        "{principal}"
    );
}

#[test]
fn a_secret_debug_never_shows_any_part_of_the_value() {
    let secret = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    for text in debug_both(&secret) {
        assert_redacted("TokenSecret", &text, &[&secret]);
        assert!(!text.contains("pr_pat_"), "{text}");
    }
    let digest = TokenDigest::of(secret.expose_secret());
    for text in debug_both(&digest) {
        assert_redacted("TokenDigest", &text, &[&secret]);
    }
}
