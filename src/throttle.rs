//! Brute-force throttling of failed authentications (feature `throttle`):
//! [`ThrottleLayer`].
//!
//! The layer wraps any route that authenticates and counts its failures
//! per client: 429 `too_many_requests` with `Retry-After` once a client's
//! budget is spent, before the inner service runs, so a throttled client's
//! guesses cost no store lookups. Other clients are unaffected.
//!
//! It reads what failed from the response: an [`AuthError`] of a guessing
//! kind in its extensions (a malformed, unknown, revoked or expired token,
//! or a malformed request, as [`TokenAuthLayer`](crate::TokenAuthLayer)'s
//! rejections carry), or a [`FailedAuthentication`] marker that any other
//! route puts there (a wrong password, an `invalid_grant` of
//! [`TokenEndpoint`](crate::oauth::TokenEndpoint)). A missing token, a
//! missing scope or a store outage does not count.
//!
//! ```
//! use std::num::NonZeroU32;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_auth::peer::PeerAddr;
//! use tower_token_auth::throttle::ThrottleLayer;
//! use tower_token_auth::error::FailedAuthentication;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A login that refuses every password, and says so to the throttle.
//! let login = ServiceBuilder::new()
//!     .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         let mut refused = Response::new(Full::new(Bytes::from("wrong password")));
//!         *refused.status_mut() = StatusCode::UNAUTHORIZED;
//!         refused.extensions_mut().insert(FailedAuthentication);
//!         Ok::<_, std::convert::Infallible>(refused)
//!     }));
//! let attempt = |peer: &str| {
//!     let mut request = Request::post("/login").body(Full::default()).unwrap();
//!     request.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
//!     request
//! };
//!
//! for _ in 0..3 {
//!     let response = login.clone().oneshot(attempt("203.0.113.7:5000")).await?;
//!     assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! }
//! // The budget is spent: refused before the login runs.
//! let response = login.clone().oneshot(attempt("203.0.113.7:5001")).await?;
//! assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(response.headers()["retry-after"], "20");
//! // Another client is not affected.
//! let response = login.oneshot(attempt("198.51.100.1:5000")).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dashmap::DashMap;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware, StateSnapshot};
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};
use http::{Extensions, HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{Audit, AuditEvent};
use crate::body::ResponseBody;
use crate::error::{AuthError, FailedAuthentication, Rejections};
use crate::peer::{ClientKey, Peers};
use crate::token::Clock;

type KeyFn = dyn Fn(&Extensions, &HeaderMap) -> Option<ClientKey> + Send + Sync;

/// Counts failed authentications per client and answers 429 with
/// `Retry-After` once a client's budget is spent. See the
/// [module docs](self).
///
/// The client is the [`Peers::client_ip`] of the request (the peer, or
/// what a trusted proxy says), or what [`key_fn`](Self::key_fn) returns.
/// An IPv6 client is counted by its /64 (one subscriber holds at least that
/// many addresses), an IPv4-mapped IPv6 address as its IPv4 address.
///
/// It fails closed. Requests with no key (no peer address, a trusted
/// proxy's headers naming no address, or `key_fn` answering `None`) share
/// one budget of the same quota. Memory is bounded by
/// [`max_clients`](Self::max_clients): once that many clients hold
/// failures, the ones that have recovered are pruned (at most once per
/// replenish interval, and at least a second apart, so a flood does not
/// turn every failure into a scan of the table), and a new client the table
/// still has no room for is counted in that shared budget too; while it is
/// spent, such clients are refused. Clients already in the table keep their
/// own budgets.
///
/// What that costs: while the table is full and the shared budget is
/// spent (a flood of failures from more distinct clients than
/// [`max_clients`](Self::max_clients), which takes a distributed attack),
/// a client the table has never seen is refused with 429 *even with a
/// valid token*: the throttle answers before the credentials are looked
/// at, so that the flood costs no store lookups. Clients seen before keep
/// working. Size [`max_clients`](Self::max_clients) for the distinct
/// clients you expect to fail in one replenish interval (the default holds
/// 100 000); a deployment that prefers to let unknown clients through under
/// such a flood must put its own limit in front instead.
///
/// Every clone (and every service it builds) shares the counts, so one
/// layer on several routes is one budget per client across them.
/// [`max_clients`](Self::max_clients) and [`clock`](Self::clock) start the
/// counts afresh; the other settings keep them.
#[derive(Clone)]
pub struct ThrottleLayer {
    settings: Arc<Settings>,
    state: Arc<State>,
}

/// What decides who a request is and how a refusal looks.
#[derive(Clone)]
struct Settings {
    key_fn: Option<Arc<KeyFn>>,
    peers: Peers,
    challenge: Rejections,
    audit: Audit,
}

/// A keyed limiter whose successful checks report the remaining budget.
type Limiter = RateLimiter<ClientKey, Table, ThrottleClock, StateInformationMiddleware>;

/// The limiter of the clients the table has no room for, and of requests
/// without a key.
type SharedLimiter =
    RateLimiter<NotKeyed, InMemoryState, ThrottleClock, StateInformationMiddleware>;

/// The counts.
struct State {
    quota: Quota,
    max_clients: usize,
    clock: ThrottleClock,
    /// The clients with failures on record, shared with `limiter`.
    table: Table,
    limiter: Limiter,
    /// Until when each throttled client is refused (clock nanoseconds).
    blocked: DashMap<ClientKey, u64>,
    shared: SharedLimiter,
    /// Until when the shared budget's clients are refused.
    shared_until: AtomicU64,
    /// When the table was last pruned.
    last_prune: AtomicU64,
    /// How often the table was pruned (for `Debug`).
    prunes: AtomicU64,
    /// Whether a request without a key was seen (warned about once).
    keyless_seen: AtomicBool,
}

impl fmt::Debug for ThrottleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.state;
        f.debug_struct("ThrottleLayer")
            .field("quota", &state.quota)
            .field("tracked", &state.table.0.len())
            .field("blocked", &state.blocked.len())
            .field("max_clients", &state.max_clients)
            .field(
                "shared_blocked",
                &state.shared_blocked_for(state.now()).is_some(),
            )
            .field("prunes", &state.prunes.load(Ordering::Relaxed))
            .field("peers", &self.settings.peers)
            .field("key_fn", &self.settings.key_fn.is_some())
            .finish()
    }
}

/// The default bound on tracked clients.
const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// The shortest time between two prunes of a full table.
const MIN_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

// ===== impl ThrottleLayer =====

impl ThrottleLayer {
    /// Allows `failures` failed authentications per minute per client, in
    /// bursts of up to `failures`.
    pub fn per_minute(failures: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(failures))
    }

    /// Allows failures at the rate and burst of `quota`.
    pub fn with_quota(quota: Quota) -> Self {
        Self {
            settings: Arc::new(Settings {
                key_fn: None,
                peers: Peers::default(),
                challenge: Rejections::default(),
                audit: Audit::default(),
            }),
            state: Arc::new(State::new(
                quota,
                DEFAULT_MAX_CLIENTS,
                ThrottleClock::monotonic(),
            )),
        }
    }

    /// Bounds how many clients are tracked at once (default 100 000).
    /// Counts start afresh.
    #[must_use]
    pub fn max_clients(mut self, max: usize) -> Self {
        let state = &self.state;
        self.state = Arc::new(State::new(state.quota, max.max(1), state.clock.clone()));
        self
    }

    /// Judges time by `clock` instead of the system's monotonic clock: for
    /// tests (a [`ManualClock`](crate::token::ManualClock)). Counts start
    /// afresh.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let state = &self.state;
        self.state = Arc::new(State::new(
            state.quota,
            state.max_clients,
            ThrottleClock::custom(clock),
        ));
        self
    }

    /// Finds the client's address (and the trusted proxies) as `peers`
    /// says; give it the same `Peers` as the
    /// [`RequireHttpsLayer`](crate::require_https::RequireHttpsLayer).
    #[must_use]
    pub fn peers(mut self, peers: Peers) -> Self {
        Arc::make_mut(&mut self.settings).peers = peers;
        self
    }

    /// Derives the client key from the request instead of its
    /// [client IP](Peers::client_ip); `None` puts the request in the shared
    /// budget.
    #[must_use]
    pub fn key_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Extensions, &HeaderMap) -> Option<ClientKey> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.settings).key_fn = Some(Arc::new(f));
        self
    }

    /// Renders the 429 with `rejections` (its `on_rejection` function can
    /// replace the response), so it looks like the other layers'.
    #[must_use]
    pub fn rejections(mut self, rejections: Rejections) -> Self {
        Arc::make_mut(&mut self.settings).challenge = rejections;
        self
    }

    /// Sends each refusal to `audit` as
    /// [`AuthenticationRejected`](AuditEvent::AuthenticationRejected),
    /// besides `tracing`.
    #[must_use]
    pub fn audit(mut self, audit: Audit) -> Self {
        Arc::make_mut(&mut self.settings).audit = audit;
        self
    }

    /// The quota of each client (and of the shared budget).
    pub fn quota(&self) -> Quota {
        self.state.quota
    }

    /// The key `request` is counted under (normalized: IPv6 by /64,
    /// IPv4-mapped as IPv4), or `None` for the shared budget.
    pub fn client_key<B>(&self, request: &Request<B>) -> Option<ClientKey> {
        self.settings.key(request.headers(), request.extensions())
    }
}

impl<Svc> Layer<Svc> for ThrottleLayer {
    type Service = Throttle<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        Throttle {
            inner,
            layer: self.clone(),
        }
    }
}

impl Settings {
    fn key(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<ClientKey> {
        let key = match &self.key_fn {
            Some(f) => f(extensions, headers),
            None => self
                .peers
                .client_ip_parts(headers, extensions)
                .map(ClientKey::Ip),
        };
        key.map(ClientKey::normalized)
    }
}

// ===== impl Throttle =====

/// The service [`ThrottleLayer`] builds.
pub struct Throttle<Svc> {
    inner: Svc,
    layer: ThrottleLayer,
}

crate::middleware::inner_service_accessors!([Svc] Throttle<Svc>);

impl<Svc> Throttle<Svc> {
    /// Wraps `inner` with `layer`'s throttle.
    pub fn new(inner: Svc, layer: ThrottleLayer) -> Self {
        layer.layer(inner)
    }
}

impl<Svc: Clone> Clone for Throttle<Svc> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<Svc: fmt::Debug> fmt::Debug for Throttle<Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<Svc, ReqBody, ResBody> Service<Request<ReqBody>> for Throttle<Svc>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Svc::Error;
    type Future = ResponseFuture<Svc::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let settings = &self.layer.settings;
        let key = settings.key(request.headers(), request.extensions());
        if let Some(retry_after) = self.layer.state.blocked_for(key.as_ref()) {
            let error = AuthError::TooManyRequests { retry_after };
            let response = settings.challenge.render(&error);
            settings
                .audit
                .emit(AuditEvent::AuthenticationRejected { id: None, error });
            return ResponseFuture::rejected(response);
        }
        ResponseFuture::inner(self.inner.call(request), Arc::clone(&self.layer.state), key)
    }
}

/// Whether `response` reports a failure that looks like guessing.
fn is_failure<B>(response: &Response<B>) -> bool {
    let extensions = response.extensions();
    extensions.get::<FailedAuthentication>().is_some()
        || matches!(
            extensions.get::<AuthError>(),
            Some(
                AuthError::InvalidToken(_) | AuthError::ExpiredToken | AuthError::InvalidRequest(_)
            )
        )
}

pin_project! {
    /// The response future of [`Throttle`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Rejected { response: Option<Response<Bytes>> },
        Inner {
            #[pin]
            future: F,
            state: Arc<State>,
            key: Option<ClientKey>,
        },
    }
}

impl<F> ResponseFuture<F> {
    fn inner(future: F, state: Arc<State>, key: Option<ClientKey>) -> Self {
        Self {
            kind: Kind::Inner { future, state, key },
        }
    }

    fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response.map(ResponseBody::rejection)))
            }
            KindProj::Inner { future, state, key } => {
                let result = ready!(future.poll(cx));
                if let Ok(response) = &result {
                    if is_failure(response) {
                        state.failure(key.as_ref());
                    }
                }
                Poll::Ready(result.map(|response| response.map(ResponseBody::inner)))
            }
        }
    }
}

// ===== impl State =====

impl State {
    fn new(quota: Quota, max_clients: usize, clock: ThrottleClock) -> Self {
        let table = Table::default();
        Self {
            limiter: RateLimiter::<_, _, _, NoOpMiddleware<Nanos>>::new(
                quota,
                table.clone(),
                clock.clone(),
            )
            .with_middleware(),
            shared: RateLimiter::direct_with_clock(quota, clock.clone()).with_middleware(),
            quota,
            max_clients,
            clock,
            table,
            blocked: DashMap::new(),
            shared_until: AtomicU64::new(0),
            last_prune: AtomicU64::new(0),
            prunes: AtomicU64::new(0),
            keyless_seen: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        governor::clock::Clock::now(&self.clock).as_u64()
    }

    /// How long the client of `key` (`None`: a request with no key) must
    /// still wait, if it is throttled.
    fn blocked_for(&self, key: Option<&ClientKey>) -> Option<Duration> {
        let now = self.now();
        let Some(key) = key else {
            if !self.keyless_seen.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "tower_token_auth::throttle",
                    "a request without a client key (no peer address?): such requests \
                     share one budget; give the server PeerAddr or ConnectInfo"
                );
            }
            return self.shared_blocked_for(now);
        };
        if let Some(until) = self.blocked.get(key).map(|until| *until) {
            if now < until {
                return Some(Duration::from_nanos(until - now));
            }
            self.blocked.remove_if(key, |_, until| *until <= now);
        }
        // Only while the shared budget is spent: a client the table holds
        // has a budget of its own.
        let shared = self.shared_blocked_for(now)?;
        (!self.table.0.contains_key(key)).then_some(shared)
    }

    /// Counts a failure against the client of `key` (`None`: a request
    /// with no key).
    fn failure(&self, key: Option<&ClientKey>) {
        let Some(key) = key else {
            return self.shared_failure();
        };
        if !self.table.0.contains_key(key) && self.table.0.len() >= self.max_clients {
            self.prune_if_due();
            if self.table.0.len() >= self.max_clients {
                return self.shared_failure();
            }
        }
        let now = self.now();
        if let Some(until) = self.until(self.limiter.check_key(key), now) {
            self.blocked.insert(key.clone(), until);
        }
    }

    /// Until when a client is refused after a failure that `outcome`
    /// judged, or `None` if it has budget left.
    ///
    /// Blocked as soon as the budget is empty, not when a failure overflows
    /// it: otherwise each refilled cell would let one more guess through
    /// before the block, twice the quota.
    fn until(&self, outcome: Result<StateSnapshot, NotUntil<Nanos>>, now: u64) -> Option<u64> {
        match outcome {
            Ok(state) if state.remaining_burst_capacity() == 0 => {
                Some(now.saturating_add(nanos(self.quota.replenish_interval())))
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
        let interval = nanos(self.quota.replenish_interval().max(MIN_PRUNE_INTERVAL));
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
        if self.table.0.len() >= self.max_clients {
            tracing::warn!(
                target: "tower_token_auth::throttle",
                tracked = self.table.0.len(),
                "too many clients with failures to track; new ones share one budget"
            );
        }
    }
}

/// A duration in whole nanoseconds, saturated.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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

/// The throttle's time: nanoseconds since the throttle was built, on the
/// system's monotonic clock or an injected one.
#[derive(Clone)]
enum ThrottleClock {
    Monotonic(Instant),
    Custom {
        clock: Arc<dyn Clock>,
        start: SystemTime,
    },
}

impl ThrottleClock {
    fn monotonic() -> Self {
        Self::Monotonic(Instant::now())
    }

    fn custom(clock: Arc<dyn Clock>) -> Self {
        let start = clock.now();
        Self::Custom { clock, start }
    }
}

impl governor::clock::Clock for ThrottleClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(match self {
            Self::Monotonic(start) => start.elapsed(),
            // A clock set back reads as the start, never as a panic.
            Self::Custom { clock, start } => clock.now().duration_since(*start).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn layer(per_minute: u32) -> ThrottleLayer {
        ThrottleLayer::per_minute(NonZeroU32::new(per_minute).unwrap())
    }

    fn key(i: u32) -> ClientKey {
        ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_distinct_clients() {
        let throttle = layer(2).max_clients(100);
        for i in 0..20_000u32 {
            throttle.state.failure(Some(&key(i)));
        }
        assert!(
            throttle.state.table.0.len() <= 100,
            "{}",
            throttle.state.table.0.len()
        );
        assert!(throttle.state.blocked.len() <= 100);
    }

    /// Full-table scans happen at most once per interval, not on every
    /// failure that finds the table full: each scan takes every shard's
    /// write lock, contending with the check every request makes.
    #[test]
    fn a_full_table_is_pruned_at_most_once_per_interval() {
        let throttle = layer(2).max_clients(50);
        for i in 0..5_000 {
            throttle.state.failure(Some(&key(i)));
        }
        let prunes = throttle.state.prunes.load(Ordering::Relaxed);
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
