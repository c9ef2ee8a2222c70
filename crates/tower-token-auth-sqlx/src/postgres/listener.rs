//! Revocations and other changes from every instance, into this instance's
//! cache.

use std::fmt;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::Executor as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use tower_token_auth::store::{CachedStore, TokenStore};
use tower_token_auth::token::TokenDigest;

/// The first wait before reconnecting.
const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two reconnection attempts.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long the listener stays silent before it checks its connection.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Listens for the changes every [`PgStore`](super::PgStore) publishes
/// (revocations, scope changes, refresh-token spending; see
/// [Changes across instances](super#changes-across-instances)) and evicts
/// the tokens they name from a [`CachedStore`].
///
/// Built by [`PgStore::revocation_listener`](super::PgStore::revocation_listener);
/// [`spawn`](Self::spawn) starts it on the current tokio runtime. It holds
/// one connection of the pool for as long as it runs (size the pool for
/// it).
///
/// While the listener is not listening, the cache is emptied and bypassed,
/// so every lookup asks the database: before its first connection, from the
/// moment it knows its connection is lost until it is listening again, and
/// for good once it stops, whatever stops it ([`ListenerHandle::abort`],
/// the pool closing, a panic, or its runtime shutting down). Once it listens
/// again, the cache is emptied once more and caching resumes. It reconnects
/// by itself, waiting a little longer after each failed attempt (100 ms,
/// doubling, at most 5 s by default).
///
/// A connection can also die silently (a firewall or NAT forgetting an idle
/// connection, a host that vanished). Until the listener notices, a
/// revocation on another instance is missed, and this instance accepts the
/// revoked token from its cache. After one [`heartbeat`](Self::heartbeat)
/// (15 s by default) without a notification it sends a query on its
/// connection, and one that gets no answer within another heartbeat counts
/// as lost: a silent connection is noticed within two heartbeats (30 s by
/// default), and a revoked token stays usable on this instance for at most
/// that long, or the cache's TTL if that is shorter. The listener also asks
/// the server for TCP keepalive on its connection (probes after one
/// heartbeat of silence, every third of one, three of them), which keeps
/// idle-connection timeouts of NATs and firewalls from firing and lets the
/// server drop a connection whose client is gone.
///
/// ```no_run
/// use tower_token_auth::manager::TokenManager;
/// use tower_token_auth::store::CachedStore;
/// use tower_token_auth::TokenAuthLayer;
/// use tower_token_auth_sqlx::PgStore;
///
/// # async fn run(pool: tower_token_auth_sqlx::sqlx::PgPool) {
/// let store = PgStore::new(pool);
/// let cache = CachedStore::new(store.clone());
/// let mut listener = store.revocation_listener().spawn(cache.clone());
/// listener.listening().await; // optional: wait for the first connection
/// // The manager writes through the cache (evicting what it changes here);
/// // the listener evicts what other instances change.
/// let tokens = TokenManager::new(cache);
/// let layer = TokenAuthLayer::new(tokens);
/// # drop(layer);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RevocationListener {
    pool: PgPool,
    channel: String,
    min_backoff: Duration,
    max_backoff: Duration,
    heartbeat: Duration,
}

impl RevocationListener {
    pub(super) fn new(pool: PgPool, channel: String) -> Self {
        Self {
            pool,
            channel,
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }

    /// Sets how long the listener waits without a notification before it
    /// checks its connection, and how long it waits for the answer.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Sets the first and the longest wait between reconnection attempts.
    #[must_use]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Starts listening in a task on the current tokio runtime and evicts
    /// every token announced on the channel from `cache`. The cache is
    /// bypassed until the listener is listening, and again for good once
    /// the task ends.
    ///
    /// The task runs until the pool is closed or the handle is
    /// [aborted](ListenerHandle::abort); dropping the handle leaves it
    /// running.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn<St: TokenStore>(self, cache: CachedStore<St>) -> ListenerHandle {
        cache.suspend();
        let (state, listening) = watch::channel(false);
        let task = tokio::spawn(self.run(cache, state));
        ListenerHandle { task, listening }
    }

    async fn run<St: TokenStore>(self, cache: CachedStore<St>, state: watch::Sender<bool>) {
        // However the task ends (the pool closed, aborted, a panic, its
        // runtime dropped), nothing evicts the cache any more.
        let stopped = SuspendOnDrop {
            cache: cache.clone(),
            state,
        };
        let state = &stopped.state;
        let mut backoff = self.min_backoff;
        while !self.pool.is_closed() {
            let mut listener = match self.connect().await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(
                        target: "tower_token_auth_sqlx::postgres",
                        %error,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                        "revocation listener cannot connect; token cache bypassed"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                    continue;
                }
            };
            // Revocations made before the LISTEN took effect were missed:
            // start again from an empty cache.
            cache.resume();
            state.send_replace(true);
            backoff = self.min_backoff;
            tracing::debug!(
                target: "tower_token_auth_sqlx::postgres",
                channel = %self.channel,
                "revocation listener listening"
            );
            let lost = loop {
                // Waiting for a message can be cancelled without losing one.
                match tokio::time::timeout(self.heartbeat, listener.try_recv()).await {
                    Ok(Ok(Some(notification))) => evict(&cache, notification.payload()).await,
                    Ok(Ok(None)) => break "connection closed".to_owned(),
                    Ok(Err(error)) => break error.to_string(),
                    Err(_silence) => {
                        let ping = listener.execute("SELECT 1");
                        match tokio::time::timeout(self.heartbeat, ping).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(error)) => break error.to_string(),
                            Err(_) => break "no answer to a heartbeat".to_owned(),
                        }
                    }
                }
            };
            cache.suspend();
            state.send_replace(false);
            drop(listener);
            tracing::warn!(
                target: "tower_token_auth_sqlx::postgres",
                error = %lost,
                "revocation listener lost its connection; token cache bypassed until it reconnects"
            );
            tokio::time::sleep(backoff).await;
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        // A lost connection must surface as `Ok(None)` at once, so the cache
        // is bypassed before anything else happens.
        listener.eager_reconnect(false);
        // sqlx sets no socket options, so ask the server for keepalive: its
        // probes keep a NAT or firewall from forgetting the idle connection,
        // and a dead client's connection is closed. Not fatal: over a Unix
        // socket the settings do nothing, and a pooler may refuse them.
        if let Err(error) = listener.execute(&*keepalive_settings(self.heartbeat)).await {
            tracing::warn!(
                target: "tower_token_auth_sqlx::postgres",
                %error,
                "revocation listener cannot set TCP keepalive on its connection"
            );
        }
        listener.listen(&self.channel).await?;
        Ok(listener)
    }
}

/// The session settings that turn on the server's TCP keepalive: the first
/// probe after one heartbeat of silence, then one every third of a
/// heartbeat, three of them (whole seconds, at least one).
fn keepalive_settings(heartbeat: Duration) -> String {
    let idle = heartbeat.as_secs().max(1);
    let interval = (idle / 3).max(1);
    format!(
        "SET tcp_keepalives_idle = {idle}; \
         SET tcp_keepalives_interval = {interval}; \
         SET tcp_keepalives_count = 3"
    )
}

/// Suspends the cache and reports "not listening" when dropped: the
/// listener's task holds it, so this happens however the task ends.
struct SuspendOnDrop<St: TokenStore> {
    cache: CachedStore<St>,
    state: watch::Sender<bool>,
}

impl<St: TokenStore> Drop for SuspendOnDrop<St> {
    fn drop(&mut self) {
        self.cache.suspend();
        self.state.send_replace(false);
    }
}

/// Evicts the token a notification names; anything but a digest empties the
/// whole cache.
async fn evict<St: TokenStore>(cache: &CachedStore<St>, payload: &str) {
    match parse_digest(payload) {
        Some(digest) => cache.invalidate(&digest).await,
        None => cache.invalidate_all(),
    }
}

/// A digest from its 64 hex digits.
fn parse_digest(hex: &str) -> Option<TokenDigest> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(TokenDigest::from_bytes(bytes))
}

/// A running [`RevocationListener`].
pub struct ListenerHandle {
    task: JoinHandle<()>,
    listening: watch::Receiver<bool>,
}

impl fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerHandle")
            .field("listening", &self.is_listening())
            .field("finished", &self.task.is_finished())
            .finish()
    }
}

impl ListenerHandle {
    /// Whether the listener is connected and listening now.
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// Waits until the listener is listening (returns at once if it is).
    /// Returns early if the listener has stopped.
    pub async fn listening(&mut self) {
        let _ = self.listening.wait_for(|listening| *listening).await;
    }

    /// Waits until the listener is not listening (returns at once if it
    /// is not).
    pub async fn disconnected(&mut self) {
        let _ = self.listening.wait_for(|listening| !*listening).await;
    }

    /// Stops the listener. The cache is bypassed from then on (as soon as
    /// the task is dropped, which follows at once unless it is running on
    /// another thread at that moment).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// The task, to await or abort.
    pub fn into_join_handle(self) -> JoinHandle<()> {
        self.task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_lower_case_hex_digests() {
        let digest = TokenDigest::of("pr_pat_x");
        let hex: String = digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(parse_digest(&hex), Some(digest));
        assert_eq!(parse_digest(&hex.to_uppercase()), Some(digest));
        assert_eq!(parse_digest("all"), None);
        assert_eq!(parse_digest(&hex[..62]), None);
        assert_eq!(parse_digest(&format!("{}zz", &hex[..62])), None);
    }

    #[test]
    fn keepalive_follows_the_heartbeat_in_whole_seconds() {
        assert_eq!(
            keepalive_settings(DEFAULT_HEARTBEAT),
            "SET tcp_keepalives_idle = 15; SET tcp_keepalives_interval = 5; \
             SET tcp_keepalives_count = 3"
        );
        assert!(keepalive_settings(Duration::from_millis(200))
            .starts_with("SET tcp_keepalives_idle = 1; SET tcp_keepalives_interval = 1;"));
    }
}
