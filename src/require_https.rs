//! Refusing requests that did not arrive over TLS: [`RequireHttpsLayer`],
//! the PayRequest rule "always use HTTPS, enforced by our API".
//!
//! A request counts as HTTPS when it carries the [`Tls`] extension (set by
//! the server's own TLS acceptor) or comes from a trusted proxy that says so
//! (see [`Peers`]). Anything else is answered 403 `https_required`, with no
//! challenge and before the inner service runs, so a token sent in the
//! clear is never looked up. The layer wraps any route: the bearer API, a
//! token endpoint, a login form.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_auth::peer::{PeerAddr, Peers};
//! use tower_token_auth::require_https::RequireHttpsLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Behind a load balancer at 10.0.0.2 that terminates TLS.
//! let proxy = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
//! let service = ServiceBuilder::new()
//!     .layer(RequireHttpsLayer::new(Peers::new().trust_proxy(proxy)))
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("token"))))
//!     }));
//!
//! // Accepted: the proxy says the client used HTTPS.
//! let mut proxied = Request::post("/oauth/token")
//!     .header("x-forwarded-proto", "https")
//!     .body(Full::default())?;
//! proxied.extensions_mut().insert(PeerAddr(SocketAddr::new(proxy, 41000)));
//! assert_eq!(service.clone().oneshot(proxied).await?.status(), StatusCode::OK);
//!
//! // Refused: an https request line over a plain connection is the
//! // client's word.
//! let mut plain = Request::post("https://api.example/oauth/token").body(Full::default())?;
//! plain.extensions_mut().insert(PeerAddr("203.0.113.7:5000".parse()?));
//! let response = service.oneshot(plain).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{Audit, AuditEvent};
use crate::body::ResponseBody;
use crate::error::{AuthError, Rejections};
use crate::peer::Peers;
#[cfg(doc)]
use crate::peer::Tls;

/// Refuses requests not known to arrive over TLS with 403
/// `https_required`. See the [module docs](self).
#[derive(Clone)]
pub struct RequireHttpsLayer {
    /// Shared by every clone: a router clones the service per request.
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    peers: Peers,
    challenge: Rejections,
    audit: Audit,
}

impl fmt::Debug for RequireHttpsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireHttpsLayer")
            .field("peers", &self.shared.peers)
            .field("challenge", &self.shared.challenge)
            .finish_non_exhaustive()
    }
}

impl RequireHttpsLayer {
    /// Requires HTTPS as `peers` tells it: the [`Tls`] marker, or a trusted
    /// proxy's forwarding headers. The rejection uses the default
    /// [`Rejections`].
    pub fn new(peers: Peers) -> Self {
        Self {
            shared: Arc::new(Shared {
                peers,
                challenge: Rejections::default(),
                audit: Audit::default(),
            }),
        }
    }

    /// Renders the rejection with `rejections` (its `on_rejection` function
    /// can replace the response), so it looks like the other layers'.
    #[must_use]
    pub fn rejections(mut self, rejections: Rejections) -> Self {
        Arc::make_mut(&mut self.shared).challenge = rejections;
        self
    }

    /// Sends each rejection to `audit` as
    /// [`AuthenticationRejected`](AuditEvent::AuthenticationRejected),
    /// besides `tracing`.
    #[must_use]
    pub fn audit(mut self, audit: Audit) -> Self {
        Arc::make_mut(&mut self.shared).audit = audit;
        self
    }

    /// The peer and proxy configuration.
    pub fn peers(&self) -> &Peers {
        &self.shared.peers
    }
}

impl<Svc> Layer<Svc> for RequireHttpsLayer {
    type Service = RequireHttps<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RequireHttps {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireHttpsLayer`] builds.
pub struct RequireHttps<Svc> {
    inner: Svc,
    layer: RequireHttpsLayer,
}

crate::middleware::inner_service_accessors!([Svc] RequireHttps<Svc>);

impl<Svc> RequireHttps<Svc> {
    /// Wraps `inner`, requiring HTTPS as `peers` tells it.
    pub fn new(inner: Svc, peers: Peers) -> Self {
        RequireHttpsLayer::new(peers).layer(inner)
    }

    /// A [`RequireHttpsLayer`] over `peers`.
    pub fn layer(peers: Peers) -> RequireHttpsLayer {
        RequireHttpsLayer::new(peers)
    }
}

impl<Svc: Clone> Clone for RequireHttps<Svc> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<Svc: fmt::Debug> fmt::Debug for RequireHttps<Svc> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireHttps")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<Svc, ReqBody, ResBody> Service<Request<ReqBody>> for RequireHttps<Svc>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Svc::Error;
    type Future = ResponseFuture<Svc::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = &self.layer.shared;
        if shared
            .peers
            .is_https_parts(request.headers(), request.extensions())
        {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let error = AuthError::HttpsRequired;
        let response = shared.challenge.render(&error);
        shared
            .audit
            .emit(AuditEvent::AuthenticationRejected { id: None, error });
        ResponseFuture::rejected(response)
    }
}

crate::middleware::reject_or_call_future!(RequireHttps);
