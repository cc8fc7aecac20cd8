-- `template_id` has no foreign key: a portal is a copy and outlives its template (ONB-2).
CREATE TABLE portal (
    tenant_id    BLOB NOT NULL,
    id           BLOB NOT NULL,
    company_id   BLOB NOT NULL,
    template_id  BLOB,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('draft','active','completed','converted','archived')),
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    activated_at TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, company_id) REFERENCES company (tenant_id, id)
);

CREATE INDEX portal_by_status ON portal (tenant_id, status, id);

CREATE INDEX portal_by_company ON portal (tenant_id, company_id, id);

CREATE TABLE portal_phase (
    tenant_id   BLOB NOT NULL,
    id          BLOB NOT NULL,
    portal_id   BLOB NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX portal_phase_by_portal ON portal_phase (tenant_id, portal_id, position);

-- `completed_by_*` record the actor who completed the task while it is completed.
CREATE TABLE task (
    tenant_id            BLOB NOT NULL,
    id                   BLOB NOT NULL,
    portal_id            BLOB NOT NULL,
    phase_id             BLOB NOT NULL,
    position             INTEGER NOT NULL,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    owner                TEXT NOT NULL CHECK (owner IN ('msp','client')),
    evidence             TEXT NOT NULL CHECK (evidence IN ('signature','credentials','file_upload','meeting','survey','acknowledgement','none')),
    priority             TEXT NOT NULL CHECK (priority IN ('low','normal','high','critical')),
    due_offset_days      INTEGER CHECK (due_offset_days >= 0),
    due_date             TEXT,
    status               TEXT NOT NULL CHECK (status IN ('pending','in_progress','completed','blocked')),
    block_reason         TEXT,
    assignee_id          BLOB,
    completed_at         TEXT,
    completed_by_kind    TEXT CHECK (completed_by_kind IN ('staff','contact','portal_user','system')),
    completed_by_id      BLOB,
    completed_by_display TEXT,
    completion_reason    TEXT,
    version              INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, phase_id) REFERENCES portal_phase (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES staff_user (tenant_id, id)
);

CREATE INDEX task_by_portal ON task (tenant_id, portal_id, phase_id, position);

CREATE INDEX task_by_assignee ON task (tenant_id, assignee_id);

CREATE TABLE task_dependency (
    tenant_id     BLOB NOT NULL,
    task_id       BLOB NOT NULL,
    depends_on_id BLOB NOT NULL,
    portal_id     BLOB NOT NULL,
    PRIMARY KEY (tenant_id, task_id, depends_on_id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, depends_on_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX task_dependency_by_portal ON task_dependency (tenant_id, portal_id);

CREATE INDEX task_dependency_by_target ON task_dependency (tenant_id, depends_on_id);

CREATE TABLE task_checklist_item (
    tenant_id BLOB NOT NULL,
    id        BLOB NOT NULL,
    task_id   BLOB NOT NULL,
    portal_id BLOB NOT NULL,
    position  INTEGER NOT NULL,
    text      TEXT NOT NULL,
    done      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX task_checklist_item_by_portal ON task_checklist_item (tenant_id, portal_id, task_id, position);

CREATE TABLE task_survey_question (
    tenant_id BLOB NOT NULL,
    id        BLOB NOT NULL,
    task_id   BLOB NOT NULL,
    portal_id BLOB NOT NULL,
    position  INTEGER NOT NULL,
    text      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('text','single_choice','multiple_choice','yes_no')),
    options   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX task_survey_question_by_portal ON task_survey_question (tenant_id, portal_id, task_id, position);

-- CON-1: at most one primary contact per portal, enforced by the partial unique index below.
CREATE TABLE contact (
    tenant_id  BLOB NOT NULL,
    id         BLOB NOT NULL,
    portal_id  BLOB NOT NULL,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('primary_contact','it','decision_maker','finance','office_manager')),
    is_primary INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, portal_id, email),
    FOREIGN KEY (tenant_id, portal_id) REFERENCES portal (tenant_id, id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX contact_one_primary ON contact (tenant_id, portal_id) WHERE is_primary = 1;

CREATE TABLE task_comment (
    tenant_id      BLOB NOT NULL,
    id             BLOB NOT NULL,
    portal_id      BLOB NOT NULL,
    task_id        BLOB NOT NULL,
    author_kind    TEXT NOT NULL CHECK (author_kind IN ('staff','contact','portal_user','system')),
    author_id      BLOB,
    author_display TEXT,
    body           TEXT NOT NULL,
    is_question    INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES task (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX task_comment_by_task ON task_comment (tenant_id, task_id, created_at, id);
