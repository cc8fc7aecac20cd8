//! # portal-server
//!
//! The reference server of the MSP portal engine, **in progress**. Today it is the skeleton the
//! rest builds on:
//!
//! - [`config`]: the command line and environment (`clap`), with the database URL's password
//!   masked wherever it is printed and the master key never printed;
//! - [`storage`]: the backend picked by the database URL's scheme (`sqlite:` or `postgres:`),
//!   migrations run at connect;
//! - [`error`]: the one [`ApiError`](error::ApiError) every handler returns, with the body
//!   `{"error": {"code", "message", "details"}}`, and the [`Json`](error::Json) extractor whose
//!   rejections use it;
//! - [`app`]: the router (`/healthz`, `/readyz`, a JSON 404 for any other route), its layers and
//!   [`serve`](app::serve) with graceful shutdown; the OpenAPI 3.1 document of every route
//!   (built with `utoipa`, routes registered through `utoipa_axum::routes!` so none is left out),
//!   served at `/api/openapi.json` and returned by [`openapi`](app::openapi), with the
//!   [`ErrorBody`](error::ErrorBody) schema named by every error response.
//!
//! Not there yet: the JSON API under `/api/v1`, staff sign-in, tenants by host and the demo
//! tenant.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod setup;
pub mod storage;

pub use app::{AppState, openapi, router, serve};
pub use error::ApiError;
