//! Onboarding portals (ONB-2 to ONB-8): the portal row, its phases, tasks and contacts, loaded
//! together as a [`PortalState`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{CompanyId, ContactId, PhaseId, PortalId, TaskId, TemplateId, TenantId};
use crate::lifecycle::PortalStatus;
use crate::task::Task;
use crate::value::{Description, Email, Name};

/// Most phases a template or portal holds.
pub const MAX_PHASES: usize = 100;
/// Most tasks a template or portal holds (PERF-2 measures a 1,000-task portal).
pub const MAX_TASKS: usize = 2_000;
/// Most dependencies of one task.
pub const MAX_DEPENDENCIES: usize = 100;
/// Most checklist items of one task.
pub const MAX_CHECKLIST_ITEMS: usize = 100;
/// Most survey questions of one task.
pub const MAX_SURVEY_QUESTIONS: usize = 50;
/// Most options of one survey question.
pub const MAX_SURVEY_OPTIONS: usize = 50;
/// Most contacts of one portal.
pub const MAX_CONTACTS: usize = 50;

/// The portal row: what is edited as "portal settings" (API-3) and moved through the lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Portal {
    /// Id.
    pub id: PortalId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The client company.
    pub company_id: CompanyId,
    /// The template it was started from; the portal does not follow later template edits.
    pub template_id: Option<TemplateId>,
    /// Name.
    pub name: Name,
    /// Lifecycle status.
    pub status: PortalStatus,
    /// Compare-and-set version of the portal row.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of the portal row.
    pub updated_at: DateTime<Utc>,
    /// Last activation.
    pub activated_at: Option<DateTime<Utc>>,
}

/// A phase of a portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Phase {
    /// Id.
    pub id: PhaseId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// Order within the portal, from 0.
    pub position: i32,
    /// Name.
    pub name: Name,
    /// Description.
    pub description: Description,
    /// Compare-and-set version.
    pub version: i64,
}

/// Role of a contact (CON-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContactRole {
    /// Primary contact.
    PrimaryContact,
    /// IT contact.
    It,
    /// Decision maker.
    DecisionMaker,
    /// Finance contact.
    Finance,
    /// Office manager.
    OfficeManager,
}

crate::string_enum!(ContactRole {
    PrimaryContact => "primary_contact",
    It => "it",
    DecisionMaker => "decision_maker",
    Finance => "finance",
    OfficeManager => "office_manager",
});

/// A client contact of a portal. Links, sessions and mail come with the contacts work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// Name.
    pub name: Name,
    /// Email, unique within the portal.
    pub email: Email,
    /// Role.
    pub role: ContactRole,
    /// The primary flag: at most one per portal.
    pub primary: bool,
    /// How the contact wants to hear of each kind of event (BYD-5); theirs to change.
    #[serde(default)]
    pub notifications: crate::notifications::NotificationPreferences,
    /// Compare-and-set version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A contact as given when starting onboarding or adding one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactInput {
    /// Name.
    pub name: Name,
    /// Email.
    pub email: Email,
    /// Role.
    pub role: ContactRole,
    /// The primary flag.
    #[serde(default)]
    pub primary: bool,
}

/// A portal with everything commands need: phases by position, tasks by (phase, position),
/// contacts by creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalState {
    /// The portal row.
    pub portal: Portal,
    /// Phases, ordered by position.
    pub phases: Vec<Phase>,
    /// Tasks, ordered by their phase's position then their own.
    pub tasks: Vec<Task>,
    /// Contacts.
    pub contacts: Vec<Contact>,
}

impl PortalState {
    /// The task with this id, if it is in this portal.
    #[must_use]
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The phase with this id, if it is in this portal.
    #[must_use]
    pub fn phase(&self, id: PhaseId) -> Option<&Phase> {
        self.phases.iter().find(|p| p.id == id)
    }

    /// Puts phases and tasks in their canonical order (phase position, then task position,
    /// then id to break ties), as storage returns them.
    pub fn sort(&mut self) {
        self.phases.sort_by_key(|p| (p.position, p.id));
        let phase_pos: HashMap<PhaseId, i32> = self.phases.iter().map(|p| (p.id, p.position)).collect();
        self.tasks.sort_by_key(|t| {
            (
                phase_pos.get(&t.phase_id).copied().unwrap_or(i32::MAX),
                t.position,
                t.id,
            )
        });
        self.contacts.sort_by_key(|c| (c.created_at, c.id));
        for t in &mut self.tasks {
            t.depends_on.sort();
        }
    }
}
