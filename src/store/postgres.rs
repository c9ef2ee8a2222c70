//! A PostgreSQL token store, for services that run on many machines.
//!
//! [`PgStore`] keeps tokens in one table and implements [`TokenStore`] (the
//! middleware's lookup: one indexed `SELECT` by digest) and the whole
//! [`TokenManager`] with the same semantics as
//! [`MemoryStore`](crate::store::MemoryStore): tokens are minted by the same
//! [`IssuePolicy`], so they look, expire and rotate the same.
//!
//! ```no_run
//! use std::time::Duration;
//! use sqlx::postgres::PgPoolOptions;
//! use tower_token_auth::store::{IssueRequest, PgStore, TokenManager};
//! use tower_token_auth::token::TokenKind;
//! use tower_token_auth::TokenAuthLayer;
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
//!
//! let issued = store
//!     .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1"))
//!     .await?;
//! println!("your token, shown once: {}", issued.secret.expose_secret());
//!
//! let layer = TokenAuthLayer::new(store);
//! # drop(layer);
//! # Ok(())
//! # }
//! ```
//!
//! # Schema and migrations
//!
//! The schema ships with the crate in `migrations/0001_tokens.sql` (in the
//! crate's source, next to `Cargo.toml`). [`PgStore::migrate`] applies it
//! under an advisory lock and records it in `tower_token_auth_migrations`;
//! it is idempotent, so every instance may call it at start-up. Teams that
//! run migrations with their own tool apply that file instead (every
//! statement in it is idempotent), replacing `tower_token_auth_` with their
//! prefix if they set one with [`PgStore::table_prefix`].
//!
//! | column | type | holds |
//! |---|---|---|
//! | `digest` | `bytea` primary key | SHA-256 of the token (never the token) |
//! | `id` | `bigint` unique | [`TokenId`] |
//! | `name`, `owner`, `hint` | `text` | as in [`TokenRecord`] |
//! | `kind` | `text` | `personal_access`, `access` or `refresh` |
//! | `scopes` | `bigint` | the scope set's bits (the source of truth) |
//! | `scope_names` | `text[]` | the same scopes spelled out, for SQL readers |
//! | `created_at`, `expires_at`, `revoked_at`, `spent_at`, `last_used_at` | `timestamptz` | |
//! | `family_id`, `family_started_at` | `bigint`, `timestamptz` | [`Family`] |
//!
//! [`TokenId`] and [`FamilyId`] are unsigned 64-bit numbers; the `bigint`
//! columns hold the same 64 bits read as signed, so ids of 2⁶³ and above
//! show as negative numbers in SQL (`tok_…` in the application is the hex of
//! the unsigned value). `timestamptz` keeps microseconds: the store rounds
//! every time down to the microsecond before writing it, so a record read
//! back equals the record that was issued. Scope bits that the scope set no
//! longer defines are dropped when a row is read.
//!
//! The table is `tower_token_auth_tokens` unless a prefix is set; choose
//! the schema with the pool's `search_path`.
//!
//! # Revocation across instances
//!
//! Every statement that makes tokens unusable (revocation, family
//! revocation, regeneration, refresh-token spending) publishes the
//! lower-case hex digest of each token it changed with `pg_notify` on the
//! channel [`PgStore::channel`] (`tower_token_auth_revoked` by default), in
//! the same transaction: listeners hear of it when it commits, never
//! before. With the `cache` feature, a [`RevocationListener`] evicts those
//! tokens from a [`CachedStore`](crate::store::CachedStore) on every
//! instance; any other payload on the channel (for example `all`, sent by an
//! operator after editing the table by hand) flushes the whole cache.
//!
//! # Failures
//!
//! A database that cannot be reached (connection refused, the pool's
//! acquire timeout, the server shutting down or out of connections) is
//! [`StoreError::Unavailable`]: the middleware answers 503
//! `temporarily_unavailable`, never 401. Other database errors are
//! [`StoreError::Backend`]. Nothing is cached here, so when the database
//! comes back the pool reconnects and requests succeed again.

#[cfg(feature = "cache")]
mod listener;
mod queries;
mod row;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use listener::{ListenerHandle, RevocationListener};

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Executor as _, Postgres, Row, Transaction};

use self::queries::Queries;
use self::row::{
    bind_record, id_to_db, kind_from_row, record_from_row, store_error, time_to_db, truncate,
    truncate_record,
};
use super::{
    Family, FamilyId, GrantError, InvalidGrantReason, IssuePolicy, IssueRequest, IssuedToken,
    StoreError, TokenId, TokenInfo, TokenManager, TokenPair, TokenRecord, TokenStore,
};
use crate::audit::AuditEvent;
use crate::scope::{PayRequestScopes, ScopeSet};
use crate::token::{TokenDigest, TokenKind, TokenSecret};

/// The migrations shipped with the crate: version, description, SQL (with
/// the default prefix).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "tokens",
    include_str!("../../migrations/0001_tokens.sql"),
)];

/// Tokens in PostgreSQL. See the [module docs](self).
///
/// Cloning is cheap and every clone shares the pool. Build it from the
/// application's pool with [`new`](PgStore::new) (PayRequest scopes) or
/// [`with_policy`](PgStore::with_policy) (any scope set), and create the
/// table once with [`migrate`](PgStore::migrate).
pub struct PgStore<S = PayRequestScopes> {
    inner: Arc<Inner>,
    _scopes: PhantomData<fn() -> S>,
}

struct Inner {
    pool: PgPool,
    policy: IssuePolicy,
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
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl PgStore<PayRequestScopes> {
    /// A store of PayRequest-scoped tokens in `pool`'s database, with the
    /// default [`IssuePolicy`] and table `tower_token_auth_tokens`. For
    /// another scope set use [`with_policy`](Self::with_policy).
    pub fn new(pool: PgPool) -> Self {
        Self::with_policy(pool, IssuePolicy::default())
    }
}

impl<S: ScopeSet> PgStore<S> {
    /// A store in `pool`'s database that mints tokens by `policy`.
    pub fn with_policy(pool: PgPool, policy: IssuePolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                policy,
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
    /// else is [`StoreError::InvalidInput`].
    ///
    /// ```
    /// # use tower_token_auth::store::PgStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://localhost/app")?;
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
                policy: self.inner.policy.clone(),
                queries: Queries::new(prefix),
            }),
            _scopes: PhantomData,
        })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The issuance policy.
    pub fn policy(&self) -> &IssuePolicy {
        &self.inner.policy
    }

    /// The token table's name.
    pub fn table(&self) -> &str {
        &self.inner.queries.table
    }

    /// The channel revocations are published on (`NOTIFY`).
    pub fn channel(&self) -> &str {
        &self.inner.queries.channel
    }

    /// Creates or updates the schema: applies every migration shipped with
    /// the crate that this database has not recorded yet.
    ///
    /// Idempotent, and safe when several instances start at once (they
    /// take turns on an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let q = &self.inner.queries;
        let mut tx = self.inner.pool.begin().await.map_err(store_error)?;
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

    /// A listener that evicts the tokens revoked through any store on this
    /// table (on any instance) from a [`CachedStore`](crate::store::CachedStore).
    /// See [`RevocationListener`].
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn revocation_listener(&self) -> RevocationListener {
        RevocationListener::new(self.inner.pool.clone(), self.inner.queries.channel.clone())
    }

    /// Starts a [`RevocationListener`] with the default backoff for `cache`,
    /// on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn spawn_revocation_listener<St: TokenStore>(
        &self,
        cache: crate::store::CachedStore<St>,
    ) -> ListenerHandle {
        self.revocation_listener().spawn(cache)
    }

    fn q(&self) -> &Queries {
        &self.inner.queries
    }

    fn audit(&self, event: AuditEvent) {
        self.inner.policy.audit_sink().emit(event);
    }

    /// Mints a record, with its times as the table keeps them.
    fn mint(&self, request: IssueRequest<S>) -> Result<(TokenSecret, TokenRecord<S>), StoreError> {
        let (secret, mut record) = self.inner.policy.mint(request)?;
        truncate_record(&mut record);
        Ok((secret, record))
    }

    fn mint_pair(
        &self,
        name: &str,
        owner: &str,
        access_scopes: S,
        refresh_scopes: S,
        family: Family,
    ) -> Result<[(TokenSecret, TokenRecord<S>); 2], StoreError> {
        let mut pair =
            self.inner
                .policy
                .mint_pair(name, owner, access_scopes, refresh_scopes, family)?;
        for (_, record) in &mut pair {
            truncate_record(record);
        }
        Ok(pair)
    }

    /// The policy's "now", as the table keeps it.
    fn now(&self) -> SystemTime {
        truncate(self.inner.policy.now())
    }

    /// Inserts one or two minted tokens in one statement and announces them.
    async fn store_issued<'e, E>(
        &self,
        executor: E,
        minted: Vec<(TokenSecret, TokenRecord<S>)>,
    ) -> Result<Vec<IssuedToken<S>>, StoreError>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        let sql = match minted.len() {
            1 => &self.q().insert_one,
            _ => &self.q().insert_two,
        };
        let mut query = sqlx::query(sql);
        for (_, record) in &minted {
            query = bind_record(query, record)?;
        }
        query.execute(executor).await.map_err(store_error)?;
        Ok(minted
            .into_iter()
            .map(|(secret, record)| IssuedToken {
                secret,
                record: Arc::new(record),
            })
            .collect())
    }

    fn announce_created(&self, issued: &IssuedToken<S>) {
        self.audit(AuditEvent::TokenCreated {
            id: issued.record.id,
            owner: issued.record.owner.clone(),
            kind: issued.record.kind,
        });
    }

    /// Revokes every live token of `family` at `now`; returns the owner of
    /// the first one revoked and how many were.
    async fn revoke_family_now<'e, E>(
        &self,
        executor: E,
        family: FamilyId,
        now: SystemTime,
    ) -> Result<(Option<String>, usize), StoreError>
    where
        E: sqlx::Executor<'e, Database = Postgres>,
    {
        let rows = sqlx::query(&self.q().revoke_family)
            .bind(id_to_db(family.as_u64()))
            .bind(time_to_db(now)?)
            .bind(&self.q().channel)
            .fetch_all(executor)
            .await
            .map_err(store_error)?;
        let owner = match rows.first() {
            Some(row) => Some(row.try_get("owner").map_err(store_error)?),
            None => None,
        };
        Ok((owner, rows.len()))
    }

    async fn family_owner(&self, family: FamilyId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(&self.q().family_owner)
            .bind(id_to_db(family.as_u64()))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        row.map(|r| r.try_get("owner").map_err(store_error))
            .transpose()
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.inner.pool.begin().await.map_err(store_error)
    }

    /// The record of the row `query` selects, if any.
    async fn fetch_record(
        &self,
        query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<TokenRecord<S>>, StoreError> {
        let row: Option<PgRow> = query
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(record_from_row).transpose()
    }
}

#[async_trait]
impl<S: ScopeSet> TokenStore for PgStore<S> {
    type Scopes = S;

    async fn find(&self, digest: &TokenDigest) -> Result<Option<Arc<TokenRecord<S>>>, StoreError> {
        let query = sqlx::query(&self.q().find).bind(digest.as_bytes().to_vec());
        Ok(self.fetch_record(query).await?.map(Arc::new))
    }
}

#[async_trait]
impl<S: ScopeSet> TokenManager for PgStore<S> {
    async fn issue(&self, request: IssueRequest<S>) -> Result<IssuedToken<S>, StoreError> {
        let minted = self.mint(request)?;
        let mut issued = self.store_issued(&self.inner.pool, vec![minted]).await?;
        let issued = issued.remove(0);
        self.announce_created(&issued);
        Ok(issued)
    }

    async fn issue_pair(
        &self,
        name: &str,
        owner: &str,
        scopes: Option<S>,
    ) -> Result<TokenPair<S>, StoreError> {
        let scopes = scopes.filter(|s| !s.is_empty()).unwrap_or(S::DEFAULT);
        let family = Family {
            id: FamilyId::random()?,
            started_at: self.inner.policy.now(),
        };
        let [access, refresh] = self.mint_pair(name, owner, scopes, scopes, family)?;
        let mut issued = self
            .store_issued(&self.inner.pool, vec![access, refresh])
            .await?;
        let refresh = issued.remove(1);
        let access = issued.remove(0);
        self.announce_created(&access);
        self.announce_created(&refresh);
        Ok(TokenPair { access, refresh })
    }

    async fn list(&self, owner: &str) -> Result<Vec<TokenInfo<S>>, StoreError> {
        let rows = sqlx::query(&self.q().list)
            .bind(owner)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(store_error)?;
        let mut tokens = rows
            .iter()
            .map(|row| record_from_row::<S>(row).map(|r| TokenInfo::from(&r)))
            .collect::<Result<Vec<_>, _>>()?;
        // The same order as every store: by creation time, then by the
        // unsigned id (which SQL would order as signed).
        tokens.sort_by_key(|t| (t.created_at, t.id));
        Ok(tokens)
    }

    async fn get(&self, id: TokenId) -> Result<Option<TokenInfo<S>>, StoreError> {
        let query = sqlx::query(&self.q().get).bind(id_to_db(id.as_u64()));
        Ok(self.fetch_record(query).await?.map(|r| TokenInfo::from(&r)))
    }

    async fn revoke(&self, id: TokenId) -> Result<bool, StoreError> {
        let row = sqlx::query(&self.q().revoke)
            .bind(id_to_db(id.as_u64()))
            .bind(time_to_db(self.now())?)
            .bind(&self.q().channel)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(false);
        };
        self.audit(AuditEvent::TokenRevoked {
            id,
            owner: row.try_get("owner").map_err(store_error)?,
        });
        Ok(true)
    }

    async fn revoke_family(&self, family: FamilyId) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.q().lock_family)
            .bind(id_to_db(family.as_u64()))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let (owner, tokens) = self.revoke_family_now(&mut *tx, family, self.now()).await?;
        tx.commit().await.map_err(store_error)?;
        let owner = match owner {
            Some(owner) => Some(owner),
            None => self.family_owner(family).await?,
        };
        if let Some(owner) = owner {
            self.audit(AuditEvent::FamilyRevoked {
                family,
                owner,
                tokens,
            });
        }
        Ok(tokens)
    }

    async fn revoke_by_digest(&self, digest: &TokenDigest) -> Result<bool, StoreError> {
        let Some(record) = self.find(digest).await? else {
            return Ok(false);
        };
        match (record.kind, record.family) {
            (TokenKind::Refresh, Some(family)) => Ok(self.revoke_family(family.id).await? > 0),
            _ => self.revoke(record.id).await,
        }
    }

    async fn regenerate(&self, id: TokenId) -> Result<Option<IssuedToken<S>>, StoreError> {
        let mut tx = self.begin().await?;
        // Revoke first, in the transaction that stores the new token: of two
        // concurrent regenerations only one finds the old token live.
        let revoked = sqlx::query(&self.q().revoke_pat_for_regeneration)
            .bind(id_to_db(id.as_u64()))
            .bind(time_to_db(self.now())?)
            .bind(&self.q().channel)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(old) = revoked else {
            drop(tx);
            return self.explain_regeneration_refusal(id).await;
        };
        let old = record_from_row::<S>(&old)?;
        let request =
            IssueRequest::new(old.kind, old.name.clone(), old.owner.clone()).scopes(old.scopes);
        let minted = self.mint(request)?;
        let issued = self.store_issued(&mut *tx, vec![minted]).await?.remove(0);
        tx.commit().await.map_err(store_error)?;
        self.announce_created(&issued);
        self.audit(AuditEvent::TokenRegenerated {
            old: id,
            new: issued.record.id,
            owner: old.owner,
        });
        Ok(Some(issued))
    }

    async fn refresh(
        &self,
        presented: &TokenDigest,
        scopes: Option<S>,
    ) -> Result<TokenPair<S>, GrantError> {
        let now = self.now();
        let mut tx = self.begin().await?;
        // The family's lock first: a revocation of the family (or a replay
        // revoking it) waits for this exchange to commit and then revokes
        // the new pair too, or this exchange waits and finds the token
        // revoked. A token of no family has only its row to lock.
        sqlx::query(&self.q().lock_family_of)
            .bind(presented.as_bytes().to_vec())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        // The row lock makes the exchange atomic: a concurrent exchange of
        // the same token waits here, then sees it spent.
        let row = sqlx::query(&self.q().find_for_update)
            .bind(presented.as_bytes().to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Err(GrantError::InvalidGrant(InvalidGrantReason::Unknown));
        };
        let old = record_from_row::<S>(&row)?;
        let access_scopes = match self.inner.policy.check_refresh(&old, now, scopes) {
            Ok(access_scopes) => access_scopes,
            Err(GrantError::InvalidGrant(InvalidGrantReason::Reused)) => {
                if let Some(family) = old.family {
                    let (_, tokens) = self.revoke_family_now(&mut *tx, family.id, now).await?;
                    tx.commit().await.map_err(store_error)?;
                    self.audit(AuditEvent::FamilyRevokedOnReuse {
                        family: family.id,
                        presented: old.id,
                        owner: old.owner.clone(),
                        tokens,
                    });
                }
                return Err(GrantError::InvalidGrant(InvalidGrantReason::Reused));
            }
            Err(error) => return Err(error),
        };
        sqlx::query(&self.q().spend)
            .bind(presented.as_bytes().to_vec())
            .bind(time_to_db(now)?)
            .bind(&self.q().channel)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let family = match old.family {
            Some(family) => family,
            None => Family {
                id: FamilyId::random()?,
                started_at: old.created_at,
            },
        };
        let [access, refresh] =
            self.mint_pair(&old.name, &old.owner, access_scopes, old.scopes, family)?;
        let mut issued = self.store_issued(&mut *tx, vec![access, refresh]).await?;
        tx.commit().await.map_err(store_error)?;
        let refresh = issued.remove(1);
        let access = issued.remove(0);
        self.announce_created(&access);
        self.announce_created(&refresh);
        self.audit(AuditEvent::RefreshRotated {
            old: old.id,
            access: access.record.id,
            refresh: refresh.record.id,
            owner: old.owner.clone(),
        });
        Ok(TokenPair { access, refresh })
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
}

impl<S: ScopeSet> PgStore<S> {
    /// Why `id` could not be regenerated, in the order the
    /// [`MemoryStore`](crate::store::MemoryStore) checks: unknown, then
    /// kind, then revocation.
    async fn explain_regeneration_refusal(
        &self,
        id: TokenId,
    ) -> Result<Option<IssuedToken<S>>, StoreError> {
        let row = sqlx::query(&self.q().kind_and_revocation)
            .bind(id_to_db(id.as_u64()))
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        if kind_from_row(&row)? != TokenKind::PersonalAccess {
            return Err(StoreError::InvalidInput(
                "only personal access tokens are regenerated; refresh the others".into(),
            ));
        }
        Err(StoreError::InvalidInput(
            "a revoked token cannot be regenerated".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Every future of the store can be spawned.
    #[allow(dead_code)]
    fn futures_are_send(store: PgStore) {
        assert_send(&store.migrate());
    }
}
