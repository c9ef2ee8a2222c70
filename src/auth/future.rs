//! The response future of [`TokenAuth`](super::TokenAuth).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use pin_project_lite::pin_project;
use subtle::ConstantTimeEq;
use tower_service::Service;

use super::config::AuthConfig;
use crate::audit::AuditEvent;
use crate::body::ResponseBody;
use crate::error::StoreError;
use crate::error::{AuthError, InvalidTokenReason};
use crate::principal::Principal;
use crate::scope::ScopeSet;
use crate::token::TokenDigest;
use crate::token::TokenRecord;

pub(crate) type LookupFuture<S> =
    BoxFuture<'static, Result<Option<Arc<TokenRecord<S>>>, StoreError>>;

pin_project! {
    /// The response future of [`TokenAuth`](super::TokenAuth).
    pub struct ResponseFuture<Svc, ReqBody, S>
    where
        Svc: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<Svc, ReqBody, S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Svc, ReqBody, S>
    where
        Svc: Service<Request<ReqBody>>,
    {
        /// Rejected before any store call; the response is sent as is.
        Rejected {
            response: Option<Response<Bytes>>,
        },
        /// Waiting for the store. Boxed: this state exists only for stores
        /// that cannot answer at once, which allocate for their lookup anyway,
        /// and it keeps the future small (and cheap to move) for the others.
        Lookup {
            pending: Option<Box<Pending<Svc, ReqBody, S>>>,
        },
        /// Authenticated: polling the inner service.
        Inner {
            #[pin]
            future: Svc::Future,
        },
    }
}

/// What a lookup that has to wait carries until the store answers.
pub(crate) struct Pending<Svc, ReqBody, S> {
    pub(crate) lookup: LookupFuture<S>,
    pub(crate) digest: TokenDigest,
    pub(crate) request: Request<ReqBody>,
    /// The inner service `poll_ready` readied.
    pub(crate) inner: Svc,
    pub(crate) config: Arc<AuthConfig>,
}

impl<Svc, ReqBody, S> ResponseFuture<Svc, ReqBody, S>
where
    Svc: Service<Request<ReqBody>>,
{
    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn inner(future: Svc::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn lookup(pending: Pending<Svc, ReqBody, S>) -> Self {
        Self {
            state: State::Lookup {
                pending: Some(Box::new(pending)),
            },
        }
    }
}

/// Judges a looked-up record: the principal to let through, or the error
/// (already audited).
pub(crate) fn judge<S: ScopeSet>(
    found: Result<Option<Arc<TokenRecord<S>>>, StoreError>,
    digest: &TokenDigest,
    config: &AuthConfig,
) -> Result<Principal<S>, AuthError> {
    let record = match found {
        Ok(Some(record)) => record,
        Ok(None) => {
            let error = AuthError::InvalidToken(InvalidTokenReason::Unknown);
            config.audit.emit(AuditEvent::AuthenticationRejected {
                id: None,
                error: error.clone(),
            });
            return Err(error);
        }
        Err(error) => {
            tracing::error!(
                target: "tower_token_auth::auth",
                %error,
                "token store failed; answering 503"
            );
            let error = AuthError::StoreUnavailable(Arc::new(error));
            config.audit.emit(AuditEvent::AuthenticationRejected {
                id: None,
                error: error.clone(),
            });
            return Err(error);
        }
    };
    let now = config.clock.now();
    let rejection = if !bool::from(record.digest.ct_eq(digest)) {
        // A store that answers with another token's record is broken; the
        // request must not borrow that token's identity.
        Some(AuthError::InvalidToken(InvalidTokenReason::Unknown))
    } else if !record.kind.authenticates() {
        Some(AuthError::InvalidToken(
            InvalidTokenReason::NotAnAccessCredential,
        ))
    } else if record.is_revoked() {
        Some(AuthError::InvalidToken(InvalidTokenReason::Revoked))
    } else if record.is_expired_at(now) {
        Some(AuthError::ExpiredToken)
    } else if !config.audience_admits(&record) {
        Some(AuthError::InvalidToken(InvalidTokenReason::WrongAudience))
    } else {
        None
    };
    if let Some(error) = rejection {
        config.audit.emit(AuditEvent::AuthenticationRejected {
            id: Some(record.id),
            error: error.clone(),
        });
        return Err(error);
    }
    tracing::debug!(
        target: "tower_token_auth::auth",
        token_id = %record.id,
        kind = %record.kind,
        "request authenticated"
    );
    if let Some(usage) = &config.usage {
        usage.touch(record.id, now);
    }
    Ok(Principal::new(record))
}

impl<Svc, ReqBody, ResBody, S> Future for ResponseFuture<Svc, ReqBody, S>
where
    Svc: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S: ScopeSet,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Svc::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Lookup { pending } => {
                    let Some(waiting) = pending.as_mut() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let found = ready!(waiting.lookup.as_mut().poll(cx));
                    let Some(waiting) = pending.take() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let Pending {
                        digest,
                        mut request,
                        mut inner,
                        config,
                        ..
                    } = *waiting;
                    let next = match judge(found, &digest, &config) {
                        Ok(principal) => {
                            request.extensions_mut().insert(principal);
                            State::Inner {
                                future: inner.call(request),
                            }
                        }
                        Err(error) => State::Rejected {
                            response: Some(config.challenge.render(&error)),
                        },
                    };
                    this.state.set(next);
                }
                StateProj::Inner { future } => {
                    return future
                        .poll(cx)
                        .map_ok(|response| response.map(ResponseBody::inner));
                }
            }
        }
    }
}
