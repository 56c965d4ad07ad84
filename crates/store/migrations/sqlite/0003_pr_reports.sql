-- centossrv store, schema 3 (SQLite): the last plan report of each pull/merge request.
-- Keep in step with migrations/postgres/0003_pr_reports.sql.
-- The report is the JSON form (report format 1): digests only for sensitive values, so it
-- holds no secret. It is what the next push's report is compared with ("since the last push").
CREATE TABLE pr_reports (
    forge        TEXT NOT NULL,
    number       INTEGER NOT NULL,
    head_sha     TEXT NOT NULL,
    base_sha     TEXT,
    report       TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (forge, number)
);
