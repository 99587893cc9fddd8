-- How each visit of a step ended: `completed`, `timeout` or `withdrawn` (NULL while open).
-- Before this version a visit ended only by its step's completion: a visit that timed out, a
-- gate, a task withdrawn or a step still open when the request ended had no end, and the
-- time spent in it counted nowhere. The visits of the requests already ended are derived
-- again from their history (`facts_stale`, emptied by `Engine::refresh_stale_facts` before
-- each fold), and every request is folded again into new rollups.
ALTER TABLE step_visits ADD COLUMN exit TEXT;

CREATE TABLE facts_stale (
    instance TEXT PRIMARY KEY
);
INSERT INTO facts_stale (instance) SELECT id FROM instances WHERE status <> 'running';

DELETE FROM kpi_rollups;
INSERT INTO kpi_pending (instance)
    SELECT id FROM instances i WHERE status <> 'running'
    AND NOT EXISTS (SELECT 1 FROM kpi_pending p WHERE p.instance = i.id);
