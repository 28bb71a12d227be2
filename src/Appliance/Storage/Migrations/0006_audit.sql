-- The tamper-evident audit log. Each row's mac is HMAC-SHA256(audit key v<key_version>, previous mac ‖ canonical
-- row), made in the HSM; the first row chains from 32 zero bytes. audit_head holds the last seq and mac, updated in
-- the same transaction as every insert: appends lock it (FOR UPDATE on PostgreSQL; SQLite's writer lock), so
-- several nodes sharing the database extend one chain, and the verifier compares it to detect a cut-off tail.

CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    at             BIGINT NOT NULL,
    event          TEXT NOT NULL,
    actor          TEXT NOT NULL,
    application_id TEXT NULL,
    mode           TEXT NULL,
    subject        TEXT NULL,
    outcome        TEXT NOT NULL,
    detail         TEXT NOT NULL,
    key_version    INTEGER NOT NULL,
    mac            $bytes$ NOT NULL
);

CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL,
    last_mac $bytes$ NULL
);

INSERT INTO audit_head (id, last_seq, last_mac) VALUES (1, 0, NULL);
