//! The dashboard of the `billing_api` example: the JSON API's statuses and
//! `PATCH` (in memory, with `oneshot`), the web page's rules (sessions,
//! CSRF, headers, shown-once tokens, bad forms; in memory too), and the
//! whole journey in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), by the words and ids of DESIGN §7.
//!
//! The browser test needs `chromium` and `chromedriver` on the `PATH`
//! (see `browser.rs`, which drives them). It never skips: without them it
//! fails and says how to get them. It saves a screenshot of the page as
//! `dashboard.png` under `target/tmp/billing_api/`, and prints its path.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::manager::{IssuePolicy, IssueRequest, TokenManager};
use tower_token_auth::peer::{PeerAddr, Peers};
use tower_token_auth::store::MemoryStore;
use tower_token_auth::token::{ManualClock, TokenDigest, TokenKind, TokenSecret};
use tower_token_auth::PayRequestScopes as S;
use tracing::Instrument;

use crate::browser::{browser, serve, start_chromedriver, Http, Page};
use crate::support::{assert_redacted, logs, test_span};
use billing_api as app;

const TOKENS: &str = "/dashboard/settings/api-tokens";
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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

    /// The page's first CSRF token (every form of a page carries the same).
    fn csrf(&self) -> String {
        field_value(&self.text, "csrf").unwrap_or_else(|| panic!("a CSRF field in {}", self.text))
    }
}

/// The `value` of the first hidden field `name` of an HTML page.
fn field_value(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!(r#"name="{name}" value=""#))? + name.len() + 15;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_owned())
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

/// A request to the management API, logged in, with a body of
/// `content_type` (none: no `Content-Type` header).
async fn manage_raw(
    demo: &Demo,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, demo.basic());
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    send(
        &demo.router,
        request.body(Body::from(body.to_owned())).unwrap(),
    )
    .await
}

/// Issue 23, row 2: a cross-site form can send `text/plain`, urlencoded or
/// multipart bodies, and a browser adds its cached Basic credentials: none
/// of the routes that change tokens accepts them (415), and nothing
/// changes. A regenerate with no body or a JSON one still works.
#[tokio::test]
async fn state_changing_json_routes_refuse_form_content_types_and_change_nothing() {
    let demo = Demo::new().await;
    let (id, token) = demo.create("kept", "billing.read").await;
    let list = || demo.manage(Method::GET, "/settings/api-tokens", None);
    let before = list().await.text;
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b--\r\n";
    let bodies = [
        (
            Some("text/plain"),
            r#"{"name":"x","scopes":"billing.write"}"#,
        ),
        (
            Some("text/plain;charset=UTF-8"),
            r#"{"scopes":"billing.write"}"#,
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "name=x&scopes=billing.write",
        ),
        (Some("multipart/form-data; boundary=b"), multipart),
        (None, r#"{"scopes":"billing.write"}"#),
    ];
    let regenerate = format!("/settings/api-tokens/{id}/regenerate");
    let routes = [
        (Method::POST, "/settings/api-tokens".to_owned()),
        (Method::PATCH, format!("/settings/api-tokens/{id}")),
        (Method::POST, regenerate.clone()),
    ];
    for (method, path) in &routes {
        for (content_type, body) in bodies {
            let reply = manage_raw(&demo, method.clone(), path, content_type, body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} as {content_type:?}: {}",
                reply.text
            );
            assert_eq!(reply.json()["error"], "invalid_request");
        }
        // Even an empty form.
        let reply = manage_raw(
            &demo,
            method.clone(),
            path,
            Some("application/x-www-form-urlencoded"),
            "",
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
    assert_eq!(list().await.text, before, "nothing changed");
    assert_eq!(
        demo.api(Method::GET, "/v1/invoices", &token).await.status,
        StatusCode::OK,
        "the token still works"
    );

    // A regenerate may send neither a body nor a type, or JSON.
    let bare = manage_raw(&demo, Method::POST, &regenerate, None, "").await;
    assert_eq!(bare.status, StatusCode::CREATED, "{}", bare.text);
    let next = bare.json()["id"].as_str().unwrap().to_owned();
    let json = manage_raw(
        &demo,
        Method::POST,
        &format!("/settings/api-tokens/{next}/regenerate"),
        Some("application/json; charset=utf-8"),
        "{}",
    )
    .await;
    assert_eq!(json.status, StatusCode::CREATED, "{}", json.text);
}

/// Issue 23, row 6: every answer of `/settings/api-tokens` is
/// `Cache-Control: no-store` (the listing too) and `nosniff`, and so is
/// every answer of `/v1/*`, refusals included.
#[tokio::test]
async fn json_answers_are_nosniff_and_token_answers_are_never_stored() {
    let demo = Demo::new().await;
    let (id, _) = demo.create("headers", "billing.read").await;
    let created = demo
        .manage(
            Method::POST,
            "/settings/api-tokens",
            Some(json!({ "name": "another" })),
        )
        .await;
    let mut managed = vec![
        ("create", created),
        (
            "list",
            demo.manage(Method::GET, "/settings/api-tokens", None).await,
        ),
        (
            "patch",
            demo.manage(
                Method::PATCH,
                &format!("/settings/api-tokens/{id}"),
                Some(json!({ "scopes": "billing.agent" })),
            )
            .await,
        ),
        (
            "unknown",
            demo.manage(Method::DELETE, "/settings/api-tokens/nope", None)
                .await,
        ),
    ];
    let regenerated = demo
        .manage(
            Method::POST,
            &format!("/settings/api-tokens/{id}/regenerate"),
            None,
        )
        .await;
    let next = regenerated.json()["id"].as_str().unwrap().to_owned();
    managed.push(("regenerate", regenerated));
    managed.push((
        "delete",
        demo.manage(
            Method::DELETE,
            &format!("/settings/api-tokens/{next}"),
            None,
        )
        .await,
    ));
    let anonymous = Request::get("/settings/api-tokens")
        .body(Body::empty())
        .unwrap();
    managed.push(("no login", send(&demo.router, anonymous).await));
    for (what, reply) in &managed {
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store", "{what}");
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{what}"
        );
    }
    assert_eq!(managed[1].1.status, StatusCode::OK);

    let reader = demo.token("billing.read");
    let no_token = Request::get("/v1/invoices").body(Body::empty()).unwrap();
    let api = [
        ("me", demo.api(Method::GET, "/v1/me", &reader).await),
        ("list", demo.api(Method::GET, "/v1/invoices", &reader).await),
        (
            "create",
            demo.api(Method::POST, "/v1/invoices", &demo.token("billing.write"))
                .await,
        ),
        (
            "forbidden",
            demo.api(Method::POST, "/v1/invoices", &reader).await,
        ),
        ("no token", send(&demo.router, no_token).await),
        (
            "bad token",
            demo.api(Method::GET, "/v1/me", "pr_pat_x").await,
        ),
    ];
    for (what, reply) in &api {
        assert!(
            reply
                .header(header::CONTENT_TYPE)
                .starts_with("application/json")
                || reply.text.is_empty(),
            "{what}"
        );
        assert_eq!(
            reply.header(header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{what}: {}",
            reply.status
        );
    }
    assert_eq!(api[0].1.status, StatusCode::OK);
    assert_eq!(api[3].1.status, StatusCode::FORBIDDEN);
}

// ---- B. the web page, in memory ----

/// A browser without a browser: keeps the cookies the dashboard sets and
/// sends them back.
struct Agent<'a> {
    demo: &'a Demo,
    cookies: HashMap<String, String>,
    /// Requests come from a trusted proxy that terminated TLS (for the
    /// production profile).
    via_tls_proxy: bool,
    /// The client's address, as the server sees it; none: no `PeerAddr`.
    peer: Option<SocketAddr>,
}

/// The proxy trusted in the production-profile tests.
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

impl<'a> Agent<'a> {
    fn new(demo: &'a Demo) -> Self {
        Self {
            demo,
            cookies: HashMap::new(),
            via_tls_proxy: false,
            peer: None,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    async fn post_owned(&mut self, path: &str, fields: &[(String, String)]) -> Reply {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post(path, &fields).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        if self.via_tls_proxy {
            request = request.header("x-forwarded-proto", "https");
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).unwrap();
        let peer = match self.via_tls_proxy {
            true => Some(SocketAddr::new(PROXY, 40_000)),
            false => self.peer,
        };
        if let Some(peer) = peer {
            request.extensions_mut().insert(PeerAddr(peer));
        }
        let reply = send(&self.demo.router, request).await;
        for set in reply.headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        reply
    }

    /// Logs in with the demo file's dashboard login; the token page.
    async fn log_in(&mut self) -> Reply {
        let form = self.get("/dashboard/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let csrf = form.csrf();
        let (user, password) = (
            self.demo.state.dashboard.username.clone(),
            self.demo.state.dashboard.password.clone(),
        );
        let reply = self
            .post(
                "/dashboard/login",
                &[
                    ("csrf", &csrf),
                    ("next", TOKENS),
                    ("username", &user),
                    ("password", &password),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        assert_eq!(reply.header(header::LOCATION), TOKENS);
        let page = self.get(TOKENS).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        page
    }

    fn has_session(&self) -> bool {
        self.cookies.keys().any(|k| k.contains("dashboard_session"))
    }
}

#[tokio::test]
async fn every_dashboard_response_sends_the_security_headers() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let mut replies = vec![agent.get("/dashboard/login").await, agent.get(TOKENS).await];
    replies.push(agent.log_in().await);
    replies.push(agent.post(TOKENS, &[("name", "x")]).await);
    for reply in &replies {
        assert_eq!(reply.header(header::CONTENT_SECURITY_POLICY), CSP);
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
        assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(reply.header(header::REFERRER_POLICY), "no-referrer");
    }
    // No inline script or style anywhere: the policy allows none.
    let page = &replies[2];
    assert!(page.header(header::CONTENT_TYPE).starts_with("text/html"));
    for inline in ["<script>", "<style", " style=", " onclick="] {
        assert!(!page.text.contains(inline), "{inline} in the page");
    }
    for (path, content_type) in [
        ("/dashboard/static/dashboard.css", "text/css"),
        ("/dashboard/static/dashboard.js", "text/javascript"),
    ] {
        let asset = agent.get(path).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(asset.header(header::CONTENT_TYPE).starts_with(content_type));
        assert_eq!(asset.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(!asset.text.is_empty());
    }
}

#[tokio::test]
async fn a_wrong_login_is_a_401_page_with_an_error_and_no_session() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let form = agent.get("/dashboard/login").await;
    for label in ["Username", "Password", "Log in"] {
        assert!(form.text.contains(&format!(">{label}<")), "{label}");
    }
    let csrf = form.csrf();
    let user = demo.state.dashboard.username.clone();
    let password = demo.state.dashboard.password.clone();
    for (user, password) in [
        (user.as_str(), "wrong"),
        ("root", password.as_str()),
        ("", ""),
        (user.as_str(), &password[..password.len() - 1]),
    ] {
        let reply = agent
            .post(
                "/dashboard/login",
                &[("csrf", &csrf), ("username", user), ("password", password)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{user}:{password}");
        assert!(reply.text.contains("Wrong username or password"));
        assert!(!reply.text.contains(&demo.state.dashboard.password));
        assert!(!agent.has_session(), "no session after a failed login");
    }
    // Still logged out.
    let page = agent.get(TOKENS).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // The login form without its CSRF token: 403, even with the password.
    let reply = agent
        .post(
            "/dashboard/login",
            &[("username", &user), ("password", &password)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(!agent.has_session());
}

/// A failed login is marked for the service's throttle: a client that keeps
/// guessing is refused (429) before its guesses are checked, even the right
/// one, and other clients are not affected.
#[tokio::test]
async fn wrong_logins_count_against_the_clients_throttle() {
    let demo = Demo::new().await;
    let mut guesser = Agent::new(&demo);
    guesser.peer = Some("203.0.113.7:50000".parse().unwrap());
    let csrf = guesser.get("/dashboard/login").await.csrf();
    let (user, password) = (
        demo.state.dashboard.username.clone(),
        demo.state.dashboard.password.clone(),
    );
    let login = |password: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("username".to_owned(), user.clone()),
            ("password".to_owned(), password.to_owned()),
        ]
    };
    for attempt in 0..app::FAILURES_PER_MINUTE {
        let reply = guesser
            .post_owned("/dashboard/login", &login("guess"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let throttled = guesser
        .post_owned("/dashboard/login", &login(&password))
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!throttled.header(header::RETRY_AFTER).is_empty());
    assert!(!guesser.has_session());

    let mut other = Agent::new(&demo);
    other.peer = Some("198.51.100.1:50000".parse().unwrap());
    other.log_in().await;
    assert!(other.has_session());
}

#[tokio::test]
async fn login_comes_back_only_to_a_path_of_this_site() {
    let demo = Demo::new().await;
    let mut anonymous = Agent::new(&demo);
    let sent = anonymous.get(&format!("{TOKENS}?tab=1")).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert_eq!(
        sent.header(header::LOCATION),
        "/dashboard/login?next=%2Fdashboard%2Fsettings%2Fapi-tokens%3Ftab%3D1"
    );
    let form = anonymous.get(sent.header(header::LOCATION)).await;
    assert_eq!(
        field_value(&form.text, "next").as_deref(),
        Some("/dashboard/settings/api-tokens?tab=1")
    );

    for (next, lands) in [
        (
            "/oauth/authorize?client_id=c&state=s",
            "/oauth/authorize?client_id=c&state=s",
        ),
        ("//evil.example/", TOKENS),
        ("/\\evil.example/", TOKENS),
        ("https://evil.example/", TOKENS),
        ("javascript:alert(1)", TOKENS),
        ("/x\r\nSet-Cookie: a=b", TOKENS),
    ] {
        let mut agent = Agent::new(&demo);
        let csrf = agent.get("/dashboard/login").await.csrf();
        let (user, password) = (
            demo.state.dashboard.username.clone(),
            demo.state.dashboard.password.clone(),
        );
        let reply = agent
            .post(
                "/dashboard/login",
                &[
                    ("csrf", &csrf),
                    ("next", next),
                    ("username", &user),
                    ("password", &password),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(reply.header(header::LOCATION), lands, "{next:?}");
        assert!(agent.has_session());
        // Already logged in, the login form goes straight on.
        let again = agent
            .get(&format!(
                "/dashboard/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(again.header(header::LOCATION), lands, "{next:?}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_and_secure_in_production() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let csrf = agent.get("/dashboard/login").await.csrf();
    let login = agent
        .post(
            "/dashboard/login",
            &[
                ("csrf", &csrf),
                ("username", &demo.state.dashboard.username),
                ("password", &demo.state.dashboard.password),
            ],
        )
        .await;
    let cookie = session_cookie(&login);
    assert!(cookie.starts_with("dashboard_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "development serves plain HTTP");

    let production = app::AppState::new()
        .unwrap()
        .peers(Peers::new().trust_proxy(PROXY))
        .require_https();
    let demo = Demo::with_state(production).await;
    let mut plain = Agent::new(&demo);
    let refused = plain.get("/dashboard/login").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.json()["error"], "https_required");

    let mut agent = Agent::new(&demo);
    agent.via_tls_proxy = true;
    let form = agent.get("/dashboard/login").await;
    assert!(form.header(header::SET_COOKIE).contains("; Secure"));
    let login = agent
        .post(
            "/dashboard/login",
            &[
                ("csrf", &form.csrf()),
                ("username", &demo.state.dashboard.username),
                ("password", &demo.state.dashboard.password),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
    let cookie = session_cookie(&login);
    assert!(cookie.starts_with("__Host-dashboard_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(agent.get(TOKENS).await.status, StatusCode::OK);
}

fn session_cookie(reply: &Reply) -> String {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("dashboard_session="))
        .unwrap_or_else(|| panic!("a session cookie: {:?}", reply.headers))
}

#[tokio::test]
async fn every_state_changing_form_needs_the_sessions_csrf_token() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let page = agent.log_in().await;
    let csrf = page.csrf();
    let (id, token) = demo.create("guarded", "billing.agent").await;
    let wrong = "0".repeat(64);
    let before = demo
        .manage(Method::GET, "/settings/api-tokens", None)
        .await
        .text;

    let actions: [(String, Vec<(&str, &str)>); 5] = [
        (
            TOKENS.to_owned(),
            vec![("name", "sneaky"), ("scope", "billing.agent")],
        ),
        (
            format!("{TOKENS}/{id}/edit"),
            vec![("scope", "billing.read")],
        ),
        (format!("{TOKENS}/{id}/regenerate"), vec![]),
        (format!("{TOKENS}/{id}/delete"), vec![]),
        ("/dashboard/logout".to_owned(), vec![]),
    ];
    for (path, fields) in &actions {
        for csrf in [None, Some(""), Some(wrong.as_str())] {
            let mut fields = fields.clone();
            if let Some(csrf) = csrf {
                fields.push(("csrf", csrf));
            }
            let reply = agent.post(path, &fields).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} with {csrf:?}");
            assert!(reply.text.contains("Request refused"), "{}", reply.text);
        }
    }
    // Nothing happened: same tokens, same scopes, still logged in.
    let after = demo
        .manage(Method::GET, "/settings/api-tokens", None)
        .await
        .text;
    assert_eq!(before, after);
    assert_eq!(
        demo.api(Method::POST, "/v1/invoices", &token).await.status,
        StatusCode::CREATED
    );
    assert_eq!(agent.get(TOKENS).await.status, StatusCode::OK);

    // The CSRF token is the session's: another session's does not pass.
    let mut other = Agent::new(&demo);
    let other_csrf = other.log_in().await.csrf();
    assert_ne!(other_csrf, csrf);
    let reply = agent
        .post(&format!("{TOKENS}/{id}/delete"), &[("csrf", &other_csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // With it, logging out ends the session.
    let out = agent.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.header(header::LOCATION), "/dashboard/login");
    assert!(!agent.has_session());
    assert_eq!(agent.get(TOKENS).await.status, StatusCode::SEE_OTHER);
}

/// Issue 23, row 6: the login form and every form of the pages are read
/// up to 16 KiB (413 beyond, nothing done), and the CSRF token is checked
/// before the credentials: a login without the form's cookie, or with a
/// wrong token, is refused however right its password.
#[tokio::test]
async fn dashboard_forms_are_small_and_their_csrf_token_comes_first() {
    let demo = Demo::new().await;
    let (user, password) = (
        demo.state.dashboard.username.clone(),
        demo.state.dashboard.password.clone(),
    );
    let big = "x".repeat(17 * 1024);

    let mut agent = Agent::new(&demo);
    let csrf = agent.get("/dashboard/login").await.csrf();
    let huge = agent
        .post(
            "/dashboard/login",
            &[
                ("csrf", &csrf),
                ("username", &user),
                ("password", &password),
                ("padding", &big),
            ],
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", huge.text);
    assert!(!agent.has_session());

    // No cookie of the login form: 403, the right password is not enough.
    let mut cookieless = Agent::new(&demo);
    let reply = cookieless
        .post(
            "/dashboard/login",
            &[
                ("csrf", &csrf),
                ("username", &user),
                ("password", &password),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(!cookieless.has_session());
    // The cookie but another token in the field: 403 as well.
    let wrong = "0".repeat(64);
    let reply = agent
        .post(
            "/dashboard/login",
            &[
                ("csrf", &wrong),
                ("username", &user),
                ("password", &password),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(!agent.has_session());

    let page = agent.log_in().await;
    let csrf = page.csrf();
    let before = demo
        .manage(Method::GET, "/settings/api-tokens", None)
        .await
        .text;
    let (id, _) = demo.create("small forms", "billing.read").await;
    for path in [
        TOKENS.to_owned(),
        format!("{TOKENS}/{id}/edit"),
        format!("{TOKENS}/{id}/regenerate"),
        format!("{TOKENS}/{id}/delete"),
        "/dashboard/logout".to_owned(),
    ] {
        let reply = agent
            .post(
                &path,
                &[("csrf", &csrf), ("name", &big), ("scope", "billing.agent")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    let listed = demo.listed("small forms", "personal_access").await;
    assert_eq!(listed["status"], "active");
    assert_eq!(listed["scopes"], json!(["billing.read"]));
    let after = demo
        .manage(Method::GET, "/settings/api-tokens", None)
        .await
        .text;
    assert!(!after.contains("xxxxxxxx"));
    assert_ne!(before, after);
    assert!(agent.has_session(), "the logout form was not read either");
    assert_eq!(agent.get(TOKENS).await.status, StatusCode::OK);
}

/// Issue 23, row 3: the consent page's policy lets its form lead to the
/// origin of the client's redirect URI and nowhere else: a `;` or a `,`
/// in the URI's path or query adds no directive and no source.
#[tokio::test]
async fn the_consent_page_policy_names_only_the_redirect_origin() {
    use tower_token_auth::oauth::{s256_challenge, ClientRegistration};

    let demo = Demo::new().await;
    let uris = [
        "https://app.example/cb;script-src%20*",
        "https://app.example/cb,script-src%20*;report-uri%20https://evil.example",
        "https://app.example:8443/a,b?next=;img-src%20*,x",
    ];
    let client = demo
        .state
        .tokens
        .register_client(ClientRegistration::new(
            uris.iter().map(|u| (*u).to_owned()).collect(),
            "test",
        ))
        .await
        .expect("registered");
    let mut agent = Agent::new(&demo);
    agent.log_in().await;
    let expected_names: Vec<&str> = CSP
        .split(';')
        .map(|d| d.split_whitespace().next().unwrap())
        .collect();
    for uri in uris {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", uri)
            .append_pair("scope", "billing.read")
            .append_pair("state", "s")
            .append_pair("code_challenge", &s256_challenge("v".repeat(43).as_str()))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let page = agent.get(&format!("/oauth/authorize?{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.text);
        assert!(page.text.contains("Allow"), "the consent page for {uri}");
        let policy = page.header(header::CONTENT_SECURITY_POLICY);
        let directives: Vec<Vec<&str>> = policy
            .split(';')
            .map(|d| d.split_whitespace().collect())
            .collect();
        let names: Vec<&str> = directives.iter().map(|d| d[0]).collect();
        assert_eq!(names, expected_names, "{uri}: {policy}");
        let origin = if uri.contains(":8443") {
            "https://app.example:8443"
        } else {
            "https://app.example"
        };
        for directive in &directives {
            let expected: Vec<&str> = match directive[0] {
                "form-action" => vec!["form-action", "'self'", origin],
                name => CSP
                    .split(';')
                    .map(|d| d.split_whitespace().collect::<Vec<_>>())
                    .find(|d| d[0] == name)
                    .unwrap(),
            };
            assert_eq!(directive, &expected, "{uri}: {policy}");
        }
    }
}

#[tokio::test]
async fn bad_form_fields_are_pages_with_a_message_never_a_500() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let csrf = agent.log_in().await.csrf();
    let long_name = "n".repeat(201);
    for (fields, message) in [
        (
            vec![("name", "x"), ("scope", "billing.admin")],
            "is not a scope",
        ),
        (vec![("name", "x"), ("scope", "")], "is not a scope"),
        (
            vec![("name", "   "), ("scope", "billing.read")],
            "Give the token a name",
        ),
        (vec![("scope", "billing.read")], "Give the token a name"),
        (vec![("name", long_name.as_str())], "name"),
    ] {
        let mut fields = fields.clone();
        fields.push(("csrf", &csrf));
        let reply = agent.post(TOKENS, &fields).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert!(reply.text.contains(message), "{message}: {}", reply.text);
        assert!(!reply.text.contains("id=\"new-token\""));
    }
    // The form keeps what was typed after an error, escaped.
    let reply = agent
        .post(
            TOKENS,
            &[("csrf", &csrf), ("name", "<b>\"x\"</b>"), ("scope", "nope")],
        )
        .await;
    assert!(reply
        .text
        .contains("value=\"&lt;b&gt;&quot;x&quot;&lt;/b&gt;\""));

    // A body that is no form at all.
    let junk = agent
        .send(Method::POST, TOKENS, Some("%%%\u{0}=&&=".to_owned()))
        .await;
    assert_eq!(junk.status, StatusCode::FORBIDDEN);

    // Unknown or foreign ids: 404 pages; dead tokens: 409 pages.
    let stranger = demo
        .state
        .tokens
        .issue(IssueRequest::new(
            TokenKind::PersonalAccess,
            "theirs",
            "someone-else",
        ))
        .await
        .unwrap()
        .record
        .id
        .to_string();
    let revoked = demo.listed("demo: revoked", "personal_access").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let access = demo.listed("demo: access", "access").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (id, status) in [
        ("nonsense", StatusCode::NOT_FOUND),
        ("tok_0000000000000000", StatusCode::NOT_FOUND),
        (stranger.as_str(), StatusCode::NOT_FOUND),
        (revoked.as_str(), StatusCode::CONFLICT),
        (access.as_str(), StatusCode::CONFLICT),
    ] {
        for action in ["edit", "regenerate"] {
            let reply = agent
                .post(
                    &format!("{TOKENS}/{id}/{action}"),
                    &[("csrf", &csrf), ("scope", "billing.read")],
                )
                .await;
            assert_eq!(reply.status, status, "{action} {id}");
            assert!(reply.header(header::CONTENT_TYPE).starts_with("text/html"));
        }
        assert_eq!(
            agent.get(&format!("{TOKENS}/{id}/edit")).await.status,
            status
        );
    }
    // Editing down to no scope is refused with a message.
    let (id, _) = demo.create("keeps a scope", "billing.read").await;
    let reply = agent
        .post(&format!("{TOKENS}/{id}/edit"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text.contains("Check at least one scope"));
    // Deleting a revoked token changes nothing: 409; a grant's token: done.
    let reply = agent
        .post(&format!("{TOKENS}/{revoked}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = agent
        .post(&format!("{TOKENS}/{access}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        demo.api(Method::GET, "/v1/me", &demo.token("access"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_new_token_is_shown_once_and_never_in_a_url_or_a_log_line() {
    async {
        let demo = Demo::new().await;
        let mut agent = Agent::new(&demo);
        let csrf = agent.log_in().await.csrf();
        let created = agent
            .post(
                TOKENS,
                &[
                    ("csrf", &csrf),
                    ("name", "Shown once"),
                    ("scope", "billing.agent"),
                ],
            )
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER);
        assert_eq!(created.header(header::LOCATION), TOKENS);

        let page = agent.get(TOKENS).await;
        let token = new_token(&page.text).expect("the new token on the page");
        assert!(token.starts_with("pr_pat_"), "{token}");
        let shown = &page.text[page.text.find(r#"<section class="new-token""#).unwrap()..];
        let shown = &shown[..shown.find("</section>").unwrap()];
        assert!(shown.contains("you will not see it again"), "{shown}");
        assert!(shown.contains(r#"<code id="new-token">"#), "{shown}");
        assert_eq!(page.text.matches(&token).count(), 1, "shown exactly once");
        assert_eq!(
            demo.api(Method::POST, "/v1/invoices", &token).await.status,
            StatusCode::CREATED
        );

        // A reload does not show it again, nor does any other page.
        let again = agent.get(TOKENS).await;
        assert_eq!(again.status, StatusCode::OK);
        assert!(new_token(&again.text).is_none());
        assert!(!again.text.contains(&token));
        assert!(again.text.contains("Shown once"), "listed by name");

        // Regenerating shows the new one once; the old one stops working.
        let id = demo.listed("Shown once", "personal_access").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let regenerated = agent
            .post(&format!("{TOKENS}/{id}/regenerate"), &[("csrf", &csrf)])
            .await;
        assert_eq!(regenerated.status, StatusCode::SEE_OTHER);
        assert_eq!(regenerated.header(header::LOCATION), TOKENS);
        let page = agent.get(TOKENS).await;
        let fresh = new_token(&page.text).expect("the regenerated token");
        assert_ne!(fresh, token);
        assert!(new_token(&agent.get(TOKENS).await.text).is_none());
        assert_eq!(
            demo.api(Method::GET, "/v1/invoices", &token).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            demo.api(Method::GET, "/v1/invoices", &fresh).await.status,
            StatusCode::OK
        );

        for secret in [token, fresh] {
            assert_redacted("logs", &logs().text(), &[&TokenSecret::new(secret)]);
        }
    }
    .instrument(test_span("dashboard_shown_once"))
    .await;
}

/// Without JavaScript, `Delete` leads to a page with the same question as
/// the list's `<dialog>`: `Confirm` deletes, `Cancel` goes back.
#[tokio::test]
async fn delete_asks_first_even_without_javascript() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let csrf = agent.log_in().await.csrf();
    let (id, token) = demo.create("asked first", "billing.read").await;
    let question = agent.get(&format!("{TOKENS}/{id}/delete")).await;
    assert_eq!(question.status, StatusCode::OK);
    let dialog = &question.text[question.text.find("<dialog").unwrap()..];
    assert!(dialog.starts_with(&format!(r#"<dialog id="delete-{id}" open"#)));
    assert!(dialog.contains("Delete “asked first”?"));
    assert!(dialog.contains(&format!(
        r#"<form method="post" action="{TOKENS}/{id}/delete">"#
    )));
    assert!(dialog.contains(">Confirm<"));
    assert!(dialog.contains(&format!(r#"<form method="get" action="{TOKENS}">"#)));
    assert!(dialog.contains(">Cancel<"));
    assert_eq!(
        demo.api(Method::GET, "/v1/invoices", &token).await.status,
        StatusCode::OK,
        "asking deletes nothing"
    );
    let confirmed = agent
        .post(&format!("{TOKENS}/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        demo.api(Method::GET, "/v1/invoices", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = agent.get(TOKENS).await;
    assert!(
        page.text.contains("“asked first” is deleted"),
        "{}",
        page.text
    );
}

/// The text of `#new-token`, if the page has it.
fn new_token(html: &str) -> Option<String> {
    let start = html.find(r#"<code id="new-token">"#)? + 21;
    let end = start + html[start..].find('<')?;
    Some(html[start..end].to_owned())
}

#[tokio::test]
async fn the_list_shows_a_grant_as_one_row_and_dead_tokens_without_buttons() {
    let demo = Demo::new().await;
    let mut agent = Agent::new(&demo);
    let page = agent.log_in().await.text;
    let rows: Vec<&str> = page.split("<tr data-status=").skip(1).collect();
    let row = |name: &str| {
        let found: Vec<&&str> = rows
            .iter()
            .filter(|r| r.contains(&format!(r#"<span class="name">{name}</span>"#)))
            .collect();
        assert_eq!(found.len(), 1, "one row for {name}");
        (*found[0]).to_owned()
    };
    let grant = row("demo: access");
    assert!(grant.contains("OAuth grant"), "{grant}");
    assert!(
        grant.contains("pr_at_") && grant.contains("pr_rt_"),
        "{grant}"
    );
    assert!(grant.contains(">Delete<") && !grant.contains(">Edit<"));
    for dead in ["demo: revoked", "demo: expired"] {
        let dead_row = row(dead);
        for button in [">Edit<", ">Regenerate<", ">Delete<"] {
            assert!(!dead_row.contains(button), "{button} on {dead}");
        }
    }
    let live = row("demo: billing.agent");
    for button in [
        ">Edit<",
        ">Regenerate<",
        ">Delete<",
        ">Confirm<",
        ">Cancel<",
    ] {
        assert!(live.contains(button), "{button}: {live}");
    }
    assert!(live.contains("<code>billing.agent</code>"), "{live}");
    // The access token expires in 15 days, the grant in 30: no warning;
    // a token expiring in 3 days has one.
    assert!(!grant.contains("Expires in"));
    demo.state
        .tokens
        .issue(
            IssueRequest::new(
                TokenKind::PersonalAccess,
                "short-lived",
                app::demo::DEMO_OWNER,
            )
            .lifetime(Duration::from_secs(3 * 86_400 + 600)),
        )
        .await
        .unwrap();
    let page = agent.get(TOKENS).await.text;
    let short = page
        .split("<tr data-status=")
        .find(|r| r.contains("short-lived"))
        .unwrap();
    assert!(short.contains("Expires in 3 days"), "{short}");

    // Each scope has a checkbox with its name as value and the seed's words.
    for (name, description) in [
        ("billing.read", "Read invoices, subscriptions, transactions"),
        (
            "billing.agent",
            "Full AI billing agent access; includes billing.read and billing.write",
        ),
        ("products.write", "Create and modify products"),
    ] {
        assert!(
            page.contains(&format!(
                r#"<input type="checkbox" name="scope" value="{name}"> <code>{name}</code> — {description}"#
            )),
            "{name}"
        );
    }
    assert!(page.contains("If you check no scope, the token gets billing.read."));
}

/// The row of the token (or grant) named `name` on a token page.
fn row_of<'a>(page: &'a str, name: &str) -> &'a str {
    let found: Vec<&str> = page
        .split("<tr data-status=")
        .skip(1)
        .filter(|r| r.contains(&format!(r#"<span class="name">{name}</span>"#)))
        .collect();
    assert_eq!(found.len(), 1, "one row for {name}: {page}");
    found[0]
}

/// The list can show each of the four statuses. A grant stays one row:
/// active while any of its tokens is; after a refresh it also names its
/// spent refresh token (the one that, presented again, revokes the grant),
/// and keeps doing so once the grant has expired.
#[tokio::test]
async fn the_list_shows_all_four_statuses_and_a_grants_spent_refresh_token() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let tokens = TokenManager::with_policy(
        Arc::new(MemoryStore::new()) as app::Backend,
        IssuePolicy::default()
            .default_audience(["http://127.0.0.1:3000"])
            .clock(clock.clone()),
    );
    let state = app::AppState::with_store(
        tokens,
        app::demo::DashboardLogin::generate().unwrap(),
        "http://127.0.0.1:3000",
    );
    let demo = Demo::with_state(state).await;
    // The demo's `expired` token lives for a millisecond.
    clock.advance(Duration::from_secs(1));
    let mut agent = Agent::new(&demo);
    let page = agent.log_in().await.text;
    assert!(!page.contains("spent"), "nothing spent yet");

    let spent_hint = demo.listed("demo: access", "refresh").await["hint"]
        .as_str()
        .unwrap()
        .to_owned();
    let pair = demo
        .state
        .tokens
        .refresh(&TokenDigest::of(&demo.token("refresh")), None)
        .await
        .unwrap();
    let spent = format!(
        r#"refresh token <code>{spent_hint}</code> <span class="status spent">spent</span>"#
    );

    let page = agent.get(TOKENS).await.text;
    let grant = row_of(&page, "demo: access");
    assert!(grant.starts_with(r#""active""#), "{grant}");
    assert!(grant.contains(&spent), "{grant}");
    assert!(grant.contains(pair.refresh.record.hint()), "{grant}");
    for status in ["active", "expired", "revoked", "spent"] {
        assert!(
            page.contains(&format!(r#"<span class="status {status}">{status}</span>"#)),
            "{status} on the page"
        );
    }

    // 31 days on, every token of the grant has expired but the spent one.
    clock.advance(Duration::from_secs(31 * 86_400));
    let page = agent.get(TOKENS).await.text;
    let grant = row_of(&page, "demo: access");
    assert!(grant.starts_with(r#""expired""#), "{grant}");
    assert!(
        grant.contains(r#"<span class="status expired">expired</span>"#),
        "{grant}"
    );
    assert!(grant.contains(&spent), "{grant}");
    assert!(!grant.contains(">Delete<"), "{grant}");
}

/// The list's column headers, and the Created and Last used cells: `never`
/// before the first use, the time of the use after it.
#[tokio::test]
async fn the_list_has_its_column_headers_and_shows_when_a_token_was_created_and_last_used() {
    let demo = Demo::with_state(
        app::AppState::new()
            .unwrap()
            .track_usage(Duration::from_millis(10)),
    )
    .await;
    let mut agent = Agent::new(&demo);
    agent.log_in().await;
    let (id, token) = demo.create("Used once", "billing.read").await;
    let page = agent.get(TOKENS).await.text;

    let head = &page[page.find("<thead>").unwrap()..page.find("</thead>").unwrap()];
    let headers: Vec<&str> = head
        .split(r#"<th scope="col">"#)
        .skip(1)
        .map(|h| &h[..h.find("</th>").unwrap()])
        .collect();
    assert_eq!(
        headers,
        [
            "Name",
            "Hint",
            "Scopes",
            "Status",
            "Created",
            "Expires",
            "Last used",
            "Actions"
        ]
    );

    let cells = |page: &str| -> Vec<String> {
        row_of(page, "Used once")
            .split("<td>")
            .skip(1)
            .map(|c| c[..c.find("</td>").unwrap()].to_owned())
            .collect()
    };
    let listed = demo.listed("Used once", "personal_access").await;
    assert_eq!(listed["id"], id.as_str());
    let created = listed["created_at"].as_str().unwrap();
    let row = cells(&page);
    assert!(
        row[3].starts_with(&format!(r#"<time datetime="{created}">"#)),
        "Created: {row:?}"
    );
    assert_eq!(row[5], r#"<span class="muted">never</span>"#, "Last used");

    assert_eq!(
        demo.api(Method::GET, "/v1/invoices", &token).await.status,
        StatusCode::OK
    );
    // The use is written off the request path: wait for it.
    let mut used = Value::Null;
    for _ in 0..100 {
        used = demo.listed("Used once", "personal_access").await["last_used_at"].clone();
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let used = used.as_str().expect("last_used_at after a use");
    let row = cells(&agent.get(TOKENS).await.text);
    assert!(
        row[5].starts_with(&format!(r#"<time datetime="{used}">"#)),
        "Last used: {row:?}"
    );
    assert!(!row[5].contains("never"), "{row:?}");
}

// ---- C. the example on a real socket ----

/// A client of the example on a socket, from its own loopback address (the
/// example keys its throttle by the peer's IP), keeping the cookies it is
/// sent.
struct SocketClient {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
    cookies: HashMap<String, String>,
}

impl SocketClient {
    fn new(server: SocketAddr, from: Ipv4Addr) -> Self {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_local_address(Some(IpAddr::V4(from)));
        Self {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(connector),
            base: format!("http://{server}"),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let cookie: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(header::COOKIE, cookie.join("; "));
        }
        let body = match form {
            Some(fields) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish()
            }
            None => String::new(),
        };
        let response = self
            .client
            .request(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        for set in headers.get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }
}

/// Over a real socket, the login form throttles the client that keeps
/// failing it: with the form's CSRF token and cookie, as a browser sends
/// them, its guesses are refused with 429 and Retry-After once it has
/// used up its failures, the right password too. The peer's address is
/// what counts: another client gets the form and logs in.
/// (`hostile_http` checks the same for HTTP Basic on the JSON API.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_socket_a_client_that_keeps_failing_the_login_form_gets_429() {
    let (addr, state) = serve().await;
    let (user, password) = (
        state.dashboard.username.clone(),
        state.dashboard.password.clone(),
    );
    let mut guesser = SocketClient::new(addr, Ipv4Addr::new(127, 4, 0, 1));
    let form = guesser.send(Method::GET, "/dashboard/login", None).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(!guesser.cookies.is_empty(), "the form sets its CSRF cookie");
    let csrf = form.csrf();
    for attempt in 0..app::FAILURES_PER_MINUTE {
        let guess = format!("guess-{attempt}");
        let fields = [
            ("csrf", csrf.as_str()),
            ("username", &user),
            ("password", &guess),
        ];
        let reply = guesser
            .send(Method::POST, "/dashboard/login", Some(&fields))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            reply.text
        );
        assert!(reply.text.contains("Wrong username or password"));
    }
    let fields = [
        ("csrf", csrf.as_str()),
        ("username", &user),
        ("password", &password),
    ];
    let throttled = guesser
        .send(Method::POST, "/dashboard/login", Some(&fields))
        .await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        throttled.text
    );
    let retry_after: u64 = throttled
        .header(header::RETRY_AFTER)
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After in seconds: {:?}", throttled.headers));
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(
        !guesser.cookies.contains_key("dashboard_session"),
        "no session for the throttled client"
    );

    let mut other = SocketClient::new(addr, Ipv4Addr::new(127, 4, 0, 2));
    let form = other.send(Method::GET, "/dashboard/login", None).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains(">Log in<"));
    let csrf = form.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("username", &user),
        ("password", &password),
    ];
    let reply = other
        .send(Method::POST, "/dashboard/login", Some(&fields))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    assert!(other.cookies.contains_key("dashboard_session"));
}

// ---- D. the journey in a real browser ----

/// The whole journey of DESIGN §7 in headless Chromium, by the words a
/// user sees. Prints how long it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_journey_through_the_token_page() {
    let started = Instant::now();
    let driver = start_chromedriver().await;
    let (addr, state) = serve().await;
    let client = browser(&driver).await;
    let ready = started.elapsed();
    // A panic inside is caught here, so that the browser is closed either way.
    let journey = tokio::spawn(journey(client.clone(), addr, state));
    let outcome = journey.await;
    let _ = client.close().await;
    drop(driver);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
    eprintln!(
        "browser journey: {:.1?} in all ({:.1?} to start chromedriver, the example and Chromium)",
        started.elapsed(),
        ready
    );
}

async fn journey(browser: fantoccini::Client, addr: SocketAddr, state: app::AppState) {
    use fantoccini::Locator;

    let base = format!("http://{addr}");
    let http = Http::new(addr);
    let page = Page {
        browser: &browser,
        base: &base,
    };

    // Logged out, the token page leads to the login form.
    page.open(TOKENS).await;
    assert!(page.path().await.starts_with("/dashboard/login?next="));

    // A wrong password: an error, and no session.
    page.fill("Username", &state.dashboard.username).await;
    page.fill("Password", "not the password").await;
    page.click("Log in").await;
    assert!(page.text().await.contains("Wrong username or password"));
    assert!(
        !page.has_session_cookie().await,
        "no session after a wrong password"
    );
    page.open(TOKENS).await;
    assert!(page.path().await.starts_with("/dashboard/login"));

    // The right one leads to the token page.
    page.fill("Username", &state.dashboard.username).await;
    page.fill("Password", &state.dashboard.password).await;
    page.click("Log in").await;
    assert_eq!(page.path().await, TOKENS);
    assert!(page.has_session_cookie().await);
    assert!(page
        .text()
        .await
        .contains("If you check no scope, the token gets billing.read."));

    // Create "MCP Billing Agent" with billing.agent; it is shown once.
    page.fill("Name", "MCP Billing Agent").await;
    page.check_scope("Create", "billing.agent", true).await;
    page.click("Create").await;
    let token = page.new_token().await.expect("the new token in #new-token");
    assert!(token.starts_with("pr_pat_"), "{token}");
    let shown_once = browser
        .find(Locator::XPath("//section[.//*[@id='new-token']]"))
        .await
        .expect("a section around #new-token");
    let warning = shown_once.text().await.unwrap();
    assert!(warning.contains("you will not see it again"), "{warning}");
    let (status, invoice) = http.create_invoice(&token).await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let shot = page.screenshot("dashboard.png").await;
    println!("screenshot of the token page: {}", shot.display());

    // The copy button, which the script shows, puts #new-token on the
    // clipboard (read back with the page's permission to read it).
    let copy = shown_once
        .find(Locator::Css("button[data-copy]"))
        .await
        .expect("a copy button next to #new-token");
    assert_eq!(
        copy.attr("data-copy").await.unwrap().as_deref(),
        Some("new-token")
    );
    assert!(copy.is_displayed().await.unwrap(), "the script shows it");
    assert_eq!(copy.text().await.unwrap(), "Copy");
    page.grant_permission("clipboard-read").await;
    copy.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while copy.text().await.unwrap() != "Copied" {
        assert!(Instant::now() < deadline, "{}", copy.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let copied = browser
        .execute_async(
            "const done = arguments[0]; \
             navigator.clipboard.readText().then(done, e => done('refused: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(copied, token.as_str(), "the clipboard holds the token");

    // A reload does not show it again.
    browser.refresh().await.unwrap();
    assert_eq!(page.new_token().await, None);
    assert!(!page.source().await.contains(&token));

    // Edit down to billing.read: the same token now gets 403.
    page.submit(page.row_button("MCP Billing Agent", "Edit").await)
        .await;
    page.check_scope("Save", "billing.agent", false).await;
    page.check_scope("Save", "billing.read", true).await;
    page.click("Save").await;
    assert_eq!(page.path().await, TOKENS);
    let (status, refusal) = http.create_invoice(&token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refusal["error"], "insufficient_scope");
    assert_eq!(http.list_invoices(&token).await, StatusCode::OK);

    // Regenerate: the old value is refused, the new one works.
    page.submit(page.row_button("MCP Billing Agent", "Regenerate").await)
        .await;
    let regenerated = page
        .new_token()
        .await
        .expect("the regenerated token in #new-token");
    assert_ne!(regenerated, token);
    assert_eq!(http.list_invoices(&token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(http.list_invoices(&regenerated).await, StatusCode::OK);

    // Delete, then Cancel: nothing happens.
    let delete = page.row_button("MCP Billing Agent", "Delete").await;
    delete.click().await.unwrap();
    let dialog = browser
        .find(Locator::XPath("//dialog[@open]"))
        .await
        .expect("Delete opens a dialog");
    assert!(dialog.text().await.unwrap().contains("MCP Billing Agent"));
    dialog
        .find(Locator::XPath(".//button[normalize-space(.)='Cancel']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(browser
        .find_all(Locator::XPath("//dialog[@open]"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(http.list_invoices(&regenerated).await, StatusCode::OK);

    // Delete, then Confirm: the token is refused.
    let delete = page.row_button("MCP Billing Agent", "Delete").await;
    delete.click().await.unwrap();
    let confirm = browser
        .find(Locator::XPath(
            "//dialog[@open]//button[normalize-space(.)='Confirm']",
        ))
        .await
        .expect("Delete opens a dialog with Confirm");
    page.submit(confirm).await;
    assert_eq!(page.path().await, TOKENS);
    assert!(page.text().await.contains("is deleted"));
    assert_eq!(
        http.list_invoices(&regenerated).await,
        StatusCode::UNAUTHORIZED
    );
    let row = page.row("MCP Billing Agent").await;
    assert!(row.text().await.unwrap().contains("revoked"));
    assert!(row
        .find_all(Locator::XPath(".//button"))
        .await
        .unwrap()
        .is_empty());

    // A form posted without its CSRF token: 403, nothing created.
    browser
        .execute(
            "document.querySelectorAll('form.create input[name=csrf]').forEach(e => e.remove());",
            vec![],
        )
        .await
        .unwrap();
    page.fill("Name", "Without CSRF").await;
    page.click("Create").await;
    assert!(page.text().await.contains("Request refused"));
    let cookie = page.cookie_header().await;
    let status = http.post_form(TOKENS, &cookie, "name=Without+CSRF").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    page.open(TOKENS).await;
    assert!(!page.text().await.contains("Without CSRF"));

    // Log out ends the session.
    page.click("Log out").await;
    let path = page.path().await;
    assert!(
        path.starts_with("/dashboard/login"),
        "{path}: {}",
        page.text().await
    );
    page.open(TOKENS).await;
    assert!(page.path().await.starts_with("/dashboard/login"));
}
