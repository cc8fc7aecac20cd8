//! Portals: reads, the whole [`PortalState`] in a fixed number of queries, and
//! [`PortalRepo::modify_portal`] under the portal's row lock.

use std::collections::HashMap;

use async_trait::async_trait;
use portal_core::error::CommandError;
use portal_core::id::{PortalId, StaffUserId, TaskId, TenantId};
use portal_core::outcome::Outcome;
use portal_core::portal::{Portal, PortalState};
use portal_core::storage::{
    AssignedTask, AssignedTaskCursor, PageRequest, PortalDecision, PortalFilter, PortalRepo, PortalTaskCounts,
    StorageError, StorageResult,
};
use portal_core::task::{Comment, Task};
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use crate::PgStorage;
use crate::error::map_sqlx;
use crate::read::{BEGIN_SNAPSHOT, sql_limit};
use crate::rows::{
    AssignedTaskRow, ChecklistRow, CommentRow, ContactRow, DependencyRow, PhaseRow, PortalRow, SurveyRow,
    TaskCountsRow, TaskRow, convert,
};
use crate::write::apply_outcome;

const GET_PORTAL: &str = "SELECT tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
            activated_at \
     FROM portal WHERE tenant_id = $1 AND id = $2";

/// The same row, locked against every other writer of the portal until the transaction ends.
const LOCK_PORTAL: &str = "SELECT tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
            activated_at \
     FROM portal WHERE tenant_id = $1 AND id = $2 FOR UPDATE";

const LIST_PORTALS: &str = "SELECT tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
            activated_at \
     FROM portal \
     WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) AND ($3::text IS NULL OR status = $3) \
       AND ($4::uuid IS NULL OR company_id = $4) \
     ORDER BY id LIMIT $5";

const PORTAL_PHASES: &str = "SELECT tenant_id, id, portal_id, position, name, description, version \
     FROM portal_phase WHERE tenant_id = $1 AND portal_id = $2";

const PORTAL_TASKS: &str = "SELECT tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, \
            priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
            completed_by_id, completed_by_display, completion_reason, version \
     FROM task WHERE tenant_id = $1 AND portal_id = $2";

const PORTAL_DEPENDENCIES: &str =
    "SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 AND portal_id = $2";

const PORTAL_CHECKLISTS: &str = "SELECT task_id, id, text, done FROM task_checklist_item \
     WHERE tenant_id = $1 AND portal_id = $2 ORDER BY task_id, position, id";

const PORTAL_SURVEYS: &str = "SELECT task_id, id, text, kind, options FROM task_survey_question \
     WHERE tenant_id = $1 AND portal_id = $2 ORDER BY task_id, position, id";

const PORTAL_CONTACTS: &str = "SELECT tenant_id, id, portal_id, name, email, role, is_primary, version, created_at, \
            notification_preferences \
     FROM contact WHERE tenant_id = $1 AND portal_id = $2";

const COMMENTS_FOR_TASK: &str = "SELECT tenant_id, id, portal_id, task_id, author_kind, author_id, author_display, body, \
            is_question, created_at \
     FROM task_comment WHERE tenant_id = $1 AND task_id = $2 ORDER BY created_at, id";

const TASK_COUNTS: &str = "SELECT p.id AS portal_id, COUNT(t.id) AS total, \
            COUNT(t.id) FILTER (WHERE t.status = 'completed') AS completed \
     FROM portal p LEFT JOIN task t ON t.tenant_id = p.tenant_id AND t.portal_id = p.id \
     WHERE p.tenant_id = $1 AND p.id = ANY($2) GROUP BY p.id";

/// Open tasks of active portals assigned to a user, in (phase position, task position, id)
/// order from the cursor on; `task_by_assignee` finds them.
const ASSIGNED_TASKS: &str = "SELECT t.tenant_id, t.id, t.portal_id, t.phase_id, t.position, t.title, t.description, \
            t.owner, t.evidence, t.priority, t.due_offset_days, t.due_date, t.status, t.block_reason, t.assignee_id, \
            t.completed_at, t.completed_by_kind, t.completed_by_id, t.completed_by_display, t.completion_reason, \
            t.version, p.name AS portal_name, ph.position AS phase_position \
     FROM task t \
     JOIN portal p ON p.tenant_id = t.tenant_id AND p.id = t.portal_id \
     JOIN portal_phase ph ON ph.tenant_id = t.tenant_id AND ph.id = t.phase_id \
     WHERE t.tenant_id = $1 AND t.assignee_id = $2 AND t.status <> 'completed' AND p.status = 'active' \
       AND ($3::integer IS NULL OR (ph.position, t.position, t.id) > ($3, $4::integer, $5::uuid)) \
     ORDER BY ph.position, t.position, t.id LIMIT $6";

const TASKS_DEPENDENCIES: &str =
    "SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 AND task_id = ANY($2)";

const TASKS_CHECKLISTS: &str = "SELECT task_id, id, text, done FROM task_checklist_item \
     WHERE tenant_id = $1 AND task_id = ANY($2) ORDER BY task_id, position, id";

const TASKS_SURVEYS: &str = "SELECT task_id, id, text, kind, options FROM task_survey_question \
     WHERE tenant_id = $1 AND task_id = ANY($2) ORDER BY task_id, position, id";

/// Fills in the dependencies (sorted, as [`PortalState::sort`] leaves them), checklists and
/// survey questions of `tasks`, in three queries.
async fn add_task_children(conn: &mut PgConnection, tenant: TenantId, tasks: &mut [&mut Task]) -> StorageResult<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let t = tenant.as_uuid();
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id.as_uuid()).collect();
    let dependency_rows = sqlx::query_as::<_, DependencyRow>(TASKS_DEPENDENCIES)
        .bind(t)
        .bind(ids.as_slice())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let checklist_rows = sqlx::query_as::<_, ChecklistRow>(TASKS_CHECKLISTS)
        .bind(t)
        .bind(ids.as_slice())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let survey_rows = sqlx::query_as::<_, SurveyRow>(TASKS_SURVEYS)
        .bind(t)
        .bind(ids.as_slice())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let index: HashMap<Uuid, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_uuid(), i)).collect();
    let task_of = |id: Uuid| {
        index
            .get(&id)
            .copied()
            .ok_or_else(|| StorageError::Corrupt(format!("a child row of task {id} came back unasked")))
    };
    for r in dependency_rows {
        let i = task_of(r.task_id)?;
        tasks[i].depends_on.push(TaskId::from_uuid(r.depends_on_id));
    }
    for r in checklist_rows {
        let i = task_of(r.task_id)?;
        tasks[i].checklist.push(r.try_into()?);
    }
    for r in survey_rows {
        let i = task_of(r.task_id)?;
        tasks[i].survey.push(r.try_into()?);
    }
    for task in tasks.iter_mut() {
        task.depends_on.sort();
    }
    Ok(())
}

/// Reads the portal row, locked `FOR UPDATE` when `lock` is set.
async fn portal_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PortalId,
    lock: bool,
) -> StorageResult<Option<Portal>> {
    sqlx::query_as::<_, PortalRow>(if lock { LOCK_PORTAL } else { GET_PORTAL })
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)?
        .map(Portal::try_from)
        .transpose()
}

/// Reads everything under `portal` with six queries (phases, tasks, dependencies, checklist
/// items, survey questions, contacts), whatever the number of tasks, and puts it in canonical
/// order.
async fn portal_state(conn: &mut PgConnection, portal: Portal) -> StorageResult<PortalState> {
    let (t, p) = (portal.tenant_id.as_uuid(), portal.id.as_uuid());
    macro_rules! fetch {
        ($row:ty, $sql:expr) => {
            sqlx::query_as::<_, $row>($sql)
                .bind(t)
                .bind(p)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_sqlx)?
        };
    }
    let phases = convert(fetch!(PhaseRow, PORTAL_PHASES))?;
    let task_rows = fetch!(TaskRow, PORTAL_TASKS);
    let dependency_rows = fetch!(DependencyRow, PORTAL_DEPENDENCIES);
    let checklist_rows = fetch!(ChecklistRow, PORTAL_CHECKLISTS);
    let survey_rows = fetch!(SurveyRow, PORTAL_SURVEYS);
    let contacts = convert(fetch!(ContactRow, PORTAL_CONTACTS))?;

    let mut tasks: Vec<Task> = convert(task_rows)?;
    let index: HashMap<Uuid, usize> = tasks.iter().enumerate().map(|(i, t)| (t.id.as_uuid(), i)).collect();
    let task_of = |id: Uuid| {
        index
            .get(&id)
            .copied()
            .ok_or_else(|| StorageError::Corrupt(format!("a child row of task {id} lies in another portal")))
    };
    for r in dependency_rows {
        let i = task_of(r.task_id)?;
        tasks[i].depends_on.push(TaskId::from_uuid(r.depends_on_id));
    }
    for r in checklist_rows {
        let i = task_of(r.task_id)?;
        tasks[i].checklist.push(r.try_into()?);
    }
    for r in survey_rows {
        let i = task_of(r.task_id)?;
        tasks[i].survey.push(r.try_into()?);
    }
    let mut state = PortalState {
        portal,
        phases,
        tasks,
        contacts,
    };
    state.sort();
    Ok(state)
}

#[async_trait]
impl PortalRepo for PgStorage {
    async fn get_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<Portal>> {
        let mut conn = self.pool.acquire().await.map_err(map_sqlx)?;
        portal_row(&mut conn, tenant, id, false).await
    }

    async fn load_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<PortalState>> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(map_sqlx)?;
        let Some(portal) = portal_row(&mut tx, tenant, id, false).await? else {
            return Ok(None);
        };
        let state = portal_state(&mut tx, portal).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(Some(state))
    }

    async fn list_portals(
        &self,
        tenant: TenantId,
        filter: PortalFilter,
        page: PageRequest<PortalId>,
    ) -> StorageResult<Vec<Portal>> {
        let rows = sqlx::query_as::<_, PortalRow>(LIST_PORTALS)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.company.map(|c| c.as_uuid()))
            .bind(sql_limit(&page))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }

    async fn task_counts(&self, tenant: TenantId, portals: &[PortalId]) -> StorageResult<Vec<PortalTaskCounts>> {
        if portals.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as::<_, TaskCountsRow>(TASK_COUNTS)
            .bind(tenant.as_uuid())
            .bind(portals.iter().map(|p| p.as_uuid()).bind_iter())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let counts: HashMap<PortalId, PortalTaskCounts> = convert::<_, PortalTaskCounts>(rows)?
            .into_iter()
            .map(|c| (c.portal, c))
            .collect();
        // In the order asked for; an id that is no portal of the tenant's is left out.
        Ok(portals.iter().filter_map(|p| counts.get(p).copied()).collect())
    }

    async fn list_assigned_tasks(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        req: PageRequest<AssignedTaskCursor>,
    ) -> StorageResult<Vec<AssignedTask>> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(map_sqlx)?;
        let rows = sqlx::query_as::<_, AssignedTaskRow>(ASSIGNED_TASKS)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(req.after.map(|c| c.phase_position))
            .bind(req.after.map(|c| c.task_position))
            .bind(req.after.map(|c| c.task.as_uuid()))
            .bind(sql_limit(&req))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let mut items: Vec<AssignedTask> = convert(rows)?;
        let mut tasks: Vec<&mut Task> = items.iter_mut().map(|a| &mut a.task).collect();
        add_task_children(&mut tx, tenant, &mut tasks).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(items)
    }

    async fn list_comments_for_task(&self, tenant: TenantId, task: TaskId) -> StorageResult<Vec<Comment>> {
        let rows = sqlx::query_as::<_, CommentRow>(COMMENTS_FOR_TASK)
            .bind(tenant.as_uuid())
            .bind(task.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }

    async fn modify_portal(
        &self,
        tenant: TenantId,
        id: PortalId,
        decide: &PortalDecision<'_>,
    ) -> StorageResult<Option<Result<Outcome, CommandError>>> {
        // READ COMMITTED on purpose: after the lock is granted every later statement sees what
        // the previous holder committed, which a REPEATABLE READ snapshot taken before the wait
        // would not.
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let Some(portal) = portal_row(&mut tx, tenant, id, true).await? else {
            return Ok(None);
        };
        let state = portal_state(&mut tx, portal).await?;
        let outcome = match decide(&state) {
            Ok(outcome) => outcome,
            Err(refused) => {
                tx.rollback().await.map_err(map_sqlx)?;
                return Ok(Some(Err(refused)));
            }
        };
        match apply_outcome(&mut tx, tenant, &outcome).await? {
            Ok(()) => {
                tx.commit().await.map_err(map_sqlx)?;
                Ok(Some(Ok(outcome)))
            }
            // The portal's own rows cannot have changed under its row lock, but a decision also
            // writes rows outside the portal's state that it did not read (the reminder ledger,
            // digest items): another writer may have recorded the same reminder or queued the
            // same digest since the caller looked. That is a refusal, as the reference store
            // answers it, and nothing of the outcome is written.
            Err(refused) => {
                tx.rollback().await.map_err(map_sqlx)?;
                Ok(Some(Err(refused)))
            }
        }
    }
}
