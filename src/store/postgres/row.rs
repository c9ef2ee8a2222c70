//! Between [`TokenRecord`]s and table rows: identifiers, times, scopes and
//! errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use crate::scope::ScopeSet;
use crate::store::{Family, FamilyId, StoreError, TokenId, TokenRecord};
use crate::token::{TokenDigest, TokenKind};

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

/// `t` as the database will store it: rounded down to the microsecond.
///
/// Records are truncated before they are written, so the record a store
/// returns from an issuance equals the one it later finds.
pub(super) fn truncate(t: SystemTime) -> SystemTime {
    micros_since_epoch(t).map_or(t, from_micros)
}

/// `t` for a `timestamptz` parameter.
pub(super) fn time_to_db(t: SystemTime) -> Result<DateTime<Utc>, StoreError> {
    micros_since_epoch(t)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| StoreError::InvalidInput("a time is out of the store's range".into()))
}

fn time_from_db(t: DateTime<Utc>) -> SystemTime {
    from_micros(t.timestamp_micros())
}

/// Truncates every time of a freshly minted record to what the table keeps.
pub(super) fn truncate_record<S>(record: &mut TokenRecord<S>) {
    record.created_at = truncate(record.created_at);
    record.expires_at = truncate(record.expires_at);
    record.revoked_at = record.revoked_at.map(truncate);
    record.spent_at = record.spent_at.map(truncate);
    record.last_used_at = record.last_used_at.map(truncate);
    if let Some(family) = &mut record.family {
        family.started_at = truncate(family.started_at);
    }
}

/// Binds the [`INSERT_PARAMS`](super::queries::INSERT_PARAMS) parameters of
/// one row, in the order of the insert's column list.
pub(super) fn bind_record<'q, S: ScopeSet>(
    query: Query<'q, Postgres, PgArguments>,
    record: &TokenRecord<S>,
) -> Result<Query<'q, Postgres, PgArguments>, StoreError> {
    let optional = |t: Option<SystemTime>| t.map(time_to_db).transpose();
    let scope_names: Vec<String> = record.scopes.scope_names().map(str::to_owned).collect();
    Ok(query
        .bind(id_to_db(record.id.as_u64()))
        .bind(record.digest.as_bytes().to_vec())
        .bind(record.name.clone())
        .bind(record.owner.clone())
        .bind(record.kind.as_str())
        .bind(id_to_db(record.scopes.bits()))
        .bind(time_to_db(record.created_at)?)
        .bind(time_to_db(record.expires_at)?)
        .bind(optional(record.revoked_at)?)
        .bind(record.hint.clone())
        .bind(record.family.map(|f| id_to_db(f.id.as_u64())))
        .bind(optional(record.family.map(|f| f.started_at))?)
        .bind(optional(record.spent_at)?)
        .bind(optional(record.last_used_at)?)
        .bind(scope_names))
}

/// Decodes a row of the store's columns (see `COLUMNS` in `queries`).
pub(super) fn record_from_row<S: ScopeSet>(row: &PgRow) -> Result<TokenRecord<S>, StoreError> {
    let digest: Vec<u8> = row.try_get("digest").map_err(backend)?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| corrupt("a stored digest is not 32 bytes"))?;
    let kind: String = row.try_get("kind").map_err(backend)?;
    let kind = TokenKind::from_name(&kind).ok_or_else(|| corrupt("unknown token kind"))?;
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
    Ok(TokenRecord {
        id: TokenId::from_u64(id_from_db(row.try_get("id").map_err(backend)?)),
        digest: TokenDigest::from_bytes(digest),
        name: row.try_get("name").map_err(backend)?,
        owner: row.try_get("owner").map_err(backend)?,
        kind,
        // Bits the scope set does not define are dropped: a token never
        // gains a scope by being read back.
        scopes: S::from_bits_truncate(id_from_db(scopes)),
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        revoked_at: optional_time("revoked_at")?,
        hint: row.try_get("hint").map_err(backend)?,
        family: match (family_id, family_started_at) {
            (Some(id), Some(started_at)) => Some(Family {
                id: FamilyId::from_u64(id_from_db(id)),
                started_at: time_from_db(started_at),
            }),
            _ => None,
        },
        spent_at: optional_time("spent_at")?,
        last_used_at: optional_time("last_used_at")?,
    })
}

/// Decodes the `kind` column alone.
pub(super) fn kind_from_row(row: &PgRow) -> Result<TokenKind, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    TokenKind::from_name(&kind).ok_or_else(|| corrupt("unknown token kind"))
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
    fn times_round_down_to_microseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(
            truncate(t),
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000)
        );
        let db = time_to_db(t).unwrap();
        assert_eq!(time_from_db(db), truncate(t));
        let before = UNIX_EPOCH - Duration::new(5, 1);
        assert_eq!(truncate(before), UNIX_EPOCH - Duration::new(5, 1_000));
        assert_eq!(time_from_db(time_to_db(before).unwrap()), truncate(before));
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
