-- Delivery: the per-application send limit (a lock row per application and mode, counted against recent
-- challenges) and the indexes the outbox dispatcher and that count use.

CREATE TABLE application_send_limits (
    application_id TEXT NOT NULL,
    mode           TEXT NOT NULL,
    PRIMARY KEY (application_id, mode)
);

CREATE INDEX ix_challenges_application_created ON challenges(application_id, mode, created_at);
CREATE INDEX ix_outbox_expiry ON outbox(status, expires_at);
