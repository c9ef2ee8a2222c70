//! The example as an MCP-grade resource server, over real sockets: audience
//! binding (RFC 8707), authorization server metadata (RFC 8414) named by the
//! protected resource metadata (RFC 9728), token introspection (RFC 7662),
//! and a second instance that validates the first one's tokens by
//! introspection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{header, Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_token_auth::MemoryStore;

use crate::support::socket::{self, Reply};
use billing_api as app;

/// A running example instance and its demo credentials.
struct Instance {
    addr: SocketAddr,
    credentials: HashMap<String, Value>,
    task: JoinHandle<()>,
}

impl Instance {
    /// An instance on a free port whose resource is `resource` (its own
    /// URL when `None`), validating its `/v1` tokens through `remote` when
    /// given.
    async fn start(resource: Option<&str>, remote: Option<(app::Lookup, &str)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base_url = format!("http://{addr}");
        let tokens = app::tokens_for(Arc::new(MemoryStore::new()), resource.unwrap_or(&base_url));
        let mut state = app::AppState::with_store(
            tokens,
            app::demo::DashboardLogin::generate().unwrap(),
            &base_url,
        );
        if let Some((remote, issuer)) = remote {
            state = state.validate_remotely(remote, issuer);
        }
        let issued = app::demo::issue(&state).await.unwrap();
        let credentials = serde_json::to_value(&issued)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["label"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        let service = app::app(state).into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        Self {
            addr,
            credentials,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token(&self, label: &str) -> String {
        self.credentials[label]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn basic(&self, label: &str) -> String {
        let login = &self.credentials[label];
        let pair = format!(
            "{}:{}",
            login["username"].as_str().unwrap(),
            login["password"].as_str().unwrap()
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        form: Option<String>,
    ) -> Reply {
        let body = form.map(|f| ("application/x-www-form-urlencoded", f));
        socket::send(self.addr, method, path, auth, body).await
    }

    /// The RFC 9728 protected resource metadata document.
    async fn resource_metadata(&self) -> serde_json::Value {
        self.send(
            Method::GET,
            "/.well-known/oauth-protected-resource",
            None,
            None,
        )
        .await
        .json()
    }

    async fn api(&self, token: &str) -> Reply {
        self.send(
            Method::GET,
            "/v1/invoices",
            Some(&format!("Bearer {token}")),
            None,
        )
        .await
    }

    async fn introspect(&self, auth: Option<&str>, token: &str) -> Reply {
        self.send(
            Method::POST,
            "/oauth/introspect",
            auth,
            Some(format!("token={token}")),
        )
        .await
    }
}

/// RFC 8707 §2 and RFC 9068 §4 (audience validation): a token issued for
/// another resource is refused with `invalid_token`, naming why.
#[tokio::test]
async fn rfc_8707_a_token_for_another_resource_is_401_invalid_token() {
    let server = Instance::start(None, None).await;
    let reply = server.api(&server.token("wrong-audience")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenge = reply.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains("issued for another resource"),
        "{challenge}"
    );
    assert_eq!(reply.json()["error"], "invalid_token");
    // The same scopes, issued for this server, work.
    assert_eq!(
        server.api(&server.token("billing.read")).await.status,
        StatusCode::OK
    );
}

/// RFC 8707 §2.2: the refresh grant's `resource` may only name resources
/// the grant holds (`invalid_target`); one it holds narrows the new access
/// token, which then works here.
#[tokio::test]
async fn rfc_8707_2_2_refresh_resource_narrows_and_never_widens() {
    let server = Instance::start(None, None).await;
    let refresh = server.token("refresh");
    let other = "https%3A%2F%2Fother.example%2F";
    let reply = server
        .send(
            Method::POST,
            "/oauth/token",
            None,
            Some(format!(
                "grant_type=refresh_token&refresh_token={refresh}&resource={other}"
            )),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_target");
    let here: String = form_urlencoded::byte_serialize(server.url().as_bytes()).collect();
    let reply = server
        .send(
            Method::POST,
            "/oauth/token",
            None,
            Some(format!(
                "grant_type=refresh_token&refresh_token={refresh}&resource={here}"
            )),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let access = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.api(&access).await.status, StatusCode::OK);
}

/// RFC 9728 §2 names the authorization server; RFC 8414 §2 and §3 describe
/// it at `/.well-known/oauth-authorization-server` under the issuer.
#[tokio::test]
async fn rfc_8414_metadata_is_discoverable_from_rfc_9728_metadata() {
    let server = Instance::start(None, None).await;
    let resource = server.resource_metadata().await;
    assert_eq!(resource["resource"], server.url());
    let issuer = resource["authorization_servers"][0].as_str().unwrap();
    assert_eq!(issuer, server.url());
    let path = "/.well-known/oauth-authorization-server";
    let reply = server.send(Method::GET, path, None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let doc = reply.json();
    assert_eq!(doc["issuer"], issuer, "RFC 8414 §3.3: the issuer matches");
    let url = server.url();
    assert_eq!(doc["token_endpoint"], format!("{url}/oauth/token"));
    assert_eq!(doc["revocation_endpoint"], format!("{url}/oauth/revoke"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{url}/oauth/introspect")
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{url}/oauth/authorize")
    );
    assert_eq!(
        doc["registration_endpoint"],
        format!("{url}/oauth/register")
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["none"])
    );
    assert_eq!(
        doc["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    assert_eq!(doc["scopes_supported"].as_array().unwrap().len(), 7);
}

/// RFC 7662 §2.1: the caller authenticates or learns nothing (and failing
/// counts for the throttle); §2.2: an active token's claims, and exactly
/// `{"active":false}` for anything else.
#[tokio::test]
async fn rfc_7662_introspection_answers_callers_only_and_never_says_why() {
    let server = Instance::start(None, None).await;
    let caller = server.basic("introspection");
    let reply = server
        .introspect(Some(&caller), &server.token("billing.agent"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let claims = reply.json();
    assert_eq!(claims["active"], true);
    assert_eq!(claims["scope"], "billing.agent");
    assert_eq!(claims["sub"], app::demo::DEMO_OWNER);
    assert_eq!(claims["aud"], serde_json::json!([server.url()]));
    assert_eq!(claims["token_type"], "Bearer");
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());

    for label in ["expired", "revoked", "refresh"] {
        let reply = server.introspect(Some(&caller), &server.token(label)).await;
        assert_eq!(reply.text, r#"{"active":false}"#, "{label}");
    }
    let reply = server.introspect(Some(&caller), "garbage").await;
    assert_eq!(reply.text, r#"{"active":false}"#);

    let reply = server
        .introspect(None, &server.token("billing.agent"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.text.contains("active"), "{}", reply.text);
    // A caller that keeps guessing the password is throttled.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("introspection:guess")
    );
    let mut statuses = Vec::new();
    for _ in 0..=app::FAILURES_PER_MINUTE {
        statuses.push(server.introspect(Some(&wrong), "x").await.status);
    }
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

/// Two instances, one introspecting the other: a token the first issued
/// works on the second, which asks with its own credentials (RFC 7662
/// §2.1) and enforces the answer's `scope` and `aud` (§2.2); revoked on the
/// first, it is refused by the second within the second's cache TTL (the
/// bound §4 asks a caching resource server to keep short); with the first
/// stopped, the second answers 503, never 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_7662_2_a_second_instance_validates_the_first_ones_tokens_by_introspection() {
    use tower_token_auth::store::{CachedStore, IntrospectionStore};
    use tower_token_auth::PayRequestScopes;

    const TTL: Duration = Duration::from_millis(300);
    let first = Instance::start(None, None).await;
    let login = &first.credentials["introspection"];
    let remote = IntrospectionStore::<PayRequestScopes>::new(
        &format!("{}/oauth/introspect", first.url()),
        login["username"].as_str().unwrap(),
        login["password"].as_str().unwrap(),
    )
    .unwrap()
    .timeout(Duration::from_secs(2));
    let remote = CachedStore::builder(remote)
        .ttl(TTL)
        .negative_ttl(Duration::from_millis(100))
        .build();
    // The second serves the same API: the same resource.
    let second = Instance::start(Some(&first.url()), Some((Arc::new(remote), &first.url()))).await;
    // RFC 9728 §2: a client that discovers the second is sent to the first
    // for its tokens, the server whose tokens the second can validate.
    let document = second.resource_metadata().await;
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!([first.url()])
    );

    let token = first.token("billing.read");
    assert_eq!(second.api(&token).await.status, StatusCode::OK);
    assert_eq!(
        second.api(&first.token("billing.write")).await.status,
        StatusCode::FORBIDDEN,
        "the remote scopes are enforced"
    );
    assert_eq!(
        second.api(&first.token("wrong-audience")).await.status,
        StatusCode::UNAUTHORIZED,
        "the remote audience is checked"
    );

    let reply = first
        .send(
            Method::POST,
            "/oauth/revoke",
            None,
            Some(format!("token={token}")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let revoked = Instant::now();
    loop {
        let status = second.api(&token).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            revoked.elapsed() < TTL + Duration::from_millis(500),
            "still accepted {:?} after the revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let unseen = first.token("billing.agent");
    first.task.abort();
    let _ = first.task.await;
    let reply = second.api(&unseen).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
}
