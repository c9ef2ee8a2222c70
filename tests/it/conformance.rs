//! The conformance kit (`tower_token_auth::conformance`) against
//! PostgreSQL: plain, with a table prefix, and behind a cache whose
//! revocation listener runs. The in-memory store (plain and cached) and
//! SQLite (on a file, in memory, cached) run it as unit tests of the
//! library.

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use tower_token_auth::store::PgStore;
    use tower_token_auth::token::ManualClock;

    use crate::support::pg;

    /// A fresh database of its own, migrated. The database outlives the
    /// test; the cluster's watchdog removes it with the cluster.
    async fn fresh(prefix: Option<&str>) -> PgStore<tower_token_auth::PayRequestScopes> {
        let db = pg::database().await;
        let mut store = PgStore::new(db.pool().await);
        if let Some(prefix) = prefix {
            store = store.table_prefix(prefix).expect("a valid prefix");
        }
        store.migrate().await.expect("migrations apply");
        store
    }

    async fn plain(_clock: Arc<ManualClock>) -> PgStore<tower_token_auth::PayRequestScopes> {
        fresh(None).await
    }

    async fn prefixed(_clock: Arc<ManualClock>) -> PgStore<tower_token_auth::PayRequestScopes> {
        fresh(Some("kit_")).await
    }

    mod plain {
        tower_token_auth::conformance_tests!(super::plain);
    }

    mod prefixed {
        tower_token_auth::conformance_tests!(super::prefixed);
    }

    #[cfg(feature = "cache")]
    mod cached {
        use std::sync::Arc;

        use tower_token_auth::store::{CachedStore, PgStore};
        use tower_token_auth::token::ManualClock;

        /// A cache judged by the kit's clock, evicted by the store's own
        /// `LISTEN/NOTIFY` listener as every instance's cache is.
        async fn cached(
            clock: Arc<ManualClock>,
        ) -> CachedStore<PgStore<tower_token_auth::PayRequestScopes>> {
            let store = super::fresh(None).await;
            let cache = CachedStore::builder(store.clone()).clock(clock).build();
            let mut listener = store.spawn_revocation_listener(cache.clone());
            listener.listening().await;
            // The listener runs for the rest of the test.
            std::mem::forget(listener);
            cache
        }

        tower_token_auth::conformance_tests!(cached);
    }
}
