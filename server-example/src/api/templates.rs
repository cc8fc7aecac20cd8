//! Onboarding templates (ONB-1): whole documents, and piecewise edits of their phases and tasks.
//!
//! A template is one versioned document. A piecewise edit reads it, turns it back into the
//! document it was written as (`template_edit::to_input`), applies the edit and replaces the
//! whole template through the core, which validates it (keys, dependencies, cycles, limits)
//! exactly as a whole `PUT` would. Every edit takes `If-Match` with the template's `ETag` and
//! answers the new template.
//!
//! Tasks are addressed by their key. Phases are addressed by id; the core keeps phase ids *by
//! position* (ADR 0002), so after a phase is added or deleted the phases after it take other ids:
//! use the ids of the template the edit answered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portal_core::error::CommandError;
use portal_core::id::{TemplateId, TemplatePhaseId};
use portal_core::policy::{Action, Resource, authorize};
use portal_core::service::ServiceError;
use portal_core::template::{TaskKey, Template, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use portal_core::value::{Description, Name};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use super::template_edit;
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, replace_template, patch_template, delete_template))
        .routes(routes!(add_phase))
        .routes(routes!(update_phase, delete_phase))
        .routes(routes!(add_task))
        .routes(routes!(replace_task, delete_task))
}

/// A template's new name or description; what is left out stays.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Standard MSP onboarding", "description": "Agreements, discovery, set-up and go-live." }))]
pub struct TemplatePatch {
    /// The new name.
    #[serde(default)]
    pub name: Option<Name>,
    /// The new description (`""` clears it).
    #[serde(default)]
    pub description: Option<Description>,
}

/// A new phase, without tasks.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Go-live", "description": "Cut over and hand over.", "position": 0 }))]
pub struct NewPhase {
    /// The name.
    pub name: Name,
    /// The description.
    #[serde(default = "Description::empty")]
    pub description: Description,
    /// Where it goes, 0-based among the current phases; the end when left out.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub position: Option<usize>,
}

/// A phase's new name and description.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Go-live", "description": "Cut over and hand over." }))]
pub struct PhaseRequest {
    /// The name.
    pub name: Name,
    /// The description (`""` or left out: none).
    #[serde(default = "Description::empty")]
    pub description: Description,
}

/// A new task of a phase.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "task": {
        "key": "handover",
        "title": "Hand over to the service desk",
        "owner": "msp",
        "evidence": "none",
        "priority": "normal",
        "due_offset": 30,
        "checklist": ["Share the runbook"],
        "depends_on": []
    },
    "position": 0
}))]
pub struct NewTask {
    /// The task; its key must be new to the template and `depends_on` names keys of the template.
    pub task: TemplateTaskInput,
    /// Where it goes, 0-based among the phase's tasks; the end when left out.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub position: Option<usize>,
}

fn refused(e: CommandError) -> ApiError {
    ApiError::Service(ServiceError::Command(e))
}

/// Reads the template, applies `edit` to its document and replaces it; answers the new template.
///
/// Refusals come in this order: not found (404), not allowed to manage templates (403), stale
/// `If-Match` (412), then what the edit names is not there (404) or the document is not valid
/// (422).
async fn edit_template(
    state: &AppState,
    staff: &Staff,
    id: TemplateId,
    version: i64,
    edit: impl FnOnce(&Template, &mut TemplateInput) -> Result<(), CommandError>,
) -> Result<Template, ApiError> {
    let current = state.engine.get_template(&staff.principal, id).await?;
    // replace_template checks both again; checked here first so that a refusal wins over "no
    // such phase or task" (which is only meaningful at the version the caller read).
    authorize(
        &staff.principal,
        Action::ManageTemplate,
        &Resource::Tenant {
            tenant: current.tenant_id,
        },
    )
    .map_err(|e| refused(CommandError::Access(e)))?;
    if version != current.version {
        return Err(refused(CommandError::Stale {
            entity: "template",
            id: id.as_uuid(),
            expected: version,
            actual: current.version,
        }));
    }
    let mut input = template_edit::to_input(&current);
    edit(&current, &mut input).map_err(refused)?;
    state
        .engine
        .replace_template(&staff.principal, id, version, &input)
        .await?;
    Ok(state.engine.get_template(&staff.principal, id).await?)
}

/// Templates ordered by id, whole.
#[utoipa::path(
    get,
    path = "/api/v1/templates",
    tag = "templates",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of templates.", body = Page<Template>),
        (status = 400, description = "A bad query or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_templates(
    State(state): State<AppState>,
    staff: Staff,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Template>>, ApiError> {
    let items = state.engine.list_templates(&staff.principal, page.request()?).await?;
    Ok(Json(page.page(items, |t| t.id)))
}

/// Creates a template from a whole document. Tasks refer to each other by key.
#[utoipa::path(
    post,
    path = "/api/v1/templates",
    tag = "templates",
    request_body(
        content = TemplateInput,
        example = json!({
            "name": "Standard MSP onboarding",
            "description": "Agreements, discovery, set-up and go-live.",
            "phases": [
                { "name": "Agreements", "tasks": [
                    { "key": "sign-msa", "title": "Sign the master services agreement", "owner": "client",
                      "evidence": "signature", "priority": "high", "due_offset": 3 },
                    { "key": "kickoff", "title": "Kickoff meeting", "owner": "msp", "evidence": "meeting",
                      "due_offset": 7, "depends_on": ["sign-msa"], "checklist": ["Agree the go-live date"] }
                ] },
                { "name": "Discovery", "description": "What the client runs today.", "tasks": [
                    { "key": "network-survey", "title": "Describe your network", "owner": "client", "evidence": "survey",
                      "depends_on": ["kickoff"],
                      "survey": [
                          { "text": "Do you have more than one site?", "kind": "yes_no" },
                          { "text": "Firewall vendor", "kind": "single_choice", "options": ["Fortinet", "Sophos", "Other"] }
                      ] }
                ] }
            ]
        })
    ),
    responses(
        (status = 201, description = "Created.", body = Template, headers(("ETag" = String, description = "The version."))),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 422, description = "A bad document: `invalid_body`, `invalid_value`, `duplicate_key`, `unknown_dependency`, `dependency_cycle`, `self_dependency`, `too_many`, `empty_list`.", body = ErrorBody),
    )
)]
async fn create_template(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<TemplateInput>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state.engine.create_template(&staff.principal, &request).await?;
    let t = state.engine.get_template(&staff.principal, id).await?;
    Ok((StatusCode::CREATED, Tagged(t.version, t)))
}

/// A template, whole.
#[utoipa::path(
    get,
    path = "/api/v1/templates/{template_id}",
    tag = "templates",
    params(("template_id" = TemplateId, Path, description = "The template.")),
    responses(
        (status = 200, description = "The template.", body = Template, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`).", body = ErrorBody),
    )
)]
async fn get_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<TemplateId>,
) -> Result<Tagged<Template>, ApiError> {
    let t = state.engine.get_template(&staff.principal, id).await?;
    Ok(Tagged(t.version, t))
}

/// Replaces a template with a whole new document. Task ids are kept by key and phase ids by
/// position; portals started from the template keep their own copy (ONB-2).
#[utoipa::path(
    put,
    path = "/api/v1/templates/{template_id}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body(
        content = TemplateInput,
        example = json!({
            "name": "Standard MSP onboarding",
            "description": "Agreements, discovery, set-up and go-live.",
            "phases": [
                { "name": "Agreements", "tasks": [
                    { "key": "sign-msa", "title": "Sign the master services agreement", "owner": "client",
                      "evidence": "signature", "priority": "high", "due_offset": 3 },
                    { "key": "kickoff", "title": "Kickoff meeting", "owner": "msp", "evidence": "meeting",
                      "due_offset": 7, "depends_on": ["sign-msa"], "checklist": ["Agree the go-live date"] }
                ] },
                { "name": "Discovery", "description": "What the client runs today.", "tasks": [
                    { "key": "network-survey", "title": "Describe your network", "owner": "client", "evidence": "survey",
                      "depends_on": ["kickoff"],
                      "survey": [
                          { "text": "Do you have more than one site?", "kind": "yes_no" },
                          { "text": "Firewall vendor", "kind": "single_choice", "options": ["Fortinet", "Sophos", "Other"] }
                      ] }
                ] }
            ]
        })
    ),
    responses(
        (status = 200, description = "The new template.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad document (`invalid_body`, `invalid_value`, `duplicate_key`, `unknown_dependency`, `dependency_cycle`, `too_many`...).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn replace_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<TemplateId>,
    IfMatch(version): IfMatch,
    Json(request): Json<TemplateInput>,
) -> Result<Tagged<Template>, ApiError> {
    state
        .engine
        .replace_template(&staff.principal, id, version, &request)
        .await?;
    let t = state.engine.get_template(&staff.principal, id).await?;
    Ok(Tagged(t.version, t))
}

/// Renames a template or changes its description.
#[utoipa::path(
    patch,
    path = "/api/v1/templates/{template_id}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = TemplatePatch,
    responses(
        (status = 200, description = "The changed template.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn patch_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<TemplateId>,
    IfMatch(version): IfMatch,
    Json(request): Json<TemplatePatch>,
) -> Result<Tagged<Template>, ApiError> {
    let t = edit_template(&state, &staff, id, version, |_, input| {
        if let Some(name) = request.name {
            input.name = name;
        }
        if let Some(description) = request.description {
            input.description = description;
        }
        Ok(())
    })
    .await?;
    Ok(Tagged(t.version, t))
}

/// Deletes a template. Portals started from it are untouched.
#[utoipa::path(
    delete,
    path = "/api/v1/templates/{template_id}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_template(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<TemplateId>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_template(&staff.principal, id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a phase, without tasks, to a template. Phase ids are kept by position, so the phases at
/// and after `position` take other ids: use those of the template answered.
#[utoipa::path(
    post,
    path = "/api/v1/templates/{template_id}/phases",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = NewPhase,
    responses(
        (status = 201, description = "The template with the new phase.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body, a `position` past the end (`invalid_value`), or too many phases (`too_many`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn add_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<TemplateId>,
    IfMatch(version): IfMatch,
    Json(request): Json<NewPhase>,
) -> Result<impl IntoResponse, ApiError> {
    let t = edit_template(&state, &staff, id, version, |_, input| {
        let phase = TemplatePhaseInput {
            name: request.name,
            description: request.description,
            tasks: Vec::new(),
        };
        template_edit::insert_phase(input, phase, request.position).map(|_| ())
    })
    .await?;
    Ok((StatusCode::CREATED, Tagged(t.version, t)))
}

/// Renames a phase or changes its description; its tasks stay.
#[utoipa::path(
    put,
    path = "/api/v1/templates/{template_id}/phases/{phase_id}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("phase_id" = TemplatePhaseId, Path, description = "The phase, as in the template last read (phase ids are kept by position)."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = PhaseRequest,
    responses(
        (status = 200, description = "The changed template.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template, or no such phase in it (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, phase)): Path<(TemplateId, TemplatePhaseId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<PhaseRequest>,
) -> Result<Tagged<Template>, ApiError> {
    let t = edit_template(&state, &staff, id, version, |current, input| {
        let index = template_edit::phase_index(current, phase)?;
        template_edit::update_phase(input, index, request.name, request.description)
    })
    .await?;
    Ok(Tagged(t.version, t))
}

/// Deletes a phase with its tasks; other tasks stop depending on them (ADR 0002). Phase ids are
/// kept by position, so the phases after it take other ids: use those of the template answered.
#[utoipa::path(
    delete,
    path = "/api/v1/templates/{template_id}/phases/{phase_id}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("phase_id" = TemplatePhaseId, Path, description = "The phase, as in the template last read (phase ids are kept by position)."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    responses(
        (status = 200, description = "The template without the phase.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template, or no such phase in it (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_phase(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, phase)): Path<(TemplateId, TemplatePhaseId)>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<Template>, ApiError> {
    let t = edit_template(&state, &staff, id, version, |current, input| {
        let index = template_edit::phase_index(current, phase)?;
        template_edit::remove_phase(input, index).map(|_| ())
    })
    .await?;
    Ok(Tagged(t.version, t))
}

/// Adds a task to a phase.
#[utoipa::path(
    post,
    path = "/api/v1/templates/{template_id}/phases/{phase_id}/tasks",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("phase_id" = TemplatePhaseId, Path, description = "The phase, as in the template last read (phase ids are kept by position)."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = NewTask,
    responses(
        (status = 201, description = "The template with the new task.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template, or no such phase in it (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad task: `invalid_body`, `invalid_value` (also a `position` past the end), `duplicate_key`, `unknown_dependency`, `dependency_cycle`, `too_many`, `empty_list`.", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn add_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, phase)): Path<(TemplateId, TemplatePhaseId)>,
    IfMatch(version): IfMatch,
    Json(request): Json<NewTask>,
) -> Result<impl IntoResponse, ApiError> {
    let t = edit_template(&state, &staff, id, version, |current, input| {
        let index = template_edit::phase_index(current, phase)?;
        template_edit::insert_task(input, index, request.task, request.position)
    })
    .await?;
    Ok((StatusCode::CREATED, Tagged(t.version, t)))
}

/// Replaces one task, found by its key, in place. The new task may have another key: the other
/// tasks' dependencies on the old key then follow it (the task takes a new id, as ids are kept by
/// key).
#[utoipa::path(
    put,
    path = "/api/v1/templates/{template_id}/tasks/{key}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("key" = TaskKey, Path, description = "The task's key."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body(
        content = TemplateTaskInput,
        example = json!({
            "key": "kickoff",
            "title": "Kickoff meeting",
            "description": "Meet the client's team.",
            "owner": "msp",
            "evidence": "meeting",
            "priority": "high",
            "due_offset": 7,
            "checklist": ["Agree the go-live date", "Introduce the service desk"],
            "depends_on": []
        })
    ),
    responses(
        (status = 200, description = "The changed template.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id, key or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template, or no task with this key in it (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad task: `invalid_body`, `invalid_value`, `duplicate_key`, `unknown_dependency`, `dependency_cycle`, `self_dependency`, `too_many`, `empty_list`.", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn replace_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, key)): Path<(TemplateId, TaskKey)>,
    IfMatch(version): IfMatch,
    Json(request): Json<TemplateTaskInput>,
) -> Result<Tagged<Template>, ApiError> {
    let t = edit_template(&state, &staff, id, version, |_, input| {
        template_edit::replace_task(input, &key, request)
    })
    .await?;
    Ok(Tagged(t.version, t))
}

/// Deletes one task, found by its key; the other tasks stop depending on it (ADR 0002).
#[utoipa::path(
    delete,
    path = "/api/v1/templates/{template_id}/tasks/{key}",
    tag = "templates",
    params(
        ("template_id" = TemplateId, Path, description = "The template."),
        ("key" = TaskKey, Path, description = "The task's key."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    responses(
        (status = 200, description = "The template without the task.", body = Template, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id, key or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such template, or no task with this key in it (`not_found`).", body = ErrorBody),
        (status = 412, description = "The template changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_task(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, key)): Path<(TemplateId, TaskKey)>,
    IfMatch(version): IfMatch,
) -> Result<Tagged<Template>, ApiError> {
    let t = edit_template(&state, &staff, id, version, |_, input| {
        template_edit::remove_task(input, &key).map(|_| ())
    })
    .await?;
    Ok(Tagged(t.version, t))
}
