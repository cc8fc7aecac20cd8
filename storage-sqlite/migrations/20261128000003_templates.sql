CREATE TABLE template (
    tenant_id   BLOB NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE template_phase (
    tenant_id   BLOB NOT NULL,
    id          BLOB NOT NULL,
    template_id BLOB NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, template_id) REFERENCES template (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX template_phase_by_template ON template_phase (tenant_id, template_id, position);

CREATE TABLE template_task (
    tenant_id       BLOB NOT NULL,
    id              BLOB NOT NULL,
    template_id     BLOB NOT NULL,
    phase_id        BLOB NOT NULL,
    position        INTEGER NOT NULL,
    task_key        TEXT NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL,
    owner           TEXT NOT NULL CHECK (owner IN ('msp','client')),
    evidence        TEXT NOT NULL CHECK (evidence IN ('signature','credentials','file_upload','meeting','survey','acknowledgement','none')),
    priority        TEXT NOT NULL CHECK (priority IN ('low','normal','high','critical')),
    due_offset_days INTEGER CHECK (due_offset_days >= 0),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, template_id, task_key),
    FOREIGN KEY (tenant_id, template_id) REFERENCES template (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, phase_id) REFERENCES template_phase (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX template_task_by_template ON template_task (tenant_id, template_id, phase_id, position);

CREATE TABLE template_task_checklist_item (
    tenant_id BLOB NOT NULL,
    task_id   BLOB NOT NULL,
    position  INTEGER NOT NULL,
    text      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, task_id, position),
    FOREIGN KEY (tenant_id, task_id) REFERENCES template_task (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE template_task_dependency (
    tenant_id     BLOB NOT NULL,
    task_id       BLOB NOT NULL,
    depends_on_id BLOB NOT NULL,
    PRIMARY KEY (tenant_id, task_id, depends_on_id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES template_task (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, depends_on_id) REFERENCES template_task (tenant_id, id) ON DELETE CASCADE
);

-- `options` is the ordered list of a choice question's options, as a JSON array of strings.
CREATE TABLE template_task_survey_question (
    tenant_id BLOB NOT NULL,
    id        BLOB NOT NULL,
    task_id   BLOB NOT NULL,
    position  INTEGER NOT NULL,
    text      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('text','single_choice','multiple_choice','yes_no')),
    options   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, task_id) REFERENCES template_task (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX template_task_survey_question_by_task ON template_task_survey_question (tenant_id, task_id, position);
