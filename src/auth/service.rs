use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::config::Parts;
use super::future::{judge, LookupFuture, Pending, ResponseFuture};
use super::header::{bearer_token, query_has_token};
use crate::audit::AuditEvent;
use crate::body::ResponseBody;
use crate::error::{AuthError, InvalidTokenReason};
use crate::shared::SharedRef;
use crate::store::TokenStore;
use crate::token::{Lookup, TokenDigest, TokenKind};

/// The service [`TokenAuthLayer`](super::TokenAuthLayer) builds.
pub struct TokenAuth<Svc, St: 'static> {
    inner: Svc,
    /// The store and the settings behind one reference: a router clones the service for every
    /// request, and every reference count shared by all clones is a cache
    /// line the cores take from each other.
    shared: SharedRef<Parts<St>>,
}

crate::middleware::inner_service_accessors!([Svc, St] TokenAuth<Svc, St>);

impl<Svc, St> TokenAuth<Svc, St> {
    pub(crate) fn from_shared(inner: Svc, shared: SharedRef<Parts<St>>) -> Self {
        Self { inner, shared }
    }

    /// Whether the service's clones share a leaked `'static` reference.
    #[cfg(test)]
    pub(crate) fn is_leaked(&self) -> bool {
        self.shared.is_leaked()
    }
}

impl<Svc: Clone, St: Clone> Clone for TokenAuth<Svc, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<Svc: fmt::Debug, St> fmt::Debug for TokenAuth<Svc, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<Svc, St, ReqBody, ResBody> Service<Request<ReqBody>> for TokenAuth<Svc, St>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: TokenStore + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Svc::Error;
    type Future = ResponseFuture<Svc, ReqBody, St::Scopes>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &*self.shared.config;
        let in_url = query_has_token(request.uri());
        // Also marks the credential sensitive, for whatever logs headers
        // further in.
        let token = match bearer_token(request.headers_mut(), in_url) {
            Ok(Some(token)) => token,
            Ok(None) if config.optional => {
                return ResponseFuture::inner(self.inner.call(request));
            }
            Ok(None) => return self.reject(AuthError::MissingToken),
            Err(error) => return self.reject(error),
        };
        match config.format.as_ref().map(|format| format.check(token)) {
            Some(Ok(TokenKind::Refresh)) => {
                let error = AuthError::InvalidToken(InvalidTokenReason::NotAnAccessCredential);
                return self.reject(error);
            }
            Some(Ok(_)) | None => {}
            Some(Err(_)) => {
                let error = AuthError::InvalidToken(InvalidTokenReason::Malformed);
                return self.reject(error);
            }
        }
        let digest = TokenDigest::of(token);
        // A store that answers from memory is judged here and now: no boxed
        // lookup, no clones, and the inner service `poll_ready` readied is
        // called directly.
        if let Some(found) = self.shared.store.find_now(&digest) {
            return match judge(found, &digest, config) {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    ResponseFuture::inner(self.inner.call(request))
                }
                Err(error) => ResponseFuture::rejected(config.challenge.render(&error)),
            };
        }
        let store = self.shared.store.clone();
        // The lookup outlives the borrow of the request's header: it owns a
        // copy of the token, zeroed when it is dropped. Only the slow path
        // (a store that must wait) pays for it.
        let token = zeroize::Zeroizing::new(token.to_owned());
        let lookup: LookupFuture<St::Scopes> =
            Box::pin(async move { store.find(Lookup::of_token(&token)).await });
        // The service that `poll_ready` readied is the one that must be
        // called: move it into the future and keep a fresh clone here. See
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::lookup(Pending {
            lookup,
            digest,
            request,
            inner,
            config: Arc::clone(&self.shared.config),
        })
    }
}

impl<Svc, St> TokenAuth<Svc, St> {
    fn reject<ReqBody, S>(&self, error: AuthError) -> ResponseFuture<Svc, ReqBody, S>
    where
        Svc: Service<Request<ReqBody>>,
    {
        let config = &self.shared.config;
        let response = config.challenge.render(&error);
        config
            .audit
            .emit(AuditEvent::AuthenticationRejected { id: None, error });
        ResponseFuture::rejected(response)
    }
}
