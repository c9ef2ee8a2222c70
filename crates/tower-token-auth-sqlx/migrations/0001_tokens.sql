-- tower-token-auth: the token table of `PgStore`.
--
-- `PgStore::migrate` applies this file (and records it in
-- `tower_token_auth_migrations`). To run it with your own migration tool,
-- apply it as is; if you configured `PgStore::table_prefix`, replace every
-- `tower_token_auth_` below with your prefix first. Every statement is
-- idempotent.
--
-- One row per token. The plaintext is never stored: `digest` is its SHA-256.
-- `id` and `family_id` are the crate's unsigned 64-bit identifiers stored
-- bit for bit in a signed `bigint` (ids of 2^63 and above read as negative
-- numbers here; `tok_…`/`fam_…` in the application show them as hex).
-- `scopes` is the scope set's bits; `scope_names` spells the same set out
-- (implied scopes included) for people reading the table in SQL.

CREATE TABLE IF NOT EXISTS tower_token_auth_tokens (
    digest            bytea       NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    id                bigint      NOT NULL UNIQUE,
    name              text        NOT NULL,
    owner             text        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('personal_access', 'access', 'refresh')),
    scopes            bigint      NOT NULL,
    scope_names       text[]      NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    revoked_at        timestamptz,
    spent_at          timestamptz,
    last_used_at      timestamptz,
    family_id         bigint,
    family_started_at timestamptz,
    hint              text        NOT NULL,
    CHECK ((family_id IS NULL) = (family_started_at IS NULL))
);

-- `TokenManager::list`: one owner's tokens, oldest first.
CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_owner_idx
    ON tower_token_auth_tokens (owner, created_at);

-- `TokenManager::revoke_family` and refresh-token reuse detection.
CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_family_idx
    ON tower_token_auth_tokens (family_id)
    WHERE family_id IS NOT NULL;

COMMENT ON TABLE tower_token_auth_tokens IS
    'tower-token-auth tokens: SHA-256 digests and metadata, never a plaintext token';
COMMENT ON COLUMN tower_token_auth_tokens.id IS
    'TokenId (u64) stored bit for bit as bigint: shown as tok_<16 hex digits>';
COMMENT ON COLUMN tower_token_auth_tokens.family_id IS
    'FamilyId (u64) stored bit for bit as bigint: shown as fam_<16 hex digits>';
COMMENT ON COLUMN tower_token_auth_tokens.scopes IS
    'scope bits of the application''s scope set; scope_names spells them out';
