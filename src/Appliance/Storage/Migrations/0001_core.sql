-- Core schema: applications, keys, challenges, the outbox. Shared by SQLite and PostgreSQL;
-- $bytes$ is BLOB or BYTEA. Times are Unix milliseconds (UTC).

CREATE TABLE applications (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL,
    hint             TEXT NOT NULL,
    verifier         $bytes$ NOT NULL,
    verifier_version INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT NULL,
    last_used_at     BIGINT NULL
);
CREATE INDEX ix_api_keys_application ON api_keys(application_id);

CREATE TABLE operator_tokens (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    verifier         $bytes$ NOT NULL,
    verifier_version INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    revoked_at       BIGINT NULL
);

CREATE TABLE challenges (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL,
    user_key         TEXT NOT NULL,
    family           TEXT NOT NULL,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL,
    nonce            $bytes$ NOT NULL,
    code_length      INTEGER NOT NULL,
    code_key_version INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    locale           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    approved_at      BIGINT NULL
);
CREATE INDEX ix_challenges_lookup ON challenges(application_id, mode, user_key, family, created_at);

CREATE TABLE challenge_channels (
    challenge_id  TEXT NOT NULL REFERENCES challenges(id),
    channel       TEXT NOT NULL,
    destination   TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, channel)
);

-- Every message leaving the appliance. Bodies are sealed with the HSM seal key, bound to the row id.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL,
    challenge_id     TEXT NULL,
    kind             TEXT NOT NULL,
    channel          TEXT NOT NULL,
    destination      TEXT NOT NULL,
    locale           TEXT NOT NULL,
    sealed_body      $bytes$ NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    sent_at          BIGINT NULL,
    last_error       TEXT NULL,
    claimed_by       TEXT NULL,
    claimed_until    BIGINT NULL
);
CREATE INDEX ix_outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX ix_outbox_destination ON outbox(application_id, mode, destination, created_at);

-- One row per destination and mode: the lock that serialises send-limit checks across nodes.
CREATE TABLE destinations (
    application_id TEXT NOT NULL,
    mode           TEXT NOT NULL,
    destination    TEXT NOT NULL,
    last_send_at   BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, destination)
);

CREATE TABLE idempotency_keys (
    application_id TEXT NOT NULL,
    mode           TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    challenge_id   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, key)
);
