-- A request's timers live in its state (the core's `timers`); the database kept a copy of
-- each in `timers`, a row inserted when a task opened and deleted when it closed: on the
-- workload of the performance issue, eight row writes a request, with their index entries
-- and foreign-key checks, for a table read only to find the timers that fall due. The
-- request's row now says when its earliest timer falls due (NULL: none), written in the
-- update every command makes anyway, and the timers due are found through this index of the
-- requests that have one.
ALTER TABLE instances ADD COLUMN next_timer_at BIGINT;
UPDATE instances SET next_timer_at = (SELECT MIN(due_at) FROM timers WHERE timers.instance = instances.id);
CREATE INDEX instances_by_next_timer ON instances (next_timer_at) WHERE next_timer_at IS NOT NULL;
DROP TABLE timers;
