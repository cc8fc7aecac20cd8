-- Event kinds move from a CHECK on `activity_event.kind` to a lookup table, so that a new kind is
-- one INSERT in a later migration instead of a rewritten CHECK (on SQLite, a rebuilt table).
-- Every `EventKind` of portal-core must have its row here; a test compares the two lists.
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

-- The inline CHECK of migration 20261128000005 got PostgreSQL's default name.
ALTER TABLE activity_event DROP CONSTRAINT activity_event_kind_check;

-- Kinds are never deleted nor renamed (events are never edited, ACT-4), so no index on
-- `activity_event (kind)` alone is needed for this key's parent-side checks.
ALTER TABLE activity_event
    ADD CONSTRAINT activity_event_kind_fkey FOREIGN KEY (kind) REFERENCES event_kind (name);
