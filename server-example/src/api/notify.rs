//! Mail staff send about an active portal (MAIL-1, TSK-6): a summary of every task or of one
//! phase, a reminder about one task, a meeting invitation (ICS) for a `meeting` task. Each is
//! queued in the outbox with a `notification_sent` event and delivered by the outbox worker;
//! `GET /api/v1/outbox` shows its delivery.

use axum::extract::State;
use axum::http::StatusCode;
use portal_core::commands::notify::MeetingRequest;
use portal_core::id::{ContactId, MessageId, PhaseId, PortalId, TaskId};
use portal_core::mail::MailKind;
use portal_core::outcome::Outcome;
use portal_core::value::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_task_summary))
        .routes(routes!(send_task_reminder))
        .routes(routes!(send_meeting_invitation))
}

/// Who gets a summary, and of what.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummaryRequest {
    /// The contacts to write to; every contact of the portal when left out.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub contacts: Option<Vec<ContactId>>,
    /// Only the tasks of this phase (a phase summary); every task when left out.
    #[serde(default)]
    pub phase_id: Option<PhaseId>,
}

/// Who gets a reminder.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderRequest {
    /// The contacts to write to; every contact of the portal when left out.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub contacts: Option<Vec<ContactId>>,
}

/// A meeting and who is invited.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingInvitationRequest {
    /// The meeting.
    pub meeting: MeetingRequest,
    /// The contacts to invite; every contact of the portal when left out.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub contacts: Option<Vec<ContactId>>,
}

/// One queued message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueuedMessage {
    /// The message (see `GET /api/v1/outbox`).
    pub id: MessageId,
    /// Which message.
    pub kind: MailKind,
    /// To whom.
    pub recipient: Email,
}

/// The messages a request queued.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queued {
    /// One per recipient.
    pub messages: Vec<QueuedMessage>,
}

fn queued(outcome: &Outcome) -> (StatusCode, Json<Queued>) {
    let messages = outcome
        .messages
        .iter()
        .map(|m| QueuedMessage {
            id: m.id,
            kind: m.kind,
            recipient: m.recipient.clone(),
        })
        .collect();
    (StatusCode::ACCEPTED, Json(Queued { messages }))
}

/// Too many recipients in one request.
fn check_contacts(contacts: Option<&Vec<ContactId>>) -> Result<(), ApiError> {
    match contacts {
        Some(c) if c.len() > 100 => Err(ApiError::Service(
            portal_core::CommandError::TooMany {
                what: "contacts",
                max: 100,
                actual: c.len(),
            }
            .into(),
        )),
        _ => Ok(()),
    }
}

/// Mails a summary of every task (status, due date) of an active portal, or of one phase, to the
/// chosen contacts (all by default).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/notifications/task-summary",
    tag = "mail",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    request_body = SummaryRequest,
    responses(
        (status = 202, description = "Queued, one message per contact.", body = Queued),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, phase or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not active (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "An empty or too long contact list (`empty_list`, `too_many`).", body = ErrorBody),
    )
)]
async fn send_task_summary(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    Json(request): Json<SummaryRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    check_contacts(request.contacts.as_ref())?;
    let outcome = state
        .engine
        .send_task_summary(&staff.principal, portal, request.phase_id, request.contacts.as_deref())
        .await?;
    Ok(queued(&outcome))
}

/// Mails a reminder about one task of an active portal to the chosen contacts (all by default).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/reminders",
    tag = "mail",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
    ),
    request_body = ReminderRequest,
    responses(
        (status = 202, description = "Queued, one message per contact.", body = Queued),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, task or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not active (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "An empty or too long contact list (`empty_list`, `too_many`).", body = ErrorBody),
    )
)]
async fn send_task_reminder(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    Json(request): Json<ReminderRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    check_contacts(request.contacts.as_ref())?;
    let outcome = state
        .engine
        .send_task_reminder(&staff.principal, portal, task, request.contacts.as_deref())
        .await?;
    Ok(queued(&outcome))
}

/// Invites the chosen contacts (all by default) to the meeting of a `meeting` task, with an ICS
/// invitation (RFC 5545, `METHOD:REQUEST`, one stable UID per task and a larger SEQUENCE on each
/// send, so a moved meeting updates the calendar entry); `"cancelled": true` cancels it.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/meeting",
    tag = "mail",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task (with `meeting` evidence)."),
    ),
    request_body = MeetingInvitationRequest,
    responses(
        (status = 202, description = "Queued, one invitation per contact.", body = Queued),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, task or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not active (`wrong_portal_status`) or the task has no `meeting` evidence (`wrong_evidence_type`).", body = ErrorBody),
        (status = 422, description = "A bad meeting (duration, time zone, texts) or contact list (`invalid_value`, `empty_list`, `too_many`).", body = ErrorBody),
    )
)]
async fn send_meeting_invitation(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    Json(request): Json<MeetingInvitationRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    check_contacts(request.contacts.as_ref())?;
    let outcome = state
        .engine
        .send_meeting_invitation(
            &staff.principal,
            portal,
            task,
            &request.meeting,
            request.contacts.as_deref(),
        )
        .await?;
    Ok(queued(&outcome))
}
