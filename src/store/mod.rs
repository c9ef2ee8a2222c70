//! Token stores: where token records live and how the middleware finds them.
//!
//! Two traits keep the hot path apart from management:
//!
//! - [`TokenStore`] is the lookup the middleware makes on every request: one
//!   call, keyed by the SHA-256 [`TokenDigest`] of the presented token. A
//!   read-only replica can serve it.
//! - [`TokenManager`] issues, lists and revokes tokens: the management side,
//!   called by the host application's dashboard and token endpoints.
//!
//! [`MemoryStore`] implements both and is the embedded default.
//!
//! ```
//! use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
//! use tower_token_auth::store::{IssueRequest, MemoryStore, TokenManager, TokenStore};
//! use tower_token_auth::token::TokenKind;
//!
//! # tokio_test_block_on(async {
//! let store = MemoryStore::<PayRequestScopes>::new();
//! // No scopes at creation means the default set, `billing.read`.
//! let issued = store
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "user-1"))
//!     .await?;
//! assert_eq!(issued.record.scopes, PayRequestScopes::BILLING_READ);
//!
//! // The middleware's lookup: by digest, never by plaintext.
//! let found = store.find(&issued.secret.digest()).await?.expect("stored");
//! assert_eq!(found.id, issued.record.id);
//!
//! // Listings show a hint, never the token or its digest.
//! let listed = store.list("user-1").await?;
//! assert_eq!(listed[0].hint, issued.secret.hint());
//! # Ok::<(), tower_token_auth::store::StoreError>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     futures_util::FutureExt::now_or_never(f).expect("the memory store never waits")
//! # }
//! ```
//!
//! # Writing a store
//!
//! A store implements [`TokenStore::find`]; it may return revoked and
//! expired records (the middleware checks both) or leave them out
//! (`Ok(None)`): either way the client sees `invalid_token`. `Err` means the
//! store could not answer, and the middleware fails closed with 503.
//!
//! A store that holds its tokens in memory (as below) can also implement
//! [`TokenStore::find_now`] with the same answer: the middleware then skips
//! the boxed future of `find` on every request.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use tower_token_auth::async_trait;
//! use tower_token_auth::scope::PayRequestScopes;
//! use tower_token_auth::store::{FindResult, StoreError, TokenRecord, TokenStore};
//! use tower_token_auth::token::TokenDigest;
//!
//! /// A fixed set of tokens loaded at start-up.
//! struct StaticStore(HashMap<[u8; 32], Arc<TokenRecord<PayRequestScopes>>>);
//!
//! #[async_trait]
//! impl TokenStore for StaticStore {
//!     type Scopes = PayRequestScopes;
//!
//!     async fn find(
//!         &self,
//!         digest: &TokenDigest,
//!     ) -> Result<Option<Arc<TokenRecord<PayRequestScopes>>>, StoreError> {
//!         Ok(self.0.get(digest.as_bytes()).cloned())
//!     }
//!
//!     // A map read never waits: answer without a future.
//!     fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<PayRequestScopes>> {
//!         Some(Ok(self.0.get(digest.as_bytes()).cloned()))
//!     }
//! }
//!
//! let store = StaticStore(HashMap::new());
//! let unknown = TokenDigest::of("pr_pat_never_issued");
//! assert!(matches!(store.find_now(&unknown), Some(Ok(None))));
//! ```

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;
mod grant;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod record;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use cache::{CachedStore, CachedStoreBuilder};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;

pub use grant::{GrantError, InvalidGrantReason};
pub use memory::MemoryStore;
pub use record::{
    Family, FamilyId, IssuePolicy, IssueRequest, IssuedToken, ParseTokenIdError, TokenId,
    TokenInfo, TokenPair, TokenRecord,
};

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::scope::ScopeSet;
use crate::token::TokenDigest;

/// What a lookup answers: the record of the digest, `None` when there is
/// none, or the error that kept the store from answering.
pub type FindResult<S> = Result<Option<Arc<TokenRecord<S>>>, StoreError>;

/// A boxed error from a store backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached (connection refused, pool timed out).
    /// The middleware answers 503 `temporarily_unavailable`.
    #[error("token store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The store answered with an error.
    #[error("token store failed: {0}")]
    Backend(#[source] BoxError),
    /// The request was refused: an empty name, a lifetime beyond the kind's
    /// maximum, or similar. The message is safe to show to the caller.
    #[error("{0}")]
    InvalidInput(String),
    /// The operating system's random number generator failed.
    #[error("could not generate a token: the random number generator failed")]
    Randomness,
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
}

/// The management side of a store: issuing, listing, revoking, rotating.
///
/// Every method emits its [`AuditEvent`](crate::audit::AuditEvent) through
/// the store's [`IssuePolicy`]. Revocations take effect on the next request
/// that reaches this store.
#[async_trait]
pub trait TokenManager: TokenStore {
    /// Creates a token. The plaintext is in the returned
    /// [`IssuedToken::secret`] and nowhere else: show it once.
    async fn issue(
        &self,
        request: IssueRequest<Self::Scopes>,
    ) -> Result<IssuedToken<Self::Scopes>, StoreError>;

    /// Creates an access token and a refresh token in a new family, as an
    /// authorization server's grant does. `None` or empty scopes mean the
    /// default set.
    async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<Self::Scopes>,
    ) -> Result<TokenPair<Self::Scopes>, StoreError>;

    /// Every token of `owner`, revoked and expired ones included, oldest
    /// first. Metadata only: no token, no digest.
    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<Self::Scopes>>, StoreError>;

    /// The metadata of one token.
    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<Self::Scopes>>, StoreError>;

    /// Revokes a token; the next request that presents it is refused.
    ///
    /// Returns `false` when there is no such token or it was already revoked.
    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError>;

    /// Revokes every token of a family. Returns how many were revoked now.
    async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError>;

    /// Revokes the token whose digest this is (RFC 7009): a refresh token
    /// takes its whole family with it. Idempotent; an unknown token is not
    /// an error. Returns whether anything was revoked now.
    async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError>;

    /// Regenerates a personal access token: a new secret with the same name,
    /// owner and scopes and a fresh lifetime; the old one is revoked at once.
    ///
    /// `Ok(None)` when there is no such token. A revoked token, or one of
    /// another kind, is [`StoreError::InvalidInput`].
    async fn regenerate(
        &self,
        id: TokenId,
    ) -> Result<Option<IssuedToken<Self::Scopes>>, StoreError>;

    /// Exchanges a refresh token (RFC 6749 §6, RFC 9700 §4.14.2): spends it
    /// and returns a new access token and a new refresh token of the same
    /// family. `scopes` may keep or narrow the access token's scopes.
    ///
    /// A spent refresh token presented again revokes its whole family and
    /// fails with [`InvalidGrantReason::Reused`]. Of two concurrent exchanges
    /// of one refresh token, exactly one succeeds.
    async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<Self::Scopes>,
    ) -> Result<TokenPair<Self::Scopes>, GrantError>;

    /// Records when tokens were last used (batched and coalesced by the
    /// [`UsageTracker`](crate::usage::UsageTracker); never one call per
    /// request). A later time than the stored one wins.
    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError>;
}

/// Shares one store between many owners, including as
/// `Arc<dyn TokenManager<Scopes = S>>` to pick a backend at run time.
#[async_trait]
impl<T: TokenManager + ?Sized> TokenManager for Arc<T> {
    async fn issue(
        &self,
        request: IssueRequest<Self::Scopes>,
    ) -> Result<IssuedToken<Self::Scopes>, StoreError> {
        (**self).issue(request).await
    }

    async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<Self::Scopes>,
    ) -> Result<TokenPair<Self::Scopes>, StoreError> {
        (**self).issue_pair(name, owner, scopes).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<Self::Scopes>>, StoreError> {
        (**self).list(owner).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<Self::Scopes>>, StoreError> {
        (**self).get(id).await
    }

    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        (**self).revoke(id).await
    }

    async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError> {
        (**self).revoke_family(family).await
    }

    async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        (**self).revoke_by_digest(digest).await
    }

    async fn regenerate(
        &self,
        id: TokenId,
    ) -> Result<Option<IssuedToken<Self::Scopes>>, StoreError> {
        (**self).regenerate(id).await
    }

    async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<Self::Scopes>,
    ) -> Result<TokenPair<Self::Scopes>, GrantError> {
        (**self).refresh(presented, scopes).await
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        (**self).record_use(uses).await
    }
}
