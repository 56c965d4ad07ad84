-- centossrv store, schema 5 (postgres): how far each audit forwarder got.
-- Keep in step with migrations/sqlite/0005_forward_cursors.sql.
-- One row per destination (e.g. `syslog udp://127.0.0.1:514`): the last audit entry sent
-- there, so a restarted reconciler forwards what was appended while it was down.
CREATE TABLE forward_cursors (
    name        TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
