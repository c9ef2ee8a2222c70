//! Who is on the other end of the connection.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Extensions;

/// The address of the connection's peer, as a request extension.
///
/// Servers that know the peer insert it (with hyper: from the accepted
/// `TcpStream`). With the `axum` feature, axum's `ConnectInfo<SocketAddr>`
/// is read as well, so `into_make_service_with_connect_info` is enough.
/// [`RequireHttps`](super::RequireHttps) and the brute-force throttle read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Who a failed authentication is counted against by the brute-force
/// throttle (feature `throttle`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The peer's IP address (the default).
    Ip(IpAddr),
    /// A key the service derives itself (a client id, a tenant).
    Named(Arc<str>),
}

type Resolve = dyn Fn(&Extensions) -> Option<IpAddr> + Send + Sync;

/// How the layer finds the peer's IP address of a request.
#[derive(Clone, Default)]
pub(crate) struct PeerResolver(Option<Arc<Resolve>>);

impl fmt::Debug for PeerResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "PeerResolver(custom)"
        } else {
            "PeerResolver(extensions)"
        })
    }
}

impl PeerResolver {
    pub(crate) fn custom(f: Arc<Resolve>) -> Self {
        Self(Some(f))
    }

    /// The peer's IP: the custom function's answer, else [`PeerAddr`], else
    /// (feature `axum`) `ConnectInfo<SocketAddr>`.
    pub(crate) fn resolve(&self, extensions: &Extensions) -> Option<IpAddr> {
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
