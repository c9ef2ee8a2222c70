//! Authentication: the [`TokenAuthLayer`] that turns a bearer token into a
//! [`Principal`](crate::Principal).
//!
//! For each request the middleware
//!
//! 1. reads the `Authorization` header by the RFC 6750 §2.1 grammar
//!    ([`parse_authorization`]);
//! 2. checks the token offline (prefix, kind, checksum), so garbage never
//!    reaches the store, and refuses refresh tokens;
//! 3. looks the token up by its SHA-256 digest, one store call;
//! 4. checks the record's digest (constant time), kind, revocation and
//!    expiry;
//! 5. puts the [`Principal`](crate::Principal) into the request extensions
//!    and calls the inner service.
//!
//! Anything else is answered with a rejection (see [`crate::error`]); a
//! store failure is a 503, never a 401 and never a pass.
//!
//! Two layers of their own go in front of it, and in front of any other
//! route that takes credentials (a token endpoint, a login), configured by
//! one [`Peers`](crate::peer::Peers): [`RequireHttpsLayer`](crate::require_https::RequireHttpsLayer) refuses what is not known to arrive
//! over TLS, and [`ThrottleLayer`](crate::throttle::ThrottleLayer) (feature
//! `throttle`) counts failed authentications per client.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_auth::{MemoryStore, PayRequestScopes, Principal, TokenAuthLayer};
//! use tower_token_auth::manager::{IssueRequest, TokenManager};
//! use tower_token_auth::token::TokenKind;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = TokenManager::new(MemoryStore::new());
//! let issued = tokens.issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1")).await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(TokenAuthLayer::new(tokens))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let principal = req.extensions().get::<Principal<PayRequestScopes>>().expect("set by the layer");
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(principal.name().to_owned()))))
//!     }));
//!
//! // Accepted.
//! let request = Request::get("/v1/me")
//!     .header("authorization", format!("Bearer {}", issued.secret.expose_secret()))
//!     .body(Full::default())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // Rejected: no credentials.
//! let response = service.oneshot(Request::get("/v1/me").body(Full::default())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! # Ok(())
//! # }
//! ```

mod config;
mod future;
mod header;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use header::{parse_authorization, Authorization};
pub use layer::TokenAuthLayer;
pub use service::TokenAuth;
