//! Onboarding portals (ONB-2 to ONB-8, DASH-1): starting onboarding, the portal list and
//! overview, renaming, lifecycle moves, deleting, and editing a draft's phases and tasks.
//!
//! Versions: the portal row (name, status) has its own version, the portal overview's `ETag`;
//! each phase and each task has its own. A request says in its documentation which version its
//! `If-Match` is compared to. A position is part of its row: adding, moving, reordering or
//! deleting a phase or task gives a new version to each sibling whose position changes, and a
//! status change gives one to each dependent whose derived status changes; read them again (the
//! overview) before editing them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portal_core::commands;
use portal_core::commands::draft::TaskInput;
use portal_core::commands::portal::{StartOnboarding, TransitionRequest};
use portal_core::error::CommandError;
use portal_core::id::{CompanyId, PhaseId, PortalId, TaskId, TemplateId};
use portal_core::lifecycle::PortalStatus;
use portal_core::outcome::{AccessEffect, Outcome, Write};
use portal_core::policy::Principal;
use portal_core::portal::{Contact, ContactInput, Phase, Portal, PortalState};
use portal_core::progress::{PhaseProgress, PhaseStatus, Progress, StatusCounts};
use portal_core::service::PortalSummary;
use portal_core::storage::PortalFilter;
use portal_core::task::Task;
use portal_core::value::{Description, Name};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use super::tasks::{missing_write, not_found, task_after};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_onboarding))
        .routes(routes!(list_portals))
        .routes(routes!(get_portal, rename_portal, delete_portal))
        .routes(routes!(transition_portal))
        .routes(routes!(add_phase))
        .routes(routes!(update_phase, delete_phase))
        .routes(routes!(reorder_phases))
        .routes(routes!(add_task))
        .routes(routes!(delete_task))
        .routes(routes!(move_task))
}

// ---------------------------------------------------------------------------------------------
// Response bodies.

/// The PSA project a portal is linked to (ONB-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PsaProjectLink {
    /// The project's name in the PSA.
    pub name: String,
    /// The project's page in the PSA.
    pub url: String,
}

/// A phase of the overview with its progress: "N of M completed" is `progress.counts.completed`
/// of `progress.counts` in total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhaseOverview {
    /// The phase.
    pub phase: Phase,
    /// Its derived status, counts by task status and completed share (ONB-7).
    pub progress: PhaseProgress,
}

/// A portal with everything its page shows (ONB-7, ONB-8). Its `ETag` is the portal row's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PortalOverview {
    /// The portal row.
    pub portal: Portal,
    /// Its company's name.
    pub company_name: Name,
    /// The phases in order, each with its progress.
    pub phases: Vec<PhaseOverview>,
    /// Every task, in canonical order: by phase position, then task position; each with its due
    /// state as of `progress.as_of` (TSK-2, TSK-3).
    pub tasks: Vec<TaskView>,
    /// The client contacts.
    pub contacts: Vec<Contact>,
    /// Progress of the whole portal: percentage, counts by status and by due state (in the
    /// tenant's time zone), and each phase's progress.
    pub progress: Progress,
    /// The linked PSA project: filled once the portal is linked to a PSA project (PSA-3); `null`
    /// until then.
    pub psa_project: Option<PsaProjectLink>,
}

/// A task with its due state (TSK-2): `overdue` when the due date is before today and the task is
/// not completed, `due_soon` within the next 3 days, otherwise `ok`; `null` without a due date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaskView {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Its due state in the tenant's time zone.
    pub due_state: Option<portal_core::task::DueState>,
}

/// The overview after a lifecycle move, with what the move revoked (ONB-5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PortalTransitioned {
    /// The portal after the move.
    #[serde(flatten)]
    pub overview: PortalOverview,
    /// `true` when the move revoked every client session and access link of the portal at once
    /// (archiving); the data is kept.
    pub client_access_revoked: bool,
}

pub(crate) fn build_overview(state: PortalState, progress: Progress, company_name: Name) -> PortalOverview {
    let phases = state
        .phases
        .into_iter()
        .map(|phase| {
            let progress = progress
                .phases
                .iter()
                .find(|p| p.phase_id == phase.id)
                .cloned()
                .unwrap_or(PhaseProgress {
                    phase_id: phase.id,
                    status: PhaseStatus::NotStarted,
                    counts: StatusCounts::default(),
                    percent: 0,
                });
            PhaseOverview { phase, progress }
        })
        .collect();
    PortalOverview {
        portal: state.portal,
        company_name,
        phases,
        tasks: state
            .tasks
            .into_iter()
            .map(|task| TaskView {
                due_state: portal_core::task::due_state(task.due_date, task.status, progress.as_of),
                task,
            })
            .collect(),
        contacts: state.contacts,
        progress,
        psa_project: None,
    }
}

/// The portal's overview as it is now, tagged with the portal's version.
async fn overview(state: &AppState, principal: &Principal, id: PortalId) -> Result<Tagged<PortalOverview>, ApiError> {
    let (portal, progress) = state.engine.portal_overview(principal, id).await?;
    let company = state.engine.get_company(principal, portal.portal.company_id).await?;
    let o = build_overview(portal, progress, company.name);
    Ok(Tagged(o.portal.version, o))
}

/// Refuses with 412 `stale_version` when `actual` is not the version the caller expects. For
/// commands without an expected-version parameter: called inside the portal command after the
/// command itself, so its refusals (authorisation first) win.
fn expect_version(entity: &'static str, id: uuid::Uuid, expected: i64, actual: i64) -> Result<(), CommandError> {
    if expected == actual {
        Ok(())
    } else {
        Err(CommandError::Stale {
            entity,
            id,
            expected,
            actual,
        })
    }
}

/// The phase as `outcome` wrote it or, when the command left it unchanged, as it is now.
async fn phase_after(
    state: &AppState,
    principal: &Principal,
    portal: PortalId,
    id: PhaseId,
    outcome: &Outcome,
) -> Result<Phase, ApiError> {
    let written = outcome.writes.iter().find_map(|w| match w {
        Write::InsertPhase(p) | Write::UpdatePhase { phase: p, .. } if p.id == id => Some(p.clone()),
        _ => None,
    });
    if let Some(p) = written {
        return Ok(p);
    }
    let current = state.engine.load_portal(principal, portal).await?;
    current
        .phase(id)
        .cloned()
        .ok_or_else(|| not_found("phase", id.as_uuid()))
}

// ---------------------------------------------------------------------------------------------
// Request bodies and queries.

/// Starting onboarding for a company (ONB-2).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "template_id": "01963a4e-7c1b-7000-8000-0000000000b1",
    "name": "Northwind Traders onboarding",
    "contacts": [
        { "name": "Ada Lovelace", "email": "ada@northwind.example", "role": "primary_contact", "primary": true },
        { "name": "Charles Babbage", "email": "charles@northwind.example", "role": "it" }
    ],
    "activate": false
}))]
pub struct StartOnboardingRequest {
    /// The template to copy phases and tasks from.
    pub template_id: TemplateId,
    /// The new portal's name.
    pub name: Name,
    /// The client contacts (at most 50, emails unique): at most one primary, exactly one when
    /// `activate` is `true` (CON-1).
    #[serde(default)]
    pub contacts: Vec<ContactInput>,
    /// Go live at once (as `draft → active`, ONB-4) instead of staying in `draft`.
    #[serde(default)]
    pub activate: bool,
}

/// Filters of the portal list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalListQuery {
    /// Only portals in this status; `active` gives the active-onboarding banner (DASH-1).
    #[serde(default)]
    pub status: Option<PortalStatus>,
    /// Only portals of this company.
    #[serde(default)]
    pub company_id: Option<CompanyId>,
}

/// A portal's new name.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Northwind Traders – phase 2" }))]
pub struct RenamePortalRequest {
    /// The name.
    pub name: Name,
}

/// A lifecycle move (ONB-3).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[schema(example = json!({ "to": "archived", "confirm": true }))]
pub struct TransitionBody {
    /// The status to move to.
    pub to: PortalStatus,
    /// Must be `true` to archive: archiving revokes all client access (ONB-5).
    #[serde(default)]
    pub confirm: bool,
}

/// The confirmation of a portal delete.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The portal's exact name (ONB-6).
    #[serde(default)]
    #[param(max_length = 120)]
    pub confirm: Option<String>,
}

/// A new phase of a draft portal.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Network", "description": "Firewall, Wi-Fi and VPN.", "position": 1 }))]
pub struct NewPhaseRequest {
    /// The name.
    pub name: Name,
    /// The description (empty when absent).
    #[serde(default = "Description::empty")]
    pub description: Description,
    /// Where to put it, from 0; absent or past the end puts it last.
    #[serde(default)]
    pub position: Option<usize>,
}

/// A phase's new name and description.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Network and security", "description": "Firewall, Wi-Fi, VPN and MFA." }))]
pub struct PhaseUpdateRequest {
    /// The name.
    pub name: Name,
    /// The description; absent means empty.
    #[serde(default = "Description::empty")]
    pub description: Description,
}

/// The new order of a draft portal's phases.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "order": ["01963a4e-7c1b-7000-8000-0000000000d2", "01963a4e-7c1b-7000-8000-0000000000d1"] }))]
pub struct PhaseOrderRequest {
    /// Every phase of the portal, each exactly once, in the new order.
    pub order: Vec<PhaseId>,
}

/// A new task of a draft portal: the fields of a task plus where to put it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "title": "Send us your Wi-Fi details",
    "description": "SSIDs and who administers the access points.",
    "owner": "client",
    "evidence": "survey",
    "priority": "normal",
    "due_offset": 7,
    "checklist": ["Office Wi-Fi", "Guest Wi-Fi"],
    "depends_on": [],
    "survey": [],
    "position": 0
}))]
pub struct NewTaskRequest {
    /// The task.
    #[serde(flatten)]
    pub task: TaskInput,
    /// Where to put it within the phase, from 0; absent or past the end puts it last.
    #[serde(default)]
    pub position: Option<usize>,
}

/// Where a task moves to.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[schema(example = json!({ "phase_id": "01963a4e-7c1b-7000-8000-0000000000d1", "position": 0 }))]
pub struct MoveTaskRequest {
    /// The phase (its own or another of the portal).
    pub phase_id: PhaseId,
    /// The position within that phase, from 0; past the end puts it last.
    pub position: usize,
}

// ---------------------------------------------------------------------------------------------
// Portals.

/// Starts onboarding a company from a template (ONB-2): copies the template's phases and tasks
/// into a new portal in one atomic write, with dependencies re-pointed to the copies. The portal
/// stays in `draft` unless `activate` is `true`, which activates it at once (exactly one primary
/// contact needed; due dates set from their offsets). Later template edits never change it.
#[utoipa::path(
    post,
    path = "/api/v1/companies/{company_id}/portals",
    tag = "portals",
    params(("company_id" = CompanyId, Path, description = "The company.")),
    request_body = StartOnboardingRequest,
    responses(
        (status = 201, description = "The new portal's overview.", body = PortalOverview, headers(("ETag" = String, description = "The portal's version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such company or template (`not_found`).", body = ErrorBody),
        (status = 409, description = "Not exactly one primary contact to activate, or more than one (`primary_contact`), or a contact email twice (`duplicate_contact_email`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or too many contacts (`too_many`).", body = ErrorBody),
    )
)]
async fn start_onboarding(
    State(state): State<AppState>,
    staff: Staff,
    Path(company): Path<CompanyId>,
    Json(request): Json<StartOnboardingRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let p = &staff.principal;
    let start = StartOnboarding {
        name: request.name,
        contacts: request.contacts,
        activate: request.activate,
    };
    let id = state
        .engine
        .start_onboarding(p, company, request.template_id, &start)
        .await?;
    Ok((StatusCode::CREATED, overview(&state, p, id).await?))
}

/// Portals ordered by id, with company name and progress. With `status=active` this is the
/// active-onboarding banner of the dashboard (DASH-1): each active portal with its company name,
/// name and progress.
#[utoipa::path(
    get,
    path = "/api/v1/portals",
    tag = "portals",
    params(PortalListQuery, PageQuery),
    responses(
        (status = 200, description = "A page of portals.", body = Page<PortalSummary>),
        (status = 400, description = "A bad query, status or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_portals(
    State(state): State<AppState>,
    staff: Staff,
    Query(filter): Query<PortalListQuery>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<PortalSummary>>, ApiError> {
    let filter = PortalFilter {
        status: filter.status,
        company: filter.company_id,
    };
    let items = state
        .engine
        .portal_summaries(&staff.principal, filter, page.request()?)
        .await?;
    Ok(Json(page.page(items, |s| s.portal.id)))
}

/// A portal's overview (ONB-7, ONB-8): the portal, its company's name, its phases each with
/// progress and derived status, its tasks in order, its contacts, the whole portal's progress
/// (percentage rounded down, counts by status and by due state in the tenant's time zone) and the
/// linked PSA project (`null` until the portal is linked to one).
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}",
    tag = "portals",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    responses(
        (status = 200, description = "The overview.", body = PortalOverview, headers(("ETag" = String, description = "The portal's version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
    )
)]
async fn get_portal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<PortalId>,
) -> Result<Tagged<PortalOverview>, ApiError> {
    overview(&state, &staff.principal, id).await
}

/// Renames a portal.
#[utoipa::path(
    patch,
    path = "/api/v1/portals/{portal_id}",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("If-Match" = String, Header, description = "The portal's ETag last read."),
    ),
    request_body = RenamePortalRequest,
    responses(
        (status = 200, description = "The renamed portal's overview.", body = PortalOverview, headers(("ETag" = String, description = "The portal's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 412, description = "The portal changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn rename_portal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<PortalId>,
    IfMatch(version): IfMatch,
    Json(request): Json<RenamePortalRequest>,
) -> Result<Tagged<PortalOverview>, ApiError> {
    let p = &staff.principal;
    state
        .engine
        .portal_command(p, id, |ctx, s| {
            commands::portal::rename_portal(p, ctx, s, version, request.name.clone())
        })
        .await?;
    overview(&state, p, id).await
}

/// Moves a portal through its lifecycle (ONB-3 to ONB-5). The allowed moves:
///
/// | from | to | condition |
/// |---|---|---|
/// | `draft` | `active` | exactly one primary contact (409 `primary_contact`); sets due dates from their offsets |
/// | `active` | `completed` | every task completed (409 `tasks_incomplete`) |
/// | `completed` | `converted` | |
/// | `draft`, `active`, `completed`, `converted` | `archived` | `"confirm": true` (422 `confirmation_required`); revokes every client session and link at once, data is kept |
/// | `archived` | `draft` | restore; old links stay dead |
///
/// Any other move is refused with 409 `illegal_transition`, naming both statuses. Each move is
/// recorded in the activity log. The answer is the overview, with `client_access_revoked`.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/transitions",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("If-Match" = String, Header, description = "The portal's ETag last read."),
    ),
    request_body = TransitionBody,
    responses(
        (status = 200, description = "The portal after the move.", body = PortalTransitioned, headers(("ETag" = String, description = "The portal's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 409, description = "A move the table does not allow (`illegal_transition`), open tasks (`tasks_incomplete`), or not exactly one primary contact to activate (`primary_contact`).", body = ErrorBody),
        (status = 412, description = "The portal changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "Archiving without `\"confirm\": true` (`confirmation_required`), or a bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn transition_portal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<PortalId>,
    IfMatch(version): IfMatch,
    Json(request): Json<TransitionBody>,
) -> Result<Tagged<PortalTransitioned>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .transition_portal(
            p,
            id,
            TransitionRequest {
                to: request.to,
                expected_version: version,
                confirm: request.confirm,
            },
        )
        .await?;
    let client_access_revoked = outcome
        .effects
        .iter()
        .any(|e| matches!(e, AccessEffect::RevokeAllClientAccess { portal_id, .. } if *portal_id == id));
    let Tagged(v, overview) = overview(&state, p, id).await?;
    Ok(Tagged(
        v,
        PortalTransitioned {
            overview,
            client_access_revoked,
        },
    ))
}

/// Deletes a portal with its phases, tasks and contacts (ONB-6). `confirm` must be the portal's
/// exact name (422 `confirmation_required` when it is missing or differs). The content of the
/// portal's activity events is erased, each kept as a tombstone, and a tenant-level audit event
/// records the delete (ACT-4).
#[utoipa::path(
    delete,
    path = "/api/v1/portals/{portal_id}",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        DeleteQuery,
        ("If-Match" = String, Header, description = "The portal's ETag last read."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A bad id, query or `If-Match` (`invalid_path`, `invalid_query`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 412, description = "The portal changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "`confirm` is missing or not the portal's exact name (`confirmation_required`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_portal(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<PortalId>,
    Query(query): Query<DeleteQuery>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let p = &staff.principal;
    // A missing confirmation never matches a name (names are never empty).
    let confirmation = query.confirm.unwrap_or_default();
    // `Engine::delete_portal` takes no version: the same command, with the version checked after it.
    state
        .engine
        .portal_command(p, id, |ctx, s| {
            let outcome = commands::portal::delete_portal(p, ctx, s, &confirmation)?;
            expect_version("portal", id.as_uuid(), version, s.portal.version)?;
            Ok(outcome)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Draft editing (ONB-4). Every route here needs a `draft` portal (409 `wrong_portal_status`
// otherwise) and re-checks the dependency graph.

/// Adds a phase to a draft portal.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/phases",
    tag = "portals",
    params(("portal_id" = PortalId, Path, description = "The portal.")),
    request_body = NewPhaseRequest,
    responses(
        (status = 201, description = "The new phase.", body = Phase, headers(("ETag" = String, description = "The phase's version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or too many phases (`too_many`).", body = ErrorBody),
    )
)]
async fn add_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    Json(request): Json<NewPhaseRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .portal_command(p, portal, |ctx, s| {
            commands::draft::add_phase(
                p,
                ctx,
                s,
                request.name.clone(),
                request.description.clone(),
                request.position,
            )
            .map(|(_, o)| o)
        })
        .await?;
    let phase = outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::InsertPhase(ph) => Some(ph.clone()),
            _ => None,
        })
        .ok_or_else(|| missing_write("new phase"))?;
    Ok((StatusCode::CREATED, Tagged(phase.version, phase)))
}

/// Renames a phase of a draft portal or changes its description.
#[utoipa::path(
    put,
    path = "/api/v1/portals/{portal_id}/phases/{phase_id}",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("phase_id" = PhaseId, Path, description = "The phase."),
        ("If-Match" = String, Header, description = "The phase's ETag last read."),
    ),
    request_body = PhaseUpdateRequest,
    responses(
        (status = 200, description = "The changed phase.", body = Phase, headers(("ETag" = String, description = "The phase's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or phase (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The phase changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, phase)): Path<(PortalId, PhaseId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<PhaseUpdateRequest>,
) -> Result<Tagged<Phase>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .portal_command(p, portal, |ctx, s| {
            commands::draft::update_phase(
                p,
                ctx,
                s,
                phase,
                version,
                request.name.clone(),
                request.description.clone(),
            )
        })
        .await?;
    let ph = phase_after(&state, p, portal, phase, &outcome).await?;
    Ok(Tagged(ph.version, ph))
}

/// Deletes a phase of a draft portal with its tasks; dependency edges from other tasks to those
/// tasks are removed (the dependents may become unblocked).
#[utoipa::path(
    delete,
    path = "/api/v1/portals/{portal_id}/phases/{phase_id}",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("phase_id" = PhaseId, Path, description = "The phase."),
        ("If-Match" = String, Header, description = "The phase's ETag last read."),
    ),
    responses(
        (status = 204, description = "Deleted, with its tasks."),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or phase (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The phase changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, phase)): Path<(PortalId, PhaseId)>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let p = &staff.principal;
    state
        .engine
        .portal_command(p, portal, |ctx, s| {
            let outcome = commands::draft::delete_phase(p, ctx, s, phase)?;
            let actual = s.phase(phase).map_or(version, |ph| ph.version);
            expect_version("phase", phase.as_uuid(), version, actual)?;
            Ok(outcome)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts the phases of a draft portal in a new order; `order` must list every phase exactly once
/// (422 `bad_order` otherwise). `If-Match` is the **portal's** version. Answers the overview.
#[utoipa::path(
    put,
    path = "/api/v1/portals/{portal_id}/phase-order",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("If-Match" = String, Header, description = "The portal's ETag last read."),
    ),
    request_body = PhaseOrderRequest,
    responses(
        (status = 200, description = "The overview, phases in the new order.", body = PortalOverview, headers(("ETag" = String, description = "The portal's version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The portal changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "The order does not list each phase exactly once (`bad_order`), or a bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn reorder_phases(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    IfMatch(version): IfMatch,
    Json(request): Json<PhaseOrderRequest>,
) -> Result<Tagged<PortalOverview>, ApiError> {
    let p = &staff.principal;
    state
        .engine
        .portal_command(p, portal, |ctx, s| {
            let outcome = commands::draft::reorder_phases(p, ctx, s, &request.order)?;
            expect_version("portal", portal.as_uuid(), version, s.portal.version)?;
            Ok(outcome)
        })
        .await?;
    overview(&state, p, portal).await
}

/// Adds a task to a phase of a draft portal. Its dependencies must be tasks of the same portal
/// and must not form a cycle.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/phases/{phase_id}/tasks",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("phase_id" = PhaseId, Path, description = "The phase."),
    ),
    request_body = NewTaskRequest,
    responses(
        (status = 201, description = "The new task.", body = Task, headers(("ETag" = String, description = "The task's version."))),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or phase (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), a bad graph (`dependency_cycle`, `unknown_dependency`, `self_dependency`) or too many of something (`too_many`).", body = ErrorBody),
    )
)]
async fn add_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, phase)): Path<(PortalId, PhaseId)>,
    Json(request): Json<NewTaskRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .portal_command(p, portal, |ctx, s| {
            commands::draft::add_task(p, ctx, s, phase, &request.task, request.position).map(|(_, o)| o)
        })
        .await?;
    let task = outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::InsertTask(t) => Some(Task::clone(t)),
            _ => None,
        })
        .ok_or_else(|| missing_write("new task"))?;
    Ok((StatusCode::CREATED, Tagged(task.version, task)))
}

/// Deletes a task of a draft portal; dependency edges from other tasks to it are removed (the
/// dependents may become unblocked).
#[utoipa::path(
    delete,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    let p = &staff.principal;
    state
        .engine
        .portal_command(p, portal, |ctx, s| {
            let outcome = commands::draft::delete_task(p, ctx, s, task)?;
            let actual = s.task(task).map_or(version, |t| t.version);
            expect_version("task", task.as_uuid(), version, actual)?;
            Ok(outcome)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a task of a draft portal to a position within a phase (its own or another).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/tasks/{task_id}/move",
    tag = "portals",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("task_id" = TaskId, Path, description = "The task."),
        ("If-Match" = String, Header, description = "The task's ETag last read."),
    ),
    request_body = MoveTaskRequest,
    responses(
        (status = 200, description = "The moved task.", body = Task, headers(("ETag" = String, description = "The task's new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal, task or phase (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not a draft (`wrong_portal_status`).", body = ErrorBody),
        (status = 412, description = "The task changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn move_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, task)): Path<(PortalId, TaskId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<MoveTaskRequest>,
) -> Result<Tagged<Task>, ApiError> {
    let p = &staff.principal;
    let outcome = state
        .engine
        .portal_command(p, portal, |ctx, s| {
            let outcome = commands::draft::move_task(p, ctx, s, task, request.phase_id, request.position)?;
            let actual = s.task(task).map_or(version, |t| t.version);
            expect_version("task", task.as_uuid(), version, actual)?;
            Ok(outcome)
        })
        .await?;
    let t = task_after(&state, p, portal, task, &outcome).await?;
    Ok(Tagged(t.version, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_exactly() {
        assert!(expect_version("task", uuid::Uuid::nil(), 3, 3).is_ok());
        assert_eq!(
            expect_version("task", uuid::Uuid::nil(), 2, 3).map_err(|e| e.code()),
            Err("stale_version")
        );
    }

    #[test]
    fn a_new_task_takes_the_task_fields_and_a_position() {
        let r: NewTaskRequest = serde_json::from_value(serde_json::json!({
            "title": "Send us your Wi-Fi details",
            "owner": "client",
            "evidence": "survey",
            "due_offset": 7,
            "position": 2
        }))
        .expect("parses");
        assert_eq!(r.position, Some(2));
        assert_eq!(r.task.title.as_str(), "Send us your Wi-Fi details");
        assert!(r.task.due_offset.is_some());
        assert!(serde_json::from_value::<NewTaskRequest>(serde_json::json!({ "title": "No owner" })).is_err());
    }
}
