-- Roboconf applications: the archive as deployed, the model the master keeps (the
-- instance tree, what is wanted of each instance, the ports given; JSON), and a
-- generation that grows with every change, which the root partitions wait on.
CREATE TABLE applications (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES principals (id),
    project_id INTEGER REFERENCES projects (id),
    archive BLOB NOT NULL,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1
);
-- Each root instance: the Grove instance that is its partition, and what that
-- partition last reported of its subtree (JSON).
CREATE TABLE application_roots (
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    root TEXT NOT NULL,
    instance_id INTEGER REFERENCES instances (id),
    report TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (application_id, root)
);
CREATE INDEX application_roots_by_instance ON application_roots (instance_id);
