//! The tests of the `billing_api` example, in one test binary: one module
//! per behaviour, the scaffolding they share in [`support`]. They drive the
//! package's library (`billing_api::app`) in memory and on sockets, and the
//! binary as users start it.
//!
//! Some need more than Rust, and never skip without it: they fail and say
//! how to get it. The browser tests need Chromium and chromedriver
//! (`apt-get install chromium chromium-driver`), the MCP client test
//! Node.js and the MCP TypeScript SDK (`npm ci` in `tests/mcp`), the
//! PostgreSQL tests a PostgreSQL server (`DATABASE_URL`, or the server
//! binaries for a throwaway cluster). Run them with every feature of the
//! package, so that no test is compiled away:
//!
//! ```text
//! cargo test -p billing_api --all-features
//! cargo test -p billing_api --all-features --test it hostile_http -- --nocapture
//! ```

mod support;

// Headless Chromium through chromedriver, the example on a socket.
mod browser;

// The dashboard: its JSON API, its web page, in a real browser.
mod dashboard;
// The example over each of its backends (SQLite, PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod example_backends;
mod example_billing_api;
// The example binary as users start it, configured by its environment.
#[cfg(all(feature = "sqlite", feature = "postgres", feature = "introspection"))]
mod example_env;
mod example_lifecycle;
mod hostile_http;
// The official MCP TypeScript SDK through OAuth, in Node.js.
mod mcp_client;
// The OAuth authorization code flow, in a browser and with the oauth2 crate.
mod oauth_flow;
// The serving limits: header time, idle time, connections, bodies.
mod serving;
// A resource server that validates tokens by introspection.
#[cfg(feature = "introspection")]
mod resource_server;

/// A build without every feature of the package compiles tests away (the
/// SQLite and PostgreSQL backends, introspection) and would pass without
/// running them. Every feature a module or test here is gated on is
/// listed.
#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "introspection")))]
#[test]
fn the_suite_runs_with_every_feature() {
    panic!(
        "these tests were built without some of billing_api's features, so the tests of those \
         features (the database backends, introspection) were compiled away: run them with \
         `cargo test -p billing_api --all-features` (or `cargo test --workspace --all-features`)"
    );
}
