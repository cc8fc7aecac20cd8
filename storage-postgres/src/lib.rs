//! # portal-storage-postgres
//!
//! The storage traits of [`portal_core::storage`] on PostgreSQL, through sqlx: [`PgStorage`]
//! implements every repository, so it is a [`Storage`](portal_core::storage::Storage) the
//! engine holds as `Arc<dyn Storage>`. Its observable behaviour is that of the in-memory
//! reference store (`portal_core::memory`): the same orderings, the same refusal for each clash,
//! the same cascades. The conformance suite in `portal-tests` runs the same scenarios over both.
//!
//! May depend on: `portal-core` and sqlx (with chrono, uuid and serde_json for the column
//! types). Nothing here reads the environment; the server passes the URL in.
//!
//! ## Use
//!
//! ```no_run
//! # async fn run() -> Result<(), portal_core::storage::StorageError> {
//! use std::sync::Arc;
//! use portal_core::storage::Storage;
//! use portal_storage_postgres::PgStorage;
//!
//! // Connects a pool and brings the schema up to date (MIGRATOR) before returning.
//! let storage: Arc<dyn Storage> = Arc::new(PgStorage::connect("postgres://portal@localhost/portal").await?);
//! # Ok(()) }
//! ```
//!
//! ## Concurrency
//!
//! Every trait method is one transaction.
//!
//! - Portal commands go through [`PortalRepo::modify_portal`](portal_core::storage::PortalRepo::modify_portal):
//!   it reads the portal row `FOR UPDATE`, loads the rest of the portal on the same transaction,
//!   runs the pure decision and commits its outcome before the row lock is released. Commands on
//!   one portal are therefore serialised: two writers completing different tasks both succeed
//!   and each sees the other's effect on shared dependents.
//! - Every other update is compare-and-set (`UPDATE ... WHERE version = $expected`) under
//!   `READ COMMITTED`: of two writers of one row exactly one wins and the other gets
//!   [`CommandError::Stale`](portal_core::CommandError::Stale), never a storage error.
//! - Reads made of several queries (a whole portal, a template document) run in one
//!   `REPEATABLE READ, READ ONLY` transaction, so they never see half of a commit.
//!
//! Nothing is held in the process between calls, so several server processes may share one
//! database; migrations take sqlx's advisory lock, so they may even start together.
//!
//! ## Where it differs from the reference store
//!
//! Only where the schema holds more than the reference store checks, never for what the
//! commands produce:
//!
//! - a staff user's roles and a template task's dependencies read back ordered by id (their
//!   tables keep no order; the reference store keeps the order written);
//! - a portal's reminder records read back oldest first (then by task, contact, reason and due
//!   date); the reference store keeps the order written;
//! - a row pointing at a parent that does not exist (a dependency on no task, an unknown role,
//!   a phase, contact or task of no portal, a reminder record or digest item of no portal, a row
//!   of a tenant never created) is refused as `NotFound` or `UnknownDependency` by its foreign
//!   key, where the reference store keeps it;
//! - an outbox message of a portal or contact that does not exist is refused by its foreign key
//!   ([`StorageError::Invariant`]);
//! - a delivery error is stored cut to 1,000 characters, with NUL replaced (`text` cannot hold it);
//! - a tenant host, password, session or sign-in counter of a tenant or staff user that does not
//!   exist is refused by its foreign key: `add_tenant_host` answers `NotFound("tenant")`, the
//!   other [`AuthRepo`](portal_core::storage::AuthRepo) writes fail with
//!   [`StorageError::Invariant`].
//!
//! ## Planner statistics
//!
//! Starting a portal writes thousands of rows whose foreign keys PostgreSQL checks one by one;
//! those checks are fast only once the planner has statistics of the tables. Autovacuum keeps
//! them; on a server running without it, call [`PgStorage::analyze`] after loading data (a
//! benchmark's seed, an import).

mod access;
mod auth;
mod batch;
mod error;
mod notifications;
mod outbox;
mod portal;
mod read;
mod rows;
#[cfg(test)]
mod tests;
mod write;

use std::str::FromStr;
use std::time::Duration;

use portal_core::storage::{StorageError, StorageResult};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::map_sqlx;

/// The schema, embedded at build time and run by [`PgStorage::connect`]. The SQLite backend has
/// a migration of the same version and name for each of these.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connections in the pool [`PgStorage::connect`] opens.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long a call waits for a free connection before it fails as
/// [`StorageError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements each connection keeps. The backend uses under a hundred distinct
/// statements; room for all of them means none is ever prepared twice on a connection.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// The PostgreSQL store: a connection pool. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct PgStorage {
    pool: PgPool,
}

impl PgStorage {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`) with a pool of
    /// [`DEFAULT_MAX_CONNECTIONS`] and runs [`MIGRATOR`].
    ///
    /// # Errors
    ///
    /// [`StorageError::Unavailable`] when the server cannot be reached,
    /// [`StorageError::Backend`] when the URL is malformed or a migration fails.
    pub async fn connect(url: &str) -> StorageResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(map_sqlx)?;
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with explicit options and pool size, then runs [`MIGRATOR`]. The options get a
    /// statement cache large enough for every statement of this crate, and the application
    /// name `portal-engine` unless they name one.
    ///
    /// # Errors
    ///
    /// As [`PgStorage::connect`].
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> StorageResult<Self> {
        let mut options = options.statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        if options.get_application_name().is_none() {
            options = options.application_name("portal-engine");
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_sqlx)?;
        Self::from_pool(pool).await
    }

    /// Wraps a pool the caller configured, after running [`MIGRATOR`] on it.
    ///
    /// # Errors
    ///
    /// As [`PgStorage::connect`].
    pub async fn from_pool(pool: PgPool) -> StorageResult<Self> {
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_sqlx(e),
            other => StorageError::Backend(Box::new(other)),
        })?;
        Ok(Self { pool })
    }

    /// Refreshes the planner's statistics of every table (`ANALYZE`).
    ///
    /// Autovacuum does this on its own; a server running without it (or a benchmark that has
    /// just filled a fresh database) needs it, or the foreign-key checks of a large insert may
    /// be planned as if the tables were empty and slow down as they grow.
    ///
    /// # Errors
    ///
    /// [`StorageError::Unavailable`] or [`StorageError::Backend`] when the statement fails.
    pub async fn analyze(&self) -> StorageResult<()> {
        sqlx::query("ANALYZE").execute(&self.pool).await.map_err(map_sqlx)?;
        Ok(())
    }

    /// The pool, for benchmarks and tests that need to look at the database directly.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
