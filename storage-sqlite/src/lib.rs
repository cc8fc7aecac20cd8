//! portal-storage-sqlite: in progress.
