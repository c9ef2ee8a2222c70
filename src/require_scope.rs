//! Authorization: [`RequireScopeLayer`] lets a request through only when
//! the [`Principal`] that [`TokenAuthLayer`](crate::TokenAuthLayer) put
//! into it holds the route's scopes (403 `insufficient_scope` otherwise).
//!
//! Build it from the authentication layer
//! ([`TokenAuthLayer::require`](crate::TokenAuthLayer::require)), so that
//! both answer with one challenge and one audit sink; see
//! [`RequireScopeLayer`] for a runnable example.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{Audit, AuditEvent};
use crate::body::ResponseBody;
use crate::error::{AuthError, Prepared, Rejections};
use crate::principal::Principal;
use crate::scope::{Requirement, ScopeSet};
use crate::shared::SharedRef;

/// Requires the request's [`Principal`] to hold scopes: per route or per
/// route group, behind a [`TokenAuthLayer`](crate::TokenAuthLayer).
///
/// A request whose token lacks the scopes gets 403 `insufficient_scope` with
/// the `scope` attribute naming what is required. A request without a
/// principal (no authentication layer in front, or optional authentication
/// and no credentials) gets the 401 challenge.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response, StatusCode};
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_token_auth::{MemoryStore, TokenAuthLayer};
/// use tower_token_auth::scope::PayRequestScopes;
/// use tower_token_auth::manager::{IssueRequest, TokenManager};
/// use tower_token_auth::token::TokenKind;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenManager::new(MemoryStore::new());
/// let reader = tokens.issue(IssueRequest::new(TokenKind::PersonalAccess, "reports", "u1")).await?;
///
/// let auth = TokenAuthLayer::new(tokens);
/// let create_invoice = ServiceBuilder::new()
///     .layer(auth.clone())
///     .layer(auth.require(PayRequestScopes::BILLING_WRITE))
///     .service(service_fn(|_req: Request<Full<Bytes>>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("created"))))
///     }));
///
/// let request = Request::post("/v1/invoices")
///     .header("authorization", format!("Bearer {}", reader.secret.expose_secret()))
///     .body(Full::default())?;
/// let response = create_invoice.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// assert!(response.headers()["www-authenticate"]
///     .to_str()?
///     .contains(r#"error="insufficient_scope""#));
/// assert!(response.headers()["www-authenticate"].to_str()?.contains(r#"scope="billing.write""#));
/// # Ok(())
/// # }
/// ```
pub struct RequireScopeLayer<S: 'static> {
    /// Shared by every clone: a router clones the service per request, and
    /// this is one reference count.
    shared: SharedRef<Shared<S>>,
}

struct Shared<S> {
    requirement: Requirement<S>,
    challenge: Rejections,
    audit: Audit,
    /// The 403 of this requirement, rendered once.
    denied: Prepared,
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self {
            requirement: self.requirement.clone(),
            challenge: self.challenge.clone(),
            audit: self.audit.clone(),
            denied: self.denied.clone(),
        }
    }
}

impl<S: 'static> Clone for RequireScopeLayer<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug + 'static> fmt::Debug for RequireScopeLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("requirement", &self.shared.requirement)
            .field("challenge", &self.shared.challenge)
            .finish()
    }
}

impl<S: ScopeSet> RequireScopeLayer<S> {
    /// Requires `requirement` (a scope set, meaning all of it, or a
    /// [`Requirement`]) with the default challenge (realm `api`).
    pub fn new(requirement: impl Into<Requirement<S>>) -> Self {
        let requirement = requirement.into();
        let challenge = Rejections::default();
        let denied = challenge.prepare(&denial(&requirement));
        Self {
            shared: SharedRef::new(Shared {
                requirement,
                challenge,
                audit: Audit::default(),
                denied,
            }),
        }
    }

    /// Sends scope denials to `audit`; [`TokenAuthLayer::require`](crate::TokenAuthLayer::require)
    /// does this for you.
    #[must_use]
    pub fn audit(mut self, audit: Audit) -> Self {
        self.shared.make_mut().audit = audit;
        self
    }

    /// How the 403 looks; [`TokenAuthLayer::require`](crate::TokenAuthLayer::require)
    /// does this for you.
    #[must_use]
    pub fn rejections(mut self, rejections: Rejections) -> Self {
        let shared = self.shared.make_mut();
        shared.denied = rejections.prepare(&denial(&shared.requirement));
        shared.challenge = rejections;
        self
    }

    /// Moves this layer's requirement and rejections to memory that is
    /// never freed, for a layer built once at start-up: its services then
    /// clone without writing a shared reference count. See
    /// [`TokenAuthLayer::leak`](crate::TokenAuthLayer::leak), and leak a
    /// server's layers once, not per request or per test.
    #[must_use]
    pub fn leak(mut self) -> Self {
        self.shared = self.shared.leak();
        self
    }
}

impl<Svc, S: ScopeSet> Layer<Svc> for RequireScopeLayer<S> {
    type Service = RequireScope<Svc, S>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RequireScope {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireScopeLayer`] builds.
pub struct RequireScope<Svc, S: 'static> {
    inner: Svc,
    layer: RequireScopeLayer<S>,
}

crate::middleware::inner_service_accessors!([Svc, S: 'static] RequireScope<Svc, S>);

impl<Svc, S: ScopeSet> RequireScope<Svc, S> {
    /// Wraps `inner`, requiring `requirement`.
    pub fn new(inner: Svc, requirement: impl Into<Requirement<S>>) -> Self {
        RequireScopeLayer::new(requirement).layer(inner)
    }

    /// A [`RequireScopeLayer`] requiring `requirement`.
    pub fn layer(requirement: impl Into<Requirement<S>>) -> RequireScopeLayer<S> {
        RequireScopeLayer::new(requirement)
    }
}

impl<Svc: Clone, S: 'static> Clone for RequireScope<Svc, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<Svc: fmt::Debug, S: fmt::Debug + 'static> fmt::Debug for RequireScope<Svc, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<Svc, S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<Svc, S>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S: ScopeSet,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Svc::Error;
    type Future = ResponseFuture<Svc::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let error = match request.extensions().get::<Principal<S>>() {
            Some(principal)
                if self
                    .layer
                    .shared
                    .requirement
                    .is_satisfied_by(principal.scopes()) =>
            {
                return ResponseFuture::inner(self.inner.call(request));
            }
            Some(principal) => {
                self.layer.shared.audit.emit(AuditEvent::ScopeDenied {
                    id: principal.token_id(),
                    owner: principal.owner().to_owned(),
                    required: self.layer.shared.requirement.attribute_arc(),
                });
                denial(&self.layer.shared.requirement)
            }
            None => {
                let error = AuthError::MissingToken;
                self.layer
                    .shared
                    .audit
                    .emit(AuditEvent::AuthenticationRejected {
                        id: None,
                        error: error.clone(),
                    });
                return ResponseFuture::rejected(self.layer.shared.challenge.render(&error));
            }
        };
        ResponseFuture::rejected(
            self.layer
                .shared
                .challenge
                .respond(&error, &self.layer.shared.denied),
        )
    }
}

/// The error of a principal that does not meet `requirement`.
fn denial<S: ScopeSet>(requirement: &Requirement<S>) -> AuthError {
    AuthError::InsufficientScope {
        required: requirement.attribute_arc(),
    }
}

crate::middleware::reject_or_call_future!(RequireScope);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use http::StatusCode;
    use http_body_util::Full;
    use tower::{service_fn, ServiceExt};

    use super::*;
    use crate::manager::{IssueRequest, TokenManager};
    use crate::scope::PayRequestScopes as S;
    use crate::store::MemoryStore;
    use crate::token::TokenKind;
    use crate::TokenStore;

    /// A leaked layer decides as a counted one does, and its clones share
    /// one `'static` state.
    #[tokio::test]
    async fn a_leaked_layer_grants_and_denies_as_before() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let principal = |scopes| {
            let tokens = tokens.clone();
            async move {
                let issued = tokens
                    .issue(IssueRequest::new(TokenKind::PersonalAccess, "t", "u1").scopes(scopes))
                    .await
                    .unwrap();
                let record = tokens
                    .find(issued.secret.digest().into())
                    .await
                    .unwrap()
                    .unwrap();
                Principal::new(Arc::clone(&record))
            }
        };
        let layer = RequireScopeLayer::new(S::BILLING_WRITE).leak();
        assert!(layer.shared.is_leaked() && layer.clone().shared.is_leaked());
        for (scopes, expected) in [
            (S::BILLING_WRITE, StatusCode::OK),
            (S::BILLING_READ, StatusCode::FORBIDDEN),
        ] {
            let mut request = Request::new(Full::<Bytes>::default());
            request.extensions_mut().insert(principal(scopes).await);
            let service = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }));
            let response = service.oneshot(request).await.unwrap();
            assert_eq!(response.status(), expected, "{scopes:?}");
        }
        let changed = layer.clone().rejections(Rejections::new("other"));
        assert!(
            !changed.shared.is_leaked(),
            "a change copies the leaked state"
        );
        assert!(layer.shared.is_leaked());
    }
}
