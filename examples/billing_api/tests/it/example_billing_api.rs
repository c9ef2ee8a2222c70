//! Black-box tests of the `billing_api` example: its router is driven in
//! memory with `oneshot`, using the demo credentials it issues.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::manager::TokenManager;
use tower_token_auth::{MemoryStore, PayRequestScopes as S, TokenAuthLayer};

use billing_api as app;

/// The router and the demo credentials, keyed by label.
pub(crate) struct Demo {
    router: Router,
    credentials: HashMap<String, Value>,
    dashboard: (String, String),
}

impl Demo {
    async fn new() -> Self {
        Self::with_state(app::AppState::new().unwrap()).await
    }

    /// The demo over `state`, e.g. one with the production profile or
    /// another backend.
    pub(crate) async fn with_state(state: app::AppState) -> Self {
        let issued = app::demo::issue(&state).await.unwrap();
        let credentials = serde_json::to_value(&issued)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| (entry["label"].as_str().unwrap().to_owned(), entry.clone()))
            .collect();
        let dashboard = (
            state.dashboard.username.clone(),
            state.dashboard.password.clone(),
        );
        Self {
            router: app::app(state),
            credentials,
            dashboard,
        }
    }

    pub(crate) fn token(&self, label: &str) -> String {
        self.credentials[label]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no demo token `{label}`"))
            .to_owned()
    }

    pub(crate) async fn get(&self, path: &str, label: Option<&str>) -> Reply {
        self.send(Method::GET, path, label, None).await
    }

    async fn post(&self, path: &str, label: Option<&str>, json: &str) -> Reply {
        self.send(Method::POST, path, label, Some(json)).await
    }

    /// A form posted without credentials (the OAuth endpoints).
    async fn form(&self, path: &str, form: String) -> Reply {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        send(&self.router, request).await
    }

    /// A dashboard API call (`/settings/api-tokens…`) with the demo login.
    async fn dashboard(&self, method: Method, path: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                base64_basic(&self.dashboard.0, &self.dashboard.1),
            )
            .body(Body::empty())
            .unwrap();
        send(&self.router, request).await
    }

    /// `GET /v1/invoices` with `token`.
    async fn invoices(&self, token: &str) -> StatusCode {
        let request = Request::get("/v1/invoices")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        send(&self.router, request).await.status
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        label: Option<&str>,
        json: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(label) = label {
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token(label)),
            );
        }
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_owned())
            }
            None => Body::empty(),
        };
        send(&self.router, request.body(body).unwrap()).await
    }
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) json: Value,
}

impl Reply {
    fn challenge(&self) -> &str {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map_or("", |v| v.to_str().unwrap())
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
    };
    Reply {
        status,
        headers,
        json,
    }
}

const LABELS: [&str; 15] = [
    "default",
    "billing.read",
    "billing.write",
    "billing.agent",
    "customers.read",
    "customers.write",
    "products.read",
    "products.write",
    "expired",
    "revoked",
    "access",
    "refresh",
    "wrong-audience",
    "dashboard",
    "introspection",
];

/// Every scoped route: method, path, the scope it needs.
const ROUTES: [(&str, &str, &str); 10] = [
    ("GET", "/v1/invoices", "billing.read"),
    ("GET", "/v1/subscriptions", "billing.read"),
    ("GET", "/v1/transactions", "billing.read"),
    ("POST", "/v1/invoices", "billing.write"),
    ("POST", "/v1/subscriptions", "billing.write"),
    ("GET", "/v1/customers", "customers.read"),
    ("POST", "/v1/customers", "customers.write"),
    ("GET", "/v1/products", "products.read"),
    ("POST", "/v1/products", "products.write"),
    ("GET", "/v1/me", ""),
];

#[tokio::test]
async fn health_needs_no_token() {
    let demo = Demo::new().await;
    let reply = demo.get("/health", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn unknown_path_is_404_with_or_without_a_token() {
    let demo = Demo::new().await;
    for label in [None, Some("billing.agent"), Some("expired")] {
        let reply = demo.get("/v1/nope", label).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{label:?}");
        assert!(reply.challenge().is_empty());
        assert_eq!(reply.json["error"], "not_found");
    }
}

#[tokio::test]
async fn request_without_token_gets_the_billing_challenge() {
    let demo = Demo::new().await;
    for (method, path, _) in ROUTES {
        let reply = demo
            .send(method.parse().unwrap(), path, None, Some("{}"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        // The realm, the scope to ask for, and where MCP clients find the
        // metadata (RFC 9728).
        assert_eq!(
            reply.challenge(),
            r#"Bearer realm="billing", scope="billing.read", resource_metadata="http://127.0.0.1:3000/.well-known/oauth-protected-resource""#
        );
        assert_eq!(reply.json["error"], "missing_token");
    }
}

#[tokio::test]
async fn me_shows_the_token_with_implied_scopes() {
    let demo = Demo::new().await;
    let reply = demo.get("/v1/me", Some("billing.agent")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let me = reply.json;
    assert!(me["token_id"].as_str().unwrap().starts_with("tok_"), "{me}");
    assert_eq!(me["name"], "demo: billing.agent");
    assert_eq!(me["kind"], "personal_access");
    assert_eq!(
        me["scopes"],
        serde_json::json!(["billing.read", "billing.write", "billing.agent"])
    );
    let expires_at = humantime::parse_rfc3339(me["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires_at.duration_since(SystemTime::now()).unwrap();
    assert!(
        lifetime > Duration::from_secs(179 * 86_400)
            && lifetime <= Duration::from_secs(180 * 86_400)
    );

    let access = demo.get("/v1/me", Some("access")).await;
    assert_eq!(access.status, StatusCode::OK);
    assert_eq!(access.json["kind"], "access");
    assert_eq!(access.json["scopes"], serde_json::json!(["billing.read"]));
}

#[tokio::test]
async fn default_token_holds_billing_read() {
    let demo = Demo::new().await;
    assert_eq!(demo.credentials["default"]["scopes"], "billing.read");
    let me = demo.get("/v1/me", Some("default")).await;
    assert_eq!(me.json["scopes"], serde_json::json!(["billing.read"]));
    assert_eq!(
        demo.get("/v1/invoices", Some("default")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_route_accepts_its_scope_and_refuses_every_other() {
    every_route_checks_its_scope(&Demo::new().await).await;
}

/// Each scope token on each scoped route: 200/201 where it holds the
/// scope, 403 `insufficient_scope` naming it everywhere else.
pub(crate) async fn every_route_checks_its_scope(demo: &Demo) {
    let scope_tokens = &LABELS[1..8];
    for (method, path, needed) in ROUTES {
        for label in scope_tokens {
            let implied = *label == "billing.agent" && needed.starts_with("billing.");
            let allowed = needed.is_empty() || *label == needed || implied;
            let reply = demo
                .send(
                    method.parse().unwrap(),
                    path,
                    Some(label),
                    Some(r#"{"note":"test"}"#),
                )
                .await;
            if allowed {
                let expected = if method == "POST" {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                assert_eq!(
                    reply.status, expected,
                    "{method} {path} with {label}: {}",
                    reply.json
                );
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} with {label}"
                );
                assert!(
                    reply.challenge().contains(r#"error="insufficient_scope""#)
                        && reply.challenge().contains(&format!(r#"scope="{needed}""#)),
                    "{method} {path} with {label}: {}",
                    reply.challenge()
                );
                assert_eq!(reply.json["error"], "insufficient_scope");
                assert_eq!(reply.json["scope"], needed);
            }
        }
    }
}

#[tokio::test]
async fn get_and_post_on_one_path_need_different_scopes() {
    let demo = Demo::new().await;
    assert_eq!(
        demo.get("/v1/invoices", Some("billing.read")).await.status,
        StatusCode::OK
    );
    let post = demo.post("/v1/invoices", Some("billing.read"), "{}").await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    assert!(post.challenge().contains(r#"scope="billing.write""#));

    // Write does not imply read.
    let get = demo.get("/v1/invoices", Some("billing.write")).await;
    assert_eq!(get.status, StatusCode::FORBIDDEN);
    assert!(get.challenge().contains(r#"scope="billing.read""#));
    assert_eq!(
        demo.post("/v1/invoices", Some("billing.write"), "{}")
            .await
            .status,
        StatusCode::CREATED
    );
}

/// Why the example gives each method its own `route` call: a
/// `MethodRouter::route_layer` wraps every method added before it, so
/// chaining puts the write check on `GET` as well.
#[tokio::test]
async fn chained_method_route_layers_also_wrap_earlier_methods() {
    let demo = Demo::new().await;
    let tokens = TokenManager::new(MemoryStore::new());
    let auth = TokenAuthLayer::new(tokens.clone());
    let reader = {
        use tower_token_auth::manager::IssueRequest;
        use tower_token_auth::token::TokenKind;
        tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "r", "u").scopes(S::BILLING_READ))
            .await
            .unwrap()
    };
    let chained: Router = Router::new()
        .route(
            "/x",
            get(|| async { "list" })
                .route_layer(auth.require(S::BILLING_READ))
                .post(|| async { "create" })
                .route_layer(auth.require(S::BILLING_WRITE)),
        )
        .route_layer(auth.clone());
    let request = Request::get("/x")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", reader.secret.expose_secret()),
        )
        .body(Body::empty())
        .unwrap();
    let response = chained.oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "GET got the write check too"
    );

    // The example's router does not have that problem.
    assert_eq!(
        demo.get("/v1/invoices", Some("billing.read")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_revoked_and_refresh_tokens_are_invalid_tokens() {
    dead_and_foreign_tokens_are_invalid_tokens(&Demo::new().await).await;
}

/// The demo's expired, revoked, refresh and wrong-audience tokens: 401
/// `invalid_token` on every route.
pub(crate) async fn dead_and_foreign_tokens_are_invalid_tokens(demo: &Demo) {
    for label in ["expired", "revoked", "refresh", "wrong-audience"] {
        for path in ["/v1/me", "/v1/invoices"] {
            let reply = demo.get(path, Some(label)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{label} on {path}");
            assert!(
                reply.challenge().contains(r#"error="invalid_token""#),
                "{label}: {}",
                reply.challenge()
            );
            assert_eq!(reply.json["error"], "invalid_token");
        }
    }
    let expired = demo.get("/v1/me", Some("expired")).await;
    assert!(expired.challenge().contains("expired"));
}

#[tokio::test]
async fn deleting_the_refresh_token_a_refresh_returned_ends_the_whole_grant() {
    deleting_a_rotated_refresh_token_ends_the_grant(&Demo::new().await).await;
}

/// The reported reproduction, over the example's routes: the demo's
/// `refresh` token is exchanged at `/oauth/token`, the refresh token that
/// exchange returned is deleted on the dashboard, and every access token of
/// that grant (the demo's `access` and the exchange's) is refused from the
/// next request on. The listing shows the exchanged refresh token as
/// `spent`.
pub(crate) async fn deleting_a_rotated_refresh_token_ends_the_grant(demo: &Demo) {
    let exchanged = demo
        .form(
            "/oauth/token",
            format!(
                "grant_type=refresh_token&refresh_token={}",
                demo.token("refresh")
            ),
        )
        .await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.json);
    let new_access = exchanged.json["access_token"].as_str().unwrap().to_owned();
    let new_refresh = exchanged.json["refresh_token"].as_str().unwrap().to_owned();
    let old_access = demo.token("access");
    for token in [&old_access, &new_access] {
        assert_eq!(demo.invoices(token).await, StatusCode::OK);
    }

    // The listing identifies tokens by their hint: the prefix, `…`, and
    // the last four characters.
    let hint = |token: &str| {
        let prefix = &token[..token.rfind('_').unwrap() + 1];
        format!("{prefix}…{}", &token[token.len() - 4..])
    };
    let listing = demo.dashboard(Method::GET, "/settings/api-tokens").await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.json);
    let listed = |token: &str| {
        let hint = hint(token);
        let matching: Vec<&Value> = listing.json["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["hint"] == hint.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "one listed token with the hint {hint}");
        matching[0].clone()
    };
    let spent = listed(&demo.token("refresh"));
    let fresh = listed(&new_refresh);
    assert_eq!(spent["kind"], "refresh");
    assert_eq!(spent["status"], "spent", "{spent}");
    assert_eq!(fresh["kind"], "refresh");
    assert_eq!(fresh["status"], "active", "{fresh}");
    assert_eq!(fresh["family"], spent["family"], "one grant");
    assert!(fresh["family"].is_string(), "{fresh}");

    let id = fresh["id"].as_str().unwrap();
    let deleted = demo
        .dashboard(Method::DELETE, &format!("/settings/api-tokens/{id}"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.json);
    for token in [&new_access, &old_access] {
        assert_eq!(
            demo.invoices(token).await,
            StatusCode::UNAUTHORIZED,
            "an access token of the deleted grant"
        );
    }
    let again = demo
        .form(
            "/oauth/token",
            format!("grant_type=refresh_token&refresh_token={new_refresh}"),
        )
        .await;
    assert_eq!(
        (again.status, again.json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn insufficient_scope_never_hides_an_invalid_token() {
    let demo = Demo::new().await;
    // The expired token holds billing.read; the route needs billing.write.
    let reply = demo.post("/v1/invoices", Some("expired"), "{}").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn post_echoes_the_object_with_id_and_created_at() {
    let demo = Demo::new().await;
    let reply = demo
        .post(
            "/v1/customers",
            Some("customers.write"),
            r#"{"name":"Ada","id":"mine"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json["name"], "Ada");
    assert!(
        reply.json["id"].as_str().unwrap().starts_with("cus_"),
        "{}",
        reply.json
    );
    humantime::parse_rfc3339(reply.json["created_at"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn post_with_a_bad_body_is_a_json_4xx() {
    let demo = Demo::new().await;
    for body in ["{not json", "", "[1, 2]", "\"text\"", "42", "null"] {
        let reply = demo.post("/v1/invoices", Some("billing.agent"), body).await;
        assert!(reply.status.is_client_error(), "{body:?}: {}", reply.status);
        assert_eq!(reply.json["error"], "invalid_request", "{body:?}");
    }
    // No content type.
    let request = Request::post("/v1/products")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", demo.token("products.write")),
        )
        .body(Body::from("{}"))
        .unwrap();
    let reply = send(&demo.router, request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.json["error"], "invalid_request");
}

#[tokio::test]
async fn demo_file_lists_every_credential_privately() {
    let state = app::AppState::new().unwrap();
    let issued = app::demo::issue(&state).await.unwrap();
    let dir = std::env::temp_dir().join(format!("billing_api_demo_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    std::fs::write(&path, "stale").unwrap();
    app::demo::write_file(&path, &issued).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["tokens.json"],
        "no temporary file is left behind"
    );

    let file: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let labels: Vec<_> = file.iter().map(|e| e["label"].as_str().unwrap()).collect();
    assert_eq!(labels, LABELS);

    let router = app::app(state.clone());
    for entry in &file {
        let label = entry["label"].as_str().unwrap();
        if label == "dashboard" {
            assert_eq!(entry["username"], state.dashboard.username.as_str());
            assert_eq!(entry["password"], state.dashboard.password.as_str());
            assert!(state.dashboard.password.len() >= 32);
            continue;
        }
        if label == "introspection" {
            assert_eq!(entry["username"], state.introspection.username.as_str());
            assert_eq!(entry["password"], state.introspection.password.as_str());
            assert!(state.introspection.password.len() >= 32);
            continue;
        }
        let token = entry["token"].as_str().unwrap();
        let kind = entry["kind"].as_str().unwrap();
        let prefix = match kind {
            "personal_access" => "pr_pat_",
            "access" => "pr_at_",
            "refresh" => "pr_rt_",
            other => panic!("{label}: unknown kind {other}"),
        };
        assert!(token.starts_with(prefix), "{label}");
        let scopes = entry["scopes"].as_str().unwrap();
        let expected_scopes = if LABELS[1..8].contains(&label) {
            label
        } else {
            "billing.read"
        };
        assert_eq!(scopes, expected_scopes, "{label}");

        // The tokens in the file are the ones the running service knows.
        let request = Request::get("/v1/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let reply = send(&router, request).await;
        let usable = !matches!(label, "expired" | "revoked" | "refresh" | "wrong-audience");
        assert_eq!(
            reply.status.is_success(),
            usable,
            "{label}: {}",
            reply.status
        );
        if usable {
            assert_eq!(reply.json["kind"], kind);
        }
    }
}

#[tokio::test]
async fn dashboard_password_never_shows_in_debug() {
    let state = app::AppState::new().unwrap();
    let debug = format!("{:?}", state.dashboard);
    assert!(!debug.contains(&state.dashboard.password), "{debug}");
    let demo = Demo::new().await;
    assert_eq!(
        demo.credentials["dashboard"]["username"],
        demo.dashboard.0.as_str()
    );
    assert_eq!(
        demo.credentials["dashboard"]["password"],
        demo.dashboard.1.as_str()
    );
}

/// The production profile: every route but `/health` refuses plain HTTP,
/// bearer routes and the token, revocation and dashboard endpoints alike;
/// a trusted proxy's `X-Forwarded-Proto: https` counts, anyone else's not.
#[tokio::test]
async fn production_profile_refuses_plain_http_except_health() {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use tower_token_auth::peer::{PeerAddr, Peers};

    let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let state = app::AppState::new()
        .unwrap()
        .peers(Peers::new().trust_proxy(proxy))
        .require_https();
    let demo = Demo::with_state(state).await;
    let (token, router) = (demo.token("billing.read"), &demo.router);
    let request = |method: Method, path: &str, peer: [u8; 4], forwarded: Option<&str>| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(proto) = forwarded {
            request = request.header("x-forwarded-proto", proto);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(peer)), 40_000);
        request.extensions_mut().insert(PeerAddr(peer));
        request
    };
    let proxy_ip = [10, 0, 0, 2];

    let health = send(
        router,
        request(Method::GET, "/health", [192, 0, 2, 7], None),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);

    let mut rejections = None;
    for (method, path) in [
        (Method::GET, "/v1/invoices"),
        (Method::POST, "/oauth/token"),
        (Method::POST, "/oauth/revoke"),
        (Method::GET, "/settings/api-tokens"),
    ] {
        for (peer, forwarded) in [
            (proxy_ip, None),
            (proxy_ip, Some("http")),
            ([192, 0, 2, 7], Some("https")),
        ] {
            let reply = send(router, request(method.clone(), path, peer, forwarded)).await;
            assert_eq!(
                (reply.status, reply.json["error"].as_str()),
                (StatusCode::FORBIDDEN, Some("https_required")),
                "{method} {path} from {peer:?} with X-Forwarded-Proto {forwarded:?}"
            );
            // The endpoints outside the bearer layer answer as the layer does.
            let rejection = rejections.get_or_insert_with(|| reply.json.clone());
            assert_eq!(&reply.json, rejection, "{method} {path}");
            assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
        }
    }

    // Through the trusted proxy over TLS, each route does its own work.
    let via_tls = |method, path| request(method, path, proxy_ip, Some("https"));
    let invoices = send(router, via_tls(Method::GET, "/v1/invoices")).await;
    assert_eq!(invoices.status, StatusCode::OK);
    let grant = send(router, via_tls(Method::POST, "/oauth/token")).await;
    assert_eq!(grant.status, StatusCode::BAD_REQUEST, "{:?}", grant.json);
    assert_ne!(grant.json["error"], "https_required");
    let mut listing = via_tls(Method::GET, "/settings/api-tokens");
    let basic = base64_basic(&demo.dashboard.0, &demo.dashboard.1);
    listing
        .headers_mut()
        .insert(header::AUTHORIZATION, basic.parse().unwrap());
    let listing = send(router, listing).await;
    assert_eq!(listing.status, StatusCode::OK, "{:?}", listing.json);
}

/// `Basic <base64(user:password)>` (RFC 7617).
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
