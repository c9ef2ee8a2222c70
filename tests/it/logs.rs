//! Logs at TRACE name tokens by id and reason, and never contain a token.
//!
//! The log is the test binary's (see `support::logs`): the test finds what
//! it logged by its span, and no token may be anywhere in the whole log.

use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderValue;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::manager::{IssueRequest, IssuedToken};
use tower_token_auth::token::{TokenFormat, TokenKind, TokenSecret};
use tower_token_auth::{PayRequestScopes as S, RequireScopeLayer};
use tracing::Instrument;

use crate::support::*;

async fn issue(fixture: &Fixture, kind: TokenKind, name: &str) -> IssuedToken<S> {
    fixture
        .tokens
        .issue(IssueRequest::new(kind, name, "user-1").scopes(S::BILLING_READ))
        .await
        .unwrap()
}

#[tokio::test]
async fn logs_at_trace_name_tokens_by_id_and_never_contain_them() {
    // The subscriber first: a span made before it would record nothing.
    let logs = logs();
    async {
        let fixture = Fixture::new();
        let accepted = issue(&fixture, TokenKind::PersonalAccess, "accepted").await;
        let revoked = issue(&fixture, TokenKind::PersonalAccess, "revoked").await;
        fixture.tokens.revoke(revoked.record.id).await.unwrap();
        let expired = fixture
            .tokens
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
            .layer(crate::support::layer_over(FailingStore::new(
                Failure::Unavailable,
            )))
            .layer(RequireScopeLayer::new(S::BILLING_READ))
            .service(Inner::<S>::new());
        let response = down.oneshot(bearer(unknown.expose_secret())).await.unwrap();
        assert_eq!(response.status(), 503);

        let text = logs.of("logs");
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
        let everything = logs.text();
        for secret in [
            &accepted.secret,
            &revoked.secret,
            &expired.secret,
            &refresh.secret,
            &unknown,
            &typo,
        ] {
            assert_redacted("logs", &everything, &[secret]);
        }
    }
    .instrument(test_span("logs"))
    .await;
}
