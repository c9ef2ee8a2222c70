-- tower-token-auth: the indexes of `PgStore`'s purge.
--
-- `PgStore::migrate` applies this file after `0001_tokens.sql` (and records
-- it in `tower_token_auth_migrations`). To run it with your own migration
-- tool, apply it as is; if you configured `PgStore::table_prefix`, replace
-- every `tower_token_auth_` below with your prefix first. Every statement is
-- idempotent. On a large table, create these indexes with `CREATE INDEX
-- CONCURRENTLY` (same names) before migrating, so that writes are not
-- blocked while they are built.
--
-- `TokenManager::purge` deletes the rows revoked or expired before a cutoff
-- (`revoked_at < $1 OR expires_at < $1`): with these two indexes it reads
-- only those rows, never the whole table.

CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_expiry_idx
    ON tower_token_auth_tokens (expires_at);

CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_revoke_idx
    ON tower_token_auth_tokens (revoked_at)
    WHERE revoked_at IS NOT NULL;
