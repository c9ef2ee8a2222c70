//! What the crate's middleware services have in common, written once: the
//! inner-service accessors every service has, and the response future of a
//! middleware that either rejects at once or calls its inner service.
//!
//! Both are macros that expand in each middleware's module, so every
//! middleware keeps public types of its own (`require_scope::ResponseFuture`,
//! `require_https::ResponseFuture`) with no code written twice.

/// `get_ref`, `get_mut` and `into_inner` of a service whose inner service is
/// its field `inner: Svc`:
/// `inner_service_accessors!([Svc, S: 'static] RequireScope<Svc, S>);`.
macro_rules! inner_service_accessors {
    ([$($generics:tt)*] $service:ty) => {
        impl<$($generics)*> $service {
            /// The inner service.
            pub fn get_ref(&self) -> &Svc {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut Svc {
                &mut self.inner
            }

            /// Consumes `self`, returning the inner service.
            pub fn into_inner(self) -> Svc {
                self.inner
            }
        }
    };
}

/// The `ResponseFuture` of a middleware service whose `call` either answers
/// with a prepared rejection or calls its inner service:
/// `reject_or_call_future!(RequireHttps);` defines `ResponseFuture<F,
/// ResBody>` with the constructors `inner(future)` and `rejected(response)`.
/// The module must import `std::future::Future`, `std::marker::PhantomData`,
/// `std::pin::Pin`, `std::task::{Context, Poll}`, `bytes::Bytes`,
/// `http::Response` and `crate::body::ResponseBody`.
macro_rules! reject_or_call_future {
    ($service:ident) => {
        pin_project_lite::pin_project! {
            #[doc = concat!("The response future of [`", stringify!($service), "`]: a rejection, or the inner service's response.")]
            pub struct ResponseFuture<F, ResBody> {
                #[pin]
                kind: Kind<F>,
                _body: PhantomData<fn() -> ResBody>,
            }
        }

        pin_project_lite::pin_project! {
            #[project = KindProj]
            enum Kind<F> {
                Rejected { response: Option<Response<Bytes>> },
                Inner { #[pin] future: F },
            }
        }

        impl<F, ResBody> ResponseFuture<F, ResBody> {
            fn inner(future: F) -> Self {
                Self {
                    kind: Kind::Inner { future },
                    _body: PhantomData,
                }
            }

            fn rejected(response: Response<Bytes>) -> Self {
                Self {
                    kind: Kind::Rejected {
                        response: Some(response),
                    },
                    _body: PhantomData,
                }
            }
        }

        impl<F, ResBody, E> Future for ResponseFuture<F, ResBody>
        where
            F: Future<Output = Result<Response<ResBody>, E>>,
        {
            type Output = Result<Response<ResponseBody<ResBody>>, E>;

            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                match self.project().kind.project() {
                    KindProj::Rejected { response } => {
                        let response = response
                            .take()
                            .expect("ResponseFuture polled after completion");
                        Poll::Ready(Ok(response.map(ResponseBody::rejection)))
                    }
                    KindProj::Inner { future } => future
                        .poll(cx)
                        .map_ok(|response| response.map(ResponseBody::inner)),
                }
            }
        }
    };
}

pub(crate) use {inner_service_accessors, reject_or_call_future};
