//! The conformance kit (`tower-token-auth-conformance`) against this
//! crate's backends, through its public macro, as a third party runs it:
//! SQLite on a file (a pool of several connections, WAL), on
//! `sqlite::memory:` (one connection) and behind a `CachedStore`;
//! PostgreSQL plain, with a table prefix, and behind a cache whose
//! revocation listener runs.

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::path::PathBuf;
    use std::sync::Arc;

    use tower_token_auth::scope::PayRequestScopes;
    use tower_token_auth::store::CachedStore;
    use tower_token_auth::token::{ManualClock, TokenId};
    use tower_token_auth_sqlx::SqliteStore;

    /// A directory of its own, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let unique = TokenId::random().expect("randomness").as_u64();
            let dir = std::env::temp_dir().join(format!(
                "tower-token-auth-sqlx-kit-{}-{unique:016x}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A store on a new file in a directory of its own. The directory is
    /// removed when the test's runtime shuts down (it drops the task that
    /// holds it).
    async fn on_a_file() -> SqliteStore<PayRequestScopes> {
        let dir = TempDir::new();
        let url = format!("sqlite:{}", dir.0.join("tokens.db").display());
        let store = SqliteStore::connect(&url).await.expect("a new database");
        tokio::spawn(async move {
            let _dir = dir;
            std::future::pending::<()>().await
        });
        store
    }

    async fn file(_clock: Arc<ManualClock>) -> SqliteStore<PayRequestScopes> {
        on_a_file().await
    }

    async fn memory(_clock: Arc<ManualClock>) -> SqliteStore<PayRequestScopes> {
        SqliteStore::connect("sqlite::memory:")
            .await
            .expect("an in-memory database")
    }

    /// A cache judged by the kit's clock in front of a file.
    async fn cached(clock: Arc<ManualClock>) -> CachedStore<SqliteStore<PayRequestScopes>> {
        CachedStore::builder(on_a_file().await).clock(clock).build()
    }

    mod on_a_file {
        tower_token_auth_conformance::conformance_tests!(super::file);
    }

    mod in_memory {
        tower_token_auth_conformance::conformance_tests!(super::memory);
    }

    mod behind_the_cache {
        tower_token_auth_conformance::conformance_tests!(super::cached);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use tower_token_auth::scope::PayRequestScopes;
    use tower_token_auth::store::CachedStore;
    use tower_token_auth::token::ManualClock;
    use tower_token_auth_sqlx::PgStore;

    use crate::pg;

    /// A fresh database of its own, migrated. The database outlives the
    /// test; the cluster's watchdog removes it with the cluster.
    async fn fresh(prefix: Option<&str>) -> PgStore<PayRequestScopes> {
        let db = pg::database().await;
        let mut store = PgStore::new(db.pool().await);
        if let Some(prefix) = prefix {
            store = store.table_prefix(prefix).expect("a valid prefix");
        }
        store.migrate().await.expect("migrations apply");
        store
    }

    async fn plain(_clock: Arc<ManualClock>) -> PgStore<PayRequestScopes> {
        fresh(None).await
    }

    async fn prefixed(_clock: Arc<ManualClock>) -> PgStore<PayRequestScopes> {
        fresh(Some("kit_")).await
    }

    /// A cache judged by the kit's clock, evicted by the store's own
    /// `LISTEN/NOTIFY` listener as every instance's cache is.
    async fn cached(clock: Arc<ManualClock>) -> CachedStore<PgStore<PayRequestScopes>> {
        let store = fresh(None).await;
        let cache = CachedStore::builder(store.clone()).clock(clock).build();
        let mut listener = store.spawn_revocation_listener(cache.clone());
        listener.listening().await;
        // The listener runs for the rest of the test (its runtime's life).
        drop(listener);
        cache
    }

    mod plain {
        tower_token_auth_conformance::conformance_tests!(super::plain);
    }

    mod prefixed {
        tower_token_auth_conformance::conformance_tests!(super::prefixed);
    }

    mod cached {
        tower_token_auth_conformance::conformance_tests!(super::cached);
    }
}
