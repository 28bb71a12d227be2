-- Failed APP, BACKUP and KEY checks per source (lockout_profile source_aware): one row per application, mode, user
-- and source, where a source is the API key id and, when the integrator passes it, the end user's client_ip (IPv6
-- by /64). failures counts since the source's last success; blocks how often it was refused (the delay doubles);
-- last_success_at > 0 marks a known source, one that has succeeded for this user (kept for the newest 20 per user).
CREATE TABLE lockout_sources (
    application_id  TEXT NOT NULL,
    mode            TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    source          TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    blocks          INTEGER NOT NULL,
    blocked_until   BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    last_success_at BIGINT NOT NULL,
    PRIMARY KEY (application_id, mode, user_key, source)
);
