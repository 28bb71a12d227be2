-- The operator's lifecycle (issue 12).
-- Operator tokens: when each was last used (written at most once a minute per token, not per request).
ALTER TABLE operator_tokens ADD COLUMN last_used_at BIGINT NULL;
-- API keys: an operator's label, and the end of a rolled key's overlap (refused from then on, by itself).
ALTER TABLE api_keys ADD COLUMN label TEXT NULL;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT NULL;
ALTER TABLE api_keys ADD COLUMN rolled_to TEXT NULL;
-- The audit log is filtered by event, application and subject, newest or oldest first by seq.
CREATE INDEX ix_audit_log_event ON audit_log(event, seq);
CREATE INDEX ix_audit_log_application ON audit_log(application_id, seq);
CREATE INDEX ix_audit_log_subject ON audit_log(subject, seq);
CREATE INDEX ix_audit_log_at ON audit_log(at);
-- Test messages expire: found by age.
CREATE INDEX ix_outbox_test_created ON outbox(mode, created_at);
