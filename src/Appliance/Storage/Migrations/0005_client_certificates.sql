-- Client certificates an application's callers must present when the deployment runs mutual TLS: the SHA-256
-- thumbprint (64 upper-case hex characters) of each, and what was known of it when it was registered.

CREATE TABLE client_certificates (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    thumbprint      TEXT NOT NULL,
    subject         TEXT NULL,
    not_after       BIGINT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (application_id, thumbprint)
);
