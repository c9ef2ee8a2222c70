//! The browser tests' scaffolding: chromedriver and a headless Chromium
//! session ([`start_chromedriver`], [`browser`]), the example served on a
//! real socket ([`serve`]), a small HTTP client for the API calls next to
//! the browser ([`Http`]), and the example's pages driven by the words a
//! user sees ([`Page`]).
//!
//! The browser tests need `chromium` and `chromedriver` on the `PATH`
//! (Debian: `apt-get install chromium chromium-driver`; `CHROMEDRIVER` and
//! `CHROME` name other binaries). They never skip: without them they fail
//! and say how to get them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower_token_auth::MemoryStore;

use billing_api as app;

/// chromedriver, started on a free port, stopped when dropped.
pub(crate) struct Chromedriver {
    child: std::process::Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const GET_A_BROWSER: &str = "the browser tests need Chromium and chromedriver: \
     `apt-get install chromium chromium-driver` (Debian), or set CHROMEDRIVER and CHROME \
     to their paths";

/// A program on the `PATH` (or at the path `env` names).
fn program(env: &str, names: &[&str]) -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

pub(crate) async fn start_chromedriver() -> Chromedriver {
    let binary = program("CHROMEDRIVER", &["chromedriver"])
        .unwrap_or_else(|| panic!("no chromedriver found: {GET_A_BROWSER}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = std::process::Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {GET_A_BROWSER}", binary.display()));
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

/// A headless Chromium session. `--no-sandbox`: CI runs as root.
pub(crate) async fn browser(driver: &Chromedriver) -> fantoccini::Client {
    let chrome = program("CHROME", &["chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("no Chromium found: {GET_A_BROWSER}"));
    let mut options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1400",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ],
    });
    options["binary"] = json!(chrome.to_string_lossy());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    fantoccini::ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start a browser session: {e}; {GET_A_BROWSER}"))
}

/// The example on a socket, as `main` serves it.
pub(crate) async fn serve() -> (SocketAddr, app::AppState) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base_url = format!("http://{addr}");
    let state = app::AppState::with_store(
        app::tokens_for(Arc::new(MemoryStore::new()), &base_url),
        app::demo::DashboardLogin::generate().unwrap(),
        &base_url,
    );
    app::demo::issue(&state).await.unwrap();
    let service = app::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    (addr, state)
}

/// A plain HTTP client for the API calls of the journey.
pub(crate) struct Http {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    pub(crate) base: String,
}

impl Http {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
            base: format!("http://{addr}"),
        }
    }

    pub(crate) async fn send(
        &self,
        request: Request<http_body_util::Full<bytes::Bytes>>,
    ) -> (StatusCode, Value) {
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `GET /v1/invoices` with `token`.
    pub(crate) async fn list_invoices(&self, token: &str) -> StatusCode {
        let request = Request::get(format!("{}/v1/invoices", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Default::default())
            .unwrap();
        self.send(request).await.0
    }

    /// `POST /v1/invoices` with `token`.
    pub(crate) async fn create_invoice(&self, token: &str) -> (StatusCode, Value) {
        let request = Request::post(format!("{}/v1/invoices", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"customer":"cus_000001","amount":4900}"#.into())
            .unwrap();
        self.send(request).await
    }

    /// A form posted with the browser's cookies.
    pub(crate) async fn post_form(&self, path: &str, cookie: &str, form: &str) -> StatusCode {
        let request = Request::post(format!("{}{path}", self.base))
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned().into())
            .unwrap();
        self.send(request).await.0
    }
}

/// The browser on the example's pages, driven by labels, button texts and
/// ids.
pub(crate) struct Page<'a> {
    pub(crate) browser: &'a fantoccini::Client,
    pub(crate) base: &'a str,
}

impl Page<'_> {
    pub(crate) async fn open(&self, path: &str) {
        self.browser
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The path and query of the current page.
    pub(crate) async fn path(&self) -> String {
        let url = self.browser.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub(crate) async fn text(&self) -> String {
        self.browser
            .find(fantoccini::Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn source(&self) -> String {
        self.browser.source().await.unwrap()
    }

    /// Types `value` into the field labelled `label`.
    pub(crate) async fn fill(&self, label: &str, value: &str) {
        let label_element = self
            .browser
            .find(fantoccini::Locator::XPath(&format!(
                "//label[normalize-space(.)='{label}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("a field labelled {label}: {e}"));
        let id = label_element.attr("for").await.unwrap().unwrap();
        let field = self
            .browser
            .find(fantoccini::Locator::Id(&id))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks the button `text` (the only one of that text), which
    /// submits its form, and waits for the next page.
    pub(crate) async fn click(&self, text: &str) {
        let button = self
            .browser
            .find(fantoccini::Locator::XPath(&format!(
                "//button[normalize-space(.)='{text}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("a button {text}: {e}"));
        self.submit(button).await;
    }

    /// Clicks `button`, which submits its form, and waits until the page
    /// it was on is gone and the next one has loaded.
    pub(crate) async fn submit(&self, button: fantoccini::elements::Element) {
        let old = self
            .browser
            .find(fantoccini::Locator::Css("html"))
            .await
            .unwrap();
        button.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let gone = matches!(old.tag_name().await, Err(e) if e.is_stale_element_reference());
            if gone {
                let state = self
                    .browser
                    .execute("return document.readyState", vec![])
                    .await
                    .unwrap();
                if state == "complete" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the click led to no new page");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Checks (or unchecks) the scope checkbox labelled with `scope` in the
    /// form whose button is `button`.
    pub(crate) async fn check_scope(&self, button: &str, scope: &str, checked: bool) {
        let checkbox = self
            .browser
            .find(fantoccini::Locator::XPath(&format!(
                "//form[.//button[normalize-space(.)='{button}']]\
                 //label[code[normalize-space(.)='{scope}']]/input[@type='checkbox']"
            )))
            .await
            .unwrap_or_else(|e| panic!("a checkbox {scope}: {e}"));
        assert_eq!(
            checkbox.attr("value").await.unwrap().as_deref(),
            Some(scope)
        );
        if checkbox.is_selected().await.unwrap() != checked {
            checkbox.click().await.unwrap();
        }
        assert_eq!(checkbox.is_selected().await.unwrap(), checked);
    }

    /// The row of the token named `name`.
    pub(crate) async fn row(&self, name: &str) -> fantoccini::elements::Element {
        self.browser
            .find(fantoccini::Locator::XPath(&format!(
                "//table//tr[.//*[normalize-space(.)='{name}']]"
            )))
            .await
            .unwrap_or_else(|e| panic!("a row for {name}: {e}"))
    }

    /// The button `text` of the row of the token named `name`.
    pub(crate) async fn row_button(&self, name: &str, text: &str) -> fantoccini::elements::Element {
        self.row(name)
            .await
            .find(fantoccini::Locator::XPath(&format!(
                ".//button[normalize-space(.)='{text}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("a button {text} on {name}: {e}"))
    }

    /// The text of `#new-token`, if the page shows one.
    pub(crate) async fn new_token(&self) -> Option<String> {
        let found = self
            .browser
            .find_all(fantoccini::Locator::Id("new-token"))
            .await
            .unwrap();
        match found.first() {
            Some(element) => Some(element.text().await.unwrap()),
            None => None,
        }
    }

    pub(crate) async fn has_session_cookie(&self) -> bool {
        self.browser
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name() == "dashboard_session")
    }

    /// The browser's cookies for this site, as a `Cookie` header.
    pub(crate) async fn cookie_header(&self) -> String {
        self.browser
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Grants the page's origin the browser permission `name` (e.g.
    /// `clipboard-read`), through WebDriver's Set Permission.
    pub(crate) async fn grant_permission(&self, name: &str) {
        self.browser
            .issue_cmd(SetPermission {
                name: name.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("cannot grant {name}: {e}"));
    }

    /// Saves a screenshot of the whole page as `name` in the tests'
    /// directory under `target/` (never into the source tree), and returns
    /// its path: the window is made as tall as the page first.
    pub(crate) async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let size = self
            .browser
            .execute(
                "return [document.documentElement.scrollHeight, \
                         window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .unwrap();
        let height = |i: usize| size[i].as_u64().and_then(|h| u32::try_from(h).ok());
        if let (Some(page), Some(frame)) = (height(0), height(1)) {
            self.browser
                .set_window_size(1280, page.min(3000) + frame)
                .await
                .unwrap();
        }
        let png = self.browser.screenshot().await.unwrap();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("billing_api")
            .join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// WebDriver's Set Permission (Permissions spec, §9), which fantoccini has
/// no method for: `state` `granted` for the current page's origin.
#[derive(Debug)]
struct SetPermission {
    name: String,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SetPermission {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/permissions",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({ "descriptor": { "name": self.name }, "state": "granted" });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}
