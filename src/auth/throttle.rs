//! Brute-force throttling of failed authentications (feature `throttle`).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};
use http::{Extensions, HeaderMap};

use super::peer::{ClientKey, PeerResolver};

type KeyFn = dyn Fn(&Extensions, &HeaderMap) -> Option<ClientKey> + Send + Sync;

/// Counts failed authentications per client and answers 429 with
/// `Retry-After` once a client's budget is spent.
///
/// Only failures that look like guessing count: a malformed, unknown,
/// revoked or expired token, or a malformed request; a missing token or a
/// store outage does not. A throttled client is refused before its token is
/// read, so a flood costs no store lookups; other clients are unaffected.
///
/// The key is the peer's IP ([`PeerAddr`](super::PeerAddr) or axum's
/// `ConnectInfo`), or what [`key_fn`](Self::key_fn) returns. An IPv6
/// client is keyed by its /64 (one subscriber holds at least that many
/// addresses), an IPv4-mapped IPv6 address by its IPv4 address.
///
/// It fails closed. Requests with no key (no peer address, or `key_fn`
/// answered `None`) share one budget of the same quota. Memory is bounded
/// by [`max_clients`](Self::max_clients): once that many clients hold
/// failures, recovered ones are pruned (at most once per replenish
/// interval, and at least a second apart, so a flood does not turn every
/// failure into a scan of the table), and a new client the table still
/// has no room for is counted in that shared budget too; while it is spent,
/// such clients are refused. Clients already in the table keep their own
/// budgets.
///
/// ```
/// use std::num::NonZeroU32;
/// use tower_token_auth::{MemoryStore, TokenAuthLayer};
/// use tower_token_auth::auth::Throttle;
///
/// // 10 failures per minute per client, in bursts of up to 10.
/// let throttle = Throttle::per_minute(NonZeroU32::new(10).unwrap());
/// let layer = TokenAuthLayer::new(MemoryStore::new()).throttle(throttle);
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

/// What a throttle is built from: kept whole, so a later setting never
/// loses an earlier one.
#[derive(Clone)]
struct Settings {
    quota: Quota,
    max_clients: usize,
    key_fn: Option<Arc<KeyFn>>,
}

/// A keyed limiter whose successful checks report the remaining budget.
type Limiter = RateLimiter<ClientKey, Table, ThrottleClock, StateInformationMiddleware>;

/// The limiter of the clients the table has no room for, and of requests
/// without a key.
type SharedLimiter =
    RateLimiter<NotKeyed, InMemoryState, ThrottleClock, StateInformationMiddleware>;

struct Inner {
    settings: Settings,
    clock: ThrottleClock,
    /// The clients with failures on record, shared with `limiter`.
    table: Table,
    limiter: Limiter,
    /// Until when each throttled client is refused (clock nanoseconds).
    blocked: DashMap<ClientKey, u64>,
    shared: SharedLimiter,
    /// Until when the shared budget's clients are refused (0: not).
    shared_until: AtomicU64,
    /// When the table was last pruned.
    last_prune: AtomicU64,
    /// How often the table was pruned (for `Debug`).
    prunes: AtomicU64,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Throttle")
            .field("tracked", &inner.table.0.len())
            .field("blocked", &inner.blocked.len())
            .field("max_clients", &inner.settings.max_clients)
            .field(
                "shared_blocked",
                &inner.shared_blocked_for(inner.now()).is_some(),
            )
            .field("prunes", &inner.prunes.load(Ordering::Relaxed))
            .finish()
    }
}

/// The default bound on tracked clients.
const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// The shortest time between two prunes of a full table.
const MIN_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

impl Throttle {
    /// Allows `failures` failed authentications per minute per client, in
    /// bursts of up to `failures`.
    pub fn per_minute(failures: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(failures))
    }

    /// Allows failures at the rate and burst of `quota`.
    pub fn with_quota(quota: Quota) -> Self {
        Self::build(Settings {
            quota,
            max_clients: DEFAULT_MAX_CLIENTS,
            key_fn: None,
        })
    }

    fn build(settings: Settings) -> Self {
        let clock = ThrottleClock::monotonic();
        let table = Table::default();
        Self {
            inner: Arc::new(Inner {
                limiter: RateLimiter::<_, _, _, NoOpMiddleware<Nanos>>::new(
                    settings.quota,
                    table.clone(),
                    clock.clone(),
                )
                .with_middleware(),
                shared: RateLimiter::direct_with_clock(settings.quota, clock.clone())
                    .with_middleware(),
                table,
                clock,
                blocked: DashMap::new(),
                shared_until: AtomicU64::new(0),
                last_prune: AtomicU64::new(0),
                prunes: AtomicU64::new(0),
                settings,
            }),
        }
    }

    /// A throttle with `change` applied to this one's settings. Counts
    /// start afresh: set everything up before the throttle is used.
    fn reconfigure(&self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        Self::build(settings)
    }

    /// Bounds how many clients are tracked at once (default 100 000).
    pub fn max_clients(self, max: usize) -> Self {
        self.reconfigure(|s| s.max_clients = max.max(1))
    }

    /// Derives the client key from the request instead of the peer IP.
    pub fn key_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Extensions, &HeaderMap) -> Option<ClientKey> + Send + Sync + 'static,
    {
        self.reconfigure(|s| s.key_fn = Some(Arc::new(f)))
    }

    pub(crate) fn key(
        &self,
        extensions: &Extensions,
        headers: &HeaderMap,
        peer: &PeerResolver,
    ) -> Option<ClientKey> {
        let key = match &self.inner.settings.key_fn {
            Some(f) => f(extensions, headers),
            None => peer.resolve(extensions).map(ClientKey::Ip),
        };
        key.map(ClientKey::normalized)
    }

    /// How long the client of `key` (`None`: a request with no key) must
    /// still wait, if it is throttled.
    pub(crate) fn blocked_for(&self, key: Option<&ClientKey>) -> Option<Duration> {
        let inner = &self.inner;
        let now = inner.now();
        let Some(key) = key else {
            return inner.shared_blocked_for(now);
        };
        if let Some(until) = inner.blocked.get(key).map(|until| *until) {
            if now < until {
                return Some(Duration::from_nanos(until - now));
            }
            inner.blocked.remove_if(key, |_, until| *until <= now);
        }
        // Only while the shared budget is spent: a client the table holds
        // has a budget of its own.
        let shared = inner.shared_blocked_for(now)?;
        (!inner.table.0.contains_key(key)).then_some(shared)
    }

    /// Counts a failure against the client of `key` (`None`: a request
    /// with no key).
    pub(crate) fn failure(&self, key: Option<&ClientKey>) {
        let inner = &self.inner;
        let Some(key) = key else {
            return inner.shared_failure();
        };
        if !inner.table.0.contains_key(key) && inner.table.0.len() >= inner.settings.max_clients {
            inner.prune_if_due();
            if inner.table.0.len() >= inner.settings.max_clients {
                return inner.shared_failure();
            }
        }
        let now = inner.now();
        if let Some(until) = inner.until(inner.limiter.check_key(key), now) {
            inner.blocked.insert(key.clone(), until);
        }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        governor::clock::Clock::now(&self.clock).as_u64()
    }

    /// Until when a client is refused after a failure that `outcome`
    /// judged, or `None` if it has budget left.
    ///
    /// Blocked as soon as the budget is empty, not when a failure overflows
    /// it: otherwise each refilled cell would let one more guess through
    /// before the block, twice the quota.
    fn until(
        &self,
        outcome: Result<governor::middleware::StateSnapshot, NotUntil<Nanos>>,
        now: u64,
    ) -> Option<u64> {
        match outcome {
            Ok(state) if state.remaining_burst_capacity() == 0 => {
                let interval = self.settings.quota.replenish_interval();
                Some(now.saturating_add(u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX)))
            }
            Ok(_) => None,
            Err(not_until) => Some(not_until.earliest_possible().as_u64()),
        }
    }

    fn shared_blocked_for(&self, now: u64) -> Option<Duration> {
        let until = self.shared_until.load(Ordering::Acquire);
        (now < until).then(|| Duration::from_nanos(until - now))
    }

    fn shared_failure(&self) {
        let now = self.now();
        if let Some(until) = self.until(self.shared.check(), now) {
            self.shared_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Drops the clients that have recovered, unless the table was pruned
    /// less than an interval ago: a prune takes every shard's lock.
    fn prune_if_due(&self) {
        let now = self.now();
        let interval = self
            .settings
            .quota
            .replenish_interval()
            .max(MIN_PRUNE_INTERVAL);
        let interval = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_prune.load(Ordering::Acquire);
        let due = self.prunes.load(Ordering::Relaxed) == 0 || now.saturating_sub(last) >= interval;
        if !due
            || self
                .last_prune
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.prunes.fetch_add(1, Ordering::Relaxed);
        self.limiter.retain_recent();
        self.blocked.retain(|_, until| *until > now);
        if self.table.0.len() >= self.settings.max_clients {
            tracing::warn!(
                target: "tower_token_auth::throttle",
                tracked = self.table.0.len(),
                "too many clients with failures to track; new ones share one budget"
            );
        }
    }
}

impl ClientKey {
    /// The key a client is counted under: an IPv4-mapped address as its
    /// IPv4 address, an IPv6 address as its /64.
    fn normalized(self) -> Self {
        match self {
            Self::Ip(ip) => Self::Ip(match ip.to_canonical() {
                IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
                v4 => v4,
            }),
            named => named,
        }
    }
}

/// The clients with failures on record: governor's own keyed state, behind
/// an `Arc` so the throttle can ask whether a client is in it.
#[derive(Clone, Default)]
struct Table(Arc<DashMap<ClientKey, InMemoryState>>);

impl StateStore for Table {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for Table {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&*self.0, drop_below);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The throttle's time: nanoseconds on a monotonic clock since the
/// throttle was built.
#[derive(Clone)]
struct ThrottleClock {
    start: Instant,
}

impl ThrottleClock {
    fn monotonic() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl governor::clock::Clock for ThrottleClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::auth::PeerAddr;
    use crate::store::{IssueRequest, MemoryStore, TokenManager};
    use crate::token::{TokenFormat, TokenKind};
    use crate::TokenAuthLayer;

    fn request(ip: [u8; 4], token: &str) -> Request<Full<Bytes>> {
        let mut request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::from((ip, 5000))));
        request
    }

    #[tokio::test]
    async fn a_client_that_keeps_failing_gets_429_and_others_do_not() {
        let store = MemoryStore::new();
        let good = store
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "ok", "u"))
            .await
            .unwrap();
        let throttle = Throttle::per_minute(NonZeroU32::new(3).unwrap());
        let svc = ServiceBuilder::new()
            .layer(TokenAuthLayer::new(store).throttle(throttle.clone()))
            .service(service_fn(|_r: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        let unknown = TokenFormat::default()
            .generate(TokenKind::PersonalAccess)
            .unwrap();
        let attacker = [203, 0, 113, 9];
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let r = svc
                .clone()
                .oneshot(request(attacker, unknown.expose_secret()))
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
            }
        }
        // Three failures spend the budget; the fourth attempt is refused.
        assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
        // Throttled before the token is read: even garbage gets 429.
        let r = svc
            .clone()
            .oneshot(request(attacker, "garbage"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another client with a valid token is unaffected.
        let r = svc
            .clone()
            .oneshot(request([198, 51, 100, 7], good.secret.expose_secret()))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(format!("{throttle:?}").contains("blocked: 1"));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_distinct_clients() {
        let throttle = Throttle::per_minute(NonZeroU32::new(2).unwrap()).max_clients(100);
        for i in 0..20_000u32 {
            let key = ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(i)));
            throttle.failure(Some(&key));
        }
        assert!(
            throttle.inner.table.0.len() <= 100,
            "{}",
            throttle.inner.table.0.len()
        );
        assert!(throttle.inner.blocked.len() <= 100);
    }

    #[test]
    fn key_fn_replaces_the_peer_address() {
        let throttle = Throttle::per_minute(NonZeroU32::new(1).unwrap()).key_fn(|_, headers| {
            headers
                .get("x-client-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| ClientKey::Named(v.into()))
        });
        let mut headers = HeaderMap::new();
        headers.insert("x-client-id", "acme".parse().unwrap());
        let key = throttle.key(&Extensions::new(), &headers, &PeerResolver::default());
        assert_eq!(key, Some(ClientKey::Named("acme".into())));
        assert_eq!(
            throttle.key(
                &Extensions::new(),
                &HeaderMap::new(),
                &PeerResolver::default()
            ),
            None
        );
    }

    /// Full-table scans happen at most once per interval, not on every
    /// failure that finds the table full: each scan takes every shard's
    /// write lock, contending with the check every request makes.
    #[test]
    fn a_full_table_is_pruned_at_most_once_per_interval() {
        let throttle = Throttle::per_minute(NonZeroU32::new(2).unwrap()).max_clients(50);
        let key = |i: u32| ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        for i in 0..5_000 {
            throttle.failure(Some(&key(i)));
        }
        let prunes = throttle.inner.prunes.load(Ordering::Relaxed);
        assert!(
            prunes <= 1,
            "{prunes} full-table scans for 4950 failures in one interval"
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_their_ipv4() {
        let key = |ip: &str| ClientKey::Ip(ip.parse().unwrap()).normalized();
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::"), key("2001:db8:1:3::"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(
            key("192.0.2.1"),
            ClientKey::Ip("192.0.2.1".parse().unwrap())
        );
        // The IPv4-compatible form is an IPv6 address like any other.
        assert_ne!(key("::192.0.2.1"), key("192.0.2.1"));
        let named = ClientKey::Named("acme".into());
        assert_eq!(named.clone().normalized(), named);
    }
}
