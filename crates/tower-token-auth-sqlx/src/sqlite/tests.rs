//! Every primitive against a real database file, the races with real
//! concurrency (several tasks, several pools on one file), and the failures
//! that must read as "unavailable".

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokio::sync::Barrier;

use super::*;
use tower_token_auth::manager::{GrantError, InvalidGrantReason, IssueRequest, TokenManager};
use tower_token_auth::scope::PayRequestScopes as S;
use tower_token_auth::store::MemoryStore;
use tower_token_auth::token::{Lifetimes, TokenFormat};

/// A directory of its own, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let unique = TokenId::random().unwrap().as_u64();
        let dir = std::env::temp_dir().join(format!(
            "tower-token-auth-sqlite-{}-{unique:016x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn url(&self) -> String {
        format!("sqlite:{}", self.0.join("tokens.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open(dir: &TempDir) -> SqliteStore<S> {
    SqliteStore::connect(&dir.url()).await.unwrap()
}

/// A new record of `kind` as the manager mints one with its default
/// policy: `billing.read`, owned by `user-1`, created now, the kind's
/// lifetime; a refresh token starts a family of its own.
fn mint(kind: TokenKind) -> TokenRecord<S> {
    let secret = TokenFormat::default().generate(kind).unwrap();
    let created = now();
    let mut record = TokenRecord::new(
        TokenId::random().unwrap(),
        secret.digest(),
        kind,
        S::BILLING_READ,
        created,
        to_micros(created + Lifetimes::default().of(kind)),
    )
    .with_name("MCP Billing Agent")
    .with_owner("user-1")
    .with_hint(&secret.hint());
    if kind == TokenKind::Refresh {
        record.family = Some(Family {
            id: FamilyId::random().unwrap(),
            started_at: created,
        });
    }
    record
}

/// `record` with `change` applied.
fn with(mut record: TokenRecord<S>, change: impl FnOnce(&mut TokenRecord<S>)) -> TokenRecord<S> {
    change(&mut record);
    record
}

/// A new access and refresh token of `family`.
fn pair_in(family: Family) -> [TokenRecord<S>; 2] {
    [TokenKind::Access, TokenKind::Refresh]
        .map(|kind| with(mint(kind), |r| r.family = Some(family)))
}

/// A refresh token starting a grant of its own, stored.
async fn grant(store: &SqliteStore<S>) -> TokenRecord<S> {
    let refresh = mint(TokenKind::Refresh);
    store.insert(std::slice::from_ref(&refresh)).await.unwrap();
    refresh
}

fn exchange_of(presented: &TokenRecord<S>, at: SystemTime) -> Exchange<S> {
    let family = presented.family.unwrap();
    Exchange::new(presented.digest, family.id, at, pair_in(family), 2, 3)
}

/// `t` rounded down to a whole microsecond, as the manager rounds every
/// time it hands a backend.
fn to_micros(t: SystemTime) -> SystemTime {
    from_micros(micros(t).unwrap())
}

fn now() -> SystemTime {
    to_micros(SystemTime::now())
}

async fn count(store: &SqliteStore<S>, condition: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM tower_token_auth_tokens WHERE {condition}");
    sqlx::query_scalar(&sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn ids(records: &[SharedRecord<S>]) -> BTreeSet<TokenId> {
    records.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn records_read_back_as_inserted_and_survive_a_reopen() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let pat = mint(TokenKind::PersonalAccess);
    let refresh = mint(TokenKind::Refresh);
    let [access, _] = pair_in(refresh.family.unwrap());
    // The edges: the top id bit, times before the epoch, every option set.
    let edge = with(
        mint(TokenKind::Refresh).with_client_id(Some("client \"é\"")),
        |r| {
            r.id = TokenId::from_u64(u64::MAX);
            r.scopes = S::all();
            r.created_at = UNIX_EPOCH - Duration::from_micros(1_500_001);
            r.revoked_at = Some(UNIX_EPOCH + Duration::from_micros(1));
            r.spent_at = Some(UNIX_EPOCH);
            r.last_used_at = Some(now());
            r.family = Some(Family {
                id: FamilyId::from_u64(1 << 63),
                started_at: UNIX_EPOCH - Duration::from_secs(1),
            });
            r.audience = vec![
                "https://api.example/v1".into(),
                "a \"quoted\", spaced one".into(),
            ];
        },
    );
    let all = [pat, refresh, access, edge];
    store.insert(&all).await.unwrap();

    let mut store = store;
    for reopen in [false, true] {
        if reopen {
            store.pool().close().await;
            store = open(&dir).await;
        }
        for record in &all {
            let found = store
                .find(Lookup::from(&record.digest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(*found, *record);
            let got = store.get(record.id).await.unwrap().unwrap();
            assert_eq!(*got, *record);
        }
        let listed = store.list("user-1").await.unwrap();
        assert_eq!(ids(&listed), all.iter().map(|r| r.id).collect());
        assert!(store.list("nobody").await.unwrap().is_empty());
        assert!(store
            .find(Lookup::from(&TokenDigest::of("nope")))
            .await
            .unwrap()
            .is_none());
        assert!(store.get(TokenId::from_u64(7)).await.unwrap().is_none());
    }
    let store = open(&dir).await;
    let names: String =
        sqlx::query_scalar("SELECT scope_names FROM tower_token_auth_tokens WHERE id = ?1")
            .bind(all[0].id.as_u64() as i64)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(names, "billing.read");
}

/// A database made before the `client_id` column (migration 1 only) is
/// upgraded on open, and its tokens read back as issued to no client.
#[tokio::test]
async fn a_database_of_the_first_schema_is_upgraded_on_open() {
    let dir = TempDir::new();
    let options = SqliteConnectOptions::from_str(&dir.url())
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let (version, description, sql) = MIGRATIONS[0];
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE tower_token_auth_migrations (\
             version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL\
         ) STRICT",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO tower_token_auth_migrations VALUES (?1, ?2, 0)")
        .bind(version)
        .bind(description)
        .execute(&pool)
        .await
        .unwrap();
    let old = mint(TokenKind::PersonalAccess);
    sqlx::query(
        "INSERT INTO tower_token_auth_tokens (digest, id, name, owner, kind, scopes, \
         scope_names, created_at, expires_at, hint) \
         VALUES (?1, 7, 'old', 'user-1', 'personal_access', 1, 'billing.read', 0, ?2, 'h')",
    )
    .bind(&old.digest.as_bytes()[..])
    .bind(i64::MAX)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = open(&dir).await;
    let read = store
        .find(Lookup::from(&old.digest))
        .await
        .unwrap()
        .expect("kept");
    assert_eq!((read.name(), read.client_id()), ("old", None));
    let with_client = mint(TokenKind::Access).with_client_id(Some("client-1"));
    store
        .insert(std::slice::from_ref(&with_client))
        .await
        .unwrap();
    let read = store
        .find(Lookup::from(&with_client.digest))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(read.client_id(), Some("client-1"));
}

#[tokio::test]
async fn migrations_are_recorded_once() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    store.migrate().await.unwrap();
    let again = open(&dir).await;
    again.migrate().await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM tower_token_auth_migrations")
        .fetch_all(again.pool())
        .await
        .unwrap();
    assert_eq!(versions, [1, 2]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn insert_is_all_or_none() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let first = mint(TokenKind::PersonalAccess);
    store.insert(std::slice::from_ref(&first)).await.unwrap();

    let fresh = mint(TokenKind::PersonalAccess);
    let same_id = with(mint(TokenKind::PersonalAccess), |r| r.id = first.id);
    let same_digest = with(mint(TokenKind::PersonalAccess), |r| r.digest = first.digest);
    for taken in [same_id, same_digest] {
        let error = store.insert(&[fresh.clone(), taken]).await.unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert!(store.get(fresh.id).await.unwrap().is_none());
    }
    assert_eq!(*store.get(first.id).await.unwrap().unwrap(), first);
    assert_eq!(count(&store, "1").await, 1);
}

#[tokio::test]
async fn update_scopes_changes_live_tokens_only() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let live = mint(TokenKind::PersonalAccess);
    let revoked = with(mint(TokenKind::PersonalAccess), |r| {
        r.revoked_at = Some(now())
    });
    let spent = with(mint(TokenKind::Refresh), |r| r.spent_at = Some(now()));
    store
        .insert(&[live.clone(), revoked.clone(), spent.clone()])
        .await
        .unwrap();

    let t = now();
    let updated = store
        .update_scopes(live.id, S::BILLING_AGENT, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.scopes, S::BILLING_AGENT);
    assert_eq!(*store.get(live.id).await.unwrap().unwrap(), *updated);
    assert_eq!(
        count(
            &store,
            "scope_names = 'billing.read billing.write billing.agent'"
        )
        .await,
        1
    );
    // Expired at `now`: valid while `now < expires_at`.
    let at_expiry = store
        .update_scopes(live.id, S::BILLING_READ, live.expires_at)
        .await;
    assert!(at_expiry.unwrap().is_none());
    for id in [revoked.id, spent.id, TokenId::from_u64(7)] {
        assert!(store
            .update_scopes(id, S::BILLING_READ, t)
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(
        store.get(live.id).await.unwrap().unwrap().scopes,
        S::BILLING_AGENT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_revocations_have_exactly_one_winner() {
    let dir = TempDir::new();
    let stores = [open(&dir).await, open(&dir).await];
    for _ in 0..10 {
        let token = mint(TokenKind::PersonalAccess);
        stores[0]
            .insert(std::slice::from_ref(&token))
            .await
            .unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let (store, barrier) = (stores[i % 2].clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.revoke(token.id, now()).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for racer in racers {
            winners += usize::from(racer.await.unwrap().is_some());
        }
        assert_eq!(winners, 1);
    }
}

#[tokio::test]
async fn revoke_family_revokes_the_live_members_once() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let refresh = grant(&store).await;
    let family = refresh.family.unwrap();
    let [access, _] = pair_in(family);
    let earlier = with(pair_in(family)[0].clone(), |r| {
        r.revoked_at = Some(UNIX_EPOCH)
    });
    let outsider = mint(TokenKind::PersonalAccess);
    store
        .insert(&[access.clone(), earlier.clone(), outsider.clone()])
        .await
        .unwrap();

    let at = now();
    let revoked = store.revoke_family(family.id, at).await.unwrap();
    assert_eq!(ids(&revoked), BTreeSet::from([refresh.id, access.id]));
    assert!(revoked.iter().all(|r| r.revoked_at == Some(at)));
    assert_eq!(
        store.get(earlier.id).await.unwrap().unwrap().revoked_at,
        Some(UNIX_EPOCH)
    );
    assert!(!store.get(outsider.id).await.unwrap().unwrap().is_revoked());
    assert!(store
        .revoke_family(family.id, now())
        .await
        .unwrap()
        .is_empty());
    assert!(store.revoke(refresh.id, now()).await.unwrap().is_none());
}

#[tokio::test]
async fn exchange_decides_spends_and_stores_in_one_step() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let refresh = grant(&store).await;
    let at = now();
    let first = exchange_of(&refresh, at);
    assert_eq!(
        store.exchange(&first).await.unwrap(),
        ExchangeOutcome::Exchanged
    );
    assert_eq!(
        store
            .find(Lookup::from(&refresh.digest))
            .await
            .unwrap()
            .unwrap()
            .spent_at,
        Some(at)
    );
    assert_eq!(
        *store.get(first.access.id).await.unwrap().unwrap(),
        first.access
    );
    assert_eq!(
        *store.get(first.refresh.id).await.unwrap().unwrap(),
        first.refresh
    );

    // Spent: nothing more is stored.
    let replay = exchange_of(&refresh, now());
    assert_eq!(
        store.exchange(&replay).await.unwrap(),
        ExchangeOutcome::AlreadySpent
    );
    assert!(store.get(replay.access.id).await.unwrap().is_none());

    // Gone, of another family, revoked: not live.
    let unknown = with(refresh.clone(), |r| {
        r.digest = TokenDigest::of("never issued")
    });
    let other = grant(&store).await;
    let elsewhere = Exchange::new(
        other.digest,
        refresh.family.unwrap().id,
        now(),
        pair_in(refresh.family.unwrap()),
        2,
        3,
    );
    // Spent, but presented as a token of another family.
    let spent_elsewhere = Exchange::new(
        refresh.digest,
        FamilyId::from_u64(7),
        now(),
        pair_in(refresh.family.unwrap()),
        2,
        3,
    );
    let revoked = grant(&store).await;
    store.revoke(revoked.id, now()).await.unwrap();
    let not_live = [
        exchange_of(&unknown, now()),
        elsewhere,
        spent_elsewhere,
        exchange_of(&revoked, now()),
    ];
    for x in not_live {
        assert_eq!(store.exchange(&x).await.unwrap(), ExchangeOutcome::NotLive);
        assert!(store.get(x.access.id).await.unwrap().is_none());
    }
    assert!(store
        .get(other.id)
        .await
        .unwrap()
        .unwrap()
        .spent_at
        .is_none());
    assert_eq!(count(&store, "1").await, 5);

    // A new pair whose id is taken: the whole exchange is undone.
    let next = &first.refresh;
    let mut clash = exchange_of(next, now());
    clash.refresh.id = first.access.id;
    assert!(store.exchange(&clash).await.is_err());
    assert!(store
        .get(next.id)
        .await
        .unwrap()
        .unwrap()
        .spent_at
        .is_none());
    assert!(store.get(clash.access.id).await.unwrap().is_none());
}

/// The superseded tokens an exchange deletes are the ones `MemoryStore`
/// deletes, with times that tie (so ids decide) and ids on both sides of
/// 2⁶³ (so the signed INTEGER must still order them as unsigned).
#[tokio::test]
async fn exchange_supersedes_what_the_memory_store_supersedes() {
    for tie in [true, false] {
        let dir = TempDir::new();
        let sqlite = open(&dir).await;
        let memory = MemoryStore::<S>::new();
        let t0 = now();
        let time = |step: u64| match tie {
            true => t0,
            false => t0 + Duration::from_secs(step / 2),
        };
        let id = |n: u64| TokenId::from_u64(if n % 2 == 0 { n } else { (1 << 63) | n });
        let mut presented = with(mint(TokenKind::Refresh), |r| {
            r.id = id(0);
            r.created_at = time(0);
        });
        let family = presented.family.unwrap();
        sqlite
            .insert(std::slice::from_ref(&presented))
            .await
            .unwrap();
        memory
            .insert(std::slice::from_ref(&presented))
            .await
            .unwrap();
        for step in 1..12u64 {
            let [access, refresh] = pair_in(family);
            let n = 4 * step + step % 3;
            let access = with(access, |r| {
                r.id = id(n);
                r.created_at = time(step);
            });
            let refresh = with(refresh, |r| {
                r.id = id(n + 1);
                r.created_at = time(step);
            });
            let x = Exchange::new(
                presented.digest,
                family.id,
                time(step),
                [access, refresh.clone()],
                2,
                3,
            );
            assert_eq!(
                sqlite.exchange(&x).await.unwrap(),
                ExchangeOutcome::Exchanged
            );
            assert_eq!(
                memory.exchange(&x).await.unwrap(),
                ExchangeOutcome::Exchanged
            );
            let (ours, theirs) = (
                sqlite.list("user-1").await.unwrap(),
                memory.list("user-1").await.unwrap(),
            );
            assert_eq!(ids(&ours), ids(&theirs), "step {step}, tie {tie}");
            for r in &ours {
                assert_eq!(**r, *memory.get(r.id).await.unwrap().unwrap());
            }
            presented = refresh;
        }
        assert_eq!(count(&sqlite, "kind = 'access'").await, 2);
        assert_eq!(count(&sqlite, "spent_at IS NOT NULL").await, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_exchanges_exactly_one_wins() {
    let dir = TempDir::new();
    let stores = [open(&dir).await, open(&dir).await];
    for _ in 0..20 {
        let refresh = grant(&stores[0]).await;
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = stores
            .iter()
            .map(|store| {
                let (store, barrier) = (store.clone(), Arc::clone(&barrier));
                let x = exchange_of(&refresh, now());
                tokio::spawn(async move {
                    barrier.wait().await;
                    (store.exchange(&x).await.unwrap(), x)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for racer in racers {
            outcomes.push(racer.await.unwrap());
        }
        outcomes.sort_by_key(|(outcome, _)| *outcome != ExchangeOutcome::Exchanged);
        let [(won, x), (lost, y)] = <[_; 2]>::try_from(outcomes).unwrap();
        assert_eq!(
            (won, lost),
            (ExchangeOutcome::Exchanged, ExchangeOutcome::AlreadySpent)
        );
        assert!(stores[0].get(x.refresh.id).await.unwrap().is_some());
        assert!(stores[0].get(y.refresh.id).await.unwrap().is_none());
        assert!(stores[0].get(y.access.id).await.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exchange_and_a_family_revocation_never_interleave() {
    let dir = TempDir::new();
    let stores = [open(&dir).await, open(&dir).await];
    let mut orders = [0; 2];
    for _ in 0..30 {
        let refresh = grant(&stores[0]).await;
        let family = refresh.family.unwrap().id;
        let x = exchange_of(&refresh, now());
        let barrier = Arc::new(Barrier::new(2));
        let exchange = {
            let (store, barrier, x) = (stores[0].clone(), Arc::clone(&barrier), x.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.exchange(&x).await.unwrap()
            })
        };
        let revoke = {
            let (store, barrier) = (stores[1].clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.revoke_family(family, now()).await.unwrap()
            })
        };
        let (outcome, revoked) = (exchange.await.unwrap(), revoke.await.unwrap());
        let revoked = ids(&revoked);
        let (access, next) = (x.access.id, x.refresh.id);
        match outcome {
            // The exchange ran first: the revocation took the new pair too.
            ExchangeOutcome::Exchanged => {
                assert_eq!(revoked, BTreeSet::from([refresh.id, access, next]));
                orders[0] += 1;
            }
            // The revocation ran first: the exchange stored nothing.
            ExchangeOutcome::NotLive => {
                assert_eq!(revoked, BTreeSet::from([refresh.id]));
                assert!(stores[0].get(access).await.unwrap().is_none());
                assert!(stores[0].get(next).await.unwrap().is_none());
                orders[1] += 1;
            }
            ExchangeOutcome::AlreadySpent => panic!("spent by no one"),
        }
        let condition = format!(
            "family_id = {} AND revoked_at IS NULL",
            family.as_u64() as i64
        );
        assert_eq!(count(&stores[0], &condition).await, 0);
    }
    println!(
        "exchange first {}, revocation first {}",
        orders[0], orders[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn record_use_keeps_the_latest_time_and_batches_never_deadlock() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let [a, b] = [
        mint(TokenKind::PersonalAccess),
        mint(TokenKind::PersonalAccess),
    ];
    store.insert(&[a.clone(), b.clone()]).await.unwrap();
    let (t1, t2) = (now(), now() + Duration::from_secs(60));
    let unknown = TokenId::from_u64(7);
    store
        .record_use(&[(a.id, t2), (a.id, t1), (unknown, t2)])
        .await
        .unwrap();
    store.record_use(&[(a.id, t1)]).await.unwrap();
    assert_eq!(
        store.get(a.id).await.unwrap().unwrap().last_used_at,
        Some(t2)
    );

    let other = open(&dir).await;
    let batches: Vec<_> = (0..16u64)
        .map(|i| {
            let store = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let at = t2 + Duration::from_secs(i);
            let batch = match i % 2 {
                0 => vec![(a.id, at), (b.id, at)],
                _ => vec![(b.id, at), (a.id, at)],
            };
            tokio::spawn(async move { store.record_use(&batch).await })
        })
        .collect();
    for batch in batches {
        batch.await.unwrap().unwrap();
    }
    for id in [a.id, b.id] {
        let last = store.get(id).await.unwrap().unwrap().last_used_at;
        assert_eq!(last, Some(t2 + Duration::from_secs(15)));
    }
}

#[tokio::test]
async fn purge_deletes_what_died_before_the_cutoff() {
    let dir = TempDir::new();
    let store = open(&dir).await;
    let cutoff = now();
    let (before, after) = (
        cutoff - Duration::from_secs(1),
        cutoff + Duration::from_secs(1),
    );
    let pat = || mint(TokenKind::PersonalAccess);
    let revoked_before = with(pat(), |r| r.revoked_at = Some(before));
    let revoked_after = with(pat(), |r| r.revoked_at = Some(after));
    let expired_before = with(pat(), |r| r.expires_at = before);
    let expires_at_cutoff = with(pat(), |r| r.expires_at = cutoff);
    let spent_unexpired = with(mint(TokenKind::Refresh), |r| r.spent_at = Some(before));
    let live = pat();
    store
        .insert(&[
            revoked_before.clone(),
            revoked_after.clone(),
            expired_before.clone(),
            expires_at_cutoff.clone(),
            spent_unexpired.clone(),
            live.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(store.purge(cutoff).await.unwrap(), 2);
    for gone in [&revoked_before, &expired_before] {
        assert!(store.get(gone.id).await.unwrap().is_none());
    }
    for kept in [&revoked_after, &expires_at_cutoff, &spent_unexpired, &live] {
        assert!(store.get(kept.id).await.unwrap().is_some());
    }
    assert_eq!(store.purge(cutoff).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_in_memory_database_is_one_per_store_and_shared_by_its_tasks() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let other = SqliteStore::connect("sqlite::memory:").await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let record = mint(TokenKind::PersonalAccess);
                store.insert(std::slice::from_ref(&record)).await.unwrap();
                record
            })
        })
        .collect();
    for task in tasks {
        let record = task.await.unwrap();
        assert_eq!(
            *store
                .find(Lookup::from(&record.digest))
                .await
                .unwrap()
                .unwrap(),
            record
        );
        assert!(other
            .find(Lookup::from(&record.digest))
            .await
            .unwrap()
            .is_none());
    }
    let refresh = grant(&store).await;
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (store, x) = (store.clone(), exchange_of(&refresh, now()));
            tokio::spawn(async move { store.exchange(&x).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    outcomes.sort_by_key(|o| *o != ExchangeOutcome::Exchanged);
    assert_eq!(
        outcomes,
        [ExchangeOutcome::Exchanged, ExchangeOutcome::AlreadySpent]
    );
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_unavailable() {
    let dir = TempDir::new();
    let url = format!("sqlite:{}", dir.0.join("missing/tokens.db").display());
    let error = SqliteStore::connect(&url).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let error = SqliteStore::connect("sqlite:tokens.db?mode=bogus")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
}

#[tokio::test]
async fn a_database_locked_beyond_the_busy_timeout_is_unavailable() {
    let dir = TempDir::new();
    let holder = open(&dir).await;
    let token = mint(TokenKind::PersonalAccess);
    holder.insert(std::slice::from_ref(&token)).await.unwrap();
    let options = SqliteConnectOptions::from_str(&dir.url())
        .unwrap()
        .busy_timeout(Duration::from_millis(100));
    let impatient = SqliteStore::<S>::from_pool(SqlitePool::connect_with(options).await.unwrap());

    let lock = holder.write().await.unwrap();
    let error = impatient.revoke(token.id, now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    // Lookups read the last commit meanwhile (WAL).
    assert!(impatient
        .find(Lookup::from(&token.digest))
        .await
        .unwrap()
        .is_some());
    lock.rollback().await.unwrap();
    assert!(impatient.revoke(token.id, now()).await.unwrap().is_some());
}

#[test]
fn errors_are_classified() {
    assert!(matches!(
        store_error(sqlx::Error::PoolTimedOut),
        StoreError::Unavailable(_)
    ));
    assert!(matches!(
        store_error(sqlx::Error::RowNotFound),
        StoreError::Backend(_)
    ));
    let t = UNIX_EPOCH - Duration::new(5, 1);
    assert_eq!(
        from_micros(micros(t).unwrap()),
        UNIX_EPOCH - Duration::new(5, 1_000)
    );
}

#[tokio::test]
async fn the_manager_runs_its_lifecycle_on_sqlite() {
    let dir = TempDir::new();
    let tokens = TokenManager::new(open(&dir).await);
    let pair = tokens.issue_pair("agent", "user-1", None).await.unwrap();
    let next = tokens
        .refresh(&pair.refresh.secret.digest(), None)
        .await
        .unwrap();
    let replay = tokens.refresh(&pair.refresh.secret.digest(), None).await;
    assert!(matches!(
        replay,
        Err(GrantError::InvalidGrant(InvalidGrantReason::Reused))
    ));
    let found = tokens
        .find(next.access.secret.lookup())
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_revoked());

    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
        .await
        .unwrap();
    let changed = tokens
        .set_scopes(pat.record.id, S::BILLING_AGENT)
        .await
        .unwrap();
    assert_eq!(changed.map(|t| t.scopes), Some(S::BILLING_AGENT));
    let regenerated = tokens.regenerate(pat.record.id).await.unwrap().unwrap();
    assert!(tokens
        .find(pat.secret.lookup())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    assert_eq!(regenerated.record.scopes, S::BILLING_AGENT);
    tokens
        .record_use(&[(regenerated.record.id, SystemTime::now())])
        .await
        .unwrap();
    assert!(tokens.list("user-1").await.unwrap().len() >= 4);
}
