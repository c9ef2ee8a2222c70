//! The lifecycle engine: every token rule, once, over any backend, and the
//! policy it mints tokens by.
//!
//! [`TokenManager`] issues, lists, revokes, regenerates and changes tokens,
//! runs the refresh exchange with rotation and reuse detection, records
//! last use ([`UsageTracker`]) and purges dead records. It stores through a
//! [`TokenBackend`] and is itself the [`TokenStore`] the middleware asks.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use bitflags::Flags as _;

use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::scope::ScopeSet;
use crate::store::{Exchange, ExchangeOutcome, FindResult, TokenBackend, TokenStore};
use crate::token::{
    to_micros, Family, FamilyId, Lookup, RandomnessError, TokenDigest, TokenId, TokenInfo,
    TokenKind, TokenRecord, TokenSecret,
};

mod grant;
mod policy;
mod usage;

pub use grant::{GrantError, InvalidGrantReason};
pub use policy::{
    IssuePolicy, IssueRequest, IssuedToken, TokenPair, DEFAULT_CLIENTS_PER_SOURCE,
    DEFAULT_RETENTION, DEFAULT_REUSE_WINDOW,
};
pub use usage::{UsageTracker, UsageWorker, DEFAULT_USAGE_INTERVAL};

/// Why a token operation of the [`TokenManager`] was refused or failed,
/// by who must act: the caller ([`InvalidInput`](Self::InvalidInput)), the
/// token's state ([`Conflict`](Self::Conflict)), or the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The request was refused: an empty name, a lifetime beyond the kind's
    /// maximum, an empty scope set, or similar. The message is safe to show
    /// to the caller (a 400).
    #[error("{0}")]
    InvalidInput(String),
    /// The token is not in a state that allows this (regenerating a revoked
    /// token, changing the scopes of an access token). The message is safe
    /// to show to the caller (a 409).
    #[error("{0}")]
    Conflict(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RandomnessError> for TokenError {
    fn from(error: RandomnessError) -> Self {
        Self::Store(error.into())
    }
}

/// How many access tokens of one grant stay valid after a rotation: the new
/// one and the one before it (requests already sent with it still pass).
const RETAINED_ACCESS_TOKENS: usize = 2;

/// The token lifecycle over a [`TokenBackend`]: issuing, listing, revoking,
/// regenerating, changing scopes, the refresh exchange with rotation and
/// reuse detection, last-used times and purging.
///
/// Every rule is here, whatever the backend: a token is minted by the
/// [`IssuePolicy`], a family (one grant) is revoked whole whichever of its
/// tokens is revoked and by which path, a spent refresh token presented
/// again revokes its family, and every change emits its
/// [`AuditEvent`].
///
/// The manager is also the [`TokenStore`] to give to the
/// [`TokenAuthLayer`](crate::TokenAuthLayer) and the OAuth endpoints: they
/// take its token format and clock, so a token is checked exactly as it was
/// minted. Cloning is cheap; every clone shares the backend.
///
/// ```
/// use tower_token_auth::manager::{IssueRequest, TokenManager};
/// use tower_token_auth::store::MemoryStore;
/// use tower_token_auth::token::TokenStatus;
/// use tower_token_auth::token::TokenKind;
/// use tower_token_auth::{PayRequestScopes as S, TokenAuthLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_token_auth::manager::TokenError> {
/// let tokens = TokenManager::new(MemoryStore::<S>::new());
/// let issued = tokens
///     .issue(IssueRequest::new(TokenKind::PersonalAccess, "MCP Billing Agent", "user-1"))
///     .await?;
/// assert_eq!(issued.record.scopes, S::BILLING_READ); // no scopes: the default set
///
/// // The user widens it later: from the next request on.
/// let changed = tokens.set_scopes(issued.record.id, S::BILLING_AGENT).await?;
/// assert_eq!(changed.map(|t| t.scopes), Some(S::BILLING_AGENT));
///
/// tokens.revoke(issued.record.id).await?;
/// assert_eq!(tokens.list("user-1").await?[0].status, TokenStatus::Revoked);
///
/// let layer = TokenAuthLayer::new(tokens.clone()); // same format, same clock
/// # drop(layer);
/// # Ok(())
/// # }
/// ```
pub struct TokenManager<B> {
    pub(crate) inner: Arc<Inner<B>>,
}

pub(crate) struct Inner<B> {
    pub(crate) backend: B,
    pub(crate) policy: IssuePolicy,
}

impl<B> Clone for TokenManager<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for TokenManager<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("backend", &self.inner.backend)
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl<B: TokenBackend> TokenManager<B> {
    /// A manager over `backend` with the default [`IssuePolicy`].
    pub fn new(backend: B) -> Self {
        Self::with_policy(backend, IssuePolicy::default())
    }

    /// A manager over `backend` that mints and rotates tokens by `policy`.
    pub fn with_policy(backend: B, policy: IssuePolicy) -> Self {
        Self {
            inner: Arc::new(Inner { backend, policy }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// The policy.
    pub fn policy(&self) -> &IssuePolicy {
        &self.inner.policy
    }

    pub(crate) fn backend_ref(&self) -> &B {
        &self.inner.backend
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.inner.policy.now()
    }

    pub(crate) fn emit(&self, event: AuditEvent) {
        self.inner.policy.get_audit().emit(event);
    }

    fn announce_created(&self, record: &TokenRecord<B::Scopes>) {
        self.emit(AuditEvent::TokenCreated {
            id: record.id,
            owner: record.owner.as_str().to_owned(),
            kind: record.kind,
        });
    }

    /// Creates a token. The plaintext is in the returned
    /// [`IssuedToken::secret`] and nowhere else: show it once.
    ///
    /// No scopes (or an empty set) means [`ScopeSet::DEFAULT`]. A refresh
    /// token issued on its own starts a grant of its own.
    pub async fn issue(
        &self,
        request: IssueRequest<B::Scopes>,
    ) -> Result<IssuedToken<B::Scopes>, TokenError> {
        if !request.kind.is_token() {
            return Err(TokenError::InvalidInput(format!(
                "{} records are issued by the OAuth flow, not by `issue`",
                request.kind
            )));
        }
        let (secret, record) = self.inner.policy.mint(request)?;
        self.backend_ref()
            .insert(std::slice::from_ref(&record))
            .await?;
        self.announce_created(&record);
        Ok(IssuedToken {
            secret,
            record: Arc::new(record),
        })
    }

    /// Creates an access token and a refresh token in a new family (one
    /// grant), as an authorization server's grant does. `None` or empty
    /// scopes mean the default set.
    pub async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<B::Scopes>,
    ) -> Result<TokenPair<B::Scopes>, TokenError> {
        let scopes = scopes
            .filter(|s| !s.is_empty())
            .unwrap_or(B::Scopes::DEFAULT);
        let family = Family {
            id: FamilyId::random()?,
            started_at: self.now(),
        };
        let [access, refresh] = self.mint_pair(name, owner, scopes, scopes, family)?;
        self.backend_ref()
            .insert(&[access.1.clone(), refresh.1.clone()])
            .await?;
        self.announce_created(&access.1);
        self.announce_created(&refresh.1);
        Ok(TokenPair {
            access: issued(access),
            refresh: issued(refresh),
        })
    }

    /// Every token of `owner`, oldest first, with its status. Metadata
    /// only: no token, no digest.
    ///
    /// A grant shows its live tokens and its most recently spent refresh
    /// token, never its whole rotation history.
    pub async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<B::Scopes>>, StoreError> {
        let now = self.now();
        let mut records = self.backend_ref().list(owner).await?;
        // Codes and client registrations are not tokens the user holds.
        records.retain(|r| r.kind.is_token());
        // Of each family's spent refresh tokens, only the latest is listed.
        let mut latest_spent: Vec<(FamilyId, SystemTime, TokenId)> = Vec::new();
        for r in records.iter().filter(|r| r.is_spent()) {
            let (Some(family), Some(at)) = (r.family, r.spent_at) else {
                continue;
            };
            match latest_spent.iter_mut().find(|(f, ..)| *f == family.id) {
                Some(seen) if (seen.1, seen.2) < (at, r.id) => *seen = (family.id, at, r.id),
                Some(_) => {}
                None => latest_spent.push((family.id, at, r.id)),
            }
        }
        records.retain(|r| {
            !r.is_spent() || latest_spent.iter().any(|(_, _, id)| *id == r.id) || r.family.is_none()
        });
        records.sort_by_key(|r| (r.created_at, r.id));
        Ok(records.iter().map(|r| TokenInfo::of(r, now)).collect())
    }

    /// The metadata of one token, with its status. `None` also for the id
    /// of an authorization code or a client registration.
    pub async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<B::Scopes>>, StoreError> {
        let now = self.now();
        Ok(self
            .backend_ref()
            .get(id)
            .await?
            .filter(|r| r.kind.is_token())
            .map(|r| TokenInfo::of(&r, now)))
    }

    /// Revokes a token; the next request that presents it is refused. A
    /// token of a grant (an access or refresh token) takes its whole family
    /// with it.
    ///
    /// Returns `false` when there is no such token or nothing was left to
    /// revoke.
    pub async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        let Some(record) = self.backend_ref().get(id).await? else {
            return Ok(false);
        };
        self.revoke_record(&record).await
    }

    async fn revoke_record(&self, record: &TokenRecord<B::Scopes>) -> Result<bool, StoreError> {
        if let Some(family) = record.family {
            return Ok(self.revoke_family(family.id).await? > 0);
        }
        let revoked = self.backend_ref().revoke(record.id, self.now()).await?;
        if let Some(r) = &revoked {
            self.emit(AuditEvent::TokenRevoked {
                id: r.id,
                owner: r.owner.as_str().to_owned(),
            });
        }
        Ok(revoked.is_some())
    }

    /// Revokes every token of a family (one grant). Returns how many were
    /// revoked now.
    pub async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError> {
        let revoked = self.backend_ref().revoke_family(family, self.now()).await?;
        if let Some(first) = revoked.first() {
            self.emit(AuditEvent::FamilyRevoked {
                family,
                owner: first.owner.as_str().to_owned(),
                tokens: revoked.len(),
            });
        }
        Ok(revoked.len())
    }

    /// Revokes the token whose digest this is (RFC 7009). A token of a
    /// grant takes its whole family with it. Idempotent; an unknown token
    /// is not an error. Returns whether anything was revoked now.
    pub async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        Ok(self.revoke_presented(digest).await?.unwrap_or(false))
    }

    /// [`revoke_by_digest`](Self::revoke_by_digest), telling a token the
    /// store does not hold (`None`) from one it does (whether anything was
    /// revoked now): the revocation endpoint counts the first as a failed
    /// authentication.
    pub(crate) async fn revoke_presented(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<bool>, StoreError> {
        match self.backend_ref().find(digest.into()).await? {
            None => Ok(None),
            // A client_id is public: presenting it revokes nothing.
            Some(record) if record.kind.is_token() => self.revoke_record(&record).await.map(Some),
            Some(_) => Ok(Some(false)),
        }
    }

    /// Regenerates a personal access token: a new secret with the same
    /// name, owner and scopes and a fresh lifetime; the old one is revoked.
    ///
    /// `Ok(None)` when there is no such token. A token of another kind, or
    /// a revoked one, is [`TokenError::Conflict`]. Of two concurrent
    /// regenerations of one token, exactly one succeeds.
    pub async fn regenerate(
        &self,
        id: TokenId,
    ) -> Result<Option<IssuedToken<B::Scopes>>, TokenError> {
        let Some(old) = self.backend_ref().get(id).await? else {
            return Ok(None);
        };
        if old.kind != TokenKind::PersonalAccess {
            return Err(TokenError::Conflict(
                "only personal access tokens are regenerated; refresh the others",
            ));
        }
        if old.is_revoked() {
            return Err(TokenError::Conflict(
                "a revoked token cannot be regenerated",
            ));
        }
        let request =
            IssueRequest::new(old.kind, old.name.clone(), old.owner.clone()).scopes(old.scopes);
        let (secret, record) = self.inner.policy.mint(request)?;
        // Store the new token first, then revoke the old one: a failure in
        // between loses nothing, and of two concurrent regenerations only
        // one revokes the old token; the other takes its own token back.
        self.backend_ref()
            .insert(std::slice::from_ref(&record))
            .await?;
        let now = self.now();
        let won = match self.backend_ref().revoke(id, now).await {
            Ok(won) => won.is_some(),
            Err(error) => {
                let _ = self.backend_ref().revoke(record.id, now).await;
                return Err(error.into());
            }
        };
        if !won {
            self.backend_ref().revoke(record.id, now).await?;
            return Err(TokenError::Conflict(
                "a revoked token cannot be regenerated",
            ));
        }
        self.announce_created(&record);
        self.emit(AuditEvent::TokenRegenerated {
            old: id,
            new: record.id,
            owner: old.owner.as_str().to_owned(),
        });
        Ok(Some(IssuedToken {
            secret,
            record: Arc::new(record),
        }))
    }

    /// Changes the scopes of an active personal access token (the seed's
    /// "update your existing token's permissions"). The change holds from
    /// the next lookup (and on every instance, where the backend announces
    /// changes). Access and refresh tokens keep the scopes of their grant.
    ///
    /// `Ok(None)` when there is no such token; [`TokenError::Conflict`]
    /// when it is not an active personal access token;
    /// [`TokenError::InvalidInput`] for an empty set.
    pub async fn set_scopes(
        &self,
        id: TokenId,
        scopes: B::Scopes,
    ) -> Result<Option<TokenInfo<B::Scopes>>, TokenError> {
        if scopes.is_empty() {
            return Err(TokenError::InvalidInput(
                "a token needs at least one scope".into(),
            ));
        }
        let Some(old) = self.backend_ref().get(id).await? else {
            return Ok(None);
        };
        if old.kind != TokenKind::PersonalAccess {
            return Err(TokenError::Conflict(
                "only a personal access token's scopes can be changed",
            ));
        }
        let now = self.now();
        match self.backend_ref().update_scopes(id, scopes, now).await? {
            Some(updated) => {
                self.emit(AuditEvent::ScopesChanged {
                    id,
                    owner: updated.owner.as_str().to_owned(),
                    old: old.scopes.scope_string(),
                    new: updated.scopes.scope_string(),
                });
                Ok(Some(TokenInfo::of(&updated, now)))
            }
            None => match self.backend_ref().get(id).await? {
                None => Ok(None),
                Some(_) => Err(TokenError::Conflict(
                    "only an active token's scopes can be changed",
                )),
            },
        }
    }

    /// Exchanges a refresh token (RFC 6749 §6, RFC 9700 §4.14.2): spends it
    /// and returns a new access token and a new refresh token of the same
    /// family. `scopes` may keep or narrow the access token's scopes.
    ///
    /// A spent refresh token presented again revokes its whole family and
    /// fails with [`InvalidGrantReason::Reused`]. Of two concurrent
    /// exchanges of one refresh token, one succeeds and the other is a
    /// replay: the family ends revoked. A refresh token of no family is
    /// never exchanged ([`InvalidGrantReason::NoFamily`]).
    ///
    /// The grant keeps its newest two access tokens (the new one and the
    /// one before, for requests already on their way) and its
    /// [reuse window](IssuePolicy::reuse_window) of spent refresh tokens;
    /// older ones are deleted, so a grant's storage stays bounded however
    /// often it rotates.
    pub async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<B::Scopes>,
    ) -> Result<TokenPair<B::Scopes>, GrantError> {
        self.refresh_for(presented, scopes, &[]).await
    }

    /// [`refresh`](Self::refresh) with RFC 8707 `resource` parameters: the
    /// new access token is for `resources` only, each of which the grant
    /// must hold ([`GrantError::InvalidTarget`] otherwise). Empty keeps the
    /// grant's whole audience. The new refresh token keeps the grant's.
    pub async fn refresh_for(
        &self,
        presented: &TokenDigest,
        scopes: Option<B::Scopes>,
        resources: &[String],
    ) -> Result<TokenPair<B::Scopes>, GrantError> {
        self.refresh_by(presented, None, scopes, resources).await
    }

    /// [`refresh_for`](Self::refresh_for) by a client that names itself
    /// (the `client_id` of the token endpoint's request): a refresh token
    /// issued to another client, or to none, is
    /// [`InvalidGrantReason::OtherClient`] and stays live.
    pub async fn refresh_by(
        &self,
        presented: &TokenDigest,
        client_id: Option<&str>,
        scopes: Option<B::Scopes>,
        resources: &[String],
    ) -> Result<TokenPair<B::Scopes>, GrantError> {
        let policy = &self.inner.policy;
        let now = self.now();
        let invalid = |reason| Err(GrantError::InvalidGrant(reason));
        let Some(old) = self.backend_ref().find(presented.into()).await? else {
            return invalid(InvalidGrantReason::Unknown);
        };
        if old.kind != TokenKind::Refresh {
            return invalid(InvalidGrantReason::NotARefreshToken);
        }
        if client_id.is_some_and(|named| old.client_id() != Some(named)) {
            return invalid(InvalidGrantReason::OtherClient);
        }
        let Some(family) = old.family else {
            return invalid(InvalidGrantReason::NoFamily);
        };
        if old.is_revoked() {
            return invalid(InvalidGrantReason::Revoked);
        }
        if old.is_spent() {
            return Err(self.replayed(&old, family.id).await);
        }
        if old.is_expired_at(now) {
            return invalid(InvalidGrantReason::Expired);
        }
        if now >= family.started_at + policy.get_family_max_age() {
            return invalid(InvalidGrantReason::FamilyExpired);
        }
        let access_scopes = match scopes {
            Some(s) if !s.is_empty() && !old.scopes.contains(s) => {
                return Err(GrantError::InvalidScope)
            }
            Some(s) if !s.is_empty() => s,
            _ => old.scopes,
        };
        if resources.iter().any(|r| !old.audience.contains(r)) {
            return Err(GrantError::InvalidTarget);
        }
        let access_audience = if resources.is_empty() {
            old.audience.clone()
        } else {
            resources.to_vec()
        };
        self.spend(
            *presented,
            &old,
            family,
            now,
            access_scopes,
            access_audience,
            |access, refresh| AuditEvent::RefreshRotated {
                old: old.id,
                access,
                refresh,
                owner: old.owner.as_str().to_owned(),
            },
        )
        .await
    }

    /// The exchange both grants end in: spends `presented` (the digest
    /// under which `spent`, a refresh token or a code of `family`, is
    /// stored) for a new access token (`access_scopes`, `access_audience`)
    /// and refresh token (the grant's scopes and audience), in the backend's
    /// one atomic step, and audits it with `event(access, refresh)`. A
    /// `spent` found already spent revokes the family.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn spend(
        &self,
        presented: TokenDigest,
        spent: &TokenRecord<B::Scopes>,
        family: Family,
        now: SystemTime,
        access_scopes: B::Scopes,
        access_audience: Vec<String>,
        event: impl FnOnce(TokenId, TokenId) -> AuditEvent,
    ) -> Result<TokenPair<B::Scopes>, GrantError> {
        let pair = self.mint_pair(
            &spent.name,
            &spent.owner,
            access_scopes,
            spent.scopes,
            family,
        )?;
        let [(access_secret, mut access), (refresh_secret, mut refresh)] = pair;
        access.audience = access_audience;
        refresh.audience = spent.audience.clone();
        access.client_id = spent.client_id.clone();
        refresh.client_id = spent.client_id.clone();
        let exchange = Exchange::new(
            presented,
            family.id,
            now,
            [access, refresh],
            RETAINED_ACCESS_TOKENS,
            self.inner.policy.get_reuse_window(),
        );
        match self.backend_ref().exchange(&exchange).await? {
            ExchangeOutcome::Exchanged => {}
            ExchangeOutcome::AlreadySpent => return Err(self.replayed(spent, family.id).await),
            ExchangeOutcome::NotLive => {
                return Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
            }
        }
        let Exchange {
            access, refresh, ..
        } = exchange;
        self.announce_created(&access);
        self.announce_created(&refresh);
        self.emit(event(access.id, refresh.id));
        Ok(TokenPair {
            access: issued((access_secret, access)),
            refresh: issued((refresh_secret, refresh)),
        })
    }

    /// A spent refresh token was presented again: revoke its family.
    pub(crate) async fn replayed(
        &self,
        old: &TokenRecord<B::Scopes>,
        family: FamilyId,
    ) -> GrantError {
        match self.backend_ref().revoke_family(family, self.now()).await {
            Ok(revoked) => {
                self.emit(AuditEvent::FamilyRevokedOnReuse {
                    family,
                    presented: old.id,
                    owner: old.owner.as_str().to_owned(),
                    tokens: revoked.len(),
                });
                GrantError::InvalidGrant(InvalidGrantReason::Reused)
            }
            Err(error) => GrantError::Store(error),
        }
    }

    /// Records when tokens were last used (batched and coalesced by the
    /// [`UsageTracker`]; never one call per
    /// request). A later time than the stored one wins.
    pub async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        let uses: Vec<(TokenId, SystemTime)> =
            uses.iter().map(|(id, at)| (*id, to_micros(*at))).collect();
        self.backend_ref().record_use(&uses).await
    }

    /// Deletes the records that have been dead (revoked or expired) for
    /// longer than the [retention period](IssuePolicy::retention). Returns
    /// how many were deleted. Call it periodically (the example does, every
    /// hour).
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let cutoff = now
            .checked_sub(self.inner.policy.get_retention())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let purged = self.backend_ref().purge(cutoff).await?;
        if purged > 0 {
            tracing::info!(
                target: "tower_token_auth::store",
                purged,
                "dead token records purged"
            );
        }
        Ok(purged)
    }

    /// Mints the access and refresh token of `family` for `owner`.
    ///
    /// The access token holds `access_scopes`; the refresh token holds
    /// `refresh_scopes` (RFC 6749 §6: a rotated refresh token keeps the
    /// scope of the one it replaces). Neither outlives the family's age
    /// cap.
    fn mint_pair(
        &self,
        name: &str,
        owner: &str,
        access_scopes: B::Scopes,
        refresh_scopes: B::Scopes,
        family: Family,
    ) -> Result<[Minted<B::Scopes>; 2], TokenError> {
        let policy = &self.inner.policy;
        let (access_secret, mut access) =
            policy.mint(IssueRequest::new(TokenKind::Access, name, owner).scopes(access_scopes))?;
        let (refresh_secret, mut refresh) = policy
            .mint(IssueRequest::new(TokenKind::Refresh, name, owner).scopes(refresh_scopes))?;
        let family_end = to_micros(family.started_at + policy.get_family_max_age());
        for record in [&mut access, &mut refresh] {
            record.family = Some(family);
            record.expires_at = record.expires_at.min(family_end);
        }
        Ok([(access_secret, access), (refresh_secret, refresh)])
    }
}

/// A freshly minted token: its secret and its record, not stored yet.
type Minted<S> = (TokenSecret, TokenRecord<S>);

/// A freshly minted token, its record shared.
fn issued<S>((secret, record): Minted<S>) -> IssuedToken<S> {
    IssuedToken {
        secret,
        record: Arc::new(record),
    }
}

#[async_trait]
impl<B: TokenBackend> TokenStore for TokenManager<B> {
    type Scopes = B::Scopes;

    async fn find(&self, key: Lookup<'_>) -> FindResult<B::Scopes> {
        self.inner.backend.find(key).await
    }

    #[inline]
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<B::Scopes>> {
        self.inner.backend.find_now(digest)
    }
}
