//! portal-benches: in progress.
