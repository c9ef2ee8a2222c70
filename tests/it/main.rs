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

/// The `billing_api` example's router, state and demo credentials (the
/// example needs `axum` and `throttle`, as its `required-features` say).
#[cfg(all(feature = "axum", feature = "throttle"))]
#[path = "../../examples/billing_api/app.rs"]
mod app;

mod auth;
#[cfg(feature = "axum")]
mod axum_extract;
// The example's dashboard: its JSON API, its web page, in a real browser.
#[cfg(all(feature = "axum", feature = "throttle"))]
mod dashboard;
#[cfg(all(feature = "axum", feature = "throttle"))]
mod example_billing_api;
#[cfg(all(feature = "axum", feature = "throttle"))]
mod example_lifecycle;
mod header_fuzz;
#[cfg(all(feature = "axum", feature = "throttle"))]
mod hostile_http;
mod https_throttle;
mod logs;
// A real PostgreSQL server, several instances over it, their caches.
#[cfg(all(feature = "postgres", feature = "cache"))]
mod postgres;
mod redaction;
mod rejections;
mod revocation_stress;
mod scopes;
mod secret_hygiene;
