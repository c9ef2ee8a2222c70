//! A backend for the kit's own tests: the mutex-guarded rows of the
//! `VecStore` in the docs of `tower_token_auth::store`, with an `.await`
//! in the middle of every method, and faults to switch on.
//!
//! Correct, it holds its async lock across that `.await`: the other call
//! of a race waits for it, which the kit must allow for (no deadlock).
//! With a fault, the method checks, lets go of the lock, yields, locks
//! again and acts on what it checked before: the check-then-act bug the
//! kit must catch.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};
use tower_token_auth::error::StoreError;
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::store::{
    Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
};
use tower_token_auth::token::{FamilyId, Lookup, TokenDigest, TokenId, TokenRecord};

/// Which methods check, release the lock, and act on the stale check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub exchange: bool,
    pub revoke_family: bool,
    pub update_scopes: bool,
    pub revoke: bool,
}

type Rows<S> = Vec<SharedRecord<S>>;

pub struct RowStore<S> {
    rows: Mutex<Rows<S>>,
    faults: Faults,
}

impl<S: ScopeSet> RowStore<S> {
    pub fn correct() -> Self {
        Self::with(Faults::default())
    }

    pub fn with(faults: Faults) -> Self {
        Self {
            rows: Mutex::new(Vec::new()),
            faults,
        }
    }

    /// The suspension point in the middle of a method: holding the lock
    /// (correct), or releasing it and locking again (`release`).
    async fn suspend<'a>(
        &'a self,
        rows: MutexGuard<'a, Rows<S>>,
        release: bool,
    ) -> MutexGuard<'a, Rows<S>> {
        if release {
            drop(rows);
            tokio::task::yield_now().await;
            self.rows.lock().await
        } else {
            tokio::task::yield_now().await;
            rows
        }
    }
}

/// Replaces the record of `id` with `change` applied to a copy of it.
fn change<S: Clone>(
    rows: &mut Rows<S>,
    id: TokenId,
    change: impl FnOnce(&mut TokenRecord<S>),
) -> Option<SharedRecord<S>> {
    let i = rows.iter().position(|r| r.id == id)?;
    let mut record = (*rows[i]).clone();
    change(&mut record);
    rows[i] = Arc::new(record);
    Some(Arc::clone(&rows[i]))
}

/// Writes `record` over the stored one of its id (the whole record).
fn overwrite<S>(rows: &mut Rows<S>, record: TokenRecord<S>) -> Option<SharedRecord<S>> {
    let i = rows.iter().position(|r| r.id == record.id)?;
    rows[i] = Arc::new(record);
    Some(Arc::clone(&rows[i]))
}

#[async_trait]
impl<S: ScopeSet> TokenStore for RowStore<S> {
    type Scopes = S;

    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        let digest = key.digest();
        let rows = self.rows.lock().await;
        Ok(rows.iter().find(|r| r.digest == digest).cloned())
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<S>> {
        let rows = self.rows.try_lock().ok()?;
        Some(Ok(rows.iter().find(|r| r.digest == *digest).cloned()))
    }
}

#[async_trait]
impl<S: ScopeSet> TokenBackend for RowStore<S> {
    async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().await;
        if records
            .iter()
            .any(|n| rows.iter().any(|r| r.id == n.id || r.digest == n.digest))
        {
            return Err(StoreError::Backend("duplicate token".into()));
        }
        rows = self.suspend(rows, false).await;
        rows.extend(records.iter().cloned().map(Arc::new));
        Ok(())
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
        Ok(self.rows.lock().await.iter().find(|r| r.id == id).cloned())
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let rows = self.rows.lock().await;
        Ok(rows
            .iter()
            .filter(|r| r.owner() == owner)
            .cloned()
            .collect())
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: S,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let mut rows = self.rows.lock().await;
        let live = rows
            .iter()
            .find(|r| r.id == id && !r.is_revoked() && !r.is_spent() && !r.is_expired_at(now))
            .cloned();
        let Some(live) = live else {
            return Ok(None);
        };
        rows = self.suspend(rows, self.faults.update_scopes).await;
        if self.faults.update_scopes {
            // Writes back the whole record it read before the yield.
            let mut record = (*live).clone();
            record.scopes = scopes;
            return Ok(overwrite(&mut rows, record));
        }
        Ok(change(&mut rows, id, |r| r.scopes = scopes))
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let mut rows = self.rows.lock().await;
        if !rows.iter().any(|r| r.id == id && !r.is_revoked()) {
            return Ok(None);
        }
        rows = self.suspend(rows, self.faults.revoke).await;
        if !self.faults.revoke && rows.iter().any(|r| r.id == id && r.is_revoked()) {
            return Ok(None);
        }
        Ok(change(&mut rows, id, |r| r.revoked_at = Some(at)))
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let mut rows = self.rows.lock().await;
        let members: Vec<TokenId> = rows
            .iter()
            .filter(|r| r.family.is_some_and(|f| f.id == family) && !r.is_revoked())
            .map(|r| r.id)
            .collect();
        rows = self.suspend(rows, self.faults.revoke_family).await;
        let members = if self.faults.revoke_family {
            // Revokes the members it read before the yield, and no others.
            members
        } else {
            rows.iter()
                .filter(|r| r.family.is_some_and(|f| f.id == family) && !r.is_revoked())
                .map(|r| r.id)
                .collect()
        };
        Ok(members
            .into_iter()
            .filter_map(|id| change(&mut rows, id, |r| r.revoked_at = Some(at)))
            .collect())
    }

    async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
        let mut rows = self.rows.lock().await;
        let check = |rows: &Rows<S>| {
            let Some(r) = rows.iter().find(|r| r.digest == x.presented) else {
                return Err(ExchangeOutcome::NotLive);
            };
            if r.family.map(|f| f.id) != Some(x.family) || r.is_revoked() {
                return Err(ExchangeOutcome::NotLive);
            }
            if r.is_spent() {
                return Err(ExchangeOutcome::AlreadySpent);
            }
            Ok(r.id)
        };
        let id = match check(&rows) {
            Ok(id) => id,
            Err(outcome) => return Ok(outcome),
        };
        rows = self.suspend(rows, self.faults.exchange).await;
        if !self.faults.exchange {
            if let Err(outcome) = check(&rows) {
                return Ok(outcome);
            }
        }
        change(&mut rows, id, |r| r.spent_at = Some(x.at));
        rows.push(Arc::new(x.access.clone()));
        rows.push(Arc::new(x.refresh.clone()));
        let gone = x.superseded(
            rows.iter()
                .filter(|r| r.family.is_some_and(|f| f.id == x.family))
                .map(|r| &**r),
        );
        rows.retain(|r| !gone.contains(&r.id));
        Ok(ExchangeOutcome::Exchanged)
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().await;
        rows = self.suspend(rows, false).await;
        for (id, at) in uses {
            if rows
                .iter()
                .any(|r| r.id == *id && r.last_used_at < Some(*at))
            {
                change(&mut rows, *id, |r| r.last_used_at = Some(*at));
            }
        }
        Ok(())
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let mut rows = self.rows.lock().await;
        let before = rows.len();
        rows.retain(|r| !(r.revoked_at.is_some_and(|t| t < cutoff) || r.expires_at < cutoff));
        Ok((before - rows.len()) as u64)
    }
}
