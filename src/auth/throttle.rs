//! Brute-force throttling of failed authentications (feature `throttle`).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
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
/// Memory stays bounded under a flood of distinct keys: past
/// [`max_clients`](Self::max_clients) tracked clients, keys that have
/// recovered are dropped, and new keys are not tracked until there is room.
///
/// The key is the peer's IP ([`PeerAddr`](super::PeerAddr) or axum's
/// `ConnectInfo`), or what [`key_fn`](Self::key_fn) returns; a request
/// with no key is not throttled.
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

/// A keyed limiter whose successful checks report the remaining budget.
type Limiter = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

struct Inner {
    quota: Quota,
    limiter: Limiter,
    blocked: DashMap<ClientKey, Instant>,
    max_clients: usize,
    key_fn: Option<Box<KeyFn>>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("tracked", &self.inner.limiter.len())
            .field("blocked", &self.inner.blocked.len())
            .field("max_clients", &self.inner.max_clients)
            .finish()
    }
}

/// The default bound on tracked clients.
const DEFAULT_MAX_CLIENTS: usize = 100_000;

impl Throttle {
    /// Allows `failures` failed authentications per minute per client, in
    /// bursts of up to `failures`.
    pub fn per_minute(failures: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(failures))
    }

    /// Allows failures at the rate and burst of `quota`.
    pub fn with_quota(quota: Quota) -> Self {
        Self::build(quota, DEFAULT_MAX_CLIENTS, None)
    }

    fn build(quota: Quota, max_clients: usize, key_fn: Option<Box<KeyFn>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                quota,
                limiter: RateLimiter::dashmap(quota).with_middleware(),
                blocked: DashMap::new(),
                max_clients,
                key_fn,
            }),
        }
    }

    fn rebuild(self, max_clients: Option<usize>, key_fn: Option<Box<KeyFn>>) -> Self {
        let quota = self.inner.quota;
        let old_max = self.inner.max_clients;
        let old_key = Arc::try_unwrap(self.inner).ok().and_then(|i| i.key_fn);
        Self::build(quota, max_clients.unwrap_or(old_max), key_fn.or(old_key))
    }

    /// Bounds how many clients are tracked at once (default 100 000).
    pub fn max_clients(self, max: usize) -> Self {
        self.rebuild(Some(max.max(1)), None)
    }

    /// Derives the client key from the request instead of the peer IP.
    pub fn key_fn<F>(self, f: F) -> Self
    where
        F: Fn(&Extensions, &HeaderMap) -> Option<ClientKey> + Send + Sync + 'static,
    {
        self.rebuild(None, Some(Box::new(f)))
    }

    pub(crate) fn key(
        &self,
        extensions: &Extensions,
        headers: &HeaderMap,
        peer: &PeerResolver,
    ) -> Option<ClientKey> {
        match &self.inner.key_fn {
            Some(f) => f(extensions, headers),
            None => peer.resolve(extensions).map(ClientKey::Ip),
        }
    }

    /// How long `key` must still wait, if it is throttled.
    pub(crate) fn blocked_for(&self, key: &ClientKey) -> Option<Duration> {
        let until = *self.inner.blocked.get(key)?;
        let now = Instant::now();
        if now < until {
            return Some(until - now);
        }
        self.inner.blocked.remove_if(key, |_, u| *u <= now);
        None
    }

    /// Counts a failure against `key`.
    pub(crate) fn failure(&self, key: &ClientKey) {
        let inner = &self.inner;
        if inner.limiter.len() >= inner.max_clients {
            inner.limiter.retain_recent();
            let now = Instant::now();
            inner.blocked.retain(|_, until| *until > now);
            if inner.limiter.len() >= inner.max_clients {
                tracing::warn!(
                    target: "tower_token_auth::throttle",
                    tracked = inner.limiter.len(),
                    "too many clients with failures to track; a new one goes uncounted"
                );
                return;
            }
        }
        // Block as soon as the budget is empty, not when a failure overflows
        // it: otherwise each refilled cell would let one more guess through
        // before the block, twice the quota.
        let until = match inner.limiter.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() == 0 => {
                Instant::now() + inner.quota.replenish_interval()
            }
            Ok(_) => return,
            Err(not_until) => not_until.earliest_possible(),
        };
        inner.blocked.insert(key.clone(), until);
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
            throttle.failure(&key);
        }
        assert!(
            throttle.inner.limiter.len() <= 100,
            "{}",
            throttle.inner.limiter.len()
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
}
