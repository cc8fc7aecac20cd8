//! Who is asking: the tenant by host (BRD-2) and the staff session (AUTH-6).
//!
//! - [`TenantHost`] resolves the request's `Host` to a tenant through the tenant host table; a
//!   local host (`localhost`, `127.0.0.1`, `[::1]`) falls back to the configured default tenant;
//!   any other host is answered 404 `unknown_host`.
//! - [`Staff`] authenticates a staff session carried as `Authorization: Bearer <token>` or as the
//!   [`SESSION_COOKIE`] cookie. A cookie-carried unsafe request (anything but GET, HEAD, OPTIONS)
//!   must also send the session's CSRF token in [`CSRF_HEADER`]; a bearer token is not sent by
//!   browsers on their own, so it needs none.
//! - `POST /api/v1/auth/sign-in` checks the password with argon2id on the blocking pool, counts
//!   the attempt per account and per client address first, and answers a wrong password and an
//!   unknown email alike, in about the same time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use portal_core::auth::{self, Password, SecretToken, StaffSession, TokenHash};
use portal_core::id::{PortalId, StaffUserId, TenantId};
use portal_core::policy::{Principal, StaffPrincipal};
use portal_core::tenant::{PermissionSet, StaffUser};

use portal_core::value::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, Json};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "portal_session";
/// The contact session cookie's name (CON-4), set by `POST /api/v1/access`.
pub const CONTACT_SESSION_COOKIE: &str = "portal_contact_session";
/// The header a cookie-carried unsafe request sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The tenant the request's host belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantHost(pub TenantId);

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.ends_with(".localhost")
}

impl FromRequestParts<AppState> for TenantHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(t) = parts.extensions.get::<Self>() {
            return Ok(*t);
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.host())
            .and_then(auth::normalise_host)
            .ok_or(ApiError::UnknownHost)?;
        let tenant = match state
            .storage
            .tenant_for_host(&host)
            .await
            .map_err(|e| ApiError::Service(e.into()))?
        {
            Some(t) => t,
            None if is_local(&host) => state.settings.default_tenant.ok_or(ApiError::UnknownHost)?,
            None => return Err(ApiError::UnknownHost),
        };
        parts.extensions.insert(Self(tenant));
        Ok(Self(tenant))
    }
}

/// How the session token came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Bearer,
    Cookie,
}

pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn presented_token<'h>(headers: &'h HeaderMap, cookie_name: &str) -> Option<(&'h str, Carrier)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        let token = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, t)| t.trim());
        return Some((token, Carrier::Bearer));
    }
    cookie(headers, cookie_name).map(|t| (t, Carrier::Cookie))
}

/// Refuses a cookie-carried unsafe request without the CSRF token derived from `token`.
fn check_csrf(parts: &Parts, carrier: Carrier, token: &SecretToken) -> Result<(), ApiError> {
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if carrier == Carrier::Cookie && unsafe_method {
        let sent = parts.headers.get(CSRF_HEADER).map_or(&b""[..], HeaderValue::as_bytes);
        if !constant_time_eq(sent, token.derive("csrf").as_bytes()) {
            return Err(ApiError::CsrfTokenInvalid);
        }
    }
    Ok(())
}

/// Compares two strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in staff user: the principal every handler passes to the engine.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The principal, with the union of the user's roles' permissions.
    pub principal: Principal,
    /// The user.
    pub user_id: StaffUserId,
    /// The session's stored hash.
    pub session: TokenHash,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

impl Staff {
    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> TenantId {
        self.principal.tenant_id()
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let TenantHost(tenant) = TenantHost::from_request_parts(parts, state).await?;
        let (text, carrier) = presented_token(&parts.headers, SESSION_COOKIE).ok_or(ApiError::Unauthenticated)?;
        let token = SecretToken::parse(text).map_err(|_| ApiError::InvalidSession)?;
        let session = state
            .storage
            .staff_session(tenant, &token.hash())
            .await
            .map_err(|e| ApiError::Service(e.into()))?
            .ok_or(ApiError::InvalidSession)?;
        if !session.is_live(state.clock.now()) {
            return Err(ApiError::SessionExpired);
        }
        check_csrf(parts, carrier, &token)?;
        let storage_error = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
        let user = state
            .storage
            .get_staff_user(tenant, session.user_id)
            .await
            .map_err(storage_error)?
            .filter(|u| u.active)
            .ok_or(ApiError::InvalidSession)?;
        let roles = state.storage.list_roles(tenant).await.map_err(storage_error)?;
        let principal = Principal::Staff(StaffPrincipal {
            tenant_id: tenant,
            user_id: user.id,
            permissions: user.permissions(&roles),
            email: user.email,
        });
        Ok(Self {
            principal,
            user_id: session.user_id,
            session: session.token_hash,
            expires_at: session.expires_at,
        })
    }
}

/// A contact with a live contact session (CON-4), scoped to one portal: the principal contact
/// handlers pass to the engine. The session is carried like a staff session (`Authorization:
/// Bearer <token>`, or the [`CONTACT_SESSION_COOKIE`] cookie with [`CSRF_HEADER`] on unsafe
/// requests) and looked up by (tenant of the host, hash); each use rolls it for 24 hours. A
/// staff session token is not a contact session: 401 `invalid_session`.
#[derive(Debug, Clone)]
pub struct Contact {
    /// The contact's principal.
    pub principal: Principal,
    /// The one portal the session opens.
    pub portal_id: PortalId,
    /// The session's stored hash.
    pub session: TokenHash,
    /// When the session ends unless used again.
    pub expires_at: DateTime<Utc>,
}

impl FromRequestParts<AppState> for Contact {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let TenantHost(tenant) = TenantHost::from_request_parts(parts, state).await?;
        let (text, carrier) =
            presented_token(&parts.headers, CONTACT_SESSION_COOKIE).ok_or(ApiError::Unauthenticated)?;
        let token = SecretToken::parse(text).map_err(|_| ApiError::InvalidSession)?;
        check_csrf(parts, carrier, &token)?;
        let (session, principal) = state
            .engine
            .contact_session(tenant, &token.hash())
            .await?
            .ok_or(ApiError::InvalidSession)?;
        Ok(Self {
            principal,
            portal_id: session.portal_id,
            session: session.token_hash,
            expires_at: session.expires_at,
        })
    }
}

/// The `Set-Cookie` value of a contact session: HttpOnly, SameSite=Lax, Secure on https; a
/// browser-session cookie (the server rolls the session itself), or cleared with `clear`.
pub(crate) fn contact_session_cookie(value: &str, clear: bool, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = if clear { "; Max-Age=0" } else { "" };
    format!("{CONTACT_SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax{max_age}{secure}")
}

/// The client's address (the peer of the connection), for the per-address sign-in limit. Behind
/// a reverse proxy every client shares the proxy's address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// The staff routes of `/api/v1/auth`.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(current_session))
        .routes(routes!(change_password))
        .routes(routes!(request_password_reset))
        .routes(routes!(reset_password))
}

/// A sign-in request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignIn {
    /// The staff user's email.
    pub email: Email,
    /// The password.
    #[schema(max_length = 256, format = Password)]
    pub password: String,
}

/// A staff user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StaffUserView {
    /// The user.
    #[serde(flatten)]
    pub user: StaffUser,
    /// The effective permissions (the union of the user's roles').
    #[schema(value_type = Vec<portal_core::tenant::Permission>)]
    pub permissions: PermissionSet,
}

/// A session: the token is only ever shown here, once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session token, for `Authorization: Bearer <token>`; also set as the session cookie.
    pub token: String,
    /// The CSRF token a cookie-carried unsafe request sends in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: StaffUserView,
}

/// The current session, without its token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionInfo {
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: StaffUserView,
}

/// Counts one attempt under each key in the current 15-minute window (every key, so no counter
/// skips an attempt) and refuses with 429 `too_many_attempts` when any count is over its limit.
pub(crate) async fn limit_attempts(
    state: &AppState,
    tenant: TenantId,
    limits: &[(&str, u32)],
    what: &'static str,
) -> Result<(), ApiError> {
    let now = state.clock.now();
    let window = auth::sign_in_window(now);
    let mut over = None;
    for (key, limit) in limits {
        let count = state
            .storage
            .count_sign_in_attempt(tenant, key, window, now)
            .await
            .map_err(|e| ApiError::Service(e.into()))?;
        if count > *limit {
            over.get_or_insert((*key, count));
        }
    }
    if let Some((key, count)) = over {
        tracing::warn!(key, count, "{what} over the limit");
        return Err(ApiError::TooManyAttempts {
            retry_after_seconds: auth::retry_after_seconds(now),
        });
    }
    Ok(())
}

/// Sets a staff user's password (every session of theirs ends), storage failures as API errors.
async fn store_password(
    state: &AppState,
    tenant: TenantId,
    user: StaffUserId,
    password: Password,
) -> Result<(), ApiError> {
    let service = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
    crate::setup::set_password(state, tenant, user, password)
        .await
        .map_err(|e| match e.downcast::<portal_core::storage::StorageError>() {
            Ok(e) => service(e),
            Err(other) => service(portal_core::storage::StorageError::Backend(other.into())),
        })
}

/// Signs a staff user in with email and password.
#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-in",
    tag = "auth",
    security(()),
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the session cookie is set.", body = SessionCreated),
        (status = 401, description = "Wrong email or password (`invalid_credentials`).", body = ErrorBody),
        (status = 404, description = "No tenant at this host (`unknown_host`).", body = ErrorBody),
        (status = 422, description = "The body is not a sign-in request (`invalid_body`).", body = ErrorBody),
        (status = 429, description = "Too many attempts for this account or address (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn sign_in(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    ClientAddr(address): ClientAddr,
    Json(request): Json<SignIn>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    if request.password.chars().count() > auth::MAX_PASSWORD_CHARS {
        return Err(ApiError::InvalidCredentials);
    }
    let storage = &state.storage;
    let service = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
    let limits = [
        (auth::address_key(address), auth::SIGN_IN_LIMIT_PER_ADDRESS),
        (auth::account_key(&request.email), auth::SIGN_IN_LIMIT_PER_ACCOUNT),
    ];
    let limits: Vec<(&str, u32)> = limits.iter().map(|(k, l)| (k.as_str(), *l)).collect();
    limit_attempts(&state, tenant, &limits, "sign-in attempts").await?;
    let user = storage
        .find_staff_user_by_email(tenant, &request.email)
        .await
        .map_err(service)?;
    let stored = match &user {
        Some(u) => storage.password_hash(tenant, u.id).await.map_err(service)?,
        None => None,
    };
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || match &stored {
        Some(hash) => auth::verify_password(&password, hash),
        None => {
            // The same work for an unknown account as for a wrong password.
            let _ = auth::verify_password(&password, auth::decoy_password_hash());
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|u| matches && u.active) else {
        return Err(ApiError::InvalidCredentials);
    };
    let response = start_session(&state, tenant, user, now).await?;
    let _removed = storage.delete_expired_staff_sessions(now).await;
    Ok(response)
}

/// Starts a session for `user` and answers it: the token once in the body, the cookie, no caching.
async fn start_session(
    state: &AppState,
    tenant: TenantId,
    user: StaffUser,
    now: DateTime<Utc>,
) -> Result<Response, ApiError> {
    let mut bytes = [0u8; 32];
    state.entropy.fill(&mut bytes);
    let token = SecretToken::from_bytes(bytes);
    let session = StaffSession::start(&token, tenant, user.id, now);
    state
        .storage
        .insert_staff_session(&session)
        .await
        .map_err(|e| ApiError::Service(e.into()))?;
    let view = user_view(state, user).await?;
    tracing::info!(user = %view.user.id, "staff session started");
    let body = SessionCreated {
        token: token.encode(),
        csrf_token: token.derive("csrf"),
        expires_at: session.expires_at,
        user: view,
    };
    let cookie = session_cookie(
        &token.encode(),
        auth::STAFF_SESSION_LIFETIME.num_seconds(),
        state.settings.secure_cookies,
    );
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A staff user's change of their own password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "current_password": "correct horse battery staple", "new_password": "a much longer passphrase" }))]
pub struct PasswordChange {
    /// The password now.
    #[schema(max_length = 256, format = Password)]
    pub current_password: String,
    /// The new password, 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256, format = Password)]
    pub new_password: String,
}

/// Changes the signed-in user's own password. Every session of the user ends (others' devices
/// included) and a new session is answered, as by sign-in. The current password is checked under
/// the same per-account limit as sign-in.
#[utoipa::path(
    put,
    path = "/api/v1/auth/password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; a new session (every earlier one has ended).", body = SessionCreated),
        (status = 401, description = "No valid session, or the current password is wrong (`invalid_credentials`).", body = ErrorBody),
        (status = 403, description = "A cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
        (status = 422, description = "The new password is too short or too long (`invalid_value`).", body = ErrorBody),
        (status = 429, description = "Too many attempts for this account (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    staff: Staff,
    Json(request): Json<PasswordChange>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let tenant = staff.tenant();
    let service = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
    let new_password = Password::new(request.new_password)
        .map_err(|e| ApiError::Service(portal_core::CommandError::Value(e).into()))?;
    let user = state
        .storage
        .get_staff_user(tenant, staff.user_id)
        .await
        .map_err(service)?
        .ok_or(ApiError::InvalidSession)?;
    let account = auth::account_key(&user.email);
    limit_attempts(
        &state,
        tenant,
        &[(&account, auth::SIGN_IN_LIMIT_PER_ACCOUNT)],
        "password changes",
    )
    .await?;
    let stored = state.storage.password_hash(tenant, user.id).await.map_err(service)?;
    let current = request.current_password;
    let matches = tokio::task::spawn_blocking(move || {
        current.chars().count() <= auth::MAX_PASSWORD_CHARS
            && stored.is_some_and(|hash| auth::verify_password(&current, &hash))
    })
    .await
    .unwrap_or(false);
    if !matches {
        return Err(ApiError::InvalidCredentials);
    }
    store_password(&state, tenant, user.id, new_password).await?;
    tracing::info!(user = %user.id, "staff user changed their password");
    start_session(&state, tenant, user, now).await
}

/// A request for a password reset link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "email": "ada@msp.example.com" }))]
pub struct PasswordResetRequest {
    /// The staff user's email.
    pub email: Email,
}

/// Mails a password reset link to the staff user with this email in the tenant of the host, if
/// there is an active one. Every request answers the same `202`, whether or not the address
/// belongs to anyone (and in the same time: the mail is queued, not sent, here). Requests are
/// counted per address and per account like sign-in attempts. The link (`{public_url}/reset-password/{token}`)
/// works for an hour, once: it stops working as soon as the password changes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    security(()),
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If the address belongs to an active staff user, a link is on its way."),
        (status = 404, description = "No tenant at this host (`unknown_host`).", body = ErrorBody),
        (status = 422, description = "Not an email address (`invalid_body`).", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or for this account (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn request_password_reset(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    ClientAddr(address): ClientAddr,
    Json(request): Json<PasswordResetRequest>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let storage = &state.storage;
    let service = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
    let by_address = auth::address_key(address);
    let by_account = format!("reset:{}", request.email.as_str());
    // Fewer per account than sign-in: each one is a mail to someone's inbox.
    let limits = [
        (by_address.as_str(), auth::SIGN_IN_LIMIT_PER_ADDRESS),
        (by_account.as_str(), PASSWORD_RESETS_PER_ACCOUNT),
    ];
    limit_attempts(&state, tenant, &limits, "password reset requests").await?;
    let user = storage
        .find_staff_user_by_email(tenant, &request.email)
        .await
        .map_err(service)?
        .filter(|u| u.active);
    if let Some(user) = user {
        let hash = storage.password_hash(tenant, user.id).await.map_err(service)?;
        let expires = now + auth::PASSWORD_RESET_LIFETIME;
        let token = auth::password_reset_token(&state.master_key, tenant, user.id, expires, hash.as_deref());
        state.engine.queue_password_reset(&user, token, expires).await?;
        tracing::info!(user = %user.id, "password reset link queued");
    }
    Ok(StatusCode::ACCEPTED)
}

/// Password reset requests allowed per account in one 15-minute window.
pub const PASSWORD_RESETS_PER_ACCOUNT: u32 = 3;

/// A new password set with a reset link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "token": "…", "new_password": "a much longer passphrase" }))]
pub struct PasswordReset {
    /// The token of the mailed link.
    #[schema(max_length = 64)]
    pub token: String,
    /// The new password, 12 to 256 characters.
    #[schema(min_length = 12, max_length = 256, format = Password)]
    pub new_password: String,
}

/// Sets a new password with the token of a mailed reset link: every session of the user ends,
/// the link stops working (it was bound to the old password), and a new session is answered, as
/// by sign-in. Every link that resets nothing answers the same `400 reset_link_invalid`; tries
/// are counted per address like sign-in attempts.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    security(()),
    request_body = PasswordReset,
    responses(
        (status = 200, description = "Set; a new session (every earlier one has ended).", body = SessionCreated),
        (status = 400, description = "The link is malformed, expired, used or not this tenant's (`reset_link_invalid`).", body = ErrorBody),
        (status = 404, description = "No tenant at this host (`unknown_host`).", body = ErrorBody),
        (status = 422, description = "The new password is too short or too long (`invalid_value`).", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn reset_password(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    ClientAddr(address): ClientAddr,
    Json(request): Json<PasswordReset>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let storage = &state.storage;
    let service = |e| ApiError::Service(portal_core::service::ServiceError::Storage(e));
    let by_address = auth::address_key(address);
    limit_attempts(
        &state,
        tenant,
        &[(&by_address, auth::SIGN_IN_LIMIT_PER_ADDRESS)],
        "password reset confirmations",
    )
    .await?;
    let new_password = Password::new(request.new_password)
        .map_err(|e| ApiError::Service(portal_core::CommandError::Value(e).into()))?;
    let (user_id, _) = auth::password_reset_claims(&request.token).ok_or(ApiError::ResetLinkInvalid)?;
    let user = storage
        .get_staff_user(tenant, user_id)
        .await
        .map_err(service)?
        .filter(|u| u.active)
        .ok_or(ApiError::ResetLinkInvalid)?;
    let hash = storage.password_hash(tenant, user.id).await.map_err(service)?;
    if !auth::password_reset_ok(&state.master_key, tenant, &request.token, hash.as_deref(), now) {
        return Err(ApiError::ResetLinkInvalid);
    }
    store_password(&state, tenant, user.id, new_password).await?;
    tracing::info!(user = %user.id, "staff user reset their password with a mailed link");
    start_session(&state, tenant, user, now).await
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

async fn user_view(state: &AppState, user: StaffUser) -> Result<StaffUserView, ApiError> {
    let roles = state
        .storage
        .list_roles(user.tenant_id)
        .await
        .map_err(|e| ApiError::Service(e.into()))?;
    let permissions = user.permissions(&roles);
    Ok(StaffUserView { user, permissions })
}

/// Ends the current session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/sign-out",
    tag = "auth",
    responses(
        (status = 204, description = "Signed out; the session no longer works and the cookie is cleared."),
        (status = 401, description = "No valid session (`unauthenticated`, `invalid_session`, `session_expired`).", body = ErrorBody),
        (status = 403, description = "A cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
    )
)]
async fn sign_out(State(state): State<AppState>, staff: Staff) -> Result<Response, ApiError> {
    state
        .storage
        .delete_staff_session(staff.tenant(), &staff.session)
        .await
        .map_err(|e| ApiError::Service(e.into()))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie("", 0, state.settings.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The signed-in user and when the session ends.
#[utoipa::path(
    get,
    path = "/api/v1/auth/session",
    tag = "auth",
    responses(
        (status = 200, description = "The current session.", body = SessionInfo),
        (status = 401, description = "No valid session (`unauthenticated`, `invalid_session`, `session_expired`).", body = ErrorBody),
    )
)]
async fn current_session(State(state): State<AppState>, staff: Staff) -> Result<Json<SessionInfo>, ApiError> {
    let user = state
        .storage
        .get_staff_user(staff.tenant(), staff.user_id)
        .await
        .map_err(|e| ApiError::Service(e.into()))?
        .ok_or(ApiError::InvalidSession)?;
    Ok(Json(SessionInfo {
        expires_at: staff.expires_at,
        user: user_view(&state, user).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_found() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; portal_session=abc ; b=2"),
        );
        assert_eq!(presented_token(&h, SESSION_COOKIE), Some(("abc", Carrier::Cookie)));
        assert_eq!(presented_token(&h, CONTACT_SESSION_COOKIE), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(presented_token(&h, SESSION_COOKIE), Some(("xyz", Carrier::Bearer)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_token(&h, SESSION_COOKIE), Some(("", Carrier::Bearer)));
    }

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_on_https() {
        let c = session_cookie("t", 60, true);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"),
            "{c}"
        );
        assert!(!session_cookie("t", 60, false).contains("Secure"));
        let c = contact_session_cookie("t", false, true);
        assert!(
            c.starts_with("portal_contact_session=t;")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Lax")
                && c.ends_with("; Secure"),
            "{c}"
        );
        assert!(contact_session_cookie("", true, false).contains("Max-Age=0"));
    }

    #[test]
    fn constant_time_comparison_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
