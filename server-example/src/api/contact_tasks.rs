//! A contact's work on its portal (BYD-4, TSK-5, TSK-7, TSK-8), with the contact session only:
//! read and add comments and questions on any task of the portal, tick checklist items and
//! complete acknowledgement tasks of client-owned tasks while the portal is active. The contact
//! cannot change ownership, assignment, due dates or dependencies: there is no route for it,
//! and the policy refuses the contact every staff action.

use axum::extract::State;
use axum::response::IntoResponse;
use portal_core::client_view::ClientTask;
use portal_core::commands;
use portal_core::id::{ChecklistItemId, TaskId};
use portal_core::task::Comment;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use super::tasks::{ChecklistRequest, CommentCursor, CommentRequest, comment_page, post_comment, task_after};
use crate::app::AppState;
use crate::auth::Contact;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_comments, add_comment))
        .routes(routes!(set_checklist_item))
        .routes(routes!(complete_task))
}

/// The contact's view of the task after `outcome`.
async fn client_task(
    state: &AppState,
    contact: &Contact,
    task: TaskId,
    outcome: &portal_core::Outcome,
) -> Result<Tagged<ClientTask>, ApiError> {
    let t = task_after(state, &contact.principal, contact.portal_id, task, outcome).await?;
    let tz = state
        .storage
        .get_tenant(contact.principal.tenant_id())
        .await
        .map_err(|e| ApiError::Service(e.into()))?
        .map_or_else(
            || portal_core::tenant::TenantSettings::default().time_zone,
            |t| t.settings.time_zone,
        );
    let view = ClientTask::of(
        &t,
        portal_core::lifecycle::PortalStatus::Active,
        tz.today(state.clock.now()),
    );
    Ok(Tagged(view.version, view))
}

/// The comments of a task of the contact's portal, oldest first, keyset-paged.
#[utoipa::path(
    get,
    path = "/api/v1/contact/tasks/{task_id}/comments",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    params(("task_id" = TaskId, Path, description = "The task."), PageQuery),
    responses(
        (status = 200, description = "A page of the thread, oldest first.", body = Page<Comment>),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 404, description = "No such task in the contact's portal (`not_found`).", body = ErrorBody),
    )
)]
async fn list_comments(
    State(state): State<AppState>,
    contact: Contact,
    Path(task): Path<TaskId>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Comment>>, ApiError> {
    let request = page.request::<CommentCursor>()?;
    let all = state
        .engine
        .list_comments(&contact.principal, contact.portal_id, task)
        .await?;
    let items = comment_page(all, &request);
    Ok(Json(page.page(items, |c| (c.created_at, c.id))))
}

/// Adds a comment, or a question (`is_question`), to a task of the contact's portal (TSK-7).
#[utoipa::path(
    post,
    path = "/api/v1/contact/tasks/{task_id}/comments",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    params(("task_id" = TaskId, Path, description = "The task.")),
    request_body = CommentRequest,
    responses(
        (status = 201, description = "The comment.", body = Comment),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 403, description = "A cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
        (status = 404, description = "No such task in the contact's portal (`not_found`).", body = ErrorBody),
    )
)]
async fn add_comment(
    State(state): State<AppState>,
    contact: Contact,
    Path(task): Path<TaskId>,
    Json(request): Json<CommentRequest>,
) -> Result<impl IntoResponse, ApiError> {
    post_comment(&state, &contact.principal, contact.portal_id, task, &request).await
}

/// Ticks or unticks a checklist item of a client-owned task (TSK-8).
#[utoipa::path(
    put,
    path = "/api/v1/contact/tasks/{task_id}/checklist/{item_id}",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    params(
        ("task_id" = TaskId, Path, description = "The task."),
        ("item_id" = ChecklistItemId, Path, description = "The checklist item."),
        ("If-Match" = String, Header, description = "The task's `version` last read."),
    ),
    request_body = ChecklistRequest,
    responses(
        (status = 200, description = "The task as the contact sees it.", body = ClientTask, headers(("ETag" = String, description = "The task's new version."))),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 403, description = "An MSP task (`forbidden`), or a cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
        (status = 404, description = "No such task or item in the contact's portal (`not_found`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn set_checklist_item(
    State(state): State<AppState>,
    contact: Contact,
    Path((task, item)): Path<(TaskId, ChecklistItemId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<ChecklistRequest>,
) -> Result<Tagged<ClientTask>, ApiError> {
    let p = &contact.principal;
    let outcome = state
        .engine
        .portal_command(p, contact.portal_id, |ctx, s| {
            commands::task::set_checklist_item(p, ctx, s, task, version, item, request.done)
        })
        .await?;
    client_task(&state, &contact, task, &outcome).await
}

/// Completes a client-owned task whose completion is its evidence (`acknowledgement` or
/// `none`); other evidence completes through its own flow (TSK-6).
#[utoipa::path(
    post,
    path = "/api/v1/contact/tasks/{task_id}/complete",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    params(
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's `version` last read."),
    ),
    responses(
        (status = 200, description = "The completed task as the contact sees it.", body = ClientTask, headers(("ETag" = String, description = "The task's new version."))),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 403, description = "An MSP task (`forbidden`), or a cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
        (status = 404, description = "No such task in the contact's portal (`not_found`).", body = ErrorBody),
        (status = 409, description = "Blocked, already completed (`task_blocked`, `illegal_task_move`), or evidence other than acknowledgement (`wrong_evidence_type`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn complete_task(
    State(state): State<AppState>,
    contact: Contact,
    Path(task): Path<TaskId>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<ClientTask>, ApiError> {
    let p = &contact.principal;
    let outcome = state
        .engine
        .complete_task(p, contact.portal_id, task, version, None)
        .await?;
    client_task(&state, &contact, task, &outcome).await
}
