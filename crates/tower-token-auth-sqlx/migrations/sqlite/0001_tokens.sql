-- tower-token-auth: the token table of `SqliteStore`.
--
-- `SqliteStore::migrate` applies this file (and records it in
-- `tower_token_auth_migrations`). To run it with your own migration tool,
-- apply it as is: every statement is idempotent.
--
-- One row per token. The plaintext is never stored: `digest` is its SHA-256.
-- `id` and `family_id` are the crate's unsigned 64-bit identifiers stored
-- bit for bit in a signed INTEGER (ids of 2^63 and above read as negative
-- numbers here; `tok_…`/`fam_…` in the application show them as hex).
-- Times are microseconds since the Unix epoch (UTC): read one in SQL with
-- `datetime(created_at / 1000000, 'unixepoch')`.
-- `scopes` is the scope set's bits; `scope_names` spells the same set out
-- (implied scopes included, space-separated) for people reading the table.
-- `audience` is a JSON array of the resources (RFC 8707) the token is for:
-- list them in SQL with `json_each(audience)`.

CREATE TABLE IF NOT EXISTS tower_token_auth_tokens (
    digest            BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    id                INTEGER NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    owner             TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('personal_access', 'access', 'refresh', 'authorization_code', 'client')),
    scopes            INTEGER NOT NULL,
    scope_names       TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    revoked_at        INTEGER,
    spent_at          INTEGER,
    last_used_at      INTEGER,
    family_id         INTEGER,
    family_started_at INTEGER,
    hint              TEXT    NOT NULL,
    audience          TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(audience) = 'array'),
    CHECK ((family_id IS NULL) = (family_started_at IS NULL))
) STRICT, WITHOUT ROWID;

-- `TokenManager::list`: one owner's tokens.
CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_owner_idx
    ON tower_token_auth_tokens (owner, created_at);

-- Family revocation, and the rotation step of a refresh exchange.
CREATE INDEX IF NOT EXISTS tower_token_auth_tokens_family_idx
    ON tower_token_auth_tokens (family_id)
    WHERE family_id IS NOT NULL;
