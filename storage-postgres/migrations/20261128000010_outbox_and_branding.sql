-- MAIL-1 to MAIL-4, BRD-1: the outbox as the mail worker needs it, and the tenant's branding.
--
-- The first `outbox_message` table was never written to (no command queued a message before
-- mail existed), so it is replaced rather than altered. A message may belong to a portal and to
-- a contact: deleting either deletes its messages (ON DELETE CASCADE). A link token or one-time
-- code travels sealed (key id, 24-byte nonce, ciphertext: all three or none) and is deleted once
-- the message is sent. Delivery: `queued` -> `sending` (claimed, `attempts` counts the claims,
-- `lease_until` ends the claim) -> `sent`, back to `queued` with a later `next_attempt_at`, or
-- `failed`.
DROP TABLE outbox_message;

CREATE TABLE outbox_message (
    tenant_id         UUID NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id                UUID NOT NULL,
    portal_id         UUID,
    contact_id        UUID,
    kind              TEXT NOT NULL CHECK (kind IN ('contact_invitation','access_link','verification_code','task_summary','phase_summary','task_reminder','portal_user_invite','password_reset','meeting_invitation')),
    recipient         TEXT NOT NULL,
    recipient_name    TEXT,
    payload           JSONB NOT NULL,
    secret_key_id     TEXT,
    secret_nonce      BYTEA CHECK (octet_length(secret_nonce) = 24),
    secret_ciphertext BYTEA,
    status            TEXT NOT NULL CHECK (status IN ('queued','sending','sent','failed')),
    attempts          INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at   TIMESTAMPTZ NOT NULL,
    lease_until       TIMESTAMPTZ,
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    sent_at           TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE,
    CHECK ((secret_key_id IS NULL) = (secret_nonce IS NULL) AND (secret_nonce IS NULL) = (secret_ciphertext IS NULL))
);

-- The claim: messages still to deliver, in the order they fell due. Sent and failed messages
-- (the bulk, over time) stay out of it.
CREATE INDEX outbox_message_due ON outbox_message (next_attempt_at, tenant_id, id) WHERE status IN ('queued','sending');

-- The staff list, newest first, of one status.
CREATE INDEX outbox_message_by_status ON outbox_message (tenant_id, status, id);

-- The cascades from a deleted portal or contact.
CREATE INDEX outbox_message_by_portal ON outbox_message (tenant_id, portal_id);

CREATE INDEX outbox_message_by_contact ON outbox_message (tenant_id, contact_id);

-- BRD-1, MAIL-2: every field but the colour may be left out (NULL).
ALTER TABLE tenant ADD COLUMN app_name TEXT;

ALTER TABLE tenant ADD COLUMN logo_url TEXT;

ALTER TABLE tenant ADD COLUMN primary_colour TEXT NOT NULL DEFAULT '#1f6feb';

ALTER TABLE tenant ADD COLUMN sender_name TEXT;

ALTER TABLE tenant ADD COLUMN sender_email TEXT;

ALTER TABLE tenant ADD COLUMN reply_to TEXT;
