//! HTTPS enforcement and brute-force throttling through the tower stack.
//!
//! - `RequireHttpsLayer`: a plain request is refused with 403 `https_required`
//!   before any store call; forwarding headers count only from a trusted
//!   proxy, and only their last value; only the `Tls` extension counts as
//!   TLS, never the client's `https` request line.
//! - `ThrottleLayer` (feature `throttle`): a peer that keeps sending bad
//!   tokens gets 429 with `Retry-After` and costs no more store lookups;
//!   other peers are unaffected; only guessing counts; memory stays bounded
//!   under a flood of distinct peers and a full table fails closed; IPv6
//!   peers count by /64; failed grants and logins count as well as bad
//!   tokens; over a real socket the peer is axum's `ConnectInfo`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::body::ResponseBody;
use tower_token_auth::peer::Tls;
use tower_token_auth::peer::{PeerAddr, Peers};
use tower_token_auth::require_https::RequireHttpsLayer;
use tower_token_auth::PayRequestScopes as S;

use crate::support::*;

type Req = Request<Full<Bytes>>;

const HTTPS_REQUIRED: Expected<'static> = Expected {
    status: StatusCode::FORBIDDEN,
    challenge: None,
    error: "https_required",
    description: "This API is served over HTTPS only.",
};

/// The TLS-terminating proxy in front of the service.
const PROXY: [u8; 4] = [10, 0, 0, 2];

fn from(mut request: Req, ip: [u8; 4]) -> Req {
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::from((ip, 40_000))));
    request
}

fn header(mut request: Req, name: &'static str, value: &'static str) -> Req {
    request
        .headers_mut()
        .append(name, http::HeaderValue::from_static(value));
    request
}

// ---- HTTPS ----

/// A store that counts lookups, a layer requiring HTTPS behind [`PROXY`],
/// and a valid `billing.read` token.
struct HttpsStack {
    store: CountingStore<Tokens>,
    inner: Inner<S>,
    service: tower::util::BoxCloneService<
        Req,
        http::Response<ResponseBody<ResponseBody<Full<Bytes>>>>,
        std::convert::Infallible,
    >,
    token: String,
}

impl HttpsStack {
    async fn new(peers: Peers) -> Self {
        let fixture = Fixture::new();
        let issued = fixture.pat(S::BILLING_READ).await;
        let store = CountingStore::new(fixture.tokens.clone());
        let inner = Inner::<S>::new();
        let service = ServiceBuilder::new()
            .layer(RequireHttpsLayer::new(peers))
            .layer(crate::support::layer_over(store.clone()).clock(fixture.clock.clone()))
            .service(inner.clone());
        Self {
            store,
            inner,
            service: tower::util::BoxCloneService::new(service),
            token: issued.secret.expose_secret().to_owned(),
        }
    }

    async fn status(&self, request: Req) -> StatusCode {
        self.service
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
    }

    async fn assert_refused(&self, name: &str, request: Req) {
        let response = self.service.clone().oneshot(request).await.unwrap();
        let rejection = rejection(response).await;
        assert_eq!(rejection.status, StatusCode::FORBIDDEN, "{name}");
        assert_rejection(&rejection, HTTPS_REQUIRED);
        rejection.assert_does_not_contain(&self.token);
    }
}

fn proxy() -> Peers {
    Peers::new().trust_proxy(IpAddr::V4(Ipv4Addr::from(PROXY)))
}

#[tokio::test]
async fn a_plain_request_is_refused_with_https_required_before_any_store_call() {
    let stack = HttpsStack::new(proxy()).await;
    let token = stack.token.clone();
    let in_url = format!("/v1/invoices?access_token={token}");
    for (name, request) in [
        ("valid token", bearer(&token)),
        ("valid token, http URI", {
            let mut r = bearer(&token);
            *r.uri_mut() = "http://api.test/v1/invoices".parse().unwrap();
            r
        }),
        ("garbage token", bearer("garbage")),
        ("no token", request("/v1/invoices")),
        ("token in the URL", request(&in_url)),
        (
            "valid token, from the proxy without a forwarding header",
            from(bearer(&token), PROXY),
        ),
    ] {
        stack.assert_refused(name, request).await;
    }
    assert_eq!(stack.store.finds(), 0, "refused before any store call");
    assert_eq!(stack.inner.calls(), 0);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_count_as_https() {
    let stack = HttpsStack::new(proxy()).await;
    let token = stack.token.clone();
    let forwarded = |name, value| from(header(bearer(&token), name, value), PROXY);
    assert_eq!(
        stack.status(forwarded("x-forwarded-proto", "https")).await,
        StatusCode::OK
    );
    assert_eq!(
        stack.status(forwarded("x-forwarded-proto", "HTTPS")).await,
        StatusCode::OK
    );
    assert_eq!(
        stack
            .status(forwarded("forwarded", "for=192.0.2.60;proto=https"))
            .await,
        StatusCode::OK
    );
    // Only the nearest (last) value counts: it is the one the proxy wrote.
    assert_eq!(
        stack
            .status(forwarded("x-forwarded-proto", "http, https"))
            .await,
        StatusCode::OK
    );
    assert_eq!(stack.store.finds(), 4);
    stack
        .assert_refused("proxy says http", forwarded("x-forwarded-proto", "http"))
        .await;
    stack
        .assert_refused(
            "client said https, proxy http",
            forwarded("x-forwarded-proto", "https, http"),
        )
        .await;
    stack
        .assert_refused(
            "Forwarded proto=http",
            forwarded("forwarded", "proto=https, for=1.2.3.4;proto=http"),
        )
        .await;
    // Authentication still happens behind HTTPS.
    let bad = from(
        header(bearer("garbage"), "x-forwarded-proto", "https"),
        PROXY,
    );
    assert_eq!(stack.status(bad).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.store.finds(), 4, "garbage never reaches the store");
    assert_eq!(stack.inner.calls(), 4);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let stack = HttpsStack::new(proxy()).await;
    let token = stack.token.clone();
    let spoofed = |ip| from(header(bearer(&token), "x-forwarded-proto", "https"), ip);
    stack
        .assert_refused("X-Forwarded-Proto from a client", spoofed([203, 0, 113, 5]))
        .await;
    stack
        .assert_refused(
            "X-Forwarded-Proto from the proxy's neighbour",
            spoofed([10, 0, 0, 3]),
        )
        .await;
    stack
        .assert_refused(
            "Forwarded from a client",
            from(
                header(bearer(&token), "forwarded", "proto=https"),
                [203, 0, 113, 5],
            ),
        )
        .await;
    stack
        .assert_refused(
            "X-Forwarded-Proto without a peer address",
            header(bearer(&token), "x-forwarded-proto", "https"),
        )
        .await;
    // Without a trusted proxy, no peer is one.
    let strict = HttpsStack::new(Peers::new()).await;
    let request = from(
        header(bearer(&strict.token), "x-forwarded-proto", "https"),
        PROXY,
    );
    strict.assert_refused("no proxy trusted", request).await;
    assert_eq!(stack.store.finds() + strict.store.finds(), 0);
}

/// Only the server's TLS acceptor (the `Tls` extension) says a request came
/// over TLS. An `https` scheme in the request line is the client's word: an
/// absolute-form request line over plain TCP must not pass.
#[tokio::test]
async fn an_https_request_line_is_the_clients_word_and_only_tls_counts() {
    let stack = HttpsStack::new(proxy()).await;
    let token = stack.token.clone();
    let mut tls = bearer(&token);
    tls.extensions_mut().insert(Tls);
    assert_eq!(stack.status(tls).await, StatusCode::OK);
    // Over TLS the token is still checked.
    let mut bad = bearer("garbage");
    bad.extensions_mut().insert(Tls);
    assert_eq!(stack.status(bad).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.inner.calls(), 1);
    let finds = stack.store.finds();

    let absolute = |uri: &str| {
        let mut request = bearer(&token);
        *request.uri_mut() = uri.parse().unwrap();
        request
    };
    stack
        .assert_refused(
            "absolute-form https request line",
            absolute("https://api.test/v1/invoices"),
        )
        .await;
    stack
        .assert_refused(
            "absolute-form HTTPS request line, from the trusted proxy",
            from(absolute("HTTPS://api.test/v1/invoices"), PROXY),
        )
        .await;
    assert_eq!(stack.store.finds(), finds, "refused before any store call");
    assert_eq!(stack.inner.calls(), 1);
}

/// Only the last value of a forwarding header counts (the nearest proxy
/// wrote it), whether the values share one line or come on several; and
/// when both `X-Forwarded-Proto` and `Forwarded` are present, both must say
/// https, since a proxy that writes one may pass the client's other one on.
#[tokio::test]
async fn only_the_last_forwarding_value_counts_and_both_headers_must_agree() {
    let stack = HttpsStack::new(proxy()).await;
    let token = stack.token.clone();
    let forwarded = |lines: &[(&'static str, &'static str)]| {
        let mut request = from(bearer(&token), PROXY);
        for (name, value) in lines {
            request = header(request, name, value);
        }
        request
    };
    let xfp = "x-forwarded-proto";
    let fwd = "forwarded";
    for (name, lines) in [
        (
            "X-Forwarded-Proto: http, then https",
            vec![(xfp, "http"), (xfp, "https")],
        ),
        (
            "Forwarded on two lines, the last https",
            vec![
                (fwd, "for=192.0.2.1;proto=http"),
                (fwd, "for=10.0.0.1;proto=https"),
            ],
        ),
        (
            "both headers, both https on their last line",
            vec![(xfp, "http"), (fwd, "proto=https"), (xfp, "https")],
        ),
        (
            "X-Forwarded-Proto on three lines",
            vec![(xfp, "http"), (xfp, "http, http"), (xfp, "http,https")],
        ),
    ] {
        assert_eq!(
            stack.status(forwarded(&lines)).await,
            StatusCode::OK,
            "{name}"
        );
    }
    for (name, lines) in [
        (
            "X-Forwarded-Proto: https, then http",
            vec![(xfp, "https"), (xfp, "http")],
        ),
        (
            "Forwarded on two lines, the first https",
            vec![(fwd, "proto=https"), (fwd, "for=10.0.0.1;proto=http")],
        ),
        (
            "Forwarded: the last line without proto",
            vec![(fwd, "proto=https"), (fwd, "for=10.0.0.1")],
        ),
        (
            "X-Forwarded-Proto https, Forwarded http",
            vec![(xfp, "https"), (fwd, "proto=http")],
        ),
        (
            "Forwarded https, X-Forwarded-Proto http",
            vec![(fwd, "proto=https"), (xfp, "http")],
        ),
        (
            "X-Forwarded-Proto https on its last line, Forwarded http on its last",
            vec![(fwd, "proto=https"), (xfp, "https"), (fwd, "proto=http")],
        ),
        (
            "X-Forwarded-Proto: an empty last line",
            vec![(xfp, "https"), (xfp, "")],
        ),
    ] {
        stack.assert_refused(name, forwarded(&lines)).await;
    }
}

/// Proxies are recognised by address whatever the socket's family: an IPv6
/// proxy, and an IPv4 proxy whose connection a dual-stack socket reports as
/// an IPv4-mapped IPv6 address (`::ffff:10.0.0.2`).
#[tokio::test]
async fn ipv6_and_ipv4_mapped_proxy_addresses_are_recognised() {
    use std::net::Ipv6Addr;

    let v6_proxy: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let stack = HttpsStack::new(proxy().trust_proxy(IpAddr::V6(v6_proxy))).await;
    let token = stack.token.clone();
    let via = |peer: IpAddr| {
        let mut request = header(bearer(&token), "x-forwarded-proto", "https");
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::new(peer, 40_000)));
        request
    };
    let mapped = Ipv4Addr::from(PROXY).to_ipv6_mapped();
    assert_eq!(
        stack.status(via(IpAddr::V6(v6_proxy))).await,
        StatusCode::OK
    );
    assert_eq!(
        stack.status(via(IpAddr::V6(mapped))).await,
        StatusCode::OK,
        "the IPv4 proxy on a dual-stack socket"
    );
    for (name, peer) in [
        ("the IPv6 proxy's neighbour", "2001:db8::3"),
        ("another IPv4-mapped address", "::ffff:10.0.0.3"),
        ("the IPv4-compatible form of the proxy", "::10.0.0.2"),
    ] {
        stack.assert_refused(name, via(peer.parse().unwrap())).await;
    }
    // An IPv4-mapped proxy address in the configuration means its IPv4.
    let mapped_config = HttpsStack::new(Peers::new().trust_proxy(IpAddr::V6(mapped))).await;
    let request = from(
        header(bearer(&mapped_config.token), "x-forwarded-proto", "https"),
        PROXY,
    );
    assert_eq!(mapped_config.status(request).await, StatusCode::OK);
}

#[tokio::test]
async fn a_custom_peer_resolver_decides_who_is_the_proxy() {
    #[derive(Clone, Copy)]
    struct ProxyIp(IpAddr);
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let service = ServiceBuilder::new()
        .layer(RequireHttpsLayer::new(
            proxy().peer_addr(|ext| ext.get::<ProxyIp>().map(|p| p.0)),
        ))
        .layer(fixture.layer())
        .service(Inner::<S>::new());
    let token = issued.secret.expose_secret();
    let mut trusted = header(bearer(token), "x-forwarded-proto", "https");
    trusted
        .extensions_mut()
        .insert(ProxyIp(IpAddr::V4(Ipv4Addr::from(PROXY))));
    assert_eq!(
        service.clone().oneshot(trusted).await.unwrap().status(),
        StatusCode::OK
    );
    // The resolver replaces PeerAddr: a PeerAddr of the proxy alone is not
    // enough.
    let peer_only = from(header(bearer(token), "x-forwarded-proto", "https"), PROXY);
    assert_eq!(
        service.oneshot(peer_only).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

// ---- throttle ----

#[cfg(feature = "throttle")]
mod throttle {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
    use tower_token_auth::throttle::ThrottleLayer;
    use tower_token_auth::token::{TokenFormat, TokenKind};

    use super::*;

    const TOO_MANY: Expected<'static> = Expected {
        status: StatusCode::TOO_MANY_REQUESTS,
        challenge: None,
        error: "too_many_requests",
        description: "Too many failed authentication attempts.",
    };

    const ATTACKER: [u8; 4] = [203, 0, 113, 9];
    const CLIENT: [u8; 4] = [198, 51, 100, 7];

    /// Failures a peer may make per minute.
    const BUDGET: u32 = 5;

    /// A well-formed token no store holds: every try costs a lookup.
    fn unknown() -> String {
        TokenFormat::default()
            .generate(TokenKind::PersonalAccess)
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    /// Statuses as a run-length list, e.g. `[(401, 6), (429, 44)]`.
    fn runs(statuses: &[u16]) -> Vec<(u16, usize)> {
        let mut runs: Vec<(u16, usize)> = Vec::new();
        for s in statuses {
            match runs.last_mut() {
                Some((last, n)) if last == s => *n += 1,
                _ => runs.push((*s, 1)),
            }
        }
        runs
    }

    /// `ThrottleLayer`'s debug counters: (tracked, blocked).
    fn counters(throttle: &ThrottleLayer) -> (usize, usize) {
        let debug = format!("{throttle:?}");
        let field = |name: &str| -> usize {
            let start = debug.find(&format!("{name}: ")).expect(name) + name.len() + 2;
            debug[start..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        (field("tracked"), field("blocked"))
    }

    #[tokio::test]
    async fn a_flood_of_bad_tokens_from_one_peer_gets_429_with_retry_after() {
        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let store = CountingStore::new(fixture.tokens.clone());
        let throttle = ThrottleLayer::per_minute(NonZeroU32::new(BUDGET).unwrap());
        let service = ServiceBuilder::new()
            .layer(throttle.clone())
            .layer(crate::support::layer_over(store.clone()).clock(fixture.clock.clone()))
            .service(Inner::<S>::new());

        let mut statuses = Vec::new();
        let mut lookups_when_throttled = None;
        for _ in 0..50 {
            let response = service
                .clone()
                .oneshot(from(bearer(&unknown()), ATTACKER))
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                lookups_when_throttled.get_or_insert(store.finds());
                let retry: u64 = response.headers()[RETRY_AFTER]
                    .to_str()
                    .unwrap()
                    .parse()
                    .expect("Retry-After in whole seconds");
                // Bounded by the quota: one failure comes back every
                // 60 s / BUDGET, so no client waits longer than that.
                let period = 60 / u64::from(BUDGET);
                assert!((1..=period).contains(&retry), "Retry-After {retry}");
                let rejection = rejection(response).await;
                assert_rejection(&rejection, TOO_MANY);
            }
        }
        let runs = runs(&statuses);
        println!("{} bad tokens from one peer: {runs:?}", statuses.len());
        assert_eq!(runs.len(), 2, "401s, then only 429s: {runs:?}");
        assert_eq!(runs[0].0, 401);
        assert!(
            (BUDGET as usize..=BUDGET as usize + 1).contains(&runs[0].1),
            "the budget is {BUDGET} failures: {runs:?}"
        );
        assert_eq!(runs[1].0, 429);
        // Throttled requests cost no lookups.
        assert_eq!(store.finds(), lookups_when_throttled.unwrap());
        assert_eq!(store.finds(), runs[0].1);

        // The throttled peer is refused before its token is read, even a
        // valid one.
        let response = service
            .clone()
            .oneshot(from(bearer(good.secret.expose_secret()), ATTACKER))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(!response.headers().contains_key(WWW_AUTHENTICATE));

        // Another peer is unaffected, with a good token or a bad one.
        let ok = service
            .clone()
            .oneshot(from(bearer(good.secret.expose_secret()), CLIENT))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let bad = service
            .clone()
            .oneshot(from(bearer(&unknown()), CLIENT))
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(counters(&throttle), (2, 1));
    }

    /// Over time a peer gets no more guesses (store lookups) than the
    /// quota allows: by GCRA, the burst plus one per replenish period. A
    /// blocked peer let through when its block ends must be blocked again
    /// by that one guess, not by the next (two guesses per period, twice
    /// the quota). Time is a `ManualClock`, stepped 2 ms per request.
    #[tokio::test]
    async fn a_throttled_peer_gets_no_more_guesses_than_the_quota_allows() {
        const PERIOD: Duration = Duration::from_millis(100);
        const STEP: Duration = Duration::from_millis(2);
        const RUN: Duration = Duration::from_secs(1);
        let fixture = Fixture::new();
        let store = CountingStore::new(fixture.tokens.clone());
        let quota = governor::Quota::with_period(PERIOD)
            .unwrap()
            .allow_burst(NonZeroU32::new(1).unwrap());
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::with_quota(quota).clock(fixture.clock.clone()))
            .layer(crate::support::layer_over(store.clone()))
            .service(Inner::<S>::new());
        let mut elapsed = Duration::ZERO;
        let mut requests = 0;
        while elapsed < RUN {
            let response = service
                .clone()
                .oneshot(from(bearer(&unknown()), ATTACKER))
                .await
                .unwrap();
            assert!(matches!(response.status().as_u16(), 401 | 429));
            requests += 1;
            fixture.clock.advance(STEP);
            elapsed += STEP;
        }
        // Burst 1, plus one per period that ended.
        let allowed = 1 + (elapsed.as_millis() / PERIOD.as_millis()) as usize;
        println!(
            "{requests} bad tokens in {elapsed:?} at 1 per {PERIOD:?}: {} looked up, at most {allowed} allowed",
            store.finds()
        );
        assert!(
            store.finds() <= allowed,
            "{} guesses reached the store in {elapsed:?}; the quota allows {allowed}",
            store.finds()
        );
        assert!(
            store.finds() >= allowed - 1,
            "the quota is given, too: {}",
            store.finds()
        );
    }

    /// `Retry-After` says how long the client really has to wait, bounded by
    /// the quota: with 5 failures a minute, a cell comes back every 12 s.
    #[tokio::test]
    async fn retry_after_counts_down_to_the_next_allowed_failure() {
        let fixture = Fixture::new();
        let store = CountingStore::new(fixture.tokens.clone());
        let service = ServiceBuilder::new()
            .layer(
                ThrottleLayer::per_minute(NonZeroU32::new(BUDGET).unwrap())
                    .clock(fixture.clock.clone()),
            )
            .layer(crate::support::layer_over(store.clone()))
            .service(Inner::<S>::new());
        let guess = || from(bearer(&unknown()), ATTACKER);
        let retry_after = |response: &http::Response<_>| -> Option<u64> {
            let value = response.headers().get(RETRY_AFTER)?;
            value.to_str().ok()?.parse().ok()
        };
        for _ in 0..BUDGET {
            let response = service.clone().oneshot(guess()).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        let period = 60 / u64::from(BUDGET);
        for (waited, left) in [(0, period), (5, period - 5), (6, 1)] {
            fixture.clock.advance(Duration::from_secs(waited));
            let response = service.clone().oneshot(guess()).await.unwrap();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(retry_after(&response), Some(left), "after {waited} s more");
        }
        // One cell back after the period: one guess, then blocked again.
        fixture.clock.advance(Duration::from_secs(1));
        let looked_up = store.finds();
        let response = service.clone().oneshot(guess()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = service.clone().oneshot(guess()).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&response), Some(period));
        assert_eq!(store.finds(), looked_up + 1);
    }

    #[tokio::test]
    async fn only_guessing_counts_against_a_peer() {
        let fixture = Fixture::new();
        let reader = fixture.pat(S::BILLING_READ).await;
        let auth = fixture.layer();
        let needs_write = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()))
            .layer(auth.clone())
            .layer(auth.require(S::BILLING_WRITE))
            .service(Inner::<S>::new());
        let down = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()))
            .layer(crate::support::layer_over(FailingStore::new(
                Failure::Unavailable,
            )))
            .service(Inner::<S>::new());

        for _ in 0..20 {
            let missing = needs_write
                .clone()
                .oneshot(from(request("/v1/invoices"), ATTACKER))
                .await
                .unwrap();
            assert_eq!(
                missing.status(),
                StatusCode::UNAUTHORIZED,
                "no token is not guessing"
            );
            let forbidden = needs_write
                .clone()
                .oneshot(from(bearer(reader.secret.expose_secret()), ATTACKER))
                .await
                .unwrap();
            assert_eq!(
                forbidden.status(),
                StatusCode::FORBIDDEN,
                "a valid token is not guessing"
            );
            let unavailable = down
                .clone()
                .oneshot(from(bearer(&unknown()), ATTACKER))
                .await
                .unwrap();
            assert_eq!(
                unavailable.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "an outage is not the client's fault"
            );
        }
        // Guessing does count, for the same peer on the same layer.
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let response = needs_write
                .clone()
                .oneshot(from(bearer(&unknown()), ATTACKER))
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    }

    /// Memory stays bounded under a flood of distinct peers, and the flood
    /// fails closed: the peers the table has no room for share one budget,
    /// so once it is spent a new client waits (at most one replenish
    /// interval) while clients on record keep their own budgets.
    #[tokio::test]
    async fn memory_stays_bounded_under_a_flood_of_distinct_peers() {
        const MAX_CLIENTS: usize = 64;
        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let throttle =
            ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()).max_clients(MAX_CLIENTS);
        let service = ServiceBuilder::new()
            .layer(throttle.clone())
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        // One attacker is blocked first.
        for _ in 0..4 {
            let _ = service
                .clone()
                .oneshot(from(bearer("garbage"), ATTACKER))
                .await
                .unwrap();
        }
        assert_eq!(counters(&throttle).1, 1);
        // A client on record: one typo, budget left.
        let typo = service
            .clone()
            .oneshot(from(bearer("garbage"), CLIENT))
            .await
            .unwrap();
        assert_eq!(typo.status(), StatusCode::UNAUTHORIZED);

        let mut max_tracked = 0;
        for i in 0..5_000u32 {
            let ip = Ipv4Addr::from(0x0a01_0000 + i).octets();
            for _ in 0..3 {
                let response = service
                    .clone()
                    .oneshot(from(bearer("garbage"), ip))
                    .await
                    .unwrap();
                assert!(response.status().is_client_error());
            }
            let (tracked, blocked) = counters(&throttle);
            assert!(
                tracked <= MAX_CLIENTS && blocked <= MAX_CLIENTS,
                "{tracked} tracked, {blocked} blocked"
            );
            max_tracked = max_tracked.max(tracked);
        }
        println!("5000 distinct peers, 3 bad tokens each: at most {max_tracked} tracked (max_clients {MAX_CLIENTS})");
        // The flood did not free the attacker.
        let attacker = service
            .clone()
            .oneshot(from(bearer("garbage"), ATTACKER))
            .await
            .unwrap();
        assert_eq!(attacker.status(), StatusCode::TOO_MANY_REQUESTS);
        // The client on record keeps its own budget.
        let ok = service
            .clone()
            .oneshot(from(bearer(good.secret.expose_secret()), CLIENT))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        // A client the table has no room for shares the spent budget: it
        // waits, for no longer than the quota's replenish interval.
        let newcomer = service
            .oneshot(from(bearer(good.secret.expose_secret()), [198, 51, 100, 8]))
            .await
            .unwrap();
        assert_eq!(newcomer.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = newcomer.headers()[RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry), "Retry-After {retry}");
    }

    /// A request with a bad token from `peer`.
    fn guess_from(peer: IpAddr) -> Req {
        let mut request = bearer(&unknown());
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::new(peer, 40_000)));
        request
    }

    /// The statuses of `requests`, sent in turn through `service`.
    async fn statuses<Svc, B>(service: &Svc, requests: impl IntoIterator<Item = Req>) -> Vec<u16>
    where
        Svc: tower::Service<Req, Response = http::Response<B>> + Clone,
        Svc::Error: std::fmt::Debug,
    {
        let mut statuses = Vec::new();
        for request in requests {
            let response = service.clone().oneshot(request).await.unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    }

    /// Once `max_clients` clients hold failures, a new client is not let
    /// guess unmetered: clients the table has no room for share one budget,
    /// and are throttled together once it is spent.
    #[tokio::test]
    async fn a_full_table_fails_closed() {
        const MAX_CLIENTS: usize = 8;
        let fixture = Fixture::new();
        let store = CountingStore::new(fixture.tokens.clone());
        let throttle =
            ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()).max_clients(MAX_CLIENTS);
        let service = ServiceBuilder::new()
            .layer(throttle.clone())
            .layer(crate::support::layer_over(store.clone()))
            .service(Inner::<S>::new());
        // Fill the table: one failure each, budget left, nothing to prune.
        let fillers =
            (0..MAX_CLIENTS as u8).map(|i| guess_from(IpAddr::V4(Ipv4Addr::new(10, 9, 0, i))));
        assert!(statuses(&service, fillers).await.iter().all(|s| *s == 401));
        assert_eq!(counters(&throttle).0, MAX_CLIENTS);

        let newcomer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
        let found_before = store.finds();
        let got = statuses(&service, (0..10).map(|_| guess_from(newcomer))).await;
        println!("a new client against a full table: {:?}", runs(&got));
        assert_eq!(got.last(), Some(&429), "{got:?}");
        assert!(
            store.finds() - found_before <= 3,
            "{} guesses reached the store",
            store.finds() - found_before
        );
        let (tracked, blocked) = counters(&throttle);
        assert!(tracked <= MAX_CLIENTS && blocked <= MAX_CLIENTS);
        // A client with failures on record keeps its own budget.
        let filler = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 0));
        assert_eq!(statuses(&service, [guess_from(filler)]).await, [401]);
    }

    /// An IPv6 client holds a whole /64 (or more): its addresses share one
    /// budget. Another /64 is another client.
    #[tokio::test]
    async fn addresses_of_one_ipv6_64_share_a_budget() {
        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let one_64 = [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:2:1:2:3:4",
        ];
        let got = statuses(
            &service,
            one_64.iter().map(|a| guess_from(a.parse().unwrap())),
        )
        .await;
        assert_eq!(got, [401, 401, 401, 429], "four addresses of one /64");
        let mut neighbour = bearer(good.secret.expose_secret());
        neighbour
            .extensions_mut()
            .insert(PeerAddr("[2001:db8:1:3::1]:1".parse().unwrap()));
        assert_eq!(statuses(&service, [neighbour]).await, [200], "the next /64");
    }

    /// A dual-stack socket reports an IPv4 client as `::ffff:a.b.c.d`: it is
    /// the same client as `a.b.c.d`, with one budget.
    #[tokio::test]
    async fn an_ipv4_mapped_address_is_its_ipv4_client() {
        let fixture = Fixture::new();
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let v4 = Ipv4Addr::new(203, 0, 113, 9);
        let peers = [IpAddr::V4(v4), IpAddr::V6(v4.to_ipv6_mapped())];
        let got = statuses(&service, (0..4).map(|i| guess_from(peers[i % 2]))).await;
        assert_eq!(got, [401, 401, 401, 429]);
    }

    /// A request with no peer address is not let guess unmetered: such
    /// requests share one budget. (A `key_fn` answering `None` and a trusted
    /// proxy naming no address: the two tests below.)
    #[tokio::test]
    async fn requests_without_a_key_share_one_budget() {
        let fixture = Fixture::new();
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let got = statuses(&service, (0..5).map(|_| bearer(&unknown()))).await;
        assert_eq!(got, [401, 401, 401, 429, 429], "no peer address");
    }

    /// A `key_fn` that answers `None` puts the request in the one shared
    /// budget: not in the peer's (each guess below comes from another
    /// address) and not unmetered. A client it keys, with a failure on
    /// record, keeps its own budget.
    #[tokio::test]
    async fn requests_a_key_fn_answers_none_for_share_one_budget() {
        let by_client_id = |_: &http::Extensions, headers: &http::HeaderMap| {
            headers
                .get("x-client-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| tower_token_auth::peer::ClientKey::Named(v.into()))
        };
        let fixture = Fixture::new();
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()).key_fn(by_client_id))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let keyed = || {
            from(
                header(bearer(&unknown()), "x-client-id", "acme"),
                [192, 0, 2, 1],
            )
        };
        assert_eq!(statuses(&service, [keyed()]).await, [401], "a keyed client");
        let unkeyed = (1..=5).map(|peer| from(bearer(&unknown()), [192, 0, 2, peer]));
        let got = statuses(&service, unkeyed).await;
        assert_eq!(got, [401, 401, 401, 429, 429], "five peers, no client id");
        assert_eq!(statuses(&service, [keyed()]).await, [401], "its own budget");
    }

    /// A trusted proxy whose forwarding headers name no IP address (RFC
    /// 7239 `for=unknown`, obfuscated identifiers, which the client behind
    /// it may choose) gives the throttle no key: those requests share one
    /// budget, whichever identifier and whichever trusted proxy they come
    /// through. A client the proxy names, with a failure on record, keeps
    /// its own budget.
    #[tokio::test]
    async fn requests_a_trusted_proxy_names_no_address_for_share_one_budget() {
        const OTHER_PROXY: [u8; 4] = [10, 0, 0, 3];
        let peers = proxy().trust_proxy(IpAddr::V4(Ipv4Addr::from(OTHER_PROXY)));
        let fixture = Fixture::new();
        let service = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()).peers(peers))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let named = || {
            from(
                header(bearer(&unknown()), "x-forwarded-for", "198.51.100.7"),
                PROXY,
            )
        };
        assert_eq!(statuses(&service, [named()]).await, [401], "a named client");
        let unnamed = [
            from(
                header(bearer(&unknown()), "forwarded", "for=unknown"),
                PROXY,
            ),
            from(
                header(bearer(&unknown()), "forwarded", "for=_hidden1"),
                OTHER_PROXY,
            ),
            from(
                header(bearer(&unknown()), "x-forwarded-for", "_hidden2"),
                PROXY,
            ),
            from(
                header(bearer(&unknown()), "x-forwarded-for", "unknown"),
                OTHER_PROXY,
            ),
            from(
                header(bearer(&unknown()), "forwarded", "for=\"_hidden3\""),
                PROXY,
            ),
        ];
        let got = statuses(&service, unnamed).await;
        assert_eq!(got, [401, 401, 401, 429, 429], "no address named");
        assert_eq!(statuses(&service, [named()]).await, [401], "its own budget");
    }

    /// `key_fn` replaces the peer address, and survives every later
    /// setting, even on a throttle that was cloned in between (a lost
    /// `key_fn` silently keys by the peer, which behind a proxy is one
    /// bucket for everyone).
    #[tokio::test]
    async fn key_fn_keys_clients_and_survives_later_settings_after_a_clone() {
        let by_client_id = |_: &http::Extensions, headers: &http::HeaderMap| {
            headers
                .get("x-client-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| tower_token_auth::peer::ClientKey::Named(v.into()))
        };
        let throttle = ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()).key_fn(by_client_id);
        let _kept = throttle.clone();
        let throttle = throttle.max_clients(1_000);
        let fixture = Fixture::new();
        let service = ServiceBuilder::new()
            .layer(throttle)
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let guess = |client: &'static str, peer: u8| {
            from(
                header(bearer(&unknown()), "x-client-id", client),
                [192, 0, 2, peer],
            )
        };
        // One client behind several addresses is one key.
        let got = statuses(
            &service,
            [guess("acme", 1), guess("acme", 2), guess("acme", 3)],
        )
        .await;
        assert_eq!(got, [401, 401, 429], "acme from three addresses");
        // Another client at the same address is another key.
        assert_eq!(statuses(&service, [guess("globex", 1)]).await, [401]);
    }

    /// The throttle is a layer of its own: on the token endpoint it counts
    /// refused refresh grants (the endpoint marks them
    /// `FailedAuthentication`), and one layer on several routes is one
    /// budget per client across them.
    #[tokio::test]
    async fn failed_grants_and_bad_tokens_share_one_budget_across_routes() {
        use tower_token_auth::oauth::TokenEndpoint;
        let fixture = Fixture::new();
        let pair = fixture.tokens.issue_pair("agent", "u", None).await.unwrap();
        let throttle = ThrottleLayer::per_minute(NonZeroU32::new(4).unwrap());
        let api = ServiceBuilder::new()
            .layer(throttle.clone())
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let grants = ServiceBuilder::new()
            .layer(throttle.clone())
            .service(TokenEndpoint::new(fixture.tokens.clone()));
        let grant = |refresh_token: &str, peer: [u8; 4]| {
            let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
            let request = Request::post("/oauth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            from(request, peer)
        };
        // Two made-up refresh tokens, a malformed one, and a bad bearer token.
        let made_up = TokenFormat::default().generate(TokenKind::Refresh).unwrap();
        let mut got = statuses(
            &grants,
            [
                grant(made_up.expose_secret(), ATTACKER),
                grant(made_up.expose_secret(), ATTACKER),
                grant("garbage", ATTACKER),
            ],
        )
        .await;
        got.extend(statuses(&api, [from(bearer(&unknown()), ATTACKER)]).await);
        assert_eq!(got, [400, 400, 400, 401]);
        // The budget is spent on either route, before the endpoint runs: the
        // attacker's good refresh token is not even looked at.
        let refused = grants
            .clone()
            .oneshot(grant(pair.refresh.secret.expose_secret(), ATTACKER))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(RETRY_AFTER));
        let refused = api
            .clone()
            .oneshot(from(bearer(&unknown()), ATTACKER))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // Another client's grant goes through; a malformed request (no
        // grant_type) is not a failed credential and does not count.
        let statuses_of_client = statuses(
            &grants,
            (0..6).map(|_| {
                let request = Request::post("/oauth/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from_static(b"refresh_token=x")))
                    .unwrap();
                from(request, CLIENT)
            }),
        )
        .await;
        assert_eq!(statuses_of_client, [400; 6]);
        let ok = grants
            .oneshot(grant(pair.refresh.secret.expose_secret(), CLIENT))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }

    /// RFC 7009 §2.2 answers 200 for an invalid token, but each made-up
    /// well-formed token costs a lookup: the revocation endpoint marks it a
    /// failed authentication, so the throttle bounds them (malformed ones
    /// count too). Revoking a real token, even again, is no failure.
    #[tokio::test]
    async fn made_up_tokens_on_the_revocation_endpoint_count_against_the_throttle() {
        use tower_token_auth::oauth::RevocationEndpoint;
        let fixture = Fixture::new();
        let real = fixture.pat(S::BILLING_READ).await;
        let revocation = ServiceBuilder::new()
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(3).unwrap()))
            .service(RevocationEndpoint::new(fixture.tokens.clone()));
        let revoke = |token: &str, peer: [u8; 4]| {
            let request = Request::post("/oauth/revoke")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(format!("token={token}"))))
                .unwrap();
            from(request, peer)
        };
        let made_up = (0..3).map(|_| revoke(&unknown(), ATTACKER));
        let got = statuses(&revocation, made_up.chain([revoke("garbage", ATTACKER)])).await;
        assert_eq!(got, [200, 200, 200, 429], "made-up tokens from one client");
        let secret = real.secret.expose_secret();
        let got = statuses(&revocation, (0..5).map(|_| revoke(secret, CLIENT))).await;
        assert_eq!(got, [200; 5], "a real token, revoked and revoked again");
        let got = statuses(&revocation, (0..4).map(|_| revoke("garbage", CLIENT))).await;
        assert_eq!(got, [200, 200, 200, 429], "malformed tokens count too");
    }

    /// Behind a trusted proxy every connection comes from the proxy: the
    /// throttle tells clients apart by the proxy's last `X-Forwarded-For`
    /// value, with the same `Peers` the HTTPS rule uses. From anyone else
    /// the header is the client's word and does not count.
    #[tokio::test]
    async fn behind_a_trusted_proxy_clients_are_told_apart_by_the_forwarded_address() {
        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let peers = proxy();
        let service = ServiceBuilder::new()
            .layer(RequireHttpsLayer::new(peers.clone()))
            .layer(ThrottleLayer::per_minute(NonZeroU32::new(2).unwrap()).peers(peers))
            .layer(fixture.layer())
            .service(Inner::<S>::new());
        let via_proxy = |token: &str, client: &'static str| {
            let request = header(bearer(token), "x-forwarded-proto", "https");
            let request = header(request, "x-forwarded-for", "192.0.2.200");
            from(header(request, "x-forwarded-for", client), PROXY)
        };
        let attacker = [
            via_proxy(&unknown(), "203.0.113.9"),
            via_proxy(&unknown(), "203.0.113.9"),
            via_proxy(&unknown(), "203.0.113.9"),
        ];
        assert_eq!(statuses(&service, attacker).await, [401, 401, 429]);
        let client = via_proxy(good.secret.expose_secret(), "198.51.100.7");
        assert_eq!(
            statuses(&service, [client]).await,
            [200],
            "another client behind the proxy"
        );
        // A client that talks to the service directly cannot pick its key.
        let mut direct = Vec::new();
        for spoofed in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            let request = header(bearer(&unknown()), "x-forwarded-for", spoofed);
            let mut request = from(request, [192, 0, 2, 50]);
            request.extensions_mut().insert(Tls);
            direct.push(request);
        }
        assert_eq!(statuses(&service, direct).await, [401, 401, 429]);
    }

    /// The throttle over a real socket: the peer is axum's `ConnectInfo`.
    #[cfg(feature = "axum")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_a_socket_the_peer_is_the_connection_address() {
        use axum::routing::get;

        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let router = axum::Router::new()
            .route("/v1/invoices", get(|| async { "invoices" }))
            .route_layer(fixture.layer())
            .route_layer(ThrottleLayer::per_minute(NonZeroU32::new(BUDGET).unwrap()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let send = |token: String| async move {
            tokio::task::spawn_blocking(move || {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let raw = format!(
                    "GET /v1/invoices HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                     Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(raw.as_bytes()).unwrap();
                let mut reply = String::new();
                stream
                    .read_to_string(&mut reply)
                    .expect("an answer in time");
                reply
            })
            .await
            .unwrap()
        };
        let mut statuses = Vec::new();
        for _ in 0..12 {
            let reply = send(unknown()).await;
            let status: u16 = reply[9..12].parse().unwrap();
            if status == 429 {
                assert!(
                    reply.to_ascii_lowercase().contains("\r\nretry-after: "),
                    "{reply}"
                );
            }
            statuses.push(status);
        }
        assert_eq!(runs(&statuses)[0].0, 401);
        assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
        // Every connection comes from 127.0.0.1: now a good token from it
        // is throttled too.
        let reply = send(good.secret.expose_secret().to_owned()).await;
        assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
        server.abort();
    }
}
