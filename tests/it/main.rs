//! The behaviour tests of tower-token-auth, in one test binary: one module
//! per behaviour, the scaffolding they share in [`support`].
//!
//! They need nothing but Rust: the tests of the SQL backends, of the
//! dashboard and of the example service live with those crates. Modules of
//! optional features are compiled with them: CI runs the suite with every
//! feature (`cargo test --workspace --all-features`), and `cargo test` with
//! the default features runs the rest.
//!
//! ```text
//! cargo test -p tower-token-auth --all-features
//! cargo test -p tower-token-auth --all-features --test it rejections -- --nocapture
//! ```

mod support;

mod auth;
#[cfg(feature = "axum")]
mod axum_extract;
// The conformance kit on the memory store and the cache, through its macro.
#[cfg(feature = "cache")]
mod conformance;
mod header_fuzz;
// Every JSON answer of the library says nosniff.
mod https_throttle;
#[cfg(feature = "registration")]
mod json_headers;
mod logs;
// The authorization code grant on the library's endpoints, paragraph by paragraph.
#[cfg(feature = "registration")]
mod oauth_authorize;
mod redaction;
mod rejections;
mod scopes;
mod secret_hygiene;
