//! The kit runs with any scope set: here a service's own, on the memory
//! store and on the kit's test backend, and on the cache over the memory
//! store.

mod support;

use std::sync::Arc;

use tower_token_auth::bitflags::bitflags;
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::store::CachedStore;
use tower_token_auth::token::ManualClock;
use tower_token_auth::MemoryStore;

bitflags! {
    /// A shop's scopes: two plain ones and one that implies both.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct ShopScopes: u64 {
        /// `orders.read`.
        const ORDERS_READ = 1 << 0;
        /// `orders.write`.
        const ORDERS_WRITE = 1 << 1;
        /// `orders.admin`: read and write.
        const ORDERS_ADMIN = 1 << 2 | Self::ORDERS_READ.bits() | Self::ORDERS_WRITE.bits();
        /// `stock.read`, the default.
        const STOCK_READ = 1 << 3;
    }
}

impl ScopeSet for ShopScopes {
    const SCOPES: &'static [(&'static str, Self)] = &[
        ("orders.read", Self::ORDERS_READ),
        ("orders.write", Self::ORDERS_WRITE),
        ("orders.admin", Self::ORDERS_ADMIN),
        ("stock.read", Self::STOCK_READ),
    ];
    const DEFAULT: Self = Self::STOCK_READ;
}

bitflags! {
    /// The smallest set there is: one scope, which is the default.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct OneScope: u64 {
        /// `read`.
        const READ = 1 << 0;
    }
}

impl ScopeSet for OneScope {
    const SCOPES: &'static [(&'static str, Self)] = &[("read", Self::READ)];
    const DEFAULT: Self = Self::READ;
}

mod shop_on_memory {
    use super::*;

    async fn fresh_backend(_clock: Arc<ManualClock>) -> MemoryStore<ShopScopes> {
        MemoryStore::default()
    }

    tower_token_auth_conformance::conformance_tests!(fresh_backend);
}

mod shop_on_the_cache {
    use super::*;

    async fn fresh_backend(clock: Arc<ManualClock>) -> CachedStore<MemoryStore<ShopScopes>> {
        CachedStore::builder(MemoryStore::default())
            .clock(clock)
            .build()
    }

    tower_token_auth_conformance::conformance_tests!(fresh_backend);
}

mod shop_on_rows {
    use super::*;

    tower_token_auth_conformance::conformance_tests!(|_clock| async {
        support::RowStore::<ShopScopes>::correct()
    });
}

mod one_scope_on_memory {
    use super::*;

    tower_token_auth_conformance::conformance_tests!(|_clock| async {
        MemoryStore::<OneScope>::default()
    });
}
