-- tower-token-auth: authorization codes and client registrations.
--
-- `PgStore::migrate` applies this file after `0003_audience.sql` (and
-- records it in `tower_token_auth_migrations`). To run it with your own
-- migration tool, apply it as is; if you configured `PgStore::table_prefix`,
-- replace every `tower_token_auth_` below with your prefix first. The two
-- statements together are idempotent.
--
-- The lifecycle engine keeps OAuth authorization codes (kind
-- `authorization_code`, single use, 60 seconds) and RFC 7591 client
-- registrations (kind `client`) in the token table, so that every backend
-- holds them with the same primitives. Neither ever authenticates a request.

ALTER TABLE tower_token_auth_tokens
    DROP CONSTRAINT IF EXISTS tower_token_auth_tokens_kind_check;

ALTER TABLE tower_token_auth_tokens
    ADD CONSTRAINT tower_token_auth_tokens_kind_check
    CHECK (kind IN ('personal_access', 'access', 'refresh', 'authorization_code', 'client'));
