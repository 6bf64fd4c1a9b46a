-- The rules moved out of triggers into the store's Rust code (`src/rules/`), which keeps
-- the counters and revisions itself, the same way on every backend.
DROP TRIGGER partitions_added;
DROP TRIGGER partitions_taken;
DROP TRIGGER partitions_freed;
DROP TRIGGER partitions_revision;
DROP TRIGGER computers_capacity;
DROP TRIGGER software_added;
DROP TRIGGER instances_placed;
DROP INDEX software_capacity;
ALTER TABLE software DROP COLUMN has_free;

-- How many partitions hold an instance: what the placement policies weigh.
ALTER TABLE computers ADD COLUMN used_partitions INTEGER NOT NULL DEFAULT 0;
UPDATE computers SET used_partitions =
    (SELECT count(*) FROM partitions p WHERE p.computer_id = computers.id AND p.instance_id IS NOT NULL);
-- Computers with room, least loaded first: where `simple` and `pack` look.
CREATE INDEX computers_room ON computers (used_partitions, reference) WHERE free_partitions > 0;
CREATE INDEX instances_by_computer ON instances (computer_id);
-- Free partitions in natural order (slappart2 before slappart10): a placement takes the
-- first in one seek however many partitions a computer has.
DROP INDEX partitions_free;
CREATE INDEX partitions_free ON partitions (computer_id, length(reference), reference)
    WHERE instance_id IS NULL;

-- What the masters sharing this store share: the master key.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Instance timestamps keep increasing whichever master writes them.
CREATE TABLE clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO clock (id, last) SELECT 1, COALESCE(MAX(timestamp), 0) FROM instances;
CREATE INDEX usage_by_instance ON usage (instance_id, id);
