//! The storage trait: what a backend must do, and nothing more.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::TokenStore;
use crate::error::StoreError;
use crate::token::{FamilyId, TokenDigest, TokenId, TokenKind, TokenRecord};

/// A shared record, as backends hand them out.
pub type SharedRecord<S> = Arc<TokenRecord<S>>;

/// Storage primitives for token records: the only part of the crate that a
/// new database has to implement.
///
/// Every rule of the token lifecycle (defaults, lifetimes, rotation, reuse
/// detection, family revocation, scope narrowing, audit events) lives in
/// [`TokenManager`](crate::manager::TokenManager), which calls these methods. A
/// backend stores and finds records; it decides nothing about them except
/// what must be decided atomically, and each method says exactly what that
/// is and which race it prevents.
///
/// The lookup of the request path is the supertrait's
/// [`TokenStore::find`] (and [`TokenStore::find_now`] for a backend that
/// answers from memory).
///
/// "Not found" is `Ok(None)` (or an empty list); `Err` means the backend
/// could not answer ([`StoreError::Unavailable`] when it cannot be reached),
/// and the caller fails closed.
///
/// Times arrive rounded down to whole microseconds, so a backend that keeps
/// microseconds (as SQL timestamps do) returns every record exactly as it
/// was inserted.
///
/// Run the conformance kit (the `tower-token-auth-conformance` crate) against a new
/// backend: it checks every guarantee below, the races included.
#[async_trait]
pub trait TokenBackend: TokenStore {
    /// Stores new records, all of them or none.
    ///
    /// Ids and digests are fresh (minted from the OS random number
    /// generator); one that is already stored is an error, never an
    /// overwrite.
    ///
    /// Under concurrency: once `insert` returns `Ok`, every record is
    /// visible to every later [`find`](TokenStore::find), [`get`](Self::get)
    /// and [`list`](Self::list), on every instance over the same storage.
    /// The manager hands a token to its user only after that, so the first
    /// request with a new token never meets a store that does not know it
    /// yet. On `Err` nothing of the call may remain: a failed pair never
    /// leaves an access token without its refresh token. Readers may see
    /// the records before the call returns (nobody holds their secrets
    /// yet), and concurrent inserts need no ordering among themselves:
    /// their ids and digests never collide, and a unique constraint (or a
    /// check like the in-memory store's) is enough for the error case.
    /// Records of an existing grant never come through here (a grant's new
    /// pair is stored by [`exchange`](Self::exchange), which is serialised
    /// with [`revoke_family`](Self::revoke_family)); a family in an insert
    /// is new and unknown to any other call.
    async fn insert(&self, records: &[TokenRecord<Self::Scopes>]) -> Result<(), StoreError>;

    /// The record of `id`, in any state.
    ///
    /// Under concurrency: the answer is one whole version of the record,
    /// as one write left it (never a mix of two writes, e.g. new scopes
    /// with an old `revoked_at`), and at least as new as every write that
    /// returned before `get` was called. That is all: it takes no lock, and
    /// the record may change before the caller acts on it. The manager
    /// takes what never changes from it (kind, family, owner) and decides
    /// nothing final on what can (revoked, spent, expired): the atomic write
    /// that follows ([`update_scopes`](Self::update_scopes),
    /// [`revoke`](Self::revoke), [`revoke_family`](Self::revoke_family))
    /// checks that again. So a `get` that is stale by the time of the write
    /// can neither revive a token nor let two regenerations of one token
    /// both succeed.
    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError>;

    /// Every record of `owner`, in any state and any order.
    ///
    /// Under concurrency: each record is whole and at least as new as
    /// every write that returned before `list` was called, as for
    /// [`get`](Self::get); every record whose insert returned before the
    /// call is listed unless it was deleted ([`exchange`](Self::exchange)
    /// and [`purge`](Self::purge) delete). So a token just created, or just
    /// revoked, shows as such in the listing that follows. The list need
    /// not be one snapshot: a single SQL `SELECT` is (PostgreSQL, SQLite),
    /// the in-memory store's is not (it reads the owner's ids, then each
    /// record), and a listing that overlaps an exchange may show the spent
    /// refresh token without the new pair yet. Listings are for display;
    /// nothing is decided on them.
    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<Self::Scopes>>, StoreError>;

    /// Replaces the scopes of `id` when, at the moment of the write, the
    /// record is live: not revoked, not spent and `now < expires_at`.
    /// Returns the updated record, or `None` when there is no live record
    /// of that id.
    ///
    /// The check and the write are one atomic step: a scope change racing a
    /// revocation never revives the token, and a lookup sees either the old
    /// scopes or the new ones. A backend that tells other instances about
    /// changes (PostgreSQL's `NOTIFY`) announces this one like a revocation.
    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: Self::Scopes,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError>;

    /// Marks `id` revoked at `at`, unless it already is. Returns the record
    /// as revoked, or `None` when there is no such record or it was already
    /// revoked.
    ///
    /// Of concurrent calls for one id, exactly one returns `Some`: a
    /// regeneration relies on it so that two of them never both succeed.
    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError>;

    /// Marks every record of `family` that is not revoked yet as revoked at
    /// `at`; returns those records, as revoked.
    ///
    /// Serialised with [`exchange`](Self::exchange) of the same family: a
    /// revocation either runs before an exchange (which then finds its
    /// refresh token revoked and stores nothing) or after it (and revokes
    /// the pair that exchange stored). Without this, a revoked grant could
    /// live on through a pair stored while it was being revoked.
    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<Self::Scopes>>, StoreError>;

    /// The one atomic step of a refresh exchange. See [`Exchange`].
    ///
    /// In one step that nothing else interleaves with: when the record whose
    /// digest is [`Exchange::presented`] exists, is not revoked and is not
    /// spent, set its `spent_at` to [`Exchange::at`], store
    /// [`Exchange::access`] and [`Exchange::refresh`], then delete what the
    /// new pair supersedes: the family's access tokens but the newest
    /// [`Exchange::retain_access`], and its spent refresh tokens but the
    /// newest [`Exchange::retain_spent`] (newest by `created_at`, then `id`,
    /// for access tokens; by `spent_at`, then `id`, for spent ones).
    /// [`Exchange::superseded`] computes that set from the family's
    /// records; every backend calls it rather than writing the order again.
    /// Answer [`ExchangeOutcome::Exchanged`].
    ///
    /// Otherwise store nothing and answer [`ExchangeOutcome::AlreadySpent`]
    /// when the record is spent, [`ExchangeOutcome::NotLive`] when it is
    /// revoked or gone.
    ///
    /// Of two concurrent exchanges of one refresh token, exactly one is
    /// `Exchanged` and the other `AlreadySpent` (the manager then revokes
    /// the family as a replay). With [`revoke_family`](Self::revoke_family)
    /// of the same family it is serialised, as said there.
    async fn exchange(
        &self,
        exchange: &Exchange<Self::Scopes>,
    ) -> Result<ExchangeOutcome, StoreError>;

    /// Records when tokens were last used: for each `(id, at)`, sets
    /// `last_used_at` to `at` unless the stored time is later (the latest
    /// wins, whatever the order of the batch). Unknown ids are skipped.
    ///
    /// Called off the request path, in batches, by every instance.
    ///
    /// Under concurrency, per record: the comparison with the stored time
    /// and the write are one atomic step (a conditional `UPDATE`, or the
    /// in-memory store's change under the record's lock), so of two
    /// batches that overlap the later time wins and `last_used_at` never
    /// goes backwards, whichever batch commits last. Only `last_used_at` is
    /// written: a backend must never write back a whole record it read
    /// earlier, which would undo a revocation, a spend or a scope change
    /// made in between. Concurrent batches that share ids must not deadlock
    /// each other or [`revoke_family`](Self::revoke_family),
    /// [`exchange`](Self::exchange) and [`purge`](Self::purge) (PostgreSQL
    /// takes its row locks in `id` order in all of them). A batch need not be atomic
    /// as a whole, and the change need not be announced to other
    /// instances' caches: it changes no lookup's answer.
    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError>;

    /// Deletes every record that was dead before `cutoff`: revoked before
    /// it (`revoked_at < cutoff`) or expired before it (`expires_at <
    /// cutoff`). Returns how many were deleted.
    ///
    /// A spent refresh token is kept until it expires: reuse detection needs
    /// it until then.
    ///
    /// Under concurrency: every instance runs it (periodically), next to
    /// every other method. A record is deleted only if it is dead at the
    /// moment of its deletion, never because it was dead in an older
    /// reading: deleting a live refresh token, spent or not, would make a
    /// replay of it look unknown instead of revoking its grant. Deadness
    /// never ends (nothing clears `revoked_at` or extends `expires_at`), so
    /// a check in the deleting statement (SQLite, PostgreSQL, which
    /// re-checks after the row lock) or just before the deletion (the
    /// in-memory store) is enough, and no snapshot is needed: a record that
    /// dies during a purge is deleted by this one or the next. It must not
    /// deadlock with
    /// [`revoke_family`](Self::revoke_family), [`exchange`](Self::exchange)
    /// or [`record_use`](Self::record_use) (PostgreSQL locks rows in `id`
    /// order). Overlapping purges delete each record once; their counts are
    /// informational (the in-memory store may count a record in both).
    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError>;
}

/// What [`TokenBackend::exchange`] is asked to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Exchange<S> {
    /// The digest of the refresh token being spent.
    pub presented: TokenDigest,
    /// Its family (also the family of the new pair).
    pub family: FamilyId,
    /// When it is spent.
    pub at: SystemTime,
    /// The new access token.
    pub access: TokenRecord<S>,
    /// The new refresh token.
    pub refresh: TokenRecord<S>,
    /// How many of the family's access tokens to keep, the new one
    /// included (at least 1).
    pub retain_access: usize,
    /// How many of the family's spent refresh tokens to keep, the one spent
    /// now included (at least 1).
    pub retain_spent: usize,
}

impl<S> Exchange<S> {
    /// An exchange of `presented` (of `family`) at `at` for `access` and
    /// `refresh`, keeping `retain_access` access tokens and `retain_spent`
    /// spent refresh tokens of the family.
    pub fn new(
        presented: TokenDigest,
        family: FamilyId,
        at: SystemTime,
        [access, refresh]: [TokenRecord<S>; 2],
        retain_access: usize,
        retain_spent: usize,
    ) -> Self {
        Self {
            presented,
            family,
            at,
            access,
            refresh,
            retain_access: retain_access.max(1),
            retain_spent: retain_spent.max(1),
        }
    }

    /// The ids of the records the new pair supersedes, among `family`: the
    /// family's records after the exchange, the new pair and the token
    /// spent now included (in any order). They are its access tokens but
    /// the newest [`retain_access`](Self::retain_access) (newest by
    /// `created_at`, then id) and its spent refresh tokens but the newest
    /// [`retain_spent`](Self::retain_spent) (by `spent_at`, then id); ids
    /// compare as the unsigned numbers they are.
    ///
    /// The retention order of every backend: a backend reads the family
    /// inside the exchange's atomic step, calls this, and deletes the ids
    /// it returns.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_token_auth::store::Exchange;
    /// use tower_token_auth::scope::PayRequestScopes as S;
    /// use tower_token_auth::token::{FamilyId, TokenDigest, TokenId, TokenKind, TokenRecord};
    ///
    /// let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    /// let access = |id, at| TokenRecord::new(TokenId::from_u64(id), TokenDigest::of("x"),
    ///     TokenKind::Access, S::BILLING_READ, t(at), t(at + 60));
    /// let refresh = TokenRecord::new(TokenId::from_u64(9), TokenDigest::of("r"),
    ///     TokenKind::Refresh, S::BILLING_READ, t(3), t(99));
    /// let x = Exchange::new(TokenDigest::of("old"), FamilyId::from_u64(1), t(3),
    ///     [access(3, 3), refresh.clone()], 2, 1);
    /// let family = [access(1, 1), access(2, 2), access(3, 3), refresh];
    /// // Two access tokens stay: the new one and the one before it.
    /// assert_eq!(x.superseded(&family), vec![TokenId::from_u64(1)]);
    /// ```
    pub fn superseded<'a, I>(&self, family: I) -> Vec<TokenId>
    where
        I: IntoIterator<Item = &'a TokenRecord<S>>,
        S: 'a,
    {
        let mut access: Vec<(SystemTime, TokenId)> = Vec::new();
        let mut spent: Vec<(SystemTime, TokenId)> = Vec::new();
        for record in family {
            if record.kind == TokenKind::Access {
                access.push((record.created_at, record.id));
            }
            if let Some(at) = record.spent_at {
                spent.push((at, record.id));
            }
        }
        access.sort_unstable_by_key(|key| Reverse(*key));
        spent.sort_unstable_by_key(|key| Reverse(*key));
        access
            .into_iter()
            .skip(self.retain_access)
            .chain(spent.into_iter().skip(self.retain_spent))
            .map(|(_, id)| id)
            .collect()
    }
}

/// The answer of [`TokenBackend::exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeOutcome {
    /// The refresh token is spent and the new pair stored.
    Exchanged,
    /// The refresh token had already been spent: nothing was stored.
    AlreadySpent,
    /// The refresh token is revoked or gone: nothing was stored.
    NotLive,
}

#[async_trait]
impl<T: TokenBackend + ?Sized> TokenBackend for Arc<T> {
    async fn insert(&self, records: &[TokenRecord<Self::Scopes>]) -> Result<(), StoreError> {
        (**self).insert(records).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError> {
        (**self).get(id).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<Self::Scopes>>, StoreError> {
        (**self).list(owner).await
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: Self::Scopes,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError> {
        (**self).update_scopes(id, scopes, now).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<Self::Scopes>>, StoreError> {
        (**self).revoke(id, at).await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<Self::Scopes>>, StoreError> {
        (**self).revoke_family(family, at).await
    }

    async fn exchange(
        &self,
        exchange: &Exchange<Self::Scopes>,
    ) -> Result<ExchangeOutcome, StoreError> {
        (**self).exchange(exchange).await
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        (**self).record_use(uses).await
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        (**self).purge(cutoff).await
    }
}
