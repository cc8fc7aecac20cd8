//! Writes of tenants, roles, staff users, companies, sites and templates.

use portal_core::company::{Company, Site};
use portal_core::id::{RoleId, SiteId, StaffUserId, TemplateId};
use portal_core::notifications::NotificationSettings;
use portal_core::template::Template;
use portal_core::tenant::{Branding, PermissionSet, Role, StaffUser, Tenant};
use portal_core::value::{Email, Name};
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use super::{Cx, PgQuery, cas, exec, scalar, version_refusal};
use crate::batch::insert_template_document;
use crate::error::{Step, already, not_found};

const TENANT_VERSION: &str = "SELECT version FROM tenant WHERE tenant_id = $1 AND tenant_id = $2";
const INSERT_TENANT: &str = "INSERT INTO tenant (tenant_id, name, time_zone, billable_default, \
         forwarded_link_protection, version, created_at, access_link_expiry_days, app_name, logo_url, \
         primary_colour, sender_name, sender_email, reply_to, reminder_on_unlock, reminder_days_before_due, \
         reminder_when_overdue, digest_hour) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING";
const UPDATE_TENANT: &str = "UPDATE tenant SET name = $3, time_zone = $4, billable_default = $5, \
         forwarded_link_protection = $6, version = $7, created_at = $8, access_link_expiry_days = $9, \
         app_name = $10, logo_url = $11, primary_colour = $12, sender_name = $13, sender_email = $14, reply_to = $15, \
         reminder_on_unlock = $16, reminder_days_before_due = $17, reminder_when_overdue = $18, digest_hour = $19 \
     WHERE tenant_id = $1 AND version = $2";

/// Binds a tenant's branding, in the order of the columns above.
fn bind_branding<'q>(query: PgQuery<'q>, b: &'q Branding) -> PgQuery<'q> {
    query
        .bind(b.app_name.as_ref().map(Name::as_str))
        .bind(b.logo_url.as_deref())
        .bind(b.primary_colour.as_str())
        .bind(b.sender_name.as_ref().map(Name::as_str))
        .bind(b.sender_email.as_ref().map(Email::as_str))
        .bind(b.reply_to.as_ref().map(Email::as_str))
}

/// Binds a tenant's notification settings, in the order of the columns above (after branding).
fn bind_notification_settings<'q>(query: PgQuery<'q>, n: &NotificationSettings) -> PgQuery<'q> {
    query
        .bind(n.reminders.on_unlock)
        .bind(n.reminders.days_before_due.map(i32::from))
        .bind(n.reminders.when_overdue)
        .bind(i32::from(n.digest_hour))
}

pub(super) async fn insert_tenant(conn: &mut PgConnection, cx: Cx<'_>, tenant: &Tenant) -> Step {
    let query = sqlx::query(INSERT_TENANT)
        .bind(tenant.id.as_uuid())
        .bind(tenant.name.as_str())
        .bind(tenant.settings.time_zone.name())
        .bind(tenant.settings.billable_default)
        .bind(tenant.settings.forwarded_link_protection)
        .bind(tenant.version)
        .bind(tenant.created_at)
        .bind(i32::from(tenant.link_settings.access_link_expiry_days));
    let query = bind_notification_settings(bind_branding(query, &tenant.branding), &tenant.notification_settings);
    if exec(conn, cx, query).await? == 0 {
        return Err(already("tenant", &tenant.id));
    }
    Ok(())
}

pub(super) async fn update_tenant(conn: &mut PgConnection, cx: Cx<'_>, tenant: &Tenant, expected: i64) -> Step {
    let query = sqlx::query(UPDATE_TENANT)
        .bind(tenant.id.as_uuid())
        .bind(expected)
        .bind(tenant.name.as_str())
        .bind(tenant.settings.time_zone.name())
        .bind(tenant.settings.billable_default)
        .bind(tenant.settings.forwarded_link_protection)
        .bind(tenant.version)
        .bind(tenant.created_at)
        .bind(i32::from(tenant.link_settings.access_link_expiry_days));
    let query = bind_notification_settings(bind_branding(query, &tenant.branding), &tenant.notification_settings);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, TENANT_VERSION, "tenant", tenant.id.as_uuid(), expected).await
}

const ROLE_VERSION: &str = "SELECT version FROM role WHERE tenant_id = $1 AND id = $2";
const INSERT_ROLE: &str =
    "INSERT INTO role (tenant_id, id, name, version) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
const ROLE_NAME_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM role WHERE tenant_id = $1 AND name = $2)";
const UPDATE_ROLE: &str = "UPDATE role SET name = $3, version = $4 \
     WHERE tenant_id = $1 AND id = $2 AND version = $5 \
       AND NOT EXISTS (SELECT 1 FROM role o WHERE o.tenant_id = $1 AND o.name = $3 AND o.id <> $2)";
const DELETE_ROLE_PERMISSIONS: &str = "DELETE FROM role_permission WHERE tenant_id = $1 AND role_id = $2";
const INSERT_ROLE_PERMISSIONS: &str =
    "INSERT INTO role_permission (tenant_id, role_id, permission) SELECT $1, $2, p FROM UNNEST($3::text[]) AS p";

/// A name already taken is reported before an id already taken, as the reference store checks.
pub(super) async fn insert_role(conn: &mut PgConnection, cx: Cx<'_>, role: &Role) -> Step {
    let query = sqlx::query(INSERT_ROLE)
        .bind(cx.t())
        .bind(role.id.as_uuid())
        .bind(role.name.as_str())
        .bind(role.version);
    if exec(conn, cx, query).await? == 0 {
        let name_taken = sqlx::query_scalar(ROLE_NAME_TAKEN)
            .bind(cx.t())
            .bind(role.name.as_str());
        return Err(if scalar(conn, cx, name_taken).await? {
            already("role", &role.name)
        } else {
            already("role", &role.id)
        });
    }
    insert_permissions(conn, cx, role.id, role.permissions).await
}

pub(super) async fn update_role(conn: &mut PgConnection, cx: Cx<'_>, role: &Role, expected: i64) -> Step {
    let id = role.id.as_uuid();
    let query = sqlx::query(UPDATE_ROLE)
        .bind(cx.t())
        .bind(id)
        .bind(role.name.as_str())
        .bind(role.version)
        .bind(expected);
    if exec(conn, cx, query).await? == 0 {
        version_refusal(conn, cx, ROLE_VERSION, "role", id, expected).await?;
        return Err(already("role", &role.name));
    }
    exec(conn, cx, sqlx::query(DELETE_ROLE_PERMISSIONS).bind(cx.t()).bind(id)).await?;
    insert_permissions(conn, cx, role.id, role.permissions).await
}

async fn insert_permissions(conn: &mut PgConnection, cx: Cx<'_>, role: RoleId, permissions: PermissionSet) -> Step {
    if permissions == PermissionSet::EMPTY {
        return Ok(());
    }
    let query = sqlx::query(INSERT_ROLE_PERMISSIONS)
        .bind(cx.t())
        .bind(role.as_uuid())
        .bind(permissions.iter().map(|p| p.as_str()).bind_iter());
    exec(conn, cx, query).await?;
    Ok(())
}

const STAFF_USER_VERSION: &str = "SELECT version FROM staff_user WHERE tenant_id = $1 AND id = $2";
const INSERT_STAFF_USER: &str = "INSERT INTO staff_user (tenant_id, id, email, display_name, active, version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const STAFF_EMAIL_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM staff_user WHERE tenant_id = $1 AND email = $2)";
const UPDATE_STAFF_USER: &str = "UPDATE staff_user SET email = $3, display_name = $4, active = $5, version = $6, \
         created_at = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8 \
       AND NOT EXISTS (SELECT 1 FROM staff_user o WHERE o.tenant_id = $1 AND o.email = $3 AND o.id <> $2)";
const DELETE_STAFF_ROLES: &str = "DELETE FROM staff_user_role WHERE tenant_id = $1 AND user_id = $2";
/// A role that does not exist is refused by its foreign key, as `NotFound("role")`.
const INSERT_STAFF_ROLES: &str =
    "INSERT INTO staff_user_role (tenant_id, user_id, role_id) SELECT $1, $2, r FROM UNNEST($3::uuid[]) AS r";

/// An email already taken is reported before an id already taken, as the reference store checks.
pub(super) async fn insert_staff_user(conn: &mut PgConnection, cx: Cx<'_>, user: &StaffUser) -> Step {
    let query = sqlx::query(INSERT_STAFF_USER)
        .bind(cx.t())
        .bind(user.id.as_uuid())
        .bind(user.email.as_str())
        .bind(user.display_name.as_str())
        .bind(user.active)
        .bind(user.version)
        .bind(user.created_at);
    if exec(conn, cx, query).await? == 0 {
        let email_taken = sqlx::query_scalar(STAFF_EMAIL_TAKEN)
            .bind(cx.t())
            .bind(user.email.as_str());
        return Err(if scalar(conn, cx, email_taken).await? {
            already("staff user", &user.email)
        } else {
            already("staff user", &user.id)
        });
    }
    insert_staff_roles(conn, cx, user.id, &user.roles).await
}

pub(super) async fn update_staff_user(conn: &mut PgConnection, cx: Cx<'_>, user: &StaffUser, expected: i64) -> Step {
    let id = user.id.as_uuid();
    let query = sqlx::query(UPDATE_STAFF_USER)
        .bind(cx.t())
        .bind(id)
        .bind(user.email.as_str())
        .bind(user.display_name.as_str())
        .bind(user.active)
        .bind(user.version)
        .bind(user.created_at)
        .bind(expected);
    if exec(conn, cx, query).await? == 0 {
        version_refusal(conn, cx, STAFF_USER_VERSION, "staff user", id, expected).await?;
        return Err(already("staff user", &user.email));
    }
    exec(conn, cx, sqlx::query(DELETE_STAFF_ROLES).bind(cx.t()).bind(id)).await?;
    insert_staff_roles(conn, cx, user.id, &user.roles).await
}

/// Links a staff user to its roles. The table keeps no order: the roles read back ordered by id.
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
    let query = sqlx::query(INSERT_STAFF_ROLES)
        .bind(cx.t())
        .bind(user.as_uuid())
        .bind(&unique);
    exec(conn, cx, query).await?;
    Ok(())
}

const COMPANY_VERSION: &str = "SELECT version FROM company WHERE tenant_id = $1 AND id = $2";
const INSERT_COMPANY: &str = "INSERT INTO company (tenant_id, id, name, version, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const UPDATE_COMPANY: &str = "UPDATE company SET name = $3, version = $4, created_at = $5 \
     WHERE tenant_id = $1 AND id = $2 AND version = $6";
pub(super) const COMPANY_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $2)";

pub(super) async fn insert_company(conn: &mut PgConnection, cx: Cx<'_>, company: &Company) -> Step {
    let query = sqlx::query(INSERT_COMPANY)
        .bind(cx.t())
        .bind(company.id.as_uuid())
        .bind(company.name.as_str())
        .bind(company.version)
        .bind(company.created_at);
    if exec(conn, cx, query).await? == 0 {
        return Err(already("company", &company.id));
    }
    Ok(())
}

pub(super) async fn update_company(conn: &mut PgConnection, cx: Cx<'_>, company: &Company, expected: i64) -> Step {
    let query = sqlx::query(UPDATE_COMPANY)
        .bind(cx.t())
        .bind(company.id.as_uuid())
        .bind(company.name.as_str())
        .bind(company.version)
        .bind(company.created_at)
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(
        conn,
        cx,
        rows,
        COMPANY_VERSION,
        "company",
        company.id.as_uuid(),
        expected,
    )
    .await
}

const SITE_VERSION: &str = "SELECT version FROM site WHERE tenant_id = $1 AND id = $2";
/// Written only when its company exists, so a missing company is told apart from a taken id.
const INSERT_SITE: &str = "INSERT INTO site (tenant_id, id, company_id, name, address, version) \
     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $3) \
     ON CONFLICT DO NOTHING";
const UPDATE_SITE: &str = "UPDATE site SET company_id = $3, name = $4, address = $5, version = $6 \
     WHERE tenant_id = $1 AND id = $2 AND version = $7";
const DELETE_SITE: &str = "DELETE FROM site WHERE tenant_id = $1 AND id = $2 AND version = $3";

/// A missing company is reported before an id already taken, as the reference store checks.
pub(super) async fn insert_site(conn: &mut PgConnection, cx: Cx<'_>, site: &Site) -> Step {
    let query = sqlx::query(INSERT_SITE)
        .bind(cx.t())
        .bind(site.id.as_uuid())
        .bind(site.company_id.as_uuid())
        .bind(site.name.as_str())
        .bind(site.address.as_str())
        .bind(site.version);
    if exec(conn, cx, query).await? == 0 {
        let company = sqlx::query_scalar(COMPANY_EXISTS)
            .bind(cx.t())
            .bind(site.company_id.as_uuid());
        return Err(if scalar(conn, cx, company).await? {
            already("site", &site.id)
        } else {
            not_found("company", site.company_id)
        });
    }
    Ok(())
}

pub(super) async fn update_site(conn: &mut PgConnection, cx: Cx<'_>, site: &Site, expected: i64) -> Step {
    let query = sqlx::query(UPDATE_SITE)
        .bind(cx.t())
        .bind(site.id.as_uuid())
        .bind(site.company_id.as_uuid())
        .bind(site.name.as_str())
        .bind(site.address.as_str())
        .bind(site.version)
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, SITE_VERSION, "site", site.id.as_uuid(), expected).await
}

pub(super) async fn delete_site(conn: &mut PgConnection, cx: Cx<'_>, id: SiteId, expected: i64) -> Step {
    let query = sqlx::query(DELETE_SITE).bind(cx.t()).bind(id.as_uuid()).bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, SITE_VERSION, "site", id.as_uuid(), expected).await
}

const TEMPLATE_VERSION: &str = "SELECT version FROM template WHERE tenant_id = $1 AND id = $2";
const INSERT_TEMPLATE: &str = "INSERT INTO template (tenant_id, id, name, description, version, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
const UPDATE_TEMPLATE: &str = "UPDATE template SET name = $3, description = $4, version = $5, created_at = $6, \
         updated_at = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8";
/// Tasks, their checklists, surveys and dependencies follow by `ON DELETE CASCADE`.
const DELETE_TEMPLATE_PHASES: &str = "DELETE FROM template_phase WHERE tenant_id = $1 AND template_id = $2";
/// The whole document follows by `ON DELETE CASCADE`.
const DELETE_TEMPLATE: &str = "DELETE FROM template WHERE tenant_id = $1 AND id = $2 AND version = $3";

pub(super) async fn insert_template(conn: &mut PgConnection, cx: Cx<'_>, template: &Template) -> Step {
    let query = sqlx::query(INSERT_TEMPLATE)
        .bind(cx.t())
        .bind(template.id.as_uuid())
        .bind(template.name.as_str())
        .bind(template.description.as_str())
        .bind(template.version)
        .bind(template.created_at)
        .bind(template.updated_at);
    if exec(conn, cx, query).await? == 0 {
        return Err(already("template", &template.id));
    }
    insert_template_document(conn, cx, template).await
}

/// Rewrites the template row, then its phases and tasks from scratch.
pub(super) async fn replace_template(conn: &mut PgConnection, cx: Cx<'_>, template: &Template, expected: i64) -> Step {
    let id = template.id.as_uuid();
    let query = sqlx::query(UPDATE_TEMPLATE)
        .bind(cx.t())
        .bind(id)
        .bind(template.name.as_str())
        .bind(template.description.as_str())
        .bind(template.version)
        .bind(template.created_at)
        .bind(template.updated_at)
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, TEMPLATE_VERSION, "template", id, expected).await?;
    exec(conn, cx, sqlx::query(DELETE_TEMPLATE_PHASES).bind(cx.t()).bind(id)).await?;
    insert_template_document(conn, cx, template).await
}

pub(super) async fn delete_template(conn: &mut PgConnection, cx: Cx<'_>, id: TemplateId, expected: i64) -> Step {
    let query = sqlx::query(DELETE_TEMPLATE)
        .bind(cx.t())
        .bind(id.as_uuid())
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, TEMPLATE_VERSION, "template", id.as_uuid(), expected).await
}
