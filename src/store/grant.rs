//! The refresh grant's rules, shared by every store.

use std::time::SystemTime;

use super::{Family, IssuePolicy, StoreError, TokenRecord};
use crate::scope::ScopeSet;
use crate::token::TokenKind;

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
}

impl GrantError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::Store(StoreError::Unavailable(_)) => "temporarily_unavailable",
            Self::Store(StoreError::InvalidInput(_)) => "invalid_request",
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
            Self::Store(StoreError::Unavailable(_)) => {
                "The token store is temporarily unavailable."
            }
            Self::Store(StoreError::InvalidInput(_)) => "The request is invalid.",
            Self::Store(_) => "The token could not be refreshed.",
        }
    }
}

/// What a successful check grants: the scopes of the new access token.
pub(crate) struct RefreshPlan<S> {
    pub(crate) access_scopes: S,
}

impl IssuePolicy {
    /// Decides whether `record` may be exchanged at `now` for new tokens
    /// with `requested` scopes (`None` or empty: the refresh token's scopes).
    ///
    /// A store calls this while holding whatever makes the exchange atomic
    /// (a row lock, a map entry), and on [`InvalidGrantReason::Reused`]
    /// revokes the family.
    pub fn check_refresh<S: ScopeSet>(
        &self,
        record: &TokenRecord<S>,
        now: SystemTime,
        requested: Option<S>,
    ) -> Result<S, GrantError> {
        let invalid = |r| Err(GrantError::InvalidGrant(r));
        if record.kind != TokenKind::Refresh {
            return invalid(InvalidGrantReason::NotARefreshToken);
        }
        if record.is_revoked() {
            return invalid(InvalidGrantReason::Revoked);
        }
        if record.spent_at.is_some() {
            return invalid(InvalidGrantReason::Reused);
        }
        if record.is_expired_at(now) {
            return invalid(InvalidGrantReason::Expired);
        }
        if let Some(family) = record.family {
            if now >= family.started_at + self.family_age_cap() {
                return invalid(InvalidGrantReason::FamilyExpired);
            }
        }
        Ok(self.plan(record, requested)?.access_scopes)
    }

    fn plan<S: ScopeSet>(
        &self,
        record: &TokenRecord<S>,
        requested: Option<S>,
    ) -> Result<RefreshPlan<S>, GrantError> {
        match requested {
            Some(s) if !s.is_empty() && !record.scopes.contains(s) => Err(GrantError::InvalidScope),
            Some(s) if !s.is_empty() => Ok(RefreshPlan { access_scopes: s }),
            _ => Ok(RefreshPlan {
                access_scopes: record.scopes,
            }),
        }
    }

    /// Mints the access and refresh token of `family` for `owner`.
    ///
    /// The access token holds `access_scopes`; the refresh token holds
    /// `refresh_scopes` (RFC 6749 §6: a rotated refresh token keeps the
    /// scope of the one it replaces). The refresh token never outlives the
    /// family's age cap.
    pub fn mint_pair<S: ScopeSet>(
        &self,
        name: &str,
        owner: &str,
        access_scopes: S,
        refresh_scopes: S,
        family: Family,
    ) -> Result<[(crate::token::TokenSecret, TokenRecord<S>); 2], StoreError> {
        let (access_secret, mut access) = self
            .mint(super::IssueRequest::new(TokenKind::Access, name, owner).scopes(access_scopes))?;
        let (refresh_secret, mut refresh) = self.mint(
            super::IssueRequest::new(TokenKind::Refresh, name, owner).scopes(refresh_scopes),
        )?;
        let family_end = family.started_at + self.family_age_cap();
        access.family = Some(family);
        access.expires_at = access.expires_at.min(family_end);
        refresh.family = Some(family);
        refresh.expires_at = refresh.expires_at.min(family_end);
        Ok([(access_secret, access), (refresh_secret, refresh)])
    }
}
