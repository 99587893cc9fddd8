-- PostgreSQL only (on SQLite this migration does nothing; see store.rs). The rows that only
-- a command writes (its request's tasks, history entries, intake fields, and the facts and
-- indicator queue written when it ends) drop their foreign key to `instances`. Each is
-- inserted in the transaction that first writes its request's row (the insert of a new
-- request, or the update on the condition that its version is the one read), and requests
-- are never deleted: the check could not fail, yet cost PostgreSQL a lookup and a row lock
-- on the request for every row inserted, a tenth of its time on the performance issue's
-- workload (`bench/README.md`). History tables without foreign keys are the usual practice
-- of workflow engines (Camunda's and Flowable's ACT_HI_*). `guichet audit verify` reports
-- history entries of no request. Rows written outside a command's transaction keep theirs:
-- links, callbacks, the outbox (digests and sign-in links), sessions and API tokens.
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_instance_fkey;
ALTER TABLE history DROP CONSTRAINT IF EXISTS history_instance_fkey;
ALTER TABLE instance_fields DROP CONSTRAINT IF EXISTS instance_fields_instance_fkey;
ALTER TABLE step_visits DROP CONSTRAINT IF EXISTS step_visits_instance_fkey;
ALTER TABLE kpi_facts DROP CONSTRAINT IF EXISTS kpi_facts_instance_fkey;
ALTER TABLE kpi_pending DROP CONSTRAINT IF EXISTS kpi_pending_instance_fkey;
