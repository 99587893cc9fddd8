-- The desk of each task, on the task's row, so the inbox reads a staff member's (desk, role)
-- pairs from one index, in its order (overdue first, then by deadline), without reading the
-- requests or sorting a role's thousands of tasks.
ALTER TABLE tasks ADD COLUMN desk TEXT;
UPDATE tasks SET desk = (SELECT name FROM instances WHERE instances.id = tasks.instance);
CREATE INDEX tasks_inbox ON tasks (desk, role, state, assignee, overdue DESC, due_at, created_at, instance, seq);
