-- Projects: instances belong to one (or to their user alone, as before); users are members
-- with a role; the cloud admin sets each project's quota (a NULL limit is none).
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    quota_instances INTEGER,
    quota_partitions INTEGER,
    quota_shared INTEGER
);
CREATE TABLE memberships (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    principal_id INTEGER NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL CHECK (role IN ('project-admin', 'member', 'reader')),
    PRIMARY KEY (project_id, principal_id)
);
CREATE INDEX memberships_by_principal ON memberships (principal_id);
ALTER TABLE instances ADD COLUMN project_id INTEGER REFERENCES projects (id);
CREATE INDEX instances_by_project ON instances (project_id) WHERE project_id IS NOT NULL;
