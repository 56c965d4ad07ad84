-- centossrv store, schema 2 (PostgreSQL): agent enrollment. Keep in step with
-- migrations/sqlite/0002_enrollment.sql.
-- Secrets are never stored: a token or credential is kept as `sha256:` of its text only; the
-- plaintext is shown once, when it is created.

-- One-time enrollment tokens an operator creates (`centossrv enroll-token create`).
-- Redeeming sets used_at and used_by_node, once (a conditional UPDATE).
CREATE TABLE enrollment_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ,
    used_by_node  TEXT,
    CHECK ((used_at IS NULL) = (used_by_node IS NULL))
);

-- Long-lived node credentials issued at enrollment; an agent authenticates with one.
-- Re-enrolling a node revokes its earlier credentials.
CREATE TABLE node_credentials (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id          BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    credential_hash  TEXT NOT NULL UNIQUE,
    created_at       TIMESTAMPTZ NOT NULL,
    revoked_at       TIMESTAMPTZ
);
CREATE INDEX node_credentials_by_node ON node_credentials (node_id);
