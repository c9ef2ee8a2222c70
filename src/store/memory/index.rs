//! The memory store's record tables: sharded hash tables whose slots hold
//! only the record's pointer (8 bytes). The key (the digest, the id) is read
//! through the pointer, from the record itself, so it is stored once.
//!
//! A map from key to record would store the key again in every slot: 40
//! bytes a slot for the digest table, and a hash table at 10⁶ entries has
//! about two slots per entry.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};

use hashbrown::HashTable;

use crate::store::SharedRecord;
use crate::token::TokenDigest;
use crate::token::{TokenId, TokenRecord};

/// How a table finds a record: the key it is filed under and that key's
/// hash.
pub(super) trait Key<S>: Copy {
    /// The key of `record`.
    fn of(record: &TokenRecord<S>) -> Self;
    /// Whether `record` is filed under `self`.
    fn matches(&self, record: &TokenRecord<S>) -> bool;
    /// The hash of the key.
    fn hash(&self) -> u64;
}

impl<S> Key<S> for TokenDigest {
    fn of(record: &TokenRecord<S>) -> Self {
        record.digest
    }

    fn matches(&self, record: &TokenRecord<S>) -> bool {
        record.digest == *self
    }

    /// The digest's first eight bytes. A SHA-256 output is uniformly
    /// distributed already; flooding is no concern, since the digests
    /// stored are those of tokens the service minted from the OS CSPRNG,
    /// and a lookup inserts nothing.
    fn hash(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

impl<S> Key<S> for TokenId {
    fn of(record: &TokenRecord<S>) -> Self {
        record.id
    }

    fn matches(&self, record: &TokenRecord<S>) -> bool {
        record.id == *self
    }

    /// The id multiplied by an odd constant (Fibonacci hashing): minted ids
    /// are random, but ids a backend reads back or a test picks may be
    /// small and consecutive, and the table uses the hash's top bits too.
    fn hash(&self) -> u64 {
        self.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// One shard on a cache line (two on CPUs that fetch lines in pairs) of
/// its own, so that readers of different shards never share a line.
///
/// Its lock is a `ShardedLock`: a reader locks the lock of its own thread
/// and writes no line another core's reader writes. With a plain `RwLock`
/// every lookup wrote the shard's lock word, and two cores looking up
/// different tokens took that line from each other about every other
/// request: 2 threads ran 1.78× one thread, against 1.94× with this
/// (`cargo bench --bench scaling -- --parallel-only`, `token_auth_ready`).
/// A write locks all of the lock's per-thread locks; writes are rare.
#[repr(align(128))]
struct Shard<S>(ShardedLock<HashTable<SharedRecord<S>>>);

/// Four shards per CPU, rounded up to a power of two, as `dashmap` sizes
/// its own.
fn shard_count() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (cpus * 4).next_power_of_two()
}

/// The shard of `hash` among `shards` (a power of two), chosen by bits a
/// hash table does not use first (it takes the low bits for the bucket and
/// the top seven as a tag).
fn shard_of(hash: u64, shards: usize) -> usize {
    (hash >> 40) as usize & (shards - 1)
}

/// Records filed under the key `K`, in independently locked shards.
pub(super) struct Index<S, K> {
    shards: Box<[Shard<S>]>,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<S, K: Key<S>> Index<S, K> {
    /// An empty index.
    pub(super) fn new() -> Self {
        Self {
            shards: (0..shard_count())
                .map(|_| Shard(ShardedLock::new(HashTable::new())))
                .collect(),
            _key: std::marker::PhantomData,
        }
    }

    fn shard(&self, hash: u64) -> &ShardedLock<HashTable<SharedRecord<S>>> {
        &self.shards[shard_of(hash, self.shards.len())].0
    }

    fn read(&self, hash: u64) -> ShardedLockReadGuard<'_, HashTable<SharedRecord<S>>> {
        // A panic while a shard was locked left no half-made change: every
        // write below is one table operation.
        self.shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, hash: u64) -> ShardedLockWriteGuard<'_, HashTable<SharedRecord<S>>> {
        self.shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The record filed under `key`.
    #[inline]
    pub(super) fn get(&self, key: &K) -> Option<SharedRecord<S>> {
        let hash = key.hash();
        self.read(hash)
            .find(hash, |r| key.matches(r))
            .map(SharedRecord::clone)
    }

    /// Whether a record is filed under `key`.
    pub(super) fn contains(&self, key: &K) -> bool {
        let hash = key.hash();
        self.read(hash).find(hash, |r| key.matches(r)).is_some()
    }

    /// Files `record` under its key, replacing the record filed there.
    pub(super) fn put(&self, record: SharedRecord<S>) {
        let key = K::of(&record);
        let hash = key.hash();
        let mut table = self.write(hash);
        match table.find_mut(hash, |r| key.matches(r)) {
            Some(slot) => *slot = record,
            None => {
                table.insert_unique(hash, record, |r| K::of(r).hash());
            }
        }
    }

    /// Removes the record filed under `key`.
    pub(super) fn remove(&self, key: &K) {
        let hash = key.hash();
        if let Ok(entry) = self.write(hash).find_entry(hash, |r| key.matches(r)) {
            entry.remove();
        }
    }

    /// Replaces the record filed under `key` with `change(record)` when that
    /// is `Some`, holding the shard's write lock throughout: changes of one
    /// record are applied one after the other. `then` runs on the new
    /// record before the lock is released.
    pub(super) fn change(
        &self,
        key: &K,
        change: impl FnOnce(&TokenRecord<S>) -> Option<TokenRecord<S>>,
        then: impl FnOnce(&SharedRecord<S>),
    ) -> Option<SharedRecord<S>> {
        let hash = key.hash();
        let mut table = self.write(hash);
        let slot = table.find_mut(hash, |r| key.matches(r))?;
        let changed = SharedRecord::new(change(slot)?);
        *slot = SharedRecord::clone(&changed);
        then(&changed);
        Some(changed)
    }

    /// Every record, shard by shard (a record changed meanwhile may be seen
    /// before or after the change).
    pub(super) fn all(&self) -> Vec<SharedRecord<S>> {
        self.shards
            .iter()
            .flat_map(|s| {
                let table = s.0.read().unwrap_or_else(PoisonError::into_inner);
                table.iter().cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    /// How many records are filed.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// One shard of [`Owners`], on cache lines of its own.
#[repr(align(128))]
struct OwnerShard(Mutex<BTreeSet<(u64, TokenId)>>);

/// Which tokens each owner holds, as (hash of the owner, token id) pairs in
/// ordered sets, one per shard: 16 bytes a token in the B-tree's nodes, and
/// nothing per owner. (A map from owner to a list of ids stores each
/// owner's name and list header again, in slots of their own.) The hash is
/// keyed per store, so owners cannot be chosen to collide; two owners that
/// do collide share a range, and [`ids`](Self::ids) may answer ids of
/// both: the caller keeps the records of the owner it asked for.
pub(super) struct Owners {
    hasher: RandomState,
    shards: Box<[OwnerShard]>,
}

impl Owners {
    /// No owner holds anything.
    pub(super) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..shard_count())
                .map(|_| OwnerShard(Mutex::new(BTreeSet::new())))
                .collect(),
        }
    }

    fn set(&self, owner: &str) -> (u64, std::sync::MutexGuard<'_, BTreeSet<(u64, TokenId)>>) {
        let hash = self.hasher.hash_one(owner);
        let shard = &self.shards[shard_of(hash, self.shards.len())].0;
        (hash, shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `owner` holds `id`.
    pub(super) fn add(&self, owner: &str, id: TokenId) {
        let (hash, mut set) = self.set(owner);
        set.insert((hash, id));
    }

    /// `owner` no longer holds `id`.
    pub(super) fn remove(&self, owner: &str, id: TokenId) {
        let (hash, mut set) = self.set(owner);
        set.remove(&(hash, id));
    }

    /// The ids `owner` holds, in id order (with those of an owner whose
    /// hash collides, if any).
    pub(super) fn ids(&self, owner: &str) -> Vec<TokenId> {
        let (hash, set) = self.set(owner);
        set.range((hash, TokenId::from_u64(0))..=(hash, TokenId::from_u64(u64::MAX)))
            .map(|(_, id)| *id)
            .collect()
    }

    /// Whether no owner holds anything.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| {
            s.0.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::IssuePolicy;
    use crate::manager::IssueRequest;
    use crate::scope::PayRequestScopes as S;
    use crate::token::TokenKind;

    fn record() -> TokenRecord<S> {
        IssuePolicy::default()
            .mint(IssueRequest::new(TokenKind::Access, "n", "o"))
            .unwrap()
            .1
    }

    #[test]
    fn records_are_found_by_their_own_key_only() {
        let by_digest: Index<S, TokenDigest> = Index::new();
        let by_id: Index<S, TokenId> = Index::new();
        let records: Vec<_> = (0..1_000).map(|_| SharedRecord::new(record())).collect();
        for r in &records {
            by_digest.put(SharedRecord::clone(r));
            by_id.put(SharedRecord::clone(r));
        }
        assert_eq!((by_digest.len(), by_id.len()), (1_000, 1_000));
        for r in &records {
            assert_eq!(by_digest.get(&r.digest).unwrap().id, r.id);
            assert_eq!(by_id.get(&r.id).unwrap().digest, r.digest);
        }
        assert!(by_digest.get(&TokenDigest::of("other")).is_none());
        assert!(by_id.get(&TokenId::from_u64(7)).is_none());
        assert!(records.iter().all(|r| by_id.contains(&r.id)));
        assert!(!by_digest.contains(&TokenDigest::of("other")));
    }

    /// Keys spread over the hash space and the shards: a constant hash
    /// would file every record in one probe chain of one shard, correct
    /// but as slow as a list.
    #[test]
    fn keys_spread_over_hashes_and_shards() {
        let records: Vec<_> = (0..1_000).map(|_| SharedRecord::new(record())).collect();
        let hashes = |key: fn(&TokenRecord<S>) -> u64| {
            records
                .iter()
                .map(|r| key(r))
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(hashes(|r| Key::<S>::hash(&r.digest)), 1_000);
        assert_eq!(hashes(|r| Key::<S>::hash(&r.id)), 1_000);
        let consecutive: std::collections::HashSet<u64> = (0..1_000)
            .map(|n| Key::<S>::hash(&TokenId::from_u64(n)) >> 57)
            .collect();
        assert!(consecutive.len() > 64, "consecutive ids get varied tags");

        assert!(shard_count() >= 4, "four shards per CPU at least");
        let by_digest: Index<S, TokenDigest> = Index::new();
        for r in &records {
            by_digest.put(SharedRecord::clone(r));
        }
        let used = by_digest
            .shards
            .iter()
            .filter(|s| !s.0.read().unwrap().is_empty())
            .count();
        assert_eq!(
            used,
            by_digest.shards.len(),
            "1 000 records reach every shard"
        );
    }

    #[test]
    fn consecutive_ids_are_told_apart() {
        let by_id: Index<S, TokenId> = Index::new();
        for n in 0..64 {
            by_id.put(SharedRecord::new(TokenRecord {
                id: TokenId::from_u64(n),
                ..record()
            }));
        }
        assert_eq!(by_id.len(), 64);
        assert!((0..64).all(|n| by_id.get(&TokenId::from_u64(n)).unwrap().id.as_u64() == n));
    }

    #[test]
    fn put_replaces_change_applies_and_remove_removes() {
        let by_id: Index<S, TokenId> = Index::new();
        let r = record();
        by_id.put(SharedRecord::new(r.clone()));
        by_id.put(SharedRecord::new(TokenRecord {
            name: "renamed".into(),
            ..r.clone()
        }));
        assert_eq!(by_id.len(), 1);
        assert_eq!(by_id.get(&r.id).unwrap().name, "renamed");

        let mut seen = None;
        let changed = by_id.change(
            &r.id,
            |old| {
                Some(TokenRecord {
                    name: format!("{}+", old.name).into(),
                    ..old.clone()
                })
            },
            |new| seen = Some(new.name.clone()),
        );
        assert_eq!(changed.unwrap().name, "renamed+");
        assert_eq!(seen.as_deref(), Some("renamed+"));
        assert_eq!(by_id.get(&r.id).unwrap().name, "renamed+");
        assert!(by_id.change(&r.id, |_| None, |_| unreachable!()).is_none());
        assert!(by_id
            .change(&TokenId::from_u64(1), |_| unreachable!(), |_| ())
            .is_none());

        by_id.remove(&r.id);
        assert!(!by_id.contains(&r.id));
        assert_eq!(by_id.len(), 0);
        assert!(by_id.all().is_empty());
    }

    #[test]
    fn owners_hold_their_own_ids() {
        let owners = Owners::new();
        let id = TokenId::from_u64;
        owners.add("alice", id(3));
        owners.add("alice", id(1));
        owners.add("bob", id(2));
        owners.add("alice", id(u64::MAX));
        assert_eq!(owners.ids("alice"), [id(1), id(3), id(u64::MAX)]);
        assert_eq!(owners.ids("bob"), [id(2)]);
        assert!(owners.ids("carol").is_empty());
        owners.remove("alice", id(3));
        owners.remove("bob", id(3));
        assert_eq!(owners.ids("alice"), [id(1), id(u64::MAX)]);
        assert_eq!(owners.ids("bob"), [id(2)]);
        for (owner, n) in [("alice", 1), ("alice", u64::MAX), ("bob", 2)] {
            assert!(!owners.is_empty());
            owners.remove(owner, id(n));
        }
        assert!(owners.is_empty());
    }
}
