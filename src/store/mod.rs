//! Where tokens live: the lookup the middleware makes, the storage trait a
//! backend implements, and the in-process stores.
//!
//! - [`TokenStore`] is the lookup the middleware makes on every request:
//!   one call, keyed by the SHA-256 [`TokenDigest`] of the presented token,
//!   and its no-future fast path. Every backend is one, and so is the
//!   [`TokenManager`](crate::manager::TokenManager); a read-only replica or
//!   a remote lookup ([`IntrospectionStore`], feature `introspection`) can
//!   be one without being a backend.
//! - [`TokenBackend`] is the small storage trait under the manager: insert,
//!   get by id, list by owner, update, revoke by id or by family, the
//!   atomic step of a refresh exchange, and purge. Each method says what a
//!   backend must guarantee under concurrency. [`MemoryStore`] is the
//!   embedded one; the `tower-token-auth-sqlx` crate has SQLite and
//!   PostgreSQL.
//! - [`CachedStore`] (feature `cache`) wraps any lookup, bounded by size and
//!   TTL.
//!
//! Every rule of the token lifecycle is in the
//! [`TokenManager`](crate::manager::TokenManager), none in a backend.
//!
//! ```
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//! use tower_token_auth::manager::{IssueRequest, TokenManager};
//! use tower_token_auth::store::{MemoryStore, TokenStore};
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
//! let found = tokens.find(issued.secret.digest().into()).await?.expect("stored");
//! assert_eq!(found.id, issued.record.id);
//!
//! // Listings show a hint and a status, never the token or its digest.
//! let listed = tokens.list("user-1").await?;
//! assert_eq!(listed[0].hint, issued.secret.hint());
//! assert_eq!(listed[0].status.as_str(), "active");
//! # Ok::<(), tower_token_auth::manager::TokenError>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     futures_util::FutureExt::now_or_never(f).expect("the memory store never waits")
//! # }
//! ```
//!
//! # Writing a backend
//!
//! A backend for another database implements the two methods of
//! [`TokenStore`] and the nine of [`TokenBackend`]; the manager does the
//! rest. The conformance kit (the `tower-token-auth-conformance` crate)
//! runs the crate's whole behaviour suite against it, the races included,
//! forced inside the backend. Below, a complete backend over a
//! mutex-guarded vector: every method is one short critical section, which
//! is what makes each of them atomic.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::SystemTime;
//! use async_trait::async_trait;
//! use tower_token_auth::error::StoreError;
//! use tower_token_auth::manager::TokenManager;
//! use tower_token_auth::scope::PayRequestScopes as S;
//! use tower_token_auth::store::{
//!     Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
//! };
//! use tower_token_auth::token::{FamilyId, Lookup, TokenDigest, TokenId, TokenRecord};
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
//!     async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
//!         Ok(self.rows()?.iter().find(|r| r.digest == key.digest()).cloned())
//!     }
//!     // Behind a lock another call may hold: never answer at once.
//!     fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<S>> {
//!         None
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
//!         Ok(self.rows()?.iter().filter(|r| r.owner() == owner).cloned().collect())
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
//!         // What the new pair supersedes, in the order every backend keeps.
//!         let family: Vec<SharedRecord<S>> = rows.iter()
//!             .filter(|r| r.family.is_some_and(|f| f.id == x.family)).cloned().collect();
//!         let gone: Vec<TokenId> = x.superseded(family.iter().map(|r| &**r));
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
//! assert!(tokens.find(next.access.secret.digest().into()).await?.unwrap().is_revoked());
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
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
mod memory;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use cache::{CachedStore, CachedStoreBuilder};

pub use backend::{Exchange, ExchangeOutcome, SharedRecord, TokenBackend};
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub use introspection::IntrospectionStore;
pub use memory::MemoryStore;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::scope::ScopeSet;
use crate::token::{Lookup, TokenDigest, TokenRecord};

/// What a lookup answers: the record of the digest, `None` when there is
/// none, or the error that kept the store from answering.
pub type FindResult<S> = Result<Option<Arc<TokenRecord<S>>>, StoreError>;

/// The lookup the middleware makes on every request: one call, keyed by
/// the SHA-256 digest of the presented token.
///
/// [`find`](Self::find) returns the record whose digest is
/// `token.digest()`, or `Ok(None)` when there is none. It may return
/// revoked and expired records, which the middleware rejects, or leave them
/// out. An `Err` makes the middleware fail closed with 503; it never
/// becomes a 401 or lets a request through.
///
/// Both methods are required, so that a store wrapping another one (a
/// cache, a counter, an `Arc`) cannot silently lose the fast path by
/// forgetting to forward it. The token format and the clock are no part of
/// a lookup: the [`TokenAuthLayer`](crate::TokenAuthLayer) takes them from
/// the [`TokenManager`](crate::manager::TokenManager) it is built over, or
/// from its builder.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The scope set of the tokens in this store.
    type Scopes: ScopeSet;

    /// Finds the record of a presented token, by its digest
    /// ([`Lookup::digest`]). A lookup that asks another server about the
    /// token itself (RFC 7662 introspection) reads
    /// [`Lookup::token`]; every other store ignores it.
    async fn find(&self, key: Lookup<'_>) -> FindResult<Self::Scopes>;

    /// Answers [`find`](Self::find) at once, without a future, when the
    /// store can.
    ///
    /// The middleware asks this first. A store whose lookup is a read of
    /// its own memory (as [`MemoryStore`]'s is, or a cache hit of
    /// `CachedStore`) returns `Some` with exactly what `find` would return,
    /// and the request goes on to the inner service with no boxed future in
    /// between. `None` means "call `find`"; a store that would have to wait
    /// (for a database, a lock, a channel) must say `None` rather than
    /// block.
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<Self::Scopes>>;
}

#[async_trait]
impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    type Scopes = T::Scopes;

    async fn find(&self, key: Lookup<'_>) -> FindResult<Self::Scopes> {
        (**self).find(key).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<Self::Scopes>> {
        (**self).find_now(digest)
    }
}
