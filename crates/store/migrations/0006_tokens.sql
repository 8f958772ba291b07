-- API tokens get an identity that is not a secret (so they can be listed and
-- revoked), a role, an optional name and expiry, and the times they were
-- last used and revoked. A revoked token keeps its row (with `revoked_at`)
-- so that its secret can never be installed again.
ALTER TABLE api_tokens ADD COLUMN token_id TEXT;
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'tenant';
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT;

-- Existing tokens: admin or tenant as before, no expiry, and an id numbered
-- in order of creation (never derived from the hash: a configured admin
-- secret may be guessable, and its hash must not leak).
UPDATE api_tokens SET role = 'admin' WHERE is_admin = 1;
UPDATE api_tokens SET token_id = 'tok_legacy_' || (
    SELECT COUNT(*) FROM api_tokens o
    WHERE o.created_at < api_tokens.created_at
       OR (o.created_at = api_tokens.created_at AND o.token_hash <= api_tokens.token_hash)
);

CREATE UNIQUE INDEX api_tokens_by_id ON api_tokens (token_id);
CREATE INDEX api_tokens_by_owner ON api_tokens (owner_id);
CREATE INDEX api_tokens_by_role ON api_tokens (role);
DROP INDEX api_tokens_admin;
ALTER TABLE api_tokens DROP COLUMN is_admin;
