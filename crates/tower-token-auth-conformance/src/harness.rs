//! What every behaviour runs against: the backend, a manager over it, a
//! manual clock and an audit log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::oneshot;
use tower_token_auth::audit::{Audit, AuditEvent, AuditObserver};
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssuePolicy, TokenManager};
use tower_token_auth::store::{
    Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
};
use tower_token_auth::token::{
    Clock, Family, FamilyId, Lookup, ManualClock, TokenDigest, TokenId, TokenKind, TokenRecord,
};

use crate::violation::{method, Answer};
use crate::Violation;

/// Where every clock of the kit starts: a whole second, so no backend
/// rounds a time.
pub fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Every audit event the manager emitted, in order.
#[derive(Debug, Default)]
pub struct EventLog(Mutex<Vec<AuditEvent>>);

impl AuditObserver for EventLog {
    fn observe(&self, event: &AuditEvent) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
    }
}

impl EventLog {
    /// The events since the last call, taken out of the log.
    pub fn take(&self) -> Vec<AuditEvent> {
        self.0
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// The names of the events since the last call.
    pub fn take_names(&self) -> Vec<&'static str> {
        self.take().iter().map(AuditEvent::name).collect()
    }
}

/// A backend under test, wrapped so that a test can park the next
/// [`exchange`](TokenBackend::exchange) before it reaches the backend: the
/// manager has checked the refresh token, and another call runs before the
/// backend's atomic step. (The races inside the backend itself are forced
/// by [`schedule`](crate::schedule), on the backend directly.)
///
/// Every call goes straight through to the backend unless
/// [`park_next_exchange`](Self::park_next_exchange) armed the gate.
pub struct Gated<B> {
    backend: Arc<B>,
    gate: Arc<Mutex<Option<Parking>>>,
}

/// The two ends of a parked exchange, held by the gate.
struct Parking {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// What a parked exchange waits for.
const REACHES: &str = "the manager calls the backend's exchange after its own check of the \
                       refresh token";

/// The test's end of a parked exchange.
#[derive(Debug)]
pub struct Parked {
    reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl Parked {
    /// Waits until the exchange is parked: the manager has checked the
    /// refresh token and is about to call the backend's atomic step.
    ///
    /// # Errors
    ///
    /// When the gated exchange was dropped without reaching the gate, or
    /// did not reach it within 10 seconds (the manager answered before its
    /// atomic step).
    pub async fn reached(&mut self) -> Result<(), Violation> {
        let guarantee = REACHES;
        match tokio::time::timeout(Duration::from_secs(10), &mut self.reached).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Violation::new(
                "TokenManager::refresh",
                guarantee,
                "the exchange ended without reaching the backend",
            )),
            Err(_) => Err(Violation::new(
                "TokenManager::refresh",
                guarantee,
                "no exchange reached the backend within 10 s",
            )),
        }
    }

    /// [`reached`](Self::reached), for an exchange that runs in `task`:
    /// fails at once, with the task's answer, when the task ends without
    /// reaching the gate (the manager refused before its atomic step).
    ///
    /// # Errors
    ///
    /// When the task ended first, or nothing reached the gate within 10
    /// seconds.
    pub async fn reached_in<R: std::fmt::Debug>(
        &mut self,
        task: &mut tokio::task::JoinHandle<R>,
    ) -> Result<(), Violation> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let wait = tokio::time::timeout(Duration::from_millis(5), &mut self.reached).await;
            if let Ok(reached) = wait {
                return reached.map_err(|_| {
                    Violation::new(
                        "TokenManager::refresh",
                        REACHES,
                        "the exchange ended without reaching the backend",
                    )
                });
            }
            if task.is_finished() {
                let answer = task.await;
                return Err(Violation::new(
                    "TokenManager::refresh",
                    REACHES,
                    format!("the exchange ended before reaching the backend: {answer:?}"),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Violation::new(
                    "TokenManager::refresh",
                    REACHES,
                    "no exchange reached the backend within 10 s",
                ));
            }
        }
    }

    /// Lets the parked exchange go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl<B> Clone for Gated<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            gate: Arc::clone(&self.gate),
        }
    }
}

impl<B> std::fmt::Debug for Gated<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").finish_non_exhaustive()
    }
}

impl<B> Gated<B> {
    /// `backend`, with the gate open.
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            gate: Arc::new(Mutex::new(None)),
        }
    }

    /// The backend itself.
    pub fn inner(&self) -> &B {
        &self.backend
    }

    /// The backend itself, shared (for a task of its own).
    pub fn shared(&self) -> Arc<B> {
        Arc::clone(&self.backend)
    }

    /// Parks the next exchange before it reaches the backend, until the
    /// returned handle is released.
    pub fn park_next_exchange(&self) -> Parked {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        let parking = Parking {
            reached: reached_tx,
            release: release_rx,
        };
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(parking);
        Parked {
            reached: reached_rx,
            release: release_tx,
        }
    }
}

#[async_trait]
impl<B: TokenBackend> TokenStore for Gated<B> {
    type Scopes = B::Scopes;

    async fn find(&self, key: Lookup<'_>) -> FindResult<B::Scopes> {
        self.backend.find(key).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<B::Scopes>> {
        self.backend.find_now(digest)
    }
}

#[async_trait]
impl<B: TokenBackend> TokenBackend for Gated<B> {
    async fn insert(&self, records: &[TokenRecord<B::Scopes>]) -> Result<(), StoreError> {
        self.backend.insert(records).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.get(id).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.list(owner).await
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: B::Scopes,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.update_scopes(id, scopes, now).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.revoke(id, at).await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<B::Scopes>>, StoreError> {
        self.backend.revoke_family(family, at).await
    }

    async fn exchange(
        &self,
        exchange: &Exchange<B::Scopes>,
    ) -> Result<ExchangeOutcome, StoreError> {
        let parking = self.gate.lock().ok().and_then(|mut gate| gate.take());
        if let Some(parking) = parking {
            let _ = parking.reached.send(());
            let _ = parking.release.await;
        }
        self.backend.exchange(exchange).await
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        self.backend.record_use(uses).await
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        self.backend.purge(cutoff).await
    }
}

/// What each behaviour runs against: a manager over the backend under test
/// (behind a [`Gated`] wrapper), its manual clock and its audit log.
pub struct Harness<B> {
    /// The manager over the backend.
    pub tokens: TokenManager<Gated<B>>,
    /// The manager's clock, at [`start_time`] when the test begins.
    pub clock: Arc<ManualClock>,
    /// Every audit event the manager emitted.
    pub events: Arc<EventLog>,
}

impl<B> std::fmt::Debug for Harness<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl<B: TokenBackend> Harness<B> {
    /// A harness over `backend`, which must be empty, with a clock at
    /// [`start_time`].
    pub fn new(backend: B) -> Self {
        Self::with_clock(backend, Arc::new(ManualClock::new(start_time())))
    }

    /// A harness over `backend`, which must be empty, whose manager runs by
    /// `clock` (give a backend that judges time itself, such as a cache,
    /// the same clock).
    pub fn with_clock(backend: B, clock: Arc<ManualClock>) -> Self {
        let events = Arc::new(EventLog::default());
        let tokens = TokenManager::with_policy(Gated::new(backend), Self::policy(&clock, &events));
        Self {
            tokens,
            clock,
            events,
        }
    }

    fn policy(clock: &Arc<ManualClock>, events: &Arc<EventLog>) -> IssuePolicy {
        IssuePolicy::default()
            .clock(clock.clone())
            .audit(Audit::new().observer(events.clone()))
    }

    /// A second manager over the same backend, with `policy` applied to the
    /// harness's own (same clock, same audit log).
    pub fn manager_with(
        &self,
        policy: impl FnOnce(IssuePolicy) -> IssuePolicy,
    ) -> TokenManager<Gated<B>> {
        TokenManager::with_policy(
            self.tokens.backend().clone(),
            policy(Self::policy(&self.clock, &self.events)),
        )
    }

    /// The backend under test, without the gate.
    pub fn backend(&self) -> &B {
        self.tokens.backend().inner()
    }

    /// The manager's time now.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The record of `digest` as the backend's lookup answers it.
    pub(crate) async fn find(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<SharedRecord<B::Scopes>>, Violation> {
        self.backend()
            .find(digest.into())
            .await
            .answer(method::FIND)
    }

    /// The record of `digest`, which must exist: `what` says why.
    pub(crate) async fn record(
        &self,
        digest: &TokenDigest,
        what: &'static str,
    ) -> Result<SharedRecord<B::Scopes>, Violation> {
        self.find(digest)
            .await?
            .ok_or_else(|| Violation::new(method::FIND, what, "None"))
    }

    /// Whether the record of `digest` exists and is revoked; `what` says
    /// why it must.
    pub(crate) async fn ensure_revoked(
        &self,
        digest: &TokenDigest,
        method: &'static str,
        what: &'static str,
    ) -> Result<(), Violation> {
        match self.find(digest).await? {
            Some(record) if record.is_revoked() => Ok(()),
            Some(record) => Err(Violation::new(
                method,
                what,
                format!("{} not revoked", record.id),
            )),
            None => Err(Violation::new(
                method,
                what,
                "the record is gone (it must stay, revoked)",
            )),
        }
    }

    /// A new grant, stored through the backend alone: an access and a
    /// refresh token of a new family of `owner`, with `scopes`.
    pub(crate) async fn grant(
        &self,
        owner: &str,
        scopes: B::Scopes,
    ) -> Result<Grant<B::Scopes>, Violation> {
        let now = self.now();
        let family = Family {
            id: FamilyId::random().answer("FamilyId::random")?,
            started_at: now,
        };
        let access = minted(TokenKind::Access, owner, scopes, now, Some(family))?;
        let refresh = minted(TokenKind::Refresh, owner, scopes, now, Some(family))?;
        self.backend()
            .insert(&[access.clone(), refresh.clone()])
            .await
            .answer(method::INSERT)?;
        Ok(Grant {
            family,
            owner: owner.to_owned(),
            access,
            refresh,
        })
    }

    /// A new personal access token of `owner` with `scopes`, stored
    /// through the backend alone.
    pub(crate) async fn personal(
        &self,
        owner: &str,
        scopes: B::Scopes,
    ) -> Result<TokenRecord<B::Scopes>, Violation> {
        let record = minted(TokenKind::PersonalAccess, owner, scopes, self.now(), None)?;
        self.backend()
            .insert(std::slice::from_ref(&record))
            .await
            .answer(method::INSERT)?;
        Ok(record)
    }
}

/// A grant the kit stored through the backend: its family and first pair.
#[derive(Debug, Clone)]
pub(crate) struct Grant<S> {
    pub(crate) family: Family,
    pub(crate) owner: String,
    pub(crate) access: TokenRecord<S>,
    pub(crate) refresh: TokenRecord<S>,
}

impl<S: Copy> Grant<S> {
    /// An exchange of the grant's refresh token at `at` for a new pair,
    /// keeping two access tokens and 16 spent refresh tokens (the
    /// manager's defaults).
    pub(crate) fn exchange(&self, at: SystemTime) -> Result<Exchange<S>, Violation> {
        let scopes = self.refresh.scopes;
        let pair = [
            minted(
                TokenKind::Access,
                &self.owner,
                scopes,
                at,
                Some(self.family),
            )?,
            minted(
                TokenKind::Refresh,
                &self.owner,
                scopes,
                at,
                Some(self.family),
            )?,
        ];
        Ok(Exchange::new(
            self.refresh.digest,
            self.family.id,
            at,
            pair,
            2,
            tower_token_auth::manager::DEFAULT_REUSE_WINDOW,
        ))
    }
}

/// A fresh record of `kind` for `owner`, created at `now`, valid for a day.
pub(crate) fn minted<S>(
    kind: TokenKind,
    owner: &str,
    scopes: S,
    now: SystemTime,
    family: Option<Family>,
) -> Result<TokenRecord<S>, Violation> {
    let id = TokenId::random().answer("TokenId::random")?;
    let secret = format!("kit_{}_{:016x}", kind.tag(), id.as_u64());
    let mut record = TokenRecord::new(
        id,
        TokenDigest::of(&secret),
        kind,
        scopes,
        now,
        now + Duration::from_secs(86_400),
    )
    .with_name("conformance kit")
    .with_owner(owner)
    .with_hint(&secret[..secret.len().min(10)]);
    record.family = family;
    Ok(record)
}
