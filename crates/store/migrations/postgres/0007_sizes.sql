-- Sizes (Nova's flavors): what a partition is given. CPU in thousandths of a core,
-- memory and disk in bytes.
CREATE TABLE sizes (
    name TEXT PRIMARY KEY,
    millicores BIGINT NOT NULL,
    memory BIGINT NOT NULL,
    disk BIGINT NOT NULL
);
-- What a computer's node reported it gives its partitions (NULL: not reported), whether
-- it enforces sizes, and the sizes of the instances placed there, summed.
ALTER TABLE computers ADD COLUMN capacity_millicores BIGINT;
ALTER TABLE computers ADD COLUMN capacity_memory BIGINT;
ALTER TABLE computers ADD COLUMN capacity_disk BIGINT;
ALTER TABLE computers ADD COLUMN limits_enforced BIGINT NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_millicores BIGINT NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE computers ADD COLUMN allocated_disk BIGINT NOT NULL DEFAULT 0;
-- The project a computer is dedicated to (NULL: shared as before).
ALTER TABLE computers ADD COLUMN project_id BIGINT REFERENCES projects (id);
-- The size an instance was given, copied: a size redefined later changes no instance.
ALTER TABLE instances ADD COLUMN size TEXT;
ALTER TABLE instances ADD COLUMN size_millicores BIGINT;
ALTER TABLE instances ADD COLUMN size_memory BIGINT;
ALTER TABLE instances ADD COLUMN size_disk BIGINT;
-- Quotas on the sizes a project holds.
ALTER TABLE projects ADD COLUMN quota_millicores BIGINT;
ALTER TABLE projects ADD COLUMN quota_memory BIGINT;
ALTER TABLE projects ADD COLUMN quota_disk BIGINT;
