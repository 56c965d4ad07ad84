-- centossrv store, schema 1 (PostgreSQL). Keep in step with migrations/sqlite/0001_initial.sql:
-- the same tables, columns and constraints; only the spelling of types differs.
-- JSON is stored as TEXT on both backends (the exact bytes written are the bytes read back);
-- timestamps are TIMESTAMPTZ here and RFC 3339 TEXT on SQLite.

-- One row per distinct JSON document (a desired or observed state with its node name,
-- commit and timestamps taken out), keyed by the SHA-256 of its bytes. Secrets are redacted
-- before a document gets here.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE nodes (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    -- Declared in the fleet repository (true) or only known because its agent reported.
    in_inventory    BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    -- The last observed state: the document, the agent's own timestamp, when it arrived.
    observed_blob   TEXT REFERENCES blobs (digest),
    observed_at     TEXT,
    reported_at     TIMESTAMPTZ,
    facts           TEXT
);

CREATE TABLE node_labels (
    node_id BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (node_id, key)
);
CREATE INDEX node_labels_by_pair ON node_labels (key, value, node_id);

CREATE TABLE commits (
    sha          TEXT PRIMARY KEY NOT NULL,
    ok           BOOLEAN NOT NULL,
    diagnostics  TEXT NOT NULL,
    compiled_at  TIMESTAMPTZ NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE desired_states (
    commit_sha   TEXT NOT NULL REFERENCES commits (sha) ON DELETE CASCADE,
    node_id      BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    blob_digest  TEXT NOT NULL REFERENCES blobs (digest),
    PRIMARY KEY (commit_sha, node_id)
);
CREATE INDEX desired_states_by_node ON desired_states (node_id);
CREATE INDEX desired_states_by_blob ON desired_states (blob_digest);

-- Append-only: the newest row per node is its approved plan.
CREATE TABLE plan_approvals (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id      BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    commit_sha   TEXT NOT NULL REFERENCES commits (sha) ON DELETE CASCADE,
    digest       TEXT NOT NULL,
    approved_by  TEXT NOT NULL,
    approved_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX plan_approvals_by_node ON plan_approvals (node_id, id);

-- Runs outlive the commits they applied (no foreign key on commit_sha), so old commits
-- can be pruned without losing history.
CREATE TABLE apply_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id      BIGINT NOT NULL REFERENCES nodes (id),
    commit_sha   TEXT NOT NULL,
    plan_digest  TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       TEXT CHECK (status IN ('applied', 'failed', 'stale')),
    message      TEXT,
    CHECK ((finished_at IS NULL) = (status IS NULL))
);
CREATE INDEX apply_runs_by_node ON apply_runs (node_id, id);

CREATE TABLE apply_results (
    run_id       BIGINT NOT NULL REFERENCES apply_runs (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    resource     TEXT NOT NULL,
    action       TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('unchanged', 'changed', 'failed', 'skipped')),
    reason       TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE drift_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id      BIGINT NOT NULL REFERENCES nodes (id),
    commit_sha   TEXT,
    resource     TEXT NOT NULL,
    change       TEXT NOT NULL,
    detected_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX drift_events_by_node ON drift_events (node_id, id);

-- The audit log is a hash chain: hash = sha256(prev_hash, content) where content is the
-- canonical JSON of the entry (seq included). The columns beside content repeat it for
-- querying; `audit verify` checks both. Append-only: nothing updates or deletes rows.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    commit_sha  TEXT,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL,
    content     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

-- Refuse changes to written entries (a guard against mistakes; whoever can drop triggers can
-- still tamper, and `audit verify` shows it).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The chain's head, one row: appends lock it, so concurrent writers form one chain, and
-- verification compares the last entry with it (a removed or rewritten tail shows).
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, 'sha256:0000000000000000000000000000000000000000000000000000000000000000');
