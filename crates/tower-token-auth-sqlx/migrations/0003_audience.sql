-- tower-token-auth: the audience (RFC 8707 resources) of each token.
--
-- `PgStore::migrate` applies this file after `0002_purge_indexes.sql` (and
-- records it in `tower_token_auth_migrations`). To run it with your own
-- migration tool, apply it as is; if you configured `PgStore::table_prefix`,
-- replace every `tower_token_auth_` below with your prefix first. Every
-- statement is idempotent.
--
-- Tokens stored before this column existed get an empty audience, which is
-- what the crate reads for a token issued with none.

ALTER TABLE tower_token_auth_tokens
    ADD COLUMN IF NOT EXISTS audience text[] NOT NULL DEFAULT '{}';

COMMENT ON COLUMN tower_token_auth_tokens.audience IS
    'resources (RFC 8707 resource identifiers) the token was issued for, in order; empty for none';
