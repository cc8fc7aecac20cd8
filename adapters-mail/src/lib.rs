//! # portal-mail
//!
//! Delivery of the engine's outbound mail (MAIL-1 to MAIL-4): rendering each queued
//! [`OutboundMessage`](portal_core::mail::OutboundMessage) with the tenant's branding, three
//! transports behind `portal-core`'s [`Transport`](portal_core::mail::Transport) trait, and the
//! worker that drains the outbox.
//!
//! - [`Renderer`] turns a queued message into an [`OutgoingEmail`](portal_core::mail::OutgoingEmail):
//!   subject, plain text and HTML from templates compiled into the crate, the tenant's app name,
//!   logo, primary colour and sender (MAIL-2, BRD-1), a `Message-ID` that every attempt repeats,
//!   and for meeting invitations an iCalendar (RFC 5545) `REQUEST` attachment.
//! - Transports: [`SmtpTransport`] (any relay, through `lettre`, STARTTLS or implicit TLS with
//!   rustls), [`PostmarkTransport`] (Postmark's HTTP API) and [`FileTransport`] (one `.eml` file per
//!   message, for development and demos). [`transport_from_url`] builds any of them from one URL,
//!   the form a deployment puts in its configuration.
//! - [`OutboxWorker`] claims due messages from [`Storage`](portal_core::storage::Storage), opens
//!   their sealed link token or code, renders, sends with bounded concurrency and records the
//!   result: sent, queued again with back-off, or failed (MAIL-3).
//!
//! # Guarantees
//!
//! - A message is only ever marked sent after the transport accepted it. A crash between the two
//!   leaves the message `sending` until its lease runs out; it is then claimed and sent again with
//!   the **same** `Message-ID` and idempotency key, so the duplicate is recognisable.
//! - Secrets are opened in memory just before rendering and are never logged; a recipient's full
//!   address is only logged at `debug` level.
//! - Nothing a payload contains reaches a header line break: subjects and display names are
//!   flattened to one line before `lettre` encodes them, and HTML bodies are auto-escaped.
//!
//! # Example
//!
//! Run the worker beside the engine until shutdown, with the transport from configuration:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use portal_core::crypto::MasterKey;
//! use portal_core::mail::Mailbox;
//! use portal_core::storage::{Clock, Entropy, Storage};
//! use portal_core::value::Email;
//! use portal_mail::{OutboxWorker, Renderer, TransportOptions, WorkerSettings, transport_from_url};
//!
//! async fn deliver_mail(
//!     storage: Arc<dyn Storage>,
//!     clock: Arc<dyn Clock>,
//!     entropy: Arc<dyn Entropy>,
//!     master_key: &MasterKey,
//!     shutdown: impl Future<Output = ()>,
//! ) -> Result<(), Box<dyn std::error::Error>> {
//!     // `smtps://user:password@smtp.example.com`, `postmark://<server-token>@api.postmarkapp.com`,
//!     // `file://./outbox-mail`, ...
//!     let transport = transport_from_url("smtp://portal:secret@smtp.example.com", &TransportOptions::default())?;
//!     let sender = Mailbox {
//!         name: Some("Client portal".to_owned()),
//!         email: Email::parse("portal@msp.example")?,
//!     };
//!     let renderer = Renderer::new("https://portal.msp.example", sender)?;
//!     let worker = OutboxWorker::new(
//!         storage,
//!         transport,
//!         renderer,
//!         master_key,
//!         clock,
//!         entropy,
//!         WorkerSettings::default(),
//!     );
//!     worker.run(shutdown).await; // returns once `shutdown` completes
//!     Ok(())
//! }
//! ```

mod config;
mod file;
mod ics;
mod mime;
mod postmark;
pub mod render;
mod smtp;
pub mod worker;

#[cfg(test)]
mod testing;

pub use config::{ConfigError, TransportOptions, transport_from_url};
pub use file::FileTransport;
pub use postmark::PostmarkTransport;
pub use render::{RenderError, Renderer};
pub use smtp::SmtpTransport;
pub use worker::{OutboxWorker, WorkerSettings, WorkerStats};
