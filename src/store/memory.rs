use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{
    IssuePolicy, IssueRequest, IssuedToken, StoreError, TokenId, TokenInfo, TokenManager,
    TokenRecord, TokenStore,
};
use crate::scope::{PayRequestScopes, ScopeSet};
use crate::token::TokenDigest;

/// The embedded in-memory store: for tests, demos and single-node services.
///
/// Records sit in a sharded concurrent map ([`dashmap`]): lookups on
/// different shards never contend, and no lock is held across an `.await`
/// (every method does its work synchronously). Cloning the store is cheap
/// and every clone sees the same tokens. Tokens are lost when the process
/// exits; use a shared store when a service runs on several machines.
pub struct MemoryStore<S = PayRequestScopes> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    by_digest: DashMap<TokenDigest, Arc<TokenRecord<S>>>,
    by_id: DashMap<TokenId, TokenDigest>,
    policy: IssuePolicy,
}

impl<S> Clone for MemoryStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for MemoryStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.inner.by_digest.len())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl<S: ScopeSet> Default for MemoryStore<S> {
    /// An empty store with the default [`IssuePolicy`], for any scope set:
    /// `MemoryStore::<MyScopes>::default()`.
    fn default() -> Self {
        Self::with_policy(IssuePolicy::default())
    }
}

impl MemoryStore<PayRequestScopes> {
    /// An empty store of PayRequest-scoped tokens with the default
    /// [`IssuePolicy`]. For another scope set, use
    /// `MemoryStore::<MyScopes>::default()` or [`with_policy`](Self::with_policy).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: ScopeSet> MemoryStore<S> {
    /// An empty store that mints tokens by `policy`.
    pub fn with_policy(policy: IssuePolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                by_digest: DashMap::new(),
                by_id: DashMap::new(),
                policy,
            }),
        }
    }

    /// The issuance policy.
    pub fn policy(&self) -> &IssuePolicy {
        &self.inner.policy
    }

    /// How many tokens the store holds, revoked and expired ones included.
    pub fn len(&self) -> usize {
        self.inner.by_digest.len()
    }

    /// Whether the store holds no token.
    pub fn is_empty(&self) -> bool {
        self.inner.by_digest.is_empty()
    }

    /// Stores an existing record, e.g. one imported from another system.
    /// A record with the same digest or id is replaced.
    pub fn insert(&self, record: TokenRecord<S>) {
        self.inner.by_id.insert(record.id, record.digest);
        self.inner.by_digest.insert(record.digest, Arc::new(record));
    }

    /// Replaces the record of `id` with `update(record)`, if there is one.
    fn update(
        &self,
        id: TokenId,
        update: impl FnOnce(&TokenRecord<S>) -> Option<TokenRecord<S>>,
    ) -> Option<Arc<TokenRecord<S>>> {
        let digest = *self.inner.by_id.get(&id)?;
        let mut entry = self.inner.by_digest.get_mut(&digest)?;
        let updated = Arc::new(update(&entry)?);
        *entry = Arc::clone(&updated);
        Some(updated)
    }
}

#[async_trait]
impl<S: ScopeSet> TokenStore for MemoryStore<S> {
    type Scopes = S;

    async fn find(&self, digest: &TokenDigest) -> Result<Option<Arc<TokenRecord<S>>>, StoreError> {
        Ok(self.inner.by_digest.get(digest).map(|r| Arc::clone(&r)))
    }
}

#[async_trait]
impl<S: ScopeSet> TokenManager for MemoryStore<S> {
    async fn issue(&self, request: IssueRequest<S>) -> Result<IssuedToken<S>, StoreError> {
        let (secret, record) = self.inner.policy.mint(request)?;
        let record = Arc::new(record);
        self.inner.by_id.insert(record.id, record.digest);
        self.inner
            .by_digest
            .insert(record.digest, Arc::clone(&record));
        Ok(IssuedToken { secret, record })
    }

    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<S>>, StoreError> {
        let mut tokens: Vec<TokenInfo<S>> = self
            .inner
            .by_digest
            .iter()
            .filter(|r| r.owner == owner)
            .map(|r| TokenInfo::from(&**r))
            .collect();
        tokens.sort_by_key(|t| (t.created_at, t.id));
        Ok(tokens)
    }

    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<S>>, StoreError> {
        let Some(digest) = self.inner.by_id.get(&id).map(|d| *d) else {
            return Ok(None);
        };
        Ok(self
            .inner
            .by_digest
            .get(&digest)
            .map(|r| TokenInfo::from(&**r)))
    }

    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        let now = self.inner.policy.now();
        let revoked = self.update(id, |r| {
            (!r.is_revoked()).then(|| TokenRecord {
                revoked_at: Some(now),
                ..r.clone()
            })
        });
        Ok(revoked.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;
    use crate::token::TokenKind;
    use futures_util::FutureExt;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        f.now_or_never().expect("the memory store never waits")
    }

    #[test]
    fn issue_find_list_revoke() {
        let store = MemoryStore::<S>::new();
        let issued = run(store.issue(
            IssueRequest::new(TokenKind::PersonalAccess, "a", "u1").scopes(S::BILLING_AGENT),
        ))
        .unwrap();
        run(store.issue(IssueRequest::new(TokenKind::Access, "b", "u2"))).unwrap();
        let digest = issued.secret.digest();
        assert_eq!(run(store.find(&digest)).unwrap().unwrap().id, issued.record.id);
        assert!(run(store.find(&TokenDigest::of("nope"))).unwrap().is_none());

        let listed = run(store.list("u1")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scopes, S::BILLING_AGENT);

        assert!(run(store.revoke(issued.record.id)).unwrap());
        assert!(!run(store.revoke(issued.record.id)).unwrap(), "second revoke is a no-op");
        assert!(!run(store.revoke(TokenId::from_u64(7))).unwrap());
        assert!(run(store.find(&digest)).unwrap().unwrap().is_revoked());
        assert!(run(store.get(issued.record.id)).unwrap().unwrap().revoked_at.is_some());
    }

    #[test]
    fn clones_share_tokens() {
        let a = MemoryStore::<S>::new();
        let b = a.clone();
        run(a.issue(IssueRequest::new(TokenKind::Access, "x", "u"))).unwrap();
        assert_eq!(b.len(), 1);
    }
}
