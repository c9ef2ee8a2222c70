-- tower-token-auth: the OAuth client each token was issued to.
--
-- `PgStore::migrate` applies this file after `0004_oauth_kinds.sql` (and
-- records it in `tower_token_auth_migrations`). To run it with your own
-- migration tool, apply it as is; if you configured `PgStore::table_prefix`,
-- replace every `tower_token_auth_` below with your prefix first. Every
-- statement is idempotent.
--
-- Tokens stored before this column existed were issued to no client, which
-- is what NULL means.

ALTER TABLE tower_token_auth_tokens
    ADD COLUMN IF NOT EXISTS client_id text;

COMMENT ON COLUMN tower_token_auth_tokens.client_id IS
    'the OAuth client_id the token was issued to (authorization code grant); NULL for none';
