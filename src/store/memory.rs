use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{
    Family, FamilyId, FindResult, GrantError, InvalidGrantReason, IssuePolicy, IssueRequest,
    IssuedToken, StoreError, TokenId, TokenInfo, TokenManager, TokenPair, TokenRecord, TokenStore,
};
use crate::audit::AuditEvent;
use crate::scope::{PayRequestScopes, ScopeSet};
use crate::token::{TokenDigest, TokenKind, TokenSecret};

/// The embedded in-memory store: for tests, demos and single-node services.
///
/// Records sit in a sharded concurrent map ([`dashmap`]): lookups on
/// different shards never contend, and no lock is held across an `.await`
/// (every method does its work synchronously). Cloning the store is cheap
/// and every clone sees the same tokens. Tokens are lost when the process
/// exits; use a shared store when a service runs on several machines.
pub struct MemoryStore<S = PayRequestScopes> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    by_digest: DashMap<TokenDigest, Arc<TokenRecord<S>>, BuildHasherDefault<DigestHasher>>,
    by_id: DashMap<TokenId, TokenDigest>,
    by_family: DashMap<FamilyId, Vec<TokenId>>,
    policy: IssuePolicy,
}

/// The hasher of the digest-keyed map. [`TokenDigest`]'s `Hash` writes the
/// digest's first eight bytes as one `u64`; a SHA-256 output is already
/// uniformly distributed, so they are used as the hash as they are, with no
/// SipHash rounds on the hot path. Flooding is no concern: the keys are the
/// digests of tokens the service issued (minted from the OS CSPRNG, or
/// imported with [`MemoryStore::insert`]), a lookup inserts nothing, and a
/// client cannot choose the digest of what it presents.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached through `TokenDigest`; kept correct for any caller.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl<S> Clone for MemoryStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for MemoryStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tokens", &self.inner.by_digest.len())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl<S: ScopeSet> Default for MemoryStore<S> {
    /// An empty store with the default [`IssuePolicy`], for any scope set:
    /// `MemoryStore::<MyScopes>::default()`.
    fn default() -> Self {
        Self::with_policy(IssuePolicy::default())
    }
}

impl MemoryStore<PayRequestScopes> {
    /// An empty store of PayRequest-scoped tokens with the default
    /// [`IssuePolicy`]. For another scope set, use
    /// `MemoryStore::<MyScopes>::default()` or [`with_policy`](Self::with_policy).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: ScopeSet> MemoryStore<S> {
    /// An empty store that mints tokens by `policy`.
    pub fn with_policy(policy: IssuePolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                by_digest: DashMap::default(),
                by_id: DashMap::new(),
                by_family: DashMap::new(),
                policy,
            }),
        }
    }

    /// The issuance policy.
    pub fn policy(&self) -> &IssuePolicy {
        &self.inner.policy
    }

    /// How many tokens the store holds, revoked and expired ones included.
    pub fn len(&self) -> usize {
        self.inner.by_digest.len()
    }

    /// Whether the store holds no token.
    pub fn is_empty(&self) -> bool {
        self.inner.by_digest.is_empty()
    }

    /// Stores an existing record, e.g. one imported from another system.
    /// A record with the same digest or id is replaced.
    pub fn insert(&self, record: TokenRecord<S>) {
        self.store(Arc::new(record));
    }

    fn lookup(&self, digest: &TokenDigest) -> Option<Arc<TokenRecord<S>>> {
        self.inner.by_digest.get(digest).map(|r| Arc::clone(&r))
    }

    fn store(&self, record: Arc<TokenRecord<S>>) {
        match record.family {
            Some(family) => {
                let mut members = self.inner.by_family.entry(family.id).or_default();
                self.store_member(record, Some(&mut members));
            }
            None => self.store_member(record, None),
        }
    }

    /// Stores `record`, adding it to `members`: its family's list, whose
    /// entry the caller holds. The family's entry is always locked before
    /// the other maps' entries, never after.
    fn store_member(&self, record: Arc<TokenRecord<S>>, members: Option<&mut Vec<TokenId>>) {
        self.inner.by_id.insert(record.id, record.digest);
        if let Some(members) = members {
            members.push(record.id);
        }
        self.inner.by_digest.insert(record.digest, record);
    }

    fn store_issued(&self, minted: (TokenSecret, TokenRecord<S>)) -> IssuedToken<S> {
        let issued = issued(minted);
        self.store(Arc::clone(&issued.record));
        self.announce_created(&issued);
        issued
    }

    fn announce_created(&self, issued: &IssuedToken<S>) {
        self.inner
            .policy
            .audit_sink()
            .emit(AuditEvent::TokenCreated {
                id: issued.record.id,
                owner: issued.record.owner.clone(),
                kind: issued.record.kind,
            });
    }

    /// Marks `id` revoked at `now`; `None` when unknown or already revoked.
    fn revoke_now(&self, id: TokenId, now: SystemTime) -> Option<Arc<TokenRecord<S>>> {
        self.update(id, |r| {
            (!r.is_revoked()).then(|| TokenRecord {
                revoked_at: Some(now),
                ..r.clone()
            })
        })
    }

    /// Revokes every token of `family`; returns how many were revoked now.
    ///
    /// The family's entry stays read-locked throughout, and an exchange in
    /// the family write-locks it until its new pair is stored: a pair is
    /// either stored before the revocation starts, and revoked with the
    /// rest, or the exchange finds its token revoked.
    fn revoke_family_now(&self, family: FamilyId) -> usize {
        self.inner
            .by_family
            .get(&family)
            .map_or(0, |members| self.revoke_members(&members))
    }

    /// Revokes each of `members`, a family's list whose entry the caller
    /// holds; returns how many were revoked now.
    fn revoke_members(&self, members: &[TokenId]) -> usize {
        let now = self.inner.policy.now();
        members
            .iter()
            .filter(|id| self.revoke_now(**id, now).is_some())
            .count()
    }

    /// Replaces the record of `id` with `update(record)`, if there is one.
    fn update(
        &self,
        id: TokenId,
        update: impl FnOnce(&TokenRecord<S>) -> Option<TokenRecord<S>>,
    ) -> Option<Arc<TokenRecord<S>>> {
        let digest = *self.inner.by_id.get(&id)?;
        let mut entry = self.inner.by_digest.get_mut(&digest)?;
        let updated = Arc::new(update(&entry)?);
        *entry = Arc::clone(&updated);
        Some(updated)
    }
}

/// A freshly minted token, its record shared.
fn issued<S>((secret, record): (TokenSecret, TokenRecord<S>)) -> IssuedToken<S> {
    IssuedToken {
        secret,
        record: Arc::new(record),
    }
}

#[async_trait]
impl<S: ScopeSet> TokenStore for MemoryStore<S> {
    type Scopes = S;

    async fn find(&self, digest: &TokenDigest) -> Result<Option<Arc<TokenRecord<S>>>, StoreError> {
        Ok(self.lookup(digest))
    }

    /// Always answers: the lookup is a read of a sharded map.
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<S>> {
        Some(Ok(self.lookup(digest)))
    }
}

#[async_trait]
impl<S: ScopeSet> TokenManager for MemoryStore<S> {
    async fn issue(&self, request: IssueRequest<S>) -> Result<IssuedToken<S>, StoreError> {
        Ok(self.store_issued(self.inner.policy.mint(request)?))
    }

    async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<S>,
    ) -> Result<TokenPair<S>, StoreError> {
        let scopes = scopes.filter(|s| !s.is_empty()).unwrap_or(S::DEFAULT);
        let family = Family {
            id: FamilyId::random()?,
            started_at: self.inner.policy.now(),
        };
        let [access, refresh] = self
            .inner
            .policy
            .mint_pair(name, owner, scopes, scopes, family)?;
        Ok(TokenPair {
            access: self.store_issued(access),
            refresh: self.store_issued(refresh),
        })
    }

    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<S>>, StoreError> {
        let mut tokens: Vec<TokenInfo<S>> = self
            .inner
            .by_digest
            .iter()
            .filter(|r| r.owner == owner)
            .map(|r| TokenInfo::from(&**r))
            .collect();
        tokens.sort_by_key(|t| (t.created_at, t.id));
        Ok(tokens)
    }

    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<S>>, StoreError> {
        let Some(digest) = self.inner.by_id.get(&id).map(|d| *d) else {
            return Ok(None);
        };
        Ok(self
            .inner
            .by_digest
            .get(&digest)
            .map(|r| TokenInfo::from(&**r)))
    }

    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        let revoked = self.revoke_now(id, self.inner.policy.now());
        if let Some(r) = &revoked {
            self.inner
                .policy
                .audit_sink()
                .emit(AuditEvent::TokenRevoked {
                    id: r.id,
                    owner: r.owner.clone(),
                });
        }
        Ok(revoked.is_some())
    }

    async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError> {
        let owner = self.family_owner(family);
        let tokens = self.revoke_family_now(family);
        if let Some(owner) = owner {
            self.inner
                .policy
                .audit_sink()
                .emit(AuditEvent::FamilyRevoked {
                    family,
                    owner,
                    tokens,
                });
        }
        Ok(tokens)
    }

    async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        let Some(record) = self.inner.by_digest.get(digest).map(|r| Arc::clone(&r)) else {
            return Ok(false);
        };
        match (record.kind, record.family) {
            (TokenKind::Refresh, Some(family)) => Ok(self.revoke_family(family.id).await? > 0),
            _ => self.revoke(record.id).await,
        }
    }

    async fn regenerate(&self, id: TokenId) -> Result<Option<IssuedToken<S>>, StoreError> {
        let Some(old) = self.record(id) else {
            return Ok(None);
        };
        if old.kind != TokenKind::PersonalAccess {
            return Err(StoreError::InvalidInput(
                "only personal access tokens are regenerated; refresh the others".into(),
            ));
        }
        // Revoke first: of two concurrent regenerations only one wins.
        if self.revoke_now(id, self.inner.policy.now()).is_none() {
            return Err(StoreError::InvalidInput(
                "a revoked token cannot be regenerated".into(),
            ));
        }
        let request =
            IssueRequest::new(old.kind, old.name.clone(), old.owner.clone()).scopes(old.scopes);
        let issued = self.store_issued(self.inner.policy.mint(request)?);
        self.inner
            .policy
            .audit_sink()
            .emit(AuditEvent::TokenRegenerated {
                old: id,
                new: issued.record.id,
                owner: old.owner.clone(),
            });
        Ok(Some(issued))
    }

    async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<S>,
    ) -> Result<TokenPair<S>, GrantError> {
        let policy = &self.inner.policy;
        let now = policy.now();
        let Some(found) = self.lookup(presented) else {
            return Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown));
        };
        // The family's entry stays locked until the new pair is stored (see
        // `revoke_family_now`): a revocation of the family, or a replay
        // revoking it, never runs halfway through this exchange.
        let members = found
            .family
            .map(|family| self.inner.by_family.entry(family.id).or_default());
        // Check and spend under the token's entry lock: of two concurrent
        // exchanges, the second sees the token spent.
        let checked = {
            let Some(mut entry) = self.inner.by_digest.get_mut(presented) else {
                return Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown));
            };
            let old = Arc::clone(&entry);
            match policy.check_refresh(&old, now, scopes) {
                Ok(access_scopes) => {
                    *entry = Arc::new(TokenRecord {
                        spent_at: Some(now),
                        ..(*old).clone()
                    });
                    Ok((old, access_scopes))
                }
                Err(error) => Err((old, error)),
            }
        };
        let (old, access_scopes) = match checked {
            Ok(ok) => ok,
            Err((old, GrantError::InvalidGrant(InvalidGrantReason::Reused))) => {
                if let Some(family) = old.family {
                    // `members` is the family's entry unless the record was
                    // replaced in between (`insert`) with another family.
                    let tokens = match members.filter(|m| *m.key() == family.id) {
                        Some(members) => self.revoke_members(&members),
                        None => self.revoke_family_now(family.id),
                    };
                    policy.audit_sink().emit(AuditEvent::FamilyRevokedOnReuse {
                        family: family.id,
                        presented: old.id,
                        owner: old.owner.clone(),
                        tokens,
                    });
                }
                return Err(GrantError::InvalidGrant(InvalidGrantReason::Reused));
            }
            Err((_, error)) => return Err(error),
        };
        let family = old.family.unwrap_or(Family {
            id: FamilyId::random()?,
            started_at: old.created_at,
        });
        let [access, refresh] =
            policy.mint_pair(&old.name, &old.owner, access_scopes, old.scopes, family)?;
        let pair = TokenPair {
            access: issued(access),
            refresh: issued(refresh),
        };
        {
            // A family's entry is locked before another's is taken: the
            // held one is released by `filter` when it is not this family's.
            let mut members = match members.filter(|m| *m.key() == family.id) {
                Some(members) => members,
                None => self.inner.by_family.entry(family.id).or_default(),
            };
            self.store_member(Arc::clone(&pair.access.record), Some(&mut members));
            self.store_member(Arc::clone(&pair.refresh.record), Some(&mut members));
        }
        self.announce_created(&pair.access);
        self.announce_created(&pair.refresh);
        policy.audit_sink().emit(AuditEvent::RefreshRotated {
            old: old.id,
            access: pair.access.record.id,
            refresh: pair.refresh.record.id,
            owner: old.owner.clone(),
        });
        Ok(pair)
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        for (id, at) in uses {
            self.update(*id, |r| {
                (r.last_used_at < Some(*at)).then(|| TokenRecord {
                    last_used_at: Some(*at),
                    ..r.clone()
                })
            });
        }
        Ok(())
    }
}

impl<S: ScopeSet> MemoryStore<S> {
    fn record(&self, id: TokenId) -> Option<Arc<TokenRecord<S>>> {
        let digest = *self.inner.by_id.get(&id)?;
        self.inner.by_digest.get(&digest).map(|r| Arc::clone(&r))
    }

    fn family_owner(&self, family: FamilyId) -> Option<String> {
        let first = *self.inner.by_family.get(&family)?.first()?;
        self.record(first).map(|r| r.owner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;
    use crate::token::TokenKind;
    use futures_util::FutureExt;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        f.now_or_never().expect("the memory store never waits")
    }

    #[test]
    fn issue_find_list_revoke() {
        let store = MemoryStore::<S>::new();
        let issued = run(store.issue(
            IssueRequest::new(TokenKind::PersonalAccess, "a", "u1").scopes(S::BILLING_AGENT),
        ))
        .unwrap();
        run(store.issue(IssueRequest::new(TokenKind::Access, "b", "u2"))).unwrap();
        let digest = issued.secret.digest();
        assert_eq!(
            run(store.find(&digest)).unwrap().unwrap().id,
            issued.record.id
        );
        assert!(run(store.find(&TokenDigest::of("nope"))).unwrap().is_none());

        let listed = run(store.list("u1")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scopes, S::BILLING_AGENT);

        assert!(run(store.revoke(issued.record.id)).unwrap());
        assert!(
            !run(store.revoke(issued.record.id)).unwrap(),
            "second revoke is a no-op"
        );
        assert!(!run(store.revoke(TokenId::from_u64(7))).unwrap());
        assert!(run(store.find(&digest)).unwrap().unwrap().is_revoked());
        assert!(run(store.get(issued.record.id))
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some());
    }

    #[test]
    fn clones_share_tokens() {
        let a = MemoryStore::<S>::new();
        let b = a.clone();
        run(a.issue(IssueRequest::new(TokenKind::Access, "x", "u"))).unwrap();
        assert_eq!(b.len(), 1);
    }
}

#[cfg(test)]
mod lifecycle_tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::audit::{Audit, AuditObserver};
    use crate::scope::PayRequestScopes as S;
    use crate::token::{Clock, ManualClock};
    use futures_util::FutureExt;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        f.now_or_never().expect("the memory store never waits")
    }

    #[derive(Default)]
    struct Events(Mutex<Vec<&'static str>>);

    impl AuditObserver for Events {
        fn observe(&self, event: &AuditEvent) {
            self.0.lock().unwrap().push(event.name());
        }
    }

    fn store() -> (MemoryStore<S>, Arc<ManualClock>, Arc<Events>) {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 30),
        ));
        let events = Arc::new(Events::default());
        let policy = IssuePolicy::default()
            .clock(clock.clone())
            .audit(Audit::new().observer(events.clone()));
        (MemoryStore::with_policy(policy), clock, events)
    }

    #[test]
    fn refresh_rotates_and_spends_the_old_token() {
        let (store, _, events) = store();
        let pair = run(store.issue_pair("agent", "u1", Some(S::BILLING_AGENT))).unwrap();
        let family = pair.refresh.record.family.unwrap();
        let next = run(store.refresh(&pair.refresh.secret.digest(), None)).unwrap();
        assert_eq!(next.access.record.family, Some(family));
        assert_eq!(next.refresh.record.family, Some(family));
        assert_eq!(next.access.record.scopes, S::BILLING_AGENT);
        let old = run(store.find(&pair.refresh.secret.digest()))
            .unwrap()
            .unwrap();
        assert!(old.spent_at.is_some());
        assert!(!old.is_revoked());
        assert!(events.0.lock().unwrap().contains(&"refresh_rotated"));
    }

    #[test]
    fn reusing_a_spent_refresh_token_revokes_the_family() {
        let (store, _, events) = store();
        let pair = run(store.issue_pair("agent", "u1", None)).unwrap();
        let next = run(store.refresh(&pair.refresh.secret.digest(), None)).unwrap();
        let reuse = run(store.refresh(&pair.refresh.secret.digest(), None));
        assert!(matches!(
            reuse,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
        ));
        for token in [&pair.access, &next.access, &next.refresh] {
            let r = run(store.find(&token.secret.digest())).unwrap().unwrap();
            assert!(r.is_revoked(), "{:?} should be revoked", r.kind);
        }
        assert!(events
            .0
            .lock()
            .unwrap()
            .contains(&"family_revoked_on_reuse"));
        assert!(matches!(
            run(store.refresh(&next.refresh.secret.digest(), None)),
            Err(GrantError::InvalidGrant(InvalidGrantReason::Revoked))
        ));
    }

    #[test]
    fn refresh_scope_may_narrow_but_not_widen() {
        let (store, _, _) = store();
        let pair = run(store.issue_pair("agent", "u1", Some(S::BILLING_AGENT))).unwrap();
        assert!(matches!(
            run(store.refresh(&pair.refresh.secret.digest(), Some(S::CUSTOMERS_READ))),
            Err(GrantError::InvalidScope)
        ));
        let narrowed =
            run(store.refresh(&pair.refresh.secret.digest(), Some(S::BILLING_READ))).unwrap();
        assert_eq!(narrowed.access.record.scopes, S::BILLING_READ);
        // The new refresh token keeps the old one's scope (RFC 6749 §6).
        assert_eq!(narrowed.refresh.record.scopes, S::BILLING_AGENT);
    }

    #[test]
    fn expired_refresh_tokens_and_old_families_are_refused() {
        let (store, clock, _) = store();
        let pair = run(store.issue_pair("agent", "u1", None)).unwrap();
        clock.advance(Duration::from_secs(30 * 86_400));
        assert!(matches!(
            run(store.refresh(&pair.refresh.secret.digest(), None)),
            Err(GrantError::InvalidGrant(InvalidGrantReason::Expired))
        ));

        let policy = store
            .policy()
            .clone()
            .family_max_age(Duration::from_secs(3600));
        let capped = MemoryStore::<S>::with_policy(policy);
        let pair = run(capped.issue_pair("agent", "u1", None)).unwrap();
        assert_eq!(
            pair.refresh.record.expires_at,
            clock.now() + Duration::from_secs(3600),
            "a refresh token never outlives its family"
        );
        clock.advance(Duration::from_secs(1800));
        let next = run(capped.refresh(&pair.refresh.secret.digest(), None)).unwrap();
        clock.advance(Duration::from_secs(1800));
        assert!(run(capped.refresh(&next.refresh.secret.digest(), None)).is_err());
    }

    #[test]
    fn concurrent_exchanges_have_exactly_one_winner() {
        let (store, _, _) = store();
        let pair = run(store.issue_pair("agent", "u1", None)).unwrap();
        let digest = pair.refresh.secret.digest();
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| run(store.refresh(&digest, None)).is_ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn revoking_a_refresh_token_revokes_its_family() {
        let (store, _, _) = store();
        let pair = run(store.issue_pair("agent", "u1", None)).unwrap();
        assert!(run(store.revoke_by_digest(&pair.refresh.secret.digest())).unwrap());
        assert!(run(store.find(&pair.access.secret.digest()))
            .unwrap()
            .unwrap()
            .is_revoked());
        // Idempotent, and unknown tokens are fine.
        assert!(!run(store.revoke_by_digest(&pair.refresh.secret.digest())).unwrap());
        assert!(!run(store.revoke_by_digest(&TokenDigest::of("unknown"))).unwrap());
    }

    #[test]
    fn regenerate_replaces_the_secret_and_revokes_the_old_one() {
        let (store, _, events) = store();
        let old = run(store.issue(
            IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1").scopes(S::PRODUCTS_WRITE),
        ))
        .unwrap();
        let new = run(store.regenerate(old.record.id)).unwrap().unwrap();
        assert_ne!(new.secret, old.secret);
        assert_eq!(new.record.name, "CI");
        assert_eq!(new.record.scopes, S::PRODUCTS_WRITE);
        assert!(run(store.find(&old.secret.digest()))
            .unwrap()
            .unwrap()
            .is_revoked());
        assert!(run(store.regenerate(old.record.id)).is_err());
        assert!(run(store.regenerate(TokenId::from_u64(1)))
            .unwrap()
            .is_none());
        assert!(events.0.lock().unwrap().contains(&"token_regenerated"));
    }

    #[test]
    fn record_use_keeps_the_latest_time() {
        let (store, clock, _) = store();
        let t = run(store.issue(IssueRequest::new(TokenKind::Access, "x", "u1"))).unwrap();
        let now = clock.now();
        run(store.record_use(&[
            (t.record.id, now),
            (t.record.id, now - Duration::from_secs(5)),
        ]))
        .unwrap();
        assert_eq!(
            run(store.get(t.record.id)).unwrap().unwrap().last_used_at,
            Some(now)
        );
    }
}
