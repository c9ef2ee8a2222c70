// The crate's documentation is its README: one text, compiled as doctests
// (a `rust` block runs, `rust,no_run` builds, `rust,ignore` is a fragment).
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Library-only lints: benches, tests and examples share helper modules with
// `pub` items that are crate-private by construction.
#![warn(unreachable_pub, missing_debug_implementations)]
// Builders: a setter whose result is dropped configures nothing.
#![warn(clippy::return_self_not_must_use)]

pub mod audit;
pub mod auth;
pub mod body;
pub mod error;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod json;
pub mod manager;
mod middleware;
pub mod oauth;
pub mod peer;
mod principal;
pub mod require_https;
pub mod require_scope;
pub mod scope;
mod shared;
pub mod store;
#[cfg(feature = "throttle")]
#[cfg_attr(docsrs, doc(cfg(feature = "throttle")))]
pub mod throttle;
pub mod token;

pub use bitflags;

pub use auth::{TokenAuth, TokenAuthLayer};
pub use error::{AuthError, Rejections};
pub use manager::{IssueRequest, TokenManager};
pub use principal::Principal;
pub use require_scope::{RequireScope, RequireScopeLayer};
pub use scope::{PayRequestScopes, Requirement, ScopeSet};
pub use store::{MemoryStore, TokenStore};
pub use token::TokenKind;
