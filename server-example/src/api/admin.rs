//! The tenant, its host names, roles and staff users (AUTH-1, BRD-2).
//!
//! Host names and passwords are not domain state: they are written straight to the store, after
//! an explicit authorisation check here (the engine has no command for them). Users are answered
//! without any password data.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use portal_core::auth::{self, Password};
use portal_core::commands::admin::StaffUserUpdate;
use portal_core::error::{CommandError, ValueError};
use portal_core::id::{RoleId, StaffUserId};
use portal_core::policy::{Action, Principal, Resource, authorize};
use portal_core::service::ServiceError;
use portal_core::storage::StorageError;
use portal_core::tenant::{LinkSettings, PermissionSet, Role, StaffUser, Tenant, TenantSettings};
use portal_core::value::{Email, Name};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{IfMatch, Page, PageQuery, Tagged};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_tenant, update_tenant))
        .routes(routes!(list_hosts, add_host))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(set_user_password))
}

/// The tenant's new name and settings.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Demo MSP",
    "settings": { "time_zone": "Europe/London", "billable_default": true, "forwarded_link_protection": true }
}))]
pub struct TenantRequest {
    /// The display name.
    pub name: Name,
    /// The settings, whole.
    pub settings: TenantSettings,
    /// The settings of client links (access link expiry, BYD-4); left out, they stay as they are.
    #[serde(default)]
    pub link_settings: Option<LinkSettings>,
    /// Branding of mail and pages (BRD-1); left out, it stays as it is.
    #[serde(default)]
    pub branding: Option<portal_core::tenant::Branding>,
    /// The automatic reminder cadence and the daily digest hour (BYD-5); left out, they stay as
    /// they are.
    #[serde(default)]
    pub notification_settings: Option<portal_core::notifications::NotificationSettings>,
}

/// A host name the tenant is served at.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({ "host": "portal.example.com" }))]
pub struct HostRequest {
    /// The host name; a port and a trailing dot are dropped and it is lower-cased.
    #[schema(max_length = 253)]
    pub host: String,
}

/// A new role, or a role's new name and permissions.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "name": "Technician", "permissions": ["read_onboarding", "manage_onboarding"] }))]
pub struct RoleRequest {
    /// The name, unique within the tenant (case-insensitively).
    pub name: Name,
    /// The permissions it grants (duplicates collapse).
    #[schema(value_type = Vec<portal_core::tenant::Permission>)]
    pub permissions: PermissionSet,
}

/// A new staff user.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "theo@demo-msp.example.com",
    "display_name": "Theo Technician",
    "roles": [],
    "password": "correct horse battery staple"
}))]
pub struct NewUser {
    /// The sign-in email, unique within the tenant.
    pub email: Email,
    /// The display name.
    pub display_name: Name,
    /// Ids of the roles the user holds.
    #[serde(default)]
    pub roles: Vec<RoleId>,
    /// A first password, 12 to 256 characters; without one the user cannot sign in until one is
    /// set.
    #[serde(default)]
    #[schema(min_length = 12, max_length = 256, format = Password)]
    pub password: Option<String>,
}

/// A staff user's new name, roles and active flag.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "display_name": "Theo Technician", "roles": [], "active": true }))]
pub struct UserUpdate {
    /// The display name.
    pub display_name: Name,
    /// Ids of the roles the user holds, all of them.
    pub roles: Vec<RoleId>,
    /// Whether the user may act; `false` also ends every session of theirs.
    pub active: bool,
}

/// A staff user's new password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "password": "correct horse battery staple" }))]
pub struct PasswordRequest {
    /// The password, 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256, format = Password)]
    pub password: String,
}

fn refused(e: CommandError) -> ApiError {
    ApiError::Service(ServiceError::Command(e))
}

fn storage(e: StorageError) -> ApiError {
    ApiError::Service(ServiceError::Storage(e))
}

/// `authorize` as a command error (the engine's own `allow` is not public).
fn allow(principal: &Principal, action: Action, resource: &Resource) -> Result<(), ApiError> {
    authorize(principal, action, resource).map_err(|e| refused(CommandError::Access(e)))
}

fn password(text: String) -> Result<Password, ApiError> {
    Password::new(text).map_err(|e| refused(CommandError::Value(e)))
}

/// Sets a password (hashed on the blocking pool) and ends the user's sessions.
async fn store_password(
    state: &AppState,
    staff: &Staff,
    user: StaffUserId,
    password: Password,
) -> Result<(), ApiError> {
    crate::setup::set_password(state, staff.tenant(), user, password)
        .await
        .map_err(|e| match e.downcast::<StorageError>() {
            Ok(e) => storage(e),
            Err(other) => storage(StorageError::Backend(other.into())),
        })
}

/// The tenant and its settings.
#[utoipa::path(
    get,
    path = "/api/v1/tenant",
    tag = "admin",
    responses(
        (status = 200, description = "The tenant.", body = Tenant, headers(("ETag" = String, description = "The version."))),
        (status = 401, description = "No valid session.", body = ErrorBody),
    )
)]
async fn get_tenant(State(state): State<AppState>, staff: Staff) -> Result<Tagged<Tenant>, ApiError> {
    let t = state.engine.get_tenant(&staff.principal).await?;
    Ok(Tagged(t.version, t))
}

/// Changes the tenant's name and settings.
#[utoipa::path(
    put,
    path = "/api/v1/tenant",
    tag = "admin",
    params(("If-Match" = String, Header, description = "The ETag last read.")),
    request_body = TenantRequest,
    responses(
        (status = 200, description = "The changed tenant.", body = Tenant, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad `If-Match` (`invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_settings` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 412, description = "The tenant changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`, e.g. an unknown time zone).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_tenant(
    State(state): State<AppState>,
    staff: Staff,
    IfMatch(version): IfMatch,
    Json(request): Json<TenantRequest>,
) -> Result<Tagged<Tenant>, ApiError> {
    let t = state
        .engine
        .edit_tenant(
            &staff.principal,
            version,
            portal_core::commands::admin::TenantChanges {
                name: request.name,
                settings: request.settings,
                link_settings: request.link_settings,
                branding: request.branding,
                notification_settings: request.notification_settings,
            },
        )
        .await?;
    Ok(Tagged(t.version, t))
}

/// The host names the tenant is served at (BRD-2), sorted.
#[utoipa::path(
    get,
    path = "/api/v1/tenant/hosts",
    tag = "admin",
    responses(
        (status = 200, description = "Every host name of the tenant (a tenant has few).", body = Vec<String>),
        (status = 401, description = "No valid session.", body = ErrorBody),
    )
)]
async fn list_hosts(State(state): State<AppState>, staff: Staff) -> Result<Json<Vec<String>>, ApiError> {
    let tenant = staff.tenant();
    allow(&staff.principal, Action::ReadTenant, &Resource::Tenant { tenant })?;
    Ok(Json(state.storage.list_tenant_hosts(tenant).await.map_err(storage)?))
}

/// Maps a host name to the tenant (BRD-2): requests to it are then served as this tenant's.
/// Adding a host the tenant already has changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/tenant/hosts",
    tag = "admin",
    request_body = HostRequest,
    responses(
        (status = 201, description = "Mapped; the host name as stored.", body = HostRequest),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_settings` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 409, description = "Another tenant has this host name (`already_exists`).", body = ErrorBody),
        (status = 422, description = "Not a host name (`invalid_value`), or a bad body (`invalid_body`).", body = ErrorBody),
    )
)]
async fn add_host(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<HostRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = staff.tenant();
    allow(&staff.principal, Action::ManageSettings, &Resource::Tenant { tenant })?;
    let host = auth::normalise_host(&request.host).ok_or_else(|| {
        refused(CommandError::Value(ValueError::InvalidCharacters {
            field: "host",
            allowed: "a host name: ASCII letters, digits, `.` and `-`, at most 253 characters",
        }))
    })?;
    state
        .storage
        .add_tenant_host(tenant, &host)
        .await
        .map_err(storage)?
        .map_err(refused)?;
    tracing::info!(%tenant, %host, "host name mapped");
    Ok((StatusCode::CREATED, Json(HostRequest { host })))
}

/// The tenant's roles, by name.
#[utoipa::path(
    get,
    path = "/api/v1/roles",
    tag = "admin",
    responses(
        (status = 200, description = "Every role of the tenant, not paged (a tenant has few).", body = Vec<Role>),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` or `manage_users` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_roles(State(state): State<AppState>, staff: Staff) -> Result<Json<Vec<Role>>, ApiError> {
    Ok(Json(state.engine.list_roles(&staff.principal).await?))
}

/// Creates a role.
#[utoipa::path(
    post,
    path = "/api/v1/roles",
    tag = "admin",
    request_body = RoleRequest,
    responses(
        (status = 201, description = "Created.", body = Role, headers(("ETag" = String, description = "The version."))),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_users` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 409, description = "A role with this name exists (`already_exists`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
    )
)]
async fn create_role(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<RoleRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = state
        .engine
        .create_role(&staff.principal, request.name, request.permissions)
        .await?;
    let r = state.engine.get_role(&staff.principal, id).await?;
    Ok((StatusCode::CREATED, Tagged(r.version, r)))
}

/// A role.
#[utoipa::path(
    get,
    path = "/api/v1/roles/{role_id}",
    tag = "admin",
    params(("role_id" = RoleId, Path, description = "The role.")),
    responses(
        (status = 200, description = "The role.", body = Role, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` or `manage_users` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such role (`not_found`).", body = ErrorBody),
    )
)]
async fn get_role(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RoleId>,
) -> Result<Tagged<Role>, ApiError> {
    let r = state.engine.get_role(&staff.principal, id).await?;
    Ok(Tagged(r.version, r))
}

/// Renames a role or changes its permissions; its holders' permissions change with it.
#[utoipa::path(
    put,
    path = "/api/v1/roles/{role_id}",
    tag = "admin",
    params(
        ("role_id" = RoleId, Path, description = "The role."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "The changed role.", body = Role, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_users` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such role (`not_found`).", body = ErrorBody),
        (status = 409, description = "Another role has this name (`already_exists`).", body = ErrorBody),
        (status = 412, description = "The role changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_role(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RoleId>,
    IfMatch(version): IfMatch,
    Json(request): Json<RoleRequest>,
) -> Result<Tagged<Role>, ApiError> {
    let r = state
        .engine
        .update_role(&staff.principal, id, version, request.name, request.permissions)
        .await?;
    Ok(Tagged(r.version, r))
}

/// Staff users ordered by id.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "admin",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of staff users.", body = Page<StaffUser>),
        (status = 400, description = "A bad query or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` or `manage_users` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    staff: Staff,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<StaffUser>>, ApiError> {
    let items = state.engine.list_staff_users(&staff.principal, page.request()?).await?;
    Ok(Json(page.page(items, |u| u.id)))
}

/// Creates a staff user, with a first password when one is given.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "admin",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created.", body = StaffUser, headers(("ETag" = String, description = "The version."))),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_users` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 404, description = "A role id names no role of the tenant (`not_found`).", body = ErrorBody),
        (status = 409, description = "A user with this email exists (`already_exists`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or a password too short or too long (`invalid_value`).", body = ErrorBody),
    )
)]
async fn create_user(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    // Checked here too (the engine checks again) so that a refusal wins over a bad password, which
    // must be refused before the user is created.
    let tenant = staff.tenant();
    allow(&staff.principal, Action::ManageUsers, &Resource::Tenant { tenant })?;
    let first_password = request.password.map(password).transpose()?;
    let id = state
        .engine
        .create_staff_user(&staff.principal, request.email, request.display_name, &request.roles)
        .await?;
    if let Some(p) = first_password {
        store_password(&state, &staff, id, p).await?;
    }
    let u = state.engine.get_staff_user(&staff.principal, id).await?;
    Ok((StatusCode::CREATED, Tagged(u.version, u)))
}

/// A staff user.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    tag = "admin",
    params(("user_id" = StaffUserId, Path, description = "The staff user.")),
    responses(
        (status = 200, description = "The staff user.", body = StaffUser, headers(("ETag" = String, description = "The version."))),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` or `manage_users` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such staff user (`not_found`).", body = ErrorBody),
    )
)]
async fn get_user(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<StaffUserId>,
) -> Result<Tagged<StaffUser>, ApiError> {
    let u = state.engine.get_staff_user(&staff.principal, id).await?;
    Ok(Tagged(u.version, u))
}

/// Changes a staff user's name, roles or active flag. Deactivating a user ends every session of
/// theirs.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user_id}",
    tag = "admin",
    params(
        ("user_id" = StaffUserId, Path, description = "The staff user."),
        ("If-Match" = String, Header, description = "The ETag last read."),
    ),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The changed staff user.", body = StaffUser, headers(("ETag" = String, description = "The new version."))),
        (status = 400, description = "A bad id or `If-Match` (`invalid_path`, `invalid_if_match`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_users` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such staff user, or a role id names no role of the tenant (`not_found`).", body = ErrorBody),
        (status = 412, description = "The user changed since it was read (`stale_version`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`).", body = ErrorBody),
        (status = 428, description = "No `If-Match` (`precondition_required`).", body = ErrorBody),
    )
)]
async fn update_user(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<StaffUserId>,
    IfMatch(version): IfMatch,
    Json(request): Json<UserUpdate>,
) -> Result<Tagged<StaffUser>, ApiError> {
    let update = StaffUserUpdate {
        display_name: request.display_name,
        roles: request.roles,
        active: request.active,
    };
    let u = state
        .engine
        .update_staff_user(&staff.principal, id, version, update)
        .await?;
    if !u.active {
        let ended = state
            .storage
            .delete_staff_sessions_of(u.tenant_id, u.id)
            .await
            .map_err(storage)?;
        tracing::info!(user = %u.id, sessions = ended, "staff user deactivated; sessions ended");
    }
    Ok(Tagged(u.version, u))
}

/// Sets a staff user's password; every session of theirs ends.
#[utoipa::path(
    put,
    path = "/api/v1/users/{user_id}/password",
    tag = "admin",
    params(("user_id" = StaffUserId, Path, description = "The staff user.")),
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Set; the user's sessions have ended."),
        (status = 400, description = "The id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_users` (`forbidden`), or the CSRF token is missing (`csrf_token_invalid`).", body = ErrorBody),
        (status = 404, description = "No such staff user (`not_found`).", body = ErrorBody),
        (status = 422, description = "A bad body (`invalid_body`), or a password too short or too long (`invalid_value`).", body = ErrorBody),
    )
)]
async fn set_user_password(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<StaffUserId>,
    Json(request): Json<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let user = state.engine.get_staff_user(&staff.principal, id).await?;
    allow(
        &staff.principal,
        Action::ManageUsers,
        &Resource::Tenant { tenant: user.tenant_id },
    )?;
    let new_password = password(request.password)?;
    store_password(&state, &staff, user.id, new_password).await?;
    tracing::info!(user = %user.id, "staff user's password set");
    Ok(StatusCode::NO_CONTENT)
}
