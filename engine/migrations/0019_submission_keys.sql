-- Idempotent submissions: the key a client sent with a new request (the API's
-- `Idempotency-Key`, scoped by account; the portal form's hidden key, scoped by desk), the
-- request it created and a fingerprint of what was submitted. Written in the same
-- transaction as the request, so a retried submission finds the first one, or there is none.
CREATE TABLE submission_keys (
    key TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at BIGINT NOT NULL
);
