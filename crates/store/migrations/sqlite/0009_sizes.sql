-- Sizes (Nova's flavors): what a partition is given. CPU in thousandths of a core,
-- memory and disk in bytes.
CREATE TABLE sizes (
    name TEXT PRIMARY KEY,
    millicores INTEGER NOT NULL,
    memory INTEGER NOT NULL,
    disk INTEGER NOT NULL
);
-- What a computer's node reported it gives its partitions (NULL: not reported), whether
-- it enforces sizes, and the sizes of the instances placed there, summed.
ALTER TABLE computers ADD COLUMN capacity_millicores INTEGER;
ALTER TABLE computers ADD COLUMN capacity_memory INTEGER;
ALTER TABLE computers ADD COLUMN capacity_disk INTEGER;
ALTER TABLE computers ADD COLUMN limits_enforced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_millicores INTEGER NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_disk INTEGER NOT NULL DEFAULT 0;
-- The project a computer is dedicated to (NULL: shared as before).
ALTER TABLE computers ADD COLUMN project_id INTEGER REFERENCES projects (id);
-- The size an instance was given, copied: a size redefined later changes no instance.
ALTER TABLE instances ADD COLUMN size TEXT;
ALTER TABLE instances ADD COLUMN size_millicores INTEGER;
ALTER TABLE instances ADD COLUMN size_memory INTEGER;
ALTER TABLE instances ADD COLUMN size_disk INTEGER;
-- Quotas on the sizes a project holds.
ALTER TABLE projects ADD COLUMN quota_millicores INTEGER;
ALTER TABLE projects ADD COLUMN quota_memory INTEGER;
ALTER TABLE projects ADD COLUMN quota_disk INTEGER;
