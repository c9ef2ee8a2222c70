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
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod error;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod json;
pub mod oauth;
mod principal;
pub mod scope;
mod shared;
pub mod store;
pub mod token;
pub mod usage;

pub use async_trait::async_trait;
pub use bitflags;

pub use auth::{TokenAuth, TokenAuthLayer};
pub use error::{AuthError, Rejections};
pub use principal::Principal;
pub use scope::{PayRequestScopes, RequireScope, RequireScopeLayer, Requirement, ScopeSet};
pub use store::{IssueRequest, MemoryStore, TokenManager, TokenStore};
pub use token::TokenKind;
