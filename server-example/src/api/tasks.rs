//! Tasks of a portal (TSK-1 to TSK-8): reading and editing one task, its status actions,
//! assignment and bulk reassignment, checklist items, comments, and the signed-in staff user's
//! open tasks (DASH-2).
//!
//! Every task update takes `If-Match` with the task's own version (its `ETag`): tasks are edited
//! independently of their siblings and of the portal row.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use portal_core::commands;
use portal_core::commands::draft::TaskPatch;
use portal_core::error::CommandError;
use portal_core::id::{ChecklistItemId, CommentId, PortalId, StaffUserId, TaskId};
use portal_core::outcome::{Outcome, Write};
use portal_core::policy::{Action, Principal, Resource, authorize};
use portal_core::portal::PortalState;
use portal_core::service::ServiceError;
use portal_core::storage::{AssignedTask, PageRequest, StorageError};
use portal_core::task::{Comment, Task};
use portal_core::value::{CommentBody, Reason};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_task, update_task))
        .routes(routes!(start_task))
        .routes(routes!(complete_task))
        .routes(routes!(reopen_task))
        .routes(routes!(block_task))
        .routes(routes!(unblock_task))
        .routes(routes!(assign_task))
        .routes(routes!(bulk_reassign))
        .routes(routes!(set_checklist_item))
        .routes(routes!(list_comments, add_comment))
        .routes(routes!(my_tasks))
}

// ---------------------------------------------------------------------------------------------
// Shared with `portals.rs`.

/// A 404 `not_found` answer, worded as every other "not found".
pub(super) fn not_found(entity: &'static str, id: uuid::Uuid) -> ApiError {
    ApiError::from(ServiceError::from(CommandError::NotFound { entity, id }))
}

/// A 500 for a committed outcome that lacks the row the command always writes.
pub(super) fn missing_write(what: &str) -> ApiError {
    ApiError::from(ServiceError::from(StorageError::Invariant(format!(
        "the committed outcome has no {what}"
    ))))
}

/// The task as `outcome` wrote it or, when the command left it unchanged, as it is now.
pub(super) async fn task_after(
    state: &AppState,
    principal: &Principal,
    portal: PortalId,
    id: TaskId,
    outcome: &Outcome,
) -> Result<Task, ApiError> {
    let written = outcome.writes.iter().find_map(|w| match w {
        Write::InsertTask(t) | Write::UpdateTask { task: t, .. } if t.id == id => Some(Task::clone(t)),
        _ => None,
    });
    if let Some(t) = written {
        return Ok(t);
    }
    let current = state.engine.load_portal(principal, portal).await?;
    current.task(id).cloned().ok_or_else(|| not_found("task", id.as_uuid()))
}

/// The task of a loaded portal that the principal may read. `Engine::load_portal` already checked
/// `read_portal`; this adds the task-level `read_task` check of the policy (no `Engine` method
/// reads one task).
fn readable_task(principal: &Principal, portal: &PortalState, id: TaskId) -> Result<Task, ApiError> {
    let task = portal.task(id).ok_or_else(|| not_found("task", id.as_uuid()))?;
    let p = &portal.portal;
    let resource = Resource::Task {
        tenant: p.tenant_id,
        company: p.company_id,
        portal: p.id,
        status: p.status,
        owner: task.owner,
    };
    // Another tenant or out of scope answers 404 like a missing id (see `crate::error`).
    authorize(principal, Action::ReadTask, &resource)
        .map_err(|e| ApiError::from(ServiceError::from(CommandError::from(e))))?;
    Ok(task.clone())
}

/// A present-but-nullable field: `null` is `None`, a missing field is refused.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

/// Completing a task; staff completing a client-owned task must give a reason (TSK-1).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(example = json!({ "reason": "The client confirmed by phone on 3 March." }))]
pub struct CompleteRequest {
    /// Why staff complete it; required when the task is client-owned, recorded with it.
    #[serde(default)]
    pub reason: Option<Reason>,
}

/// Blocking a task by hand.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "reason": "Waiting for the client's new firewall to arrive." }))]
pub struct BlockRequest {
    /// Why it is blocked; shown on the task until it is unblocked.
    pub reason: Reason,
}

/// The staff user a task is assigned to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "assignee": "01963a4e-7c1b-7000-8000-0000000000a1" }))]
pub struct AssigneeRequest {
    /// An active staff user of the tenant, or `null` to unassign. Required.
    #[serde(deserialize_with = "nullable")]
    #[schema(required = true)]
    pub assignee: Option<StaffUserId>,
}

/// Many tasks of one portal to reassign, all or nothing (TSK-4).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "tasks": ["01963a4e-7c1b-7000-8000-0000000000c1", "01963a4e-7c1b-7000-8000-0000000000c2"],
    "assignee": "01963a4e-7c1b-7000-8000-0000000000a1"
}))]
pub struct BulkReassignRequest {
    /// The tasks, each once, all of this portal (1 to 2,000).
    pub tasks: Vec<TaskId>,
    /// An active staff user of the tenant, or `null` to unassign them all. Required.
    #[serde(deserialize_with = "nullable")]
    #[schema(required = true)]
    pub assignee: Option<StaffUserId>,
}

/// A checklist item's done flag.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[schema(example = json!({ "done": true }))]
pub struct ChecklistRequest {
    /// Whether the item is done.
    pub done: bool,
}

/// A new comment on a task (TSK-7).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "body": "Which VPN client do your laptops use?", "is_question": true }))]
pub struct CommentRequest {
    /// The text.
    pub body: CommentBody,
    /// Mark it as a question for the other side.
    #[serde(default)]
    pub is_question: bool,
}

// ---------------------------------------------------------------------------------------------
// One task.

/// A task (TSK-3).
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
    ),
    responses(
        (status = 200, description = "The task.", body = Task, headers(("ETag" = String, description = "The task's version."))),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, or no such task in it (`not_found`).", body = ErrorBody),
    )
)]
async fn get_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
) -> Result<Tagged<Task>, ApiError> {
    let loaded = state.engine.load_portal(&staff.principal, portal).await?;
    let t = readable_task(&staff.principal, &loaded, task)?;
    Ok(Tagged(t.version, t))
}

/// Edits a task (ONB-4). Every field is optional; an absent field stays as it is. In a `draft`
/// portal every field may change; in an `active` one only `title`, `description`, `priority` and
/// `due_date`; in any other status nothing (409 `wrong_portal_status`). `due_date: null` and
/// `due_offset: null` clear them. The dependency graph is re-checked.
#[utoipa::path(
    patch,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body(content = TaskPatch, example = json!({ "title": "Collect the Wi-Fi passwords", "priority": "high", "due_date": "2026-04-01" })),
    responses(
        (status = 200, description = "The changed task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "A structural field outside `draft`, or any field outside `draft`/`active` (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or a bad graph or list (`dependency_cycle`, `unknown_dependency`, `self_dependency`, `too_many`, `invalid_value`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
    Json(patch): Json<TaskPatch>,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::draft::update_task(p, ctx, s, task, version, &patch)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Status actions (TSK-1). Each needs an `active` portal.

/// Starts a task: `pending → in_progress`.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/start",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    responses(
        (status = 200, description = "The started task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`), the task is blocked (`task_blocked`) or not `pending` (`illegal_task_move`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn start_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::task::start_task(p, ctx, s, task, version)
    })
    .await
}

/// Completes a task (`pending` or `in_progress` → `completed`). Only while every dependency is
/// completed and there is no manual block. Staff completing a **client-owned** task must give a
/// `reason` (422 `reason_required` without one); it is recorded on the task and in the log.
/// Dependents whose last open dependency this was return to `pending`. Send `{}` when no reason
/// is needed.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/complete",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "The completed task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`), the task is blocked (`task_blocked`) or already completed (`illegal_task_move`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A client-owned task without a reason (`reason_required`), or a bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn complete_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<CompleteRequest>,
) -> Result<Tagged<Task>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .complete_task(p, portal, task, version, request.reason)
        .await?;
    let t = task_after(&state, p, portal, task, &outcome).await?;
    Ok(Tagged(t.version, t))
}

/// Reopens a completed task: it becomes `pending` (or `blocked` when one of its own dependencies
/// is open), and its dependents that are not completed become `blocked`. Completed dependents
/// stay completed.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/reopen",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    responses(
        (status = 200, description = "The reopened task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`) or the task is not completed (`illegal_task_move`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn reopen_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::task::reopen_task(p, ctx, s, task, version)
    })
    .await
}

/// Blocks a task by hand with a reason. The task is `blocked` until the block is lifted (and its
/// dependencies are completed).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/block",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body = BlockRequest,
    responses(
        (status = 200, description = "The blocked task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`) or the task is completed (`illegal_task_move`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A missing or bad reason (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn block_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<BlockRequest>,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::task::block_task(p, ctx, s, task, version, &request.reason)
    })
    .await
}

/// Lifts a manual block. The task stays `blocked` while a dependency is open.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/unblock",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    responses(
        (status = 200, description = "The task without its manual block.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`) or the task is not blocked by hand (`illegal_task_move`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn unblock_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::task::unblock_task(p, ctx, s, task, version)
    })
    .await
}

/// Runs a task command under the portal's lock and answers the task as the command left it,
/// tagged with its new version.
async fn task_command<F>(
    state: &AppState,
    staff: &Staff,
    portal: PortalId,
    task: TaskId,
    command: F,
) -> Result<Tagged<Task>, ApiError>
where
    F: Fn(&Principal, &mut portal_core::commands::Ctx, &PortalState) -> Result<Outcome, CommandError> + Send + Sync,
{
    let p = &staff.principal;
    let outcome = state
        .engine
        .portal_command(p, portal, |ctx, s| command(p, ctx, s))
        .await?;
    let t = task_after(state, p, portal, task, &outcome).await?;
    Ok(Tagged(t.version, t))
}

// ---------------------------------------------------------------------------------------------
// Assignment (TSK-4).

/// Assigns a task to a staff user, or unassigns it (`"assignee": null`). Draft or active portals.
#[utoipa::path(
    put,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/assignee",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body = AssigneeRequest,
    responses(
        (status = 200, description = "The task with its new assignee.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task, or no active staff user with that id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is neither `draft` nor `active` (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body, e.g. no `assignee` field (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn assign_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<AssigneeRequest>,
) -> Result<Tagged<Task>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .assign_task(p, portal, task, version, request.assignee)
        .await?;
    let t = task_after(&state, p, portal, task, &outcome).await?;
    Ok(Tagged(t.version, t))
}

/// Reassigns many tasks of one portal at once, all or nothing (TSK-4): an unknown, repeated or
/// foreign task id refuses the whole request and nothing changes. No `If-Match`: the request
/// names the outcome it wants for every task, whatever their versions. Answers the tasks, in
/// the order asked, each with its new version.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/bulk-reassign",
    tag = "tasks",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    request_body = BulkReassignRequest,
    responses(
        (status = 200, description = "The reassigned tasks, in the order asked.", body = Vec<Task>),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, a task not in it, or no active staff user with that id (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is neither `draft` nor `active` (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "No tasks (`empty_list`), a task twice (`duplicate_id`), too many (`too_many`), or a bad body (`invalid_body`).", body = ErrorBody),
    )
)]
async fn bulk_reassign(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    Json(request): Json<BulkReassignRequest>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .bulk_reassign(p, portal, &request.tasks, request.assignee)
        .await?;
    let written: Vec<&Task> = outcome
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::UpdateTask { task, .. } => Some(&**task),
            _ => None,
        })
        .collect();
    let mut current: Option<PortalState> = None;
    let mut tasks = Vec::with_capacity(request.tasks.len());
    for id in &request.tasks {
        if let Some(t) = written.iter().find(|t| t.id == *id) {
            tasks.push(Task::clone(t));
            continue;
        }
        // Unchanged (it already had this assignee): answer it as it is now.
        if current.is_none() {
            current = Some(state.engine.load_portal(p, portal).await?);
        }
        let t = current
            .as_ref()
            .and_then(|s| s.task(*id))
            .ok_or_else(|| not_found("task", id.as_uuid()))?;
        tasks.push(t.clone());
    }
    Ok(Json(tasks))
}

// ---------------------------------------------------------------------------------------------
// Checklist (TSK-8) and comments (TSK-7).

/// Ticks or unticks a checklist item of a task in an active portal.
#[utoipa::path(
    put,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/checklist/{item_id}",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("item_id" = ChecklistItemId, Path, description = "The checklist item."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body = ChecklistRequest,
    responses(
        (status = 200, description = "The task with the item changed.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, task or checklist item (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn set_checklist_item(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task, item)): Path<(PortalId, TaskId, ChecklistItemId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<ChecklistRequest>,
) -> Result<Tagged<Task>, ApiError> {
    task_command(&state, &staff, portal, task, |p, ctx, s| {
        commands::task::set_checklist_item(p, ctx, s, task, version, item, request.done)
    })
    .await
}

/// The keyset cursor of a task's comments: creation time, then id.
pub(super) type CommentCursor = (DateTime<Utc>, CommentId);

/// One page of a thread: the comments after the cursor, oldest first.
pub(super) fn comment_page(mut comments: Vec<Comment>, request: &PageRequest<CommentCursor>) -> Vec<Comment> {
    comments.sort_by_key(|c| (c.created_at, c.id));
    comments
        .into_iter()
        .filter(|c| request.after.is_none_or(|after| (c.created_at, c.id) > after))
        .take(request.limit)
        .collect()
}

/// The comments of a task, oldest first, keyset-paged (`?limit=&cursor=`).
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/comments",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of the task's comments, oldest first.", body = Page<Comment>),
        (status = 400, description = "A bad id, query or cursor (`invalid_path`, `invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
    )
)]
async fn list_comments(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Comment>>, ApiError> {
    let request = page.request::<CommentCursor>()?;
    let all = state.engine.list_comments(&staff.principal, portal, task).await?;
    let items = comment_page(all, &request);
    Ok(Json(page.page(items, |c| (c.created_at, c.id))))
}

/// Adds a comment to a task's thread, optionally marked as a question (TSK-7); recorded in the
/// activity log. Not on an `archived` portal.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/comments",
    tag = "tasks",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
    ),
    request_body = CommentRequest,
    responses(
        (status = 201, description = "The comment.", body = Comment),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is archived (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
    )
)]
async fn add_comment(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    Json(request): Json<CommentRequest>,
) -> Result<impl IntoResponse, ApiError> {
    post_comment(&state, &staff.principal, portal, task, &request).await
}

/// Adds a comment as `principal` (staff or contact) and answers it with 201.
pub(super) async fn post_comment(
    state: &AppState,
    principal: &Principal,
    portal: PortalId,
    task: TaskId,
    request: &CommentRequest,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let outcome = state
        .engine
        .portal_command(principal, portal, |ctx, s| {
            commands::task::add_comment(principal, ctx, s, task, request.body.clone(), request.is_question)
                .map(|(_, o)| o)
        })
        .await?;
    let comment = outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::InsertComment(c) => Some(c.clone()),
            _ => None,
        })
        .ok_or_else(|| missing_write("comment"))?;
    Ok((StatusCode::CREATED, Json(comment)))
}

// ---------------------------------------------------------------------------------------------
// DASH-2.

/// "My onboarding tasks" (DASH-2): the signed-in staff user's open (not completed) tasks across
/// all active portals, ordered by phase position, then task position, then task id.
#[utoipa::path(
    get,
    path = "/api/v1/me/tasks",
    tag = "tasks",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the user's open tasks.", body = Page<AssignedTask>),
        (status = 400, description = "A bad query or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn my_tasks(
    State(state): State<AppState>,
    staff: Staff,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<AssignedTask>>, ApiError> {
    let items = state.engine.my_tasks(&staff.principal, page.request()?).await?;
    Ok(Json(page.page(items, AssignedTask::cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::activity::{Actor, ActorKind};
    use portal_core::id::TenantId;

    fn comment(n: u128, at: i64) -> Comment {
        Comment {
            id: CommentId::from_uuid(uuid::Uuid::from_u128(n)),
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            portal_id: PortalId::from_uuid(uuid::Uuid::from_u128(2)),
            task_id: TaskId::from_uuid(uuid::Uuid::from_u128(3)),
            author: Actor {
                kind: ActorKind::System,
                id: None,
                display: None,
            },
            body: CommentBody::parse("hi").expect("a valid body"),
            is_question: false,
            created_at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
        }
    }

    fn ids(cs: &[Comment]) -> Vec<u128> {
        cs.iter().map(|c| c.id.as_uuid().as_u128()).collect()
    }

    #[test]
    fn comment_pages_walk_the_thread_oldest_first() {
        // Out of order, and two at the same second (ordered by id).
        let all = vec![comment(13, 30), comment(11, 10), comment(12, 20), comment(14, 20)];
        let first = comment_page(all.clone(), &PageRequest { after: None, limit: 2 });
        assert_eq!(ids(&first), [11, 12]);
        let last = &first[1];
        let second = comment_page(
            all.clone(),
            &PageRequest {
                after: Some((last.created_at, last.id)),
                limit: 2,
            },
        );
        assert_eq!(ids(&second), [14, 13]);
        let after_end = comment_page(
            all,
            &PageRequest {
                after: Some((second[1].created_at, second[1].id)),
                limit: 2,
            },
        );
        assert!(after_end.is_empty());
    }

    #[test]
    fn an_assignee_must_be_given_but_may_be_null() {
        let set: AssigneeRequest =
            serde_json::from_str(r#"{"assignee": "01963a4e-7c1b-7000-8000-0000000000a1"}"#).expect("parses");
        assert!(set.assignee.is_some());
        let unset: AssigneeRequest = serde_json::from_str(r#"{"assignee": null}"#).expect("parses");
        assert!(unset.assignee.is_none());
        assert!(serde_json::from_str::<AssigneeRequest>("{}").is_err());
        assert!(serde_json::from_str::<BulkReassignRequest>(r#"{"tasks": []}"#).is_err());
    }
}
