-- Signed events (issue 15): one event endpoint per application, and the durable event outbox.
-- The endpoint's signing secret is sealed with the HSM seal key, bound to the application id.
CREATE TABLE event_endpoints (
    application_id TEXT PRIMARY KEY REFERENCES applications(id),
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,
    sealed_secret  $bytes$ NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Every event to deliver, written in the transaction of the change it reports. payload is the exact JSON body sent
-- (ids, types, outcomes; never a secret). status: queued → sending → delivered | failed.
CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL,
    type             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    give_up_at       BIGINT NOT NULL,
    delivered_at     BIGINT NULL,
    last_error       TEXT NULL,
    claimed_by       TEXT NULL,
    claimed_until    BIGINT NULL
);
CREATE INDEX ix_events_due ON events(status, next_attempt_at);
CREATE INDEX ix_events_application ON events(application_id, created_at);

-- Provider delivery receipts name the outbox row they report on.
CREATE INDEX ix_outbox_challenge ON outbox(challenge_id);
