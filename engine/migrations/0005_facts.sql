-- Facts derived from a request's history when it ends, for the indicators: one row per visit
-- of a step (a loop visits a step several times), one row per declared indicator, and the
-- intake's choice and yes-no answers (to filter indicators by type of project, say).
CREATE TABLE step_visits (
    instance TEXT NOT NULL REFERENCES instances (id),
    step TEXT NOT NULL,
    visit BIGINT NOT NULL,
    kind TEXT NOT NULL,
    entered_at BIGINT NOT NULL,
    claimed_at BIGINT,
    left_at BIGINT,
    due_at BIGINT,
    outcome TEXT,
    PRIMARY KEY (instance, step, visit)
);
CREATE INDEX step_visits_by_step ON step_visits (step, kind);

CREATE TABLE kpi_facts (
    instance TEXT NOT NULL REFERENCES instances (id),
    kpi TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (kpi, instance)
);

CREATE TABLE instance_fields (
    instance TEXT NOT NULL REFERENCES instances (id),
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (instance, field)
);
CREATE INDEX instance_fields_by_value ON instance_fields (field, value);
