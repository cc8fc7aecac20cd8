//! Rows as PostgreSQL returns them, and their checked conversion into domain values.
//!
//! Every text column goes back through the domain's own `parse` (names, emails, enums), so a row
//! written by something other than this crate that breaks a domain rule is reported as
//! [`StorageError::Corrupt`] instead of becoming a value that cannot otherwise exist.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use portal_core::activity::{ActivityEvent, Actor, ActorKind};
use portal_core::auth::{StaffSession, TokenHash};
use portal_core::company::{Company, Site};
use portal_core::crypto::Sealed;
use portal_core::id::{
    ChecklistItemId, CommentId, CompanyId, ContactId, DigestItemId, EventId, MessageId, PhaseId, PortalId, RoleId,
    SiteId, StaffUserId, SurveyQuestionId, TaskId, TemplateId, TemplatePhaseId, TemplateTaskId, TenantId,
};
use portal_core::mail::{MailKind, MessageSecret, MessageStatus, OutboxEntry};
use portal_core::notifications::{
    DigestItem, NotificationPreferences, NotificationSettings, PendingDigest, ReminderCadence, ReminderReason,
    ReminderRecord, Topic,
};
use portal_core::outcome::OutboundMessage;
use portal_core::portal::{Contact, Phase, Portal};
use portal_core::storage::{AssignedTask, PortalTaskCounts, StorageError, StorageResult};
use portal_core::task::{ChecklistItem, Comment, SurveyQuestion, Task};
use portal_core::template::{TaskKey, Template, TemplatePhase, TemplateTask};
use portal_core::tenant::{Branding, LinkSettings, Permission, Role, StaffUser, Tenant, TenantSettings, TimeZone};
use portal_core::value::{CommentBody, DayOffset, Description, Email, ItemText, Name, Reason, Title};
use uuid::Uuid;

/// A stored value that does not read back as its domain type.
pub(crate) fn corrupt(what: &str, e: impl Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {e}"))
}

/// Parses a stored value with the domain's own validation.
fn parse<T>(what: &str, raw: &str) -> StorageResult<T>
where
    T: FromStr,
    T::Err: Display,
{
    raw.parse().map_err(|e| corrupt(what, e))
}

macro_rules! text_parsers {
    ($($fn_name:ident => $ty:ty),* $(,)?) => {$(
        fn $fn_name(what: &str, raw: &str) -> StorageResult<$ty> {
            <$ty>::parse(raw).map_err(|e| corrupt(what, e))
        }
    )*};
}

text_parsers!(
    name => Name,
    title => Title,
    description => Description,
    reason => Reason,
    item_text => ItemText,
    comment_body => CommentBody,
    email => Email,
);

fn opt_reason(what: &str, raw: Option<&str>) -> StorageResult<Option<Reason>> {
    raw.map(|r| reason(what, r)).transpose()
}

fn day_offset(raw: Option<i32>) -> StorageResult<Option<DayOffset>> {
    raw.map(|d| DayOffset::parse(i64::from(d)).map_err(|e| corrupt("due offset", e)))
        .transpose()
}

fn actor(what: &str, kind: Option<&str>, id: Option<Uuid>, display: Option<String>) -> StorageResult<Option<Actor>> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    Ok(Some(Actor {
        kind: parse::<ActorKind>(what, kind)?,
        id,
        display,
    }))
}

/// Survey options are stored as a JSON array of strings.
fn survey_options(raw: &serde_json::Value) -> StorageResult<Vec<ItemText>> {
    let serde_json::Value::Array(items) = raw else {
        return Err(corrupt("survey options", "not a JSON array"));
    };
    items
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => item_text("survey option", s),
            other => Err(corrupt("survey option", format!("not a string: {other}"))),
        })
        .collect()
}

/// A contact's notification preferences as stored: a JSON object, one delivery per topic.
pub(crate) fn notification_preferences_json(p: &NotificationPreferences) -> serde_json::Value {
    // A struct of unit enums always serialises.
    serde_json::to_value(p).unwrap_or_else(|_| serde_json::Value::Object(serde_json::Map::new()))
}

/// Survey options as they are stored.
pub(crate) fn survey_options_json(options: &[ItemText]) -> serde_json::Value {
    serde_json::Value::Array(
        options
            .iter()
            .map(|o| serde_json::Value::String(o.as_str().to_owned()))
            .collect(),
    )
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    tenant_id: Uuid,
    name: String,
    time_zone: String,
    billable_default: bool,
    forwarded_link_protection: bool,
    access_link_expiry_days: i32,
    version: i64,
    created_at: DateTime<Utc>,
    app_name: Option<String>,
    logo_url: Option<String>,
    primary_colour: String,
    sender_name: Option<String>,
    sender_email: Option<String>,
    reply_to: Option<String>,
    reminder_on_unlock: bool,
    reminder_days_before_due: Option<i32>,
    reminder_when_overdue: bool,
    digest_hour: i32,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StorageError;
    fn try_from(r: TenantRow) -> StorageResult<Self> {
        let branding = Branding {
            app_name: r.app_name.map(|n| name("tenant app name", &n)).transpose()?,
            logo_url: r.logo_url,
            primary_colour: r.primary_colour,
            sender_name: r.sender_name.map(|n| name("tenant sender name", &n)).transpose()?,
            sender_email: r.sender_email.map(|e| email("tenant sender email", &e)).transpose()?,
            reply_to: r.reply_to.map(|e| email("tenant reply-to", &e)).transpose()?,
        };
        branding.check().map_err(|e| corrupt("tenant branding", e))?;
        let notification_settings = NotificationSettings {
            reminders: ReminderCadence {
                on_unlock: r.reminder_on_unlock,
                days_before_due: r
                    .reminder_days_before_due
                    .map(|d| u8::try_from(d).map_err(|e| corrupt("tenant reminder days before due", e)))
                    .transpose()?,
                when_overdue: r.reminder_when_overdue,
            },
            digest_hour: u8::try_from(r.digest_hour).map_err(|e| corrupt("tenant digest hour", e))?,
        };
        notification_settings
            .check()
            .map_err(|e| corrupt("tenant notification settings", e))?;
        Ok(Self {
            id: TenantId::from_uuid(r.tenant_id),
            name: name("tenant name", &r.name)?,
            settings: TenantSettings {
                time_zone: TimeZone::parse(&r.time_zone).map_err(|e| corrupt("tenant time zone", e))?,
                billable_default: r.billable_default,
                forwarded_link_protection: r.forwarded_link_protection,
            },
            link_settings: LinkSettings {
                access_link_expiry_days: u16::try_from(r.access_link_expiry_days)
                    .map_err(|e| corrupt("tenant access link expiry", e))?,
            },
            branding,
            notification_settings,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

/// A role with its permissions gathered into an array.
#[derive(sqlx::FromRow)]
pub(crate) struct RoleRow {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    version: i64,
    permissions: Vec<String>,
}

impl TryFrom<RoleRow> for Role {
    type Error = StorageError;
    fn try_from(r: RoleRow) -> StorageResult<Self> {
        Ok(Self {
            id: RoleId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            name: name("role name", &r.name)?,
            permissions: r
                .permissions
                .iter()
                .map(|p| parse::<Permission>("permission", p))
                .collect::<StorageResult<_>>()?,
            version: r.version,
        })
    }
}

/// A staff user with its role ids gathered into an array (ordered by id: the table keeps no
/// order of its own).
#[derive(sqlx::FromRow)]
pub(crate) struct StaffUserRow {
    tenant_id: Uuid,
    id: Uuid,
    email: String,
    display_name: String,
    active: bool,
    version: i64,
    created_at: DateTime<Utc>,
    roles: Vec<Uuid>,
}

impl TryFrom<StaffUserRow> for StaffUser {
    type Error = StorageError;
    fn try_from(r: StaffUserRow) -> StorageResult<Self> {
        Ok(Self {
            id: StaffUserId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            email: email("staff email", &r.email)?,
            display_name: name("staff display name", &r.display_name)?,
            roles: r.roles.into_iter().map(RoleId::from_uuid).collect(),
            active: r.active,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
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
            name: name("company name", &r.name)?,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
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
            name: name("site name", &r.name)?,
            address: description("site address", &r.address)?,
            version: r.version,
        })
    }
}

/// The template row; its phases and tasks are read separately and put together by
/// [`crate::read`].
#[derive(sqlx::FromRow)]
pub(crate) struct TemplateRow {
    tenant_id: Uuid,
    pub(crate) id: Uuid,
    name: String,
    description: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TemplateRow {
    /// The template with the phases read for it.
    pub(crate) fn into_template(self, phases: Vec<TemplatePhase>) -> StorageResult<Template> {
        Ok(Template {
            id: TemplateId::from_uuid(self.id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            name: name("template name", &self.name)?,
            description: description("template description", &self.description)?,
            phases,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TemplatePhaseRow {
    pub(crate) template_id: Uuid,
    id: Uuid,
    name: String,
    description: String,
}

impl TemplatePhaseRow {
    /// The phase, without its tasks yet.
    pub(crate) fn into_phase(self) -> StorageResult<TemplatePhase> {
        Ok(TemplatePhase {
            id: TemplatePhaseId::from_uuid(self.id),
            name: name("template phase name", &self.name)?,
            description: description("template phase description", &self.description)?,
            tasks: Vec::new(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TemplateTaskRow {
    pub(crate) phase_id: Uuid,
    id: Uuid,
    task_key: String,
    title: String,
    description: String,
    owner: String,
    evidence: String,
    priority: String,
    due_offset_days: Option<i32>,
}

impl TemplateTaskRow {
    /// The task, without its checklist, dependencies and survey yet.
    pub(crate) fn into_task(self) -> StorageResult<TemplateTask> {
        Ok(TemplateTask {
            id: TemplateTaskId::from_uuid(self.id),
            key: TaskKey::parse(&self.task_key).map_err(|e| corrupt("template task key", e))?,
            title: title("template task title", &self.title)?,
            description: description("template task description", &self.description)?,
            owner: parse("task owner", &self.owner)?,
            evidence: parse("evidence type", &self.evidence)?,
            priority: parse("priority", &self.priority)?,
            due_offset: day_offset(self.due_offset_days)?,
            checklist: Vec::new(),
            depends_on: Vec::new(),
            survey: Vec::new(),
        })
    }
}

/// A checklist item of a template task (checklist texts have no id of their own there).
#[derive(sqlx::FromRow)]
pub(crate) struct TemplateChecklistRow {
    pub(crate) task_id: Uuid,
    text: String,
}

impl TemplateChecklistRow {
    pub(crate) fn text(&self) -> StorageResult<ItemText> {
        item_text("checklist item", &self.text)
    }
}

/// A dependency edge, of a template task or a portal task.
#[derive(sqlx::FromRow)]
pub(crate) struct DependencyRow {
    pub(crate) task_id: Uuid,
    pub(crate) depends_on_id: Uuid,
}

/// A survey question, of a template task or a portal task.
#[derive(sqlx::FromRow)]
pub(crate) struct SurveyRow {
    pub(crate) task_id: Uuid,
    id: Uuid,
    text: String,
    kind: String,
    options: serde_json::Value,
}

impl TryFrom<SurveyRow> for SurveyQuestion {
    type Error = StorageError;
    fn try_from(r: SurveyRow) -> StorageResult<Self> {
        Ok(Self {
            id: SurveyQuestionId::from_uuid(r.id),
            text: item_text("survey question", &r.text)?,
            kind: parse("survey kind", &r.kind)?,
            options: survey_options(&r.options)?,
        })
    }
}

#[derive(sqlx::FromRow)]
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
            name: name("portal name", &r.name)?,
            status: parse("portal status", &r.status)?,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            activated_at: r.activated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PhaseRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    position: i32,
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
            position: r.position,
            name: name("phase name", &r.name)?,
            description: description("phase description", &r.description)?,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    phase_id: Uuid,
    position: i32,
    title: String,
    description: String,
    owner: String,
    evidence: String,
    priority: String,
    due_offset_days: Option<i32>,
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

impl TryFrom<TaskRow> for Task {
    type Error = StorageError;
    fn try_from(r: TaskRow) -> StorageResult<Self> {
        Ok(Self {
            id: TaskId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            phase_id: PhaseId::from_uuid(r.phase_id),
            position: r.position,
            title: title("task title", &r.title)?,
            description: description("task description", &r.description)?,
            owner: parse("task owner", &r.owner)?,
            evidence: parse("evidence type", &r.evidence)?,
            priority: parse("priority", &r.priority)?,
            due_offset: day_offset(r.due_offset_days)?,
            due_date: r.due_date,
            status: parse("task status", &r.status)?,
            block_reason: opt_reason("block reason", r.block_reason.as_deref())?,
            assignee: r.assignee_id.map(StaffUserId::from_uuid),
            depends_on: Vec::new(),
            checklist: Vec::new(),
            survey: Vec::new(),
            completed_at: r.completed_at,
            completed_by: actor(
                "completed by",
                r.completed_by_kind.as_deref(),
                r.completed_by_id,
                r.completed_by_display,
            )?,
            completion_reason: opt_reason("completion reason", r.completion_reason.as_deref())?,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChecklistRow {
    pub(crate) task_id: Uuid,
    id: Uuid,
    text: String,
    done: bool,
}

impl TryFrom<ChecklistRow> for ChecklistItem {
    type Error = StorageError;
    fn try_from(r: ChecklistRow) -> StorageResult<Self> {
        Ok(Self {
            id: ChecklistItemId::from_uuid(r.id),
            text: item_text("checklist item", &r.text)?,
            done: r.done,
        })
    }
}

#[derive(sqlx::FromRow)]
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
    notification_preferences: serde_json::Value,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StorageError;
    fn try_from(r: ContactRow) -> StorageResult<Self> {
        Ok(Self {
            id: ContactId::from_uuid(r.id),
            tenant_id: TenantId::from_uuid(r.tenant_id),
            portal_id: PortalId::from_uuid(r.portal_id),
            name: name("contact name", &r.name)?,
            email: email("contact email", &r.email)?,
            role: parse("contact role", &r.role)?,
            primary: r.is_primary,
            notifications: serde_json::from_value::<NotificationPreferences>(r.notification_preferences)
                .map_err(|e| corrupt("contact notification preferences", e))?,
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
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
            author: Actor {
                kind: parse("comment author kind", &r.author_kind)?,
                id: r.author_id,
                display: r.author_display,
            },
            body: comment_body("comment body", &r.body)?,
            is_question: r.is_question,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
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
    details: serde_json::Value,
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
            kind: parse("event kind", &r.kind)?,
            actor: Actor {
                kind: parse("actor kind", &r.actor_kind)?,
                id: r.actor_id,
                display: r.actor_display,
            },
            at: r.at,
            summary: r.summary,
            details: r.details,
            erased_by: r.erased_by.map(EventId::from_uuid),
        })
    }
}

/// A queued message as a worker or support reads it: everything but its delivery state, and
/// the attempt it is on.
#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    kind: String,
    recipient: String,
    recipient_name: Option<String>,
    payload: serde_json::Value,
    secret_key_id: Option<String>,
    secret_nonce: Option<Vec<u8>>,
    secret_ciphertext: Option<Vec<u8>>,
    attempts: i32,
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
                    "message secret",
                    "key id, nonce and ciphertext are not all set or all empty",
                ));
            }
        };
        let message = OutboundMessage {
            id: MessageId::from_uuid(self.id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            portal_id: self.portal_id.map(PortalId::from_uuid),
            contact_id: self.contact_id.map(ContactId::from_uuid),
            kind: parse::<MailKind>("message kind", &self.kind)?,
            recipient: email("message recipient", &self.recipient)?,
            recipient_name: self.recipient_name,
            payload: self.payload,
            secret,
            created_at: self.created_at,
        };
        let attempt = u32::try_from(self.attempts).map_err(|e| corrupt("message attempts", e))?;
        Ok((message, attempt))
    }
}

/// A message's delivery state, as staff see it.
#[derive(sqlx::FromRow)]
pub(crate) struct OutboxEntryRow {
    id: Uuid,
    portal_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    kind: String,
    recipient: String,
    status: String,
    attempts: i32,
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
            kind: parse::<MailKind>("message kind", &r.kind)?,
            recipient: email("message recipient", &r.recipient)?,
            status: parse::<MessageStatus>("message status", &r.status)?,
            attempts: u32::try_from(r.attempts).map_err(|e| corrupt("message attempts", e))?,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
        })
    }
}

/// A task row with what places it in the assignee's list: its portal's name and its phase's
/// position. The task's children are added by the caller.
#[derive(sqlx::FromRow)]
pub(crate) struct AssignedTaskRow {
    #[sqlx(flatten)]
    task: TaskRow,
    portal_name: String,
    phase_position: i32,
}

impl TryFrom<AssignedTaskRow> for AssignedTask {
    type Error = StorageError;
    fn try_from(r: AssignedTaskRow) -> StorageResult<Self> {
        Ok(Self {
            portal_name: name("portal name", &r.portal_name)?,
            phase_position: r.phase_position,
            task: r.task.try_into()?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskCountsRow {
    portal_id: Uuid,
    total: i64,
    completed: i64,
}

impl TryFrom<TaskCountsRow> for PortalTaskCounts {
    type Error = StorageError;
    fn try_from(r: TaskCountsRow) -> StorageResult<Self> {
        Ok(Self {
            portal: PortalId::from_uuid(r.portal_id),
            total: u32::try_from(r.total).map_err(|e| corrupt("task count", e))?,
            completed: u32::try_from(r.completed).map_err(|e| corrupt("completed task count", e))?,
        })
    }
}

#[derive(sqlx::FromRow)]
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
            token_hash: TokenHash::from_slice(&r.token_hash).map_err(|e| corrupt("session token hash", e))?,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            user_id: StaffUserId::from_uuid(r.user_id),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// Converts every row, stopping at the first that does not read back.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> StorageResult<Vec<T>>
where
    T: TryFrom<R, Error = StorageError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// A row of the reminder ledger.
#[derive(sqlx::FromRow)]
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
            reason: parse::<ReminderReason>("reminder reason", &r.reason)?,
            due_date: r.due_date,
            sent_at: r.sent_at,
        })
    }
}

/// An item waiting for a contact's daily digest.
#[derive(sqlx::FromRow)]
pub(crate) struct DigestItemRow {
    tenant_id: Uuid,
    id: Uuid,
    portal_id: Uuid,
    contact_id: Uuid,
    topic: String,
    payload: serde_json::Value,
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
            topic: parse::<Topic>("digest item topic", &r.topic)?,
            payload: r.payload,
            created_at: r.created_at,
        })
    }
}

/// A contact with digest items waiting.
#[derive(sqlx::FromRow)]
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
