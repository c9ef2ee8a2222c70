//! A token never shows up where it should not: in `Debug` output of any
//! type that holds or handles one, in error messages, or in logs at any
//! level.

#[path = "../support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderValue;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::store::{IssueRequest, IssuedToken, TokenManager};
use tower_token_auth::token::{TokenDigest, TokenFormat, TokenKind, TokenSecret};
use tower_token_auth::{AuthError, PayRequestScopes as S, RequireScopeLayer, TokenAuthLayer};
use tracing::Level;

use support::*;

/// The strings that must never appear for a token: the plaintext, its
/// random part, and the hex of its digest (whole, and its first 8 bytes).
fn forbidden(secret: &TokenSecret) -> Vec<String> {
    let token = secret.expose_secret();
    let random = &token[token.rfind('_').unwrap() + 1..];
    let hex: String = secret
        .digest()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex.len(), 64);
    vec![
        token.to_owned(),
        random.to_owned(),
        random[..12].to_owned(),
        hex.clone(),
        hex[..16].to_owned(),
        hex.to_uppercase(),
    ]
}

fn assert_redacted(label: &str, text: &str, secrets: &[&TokenSecret]) {
    for secret in secrets {
        for needle in forbidden(secret) {
            assert!(!text.contains(&needle), "{label} shows {needle:?}:\n{text}");
        }
    }
}

/// `{:?}` and `{:#?}` of `value`.
fn debug_both(value: &dyn std::fmt::Debug) -> [String; 2] {
    [format!("{value:?}"), format!("{value:#?}")]
}

async fn issue(fixture: &Fixture, kind: TokenKind, name: &str) -> IssuedToken<S> {
    fixture
        .store
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
    let listed = fixture.store.list("user-1").await.unwrap();
    let digest = issued.secret.digest();
    assert_eq!(listed.len(), 2);

    let values: Vec<(&str, &dyn std::fmt::Debug)> = vec![
        ("TokenSecret", &issued.secret),
        ("IssuedToken", &issued),
        ("Arc<TokenRecord>", &issued.record),
        ("TokenRecord", &*issued.record),
        ("TokenDigest", &digest),
        ("TokenInfo listing", &listed),
        ("MemoryStore", &fixture.store),
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

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_at_trace_name_tokens_by_id_and_never_contain_them() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fixture = Fixture::new();
    let accepted = issue(&fixture, TokenKind::PersonalAccess, "accepted").await;
    let revoked = issue(&fixture, TokenKind::PersonalAccess, "revoked").await;
    fixture.store.revoke(revoked.record.id).await.unwrap();
    let expired = fixture
        .store
        .issue(
            IssueRequest::new(TokenKind::Access, "expired", "user-1")
                .lifetime(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let refresh = issue(&fixture, TokenKind::Refresh, "refresh").await;
    let unknown = TokenFormat::default()
        .generate(TokenKind::PersonalAccess)
        .unwrap();
    let mut typo = accepted.secret.expose_secret().to_owned();
    let replacement = if typo.ends_with('0') { "1" } else { "0" };
    typo.replace_range(typo.len() - 1.., replacement);
    let typo = TokenSecret::new(typo);
    fixture.clock.advance(Duration::from_secs(2));

    let auth = fixture.layer();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_WRITE))
        .service(Inner::<S>::new());
    let reader = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.require(S::BILLING_READ))
        .service(Inner::<S>::new());

    let send = |request| {
        let service = service.clone();
        async move { service.oneshot(request).await.unwrap().status().as_u16() }
    };
    let ok = reader
        .clone()
        .oneshot(bearer(accepted.secret.expose_secret()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(send(bearer(accepted.secret.expose_secret())).await, 403);
    assert_eq!(send(bearer(revoked.secret.expose_secret())).await, 401);
    assert_eq!(send(bearer(expired.secret.expose_secret())).await, 401);
    assert_eq!(send(bearer(refresh.secret.expose_secret())).await, 401);
    assert_eq!(send(bearer(unknown.expose_secret())).await, 401);
    assert_eq!(send(bearer(typo.expose_secret())).await, 401);
    assert_eq!(send(request("/v1/invoices")).await, 401);
    let mut twice = bearer(accepted.secret.expose_secret());
    twice.headers_mut().append(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", accepted.secret.expose_secret())).unwrap(),
    );
    assert_eq!(send(twice).await, 400);
    let in_url = format!(
        "/v1/invoices?access_token={}",
        accepted.secret.expose_secret()
    );
    assert_eq!(send(request(&in_url)).await, 400);
    let down = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(FailingStore::new(Failure::Unavailable)))
        .layer(RequireScopeLayer::new(S::BILLING_READ))
        .service(Inner::<S>::new());
    let response = down.oneshot(bearer(unknown.expose_secret())).await.unwrap();
    assert_eq!(response.status(), 503);

    let text = logs.text();
    for (what, needle) in [
        ("accepted token id", accepted.record.id.to_string()),
        ("revoked token id", revoked.record.id.to_string()),
        ("expired token id", expired.record.id.to_string()),
        ("revocation", "revoked".to_owned()),
        ("expiry", "expired".to_owned()),
        ("unknown token", "unknown".to_owned()),
        ("bad checksum", "malformed".to_owned()),
        ("refresh token", "refresh".to_owned()),
        ("missing scope", "billing.write".to_owned()),
        ("store failure", "connection refused".to_owned()),
    ] {
        assert!(
            text.contains(&needle),
            "logs mention the {what} ({needle}):\n{text}"
        );
    }
    for secret in [
        &accepted.secret,
        &revoked.secret,
        &expired.secret,
        &refresh.secret,
        &unknown,
        &typo,
    ] {
        assert_redacted("logs", &text, &[secret]);
    }
}
