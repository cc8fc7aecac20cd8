-- Event kinds move from a CHECK on `activity_event.kind` to a lookup table, so that a new kind is
-- one INSERT in a later migration instead of a rewritten CHECK. Every `EventKind` of portal-core
-- must have its row here; a test compares the two lists.
CREATE TABLE event_kind (
    name TEXT NOT NULL PRIMARY KEY
);

INSERT INTO event_kind (name) VALUES
    ('tenant_created'),
    ('tenant_settings_changed'),
    ('role_created'),
    ('role_updated'),
    ('staff_user_created'),
    ('staff_user_updated'),
    ('company_created'),
    ('company_updated'),
    ('site_created'),
    ('site_updated'),
    ('site_deleted'),
    ('template_created'),
    ('template_updated'),
    ('template_deleted'),
    ('portal_created'),
    ('portal_updated'),
    ('portal_status_changed'),
    ('portal_deleted'),
    ('phase_added'),
    ('phase_updated'),
    ('phase_deleted'),
    ('phases_reordered'),
    ('task_added'),
    ('task_updated'),
    ('task_deleted'),
    ('tasks_reordered'),
    ('task_status_changed'),
    ('task_completed'),
    ('task_reopened'),
    ('task_blocked'),
    ('task_unblocked'),
    ('task_assigned'),
    ('tasks_reassigned'),
    ('checklist_updated'),
    ('comment_added'),
    ('question_asked'),
    ('contact_added'),
    ('contact_updated'),
    ('contact_removed');

-- SQLite cannot drop a CHECK, so `activity_event` is rebuilt as
-- https://www.sqlite.org/lang_altertable.html ("Making Other Kinds Of Table Schema Changes")
-- describes: create the new table, copy the rows, drop the old one, rename the new one, and
-- recreate every index and trigger the old table had. sqlx runs this file in one transaction.
--
-- Foreign keys stay on (the store connects with `foreign_keys = ON`, and the pragma cannot change
-- inside a transaction anyway). The procedure turns them off for tables that other tables'
-- foreign keys point INTO, because dropping such a table deletes its rows first. No foreign key
-- points into `activity_event` (`erased_by` names an event by value, without a key), so the drop
-- deletes nothing else, and the copy is checked against `tenant` and `event_kind` as it goes.
--
-- The columns keep their order, types, NOT NULLs and the `actor_kind` CHECK of migration
-- 20261128000005; only the `kind` CHECK becomes a foreign key. The old table had two indexes
-- (from 20261128000005; 20261128000006 added none to it) and no trigger.
CREATE TABLE activity_event_new (
    tenant_id     BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    company_id    BLOB,
    portal_id     BLOB,
    kind          TEXT NOT NULL REFERENCES event_kind (name),
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('staff','contact','portal_user','system')),
    actor_id      BLOB,
    actor_display TEXT,
    at            TEXT NOT NULL,
    summary       TEXT NOT NULL,
    details       TEXT NOT NULL,
    erased_by     BLOB,
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO activity_event_new (tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, actor_display,
                                at, summary, details, erased_by)
SELECT tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, actor_display,
       at, summary, details, erased_by
FROM activity_event;

DROP TABLE activity_event;

ALTER TABLE activity_event_new RENAME TO activity_event;

CREATE INDEX activity_event_by_portal ON activity_event (tenant_id, portal_id, id);

CREATE INDEX activity_event_by_kind ON activity_event (tenant_id, kind, id);
