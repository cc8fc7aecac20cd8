//! Tasks of a portal (TSK-1 to TSK-8): statuses, dependencies, due state, checklist, comments.
//!
//! # Status rules
//!
//! A task's status is one of [`TaskStatus`]. For a task that is not `completed` the status is
//! *derived* in part: it is `blocked` exactly when it has a dependency that is not completed or
//! a manual block (a reason given by staff); otherwise it is `pending` or `in_progress`. A task
//! can only become `completed` while every dependency is completed and it has no manual block.
//!
//! Reopening a completed task (active portals only) makes it `pending` again and blocks every
//! dependent that is not completed. Dependents that are already `completed` stay completed: their
//! evidence was given and stands, and the portal's progress says honestly that the reopened task
//! is open again. When the reopened task is completed again its blocked dependents return to
//! `pending`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::activity::Actor;
use crate::id::{ChecklistItemId, CommentId, PhaseId, PortalId, StaffUserId, SurveyQuestionId, TaskId, TenantId};
use crate::value::{CommentBody, DayOffset, Description, ItemText, Priority, Reason, Title};

/// Status of a task (TSK-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not yet started.
    Pending,
    /// Work under way.
    InProgress,
    /// Done.
    Completed,
    /// Waiting on a dependency or blocked by hand.
    Blocked,
}

crate::string_enum!(TaskStatus {
    Pending => "pending",
    InProgress => "in_progress",
    Completed => "completed",
    Blocked => "blocked",
});

/// Who is to do a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskOwner {
    /// The MSP's staff.
    Msp,
    /// The client's contacts.
    Client,
}

crate::string_enum!(TaskOwner { Msp => "msp", Client => "client" });

/// What a task collects as evidence (TSK-6). The evidence itself comes with later work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EvidenceType {
    /// A signature, optionally over a document.
    Signature,
    /// Named secret fields, encrypted at rest.
    Credentials,
    /// One or more uploaded documents.
    FileUpload,
    /// A scheduled meeting.
    Meeting,
    /// Answers to the task's survey questions.
    Survey,
    /// The completion itself, as an acknowledgement.
    Acknowledgement,
    /// Nothing beyond the completion.
    None,
}

crate::string_enum!(EvidenceType {
    Signature => "signature",
    Credentials => "credentials",
    FileUpload => "file_upload",
    Meeting => "meeting",
    Survey => "survey",
    Acknowledgement => "acknowledgement",
    None => "none",
});

/// The kind of a survey question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    /// Free text.
    Text,
    /// One of the options.
    SingleChoice,
    /// Any of the options.
    MultipleChoice,
    /// Yes or no.
    YesNo,
}

crate::string_enum!(SurveyKind {
    Text => "text",
    SingleChoice => "single_choice",
    MultipleChoice => "multiple_choice",
    YesNo => "yes_no",
});

/// A survey question on a task (ONB-1, TSK-6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SurveyQuestion {
    /// Id.
    pub id: SurveyQuestionId,
    /// The question.
    pub text: ItemText,
    /// Its kind.
    pub kind: SurveyKind,
    /// The options of a choice question; empty otherwise.
    pub options: Vec<ItemText>,
}

/// A checklist item (TSK-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChecklistItem {
    /// Id.
    pub id: ChecklistItemId,
    /// Text.
    pub text: ItemText,
    /// Whether it is done.
    pub done: bool,
}

/// Due state of a task in the tenant's time zone (TSK-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DueState {
    /// Due more than 3 days from today, or completed.
    Ok,
    /// Due today or within the next 3 days.
    DueSoon,
    /// Due before today and not completed.
    Overdue,
}

crate::string_enum!(DueState { Ok => "ok", DueSoon => "due_soon", Overdue => "overdue" });

/// How many days ahead counts as "due soon".
pub const DUE_SOON_DAYS: i64 = 3;

/// Due state of a task with the given due date and status on `today` (a date in the tenant's
/// zone); `None` without a due date.
#[must_use]
pub fn due_state(due: Option<NaiveDate>, status: TaskStatus, today: NaiveDate) -> Option<DueState> {
    let due = due?;
    if status == TaskStatus::Completed {
        return Some(DueState::Ok);
    }
    let days_left = (due - today).num_days();
    Some(if days_left < 0 {
        DueState::Overdue
    } else if days_left <= DUE_SOON_DAYS {
        DueState::DueSoon
    } else {
        DueState::Ok
    })
}

/// A task of a portal, copied from a template task or added in draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// The phase it sits in.
    pub phase_id: PhaseId,
    /// Order within the phase, from 0.
    pub position: i32,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// MSP or client.
    pub owner: TaskOwner,
    /// Evidence type.
    pub evidence: EvidenceType,
    /// Priority.
    pub priority: Priority,
    /// Days after activation it falls due.
    pub due_offset: Option<DayOffset>,
    /// The due date, set at activation from the offset or by staff.
    pub due_date: Option<NaiveDate>,
    /// Status (see the module docs for the rules).
    pub status: TaskStatus,
    /// The reason of a manual block, when staff blocked it by hand.
    pub block_reason: Option<Reason>,
    /// The staff user it is assigned to.
    pub assignee: Option<StaffUserId>,
    /// Tasks of the same portal that must be completed first.
    pub depends_on: Vec<TaskId>,
    /// Ordered checklist.
    pub checklist: Vec<ChecklistItem>,
    /// Survey questions.
    pub survey: Vec<SurveyQuestion>,
    /// When it was completed, while it is.
    pub completed_at: Option<DateTime<Utc>>,
    /// Who completed it, while it is.
    pub completed_by: Option<Actor>,
    /// The reason staff gave for completing a client task.
    pub completion_reason: Option<Reason>,
    /// Compare-and-set version: a task is edited independently of its siblings.
    pub version: i64,
}

impl Task {
    /// Whether the task is completed.
    #[must_use]
    pub fn is_completed(&self) -> bool {
        self.status == TaskStatus::Completed
    }
}

/// A comment on a task (TSK-7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comment {
    /// Id.
    pub id: CommentId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// The task.
    pub task_id: TaskId,
    /// Who wrote it.
    pub author: Actor,
    /// Text.
    pub body: CommentBody,
    /// Marked as a question for the other side.
    pub is_question: bool,
    /// When.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn due_state_boundaries() {
        let today = d(2026, 3, 10);
        let s = TaskStatus::Pending;
        assert_eq!(due_state(None, s, today), None);
        assert_eq!(due_state(Some(d(2026, 3, 9)), s, today), Some(DueState::Overdue));
        assert_eq!(due_state(Some(d(2026, 3, 10)), s, today), Some(DueState::DueSoon));
        assert_eq!(due_state(Some(d(2026, 3, 13)), s, today), Some(DueState::DueSoon));
        assert_eq!(due_state(Some(d(2026, 3, 14)), s, today), Some(DueState::Ok));
        assert_eq!(
            due_state(Some(d(2026, 3, 1)), TaskStatus::Completed, today),
            Some(DueState::Ok)
        );
    }
}
