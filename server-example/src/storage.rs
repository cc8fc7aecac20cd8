//! The storage backend, picked by the database URL's scheme.

use std::fmt;
use std::sync::Arc;

use portal_core::storage::{Storage, StorageError};
use portal_storage_postgres::PgStorage;
use portal_storage_sqlite::SqliteStorage;

use crate::config::DatabaseUrl;

/// The schemes [`connect`] accepts.
pub const ACCEPTED_SCHEMES: &str = "`sqlite:` (for example `sqlite://portal.db`) or `postgres:` / `postgresql:`";

/// A storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `portal-storage-sqlite`.
    Sqlite,
    /// `portal-storage-postgres`.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names a database this server does not speak.
    #[error("unsupported database URL scheme `{scheme}:` in {url}: use {ACCEPTED_SCHEMES}")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
        /// The URL, password masked.
        url: String,
    },
    /// The backend could not connect or migrate.
    #[error("cannot open the {backend} database {url}: {source}")]
    Storage {
        /// The backend tried.
        backend: Backend,
        /// The URL, password masked.
        url: String,
        /// What failed.
        #[source]
        source: StorageError,
    },
}

/// The backend `url` names.
///
/// # Errors
///
/// [`ConnectError::UnsupportedScheme`] for any scheme other than `sqlite`, `postgres` and
/// `postgresql`.
pub fn backend_for(url: &DatabaseUrl) -> Result<Backend, ConnectError> {
    match url.scheme().as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        other => Err(ConnectError::UnsupportedScheme {
            scheme: other.to_owned(),
            url: url.masked(),
        }),
    }
}

/// Connects to the store `url` names and runs its migrations.
///
/// # Errors
///
/// An unsupported scheme, or a backend that cannot connect or migrate.
pub async fn connect(url: &DatabaseUrl) -> Result<(Arc<dyn Storage>, Backend), ConnectError> {
    let backend = backend_for(url)?;
    let wrap = |source| ConnectError::Storage {
        backend,
        url: url.masked(),
        source,
    };
    let storage: Arc<dyn Storage> = match backend {
        Backend::Sqlite => Arc::new(SqliteStorage::connect(url.expose()).await.map_err(wrap)?),
        Backend::Postgres => Arc::new(PgStorage::connect(url.expose()).await.map_err(wrap)?),
    };
    Ok((storage, backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        let pick = |s: &str| backend_for(&DatabaseUrl::parse(s).unwrap()).ok();
        assert_eq!(pick("sqlite://portal.db"), Some(Backend::Sqlite));
        assert_eq!(pick("SQLite::memory:"), Some(Backend::Sqlite));
        assert_eq!(pick("postgres://u@h/d"), Some(Backend::Postgres));
        assert_eq!(pick("postgresql://u@h/d"), Some(Backend::Postgres));
        assert_eq!(pick("mysql://u@h/d"), None);
    }
}
