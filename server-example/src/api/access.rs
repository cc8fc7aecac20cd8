//! Contact access links and contact sessions (CON-2 to CON-5, ONB-4, ONB-5, BYD-4).
//!
//! Staff (`manage_onboarding`) issue a contact's access link, issue another ("resend": earlier
//! links keep working until they expire), regenerate (every earlier link and session of the
//! contact dies, one new link) or revoke (every link and session dies at once); `read_onboarding`
//! lists a contact's links, never with a token or hash. Links are issued only for an `active`
//! portal (409 `wrong_portal_status`). Until invitation mail exists, the token is shown once, in
//! the answer that issued it, with the link's URL (`{public_url}/access/{token}`); only its
//! SHA-256 is stored.
//!
//! A contact opens a link with `POST /api/v1/access` (public by design): a contact session of
//! that one portal, answered once as a bearer token and set as the `portal_contact_session`
//! cookie. Every kind of bad link (malformed, unknown, expired, revoked, another tenant's, a
//! portal not live, a removed contact) answers the same 404 `link_not_found`. Opening is counted
//! per client address in the sign-in counters (key `access:<address>`, at most
//! `access_limit_per_address` per 15 minutes, then 429; the setting
//! `PORTAL_ACCESS_LIMIT_PER_ADDRESS`, [`ACCESS_LIMIT_PER_ADDRESS`] by default). Routes under
//! `/api/v1/contact/` take the contact session only: a staff token there is 401.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use portal_core::access::{
    AccessLink, ContactSession, VERIFIED_BROWSER_LIFETIME, verified_browser_cookie_name, verified_browser_ok,
    verified_browser_value,
};
use portal_core::auth::SecretToken;
use portal_core::client_view::ClientPortal;
use portal_core::id::{AccessLinkId, ContactId, PortalId, TenantId};
use portal_core::service::{CodeVerdict, IssuedLink, OpenedSession};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::Tagged;
use crate::app::AppState;
use crate::auth::{ClientAddr, Contact, Staff, TenantHost, contact_session_cookie};
use crate::error::{ApiError, ErrorBody, Json, Path};

/// Link openings allowed per client address in one 15-minute window, unless the server is
/// configured otherwise (`PORTAL_ACCESS_LIMIT_PER_ADDRESS`).
pub const ACCESS_LIMIT_PER_ADDRESS: u32 = 30;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_links, issue_link))
        .routes(routes!(regenerate_link))
        .routes(routes!(revoke_access))
        .routes(routes!(open_link))
        .routes(routes!(verify_code))
        .routes(routes!(contact_portal))
        .routes(routes!(contact_access))
        .routes(routes!(contact_sign_out))
        .routes(routes!(contact_sign_out_everywhere))
}

/// Whether a link opens the portal now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not revoked, not expired: it opens the portal while the portal is active.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked (by revoke, regenerate or archiving the portal).
    Revoked,
}

/// An access link as staff and its contact see it: never its token or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LinkView {
    /// The link.
    pub id: AccessLinkId,
    /// The contact it is for.
    pub contact_id: ContactId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops opening the portal.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its state now.
    pub state: LinkState,
}

impl LinkView {
    fn of(link: &AccessLink, now: DateTime<Utc>) -> Self {
        let state = if link.revoked_at.is_some() {
            LinkState::Revoked
        } else if link.is_usable(now) {
            LinkState::Active
        } else {
            LinkState::Expired
        };
        Self {
            id: link.id,
            contact_id: link.contact_id,
            created_at: link.created_at,
            expires_at: link.expires_at,
            revoked_at: link.revoked_at,
            state,
        }
    }
}

/// A link just issued. The token is shown here once and never again: only its hash is stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkIssued {
    /// The link.
    pub link: LinkView,
    /// The link's token (43 base64url characters), for `POST /api/v1/access`.
    pub token: String,
    /// The link to send the contact: `{public_url}/access/{token}`.
    pub url: String,
}

/// A request to open an access link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(example = json!({ "token": "q3bB0yqN2mJ1cZ8x4lE5uV7wR9tY0aS2dF4gH6jK8lM" }))]
pub struct OpenLinkRequest {
    /// The token of the link (the last part of its URL).
    #[schema(max_length = 256)]
    pub token: String,
}

/// A contact session just started. The token is shown here once; it is also set as the
/// `portal_contact_session` cookie.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactSessionCreated {
    /// The session token, for `Authorization: Bearer <token>` on `/api/v1/contact/` routes.
    pub session_token: String,
    /// The CSRF token a cookie-carried unsafe request sends in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends unless used again (each use rolls it for 24 hours).
    pub expires_at: DateTime<Utc>,
    /// The one portal the session opens.
    pub portal_id: PortalId,
}

/// A contact session as its contact sees it, without its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactSessionView {
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last use.
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless used again.
    pub expires_at: DateTime<Utc>,
    /// Whether it is the session of this request.
    pub current: bool,
}

/// A contact's own links and live sessions (BYD-4).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactAccess {
    /// Every link issued to the contact, oldest first.
    pub links: Vec<LinkView>,
    /// The contact's live sessions, oldest first.
    pub sessions: Vec<ContactSessionView>,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn issued(state: &AppState, issued: &IssuedLink) -> Response {
    let token = issued.token.encode();
    let body = LinkIssued {
        link: LinkView::of(&issued.link, state.clock.now()),
        url: format!("{}/access/{token}", state.settings.public_url),
        token,
    };
    no_store((StatusCode::CREATED, Json(body)).into_response())
}

/// The links of a contact, oldest first, revoked and expired ones too; never a token or hash.
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}/links",
    tag = "access",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
    ),
    responses(
        (status = 200, description = "The contact's links.", body = Vec<LinkView>),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
    )
)]
async fn list_links(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
) -> Result<Json<Vec<LinkView>>, ApiError> {
    let links = state
        .engine
        .list_access_links(&staff.principal, portal, contact)
        .await?;
    let now = state.clock.now();
    Ok(Json(links.iter().map(|l| LinkView::of(l, now)).collect()))
}

/// Issues an access link for a contact of an active portal; also "resend": the links issued
/// before keep working until they expire. The token is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}/links",
    tag = "access",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
    ),
    responses(
        (status = 201, description = "The new link with its token and URL, shown once.", body = LinkIssued),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`).", body = ErrorBody),
    )
)]
async fn issue_link(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
) -> Result<Response, ApiError> {
    let link = state
        .engine
        .issue_access_link(&staff.principal, portal, contact)
        .await?;
    Ok(issued(&state, &link))
}

/// Regenerates a contact's access: every earlier link and session of the contact stops working
/// at once and one new link is issued. The token is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}/links/regenerate",
    tag = "access",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
    ),
    responses(
        (status = 201, description = "The new link with its token and URL, shown once.", body = LinkIssued),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
        (status = 409, description = "The portal is not `active` (`wrong_portal_status`).", body = ErrorBody),
    )
)]
async fn regenerate_link(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
) -> Result<Response, ApiError> {
    let link = state
        .engine
        .regenerate_access_link(&staff.principal, portal, contact)
        .await?;
    Ok(issued(&state, &link))
}

/// Revokes a contact's access: every link and every session of the contact stops working at
/// once (the next request of an open session is refused).
#[utoipa::path(
    post,
    path = "/api/v1/portals/{portal_id}/contacts/{contact_id}/revoke",
    tag = "access",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ("contact_id" = ContactId, Path, description = "The contact."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, description = "An id is not a UUID (`invalid_path`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal or contact (`not_found`).", body = ErrorBody),
    )
)]
async fn revoke_access(
    State(state): State<AppState>,
    staff: Staff,
    Path((portal, contact)): Path<(PortalId, ContactId)>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .revoke_contact_access(&staff.principal, portal, contact)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to opening a link from a browser not verified for the link's contact (CON-5): a
/// one-time code is on its way to the contact's mailbox. Unknown and known links get this same
/// answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodeSent {
    /// Send it back with the code to `POST /api/v1/access/verify`. Shown once.
    pub challenge: String,
    /// When the code stops working (30 minutes).
    pub expires_at: DateTime<Utc>,
}

/// A one-time code for a challenge.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct VerifyCodeRequest {
    /// The `challenge` of the `202` answer to `POST /api/v1/access`.
    #[schema(max_length = 256)]
    pub challenge: String,
    /// The six-digit code from the mail.
    #[schema(max_length = 32, example = "042917")]
    pub code: String,
}

/// Counts one opening or code try from `address` and refuses past the limit.
async fn limit_address(state: &AppState, tenant: TenantId, address: std::net::IpAddr) -> Result<(), ApiError> {
    let key = format!("access:{address}");
    let limit = state.settings.access_limit_per_address;
    crate::auth::limit_attempts(state, tenant, &[(&key, limit)], "access link openings").await
}

/// The answer that starts a contact session: the token once, and the session cookie; with
/// `verified`, also the cookie that remembers this browser for the contact (CON-5).
fn session_started(state: &AppState, opened: &OpenedSession, verified: bool) -> Response {
    tracing::info!(portal = %opened.session.portal_id, contact = %opened.session.contact_id, "contact session started");
    let session_token = opened.token.encode();
    let cookie = contact_session_cookie(&session_token, false, state.settings.secure_cookies);
    let body = ContactSessionCreated {
        csrf_token: opened.token.derive("csrf"),
        session_token,
        expires_at: opened.session.expires_at,
        portal_id: opened.session.portal_id,
    };
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    if verified {
        let s = &opened.session;
        let expires = state.clock.now() + VERIFIED_BROWSER_LIFETIME;
        let value = verified_browser_value(&state.master_key, s.tenant_id, s.contact_id, expires);
        let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            verified_browser_cookie_name(s.contact_id),
            VERIFIED_BROWSER_LIFETIME.num_seconds()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    no_store(response)
}

/// Opens an access link (CON-4): a contact session of the link's portal, answered once and set
/// as the `portal_contact_session` cookie; the access is recorded in the portal's activity. Any
/// link that opens nothing answers the same 404 `link_not_found`.
///
/// With forwarded-link protection (CON-5, a tenant setting, on by default), a browser that does
/// not carry the contact's verified-browser cookie gets `202` instead: a one-time code is mailed
/// to the contact, to be sent with the answer's `challenge` to `POST /api/v1/access/verify`.
/// Then every link, known or not, answers `202` alike.
#[utoipa::path(
    post,
    path = "/api/v1/access",
    tag = "access",
    security(()),
    request_body = OpenLinkRequest,
    responses(
        (status = 200, description = "A contact session of the link's portal.", body = ContactSessionCreated),
        (status = 202, description = "A one-time code was mailed to the link's contact (forwarded-link protection).", body = CodeSent),
        (status = 404, description = "The link opens nothing (`link_not_found`), or no tenant at this host (`unknown_host`).", body = ErrorBody),
        (status = 422, description = "The body is not an open request (`invalid_body`).", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn open_link(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    Json(request): Json<OpenLinkRequest>,
) -> Result<Response, ApiError> {
    limit_address(&state, tenant, address).await?;
    let token = SecretToken::parse(&request.token).map_err(|_| ApiError::LinkNotFound)?;
    let protected = state
        .storage
        .get_tenant(tenant)
        .await
        .map_err(|e| ApiError::Service(e.into()))?
        .is_some_and(|t| t.settings.forwarded_link_protection);
    let opened = if protected {
        let now = state.clock.now();
        let link = state.engine.find_access_link(tenant, &token).await?;
        let verified = link.as_ref().is_some_and(|l| {
            crate::auth::cookie(&headers, &verified_browser_cookie_name(l.contact_id))
                .is_some_and(|v| verified_browser_ok(&state.master_key, tenant, l.contact_id, v, now))
        });
        match link {
            Some(link) if verified => state.engine.open_found_link(tenant, &link).await?,
            link => {
                let challenge = state.engine.request_access_code(tenant, link.as_ref()).await?;
                let body = CodeSent {
                    challenge: challenge.token.encode(),
                    expires_at: challenge.expires_at,
                };
                return Ok(no_store((StatusCode::ACCEPTED, Json(body)).into_response()));
            }
        }
    } else {
        state.engine.open_access_link(tenant, &token).await?
    };
    let opened = opened.ok_or(ApiError::LinkNotFound)?;
    Ok(session_started(&state, &opened, false))
}

/// Opens the portal with the one-time code of a `202` answer (CON-5): a contact session, as
/// `POST /api/v1/access` answers it, and a long-lived cookie that lets this browser open the
/// contact's links without a code from now on. A wrong, expired or used code, or an unknown
/// challenge, answers `400 invalid_code` alike; after five tries of one challenge
/// `429 code_attempts_exhausted` (open the link again for a new code).
#[utoipa::path(
    post,
    path = "/api/v1/access/verify",
    tag = "access",
    security(()),
    request_body = VerifyCodeRequest,
    responses(
        (status = 200, description = "A contact session of the link's portal; the browser is now verified for the contact.", body = ContactSessionCreated),
        (status = 400, description = "The code opens nothing (`invalid_code`).", body = ErrorBody),
        (status = 404, description = "No tenant at this host (`unknown_host`).", body = ErrorBody),
        (status = 422, description = "The body is not a code (`invalid_body`).", body = ErrorBody),
        (status = 429, description = "Too many tries of this code (`code_attempts_exhausted`) or from this address (`too_many_attempts`).", body = ErrorBody),
    )
)]
async fn verify_code(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    ClientAddr(address): ClientAddr,
    Json(request): Json<VerifyCodeRequest>,
) -> Result<Response, ApiError> {
    limit_address(&state, tenant, address).await?;
    let challenge = SecretToken::parse(&request.challenge).map_err(|_| ApiError::InvalidCode)?;
    match state
        .engine
        .verify_access_code(tenant, &challenge, request.code.trim())
        .await?
    {
        CodeVerdict::Opened(opened) => Ok(session_started(&state, &opened, true)),
        CodeVerdict::Refused => Err(ApiError::InvalidCode),
        CodeVerdict::Exhausted => Err(ApiError::CodeAttemptsExhausted),
    }
}

/// The contact's portal as the contact sees it, while the portal is active (ONB-4, BYD-4):
/// phases, tasks with status, due date and due state, checklists, progress, and which tasks the
/// contact may work on; none of the MSP's internals (assignees, staff, reasons, other contacts).
#[utoipa::path(
    get,
    path = "/api/v1/contact/portal",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    responses(
        (status = 200, description = "The portal as the contact sees it.", body = ClientPortal, headers(("ETag" = String, description = "The portal's version."))),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 404, description = "The portal is not live (`not_found`).", body = ErrorBody),
    )
)]
async fn contact_portal(State(state): State<AppState>, contact: Contact) -> Result<Tagged<ClientPortal>, ApiError> {
    let view = state.engine.contact_portal(&contact.principal).await?;
    Ok(Tagged(view.version, view))
}

/// The contact's own links and live sessions (BYD-4).
#[utoipa::path(
    get,
    path = "/api/v1/contact/access",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    responses(
        (status = 200, description = "The contact's links and sessions, without tokens.", body = ContactAccess),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
    )
)]
async fn contact_access(State(state): State<AppState>, contact: Contact) -> Result<Json<ContactAccess>, ApiError> {
    let (links, sessions) = state.engine.own_access(&contact.principal).await?;
    let now = state.clock.now();
    let view = |s: &ContactSession| ContactSessionView {
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.expires_at,
        current: s.token_hash == contact.session,
    };
    Ok(Json(ContactAccess {
        links: links.iter().map(|l| LinkView::of(l, now)).collect(),
        sessions: sessions.iter().map(view).collect(),
    }))
}

fn signed_out(state: &AppState) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&contact_session_cookie("", true, state.settings.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Ends the contact session of this request; the cookie is cleared.
#[utoipa::path(
    post,
    path = "/api/v1/contact/sign-out",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    responses(
        (status = 204, description = "Signed out."),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 403, description = "A cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
    )
)]
async fn contact_sign_out(State(state): State<AppState>, contact: Contact) -> Result<Response, ApiError> {
    state
        .engine
        .end_contact_session(contact.principal.tenant_id(), &contact.session)
        .await?;
    Ok(signed_out(&state))
}

/// Ends every session of the contact, on every device (BYD-4); the links keep working.
#[utoipa::path(
    post,
    path = "/api/v1/contact/sign-out-everywhere",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    responses(
        (status = 204, description = "Every session of the contact has ended."),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 403, description = "A cookie-carried request without the CSRF token (`csrf_token_invalid`).", body = ErrorBody),
    )
)]
async fn contact_sign_out_everywhere(State(state): State<AppState>, contact: Contact) -> Result<Response, ApiError> {
    state.engine.end_all_contact_sessions(&contact.principal).await?;
    Ok(signed_out(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_views_say_their_state() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000);
        let link = AccessLink {
            id: AccessLinkId::from_uuid(uuid::Uuid::nil()),
            tenant_id: portal_core::id::TenantId::from_uuid(uuid::Uuid::nil()),
            portal_id: PortalId::from_uuid(uuid::Uuid::nil()),
            contact_id: ContactId::from_uuid(uuid::Uuid::nil()),
            token_hash: SecretToken::from_bytes([1; 32]).hash(),
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
            revoked_at: None,
        };
        assert_eq!(LinkView::of(&link, now).state, LinkState::Active);
        assert_eq!(
            LinkView::of(&link, now + chrono::Duration::days(1)).state,
            LinkState::Expired
        );
        let revoked = AccessLink {
            revoked_at: Some(now),
            ..link
        };
        assert_eq!(LinkView::of(&revoked, now).state, LinkState::Revoked);
        let text = serde_json::to_string(&LinkView::of(&revoked, now)).expect("serialises");
        assert!(!text.contains("hash") && !text.contains("token"), "{text}");
    }
}
