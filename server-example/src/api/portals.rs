//! Routes of `/api/v1` (being written).

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
