//! Refusing requests that did not arrive over TLS.

use std::net::IpAddr;

use http::header::HeaderName;
use http::{Extensions, HeaderMap};

use super::peer::PeerResolver;

/// A marker a TLS-terminating server puts into each request's extensions
/// to say the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tls;

/// Refuses, before any token is read, requests not known to arrive over
/// TLS: the PayRequest rule "always use HTTPS, enforced by our API".
///
/// A request counts as HTTPS when it carries the [`Tls`] extension (put
/// there by the server's own TLS acceptor) or, from a trusted proxy, when
/// the last value of `X-Forwarded-Proto` and of `Forwarded` says `https`.
/// The scheme of the request line is never trusted: a client chooses it
/// (`GET https://host/path HTTP/1.1` over plain TCP). Anything else is
/// answered 403 `https_required` with no challenge. Off unless set with
/// [`TokenAuthLayer::require_https`](crate::TokenAuthLayer::require_https);
/// leave it off for local development.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use tower_token_auth::auth::RequireHttps;
///
/// // Behind a load balancer at 10.0.0.2 that terminates TLS:
/// let https = RequireHttps::new().trust_proxy(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
/// # drop(https);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequireHttps {
    proxies: Proxies,
}

#[derive(Debug, Clone, Default)]
enum Proxies {
    /// Forwarding headers are ignored.
    #[default]
    None,
    /// Forwarding headers are trusted from these peers only.
    From(Vec<IpAddr>),
    /// Every peer is a trusted proxy: the service is reachable only through
    /// the proxy.
    Any,
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

impl RequireHttps {
    /// Trusts only the [`Tls`] extension.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts forwarding headers from a proxy at `addr` (the peer address
    /// comes from [`PeerAddr`](super::PeerAddr) or axum's `ConnectInfo`).
    /// An IPv4 proxy matches whether the socket reports it as IPv4 or as an
    /// IPv4-mapped IPv6 address (`::ffff:10.0.0.2`).
    pub fn trust_proxy(mut self, addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        match &mut self.proxies {
            Proxies::From(list) => list.push(addr),
            _ => self.proxies = Proxies::From(vec![addr]),
        }
        self
    }

    /// Trusts forwarding headers from any peer. Only for a service that no
    /// client can reach except through its TLS-terminating proxy.
    pub fn trust_any_proxy(mut self) -> Self {
        self.proxies = Proxies::Any;
        self
    }

    /// Whether `request` counts as HTTPS by this policy, with the peer found
    /// as the layer finds it by default ([`PeerAddr`](super::PeerAddr), or
    /// axum's `ConnectInfo` with the `axum` feature).
    ///
    /// The layer checks this on its own; call it to hold routes that sit
    /// outside [`TokenAuthLayer`](crate::TokenAuthLayer), such as a token or
    /// revocation endpoint, to the same rule.
    ///
    /// ```
    /// use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    /// use http::Request;
    /// use tower_token_auth::auth::{PeerAddr, RequireHttps};
    ///
    /// let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    /// let https = RequireHttps::new().trust_proxy(proxy);
    ///
    /// let plain = Request::post("/oauth/token").body(()).unwrap();
    /// assert!(!https.allows(&plain));
    ///
    /// let mut proxied = Request::post("/oauth/token")
    ///     .header("x-forwarded-proto", "https")
    ///     .body(())
    ///     .unwrap();
    /// proxied.extensions_mut().insert(PeerAddr(SocketAddr::new(proxy, 41000)));
    /// assert!(https.allows(&proxied));
    /// ```
    pub fn allows<B>(&self, request: &http::Request<B>) -> bool {
        self.is_https(
            request.headers(),
            request.extensions(),
            &PeerResolver::default(),
        )
    }

    pub(crate) fn is_https(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
        peer: &PeerResolver,
    ) -> bool {
        // The request line's scheme is the client's word, whatever it says:
        // only the acceptor's marker or a trusted proxy counts.
        if extensions.get::<Tls>().is_some() {
            return true;
        }
        let trusted = match &self.proxies {
            Proxies::None => false,
            Proxies::Any => true,
            // A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`.
            Proxies::From(list) => peer
                .resolve(extensions)
                .is_some_and(|ip| list.contains(&ip.to_canonical())),
        };
        trusted && forwarded_https(headers)
    }
}

/// Whether the nearest proxy said the client used HTTPS. Only the last
/// value of a header counts: earlier ones were written by whoever sent the
/// request. When both `X-Forwarded-Proto` and `Forwarded` are present, both
/// must say `https`, since a proxy that writes one may pass the client's
/// other one through.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let x_forwarded = headers
        .get_all(&X_FORWARDED_PROTO)
        .iter()
        .next_back()
        .map(|last| {
            let value = last.to_str().unwrap_or("");
            let nearest = value.rsplit(',').next().unwrap_or("").trim();
            nearest.eq_ignore_ascii_case("https")
        });
    let forwarded = headers.get_all(&FORWARDED).iter().next_back().map(|last| {
        let value = last.to_str().unwrap_or("");
        let nearest = value.rsplit(',').next().unwrap_or("");
        nearest.split(';').any(|pair| {
            let mut kv = pair.splitn(2, '=');
            let key = kv.next().unwrap_or("").trim();
            let val = kv.next().unwrap_or("").trim().trim_matches('"');
            key.eq_ignore_ascii_case("proto") && val.eq_ignore_ascii_case("https")
        })
    });
    match (x_forwarded, forwarded) {
        (None, None) => false,
        (a, b) => a.unwrap_or(true) && b.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PeerAddr;
    use std::net::{Ipv4Addr, SocketAddr};

    fn check(
        policy: &RequireHttps,
        uri: &str,
        headers: &[(&str, &str)],
        peer: Option<[u8; 4]>,
    ) -> bool {
        let mut request = http::Request::get(uri).body(()).unwrap();
        for (k, v) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        if let Some(ip) = peer {
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::from((ip, 4000))));
        }
        policy.allows(&request)
    }

    #[test]
    fn only_the_tls_marker_counts_never_the_request_line() {
        let p = RequireHttps::new();
        // The scheme of an absolute-form request line is the client's word.
        assert!(!check(&p, "https://api.test/v1", &[], None));
        assert!(!check(&p, "HTTPS://api.test/v1", &[], None));
        assert!(!check(&p, "http://api.test/v1", &[], None));
        assert!(!check(&p, "/v1", &[], None));
        let mut ext = Extensions::new();
        ext.insert(Tls);
        assert!(p.is_https(&HeaderMap::new(), &ext, &PeerResolver::default()));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let p = RequireHttps::new().trust_proxy(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let xfp = [("x-forwarded-proto", "https")];
        assert!(check(&p, "/v1", &xfp, Some([10, 0, 0, 2])));
        assert!(!check(&p, "/v1", &xfp, Some([10, 0, 0, 3])));
        assert!(!check(&p, "/v1", &xfp, None));
        assert!(!check(
            &RequireHttps::new(),
            "/v1",
            &xfp,
            Some([10, 0, 0, 2])
        ));
        let any = RequireHttps::new().trust_any_proxy();
        assert!(check(
            &any,
            "/v1",
            &[("forwarded", "for=1.2.3.4;proto=https")],
            None
        ));
        assert!(!check(
            &any,
            "/v1",
            &[("forwarded", "proto=https, for=1.2.3.4;proto=http")],
            None
        ));
        assert!(!check(
            &any,
            "/v1",
            &[("x-forwarded-proto", "https, http")],
            None
        ));
        assert!(check(
            &any,
            "/v1",
            &[("x-forwarded-proto", "http, HTTPS")],
            None
        ));
    }
}
