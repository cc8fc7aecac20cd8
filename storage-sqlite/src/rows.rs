//! Private row types, one per table, and their checked conversion into domain values.
//!
//! Every stored text goes back through its domain parser (`Name::parse`, `Email::parse`, the
//! enums' `FromStr`, ...) so a row that was changed behind the engine's back becomes
//! [`StorageError::Corrupt`] instead of an invalid value.
//!
//! The column lists are macros so that queries stay `&'static str` literals built with
//! `concat!`.

use chrono::{DateTime, NaiveDate, Utc};
use portal_core::activity::{ActivityEvent, Actor, ActorKind, EventKind};
use portal_core::auth::{StaffSession, TokenHash};
use portal_core::company::{Company, Site};
use portal_core::crypto::Sealed;
use portal_core::id::{
    ChecklistItemId, CommentId, CompanyId, ContactId, DigestItemId, EventId, MessageId, PhaseId, PortalId, RoleId,
    SiteId, StaffUserId, SurveyQuestionId, TaskId, TemplateId, TemplatePhaseId, TemplateTaskId, TenantId,
};
use portal_core::lifecycle::PortalStatus;
use portal_core::mail::{MailKind, MessageSecret, MessageStatus, OutboxEntry};
use portal_core::notifications::{
    DigestItem, NotificationPreferences, NotificationSettings, PendingDigest, ReminderCadence, ReminderReason,
    ReminderRecord, Topic,
};
use portal_core::outcome::OutboundMessage;
use portal_core::portal::{Contact, ContactRole, Phase, Portal};
use portal_core::storage::{AssignedTask, PortalTaskCounts, StorageError, StorageResult};
use portal_core::task::{
    ChecklistItem, Comment, EvidenceType, SurveyKind, SurveyQuestion, Task, TaskOwner, TaskStatus,
};
use portal_core::template::{TaskKey, TemplateTask};
use portal_core::tenant::{Branding, LinkSettings, Permission, StaffUser, Tenant, TenantSettings, TimeZone};
use portal_core::value::{CommentBody, DayOffset, Description, Email, ItemText, Name, Priority, Reason, Title};
use sqlx::FromRow;
use uuid::Uuid;

use crate::error::{corrupt, parse};

macro_rules! tenant_columns {
    () => {
        "tenant_id, name, time_zone, billable_default, forwarded_link_protection, access_link_expiry_days, version, \
         created_at, app_name, logo_url, primary_colour, sender_name, sender_email, reply_to, reminder_on_unlock, \
         reminder_days_before_due, reminder_when_overdue, digest_hour"
    };
}
macro_rules! role_columns {
    () => {
        "tenant_id, id, name, version"
    };
}
macro_rules! staff_user_columns {
    () => {
        "tenant_id, id, email, display_name, active, version, created_at"
    };
}
macro_rules! company_columns {
    () => {
        "tenant_id, id, name, version, created_at"
    };
}
macro_rules! site_columns {
    () => {
        "tenant_id, id, company_id, name, address, version"
    };
}
macro_rules! template_columns {
    () => {
        "tenant_id, id, name, description, version, created_at, updated_at"
    };
}
macro_rules! portal_columns {
    () => {
        "tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, activated_at"
    };
}
macro_rules! phase_columns {
    () => {
        "tenant_id, id, portal_id, position, name, description, version"
    };
}
macro_rules! task_columns {
    () => {
        "tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, priority, \
         due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
         completed_by_id, completed_by_display, completion_reason, version"
    };
}
macro_rules! contact_columns {
    () => {
        "tenant_id, id, portal_id, name, email, role, is_primary, version, created_at, notification_preferences"
    };
}
macro_rules! comment_columns {
    () => {
        "tenant_id, id, portal_id, task_id, author_kind, author_id, author_display, body, is_question, created_at"
    };
}
macro_rules! event_columns {
    () => {
        "tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, actor_display, at, summary, details, \
         erased_by"
    };
}
macro_rules! message_columns {
    () => {
        "tenant_id, id, portal_id, contact_id, kind, recipient, recipient_name, payload, secret_key_id, secret_nonce, \
         secret_ciphertext, attempts, next_attempt_at, created_at"
    };
}
macro_rules! outbox_entry_columns {
    () => {
        "id, portal_id, contact_id, kind, recipient, status, attempts, next_attempt_at, last_error, created_at, sent_at"
    };
}
macro_rules! session_columns {
    () => {
        "token_hash, tenant_id, user_id, created_at, expires_at"
    };
}
pub(crate) use {
    comment_columns, company_columns, contact_columns, event_columns, message_columns, outbox_entry_columns,
    phase_columns, portal_columns, role_columns, session_columns, site_columns, staff_user_columns, task_columns,
    template_columns, tenant_columns,
};

/// A stored position or count back into an `i32`.
fn position(what: &'static str, v: i64) -> StorageResult<i32> {
    parse(what, i32::try_from(v))
}

fn due_offset(v: Option<i64>) -> StorageResult<Option<DayOffset>> {
    v.map(|d| parse("due_offset_days", DayOffset::parse(d))).transpose()
}

fn reason(what: &'static str, v: Option<String>) -> StorageResult<Option<Reason>> {
    v.map(|r| parse(what, Reason::parse(&r))).transpose()
}

fn json(what: &'static str, text: &str) -> StorageResult<serde_json::Value> {
    parse(what, serde_json::from_str(text))
}

/// The options of a survey question, stored as a JSON array of strings.
pub(crate) fn survey_options(text: &str) -> StorageResult<Vec<ItemText>> {
    parse("survey options", serde_json::from_str(text))
}

/// The options of a survey question as stored.
pub(crate) fn survey_options_json(options: &[ItemText]) -> String {
    // A list of strings always serialises.
    serde_json::to_string(options).unwrap_or_else(|_| "[]".to_owned())
}

/// A JSON value as stored.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

/// A contact's notification preferences as stored: a JSON object, one delivery per topic.
pub(crate) fn notification_preferences_json(p: &NotificationPreferences) -> String {
    // A struct of unit enums always serialises.
    serde_json::to_string(p).unwrap_or_else(|_| "{}".to_owned())
}

/// A contact's stored notification preferences; a topic left out is `immediate`.
fn notification_preferences(text: &str) -> StorageResult<NotificationPreferences> {
    parse("contact.notification_preferences", serde_json::from_str(text))
}

fn actor(what: &'static str, kind: &str, id: Option<Uuid>, display: Option<String>) -> StorageResult<Actor> {
    Ok(Actor {
        kind: parse(what, kind.parse::<ActorKind>())?,
        id,
        display,
    })
}

#[derive(FromRow)]
pub(crate) struct TenantRow {
    tenant_id: Uuid,
    name: String,
    time_zone: String,
    billable_default: bool,
    forwarded_link_protection: bool,
    access_link_expiry_days: i64,
    version: i64,
    created_at: DateTime<Utc>,
    app_name: Option<String>,
    logo_url: Option<String>,
    primary_colour: String,
    sender_name: Option<String>,
    sender_email: Option<String>,
    reply_to: Option<String>,
    reminder_on_unlock: bool,
    reminder_days_before_due: Option<i64>,
    reminder_when_overdue: bool,
    digest_hour: i64,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StorageError;
    fn try_from(r: TenantRow) -> StorageResult<Self> {
        let branding = Branding {
            app_name: r
                .app_name
                .map(|n| parse("tenant.app_name", Name::parse(&n)))
                .transpose()?,
            logo_url: r.logo_url,
            primary_colour: r.primary_colour,
            sender_name: r
                .sender_name
                .map(|n| parse("tenant.sender_name", Name::parse(&n)))
                .transpose()?,
            sender_email: r
                .sender_email
                .map(|e| parse("tenant.sender_email", Email::parse(&e)))
                .transpose()?,
            reply_to: r
                .reply_to
                .map(|e| parse("tenant.reply_to", Email::parse(&e)))
                .transpose()?,
        };
        parse("tenant branding", branding.check())?;
        let notification_settings = NotificationSettings {
            reminders: ReminderCadence {
                on_unlock: r.reminder_on_unlock,
                days_before_due: r
                    .reminder_days_before_due
                    .map(|d| parse("tenant.reminder_days_before_due", u8::try_from(d)))
                    .transpose()?,
                when_overdue: r.reminder_when_overdue,
            },
            digest_hour: parse("tenant.digest_hour", u8::try_from(r.digest_hour))?,
        };
        parse("tenant notification settings", notification_settings.check())?;
        Ok(Self {
            id: TenantId::from_uuid(r.tenant_id),
            name: parse("tenant.name", Name::parse(&r.name))?,
            settings: TenantSettings {
                time_zone: parse("tenant.time_zone", TimeZone::parse(&r.time_zone))?,
                billable_default: r.billable_default,
                forwarded_link_protection: r.forwarded_link_protection,
            },
            link_settings: LinkSettings {
                access_link_expiry_days: parse(
                    "tenant.access_link_expiry_days",
                    u16::try_from(r.access_link_expiry_days),
                )?,
            },
            branding,
            notification_settings,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

/// A role row; its permissions come from `role_permission`.
#[derive(FromRow)]
pub(crate) struct RoleRow {
    pub(crate) tenant_id: Uuid,
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) version: i64,
}

#[derive(FromRow)]
pub(crate) struct RolePermissionRow {
    pub(crate) role_id: Uuid,
    pub(crate) permission: String,
}

impl RolePermissionRow {
    pub(crate) fn permission(&self) -> StorageResult<Permission> {
        parse("role_permission.permission", self.permission.parse::<Permission>())
    }
}

impl RoleRow {
    pub(crate) fn name(&self) -> StorageResult<Name> {
        parse("role.name", Name::parse(&self.name))
    }
}

#[derive(FromRow)]
pub(crate) struct StaffUserRow {
    tenant_id: Uuid,
    pub(crate) id: Uuid,
    email: String,
    display_name: String,
    active: bool,
    version: i64,
    created_at: DateTime<Utc>,
}

#[derive(FromRow)]
pub(crate) struct StaffUserRoleRow {
    pub(crate) user_id: Uuid,
    pub(crate) role_id: Uuid,
}

impl StaffUserRow {
    pub(crate) fn into_staff_user(self, roles: Vec<RoleId>) -> StorageResult<StaffUser> {
        Ok(StaffUser {
            id: StaffUserId::from_uuid(self.id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            email: parse("staff_user.email", Email::parse(&self.email))?,
            display_name: parse("staff_user.display_name", Name::parse(&self.display_name))?,
            roles,
            active: self.active,
            version: self.version,
            created_at: self.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct CompanyRow {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    version: i64,
    created_at: DateTime<Utc>,
}

impl TryFrom<CompanyRow> for Company {
    type Error = StorageError;
    fn try_from(r: CompanyRow) -> StorageResult<Self> {
        Ok(Self {
            id: CompanyId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            name: parse("company.name", Name::parse(&r.name))?,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct SiteRow {
    tenant_id: Uuid,
    id: Uuid,
    company_id: Uuid,
    name: String,
    address: String,
    version: i64,
}

impl TryFrom<SiteRow> for Site {
    type Error = StorageError;
    fn try_from(r: SiteRow) -> StorageResult<Self> {
        Ok(Self {
            id: SiteId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            company_id: CompanyId::from_uuid(r.company_id),
            name: parse("site.name", Name::parse(&r.name))?,
            address: parse("site.address", Description::parse(&r.address))?,
            version: r.version,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TemplateRow {
    pub(crate) tenant_id: Uuid,
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) version: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
pub(crate) struct TemplatePhaseRow {
    pub(crate) id: Uuid,
    pub(crate) template_id: Uuid,
    pub(crate) name: String,
    pub(crate) description: String,
}

impl TemplatePhaseRow {
    pub(crate) fn id(&self) -> TemplatePhaseId {
        TemplatePhaseId::from_uuid(self.id)
    }
}

#[derive(FromRow)]
pub(crate) struct TemplateTaskRow {
    pub(crate) id: Uuid,
    pub(crate) phase_id: Uuid,
    task_key: String,
    title: String,
    description: String,
    owner: String,
    evidence: String,
    priority: String,
    due_offset_days: Option<i64>,
}

/// The children of a template task, gathered before the task is built.
#[derive(Default)]
pub(crate) struct TemplateTaskChildren {
    pub(crate) checklist: Vec<ItemText>,
    pub(crate) depends_on: Vec<TemplateTaskId>,
    pub(crate) survey: Vec<SurveyQuestion>,
}

impl TemplateTaskRow {
    pub(crate) fn into_task(self, children: TemplateTaskChildren) -> StorageResult<TemplateTask> {
        Ok(TemplateTask {
            id: TemplateTaskId::from_uuid(self.id),
            key: parse("template_task.task_key", TaskKey::parse(&self.task_key))?,
            title: parse("template_task.title", Title::parse(&self.title))?,
            description: parse("template_task.description", Description::parse(&self.description))?,
            owner: parse("template_task.owner", self.owner.parse::<TaskOwner>())?,
            evidence: parse("template_task.evidence", self.evidence.parse::<EvidenceType>())?,
            priority: parse("template_task.priority", self.priority.parse::<Priority>())?,
            due_offset: due_offset(self.due_offset_days)?,
            checklist: children.checklist,
            depends_on: children.depends_on,
            survey: children.survey,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TemplateChecklistRow {
    pub(crate) task_id: Uuid,
    pub(crate) text: String,
}

impl TemplateChecklistRow {
    pub(crate) fn text(&self) -> StorageResult<ItemText> {
        parse("template_task_checklist_item.text", ItemText::parse(&self.text))
    }
}

/// A dependency edge, of a template task or a portal task.
#[derive(FromRow)]
pub(crate) struct DependencyRow {
    pub(crate) task_id: Uuid,
    pub(crate) depends_on_id: Uuid,
}

/// A survey question, of a template task or a portal task.
#[derive(FromRow)]
pub(crate) struct SurveyRow {
    pub(crate) id: Uuid,
    pub(crate) task_id: Uuid,
    text: String,
    kind: String,
    options: String,
}

impl SurveyRow {
    pub(crate) fn question(&self) -> StorageResult<SurveyQuestion> {
        Ok(SurveyQuestion {
            id: SurveyQuestionId::from_uuid(self.id),
            text: parse("survey question text", ItemText::parse(&self.text))?,
            kind: parse("survey question kind", self.kind.parse::<SurveyKind>())?,
            options: survey_options(&self.options)?,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct PortalRow {
    tenant_id: Uuid,
    id: Uuid,
    company_id: Uuid,
    template_id: Option<Uuid>,
    name: String,
    status: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
}

impl TryFrom<PortalRow> for Portal {
    type Error = StorageError;
    fn try_from(r: PortalRow) -> StorageResult<Self> {
        Ok(Self {
            id: PortalId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            company_id: CompanyId::from_uuid(r.company_id),
            template_id: r.template_id.map(TemplateId::from_uuid),
            name: parse("portal.name", Name::parse(&r.name))?,
            status: parse("portal.status", r.status.parse::<PortalStatus>())?,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            activated_at: r.activated_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct PhaseRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    position: i64,
    name: String,
    description: String,
    version: i64,
}

impl TryFrom<PhaseRow> for Phase {
    type Error = StorageError;
    fn try_from(r: PhaseRow) -> StorageResult<Self> {
        Ok(Self {
            id: PhaseId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            position: position("portal_phase.position", r.position)?,
            name: parse("portal_phase.name", Name::parse(&r.name))?,
            description: parse("portal_phase.description", Description::parse(&r.description))?,
            version: r.version,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TaskRow {
    tenant_id: Uuid,
    pub(crate) id: Uuid,
    portal_id: Uuid,
    phase_id: Uuid,
    position: i64,
    title: String,
    description: String,
    owner: String,
    evidence: String,
    priority: String,
    due_offset_days: Option<i64>,
    due_date: Option<NaiveDate>,
    status: String,
    block_reason: Option<String>,
    assignee_id: Option<Uuid>,
    completed_at: Option<DateTime<Utc>>,
    completed_by_kind: Option<String>,
    completed_by_id: Option<Uuid>,
    completed_by_display: Option<String>,
    completion_reason: Option<String>,
    version: i64,
}

/// The children of a portal task, gathered before the task is built.
#[derive(Default)]
pub(crate) struct TaskChildren {
    pub(crate) depends_on: Vec<TaskId>,
    pub(crate) checklist: Vec<ChecklistItem>,
    pub(crate) survey: Vec<SurveyQuestion>,
}

impl TaskRow {
    pub(crate) fn into_task(self, children: TaskChildren) -> StorageResult<Task> {
        let completed_by = match self.completed_by_kind {
            Some(kind) => Some(actor(
                "task.completed_by_kind",
                &kind,
                self.completed_by_id,
                self.completed_by_display,
            )?),
            None if self.completed_by_id.is_some() || self.completed_by_display.is_some() => {
                return Err(corrupt(
                    "task.completed_by_kind",
                    "missing while the actor's id or display is set",
                ));
            }
            None => None,
        };
        Ok(Task {
            id: TaskId::from_uuid(self.id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            portal_id: PortalId::from_uuid(self.portal_id),
            phase_id: PhaseId::from_uuid(self.phase_id),
            position: position("task.position", self.position)?,
            title: parse("task.title", Title::parse(&self.title))?,
            description: parse("task.description", Description::parse(&self.description))?,
            owner: parse("task.owner", self.owner.parse::<TaskOwner>())?,
            evidence: parse("task.evidence", self.evidence.parse::<EvidenceType>())?,
            priority: parse("task.priority", self.priority.parse::<Priority>())?,
            due_offset: due_offset(self.due_offset_days)?,
            due_date: self.due_date,
            status: parse("task.status", self.status.parse::<TaskStatus>())?,
            block_reason: reason("task.block_reason", self.block_reason)?,
            assignee: self.assignee_id.map(StaffUserId::from_uuid),
            depends_on: children.depends_on,
            checklist: children.checklist,
            survey: children.survey,
            completed_at: self.completed_at,
            completed_by,
            completion_reason: reason("task.completion_reason", self.completion_reason)?,
            version: self.version,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ChecklistRow {
    id: Uuid,
    pub(crate) task_id: Uuid,
    text: String,
    done: bool,
}

impl ChecklistRow {
    pub(crate) fn item(&self) -> StorageResult<ChecklistItem> {
        Ok(ChecklistItem {
            id: ChecklistItemId::from_uuid(self.id),
            text: parse("task_checklist_item.text", ItemText::parse(&self.text))?,
            done: self.done,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ContactRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    name: String,
    email: String,
    role: String,
    is_primary: bool,
    version: i64,
    created_at: DateTime<Utc>,
    notification_preferences: String,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StorageError;
    fn try_from(r: ContactRow) -> StorageResult<Self> {
        Ok(Self {
            id: ContactId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            name: parse("contact.name", Name::parse(&r.name))?,
            email: parse("contact.email", Email::parse(&r.email))?,
            role: parse("contact.role", r.role.parse::<ContactRole>())?,
            primary: r.is_primary,
            notifications: notification_preferences(&r.notification_preferences)?,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct CommentRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    task_id: Uuid,
    author_kind: String,
    author_id: Option<Uuid>,
    author_display: Option<String>,
    body: String,
    is_question: bool,
    created_at: DateTime<Utc>,
}

impl TryFrom<CommentRow> for Comment {
    type Error = StorageError;
    fn try_from(r: CommentRow) -> StorageResult<Self> {
        Ok(Self {
            id: CommentId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            task_id: TaskId::from_uuid(r.task_id),
            author: actor(
                "task_comment.author_kind",
                &r.author_kind,
                r.author_id,
                r.author_display,
            )?,
            body: parse("task_comment.body", CommentBody::parse(&r.body))?,
            is_question: r.is_question,
            created_at: r.created_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct EventRow {
    tenant_id: Uuid,
    id: Uuid,
    company_id: Option<Uuid>,
    portal_id: Option<Uuid>,
    kind: String,
    actor_kind: String,
    actor_id: Option<Uuid>,
    actor_display: Option<String>,
    at: DateTime<Utc>,
    summary: String,
    details: String,
    erased_by: Option<Uuid>,
}

impl TryFrom<EventRow> for ActivityEvent {
    type Error = StorageError;
    fn try_from(r: EventRow) -> StorageResult<Self> {
        Ok(Self {
            id: EventId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            company_id: r.company_id.map(CompanyId::from_uuid),
            portal_id: r.portal_id.map(PortalId::from_uuid),
            kind: parse("activity_event.kind", r.kind.parse::<EventKind>())?,
            actor: actor("activity_event.actor_kind", &r.actor_kind, r.actor_id, r.actor_display)?,
            at: r.at,
            summary: r.summary,
            details: json("activity_event.details", &r.details)?,
            erased_by: r.erased_by.map(EventId::from_uuid),
        })
    }
}

/// A queued message as a worker or support reads it: everything but its delivery state, and
/// the attempt it is on.
#[derive(FromRow)]
pub(crate) struct MessageRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    kind: String,
    recipient: String,
    recipient_name: Option<String>,
    payload: String,
    secret_key_id: Option<String>,
    secret_nonce: Option<Vec<u8>>,
    secret_ciphertext: Option<Vec<u8>>,
    attempts: i64,
    pub(crate) next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl MessageRow {
    /// The message, and the number of delivery attempts so far (the claim's attempt, for a row a
    /// claim returned).
    pub(crate) fn into_message(self) -> StorageResult<(OutboundMessage, u32)> {
        let secret = match (self.secret_key_id, self.secret_nonce, self.secret_ciphertext) {
            (None, None, None) => None,
            (Some(key_id), Some(nonce), Some(ciphertext)) => Some(MessageSecret::Sealed {
                sealed: Sealed {
                    key_id,
                    nonce,
                    ciphertext,
                },
            }),
            _ => {
                return Err(corrupt(
                    "outbox_message.secret",
                    "key id, nonce and ciphertext are not all set or all empty",
                ));
            }
        };
        let message = OutboundMessage {
            id: MessageId::from_uuid(self.id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            portal_id: self.portal_id.map(PortalId::from_uuid),
            contact_id: self.contact_id.map(ContactId::from_uuid),
            kind: parse("outbox_message.kind", self.kind.parse::<MailKind>())?,
            recipient: parse("outbox_message.recipient", Email::parse(&self.recipient))?,
            recipient_name: self.recipient_name,
            payload: json("outbox_message.payload", &self.payload)?,
            secret,
            created_at: self.created_at,
        };
        Ok((message, parse("outbox_message.attempts", u32::try_from(self.attempts))?))
    }
}

/// A message's delivery state, as staff see it.
#[derive(FromRow)]
pub(crate) struct OutboxEntryRow {
    id: Uuid,
    portal_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    kind: String,
    recipient: String,
    status: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl TryFrom<OutboxEntryRow> for OutboxEntry {
    type Error = StorageError;
    fn try_from(r: OutboxEntryRow) -> StorageResult<Self> {
        Ok(Self {
            id: MessageId::from_uuid(r.id),
            portal_id: r.portal_id.map(PortalId::from_uuid),
            contact_id: r.contact_id.map(ContactId::from_uuid),
            kind: parse("outbox_message.kind", r.kind.parse::<MailKind>())?,
            recipient: parse("outbox_message.recipient", Email::parse(&r.recipient))?,
            status: parse("outbox_message.status", r.status.parse::<MessageStatus>())?,
            attempts: parse("outbox_message.attempts", u32::try_from(r.attempts))?,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
        })
    }
}

/// A task row with what places it in the assignee's list: its portal's name and its phase's
/// position.
#[derive(FromRow)]
pub(crate) struct AssignedTaskRow {
    #[sqlx(flatten)]
    pub(crate) task: TaskRow,
    portal_name: String,
    phase_position: i64,
}

impl AssignedTaskRow {
    pub(crate) fn into_assigned(self, children: TaskChildren) -> StorageResult<AssignedTask> {
        Ok(AssignedTask {
            portal_name: parse("portal.name", Name::parse(&self.portal_name))?,
            phase_position: position("portal_phase.position", self.phase_position)?,
            task: self.task.into_task(children)?,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct TaskCountsRow {
    pub(crate) portal_id: Uuid,
    total: i64,
    completed: i64,
}

impl TryFrom<TaskCountsRow> for PortalTaskCounts {
    type Error = StorageError;
    fn try_from(r: TaskCountsRow) -> StorageResult<Self> {
        Ok(Self {
            portal: PortalId::from_uuid(r.portal_id),
            total: parse("task count", u32::try_from(r.total))?,
            completed: parse("completed task count", u32::try_from(r.completed))?,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct SessionRow {
    token_hash: Vec<u8>,
    tenant_id: Uuid,
    user_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl TryFrom<SessionRow> for StaffSession {
    type Error = StorageError;
    fn try_from(r: SessionRow) -> StorageResult<Self> {
        Ok(Self {
            token_hash: parse("staff_sessions.token_hash", TokenHash::from_slice(&r.token_hash))?,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            user_id: StaffUserId::from_uuid(r.user_id),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// A row of the reminder ledger.
#[derive(FromRow)]
pub(crate) struct ReminderRow {
    tenant_id: Uuid,
    portal_id: Uuid,
    task_id: Uuid,
    contact_id: Uuid,
    reason: String,
    due_date: Option<NaiveDate>,
    sent_at: DateTime<Utc>,
}

impl TryFrom<ReminderRow> for ReminderRecord {
    type Error = StorageError;
    fn try_from(r: ReminderRow) -> StorageResult<Self> {
        Ok(Self {
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            task_id: TaskId::from_uuid(r.task_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            reason: parse("reminder_sent.reason", r.reason.parse::<ReminderReason>())?,
            due_date: r.due_date,
            sent_at: r.sent_at,
        })
    }
}

/// An item waiting for a contact's daily digest.
#[derive(FromRow)]
pub(crate) struct DigestItemRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    contact_id: Uuid,
    topic: String,
    payload: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<DigestItemRow> for DigestItem {
    type Error = StorageError;
    fn try_from(r: DigestItemRow) -> StorageResult<Self> {
        Ok(Self {
            id: DigestItemId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            topic: parse("notification_digest_item.topic", r.topic.parse::<Topic>())?,
            payload: json("notification_digest_item.payload", &r.payload)?,
            created_at: r.created_at,
        })
    }
}

/// A contact with digest items waiting.
#[derive(FromRow)]
pub(crate) struct PendingDigestRow {
    tenant_id: Uuid,
    portal_id: Uuid,
    contact_id: Uuid,
    oldest: DateTime<Utc>,
}

impl From<PendingDigestRow> for PendingDigest {
    fn from(r: PendingDigestRow) -> Self {
        Self {
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            contact_id: ContactId::from_uuid(r.contact_id),
            oldest: r.oldest,
        }
    }
}
