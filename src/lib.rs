//! Tower middleware that authenticates HTTP requests by bearer token and
//! enforces OAuth scopes per route.
//!
//! - [`TokenAuthLayer`] reads `Authorization: Bearer <token>` (RFC 6750),
//!   rejects garbage offline by the token's checksum, looks the token up by
//!   its SHA-256 digest in a pluggable [`TokenStore`], and puts the
//!   [`Principal`] into the request.
//! - [`RequireScopeLayer`] enforces scopes per route: 403
//!   `insufficient_scope` naming what is missing.
//! - [`RequireHttpsLayer`](auth::RequireHttpsLayer) and
//!   [`ThrottleLayer`](auth::ThrottleLayer) go in front of any route that
//!   takes credentials: 403 for what is not known to arrive over TLS, 429
//!   for a client that keeps failing, with one [`Peers`](auth::Peers)
//!   configuration for both.
//! - Rejections follow RFC 6750 §3 exactly; a store that is down answers 503
//!   and never lets a request through.
//!
//! It works under any `http`-based stack (axum, hyper) and with any body
//! type whose data is [`bytes::Bytes`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_auth::{MemoryStore, TokenAuthLayer};
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//! use tower_token_auth::store::{IssueRequest, TokenManager};
//! use tower_token_auth::token::TokenKind;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = TokenManager::new(MemoryStore::new());
//! let agent = tokens
//!     .issue(
//!         IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "user-1")
//!             .scopes(PayRequestScopes::parse_scope("billing.agent")?),
//!     )
//!     .await?;
//!
//! let auth = TokenAuthLayer::new(tokens);
//! let create_invoice = ServiceBuilder::new()
//!     .layer(auth.clone())
//!     .layer(auth.require(PayRequestScopes::BILLING_WRITE)) // implied by billing.agent
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("created"))))
//!     }));
//!
//! let request = Request::post("/v1/invoices")
//!     .header("authorization", format!("Bearer {}", agent.secret.expose_secret()))
//!     .body(Full::default())?;
//! assert_eq!(create_invoice.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! let forged = Request::post("/v1/invoices")
//!     .header("authorization", "Bearer pr_pat_notarealtokennotarealtoken000000")
//!     .body(Full::default())?;
//! assert_eq!(create_invoice.oneshot(forged).await?.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Principal`] and `Option<Principal>` extractors (`extract` module); axum's `ConnectInfo` as the peer address |
//! | `throttle` | yes | `auth::ThrottleLayer`: brute-force throttling of failed authentications on any route (governor) |
//! | `sqlite` | no | `store::SqliteStore`: tokens in an SQLite file (sqlx 0.8, tokio), for a service on one machine; migrations shipped with the crate |
//! | `postgres` | no | `store::PgStore`: tokens in PostgreSQL (sqlx 0.8, tokio), migrations shipped with the crate |
//! | `postgres-tls-rustls` | no | `postgres` with TLS to the database through rustls |
//! | `cache` | no | `store::CachedStore` in front of any store; with `postgres`, a revocation listener that evicts across instances |
//!
//! # Modules
//!
//! - [`scope`]: scope sets, requirements and [`RequireScopeLayer`];
//! - [`token`]: token kinds, format, secrets, digests and clocks;
//! - [`store`]: the [`TokenStore`] and [`TokenManager`](store::TokenManager)
//!   traits and [`MemoryStore`];
//! - [`auth`]: [`TokenAuthLayer`], the header grammar, and the HTTPS and
//!   throttling layers with their peer and proxy configuration;
//! - [`error`]: [`AuthError`] and the RFC 6750 responses;
//! - [`oauth`]: the refresh grant, revocation and resource metadata
//!   endpoints;
//! - [`audit`]: audit events and observers; [`usage`]: coalesced last-used
//!   tracking.

#![cfg_attr(docsrs, feature(doc_cfg))]
// Library-only lints: benches, tests and examples share helper modules with
// `pub` items that are crate-private by construction.
#![warn(unreachable_pub, missing_debug_implementations)]

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
pub mod store;
pub mod token;
pub mod usage;

pub use async_trait::async_trait;
pub use bitflags;

pub use auth::{TokenAuth, TokenAuthLayer};
pub use error::{AuthError, Challenge};
pub use principal::Principal;
pub use scope::{PayRequestScopes, RequireScope, RequireScopeLayer, Requirement, ScopeSet};
pub use store::{MemoryStore, TokenStore};
