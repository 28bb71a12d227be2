-- One end user across contacts (issue 15): an identity owns the factors, backup codes, security keys and lockout
-- that were keyed by a contact string (an email, an E.164 number or email:phone). Its contacts are its email
-- addresses, phone numbers and, when the integrator names it, its user_id; each contact belongs to one identity per
-- application and mode. Data keyed by contacts is moved onto identities by the appliance at start (the
-- maintenance row below), since linking email:phone pairs into one identity is a union the migration cannot do.
CREATE TABLE identities (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    mode            TEXT NOT NULL,
    user_id         TEXT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE identity_contacts (
    application_id  TEXT NOT NULL,
    mode            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    value           TEXT NOT NULL,
    identity_id     TEXT NOT NULL REFERENCES identities(id),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, kind, value)
);
CREATE INDEX ix_identity_contacts_identity ON identity_contacts(identity_id);

-- A backup code's verifier is an HSM MAC bound to the key it was issued under; identities that merge keep
-- their codes, so each code remembers that key.
ALTER TABLE backup_codes ADD COLUMN owner TEXT NULL;
UPDATE backup_codes SET owner = user_key;

-- A security key is checked against the WebAuthn user handle it was registered with (an identity that merged two
-- users holds keys registered under both handles).
ALTER TABLE security_keys ADD COLUMN user_handle $bytes$ NULL;
UPDATE security_keys SET user_handle = (
    SELECT w.handle FROM webauthn_users w
    WHERE w.application_id = security_keys.application_id AND w.mode = security_keys.mode AND w.user_key = security_keys.user_key);

-- One-off data tasks the appliance runs at start after the schema migrations; done_at is set when one has finished.
CREATE TABLE maintenance (
    name     TEXT PRIMARY KEY,
    done_at  BIGINT NULL
);
INSERT INTO maintenance (name, done_at) VALUES ('identity_backfill', NULL);
