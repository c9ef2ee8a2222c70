//! Between [`TokenRecord`]s and table rows: identifiers, times, scopes and
//! errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use tower_token_auth::error::StoreError;
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::token::{Family, FamilyId, TokenDigest, TokenId, TokenKind, TokenRecord};

/// A `u64` identifier as the `bigint` column stores it: the same 64 bits,
/// read as signed.
pub(super) const fn id_to_db(id: u64) -> i64 {
    id as i64
}

/// The inverse of [`id_to_db`].
pub(super) const fn id_from_db(id: i64) -> u64 {
    id as u64
}

/// Microseconds since the Unix epoch, rounded down: `timestamptz` keeps
/// microseconds.
fn micros_since_epoch(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok(),
        Err(before) => {
            let before = before.duration();
            let partial = u128::from(before.subsec_nanos() % 1_000 != 0);
            i64::try_from(before.as_micros() + partial).ok().map(|m| -m)
        }
    }
}

fn from_micros(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// `t` for a `timestamptz` parameter, rounded down to the microsecond
/// (times from the [`TokenManager`](tower_token_auth::manager::TokenManager) already
/// are, so they are stored exactly).
pub(super) fn time_to_db(t: SystemTime) -> Result<DateTime<Utc>, StoreError> {
    micros_since_epoch(t)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| StoreError::Backend("a time is out of the store's range".into()))
}

fn time_from_db(t: DateTime<Utc>) -> SystemTime {
    from_micros(t.timestamp_micros())
}

/// Records as the columns of the insert statement: one array per column,
/// in the order of its `unnest` parameters. The strings are borrowed from
/// the records.
#[derive(Default)]
pub(super) struct InsertColumns<'a> {
    ids: Vec<i64>,
    digests: Vec<&'a [u8]>,
    names: Vec<&'a str>,
    owners: Vec<&'a str>,
    kinds: Vec<&'static str>,
    scopes: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    expires_at: Vec<DateTime<Utc>>,
    revoked_at: Vec<Option<DateTime<Utc>>>,
    hints: Vec<&'a str>,
    family_ids: Vec<Option<i64>>,
    family_started_at: Vec<Option<DateTime<Utc>>>,
    spent_at: Vec<Option<DateTime<Utc>>>,
    last_used_at: Vec<Option<DateTime<Utc>>>,
    client_ids: Vec<Option<&'a str>>,
    scope_names: Vec<String>,
    audience_lens: Vec<i32>,
    audiences: Vec<&'a str>,
}

impl<'a> InsertColumns<'a> {
    /// The columns of `records`.
    pub(super) fn of<S: ScopeSet + 'a>(
        records: impl IntoIterator<Item = &'a TokenRecord<S>>,
    ) -> Result<Self, StoreError> {
        let optional = |t: Option<SystemTime>| t.map(time_to_db).transpose();
        let mut c = Self::default();
        for r in records {
            c.ids.push(id_to_db(r.id.as_u64()));
            c.digests.push(&r.digest.as_bytes()[..]);
            c.names.push(r.name());
            c.owners.push(r.owner());
            c.kinds.push(r.kind.as_str());
            c.scopes.push(id_to_db(r.scopes.bits()));
            c.created_at.push(time_to_db(r.created_at)?);
            c.expires_at.push(time_to_db(r.expires_at)?);
            c.revoked_at.push(optional(r.revoked_at)?);
            c.hints.push(r.hint());
            c.family_ids.push(r.family.map(|f| id_to_db(f.id.as_u64())));
            c.family_started_at
                .push(optional(r.family.map(|f| f.started_at))?);
            c.spent_at.push(optional(r.spent_at)?);
            c.last_used_at.push(optional(r.last_used_at)?);
            c.client_ids.push(r.client_id());
            c.scope_names.push(scope_names(r.scopes).join(" "));
            let len = i32::try_from(r.audience.len())
                .map_err(|_| StoreError::Backend("a token has too many resources".into()))?;
            c.audience_lens.push(len);
            c.audiences.extend(r.audience.iter().map(String::as_str));
        }
        Ok(c)
    }

    /// Binds the columns to the insert statement.
    pub(super) fn bind<'q>(
        self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.ids)
            .bind(self.digests)
            .bind(self.names)
            .bind(self.owners)
            .bind(self.kinds)
            .bind(self.scopes)
            .bind(self.created_at)
            .bind(self.expires_at)
            .bind(self.revoked_at)
            .bind(self.hints)
            .bind(self.family_ids)
            .bind(self.family_started_at)
            .bind(self.spent_at)
            .bind(self.last_used_at)
            .bind(self.client_ids)
            .bind(self.scope_names)
            .bind(self.audience_lens)
            .bind(self.audiences)
    }
}

/// The `scope_names` column of `scopes`: every scope the set holds, implied
/// ones included.
pub(super) fn scope_names<S: ScopeSet>(scopes: S) -> Vec<String> {
    scopes.scope_names().map(str::to_owned).collect()
}

/// Decodes a row of the store's columns (see `COLUMNS` in `queries`).
pub(super) fn record_from_row<S: ScopeSet>(row: &PgRow) -> Result<TokenRecord<S>, StoreError> {
    let digest: &[u8] = row.try_get("digest").map_err(backend)?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| corrupt("a stored digest is not 32 bytes"))?;
    let kind: &str = row.try_get("kind").map_err(backend)?;
    let kind = TokenKind::from_name(kind).ok_or_else(|| corrupt("unknown token kind"))?;
    let scopes: i64 = row.try_get("scopes").map_err(backend)?;
    let family_id: Option<i64> = row.try_get("family_id").map_err(backend)?;
    let family_started_at: Option<DateTime<Utc>> =
        row.try_get("family_started_at").map_err(backend)?;
    let time = |column: &str| -> Result<SystemTime, StoreError> {
        row.try_get::<DateTime<Utc>, _>(column)
            .map(time_from_db)
            .map_err(backend)
    };
    let optional_time = |column: &str| -> Result<Option<SystemTime>, StoreError> {
        row.try_get::<Option<DateTime<Utc>>, _>(column)
            .map(|t| t.map(time_from_db))
            .map_err(backend)
    };
    let text = |column: &str| row.try_get::<&str, _>(column).map_err(backend);
    let mut record = TokenRecord::new(
        TokenId::from_u64(id_from_db(row.try_get("id").map_err(backend)?)),
        TokenDigest::from_bytes(digest),
        kind,
        // Bits the scope set does not define are dropped: a token never
        // gains a scope by being read back.
        S::from_bits_truncate(id_from_db(scopes)),
        time("created_at")?,
        time("expires_at")?,
    )
    .with_name(text("name")?)
    .with_owner(text("owner")?)
    .with_hint(text("hint")?)
    .with_client_id(
        row.try_get::<Option<&str>, _>("client_id")
            .map_err(backend)?,
    );
    record.revoked_at = optional_time("revoked_at")?;
    record.family = match (family_id, family_started_at) {
        (Some(id), Some(started_at)) => Some(Family {
            id: FamilyId::from_u64(id_from_db(id)),
            started_at: time_from_db(started_at),
        }),
        _ => None,
    };
    record.spent_at = optional_time("spent_at")?;
    record.last_used_at = optional_time("last_used_at")?;
    record.audience = row.try_get("audience").map_err(backend)?;
    Ok(record)
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Backend(what.into())
}

fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// Maps a database error: the database being unreachable, shutting down or
/// out of connections is [`StoreError::Unavailable`] (the middleware answers
/// 503 `temporarily_unavailable`), anything else [`StoreError::Backend`].
pub(super) fn store_error(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 53: insufficient resources
            // (too many connections, out of memory or disk); 57P01-57P05:
            // the server is shutting down, restarting or not accepting
            // connections yet.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t` rounded down to a whole microsecond, as the manager rounds
    /// every time it hands a backend.
    fn to_micros(t: SystemTime) -> SystemTime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(after) => t - Duration::from_nanos(u64::from(after.subsec_nanos() % 1_000)),
            Err(before) => match before.duration().subsec_nanos() % 1_000 {
                0 => t,
                n => t - Duration::from_nanos(u64::from(1_000 - n)),
            },
        }
    }

    #[test]
    fn ids_keep_all_64_bits() {
        for id in [
            0,
            1,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
            0x1f3a_9c0d_5e7b_2a64,
        ] {
            assert_eq!(id_from_db(id_to_db(id)), id);
        }
        assert_eq!(id_to_db(u64::MAX), -1);
    }

    #[test]
    fn times_round_down_to_microseconds_as_the_engine_does() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let stored = time_from_db(time_to_db(t).unwrap());
        assert_eq!(
            stored,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000)
        );
        let before = UNIX_EPOCH - Duration::new(5, 1);
        assert_eq!(
            time_from_db(time_to_db(before).unwrap()),
            UNIX_EPOCH - Duration::new(5, 1_000)
        );
        // A time the engine rounded is stored exactly.
        for t in [
            t,
            before,
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_nanos(999),
        ] {
            let rounded = to_micros(t);
            assert_eq!(time_from_db(time_to_db(rounded).unwrap()), rounded);
            assert_eq!(time_from_db(time_to_db(t).unwrap()), rounded);
        }
    }

    #[test]
    fn insert_columns_have_one_entry_per_record() {
        use tower_token_auth::scope::PayRequestScopes as S;
        let at = to_micros(SystemTime::now());
        let mut bare = TokenRecord::new(
            TokenId::from_u64(u64::MAX),
            TokenDigest::of("pr_pat_x"),
            TokenKind::Access,
            S::BILLING_AGENT,
            at,
            at,
        )
        .with_name("n")
        .with_owner("o")
        .with_hint("h");
        bare.family = Some(Family {
            id: FamilyId::from_u64(1 << 63),
            started_at: at,
        });
        bare.spent_at = Some(at);
        let mut record = bare.clone().with_client_id(Some("client"));
        record.audience = vec!["https://a.example/".into(), "https://b.example/".into()];
        let c = InsertColumns::of([&record, &bare, &record]).unwrap();
        assert_eq!(c.ids, [-1, -1, -1]);
        assert_eq!(c.family_ids, [Some(i64::MIN); 3]);
        assert_eq!(c.scope_names[0], "billing.read billing.write billing.agent");
        assert_eq!(c.revoked_at, [None, None, None]);
        assert_eq!(c.last_used_at.len(), 3);
        assert_eq!(c.audience_lens, [2, 0, 2]);
        assert_eq!(c.client_ids, [Some("client"), None, Some("client")]);
        assert_eq!(c.names, ["n"; 3]);
        assert_eq!(c.audiences.len(), 4);
    }

    #[test]
    fn connection_failures_are_unavailable() {
        assert!(matches!(
            store_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }
}
