//! Where tokens live: the lifecycle engine, the storage trait under it, and
//! the backends.
//!
//! Three pieces:
//!
//! - [`TokenManager`] holds every rule of the token lifecycle (issue, list,
//!   revoke, regenerate, change scopes, the refresh exchange with rotation
//!   and reuse detection, purge) once, for every backend. The dashboard,
//!   the OAuth endpoints and the middleware all talk to it.
//! - [`TokenBackend`] is the small storage trait under it: insert, find by
//!   digest, get by id, list by owner, update, revoke by id or by family,
//!   the atomic step of a refresh exchange, and purge. Each method says what
//!   a backend must guarantee under concurrency. [`MemoryStore`] is the
//!   embedded one; `SqliteStore` (feature `sqlite`) and `PgStore` (feature
//!   `postgres`) persist.
//! - [`TokenStore`] is the lookup the middleware makes on every request:
//!   one call, keyed by the SHA-256 [`TokenDigest`] of the presented token.
//!   Every backend is one, and so is the manager; a read-only replica or a
//!   remote lookup can be one without being a backend.
//!
//! ```
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//! use tower_token_auth::store::{IssueRequest, MemoryStore, TokenManager, TokenStore};
//! use tower_token_auth::token::TokenKind;
//!
//! # tokio_test_block_on(async {
//! let tokens = TokenManager::new(MemoryStore::<PayRequestScopes>::new());
//! // No scopes at creation means the default set, `billing.read`.
//! let issued = tokens
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "user-1"))
//!     .await?;
//! assert_eq!(issued.record.scopes, PayRequestScopes::BILLING_READ);
//!
//! // The middleware's lookup: by digest, never by plaintext.
//! let found = tokens.find(&issued.secret.digest()).await?.expect("stored");
//! assert_eq!(found.id, issued.record.id);
//!
//! // Listings show a hint and a status, never the token or its digest.
//! let listed = tokens.list("user-1").await?;
//! assert_eq!(listed[0].hint, issued.secret.hint());
//! assert_eq!(listed[0].status.as_str(), "active");
//! # Ok::<(), tower_token_auth::store::TokenError>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     futures_util::FutureExt::now_or_never(f).expect("the memory store never waits")
//! # }
//! ```
//!
//! # Writing a backend
//!
//! A backend for another database implements [`TokenStore::find`] and the
//! nine methods of [`TokenBackend`]; the manager does the rest. The
//! conformance kit (feature `conformance`) runs the crate's whole behaviour
//! suite against it, the races included. Below, a complete backend over a
//! mutex-guarded vector: every method is one short critical section, which
//! is what makes each of them atomic.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::SystemTime;
//! use tower_token_auth::async_trait;
//! use tower_token_auth::scope::PayRequestScopes as S;
//! use tower_token_auth::store::{
//!     Exchange, ExchangeOutcome, FamilyId, SharedRecord, StoreError, TokenBackend, TokenId,
//!     TokenManager, TokenRecord, TokenStore,
//! };
//! use tower_token_auth::token::{TokenDigest, TokenKind};
//!
//! #[derive(Default)]
//! struct VecStore(Mutex<Vec<SharedRecord<S>>>);
//!
//! impl VecStore {
//!     fn rows(&self) -> Result<std::sync::MutexGuard<'_, Vec<SharedRecord<S>>>, StoreError> {
//!         self.0.lock().map_err(|_| StoreError::Backend("poisoned".into()))
//!     }
//! }
//!
//! /// Replaces the record at `i` with `change` applied to a copy of it.
//! fn change(rows: &mut [SharedRecord<S>], i: usize, change: impl FnOnce(&mut TokenRecord<S>)) -> SharedRecord<S> {
//!     let mut record = (*rows[i]).clone();
//!     change(&mut record);
//!     rows[i] = Arc::new(record);
//!     Arc::clone(&rows[i])
//! }
//!
//! #[async_trait]
//! impl TokenStore for VecStore {
//!     type Scopes = S;
//!     async fn find(&self, digest: &TokenDigest) -> Result<Option<SharedRecord<S>>, StoreError> {
//!         Ok(self.rows()?.iter().find(|r| r.digest == *digest).cloned())
//!     }
//! }
//!
//! #[async_trait]
//! impl TokenBackend for VecStore {
//!     async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
//!         let mut rows = self.rows()?;
//!         if records.iter().any(|n| rows.iter().any(|r| r.id == n.id || r.digest == n.digest)) {
//!             return Err(StoreError::Backend("duplicate token".into()));
//!         }
//!         rows.extend(records.iter().cloned().map(Arc::new));
//!         Ok(())
//!     }
//!     async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
//!         Ok(self.rows()?.iter().find(|r| r.id == id).cloned())
//!     }
//!     async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
//!         Ok(self.rows()?.iter().filter(|r| r.owner == owner).cloned().collect())
//!     }
//!     async fn update_scopes(&self, id: TokenId, scopes: S, now: SystemTime) -> Result<Option<SharedRecord<S>>, StoreError> {
//!         let mut rows = self.rows()?;
//!         let live = |r: &SharedRecord<S>| r.id == id && r.revoked_at.is_none() && r.spent_at.is_none() && now < r.expires_at;
//!         Ok(rows.iter().position(live).map(|i| change(&mut rows, i, |r| r.scopes = scopes)))
//!     }
//!     async fn revoke(&self, id: TokenId, at: SystemTime) -> Result<Option<SharedRecord<S>>, StoreError> {
//!         let mut rows = self.rows()?;
//!         let i = rows.iter().position(|r| r.id == id && r.revoked_at.is_none());
//!         Ok(i.map(|i| change(&mut rows, i, |r| r.revoked_at = Some(at))))
//!     }
//!     async fn revoke_family(&self, family: FamilyId, at: SystemTime) -> Result<Vec<SharedRecord<S>>, StoreError> {
//!         let mut rows = self.rows()?;
//!         let hit: Vec<usize> = (0..rows.len())
//!             .filter(|&i| rows[i].family.is_some_and(|f| f.id == family) && rows[i].revoked_at.is_none())
//!             .collect();
//!         Ok(hit.into_iter().map(|i| change(&mut rows, i, |r| r.revoked_at = Some(at))).collect())
//!     }
//!     async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
//!         let mut rows = self.rows()?;
//!         let Some(i) = rows.iter().position(|r| r.digest == x.presented) else {
//!             return Ok(ExchangeOutcome::NotLive);
//!         };
//!         if rows[i].revoked_at.is_some() {
//!             return Ok(ExchangeOutcome::NotLive);
//!         }
//!         if rows[i].spent_at.is_some() {
//!             return Ok(ExchangeOutcome::AlreadySpent);
//!         }
//!         change(&mut rows, i, |r| r.spent_at = Some(x.at));
//!         rows.push(Arc::new(x.access.clone()));
//!         rows.push(Arc::new(x.refresh.clone()));
//!         // What the new pair supersedes: old access tokens, old spent ones.
//!         let in_family = |r: &SharedRecord<S>| r.family.is_some_and(|f| f.id == x.family);
//!         let mut access: Vec<_> = rows.iter().filter(|r| in_family(r) && r.kind == TokenKind::Access)
//!             .map(|r| (r.created_at, r.id)).collect();
//!         let mut spent: Vec<_> = rows.iter().filter(|r| in_family(r) && r.spent_at.is_some())
//!             .map(|r| (r.spent_at, r.id)).collect();
//!         access.sort_unstable_by(|a, b| b.cmp(a));
//!         spent.sort_unstable_by(|a, b| b.cmp(a));
//!         let gone: Vec<TokenId> = access.iter().skip(x.retain_access).map(|a| a.1)
//!             .chain(spent.iter().skip(x.retain_spent).map(|s| s.1)).collect();
//!         rows.retain(|r| !gone.contains(&r.id));
//!         Ok(ExchangeOutcome::Exchanged)
//!     }
//!     async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
//!         let mut rows = self.rows()?;
//!         for (id, at) in uses {
//!             if let Some(i) = rows.iter().position(|r| r.id == *id && r.last_used_at < Some(*at)) {
//!                 change(&mut rows, i, |r| r.last_used_at = Some(*at));
//!             }
//!         }
//!         Ok(())
//!     }
//!     async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
//!         let mut rows = self.rows()?;
//!         let before = rows.len();
//!         rows.retain(|r| !(r.revoked_at.is_some_and(|t| t < cutoff) || r.expires_at < cutoff));
//!         Ok((before - rows.len()) as u64)
//!     }
//! }
//!
//! # tokio_test_block_on(async {
//! let tokens = TokenManager::new(VecStore::default());
//! let pair = tokens.issue_pair("agent", "user-1", None).await?;
//! let next = tokens.refresh(&pair.refresh.secret.digest(), None).await?;
//! // Replaying the spent refresh token revokes the whole grant.
//! assert!(tokens.refresh(&pair.refresh.secret.digest(), None).await.is_err());
//! assert!(tokens.find(&next.access.secret.digest()).await?.unwrap().is_revoked());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     futures_util::FutureExt::now_or_never(f).expect("this store never waits")
//! # }
//! ```
//!
//! # A lookup that is not a backend
//!
//! The middleware needs only [`TokenStore::find`]. A store that holds its
//! tokens in memory can also implement [`TokenStore::find_now`] with the
//! same answer: the middleware then skips the boxed future of `find` on
//! every request. A lookup may return revoked and expired records (the
//! middleware checks both) or leave them out (`Ok(None)`): either way the
//! client sees `invalid_token`. `Err` means the store could not answer, and
//! the middleware fails closed with 503.

mod backend;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
mod grant;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
mod manager;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod record;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use cache::{CachedStore, CachedStoreBuilder};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

pub use backend::{Exchange, ExchangeOutcome, SharedRecord, TokenBackend};
/// The string type of [`TokenRecord`]'s `name`, `owner`, `hint` and
/// `client_id` (from the `compact_str` crate, re-exported so that no direct
/// dependency is needed): up to 24 bytes (on 64-bit targets) are stored
/// inline, with no heap allocation. It dereferences to `&str` and converts from `&str` and
/// `String` with `.into()`.
pub use compact_str::CompactString;
pub use grant::{GrantError, InvalidGrantReason};
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub use introspection::IntrospectionStore;
pub use manager::{
    is_code_verifier, is_s256_challenge, s256_challenge, ClientRegistration, CodeExchange,
    CodeRequest, OAuthClient, RegistrationError, TokenManager,
};
pub use memory::MemoryStore;
pub use record::{
    Family, FamilyId, IssuePolicy, IssueRequest, IssuedToken, ParseTokenIdError, TokenId,
    TokenInfo, TokenPair, TokenRecord, TokenStatus, DEFAULT_CLIENTS_PER_SOURCE, DEFAULT_RETENTION,
    DEFAULT_REUSE_WINDOW,
};

use std::sync::Arc;

use async_trait::async_trait;

use crate::scope::ScopeSet;
use crate::token::{Clock, SystemClock, TokenDigest, TokenFormat};

/// What a lookup answers: the record of the digest, `None` when there is
/// none, or the error that kept the store from answering.
pub type FindResult<S> = Result<Option<Arc<TokenRecord<S>>>, StoreError>;

/// A boxed error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed: the infrastructure's problem, for whoever runs
/// the service. The caller's mistakes are [`TokenError`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (connection refused, pool timed out).
    /// The middleware answers 503 `temporarily_unavailable`.
    #[error("token store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store answered with an error, or cannot hold a value.
    #[error("token store failed: {0}")]
    Backend(#[source] BoxError),
    /// The store is configured wrongly (a table prefix that is not a safe
    /// SQL identifier, …).
    #[error("token store misconfigured: {0}")]
    Misconfigured(String),
    /// The operating system's random number generator failed.
    #[error("could not generate a token: the random number generator failed")]
    Randomness,
}

/// Why a token operation of the [`TokenManager`] was refused or failed,
/// by who must act: the caller ([`InvalidInput`](Self::InvalidInput)), the
/// token's state ([`Conflict`](Self::Conflict)), or the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The request was refused: an empty name, a lifetime beyond the kind's
    /// maximum, an empty scope set, or similar. The message is safe to show
    /// to the caller (a 400).
    #[error("{0}")]
    InvalidInput(String),
    /// The token is not in a state that allows this (regenerating a revoked
    /// token, changing the scopes of an access token). The message is safe
    /// to show to the caller (a 409).
    #[error("{0}")]
    Conflict(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lookup the middleware makes on every request.
///
/// `find` returns the record whose digest is `digest`, or `Ok(None)` when
/// there is none. It may return revoked and expired records, which the
/// middleware rejects, or leave them out. An `Err` makes the middleware fail
/// closed with 503; it never becomes a 401 or lets a request through.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The scope set of the tokens in this store.
    type Scopes: ScopeSet;

    /// Finds a token by the SHA-256 digest of its plaintext.
    async fn find(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<Arc<TokenRecord<Self::Scopes>>>, StoreError>;

    /// Answers [`find`](Self::find) at once, without a future, when the
    /// store can.
    ///
    /// The middleware asks this first. A store whose lookup is a read of
    /// its own memory (as [`MemoryStore`]'s is, or a cache hit of
    /// `CachedStore`) returns `Some` with exactly what `find` would return,
    /// and the request goes on to the inner service with no boxed future in
    /// between. `None`, the default, means "call `find`"; a store that would
    /// have to wait (for a database, a lock, a channel) must say `None`
    /// rather than block.
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<Self::Scopes>> {
        let _ = digest;
        None
    }

    /// The format of the tokens this store holds. The middleware checks
    /// presented tokens against it before any lookup, so garbage and typos
    /// never reach the store. The default is [`TokenFormat::default`]
    /// (`pr_…`); a [`TokenManager`] answers with its policy's format.
    /// `None` means the tokens are opaque strings of another issuer (a
    /// remote authorization server's): every well-formed `b64token` is
    /// looked up.
    fn token_format(&self) -> Option<TokenFormat> {
        Some(TokenFormat::default())
    }

    /// Whether the lookup needs the presented token itself, not only its
    /// digest: true for a store that asks a remote server about the token
    /// (RFC 7662 introspection). The middleware then calls
    /// [`find_token`](Self::find_token) instead of [`find`](Self::find);
    /// [`find_now`](Self::find_now) is still asked first, by digest.
    fn needs_token(&self) -> bool {
        false
    }

    /// Finds a token given the token itself and its digest. The default
    /// looks it up by digest; a store whose
    /// [`needs_token`](Self::needs_token) is true overrides it.
    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<Arc<TokenRecord<Self::Scopes>>>, StoreError> {
        let _ = token;
        self.find(digest).await
    }

    /// The clock expiry is judged by. The default is the system clock; a
    /// [`TokenManager`] answers with its policy's clock.
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

#[async_trait]
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    type Scopes = T::Scopes;

    async fn find(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<Arc<TokenRecord<Self::Scopes>>>, StoreError> {
        (**self).find(digest).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<Self::Scopes>> {
        (**self).find_now(digest)
    }

    fn token_format(&self) -> Option<TokenFormat> {
        (**self).token_format()
    }

    fn needs_token(&self) -> bool {
        (**self).needs_token()
    }

    async fn find_token(
        &self,
        token: &str,
        digest: &TokenDigest,
    ) -> Result<Option<Arc<TokenRecord<Self::Scopes>>>, StoreError> {
        (**self).find_token(token, digest).await
    }

    fn clock(&self) -> Arc<dyn Clock> {
        (**self).clock()
    }
}
