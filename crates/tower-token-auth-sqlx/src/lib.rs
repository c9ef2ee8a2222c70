//! SQL backends for [`tower_token_auth`]: tokens in SQLite ([`SqliteStore`],
//! feature `sqlite`) or PostgreSQL ([`PgStore`], feature `postgres`), each a
//! [`TokenBackend`](tower_token_auth::store::TokenBackend) under a
//! [`TokenManager`](tower_token_auth::manager::TokenManager).
//!
//! The migrations ship with the crate and run on open: a database of an
//! earlier schema is upgraded. With PostgreSQL, revocations and scope
//! changes on one instance reach every instance's
//! [`CachedStore`](tower_token_auth::store::CachedStore) through
//! `LISTEN/NOTIFY` ([`postgres::RevocationListener`]).
//!
//! | feature | what |
//! |---|---|
//! | `sqlite` (default) | [`SqliteStore`]: one file, one machine |
//! | `postgres` (default) | [`PgStore`]: many machines, and the revocation listener |
//! | `postgres-tls-rustls` | `postgres` over TLS (rustls, webpki roots) |
//!
//! `sqlx` is re-exported, so the pool types need no direct dependency.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(unreachable_pub, missing_debug_implementations)]

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

pub use sqlx;

/// The package README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "sqlite", feature = "postgres"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
