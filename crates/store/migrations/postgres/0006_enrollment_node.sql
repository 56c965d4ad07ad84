-- centossrv store, schema 6 (postgres): enrollment tokens bound to a node.
-- Keep in step with migrations/sqlite/0006_enrollment_node.sql.
-- An enrollment token may be bound to one node name: only that name can redeem it. A token
-- without a name enrolls a new node, never one that already holds a current credential
-- (re-enrolling a node takes a token bound to it, so a token handed out for a new machine
-- cannot take over an existing node's identity).
ALTER TABLE enrollment_tokens ADD COLUMN node_name TEXT;
