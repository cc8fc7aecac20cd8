//! Reads that take several queries: a whole portal, whole templates, users and roles with
//! their links. Each runs on a connection the caller holds inside one transaction, so the
//! queries see one snapshot.

use std::collections::HashMap;

use portal_core::id::{PortalId, RoleId, TaskId, TemplateId, TemplateTaskId, TenantId};
use portal_core::portal::{Contact, Phase, Portal, PortalState};
use portal_core::storage::StorageResult;
use portal_core::template::{Template, TemplatePhase};
use portal_core::tenant::{PermissionSet, Role, StaffUser};
use portal_core::value::{Description, Name};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::{map_sqlx, parse};
use crate::rows::{
    ChecklistRow, ContactRow, DependencyRow, PhaseRow, PortalRow, RolePermissionRow, RoleRow, StaffUserRoleRow,
    StaffUserRow, SurveyRow, TaskChildren, TaskRow, TemplateChecklistRow, TemplatePhaseRow, TemplateRow,
    TemplateTaskChildren, TemplateTaskRow, contact_columns, phase_columns, portal_columns, task_columns,
};

/// A portal with its phases, tasks (and their dependencies, checklists and surveys) and
/// contacts, in seven queries whatever its size, in [`PortalState::sort`] order.
pub(crate) async fn load_portal(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    id: PortalId,
) -> StorageResult<Option<PortalState>> {
    let (t, p) = (tenant.as_uuid(), id.as_uuid());
    let row: Option<PortalRow> = sqlx::query_as(concat!(
        "SELECT ",
        portal_columns!(),
        " FROM portal WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(t)
    .bind(p)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let portal = Portal::try_from(row)?;

    let phases: Vec<PhaseRow> = sqlx::query_as(concat!(
        "SELECT ",
        phase_columns!(),
        " FROM portal_phase WHERE tenant_id = $1 AND portal_id = $2"
    ))
    .bind(t)
    .bind(p)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let tasks: Vec<TaskRow> = sqlx::query_as(concat!(
        "SELECT ",
        task_columns!(),
        " FROM task WHERE tenant_id = $1 AND portal_id = $2"
    ))
    .bind(t)
    .bind(p)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let deps: Vec<DependencyRow> =
        sqlx::query_as("SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 AND portal_id = $2")
            .bind(t)
            .bind(p)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    let items: Vec<ChecklistRow> = sqlx::query_as(
        "SELECT id, task_id, text, done FROM task_checklist_item WHERE tenant_id = $1 AND portal_id = $2 \
         ORDER BY task_id, position",
    )
    .bind(t)
    .bind(p)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let questions: Vec<SurveyRow> = sqlx::query_as(
        "SELECT id, task_id, text, kind, options FROM task_survey_question WHERE tenant_id = $1 AND portal_id = $2 \
         ORDER BY task_id, position",
    )
    .bind(t)
    .bind(p)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let contacts: Vec<ContactRow> = sqlx::query_as(concat!(
        "SELECT ",
        contact_columns!(),
        " FROM contact WHERE tenant_id = $1 AND portal_id = $2"
    ))
    .bind(t)
    .bind(p)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;

    let mut children: HashMap<Uuid, TaskChildren> = HashMap::with_capacity(tasks.len());
    for d in deps {
        children
            .entry(d.task_id)
            .or_default()
            .depends_on
            .push(TaskId::from_uuid(d.depends_on_id));
    }
    for item in items {
        let parsed = item.item()?;
        children.entry(item.task_id).or_default().checklist.push(parsed);
    }
    for q in questions {
        let parsed = q.question()?;
        children.entry(q.task_id).or_default().survey.push(parsed);
    }
    let mut state = PortalState {
        portal,
        phases: phases.into_iter().map(Phase::try_from).collect::<StorageResult<_>>()?,
        tasks: tasks
            .into_iter()
            .map(|row| {
                let kids = children.remove(&row.id).unwrap_or_default();
                row.into_task(kids)
            })
            .collect::<StorageResult<_>>()?,
        contacts: contacts
            .into_iter()
            .map(Contact::try_from)
            .collect::<StorageResult<_>>()?,
    };
    state.sort();
    Ok(Some(state))
}

/// Whole templates for the given rows, which must be ordered by id: the children of every
/// template whose id lies between the first and the last row's are read in five queries.
pub(crate) async fn load_templates(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rows: Vec<TemplateRow>,
) -> StorageResult<Vec<Template>> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let (t, lo, hi) = (tenant.as_uuid(), first.id, last.id);
    let phases: Vec<TemplatePhaseRow> = sqlx::query_as(
        "SELECT id, template_id, name, description FROM template_phase \
         WHERE tenant_id = $1 AND template_id BETWEEN $2 AND $3 ORDER BY template_id, position, id",
    )
    .bind(t)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let tasks: Vec<TemplateTaskRow> = sqlx::query_as(
        "SELECT id, phase_id, task_key, title, description, owner, evidence, priority, due_offset_days \
         FROM template_task WHERE tenant_id = $1 AND template_id BETWEEN $2 AND $3 ORDER BY phase_id, position, id",
    )
    .bind(t)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let items: Vec<TemplateChecklistRow> = sqlx::query_as(
        "SELECT task_id, text FROM template_task_checklist_item WHERE tenant_id = $1 AND task_id IN \
         (SELECT id FROM template_task WHERE tenant_id = $1 AND template_id BETWEEN $2 AND $3) \
         ORDER BY task_id, position",
    )
    .bind(t)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    // Dependencies keep the order they were written in (the template's own order), which
    // their rowids record: each write replaces a template's rows as a whole.
    let deps: Vec<DependencyRow> = sqlx::query_as(
        "SELECT task_id, depends_on_id FROM template_task_dependency WHERE tenant_id = $1 AND task_id IN \
         (SELECT id FROM template_task WHERE tenant_id = $1 AND template_id BETWEEN $2 AND $3) ORDER BY rowid",
    )
    .bind(t)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let questions: Vec<SurveyRow> = sqlx::query_as(
        "SELECT id, task_id, text, kind, options FROM template_task_survey_question WHERE tenant_id = $1 \
         AND task_id IN (SELECT id FROM template_task WHERE tenant_id = $1 AND template_id BETWEEN $2 AND $3) \
         ORDER BY task_id, position",
    )
    .bind(t)
    .bind(lo)
    .bind(hi)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;

    let mut children: HashMap<Uuid, TemplateTaskChildren> = HashMap::with_capacity(tasks.len());
    for item in items {
        let text = item.text()?;
        children.entry(item.task_id).or_default().checklist.push(text);
    }
    for d in deps {
        children
            .entry(d.task_id)
            .or_default()
            .depends_on
            .push(TemplateTaskId::from_uuid(d.depends_on_id));
    }
    for q in questions {
        let parsed = q.question()?;
        children.entry(q.task_id).or_default().survey.push(parsed);
    }
    let mut tasks_by_phase: HashMap<Uuid, Vec<portal_core::template::TemplateTask>> = HashMap::new();
    for row in tasks {
        let phase = row.phase_id;
        let kids = children.remove(&row.id).unwrap_or_default();
        tasks_by_phase.entry(phase).or_default().push(row.into_task(kids)?);
    }
    let mut phases_by_template: HashMap<Uuid, Vec<TemplatePhase>> = HashMap::new();
    for row in phases {
        let phase = TemplatePhase {
            id: row.id(),
            name: parse("template_phase.name", Name::parse(&row.name))?,
            description: parse("template_phase.description", Description::parse(&row.description))?,
            tasks: tasks_by_phase.remove(&row.id).unwrap_or_default(),
        };
        phases_by_template.entry(row.template_id).or_default().push(phase);
    }
    rows.into_iter()
        .map(|r| {
            Ok(Template {
                id: TemplateId::from_uuid(r.id),
                tenant_id: TenantId::from_uuid(r.tenant_id),
                name: parse("template.name", Name::parse(&r.name))?,
                description: parse("template.description", Description::parse(&r.description))?,
                phases: phases_by_template.remove(&r.id).unwrap_or_default(),
                version: r.version,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
        })
        .collect()
}

/// Roles with their permissions; `permissions` may hold rows of other roles.
pub(crate) fn build_roles(rows: Vec<RoleRow>, permissions: Vec<RolePermissionRow>) -> StorageResult<Vec<Role>> {
    let mut sets: HashMap<Uuid, PermissionSet> = HashMap::with_capacity(rows.len());
    for p in permissions {
        let permission = p.permission()?;
        let set = sets.entry(p.role_id).or_default();
        *set = set.with(permission);
    }
    rows.into_iter()
        .map(|r| {
            Ok(Role {
                id: RoleId::from_uuid(r.id),
                tenant_id: TenantId::from_uuid(r.tenant_id),
                name: r.name()?,
                permissions: sets.get(&r.id).copied().unwrap_or_default(),
                version: r.version,
            })
        })
        .collect()
}

/// Staff users for the given rows, which must be ordered by id, with their roles in the order
/// they were written (by rowid), in one more query.
pub(crate) async fn load_staff_users(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    rows: Vec<StaffUserRow>,
) -> StorageResult<Vec<StaffUser>> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let links: Vec<StaffUserRoleRow> = sqlx::query_as(
        "SELECT user_id, role_id FROM staff_user_role WHERE tenant_id = $1 AND user_id BETWEEN $2 AND $3 \
         ORDER BY rowid",
    )
    .bind(tenant.as_uuid())
    .bind(first.id)
    .bind(last.id)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let mut roles: HashMap<Uuid, Vec<RoleId>> = HashMap::new();
    for l in links {
        roles.entry(l.user_id).or_default().push(RoleId::from_uuid(l.role_id));
    }
    rows.into_iter()
        .map(|r| {
            let mine = roles.remove(&r.id).unwrap_or_default();
            r.into_staff_user(mine)
        })
        .collect()
}

/// A list of ids as one bind value: a JSON array of their hex forms, which a query turns back
/// into BLOBs with `SELECT unhex(value) FROM json_each($n)`. One statement (and one cached
/// prepared statement) whatever the number of ids.
pub(crate) fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    serde_json::Value::from(ids.into_iter().map(|id| id.simple().to_string()).collect::<Vec<_>>()).to_string()
}

/// The dependencies (sorted, as [`PortalState::sort`] leaves them), checklists and survey
/// questions of the given tasks, in three queries.
pub(crate) async fn load_task_children(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tasks: &[Uuid],
) -> StorageResult<HashMap<Uuid, TaskChildren>> {
    let mut children: HashMap<Uuid, TaskChildren> = HashMap::with_capacity(tasks.len());
    if tasks.is_empty() {
        return Ok(children);
    }
    let (t, ids) = (tenant.as_uuid(), id_list(tasks.iter().copied()));
    let deps: Vec<DependencyRow> = sqlx::query_as(
        "SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 \
         AND task_id IN (SELECT unhex(value) FROM json_each($2))",
    )
    .bind(t)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let items: Vec<ChecklistRow> = sqlx::query_as(
        "SELECT id, task_id, text, done FROM task_checklist_item WHERE tenant_id = $1 \
         AND task_id IN (SELECT unhex(value) FROM json_each($2)) ORDER BY task_id, position",
    )
    .bind(t)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let questions: Vec<SurveyRow> = sqlx::query_as(
        "SELECT id, task_id, text, kind, options FROM task_survey_question WHERE tenant_id = $1 \
         AND task_id IN (SELECT unhex(value) FROM json_each($2)) ORDER BY task_id, position",
    )
    .bind(t)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    for d in deps {
        children
            .entry(d.task_id)
            .or_default()
            .depends_on
            .push(TaskId::from_uuid(d.depends_on_id));
    }
    for item in items {
        let parsed = item.item()?;
        children.entry(item.task_id).or_default().checklist.push(parsed);
    }
    for q in questions {
        let parsed = q.question()?;
        children.entry(q.task_id).or_default().survey.push(parsed);
    }
    for c in children.values_mut() {
        c.depends_on.sort();
    }
    Ok(children)
}
