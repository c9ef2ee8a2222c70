//! The behaviour tests of tower-token-auth, in one test binary: one module
//! per behaviour, the scaffolding they share in [`support`], and the
//! `billing_api` example compiled once as [`app`].
//!
//! Run them as the README says, with every feature, so that no test is
//! compiled away (the PostgreSQL tests start a throwaway server, see
//! `support/pg.rs`):
//!
//! ```text
//! cargo test --all-features
//! cargo test --all-features --test it hostile_http -- --nocapture
//! ```

mod support;

/// The `billing_api` example's router, state and demo credentials, with
/// the example's required features.
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
#[path = "../../examples/billing_api/app.rs"]
mod app;

mod auth;
#[cfg(feature = "axum")]
mod axum_extract;
#[cfg(feature = "conformance")]
mod conformance;
// The example's dashboard: its JSON API, its web page, in a real browser.
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod dashboard;
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod example_backends;
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod example_billing_api;
// The example binary as users start it, configured by its environment.
#[cfg(all(
    feature = "axum",
    feature = "throttle",
    feature = "registration",
    feature = "postgres",
    feature = "cache"
))]
mod example_env;
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod example_lifecycle;
mod header_fuzz;
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod hostile_http;
mod https_throttle;
mod logs;
// The official MCP TypeScript SDK through OAuth, in Node.js.
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod mcp_client;
// The authorization code grant on the library's endpoints, paragraph by paragraph.
#[cfg(feature = "registration")]
mod oauth_authorize;
// The OAuth authorization code flow, in a browser and with the oauth2 crate.
#[cfg(all(feature = "axum", feature = "throttle", feature = "registration"))]
mod oauth_flow;
// A real PostgreSQL server, several instances over it, their caches.
#[cfg(all(feature = "postgres", feature = "cache"))]
mod postgres;
mod redaction;
mod rejections;
#[cfg(all(
    feature = "axum",
    feature = "throttle",
    feature = "registration",
    feature = "introspection"
))]
mod resource_server;
mod revocation_stress;
mod scopes;
mod secret_hygiene;

/// A build without every feature compiles tests away (PostgreSQL, SQLite,
/// the cache, the throttle, axum, client registration) and would pass
/// without running them. Every feature a module or test here is gated on
/// is listed.
#[cfg(not(all(
    feature = "postgres",
    feature = "sqlite",
    feature = "cache",
    feature = "throttle",
    feature = "axum",
    feature = "conformance",
    feature = "introspection",
    feature = "registration"
)))]
#[test]
fn the_suite_runs_with_every_feature() {
    panic!(
        "these tests were built without some of the crate's features, so the tests of those \
         features (the database backends among them) were compiled away: run the suite as the \
         README says, with `cargo test --all-features`"
    );
}
