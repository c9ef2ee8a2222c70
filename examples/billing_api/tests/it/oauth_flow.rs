//! The OAuth 2.1 authorization code flow of the `billing_api` example, end
//! to end over real sockets, as a client application and its user live it:
//!
//! - `browser_authorization_code_flow`: headless Chromium plays the user,
//!   by the words on the pages: the authorization request leads to the
//!   dashboard's login form, then to the consent page (the client's name,
//!   the requested scopes with their descriptions); the user unticks one
//!   scope and allows, and the browser lands on the client's loopback
//!   callback with `code`, `state` and `iss`. The client exchanges the code
//!   (PKCE S256), calls the API with the granted scope only, refreshes, and
//!   the user finds the grant as one row named after the client on the
//!   token page and deletes it there, which ends its tokens. A second
//!   request that the user denies comes back with `error=access_denied`.
//! - `oauth2_crate_client_flow`: the same flow driven by the `oauth2` crate
//!   (a client library written elsewhere), from the RFC 8414 metadata
//!   document: dynamic registration (raw HTTP), the authorization URL with
//!   PKCE and `resource`, the user's login and consent over HTTP with
//!   cookies, the code exchange, refresh and RFC 7009 revocation through
//!   the crate, and a code exchanged twice, which the crate sees as
//!   `invalid_grant` and which revokes the grant.
//!
//! Every stage has a negative check that fails if the feature breaks: a
//! redirect URI that is not loopback or https, a redirect URI the client
//! did not register, a consent without its CSRF token, a wrong PKCE
//! verifier, a refresh that widens the scope, a revoked token.
//!
//! The browser test needs Chromium and chromedriver (see
//! `browser.rs`); without them it fails and says how to get them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower_token_auth::oauth::s256_challenge;

use crate::browser::{browser, serve, start_chromedriver, Http, Page};
use billing_api as app;

/// The name the client registers with, shown on the consent page and the
/// token page.
const CLIENT_NAME: &str = "MCP Billing Agent";

/// The dashboard's token page.
const TOKENS: &str = "/dashboard/settings/api-tokens";

/// What the client's callback answers the browser with.
const CALLBACK_PAGE: &str = "<!doctype html><html><head><title>Signed in</title></head>\
     <body><h1>Authorization received</h1><p>You can close this window.</p></body></html>";

// ---- the client's side: a loopback callback, PKCE, registration ----

/// The client's redirect URI: a loopback HTTP server on an ephemeral port
/// (RFC 8252 §7.3) that records the query of every request it receives.
struct Callback {
    url: String,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Callback {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&queries);
        let router = axum::Router::new().route(
            "/callback",
            axum::routing::get(move |RawQuery(query): RawQuery| {
                recorded.lock().unwrap().push(query.unwrap_or_default());
                async { axum::response::Html(CALLBACK_PAGE) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url: format!("http://{addr}/callback"),
            queries,
        }
    }

    /// How many requests reached the callback.
    fn calls(&self) -> usize {
        self.queries.lock().unwrap().len()
    }

    /// Waits until the callback has had `n` requests; the query of the
    /// last one.
    async fn nth(&self, n: usize) -> HashMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.calls() < n {
            assert!(Instant::now() < deadline, "the callback got no request {n}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let queries = self.queries.lock().unwrap();
        assert_eq!(queries.len(), n, "one request per redirect: {queries:?}");
        query_map(&queries[n - 1])
    }
}

/// The pairs of a query string; panics on a repeated name.
fn query_map(query: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let repeated = map.insert(name.to_string(), value.to_string());
        assert!(repeated.is_none(), "{name} is repeated in {query}");
    }
    map
}

/// `bytes` random bytes, unpadded base64url: 32 of them make a PKCE code
/// verifier (43 characters).
fn random(bytes: usize) -> String {
    let mut buf = vec![0; bytes];
    getrandom::fill(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

/// A request with a JSON or form body.
fn post(url: &str, content_type: &str, body: String) -> Request<Full<Bytes>> {
    Request::post(url)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

/// `POST /oauth/register` with the client's metadata.
async fn register(http: &Http, name: &str, redirect_uri: &str) -> (StatusCode, Value) {
    let metadata = json!({
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "billing.read customers.read",
    });
    let url = format!("{}/oauth/register", http.base);
    http.send(post(&url, "application/json", metadata.to_string()))
        .await
}

/// `POST /oauth/token` (or another form endpoint) with `fields`.
async fn post_form(http: &Http, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let url = format!("{}{path}", http.base);
    http.send(post(&url, "application/x-www-form-urlencoded", form))
        .await
}

/// `GET path` of the API with `token`.
async fn api(http: &Http, path: &str, token: &str) -> (StatusCode, Value) {
    let request = Request::get(format!("{}{path}", http.base))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    http.send(request).await
}

/// An authorization request (path and query) for `client_id`.
struct Authorization {
    state: String,
    verifier: String,
    path: String,
}

impl Authorization {
    fn new(client_id: &str, redirect_uri: &str, resource: &str) -> Self {
        let state = random(16);
        let verifier = random(32);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "billing.read customers.read")
            .append_pair("state", &state)
            .append_pair("code_challenge", &s256_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource)
            .finish();
        Self {
            path: format!("/oauth/authorize?{query}"),
            state,
            verifier,
        }
    }
}

// ---- 1. in a real browser ----

/// The authorization code flow in headless Chromium, by the words a user
/// sees. Prints how long it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_authorization_code_flow() {
    let started = Instant::now();
    let driver = start_chromedriver().await;
    let (addr, state) = serve().await;
    let client = browser(&driver).await;
    // A panic inside is caught here, so that the browser is closed either way.
    let flow = tokio::spawn(browser_flow(client.clone(), addr, state));
    let outcome = flow.await;
    let _ = client.close().await;
    drop(driver);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
    eprintln!("browser authorization code flow: {:.1?}", started.elapsed());
}

async fn browser_flow(browser: fantoccini::Client, addr: SocketAddr, state: app::AppState) {
    use fantoccini::Locator;

    let base = format!("http://{addr}");
    assert_eq!(&*state.base_url, base);
    let http = Http::new(addr);
    let page = Page {
        browser: &browser,
        base: &base,
    };
    let callback = Callback::start().await;

    // Registration: a redirect URI that is neither https nor loopback is
    // refused; the loopback callback is accepted.
    let (status, refusal) = register(&http, CLIENT_NAME, "http://example.com/callback").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["error"], "invalid_redirect_uri");
    let (status, registered) = register(&http, CLIENT_NAME, &callback.url).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["client_name"], CLIENT_NAME);
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    // A redirect URI the client did not register: shown as an error, the
    // browser is never sent there (checked once logged in, below).
    let elsewhere = callback.url.replace("/callback", "/elsewhere");
    let stray = Authorization::new(&client_id, &elsewhere, &state.resource);

    // The authorization request, logged out: the login form, which comes
    // back to the request.
    let authorization = Authorization::new(&client_id, &callback.url, &state.resource);
    page.open(&authorization.path).await;
    let login = page.path().await;
    let next = login
        .strip_prefix("/dashboard/login?")
        .map(query_map)
        .unwrap_or_else(|| panic!("the login form, not {login}"));
    assert_eq!(next["next"], authorization.path);
    let text = page.text().await;
    assert!(
        text.contains("Username") && text.contains("Password"),
        "{text}"
    );
    page.fill("Username", &state.dashboard.username).await;
    page.fill("Password", &state.dashboard.password).await;
    page.click("Log in").await;

    // The consent page: the client, where it returns to, both scopes with
    // their descriptions, ticked.
    assert_eq!(page.path().await, authorization.path);
    let text_of = |id: &'static str| {
        let browser = &browser;
        async move {
            browser
                .find(Locator::Id(id))
                .await
                .unwrap_or_else(|e| panic!("#{id} on the consent page: {e}"))
                .text()
                .await
                .unwrap()
        }
    };
    let heading = browser.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(
        heading.text().await.unwrap(),
        format!("Authorize {CLIENT_NAME}")
    );
    assert_eq!(text_of("client-name").await, CLIENT_NAME);
    assert_eq!(text_of("client-id").await, client_id);
    assert_eq!(text_of("redirect-uri").await, callback.url);
    let mut boxes = Vec::new();
    for checkbox in browser
        .find_all(Locator::Css(
            "form#consent input[type=checkbox][name=scope]",
        ))
        .await
        .unwrap()
    {
        let value = checkbox.attr("value").await.unwrap().unwrap();
        boxes.push((value, checkbox.is_selected().await.unwrap()));
    }
    assert_eq!(
        boxes,
        [
            ("billing.read".to_owned(), true),
            ("customers.read".to_owned(), true)
        ]
    );
    let labels = page.text().await;
    for line in [
        "billing.read — Read invoices, subscriptions, transactions",
        "customers.read — Read customer information",
    ] {
        assert!(
            labels.contains(line),
            "the consent page lists {line:?}:\n{labels}"
        );
    }

    // Untick customers.read, allow: the browser lands on the callback with
    // the code, the same state and the issuer.
    page.check_scope("Allow", "customers.read", false).await;
    page.click("Allow").await;
    let landed = browser.current_url().await.unwrap();
    assert!(
        landed.as_str().starts_with(&format!("{}?", callback.url)),
        "{landed}"
    );
    assert!(page.text().await.contains("Authorization received"));
    let answer = callback.nth(1).await;
    assert_eq!(answer["state"], authorization.state);
    assert_eq!(answer["iss"], base);
    assert!(!answer.contains_key("error"), "{answer:?}");
    let code = answer["code"].clone();

    // The code with another verifier: invalid_grant (PKCE is checked).
    let exchange = |verifier: String| {
        let (code, client_id, redirect_uri, resource) = (
            code.clone(),
            client_id.clone(),
            callback.url.clone(),
            state.resource.to_string(),
        );
        let http = &http;
        async move {
            post_form(
                http,
                "/oauth/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                    ("resource", &resource),
                ],
            )
            .await
        }
    };
    let (status, refusal) = exchange(random(32)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["error"], "invalid_grant");

    // With its verifier: a pair with the granted scope only.
    let (status, tokens) = exchange(authorization.verifier.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "billing.read");
    assert!(tokens["expires_in"].as_u64().unwrap() > 0, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The API: billing.read yes, customers.read no.
    assert_eq!(api(&http, "/v1/invoices", &access).await.0, StatusCode::OK);
    let (status, refusal) = api(&http, "/v1/customers", &access).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refusal}");
    assert_eq!(refusal["error"], "insufficient_scope");

    // Refresh: asking for the unticked scope is invalid_scope; without
    // it, a new pair that works.
    let (status, refusal) = post_form(
        &http,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "billing.read customers.read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["error"], "invalid_scope");
    let (status, rotated) = post_form(
        &http,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["scope"], "billing.read");
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(api(&http, "/v1/invoices", &access).await.0, StatusCode::OK);
    assert_eq!(api(&http, "/v1/me", &access).await.0, StatusCode::OK);

    // A redirect URI the client did not register: an error page, and the
    // callback hears nothing.
    page.open(&stray.path).await;
    assert!(page.path().await.starts_with("/oauth/authorize?"));
    let text = page.text().await;
    assert!(text.contains("Authorization request refused"), "{text}");
    assert!(browser
        .find_all(Locator::Id("consent"))
        .await
        .unwrap()
        .is_empty());

    // A second request, denied: access_denied and the state, no code.
    let denied = Authorization::new(&client_id, &callback.url, &state.resource);
    page.open(&denied.path).await;
    assert_eq!(
        page.path().await,
        denied.path,
        "logged in: straight to consent"
    );
    page.click("Deny").await;
    let answer = callback.nth(2).await;
    assert_eq!(answer["error"], "access_denied");
    assert_eq!(answer["state"], denied.state);
    assert_eq!(answer["iss"], base);
    assert!(!answer.contains_key("code"), "{answer:?}");

    // The token page: the grant (its access and refresh tokens, before
    // and after the refresh) is one row named after the client.
    page.open(TOKENS).await;
    assert_eq!(page.path().await, TOKENS);
    let rows = browser
        .find_all(Locator::XPath(&format!(
            "//table//tr[.//*[normalize-space(.)='{CLIENT_NAME}']]"
        )))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{}", page.text().await);
    let row = rows[0].text().await.unwrap();
    assert!(row.contains("billing.read"), "{row}");
    assert!(!row.contains("customers.read"), "{row}");

    // Delete, Confirm: the grant's tokens are refused.
    page.row_button(CLIENT_NAME, "Delete")
        .await
        .click()
        .await
        .unwrap();
    let confirm = browser
        .find(Locator::XPath(
            "//dialog[@open]//button[normalize-space(.)='Confirm']",
        ))
        .await
        .expect("Delete opens a dialog with Confirm");
    page.submit(confirm).await;
    assert_eq!(page.path().await, TOKENS);
    assert!(page.text().await.contains("is deleted"));
    let (status, refusal) = api(&http, "/v1/invoices", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refusal}");
    let (status, refusal) = post_form(
        &http,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &new_refresh),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(refusal["error"], "invalid_grant");
}

// ---- 2. with the oauth2 crate ----

/// An error of the HTTP client given to the `oauth2` crate.
#[derive(Debug)]
struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

type Hyper = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn hyper_client() -> Hyper {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One HTTP exchange: status, headers, body.
async fn fetch(
    client: &Hyper,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
    let response = client
        .request(request)
        .await
        .map_err(|e| HttpError(e.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| HttpError(e.to_string()))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// The user's browser, without a browser: follows nothing by itself,
/// keeps the cookies the server sets and sends them back.
struct Agent {
    client: Hyper,
    base: String,
    cookies: HashMap<String, String>,
}

/// What the agent got back.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .unwrap_or_else(|| panic!("a Location header: {} {}", self.status, self.text))
            .to_str()
            .unwrap()
    }

    /// The value of the hidden field `name`, unescaped.
    fn field(&self, name: &str) -> String {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("a field {name}: {}", self.text))
            + marker.len();
        let end = start + self.text[start..].find('"').unwrap();
        self.text[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }
}

impl Agent {
    fn new(base: &str) -> Self {
        Self {
            client: hyper_client(),
            base: base.to_owned(),
            cookies: HashMap::new(),
        }
    }

    /// `GET` of an absolute URL of the server or a path on it.
    async fn get(&mut self, url: &str) -> Reply {
        self.send(Method::GET, url, None).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(form)).await
    }

    async fn send(&mut self, method: Method, url: &str, form: Option<String>) -> Reply {
        let url = match url.starts_with('/') {
            true => format!("{}{url}", self.base),
            false => url.to_owned(),
        };
        assert!(url.starts_with(&self.base), "the agent stays on {url}");
        let mut request = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Full::from(form)
            }
            None => Full::default(),
        };
        let (status, headers, body) = fetch(&self.client, request.body(body).unwrap())
            .await
            .unwrap();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// The user's side of an authorization request at `url`: logs in if
/// needed, checks the consent page, allows `scopes`; the query the server
/// redirects to `redirect_uri` with.
async fn allow(
    user: &mut Agent,
    url: &str,
    state: &app::AppState,
    redirect_uri: &str,
    scopes: &[&str],
) -> HashMap<String, String> {
    let mut reply = user.get(url).await;
    if reply.status == StatusCode::SEE_OTHER && reply.location().starts_with("/dashboard/login?") {
        let form = user.get(reply.location()).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        assert!(user.cookies.contains_key("dashboard_login_csrf"));
        let (csrf, next) = (form.field("csrf"), form.field("next"));
        assert!(url.ends_with(&next), "{next} is {url}");
        let login = user
            .post(
                "/dashboard/login",
                &[
                    ("csrf", &csrf),
                    ("next", &next),
                    ("username", &state.dashboard.username),
                    ("password", &state.dashboard.password),
                ],
            )
            .await;
        assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.text);
        assert_eq!(login.location(), next);
        reply = user.get(&next).await;
    }
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains(CLIENT_NAME), "{}", reply.text);
    assert!(reply.text.contains(r#"value="billing.read" checked"#));
    assert!(reply.text.contains(r#"value="customers.read" checked"#));
    let (csrf, request) = (reply.field("csrf"), reply.field("request"));
    let mut fields = vec![("request", request.as_str()), ("decision", "allow")];
    fields.extend(scopes.iter().map(|s| ("scope", *s)));

    // Without the CSRF token: refused, no redirect.
    let refused = user.post("/oauth/authorize", &fields).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.headers.get(header::LOCATION).is_none());

    fields.push(("csrf", &csrf));
    let allowed = user.post("/oauth/authorize", &fields).await;
    assert_eq!(allowed.status, StatusCode::SEE_OTHER, "{}", allowed.text);
    let location = allowed.location();
    let (to, query) = location.split_once('?').unwrap();
    assert_eq!(to, redirect_uri);
    query_map(query)
}

/// The authorization code flow driven by the `oauth2` crate; the user
/// logs in and allows over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_crate_client_flow() {
    use oauth2::basic::{BasicClient, BasicErrorResponseType};
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
        RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken,
        TokenResponse, TokenUrl,
    };

    let started = Instant::now();
    let (addr, state) = serve().await;
    let base = format!("http://{addr}");
    let http = Http::new(addr);
    let redirect_uri = "http://127.0.0.1:9/callback";

    // The crate's HTTP client: hyper, as a closure. The crate insists on
    // an https revocation URL (RFC 7009 §2) and the example serves plain
    // HTTP: this transport stands in for TLS, and sends a request for
    // `https://` this server over plain HTTP.
    let hyper = hyper_client();
    let tls_stand_in = format!("https://{addr}/");
    let http_client = move |request: oauth2::HttpRequest| {
        let hyper = hyper.clone();
        let tls_stand_in = tls_stand_in.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            let uri = parts.uri.to_string();
            if let Some(path) = uri.strip_prefix(&tls_stand_in) {
                parts.uri = format!("http://{addr}/{path}").parse().unwrap();
            }
            let request = Request::from_parts(parts, Full::from(body));
            let (status, headers, body) = fetch(&hyper, request).await?;
            let mut response = oauth2::HttpResponse::new(body.to_vec());
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok::<_, HttpError>(response)
        }
    };

    // The endpoints, from the RFC 8414 metadata document.
    let request = Request::get(format!("{base}/.well-known/oauth-authorization-server"))
        .body(Full::default())
        .unwrap();
    let (status, metadata) = http.send(request).await;
    assert_eq!(status, StatusCode::OK, "{metadata}");
    assert_eq!(metadata["issuer"], base);
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    let endpoint = |name: &str| {
        let url = metadata[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {metadata}"))
            .to_owned();
        assert!(url.starts_with(&base), "{name}: {url}");
        url
    };

    // Registration (the crate has none): raw HTTP.
    let (status, registered) = register(&http, CLIENT_NAME, redirect_uri).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(
        endpoint("registration_endpoint"),
        format!("{base}/oauth/register")
    );
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_auth_uri(AuthUrl::new(endpoint("authorization_endpoint")).unwrap())
        .set_token_uri(TokenUrl::new(endpoint("token_endpoint")).unwrap())
        .set_revocation_url(
            RevocationUrl::new(endpoint("revocation_endpoint").replacen("http:", "https:", 1))
                .unwrap(),
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).unwrap());

    // The user: logs in, allows billing.read only; the code from the 303.
    let mut user = Agent::new(&base);
    let authorization_url = || {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf_state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("billing.read".into()))
            .add_scope(Scope::new("customers.read".into()))
            .add_extra_param("resource", state.resource.to_string())
            .set_pkce_challenge(challenge)
            .url();
        (url.to_string(), csrf_state, verifier)
    };
    let code_of = |answer: HashMap<String, String>, csrf_state: CsrfToken| {
        assert_eq!(&answer["state"], csrf_state.secret());
        assert_eq!(answer["iss"], *state.base_url);
        AuthorizationCode::new(answer["code"].clone())
    };
    let (url, csrf_state, verifier) = authorization_url();
    let answer = allow(&mut user, &url, &state, redirect_uri, &["billing.read"]).await;
    let code = code_of(answer, csrf_state);

    // A wrong verifier: the crate sees invalid_grant.
    let wrong = client
        .exchange_code(code.clone())
        .set_pkce_verifier(PkceCodeVerifier::new(random(32)))
        .add_extra_param("resource", state.resource.to_string())
        .request_async(&http_client)
        .await;
    match wrong {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("a wrong verifier is invalid_grant: {other:?}"),
    }

    // Its verifier: the tokens, billing.read only.
    let tokens = client
        .exchange_code(code)
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", state.resource.to_string())
        .request_async(&http_client)
        .await
        .unwrap_or_else(|e| panic!("the code exchange: {e:?}"));
    assert_eq!(
        tokens.scopes(),
        Some(&vec![Scope::new("billing.read".into())])
    );
    assert!(tokens.expires_in().unwrap() > Duration::ZERO);
    let access = tokens.access_token().secret().clone();
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    assert_eq!(api(&http, "/v1/invoices", &access).await.0, StatusCode::OK);
    assert_eq!(
        api(&http, "/v1/customers", &access).await.0,
        StatusCode::FORBIDDEN
    );

    // Refresh: widening is invalid_scope; as granted, a new pair.
    let widened = client
        .exchange_refresh_token(&refresh)
        .add_scope(Scope::new("customers.read".into()))
        .request_async(&http_client)
        .await;
    match widened {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope)
        }
        other => panic!("widening on refresh is invalid_scope: {other:?}"),
    }
    let rotated = client
        .exchange_refresh_token(&refresh)
        .request_async(&http_client)
        .await
        .unwrap_or_else(|e| panic!("the refresh: {e:?}"));
    let access = rotated.access_token().secret().clone();
    let refresh: RefreshToken = rotated
        .refresh_token()
        .expect("a new refresh token")
        .clone();
    assert_eq!(api(&http, "/v1/invoices", &access).await.0, StatusCode::OK);

    // The JSON listing: the grant's tokens are named after the client and
    // share one family.
    let login = format!("{}:{}", state.dashboard.username, state.dashboard.password);
    let request = Request::get(format!("{base}/settings/api-tokens"))
        .header(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(login)
            ),
        )
        .body(Full::default())
        .unwrap();
    let (status, listing) = http.send(request).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let grant: Vec<&Value> = listing["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == CLIENT_NAME)
        .collect();
    assert!(grant.len() >= 2, "{listing}");
    assert!(grant.iter().all(|t| t["family"] == grant[0]["family"]));
    assert!(grant[0]["family"].is_string(), "{listing}");

    // Revocation (RFC 7009) through the crate: the grant ends.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap_or_else(|e| panic!("the revocation: {e:?}"));
    assert_eq!(
        api(&http, "/v1/me", &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    let after = client
        .exchange_refresh_token(&refresh)
        .request_async(&http_client)
        .await;
    assert!(
        matches!(&after, Err(RequestTokenError::ServerResponse(e)) if *e.error() == BasicErrorResponseType::InvalidGrant),
        "{after:?}"
    );

    // A code exchanged twice: invalid_grant, and the tokens of the first
    // exchange are revoked (RFC 6749 §4.1.2).
    let (url, csrf_state, verifier) = authorization_url();
    let scopes = ["billing.read", "customers.read"];
    let answer = allow(&mut user, &url, &state, redirect_uri, &scopes).await;
    let code = code_of(answer, csrf_state);
    let verifier_again = PkceCodeVerifier::new(verifier.secret().clone());
    let first = client
        .exchange_code(code.clone())
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap_or_else(|e| panic!("the first exchange: {e:?}"));
    let access = first.access_token().secret().clone();
    assert_eq!(api(&http, "/v1/customers", &access).await.0, StatusCode::OK);
    assert_eq!(api(&http, "/v1/me", &access).await.0, StatusCode::OK);
    let second = client
        .exchange_code(code)
        .set_pkce_verifier(verifier_again)
        .request_async(&http_client)
        .await;
    match second {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("a code exchanged twice is invalid_grant: {other:?}"),
    }
    assert_eq!(
        api(&http, "/v1/me", &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    let refresh = first.refresh_token().unwrap();
    let after = client
        .exchange_refresh_token(refresh)
        .request_async(&http_client)
        .await;
    assert!(
        matches!(&after, Err(RequestTokenError::ServerResponse(e)) if *e.error() == BasicErrorResponseType::InvalidGrant),
        "{after:?}"
    );
    eprintln!("oauth2 crate client flow: {:.1?}", started.elapsed());
}
