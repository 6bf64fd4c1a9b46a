-- Usage samples carry the memory peak since the node's last report and the partition's
-- disk bytes; the ledger keeps each hour's memory peak and its disk byte-seconds.
ALTER TABLE usage ADD COLUMN memory_peak_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN disk_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN memory_peak_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN disk_byte_seconds BIGINT NOT NULL DEFAULT 0;
