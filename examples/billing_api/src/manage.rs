//! The token manager's calls that the JSON `/settings/api-tokens` routes
//! make, as boxed `Send` futures.
//!
//! rustc (1.95) cannot prove that the future of a borrowing
//! `TokenManager` method is `Send` when the backend is a trait object: it
//! erases the `'static` of `dyn TokenBackend` in the proof, and
//! `TokenStore: 'static` then no longer holds (rust-lang/rust#110338). A
//! handler that awaits such a future directly is no axum `Handler`. Boxed
//! here, in code generic over the backend, the proof is made once for any
//! backend, and the box is `Send` by its type. (The dashboard crate's
//! handlers are generic over the backend themselves, and need no box.)

use std::future::Future;
use std::pin::Pin;

use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssueRequest, IssuedToken, TokenError, TokenManager};
use tower_token_auth::store::TokenBackend;
use tower_token_auth::token::{TokenId, TokenInfo};

type Boxed<T, E = StoreError> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pub(super) fn issue<B: TokenBackend>(
    tokens: &TokenManager<B>,
    request: IssueRequest<B::Scopes>,
) -> Boxed<IssuedToken<B::Scopes>, TokenError> {
    let tokens = tokens.clone();
    Box::pin(async move { tokens.issue(request).await })
}

pub(super) fn list<B: TokenBackend>(
    tokens: &TokenManager<B>,
    owner: &str,
) -> Boxed<Vec<TokenInfo<B::Scopes>>> {
    let tokens = tokens.clone();
    let owner = owner.to_owned();
    Box::pin(async move { tokens.list(&owner).await })
}

pub(super) fn revoke<B: TokenBackend>(tokens: &TokenManager<B>, id: TokenId) -> Boxed<bool> {
    let tokens = tokens.clone();
    Box::pin(async move { tokens.revoke(id).await })
}

pub(super) fn regenerate<B: TokenBackend>(
    tokens: &TokenManager<B>,
    id: TokenId,
) -> Boxed<Option<IssuedToken<B::Scopes>>, TokenError> {
    let tokens = tokens.clone();
    Box::pin(async move { tokens.regenerate(id).await })
}

pub(super) fn set_scopes<B: TokenBackend>(
    tokens: &TokenManager<B>,
    id: TokenId,
    scopes: B::Scopes,
) -> Boxed<Option<TokenInfo<B::Scopes>>, TokenError> {
    let tokens = tokens.clone();
    Box::pin(async move { tokens.set_scopes(id, scopes).await })
}

/// The token `id` names (as text, e.g. from a URL), when it parses and
/// belongs to `owner`; `Ok(None)` for an id that is malformed, unknown or
/// someone else's, which a caller answers alike (404), so that ids of
/// other users' tokens cannot be probed.
pub(super) fn owned<B: TokenBackend>(
    tokens: &TokenManager<B>,
    owner: &str,
    id: &str,
) -> Boxed<Option<TokenInfo<B::Scopes>>> {
    let tokens = tokens.clone();
    let owner = owner.to_owned();
    let id = id.parse::<TokenId>().ok();
    Box::pin(async move {
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(tokens.get(id).await?.filter(|info| info.owner == owner))
    })
}
