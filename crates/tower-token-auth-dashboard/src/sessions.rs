//! The dashboard's session store: records in memory, and expired ones
//! deleted, not only ignored (tower-sessions' `MemoryStore` keeps them
//! forever, so every abandoned session would stay in memory).
//!
//! A record past its expiry is never loaded, and is deleted when a load
//! finds it; the rest are deleted by [`ExpiredDeletion::delete_expired`],
//! which a task runs every [`SWEEP_PERIOD`] once the router has served its
//! first request, for as long as the store is in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// How often expired sessions are deleted.
pub(crate) const SWEEP_PERIOD: Duration = Duration::from_secs(60);

type Records = Mutex<HashMap<Id, Record>>;

/// The session records, shared by every clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sessions {
    records: Arc<Records>,
}

impl Sessions {
    fn records(&self) -> MutexGuard<'_, HashMap<Id, Record>> {
        // A panic while the lock was held cannot leave a map half-changed
        // (each change is one insert or remove): go on with it.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spawns the task that deletes expired sessions every `period` on the
    /// current tokio runtime (none: nothing is spawned, and expired records
    /// are still deleted as loads find them). It ends when the store is
    /// dropped.
    pub(crate) fn spawn_sweeper(&self, period: Duration) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let first = tokio::time::Instant::now() + period;
            runtime.spawn(sweep(Arc::downgrade(&self.records), first, period));
        }
    }

    /// How many records the store holds, expired ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records().len()
    }
}

/// Deletes the expired records of `records` at `first` and then every
/// `period`, until the store is gone.
async fn sweep(records: Weak<Records>, first: tokio::time::Instant, period: Duration) {
    let mut every = tokio::time::interval_at(first, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(records) = records.upgrade() else {
            return;
        };
        let sessions = Sessions { records };
        // Never fails: the store is a map.
        let _ = sessions.delete_expired().await;
    }
}

fn is_active(record: &Record) -> bool {
    record.expiry_date > OffsetDateTime::now_utc()
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut records = self.records();
        while records.contains_key(&record.id) {
            // A collision of 128-bit random ids: draw another.
            record.id = Id::default();
        }
        records.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.records().insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut records = self.records();
        match records.get(id) {
            Some(record) if is_active(record) => Ok(Some(record.clone())),
            Some(_) => {
                records.remove(id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.records().remove(id);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for Sessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.records().retain(|_, record| is_active(record));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::cookie::time::Duration as TimeDuration;

    fn record(expires_in: TimeDuration) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::default(),
            expiry_date: OffsetDateTime::now_utc() + expires_in,
        }
    }

    /// Lets the spawned sweeper run what it can.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Issue 23, row 4: a session past its expiry is gone from the store
    /// after the deletion task runs, not only ignored when loaded; a live
    /// one stays. The task ends with the store.
    #[tokio::test(start_paused = true)]
    async fn expired_sessions_are_deleted_by_the_sweeper() {
        let sessions = Sessions::default();
        let mut expired = record(TimeDuration::seconds(-1));
        let mut live = record(TimeDuration::hours(1));
        sessions.create(&mut expired).await.unwrap();
        sessions.create(&mut live).await.unwrap();
        sessions.spawn_sweeper(SWEEP_PERIOD);
        settle().await;
        assert_eq!(sessions.len(), 2, "not deleted before the first sweep");
        assert_eq!(sessions.load(&live.id).await.unwrap(), Some(live.clone()));

        tokio::time::advance(SWEEP_PERIOD).await;
        settle().await;
        assert_eq!(sessions.len(), 1, "the expired session is deleted");
        assert!(sessions.records().contains_key(&live.id));

        let weak = Arc::downgrade(&sessions.records);
        drop(sessions);
        tokio::time::advance(SWEEP_PERIOD).await;
        settle().await;
        assert!(weak.upgrade().is_none(), "the sweeper holds no store");
    }

    #[tokio::test]
    async fn an_expired_session_is_never_loaded_and_deleted_when_found() {
        let sessions = Sessions::default();
        let mut expired = record(TimeDuration::seconds(-1));
        sessions.create(&mut expired).await.unwrap();
        assert_eq!(sessions.load(&expired.id).await.unwrap(), None);
        assert_eq!(sessions.len(), 0);
        let mut live = record(TimeDuration::hours(1));
        sessions.create(&mut live).await.unwrap();
        sessions.delete(&live.id).await.unwrap();
        assert_eq!(sessions.len(), 0);
    }
}
