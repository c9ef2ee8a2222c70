use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore};
use crate::error::StoreError;
use crate::scope::{PayRequestScopes, ScopeSet};
use crate::token::{FamilyId, Lookup, TokenDigest, TokenId, TokenRecord};

mod index;

use index::{Index, Owners};

/// The embedded in-memory backend: for tests, demos and single-node
/// services.
///
/// Records sit in sharded hash tables whose slots hold only a pointer to
/// the record (the record carries its own digest and id); each owner's
/// tokens are (keyed owner hash, id) pairs in sharded B-trees, and each
/// family's members a list in a [`dashmap`] map. A lookup takes a read
/// lock of its own thread (`crossbeam_utils`' `ShardedLock`): lookups on
/// different cores write no common cache line, even in the same shard,
/// while a write locks a shard for every thread. No lock is held across an
/// `.await` (every
/// method does its work synchronously). Cloning the store is cheap
/// and every clone sees the same tokens. Tokens are lost when the process
/// exits; use a persistent backend (`tower-token-auth-sqlx`'s `SqliteStore`
/// or `PgStore`) otherwise.
///
/// Put a [`TokenManager`](crate::manager::TokenManager) over it to issue and manage
/// tokens.
pub struct MemoryStore<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    /// The records by digest: what every request looks up.
    by_digest: Index<S, TokenDigest>,
    /// The same records by id. A change replaces the record in both tables
    /// while it holds the record's `by_digest` shard, so the two never
    /// disagree for longer than that lock is held.
    by_id: Index<S, TokenId>,
    /// The members of each family. An exchange holds its family's entry
    /// from the check of the presented token until the new pair is stored
    /// and the superseded tokens are gone; a family revocation holds it
    /// while it revokes. Lock order: a family's entry, then an owner's
    /// shard, then a `by_digest` shard, then a `by_id` shard. Nothing
    /// takes a `by_digest` shard while it holds a `by_id` one.
    by_family: DashMap<FamilyId, Vec<TokenId>>,
    by_owner: Owners,
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
            .finish()
    }
}

impl<S: ScopeSet> Default for MemoryStore<S> {
    /// An empty store for any scope set: `MemoryStore::<MyScopes>::default()`.
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                by_digest: Index::new(),
                by_id: Index::new(),
                by_family: DashMap::new(),
                by_owner: Owners::new(),
            }),
        }
    }
}

impl MemoryStore<PayRequestScopes> {
    /// An empty store of PayRequest-scoped tokens. For another scope set,
    /// use `MemoryStore::<MyScopes>::default()`.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: ScopeSet> MemoryStore<S> {
    /// How many records the store holds, dead ones included.
    pub fn len(&self) -> usize {
        self.inner.by_digest.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.inner.by_digest.len() == 0
    }

    fn lookup(&self, digest: &TokenDigest) -> Option<SharedRecord<S>> {
        self.inner.by_digest.get(digest)
    }

    fn record(&self, id: TokenId) -> Option<SharedRecord<S>> {
        self.inner.by_id.get(&id)
    }

    /// Adds `record` to every map; `members` is its family's list, whose
    /// entry the caller holds.
    fn add(&self, record: SharedRecord<S>, members: Option<&mut Vec<TokenId>>) {
        self.inner.by_id.put(Arc::clone(&record));
        if let Some(members) = members {
            members.push(record.id);
        }
        self.inner.by_owner.add(&record.owner, record.id);
        self.inner.by_digest.put(record);
    }

    /// Removes `record` from every map but its family's list (the caller
    /// holds that entry and updates it).
    fn remove(&self, record: &TokenRecord<S>) {
        self.inner.by_digest.remove(&record.digest);
        self.inner.by_id.remove(&record.id);
        self.inner.by_owner.remove(&record.owner, record.id);
    }

    /// Replaces the record of `digest` with `change(record)` when that is
    /// `Some`, under the entry's lock; returns the new record.
    fn change(
        &self,
        digest: &TokenDigest,
        change: impl FnOnce(&TokenRecord<S>) -> Option<TokenRecord<S>>,
    ) -> Option<SharedRecord<S>> {
        // `by_id` is updated under the `by_digest` shard's lock, so
        // concurrent changes of one token reach `by_id` in the order they
        // reached `by_digest`.
        self.inner.by_digest.change(digest, change, |changed| {
            self.inner.by_id.put(Arc::clone(changed));
        })
    }

    fn change_id(
        &self,
        id: TokenId,
        change: impl FnOnce(&TokenRecord<S>) -> Option<TokenRecord<S>>,
    ) -> Option<SharedRecord<S>> {
        let digest = self.inner.by_id.get(&id)?.digest;
        self.change(&digest, change)
    }

    /// The records of a family's member list.
    fn members(&self, members: &[TokenId]) -> Vec<SharedRecord<S>> {
        members.iter().filter_map(|id| self.record(*id)).collect()
    }
}

/// `record` revoked at `at`, unless it already is.
fn revoked<S: Clone>(record: &TokenRecord<S>, at: SystemTime) -> Option<TokenRecord<S>> {
    (!record.is_revoked()).then(|| TokenRecord {
        revoked_at: Some(at),
        ..record.clone()
    })
}

#[async_trait]
impl<S: ScopeSet> TokenStore for MemoryStore<S> {
    type Scopes = S;

    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        Ok(self.lookup(&key.digest()))
    }

    /// Always answers: the lookup is a read of a sharded map.
    #[inline]
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<S>> {
        Some(Ok(self.lookup(digest)))
    }
}

#[async_trait]
impl<S: ScopeSet> TokenBackend for MemoryStore<S> {
    async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
        let taken = records
            .iter()
            .any(|r| self.inner.by_id.contains(&r.id) || self.inner.by_digest.contains(&r.digest));
        if taken {
            return Err(StoreError::Backend(
                "a token with this id or digest is already stored".into(),
            ));
        }
        for record in records {
            let record = Arc::new(record.clone());
            match record.family {
                Some(family) => {
                    let mut members = self.inner.by_family.entry(family.id).or_default();
                    self.add(record, Some(&mut members));
                }
                None => self.add(record, None),
            }
        }
        Ok(())
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
        Ok(self.record(id))
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let ids = self.inner.by_owner.ids(owner);
        Ok(ids
            .into_iter()
            .filter_map(|id| self.record(id))
            .filter(|r| r.owner == owner)
            .collect())
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: S,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        Ok(self.change_id(id, |r| {
            let live = !r.is_revoked() && !r.is_spent() && !r.is_expired_at(now);
            live.then(|| TokenRecord {
                scopes,
                ..r.clone()
            })
        }))
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        Ok(self.change_id(id, |r| revoked(r, at)))
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<S>>, StoreError> {
        // The read lock of the family's entry excludes an exchange in the
        // family (which write-locks it) for as long as this runs.
        let Some(members) = self.inner.by_family.get(&family) else {
            return Ok(Vec::new());
        };
        Ok(members
            .iter()
            .filter_map(|id| self.change_id(*id, |r| revoked(r, at)))
            .collect())
    }

    async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
        let mut members = self.inner.by_family.entry(x.family).or_default();
        let mut outcome = ExchangeOutcome::NotLive;
        let spent = self.change(&x.presented, |r| {
            if r.family.map(|f| f.id) != Some(x.family) || r.is_revoked() {
                return None;
            }
            if r.is_spent() {
                outcome = ExchangeOutcome::AlreadySpent;
                return None;
            }
            Some(TokenRecord {
                spent_at: Some(x.at),
                ..r.clone()
            })
        });
        if spent.is_none() {
            return Ok(outcome);
        }
        self.add(Arc::new(x.access.clone()), Some(&mut members));
        self.add(Arc::new(x.refresh.clone()), Some(&mut members));

        let records = self.members(&members);
        let superseded = x.superseded(records.iter().map(|r| &**r));
        for record in records.iter().filter(|r| superseded.contains(&r.id)) {
            self.remove(record);
        }
        members.retain(|id| !superseded.contains(id));
        Ok(ExchangeOutcome::Exchanged)
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        for (id, at) in uses {
            self.change_id(*id, |r| {
                (r.last_used_at < Some(*at)).then(|| TokenRecord {
                    last_used_at: Some(*at),
                    ..r.clone()
                })
            });
        }
        Ok(())
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let mut dead = self.inner.by_digest.all();
        dead.retain(|r| r.revoked_at.is_some_and(|t| t < cutoff) || r.expires_at < cutoff);
        for record in &dead {
            match record.family {
                Some(family) => {
                    let emptied = match self.inner.by_family.get_mut(&family.id) {
                        Some(mut members) => {
                            self.remove(record);
                            members.retain(|id| *id != record.id);
                            members.is_empty()
                        }
                        None => {
                            self.remove(record);
                            false
                        }
                    };
                    if emptied {
                        self.inner
                            .by_family
                            .remove_if(&family.id, |_, members| members.is_empty());
                    }
                }
                None => self.remove(record),
            }
        }
        Ok(dead.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{IssueRequest, TokenManager};
    use crate::scope::PayRequestScopes as S;
    use crate::token::TokenKind;
    use futures_util::FutureExt;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        f.now_or_never().expect("the memory store never waits")
    }

    #[test]
    fn counts_debug_and_the_lookup_that_never_waits() {
        let store = MemoryStore::<S>::new();
        assert!(store.is_empty());
        assert_eq!(store.len(), 0);
        let tokens = TokenManager::new(store.clone());
        let issued: Vec<_> = (0..2)
            .map(|_| run(tokens.issue(IssueRequest::new(TokenKind::Access, "x", "u"))).unwrap())
            .collect();
        assert!(!store.is_empty());
        assert_eq!(store.len(), 2);
        assert_eq!(format!("{store:?}"), "MemoryStore { tokens: 2 }");
        match store.find_now(&issued[1].secret.digest()) {
            Some(Ok(Some(record))) => assert_eq!(record.id, issued[1].record.id),
            other => panic!("a stored token is answered at once: {other:?}"),
        }
        assert!(matches!(
            store.find_now(&TokenDigest::of("pr_at_unknown")),
            Some(Ok(None))
        ));
    }

    #[test]
    fn clones_share_tokens() {
        let a = MemoryStore::<S>::new();
        let tokens = TokenManager::new(a.clone());
        run(tokens.issue(IssueRequest::new(TokenKind::Access, "x", "u"))).unwrap();
        assert_eq!(a.clone().len(), 1);
    }

    #[test]
    fn a_purged_family_leaves_no_index_behind() {
        let store = MemoryStore::<S>::new();
        let tokens = TokenManager::new(store.clone());
        let pair = run(tokens.issue_pair("agent", "u1", None)).unwrap();
        run(tokens.revoke_family(pair.access.record.family.unwrap().id)).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(365 * 86_400);
        assert_eq!(run(store.purge(later)).unwrap(), 2);
        assert!(store.is_empty());
        assert!(store.inner.by_family.is_empty());
        assert!(store.inner.by_owner.is_empty());
        assert_eq!(store.inner.by_id.len(), 0);
    }
}
