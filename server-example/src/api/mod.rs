//! The JSON API under `/api/v1` (API-3). Every handler takes a [`Staff`](crate::auth::Staff)
//! principal and goes through the engine, whose commands call `authorize`; ids of another tenant
//! answer exactly like ids that do not exist.
//!
//! Conventions, shared through [`support`]: reads of a versioned resource answer its `ETag`;
//! updates need `If-Match` (428 without, 412 when stale); lists are keyset pages
//! (`?limit=&cursor=`, `next_cursor` in the answer, the limit capped at 200).

pub mod access;
pub mod activity;
pub mod admin;
pub mod companies;
pub mod contact_tasks;
pub mod contacts;
pub mod notifications;
pub mod notify;
pub mod outbox;
pub mod portals;
pub mod support;
pub mod tasks;
mod template_edit;
pub mod templates;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// Every `/api/v1` route except `/api/v1/auth` (see [`crate::auth`]).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(admin::routes())
        .merge(companies::routes())
        .merge(templates::routes())
        .merge(portals::routes())
        .merge(contacts::routes())
        .merge(access::routes())
        .merge(contact_tasks::routes())
        .merge(tasks::routes())
        .merge(activity::routes())
        .merge(outbox::routes())
        .merge(notify::routes())
        .merge(notifications::routes())
}
