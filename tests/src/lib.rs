//! # portal-tests
//!
//! The storage conformance suite of the portal engine, written once over `&dyn Storage` and run
//! against every backend: the in-memory reference model, SQLite (a temporary file per test) and
//! PostgreSQL (a fresh database per test). An embedder with their own backend runs the same
//! scenarios by calling the functions of [`conformance`] with their store; [`harness`] has the
//! clock, entropy and backend factories the suite uses.
//!
//! The test binary (`tests/it/main.rs`) stamps the suite out per backend and adds the migration
//! parity, differential, concurrency and end-to-end tests.

pub mod conformance;
pub mod fixtures;
pub mod harness;
