//! The dashboard of the `billing_api` example: the JSON API's token
//! statuses and `PATCH /settings/api-tokens/{id}` (in memory, with
//! `oneshot`).

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::store::IssueRequest;
use tower_token_auth::token::TokenKind;
use tower_token_auth::PayRequestScopes as S;

use crate::app;

// ---- an in-memory example ----

/// The example's router over fresh demo credentials.
struct Demo {
    state: app::AppState,
    router: Router,
    credentials: HashMap<String, Value>,
}

impl Demo {
    async fn new() -> Self {
        Self::with_state(app::AppState::new().unwrap()).await
    }

    async fn with_state(state: app::AppState) -> Self {
        let issued = app::demo::issue(&state).await.unwrap();
        let credentials = serde_json::to_value(&issued)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["label"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        Self {
            router: app::app(state.clone()),
            state,
            credentials,
        }
    }

    fn token(&self, label: &str) -> String {
        self.credentials[label]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn basic(&self) -> String {
        let pair = format!(
            "{}:{}",
            self.state.dashboard.username, self.state.dashboard.password
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// A JSON request to the management API, logged in with HTTP Basic.
    async fn manage(&self, method: Method, path: &str, json: Option<Value>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, self.basic());
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        send(&self.router, request.body(body).unwrap()).await
    }

    /// A request with a bearer token.
    async fn api(&self, method: Method, path: &str, token: &str) -> Reply {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = if method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(r#"{"customer":"cus_000001","amount":4900}"#)
        } else {
            Body::empty()
        };
        send(&self.router, request.body(body).unwrap()).await
    }

    /// A new personal access token with `scopes`, through the JSON API.
    async fn create(&self, name: &str, scopes: &str) -> (String, String) {
        let created = self
            .manage(
                Method::POST,
                "/settings/api-tokens",
                Some(json!({ "name": name, "scopes": scopes })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let json = created.json();
        (
            json["id"].as_str().unwrap().to_owned(),
            json["token"].as_str().unwrap().to_owned(),
        )
    }

    /// The listing's item of the token named `name` (of kind `kind`).
    async fn listed(&self, name: &str, kind: &str) -> Value {
        let list = self.manage(Method::GET, "/settings/api-tokens", None).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        list.json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name && t["kind"] == kind)
            .unwrap_or_else(|| panic!("{name} ({kind}) is listed: {}", list.text))
            .clone()
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or_default())
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

// ---- A. the JSON API: status and PATCH ----

#[tokio::test]
async fn listing_shows_the_status_of_every_token() {
    let demo = Demo::new().await;
    let list = demo.manage(Method::GET, "/settings/api-tokens", None).await;
    assert_eq!(list.status, StatusCode::OK);
    let tokens = list.json()["tokens"].as_array().unwrap().clone();
    for item in &tokens {
        for field in [
            "id",
            "name",
            "kind",
            "hint",
            "scopes",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ] {
            assert!(item.get(field).is_some(), "{field} in {item}");
        }
        assert!(!item.to_string().contains("pr_pat_") || item["hint"].is_string());
    }
    let status_of = |name: &str, kind: &str| {
        tokens
            .iter()
            .find(|t| t["name"] == name && t["kind"] == kind)
            .map(|t| t["status"].clone())
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    assert_eq!(status_of("demo: default", "personal_access"), "active");
    assert_eq!(
        status_of("demo: billing.agent", "personal_access"),
        "active"
    );
    assert_eq!(status_of("demo: expired", "personal_access"), "expired");
    assert_eq!(status_of("demo: revoked", "personal_access"), "revoked");
    assert_eq!(status_of("demo: access", "access"), "active");
    assert_eq!(status_of("demo: access", "refresh"), "active");

    // The two tokens of the grant name the same family; a PAT none.
    let access = demo.listed("demo: access", "access").await;
    let refresh = demo.listed("demo: access", "refresh").await;
    assert!(access["family"].is_string(), "{access}");
    assert_eq!(access["family"], refresh["family"]);
    assert!(demo.listed("demo: default", "personal_access").await["family"].is_null());

    // Deleting one token of the grant shows the whole grant revoked.
    let deleted = demo
        .manage(
            Method::DELETE,
            &format!("/settings/api-tokens/{}", access["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        demo.listed("demo: access", "refresh").await["status"],
        "revoked"
    );
}

#[tokio::test]
async fn patch_changes_the_scopes_from_the_next_request_on() {
    let demo = Demo::new().await;
    let (id, token) = demo.create("MCP Billing Agent", "billing.agent").await;
    let invoice = demo.api(Method::POST, "/v1/invoices", &token).await;
    assert_eq!(invoice.status, StatusCode::CREATED, "{}", invoice.text);

    let patched = demo
        .manage(
            Method::PATCH,
            &format!("/settings/api-tokens/{id}"),
            Some(json!({ "scopes": "billing.read" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.header(header::CACHE_CONTROL), "no-store");
    let item = patched.json();
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["name"], "MCP Billing Agent");
    assert_eq!(item["scopes"], json!(["billing.read"]));
    assert_eq!(item["status"], "active");
    assert!(!patched.text.contains(&token), "no token in the item");

    let refused = demo.api(Method::POST, "/v1/invoices", &token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"], "insufficient_scope");
    assert!(refused
        .header(header::WWW_AUTHENTICATE)
        .contains(r#"scope="billing.write""#));
    assert_eq!(
        demo.api(Method::GET, "/v1/invoices", &token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        demo.listed("MCP Billing Agent", "personal_access").await["scopes"],
        json!(["billing.read"])
    );

    // Widening works the same way.
    let widened = demo
        .manage(
            Method::PATCH,
            &format!("/settings/api-tokens/{id}"),
            Some(json!({ "scopes": "billing.write  customers.read" })),
        )
        .await;
    assert_eq!(widened.status, StatusCode::OK, "{}", widened.text);
    assert_eq!(
        demo.api(Method::POST, "/v1/invoices", &token).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn patch_answers_400_404_and_409_where_it_cannot_apply() {
    let demo = Demo::new().await;
    let (id, token) = demo.create("to be edited", "billing.read").await;
    let patch = |id: String, body: Value| {
        let demo = &demo;
        async move {
            demo.manage(
                Method::PATCH,
                &format!("/settings/api-tokens/{id}"),
                Some(body),
            )
            .await
        }
    };

    for scopes in [
        "billing.nope",
        "",
        "   ",
        "billing.read BILLING.WRITE",
        "a\"b",
    ] {
        let reply = patch(id.clone(), json!({ "scopes": scopes })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{scopes:?}");
        assert_eq!(reply.json()["error"], "invalid_scope", "{scopes:?}");
    }
    for body in [json!({}), json!({ "scopes": 7 }), json!(["billing.read"])] {
        let reply = patch(id.clone(), body.clone()).await;
        assert!(reply.status.is_client_error(), "{body}: {}", reply.status);
        assert_eq!(reply.json()["error"], "invalid_request", "{body}");
    }

    // Unknown, malformed, or another user's: 404 alike.
    let stranger = demo
        .state
        .tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "theirs",
            "someone-else",
        ))
        .await
        .unwrap();
    for other in [
        "tok_0000000000000000".to_owned(),
        "nonsense".to_owned(),
        stranger.record.id.to_string(),
    ] {
        let reply = patch(other.clone(), json!({ "scopes": "billing.read" })).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{other}");
        assert_eq!(reply.json()["error"], "not_found");
    }
    assert_eq!(
        demo.state
            .tokens
            .get(stranger.record.id)
            .await
            .unwrap()
            .unwrap()
            .scopes,
        S::BILLING_READ
    );

    // Not an active personal access token: 409.
    for (name, kind) in [
        ("demo: expired", "personal_access"),
        ("demo: revoked", "personal_access"),
        ("demo: access", "access"),
        ("demo: access", "refresh"),
    ] {
        let item = demo.listed(name, kind).await;
        let reply = patch(
            item["id"].as_str().unwrap().to_owned(),
            json!({ "scopes": "billing.agent" }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{name} ({kind})");
        assert_eq!(reply.json()["error"], "conflict");
    }

    // Without the dashboard login: 401, and nothing changed.
    let anonymous = Request::patch(format!("/settings/api-tokens/{id}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"scopes":"billing.agent"}"#))
        .unwrap();
    assert_eq!(
        send(&demo.router, anonymous).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        demo.api(Method::POST, "/v1/invoices", &token).await.status,
        StatusCode::FORBIDDEN
    );
}
