-- The provider of a call's outbox row, so that providers who pull their work through the API
-- (fetch-and-lock) claim only theirs, and the webhook dispatcher leaves them alone. Rows
-- queued before this column existed have none and stay with the webhook dispatcher.
ALTER TABLE outbox ADD COLUMN provider TEXT;
CREATE INDEX outbox_by_provider ON outbox (provider, state, next_attempt_at);
