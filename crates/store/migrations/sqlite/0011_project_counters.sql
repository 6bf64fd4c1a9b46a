-- What each project holds against its quota, kept by the statements that create an
-- instance or change its requested state (checking a quota then reads one row instead
-- of counting the project's instances).
ALTER TABLE projects ADD COLUMN held_instances INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN held_partitions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN held_shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN held_millicores INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN held_memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN held_disk INTEGER NOT NULL DEFAULT 0;
UPDATE projects SET
    held_instances = (SELECT count(*) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed'),
    held_partitions = (SELECT count(*) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed' AND i.shared = 0),
    held_shared = (SELECT count(*) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed' AND i.shared <> 0),
    held_millicores = (SELECT coalesce(sum(i.size_millicores), 0) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed'),
    held_memory = (SELECT coalesce(sum(i.size_memory), 0) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed'),
    held_disk = (SELECT coalesce(sum(i.size_disk), 0) FROM instances i
        WHERE i.project_id = projects.id AND i.requested_state <> 'destroyed');
