//! The activity log (ACT-1, ACT-2, ACT-4): a portal's events and the tenant's, newest first,
//! filtered by kind, keyset-paged.

use axum::extract::State;
use portal_core::activity::{ActivityEvent, EventKind};
use portal_core::id::PortalId;
use portal_core::storage::ActivityFilter;
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
        .routes(routes!(portal_activity))
        .routes(routes!(tenant_activity))
}

/// The kind filter of the activity log.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only events of these kinds, comma-separated (e.g. `task_completed,task_reopened`); all
    /// kinds when absent or empty. The values are the `kind`s of `ActivityEvent`. Give the
    /// parameter once: a repeated `kind` is refused (400 `invalid_query`), as is an unknown kind.
    #[serde(default)]
    #[param(example = "task_completed,task_reopened", max_length = 2000)]
    pub kind: Option<String>,
}

/// The kinds of a comma-separated `kind` parameter, each once, in the order given; empty items
/// are skipped.
fn parse_kinds(raw: Option<&str>) -> Result<Vec<EventKind>, ApiError> {
    let mut kinds = Vec::new();
    for item in raw.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = item
            .parse::<EventKind>()
            .map_err(|e| ApiError::InvalidQuery(format!("`kind`: {e}")))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// The events of one portal, newest first. Events of a deleted portal are not here: its
/// tombstones are reached through the tenant-wide log.
#[utoipa::path(
    get,
    path = "/api/v1/portals/{portal_id}/activity",
    tag = "activity",
    params(
        ("portal_id" = PortalId, Path, description = "The portal."),
        ActivityQuery,
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of the portal's events, newest first.", body = Page<ActivityEvent>),
        (status = 400, description = "A bad id, kind, query or cursor (`invalid_path`, `invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such portal (`not_found`).", body = ErrorBody),
    )
)]
async fn portal_activity(
    State(state): State<AppState>,
    staff: Staff,
    Path(portal): Path<PortalId>,
    Query(query): Query<ActivityQuery>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ActivityEvent>>, ApiError> {
    let filter = ActivityFilter {
        portal: Some(portal),
        kinds: parse_kinds(query.kind.as_deref())?,
    };
    let items = state
        .engine
        .list_activity(&staff.principal, &filter, page.request()?)
        .await?;
    Ok(Json(page.page(items, |e| e.id)))
}

/// The tenant's whole activity log, newest first: every portal's events and the tenant-level
/// ones (settings, staff, companies, templates, portal deletes). The events of a deleted portal
/// stay as tombstones (`erased_by` set, summary and details erased; ACT-4).
#[utoipa::path(
    get,
    path = "/api/v1/activity",
    tag = "activity",
    params(ActivityQuery, PageQuery),
    responses(
        (status = 200, description = "A page of the tenant's events, newest first.", body = Page<ActivityEvent>),
        (status = 400, description = "A bad kind, query or cursor (`invalid_query`, `invalid_cursor`).", body = ErrorBody),
        (status = 401, description = "No valid session.", body = ErrorBody),
        (status = 403, description = "Needs `read_onboarding` (`forbidden`).", body = ErrorBody),
    )
)]
async fn tenant_activity(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ActivityQuery>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ActivityEvent>>, ApiError> {
    let filter = ActivityFilter {
        portal: None,
        kinds: parse_kinds(query.kind.as_deref())?,
    };
    let items = state
        .engine
        .list_activity(&staff.principal, &filter, page.request()?)
        .await?;
    Ok(Json(page.page(items, |e| e.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_comma_separated_names() {
        assert_eq!(parse_kinds(None).ok(), Some(vec![]));
        assert_eq!(parse_kinds(Some("")).ok(), Some(vec![]));
        assert_eq!(
            parse_kinds(Some("task_completed, task_reopened,,task_completed")).ok(),
            Some(vec![EventKind::TaskCompleted, EventKind::TaskReopened])
        );
        let bad = parse_kinds(Some("task_completed,nope")).err();
        assert_eq!(bad.as_ref().map(ApiError::code), Some("invalid_query"));
        assert_eq!(bad.map(|e| e.status().as_u16()), Some(400));
    }

    #[test]
    fn a_repeated_kind_is_refused() {
        let query = |q: &str| {
            let uri: axum::http::Uri = format!("/api/v1/activity?{q}").parse().expect("a valid URI");
            axum::extract::Query::<ActivityQuery>::try_from_uri(&uri).map(|q| q.0.kind)
        };
        assert_eq!(
            query("kind=task_completed").ok(),
            Some(Some("task_completed".to_owned()))
        );
        assert!(query("kind=task_completed&kind=task_reopened").is_err());
    }
}
