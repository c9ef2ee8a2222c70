//! Audit events: what happened to which token, for logs, metrics and audit
//! tables.
//!
//! Every [`AuditEvent`] is emitted as a `tracing` event under the target
//! [`AUDIT_TARGET`] and handed to the optional [`AuditObserver`] a service
//! plugs in. Events carry token ids, owners and reasons, never a token.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tower_token_auth::audit::{Audit, AuditEvent, AuditObserver};
//! use tower_token_auth::PayRequestScopes;
//! use tower_token_auth::manager::{IssuePolicy, IssueRequest, TokenManager};
//! use tower_token_auth::store::MemoryStore;
//! use tower_token_auth::token::TokenKind;
//!
//! #[derive(Default)]
//! struct Recorder(Mutex<Vec<AuditEvent>>);
//!
//! impl AuditObserver for Recorder {
//!     fn observe(&self, event: &AuditEvent) {
//!         self.0.lock().unwrap().push(event.clone());
//!     }
//! }
//!
//! # futures_util::FutureExt::now_or_never(async {
//! let recorder = Arc::new(Recorder::default());
//! let audit = Audit::new().observer(recorder.clone());
//! let tokens = TokenManager::with_policy(
//!     MemoryStore::<PayRequestScopes>::default(),
//!     IssuePolicy::default().audit(audit),
//! );
//! let issued = tokens.issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1")).await?;
//! assert!(matches!(
//!     recorder.0.lock().unwrap()[0],
//!     AuditEvent::TokenCreated { id, .. } if id == issued.record.id
//! ));
//! # Ok::<(), tower_token_auth::manager::TokenError>(())
//! # }).unwrap().unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use crate::error::AuthError;
use crate::token::TokenKind;
use crate::token::{FamilyId, TokenId};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "tower_token_auth::audit";

/// Something that happened to a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A token was created.
    TokenCreated {
        /// The new token.
        id: TokenId,
        /// Its owner.
        owner: String,
        /// Its kind.
        kind: TokenKind,
    },
    /// A personal access token was regenerated: a new secret replaced the
    /// old one, which was revoked.
    TokenRegenerated {
        /// The revoked token.
        old: TokenId,
        /// The new token.
        new: TokenId,
        /// The owner.
        owner: String,
    },
    /// A token was revoked.
    TokenRevoked {
        /// The token.
        id: TokenId,
        /// Its owner.
        owner: String,
    },
    /// A whole token family was revoked on request.
    FamilyRevoked {
        /// The family.
        family: FamilyId,
        /// Its owner.
        owner: String,
        /// How many tokens were revoked.
        tokens: usize,
    },
    /// A refresh token that had already been exchanged was presented again:
    /// it was stolen or replayed, so its whole family was revoked.
    /// This is the critical event of the set.
    FamilyRevokedOnReuse {
        /// The family.
        family: FamilyId,
        /// The spent refresh token (or authorization code) that was presented.
        presented: TokenId,
        /// The owner.
        owner: String,
        /// How many tokens were revoked.
        tokens: usize,
    },
    /// A refresh token was exchanged for a new access and refresh token.
    RefreshRotated {
        /// The refresh token that is now spent.
        old: TokenId,
        /// The new access token.
        access: TokenId,
        /// The new refresh token.
        refresh: TokenId,
        /// The owner.
        owner: String,
    },
    /// A personal access token's scopes were changed.
    ScopesChanged {
        /// The token.
        id: TokenId,
        /// Its owner.
        owner: String,
        /// The scopes it held (RFC 6749 §3.3 form).
        old: String,
        /// The scopes it holds now.
        new: String,
    },
    /// An OAuth client registered itself (RFC 7591).
    ClientRegistered {
        /// The registration's record id (its `client_id` is public, but the
        /// id is what the store and the logs use).
        id: TokenId,
        /// The name the client gave itself.
        name: String,
    },
    /// A user allowed a client: an authorization code was issued.
    AuthorizationCodeIssued {
        /// The code's record id.
        id: TokenId,
        /// The grant (family) the code's tokens will belong to.
        family: FamilyId,
        /// The user who allowed it.
        owner: String,
        /// The client's name.
        client: String,
    },
    /// An authorization code was exchanged for an access and a refresh
    /// token.
    AuthorizationCodeExchanged {
        /// The code, now spent.
        code: TokenId,
        /// The new access token.
        access: TokenId,
        /// The new refresh token.
        refresh: TokenId,
        /// The owner.
        owner: String,
    },
    /// A request was refused by the authentication layer.
    AuthenticationRejected {
        /// The token, when the store knew it.
        id: Option<TokenId>,
        /// Why (its `Display` never contains the token).
        error: AuthError,
    },
    /// A valid token lacked the scope a route requires.
    ScopeDenied {
        /// The token.
        id: TokenId,
        /// The token's owner.
        owner: String,
        /// What the route requires.
        required: Arc<str>,
    },
}

impl AuditEvent {
    /// A short stable name: `token_created`, `family_revoked_on_reuse`, …
    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenCreated { .. } => "token_created",
            Self::TokenRegenerated { .. } => "token_regenerated",
            Self::TokenRevoked { .. } => "token_revoked",
            Self::FamilyRevoked { .. } => "family_revoked",
            Self::FamilyRevokedOnReuse { .. } => "family_revoked_on_reuse",
            Self::RefreshRotated { .. } => "refresh_rotated",
            Self::ScopesChanged { .. } => "scopes_changed",
            Self::ClientRegistered { .. } => "client_registered",
            Self::AuthorizationCodeIssued { .. } => "authorization_code_issued",
            Self::AuthorizationCodeExchanged { .. } => "authorization_code_exchanged",
            Self::AuthenticationRejected { .. } => "authentication_rejected",
            Self::ScopeDenied { .. } => "scope_denied",
        }
    }
}

/// Receives every audit event: for metrics, alerts or an audit table.
///
/// Called synchronously where the event happens, some of them on the
/// request path: keep it quick (push to a channel for anything slow).
pub trait AuditObserver: Send + Sync + 'static {
    /// Called once per event.
    fn observe(&self, event: &AuditEvent);
}

/// Where audit events go: `tracing` always, and an optional observer.
///
/// Cheap to clone. Give the same `Audit` to the store's
/// [`IssuePolicy`](crate::manager::IssuePolicy) and to the
/// [`TokenAuthLayer`](crate::TokenAuthLayer) to see every event in one place.
#[derive(Clone, Default)]
pub struct Audit {
    observer: Option<Arc<dyn AuditObserver>>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Audit {
    /// Events go to `tracing` only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also hands every event to `observer`.
    #[must_use]
    pub fn observer(mut self, observer: Arc<dyn AuditObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Emits `event`.
    pub fn emit(&self, event: AuditEvent) {
        match &event {
            AuditEvent::FamilyRevokedOnReuse {
                family,
                presented,
                owner,
                tokens,
            } => tracing::error!(
                target: AUDIT_TARGET,
                event = event.name(),
                %family,
                token_id = %presented,
                owner = %owner,
                tokens,
                "spent refresh token presented again: token family revoked"
            ),
            AuditEvent::AuthenticationRejected { id, error } => tracing::info!(
                target: AUDIT_TARGET,
                event = event.name(),
                token_id = id.map(tracing::field::display),
                error = error.error_code(),
                status = error.status().as_u16(),
                reason = %error,
                "authentication rejected"
            ),
            AuditEvent::ScopeDenied {
                id,
                owner,
                required,
            } => tracing::info!(
                target: AUDIT_TARGET,
                event = event.name(),
                token_id = %id,
                owner = %owner,
                required = %required,
                "scope denied"
            ),
            other => {
                tracing::info!(target: AUDIT_TARGET, event = other.name(), details = ?other, "token event")
            }
        }
        if let Some(observer) = &self.observer {
            observer.observe(&event);
        }
    }
}
