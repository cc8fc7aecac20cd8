-- Append-only (ACT-1). `portal_id` has no foreign key: events outlive a deleted portal as
-- tombstones whose content is erased and `erased_by` names the delete's audit event (ACT-4).
CREATE TABLE activity_event (
    tenant_id     UUID NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    company_id    UUID,
    portal_id     UUID,
    kind          TEXT NOT NULL CHECK (kind IN ('tenant_created','tenant_settings_changed','role_created','role_updated','staff_user_created','staff_user_updated','company_created','company_updated','site_created','site_updated','site_deleted','template_created','template_updated','template_deleted','portal_created','portal_updated','portal_status_changed','portal_deleted','phase_added','phase_updated','phase_deleted','phases_reordered','task_added','task_updated','task_deleted','tasks_reordered','task_status_changed','task_completed','task_reopened','task_blocked','task_unblocked','task_assigned','tasks_reassigned','checklist_updated','comment_added','question_asked','contact_added')),
    actor_kind    TEXT NOT NULL CHECK (actor_kind IN ('staff','contact','portal_user','system')),
    actor_id      UUID,
    actor_display TEXT,
    at            TIMESTAMPTZ NOT NULL,
    summary       TEXT NOT NULL,
    details       JSONB NOT NULL,
    erased_by     UUID,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX activity_event_by_portal ON activity_event (tenant_id, portal_id, id);

CREATE INDEX activity_event_by_kind ON activity_event (tenant_id, kind, id);

-- MAIL-3: written in the same transaction as the action that caused it; delivered by a worker.
CREATE TABLE outbox_message (
    tenant_id       UUID NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id              UUID NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);

CREATE INDEX outbox_message_due ON outbox_message (status, next_attempt_at);

CREATE INDEX outbox_message_by_tenant ON outbox_message (tenant_id, status, created_at, id);
