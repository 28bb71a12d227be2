-- WebAuthn security keys, the per-user WebAuthn handle, and the single-use ceremony options.

CREATE TABLE webauthn_users (
    application_id  TEXT NOT NULL,
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    handle          $bytes$ NOT NULL,
    PRIMARY KEY (application_id, mode, user_key)
);

CREATE TABLE security_keys (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    credential_id   $bytes$ NOT NULL,
    public_key      $bytes$ NOT NULL,
    sign_count      BIGINT NOT NULL,
    transports      TEXT NOT NULL,
    aaguid          TEXT NOT NULL,
    attestation     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NULL,
    UNIQUE (application_id, mode, credential_id)
);
CREATE INDEX ix_security_keys_user ON security_keys(application_id, mode, user_key);

CREATE TABLE webauthn_ceremonies (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL,
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    challenge       TEXT NOT NULL,
    options         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT NULL,
    UNIQUE (application_id, mode, challenge)
);
