//! Reads of tenants, staff, companies, templates and the activity log.

use std::collections::HashMap;

use async_trait::async_trait;
use portal_core::activity::ActivityEvent;
use portal_core::company::{Company, Site};
use portal_core::id::{CompanyId, EventId, RoleId, SiteId, StaffUserId, TemplateId, TemplateTaskId, TenantId};
use portal_core::storage::{
    ActivityFilter, ActivityRepo, CompanyRepo, MAX_PAGE, PageRequest, StorageError, StorageResult, TemplateRepo,
    TenantRepo,
};
use portal_core::template::{Template, TemplatePhase, TemplateTask};
use portal_core::tenant::{Role, StaffUser, Tenant};
use portal_core::value::Email;
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use crate::PgStorage;
use crate::error::map_sqlx;
use crate::rows::{
    CompanyRow, DependencyRow, EventRow, RoleRow, SiteRow, StaffUserRow, SurveyRow, TemplateChecklistRow,
    TemplatePhaseRow, TemplateRow, TemplateTaskRow, TenantRow, convert,
};

/// A page's limit as a SQL `LIMIT`.
pub(crate) fn sql_limit<C>(page: &PageRequest<C>) -> i64 {
    // At most MAX_PAGE, so the conversion cannot fail.
    i64::try_from(page.clamped_limit()).unwrap_or(MAX_PAGE as i64)
}

const GET_TENANT: &str = "SELECT tenant_id, name, time_zone, billable_default, forwarded_link_protection, \
            access_link_expiry_days, version, created_at, app_name, logo_url, primary_colour, sender_name, \
            sender_email, reply_to, reminder_on_unlock, reminder_days_before_due, reminder_when_overdue, digest_hour \
     FROM tenant WHERE tenant_id = $1";

const GET_ROLE: &str = "SELECT r.tenant_id, r.id, r.name, r.version, \
            ARRAY(SELECT p.permission FROM role_permission p WHERE p.tenant_id = r.tenant_id AND p.role_id = r.id) AS permissions \
     FROM role r WHERE r.tenant_id = $1 AND r.id = $2";

const LIST_ROLES: &str = "SELECT r.tenant_id, r.id, r.name, r.version, \
            ARRAY(SELECT p.permission FROM role_permission p WHERE p.tenant_id = r.tenant_id AND p.role_id = r.id) AS permissions \
     FROM role r WHERE r.tenant_id = $1";

const GET_STAFF_USER: &str = "SELECT u.tenant_id, u.id, u.email, u.display_name, u.active, u.version, u.created_at, \
            ARRAY(SELECT r.role_id FROM staff_user_role r WHERE r.tenant_id = u.tenant_id AND r.user_id = u.id ORDER BY r.role_id) AS roles \
     FROM staff_user u WHERE u.tenant_id = $1 AND u.id = $2";

const FIND_STAFF_USER_BY_EMAIL: &str = "SELECT u.tenant_id, u.id, u.email, u.display_name, u.active, u.version, u.created_at, \
            ARRAY(SELECT r.role_id FROM staff_user_role r WHERE r.tenant_id = u.tenant_id AND r.user_id = u.id ORDER BY r.role_id) AS roles \
     FROM staff_user u WHERE u.tenant_id = $1 AND u.email = $2";

const LIST_STAFF_USERS: &str = "SELECT u.tenant_id, u.id, u.email, u.display_name, u.active, u.version, u.created_at, \
            ARRAY(SELECT r.role_id FROM staff_user_role r WHERE r.tenant_id = u.tenant_id AND r.user_id = u.id ORDER BY r.role_id) AS roles \
     FROM staff_user u WHERE u.tenant_id = $1 AND ($2::uuid IS NULL OR u.id > $2) ORDER BY u.id LIMIT $3";

#[async_trait]
impl TenantRepo for PgStorage {
    async fn get_tenant(&self, tenant: TenantId) -> StorageResult<Option<Tenant>> {
        sqlx::query_as::<_, TenantRow>(GET_TENANT)
            .bind(tenant.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(Tenant::try_from)
            .transpose()
    }

    async fn get_role(&self, tenant: TenantId, id: RoleId) -> StorageResult<Option<Role>> {
        sqlx::query_as::<_, RoleRow>(GET_ROLE)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(Role::try_from)
            .transpose()
    }

    async fn list_roles(&self, tenant: TenantId) -> StorageResult<Vec<Role>> {
        let rows = sqlx::query_as::<_, RoleRow>(LIST_ROLES)
            .bind(tenant.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let mut roles: Vec<Role> = convert(rows)?;
        // Sorted here rather than by `ORDER BY name` so the order is Rust's byte-wise string
        // order whatever the database's collation.
        roles.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(roles)
    }

    async fn get_staff_user(&self, tenant: TenantId, id: StaffUserId) -> StorageResult<Option<StaffUser>> {
        sqlx::query_as::<_, StaffUserRow>(GET_STAFF_USER)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(StaffUser::try_from)
            .transpose()
    }

    async fn find_staff_user_by_email(&self, tenant: TenantId, email: &Email) -> StorageResult<Option<StaffUser>> {
        sqlx::query_as::<_, StaffUserRow>(FIND_STAFF_USER_BY_EMAIL)
            .bind(tenant.as_uuid())
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(StaffUser::try_from)
            .transpose()
    }

    async fn list_staff_users(
        &self,
        tenant: TenantId,
        page: PageRequest<StaffUserId>,
    ) -> StorageResult<Vec<StaffUser>> {
        let rows = sqlx::query_as::<_, StaffUserRow>(LIST_STAFF_USERS)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(sql_limit(&page))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }
}

const GET_COMPANY: &str =
    "SELECT tenant_id, id, name, version, created_at FROM company WHERE tenant_id = $1 AND id = $2";

const LIST_COMPANIES: &str = "SELECT tenant_id, id, name, version, created_at FROM company \
     WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3";

const GET_SITE: &str =
    "SELECT tenant_id, id, company_id, name, address, version FROM site WHERE tenant_id = $1 AND id = $2";

const LIST_SITES_FOR_COMPANY: &str = "SELECT tenant_id, id, company_id, name, address, version FROM site \
     WHERE tenant_id = $1 AND company_id = $2 ORDER BY id";

#[async_trait]
impl CompanyRepo for PgStorage {
    async fn get_company(&self, tenant: TenantId, id: CompanyId) -> StorageResult<Option<Company>> {
        sqlx::query_as::<_, CompanyRow>(GET_COMPANY)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(Company::try_from)
            .transpose()
    }

    async fn list_companies(&self, tenant: TenantId, page: PageRequest<CompanyId>) -> StorageResult<Vec<Company>> {
        let rows = sqlx::query_as::<_, CompanyRow>(LIST_COMPANIES)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(sql_limit(&page))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }

    async fn get_site(&self, tenant: TenantId, id: SiteId) -> StorageResult<Option<Site>> {
        sqlx::query_as::<_, SiteRow>(GET_SITE)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(Site::try_from)
            .transpose()
    }

    async fn list_sites_for_company(&self, tenant: TenantId, company: CompanyId) -> StorageResult<Vec<Site>> {
        let rows = sqlx::query_as::<_, SiteRow>(LIST_SITES_FOR_COMPANY)
            .bind(tenant.as_uuid())
            .bind(company.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }
}

const GET_TEMPLATE: &str = "SELECT tenant_id, id, name, description, version, created_at, updated_at \
     FROM template WHERE tenant_id = $1 AND id = $2";

const LIST_TEMPLATES: &str = "SELECT tenant_id, id, name, description, version, created_at, updated_at \
     FROM template WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3";

const TEMPLATE_PHASES: &str = "SELECT template_id, id, name, description FROM template_phase \
     WHERE tenant_id = $1 AND template_id = ANY($2) ORDER BY template_id, position, id";

const TEMPLATE_TASKS: &str = "SELECT phase_id, id, task_key, title, description, owner, evidence, priority, due_offset_days \
     FROM template_task WHERE tenant_id = $1 AND template_id = ANY($2) ORDER BY phase_id, position, id";

const TEMPLATE_CHECKLISTS: &str = "SELECT c.task_id, c.text FROM template_task_checklist_item c \
     JOIN template_task t ON t.tenant_id = c.tenant_id AND t.id = c.task_id \
     WHERE t.tenant_id = $1 AND t.template_id = ANY($2) ORDER BY c.task_id, c.position";

const TEMPLATE_DEPENDENCIES: &str = "SELECT d.task_id, d.depends_on_id FROM template_task_dependency d \
     JOIN template_task t ON t.tenant_id = d.tenant_id AND t.id = d.task_id \
     WHERE t.tenant_id = $1 AND t.template_id = ANY($2) ORDER BY d.task_id, d.depends_on_id";

const TEMPLATE_SURVEYS: &str = "SELECT s.task_id, s.id, s.text, s.kind, s.options FROM template_task_survey_question s \
     JOIN template_task t ON t.tenant_id = s.tenant_id AND t.id = s.task_id \
     WHERE t.tenant_id = $1 AND t.template_id = ANY($2) ORDER BY s.task_id, s.position, s.id";

/// Reads whole template documents for the given template rows, in the rows' order: five
/// queries whatever the number of templates, phases and tasks.
///
/// A template task's dependencies come back ordered by id: the dependency table keeps no order
/// of its own.
async fn assemble_templates(
    conn: &mut PgConnection,
    tenant: TenantId,
    rows: Vec<TemplateRow>,
) -> StorageResult<Vec<Template>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids = || rows.iter().map(|r| r.id).bind_iter();
    let t = tenant.as_uuid();
    let phase_rows = sqlx::query_as::<_, TemplatePhaseRow>(TEMPLATE_PHASES)
        .bind(t)
        .bind(ids())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let task_rows = sqlx::query_as::<_, TemplateTaskRow>(TEMPLATE_TASKS)
        .bind(t)
        .bind(ids())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let checklist_rows = sqlx::query_as::<_, TemplateChecklistRow>(TEMPLATE_CHECKLISTS)
        .bind(t)
        .bind(ids())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let dependency_rows = sqlx::query_as::<_, DependencyRow>(TEMPLATE_DEPENDENCIES)
        .bind(t)
        .bind(ids())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let survey_rows = sqlx::query_as::<_, SurveyRow>(TEMPLATE_SURVEYS)
        .bind(t)
        .bind(ids())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;

    let mut tasks_by_phase: HashMap<Uuid, Vec<TemplateTask>> = HashMap::new();
    {
        let mut checklists: HashMap<Uuid, Vec<_>> = HashMap::new();
        for r in &checklist_rows {
            checklists.entry(r.task_id).or_default().push(r.text()?);
        }
        let mut dependencies: HashMap<Uuid, Vec<_>> = HashMap::new();
        for r in dependency_rows {
            dependencies
                .entry(r.task_id)
                .or_default()
                .push(TemplateTaskId::from_uuid(r.depends_on_id));
        }
        let mut surveys: HashMap<Uuid, Vec<_>> = HashMap::new();
        for r in survey_rows {
            surveys.entry(r.task_id).or_default().push(r.try_into()?);
        }
        for r in task_rows {
            let phase_id = r.phase_id;
            let mut task = r.into_task()?;
            let id = task.id.as_uuid();
            task.checklist = checklists.remove(&id).unwrap_or_default();
            task.depends_on = dependencies.remove(&id).unwrap_or_default();
            task.survey = surveys.remove(&id).unwrap_or_default();
            tasks_by_phase.entry(phase_id).or_default().push(task);
        }
    }
    let mut phases_by_template: HashMap<Uuid, Vec<TemplatePhase>> = HashMap::new();
    for r in phase_rows {
        let template_id = r.template_id;
        let mut phase = r.into_phase()?;
        phase.tasks = tasks_by_phase.remove(&phase.id.as_uuid()).unwrap_or_default();
        phases_by_template.entry(template_id).or_default().push(phase);
    }
    if !tasks_by_phase.is_empty() {
        return Err(StorageError::Corrupt(
            "a template task sits in a phase of another template".to_owned(),
        ));
    }
    rows.into_iter()
        .map(|r| {
            let phases = phases_by_template.remove(&r.id).unwrap_or_default();
            r.into_template(phases)
        })
        .collect()
}

/// Starts a read-only transaction on one snapshot, so a document read with several queries is
/// never half of one commit and half of another.
pub(crate) const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

#[async_trait]
impl TemplateRepo for PgStorage {
    async fn get_template(&self, tenant: TenantId, id: TemplateId) -> StorageResult<Option<Template>> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(map_sqlx)?;
        let Some(row) = sqlx::query_as::<_, TemplateRow>(GET_TEMPLATE)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?
        else {
            return Ok(None);
        };
        let mut templates = assemble_templates(&mut tx, tenant, vec![row]).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(templates.pop())
    }

    async fn list_templates(&self, tenant: TenantId, page: PageRequest<TemplateId>) -> StorageResult<Vec<Template>> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(map_sqlx)?;
        let rows = sqlx::query_as::<_, TemplateRow>(LIST_TEMPLATES)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(sql_limit(&page))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let templates = assemble_templates(&mut tx, tenant, rows).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(templates)
    }
}

const LIST_ACTIVITY: &str = "SELECT tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, actor_display, at, \
            summary, details, erased_by \
     FROM activity_event \
     WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) AND ($3::uuid IS NULL OR portal_id = $3) \
       AND (cardinality($4::text[]) = 0 OR kind = ANY($4)) \
     ORDER BY id DESC LIMIT $5";

#[async_trait]
impl ActivityRepo for PgStorage {
    async fn list_activity(
        &self,
        tenant: TenantId,
        filter: &ActivityFilter,
        page: PageRequest<EventId>,
    ) -> StorageResult<Vec<ActivityEvent>> {
        let rows = sqlx::query_as::<_, EventRow>(LIST_ACTIVITY)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(filter.portal.map(|p| p.as_uuid()))
            .bind(filter.kinds.iter().map(|k| k.as_str()).bind_iter())
            .bind(sql_limit(&page))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }
}
