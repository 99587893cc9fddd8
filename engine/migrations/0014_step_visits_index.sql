-- No query reads the visits of a step across requests: the indicators and the fit read them
-- through their request (the primary key's first column). Kept, this index took a page per
-- step of a finishing request in each commit (the steps of one request are far apart in it),
-- about one page in seven that SQLite wrote under load.
DROP INDEX IF EXISTS step_visits_by_step;
