-- API tokens for scripts and providers: each acts as one staff account (its roles, or
-- administration). Only the SHA-256 of a token is stored; the token is shown once.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    email TEXT NOT NULL REFERENCES users (email),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_prefix ON api_tokens (prefix);
