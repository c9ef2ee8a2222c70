//! The SQL of [`PgStore`](super::PgStore), built once per store from its
//! validated table prefix.

use tower_token_auth::error::StoreError;

/// The prefix of every name the store uses when none is configured.
pub(super) const DEFAULT_PREFIX: &str = "tower_token_auth_";

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`), in bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

/// The longest suffix appended to the prefix (`tokens_family_idx`; the
/// index names of later migrations are no longer).
const LONGEST_SUFFIX: usize = "tokens_family_idx".len();

/// The longest prefix accepted: every derived name stays within the limit,
/// so PostgreSQL never truncates one silently.
pub(super) const MAX_PREFIX_LEN: usize = MAX_IDENTIFIER_LEN - LONGEST_SUFFIX;

/// Checks that `prefix` is safe to splice into SQL: `[a-z_][a-z0-9_]*`, at
/// most [`MAX_PREFIX_LEN`] bytes.
pub(super) fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    let mut bytes = prefix.bytes();
    let well_formed = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if well_formed && prefix.len() <= MAX_PREFIX_LEN {
        Ok(())
    } else {
        Err(StoreError::Misconfigured(format!(
            "a table prefix is a lower-case letter or `_` followed by lower-case letters, \
             digits or `_`, at most {MAX_PREFIX_LEN} bytes"
        )))
    }
}

/// The columns of a token row, as [`super::row`] decodes them.
const COLUMNS: &str = "id, digest, name, owner, kind, scopes, created_at, expires_at, \
                       revoked_at, hint, family_id, family_started_at, spent_at, last_used_at, \
                       client_id, audience";

/// The columns of a token row that the insert takes from its `unnest`
/// parameters one value per row ([`COLUMNS`] but the audience).
const FLAT_COLUMNS: &str = "id, digest, name, owner, kind, scopes, created_at, expires_at, \
                            revoked_at, hint, family_id, family_started_at, spent_at, \
                            last_used_at, client_id";

/// Every statement the store runs, with its table and channel names in.
#[derive(Debug)]
pub(super) struct Queries {
    pub(super) prefix: String,
    pub(super) table: String,
    pub(super) migrations_table: String,
    pub(super) channel: String,
    pub(super) find: String,
    pub(super) get: String,
    pub(super) list: String,
    pub(super) insert: String,
    pub(super) update_scopes: String,
    pub(super) revoke: String,
    pub(super) revoke_family: String,
    pub(super) lock_family: String,
    pub(super) lock_exchanged: String,
    pub(super) spend: String,
    pub(super) delete: String,
    pub(super) record_use: String,
    pub(super) purge: String,
}

impl Queries {
    /// The statements for `prefix`, which must have passed
    /// [`validate_prefix`].
    pub(super) fn new(prefix: &str) -> Self {
        let table = format!("{prefix}tokens");
        let t = &table;
        // Every statement that changes what a lookup would answer publishes
        // the digest of each row it changed, in the statement itself (and so
        // in its transaction): listeners hear of it exactly when it commits.
        // The channel is always the last parameter, `$n` here.
        let notify = |n: u8| format!("pg_notify(${n}, encode(digest, 'hex')) AS notified");
        Self {
            prefix: prefix.to_owned(),
            migrations_table: format!("{prefix}migrations"),
            channel: format!("{prefix}revoked"),
            find: format!("SELECT {COLUMNS} FROM {t} WHERE digest = $1"),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1"),
            // `TokenManager::list` orders the records itself.
            list: format!("SELECT {COLUMNS} FROM {t} WHERE owner = $1"),
            // One statement for any number of rows: all of them or none. SQL
            // arrays cannot be ragged, so the two list columns arrive
            // otherwise. The scope names come space-separated (scope tokens
            // have no spaces, RFC 6749 §3.3; the column is for readers, the
            // bits are the truth). The audiences, which must come back
            // exactly, come as one array of every row's resources in row
            // order ($18) and each row's count ($17): a row's audience is
            // the slice after the resources of the rows before it.
            insert: format!(
                "INSERT INTO {t} ({COLUMNS}, scope_names) \
                 SELECT {FLAT_COLUMNS}, \
                     ($18::text[])[before + 1:before + audience_len], \
                     string_to_array(names, ' ') \
                 FROM (\
                     SELECT *, \
                         (sum(audience_len) OVER (ORDER BY ord))::int - audience_len AS before \
                     FROM unnest(\
                         $1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::text[], \
                         $6::bigint[], $7::timestamptz[], $8::timestamptz[], \
                         $9::timestamptz[], $10::text[], $11::bigint[], $12::timestamptz[], \
                         $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[], \
                         $17::int[]\
                     ) WITH ORDINALITY AS r({FLAT_COLUMNS}, names, audience_len, ord)\
                 ) AS r"
            ),
            // The liveness check and the write are one statement: a
            // concurrent revocation either commits first (and this updates
            // nothing) or waits for this one.
            update_scopes: format!(
                "UPDATE {t} SET scopes = $2, scope_names = $3 \
                 WHERE id = $1 AND revoked_at IS NULL AND spent_at IS NULL AND expires_at > $4 \
                 RETURNING {COLUMNS}, {}",
                notify(5)
            ),
            // Of concurrent revocations of one row, the first takes its row
            // lock; the others then re-check `revoked_at IS NULL` on the row
            // it committed and update nothing.
            revoke: format!(
                "UPDATE {t} SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING {COLUMNS}, {}",
                notify(3)
            ),
            // Rows are locked in `id` order (the signed `bigint` order), as
            // every statement that locks several rows locks them: two such
            // statements cannot wait on each other in a cycle.
            revoke_family: format!(
                "UPDATE {t} SET revoked_at = $2 \
                 WHERE id IN (\
                     SELECT id FROM {t} \
                     WHERE family_id = $1 AND revoked_at IS NULL \
                     ORDER BY id FOR UPDATE\
                 ) AND revoked_at IS NULL \
                 RETURNING {COLUMNS}, {}",
                notify(3)
            ),
            // A transaction that exchanges in a family or revokes it holds
            // this lock until it ends, so the two never interleave: a family
            // revoked while one of its tokens is exchanged also loses the new
            // pair. It must be a statement of its own, before the ones it
            // protects: each of those then reads what the previous holder
            // committed. The two-key form cannot collide with single-key
            // advisory locks (the migration lock, or the application's own).
            lock_family: format!(
                "SELECT pg_advisory_xact_lock(hashtext('{t}'), hashint8($1::bigint))"
            ),
            // Every row an exchange may change, locked in `id` order in one
            // sweep: the family's rows and the presented one (which is in the
            // family unless the exchange is refused).
            lock_exchanged: format!(
                "SELECT {COLUMNS} FROM {t} WHERE family_id = $1 OR digest = $2 \
                 ORDER BY id FOR UPDATE"
            ),
            spend: format!(
                "UPDATE {t} SET spent_at = $2 WHERE digest = $1 RETURNING {}",
                notify(3)
            ),
            delete: format!(
                "DELETE FROM {t} WHERE id = ANY($1::bigint[]) RETURNING {}",
                notify(2)
            ),
            // Duplicate ids in one batch collapse to their latest time, and
            // a stored time that is already later wins. Rows are locked in
            // `id` order (see `revoke_family`): two instances flushing
            // overlapping batches cannot deadlock.
            record_use: format!(
                "UPDATE {t} AS t SET last_used_at = u.at \
                 FROM (\
                     SELECT l.id, x.at FROM {t} AS l \
                     JOIN (\
                         SELECT id, max(at) AS at \
                         FROM unnest($1::bigint[], $2::timestamptz[]) AS x(id, at) \
                         GROUP BY id\
                     ) AS x ON l.id = x.id \
                     WHERE l.last_used_at IS NULL OR l.last_used_at < x.at \
                     ORDER BY l.id FOR UPDATE OF l\
                 ) AS u \
                 WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)"
            ),
            // Rows locked in `id` order (see `revoke_family`). Dead rows are
            // unusable already, so their deletion is not announced.
            purge: format!(
                "DELETE FROM {t} \
                 WHERE id IN (\
                     SELECT id FROM {t} \
                     WHERE revoked_at < $1 OR expires_at < $1 \
                     ORDER BY id FOR UPDATE\
                 ) AND (revoked_at < $1 OR expires_at < $1)"
            ),
            table,
        }
    }

    /// The migration `sql` with the default prefix replaced by this store's.
    pub(super) fn migration(&self, sql: &str) -> String {
        sql.replace(DEFAULT_PREFIX, &self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_plain_lower_case_identifiers() {
        for good in [
            "a",
            "_",
            "tower_token_auth_",
            "auth2_",
            &"x".repeat(MAX_PREFIX_LEN),
        ] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Auth_",
            "1auth",
            "auth-",
            "auth.",
            "auth\"; DROP TABLE x; --",
            "auth ",
            "é",
            &"x".repeat(MAX_PREFIX_LEN + 1),
        ] {
            assert!(
                matches!(validate_prefix(bad), Err(StoreError::Misconfigured(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn derived_names_fit_in_an_identifier() {
        let q = Queries::new(&"x".repeat(MAX_PREFIX_LEN));
        for name in [&q.table, &q.migrations_table, &q.channel] {
            assert!(name.len() <= MAX_IDENTIFIER_LEN, "{name}");
        }
        for (_, _, sql) in super::super::MIGRATIONS {
            let migration = q.migration(sql);
            assert!(!migration.contains(DEFAULT_PREFIX));
            // Every name the migration creates starts with the prefix.
            for word in migration.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with(&q.prefix) {
                    assert!(word.len() <= MAX_IDENTIFIER_LEN, "{word}");
                }
            }
        }
        assert!(format!("{}tokens_family_idx", q.prefix).len() <= MAX_IDENTIFIER_LEN);
    }

    #[test]
    fn every_statement_names_the_table() {
        let q = Queries::new("p_");
        for sql in [
            &q.find,
            &q.get,
            &q.list,
            &q.insert,
            &q.update_scopes,
            &q.revoke,
            &q.revoke_family,
            &q.lock_family,
            &q.lock_exchanged,
            &q.spend,
            &q.delete,
            &q.record_use,
            &q.purge,
        ] {
            assert!(sql.contains("p_tokens"), "{sql}");
            assert!(!sql.contains(DEFAULT_PREFIX), "{sql}");
        }
    }
}
