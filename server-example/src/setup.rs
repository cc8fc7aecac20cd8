//! Setting a deployment up from the command line: tenants, staff users, passwords, and the demo
//! tenant. Every function here goes through the engine (and so through `authorize`) with the
//! tenant's system principal or its first administrator.

use anyhow::{Context as _, anyhow, bail};
use portal_core::auth::{self, Password};
use portal_core::commands::admin::FirstAdmin;
use portal_core::commands::portal::StartOnboarding;
use portal_core::id::{RoleId, StaffUserId, TenantId};
use portal_core::lifecycle::PortalStatus;
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::storage::{PageRequest, PortalFilter};
use portal_core::task::{TaskOwner, TaskStatus};
use portal_core::template::TemplateInput;
use portal_core::tenant::{Permission, PermissionSet, Tenant, TenantSettings, TimeZone};
use portal_core::value::{Email, Name, Reason};

use crate::app::AppState;

/// Hashes `password` with argon2id on the blocking pool, with a fresh salt.
///
/// # Errors
///
/// When the blocking task cannot run.
pub async fn hash_password(state: &AppState, password: Password) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    state.entropy.fill(&mut salt);
    tokio::task::spawn_blocking(move || auth::hash_password(&password, &salt))
        .await
        .context("the password hashing task failed")
}

/// Sets a staff user's password (every session of theirs ends).
///
/// # Errors
///
/// When the store fails.
pub async fn set_password(
    state: &AppState,
    tenant: TenantId,
    user: StaffUserId,
    password: Password,
) -> anyhow::Result<()> {
    let hash = hash_password(state, password).await?;
    state
        .storage
        .set_password_hash(tenant, user, &hash, state.clock.now())
        .await?;
    Ok(())
}

/// The principal of a tenant's staff user.
async fn principal_of(state: &AppState, tenant: TenantId, user: StaffUserId) -> anyhow::Result<Principal> {
    state
        .engine
        .staff_principal(tenant, user)
        .await?
        .ok_or_else(|| anyhow!("staff user {user} not found"))
}

/// Maps `host` to `tenant`.
///
/// # Errors
///
/// When the host is not a host name, or another tenant has it.
pub async fn add_host(state: &AppState, tenant: TenantId, host: &str) -> anyhow::Result<String> {
    let host = auth::normalise_host(host).ok_or_else(|| anyhow!("`{host}` is not a host name"))?;
    state
        .storage
        .add_tenant_host(tenant, &host)
        .await?
        .map_err(|e| anyhow!("cannot map {host}: {e}"))?;
    Ok(host)
}

/// What [`create_tenant`] made.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its first administrator.
    pub admin: StaffUserId,
    /// The host names it is served at.
    pub hosts: Vec<String>,
}

/// Creates a tenant, its administrator role, its first administrator with `password`, and maps
/// its host names.
///
/// # Errors
///
/// Bad values, a host another tenant has, or a failing store.
pub async fn create_tenant(
    state: &AppState,
    name: &str,
    time_zone: &str,
    hosts: &[String],
    admin_email: &str,
    admin_name: &str,
    password: Password,
) -> anyhow::Result<CreatedTenant> {
    let settings = TenantSettings {
        time_zone: TimeZone::parse(time_zone)?,
        ..TenantSettings::default()
    };
    let email = Email::parse(admin_email)?;
    let tenant = state
        .engine
        .create_tenant(
            Name::parse(name)?,
            settings,
            Some(FirstAdmin {
                email: email.clone(),
                display_name: Name::parse(admin_name)?,
            }),
        )
        .await?;
    let admin = state
        .storage
        .find_staff_user_by_email(tenant.id, &email)
        .await?
        .ok_or_else(|| anyhow!("the first administrator was not created"))?;
    set_password(state, tenant.id, admin.id, password).await?;
    let mut mapped = Vec::new();
    for host in hosts {
        mapped.push(add_host(state, tenant.id, host).await?);
    }
    Ok(CreatedTenant {
        tenant,
        admin: admin.id,
        hosts: mapped,
    })
}

/// Creates a staff user holding the named roles, with a password.
///
/// # Errors
///
/// An unknown tenant or role, a taken email, bad values, or a failing store.
pub async fn create_user(
    state: &AppState,
    tenant: TenantId,
    email: &str,
    name: &str,
    role_names: &[String],
    password: Password,
) -> anyhow::Result<StaffUserId> {
    let system = system_admin(state, tenant).await?;
    let roles = state.storage.list_roles(tenant).await?;
    let ids = role_names
        .iter()
        .map(|n| {
            roles
                .iter()
                .find(|r| r.name.as_str().eq_ignore_ascii_case(n))
                .map(|r| r.id)
                .ok_or_else(|| anyhow!("no role named `{n}` in this tenant"))
        })
        .collect::<anyhow::Result<Vec<RoleId>>>()?;
    let id = state
        .engine
        .create_staff_user(&system, Email::parse(email)?, Name::parse(name)?, &ids)
        .await?;
    set_password(state, tenant, id, password).await?;
    Ok(id)
}

/// Sets the password of the user with `email`.
///
/// # Errors
///
/// An unknown tenant or user, or a failing store.
pub async fn set_password_by_email(
    state: &AppState,
    tenant: TenantId,
    email: &str,
    password: Password,
) -> anyhow::Result<StaffUserId> {
    let user = state
        .storage
        .find_staff_user_by_email(tenant, &Email::parse(email)?)
        .await?
        .ok_or_else(|| anyhow!("no staff user {email} in tenant {tenant}"))?;
    set_password(state, tenant, user.id, password).await?;
    Ok(user.id)
}

/// The principal of an active user holding `manage_users` in the tenant, to act for the command
/// line.
async fn system_admin(state: &AppState, tenant: TenantId) -> anyhow::Result<Principal> {
    if state.storage.get_tenant(tenant).await?.is_none() {
        bail!("no tenant {tenant}");
    }
    let mut page = PageRequest::first(500);
    loop {
        let users = state.storage.list_staff_users(tenant, page).await?;
        for u in &users {
            let p = principal_of(state, tenant, u.id).await?;
            if let Principal::Staff(s) = &p
                && s.permissions.contains(Permission::ManageUsers)
            {
                return Ok(p);
            }
        }
        match users.last() {
            Some(last) if users.len() == 500 => page.after = Some(last.id),
            _ => bail!("tenant {tenant} has no active user who may manage users"),
        }
    }
}

/// The demo tenant's host; `localhost` reaches it too when it is the default tenant.
pub const DEMO_HOST: &str = "demo.localhost";
/// The demo administrator's email.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo-msp.example.com";
/// The demo technician's email.
pub const DEMO_TECH_EMAIL: &str = "tech@demo-msp.example.com";
/// The demo template.
pub const DEMO_TEMPLATE: &str = include_str!("demo_template.json");

/// The demo tenant.
#[derive(Debug, Clone)]
pub struct Demo {
    /// Its id.
    pub tenant: TenantId,
    /// Whether this run created it.
    pub created: bool,
}

/// Seeds the demo tenant once: "Demo MSP" (Europe/London) with an administrator and a
/// technician, the "Standard MSP onboarding" template (4 phases, 20 tasks, every evidence type,
/// dependencies), the company Northwind Traders with a site, an active portal part-way done and a
/// draft portal. A later run finds it by its host and only sets the administrator's password.
///
/// # Errors
///
/// A failing store.
pub async fn seed_demo(state: &AppState, password: Password) -> anyhow::Result<Demo> {
    if let Some(tenant) = state.storage.tenant_for_host(DEMO_HOST).await? {
        set_password_by_email(state, tenant, DEMO_ADMIN_EMAIL, password).await?;
        return Ok(Demo { tenant, created: false });
    }
    let created = create_tenant(
        state,
        "Demo MSP",
        "Europe/London",
        &[DEMO_HOST.to_owned()],
        DEMO_ADMIN_EMAIL,
        "Dana Admin",
        password,
    )
    .await?;
    let tenant = created.tenant.id;
    let admin = principal_of(state, tenant, created.admin).await?;
    let engine = &state.engine;

    let tech_role = engine
        .create_role(
            &admin,
            Name::parse("Technician")?,
            [Permission::ReadOnboarding, Permission::ManageOnboarding]
                .into_iter()
                .collect::<PermissionSet>(),
        )
        .await?;
    engine
        .create_role(
            &admin,
            Name::parse("Viewer")?,
            [Permission::ReadOnboarding].into_iter().collect(),
        )
        .await?;
    let tech = engine
        .create_staff_user(
            &admin,
            Email::parse(DEMO_TECH_EMAIL)?,
            Name::parse("Theo Technician")?,
            &[tech_role],
        )
        .await?;

    let template: TemplateInput = serde_json::from_str(DEMO_TEMPLATE).context("the demo template parses")?;
    let template = engine.create_template(&admin, &template).await?;
    let company = engine.create_company(&admin, Name::parse("Northwind Traders")?).await?;
    engine
        .create_site(
            &admin,
            company.id,
            Name::parse("Head office")?,
            portal_core::value::Description::parse("12 Harbour Road, Bristol")?,
        )
        .await?;
    let contacts = vec![
        ContactInput {
            name: Name::parse("Priya Patel")?,
            email: Email::parse("priya.patel@northwind.example.com")?,
            role: ContactRole::PrimaryContact,
            primary: true,
        },
        ContactInput {
            name: Name::parse("Sam Okafor")?,
            email: Email::parse("sam.okafor@northwind.example.com")?,
            role: ContactRole::It,
            primary: false,
        },
    ];
    let active = engine
        .start_onboarding(
            &admin,
            company.id,
            template,
            &StartOnboarding {
                name: Name::parse("Northwind Traders onboarding")?,
                contacts: contacts.clone(),
                activate: true,
            },
        )
        .await?;
    engine
        .start_onboarding(
            &admin,
            company.id,
            template,
            &StartOnboarding {
                name: Name::parse("Northwind Traders: Leeds branch")?,
                contacts,
                activate: false,
            },
        )
        .await?;

    // Part-way through: the first tasks done, the MSP's open tasks shared out.
    let admin_id = created.admin;
    let reason = Reason::parse("Confirmed by phone with Priya")?;
    for title in [
        "Send the welcome pack",
        "Sign the master services agreement",
        "Kickoff meeting",
    ] {
        let state_now = engine.load_portal(&admin, active).await?;
        let task = state_now
            .tasks
            .iter()
            .find(|t| t.title.as_str() == title)
            .ok_or_else(|| anyhow!("demo task {title}"))?;
        let why = (task.owner == TaskOwner::Client).then(|| reason.clone());
        engine.complete_task(&admin, active, task.id, task.version, why).await?;
    }
    let state_now = engine.load_portal(&admin, active).await?;
    for (i, task) in state_now
        .tasks
        .iter()
        .filter(|t| t.owner == TaskOwner::Msp && t.status != TaskStatus::Completed)
        .enumerate()
    {
        let who = if i % 2 == 0 { admin_id } else { tech };
        engine
            .assign_task(&admin, active, task.id, task.version, Some(who))
            .await?;
    }
    let portals = state
        .storage
        .list_portals(tenant, PortalFilter::default(), PageRequest::first(10))
        .await?;
    debug_assert_eq!(portals.len(), 2);
    debug_assert!(portals.iter().any(|p| p.status == PortalStatus::Active));
    Ok(Demo { tenant, created: true })
}
