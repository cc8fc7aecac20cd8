//! Principals and the one authorisation function (AUTH-5).
//!
//! [`authorize`] is a pure function of (principal, action, resource). It fails closed: a pair
//! not granted below is refused. A resource of another tenant is refused as
//! [`AccessDenied::OtherTenant`] whatever the principal, and callers answer it exactly like an id
//! that does not exist. The allow path neither allocates nor looks anything up (PERF-1).

use serde::{Deserialize, Serialize};

use crate::activity::{Actor, ActorKind};
use crate::id::{CompanyId, ContactId, PortalId, PortalUserId, SiteId, StaffUserId, TenantId};
use crate::lifecycle::PortalStatus;
use crate::task::TaskOwner;
use crate::tenant::{Permission, PermissionSet};
use crate::value::Email;

/// A staff user acting with the union of their roles' permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffPrincipal {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: StaffUserId,
    /// Their email, shown beside their events.
    pub email: Email,
    /// Effective permissions.
    pub permissions: PermissionSet,
}

/// A contact with a token session, scoped to one portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactPrincipal {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The one portal the session opens.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// Their email.
    pub email: Email,
}

/// Role of a portal user (AUTH-2); the self-service portal comes with later work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalUserRole {
    /// May invite portal users of the same company.
    Admin,
    /// Sees and acts on tickets.
    Member,
    /// Read-only.
    Viewer,
}

/// A portal user of the self-service portal, scoped to companies and optionally to sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUserPrincipal {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: PortalUserId,
    /// Their email.
    pub email: Email,
    /// Companies they belong to.
    pub companies: Vec<CompanyId>,
    /// Sites they are restricted to; `None` means every site of their companies (AUTH-3).
    pub sites: Option<Vec<SiteId>>,
    /// Role.
    pub role: PortalUserRole,
}

/// A worker of the system acting for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPrincipal {
    /// Tenant the work is for.
    pub tenant_id: TenantId,
    /// The worker's name, shown beside its events.
    pub worker: &'static str,
}

/// Whoever makes a request (AUTH-5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A staff user.
    Staff(StaffPrincipal),
    /// A contact.
    Contact(ContactPrincipal),
    /// A portal user.
    PortalUser(PortalUserPrincipal),
    /// The system.
    System(SystemPrincipal),
}

impl Principal {
    /// The tenant the principal belongs to.
    #[must_use]
    pub const fn tenant_id(&self) -> TenantId {
        match self {
            Self::Staff(p) => p.tenant_id,
            Self::Contact(p) => p.tenant_id,
            Self::PortalUser(p) => p.tenant_id,
            Self::System(p) => p.tenant_id,
        }
    }

    /// The actor recorded on events this principal causes.
    #[must_use]
    pub fn actor(&self) -> Actor {
        match self {
            Self::Staff(p) => Actor {
                kind: ActorKind::Staff,
                id: Some(p.user_id.as_uuid()),
                display: Some(p.email.to_string()),
            },
            Self::Contact(p) => Actor {
                kind: ActorKind::Contact,
                id: Some(p.contact_id.as_uuid()),
                display: Some(p.email.to_string()),
            },
            Self::PortalUser(p) => Actor {
                kind: ActorKind::PortalUser,
                id: Some(p.user_id.as_uuid()),
                display: Some(p.email.to_string()),
            },
            Self::System(p) => Actor {
                kind: ActorKind::System,
                id: None,
                display: Some(p.worker.to_owned()),
            },
        }
    }

    /// The staff user behind this principal, if it is one.
    #[must_use]
    pub const fn staff_user(&self) -> Option<StaffUserId> {
        match self {
            Self::Staff(p) => Some(p.user_id),
            _ => None,
        }
    }
}

/// Something a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See the tenant and its settings.
    ReadTenant,
    /// Change tenant settings.
    ManageSettings,
    /// See staff users and roles (for assignment pickers).
    ReadStaff,
    /// Create and change staff users and roles.
    ManageUsers,
    /// See a company and its sites.
    ReadCompany,
    /// Create and change companies and sites.
    ManageCompany,
    /// See templates.
    ReadTemplate,
    /// Create, change and delete templates.
    ManageTemplate,
    /// Start onboarding for a company.
    CreatePortal,
    /// See a portal and its overview.
    ReadPortal,
    /// Edit a portal: settings, draft phases and tasks, contacts.
    EditPortal,
    /// Move a portal through its lifecycle (activate, complete, convert, archive, restore).
    TransitionPortal,
    /// Delete a portal.
    DeletePortal,
    /// See a task, its checklist and comments.
    ReadTask,
    /// Start or complete a task, tick its checklist.
    WorkOnTask,
    /// Block, unblock, reopen, assign, reassign; complete a client task as staff.
    ManageTask,
    /// Comment on a task or ask a question.
    CommentOnTask,
    /// See the activity log.
    ReadActivity,
    /// See the delivery state of the tenant's outgoing mail.
    ReadOutbox,
    /// Queue a failed message again.
    RetryMail,
    /// Send notifications to contacts on the system's own account: automatic reminders and
    /// daily digests (BYD-5).
    SendNotifications,
    /// Change a contact's notification preferences: the contact's own, or the system's on an
    /// unsubscribe link (BYD-5). Staff may not.
    ManageNotifications,
}

crate::string_enum!(Action {
    ReadTenant => "read_tenant",
    ManageSettings => "manage_settings",
    ReadStaff => "read_staff",
    ManageUsers => "manage_users",
    ReadCompany => "read_company",
    ManageCompany => "manage_company",
    ReadTemplate => "read_template",
    ManageTemplate => "manage_template",
    CreatePortal => "create_portal",
    ReadPortal => "read_portal",
    EditPortal => "edit_portal",
    TransitionPortal => "transition_portal",
    DeletePortal => "delete_portal",
    ReadTask => "read_task",
    WorkOnTask => "work_on_task",
    ManageTask => "manage_task",
    CommentOnTask => "comment_on_task",
    ReadActivity => "read_activity",
    ReadOutbox => "read_outbox",
    RetryMail => "retry_mail",
    SendNotifications => "send_notifications",
    ManageNotifications => "manage_notifications",
});

/// What an action is done to, with the facts the policy needs about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The tenant itself: settings, staff, roles, templates, the activity log.
    Tenant {
        /// Tenant.
        tenant: TenantId,
    },
    /// A company (and its sites); starting onboarding is done to a company.
    Company {
        /// Tenant.
        tenant: TenantId,
        /// Company.
        company: CompanyId,
    },
    /// A portal.
    Portal {
        /// Tenant.
        tenant: TenantId,
        /// Its company.
        company: CompanyId,
        /// Portal.
        portal: PortalId,
        /// Its status.
        status: PortalStatus,
    },
    /// A task of a portal.
    Task {
        /// Tenant.
        tenant: TenantId,
        /// Its company.
        company: CompanyId,
        /// Its portal.
        portal: PortalId,
        /// The portal's status.
        status: PortalStatus,
        /// Who owns the task.
        owner: TaskOwner,
    },
}

impl Resource {
    /// The tenant the resource belongs to.
    #[must_use]
    pub const fn tenant(&self) -> TenantId {
        match *self {
            Self::Tenant { tenant }
            | Self::Company { tenant, .. }
            | Self::Portal { tenant, .. }
            | Self::Task { tenant, .. } => tenant,
        }
    }
}

/// Why [`authorize`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AccessDenied {
    /// The resource belongs to another tenant: answer as if it did not exist.
    #[error("not found")]
    OtherTenant,
    /// The resource is outside the principal's scope within its tenant (another portal, company or
    /// site): answer as if it did not exist.
    #[error("not found")]
    OutOfScope,
    /// The principal sees the resource but may not do this to it.
    #[error("not allowed to {action}")]
    Forbidden {
        /// The action refused.
        action: Action,
    },
}

/// The staff permission each action needs; `None` where any staff user of the tenant may act.
const fn staff_needs(action: Action) -> Option<Permission> {
    use Action as A;
    match action {
        A::ReadTenant => None,
        // `ManageNotifications` is the contact's own (BYD-5): `authorize` refuses it to staff
        // before asking this.
        A::ManageSettings | A::ManageNotifications => Some(Permission::ManageSettings),
        A::ManageUsers => Some(Permission::ManageUsers),
        A::ReadStaff
        | A::ReadCompany
        | A::ReadTemplate
        | A::ReadPortal
        | A::ReadTask
        | A::ReadActivity
        | A::ReadOutbox => Some(Permission::ReadOnboarding),
        A::ManageCompany
        | A::ManageTemplate
        | A::CreatePortal
        | A::EditPortal
        | A::TransitionPortal
        | A::DeletePortal
        | A::WorkOnTask
        | A::ManageTask
        | A::CommentOnTask
        | A::RetryMail
        | A::SendNotifications => Some(Permission::ManageOnboarding),
    }
}

/// Decides whether `principal` may do `action` to `resource`. Pure; fails closed.
pub fn authorize(principal: &Principal, action: Action, resource: &Resource) -> Result<(), AccessDenied> {
    if principal.tenant_id() != resource.tenant() {
        return Err(AccessDenied::OtherTenant);
    }
    let forbidden = Err(AccessDenied::Forbidden { action });
    match principal {
        // A contact's notification preferences are the contact's (BYD-5).
        Principal::Staff(_) if action == Action::ManageNotifications => forbidden,
        Principal::Staff(p) => match staff_needs(action) {
            None => Ok(()),
            // Managing implies reading: a manager without the read permission still sees what
            // they manage.
            Some(Permission::ReadOnboarding)
                if p.permissions.contains(Permission::ReadOnboarding)
                    || p.permissions.contains(Permission::ManageOnboarding) =>
            {
                Ok(())
            }
            Some(Permission::ReadOnboarding)
                if action == Action::ReadStaff && p.permissions.contains(Permission::ManageUsers) =>
            {
                Ok(())
            }
            Some(needed) if p.permissions.contains(needed) => Ok(()),
            Some(_) => forbidden,
        },
        Principal::Contact(p) => {
            let (portal, status, owner) = match *resource {
                Resource::Portal { portal, status, .. } => (portal, status, None),
                Resource::Task {
                    portal, status, owner, ..
                } => (portal, status, Some(owner)),
                Resource::Tenant { .. } | Resource::Company { .. } => return Err(AccessDenied::OutOfScope),
            };
            // A contact reaches only its own portal, and only while it is live (ONB-4).
            if portal != p.portal_id || status != PortalStatus::Active {
                return Err(AccessDenied::OutOfScope);
            }
            match (action, owner) {
                (Action::ReadPortal | Action::ManageNotifications, None)
                | (Action::ReadTask | Action::CommentOnTask, Some(_))
                | (Action::WorkOnTask, Some(TaskOwner::Client)) => Ok(()),
                _ => forbidden,
            }
        }
        Principal::PortalUser(p) => match (action, *resource) {
            (Action::ReadCompany, Resource::Company { company, .. }) => {
                if p.companies.contains(&company) {
                    Ok(())
                } else {
                    Err(AccessDenied::OutOfScope)
                }
            }
            // The self-service portal's grants come with its own work; until then nothing else.
            _ => forbidden,
        },
        Principal::System(_) => match action {
            Action::ReadTenant
            | Action::ReadStaff
            | Action::ReadCompany
            | Action::ReadTemplate
            | Action::ReadPortal
            | Action::ReadTask
            | Action::ReadActivity
            | Action::SendNotifications
            | Action::ManageNotifications => Ok(()),
            _ => forbidden,
        },
    }
}
