//! Which cache crate `CachedStore` sits on, by measurement: the cost of a
//! hit (the request path of a cached store) with one reader thread and with
//! two at once, for moka's future cache (read as the store reads it, with
//! `now_or_never`), moka's sync cache and quick_cache's sync cache.
//!
//! `cargo bench --features cache --bench cache_crates`. The two-thread
//! figure is the wall time of one hit on each of two threads at once: equal
//! to the one-thread figure when readers do not disturb each other.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures_util::FutureExt as _;

/// Entries in the cache, all hit.
const ENTRIES: u64 = 10_000;

/// What `CachedStore` keeps per digest: a shared record and a deadline.
type Value = (Option<Arc<[u8; 256]>>, u64);

trait Hit: Send + Sync + 'static {
    fn hit(&self, key: &[u8; 32]) -> bool;
}

struct MokaFuture(moka::future::Cache<[u8; 32], Value>);
struct MokaSync(moka::sync::Cache<[u8; 32], Value>);
struct Quick(quick_cache::sync::Cache<[u8; 32], Value>);

impl Hit for MokaFuture {
    fn hit(&self, key: &[u8; 32]) -> bool {
        matches!(self.0.get(key).now_or_never(), Some(Some(_)))
    }
}
impl Hit for MokaSync {
    fn hit(&self, key: &[u8; 32]) -> bool {
        self.0.get(key).is_some()
    }
}
impl Hit for Quick {
    fn hit(&self, key: &[u8; 32]) -> bool {
        self.0.get(key).is_some()
    }
}

fn key(i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    // Spread like a SHA-256 digest: a multiplicative hash of i.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    k[..8].copy_from_slice(&h.to_le_bytes());
    k[8..16].copy_from_slice(&i.to_le_bytes());
    k
}

fn value() -> Value {
    (Some(Arc::new([7u8; 256])), u64::MAX)
}

fn caches() -> Vec<(&'static str, Arc<dyn Hit>)> {
    let moka_future = moka::future::Cache::builder()
        .max_capacity(ENTRIES * 2)
        .time_to_live(Duration::from_secs(600))
        .support_invalidation_closures()
        .build();
    let moka_sync = moka::sync::Cache::builder()
        .max_capacity(ENTRIES * 2)
        .time_to_live(Duration::from_secs(600))
        .support_invalidation_closures()
        .build();
    let quick = quick_cache::sync::Cache::new((ENTRIES * 2) as usize);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    for i in 0..ENTRIES {
        runtime.block_on(moka_future.insert(key(i), value()));
        moka_sync.insert(key(i), value());
        quick.insert(key(i), value());
    }
    runtime.block_on(moka_future.run_pending_tasks());
    moka_sync.run_pending_tasks();
    vec![
        (
            "moka_future",
            Arc::new(MokaFuture(moka_future)) as Arc<dyn Hit>,
        ),
        ("moka_sync", Arc::new(MokaSync(moka_sync))),
        ("quick_cache", Arc::new(Quick(quick))),
    ]
}

fn hits(c: &mut Criterion) {
    let keys: Arc<Vec<[u8; 32]>> = Arc::new((0..ENTRIES).map(key).collect());
    let mut group = c.benchmark_group("cache_hit");
    for (name, cache) in caches() {
        let (k, cc) = (Arc::clone(&keys), Arc::clone(&cache));
        group.bench_function(format!("{name}/1_thread"), move |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % k.len();
                black_box(cc.hit(&k[i]))
            })
        });
        let (k, cc) = (Arc::clone(&keys), Arc::clone(&cache));
        group.bench_function(format!("{name}/2_threads"), move |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..2usize {
                        let (k, cc) = (&k, &cc);
                        s.spawn(move || {
                            let mut i = t * 4_999;
                            for _ in 0..iters {
                                i = (i + 1) % k.len();
                                black_box(cc.hit(&k[i]));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    hits(&mut criterion);
    criterion.final_summary();
}
