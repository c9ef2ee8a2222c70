//! Why a refresh grant was refused.

use super::TokenError;
use crate::error::StoreError;

/// Why a refresh-token exchange (RFC 6749 §6) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// `invalid_grant`: the refresh token cannot be exchanged.
    #[error("invalid_grant: {0}")]
    InvalidGrant(InvalidGrantReason),
    /// `invalid_scope`: the request asked for scopes the refresh token does
    /// not hold.
    #[error("invalid_scope: the requested scope exceeds the scope of the refresh token")]
    InvalidScope,
    /// `invalid_target` (RFC 8707 §2): the request named a resource the
    /// grant was not issued for.
    #[error("invalid_target: the requested resource is not one the grant holds")]
    InvalidTarget,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a refresh token was `invalid_grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidGrantReason {
    /// Not a well-formed refresh token of this service.
    #[error("malformed refresh token")]
    Malformed,
    /// No such token.
    #[error("unknown refresh token")]
    Unknown,
    /// The token is not a refresh token.
    #[error("not a refresh token")]
    NotARefreshToken,
    /// A refresh token that belongs to no grant (no family): it could not
    /// be revoked as one on reuse, so it is never exchanged.
    #[error("refresh token belongs to no grant")]
    NoFamily,
    /// The token was revoked.
    #[error("revoked refresh token")]
    Revoked,
    /// The token expired.
    #[error("expired refresh token")]
    Expired,
    /// The family reached its absolute age cap.
    #[error("token family reached its maximum age")]
    FamilyExpired,
    /// The token had already been exchanged: its family is now revoked.
    #[error("refresh token reused: token family revoked")]
    Reused,
    /// The request names a `client_id` that is not the client the grant
    /// was issued to (RFC 6749 §6: the token is bound to its client).
    #[error("refresh token of another client")]
    OtherClient,
}

impl GrantError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Store(StoreError::Unavailable(_)) => "temporarily_unavailable",
            Self::Store(_) => "server_error",
        }
    }

    /// A description safe to show the client (unknown, revoked and reused
    /// look the same to it).
    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidGrant(InvalidGrantReason::Expired | InvalidGrantReason::FamilyExpired) => {
                "The refresh token has expired."
            }
            Self::InvalidGrant(_) => "The refresh token is invalid or has been revoked.",
            Self::InvalidScope => {
                "The requested scope exceeds the scope granted to the refresh token."
            }
            Self::InvalidTarget => "The requested resource is not one this grant was issued for.",
            Self::Store(StoreError::Unavailable(_)) => {
                "The token store is temporarily unavailable."
            }
            Self::Store(_) => "The token could not be refreshed.",
        }
    }
}

/// A token the grant could not mint is the server's failure, never the
/// client's: the grant's own record supplied every value.
impl From<TokenError> for GrantError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Store(store) => Self::Store(store),
            TokenError::InvalidInput(why) => Self::Store(StoreError::Backend(why.into())),
            TokenError::Conflict(why) => Self::Store(StoreError::Backend(why.into())),
        }
    }
}
