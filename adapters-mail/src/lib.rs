//! # portal-mail
//!
//! **Not built yet.** This crate will hold the mail transports behind `portal-core`'s mail trait
//! (MAIL-1 to MAIL-4): SMTP through `lettre`, an HTTP provider API (Postmark), and a file/log
//! transport for development, plus the rendering of each message with the tenant's branding.
//! The outbox table they drain already exists in both storage backends.
//!
//! Today it exports nothing, so that nothing can mistake it for a working transport.
