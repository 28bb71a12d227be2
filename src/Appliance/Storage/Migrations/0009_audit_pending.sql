-- Audit records waiting to be chained (issue 10). A request writes its record here, in the same transaction as the
-- change it describes, without locking anything and without an HSM call; the chainer (AuditLog.ChainPendingAsync,
-- run by every node in the background and before every audit read) moves them into audit_log in batches: it computes
-- the MACs in the HSM outside any transaction, then inserts the batch, deletes exactly those pending rows and moves
-- audit_head once, in one short transaction that locks the head and checks that no other node moved it meanwhile.
-- The chain order is the order the chainer saw the records committed; the record's time is when it was written.
CREATE TABLE audit_pending (
    id             $serial$,
    at             BIGINT NOT NULL,
    event          TEXT NOT NULL,
    actor          TEXT NOT NULL,
    application_id TEXT NULL,
    mode           TEXT NULL,
    subject        TEXT NULL,
    outcome        TEXT NOT NULL,
    detail         TEXT NOT NULL
);
