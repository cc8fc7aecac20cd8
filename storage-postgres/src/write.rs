//! The one commit path: an [`Outcome`]'s writes, events and messages applied on one
//! transaction, shared by [`OutcomeRepo::commit_outcome`] and
//! [`PortalRepo::modify_portal`](portal_core::storage::PortalRepo::modify_portal).
//!
//! Every write answers a clash the way the in-memory reference store does, in the same order of
//! checks, without making PostgreSQL abort the transaction where it can:
//!
//! - inserts use `ON CONFLICT DO NOTHING` and, when nothing was inserted, look up why (a unique
//!   value taken, the id taken, a parent missing through a `WHERE EXISTS` guard);
//! - updates and deletes are compare-and-set (`... AND version = $expected`); when no row
//!   matched, the current version says `NotFound` or `Stale`; an update that must also keep a
//!   value unique (role names, staff emails, contact emails and primaries) carries a
//!   `NOT EXISTS` guard and reports the clash after the version check, as the reference store
//!   does.

use async_trait::async_trait;
use portal_core::activity::ActivityEvent;
use portal_core::error::CommandError;
use portal_core::id::{RoleId, StaffUserId, TenantId};
use portal_core::outcome::{OutboundMessage, Outcome, Write};
use portal_core::portal::{Contact, PortalState};
use portal_core::storage::{OutcomeRepo, StorageError, StorageResult};
use portal_core::task::Task;
use portal_core::tenant::PermissionSet;
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use crate::PgStorage;
use crate::batch::{insert_contacts, insert_phases, insert_task_children, insert_tasks, insert_template_document};
use crate::error::{Fail, Step, already, append_violation, map_sqlx, not_found, violation};

/// The write being applied, for turning a violated constraint into the right refusal.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'w> {
    /// The commit's tenant: every row is written under it.
    pub(crate) tenant: TenantId,
    write: &'w Write,
}

impl Cx<'_> {
    /// A failed statement of this write as a refusal or a store failure.
    pub(crate) fn err(self, e: sqlx::Error) -> Fail {
        violation(e, self.tenant, self.write)
    }

    fn t(self) -> Uuid {
        self.tenant.as_uuid()
    }
}

/// Applies `outcome` on `conn`, which must be inside a transaction the caller commits on
/// `Ok(Ok(()))` and rolls back otherwise.
///
/// A row of another tenant is refused before anything is written
/// ([`StorageError::Invariant`]). Then the writes are applied in order, the events appended
/// and the messages queued (status `queued`, no attempt yet, due at once). Access effects need
/// no row yet: the sessions and links they revoke come with the contacts work.
pub(crate) async fn apply_outcome(
    conn: &mut PgConnection,
    tenant: TenantId,
    outcome: &Outcome,
) -> StorageResult<Result<(), CommandError>> {
    if let Some(bad) = outcome.tenants().find(|t| *t != tenant) {
        return Err(StorageError::Invariant(format!(
            "a write for tenant {bad} in a commit for tenant {tenant}"
        )));
    }
    let applied = async {
        for w in &outcome.writes {
            apply_write(conn, Cx { tenant, write: w }).await?;
        }
        insert_events(conn, tenant, &outcome.events).await?;
        insert_messages(conn, tenant, &outcome.messages).await
    };
    match applied.await {
        Ok(()) => Ok(Ok(())),
        Err(Fail::Refused(e)) => Ok(Err(e)),
        Err(Fail::Store(e)) => Err(e),
    }
}

#[async_trait]
impl OutcomeRepo for PgStorage {
    async fn commit_outcome(&self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>> {
        if outcome.is_empty() {
            return Ok(Ok(()));
        }
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let result = apply_outcome(&mut tx, tenant, outcome).await?;
        if result.is_ok() {
            tx.commit().await.map_err(map_sqlx)?;
        } else {
            tx.rollback().await.map_err(map_sqlx)?;
        }
        Ok(result)
    }
}

/// Why a compare-and-set matched no row: the row is gone (`NotFound`) or carries another
/// version (`Stale`). `Ok` when the version is the expected one after all, which for a guarded
/// update means the guard refused it.
async fn version_refusal(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    version_sql: &'static str,
    entity: &'static str,
    id: Uuid,
    expected: i64,
) -> Step {
    let actual: Option<i64> = sqlx::query_scalar(version_sql)
        .bind(cx.t())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    match actual {
        None => Err(not_found(entity, id)),
        Some(actual) if actual != expected => Err(Fail::Refused(CommandError::Stale {
            entity,
            id,
            expected,
            actual,
        })),
        Some(_) => Ok(()),
    }
}

/// Completes a plain compare-and-set that touched `rows` rows.
async fn cas(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    rows: u64,
    version_sql: &'static str,
    entity: &'static str,
    id: Uuid,
    expected: i64,
) -> Step {
    if rows > 0 {
        return Ok(());
    }
    version_refusal(conn, cx, version_sql, entity, id, expected).await?;
    // Versions only grow, so a row back at the expected version after missing it cannot be.
    Err(Fail::Store(StorageError::Invariant(format!(
        "compare-and-set on {entity} {id} matched no row although its version is {expected}"
    ))))
}

const TENANT_VERSION: &str = "SELECT version FROM tenant WHERE tenant_id = $1 AND tenant_id = $2";
const ROLE_VERSION: &str = "SELECT version FROM role WHERE tenant_id = $1 AND id = $2";
const STAFF_USER_VERSION: &str = "SELECT version FROM staff_user WHERE tenant_id = $1 AND id = $2";
const COMPANY_VERSION: &str = "SELECT version FROM company WHERE tenant_id = $1 AND id = $2";
const SITE_VERSION: &str = "SELECT version FROM site WHERE tenant_id = $1 AND id = $2";
const TEMPLATE_VERSION: &str = "SELECT version FROM template WHERE tenant_id = $1 AND id = $2";
const PORTAL_VERSION: &str = "SELECT version FROM portal WHERE tenant_id = $1 AND id = $2";
const PHASE_VERSION: &str = "SELECT version FROM portal_phase WHERE tenant_id = $1 AND id = $2";
const TASK_VERSION: &str = "SELECT version FROM task WHERE tenant_id = $1 AND id = $2";
const CONTACT_VERSION: &str = "SELECT version FROM contact WHERE tenant_id = $1 AND id = $2";

const INSERT_TENANT: &str = "INSERT INTO tenant (tenant_id, name, time_zone, billable_default, \
         forwarded_link_protection, version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const UPDATE_TENANT: &str = "UPDATE tenant SET name = $3, time_zone = $4, billable_default = $5, \
         forwarded_link_protection = $6, version = $7, created_at = $8 \
     WHERE tenant_id = $1 AND version = $2";

const INSERT_ROLE: &str =
    "INSERT INTO role (tenant_id, id, name, version) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const ROLE_NAME_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM role WHERE tenant_id = $1 AND name = $2)";
const UPDATE_ROLE: &str = "UPDATE role SET name = $3, version = $4 \
     WHERE tenant_id = $1 AND id = $2 AND version = $5 \
       AND NOT EXISTS (SELECT 1 FROM role o WHERE o.tenant_id = $1 AND o.name = $3 AND o.id <> $2)";
const DELETE_ROLE_PERMISSIONS: &str = "DELETE FROM role_permission WHERE tenant_id = $1 AND role_id = $2";
const INSERT_ROLE_PERMISSIONS: &str =
    "INSERT INTO role_permission (tenant_id, role_id, permission) SELECT $1, $2, p FROM UNNEST($3::text[]) AS p";

const INSERT_STAFF_USER: &str = "INSERT INTO staff_user (tenant_id, id, email, display_name, active, version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const STAFF_EMAIL_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM staff_user WHERE tenant_id = $1 AND email = $2)";
const UPDATE_STAFF_USER: &str = "UPDATE staff_user SET email = $3, display_name = $4, active = $5, version = $6, \
         created_at = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8 \
       AND NOT EXISTS (SELECT 1 FROM staff_user o WHERE o.tenant_id = $1 AND o.email = $3 AND o.id <> $2)";
const DELETE_STAFF_ROLES: &str = "DELETE FROM staff_user_role WHERE tenant_id = $1 AND user_id = $2";
/// Roles that do not exist are skipped, and reported as `NotFound("role")`.
const INSERT_STAFF_ROLES: &str = "INSERT INTO staff_user_role (tenant_id, user_id, role_id) \
     SELECT $1, $2, r FROM UNNEST($3::uuid[]) AS r \
     WHERE EXISTS (SELECT 1 FROM role WHERE tenant_id = $1 AND id = r)";
const FIRST_MISSING_ROLE: &str = "SELECT u.r FROM UNNEST($2::uuid[]) WITH ORDINALITY AS u(r, n) \
     WHERE NOT EXISTS (SELECT 1 FROM role WHERE tenant_id = $1 AND id = u.r) ORDER BY u.n LIMIT 1";

const INSERT_COMPANY: &str = "INSERT INTO company (tenant_id, id, name, version, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const UPDATE_COMPANY: &str = "UPDATE company SET name = $3, version = $4, created_at = $5 \
     WHERE tenant_id = $1 AND id = $2 AND version = $6";
const COMPANY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $2)";

const INSERT_SITE: &str = "INSERT INTO site (tenant_id, id, company_id, name, address, version) \
     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $3) \
     ON CONFLICT DO NOTHING";
const UPDATE_SITE: &str = "UPDATE site SET company_id = $3, name = $4, address = $5, version = $6 \
     WHERE tenant_id = $1 AND id = $2 AND version = $7";
const DELETE_SITE: &str = "DELETE FROM site WHERE tenant_id = $1 AND id = $2 AND version = $3";

const INSERT_TEMPLATE: &str = "INSERT INTO template (tenant_id, id, name, description, version, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const UPDATE_TEMPLATE: &str = "UPDATE template SET name = $3, description = $4, version = $5, created_at = $6, \
         updated_at = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8";
/// Tasks, their checklists, surveys and dependencies follow by `ON DELETE CASCADE`.
const DELETE_TEMPLATE_PHASES: &str = "DELETE FROM template_phase WHERE tenant_id = $1 AND template_id = $2";
const DELETE_TEMPLATE: &str = "DELETE FROM template WHERE tenant_id = $1 AND id = $2 AND version = $3";

const INSERT_PORTAL: &str = "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, \
         created_at, updated_at, activated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $3) \
     ON CONFLICT DO NOTHING";
const UPDATE_PORTAL: &str = "UPDATE portal SET company_id = $3, template_id = $4, name = $5, status = $6, version = $7, \
         created_at = $8, updated_at = $9, activated_at = $10 \
     WHERE tenant_id = $1 AND id = $2 AND version = $11";
/// Phases, tasks (with dependencies both ways, checklists, surveys, comments) and contacts
/// follow by `ON DELETE CASCADE`.
const DELETE_PORTAL: &str = "DELETE FROM portal WHERE tenant_id = $1 AND id = $2";

const UPDATE_PHASE: &str = "UPDATE portal_phase SET portal_id = $3, position = $4, name = $5, description = $6, \
         version = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8";
const DELETE_PHASE: &str = "DELETE FROM portal_phase WHERE tenant_id = $1 AND id = $2";

/// The compare-and-set on the task row and, only when it matched, the removal of the task's
/// dependencies, checklist items and survey questions, which are then written afresh.
const UPDATE_TASK: &str = "WITH updated AS ( \
         UPDATE task SET portal_id = $3, phase_id = $4, position = $5, title = $6, description = $7, owner = $8, \
             evidence = $9, priority = $10, due_offset_days = $11, due_date = $12, status = $13, block_reason = $14, \
             assignee_id = $15, completed_at = $16, completed_by_kind = $17, completed_by_id = $18, \
             completed_by_display = $19, completion_reason = $20, version = $21 \
         WHERE tenant_id = $1 AND id = $2 AND version = $22 \
         RETURNING id \
     ), dependencies AS ( \
         DELETE FROM task_dependency WHERE tenant_id = $1 AND task_id IN (SELECT id FROM updated) \
     ), checklist AS ( \
         DELETE FROM task_checklist_item WHERE tenant_id = $1 AND task_id IN (SELECT id FROM updated) \
     ), survey AS ( \
         DELETE FROM task_survey_question WHERE tenant_id = $1 AND task_id IN (SELECT id FROM updated) \
     ) \
     SELECT count(*) FROM updated";
/// Dependencies on it, checklists, surveys and comments follow by `ON DELETE CASCADE`.
const DELETE_TASK: &str = "DELETE FROM task WHERE tenant_id = $1 AND id = $2";

const UPDATE_CONTACT: &str = "UPDATE contact SET portal_id = $3, name = $4, email = $5, role = $6, is_primary = $7, \
         version = $8, created_at = $9 \
     WHERE tenant_id = $1 AND id = $2 AND version = $10 \
       AND NOT EXISTS (SELECT 1 FROM contact o \
                       WHERE o.tenant_id = $1 AND o.portal_id = $3 AND o.id <> $2 \
                         AND (o.email = $5 OR ($7 AND o.is_primary)))";
/// The first other contact of the portal (by id, as the reference store scans them) that the
/// contact clashes with, and whether the clash is the email.
const CONTACT_CLASH: &str = "SELECT email = $4 FROM contact \
     WHERE tenant_id = $1 AND portal_id = $2 AND id <> $3 AND (email = $4 OR ($5 AND is_primary)) \
     ORDER BY id LIMIT 1";
const DELETE_CONTACT: &str = "DELETE FROM contact WHERE tenant_id = $1 AND id = $2";

const INSERT_COMMENT: &str = "INSERT INTO task_comment (tenant_id, id, portal_id, task_id, author_kind, author_id, \
         author_display, body, is_question, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $4) \
     ON CONFLICT DO NOTHING";
const TASK_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $2)";

const ERASE_EVENTS_OF_PORTAL: &str = "UPDATE activity_event \
     SET summary = '', details = 'null'::jsonb, actor_display = NULL, erased_by = $3 \
     WHERE tenant_id = $1 AND portal_id = $2";

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type PgScalar<'q, T> = sqlx::query::QueryScalar<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;

/// Runs one statement of the current write, giving the rows it touched.
async fn exec(conn: &mut PgConnection, cx: Cx<'_>, query: PgQuery<'_>) -> Step<u64> {
    Ok(query.execute(conn).await.map_err(|e| cx.err(e))?.rows_affected())
}

/// Runs one single-value `SELECT` of the current write.
async fn scalar<T>(conn: &mut PgConnection, cx: Cx<'_>, query: PgScalar<'_, T>) -> Step<T>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    query.fetch_one(conn).await.map_err(|e| cx.err(e))
}

#[allow(clippy::too_many_lines)] // one arm per write, each a few statements
async fn apply_write(conn: &mut PgConnection, cx: Cx<'_>) -> Step {
    let t = cx.t();
    match cx.write {
        Write::InsertTenant(tenant) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_TENANT)
                    .bind(tenant.id.as_uuid())
                    .bind(tenant.name.as_str())
                    .bind(tenant.settings.time_zone.name())
                    .bind(tenant.settings.billable_default)
                    .bind(tenant.settings.forwarded_link_protection)
                    .bind(tenant.version)
                    .bind(tenant.created_at),
            )
            .await?;
            if rows == 0 {
                return Err(already("tenant", &tenant.id));
            }
        }
        Write::UpdateTenant {
            tenant,
            expected_version,
        } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_TENANT)
                    .bind(tenant.id.as_uuid())
                    .bind(*expected_version)
                    .bind(tenant.name.as_str())
                    .bind(tenant.settings.time_zone.name())
                    .bind(tenant.settings.billable_default)
                    .bind(tenant.settings.forwarded_link_protection)
                    .bind(tenant.version)
                    .bind(tenant.created_at),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                TENANT_VERSION,
                "tenant",
                tenant.id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::InsertRole(role) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_ROLE)
                    .bind(t)
                    .bind(role.id.as_uuid())
                    .bind(role.name.as_str())
                    .bind(role.version),
            )
            .await?;
            if rows == 0 {
                let name_taken = scalar(
                    conn,
                    cx,
                    sqlx::query_scalar::<_, bool>(ROLE_NAME_TAKEN)
                        .bind(t)
                        .bind(role.name.as_str()),
                )
                .await?;
                return Err(if name_taken {
                    already("role", &role.name)
                } else {
                    already("role", &role.id)
                });
            }
            insert_permissions(conn, cx, role.id, role.permissions).await?;
        }
        Write::UpdateRole { role, expected_version } => {
            let id = role.id.as_uuid();
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_ROLE)
                    .bind(t)
                    .bind(id)
                    .bind(role.name.as_str())
                    .bind(role.version)
                    .bind(*expected_version),
            )
            .await?;
            if rows == 0 {
                version_refusal(conn, cx, ROLE_VERSION, "role", id, *expected_version).await?;
                return Err(already("role", &role.name));
            }
            exec(conn, cx, sqlx::query(DELETE_ROLE_PERMISSIONS).bind(t).bind(id)).await?;
            insert_permissions(conn, cx, role.id, role.permissions).await?;
        }
        Write::InsertStaffUser(user) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_STAFF_USER)
                    .bind(t)
                    .bind(user.id.as_uuid())
                    .bind(user.email.as_str())
                    .bind(user.display_name.as_str())
                    .bind(user.active)
                    .bind(user.version)
                    .bind(user.created_at),
            )
            .await?;
            if rows == 0 {
                let email_taken = scalar(
                    conn,
                    cx,
                    sqlx::query_scalar::<_, bool>(STAFF_EMAIL_TAKEN)
                        .bind(t)
                        .bind(user.email.as_str()),
                )
                .await?;
                return Err(if email_taken {
                    already("staff user", &user.email)
                } else {
                    already("staff user", &user.id)
                });
            }
            insert_staff_roles(conn, cx, user.id, &user.roles).await?;
        }
        Write::UpdateStaffUser { user, expected_version } => {
            let id = user.id.as_uuid();
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_STAFF_USER)
                    .bind(t)
                    .bind(id)
                    .bind(user.email.as_str())
                    .bind(user.display_name.as_str())
                    .bind(user.active)
                    .bind(user.version)
                    .bind(user.created_at)
                    .bind(*expected_version),
            )
            .await?;
            if rows == 0 {
                version_refusal(conn, cx, STAFF_USER_VERSION, "staff user", id, *expected_version).await?;
                return Err(already("staff user", &user.email));
            }
            exec(conn, cx, sqlx::query(DELETE_STAFF_ROLES).bind(t).bind(id)).await?;
            insert_staff_roles(conn, cx, user.id, &user.roles).await?;
        }
        Write::InsertCompany(company) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_COMPANY)
                    .bind(t)
                    .bind(company.id.as_uuid())
                    .bind(company.name.as_str())
                    .bind(company.version)
                    .bind(company.created_at),
            )
            .await?;
            if rows == 0 {
                return Err(already("company", &company.id));
            }
        }
        Write::UpdateCompany {
            company,
            expected_version,
        } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_COMPANY)
                    .bind(t)
                    .bind(company.id.as_uuid())
                    .bind(company.name.as_str())
                    .bind(company.version)
                    .bind(company.created_at)
                    .bind(*expected_version),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                COMPANY_VERSION,
                "company",
                company.id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::InsertSite(site) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_SITE)
                    .bind(t)
                    .bind(site.id.as_uuid())
                    .bind(site.company_id.as_uuid())
                    .bind(site.name.as_str())
                    .bind(site.address.as_str())
                    .bind(site.version),
            )
            .await?;
            if rows == 0 {
                let company = scalar(
                    conn,
                    cx,
                    sqlx::query_scalar::<_, bool>(COMPANY_EXISTS)
                        .bind(t)
                        .bind(site.company_id.as_uuid()),
                )
                .await?;
                return Err(if company {
                    already("site", &site.id)
                } else {
                    not_found("company", site.company_id)
                });
            }
        }
        Write::UpdateSite { site, expected_version } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_SITE)
                    .bind(t)
                    .bind(site.id.as_uuid())
                    .bind(site.company_id.as_uuid())
                    .bind(site.name.as_str())
                    .bind(site.address.as_str())
                    .bind(site.version)
                    .bind(*expected_version),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                SITE_VERSION,
                "site",
                site.id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::DeleteSite { id, expected_version } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(DELETE_SITE)
                    .bind(t)
                    .bind(id.as_uuid())
                    .bind(*expected_version),
            )
            .await?;
            cas(conn, cx, rows, SITE_VERSION, "site", id.as_uuid(), *expected_version).await?;
        }
        Write::InsertTemplate(template) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_TEMPLATE)
                    .bind(t)
                    .bind(template.id.as_uuid())
                    .bind(template.name.as_str())
                    .bind(template.description.as_str())
                    .bind(template.version)
                    .bind(template.created_at)
                    .bind(template.updated_at),
            )
            .await?;
            if rows == 0 {
                return Err(already("template", &template.id));
            }
            insert_template_document(conn, cx, template).await?;
        }
        Write::ReplaceTemplate {
            template,
            expected_version,
        } => {
            let id = template.id.as_uuid();
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_TEMPLATE)
                    .bind(t)
                    .bind(id)
                    .bind(template.name.as_str())
                    .bind(template.description.as_str())
                    .bind(template.version)
                    .bind(template.created_at)
                    .bind(template.updated_at)
                    .bind(*expected_version),
            )
            .await?;
            cas(conn, cx, rows, TEMPLATE_VERSION, "template", id, *expected_version).await?;
            exec(conn, cx, sqlx::query(DELETE_TEMPLATE_PHASES).bind(t).bind(id)).await?;
            insert_template_document(conn, cx, template).await?;
        }
        Write::DeleteTemplate { id, expected_version } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(DELETE_TEMPLATE)
                    .bind(t)
                    .bind(id.as_uuid())
                    .bind(*expected_version),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                TEMPLATE_VERSION,
                "template",
                id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::InsertPortal(state) => insert_portal(conn, cx, state).await?,
        Write::UpdatePortal {
            portal,
            expected_version,
        } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_PORTAL)
                    .bind(t)
                    .bind(portal.id.as_uuid())
                    .bind(portal.company_id.as_uuid())
                    .bind(portal.template_id.map(|id| id.as_uuid()))
                    .bind(portal.name.as_str())
                    .bind(portal.status.as_str())
                    .bind(portal.version)
                    .bind(portal.created_at)
                    .bind(portal.updated_at)
                    .bind(portal.activated_at)
                    .bind(*expected_version),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                PORTAL_VERSION,
                "portal",
                portal.id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::DeletePortal { id } => {
            exec(conn, cx, sqlx::query(DELETE_PORTAL).bind(t).bind(id.as_uuid())).await?;
        }
        Write::InsertPhase(phase) => insert_phases(conn, cx, &[phase]).await?,
        Write::UpdatePhase {
            phase,
            expected_version,
        } => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(UPDATE_PHASE)
                    .bind(t)
                    .bind(phase.id.as_uuid())
                    .bind(phase.portal_id.as_uuid())
                    .bind(phase.position)
                    .bind(phase.name.as_str())
                    .bind(phase.description.as_str())
                    .bind(phase.version)
                    .bind(*expected_version),
            )
            .await?;
            cas(
                conn,
                cx,
                rows,
                PHASE_VERSION,
                "phase",
                phase.id.as_uuid(),
                *expected_version,
            )
            .await?;
        }
        Write::DeletePhase { id } => {
            exec(conn, cx, sqlx::query(DELETE_PHASE).bind(t).bind(id.as_uuid())).await?;
        }
        Write::InsertTask(task) => insert_tasks(conn, cx, &[&**task]).await?,
        Write::UpdateTask { task, expected_version } => update_task(conn, cx, task, *expected_version).await?,
        Write::DeleteTask { id } => {
            exec(conn, cx, sqlx::query(DELETE_TASK).bind(t).bind(id.as_uuid())).await?;
        }
        Write::InsertContact(contact) => insert_contacts(conn, cx, &[contact]).await?,
        Write::UpdateContact {
            contact,
            expected_version,
        } => {
            update_contact(conn, cx, contact, *expected_version).await?;
        }
        Write::DeleteContact { id } => {
            exec(conn, cx, sqlx::query(DELETE_CONTACT).bind(t).bind(id.as_uuid())).await?;
        }
        Write::InsertComment(comment) => {
            let rows = exec(
                conn,
                cx,
                sqlx::query(INSERT_COMMENT)
                    .bind(t)
                    .bind(comment.id.as_uuid())
                    .bind(comment.portal_id.as_uuid())
                    .bind(comment.task_id.as_uuid())
                    .bind(comment.author.kind.as_str())
                    .bind(comment.author.id)
                    .bind(comment.author.display.as_deref())
                    .bind(comment.body.as_str())
                    .bind(comment.is_question)
                    .bind(comment.created_at),
            )
            .await?;
            if rows == 0 {
                let task = scalar(
                    conn,
                    cx,
                    sqlx::query_scalar::<_, bool>(TASK_EXISTS)
                        .bind(t)
                        .bind(comment.task_id.as_uuid()),
                )
                .await?;
                return Err(if task {
                    already("comment", &comment.id)
                } else {
                    not_found("task", comment.task_id)
                });
            }
        }
        Write::EraseEventsOfPortal { portal_id, erased_by } => {
            exec(
                conn,
                cx,
                sqlx::query(ERASE_EVENTS_OF_PORTAL)
                    .bind(t)
                    .bind(portal_id.as_uuid())
                    .bind(erased_by.as_uuid()),
            )
            .await?;
        }
    }
    Ok(())
}

async fn insert_permissions(conn: &mut PgConnection, cx: Cx<'_>, role: RoleId, permissions: PermissionSet) -> Step {
    if permissions == PermissionSet::EMPTY {
        return Ok(());
    }
    exec(
        conn,
        cx,
        sqlx::query(INSERT_ROLE_PERMISSIONS)
            .bind(cx.t())
            .bind(role.as_uuid())
            .bind(permissions.iter().map(|p| p.as_str()).bind_iter()),
    )
    .await?;
    Ok(())
}

/// Links a staff user to its roles; a role that does not exist is `NotFound("role", id)`.
async fn insert_staff_roles(conn: &mut PgConnection, cx: Cx<'_>, user: StaffUserId, roles: &[RoleId]) -> Step {
    let mut unique: Vec<Uuid> = Vec::with_capacity(roles.len());
    for r in roles {
        // The table holds a role once; a repeated one (which no command makes) is kept once.
        if !unique.contains(&r.as_uuid()) {
            unique.push(r.as_uuid());
        }
    }
    if unique.is_empty() {
        return Ok(());
    }
    let rows = exec(
        conn,
        cx,
        sqlx::query(INSERT_STAFF_ROLES)
            .bind(cx.t())
            .bind(user.as_uuid())
            .bind(&unique),
    )
    .await?;
    if usize::try_from(rows).is_ok_and(|n| n == unique.len()) {
        return Ok(());
    }
    let missing: Option<Uuid> = sqlx::query_scalar(FIRST_MISSING_ROLE)
        .bind(cx.t())
        .bind(&unique)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    match missing {
        Some(role) => Err(not_found("role", role)),
        None => Err(Fail::Store(StorageError::Invariant(
            "a staff role link was skipped but every role exists".to_owned(),
        ))),
    }
}

/// The portal row (its company must exist), then phases, tasks with their children, and
/// contacts, each table in one multi-row statement.
async fn insert_portal(conn: &mut PgConnection, cx: Cx<'_>, state: &PortalState) -> Step {
    let t = cx.t();
    let p = &state.portal;
    let rows = exec(
        conn,
        cx,
        sqlx::query(INSERT_PORTAL)
            .bind(t)
            .bind(p.id.as_uuid())
            .bind(p.company_id.as_uuid())
            .bind(p.template_id.map(|id| id.as_uuid()))
            .bind(p.name.as_str())
            .bind(p.status.as_str())
            .bind(p.version)
            .bind(p.created_at)
            .bind(p.updated_at)
            .bind(p.activated_at),
    )
    .await?;
    if rows == 0 {
        let company = scalar(
            conn,
            cx,
            sqlx::query_scalar::<_, bool>(COMPANY_EXISTS)
                .bind(t)
                .bind(p.company_id.as_uuid()),
        )
        .await?;
        return Err(if company {
            already("portal", &p.id)
        } else {
            not_found("company", p.company_id)
        });
    }
    let phases: Vec<_> = state.phases.iter().collect();
    insert_phases(conn, cx, &phases).await?;
    let tasks: Vec<&Task> = state.tasks.iter().collect();
    insert_tasks(conn, cx, &tasks).await?;
    let contacts: Vec<_> = state.contacts.iter().collect();
    insert_contacts(conn, cx, &contacts).await
}

async fn update_task(conn: &mut PgConnection, cx: Cx<'_>, task: &Task, expected_version: i64) -> Step {
    let id = task.id.as_uuid();
    let updated = scalar(
        conn,
        cx,
        sqlx::query_scalar::<_, i64>(UPDATE_TASK)
            .bind(cx.t())
            .bind(id)
            .bind(task.portal_id.as_uuid())
            .bind(task.phase_id.as_uuid())
            .bind(task.position)
            .bind(task.title.as_str())
            .bind(task.description.as_str())
            .bind(task.owner.as_str())
            .bind(task.evidence.as_str())
            .bind(task.priority.as_str())
            .bind(task.due_offset.map(|d| i32::from(d.days())))
            .bind(task.due_date)
            .bind(task.status.as_str())
            .bind(task.block_reason.as_ref().map(|r| r.as_str()))
            .bind(task.assignee.map(|a| a.as_uuid()))
            .bind(task.completed_at)
            .bind(task.completed_by.as_ref().map(|a| a.kind.as_str()))
            .bind(task.completed_by.as_ref().and_then(|a| a.id))
            .bind(task.completed_by.as_ref().and_then(|a| a.display.as_deref()))
            .bind(task.completion_reason.as_ref().map(|r| r.as_str()))
            .bind(task.version)
            .bind(expected_version),
    )
    .await?;
    cas(
        conn,
        cx,
        u64::try_from(updated).unwrap_or(0),
        TASK_VERSION,
        "task",
        id,
        expected_version,
    )
    .await?;
    insert_task_children(conn, cx, &[task]).await
}

/// A guarded update of a contact: its email stays unique on the portal and the portal keeps at
/// most one primary contact.
async fn update_contact(conn: &mut PgConnection, cx: Cx<'_>, contact: &Contact, expected_version: i64) -> Step {
    let id = contact.id.as_uuid();
    // A clash seen by the guard can be gone by the time it is looked up (its row deleted by a
    // transaction that committed in between); the update is then simply tried again.
    for _ in 0..3 {
        let rows = exec(
            conn,
            cx,
            sqlx::query(UPDATE_CONTACT)
                .bind(cx.t())
                .bind(id)
                .bind(contact.portal_id.as_uuid())
                .bind(contact.name.as_str())
                .bind(contact.email.as_str())
                .bind(contact.role.as_str())
                .bind(contact.primary)
                .bind(contact.version)
                .bind(contact.created_at)
                .bind(expected_version),
        )
        .await?;
        if rows > 0 {
            return Ok(());
        }
        version_refusal(conn, cx, CONTACT_VERSION, "contact", id, expected_version).await?;
        let clash: Option<bool> = sqlx::query_scalar(CONTACT_CLASH)
            .bind(cx.t())
            .bind(contact.portal_id.as_uuid())
            .bind(id)
            .bind(contact.email.as_str())
            .bind(contact.primary)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| cx.err(e))?;
        match clash {
            Some(true) => return Err(already("contact", &contact.email)),
            Some(false) => return Err(already("primary contact", &contact.portal_id)),
            None => {}
        }
    }
    Err(Fail::Store(StorageError::Unavailable(
        format!("contact {id} kept clashing with rows that vanished; try again").into(),
    )))
}

const INSERT_EVENTS: &str = "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, \
         actor_id, actor_display, at, summary, details, erased_by) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::text[], \
             $9::timestamptz[], $10::text[], $11::jsonb[], $12::uuid[]) \
     ON CONFLICT DO NOTHING RETURNING id";

/// Appends events; an id already used is `AlreadyExists("event", id)`.
async fn insert_events(conn: &mut PgConnection, tenant: TenantId, events: &[ActivityEvent]) -> Step {
    if events.is_empty() {
        return Ok(());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_EVENTS)
        .bind(tenant.as_uuid())
        .bind(events.iter().map(|e| e.id.as_uuid()).bind_iter())
        .bind(events.iter().map(|e| e.company_id.map(|c| c.as_uuid())).bind_iter())
        .bind(events.iter().map(|e| e.portal_id.map(|p| p.as_uuid())).bind_iter())
        .bind(events.iter().map(|e| e.kind.as_str()).bind_iter())
        .bind(events.iter().map(|e| e.actor.kind.as_str()).bind_iter())
        .bind(events.iter().map(|e| e.actor.id).bind_iter())
        .bind(events.iter().map(|e| e.actor.display.as_deref()).bind_iter())
        .bind(events.iter().map(|e| e.at).bind_iter())
        .bind(events.iter().map(|e| e.summary.as_str()).bind_iter())
        .bind(events.iter().map(|e| &e.details).bind_iter())
        .bind(events.iter().map(|e| e.erased_by.map(|b| b.as_uuid())).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| append_violation(e, tenant, "event"))?;
    if inserted.len() == events.len() {
        return Ok(());
    }
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    match events
        .iter()
        .map(|e| e.id.as_uuid())
        .find(|id| !seen.insert(*id) || !inserted.contains(id))
    {
        Some(id) => Err(already("event", &id)),
        None => Err(Fail::Store(StorageError::Invariant(
            "an event insert skipped a row but no clash explains it".to_owned(),
        ))),
    }
}

const INSERT_MESSAGES: &str = "INSERT INTO outbox_message (tenant_id, id, kind, recipient, idempotency_key, payload, \
         status, attempts, next_attempt_at, created_at) \
     SELECT $1, u.id, u.kind, u.recipient, u.idempotency_key, u.payload, 'queued', 0, u.created_at, u.created_at \
     FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[]) \
          AS u(id, kind, recipient, idempotency_key, payload, created_at) \
     ON CONFLICT DO NOTHING RETURNING id";
const MESSAGE_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM outbox_message WHERE tenant_id = $1 AND id = $2)";

/// Queues messages; an id already used is `AlreadyExists("message", id)`, an idempotency key
/// already queued `AlreadyExists("message", key)`.
async fn insert_messages(conn: &mut PgConnection, tenant: TenantId, messages: &[OutboundMessage]) -> Step {
    if messages.is_empty() {
        return Ok(());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_MESSAGES)
        .bind(tenant.as_uuid())
        .bind(messages.iter().map(|m| m.id.as_uuid()).bind_iter())
        .bind(messages.iter().map(|m| m.kind.as_str()).bind_iter())
        .bind(messages.iter().map(|m| m.recipient.as_str()).bind_iter())
        .bind(messages.iter().map(|m| m.idempotency_key.as_str()).bind_iter())
        .bind(messages.iter().map(|m| &m.payload).bind_iter())
        .bind(messages.iter().map(|m| m.created_at).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| append_violation(e, tenant, "outbox message"))?;
    if inserted.len() == messages.len() {
        return Ok(());
    }
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    for m in messages {
        let id = m.id.as_uuid();
        if !seen.insert(id) {
            return Err(already("message", &id));
        }
        if !inserted.contains(&id) {
            let id_taken: bool = sqlx::query_scalar(MESSAGE_EXISTS)
                .bind(tenant.as_uuid())
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| append_violation(e, tenant, "outbox message"))?;
            return Err(if id_taken {
                already("message", &id)
            } else {
                already("message", &m.idempotency_key)
            });
        }
    }
    Err(Fail::Store(StorageError::Invariant(
        "a message insert skipped a row but no clash explains it".to_owned(),
    )))
}
