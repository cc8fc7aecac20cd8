//! The outcome of a command: rows to write, events to append, messages to enqueue. Storage
//! commits all three in one transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{AccessChallenge, AccessLink, ContactSession};
use crate::activity::ActivityEvent;
use crate::company::{Company, Site};
use crate::id::{
    ChallengeId, ContactId, DigestItemId, EventId, PhaseId, PortalId, SiteId, TaskId, TemplateId, TenantId,
};
use crate::notifications::{DigestItem, ReminderRecord};
use crate::portal::{Contact, Phase, Portal, PortalState};
use crate::task::{Comment, Task};
use crate::template::Template;
use crate::tenant::{Role, StaffUser, Tenant};

/// One row-level change. Every update carries the version it expects to replace
/// (compare-and-set); the row written carries the next version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Write {
    InsertTenant(Tenant),
    UpdateTenant {
        tenant: Tenant,
        expected_version: i64,
    },
    InsertRole(Role),
    UpdateRole {
        role: Role,
        expected_version: i64,
    },
    InsertStaffUser(StaffUser),
    UpdateStaffUser {
        user: StaffUser,
        expected_version: i64,
    },
    InsertCompany(Company),
    UpdateCompany {
        company: Company,
        expected_version: i64,
    },
    InsertSite(Site),
    UpdateSite {
        site: Site,
        expected_version: i64,
    },
    DeleteSite {
        id: SiteId,
        expected_version: i64,
    },
    InsertTemplate(Template),
    /// Replaces the whole template document (phases and tasks with it).
    ReplaceTemplate {
        template: Template,
        expected_version: i64,
    },
    DeleteTemplate {
        id: TemplateId,
        expected_version: i64,
    },
    /// Inserts a portal with all its phases, tasks and contacts.
    InsertPortal(Box<PortalState>),
    UpdatePortal {
        portal: Portal,
        expected_version: i64,
    },
    /// Deletes the portal and everything in it.
    DeletePortal {
        id: PortalId,
    },
    InsertPhase(Phase),
    UpdatePhase {
        phase: Phase,
        expected_version: i64,
    },
    DeletePhase {
        id: PhaseId,
    },
    InsertTask(Box<Task>),
    /// Updates the task row with its checklist, survey and dependencies.
    UpdateTask {
        task: Box<Task>,
        expected_version: i64,
    },
    DeleteTask {
        id: TaskId,
    },
    InsertContact(Contact),
    UpdateContact {
        contact: Contact,
        expected_version: i64,
    },
    DeleteContact {
        id: ContactId,
    },
    InsertComment(Comment),
    /// Issues an access link (only its token's hash).
    InsertAccessLink(AccessLink),
    /// Revokes every link of the contact not yet revoked (`revoked_at = at`) and ends every
    /// session of the contact (CON-3). A later write of the same outcome may issue a new link.
    RevokeContactAccess {
        contact_id: ContactId,
        at: DateTime<Utc>,
    },
    /// Starts a contact session (CON-4).
    InsertContactSession(ContactSession),
    /// Stores a one-time code challenge (CON-5).
    InsertAccessChallenge(AccessChallenge),
    /// Marks a challenge used at `at`; refused as stale ([`crate::CommandError::Stale`]) when it
    /// was used already, so one code opens the portal once.
    UseAccessChallenge {
        /// The challenge.
        id: ChallengeId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records an automatic reminder in the ledger (BYD-5); refused as
    /// [`crate::CommandError::AlreadyExists`] when the same reminder (task, contact, reason, due
    /// date) is recorded already, so it is never sent twice.
    InsertReminderRecord(ReminderRecord),
    /// Keeps something for a contact's daily digest (BYD-5).
    InsertDigestItem(DigestItem),
    /// Deletes digest items once their digest is queued; refused as stale
    /// ([`crate::CommandError::Stale`]) unless every one of them was still there, so a digest
    /// goes out once.
    DeleteDigestItems {
        /// The contact.
        contact_id: ContactId,
        /// The items.
        ids: Vec<DigestItemId>,
    },
    /// ACT-4: erases summary, details and actor display of every event of the portal, keeping
    /// each as a tombstone that names the audit event of the delete.
    EraseEventsOfPortal {
        portal_id: PortalId,
        erased_by: EventId,
    },
}

impl Write {
    /// A short name of the entity the write touches, for errors.
    #[must_use]
    pub const fn entity(&self) -> &'static str {
        match self {
            Self::InsertTenant(_) | Self::UpdateTenant { .. } => "tenant",
            Self::InsertRole(_) | Self::UpdateRole { .. } => "role",
            Self::InsertStaffUser(_) | Self::UpdateStaffUser { .. } => "staff user",
            Self::InsertCompany(_) | Self::UpdateCompany { .. } => "company",
            Self::InsertSite(_) | Self::UpdateSite { .. } | Self::DeleteSite { .. } => "site",
            Self::InsertTemplate(_) | Self::ReplaceTemplate { .. } | Self::DeleteTemplate { .. } => "template",
            Self::InsertPortal(_) | Self::UpdatePortal { .. } | Self::DeletePortal { .. } => "portal",
            Self::InsertPhase(_) | Self::UpdatePhase { .. } | Self::DeletePhase { .. } => "phase",
            Self::InsertTask(_) | Self::UpdateTask { .. } | Self::DeleteTask { .. } => "task",
            Self::InsertContact(_) | Self::UpdateContact { .. } | Self::DeleteContact { .. } => "contact",
            Self::InsertComment(_) => "comment",
            Self::InsertAccessLink(_) | Self::RevokeContactAccess { .. } => "access link",
            Self::InsertContactSession(_) => "contact session",
            Self::InsertAccessChallenge(_) | Self::UseAccessChallenge { .. } => "access code",
            Self::EraseEventsOfPortal { .. } => "activity",
            Self::InsertReminderRecord(_) => "reminder",
            Self::InsertDigestItem(_) | Self::DeleteDigestItems { .. } => "digest item",
        }
    }
}

pub use crate::mail::OutboundMessage;

/// Side effects on access, applied after the writes of the same outcome, in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum AccessEffect {
    /// Revoke every client session and token of the portal at once (ONB-5): every access link
    /// not yet revoked gets `revoked_at = at` and every contact session of the portal ends.
    RevokeAllClientAccess {
        /// The portal.
        portal_id: PortalId,
        /// The time of the revocation.
        at: DateTime<Utc>,
    },
}

/// What a command decided. Applying it is storage's one commit path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Rows to write, in order.
    pub writes: Vec<Write>,
    /// Events to append.
    pub events: Vec<ActivityEvent>,
    /// Messages to enqueue.
    pub messages: Vec<OutboundMessage>,
    /// Access effects to apply in the same transaction.
    pub effects: Vec<AccessEffect>,
}

impl Outcome {
    /// Whether the outcome changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty() && self.messages.is_empty() && self.effects.is_empty()
    }

    /// The tenant of every row the outcome writes or appends, so a commit can refuse a foreign
    /// one (deletes and erasures carry no row; they are scoped by the commit's tenant).
    pub fn tenants(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.writes
            .iter()
            .filter_map(|w| match w {
                Write::InsertTenant(t) | Write::UpdateTenant { tenant: t, .. } => Some(t.id),
                Write::InsertRole(r) | Write::UpdateRole { role: r, .. } => Some(r.tenant_id),
                Write::InsertStaffUser(u) | Write::UpdateStaffUser { user: u, .. } => Some(u.tenant_id),
                Write::InsertCompany(c) | Write::UpdateCompany { company: c, .. } => Some(c.tenant_id),
                Write::InsertSite(s) | Write::UpdateSite { site: s, .. } => Some(s.tenant_id),
                Write::InsertTemplate(t) | Write::ReplaceTemplate { template: t, .. } => Some(t.tenant_id),
                Write::InsertPortal(s) => Some(s.portal.tenant_id),
                Write::UpdatePortal { portal, .. } => Some(portal.tenant_id),
                Write::InsertPhase(p) | Write::UpdatePhase { phase: p, .. } => Some(p.tenant_id),
                Write::InsertTask(t) | Write::UpdateTask { task: t, .. } => Some(t.tenant_id),
                Write::InsertContact(c) | Write::UpdateContact { contact: c, .. } => Some(c.tenant_id),
                Write::InsertComment(c) => Some(c.tenant_id),
                Write::InsertAccessLink(l) => Some(l.tenant_id),
                Write::InsertContactSession(s) => Some(s.tenant_id),
                Write::InsertAccessChallenge(c) => Some(c.tenant_id),
                Write::InsertReminderRecord(r) => Some(r.tenant_id),
                Write::InsertDigestItem(d) => Some(d.tenant_id),
                Write::DeleteSite { .. }
                | Write::DeleteTemplate { .. }
                | Write::DeletePortal { .. }
                | Write::DeletePhase { .. }
                | Write::DeleteTask { .. }
                | Write::DeleteContact { .. }
                | Write::RevokeContactAccess { .. }
                | Write::UseAccessChallenge { .. }
                | Write::DeleteDigestItems { .. }
                | Write::EraseEventsOfPortal { .. } => None,
            })
            .chain(self.events.iter().map(|e| e.tenant_id))
            .chain(self.messages.iter().map(|m| m.tenant_id))
    }
}
