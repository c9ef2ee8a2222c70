//! The `/v1` API: every route needs a valid API token, most also a scope.
//!
//! | route | needs |
//! |---|---|
//! | `GET /v1/me` | any valid API token |
//! | `GET /v1/invoices`, `GET /v1/subscriptions`, `GET /v1/transactions` | `billing.read` |
//! | `POST /v1/invoices`, `POST /v1/subscriptions` | `billing.write` |
//! | `GET /v1/customers` / `POST /v1/customers` | `customers.read` / `customers.write` |
//! | `GET /v1/products` / `POST /v1/products` | `products.read` / `products.write` |
//!
//! `billing.agent` satisfies both billing rows; no write scope satisfies a
//! read route.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_token_auth::{PayRequestScopes as S, Principal, ScopeSet};

use super::{error_response, AppState, Auth};

/// The `/v1` routes behind `auth`.
///
/// One `route` call per method: a `MethodRouter::route_layer` wraps every
/// method added to it so far, so `get(list).route_layer(read).post(create)
/// .route_layer(write)` would make `GET` need both scopes. axum merges
/// repeated `route` calls for the same path.
pub(super) fn router(auth: &Auth) -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me))
        // Billing.
        .route(
            "/v1/invoices",
            get(list_invoices).route_layer(auth.require(S::BILLING_READ)),
        )
        .route(
            "/v1/invoices",
            post(create_invoice).route_layer(auth.require(S::BILLING_WRITE)),
        )
        .route(
            "/v1/subscriptions",
            get(list_subscriptions).route_layer(auth.require(S::BILLING_READ)),
        )
        .route(
            "/v1/subscriptions",
            post(create_subscription).route_layer(auth.require(S::BILLING_WRITE)),
        )
        .route(
            "/v1/transactions",
            get(list_transactions).route_layer(auth.require(S::BILLING_READ)),
        )
        // Customers.
        .route(
            "/v1/customers",
            get(list_customers).route_layer(auth.require(S::CUSTOMERS_READ)),
        )
        .route(
            "/v1/customers",
            post(create_customer).route_layer(auth.require(S::CUSTOMERS_WRITE)),
        )
        // Products.
        .route(
            "/v1/products",
            get(list_products).route_layer(auth.require(S::PRODUCTS_READ)),
        )
        .route(
            "/v1/products",
            post(create_product).route_layer(auth.require(S::PRODUCTS_WRITE)),
        )
        // Authentication for every route above, outside the scope checks:
        // a bad token is a 401 whatever the route requires.
        .route_layer(auth.clone())
}

// --- who am I ---

/// `GET /v1/me`: the token the request was made with.
async fn me(principal: Principal<tower_token_auth::PayRequestScopes>) -> Json<Value> {
    Json(json!({
        "token_id": principal.token_id().to_string(),
        "name": principal.name(),
        "kind": principal.kind().as_str(),
        "scopes": principal.scopes().scope_names().collect::<Vec<_>>(),
        "expires_at": rfc3339(principal.expires_at()),
    }))
}

// --- lists: fixed demo data ---

async fn list_invoices() -> Json<Value> {
    list(json!([
        { "id": "inv_000001", "customer": "cus_000001", "amount": 4900, "currency": "EUR", "status": "paid" },
        { "id": "inv_000002", "customer": "cus_000002", "amount": 12900, "currency": "EUR", "status": "open" },
    ]))
}

async fn list_subscriptions() -> Json<Value> {
    list(json!([
        { "id": "sub_000001", "customer": "cus_000001", "product": "prod_000001", "interval": "month", "status": "active" },
    ]))
}

async fn list_transactions() -> Json<Value> {
    list(json!([
        { "id": "txn_000001", "invoice": "inv_000001", "amount": 4900, "currency": "EUR", "type": "payment" },
    ]))
}

async fn list_customers() -> Json<Value> {
    list(json!([
        { "id": "cus_000001", "name": "Ada Lovelace", "email": "ada@example.com" },
        { "id": "cus_000002", "name": "Grace Hopper", "email": "grace@example.com" },
    ]))
}

async fn list_products() -> Json<Value> {
    list(json!([
        { "id": "prod_000001", "name": "Starter plan", "price": 4900, "currency": "EUR" },
        { "id": "prod_000002", "name": "Team plan", "price": 12900, "currency": "EUR" },
    ]))
}

fn list(data: Value) -> Json<Value> {
    Json(json!({ "data": data }))
}

// --- creation: echo the object with an id and a date ---

async fn create_invoice(body: Result<Json<Value>, JsonRejection>) -> Response {
    create("inv", body)
}

async fn create_subscription(body: Result<Json<Value>, JsonRejection>) -> Response {
    create("sub", body)
}

async fn create_customer(body: Result<Json<Value>, JsonRejection>) -> Response {
    create("cus", body)
}

async fn create_product(body: Result<Json<Value>, JsonRejection>) -> Response {
    create("prod", body)
}

/// Ids of created records, unique within the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(100_001);

/// 201 with the posted object plus `id` and `created_at`; a JSON 4xx for a
/// body that is not a JSON object (never a 500).
fn create(id_prefix: &str, body: Result<Json<Value>, JsonRejection>) -> Response {
    let mut record = match body {
        Ok(Json(Value::Object(record))) => record,
        Ok(Json(_)) => {
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "The request body must be a JSON object.",
            )
        }
        // Missing content type (415), bad syntax (400), too large (413): the
        // rejection's text names the problem without echoing the body.
        Err(rejection) => {
            return error_response(
                rejection.status(),
                "invalid_request",
                &rejection.body_text(),
            )
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    record.insert("id".into(), format!("{id_prefix}_{id:06}").into());
    record.insert("created_at".into(), rfc3339(SystemTime::now()).into());
    (StatusCode::CREATED, Json(Value::Object(record))).into_response()
}

pub(super) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
