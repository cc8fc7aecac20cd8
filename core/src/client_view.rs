//! What a client contact sees of its portal (BYD-4, TSK-5): the phases, the tasks with their
//! status, due date and due state, checklists and survey questions, and the progress, but none
//! of the MSP's internals: no assignees, no staff ids, no block or completion reasons given by
//! staff, no other contacts' addresses. Each task says whether the contact may act on it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{PhaseId, PortalId, TaskId};
use crate::lifecycle::PortalStatus;
use crate::portal::PortalState;
use crate::progress::{PhaseProgress, Progress};
use crate::task::{ChecklistItem, DueState, EvidenceType, SurveyQuestion, Task, TaskOwner, TaskStatus, due_state};
use crate::value::{Description, Name, Priority, Title};

/// A task as a contact sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientTask {
    /// Id.
    pub id: TaskId,
    /// Its phase.
    pub phase_id: PhaseId,
    /// Order within the phase.
    pub position: i32,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Who does it: the client or the MSP.
    pub owner: TaskOwner,
    /// What completes it.
    pub evidence: EvidenceType,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: TaskStatus,
    /// Due date, in the tenant's time zone.
    pub due_date: Option<NaiveDate>,
    /// `overdue`, `due_soon` or `ok` as of today (TSK-2); `null` without a due date.
    pub due_state: Option<DueState>,
    /// The tasks it waits for.
    pub depends_on: Vec<TaskId>,
    /// Checklist items.
    pub checklist: Vec<ChecklistItem>,
    /// Survey questions.
    pub survey: Vec<SurveyQuestion>,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Whether the contact may work on it now: a client task of an active portal.
    pub actionable: bool,
    /// Its version, for `If-Match` on the contact's actions.
    pub version: i64,
}

impl ClientTask {
    /// The contact's view of `task` in a portal of `status`, as of `today`.
    #[must_use]
    pub fn of(task: &Task, status: PortalStatus, today: NaiveDate) -> Self {
        Self {
            id: task.id,
            phase_id: task.phase_id,
            position: task.position,
            title: task.title.clone(),
            description: task.description.clone(),
            owner: task.owner,
            evidence: task.evidence,
            priority: task.priority,
            status: task.status,
            due_date: task.due_date,
            due_state: due_state(task.due_date, task.status, today),
            depends_on: task.depends_on.clone(),
            checklist: task.checklist.clone(),
            survey: task.survey.clone(),
            completed_at: task.completed_at,
            actionable: status == PortalStatus::Active
                && task.owner == TaskOwner::Client
                && task.status != TaskStatus::Completed,
            version: task.version,
        }
    }
}

/// A phase as a contact sees it, with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientPhase {
    /// Id.
    pub id: PhaseId,
    /// Name.
    pub name: Name,
    /// Description.
    pub description: Description,
    /// Its progress.
    pub progress: Option<PhaseProgress>,
}

/// A portal as a contact sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientPortal {
    /// Id.
    pub id: PortalId,
    /// Name.
    pub name: Name,
    /// Lifecycle status (a contact reaches only `active` portals).
    pub status: PortalStatus,
    /// The client company's name.
    pub company_name: Name,
    /// The phases in order.
    pub phases: Vec<ClientPhase>,
    /// Every task in order: by phase, then position.
    pub tasks: Vec<ClientTask>,
    /// Progress of the whole portal.
    pub progress: Progress,
    /// The portal's version.
    pub version: i64,
}

impl ClientPortal {
    /// The contact's view of `state` with its `progress` (reckoned for `progress.as_of`).
    #[must_use]
    pub fn of(state: &PortalState, progress: Progress, company_name: Name) -> Self {
        let today = progress.as_of;
        let mut phases: Vec<&crate::portal::Phase> = state.phases.iter().collect();
        phases.sort_by_key(|p| p.position);
        let phase_pos = |t: &Task| phases.iter().position(|p| p.id == t.phase_id).unwrap_or(usize::MAX);
        let mut tasks: Vec<&Task> = state.tasks.iter().collect();
        tasks.sort_by_key(|t| (phase_pos(t), t.position));
        Self {
            id: state.portal.id,
            name: state.portal.name.clone(),
            status: state.portal.status,
            company_name,
            phases: phases
                .iter()
                .map(|p| ClientPhase {
                    id: p.id,
                    name: p.name.clone(),
                    description: p.description.clone(),
                    progress: progress.phases.iter().find(|x| x.phase_id == p.id).cloned(),
                })
                .collect(),
            tasks: tasks
                .into_iter()
                .map(|t| ClientTask::of(t, state.portal.status, today))
                .collect(),
            progress,
            version: state.portal.version,
        }
    }
}
