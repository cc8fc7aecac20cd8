//! portal-storage-postgres: in progress.
