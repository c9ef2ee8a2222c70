//! The SQL of [`PgStore`](super::PgStore), built once per store from its
//! validated table prefix.

use crate::store::StoreError;

/// The prefix of every name the store uses when none is configured.
pub(super) const DEFAULT_PREFIX: &str = "tower_token_auth_";

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`), in bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

/// The longest suffix appended to the prefix (`tokens_family_idx`).
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
        Err(StoreError::InvalidInput(format!(
            "a table prefix is a lower-case letter or `_` followed by lower-case letters, \
             digits or `_`, at most {MAX_PREFIX_LEN} bytes"
        )))
    }
}

/// The columns of a token row, in the order [`super::row`] decodes them.
const COLUMNS: &str = "id, digest, name, owner, kind, scopes, created_at, expires_at, \
                       revoked_at, hint, family_id, family_started_at, spent_at, last_used_at";

/// The columns an insert writes: [`COLUMNS`] and the readable scope names.
const INSERT_COLUMNS: &str = "id, digest, name, owner, kind, scopes, created_at, expires_at, \
                              revoked_at, hint, family_id, family_started_at, spent_at, \
                              last_used_at, scope_names";

/// How many bind parameters one inserted row takes.
pub(super) const INSERT_PARAMS: usize = 15;

/// Every statement the store runs, with its table and channel names in.
#[derive(Debug)]
pub(super) struct Queries {
    pub(super) prefix: String,
    pub(super) table: String,
    pub(super) migrations_table: String,
    pub(super) channel: String,
    pub(super) find: String,
    pub(super) find_for_update: String,
    pub(super) get: String,
    pub(super) list: String,
    pub(super) insert_one: String,
    pub(super) insert_two: String,
    pub(super) revoke: String,
    pub(super) revoke_pat_for_regeneration: String,
    pub(super) revoke_family: String,
    pub(super) lock_family: String,
    pub(super) lock_family_of: String,
    pub(super) family_owner: String,
    pub(super) kind_and_revocation: String,
    pub(super) spend: String,
    pub(super) record_use: String,
}

impl Queries {
    /// The statements for `prefix`, which must have passed
    /// [`validate_prefix`].
    pub(super) fn new(prefix: &str) -> Self {
        let table = format!("{prefix}tokens");
        let t = &table;
        // Each revocation publishes the digest of every token it revoked, in
        // the same statement (and so the same transaction) as the update:
        // listeners hear of it exactly when it commits.
        let notify = "pg_notify($3, encode(digest, 'hex'))";
        let family_lock =
            |family: &str| format!("pg_advisory_xact_lock(hashtext('{t}'), hashint8({family}))");
        Self {
            prefix: prefix.to_owned(),
            migrations_table: format!("{prefix}migrations"),
            channel: format!("{prefix}revoked"),
            find: format!("SELECT {COLUMNS} FROM {t} WHERE digest = $1"),
            find_for_update: format!("SELECT {COLUMNS} FROM {t} WHERE digest = $1 FOR UPDATE"),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1"),
            list: format!("SELECT {COLUMNS} FROM {t} WHERE owner = $1 ORDER BY created_at"),
            insert_one: insert(t, 1),
            insert_two: insert(t, 2),
            revoke: format!(
                "WITH revoked AS (\
                     UPDATE {t} SET revoked_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL \
                     RETURNING id, owner, digest\
                 ) \
                 SELECT id, owner, {notify} FROM revoked"
            ),
            revoke_pat_for_regeneration: format!(
                "WITH revoked AS (\
                     UPDATE {t} SET revoked_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL AND kind = 'personal_access' \
                     RETURNING {COLUMNS}\
                 ) \
                 SELECT {COLUMNS}, {notify} FROM revoked"
            ),
            // Rows are locked in `id` order, as `record_use` locks them: two
            // statements that lock several rows each cannot wait on each
            // other in a cycle.
            revoke_family: format!(
                "WITH revoked AS (\
                     UPDATE {t} SET revoked_at = $2 \
                     WHERE id IN (\
                         SELECT id FROM {t} \
                         WHERE family_id = $1 AND revoked_at IS NULL \
                         ORDER BY id FOR UPDATE\
                     ) AND revoked_at IS NULL \
                     RETURNING owner, digest\
                 ) \
                 SELECT owner, {notify} FROM revoked"
            ),
            // A transaction that rotates or revokes a family holds this lock
            // until it ends, so the two never interleave: a family revoked
            // while one of its tokens is exchanged also loses the new pair.
            // The two-key form cannot collide with single-key advisory locks
            // (the migration lock, or the application's own).
            lock_family: format!("SELECT {}", family_lock("$1::bigint")),
            lock_family_of: format!(
                "SELECT {} FROM {t} WHERE digest = $1 AND family_id IS NOT NULL",
                family_lock("family_id")
            ),
            family_owner: format!(
                "SELECT owner FROM {t} WHERE family_id = $1 ORDER BY created_at LIMIT 1"
            ),
            kind_and_revocation: format!("SELECT kind, revoked_at FROM {t} WHERE id = $1"),
            spend: format!(
                "WITH spent AS (\
                     UPDATE {t} SET spent_at = $2 WHERE digest = $1 RETURNING digest\
                 ) \
                 SELECT {notify} FROM spent"
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
            table,
        }
    }

    /// The migration `sql` with the default prefix replaced by this store's.
    pub(super) fn migration(&self, sql: &str) -> String {
        sql.replace(DEFAULT_PREFIX, &self.prefix)
    }
}

fn insert(table: &str, rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=INSERT_PARAMS)
                .map(|i| format!("${}", row * INSERT_PARAMS + i))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {table} ({INSERT_COLUMNS}) VALUES {}",
        values.join(", ")
    )
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
                matches!(validate_prefix(bad), Err(StoreError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn derived_names_fit_in_an_identifier() {
        let q = Queries::new(&"x".repeat(MAX_PREFIX_LEN));
        let migration = q.migration(include_str!("../../../migrations/0001_tokens.sql"));
        assert!(migration.contains(&format!("{}tokens_family_idx", q.prefix)));
        for name in [&q.table, &q.migrations_table, &q.channel] {
            assert!(name.len() <= MAX_IDENTIFIER_LEN, "{name}");
        }
        assert!(format!("{}tokens_family_idx", q.prefix).len() <= MAX_IDENTIFIER_LEN);
    }

    #[test]
    fn inserts_number_their_parameters() {
        let two = insert("t", 2);
        assert!(two.contains("($1, "));
        assert!(two.contains("$15), ($16, "));
        assert!(two.ends_with("$30)"));
    }
}
