-- API tokens have scopes (what they may do whatever their account may: `read`, `submit`,
-- `act`, written `read,submit,act`) and may expire. Tokens made before keep every scope
-- and never expire, as they were issued.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read,submit,act';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
