//! A bounded, revocation-aware cache in front of any token store.
//!
//! [`CachedStore`] wraps a [`TokenStore`] and is itself one: the middleware
//! looks tokens up through it, and only misses reach the store. It is
//! bounded in entries and in time, and it never keeps a token past its
//! expiry: an entry lives for the shortest of the cache's TTL and the
//! token's remaining lifetime. Unknown digests are remembered too, for a
//! shorter [`negative_ttl`](CachedStoreBuilder::negative_ttl), so a client
//! retrying a bad token does not reach the store on every request.
//!
//! When the inner store is a [`TokenManager`], so is the cache: it forwards
//! every call and evicts every token that a revocation, regeneration or
//! refresh through it changed. Revocations made elsewhere (another instance
//! of the service) reach the cache by [`invalidate`](CachedStore::invalidate)
//! and [`invalidate_all`](CachedStore::invalidate_all); with PostgreSQL, the
//! `RevocationListener` of the `postgres` feature calls them on every
//! instance. Without a listener, a revocation made elsewhere takes effect
//! within the TTL.
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth::store::{CachedStore, IssueRequest, MemoryStore, TokenManager, TokenStore};
//! use tower_token_auth::token::TokenKind;
//! use tower_token_auth::TokenAuthLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_token_auth::store::StoreError> {
//! let cache = CachedStore::builder(MemoryStore::new())
//!     .max_entries(10_000)
//!     .ttl(Duration::from_secs(60))
//!     .build();
//!
//! let issued = cache
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
//!     .await?;
//! let digest = issued.secret.digest();
//! assert!(cache.find(&digest).await?.is_some()); // from the store, now cached
//!
//! // A revocation through the cache evicts the token at once.
//! cache.revoke(issued.record.id).await?;
//! assert!(cache.find(&digest).await?.expect("still known").is_revoked());
//!
//! let layer = TokenAuthLayer::new(cache);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use futures_util::FutureExt as _;
use moka::future::Cache;
use moka::Expiry;

use super::{
    FamilyId, GrantError, InvalidGrantReason, IssueRequest, IssuedToken, StoreError, TokenId,
    TokenInfo, TokenManager, TokenPair, TokenRecord, TokenStore,
};
use crate::token::{Clock, SystemClock, TokenDigest};

/// The default bound on cached entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// The default lifetime of an entry for a known token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The default lifetime of an entry for an unknown digest.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What the cache holds for a digest: the record, or `None` for a digest the
/// store did not know.
type Entry<S> = Option<Arc<TokenRecord<S>>>;

/// A caching [`TokenStore`]. See the [module docs](self).
///
/// Cloning is cheap: every clone shares the cache and the store.
pub struct CachedStore<St: TokenStore> {
    inner: Arc<Inner<St>>,
}

struct Inner<St: TokenStore> {
    store: St,
    cache: Cache<TokenDigest, Entry<St::Scopes>>,
    /// Bumped by every invalidation. A lookup stores what it loaded only if
    /// no invalidation happened while it was loading: the loaded record may
    /// predate the revocation that caused the invalidation.
    generation: AtomicU64,
    /// While set, lookups go to the store and nothing is cached (a
    /// revocation listener sets it while it is not listening).
    bypass: AtomicBool,
    settings: Settings,
}

impl<St: TokenStore> Clone for CachedStore<St> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<St: TokenStore + fmt::Debug> fmt::Debug for CachedStore<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("store", &self.inner.store)
            .field("settings", &self.inner.settings)
            .field("entries", &self.inner.cache.entry_count())
            .finish()
    }
}

/// Builds a [`CachedStore`]: bounds and lifetimes of its entries. From
/// [`CachedStore::builder`].
pub struct CachedStoreBuilder<St> {
    store: St,
    settings: Settings,
}

#[derive(Debug, Clone)]
struct Settings {
    max_entries: u64,
    ttl: Duration,
    negative_ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            clock: Arc::new(SystemClock),
        }
    }
}

impl<St> fmt::Debug for CachedStoreBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStoreBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<St: TokenStore> CachedStoreBuilder<St> {
    /// The most entries kept (default [`DEFAULT_MAX_ENTRIES`]); the least
    /// used go first.
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.settings.max_entries = max_entries;
        self
    }

    /// How long a known token stays cached (default [`DEFAULT_TTL`]), and
    /// never past its expiry. Without a revocation listener, this is how
    /// long a revocation made elsewhere may take to be seen here.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long an unknown digest is remembered as unknown (default
    /// [`DEFAULT_NEGATIVE_TTL`]). Zero disables negative caching.
    pub fn negative_ttl(mut self, negative_ttl: Duration) -> Self {
        self.settings.negative_ttl = negative_ttl;
        self
    }

    /// The clock a token's remaining lifetime is judged by (default the
    /// system clock): use the one the middleware and the store use.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.settings.clock = clock;
        self
    }

    /// The cache.
    pub fn build(self) -> CachedStore<St> {
        let settings = self.settings;
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(EntryExpiry {
                ttl: settings.ttl,
                negative_ttl: settings.negative_ttl,
                clock: Arc::clone(&settings.clock),
            })
            .support_invalidation_closures()
            .build();
        CachedStore {
            inner: Arc::new(Inner {
                store: self.store,
                cache,
                generation: AtomicU64::new(0),
                bypass: AtomicBool::new(false),
                settings,
            }),
        }
    }
}

/// An entry's lifetime: the TTL, cut short by the token's expiry.
struct EntryExpiry {
    ttl: Duration,
    negative_ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl EntryExpiry {
    fn lifetime<S>(&self, entry: &Entry<S>) -> Duration {
        match entry {
            None => self.negative_ttl,
            Some(record) => record
                .expires_at
                .duration_since(self.clock.now())
                .unwrap_or(Duration::ZERO)
                .min(self.ttl),
        }
    }
}

impl<S> Expiry<TokenDigest, Entry<S>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _digest: &TokenDigest,
        entry: &Entry<S>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }

    fn expire_after_update(
        &self,
        _digest: &TokenDigest,
        entry: &Entry<S>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }
}

impl<St: TokenStore> CachedStore<St> {
    /// A cache with the default settings in front of `store`.
    pub fn new(store: St) -> Self {
        Self::builder(store).build()
    }

    /// A cache in front of `store`, with settings to choose.
    pub fn builder(store: St) -> CachedStoreBuilder<St> {
        CachedStoreBuilder {
            store,
            settings: Settings::default(),
        }
    }

    /// The inner store.
    pub fn get_ref(&self) -> &St {
        &self.inner.store
    }

    /// How many entries the cache holds (approximately: evictions are
    /// applied lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Forgets the token whose digest this is: the next lookup asks the
    /// store.
    pub async fn invalidate(&self, digest: &TokenDigest) {
        self.bump();
        self.inner.cache.invalidate(digest).await;
    }

    /// Forgets every token: each next lookup asks the store.
    pub fn invalidate_all(&self) {
        self.bump();
        self.inner.cache.invalidate_all();
    }

    /// Stops caching and forgets everything, until [`resume`](Self::resume):
    /// every lookup goes to the store. For a source of revocations that may
    /// have missed some (a listener that lost its connection); PostgreSQL's
    /// `RevocationListener` calls it and `resume` by itself.
    pub fn suspend(&self) {
        self.inner.bypass.store(true, Ordering::SeqCst);
        self.invalidate_all();
    }

    /// Forgets everything and caches again, once the source of revocations
    /// is listening again.
    pub fn resume(&self) {
        self.invalidate_all();
        self.inner.bypass.store(false, Ordering::SeqCst);
    }

    fn bump(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Forgets every cached record that `matches`.
    fn evict_where(
        &self,
        matches: impl Fn(&TokenRecord<St::Scopes>) -> bool + Send + Sync + 'static,
    ) {
        self.bump();
        let evicted = self
            .inner
            .cache
            .invalidate_entries_if(move |_, entry| entry.as_deref().is_some_and(&matches));
        if evicted.is_err() {
            // Only when closures are unsupported, which `build` enables.
            self.inner.cache.invalidate_all();
        }
    }

    fn evict_token(&self, id: TokenId) {
        self.evict_where(move |r| r.id == id);
    }

    fn evict_family(&self, family: FamilyId) {
        self.evict_where(move |r| r.family.is_some_and(|f| f.id == family));
    }

    async fn forget_issued(&self, issued: &IssuedToken<St::Scopes>) {
        // A digest looked up before it was issued may be cached as unknown.
        self.invalidate(&issued.record.digest).await;
    }
}

#[async_trait]
impl<St: TokenStore> TokenStore for CachedStore<St> {
    type Scopes = St::Scopes;

    async fn find(&self, digest: &TokenDigest) -> Result<Entry<St::Scopes>, StoreError> {
        if let Some(entry) = self.inner.cache.get(digest).await {
            return Ok(entry);
        }
        let generation = self.generation();
        let loaded = self.inner.store.find(digest).await?;
        let cacheable = match &loaded {
            Some(_) => !self.inner.settings.ttl.is_zero(),
            None => !self.inner.settings.negative_ttl.is_zero(),
        };
        if cacheable && !self.inner.bypass.load(Ordering::SeqCst) && self.generation() == generation
        {
            self.inner.cache.insert(*digest, loaded.clone()).await;
            // An invalidation between the check and the insert may have run
            // before the insert: take the entry back out.
            if self.generation() != generation || self.inner.bypass.load(Ordering::SeqCst) {
                self.inner.cache.invalidate(digest).await;
            }
        }
        Ok(loaded)
    }

    /// A cache hit answers at once; a miss (or a cache busy with its own
    /// housekeeping) leaves it to [`find`](TokenStore::find).
    fn find_now(&self, digest: &TokenDigest) -> Option<Result<Entry<St::Scopes>, StoreError>> {
        // moka's `get` completes without waiting unless it has to run
        // maintenance first; then the lookup goes the asynchronous way.
        let entry = self.inner.cache.get(digest).now_or_never()??;
        Some(Ok(entry))
    }
}

#[async_trait]
impl<St: TokenManager> TokenManager for CachedStore<St> {
    async fn issue(
        &self,
        request: IssueRequest<St::Scopes>,
    ) -> Result<IssuedToken<St::Scopes>, StoreError> {
        let issued = self.inner.store.issue(request).await?;
        self.forget_issued(&issued).await;
        Ok(issued)
    }

    async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<St::Scopes>,
    ) -> Result<TokenPair<St::Scopes>, StoreError> {
        let pair = self.inner.store.issue_pair(name, owner, scopes).await?;
        self.forget_issued(&pair.access).await;
        self.forget_issued(&pair.refresh).await;
        Ok(pair)
    }

    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<St::Scopes>>, StoreError> {
        self.inner.store.list(owner).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<St::Scopes>>, StoreError> {
        self.inner.store.get(id).await
    }

    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        // Evict even when the store failed: the revocation may have landed.
        let revoked = self.inner.store.revoke(id).await;
        self.evict_token(id);
        revoked
    }

    async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError> {
        let revoked = self.inner.store.revoke_family(family).await;
        self.evict_family(family);
        revoked
    }

    async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        let family = self
            .inner
            .store
            .find(digest)
            .await?
            .and_then(|r| r.family.map(|f| f.id));
        let revoked = self.inner.store.revoke_by_digest(digest).await;
        self.invalidate(digest).await;
        if let Some(family) = family {
            self.evict_family(family);
        }
        revoked
    }

    async fn regenerate(&self, id: TokenId) -> Result<Option<IssuedToken<St::Scopes>>, StoreError> {
        let regenerated = self.inner.store.regenerate(id).await;
        self.evict_token(id);
        if let Ok(Some(issued)) = &regenerated {
            self.forget_issued(issued).await;
        }
        regenerated
    }

    async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<St::Scopes>,
    ) -> Result<TokenPair<St::Scopes>, GrantError> {
        let refreshed = self.inner.store.refresh(presented, scopes).await;
        self.invalidate(presented).await;
        match &refreshed {
            Ok(pair) => {
                self.forget_issued(&pair.access).await;
                self.forget_issued(&pair.refresh).await;
            }
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused)) => {
                // The whole family was revoked.
                let family = self.inner.store.find(presented).await;
                match family.map(|r| r.and_then(|r| r.family)) {
                    Ok(Some(family)) => self.evict_family(family.id),
                    Ok(None) => {}
                    Err(_) => self.invalidate_all(),
                }
            }
            Err(_) => {}
        }
        refreshed
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        self.inner.store.record_use(uses).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;
    use crate::store::{IssuePolicy, MemoryStore};
    use crate::token::{ManualClock, TokenKind};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A memory store, a cache in front of it, and one token issued.
    async fn issued_behind_a_cache() -> (MemoryStore<S>, CachedStore<MemoryStore<S>>, IssuedToken<S>)
    {
        let store = MemoryStore::<S>::new();
        let cache = CachedStore::new(store.clone());
        let issued = store
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "x", "u"))
            .await
            .unwrap();
        (store, cache, issued)
    }

    #[test]
    fn a_revocation_behind_the_cache_is_seen_after_invalidate() {
        block_on(async {
            let (store, cache, issued) = issued_behind_a_cache().await;
            let digest = issued.secret.digest();
            assert!(!cache.find(&digest).await.unwrap().unwrap().is_revoked());
            store.revoke(issued.record.id).await.unwrap();
            // Revoked behind the cache's back: still cached...
            assert!(!cache.find(&digest).await.unwrap().unwrap().is_revoked());
            // ...until someone tells it.
            cache.invalidate(&digest).await;
            assert!(cache.find(&digest).await.unwrap().unwrap().is_revoked());
        });
    }

    #[test]
    fn find_now_answers_cache_hits_only_and_follows_invalidation() {
        block_on(async {
            let (_store, cache, issued) = issued_behind_a_cache().await;
            let digest = issued.secret.digest();
            // Not cached yet: the lookup must go to `find`.
            assert!(cache.find_now(&digest).is_none());
            let found = cache.find(&digest).await.unwrap().unwrap();
            let now = cache.find_now(&digest).expect("a hit").unwrap().unwrap();
            assert!(Arc::ptr_eq(&found, &now), "the cached record itself");
            // A revocation through the cache evicts: no stale answer.
            assert!(cache.revoke(issued.record.id).await.unwrap());
            assert!(cache.find_now(&digest).is_none());
            assert!(cache.find(&digest).await.unwrap().unwrap().is_revoked());
            assert!(cache
                .find_now(&digest)
                .unwrap()
                .unwrap()
                .unwrap()
                .is_revoked());
            // A cached miss is an answer too.
            let unknown = TokenDigest::of("never issued");
            assert!(cache.find(&unknown).await.unwrap().is_none());
            assert!(matches!(cache.find_now(&unknown), Some(Ok(None))));
        });
    }

    #[test]
    fn unknown_digests_are_cached_briefly_and_forgotten_on_issue() {
        block_on(async {
            let (store, cache, issued) = issued_behind_a_cache().await;
            let digest = issued.secret.digest();
            let unknown = TokenDigest::of("pr_pat_unknown");
            assert!(cache.find(&unknown).await.unwrap().is_none());
            store.insert(TokenRecord {
                digest: unknown,
                id: TokenId::from_u64(42),
                ..(*issued.record).clone()
            });
            assert!(
                cache.find(&unknown).await.unwrap().is_none(),
                "negative entry"
            );
            cache.invalidate_all();
            assert!(cache.find(&unknown).await.unwrap().is_some());
            assert!(cache.find(&digest).await.unwrap().is_some());
        });
    }

    #[test]
    fn entries_never_outlive_the_token() {
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let expiry = EntryExpiry {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            clock: clock.clone(),
        };
        let store = MemoryStore::<S>::with_policy(IssuePolicy::default().clock(clock.clone()));
        let issued = block_on(store.issue(
            IssueRequest::new(TokenKind::Access, "x", "u").lifetime(Duration::from_secs(10)),
        ))
        .unwrap();
        let entry = Some(Arc::clone(&issued.record));
        assert_eq!(expiry.lifetime(&entry), Duration::from_secs(10));
        clock.advance(Duration::from_secs(11));
        assert_eq!(expiry.lifetime(&entry), Duration::ZERO);
        assert_eq!(expiry.lifetime::<S>(&None), Duration::from_secs(5));
        let long = Some(Arc::new(TokenRecord {
            expires_at: clock.now() + Duration::from_secs(3600),
            ..(*issued.record).clone()
        }));
        assert_eq!(expiry.lifetime(&long), Duration::from_secs(60));
    }

    #[test]
    fn revocations_through_the_cache_evict_at_once() {
        block_on(async {
            let cache = CachedStore::new(MemoryStore::<S>::new());
            let pat = cache
                .issue(IssueRequest::new(TokenKind::PersonalAccess, "x", "u"))
                .await
                .unwrap();
            let pair = cache.issue_pair("agent", "u", None).await.unwrap();
            for t in [&pat, &pair.access] {
                assert!(!cache
                    .find(&t.secret.digest())
                    .await
                    .unwrap()
                    .unwrap()
                    .is_revoked());
            }
            assert!(cache.revoke(pat.record.id).await.unwrap());
            assert!(cache
                .find(&pat.secret.digest())
                .await
                .unwrap()
                .unwrap()
                .is_revoked());
            assert!(cache
                .revoke_by_digest(&pair.refresh.secret.digest())
                .await
                .unwrap());
            assert!(cache
                .find(&pair.access.secret.digest())
                .await
                .unwrap()
                .unwrap()
                .is_revoked());
        });
    }

    #[test]
    fn refresh_reuse_through_the_cache_evicts_the_family() {
        block_on(async {
            let cache = CachedStore::new(MemoryStore::<S>::new());
            let pair = cache.issue_pair("agent", "u", None).await.unwrap();
            let next = cache
                .refresh(&pair.refresh.secret.digest(), None)
                .await
                .unwrap();
            assert!(!cache
                .find(&next.access.secret.digest())
                .await
                .unwrap()
                .unwrap()
                .is_revoked());
            assert!(cache
                .refresh(&pair.refresh.secret.digest(), None)
                .await
                .is_err());
            assert!(cache
                .find(&next.access.secret.digest())
                .await
                .unwrap()
                .unwrap()
                .is_revoked());
        });
    }

    #[test]
    fn a_suspended_cache_asks_the_store_every_time() {
        block_on(async {
            let (store, cache, issued) = issued_behind_a_cache().await;
            let digest = issued.secret.digest();
            cache.suspend();
            assert!(!cache.find(&digest).await.unwrap().unwrap().is_revoked());
            store.revoke(issued.record.id).await.unwrap();
            assert!(cache.find(&digest).await.unwrap().unwrap().is_revoked());
            cache.resume();
            assert!(cache.find(&digest).await.unwrap().unwrap().is_revoked());
        });
    }
}
