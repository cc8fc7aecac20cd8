//! Tenants, roles, staff users, companies and sites.

use serde_json::json;

use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::company::{Company, Site};
use crate::error::CommandError;
use crate::id::{RoleId, StaffUserId};
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal, Resource, SystemPrincipal};
use crate::tenant::{Branding, LinkSettings, PermissionSet, Role, StaffUser, Tenant, TenantSettings};
use crate::value::{Description, Email, Name};

/// The name of the role [`create_tenant`] makes with every permission.
pub const ADMIN_ROLE: &str = "Administrator";

/// The first staff user of a new tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAdmin {
    /// Email.
    pub email: Email,
    /// Display name.
    pub display_name: Name,
}

/// Creates a tenant with an administrator role holding every permission and, when given, its
/// first staff user in that role. A bootstrap command: the actor is the system.
#[must_use]
pub fn create_tenant(ctx: &mut Ctx, name: Name, settings: TenantSettings, admin: Option<FirstAdmin>) -> Outcome {
    let tenant = Tenant {
        id: ctx.ids.next_id(),
        name,
        settings,
        link_settings: LinkSettings::default(),
        branding: crate::tenant::Branding::default(),
        notification_settings: crate::notifications::NotificationSettings::new(),
        version: 1,
        created_at: ctx.now,
    };
    let system = Principal::System(SystemPrincipal {
        tenant_id: tenant.id,
        worker: "bootstrap",
    });
    let role = Role {
        id: ctx.ids.next_id(),
        tenant_id: tenant.id,
        name: Name::parse(ADMIN_ROLE).unwrap_or_else(|_| unreachable!("a valid name")),
        permissions: PermissionSet::all(),
        version: 1,
    };
    let mut out = Outcome::default();
    let ev = ctx.event(
        &system,
        tenant.id,
        (None, None),
        EventKind::TenantCreated,
        format!("Tenant {} created", tenant.name),
        json!({ "name": tenant.name, "time_zone": tenant.settings.time_zone }),
    );
    out.events.push(ev);
    out.events.push(ctx.event(
        &system,
        tenant.id,
        (None, None),
        EventKind::RoleCreated,
        format!("Role {} created", role.name),
        json!({ "role_id": role.id, "permissions": role.permissions }),
    ));
    if let Some(admin) = admin {
        let user = StaffUser {
            id: ctx.ids.next_id(),
            tenant_id: tenant.id,
            email: admin.email,
            display_name: admin.display_name,
            roles: vec![role.id],
            active: true,
            version: 1,
            created_at: ctx.now,
        };
        out.events.push(ctx.event(
            &system,
            tenant.id,
            (None, None),
            EventKind::StaffUserCreated,
            format!("Staff user {} created", user.email),
            json!({ "staff_user_id": user.id, "roles": user.roles }),
        ));
        out.writes.push(Write::InsertTenant(tenant));
        out.writes.push(Write::InsertRole(role));
        out.writes.push(Write::InsertStaffUser(user));
    } else {
        out.writes.push(Write::InsertTenant(tenant));
        out.writes.push(Write::InsertRole(role));
    }
    out
}

/// The new values of a tenant edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantChanges {
    /// Name.
    pub name: Name,
    /// Settings.
    pub settings: TenantSettings,
    /// Link settings; `None` keeps them.
    pub link_settings: Option<LinkSettings>,
    /// Branding; `None` keeps it.
    pub branding: Option<Branding>,
    /// The reminder cadence and digest hour (BYD-5); `None` keeps them.
    pub notification_settings: Option<crate::notifications::NotificationSettings>,
}

/// Changes the tenant's name and settings (compare-and-set on the tenant's version), and its
/// link settings and branding when given (`None` keeps them).
pub fn update_tenant(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Tenant,
    expected_version: i64,
    changes: TenantChanges,
) -> Result<Outcome, CommandError> {
    let TenantChanges {
        name,
        settings,
        link_settings,
        branding,
        notification_settings,
    } = changes;
    allow(
        principal,
        Action::ManageSettings,
        &Resource::Tenant { tenant: current.id },
    )?;
    check_version("tenant", current.id.as_uuid(), expected_version, current.version)?;
    let link_settings = link_settings.unwrap_or(current.link_settings);
    link_settings.check()?;
    let branding = branding.unwrap_or_else(|| current.branding.clone());
    branding.check()?;
    let notification_settings = notification_settings.unwrap_or(current.notification_settings);
    notification_settings.check()?;
    let tenant = Tenant {
        name,
        settings,
        link_settings,
        branding,
        notification_settings,
        version: current.version + 1,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        tenant.id,
        (None, None),
        EventKind::TenantSettingsChanged,
        "Tenant settings changed".to_owned(),
        json!({
            "before": current.settings,
            "after": tenant.settings,
            "links_before": current.link_settings,
            "links_after": tenant.link_settings,
            "branding_before": current.branding,
            "branding_after": tenant.branding,
            "notifications_before": current.notification_settings,
            "notifications_after": tenant.notification_settings,
            "name": tenant.name,
        }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdateTenant {
            tenant,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Creates a role. Role names are unique per tenant (storage refuses a duplicate with
/// `AlreadyExists`).
pub fn create_role(
    principal: &Principal,
    ctx: &mut Ctx,
    existing: &[Role],
    name: Name,
    permissions: PermissionSet,
) -> Result<(RoleId, Outcome), CommandError> {
    let tenant = principal.tenant_id();
    allow(principal, Action::ManageUsers, &Resource::Tenant { tenant })?;
    if existing
        .iter()
        .any(|r| r.tenant_id == tenant && r.name.as_str().eq_ignore_ascii_case(name.as_str()))
    {
        return Err(CommandError::AlreadyExists {
            entity: "role",
            value: name.to_string(),
        });
    }
    let role = Role {
        id: ctx.ids.next_id(),
        tenant_id: tenant,
        name,
        permissions,
        version: 1,
    };
    let ev = ctx.event(
        principal,
        tenant,
        (None, None),
        EventKind::RoleCreated,
        format!("Role {} created", role.name),
        json!({ "role_id": role.id, "permissions": role.permissions }),
    );
    let id = role.id;
    Ok((
        id,
        Outcome {
            writes: vec![Write::InsertRole(role)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Renames a role or changes its permissions.
pub fn update_role(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Role,
    expected_version: i64,
    name: Name,
    permissions: PermissionSet,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageUsers,
        &Resource::Tenant {
            tenant: current.tenant_id,
        },
    )?;
    check_version("role", current.id.as_uuid(), expected_version, current.version)?;
    let role = Role {
        name,
        permissions,
        version: current.version + 1,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        role.tenant_id,
        (None, None),
        EventKind::RoleUpdated,
        format!("Role {} updated", role.name),
        json!({ "role_id": role.id, "before": current.permissions, "after": role.permissions }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdateRole { role, expected_version }],
        events: vec![ev],
        ..Outcome::default()
    })
}

fn check_roles(tenant_roles: &[Role], wanted: &[RoleId]) -> Result<Vec<RoleId>, CommandError> {
    let mut roles = Vec::with_capacity(wanted.len());
    for id in wanted {
        if !tenant_roles.iter().any(|r| r.id == *id) {
            return Err(CommandError::NotFound {
                entity: "role",
                id: id.as_uuid(),
            });
        }
        roles.push(*id);
    }
    // A set of roles: kept sorted so every store returns it the same way.
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// Creates a staff user with roles of the tenant (`tenant_roles` are the tenant's roles).
pub fn create_staff_user(
    principal: &Principal,
    ctx: &mut Ctx,
    tenant_roles: &[Role],
    email: Email,
    display_name: Name,
    roles: &[RoleId],
) -> Result<(StaffUserId, Outcome), CommandError> {
    let tenant = principal.tenant_id();
    allow(principal, Action::ManageUsers, &Resource::Tenant { tenant })?;
    let roles = check_roles(tenant_roles, roles)?;
    let user = StaffUser {
        id: ctx.ids.next_id(),
        tenant_id: tenant,
        email,
        display_name,
        roles,
        active: true,
        version: 1,
        created_at: ctx.now,
    };
    let ev = ctx.event(
        principal,
        tenant,
        (None, None),
        EventKind::StaffUserCreated,
        format!("Staff user {} created", user.email),
        json!({ "staff_user_id": user.id, "roles": user.roles }),
    );
    Ok((
        user.id,
        Outcome {
            writes: vec![Write::InsertStaffUser(user)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// The new state of a staff user's editable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffUserUpdate {
    /// Display name.
    pub display_name: Name,
    /// Roles held.
    pub roles: Vec<RoleId>,
    /// Whether the user may still act.
    pub active: bool,
}

/// Changes a staff user's name, roles or active flag.
pub fn update_staff_user(
    principal: &Principal,
    ctx: &mut Ctx,
    tenant_roles: &[Role],
    current: &StaffUser,
    expected_version: i64,
    update: StaffUserUpdate,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageUsers,
        &Resource::Tenant {
            tenant: current.tenant_id,
        },
    )?;
    check_version("staff user", current.id.as_uuid(), expected_version, current.version)?;
    let roles = check_roles(tenant_roles, &update.roles)?;
    let user = StaffUser {
        display_name: update.display_name,
        roles,
        active: update.active,
        version: current.version + 1,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        user.tenant_id,
        (None, None),
        EventKind::StaffUserUpdated,
        format!("Staff user {} updated", user.email),
        json!({ "staff_user_id": user.id, "roles": user.roles, "active": user.active }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdateStaffUser { user, expected_version }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Creates a company.
pub fn create_company(principal: &Principal, ctx: &mut Ctx, name: Name) -> Result<(Company, Outcome), CommandError> {
    let tenant = principal.tenant_id();
    allow(principal, Action::ManageCompany, &Resource::Tenant { tenant })?;
    let company = Company {
        id: ctx.ids.next_id(),
        tenant_id: tenant,
        name,
        version: 1,
        created_at: ctx.now,
    };
    let ev = ctx.event(
        principal,
        tenant,
        (Some(company.id), None),
        EventKind::CompanyCreated,
        format!("Company {} created", company.name),
        json!({ "company_id": company.id }),
    );
    Ok((
        company.clone(),
        Outcome {
            writes: vec![Write::InsertCompany(company)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Renames a company.
pub fn update_company(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Company,
    expected_version: i64,
    name: Name,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageCompany,
        &Resource::Company {
            tenant: current.tenant_id,
            company: current.id,
        },
    )?;
    check_version("company", current.id.as_uuid(), expected_version, current.version)?;
    let company = Company {
        name,
        version: current.version + 1,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        company.tenant_id,
        (Some(company.id), None),
        EventKind::CompanyUpdated,
        format!("Company {} renamed to {}", current.name, company.name),
        json!({ "company_id": company.id, "before": current.name, "after": company.name }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdateCompany {
            company,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Adds a site to a company.
pub fn create_site(
    principal: &Principal,
    ctx: &mut Ctx,
    company: &Company,
    name: Name,
    address: Description,
) -> Result<(Site, Outcome), CommandError> {
    allow(
        principal,
        Action::ManageCompany,
        &Resource::Company {
            tenant: company.tenant_id,
            company: company.id,
        },
    )?;
    let site = Site {
        id: ctx.ids.next_id(),
        tenant_id: company.tenant_id,
        company_id: company.id,
        name,
        address,
        version: 1,
    };
    let ev = ctx.event(
        principal,
        company.tenant_id,
        (Some(company.id), None),
        EventKind::SiteCreated,
        format!("Site {} added to {}", site.name, company.name),
        json!({ "site_id": site.id }),
    );
    Ok((
        site.clone(),
        Outcome {
            writes: vec![Write::InsertSite(site)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Changes a site's name and address.
pub fn update_site(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Site,
    expected_version: i64,
    name: Name,
    address: Description,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageCompany,
        &Resource::Company {
            tenant: current.tenant_id,
            company: current.company_id,
        },
    )?;
    check_version("site", current.id.as_uuid(), expected_version, current.version)?;
    let site = Site {
        name,
        address,
        version: current.version + 1,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        site.tenant_id,
        (Some(site.company_id), None),
        EventKind::SiteUpdated,
        format!("Site {} updated", site.name),
        json!({ "site_id": site.id }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdateSite { site, expected_version }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Deletes a site.
pub fn delete_site(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Site,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageCompany,
        &Resource::Company {
            tenant: current.tenant_id,
            company: current.company_id,
        },
    )?;
    check_version("site", current.id.as_uuid(), expected_version, current.version)?;
    let ev = ctx.event(
        principal,
        current.tenant_id,
        (Some(current.company_id), None),
        EventKind::SiteDeleted,
        format!("Site {} deleted", current.name),
        json!({ "site_id": current.id }),
    );
    Ok(Outcome {
        writes: vec![Write::DeleteSite {
            id: current.id,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}
