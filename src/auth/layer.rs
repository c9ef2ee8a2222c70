use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::config::{AuthConfig, Parts};
use super::TokenAuth;
use crate::audit::Audit;
use crate::error::Rejections;
use crate::manager::{TokenManager, UsageTracker};
use crate::require_scope::RequireScopeLayer;
use crate::scope::Requirement;
use crate::shared::SharedRef;
use crate::store::{TokenBackend, TokenStore};
use crate::token::{Clock, SystemClock, TokenFormat};

/// Authenticates requests by bearer token against a [`TokenStore`].
///
/// See the [module docs](crate::auth) for the request flow.
pub struct TokenAuthLayer<St: 'static> {
    store: St,
    config: Arc<AuthConfig>,
    /// Set by [`leak`](TokenAuthLayer::leak): the store and settings every
    /// service of this layer shares, in memory that is never freed.
    leaked: Option<&'static Parts<St>>,
}

impl<St: Clone> Clone for TokenAuthLayer<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            config: Arc::clone(&self.config),
            leaked: self.leaked,
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

impl<B: TokenBackend> TokenAuthLayer<TokenManager<B>> {
    /// A layer that requires a valid token on every request, issued by
    /// `tokens`, with the realm `api`.
    ///
    /// Presented tokens are checked against the manager's token format
    /// ([`IssuePolicy::format`](crate::manager::IssuePolicy::format)) and
    /// expiry is judged by its clock: both match the minting by
    /// construction.
    pub fn new(tokens: TokenManager<B>) -> Self {
        let policy = tokens.policy();
        let format = Some(policy.get_format().clone());
        let clock = Arc::clone(policy.get_clock());
        Self::build(tokens, format, clock)
    }
}

impl<St: TokenStore> TokenAuthLayer<St> {
    /// A layer over a lookup that is not a [`TokenManager`]: a read-only
    /// replica, a cache in front of one, a remote lookup
    /// ([`IntrospectionStore`](crate::store::IntrospectionStore)).
    ///
    /// `format` is the format of the tokens it holds, checked before any
    /// lookup (`Some(TokenFormat::default())` for `pr_…` tokens), or `None`
    /// for opaque tokens of another issuer: every well-formed `b64token` is
    /// looked up. Expiry is judged by the system clock unless
    /// [`clock`](Self::clock) says otherwise.
    pub fn over(store: St, format: Option<TokenFormat>) -> Self {
        Self::build(store, format, Arc::new(SystemClock))
    }

    fn build(store: St, format: Option<TokenFormat>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config: Arc::new(AuthConfig {
                format,
                clock,
                optional: false,
                resources: Vec::new(),
                accept_unbound: false,
                challenge: Rejections::default(),
                audit: Audit::default(),
                usage: None,
            }),
            store,
            leaked: None,
        }
    }

    /// The settings, to change: a layer changed after [`leak`](Self::leak)
    /// builds counted services again until it is leaked again.
    fn config_mut(&mut self) -> &mut AuthConfig {
        self.leaked = None;
        Arc::make_mut(&mut self.config)
    }

    /// Moves the store and settings this layer's services share to memory
    /// that is never freed, for a layer built once at start-up.
    ///
    /// A router clones its services for every request. The services of a
    /// layer share its store and settings behind a reference count, and the
    /// clones of every core write that one count: a cache line the cores
    /// take from each other on every request. The services of a leaked
    /// layer share a `'static` reference instead, and cloning one writes
    /// nothing. `benches/scaling.rs` measures the difference (BENCHMARKS.md).
    ///
    /// The memory (one copy of the store handle and the settings) is never
    /// freed: leak the layers of a server once, not a layer per request or
    /// per test. Leak the [`RequireScopeLayer`]s too
    /// ([`RequireScopeLayer::leak`]). A setting changed after `leak` makes
    /// the layer build counted services again.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_token_auth::{MemoryStore, PayRequestScopes as S, TokenAuthLayer, TokenManager};
    ///
    /// let tokens = TokenManager::new(MemoryStore::<S>::new());
    /// let auth = TokenAuthLayer::new(tokens).leak();
    /// let app: Router = Router::new()
    ///     .route("/v1/invoices", get(|| async { "[]" }))
    ///     .route_layer(auth.require(S::BILLING_READ).leak())
    ///     .route_layer(auth);
    /// ```
    #[must_use]
    pub fn leak(mut self) -> Self
    where
        St: Clone,
    {
        if self.leaked.is_none() {
            let parts = Parts {
                store: self.store.clone(),
                config: Arc::clone(&self.config),
            };
            self.leaked = Some(Box::leak(Box::new(parts)));
        }
        self
    }

    /// This server's resource identifier (RFC 8707, RFC 9728 `resource`),
    /// e.g. `https://api.example.com/`. Once one is set, a token whose
    /// audience does not name one of this server's identifiers is refused
    /// (401 `invalid_token`, "issued for another resource"). Call it once
    /// per identifier the server answers to.
    ///
    /// Tokens issued before audiences were recorded have none and are
    /// refused too, unless [`accept_tokens_without_audience`](Self::accept_tokens_without_audience)
    /// says otherwise.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.config_mut().resources.push(resource.into());
        self
    }

    /// The migration path for tokens that predate audiences: while set, a
    /// token with no recorded audience passes the audience check (a token
    /// bound to another resource never does). Turn it off once those tokens
    /// have expired or been regenerated.
    #[must_use]
    pub fn accept_tokens_without_audience(mut self, accept: bool) -> Self {
        self.config_mut().accept_unbound = accept;
        self
    }

    /// Optional authentication: a request without bearer credentials passes
    /// through with no [`Principal`](crate::Principal). A present but bad
    /// token is still rejected.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.config_mut().optional = true;
        self
    }

    /// Overrides the clock expiry is judged by (by default the manager's,
    /// or the system clock for [`over`](Self::over)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config_mut().clock = clock;
        self
    }

    /// How rejections look: the realm, `resource_metadata` and scope of
    /// the challenge, and the rejection response.
    #[must_use]
    pub fn rejections(mut self, rejections: Rejections) -> Self {
        self.config_mut().challenge = rejections;
        self
    }

    /// Sends rejections to `audit` (and so to its observer), besides
    /// `tracing`.
    #[must_use]
    pub fn audit(mut self, audit: Audit) -> Self {
        self.config_mut().audit = audit;
        self
    }

    /// Records when tokens are used, coalesced by `tracker` (see
    /// [`UsageTracker`]).
    #[must_use]
    pub fn track_usage(mut self, tracker: UsageTracker) -> Self {
        self.config_mut().usage = Some(tracker);
        self
    }

    /// A [`RequireScopeLayer`] whose rejections use this layer's challenge
    /// and audit sink.
    pub fn require(
        &self,
        requirement: impl Into<Requirement<St::Scopes>>,
    ) -> RequireScopeLayer<St::Scopes> {
        RequireScopeLayer::new(requirement)
            .rejections(self.config.challenge.clone())
            .audit(self.config.audit.clone())
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<Svc, B: TokenBackend> TokenAuth<Svc, TokenManager<B>> {
    /// Wraps `inner` with the default settings of [`TokenAuthLayer::new`].
    pub fn new(inner: Svc, tokens: TokenManager<B>) -> Self {
        tower_layer::Layer::layer(&TokenAuthLayer::new(tokens), inner)
    }

    /// A [`TokenAuthLayer`] over `tokens`.
    pub fn layer(tokens: TokenManager<B>) -> TokenAuthLayer<TokenManager<B>> {
        TokenAuthLayer::new(tokens)
    }
}

impl<Svc, St: Clone> Layer<Svc> for TokenAuthLayer<St> {
    type Service = TokenAuth<Svc, St>;

    fn layer(&self, inner: Svc) -> Self::Service {
        let shared = match self.leaked {
            Some(parts) => SharedRef::Leaked(parts),
            None => SharedRef::new(Parts {
                store: self.store.clone(),
                config: Arc::clone(&self.config),
            }),
        };
        TokenAuth::from_shared(inner, shared)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::manager::{IssueRequest, TokenManager};
    use crate::scope::PayRequestScopes as S;
    use crate::store::MemoryStore;
    use crate::token::TokenKind;

    async fn status(
        layer: &TokenAuthLayer<TokenManager<MemoryStore<S>>>,
        token: &str,
    ) -> StatusCode {
        let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
        }));
        let request = Request::get("/v1/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        service.oneshot(request).await.unwrap().status()
    }

    /// RFC 8707 §2: a token is issued for the resources its client named
    /// (its audience); a resource server bound to another refuses it as
    /// RFC 6750 §3.1 `invalid_token` ("invalid for other reasons").
    #[tokio::test]
    async fn rfc_8707_2_rfc_6750_3_1_a_token_for_another_resource_is_invalid_token() {
        let here = "https://api.example.com/";
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let issue = |audience: Option<&'static str>| {
            let tokens = tokens.clone();
            async move {
                let mut request = IssueRequest::new(TokenKind::PersonalAccess, "t", "u1");
                if let Some(resource) = audience {
                    request = request.audience([resource]);
                }
                tokens.issue(request).await.unwrap()
            }
        };
        let ours = issue(Some(here)).await;
        let theirs = issue(Some("https://other.example/")).await;
        let legacy = issue(None).await;

        let unbound = TokenAuthLayer::new(tokens.clone());
        for token in [&ours, &theirs, &legacy] {
            assert_eq!(
                status(&unbound, token.secret.expose_secret()).await,
                StatusCode::OK
            );
        }
        let bound = TokenAuthLayer::new(tokens.clone()).resource(here);
        assert_eq!(
            status(&bound, ours.secret.expose_secret()).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&bound, theirs.secret.expose_secret()).await,
            StatusCode::UNAUTHORIZED
        );
        let rendered = bound
            .config
            .challenge
            .render(&crate::AuthError::InvalidToken(
                crate::error::InvalidTokenReason::WrongAudience,
            ));
        let challenge = rendered.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains("issued for another resource"),
            "{challenge}"
        );
        assert_eq!(
            status(&bound, legacy.secret.expose_secret()).await,
            StatusCode::UNAUTHORIZED,
            "no silent any: a token without audience is refused by default"
        );
        let migrating = bound.accept_tokens_without_audience(true);
        assert_eq!(
            status(&migrating, legacy.secret.expose_secret()).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&migrating, theirs.secret.expose_secret()).await,
            StatusCode::UNAUTHORIZED
        );
    }

    /// A leaked layer's services share one `'static` reference and answer
    /// as a counted layer's do; a setting changed after the leak applies,
    /// to counted services again.
    #[tokio::test]
    async fn a_leaked_layer_answers_as_before_and_later_settings_apply() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let issued = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "t", "u1"))
            .await
            .unwrap();
        let echo = || {
            service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
            })
        };
        let leaked = TokenAuthLayer::new(tokens.clone()).leak();
        let service = leaked.layer(echo());
        assert!(service.is_leaked() && service.clone().is_leaked());
        assert!(!TokenAuthLayer::new(tokens.clone())
            .layer(echo())
            .is_leaked());
        assert_eq!(
            status(&leaked, issued.secret.expose_secret()).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&leaked, "pr_pat_nope").await,
            StatusCode::UNAUTHORIZED
        );

        let optional = leaked.clone().optional();
        assert!(!optional.layer(echo()).is_leaked());
        let no_token = || Request::get("/v1/me").body(Full::default()).unwrap();
        assert_eq!(
            optional
                .layer(echo())
                .oneshot(no_token())
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "the setting made after the leak holds"
        );
        assert_eq!(
            leaked
                .layer(echo())
                .oneshot(no_token())
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED,
            "the leaked layer is unchanged"
        );
    }
}
