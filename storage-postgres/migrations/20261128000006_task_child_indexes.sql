-- Deleting a task cascades to its checklist items and survey questions; without an index that
-- starts with (tenant_id, task_id) each cascade scans the tenant's rows.
CREATE INDEX task_checklist_item_by_task ON task_checklist_item (tenant_id, task_id);

CREATE INDEX task_survey_question_by_task ON task_survey_question (tenant_id, task_id);
