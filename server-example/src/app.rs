//! The router, its state and the server loop.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use portal_core::crypto::MasterKey;
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

/// The public URL a server answers at when none is configured.
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";

/// Server settings the handlers read.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The tenant that serves local hosts (`localhost`, `127.0.0.1`, `[::1]`) not mapped to a
    /// tenant of their own.
    pub default_tenant: Option<TenantId>,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// The URL people reach the server at, without a trailing slash; contact access links are
    /// `{public_url}/access/{token}`.
    pub public_url: String,
    /// Link openings and code tries allowed per client address in one 15-minute window.
    pub access_limit_per_address: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            default_tenant: None,
            secure_cookies: false,
            public_url: DEFAULT_PUBLIC_URL.to_owned(),
            access_limit_per_address: crate::api::access::ACCESS_LIMIT_PER_ADDRESS,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub storage: Arc<dyn Storage>,
    /// The engine over the store, with the same clock and entropy.
    pub engine: Engine,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Randomness for tokens.
    pub entropy: Arc<dyn Entropy>,
    /// The master key (secrets at rest, verified-browser cookies).
    pub master_key: Arc<MasterKey>,
    /// Settings.
    pub settings: ServerSettings,
}

impl AppState {
    /// The state over `storage`, reading [`SystemClock`] and [`OsEntropy`], with no default tenant
    /// and a master key drawn now (what it seals opens only in this process).
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let mut key = [0u8; 32];
        OsEntropy.fill(&mut key);
        let master_key = MasterKey::from_material(&key).expect("32 bytes are enough key material");
        Self::with_parts(
            storage,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
            Arc::new(master_key),
            ServerSettings::default(),
        )
    }

    /// The state over `storage` with the given clock, entropy, master key and settings.
    #[must_use]
    pub fn with_parts(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        master_key: Arc<MasterKey>,
        settings: ServerSettings,
    ) -> Self {
        let engine = Engine::new(storage.clone(), clock.clone(), entropy.clone(), &master_key);
        Self {
            storage,
            engine,
            clock,
            entropy,
            master_key,
            settings,
        }
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
    components(schemas(ErrorBody, ErrorDetail, Status)),
    modifiers(&SecurityAddon),
    security(("bearer" = []), ("cookie" = [])),
)]
struct ApiDoc;

/// Declares the two ways to carry a staff session.
struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "contact_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::CONTACT_SESSION_COOKIE))),
        );
    }
}

/// Every documented route, registered with `routes!` so that each route the server answers is in
/// the document by construction.
fn documented() -> OpenApiRouter<AppState> {
    let mut doc = ApiDoc::openapi();
    doc.openapi = OpenApiVersion::Version31;
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .merge(crate::auth::routes())
        .merge(crate::api::routes())
}

/// The OpenAPI 3.1 document of the HTTP surface, as served at [`OPENAPI_PATH`].
///
/// It lists every route of [`router`] except [`OPENAPI_PATH`] itself: the document route is public
/// by design, answers the document and nothing else, and is left out of it.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented().into_openapi();
    document_common_errors(&mut doc);
    doc
}

/// Adds to every operation the error answers any route can give, where the route's own
/// documentation does not already name them: 400 (a bad path, query or `If-Match`), 401 and 403
/// (sessions and CSRF, except on public routes), 404 (`unknown_host`), 413/415/422 (routes with a
/// body), 500 and 503.
fn document_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (op, unsafe_method) in ops {
            let Some(op) = op.as_mut() else { continue };
            let public = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
            });
            let has_body = op.request_body.is_some();
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(description).into());
            };
            add(
                "400",
                "A path, query or header that does not parse (`invalid_path`, `invalid_query`, `invalid_cursor`, `invalid_if_match`, `malformed_json`).",
            );
            if !public {
                add(
                    "401",
                    "No valid session (`unauthenticated`, `invalid_session`, `session_expired`).",
                );
                if unsafe_method {
                    add(
                        "403",
                        "Not allowed (`forbidden`), or a cookie-carried request without the CSRF token (`csrf_token_invalid`).",
                    );
                }
            }
            add(
                "404",
                "No tenant at this host (`unknown_host`), or nothing at this path (`not_found`).",
            );
            if has_body {
                add("413", "The body is over 1 MiB (`payload_too_large`).");
                add(
                    "415",
                    "The body is not sent as `application/json` (`unsupported_media_type`).",
                );
                add(
                    "422",
                    "The body does not match what the route takes (`invalid_body`, `invalid_value`, ...).",
                );
            }
            add(
                "500",
                "Internal error (`internal_error`); details go to the server log.",
            );
            add("503", "The database is unavailable (`database_unavailable`).");
        }
    }
}

/// The whole HTTP surface: `/healthz`, `/readyz`, the OpenAPI document at [`OPENAPI_PATH`], and a
/// JSON 404 for anything else; bodies above [`MAX_BODY_BYTES`] are refused with 413, and every
/// request is traced.
pub fn router(state: AppState) -> Router {
    let (routes, mut doc) = documented().split_for_parts();
    document_common_errors(&mut doc);
    routes
        .route(OPENAPI_PATH, get(move || std::future::ready(Json(doc.clone()))))
        .merge(crate::api::notifications::pages())
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
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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
    security(()),
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
    security(()),
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
