//! Notification preferences (BYD-5): the contact's own, and the one-click unsubscribe every
//! notification carries.
//!
//! - `GET`/`PUT /api/v1/contact/notifications` (contact session only): the contact's choice per
//!   event type, `immediate`, `daily_digest` or `off`. `PUT` replaces them all; a topic left out
//!   is `immediate`.
//! - `POST /api/v1/unsubscribe/{token}` (public): the RFC 8058 one-click target of the
//!   `List-Unsubscribe` header. Mail clients POST `List-Unsubscribe=One-Click`; the body is not
//!   needed and not read. The token (signed with a key derived from the master key) names the
//!   tenant, portal, contact and topic (or every topic, from a digest); it turns them off and
//!   answers what is now in force. A token that does not verify, belongs to another tenant's
//!   host or whose contact is gone answers `404 link_not_found`. Unsubscribing again changes
//!   nothing and answers the same.
//! - `GET /unsubscribe/{token}` and `POST /unsubscribe/{token}`: the same for a person who
//!   clicked the footer link: a small HTML page that asks, and one that confirms. A `GET` never
//!   unsubscribes (link scanners fetch every link of a message).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use portal_core::id::TenantId;
use portal_core::notifications::{NotificationPreferences, Topic, UnsubscribeToken};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::{Contact, TenantHost};
use crate::error::{ApiError, ErrorBody, Json, Path};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, set_preferences))
        .routes(routes!(unsubscribe))
}

/// The HTML pages of the footer link, outside the JSON API.
pub(crate) fn pages() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/unsubscribe/{token}",
        axum::routing::get(unsubscribe_page).post(unsubscribe_done_page),
    )
}

/// The contact's notification preferences.
#[utoipa::path(
    get,
    path = "/api/v1/contact/notifications",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    responses(
        (status = 200, description = "The contact's choice per event type.", body = NotificationPreferences),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
    )
)]
async fn get_preferences(
    State(state): State<AppState>,
    contact: Contact,
) -> Result<Json<NotificationPreferences>, ApiError> {
    Ok(Json(state.engine.notification_preferences(&contact.principal).await?))
}

/// Replaces the contact's notification preferences; a topic left out is `immediate`.
#[utoipa::path(
    put,
    path = "/api/v1/contact/notifications",
    tag = "contact",
    security(("bearer" = []), ("contact_cookie" = [])),
    request_body = NotificationPreferences,
    responses(
        (status = 200, description = "The preferences now in force.", body = NotificationPreferences),
        (status = 401, description = "No valid contact session (`unauthenticated`, `invalid_session`).", body = ErrorBody),
        (status = 409, description = "Changed by another request meanwhile (`stale`): read and try again.", body = ErrorBody),
        (status = 422, description = "Not a preferences object (`invalid_body`): an unknown topic or delivery.", body = ErrorBody),
    )
)]
async fn set_preferences(
    State(state): State<AppState>,
    contact: Contact,
    Json(prefs): Json<NotificationPreferences>,
) -> Result<Json<NotificationPreferences>, ApiError> {
    Ok(Json(
        state
            .engine
            .set_notification_preferences(&contact.principal, prefs)
            .await?,
    ))
}

/// What a one-click unsubscribe turned off, and the preferences now in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Unsubscribed {
    /// The topic turned off; `null` when every topic was.
    pub topic: Option<Topic>,
    /// The contact's preferences now.
    pub preferences: NotificationPreferences,
}

async fn apply(state: &AppState, tenant: TenantId, token: &str) -> Result<Unsubscribed, ApiError> {
    let token = UnsubscribeToken::decode(&state.master_key, token).ok_or(ApiError::LinkNotFound)?;
    match state.engine.unsubscribe(tenant, token).await {
        Ok(preferences) => Ok(Unsubscribed {
            topic: token.topic,
            preferences,
        }),
        Err(e) if matches!(e.command(), Some(portal_core::CommandError::NotFound { .. })) => {
            Err(ApiError::LinkNotFound)
        }
        Err(e) => Err(e.into()),
    }
}

/// One-click unsubscribe (RFC 8058): the target of the `List-Unsubscribe` header of every
/// notification. Turns the token's topic (or every topic) off for its contact.
#[utoipa::path(
    post,
    path = "/api/v1/unsubscribe/{token}",
    tag = "contact",
    security(()),
    params(("token" = String, Path, description = "The token of the message's unsubscribe link.")),
    responses(
        (status = 200, description = "Turned off.", body = Unsubscribed),
        (status = 404, description = "The link is not valid here (`link_not_found`), or no tenant at this host (`unknown_host`).", body = ErrorBody),
    )
)]
async fn unsubscribe(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    Path(token): Path<String>,
) -> Result<Json<Unsubscribed>, ApiError> {
    Ok(Json(apply(&state, tenant, &token).await?))
}

fn topic_label(topic: Option<Topic>) -> &'static str {
    match topic {
        None => "every notification (summaries, reminders and digests)",
        Some(Topic::Summaries) => "task summaries",
        Some(Topic::Reminders) => "task reminders from your IT provider",
        Some(Topic::TaskUnlocked) => "tasks that become ready for you",
        Some(Topic::DueSoon) => "tasks that are due soon",
        Some(Topic::Overdue) => "overdue tasks",
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;\">\
         <h1 style=\"font-size:1.4rem;\">{title}</h1>{body}</body></html>\n"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn not_valid_page() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "<p>This unsubscribe link is not valid here. Use the link of a recent email, or ask your IT provider.</p>",
    )
}

/// The page the footer link opens: what it would turn off, and a button. Changes nothing.
async fn unsubscribe_page(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    Path(token): Path<String>,
) -> Response {
    let Some(decoded) = UnsubscribeToken::decode(&state.master_key, &token).filter(|t| t.tenant_id == tenant) else {
        return not_valid_page();
    };
    // The form posts back to this very URL (no `action`), so a deployment under a path prefix
    // (a public URL such as `https://msp.example/portal`) works without the page knowing it.
    let body = format!(
        "<p>Stop emails about {}?</p>\
         <form method=\"post\">\
         <button type=\"submit\" style=\"padding:.6rem 1.2rem;font-size:1rem;\">Unsubscribe</button></form>",
        topic_label(decoded.topic)
    );
    page(StatusCode::OK, "Unsubscribe", &body)
}

/// The footer page's button: unsubscribes and confirms.
async fn unsubscribe_done_page(
    State(state): State<AppState>,
    TenantHost(tenant): TenantHost,
    Path(token): Path<String>,
) -> Response {
    match apply(&state, tenant, &token).await {
        Ok(done) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!(
                "<p>You will no longer get emails about {}. Your IT provider can still send you links to your portal.</p>",
                topic_label(done.topic)
            ),
        ),
        Err(ApiError::LinkNotFound) => not_valid_page(),
        Err(e) => e.into_response(),
    }
}
