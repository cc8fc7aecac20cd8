//! # portal-core
//!
//! The domain of the MSP portal engine: typed ids and validated values, tenants and staff,
//! companies, onboarding templates and portals with their phases, tasks and contacts, the
//! activity log, the authorisation policy, and the traits for everything outside (storage,
//! clock, entropy).
//!
//! It does no I/O (API-1): no database driver, no HTTP, no async runtime, no clock and no RNG of
//! its own. Commands ([`commands`]) are pure functions of (principal, context, state, request)
//! that return a typed [`CommandError`] or an [`Outcome`]: the rows to write, the events to
//! append and the messages to enqueue. A storage backend commits an outcome in one transaction
//! ([`storage::OutcomeRepo::commit_outcome`], [`storage::PortalRepo::modify_portal`]). The
//! [`service::Engine`] wires the two: load, authorise, decide, commit.
//!
//! Beyond onboarding itself: contact access links and one-time codes ([`access`]), the mail
//! outbox and its sealed secrets ([`mail`], [`crypto`]), and notification preferences,
//! automatic reminders and daily digests ([`notifications`]); the engine's reminder, digest and
//! purge passes ([`service::Engine::run_reminders`], [`service::Engine::send_digests`],
//! [`service::Engine::purge_expired`]) are what a server's scheduler calls.
//!
//! May depend on: serde, thiserror, chrono (+ chrono-tz), uuid, async-trait, and utoipa behind the
//! `openapi` feature only. Never on sqlx, reqwest, axum or tokio.
//!
//! ## Embedding
//!
//! Take `portal-core`, one storage backend (or your own implementation of
//! [`storage::Storage`]), a [`storage::Clock`] and an [`storage::Entropy`], and drive the whole
//! onboarding lifecycle through [`service::Engine`] with no server. The `portal-tests` crate
//! shows it end to end, and its conformance suite checks any storage implementation.
//!
//! ## Features
//!
//! - `testing`: [`memory::MemoryStorage`], the in-memory reference implementation of every
//!   storage trait, used by property tests and by embedders' unit tests.
//! - `openapi`: `utoipa::ToSchema` on every type that crosses a JSON API (ids, validated values,
//!   tenants, templates, portals, tasks, progress, activity, requests), describing exactly what
//!   serde writes, for servers that publish an OpenAPI 3.1 document. Off by default, so the core
//!   does not depend on utoipa.

pub mod access;
pub mod activity;
pub mod auth;
#[cfg(test)]
mod bad_input;
pub mod client_view;
pub mod commands;
pub mod company;
pub mod crypto;
pub mod error;
mod graph;
pub mod id;
pub mod lifecycle;
mod macros;
pub mod mail;
#[cfg(feature = "testing")]
pub mod memory;
pub mod notifications;
#[cfg(all(test, feature = "openapi"))]
mod openapi_tests;
pub mod outcome;
pub mod policy;
pub mod portal;
pub mod progress;
#[cfg(test)]
mod proptests;
pub mod service;
pub mod storage;
pub mod task;
pub mod template;
pub mod tenant;
pub mod value;

pub use error::{CommandError, ValueError};
pub use outcome::Outcome;
