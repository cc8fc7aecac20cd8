//! # portal-server
//!
//! **Not built yet.** The reference deployment will live here: the axum JSON API under
//! `/api/v1` with its OpenAPI document, staff sign-in, tenants by host, the web pages, the outbox
//! and PSA-sync workers, and the `portal-server` command line (`serve`, `migrate`, `tenant
//! create`, `user create`, a demo mode). It will depend on every other crate of the workspace.
//!
//! Today it exports nothing: the engine is usable without a server through `portal-core` and a
//! storage backend.
