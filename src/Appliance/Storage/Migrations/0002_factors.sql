-- Authenticator-app factors, backup codes and the per-user lockout shared by APP, BACKUP and KEY checks.

CREATE TABLE totp_factors (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    status          TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    digits          INTEGER NOT NULL,
    period          INTEGER NOT NULL,
    kek_version     INTEGER NOT NULL,
    wrapped_seed    $bytes$ NOT NULL,
    last_used_step  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NULL,
    confirmed_at    BIGINT NULL
);
CREATE INDEX ix_totp_factors_user ON totp_factors(application_id, mode, user_key, status);

CREATE TABLE backup_sets (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    email           TEXT NULL,
    phone           TEXT NULL,
    count           INTEGER NOT NULL,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT NULL
);
CREATE INDEX ix_backup_sets_user ON backup_sets(application_id, mode, user_key);

CREATE TABLE backup_codes (
    id               TEXT PRIMARY KEY,
    set_id           TEXT NOT NULL REFERENCES backup_sets(id),
    application_id   TEXT NOT NULL,
    mode             TEXT NOT NULL,
    user_key         TEXT NOT NULL,
    verifier         $bytes$ NOT NULL,
    verifier_version INTEGER NOT NULL,
    used_at          BIGINT NULL
);
CREATE INDEX ix_backup_codes_user ON backup_codes(application_id, mode, user_key, used_at);

CREATE TABLE lockouts (
    application_id  TEXT NOT NULL,
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    locks           INTEGER NOT NULL,
    locked_until    BIGINT NOT NULL,
    hard_locked     INTEGER NOT NULL,
    PRIMARY KEY (application_id, mode, user_key)
);
