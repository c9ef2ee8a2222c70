-- tower-token-auth: the OAuth client each token was issued to.
--
-- `SqliteStore::migrate` applies this file after `0001_tokens.sql` (and
-- records it in `tower_token_auth_migrations`, so it runs once). To run it
-- with your own migration tool, apply it once: SQLite has no
-- `ADD COLUMN IF NOT EXISTS`.
--
-- `client_id` is the OAuth client_id the token was issued to (the tokens of
-- an authorization code grant); NULL for tokens issued to no client, which
-- is what every token stored before this column existed was.

ALTER TABLE tower_token_auth_tokens ADD COLUMN client_id TEXT;
