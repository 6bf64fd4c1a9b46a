-- Usage samples carry the time the node measured them; the same measurement reported
-- twice is kept once. The ledger: what each instance consumed hour by hour, recounted from
-- the samples around each new one (crates/store/src/ledger.rs).
DELETE FROM usage WHERE id NOT IN (SELECT min(id) FROM usage GROUP BY instance_id, at);
CREATE UNIQUE INDEX usage_once ON usage (instance_id, at);
CREATE TABLE ledger (
    instance_id BIGINT NOT NULL REFERENCES instances (id),
    hour BIGINT NOT NULL,
    partition_seconds BIGINT NOT NULL,
    cpu_ms BIGINT NOT NULL,
    memory_byte_seconds BIGINT NOT NULL,
    PRIMARY KEY (instance_id, hour)
);
