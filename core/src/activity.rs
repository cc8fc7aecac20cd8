//! The activity log (ACT-1, ACT-2, ACT-4): typed, append-only events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::id::{CompanyId, EventId, PortalId, TenantId};

/// What happened. Stored as its lower-case name, which must be a row of the `event_kind` table of
/// both backends: a new kind comes with a paired migration that inserts it (a test compares
/// [`EventKind::ALL`] with the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum EventKind {
    TenantCreated,
    TenantSettingsChanged,
    RoleCreated,
    RoleUpdated,
    StaffUserCreated,
    StaffUserUpdated,
    CompanyCreated,
    CompanyUpdated,
    SiteCreated,
    SiteUpdated,
    SiteDeleted,
    TemplateCreated,
    TemplateUpdated,
    TemplateDeleted,
    PortalCreated,
    PortalUpdated,
    PortalStatusChanged,
    PortalDeleted,
    PhaseAdded,
    PhaseUpdated,
    PhaseDeleted,
    PhasesReordered,
    TaskAdded,
    TaskUpdated,
    TaskDeleted,
    TasksReordered,
    TaskStatusChanged,
    TaskCompleted,
    TaskReopened,
    TaskBlocked,
    TaskUnblocked,
    TaskAssigned,
    TasksReassigned,
    ChecklistUpdated,
    CommentAdded,
    QuestionAsked,
    ContactAdded,
    ContactUpdated,
    ContactRemoved,
    AccessLinkIssued,
    ContactAccessRevoked,
    AccessLinkRegenerated,
    ContactAccessedPortal,
    NotificationSent,
    NotificationPreferencesChanged,
}

crate::string_enum!(EventKind {
    TenantCreated => "tenant_created",
    TenantSettingsChanged => "tenant_settings_changed",
    RoleCreated => "role_created",
    RoleUpdated => "role_updated",
    StaffUserCreated => "staff_user_created",
    StaffUserUpdated => "staff_user_updated",
    CompanyCreated => "company_created",
    CompanyUpdated => "company_updated",
    SiteCreated => "site_created",
    SiteUpdated => "site_updated",
    SiteDeleted => "site_deleted",
    TemplateCreated => "template_created",
    TemplateUpdated => "template_updated",
    TemplateDeleted => "template_deleted",
    PortalCreated => "portal_created",
    PortalUpdated => "portal_updated",
    PortalStatusChanged => "portal_status_changed",
    PortalDeleted => "portal_deleted",
    PhaseAdded => "phase_added",
    PhaseUpdated => "phase_updated",
    PhaseDeleted => "phase_deleted",
    PhasesReordered => "phases_reordered",
    TaskAdded => "task_added",
    TaskUpdated => "task_updated",
    TaskDeleted => "task_deleted",
    TasksReordered => "tasks_reordered",
    TaskStatusChanged => "task_status_changed",
    TaskCompleted => "task_completed",
    TaskReopened => "task_reopened",
    TaskBlocked => "task_blocked",
    TaskUnblocked => "task_unblocked",
    TaskAssigned => "task_assigned",
    TasksReassigned => "tasks_reassigned",
    ChecklistUpdated => "checklist_updated",
    CommentAdded => "comment_added",
    QuestionAsked => "question_asked",
    ContactAdded => "contact_added",
    ContactUpdated => "contact_updated",
    ContactRemoved => "contact_removed",
    AccessLinkIssued => "access_link_issued",
    ContactAccessRevoked => "contact_access_revoked",
    AccessLinkRegenerated => "access_link_regenerated",
    ContactAccessedPortal => "contact_accessed_portal",
    NotificationSent => "notification_sent",
    NotificationPreferencesChanged => "notification_preferences_changed",
});

/// The kind of principal behind an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A staff user.
    Staff,
    /// A contact with a token session.
    Contact,
    /// A portal user.
    PortalUser,
    /// A worker of the system.
    System,
}

crate::string_enum!(ActorKind {
    Staff => "staff",
    Contact => "contact",
    PortalUser => "portal_user",
    System => "system",
});

/// Who did it: kind, id and the email shown beside the event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// Kind of principal.
    pub kind: ActorKind,
    /// Id of the staff user, contact or portal user; `None` for the system.
    pub id: Option<Uuid>,
    /// Email shown beside the event, or the worker's name for the system. Erased by ACT-4.
    pub display: Option<String>,
}

/// One entry of the append-only log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityEvent {
    /// Id (UUIDv7: ordered by time of the command that made it).
    pub id: EventId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The company it concerns, if any.
    pub company_id: Option<CompanyId>,
    /// The portal it concerns, if any. A tenant-level event has none.
    pub portal_id: Option<PortalId>,
    /// What happened.
    pub kind: EventKind,
    /// Who did it.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// Short human summary. Empty once erased.
    pub summary: String,
    /// Structured details. `null` once erased.
    pub details: serde_json::Value,
    /// Set when a portal delete erased this event's content (ACT-4): the id of the tenant-level
    /// audit event that records the delete. The event stays as a tombstone.
    pub erased_by: Option<EventId>,
}

/// Longest summary kept; longer ones are cut on a character boundary.
pub const MAX_SUMMARY_CHARS: usize = 500;

pub(crate) fn clip_summary(s: String) -> String {
    if s.chars().count() <= MAX_SUMMARY_CHARS {
        s
    } else {
        s.chars().take(MAX_SUMMARY_CHARS).collect()
    }
}
