-- Joining nodes: one-time, expiring join tokens (only their hash is kept), and the serial
-- of the certificate each computer's node and each user holds (a certificate with another
-- serial, an older or a revoked one, is refused).
CREATE TABLE join_tokens (
    id INTEGER PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES principals (id),
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    computer_id INTEGER REFERENCES computers (id)
);
ALTER TABLE computers ADD COLUMN certificate_serial TEXT;
ALTER TABLE principals ADD COLUMN certificate_serial TEXT;
