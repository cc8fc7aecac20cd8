//! The router, its state and the server loop.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use portal_core::id::TenantId;
use portal_core::service::Engine;
use portal_core::storage::{Clock, Entropy, Storage};
use rand::TryRngCore;
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApiVersion;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, ErrorDetail, Json};

/// The largest request body accepted, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The operating system's random number generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // Without the OS generator no id or token can be made safely: stopping is the only option.
        #[allow(clippy::expect_used)]
        rand::rngs::OsRng
            .try_fill_bytes(buf)
            .expect("the operating system's random number generator failed");
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub storage: Arc<dyn Storage>,
    /// The engine over the store, with the wall clock and the OS random number generator.
    pub engine: Engine,
}

impl AppState {
    /// The state over `storage`, with an engine reading [`SystemClock`] and [`OsEntropy`].
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let engine = Engine::new(storage.clone(), Arc::new(SystemClock), Arc::new(OsEntropy));
        Self { storage, engine }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The path the OpenAPI document is served at.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The OpenAPI document's root: its info and the components every route shares.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portal engine API",
        description = "The JSON API of the MSP portal engine's reference server."
    ),
    components(schemas(ErrorBody, ErrorDetail, Status))
)]
struct ApiDoc;

/// Every documented route, registered with `routes!` so that each route the server answers is in
/// the document by construction.
fn documented() -> OpenApiRouter<AppState> {
    let mut doc = ApiDoc::openapi();
    doc.openapi = OpenApiVersion::Version31;
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The OpenAPI 3.1 document of the HTTP surface, as served at [`OPENAPI_PATH`].
///
/// It lists every route of [`router`] except [`OPENAPI_PATH`] itself: the document route is public
/// by design, answers the document and nothing else, and is left out of it.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// The whole HTTP surface: `/healthz`, `/readyz`, the OpenAPI document at [`OPENAPI_PATH`], and a
/// JSON 404 for anything else; bodies above [`MAX_BODY_BYTES`] are refused with 413, and every
/// request is traced.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented().split_for_parts();
    routes
        .route(OPENAPI_PATH, get(move || std::future::ready(Json(doc.clone()))))
        .fallback(route_not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(error_shape))
        .layer(TraceLayer::new_for_http())
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish.
///
/// # Errors
///
/// When the listener fails.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The body of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Status {
    /// `ok` for `/healthz`, `ready` for `/readyz`.
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: the process answers. Touches no database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses(
        (status = 200, description = "The process answers.", body = Status, example = json!({ "status": "ok" })),
    )
)]
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers a cheap read.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers.", body = Status, example = json!({ "status": "ready" })),
        (status = 503, description = "The database does not answer (`database_unavailable`).", body = ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state
        .storage
        .get_tenant(TenantId::from_uuid(uuid::Uuid::nil()))
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    Ok(Json(Status {
        status: "ready".to_owned(),
    }))
}

async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Gives the error shape to the plain-text answers of the layers and of axum's method routing
/// (413 from the body limit, 405).
async fn error_shape(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let replacement = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        _ => return response,
    };
    let (mut parts, _) = response.into_parts();
    let new = replacement.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, new.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_the_error_body() {
        let doc = serde_json::to_value(openapi()).expect("the document serialises");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Portal engine API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let error_body = &doc["components"]["schemas"]["ErrorBody"];
        assert!(error_body.is_object(), "{doc:#}");
        assert_eq!(
            doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(
            doc["paths"].get(OPENAPI_PATH).is_none(),
            "the document route is left out"
        );
    }
}
