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
--   due date is a new reminder; an unlock has no due date (NULL), and two NULLs must clash, hence
--   `UNIQUE NULLS NOT DISTINCT` (PostgreSQL 15 and later). The ledger goes with its portal, task
--   or contact (ON DELETE CASCADE).
-- - `notification_digest_item` keeps what a contact chose to get in their daily digest until the
--   digest is queued (the same commit deletes the items); it goes with its portal or contact.
-- - The outbox accepts the two new kinds of mail (`automatic_reminder`, `notification_digest`),
--   and `notification_preferences_changed` is a new event kind.

ALTER TABLE contact ADD COLUMN notification_preferences JSONB NOT NULL DEFAULT '{}';

ALTER TABLE tenant ADD COLUMN reminder_on_unlock BOOLEAN NOT NULL DEFAULT true;

ALTER TABLE tenant ADD COLUMN reminder_days_before_due INTEGER DEFAULT 2
    CHECK (reminder_days_before_due BETWEEN 1 AND 30);

ALTER TABLE tenant ADD COLUMN reminder_when_overdue BOOLEAN NOT NULL DEFAULT true;

ALTER TABLE tenant ADD COLUMN digest_hour INTEGER NOT NULL DEFAULT 8 CHECK (digest_hour BETWEEN 0 AND 23);

-- The reminder scheduler pages through every tenant's active portals by (tenant_id, id): the
-- partial index holds exactly those rows, in that order.
CREATE INDEX portal_active ON portal (tenant_id, id) WHERE status = 'active';

CREATE TABLE reminder_sent (
    tenant_id  UUID NOT NULL,
    portal_id  UUID NOT NULL,
    task_id    UUID NOT NULL,
    contact_id UUID NOT NULL,
    reason     TEXT NOT NULL CHECK (reason IN ('unlocked','due_soon','overdue')),
    due_date   DATE,
    sent_at    TIMESTAMPTZ NOT NULL,
    -- Once per (task, contact, reason, due date), a missing due date counting as one value. It
    -- leads with (tenant_id, task_id), so it also serves the cascade from a deleted task.
    CONSTRAINT reminder_sent_once UNIQUE NULLS NOT DISTINCT (tenant_id, task_id, contact_id, reason, due_date),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE
);

-- `list_reminder_records` and the cascade from a deleted portal.
CREATE INDEX reminder_sent_by_portal ON reminder_sent (tenant_id, portal_id);

-- The cascade from a deleted contact.
CREATE INDEX reminder_sent_by_contact ON reminder_sent (tenant_id, contact_id);

CREATE TABLE notification_digest_item (
    tenant_id  UUID NOT NULL,
    id         UUID NOT NULL,
    portal_id  UUID NOT NULL,
    contact_id UUID NOT NULL,
    topic      TEXT NOT NULL CHECK (topic IN ('summaries','reminders','task_unlocked','due_soon','overdue')),
    payload    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contact (tenant_id, id) ON DELETE CASCADE
);

-- A contact's items in order, the contacts with items waiting (grouped in (tenant, contact)
-- order), and the cascade from a deleted contact.
CREATE INDEX notification_digest_item_by_contact ON notification_digest_item (tenant_id, contact_id, id);

-- The cascade from a deleted portal.
CREATE INDEX notification_digest_item_by_portal ON notification_digest_item (tenant_id, portal_id);

-- The column CHECK of migration 20261128000010 got PostgreSQL's default name; it is replaced
-- by one that also accepts the two new kinds (the existing rows are checked against it).
ALTER TABLE outbox_message
    DROP CONSTRAINT outbox_message_kind_check,
    ADD CONSTRAINT outbox_message_kind_check CHECK (kind IN ('contact_invitation','access_link','verification_code','task_summary','phase_summary','task_reminder','portal_user_invite','password_reset','meeting_invitation','automatic_reminder','notification_digest'));

-- A contact changing their preferences (or unsubscribing) is recorded in the activity log.
INSERT INTO event_kind (name) VALUES ('notification_preferences_changed');
