-- Local staff accounts (passwords hashed with Argon2id) and their sessions (only the
-- SHA-256 of a session token is stored).
CREATE TABLE users (
    email TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    admin BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    email TEXT NOT NULL REFERENCES users (email),
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
