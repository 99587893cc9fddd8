-- The indexes the inbox and the open-task counts read hold open tasks only (partial
-- indexes, on SQLite and PostgreSQL alike): a task that closes leaves them instead of moving
-- to a "completed" region that no query reads, so each command writes fewer index pages and
-- the indexes stay as small as the work in progress. The queries name the same conditions
-- (`state IN ('open', 'claimed')`; `state = 'open' AND assignee IS NULL` for a role's
-- unclaimed tasks), which is what lets the databases use them.
DROP INDEX IF EXISTS tasks_open_by_role;
CREATE INDEX tasks_open_by_role ON tasks (state, role, due_at) WHERE state IN ('open', 'claimed');
DROP INDEX IF EXISTS tasks_by_assignee;
CREATE INDEX tasks_by_assignee ON tasks (assignee, state) WHERE state IN ('open', 'claimed');
DROP INDEX IF EXISTS tasks_inbox;
CREATE INDEX tasks_inbox ON tasks (desk, role, state, assignee, overdue DESC, due_at, created_at, instance, seq)
    WHERE state = 'open' AND assignee IS NULL;
-- Only the rows of pull providers are read by provider: email rows (no provider) stay out.
DROP INDEX IF EXISTS outbox_by_provider;
CREATE INDEX outbox_by_provider ON outbox (provider, state, next_attempt_at) WHERE provider IS NOT NULL;
