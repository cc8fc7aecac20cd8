//! portal-tests: in progress.
