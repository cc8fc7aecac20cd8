-- Cascading deletes and child lookups go by the parent's id: each needs an index that starts
-- with (tenant_id, parent id), or it scans the tenant's rows once per parent.
CREATE INDEX task_checklist_item_by_task ON task_checklist_item (tenant_id, task_id);

CREATE INDEX task_survey_question_by_task ON task_survey_question (tenant_id, task_id);

CREATE INDEX task_by_phase ON task (tenant_id, phase_id);

CREATE INDEX template_task_by_phase ON template_task (tenant_id, phase_id);

CREATE INDEX template_task_dependency_by_target ON template_task_dependency (tenant_id, depends_on_id);
