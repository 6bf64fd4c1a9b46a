-- Principals that hold tokens: the admin and users. Only SHA-256 hashes of tokens are kept.
CREATE TABLE principals (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'user')),
    name TEXT NOT NULL UNIQUE,
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE computers (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES principals (id),
    token_hash BLOB NOT NULL,
    -- Bumped whenever the desired state of the computer changes (the change stream).
    revision INTEGER NOT NULL DEFAULT 1,
    -- Kept by triggers: how many of its partitions are free.
    free_partitions INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE partitions (
    computer_id INTEGER NOT NULL REFERENCES computers (id),
    reference TEXT NOT NULL,
    addresses TEXT NOT NULL DEFAULT '[]',
    -- The instance allocated here; NULL when the partition is free.
    instance_id INTEGER REFERENCES instances (id),
    PRIMARY KEY (computer_id, reference)
);
-- Free partitions only, in declaration order: where allocation looks.
CREATE INDEX partitions_free ON partitions (computer_id) WHERE instance_id IS NULL;
CREATE UNIQUE INDEX partitions_instance ON partitions (instance_id) WHERE instance_id IS NOT NULL;
CREATE TRIGGER partitions_added AFTER INSERT ON partitions WHEN NEW.instance_id IS NULL BEGIN
    UPDATE computers SET free_partitions = free_partitions + 1 WHERE id = NEW.computer_id;
END;
CREATE TRIGGER partitions_taken AFTER UPDATE OF instance_id ON partitions
WHEN OLD.instance_id IS NULL AND NEW.instance_id IS NOT NULL BEGIN
    UPDATE computers SET free_partitions = free_partitions - 1 WHERE id = NEW.computer_id;
END;
CREATE TRIGGER partitions_freed AFTER UPDATE OF instance_id ON partitions
WHEN OLD.instance_id IS NOT NULL AND NEW.instance_id IS NULL BEGIN
    UPDATE computers SET free_partitions = free_partitions + 1 WHERE id = NEW.computer_id;
END;
-- A partition taken or freed changes its computer's desired state.
CREATE TRIGGER partitions_revision AFTER UPDATE OF instance_id ON partitions BEGIN
    UPDATE computers SET revision = revision + 1 WHERE id = NEW.computer_id;
END;

CREATE TABLE software (
    computer_id INTEGER NOT NULL REFERENCES computers (id),
    url TEXT NOT NULL,
    requested_state TEXT NOT NULL CHECK (requested_state IN ('available', 'destroyed')),
    reported_state TEXT CHECK (reported_state IN ('building', 'available', 'destroyed', 'error')),
    error TEXT,
    -- Kept by triggers: whether the computer has a free partition. With the index below,
    -- allocation finds a computer with capacity for a software release in one seek, however
    -- many computers are full or lack that release.
    has_free INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (computer_id, url)
);
CREATE INDEX software_capacity ON software (url, requested_state, has_free);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES principals (id),
    -- Identity: (requester, title). The requester is `user:<id>` or `instance:<id>`.
    requester TEXT NOT NULL,
    title TEXT NOT NULL,
    parent_id INTEGER REFERENCES instances (id),
    root_id INTEGER,
    software_release TEXT NOT NULL,
    software_type TEXT NOT NULL,
    parameters TEXT NOT NULL,
    requested_state TEXT NOT NULL CHECK (requested_state IN ('started', 'stopped', 'destroyed')),
    shared INTEGER NOT NULL,
    sla TEXT NOT NULL,
    computer_id INTEGER REFERENCES computers (id),
    partition_reference TEXT,
    host_instance_id INTEGER REFERENCES instances (id),
    reported_state TEXT CHECK (reported_state IN ('started', 'stopped', 'destroyed', 'error')),
    error TEXT,
    reported_timestamp INTEGER,
    connection TEXT NOT NULL DEFAULT '{}',
    timestamp INTEGER NOT NULL,
    UNIQUE (requester, title)
);
CREATE TRIGGER computers_capacity AFTER UPDATE OF free_partitions ON computers
WHEN (OLD.free_partitions > 0) != (NEW.free_partitions > 0) BEGIN
    UPDATE software SET has_free = (NEW.free_partitions > 0) WHERE computer_id = NEW.id;
END;
CREATE TRIGGER software_added AFTER INSERT ON software BEGIN
    UPDATE software SET has_free = (SELECT free_partitions > 0 FROM computers WHERE id = NEW.computer_id)
    WHERE computer_id = NEW.computer_id AND url = NEW.url;
END;

-- An instance placed when it is inserted takes its partition within the same statement
-- (one round trip less per placement than a separate update).
CREATE TRIGGER instances_placed AFTER INSERT ON instances
WHEN NEW.shared = 0 AND NEW.computer_id IS NOT NULL AND NEW.partition_reference IS NOT NULL BEGIN
    UPDATE partitions SET instance_id = NEW.id
    WHERE computer_id = NEW.computer_id AND reference = NEW.partition_reference;
END;

CREATE INDEX instances_by_owner ON instances (owner_id);
CREATE INDEX instances_by_parent ON instances (parent_id);
CREATE INDEX instances_by_host ON instances (host_instance_id);
CREATE INDEX instances_hosts ON instances (software_release, software_type, shared);

CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    computer_id INTEGER NOT NULL REFERENCES computers (id),
    instance_id INTEGER REFERENCES instances (id),
    partition_reference TEXT NOT NULL,
    cpu_seconds REAL NOT NULL,
    memory_bytes INTEGER NOT NULL,
    restarts INTEGER NOT NULL DEFAULT 0,
    at INTEGER NOT NULL
);
