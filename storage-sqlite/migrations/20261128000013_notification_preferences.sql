-- BYD-5: notification preferences, automatic reminders and daily digests.
--
-- - A contact's preferences (`NotificationPreferences`: one delivery per topic) are one JSON
--   object; a topic left out reads as `immediate`, so the `{}` of contacts stored before this
--   migration means "everything at once", as before.
-- - The tenant's reminder cadence and digest hour are columns beside its other settings, with the
--   defaults of `NotificationSettings::new()` (remind on unlock, 2 days before due and once
--   overdue; digests at 08:00). `reminder_days_before_due` is NULL when "before due" is off.
-- - `reminder_sent` is the ledger that keeps an automatic reminder from going out twice: one row
--   per (task, contact, reason, due date), written in the commit that queues the reminder. A moved
--   due date is a new reminder; an unlock has no due date (NULL), and two NULLs must clash, which
--   a plain UNIQUE would not do, hence the unique index over `COALESCE(due_date, '')`. The ledger
--   goes with its portal, task or contact (ON DELETE CASCADE).
-- - `notification_digest_item` keeps what a contact chose to get in their daily digest until the
--   digest is queued (the same commit deletes the items); it goes with its portal or contact.
-- - The outbox accepts the two new kinds of mail (`automatic_reminder`, `notification_digest`),
--   and `notification_preferences_changed` is a new event kind.

ALTER TABLE contact ADD COLUMN notification_preferences TEXT NOT NULL DEFAULT '{}';

ALTER TABLE tenant ADD COLUMN reminder_on_unlock INTEGER NOT NULL DEFAULT 1;

ALTER TABLE tenant ADD COLUMN reminder_days_before_due INTEGER DEFAULT 2
    CHECK (reminder_days_before_due BETWEEN 1 AND 30);

ALTER TABLE tenant ADD COLUMN reminder_when_overdue INTEGER NOT NULL DEFAULT 1;

ALTER TABLE tenant ADD COLUMN digest_hour INTEGER NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23);

-- The reminder scheduler pages through every tenant's active portals by (tenant_id, id): the
-- partial index holds exactly those rows, in that order.
CREATE INDEX portal_active ON portal (tenant_id, id) WHERE status = 'active';

-- Dates are `YYYY-MM-DD` TEXT, as `task.due_date`.
CREATE TABLE reminder_sent (
    tenant_id  BLOB NOT NULL,
    portal_id  BLOB NOT NULL,
    task_id    BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    reason     TEXT NOT NULL CHECK (reason IN ('unlocked','due_soon','overdue')),
    due_date   TEXT,
    sent_at    TEXT NOT NULL,
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE
);

-- Once per (task, contact, reason, due date), a missing due date counting as one value. It leads
-- with (tenant_id, task_id), so it also serves the cascade from a deleted task.
CREATE UNIQUE INDEX reminder_sent_once ON reminder_sent (tenant_id, task_id, contact_id, reason, COALESCE(due_date, ''));

-- `list_reminder_records` and the cascade from a deleted portal.
CREATE INDEX reminder_sent_by_portal ON reminder_sent (tenant_id, portal_id);

-- The cascade from a deleted contact.
CREATE INDEX reminder_sent_by_contact ON reminder_sent (tenant_id, contact_id);

CREATE TABLE notification_digest_item (
    tenant_id  BLOB NOT NULL,
    id         BLOB NOT NULL,
    portal_id  BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    topic      TEXT NOT NULL CHECK (topic IN ('summaries','reminders','task_unlocked','due_soon','overdue')),
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE
);

-- A contact's items in order, the contacts with items waiting (grouped in (tenant, contact)
-- order), and the cascade from a deleted contact.
CREATE INDEX notification_digest_item_by_contact ON notification_digest_item (tenant_id, contact_id, id);

-- The cascade from a deleted portal.
CREATE INDEX notification_digest_item_by_portal ON notification_digest_item (tenant_id, portal_id);

-- SQLite cannot alter a CHECK, so `outbox_message` is rebuilt to accept the two new kinds, as
-- https://www.sqlite.org/lang_altertable.html ("Making Other Kinds Of Table Schema Changes")
-- describes: create the new table, copy the rows, drop the old one, rename the new one, and
-- recreate every index and trigger the old table had. sqlx runs this file in one transaction.
--
-- Foreign keys stay on (the store connects with `foreign_keys = ON`, and the pragma cannot change
-- inside a transaction anyway). The procedure turns them off for tables that other tables'
-- foreign keys point INTO, because dropping such a table deletes its rows first. No foreign key
-- points into `outbox_message`, so the drop deletes nothing else, and the copy is checked against
-- `tenant`, `portal` and `contact` as it goes (every row passed those checks when written).
--
-- The columns keep their order, types, NOT NULLs, CHECKs and foreign keys of migration
-- 20261128000010; only the `kind` CHECK gains two values. The old table had the four indexes of
-- 20261128000010 (one of them partial; 20261128000011 and 20261128000012 added none) and no
-- trigger.
CREATE TABLE outbox_message_new (
    tenant_id         BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id                BLOB NOT NULL,
    portal_id         BLOB,
    contact_id        BLOB,
    kind              TEXT NOT NULL CHECK (kind IN ('contact_invitation','access_link','verification_code','task_summary','phase_summary','task_reminder','portal_user_invite','password_reset','meeting_invitation','automatic_reminder','notification_digest')),
    recipient         TEXT NOT NULL,
    recipient_name    TEXT,
    payload           TEXT NOT NULL,
    secret_key_id     TEXT,
    secret_nonce      BLOB CHECK (length(secret_nonce) = 24),
    secret_ciphertext BLOB,
    status            TEXT NOT NULL CHECK (status IN ('queued','sending','sent','failed')),
    attempts          INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at   TEXT NOT NULL,
    lease_until       TEXT,
    last_error        TEXT,
    created_at        TEXT NOT NULL,
    sent_at           TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE,
    CHECK ((secret_key_id IS NULL) = (secret_nonce IS NULL) AND (secret_nonce IS NULL) = (secret_ciphertext IS NULL))
);

INSERT INTO outbox_message_new (tenant_id, id, portal_id, contact_id, kind, recipient, recipient_name, payload,
                                secret_key_id, secret_nonce, secret_ciphertext, status, attempts, next_attempt_at,
                                lease_until, last_error, created_at, sent_at)
SELECT tenant_id, id, portal_id, contact_id, kind, recipient, recipient_name, payload,
       secret_key_id, secret_nonce, secret_ciphertext, status, attempts, next_attempt_at,
       lease_until, last_error, created_at, sent_at
FROM outbox_message;

DROP TABLE outbox_message;

ALTER TABLE outbox_message_new RENAME TO outbox_message;

-- The claim: messages still to deliver, in the order they fell due. Sent and failed messages
-- (the bulk, over time) stay out of it.
CREATE INDEX outbox_message_due ON outbox_message (next_attempt_at, tenant_id, id) WHERE status IN ('queued','sending');

-- The staff list, newest first, of one status.
CREATE INDEX outbox_message_by_status ON outbox_message (tenant_id, status, id);

-- The cascades from a deleted portal or contact.
CREATE INDEX outbox_message_by_portal ON outbox_message (tenant_id, portal_id);

CREATE INDEX outbox_message_by_contact ON outbox_message (tenant_id, contact_id);

-- A contact changing their preferences (or unsubscribing) is recorded in the activity log.
INSERT INTO event_kind (name) VALUES ('notification_preferences_changed');
