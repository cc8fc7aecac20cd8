//! # portal-server
//!
//! The reference server of the MSP portal engine: what an MSP deploys as it is.
//!
//! - [`config`]: the command line and environment (`clap`): `serve [--demo]`, `migrate`,
//!   `tenant create|add-host`, `user create|set-password`; the database URL's password masked
//!   wherever it is printed, the master key never printed;
//! - [`storage`]: the backend picked by the database URL's scheme (`sqlite:` or `postgres:`),
//!   migrations run at connect;
//! - [`auth`]: who is asking — the tenant by `Host` (BRD-2) and the staff session carried as a
//!   bearer token or an HttpOnly cookie with a CSRF token (AUTH-6), sign-in with per-account and
//!   per-address limits, sign-out (see `docs/adr/0003`);
//! - [`api`]: the JSON API under `/api/v1` (API-3): every handler takes the signed-in
//!   [`Staff`](auth::Staff) principal and goes through the engine's `authorize`d commands;
//!   `ETag`/`If-Match`, keyset pages, one error shape;
//! - [`error`]: the one [`ApiError`] every handler returns, with the body
//!   `{"error": {"code", "message", "details"}}`, and the extractors whose rejections use it;
//! - [`app`]: the router, its layers, the OpenAPI 3.1 document built from the code (utoipa, every
//!   route registered through `utoipa_axum::routes!` so none is left out of it, common error
//!   answers added to every operation) and [`serve`] with graceful shutdown;
//! - [`setup`]: tenants, users and passwords from the command line, and the demo tenant.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod keys;
pub mod mail;
pub mod scheduler;
pub mod setup;
pub mod storage;

pub use app::{AppState, openapi, router, serve};
pub use error::ApiError;
