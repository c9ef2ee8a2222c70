//! The example's contract on each backend `DATABASE_URL` can pick: SQLite
//! (a file, and tokens survive a restart) and PostgreSQL. The in-memory
//! store is the subject of `example_billing_api`; here the same checks run
//! over the persistent backends, plus the token lifecycle through the
//! example's own endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::example_billing_api::{
    dead_and_foreign_tokens_are_invalid_tokens, deleting_a_rotated_refresh_token_ends_the_grant,
    every_route_checks_its_scope, Demo,
};
use billing_api as app;

const BASE_URL: &str = "http://127.0.0.1:3000";

/// The example's state over `backend`, as `main` builds it.
fn state(backend: app::Backend) -> app::AppState {
    app::AppState::with_store(
        app::tokens_for(backend, BASE_URL),
        app::demo::DashboardLogin::generate().unwrap(),
        BASE_URL,
    )
}

/// A request to the example's router; the answer's status and JSON body.
async fn call(
    state: &app::AppState,
    method: Method,
    path: &str,
    authorization: Option<String>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = match body {
        Some((content_type, body)) => request
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn dashboard_login(state: &app::AppState) -> String {
    let pair = format!("{}:{}", state.dashboard.username, state.dashboard.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// The demo file's tokens, the scope of every route, and a token's whole
/// life through the example's endpoints: create, change scopes, refresh,
/// revoke, list with statuses.
async fn contract(backend: app::Backend) {
    // Each part gets a state of its own over the one backend: in process
    // every request comes from the same (unknown) client, and the failures
    // of one part would spend the throttle's budget of the next.
    let demo = Demo::with_state(state(Arc::clone(&backend))).await;
    every_route_checks_its_scope(&demo).await;
    dead_and_foreign_tokens_are_invalid_tokens(&demo).await;
    // A demo of its own: this part spends the demo's refresh token.
    let grant = Demo::with_state(state(Arc::clone(&backend))).await;
    deleting_a_rotated_refresh_token_ends_the_grant(&grant).await;
    let state = state(backend);

    let login = Some(dashboard_login(&state));
    let (status, created) = call(
        &state,
        Method::POST,
        "/settings/api-tokens",
        login.clone(),
        Some((
            "application/json",
            json!({"name": "MCP Billing Agent", "scopes": "billing.agent"}).to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &state,
        Method::POST,
        "/v1/invoices",
        bearer(&token),
        Some(("application/json", "{}".into())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, listed) = call(
        &state,
        Method::GET,
        "/settings/api-tokens",
        login.clone(),
        None,
    )
    .await;
    let item = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "MCP Billing Agent")
        .unwrap()
        .clone();
    assert_eq!(item["status"], "active");
    let id = item["id"].as_str().unwrap();
    let (status, patched) = call(
        &state,
        Method::PATCH,
        &format!("/settings/api-tokens/{id}"),
        login.clone(),
        Some((
            "application/json",
            json!({"scopes": "billing.read"}).to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, _) = call(
        &state,
        Method::POST,
        "/v1/invoices",
        bearer(&token),
        Some(("application/json", "{}".into())),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the scope change holds");

    // The refresh grant rotates; the spent token replayed revokes the grant.
    let refresh = demo.token("refresh");
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let form_type = "application/x-www-form-urlencoded";
    let (status, pair) = call(
        &state,
        Method::POST,
        "/oauth/token",
        None,
        Some((form_type, form.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&state, Method::GET, "/v1/invoices", bearer(&access), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, replay) = call(
        &state,
        Method::POST,
        "/oauth/token",
        None,
        Some((form_type, form)),
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        call(&state, Method::GET, "/v1/invoices", bearer(&access), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "the replay revoked the grant"
    );

    let (status, _) = call(
        &state,
        Method::DELETE,
        &format!("/settings/api-tokens/{id}"),
        login.clone(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        call(&state, Method::GET, "/v1/me", bearer(&token), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (_, listed) = call(&state, Method::GET, "/settings/api-tokens", login, None).await;
    let statuses: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    for status in ["active", "expired", "revoked"] {
        assert!(statuses.contains(&status), "{status} in {statuses:?}");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::sync::Arc;

    use axum::http::{Method, StatusCode};
    use tower_token_auth_sqlx::SqliteStore;

    use super::{bearer, call, contract, state};
    use billing_api as app;

    /// A database file in a directory of its own.
    fn database_url() -> (std::path::PathBuf, String) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tta-example-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("tokens.db").display());
        (dir, url)
    }

    #[tokio::test]
    async fn the_example_keeps_its_contract_on_sqlite() {
        let (dir, url) = database_url();
        contract(Arc::new(SqliteStore::connect(&url).await.unwrap())).await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn tokens_survive_a_restart_on_sqlite() {
        let (dir, url) = database_url();
        let first = state(Arc::new(SqliteStore::connect(&url).await.unwrap()));
        let issued = app::demo::issue(&first).await.unwrap();
        let token = serde_json::to_value(&issued).unwrap()[1]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            call(&first, Method::GET, "/v1/invoices", bearer(&token), None)
                .await
                .0,
            StatusCode::OK
        );
        drop(first);
        // A new process: the file is reopened, the token still works.
        let second = state(Arc::new(SqliteStore::connect(&url).await.unwrap()));
        assert_eq!(
            call(&second, Method::GET, "/v1/invoices", bearer(&token), None)
                .await
                .0,
            StatusCode::OK
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_keeps_its_contract_on_postgres() {
    use tower_token_auth_sqlx::PgStore;

    let db = crate::support::pg::database().await;
    let store = PgStore::new(db.pool().await);
    store.migrate().await.unwrap();
    contract(Arc::new(store)).await;
    db.finish().await;
}
