use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use futures_channel::mpsc;
use futures_util::StreamExt;

use crate::manager::TokenManager;
use crate::store::TokenBackend;
use crate::token::TokenId;

/// The default interval between two recorded uses of one token.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// The most uses written in one [`TokenManager::record_use`] call.
const MAX_BATCH: usize = 1024;

/// Last-used tracking without a store write per request.
///
/// The middleware [touches](UsageTracker) a token each time it authenticates
/// a request. The tracker lets at most one touch per token per interval
/// through (default one minute), and a [`UsageWorker`], spawned by the
/// service, writes those in batches with
/// [`TokenManager::record_use`]. The request never waits for the store.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::{MemoryStore, TokenAuthLayer};
/// use tower_token_auth::manager::TokenManager;
/// use tower_token_auth::manager::UsageTracker;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let tokens = TokenManager::new(MemoryStore::new());
/// let (tracker, worker) = UsageTracker::new(tokens.clone(), Duration::from_secs(60));
/// tokio::spawn(worker.run());
/// let layer = TokenAuthLayer::new(tokens).track_usage(tracker);
/// # drop(layer);
/// # }
/// ```
///
/// Cheap to clone.
#[derive(Clone)]
pub struct UsageTracker {
    inner: Arc<Tracker>,
}

struct Tracker {
    /// Per token: when its last use was let through (ms since the epoch).
    last: DashMap<TokenId, AtomicU64>,
    interval_ms: u64,
    tx: mpsc::UnboundedSender<(TokenId, SystemTime)>,
}

impl fmt::Debug for UsageTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageTracker")
            .field("interval_ms", &self.inner.interval_ms)
            .field("tracked_tokens", &self.inner.last.len())
            .finish()
    }
}

impl UsageTracker {
    /// A tracker that lets one use per token per `interval` through, and the
    /// worker that writes them through `tokens`. Spawn the worker on your runtime;
    /// it ends when every clone of the tracker is dropped.
    pub fn new<B: TokenBackend>(
        tokens: TokenManager<B>,
        interval: Duration,
    ) -> (Self, UsageWorker<B>) {
        let (tx, rx) = mpsc::unbounded();
        let inner = Arc::new(Tracker {
            last: DashMap::new(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            tx,
        });
        let worker = UsageWorker {
            rx,
            tokens,
            tracker: Arc::clone(&inner),
        };
        (Self { inner }, worker)
    }

    /// Notes that `id` authenticated a request at `now`. Allocates and sends
    /// only for the first use of a token in an interval.
    pub fn touch(&self, id: TokenId, now: SystemTime) {
        let now_ms = millis(now);
        let due = match self.inner.last.get(&id) {
            Some(last) => {
                let previous = last.load(Ordering::Relaxed);
                now_ms.saturating_sub(previous) >= self.inner.interval_ms
                    && last
                        .compare_exchange(previous, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
            }
            None => match self.inner.last.entry(id) {
                Entry::Occupied(_) => false,
                Entry::Vacant(slot) => {
                    slot.insert(AtomicU64::new(now_ms));
                    true
                }
            },
        };
        if due {
            // Only fails when the worker is gone; usage is best effort.
            let _ = self.inner.tx.unbounded_send((id, now));
        }
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Writes coalesced uses to the store. Run it with [`run`](Self::run).
pub struct UsageWorker<B> {
    rx: mpsc::UnboundedReceiver<(TokenId, SystemTime)>,
    tokens: TokenManager<B>,
    tracker: Arc<Tracker>,
}

impl<B> fmt::Debug for UsageWorker<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageWorker").finish_non_exhaustive()
    }
}

impl<B: TokenBackend> UsageWorker<B> {
    /// Writes uses as they come, in batches of whatever has queued up, until
    /// every tracker is dropped. A failed write is logged and dropped: the
    /// next use after the interval is written again.
    pub async fn run(mut self) {
        let mut batch = Vec::new();
        let mut last_prune = 0;
        while let Some(first) = self.rx.next().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if let Err(error) = self.tokens.record_use(&batch).await {
                tracing::warn!(
                    target: "tower_token_auth::usage",
                    %error,
                    uses = batch.len(),
                    "could not record token use"
                );
            }
            let newest = batch.iter().map(|(_, t)| millis(*t)).max().unwrap_or(0);
            batch.clear();
            // Forget tokens not seen for an interval, at most once an
            // interval, so the map stays as small as the active set.
            if newest.saturating_sub(last_prune) >= self.tracker.interval_ms {
                let horizon = newest.saturating_sub(self.tracker.interval_ms);
                self.tracker
                    .last
                    .retain(|_, seen| seen.load(Ordering::Relaxed) >= horizon);
                last_prune = newest;
            }
        }
    }
}
