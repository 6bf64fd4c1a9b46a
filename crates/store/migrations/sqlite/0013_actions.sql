-- Instance actions: a named executable of an instance run once in its partition, as its
-- user, with JSON parameters; the node that hosts the instance runs those pending and
-- reports each one's result (JSON) or error.
CREATE TABLE instance_actions (
    id INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances (id),
    name TEXT NOT NULL,
    parameters TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    error TEXT,
    requested_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX instance_actions_pending ON instance_actions (instance_id) WHERE state = 'pending';
