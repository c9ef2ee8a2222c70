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
//! When the inner store is a [`TokenBackend`], so is the cache: a
//! [`TokenManager`](crate::manager::TokenManager) over it writes through, and every
//! token that a revocation, scope change or refresh through it changed is
//! evicted at once. Changes made elsewhere (another instance of the
//! service) reach the cache by [`invalidate`](CachedStore::invalidate) and
//! [`invalidate_all`](CachedStore::invalidate_all); with PostgreSQL, the
//! `RevocationListener` of the `postgres` feature calls them on every
//! instance. Without a listener, a change made elsewhere takes effect within
//! the TTL.
//!
//! Entry lifetimes are judged by the system clock, or the one given to
//! [`CachedStoreBuilder::clock`] (the manager's), so tests can move past
//! them with a [`ManualClock`](crate::token::ManualClock).
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth::manager::{IssueRequest, TokenManager};
//! use tower_token_auth::store::{CachedStore, MemoryStore, TokenStore};
//! use tower_token_auth::token::TokenKind;
//! use tower_token_auth::TokenAuthLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_token_auth::manager::TokenError> {
//! let cache = CachedStore::builder(MemoryStore::new())
//!     .max_entries(10_000)
//!     .ttl(Duration::from_secs(60))
//!     .build();
//! let tokens = TokenManager::new(cache);
//!
//! let issued = tokens
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
//!     .await?;
//! let digest = issued.secret.digest();
//! assert!(tokens.find(digest.into()).await?.is_some()); // from the store, now cached
//!
//! // A revocation through the cache evicts the token at once.
//! tokens.revoke(issued.record.id).await?;
//! assert!(tokens.find(digest.into()).await?.expect("still known").is_revoked());
//!
//! let layer = TokenAuthLayer::new(tokens);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use quick_cache::sync::Cache;

use super::{Exchange, ExchangeOutcome, SharedRecord, TokenBackend, TokenStore};
use crate::error::StoreError;
use crate::token::{Clock, FamilyId, Lookup, SystemClock, TokenDigest, TokenId, TokenRecord};

/// The default bound on cached entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// The default lifetime of an entry for a known token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// The default lifetime of an entry for an unknown digest.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What a lookup answers: the record, or `None` for a digest the store did
/// not know.
type Entry<S> = Option<Arc<TokenRecord<S>>>;

/// What the cache holds for a digest: the answer, and until when it may be
/// given (by the store's clock).
#[derive(Clone)]
struct Cached<S> {
    entry: Entry<S>,
    until: SystemTime,
}

/// A caching [`TokenStore`]. See the [module docs](self).
///
/// Cloning is cheap: every clone shares the cache and the store.
pub struct CachedStore<St: TokenStore> {
    inner: Arc<Inner<St>>,
}

struct Inner<St: TokenStore> {
    store: St,
    cache: Cache<TokenDigest, Cached<St::Scopes>>,
    clock: Arc<dyn Clock>,
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
            .field("entries", &self.inner.cache.len())
            .finish()
    }
}

/// Builds a [`CachedStore`]: bounds and lifetimes of its entries. From
/// [`CachedStore::builder`].
pub struct CachedStoreBuilder<St> {
    store: St,
    settings: Settings,
    clock: Option<Arc<dyn Clock>>,
}

#[derive(Debug, Clone)]
struct Settings {
    max_entries: u64,
    ttl: Duration,
    negative_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
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
    #[must_use]
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.settings.max_entries = max_entries;
        self
    }

    /// How long a known token stays cached (default [`DEFAULT_TTL`]), and
    /// never past its expiry. Without a revocation listener, this is how
    /// long a revocation made elsewhere may take to be seen here.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long an unknown digest is remembered as unknown (default
    /// [`DEFAULT_NEGATIVE_TTL`]). Zero disables negative caching.
    #[must_use]
    pub fn negative_ttl(mut self, negative_ttl: Duration) -> Self {
        self.settings.negative_ttl = negative_ttl;
        self
    }

    /// Judges entry lifetimes by `clock` instead of the system clock: give
    /// it the clock of the manager over the cache (a test whose manager runs
    /// by a [`ManualClock`](crate::token::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The cache.
    pub fn build(self) -> CachedStore<St> {
        let settings = self.settings;
        // Bounded by the number of entries; the store's clock decides when
        // an entry may no longer be given (see `Cached::until`), and an
        // outdated one stays until a newer lookup replaces it or the bound
        // evicts it.
        let cache = Cache::new(usize::try_from(settings.max_entries.max(1)).unwrap_or(usize::MAX));
        CachedStore {
            inner: Arc::new(Inner {
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                store: self.store,
                cache,
                generation: AtomicU64::new(0),
                bypass: AtomicBool::new(false),
                settings,
            }),
        }
    }
}

impl Settings {
    /// How long `entry` may be given from `now`: the TTL, cut short by the
    /// token's own expiry; the negative TTL for an unknown digest.
    fn lifetime<S>(&self, entry: &Entry<S>, now: SystemTime) -> Duration {
        match entry {
            None => self.negative_ttl,
            Some(record) => record
                .expires_at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(self.ttl),
        }
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
            clock: None,
        }
    }

    /// The inner store.
    pub fn get_ref(&self) -> &St {
        &self.inner.store
    }

    /// How many entries the cache holds (approximately: evictions are
    /// applied lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.len() as u64
    }

    /// Forgets the token whose digest this is: the next lookup asks the
    /// store.
    pub async fn invalidate(&self, digest: &TokenDigest) {
        self.bump();
        self.inner.cache.remove(digest);
    }

    /// Forgets every token: each next lookup asks the store.
    pub fn invalidate_all(&self) {
        self.bump();
        self.inner.cache.clear();
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
        self.inner
            .cache
            .retain(move |_, cached| !cached.entry.as_deref().is_some_and(&matches));
    }

    fn evict_token(&self, id: TokenId) {
        self.evict_where(move |r| r.id == id);
    }

    fn evict_family(&self, family: FamilyId) {
        self.evict_where(move |r| r.family.is_some_and(|f| f.id == family));
    }
}

impl<St: TokenStore> CachedStore<St> {
    /// The cached answer for `digest`, if there is one still valid.
    fn fresh(&self, cached: Option<Cached<St::Scopes>>) -> Option<Entry<St::Scopes>> {
        let cached = cached?;
        (self.inner.clock.now() < cached.until).then_some(cached.entry)
    }
}

#[async_trait]
impl<St: TokenStore> TokenStore for CachedStore<St> {
    type Scopes = St::Scopes;

    async fn find(&self, key: Lookup<'_>) -> Result<Entry<St::Scopes>, StoreError> {
        self.load(key).await
    }

    /// A cache hit answers at once; a miss (or a cache busy with its own
    /// housekeeping) leaves it to [`find`](TokenStore::find).
    fn find_now(&self, digest: &TokenDigest) -> Option<Result<Entry<St::Scopes>, StoreError>> {
        self.fresh(self.inner.cache.get(digest)).map(Ok)
    }
}

impl<St: TokenStore> CachedStore<St> {
    /// The cached answer for `key`'s digest, or the store's, cached unless
    /// an invalidation overtook the lookup.
    async fn load(&self, key: Lookup<'_>) -> Result<Entry<St::Scopes>, StoreError> {
        let digest = &key.digest();
        if let Some(entry) = self.fresh(self.inner.cache.get(digest)) {
            return Ok(entry);
        }
        let generation = self.generation();
        let loaded = self.inner.store.find(key).await?;
        let now = self.inner.clock.now();
        let lifetime = self.inner.settings.lifetime(&loaded, now);
        if !lifetime.is_zero()
            && !self.inner.bypass.load(Ordering::SeqCst)
            && self.generation() == generation
        {
            let cached = Cached {
                entry: loaded.clone(),
                until: now + lifetime,
            };
            self.inner.cache.insert(*digest, cached);
            // An invalidation between the check and the insert may have run
            // before the insert: take the entry back out.
            if self.generation() != generation || self.inner.bypass.load(Ordering::SeqCst) {
                self.inner.cache.remove(digest);
            }
        }
        Ok(loaded)
    }
}

/// Writes go to the inner backend; whatever they change is evicted.
#[async_trait]
impl<St: TokenBackend> TokenBackend for CachedStore<St> {
    async fn insert(&self, records: &[TokenRecord<St::Scopes>]) -> Result<(), StoreError> {
        let inserted = self.inner.store.insert(records).await;
        // A digest looked up before it was issued may be cached as unknown.
        for record in records {
            self.invalidate(&record.digest).await;
        }
        inserted
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<St::Scopes>>, StoreError> {
        self.inner.store.get(id).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<St::Scopes>>, StoreError> {
        self.inner.store.list(owner).await
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: St::Scopes,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<St::Scopes>>, StoreError> {
        // Evict even when the store failed: the change may have landed.
        let updated = self.inner.store.update_scopes(id, scopes, now).await;
        self.evict_token(id);
        updated
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<St::Scopes>>, StoreError> {
        let revoked = self.inner.store.revoke(id, at).await;
        self.evict_token(id);
        revoked
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<St::Scopes>>, StoreError> {
        let revoked = self.inner.store.revoke_family(family, at).await;
        self.evict_family(family);
        revoked
    }

    async fn exchange(
        &self,
        exchange: &Exchange<St::Scopes>,
    ) -> Result<ExchangeOutcome, StoreError> {
        let outcome = self.inner.store.exchange(exchange).await;
        // The presented token is spent, superseded tokens of the family are
        // gone, and the new pair may be cached as unknown.
        self.invalidate(&exchange.presented).await;
        self.evict_family(exchange.family);
        self.invalidate(&exchange.access.digest).await;
        self.invalidate(&exchange.refresh.digest).await;
        outcome
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        self.inner.store.record_use(uses).await
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        self.inner.store.purge(cutoff).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    use super::*;
    use crate::manager::{IssuePolicy, IssueRequest, IssuedToken, TokenManager};
    use crate::scope::PayRequestScopes as S;
    use crate::store::MemoryStore;
    use crate::token::{ManualClock, TokenKind};

    const TTL: Duration = Duration::from_secs(60);
    const NEGATIVE_TTL: Duration = Duration::from_secs(5);

    /// A memory store with a manager over it (the "other instance" that
    /// changes tokens behind the cache's back), a cache over the same store,
    /// and the clock they share.
    struct Setup {
        store: MemoryStore<S>,
        behind: TokenManager<MemoryStore<S>>,
        cache: CachedStore<MemoryStore<S>>,
        clock: Arc<ManualClock>,
    }

    fn setup() -> Setup {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let store = MemoryStore::<S>::new();
        let behind =
            TokenManager::with_policy(store.clone(), IssuePolicy::default().clock(clock.clone()));
        let cache = CachedStore::builder(store.clone())
            .ttl(TTL)
            .negative_ttl(NEGATIVE_TTL)
            .clock(clock.clone())
            .build();
        Setup {
            store,
            behind,
            cache,
            clock,
        }
    }

    impl Setup {
        async fn issue(&self, lifetime: Option<Duration>) -> IssuedToken<S> {
            let mut request = IssueRequest::new(TokenKind::Access, "x", "u");
            if let Some(lifetime) = lifetime {
                request = request.lifetime(lifetime);
            }
            self.behind.issue(request).await.unwrap()
        }

        async fn revoked_through_cache(&self, digest: &TokenDigest) -> bool {
            self.cache
                .find(digest.into())
                .await
                .unwrap()
                .unwrap()
                .is_revoked()
        }
    }

    #[tokio::test]
    async fn a_known_token_is_cached_for_the_ttl_by_the_store_clock() {
        let s = setup();
        let issued = s.issue(None).await;
        let digest = issued.secret.digest();
        assert!(!s.revoked_through_cache(&digest).await);
        s.behind.revoke(issued.record.id).await.unwrap();
        s.clock.advance(TTL - Duration::from_millis(1));
        assert!(
            !s.revoked_through_cache(&digest).await,
            "within the TTL the cached answer stands"
        );
        s.clock.advance(Duration::from_millis(1));
        assert!(
            s.cache.find_now(&digest).is_none(),
            "an entry past its TTL is not a hit"
        );
        assert!(
            s.revoked_through_cache(&digest).await,
            "at the TTL the store is asked again"
        );
    }

    #[tokio::test]
    async fn an_entry_never_outlives_its_token() {
        let s = setup();
        let issued = s.issue(Some(Duration::from_secs(10))).await;
        let digest = issued.secret.digest();
        assert!(!s.revoked_through_cache(&digest).await);
        s.behind.revoke(issued.record.id).await.unwrap();
        s.clock.advance(Duration::from_secs(9));
        assert!(!s.revoked_through_cache(&digest).await);
        s.clock.advance(Duration::from_secs(1));
        assert!(
            s.revoked_through_cache(&digest).await,
            "the token's expiry, 10 s, cuts the 60 s TTL short"
        );
    }

    #[tokio::test]
    async fn an_unknown_digest_is_cached_for_the_negative_ttl() {
        let s = setup();
        let issued = s.issue(None).await;
        let unknown = TokenDigest::of("pr_at_not_yet_stored");
        assert!(s.cache.find(unknown.into()).await.unwrap().is_none());
        assert!(matches!(s.cache.find_now(&unknown), Some(Ok(None))));
        // Stored behind the cache's back (an insert through the cache would
        // forget the negative entry).
        let record = TokenRecord {
            digest: unknown,
            id: TokenId::from_u64(42),
            ..(*issued.record).clone()
        };
        s.store.insert(&[record]).await.unwrap();
        s.clock.advance(NEGATIVE_TTL - Duration::from_millis(1));
        assert!(s.cache.find(unknown.into()).await.unwrap().is_none());
        s.clock.advance(Duration::from_millis(1));
        assert!(s.cache.find(unknown.into()).await.unwrap().is_some());
    }

    /// A store whose next lookup parks after it has read its answer, until
    /// released: the window in which a revocation can overtake it.
    struct SlowLookup {
        store: MemoryStore<S>,
        gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    }

    #[async_trait]
    impl TokenStore for SlowLookup {
        type Scopes = S;

        async fn find(&self, key: Lookup<'_>) -> Result<Entry<S>, StoreError> {
            let found = self.store.find(key).await;
            let gate = self.gate.lock().unwrap().take();
            if let Some((reached, release)) = gate {
                let _ = reached.send(());
                let _ = release.await;
            }
            found
        }

        /// Always waits: the test parks the lookup.
        fn find_now(&self, _digest: &TokenDigest) -> Option<Result<Entry<S>, StoreError>> {
            None
        }
    }

    #[tokio::test]
    async fn a_lookup_overtaken_by_an_invalidation_is_not_cached() {
        let s = setup();
        let issued = s.issue(None).await;
        let digest = issued.secret.digest();
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        let slow = SlowLookup {
            store: s.store.clone(),
            gate: Mutex::new(Some((reached_tx, release_rx))),
        };
        let cache = CachedStore::builder(slow).clock(s.clock.clone()).build();
        let lookup = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.find(digest.into()).await })
        };
        reached_rx.await.unwrap();
        // While the lookup holds the live record: revoked elsewhere, and the
        // listener tells this cache.
        s.behind.revoke(issued.record.id).await.unwrap();
        cache.invalidate(&digest).await;
        release_tx.send(()).unwrap();
        let stale = lookup.await.unwrap().unwrap().unwrap();
        assert!(!stale.is_revoked(), "the lookup read before the revocation");
        assert!(
            cache
                .find(digest.into())
                .await
                .unwrap()
                .unwrap()
                .is_revoked(),
            "what it read was not cached"
        );
    }

    #[tokio::test]
    async fn find_now_answers_cache_hits_only() {
        let s = setup();
        let issued = s.issue(None).await;
        let digest = issued.secret.digest();
        assert!(s.cache.find_now(&digest).is_none());
        let found = s.cache.find(digest.into()).await.unwrap().unwrap();
        let now = s.cache.find_now(&digest).expect("a hit").unwrap().unwrap();
        assert!(Arc::ptr_eq(&found, &now), "the cached record itself");
    }

    #[tokio::test]
    async fn a_suspended_cache_asks_the_store_every_time() {
        let s = setup();
        let issued = s.issue(None).await;
        let digest = issued.secret.digest();
        s.cache.suspend();
        assert!(!s.revoked_through_cache(&digest).await);
        s.behind.revoke(issued.record.id).await.unwrap();
        assert!(s.revoked_through_cache(&digest).await);
        s.cache.resume();
        assert!(s.revoked_through_cache(&digest).await);
    }

    #[tokio::test]
    async fn writes_through_the_cache_evict_what_they_change() {
        let s = setup();
        let tokens = TokenManager::with_policy(
            s.cache.clone(),
            IssuePolicy::default().clock(s.clock.clone()),
        );
        let pat = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "x", "u").scopes(S::BILLING_AGENT))
            .await
            .unwrap();
        let digest = pat.secret.digest();
        assert_eq!(
            tokens.find(digest.into()).await.unwrap().unwrap().scopes,
            S::BILLING_AGENT
        );
        tokens
            .set_scopes(pat.record.id, S::BILLING_READ)
            .await
            .unwrap();
        assert_eq!(
            s.cache
                .find_now(&digest)
                .map(|r| r.unwrap().unwrap().scopes),
            None,
            "a scope change evicts"
        );
        assert_eq!(
            tokens.find(digest.into()).await.unwrap().unwrap().scopes,
            S::BILLING_READ
        );
        tokens.revoke(pat.record.id).await.unwrap();
        assert!(tokens
            .find(digest.into())
            .await
            .unwrap()
            .unwrap()
            .is_revoked());
    }
}
