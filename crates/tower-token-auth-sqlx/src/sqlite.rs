//! Tokens in an SQLite database: the embedded persistent store for a service
//! on one machine.
//!
//! ```
//! use tower_token_auth::manager::{IssueRequest, TokenManager};
//! use tower_token_auth::store::TokenStore;
//! use tower_token_auth::token::TokenKind;
//! use tower_token_auth_sqlx::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_token_auth::manager::TokenError> {
//! // A file path (`sqlite:/var/lib/app/tokens.db`, created when missing)
//! // keeps tokens across restarts; `sqlite::memory:` keeps them in memory.
//! let tokens = TokenManager::new(SqliteStore::connect("sqlite::memory:").await?);
//! let issued = tokens
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
//!     .await?;
//!
//! // The middleware's lookup: one indexed SELECT by digest.
//! let found = tokens.find(issued.secret.lookup()).await?;
//! assert_eq!(found.as_deref(), Some(&*issued.record));
//!
//! assert!(tokens.revoke(issued.record.id).await?);
//! assert!(tokens.find(issued.secret.lookup()).await?.unwrap().is_revoked());
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//!
//! [`SqliteStore::connect`] and [`SqliteStore::migrate`] apply the
//! migrations shipped in this crate's `migrations/sqlite/` (compiled into
//! the library) in one transaction and record them in
//! `tower_token_auth_migrations`; running them again does nothing. The
//! tokens live in one `STRICT, WITHOUT ROWID` table,
//! `tower_token_auth_tokens`:
//!
//! | column | type | holds |
//! |---|---|---|
//! | `digest` | `BLOB` primary key | SHA-256 of the token (never the token) |
//! | `id` | `INTEGER` unique | [`TokenId`] |
//! | `name`, `owner`, `hint` | `TEXT` | as in [`TokenRecord`] |
//! | `kind` | `TEXT` | `personal_access`, `access`, `refresh`, `authorization_code` or `client` |
//! | `scopes` | `INTEGER` | the scope set's bits (the source of truth) |
//! | `scope_names` | `TEXT` | the same scopes spelled out, space-separated, for SQL readers |
//! | `created_at`, `expires_at`, `revoked_at`, `spent_at`, `last_used_at` | `INTEGER` | microseconds since the Unix epoch |
//! | `family_id`, `family_started_at` | `INTEGER`, `INTEGER` | [`Family`] |
//! | `audience` | `TEXT` | the resources (RFC 8707) it is for, as a JSON array |
//! | `client_id` | `TEXT` (nullable) | the OAuth client it was issued to |
//!
//! Ids are unsigned 64-bit numbers stored bit for bit, so those of 2⁶³ and
//! above read as negative in SQL. Times keep whole microseconds, as the
//! [`TokenManager`] rounds them: a record reads back
//! exactly as it was inserted. Scope bits the scope set no longer defines
//! are dropped when a row is read.
//!
//! # Concurrency
//!
//! SQLite lets one connection write at a time. Every write here is one
//! statement or one transaction begun with `BEGIN IMMEDIATE`, which takes the
//! write lock before it reads anything: writers queue for the lock (up to
//! the busy timeout, five seconds) instead of failing when a read upgrades
//! to a write, and what a write transaction read stays true until it
//! commits. So:
//!
//! - `revoke` and `update_scopes` are each one conditional `UPDATE …
//!   RETURNING`: of concurrent revocations of one token, exactly one
//!   returns it;
//! - `exchange` is one write transaction (check the refresh token, spend
//!   it, store the pair, read the family and delete what
//!   [`Exchange::superseded`] names), and `revoke_family` one
//!   statement: they never interleave, and neither do two exchanges;
//! - `insert` and a `record_use` batch are one transaction each: all or
//!   nothing, and batches never deadlock (the lock is taken up front).
//!
//! In WAL mode (set by `connect` on a file) lookups never wait for a writer.
//! The same holds for several processes on one file, on a local disk.
//! SQLite's default `synchronous = FULL` is kept: a committed revocation
//! survives a power cut.
//!
//! `sqlite::memory:` is a new database for each `connect`, and it lives
//! only while a connection to it is open: a pool that closes idle
//! connections would drop it with its tokens. So `connect` opens exactly
//! one connection for it and never closes it (no idle timeout, no maximum
//! lifetime): the database lives as long as the store, and every call
//! takes turns on that connection. A pool of your own over an in-memory
//! database needs the same settings.
//!
//! # Failures
//!
//! A database that cannot be opened (a missing directory, no permission, a
//! full or failing disk) or stays locked beyond the busy timeout is
//! [`StoreError::Unavailable`]: the middleware answers 503, never 401.
//! Other errors are [`StoreError::Backend`].

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow,
};
use sqlx::{query::Query, Row, Sqlite, Transaction};

use tower_token_auth::error::StoreError;
#[cfg(doc)]
use tower_token_auth::manager::TokenManager;
use tower_token_auth::scope::{PayRequestScopes, ScopeSet};
use tower_token_auth::store::{
    Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
};
use tower_token_auth::token::{
    Family, FamilyId, Lookup, TokenDigest, TokenId, TokenKind, TokenRecord,
};

/// How long a write waits for the database's write lock, and a call for a
/// connection of the pool, before the store is [`StoreError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations shipped with the crate: version, description, SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "tokens",
        include_str!("../migrations/sqlite/0001_tokens.sql"),
    ),
    (
        2,
        "client_id",
        include_str!("../migrations/sqlite/0002_client_id.sql"),
    ),
];

/// The columns of a token row, as [`record`] decodes them.
macro_rules! columns {
    () => {
        "id, digest, name, owner, kind, scopes, created_at, expires_at, revoked_at, hint, \
         family_id, family_started_at, spent_at, last_used_at, audience, client_id"
    };
}

/// The columns of the rows `where` selects.
macro_rules! select {
    ($where:literal) => {
        concat!(
            "SELECT ",
            columns!(),
            " FROM tower_token_auth_tokens WHERE ",
            $where
        )
    };
}

const FIND: &str = select!("digest = ?1");
const GET: &str = select!("id = ?1");
const LIST: &str = select!("owner = ?1");
const INSERT: &str = concat!(
    "INSERT INTO tower_token_auth_tokens (",
    columns!(),
    ", scope_names) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
);
const UPDATE_SCOPES: &str = concat!(
    "UPDATE tower_token_auth_tokens SET scopes = ?2, scope_names = ?3 WHERE id = ?1 \
     AND revoked_at IS NULL AND spent_at IS NULL AND ?4 < expires_at RETURNING ",
    columns!()
);
const REVOKE: &str = concat!(
    "UPDATE tower_token_auth_tokens SET revoked_at = ?2 \
     WHERE id = ?1 AND revoked_at IS NULL RETURNING ",
    columns!()
);
const REVOKE_FAMILY: &str = concat!(
    "UPDATE tower_token_auth_tokens SET revoked_at = ?2 \
     WHERE family_id = ?1 AND revoked_at IS NULL RETURNING ",
    columns!()
);
const PRESENTED: &str =
    "SELECT family_id, revoked_at, spent_at FROM tower_token_auth_tokens WHERE digest = ?1";
const SPEND: &str = "UPDATE tower_token_auth_tokens SET spent_at = ?2 WHERE digest = ?1";
const FAMILY: &str = select!("family_id = ?1");
const DELETE: &str = "DELETE FROM tower_token_auth_tokens WHERE id = ?1";
const RECORD_USE: &str = "UPDATE tower_token_auth_tokens SET last_used_at = ?2 \
     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)";
const PURGE: &str = "DELETE FROM tower_token_auth_tokens WHERE revoked_at < ?1 OR expires_at < ?1";

type SqlQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Tokens in SQLite. See the [module docs](self).
///
/// Cloning is cheap and every clone shares the pool. Open one with
/// [`connect`](SqliteStore::connect) (PayRequest scopes) or
/// [`connect_with_scopes`](SqliteStore::connect_with_scopes) (any scope
/// set), or over the application's own pool with
/// [`from_pool`](SqliteStore::from_pool) and [`migrate`](SqliteStore::migrate).
pub struct SqliteStore<S> {
    pool: SqlitePool,
    _scopes: PhantomData<fn() -> S>,
}

impl<S> Clone for SqliteStore<S> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            _scopes: PhantomData,
        }
    }
}

impl<S> fmt::Debug for SqliteStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool)
            .finish()
    }
}

impl SqliteStore<PayRequestScopes> {
    /// Opens the PayRequest-scoped store at `url` and migrates its schema.
    /// See [`connect_with_scopes`](Self::connect_with_scopes).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_scopes(url).await
    }
}

impl<S: ScopeSet> SqliteStore<S> {
    /// Opens the store of `S`-scoped tokens at `url` and migrates its
    /// schema: `SqliteStore::<MyScopes>::connect_with_scopes(url)`.
    ///
    /// `url` is `sqlite:` and a path (`sqlite:/var/lib/app/tokens.db`,
    /// `sqlite:tokens.db`), with sqlx's query parameters if needed; the file
    /// is created when missing, and put in WAL mode. `sqlite::memory:` opens
    /// a new in-memory database on one connection kept open (see the
    /// [module docs](self)). Writes wait up to five seconds for the write
    /// lock.
    pub async fn connect_with_scopes(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(store_error)?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new().acquire_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // The database lives while a connection to it is open.
            pool.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            pool.connect_with(options.journal_mode(SqliteJournalMode::Wal))
                .await
        };
        let store = Self::from_pool(pool.map_err(store_error)?);
        store.migrate().await?;
        Ok(store)
    }

    /// A store over the application's pool. Call [`migrate`](Self::migrate)
    /// before its first use.
    ///
    /// Open the pool as [`connect_with_scopes`](Self::connect_with_scopes)
    /// does: a busy timeout, WAL mode for a file, and for an in-memory
    /// database one connection that is never closed.
    ///
    /// ```
    /// use tower_token_auth::scope::PayRequestScopes;
    /// use tower_token_auth_sqlx::sqlx::sqlite::SqlitePoolOptions;
    /// use tower_token_auth_sqlx::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = SqlitePoolOptions::new()
    ///     .max_connections(1)
    ///     .idle_timeout(None)
    ///     .max_lifetime(None)
    ///     .connect("sqlite::memory:")
    ///     .await?;
    /// let store: SqliteStore<PayRequestScopes> = SqliteStore::from_pool(pool);
    /// store.migrate().await?; // idempotent: safe on every start-up
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            _scopes: PhantomData,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or updates the schema: applies, in one transaction, every
    /// migration shipped with the crate that the database has not recorded
    /// yet. Idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS tower_token_auth_migrations (\
                 version INTEGER PRIMARY KEY, \
                 description TEXT NOT NULL, \
                 applied_at INTEGER NOT NULL\
             ) STRICT",
        )
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        for (version, description, sql) in MIGRATIONS {
            let applied =
                sqlx::query("SELECT 1 FROM tower_token_auth_migrations WHERE version = ?1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(store_error)?;
            if applied.is_some() {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            sqlx::query(
                "INSERT INTO tower_token_auth_migrations (version, description, applied_at) \
                 VALUES (?1, ?2, ?3)",
            )
            .bind(version)
            .bind(description)
            .bind(micros(SystemTime::now())?)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    /// A write transaction, holding the database's write lock from the
    /// start.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)
    }

    async fn fetch_one_record(
        &self,
        query: SqlQuery<'_>,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        match query
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?
        {
            Some(row) => Ok(Some(Arc::new(record(&row)?))),
            None => Ok(None),
        }
    }

    async fn fetch_records(&self, query: SqlQuery<'_>) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let rows = query.fetch_all(&self.pool).await.map_err(store_error)?;
        rows.iter().map(|row| record(row).map(Arc::new)).collect()
    }
}

#[async_trait]
impl<S: ScopeSet> TokenStore for SqliteStore<S> {
    type Scopes = S;

    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        let digest = key.digest();
        self.fetch_one_record(sqlx::query(FIND).bind(&digest.as_bytes()[..]))
            .await
    }

    /// Always `None`: every lookup is a query.
    fn find_now(&self, _digest: &TokenDigest) -> Option<FindResult<S>> {
        None
    }
}

#[async_trait]
impl<S: ScopeSet> TokenBackend for SqliteStore<S> {
    async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for record in records {
            insert(&mut tx, record).await?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
        self.fetch_one_record(sqlx::query(GET).bind(id.as_u64() as i64))
            .await
    }

    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
        self.fetch_records(sqlx::query(LIST).bind(owner)).await
    }

    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: S,
        now: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(UPDATE_SCOPES)
            .bind(id.as_u64() as i64)
            .bind(scopes.bits() as i64)
            .bind(scope_names(scopes))
            .bind(micros(now)?);
        self.fetch_one_record(query).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(REVOKE)
            .bind(id.as_u64() as i64)
            .bind(micros(at)?);
        self.fetch_one_record(query).await
    }

    async fn revoke_family(
        &self,
        family: FamilyId,
        at: SystemTime,
    ) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let query = sqlx::query(REVOKE_FAMILY)
            .bind(family.as_u64() as i64)
            .bind(micros(at)?);
        self.fetch_records(query).await
    }

    async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
        let family = x.family.as_u64() as i64;
        let digest = &x.presented.as_bytes()[..];
        let mut tx = self.write().await?;
        let presented: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(PRESENTED)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        // Dropping `tx` rolls it back: nothing is stored.
        match presented {
            Some((f, None, None)) if f == Some(family) => {}
            Some((f, None, Some(_))) if f == Some(family) => {
                return Ok(ExchangeOutcome::AlreadySpent)
            }
            _ => return Ok(ExchangeOutcome::NotLive),
        }
        sqlx::query(SPEND)
            .bind(digest)
            .bind(micros(x.at)?)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        insert(&mut tx, &x.access).await?;
        insert(&mut tx, &x.refresh).await?;
        // The family as it now stands, read under the write lock: nothing
        // else changes it before this transaction commits.
        let rows = sqlx::query(FAMILY)
            .bind(family)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
        let members = rows
            .iter()
            .map(record::<S>)
            .collect::<Result<Vec<_>, _>>()?;
        for id in x.superseded(&members) {
            sqlx::query(DELETE)
                .bind(id.as_u64() as i64)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(ExchangeOutcome::Exchanged)
    }

    async fn record_use(&self, uses: &[(TokenId, SystemTime)]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (id, at) in uses {
            sqlx::query(RECORD_USE)
                .bind(id.as_u64() as i64)
                .bind(micros(*at)?)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        let done = sqlx::query(PURGE)
            .bind(micros(cutoff)?)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}

/// Inserts one row; a taken id or digest is an error.
async fn insert<S: ScopeSet>(
    conn: &mut SqliteConnection,
    r: &TokenRecord<S>,
) -> Result<(), StoreError> {
    let optional = |t: Option<SystemTime>| t.map(micros).transpose();
    sqlx::query(INSERT)
        .bind(r.id.as_u64() as i64)
        .bind(&r.digest.as_bytes()[..])
        .bind(r.name())
        .bind(r.owner())
        .bind(r.kind.as_str())
        .bind(r.scopes.bits() as i64)
        .bind(micros(r.created_at)?)
        .bind(micros(r.expires_at)?)
        .bind(optional(r.revoked_at)?)
        .bind(r.hint())
        .bind(r.family.map(|f| f.id.as_u64() as i64))
        .bind(optional(r.family.map(|f| f.started_at))?)
        .bind(optional(r.spent_at)?)
        .bind(optional(r.last_used_at)?)
        .bind(serde_json::to_string(&r.audience).map_err(|e| StoreError::Backend(e.into()))?)
        .bind(r.client_id())
        .bind(scope_names(r.scopes))
        .execute(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Decodes a row of [`columns!`].
fn record<S: ScopeSet>(row: &SqliteRow) -> Result<TokenRecord<S>, StoreError> {
    let get_i64 = |column: &str| row.try_get::<i64, _>(column).map_err(store_error);
    let get_opt = |column: &str| row.try_get::<Option<i64>, _>(column).map_err(store_error);
    let get_text = |column: &str| row.try_get::<&str, _>(column).map_err(store_error);
    let corrupt = |what: &str| StoreError::Backend(format!("a stored {what} is invalid").into());
    let digest: &[u8] = row.try_get("digest").map_err(store_error)?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| corrupt("digest"))?;
    let family = match (get_opt("family_id")?, get_opt("family_started_at")?) {
        (Some(id), Some(started_at)) => Some(Family {
            id: FamilyId::from_u64(id as u64),
            started_at: from_micros(started_at),
        }),
        _ => None,
    };
    let mut record = TokenRecord::new(
        TokenId::from_u64(get_i64("id")? as u64),
        TokenDigest::from_bytes(digest),
        TokenKind::from_name(get_text("kind")?).ok_or_else(|| corrupt("kind"))?,
        // A token never gains a scope by being read back.
        S::from_bits_truncate(get_i64("scopes")? as u64),
        from_micros(get_i64("created_at")?),
        from_micros(get_i64("expires_at")?),
    )
    .with_name(get_text("name")?)
    .with_owner(get_text("owner")?)
    .with_hint(get_text("hint")?)
    .with_client_id(
        row.try_get::<Option<&str>, _>("client_id")
            .map_err(store_error)?,
    );
    record.revoked_at = get_opt("revoked_at")?.map(from_micros);
    record.family = family;
    record.spent_at = get_opt("spent_at")?.map(from_micros);
    record.last_used_at = get_opt("last_used_at")?.map(from_micros);
    record.audience =
        serde_json::from_str(get_text("audience")?).map_err(|_| corrupt("audience"))?;
    Ok(record)
}

/// The `scope_names` column: the scopes spelled out, space-separated.
fn scope_names<S: ScopeSet>(scopes: S) -> String {
    scopes.scope_names().collect::<Vec<_>>().join(" ")
}

/// `t` as the time columns hold it: microseconds since the Unix epoch,
/// rounded down.
fn micros(t: SystemTime) -> Result<i64, StoreError> {
    let micros = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok(),
        Err(before) => {
            let before = before.duration();
            let partial = u128::from(before.subsec_nanos() % 1_000 != 0);
            i64::try_from(before.as_micros() + partial).ok().map(|m| -m)
        }
    };
    micros.ok_or_else(|| StoreError::Backend("a time is out of the store's range".into()))
}

fn from_micros(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A database that cannot be opened or reached, stays locked beyond the
/// busy timeout or has no room left is [`StoreError::Unavailable`];
/// anything else is [`StoreError::Backend`].
fn store_error(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // The primary result code: SQLITE_BUSY (5), SQLITE_LOCKED (6),
        // SQLITE_NOMEM (7), SQLITE_IOERR (10), SQLITE_FULL (13),
        // SQLITE_CANTOPEN (14).
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

#[cfg(test)]
mod tests;
