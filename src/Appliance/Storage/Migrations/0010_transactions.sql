-- Transaction-bound codes (PSD2 dynamic linking, issue 15). The canonical transaction a challenge's codes are bound
-- to (NULL amount: none, as for every challenge before this migration), shown by GET /v1/mfa/{id} and compared on verify.
ALTER TABLE challenges ADD COLUMN transaction_amount TEXT NULL;
ALTER TABLE challenges ADD COLUMN transaction_currency TEXT NULL;
ALTER TABLE challenges ADD COLUMN transaction_payee TEXT NULL;
ALTER TABLE challenges ADD COLUMN transaction_reference TEXT NULL;
-- The same for security-key assertion options, with the random seed their WebAuthn challenge was derived from
-- (challenge = SHA-256 over seed and transaction), so verification recomputes it from the presented transaction.
ALTER TABLE webauthn_ceremonies ADD COLUMN transaction_amount TEXT NULL;
ALTER TABLE webauthn_ceremonies ADD COLUMN transaction_currency TEXT NULL;
ALTER TABLE webauthn_ceremonies ADD COLUMN transaction_payee TEXT NULL;
ALTER TABLE webauthn_ceremonies ADD COLUMN transaction_reference TEXT NULL;
ALTER TABLE webauthn_ceremonies ADD COLUMN challenge_seed $bytes$ NULL;
