-- What the dispatcher records when it delivers (or captures) a message: the stable
-- Message-ID, the resolved recipients, and the rendered subject and text (no case data:
-- templates only see the request's title, the step, the deadline and the link).
ALTER TABLE outbox ADD COLUMN message_id TEXT;
ALTER TABLE outbox ADD COLUMN recipients TEXT;
ALTER TABLE outbox ADD COLUMN subject TEXT;
ALTER TABLE outbox ADD COLUMN body TEXT;
