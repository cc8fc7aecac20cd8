-- Housekeeping of the rows that only grow (`AuthRepo::purge_expired`): sign-in attempt counters,
-- one-time-code challenges, contact sessions (staff sessions already have their index on
-- `expires_at`, migration 20261128000007).
--
-- - A counter notes the time of its last attempt. The purge deletes counters last counted more
--   than `ATTEMPT_RETENTION` (a day) ago; a counter written before this migration has none (NULL)
--   and goes at the first purge. Times are TIMESTAMPTZ, as every other time in this store.
-- - The purge finds its rows through an index on the time it compares: the last attempt of a
--   counter, the expiry of a challenge and of a contact session.

ALTER TABLE sign_in_attempts ADD COLUMN last_attempt_at TIMESTAMPTZ;

CREATE INDEX sign_in_attempts_by_last_attempt ON sign_in_attempts (last_attempt_at);

CREATE INDEX access_challenge_by_expiry ON access_challenge (expires_at);

CREATE INDEX contact_session_by_expiry ON contact_session (expires_at);
