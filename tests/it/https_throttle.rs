//! HTTPS enforcement and brute-force throttling through the tower stack.
//!
//! - `RequireHttps`: a plain request is refused with 403 `https_required`
//!   before any store call; forwarding headers count only from a trusted
//!   proxy; the `Tls` extension and an `https` URI count as HTTPS.
//! - `Throttle` (feature `throttle`): a peer that keeps sending bad tokens
//!   gets 429 with `Retry-After` and costs no more store lookups; other
//!   peers are unaffected; only guessing counts; memory stays bounded under
//!   a flood of distinct peers; over a real socket the peer is axum's
//!   `ConnectInfo`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::auth::{PeerAddr, RequireHttps, Tls};
use tower_token_auth::body::ResponseBody;
use tower_token_auth::{PayRequestScopes as S, TokenAuthLayer};

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
        http::Response<ResponseBody<Full<Bytes>>>,
        std::convert::Infallible,
    >,
    token: String,
}

impl HttpsStack {
    async fn new(https: RequireHttps) -> Self {
        let fixture = Fixture::new();
        let issued = fixture.pat(S::BILLING_READ).await;
        let store = CountingStore::new(fixture.tokens.clone());
        let inner = Inner::<S>::new();
        let service = ServiceBuilder::new()
            .layer(
                TokenAuthLayer::new(store.clone())
                    .clock(fixture.clock.clone())
                    .require_https(https),
            )
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

fn proxy() -> RequireHttps {
    RequireHttps::new().trust_proxy(IpAddr::V4(Ipv4Addr::from(PROXY)))
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
    let strict = HttpsStack::new(RequireHttps::new()).await;
    let request = from(
        header(bearer(&strict.token), "x-forwarded-proto", "https"),
        PROXY,
    );
    strict.assert_refused("no proxy trusted", request).await;
    assert_eq!(stack.store.finds() + strict.store.finds(), 0);
}

#[tokio::test]
async fn the_tls_extension_and_an_https_uri_count_as_https() {
    let stack = HttpsStack::new(RequireHttps::new()).await;
    let token = stack.token.clone();
    let mut tls = bearer(&token);
    tls.extensions_mut().insert(Tls);
    assert_eq!(stack.status(tls).await, StatusCode::OK);
    let mut absolute = bearer(&token);
    *absolute.uri_mut() = "https://api.test/v1/invoices".parse().unwrap();
    assert_eq!(stack.status(absolute).await, StatusCode::OK);
    // Over TLS the token is still checked.
    let mut bad = bearer("garbage");
    bad.extensions_mut().insert(Tls);
    assert_eq!(stack.status(bad).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stack.inner.calls(), 2);
}

#[tokio::test]
async fn a_custom_peer_resolver_decides_who_is_the_proxy() {
    #[derive(Clone, Copy)]
    struct ProxyIp(IpAddr);
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let service = ServiceBuilder::new()
        .layer(
            fixture
                .layer()
                .require_https(proxy())
                .peer_addr(|ext| ext.get::<ProxyIp>().map(|p| p.0)),
        )
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
    use tower_token_auth::auth::Throttle;
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

    /// `Throttle`'s debug counters: (tracked, blocked).
    fn counters(throttle: &Throttle) -> (usize, usize) {
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
        let throttle = Throttle::per_minute(NonZeroU32::new(BUDGET).unwrap());
        let service = ServiceBuilder::new()
            .layer(
                TokenAuthLayer::new(store.clone())
                    .clock(fixture.clock.clone())
                    .throttle(throttle.clone()),
            )
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
                assert!((1..=60).contains(&retry), "Retry-After {retry}");
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
    /// quota allows: by GCRA, the burst plus one per replenish period.
    ///
    /// Today a blocked peer is let through when its block ends, makes a
    /// guess that takes the replenished cell, and is blocked only by the
    /// guess after that: two guesses per period, twice the quota.
    #[tokio::test]
    async fn a_throttled_peer_gets_no_more_guesses_than_the_quota_allows() {
        const PERIOD: Duration = Duration::from_millis(100);
        const RUN: Duration = Duration::from_secs(1);
        let fixture = Fixture::new();
        let store = CountingStore::new(fixture.tokens.clone());
        let quota = governor::Quota::with_period(PERIOD)
            .unwrap()
            .allow_burst(NonZeroU32::new(1).unwrap());
        let service = ServiceBuilder::new()
            .layer(TokenAuthLayer::new(store.clone()).throttle(Throttle::with_quota(quota)))
            .service(Inner::<S>::new());
        let started = std::time::Instant::now();
        let mut requests = 0;
        while started.elapsed() < RUN {
            let response = service
                .clone()
                .oneshot(from(bearer(&unknown()), ATTACKER))
                .await
                .unwrap();
            assert!(matches!(response.status().as_u16(), 401 | 429));
            requests += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        // Burst 1, plus one per period begun, plus one for the boundary.
        let allowed = 1 + (elapsed.as_millis() / PERIOD.as_millis()) as usize + 1;
        println!(
            "{requests} bad tokens in {elapsed:?} at 1 per {PERIOD:?}: {} looked up, at most {allowed} allowed",
            store.finds()
        );
        assert!(
            store.finds() <= allowed,
            "{} guesses reached the store in {elapsed:?}; the quota allows {allowed}",
            store.finds()
        );
    }

    #[tokio::test]
    async fn only_guessing_counts_against_a_peer() {
        let fixture = Fixture::new();
        let reader = fixture.pat(S::BILLING_READ).await;
        let auth = fixture
            .layer()
            .throttle(Throttle::per_minute(NonZeroU32::new(2).unwrap()));
        let needs_write = ServiceBuilder::new()
            .layer(auth.clone())
            .layer(auth.require(S::BILLING_WRITE))
            .service(Inner::<S>::new());
        let down = ServiceBuilder::new()
            .layer(
                TokenAuthLayer::new(FailingStore::new(Failure::Unavailable))
                    .throttle(Throttle::per_minute(NonZeroU32::new(2).unwrap())),
            )
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

    #[tokio::test]
    async fn memory_stays_bounded_under_a_flood_of_distinct_peers() {
        const MAX_CLIENTS: usize = 64;
        let fixture = Fixture::new();
        let good = fixture.pat(S::BILLING_READ).await;
        let throttle = Throttle::per_minute(NonZeroU32::new(2).unwrap()).max_clients(MAX_CLIENTS);
        let service = ServiceBuilder::new()
            .layer(fixture.layer().throttle(throttle.clone()))
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
        // The flood did not free the attacker, nor lock out a good client.
        let attacker = service
            .clone()
            .oneshot(from(bearer("garbage"), ATTACKER))
            .await
            .unwrap();
        assert_eq!(attacker.status(), StatusCode::TOO_MANY_REQUESTS);
        let ok = service
            .oneshot(from(bearer(good.secret.expose_secret()), CLIENT))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
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
            .route_layer(
                fixture
                    .layer()
                    .throttle(Throttle::per_minute(NonZeroU32::new(BUDGET).unwrap())),
            );
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
