-- API-key use, coalesced in each node's memory and written every few seconds (not a write per request):
-- last_used_at (from 0001) is the latest use any node saw, use_count the number of authenticated requests.
ALTER TABLE api_keys ADD COLUMN use_count BIGINT NOT NULL DEFAULT 0;
