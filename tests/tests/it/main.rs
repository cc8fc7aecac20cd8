//! The one integration-test binary of the workspace: the conformance suite stamped out per
//! backend, plus migration parity, differential, concurrency and end-to-end tests.

mod api;
mod concurrency;
mod conformance;
mod differential;
mod http;
mod migrations;
mod outbox;
mod smtp;
mod smtp_tls;
