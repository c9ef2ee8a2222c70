//! The token lifecycle through the `billing_api` example over real HTTP:
//! create, use, list (last used, no secret), refresh, reuse detection,
//! revocation of each kind, regeneration, and the dashboard login.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{header, Method, StatusCode};
use serde_json::{json, Value};
use tower_token_auth::MemoryStore;

use crate::support::socket::{send, Reply};
use billing_api as app;

/// A running example server and its demo credentials.
struct Server {
    addr: SocketAddr,
    credentials: HashMap<String, Value>,
    basic: String,
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");
        let state = app::AppState::with_store(
            app::tokens_for(Arc::new(MemoryStore::new()), &base_url),
            app::demo::DashboardLogin::generate().unwrap(),
            &base_url,
        )
        // A long interval: uses are coalesced, the first one is written.
        .track_usage(Duration::from_secs(60));
        let issued = app::demo::issue(&state).await.unwrap();
        let credentials: HashMap<String, Value> = serde_json::to_value(&issued)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["label"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                state.dashboard.username, state.dashboard.password
            ))
        );
        let router = app::app(state);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            credentials,
            basic,
        }
    }

    fn token(&self, label: &str) -> String {
        self.credentials[label]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Reply {
        send(self.addr, method, path, auth, body).await
    }

    async fn api(&self, path: &str, token: &str) -> StatusCode {
        self.send(Method::GET, path, Some(&format!("Bearer {token}")), None)
            .await
            .status
    }

    async fn dashboard(&self, method: Method, path: &str, json: Option<Value>) -> Reply {
        let body = json.map(|j| ("application/json", j.to_string()));
        self.send(method, path, Some(&self.basic.clone()), body)
            .await
    }

    async fn form(&self, path: &str, form: &str) -> Reply {
        self.send(
            Method::POST,
            path,
            None,
            Some(("application/x-www-form-urlencoded", form.to_owned())),
        )
        .await
    }
}

#[tokio::test]
async fn a_token_created_without_scopes_gets_billing_read_and_is_listed_without_its_secret() {
    let server = Server::start().await;
    let created = server
        .dashboard(
            Method::POST,
            "/settings/api-tokens",
            Some(json!({ "name": "MCP Billing Agent" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    let body = created.json();
    assert_eq!(body["scopes"], "billing.read");
    assert_eq!(body["kind"], "personal_access");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pr_pat_"));
    let id = body["id"].as_str().unwrap().to_owned();

    assert_eq!(server.api("/v1/invoices", &token).await, StatusCode::OK);
    assert_eq!(
        server.api("/v1/customers", &token).await,
        StatusCode::FORBIDDEN
    );

    // The use is written off the request path: wait for it.
    let mut listed = Value::Null;
    for _ in 0..100 {
        let list = server
            .dashboard(Method::GET, "/settings/api-tokens", None)
            .await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(!list.text.contains(&token), "a listing never shows a token");
        listed = list.json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id.as_str())
            .cloned()
            .unwrap();
        if !listed["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!listed["last_used_at"].is_null(), "{listed}");
    assert_eq!(listed["scopes"], json!(["billing.read"]));
    assert_eq!(
        listed["hint"],
        format!("pr_pat_…{}", &token[token.len() - 4..])
    );
    assert!(listed.get("token").is_none() && listed.get("digest").is_none());

    // Delete: the very next request is refused.
    let deleted = server
        .dashboard(Method::DELETE, &format!("/settings/api-tokens/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.api("/v1/invoices", &token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_rotates_and_reusing_the_old_refresh_token_revokes_the_family() {
    let server = Server::start().await;
    let (access, refresh) = (server.token("access"), server.token("refresh"));
    let rotated = server
        .form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.headers[header::CACHE_CONTROL], "no-store");
    let body = rotated.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "billing.read");
    assert_eq!(body["expires_in"], 15 * 86_400);
    let new_access = body["access_token"].as_str().unwrap().to_owned();
    let new_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        server.api("/v1/invoices", &new_access).await,
        StatusCode::OK
    );

    let reuse = server
        .form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.json()["error"], "invalid_grant");
    for token in [&access, &new_access] {
        assert_eq!(
            server.api("/v1/invoices", token).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let after = server
        .form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={new_refresh}"),
        )
        .await;
    assert_eq!(after.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn oauth_revoke_works_for_each_kind_and_a_refresh_token_takes_its_access_tokens() {
    let server = Server::start().await;
    let pat = server.token("products.read");
    assert_eq!(server.api("/v1/products", &pat).await, StatusCode::OK);
    assert_eq!(
        server
            .form("/oauth/revoke", &format!("token={pat}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server.api("/v1/products", &pat).await,
        StatusCode::UNAUTHORIZED
    );

    let (access, refresh) = (server.token("access"), server.token("refresh"));
    let revoke = server
        .form(
            "/oauth/revoke",
            &format!("token={refresh}&token_type_hint=refresh_token"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert_eq!(
        server.api("/v1/invoices", &access).await,
        StatusCode::UNAUTHORIZED
    );
    let exchange = server
        .form(
            "/oauth/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await;
    assert_eq!(exchange.json()["error"], "invalid_grant");

    // An access token on its own, an unknown token, and a second revocation.
    let agent = server.token("billing.agent");
    for form in [
        format!("token={agent}"),
        format!("token={agent}"),
        "token=pr_at_unknown".to_owned(),
    ] {
        assert_eq!(
            server.form("/oauth/revoke", &form).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        server.api("/v1/invoices", &agent).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.form("/oauth/revoke", "").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn regenerating_a_token_issues_a_new_secret_and_revokes_the_old_one() {
    let server = Server::start().await;
    let created = server
        .dashboard(
            Method::POST,
            "/settings/api-tokens",
            Some(json!({ "name": "CI", "scopes": "billing.agent products.write" })),
        )
        .await
        .json();
    let (old, id) = (
        created["token"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    assert_eq!(created["scopes"], "billing.agent products.write");
    let regenerated = server
        .dashboard(
            Method::POST,
            &format!("/settings/api-tokens/{id}/regenerate"),
            None,
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::CREATED);
    let new = regenerated.json();
    assert_eq!(
        (new["name"].as_str(), new["scopes"].as_str()),
        (Some("CI"), Some("billing.agent products.write"))
    );
    let new = new["token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(server.api("/v1/invoices", new).await, StatusCode::OK);
    assert_eq!(
        server.api("/v1/invoices", old).await,
        StatusCode::UNAUTHORIZED
    );

    // The old token is revoked: it cannot be regenerated again.
    let again = server
        .dashboard(
            Method::POST,
            &format!("/settings/api-tokens/{id}/regenerate"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.text);
    assert_eq!(again.json()["error"], "invalid_request");
}

#[tokio::test]
async fn the_dashboard_needs_its_login_and_refuses_bad_input() {
    let server = Server::start().await;
    let anonymous = server
        .send(Method::GET, "/settings/api-tokens", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("demo:wrong")
    );
    let denied = server
        .send(Method::GET, "/settings/api-tokens", Some(&wrong), None)
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    // A bearer token is not a dashboard login.
    let bearer = format!("Bearer {}", server.token("billing.agent"));
    let denied = server
        .send(Method::GET, "/settings/api-tokens", Some(&bearer), None)
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);

    let unknown = server
        .dashboard(
            Method::POST,
            "/settings/api-tokens",
            Some(json!({ "name": "x", "scopes": "billing.delete" })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["error"], "invalid_scope");
    assert!(unknown.text.contains("billing.delete"));
    let nameless = server
        .dashboard(
            Method::POST,
            "/settings/api-tokens",
            Some(json!({ "name": "  " })),
        )
        .await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    let garbage = server
        .send(
            Method::POST,
            "/settings/api-tokens",
            Some(&server.basic.clone()),
            Some(("application/json", "{".into())),
        )
        .await;
    assert!(garbage.status.is_client_error(), "{}", garbage.status);
    for path in [
        "/settings/api-tokens/tok_0000000000000000",
        "/settings/api-tokens/nonsense",
    ] {
        let missing = server.dashboard(Method::DELETE, path, None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn protected_resource_metadata_is_served_and_named_in_challenges() {
    let server = Server::start().await;
    let doc = server
        .send(
            Method::GET,
            "/.well-known/oauth-protected-resource",
            None,
            None,
        )
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    let base = format!("http://{}", server.addr);
    assert_eq!(doc["resource"], base.as_str());
    assert_eq!(doc["authorization_servers"], json!([base.as_str()]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(doc["scopes_supported"].as_array().unwrap().len(), 7);
    let challenge = server.send(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        challenge.headers[header::WWW_AUTHENTICATE],
        format!("Bearer realm=\"billing\", scope=\"billing.read\", resource_metadata=\"{base}/.well-known/oauth-protected-resource\"").as_str()
    );
}
