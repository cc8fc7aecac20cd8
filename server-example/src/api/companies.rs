//! Companies (the MSP's clients) and their sites.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portal_core::company::{Company, Site};
use portal_core::id::{CompanyId, SiteId};
use portal_core::value::{Description, Name};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_companies, create_company))
        .routes(routes!(get_company, update_company))
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site, delete_site))
}

/// A new company, or a company's new name.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Northwind Traders" }))]
pub struct CompanyRequest {
    /// The name.
    pub name: Name,
}

/// A new site, or a site's new name and address.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Head office", "address": "1 Main Street, Springfield" }))]
pub struct SiteRequest {
    /// The name.
    pub name: Name,
    /// The postal address.
    #[serde(default = "Description::empty")]
    pub address: Description,
}

/// Companies ordered by id.
#[utoipa::path(
    get,
    path = "/api/v1/companies",
    tag = "companies",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of companies.", body = Page<Company>),
        (status = 400, description = "A bad query or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_companies(
    State(state): State<AppState>,
    staff: Staff,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Company>>, ApiError> {
    let items = state.engine.list_companies(&staff.principal, page.request()?).await?;
    Ok(Json(page.page(items, |c| c.id)))
}

/// Creates a company.
#[utoipa::path(
    post,
    path = "/api/v1/companies",
    tag = "companies",
    request_body = CompanyRequest,
    responses(
        (status = 201, description = "Created.", body = Company, headers(("ETag" = String, description = "The version."))),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`, `invalid_value`).", body = ErrorBody),
    )
)]
async fn create_company(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<CompanyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let company = state.engine.create_company(&staff.principal, request.name).await?;
    Ok((StatusCode::CREATED, Tagged(company.version, company)))
}

/// A company.
#[utoipa::path(
    get,
    path = "/api/v1/companies/{company_id}",
    tag = "companies",
    params(("company_id" = CompanyId, Path, description = "The company.")),
    responses(
        (status = 200, description = "The company.", body = Company, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such company (`not_found`).", body = ErrorBody),
    )
)]
async fn get_company(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<CompanyId>,
) -> Result<Tagged<Company>, ApiError> {
    let c = state.engine.get_company(&staff.principal, id).await?;
    Ok(Tagged(c.version, c))
}

/// Renames a company.
#[utoipa::path(
    put,
    path = "/api/v1/companies/{company_id}",
    tag = "companies",
    params(
        ("company_id" = CompanyId, Path, description = "The company."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = CompanyRequest,
    responses(
        (status = 200, description = "The renamed company.", body = Company, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such company (`not_found`).", body = ErrorBody),
        (status = 412, description = "The company changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body.", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_company(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<CompanyId>,
    IfMatch(version): IfMatch,
    Json(request): Json<CompanyRequest>,
) -> Result<Tagged<Company>, ApiError> {
    let c = state
        .engine
        .update_company(&staff.principal, id, version, request.name)
        .await?;
    Ok(Tagged(c.version, c))
}

/// The sites of a company, by id.
#[utoipa::path(
    get,
    path = "/api/v1/companies/{company_id}/sites",
    tag = "companies",
    params(("company_id" = CompanyId, Path, description = "The company.")),
    responses(
        (status = 200, description = "Every site of the company (a company has few).", body = Vec<Site>),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such company (`not_found`).", body = ErrorBody),
    )
)]
async fn list_sites(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<CompanyId>,
) -> Result<Json<Vec<Site>>, ApiError> {
    Ok(Json(state.engine.list_sites(&staff.principal, id).await?))
}

/// Adds a site to a company.
#[utoipa::path(
    post,
    path = "/api/v1/companies/{company_id}/sites",
    tag = "companies",
    params(("company_id" = CompanyId, Path, description = "The company.")),
    request_body = SiteRequest,
    responses(
        (status = 201, description = "Created.", body = Site, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such company (`not_found`).", body = ErrorBody),
        (status = 422, description = "A bad body.", body = ErrorBody),
    )
)]
async fn create_site(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<CompanyId>,
    Json(request): Json<SiteRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let site = state
        .engine
        .create_site(&staff.principal, id, request.name, request.address)
        .await?;
    Ok((StatusCode::CREATED, Tagged(site.version, site)))
}

/// A site.
#[utoipa::path(
    get,
    path = "/api/v1/sites/{site_id}",
    tag = "companies",
    params(("site_id" = SiteId, Path, description = "The site.")),
    responses(
        (status = 200, description = "The site.", body = Site, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such site (`not_found`).", body = ErrorBody),
    )
)]
async fn get_site(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<SiteId>,
) -> Result<Tagged<Site>, ApiError> {
    let s = state.engine.get_site(&staff.principal, id).await?;
    Ok(Tagged(s.version, s))
}

/// Renames a site or changes its address.
#[utoipa::path(
    put,
    path = "/api/v1/sites/{site_id}",
    tag = "companies",
    params(
        ("site_id" = SiteId, Path, description = "The site."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = SiteRequest,
    responses(
        (status = 200, description = "The changed site.", body = Site, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such site (`not_found`).", body = ErrorBody),
        (status = 412, description = "The site changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body.", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_site(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<SiteId>,
    IfMatch(version): IfMatch,
    Json(request): Json<SiteRequest>,
) -> Result<Tagged<Site>, ApiError> {
    let s = state
        .engine
        .update_site(&staff.principal, id, version, request.name, request.address)
        .await?;
    Ok(Tagged(s.version, s))
}

/// Deletes a site.
#[utoipa::path(
    delete,
    path = "/api/v1/sites/{site_id}",
    tag = "companies",
    params(
        ("site_id" = SiteId, Path, description = "The site."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "A bad id or `If-Match`.", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such site (`not_found`).", body = ErrorBody),
        (status = 412, description = "The site changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn delete_site(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<SiteId>,
    IfMatch(version): IfMatch,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_site(&staff.principal, id, version).await?;
    Ok(StatusCode::NO_CONTENT)
}
