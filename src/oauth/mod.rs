//! OAuth endpoints around the tokens: the authorization code grant with
//! PKCE (RFC 6749 §4.1 as profiled by OAuth 2.1, RFC 7636), the refresh
//! grant (§6), dynamic client registration (RFC 7591), revocation (RFC
//! 7009), introspection (RFC 7662), and the metadata documents (RFC 9728,
//! RFC 8414) that let an MCP client find all of them from a 401.
//!
//! [`TokenEndpoint`], [`RevocationEndpoint`], [`IntrospectionEndpoint`] and
//! `RegistrationEndpoint` (feature `registration`) are tower services over
//! a [`TokenManager`](crate::manager::TokenManager) (any backend); mount them
//! with axum's `Router::route_service` or call them from hyper. The form
//! endpoints take `application/x-www-form-urlencoded` bodies of at most 8
//! KiB and answer with `Cache-Control: no-store`. [`AuthorizationEndpoint`]
//! is the protocol half of `/oauth/authorize`: the application wraps its
//! own login and consent page around it. Clients are public clients (an
//! MCP agent, a CLI): PKCE protects their codes, and the refresh token
//! itself is the credential, rotated on every use.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use tower_token_auth::MemoryStore;
//! use tower_token_auth::oauth::TokenEndpoint;
//! use tower_token_auth::manager::TokenManager;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = TokenManager::new(MemoryStore::new());
//! let pair = tokens.issue_pair("MCP Billing Agent", "user-1", None).await?;
//!
//! let body = format!("grant_type=refresh_token&refresh_token={}", pair.refresh.secret.expose_secret());
//! let request = Request::post("/oauth/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::new(Bytes::from(body)))?;
//! let response = TokenEndpoint::new(tokens.clone()).oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let json: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! assert_eq!(json["token_type"], "Bearer");
//! assert_eq!(json["scope"], "billing.read");
//! # Ok(())
//! # }
//! ```

mod authorize;
#[cfg(test)]
mod endpoint_tests;
mod form;
mod grant;
mod introspect;
mod metadata;
#[cfg(feature = "registration")]
mod register;
mod revoke;
mod token;

pub use authorize::{AuthorizationEndpoint, AuthorizationError, PendingAuthorization};
pub use grant::{
    is_code_verifier, is_s256_challenge, s256_challenge, ClientRegistration, CodeExchange,
    CodeRequest, OAuthClient, RegistrationError,
};
pub use introspect::IntrospectionEndpoint;
pub use metadata::{AuthorizationServerMetadata, MetadataDocument, ProtectedResourceMetadata};
#[cfg(feature = "registration")]
#[cfg_attr(docsrs, doc(cfg(feature = "registration")))]
pub use register::RegistrationEndpoint;
pub use revoke::RevocationEndpoint;
pub use token::TokenEndpoint;
