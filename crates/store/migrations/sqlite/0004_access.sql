-- centossrv store, schema 4 (sqlite): who may do what.
-- Keep in step with migrations/postgres/0004_access.sql.
-- Local users (Argon2id PHC strings only, never a password), role bindings (from the CLI or
-- from the fleet repository's access.yaml), API tokens (sha256 of the token only, shown once
-- when created) and operators' break-glass holds on nodes.
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT,
    created_at     TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT FALSE
);

-- subject is `user:NAME` or `group:NAME` (a directory group); origin is `cli` or `git`.
CREATE TABLE role_bindings (
    subject     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (subject, origin)
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE node_holds (
    node      TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    held_by   TEXT NOT NULL,
    held_at   TEXT NOT NULL
);
