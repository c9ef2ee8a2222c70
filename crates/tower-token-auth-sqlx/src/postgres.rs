//! A PostgreSQL token backend, for services that run on many machines.
//!
//! [`PgStore`] keeps tokens in one table. It is a [`TokenStore`] (the
//! middleware's lookup: one indexed `SELECT` by digest) and a
//! [`TokenBackend`]: put a [`TokenManager`]
//! over it, and tokens are issued, rotated, revoked and purged by the same
//! rules as over any other backend. The store itself holds no policy and
//! emits no audit event; it stores rows, and makes each change atomic as
//! [`TokenBackend`] asks (see [Concurrency](#concurrency)).
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_token_auth::manager::{IssueRequest, TokenManager};
//! use tower_token_auth::token::TokenKind;
//! use tower_token_auth::TokenAuthLayer;
//! use tower_token_auth_sqlx::sqlx::postgres::PgPoolOptions;
//! use tower_token_auth_sqlx::PgStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The pool is the application's: size it and bound how long a request
//! // may wait for a connection (an unreachable database answers 503 after
//! // that long).
//! let pool = PgPoolOptions::new()
//!     .max_connections(10)
//!     .acquire_timeout(Duration::from_secs(2))
//!     .connect(&std::env::var("DATABASE_URL")?)
//!     .await?;
//! let store = PgStore::new(pool);
//! store.migrate().await?; // idempotent: safe on every start-up
//! let tokens = TokenManager::new(store);
//!
//! let issued = tokens
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
//!     .await?;
//! println!("your token, shown once: {}", issued.secret.expose_secret());
//!
//! let layer = TokenAuthLayer::new(tokens);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```
//!
//! # Schema and migrations
//!
//! The schema ships with this crate in `migrations/` (in the crate's
//! source, next to `Cargo.toml`, and compiled into the library): `0001_tokens.sql` creates the table,
//! `0002_purge_indexes.sql` the indexes of [`TokenBackend::purge`],
//! `0003_audience.sql` the `audience` column, `0004_oauth_kinds.sql` lets
//! the table hold authorization codes and client registrations,
//! `0005_client_id.sql` adds the `client_id` column.
//! [`PgStore::migrate`] applies those this database has not recorded yet,
//! under an advisory lock, and records them in
//! `tower_token_auth_migrations`; it is idempotent, so every instance may
//! call it at start-up. Teams that run migrations with their own tool apply
//! the files in order instead (every statement in them is idempotent),
//! replacing `tower_token_auth_` with their prefix if they set one with
//! [`PgStore::table_prefix`]. On a large existing table, create the indexes
//! of `0002` with `CREATE INDEX CONCURRENTLY` first to avoid blocking
//! writes while they are built; the migration then finds them.
//!
//! | column | type | holds |
//! |---|---|---|
//! | `digest` | `bytea` primary key | SHA-256 of the token (never the token) |
//! | `id` | `bigint` unique | [`TokenId`] |
//! | `name`, `owner`, `hint` | `text` | as in [`TokenRecord`] |
//! | `kind` | `text` | `personal_access`, `access`, `refresh`, `authorization_code` or `client` |
//! | `scopes` | `bigint` | the scope set's bits (the source of truth) |
//! | `scope_names` | `text[]` | the same scopes spelled out, for SQL readers |
//! | `created_at`, `expires_at`, `revoked_at`, `spent_at`, `last_used_at` | `timestamptz` | |
//! | `family_id`, `family_started_at` | `bigint`, `timestamptz` | [`Family`](tower_token_auth::token::Family) |
//! | `audience` | `text[]` | the RFC 8707 resources, in order (empty for none) |
//! | `client_id` | `text` (nullable) | the OAuth client the token was issued to |
//!
//! | index | on | serves |
//! |---|---|---|
//! | primary key | `digest` | [`TokenStore::find`], every request |
//! | unique | `id` | `get`, `revoke`, `update_scopes`, `record_use` |
//! | `…tokens_owner_idx` | `owner, created_at` | `list` |
//! | `…tokens_family_idx` | `family_id` (partial) | `revoke_family`, `exchange` |
//! | `…tokens_expiry_idx` | `expires_at` | `purge` |
//! | `…tokens_revoke_idx` | `revoked_at` (partial) | `purge` |
//!
//! [`TokenId`] and [`FamilyId`] are unsigned 64-bit numbers; the `bigint`
//! columns hold the same 64 bits read as signed, so ids of 2⁶³ and above
//! show as negative numbers in SQL (`tok_…` in the application is the hex of
//! the unsigned value). `timestamptz` keeps microseconds, and the
//! [`TokenManager`] rounds every time down to
//! the microsecond before it reaches the store, so a record read back equals
//! the record that was inserted. Scope bits that the scope set no longer
//! defines are dropped when a row is read.
//!
//! The table is `tower_token_auth_tokens` unless a prefix is set; choose
//! the schema with the pool's `search_path`.
//!
//! # Concurrency
//!
//! Each guarantee of [`TokenBackend`] rests on one mechanism:
//!
//! - `insert` is one statement (`INSERT … SELECT FROM unnest(…)`): all
//!   rows or none, whatever their number.
//! - `revoke` and `update_scopes` are one conditional `UPDATE … RETURNING`:
//!   of concurrent calls on one row, the first takes its row lock and the
//!   others re-check the condition on what it committed.
//! - `revoke_family` and `exchange` take a transaction-scoped advisory lock
//!   on the family (`pg_advisory_xact_lock(hashtext(<table>),
//!   hashint8(family_id))`) before anything else, so they run one after the
//!   other within a family. An `exchange` is one transaction: the lock, then
//!   `SELECT … FOR UPDATE` of the family's rows and the presented one, the
//!   decision, the spending, the new pair and the deletion of what the pair
//!   supersedes ([`Exchange::superseded`] of the locked family).
//! - Every statement that locks several rows locks them in `id` order
//!   (`revoke_family`, `exchange`, `record_use`, `purge`), so no two of them
//!   can deadlock.
//!
//! The statements run at the default isolation level (`READ COMMITTED`).
//!
//! # Changes across instances
//!
//! Every statement that changes what a lookup answers publishes the
//! lower-case hex digest of each token it changed with `pg_notify` on the
//! channel [`PgStore::channel`] (`tower_token_auth_revoked` by default), in
//! the same transaction: listeners hear of it when it commits, never
//! before. Those are revocations (of a token or of a family), scope
//! changes, the spending of a refresh token in an exchange and the tokens
//! an exchange deletes. New tokens are not announced (no cache can hold
//! them), nor are purged ones (dead already). A [`RevocationListener`]
//! evicts the announced tokens from a [`CachedStore`] on every instance; any other
//! payload on the channel (for example `all`, sent by an operator after
//! editing the table by hand) flushes the whole cache.
//!
//! # Failures
//!
//! A database that cannot be reached (connection refused, the pool's
//! acquire timeout, the server shutting down or out of connections) is
//! [`StoreError::Unavailable`]: the middleware answers 503
//! `temporarily_unavailable`, never 401. Other database errors are
//! [`StoreError::Backend`], among them an `insert` of an id or digest that
//! is already stored (nothing is inserted then). A transaction that fails
//! half-way is rolled back: an exchange either happens whole or not at all.
//! Nothing is cached here, so when the database comes back the pool
//! reconnects and requests succeed again.

mod listener;
mod queries;
mod row;

pub use listener::{ListenerHandle, RevocationListener};

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Executor as _, Postgres, Transaction};

use tower_token_auth::error::StoreError;
#[cfg(doc)]
use tower_token_auth::manager::TokenManager;
use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
use tower_token_auth::store::{
    CachedStore, Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
};
use tower_token_auth::token::{FamilyId, Lookup, TokenDigest, TokenId, TokenRecord};

use self::queries::Queries;
use self::row::{id_to_db, record_from_row, scope_names, store_error, time_to_db, InsertColumns};

/// The migrations shipped with the crate: version, description, SQL (with
/// the default prefix).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "tokens", include_str!("../migrations/0001_tokens.sql")),
    (
        2,
        "purge indexes",
        include_str!("../migrations/0002_purge_indexes.sql"),
    ),
    (
        3,
        "audience",
        include_str!("../migrations/0003_audience.sql"),
    ),
    (
        4,
        "oauth kinds",
        include_str!("../migrations/0004_oauth_kinds.sql"),
    ),
    (
        5,
        "client_id",
        include_str!("../migrations/0005_client_id.sql"),
    ),
];

/// Tokens in PostgreSQL: a [`TokenBackend`] for a
/// [`TokenManager`]. See the
/// [module docs](self).
///
/// Cloning is cheap and every clone shares the pool. Build it from the
/// application's pool with [`new`](PgStore::new) (PayRequest scopes) or
/// [`with_scopes`](PgStore::with_scopes) (any scope set), and create the
/// table once with [`migrate`](PgStore::migrate).
pub struct PgStore<S> {
    inner: Arc<Inner>,
    _scopes: PhantomData<fn() -> S>,
}

struct Inner {
    pool: PgPool,
    queries: Queries,
}

impl<S> Clone for PgStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _scopes: PhantomData,
        }
    }
}

impl<S> fmt::Debug for PgStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("table", &self.inner.queries.table)
            .field("channel", &self.inner.queries.channel)
            .field("pool", &self.inner.pool)
            .finish()
    }
}

impl PgStore<PayRequestScopes> {
    /// A store of PayRequest-scoped tokens in `pool`'s database, in table
    /// `tower_token_auth_tokens`. For another scope set use
    /// [`with_scopes`](Self::with_scopes).
    pub fn new(pool: PgPool) -> Self {
        Self::with_scopes(pool)
    }
}

impl<S: ScopeSet> PgStore<S> {
    /// A store of tokens of the scope set `S` in `pool`'s database:
    /// `PgStore::<MyScopes>::with_scopes(pool)`.
    pub fn with_scopes(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                queries: Queries::new(queries::DEFAULT_PREFIX),
            }),
            _scopes: PhantomData,
        }
    }

    /// Names the table `<prefix>tokens`, the migrations table
    /// `<prefix>migrations` and the notification channel `<prefix>revoked`
    /// (the default prefix is `tower_token_auth_`).
    ///
    /// The prefix is spliced into SQL, so only a plain lower-case
    /// identifier is accepted: `[a-z_][a-z0-9_]*`, short enough that every
    /// derived name fits PostgreSQL's 63 bytes (at most 46 bytes). Anything
    /// else is [`StoreError::Misconfigured`].
    ///
    /// ```
    /// # use tower_token_auth_sqlx::PgStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = tower_token_auth_sqlx::sqlx::postgres::PgPoolOptions::new()
    /// #     .connect_lazy("postgres://localhost/app")?;
    /// let store = PgStore::new(pool.clone()).table_prefix("billing_")?;
    /// assert_eq!(store.table(), "billing_tokens");
    /// assert_eq!(store.channel(), "billing_revoked");
    /// assert!(PgStore::new(pool).table_prefix("x; DROP TABLE users").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn table_prefix(self, prefix: &str) -> Result<Self, StoreError> {
        queries::validate_prefix(prefix)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                queries: Queries::new(prefix),
            }),
            _scopes: PhantomData,
        })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The token table's name.
    pub fn table(&self) -> &str {
        &self.inner.queries.table
    }

    /// The channel changes are published on (`NOTIFY`): see
    /// [Changes across instances](self#changes-across-instances).
    pub fn channel(&self) -> &str {
        &self.inner.queries.channel
    }

    /// Creates or updates the schema: applies every migration shipped with
    /// the crate that this database has not recorded yet.
    ///
    /// Idempotent, and safe when several instances start at once (they
    /// take turns on an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let q = self.q();
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("tower-token-auth migrations {}", q.table))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
                 version bigint PRIMARY KEY, \
                 description text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now()\
             )",
            q.migrations_table
        );
        // A plain string runs as a simple query: several statements at once.
        tx.execute(create.as_str()).await.map_err(store_error)?;
        for (version, description, sql) in MIGRATIONS {
            let applied = sqlx::query(&format!(
                "SELECT 1 FROM {} WHERE version = $1",
                q.migrations_table
            ))
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            if applied.is_some() {
                continue;
            }
            let migration = q.migration(sql);
            tx.execute(migration.as_str()).await.map_err(store_error)?;
            sqlx::query(&format!(
                "INSERT INTO {} (version, description) VALUES ($1, $2)",
                q.migrations_table
            ))
            .bind(version)
            .bind(description)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    /// A listener that evicts the tokens changed through any store on this
    /// table (on any instance) from a [`CachedStore`].
    /// See [`RevocationListener`].
    pub fn revocation_listener(&self) -> RevocationListener {
        RevocationListener::new(self.inner.pool.clone(), self.inner.queries.channel.clone())
    }

    /// Starts a [`RevocationListener`] with the default backoff for `cache`,
    /// on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_revocation_listener<St: TokenStore>(
        &self,
        cache: CachedStore<St>,
    ) -> ListenerHandle {
        self.revocation_listener().spawn(cache)
    }

    fn q(&self) -> &Queries {
        &self.inner.queries
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.inner.pool.begin().await.map_err(store_error)
    }

    /// Takes the family's advisory lock for the rest of the transaction.
    async fn lock_family(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        family: FamilyId,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.q().lock_family)
            .bind(id_to_db(family.as_u64()))
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The record of the row `query` answers, if any.
    async fn fetch_one(
        &self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let row: Option<PgRow> = query
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(shared_record).transpose()
    }
}

fn shared_record<S: ScopeSet>(row: &PgRow) -> Result<SharedRecord<S>, StoreError> {
    record_from_row(row).map(Arc::new)
}

fn shared_records<S: ScopeSet>(rows: &[PgRow]) -> Result<Vec<SharedRecord<S>>, StoreError> {
    rows.iter().map(shared_record).collect()
}

#[async_trait]
impl<S: ScopeSet> TokenStore for PgStore<S> {
    type Scopes = S;

    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        let query = sqlx::query(&self.q().find).bind(key.digest().as_bytes().to_vec());
        self.fetch_one(query).await
    }

    /// Always `None`: every lookup is a query.
    fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<S>> {
        None
    }
}

#[async_trait]
impl<S: ScopeSet> TokenBackend for PgStore<S> {
    async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let columns = InsertColumns::of(records)?;
        columns
            .bind(sqlx::query(&self.q().insert))
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(&self.q().get).bind(id_to_db(id.as_u64()));
        self.fetch_one(query).await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let rows = sqlx::query(&self.q().list)
            .bind(owner)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)?;
        shared_records(&rows)
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: S,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(&self.q().update_scopes)
            .bind(id_to_db(id.as_u64()))
            .bind(id_to_db(scopes.bits()))
            .bind(scope_names(scopes))
            .bind(time_to_db(now)?)
            .bind(&self.q().channel);
        self.fetch_one(query).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(&self.q().revoke)
            .bind(id_to_db(id.as_u64()))
            .bind(time_to_db(at)?)
            .bind(&self.q().channel);
        self.fetch_one(query).await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let at = time_to_db(at)?;
        let mut tx = self.begin().await?;
        self.lock_family(&mut tx, family).await?;
        let rows = sqlx::query(&self.q().revoke_family)
            .bind(id_to_db(family.as_u64()))
            .bind(at)
            .bind(&self.q().channel)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        shared_records(&rows)
    }

    async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
        let at = time_to_db(x.at)?;
        let new_pair = InsertColumns::of([&x.access, &x.refresh])?;
        let presented = x.presented.as_bytes().to_vec();
        let mut tx = self.begin().await?;
        self.lock_family(&mut tx, x.family).await?;
        let rows = sqlx::query(&self.q().lock_exchanged)
            .bind(id_to_db(x.family.as_u64()))
            .bind(presented.clone())
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let mut locked = rows
            .iter()
            .map(record_from_row::<S>)
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match locked.iter().find(|r| r.digest == x.presented) {
            None => ExchangeOutcome::NotLive,
            Some(r) if r.family.map(|f| f.id) != Some(x.family) || r.is_revoked() => {
                ExchangeOutcome::NotLive
            }
            Some(r) if r.is_spent() => ExchangeOutcome::AlreadySpent,
            Some(_) => ExchangeOutcome::Exchanged,
        };
        if outcome != ExchangeOutcome::Exchanged {
            tx.rollback().await.map_err(store_error)?;
            return Ok(outcome);
        }

        sqlx::query(&self.q().spend)
            .bind(presented)
            .bind(at)
            .bind(&self.q().channel)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        new_pair
            .bind(sqlx::query(&self.q().insert))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;

        // The family as it now stands: the locked rows (the presented one
        // spent) and the new pair. No other transaction changes it meanwhile:
        // its rows are locked, and only an exchange (which waits for the
        // family's lock) adds rows to an existing family.
        for record in &mut locked {
            if record.digest == x.presented {
                record.spent_at = Some(x.at);
            }
        }
        let family = locked
            .iter()
            .filter(|r| r.family.map(|f| f.id) == Some(x.family))
            .chain([&x.access, &x.refresh]);
        let gone: Vec<i64> = x
            .superseded(family)
            .into_iter()
            .map(|id| id_to_db(id.as_u64()))
            .collect();
        if !gone.is_empty() {
            sqlx::query(&self.q().delete)
                .bind(gone)
                .bind(&self.q().channel)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(ExchangeOutcome::Exchanged)
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = uses.iter().map(|(id, _)| id_to_db(id.as_u64())).collect();
        let times = uses
            .iter()
            .map(|(_, at)| time_to_db(*at))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(&self.q().record_use)
            .bind(ids)
            .bind(times)
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.q().purge)
            .bind(time_to_db(cutoff)?)
            .execute(&self.inner.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Every future of the store can be spawned.
    #[allow(dead_code)]
    fn futures_are_send(store: PgStore<PayRequestScopes>, x: Exchange<PayRequestScopes>) {
        let now = SystemTime::now();
        let id = TokenId::from_u64(1);
        assert_send(&store.migrate());
        assert_send(&store.find(x.presented.into()));
        assert_send(&store.insert(&[]));
        assert_send(&store.exchange(&x));
        assert_send(&store.revoke_family(x.family, now));
        assert_send(&store.update_scopes(id, PayRequestScopes::BILLING_READ, now));
        assert_send(&store.record_use(&[]));
        assert_send(&store.purge(now));
    }

    /// A record of family 7, created at `created` (seconds after the
    /// epoch) and spent at `spent`.
    fn record(
        id: u64,
        kind: tower_token_auth::token::TokenKind,
        created: u64,
        spent: Option<u64>,
    ) -> TokenRecord<PayRequestScopes> {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let mut record = TokenRecord::new(
            TokenId::from_u64(id),
            TokenDigest::of(&format!("pr_x_{id}")),
            kind,
            PayRequestScopes::BILLING_READ,
            at(created),
            at(1_000),
        );
        record.family = Some(tower_token_auth::token::Family {
            id: FamilyId::from_u64(7),
            started_at: at(0),
        });
        record.spent_at = spent.map(at);
        record
    }

    /// The exchange of `presented`, keeping `retain_access` access tokens
    /// and `retain_spent` spent refresh tokens (the new pair is not looked
    /// at: the family given to `superseded` holds it).
    fn keeping(retain_access: usize, retain_spent: usize) -> Exchange<PayRequestScopes> {
        use tower_token_auth::token::TokenKind::{Access, Refresh};
        Exchange::new(
            TokenDigest::of("pr_x_presented"),
            FamilyId::from_u64(7),
            SystemTime::UNIX_EPOCH,
            [record(100, Access, 0, None), record(101, Refresh, 0, None)],
            retain_access,
            retain_spent,
        )
    }

    /// What the exchange deletes, from the family as the store reads it
    /// (decoded rows, ids back to unsigned).
    #[test]
    fn an_exchange_supersedes_old_access_tokens_and_old_spent_ones() {
        use tower_token_auth::token::TokenKind::{Access, Refresh};
        let family = [
            record(1, Access, 10, None),
            record(2, Refresh, 10, Some(20)),
            record(3, Access, 20, None),
            record(4, Refresh, 20, Some(30)),
            record(5, Access, 30, None),
            record(6, Refresh, 30, None),
        ];
        let gone = keeping(2, 1).superseded(&family);
        assert_eq!(gone, [TokenId::from_u64(1), TokenId::from_u64(2)]);
        assert!(keeping(3, 2).superseded(&family).is_empty());
    }

    #[test]
    fn ties_are_broken_by_the_unsigned_id() {
        use tower_token_auth::token::TokenKind::Access;
        // Stored signed, `u64::MAX` is -1 and would be the oldest; read
        // back unsigned, it is the newest of the tie and stays.
        let stored = row::id_to_db(u64::MAX);
        let family = [
            record(row::id_from_db(stored), Access, 10, None),
            record(1, Access, 10, None),
        ];
        assert_eq!(keeping(1, 1).superseded(&family), [TokenId::from_u64(1)]);
    }
}
