//! Outgoing mail as staff see it (MAIL-3): each message's delivery state, and a retry of one
//! that failed. Neither shows a message's content: its tokens and codes never leave the outbox.

use axum::extract::State;
use axum::http::StatusCode;
use portal_core::id::MessageId;
use portal_core::mail::{MessageStatus, OutboxEntry};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::support::{Page, PageQuery};
use crate::app::AppState;
use crate::auth::Staff;
use crate::error::{ApiError, ErrorBody, Json, Path, Query};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_outbox))
        .routes(routes!(retry_message))
}

/// The status filter of the outbox list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only messages in this state (`queued`, `sending`, `sent`, `failed`); all when absent.
    #[serde(default)]
    pub status: Option<MessageStatus>,
}

/// The tenant's outgoing mail, newest first: kind, recipient, state, attempts, last error.
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    tag = "mail",
    params(OutboxQuery, PageQuery),
    responses(
        (status = 200, description = "A page of messages, newest first.", body = Page<OutboxEntry>),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn list_outbox(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<OutboxQuery>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<OutboxEntry>>, ApiError> {
    let items = state
        .engine
        .list_outbox(&staff.principal, query.status, page.request()?)
        .await?;
    Ok(Json(page.page(items, |m| m.id)))
}

/// Queues a failed message again, due now, with a fresh count of attempts.
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{message_id}/retry",
    tag = "mail",
    params(("message_id" = MessageId, Path, description = "The message.")),
    responses(
        (status = 204, description = "Queued again."),
        (status = 403, description = "Needs `manage_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No failed message with this id (`not_found`).", body = ErrorBody),
    )
)]
async fn retry_message(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<MessageId>,
) -> Result<StatusCode, ApiError> {
    state.engine.retry_message(&staff.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
