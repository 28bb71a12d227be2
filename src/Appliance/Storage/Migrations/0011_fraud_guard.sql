-- The fraud guard (issue 15): velocity counters and the counts of what it blocked or would have blocked.
-- One row per application, mode and bucket (scope 'prefix': a country calling code such as +44; scope 'range': the
-- E.164 number without its last 3 digits), locked by each phone send that it counts; window_start is the clock hour
-- (Unix ms) that sends counts, reset when a send arrives in a later hour.
CREATE TABLE fraud_guard_velocity (
    application_id TEXT NOT NULL,
    mode           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    bucket         TEXT NOT NULL,
    window_start   BIGINT NOT NULL,
    sends          BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, scope, bucket)
);

-- Refused (decision 'blocked') and shadow-mode (decision 'would_block') sends by reason: country, range, velocity.
CREATE TABLE fraud_guard_counts (
    application_id TEXT NOT NULL,
    mode           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    decision       TEXT NOT NULL,
    total          BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, reason, decision)
);
