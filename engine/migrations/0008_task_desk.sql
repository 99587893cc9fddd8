-- The desk of each task, on the task's row, so the inbox filters and counts a staff member's
-- (desk, role) pairs from one index without reading the requests.
ALTER TABLE tasks ADD COLUMN desk TEXT;
UPDATE tasks SET desk = (SELECT name FROM instances WHERE instances.id = tasks.instance);
CREATE INDEX tasks_inbox ON tasks (desk, role, state, assignee);
