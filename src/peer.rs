//! Who is on the other end of the connection, and which peers are trusted
//! proxies: one configuration for every layer that asks.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HeaderName;
use http::{Extensions, HeaderMap, Request};

/// A marker a TLS-terminating server puts into each request's extensions
/// to say the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tls;

/// The address of the connection's peer, as a request extension.
///
/// Servers that know the peer insert it (with hyper: from the accepted
/// `TcpStream`). With the `axum` feature, axum's `ConnectInfo<SocketAddr>`
/// is read as well, so `into_make_service_with_connect_info` is enough.
/// [`Peers`] reads it, for the HTTPS rule and the brute-force throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Who a failed authentication is counted against by the brute-force
/// throttle (feature `throttle`).
///
/// The throttle counts an IPv6 address under its /64 and an IPv4-mapped
/// IPv6 address under its IPv4 address, whoever made the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The client's IP address (the default).
    Ip(IpAddr),
    /// A key the service derives itself (a client id, a tenant).
    Named(Arc<str>),
}

type Resolve = dyn Fn(&Extensions) -> Option<IpAddr> + Send + Sync;

/// How the peer's IP address of a request is found.
#[derive(Clone, Default)]
struct PeerResolver(Option<Arc<Resolve>>);

impl fmt::Debug for PeerResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "custom"
        } else {
            "PeerAddr or ConnectInfo"
        })
    }
}

impl PeerResolver {
    fn resolve(&self, extensions: &Extensions) -> Option<IpAddr> {
        if let Some(custom) = &self.0 {
            return custom(extensions);
        }
        if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
            return Some(addr.ip());
        }
        #[cfg(feature = "axum")]
        if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
            return Some(info.0.ip());
        }
        None
    }
}

/// Which peers may speak for the client.
#[derive(Debug, Clone, Default)]
enum Proxies {
    /// Forwarding headers are ignored.
    #[default]
    None,
    /// Forwarding headers are trusted from these peers only.
    From(Arc<[IpAddr]>),
    /// Every peer is a trusted proxy: the service is reachable only through
    /// the proxy.
    Any,
}

/// Who is on the other end: how the peer's address is found, and which
/// peers are trusted proxies whose forwarding headers count.
///
/// One value configures every layer that asks:
/// [`RequireHttpsLayer`](crate::require_https::RequireHttpsLayer) (was the request made
/// over TLS?) and the throttle (feature `throttle`: which client is this?).
/// Give them the same `Peers` so they agree.
///
/// - The peer is read from [`PeerAddr`], or axum's `ConnectInfo<SocketAddr>`
///   (feature `axum`), or a function of your own
///   ([`peer_addr`](Self::peer_addr)). An IPv4-mapped IPv6 address (a
///   dual-stack socket's view of an IPv4 peer) is its IPv4 address.
/// - From a trusted proxy, only the last value of `X-Forwarded-Proto`,
///   `X-Forwarded-For` and `Forwarded` counts: earlier values were written
///   by whoever sent the request to the proxy. When both the `X-Forwarded-*`
///   header and `Forwarded` are present they must agree, since a proxy that
///   writes one may pass the client's other one on. Make your proxy
///   overwrite (or append to) these headers.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, SocketAddr};
/// use http::Request;
/// use tower_token_auth::peer::{PeerAddr, Peers};
/// use tower_token_auth::peer::Tls;
///
/// let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
/// let peers = Peers::new().trust_proxy(proxy);
///
/// // Through the proxy, which terminated TLS for 203.0.113.7.
/// let mut proxied = Request::get("/v1/invoices")
///     .header("x-forwarded-proto", "https")
///     .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
///     .body(())?;
/// proxied.extensions_mut().insert(PeerAddr(SocketAddr::new(proxy, 41000)));
/// assert!(peers.is_https(&proxied));
/// assert_eq!(peers.client_ip(&proxied), Some("203.0.113.7".parse()?));
///
/// // The same headers from anyone else are the client's word.
/// let mut direct = Request::get("https://api.example/v1/invoices")
///     .header("x-forwarded-proto", "https")
///     .header("x-forwarded-for", "203.0.113.7")
///     .body(())?;
/// direct.extensions_mut().insert(PeerAddr("192.0.2.9:5000".parse()?));
/// assert!(!peers.is_https(&direct));
/// assert_eq!(peers.client_ip(&direct), Some("192.0.2.9".parse()?));
///
/// // The server's own TLS acceptor marks its requests.
/// let mut tls = Request::get("/v1/invoices").body(())?;
/// tls.extensions_mut().insert(Tls);
/// assert!(peers.is_https(&tls));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Peers {
    resolver: PeerResolver,
    proxies: Proxies,
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

impl Peers {
    /// No trusted proxy; the peer from [`PeerAddr`] or axum's
    /// `ConnectInfo`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the forwarding headers of a proxy at `addr`. An IPv4 proxy
    /// matches whether the socket reports it as IPv4 or as an IPv4-mapped
    /// IPv6 address (`::ffff:10.0.0.2`).
    #[must_use]
    pub fn trust_proxy(mut self, addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        self.proxies = match self.proxies {
            Proxies::From(list) => Proxies::From(list.iter().copied().chain([addr]).collect()),
            _ => Proxies::From(Arc::from([addr])),
        };
        self
    }

    /// Trusts the forwarding headers of every peer. Only for a service that
    /// no client can reach except through its proxy.
    #[must_use]
    pub fn trust_any_proxy(mut self) -> Self {
        self.proxies = Proxies::Any;
        self
    }

    /// Finds the peer's IP address with `f` instead of [`PeerAddr`] and
    /// axum's `ConnectInfo`.
    #[must_use]
    pub fn peer_addr<F>(mut self, f: F) -> Self
    where
        F: Fn(&Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    {
        self.resolver = PeerResolver(Some(Arc::new(f)));
        self
    }

    /// The peer's IP address, an IPv4-mapped one as its IPv4 address.
    pub fn peer(&self, extensions: &Extensions) -> Option<IpAddr> {
        self.resolver
            .resolve(extensions)
            .map(|ip| ip.to_canonical())
    }

    /// Whether the peer is a trusted proxy.
    pub fn is_trusted_proxy(&self, extensions: &Extensions) -> bool {
        match &self.proxies {
            Proxies::None => false,
            Proxies::Any => true,
            Proxies::From(list) => self
                .peer(extensions)
                .is_some_and(|peer| list.contains(&peer)),
        }
    }

    /// Whether `request` is known to have arrived over TLS: it carries the
    /// [`Tls`] extension (set by the server's own TLS acceptor), or it comes
    /// from a trusted proxy whose last `X-Forwarded-Proto` and `Forwarded`
    /// values say `https`.
    ///
    /// The scheme of the request line never counts: a client chooses it
    /// (`GET https://host/path HTTP/1.1` over plain TCP).
    pub fn is_https<B>(&self, request: &Request<B>) -> bool {
        self.is_https_parts(request.headers(), request.extensions())
    }

    pub(crate) fn is_https_parts(&self, headers: &HeaderMap, extensions: &Extensions) -> bool {
        if extensions.get::<Tls>().is_some() {
            return true;
        }
        self.is_trusted_proxy(extensions) && forwarded_https(headers)
    }

    /// The client's IP address: the peer's, or, from a trusted proxy, the
    /// last value of `X-Forwarded-For` and of `Forwarded: for=`.
    ///
    /// From a trusted proxy that sends neither header, the proxy's own
    /// address. `None` when there is no peer address, or when a trusted
    /// proxy's headers name no IP address (`for=unknown`, an obfuscated
    /// identifier) or disagree.
    pub fn client_ip<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        self.client_ip_parts(request.headers(), request.extensions())
    }

    pub(crate) fn client_ip_parts(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Option<IpAddr> {
        let peer = self.peer(extensions)?;
        if !self.is_trusted_proxy(extensions) {
            return Some(peer);
        }
        let x_forwarded = last_value(headers, &X_FORWARDED_FOR).map(|last| node_ip(last.trim()));
        // A `Forwarded` element without `for` says nothing about the client.
        let forwarded = last_value(headers, &FORWARDED)
            .and_then(|last| forwarded_param(last, "for"))
            .map(node_ip);
        match (x_forwarded, forwarded) {
            (None, None) => Some(peer),
            (Some(ip), None) | (None, Some(ip)) => ip.map(|ip| ip.to_canonical()),
            (Some(a), Some(b)) if a == b => a.map(|ip| ip.to_canonical()),
            (Some(_), Some(_)) => None,
        }
    }
}

/// The last comma-separated element of the last line of `name`, or `None`
/// when the header is absent. A line that is not visible ASCII counts as an
/// empty value.
fn last_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let line = headers.get_all(name).iter().next_back()?;
    let text = line.to_str().unwrap_or("");
    Some(text.rsplit(',').next().unwrap_or(""))
}

/// The value of `key` in one `Forwarded` element (`for=…;proto=…`),
/// unquoted.
fn forwarded_param<'v>(element: &'v str, key: &str) -> Option<&'v str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The IP address of an RFC 7239 node (`192.0.2.1`, `192.0.2.1:80`,
/// `[2001:db8::1]:80`, `2001:db8::1`), as `X-Forwarded-For` also writes
/// them; `None` for `unknown`, an obfuscated identifier, or anything else.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
}

/// Whether the nearest proxy said the client used HTTPS: the last value of
/// each header present says `https`, and at least one is present.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let x_forwarded = last_value(headers, &X_FORWARDED_PROTO)
        .map(|last| last.trim().eq_ignore_ascii_case("https"));
    let forwarded = last_value(headers, &FORWARDED).map(|last| {
        forwarded_param(last, "proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    });
    match (x_forwarded, forwarded) {
        (None, None) => false,
        (a, b) => a.unwrap_or(true) && b.unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn request(headers: &[(&str, &str)], peer: Option<&str>) -> Request<()> {
        let mut request = Request::get("/v1").body(()).unwrap();
        for (k, v) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        if let Some(peer) = peer {
            let ip: IpAddr = peer.parse().unwrap();
            request
                .extensions_mut()
                .insert(PeerAddr(SocketAddr::new(ip, 4000)));
        }
        request
    }

    fn proxy() -> Peers {
        Peers::new().trust_proxy(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
    }

    #[test]
    fn only_the_tls_marker_counts_never_the_request_line() {
        let peers = Peers::new().trust_any_proxy();
        for uri in [
            "https://api.test/v1",
            "HTTPS://api.test/v1",
            "http://api.test/v1",
            "/v1",
        ] {
            let request = Request::get(uri).body(()).unwrap();
            assert!(!peers.is_https(&request), "{uri}");
        }
        let mut tls = Request::get("/v1").body(()).unwrap();
        tls.extensions_mut().insert(Tls);
        assert!(Peers::new().is_https(&tls));
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let xfp = [("x-forwarded-proto", "https")];
        assert!(proxy().is_https(&request(&xfp, Some("10.0.0.2"))));
        assert!(proxy().is_https(&request(&xfp, Some("::ffff:10.0.0.2"))));
        assert!(!proxy().is_https(&request(&xfp, Some("10.0.0.3"))));
        assert!(!proxy().is_https(&request(&xfp, None)));
        assert!(!Peers::new().is_https(&request(&xfp, Some("10.0.0.2"))));
        let any = Peers::new().trust_any_proxy();
        assert!(any.is_https(&request(&[("forwarded", "for=1.2.3.4;proto=https")], None)));
        for (headers, https) in [
            (
                &[("forwarded", "proto=https, for=1.2.3.4;proto=http")][..],
                false,
            ),
            (&[("x-forwarded-proto", "https, http")], false),
            (&[("x-forwarded-proto", "http, HTTPS")], true),
            (&[("forwarded", "for=1.2.3.4;proto=\"https\"")], true),
            (
                &[("x-forwarded-proto", "https"), ("forwarded", "for=x")],
                false,
            ),
            (
                &[("x-forwarded-proto", "https"), ("x-forwarded-proto", "")],
                false,
            ),
        ] {
            assert_eq!(any.is_https(&request(headers, None)), https, "{headers:?}");
        }
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_its_last_forwarded_address() {
        let peers = proxy();
        let from_proxy =
            |headers: &[(&str, &str)]| peers.client_ip(&request(headers, Some("10.0.0.2")));
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(from_proxy(&[]), ip("10.0.0.2"), "no header: the proxy");
        assert_eq!(
            from_proxy(&[("x-forwarded-for", "192.0.2.1, 203.0.113.7")]),
            ip("203.0.113.7")
        );
        assert_eq!(
            from_proxy(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "198.51.100.1:443")
            ]),
            ip("198.51.100.1")
        );
        assert_eq!(
            from_proxy(&[("x-forwarded-for", "::ffff:203.0.113.7")]),
            ip("203.0.113.7")
        );
        assert_eq!(
            from_proxy(&[(
                "forwarded",
                "for=192.0.2.1, for=\"[2001:db8:cafe::17]:4711\";proto=https"
            )]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            from_proxy(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("forwarded", "for=203.0.113.7")
            ]),
            ip("203.0.113.7"),
            "both headers, agreeing"
        );
        assert_eq!(
            from_proxy(&[
                ("x-forwarded-for", "203.0.113.7"),
                ("forwarded", "for=192.0.2.1")
            ]),
            None,
            "both headers, disagreeing"
        );
        assert_eq!(from_proxy(&[("forwarded", "for=unknown")]), None);
        assert_eq!(
            from_proxy(&[("forwarded", "for=_hidden;proto=https")]),
            None
        );
        assert_eq!(from_proxy(&[("x-forwarded-for", "")]), None);
        // From anyone else the headers are the client's word.
        let direct = request(&[("x-forwarded-for", "203.0.113.7")], Some("192.0.2.9"));
        assert_eq!(peers.client_ip(&direct), ip("192.0.2.9"));
        assert_eq!(peers.client_ip(&request(&[], None)), None);
        // The peer of a dual-stack socket is its IPv4 address.
        assert_eq!(
            peers.client_ip(&request(&[], Some("::ffff:192.0.2.9"))),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn a_custom_resolver_replaces_the_peer_address() {
        #[derive(Clone, Copy)]
        struct Hop(IpAddr);
        let peers = proxy().peer_addr(|ext| ext.get::<Hop>().map(|h| h.0));
        let mut request = request(&[("x-forwarded-proto", "https")], Some("10.0.0.2"));
        assert!(!peers.is_https(&request), "PeerAddr is not read any more");
        request
            .extensions_mut()
            .insert(Hop(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
        assert!(peers.is_https(&request));
    }
}
