//! The axum side (feature `axum`): the `Principal` and `Option<Principal>`
//! extractors, the 500 of a route without the layer, and `route_layer`
//! keeping unknown routes 404.

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_token_auth::extract::MissingPrincipal;
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::{PayRequestScopes as S, Principal};

use crate::support::*;

async fn me(principal: Principal<tower_token_auth::PayRequestScopes>) -> String {
    format!(
        "{} {} {} {}",
        principal.token_id(),
        principal.name(),
        principal.owner(),
        principal.scopes().scope_string()
    )
}

async fn maybe_me(principal: Option<Principal<tower_token_auth::PayRequestScopes>>) -> String {
    match principal {
        Some(principal) => format!("hello {}", principal.token_id()),
        None => "hello stranger".to_owned(),
    }
}

fn get_request(uri: &str, token: Option<&str>) -> Request<Body> {
    let builder = Request::get(uri);
    let builder = match token {
        Some(token) => builder.header(AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    };
    builder.body(Body::empty()).unwrap()
}

async fn text(response: axum::response::Response) -> String {
    String::from_utf8(body_bytes(response.into_body()).await.to_vec()).unwrap()
}

#[tokio::test]
async fn principal_extractor_works_behind_the_layer() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_AGENT).await;
    let app = Router::new()
        .route("/v1/me", get(me))
        .route_layer(fixture.layer());

    let response = app
        .oneshot(get_request("/v1/me", Some(issued.secret.expose_secret())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        format!("{} test token user-1 billing.agent", issued.record.id)
    );
}

#[tokio::test]
async fn principal_extractor_without_the_layer_is_a_500_naming_the_layer() {
    let app = Router::new().route("/v1/me", get(me));
    let response = app.oneshot(get_request("/v1/me", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = text(response).await;
    assert!(body.contains("TokenAuthLayer"), "{body}");
    assert_eq!(MissingPrincipal.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn optional_principal_is_none_without_credentials_and_some_with_them() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let app = Router::new()
        .route("/v1/hello", get(maybe_me))
        .route_layer(fixture.layer().optional());

    let response = app
        .clone()
        .oneshot(get_request("/v1/hello", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hello stranger");

    let response = app
        .clone()
        .oneshot(get_request(
            "/v1/hello",
            Some(issued.secret.expose_secret()),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, format!("hello {}", issued.record.id));

    // A bad token is still rejected behind the optional layer.
    let response = app
        .oneshot(get_request("/v1/hello", Some("garbage")))
        .await
        .unwrap();
    assert_rejection(&rejection(response).await, MALFORMED);
}

#[tokio::test]
async fn optional_principal_without_any_layer_is_none() {
    let app = Router::new().route("/v1/hello", get(maybe_me));
    let response = app.oneshot(get_request("/v1/hello", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hello stranger");
}

#[tokio::test]
async fn route_layer_keeps_unknown_routes_404_and_known_routes_401() {
    let fixture = Fixture::new();
    let app = Router::new()
        .route("/v1/me", get(me))
        .route_layer(fixture.layer());

    let response = app
        .clone()
        .oneshot(get_request("/v1/nowhere", None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = app.oneshot(get_request("/v1/me", None)).await.unwrap();
    assert_rejection(&rejection(response).await, MISSING);
}

#[tokio::test]
async fn scopes_per_route_group_in_a_router() {
    let fixture = Fixture::new();
    let reader = fixture.pat(S::BILLING_READ).await;
    let agent = fixture.pat(S::BILLING_AGENT).await;
    let auth = fixture.layer();
    let app = Router::new()
        .merge(Router::new().route("/v1/me", get(me)))
        .merge(
            Router::new()
                .route("/v1/invoices", get(|| async { "[]" }))
                .route_layer(auth.require(S::BILLING_READ)),
        )
        .merge(
            Router::new()
                .route("/v1/invoices/new", post(|| async { "created" }))
                .route_layer(auth.require(S::BILLING_WRITE)),
        )
        .route_layer(auth);
    let call = |method: &str, uri: &str, token: &str| {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };

    let reader_token = reader.secret.expose_secret();
    let response = call("GET", "/v1/invoices", reader_token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "[]");

    let response = call("POST", "/v1/invoices/new", reader_token)
        .await
        .unwrap();
    let challenge = insufficient_scope_challenge("billing.write");
    assert_rejection(&rejection(response).await, insufficient(&challenge));

    let response = call("POST", "/v1/invoices/new", agent.secret.expose_secret())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "created");

    let response = call("GET", "/v1/me", reader_token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = call("GET", "/v1/invoices", "garbage").await.unwrap();
    assert_rejection(&rejection(response).await, MALFORMED);
}
