use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::TokenAuth;
use crate::audit::Audit;
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
