use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use std::net::IpAddr;

use bytes::Bytes;
use http::{Extensions, HeaderMap, Response};

use super::https::RequireHttps;
use super::peer::{ClientKey, PeerResolver};
use super::TokenAuth;
use crate::audit::Audit;
use crate::error::AuthError;
use crate::error::Challenge;
use crate::scope::{RequireScopeLayer, Requirement};
use crate::store::TokenStore;
use crate::token::{Clock, SystemClock, TokenFormat};
use crate::usage::UsageTracker;

/// Authenticates requests by bearer token against a [`TokenStore`].
///
/// See the [module docs](crate::auth) for the request flow.
pub struct TokenAuthLayer<St> {
    store: St,
    config: Arc<AuthConfig>,
}

/// Settings shared by every clone of the layer and its services.
#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    pub(crate) format: TokenFormat,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) optional: bool,
    pub(crate) challenge: Challenge,
    pub(crate) audit: Audit,
    pub(crate) usage: Option<UsageTracker>,
    pub(crate) https: Option<RequireHttps>,
    pub(crate) peer: PeerResolver,
    #[cfg(feature = "throttle")]
    pub(crate) throttle: Option<super::Throttle>,
}

impl AuthConfig {
    /// The throttle key of a request, when a throttle is configured.
    #[cfg_attr(not(feature = "throttle"), allow(unused_variables))]
    pub(crate) fn client_key(
        &self,
        extensions: &Extensions,
        headers: &HeaderMap,
    ) -> Option<ClientKey> {
        #[cfg(feature = "throttle")]
        if let Some(throttle) = &self.throttle {
            return throttle.key(extensions, headers, &self.peer);
        }
        None
    }

    /// How long `key` must wait, when it is throttled.
    #[cfg_attr(not(feature = "throttle"), allow(unused_variables))]
    pub(crate) fn throttled(&self, key: Option<&ClientKey>) -> Option<std::time::Duration> {
        #[cfg(feature = "throttle")]
        if let Some(throttle) = &self.throttle {
            return throttle.blocked_for(key);
        }
        None
    }

    /// Counts `error` against `key` when it looks like guessing.
    #[cfg_attr(not(feature = "throttle"), allow(unused_variables))]
    pub(crate) fn count_failure(&self, key: Option<&ClientKey>, error: &AuthError) {
        #[cfg(feature = "throttle")]
        if let Some(throttle) = &self.throttle {
            if matches!(
                error,
                AuthError::InvalidToken(_) | AuthError::ExpiredToken | AuthError::InvalidRequest(_)
            ) {
                throttle.failure(key);
            }
        }
    }

    /// The response for a request refused after the lookup (the error is
    /// already audited): counted against `key`, then rendered.
    pub(crate) fn refuse(&self, key: Option<&ClientKey>, error: &AuthError) -> Response<Bytes> {
        self.count_failure(key, error);
        self.challenge.render(error)
    }
}

impl<St: Clone> Clone for TokenAuthLayer<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<St> fmt::Debug for TokenAuthLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<St: TokenStore> TokenAuthLayer<St> {
    /// A layer that requires a valid token on every request, looked up in
    /// `store`, with the default token format (`pr_…`), the system clock and
    /// the realm `api`.
    pub fn new(store: St) -> Self {
        Self {
            store,
            config: Arc::new(AuthConfig {
                format: TokenFormat::default(),
                clock: Arc::new(SystemClock),
                optional: false,
                challenge: Challenge::default(),
                audit: Audit::default(),
                usage: None,
                https: None,
                peer: PeerResolver::default(),
                #[cfg(feature = "throttle")]
                throttle: None,
            }),
        }
    }

    /// Optional authentication: a request without bearer credentials passes
    /// through with no [`Principal`](crate::Principal). A present but bad
    /// token is still rejected.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.config).optional = true;
        self
    }

    /// Sets the token format; it must match the store's.
    pub fn format(mut self, format: TokenFormat) -> Self {
        Arc::make_mut(&mut self.config).format = format;
        self
    }

    /// Sets the clock expiry is judged by (inject a
    /// [`ManualClock`](crate::token::ManualClock) in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.config).clock = clock;
        self
    }

    /// Sets the realm, `resource_metadata` and rejection response.
    pub fn challenge(mut self, challenge: Challenge) -> Self {
        Arc::make_mut(&mut self.config).challenge = challenge;
        self
    }

    /// Sends rejections to `audit` (and so to its observer), besides
    /// `tracing`.
    pub fn audit(mut self, audit: Audit) -> Self {
        Arc::make_mut(&mut self.config).audit = audit;
        self
    }

    /// Records when tokens are used, coalesced by `tracker` (see
    /// [`crate::usage`]).
    pub fn track_usage(mut self, tracker: UsageTracker) -> Self {
        Arc::make_mut(&mut self.config).usage = Some(tracker);
        self
    }

    /// Refuses requests that did not arrive over TLS, before any token is
    /// read (403 `https_required`). Off by default, for local development.
    pub fn require_https(mut self, https: RequireHttps) -> Self {
        Arc::make_mut(&mut self.config).https = Some(https);
        self
    }

    /// Sets how the peer's IP address is found (for
    /// [`RequireHttps::trust_proxy`] and the throttle). By default it is read
    /// from the [`PeerAddr`](super::PeerAddr) extension, or axum's
    /// `ConnectInfo<SocketAddr>` with the `axum` feature.
    pub fn peer_addr<F>(mut self, f: F) -> Self
    where
        F: Fn(&Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.config).peer = PeerResolver::custom(Arc::new(f));
        self
    }

    /// Throttles clients that fail authentication too often: 429 with
    /// `Retry-After` (see [`Throttle`](super::Throttle)).
    #[cfg(feature = "throttle")]
    #[cfg_attr(docsrs, doc(cfg(feature = "throttle")))]
    pub fn throttle(mut self, throttle: super::Throttle) -> Self {
        Arc::make_mut(&mut self.config).throttle = Some(throttle);
        self
    }

    /// A [`RequireScopeLayer`] whose rejections use this layer's challenge
    /// and audit sink.
    pub fn require(
        &self,
        requirement: impl Into<Requirement<St::Scopes>>,
    ) -> RequireScopeLayer<St::Scopes> {
        RequireScopeLayer::new(requirement)
            .challenge(self.config.challenge.clone())
            .audit(self.config.audit.clone())
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<Svc, St: Clone> Layer<Svc> for TokenAuthLayer<St> {
    type Service = TokenAuth<Svc, St>;

    fn layer(&self, inner: Svc) -> Self::Service {
        TokenAuth::from_parts(inner, self.store.clone(), Arc::clone(&self.config))
    }
}
