//! Every JSON answer of the library says `X-Content-Type-Options: nosniff`
//! (issue 23, row 12): the OAuth endpoints' answers and errors, the
//! metadata documents and the middleware's rejections, so that no browser
//! sniffs one of them into something it would run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, Request};
use http_body_util::Full;
use tower::{service_fn, Layer as _, ServiceExt};
use tower_token_auth::manager::TokenManager;
use tower_token_auth::oauth::{
    AuthorizationServerMetadata, IntrospectionEndpoint, MetadataDocument,
    ProtectedResourceMetadata, RegistrationEndpoint, RevocationEndpoint, TokenEndpoint,
};
use tower_token_auth::peer::PeerAddr;
use tower_token_auth::{MemoryStore, PayRequestScopes as S, TokenAuthLayer};

fn form(uri: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

fn assert_nosniff(what: &str, headers: &HeaderMap) {
    assert_eq!(
        headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{what}: not a JSON answer"
    );
    assert_eq!(
        headers
            .get(X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}: no X-Content-Type-Options: nosniff"
    );
}

#[tokio::test]
async fn every_json_answer_says_nosniff() {
    let tokens = TokenManager::new(MemoryStore::<S>::new());
    let pair = tokens.issue_pair("agent", "user-1", None).await.unwrap();

    let cases: Vec<(&str, Request<Full<Bytes>>)> = vec![
        (
            "token endpoint, success",
            form(
                "/oauth/token",
                &format!(
                    "grant_type=refresh_token&refresh_token={}",
                    pair.refresh.secret.expose_secret()
                ),
            ),
        ),
        (
            "token endpoint, error",
            form("/oauth/token", "grant_type=password"),
        ),
    ];
    for (what, request) in cases {
        let response = TokenEndpoint::new(tokens.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_nosniff(what, response.headers());
    }

    let response = RevocationEndpoint::new(tokens.clone())
        .oneshot(form("/oauth/revoke", ""))
        .await
        .unwrap();
    assert_nosniff("revocation endpoint, error", response.headers());

    let introspection = IntrospectionEndpoint::new(tokens.clone(), "caller", "s3cret");
    let response = introspection
        .clone()
        .oneshot(form("/oauth/introspect", "token=x"))
        .await
        .unwrap();
    assert_nosniff("introspection endpoint, no credentials", response.headers());
    let mut request = form("/oauth/introspect", "token=x");
    request.headers_mut().insert(
        "authorization",
        "Basic Y2FsbGVyOnMzY3JldA==".parse().unwrap(),
    );
    let response = introspection.oneshot(request).await.unwrap();
    assert_nosniff("introspection endpoint, inactive", response.headers());

    for (what, body) in [
        (
            "registration endpoint, success",
            r#"{"redirect_uris":["http://127.0.0.1:8123/cb"]}"#,
        ),
        ("registration endpoint, error", "{}"),
    ] {
        let mut request = Request::post("/oauth/register")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        request.extensions_mut().insert(PeerAddr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            4000,
        )));
        let response = RegistrationEndpoint::new(tokens.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_nosniff(what, response.headers());
    }

    for (what, document) in [
        (
            "RFC 9728 document",
            ProtectedResourceMetadata::<S>::new("https://billing.example/").to_json(),
        ),
        (
            "RFC 8414 document",
            AuthorizationServerMetadata::<S>::new("https://billing.example").to_json(),
        ),
    ] {
        let response = MetadataDocument::new(document)
            .oneshot(
                Request::get("/.well-known/x")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_nosniff(what, response.headers());
    }

    let protected = TokenAuthLayer::new(tokens.clone()).layer(service_fn(
        |_request: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        },
    ));
    for (what, authorization) in [
        ("401 missing_token", None),
        ("401 invalid_token", Some("Bearer pr_pat_nonsense")),
    ] {
        let mut request = Request::get("/v1/me")
            .body(Full::<Bytes>::default())
            .unwrap();
        if let Some(value) = authorization {
            request
                .headers_mut()
                .insert("authorization", value.parse().unwrap());
        }
        let response = protected.clone().oneshot(request).await.unwrap();
        assert_nosniff(what, response.headers());
    }
}
