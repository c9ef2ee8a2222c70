//! The conformance kit (`tower-token-auth-conformance`) on the memory
//! store and on the cache over it, through the kit's public macro, as a
//! third party runs it on its own backend. The SQL backends run it in
//! `tower-token-auth-sqlx`.

mod memory {
    use std::sync::Arc;

    use tower_token_auth::token::ManualClock;
    use tower_token_auth::{MemoryStore, PayRequestScopes};

    async fn fresh_backend(_clock: Arc<ManualClock>) -> MemoryStore<PayRequestScopes> {
        MemoryStore::new()
    }

    tower_token_auth_conformance::conformance_tests!(fresh_backend);
}

#[cfg(feature = "cache")]
mod cached {
    use std::sync::Arc;

    use tower_token_auth::store::CachedStore;
    use tower_token_auth::token::ManualClock;
    use tower_token_auth::{MemoryStore, PayRequestScopes};

    /// A cache judged by the kit's clock, in front of a fresh memory store.
    async fn fresh_backend(clock: Arc<ManualClock>) -> CachedStore<MemoryStore<PayRequestScopes>> {
        CachedStore::builder(MemoryStore::new())
            .clock(clock)
            .build()
    }

    tower_token_auth_conformance::conformance_tests!(fresh_backend);
}
