//! # portal-storage-sqlite
//!
//! The storage traits of [`portal_core::storage`] on SQLite, through sqlx: the embedded
//! default backend for one process. [`SqliteStorage`] implements every repository trait, so it
//! is a [`Storage`](portal_core::storage::Storage) to hold as `Arc<dyn Storage>`. Its observable
//! behaviour (orderings, which error each refusal returns, what a delete cascades to) is that of
//! the in-memory reference store, `portal_core::memory::MemoryStorage`, which the conformance
//! suite in `portal-tests` checks.
//!
//! May depend on: `portal-core` and `sqlx` (with its SQLite driver), plus the pure crates core
//! already uses (chrono, uuid, serde_json, async-trait). Nothing above the storage layer.
//!
//! ## Usage
//!
//! ```no_run
//! # async fn demo() -> Result<(), portal_core::storage::StorageError> {
//! use std::sync::Arc;
//! use portal_core::storage::Storage;
//! use portal_storage_sqlite::SqliteStorage;
//!
//! // Creates the file when missing and runs the embedded migrations.
//! let storage: Arc<dyn Storage> = Arc::new(SqliteStorage::connect("sqlite://portal.db").await?);
//! # let _ = storage;
//! # Ok(())
//! # }
//! ```
//!
//! ## Connection and locking choices
//!
//! - [`SqliteStorage::connect`] sets, on the connect options (so every pooled connection gets
//!   them; never a `PRAGMA` run on the pool, which would reach one connection only):
//!   `create_if_missing`, `journal_mode = WAL` (readers never block the writer nor the writer
//!   the readers), `busy_timeout = 5 s`, `synchronous = NORMAL` (durable at every WAL
//!   checkpoint, safe from corruption; the usual choice with WAL) and `foreign_keys = ON`
//!   (the schema's `ON DELETE CASCADE` does the deletes' work).
//! - Two pools over the same file: a small one for reads ([`DEFAULT_MAX_CONNECTIONS`]) and a
//!   dedicated one-connection pool for writes. SQLite has one writer at a time anyway; writers
//!   of this process queue for that connection in order instead of contending for the file
//!   lock, where SQLite's busy handler polls with growing sleeps. Under many concurrent
//!   writers (many tasks of one portal completed at once) this keeps throughput at the
//!   sequential rate and can never end in "database is locked"; the busy timeout is left for
//!   other processes sharing the file.
//! - Every write transaction starts with `BEGIN IMMEDIATE`, taking the write lock before its
//!   first read. A deferred transaction that reads and then writes can fail with
//!   `SQLITE_BUSY` at once, without waiting for the busy timeout, when another connection
//!   wrote in between; an immediate one waits its turn. This is also what makes
//!   [`PortalRepo::modify_portal`] serialise commands: the portal is loaded, decided on and
//!   written while the transaction holds the database's write lock.
//! - Reads that take several queries (a portal, a template, users with their roles) run in
//!   one deferred transaction, so they see one snapshot.
//! - Prefer a file to `sqlite::memory:`: sqlx gives an in-memory database a shared cache,
//!   whose table locks behave differently from a WAL file's.
//!
//! ## Indexes for cascades
//!
//! SQLite finds the children of a deleted row for `ON DELETE CASCADE` through an index that
//! leads with the foreign key's columns, and scans otherwise. Every child table has one (the
//! paired migration `child_lookup_indexes` adds those of task checklist items and survey
//! questions, tasks by phase, template tasks by phase and template dependencies by target), so
//! deletes cost what they delete, not the size of the tenant.
//!
//! ## Storage format
//!
//! Ids are 16-byte BLOBs (sqlx's encoding of `Uuid`, which sorts like `Uuid`), times are
//! RFC 3339 TEXT in UTC (sqlx's chrono encoding, which sorts in time order), dates are
//! `YYYY-MM-DD` TEXT, booleans INTEGER 0/1, JSON is TEXT and bytes (a sealed secret's nonce and
//! ciphertext) are BLOBs. The migrations in `migrations/` have the same names and the same
//! tables and columns as the PostgreSQL backend's.
//!
//! ## The outbox
//!
//! Messages are written by the commit path, in the outcome's transaction; one whose secret is
//! in clear is refused before the write lock is taken. A claim is one `UPDATE ... RETURNING` in
//! a `BEGIN IMMEDIATE` transaction, so two claims never take the same row, and the `mark_*`
//! calls are single fenced `UPDATE`s (see the `outbox` module). Where it differs from the
//! reference store: a delivery error is stored cut to 1,000 characters, and a message of a
//! portal or contact that does not exist is refused by its foreign key
//! ([`StorageError::Invariant`](portal_core::storage::StorageError::Invariant)).

mod access;
mod auth;
mod error;
mod notifications;
mod outbox;
mod read;
mod rows;
#[cfg(test)]
mod tests;
mod write;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portal_core::activity::ActivityEvent;
use portal_core::company::{Company, Site};
use portal_core::error::CommandError;
use portal_core::id::{CompanyId, EventId, PortalId, RoleId, SiteId, StaffUserId, TaskId, TemplateId, TenantId};
use portal_core::outcome::Outcome;
use portal_core::portal::{Portal, PortalState};
use portal_core::storage::{
    ActivityFilter, ActivityRepo, AssignedTask, AssignedTaskCursor, CompanyRepo, OutcomeRepo, PageRequest,
    PortalDecision, PortalFilter, PortalRepo, PortalTaskCounts, StorageResult, TemplateRepo, TenantRepo,
};
use portal_core::task::Comment;
use portal_core::template::Template;
use portal_core::tenant::{Role, StaffUser, Tenant};
use portal_core::value::Email;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use crate::error::{map_migrate, map_sqlx};
use crate::rows::{
    AssignedTaskRow, CommentRow, CompanyRow, EventRow, PortalRow, RolePermissionRow, RoleRow, SiteRow, StaffUserRow,
    TaskCountsRow, TemplateRow, TenantRow, comment_columns, company_columns, event_columns, portal_columns,
    role_columns, site_columns, staff_user_columns, template_columns, tenant_columns,
};

/// The embedded migrations, run by [`SqliteStorage::connect`]. Public so tests can migrate a
/// database of their own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Read connections of the pool [`SqliteStorage::connect`] opens (writes have their own
/// connection).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long a connection waits for another's write lock before the store reports itself
/// unavailable.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The storage traits on a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection, so writers of this process queue in order.
    writer: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating it when missing) the database at `url`, such as `sqlite://portal.db`,
    /// with WAL, a 5 s busy timeout, `synchronous = NORMAL` and foreign keys on, with
    /// [`DEFAULT_MAX_CONNECTIONS`] read connections and one write connection, and runs the
    /// migrations.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`](portal_core::storage::StorageError::Backend) for a URL that is not a SQLite one or a
    /// failed migration, [`StorageError::Unavailable`](portal_core::storage::StorageError::Unavailable) when the file
    /// cannot be opened.
    pub async fn connect(url: &str) -> StorageResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(map_sqlx)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Opens a read pool of at most `max_connections` (at least one) and a one-connection
    /// write pool, both with the given options taken as they are, and runs the migrations.
    /// Keep foreign keys on: deletes rely on `ON DELETE CASCADE`.
    ///
    /// # Errors
    ///
    /// As [`SqliteStorage::connect`].
    pub async fn connect_with(options: SqliteConnectOptions, max_connections: u32) -> StorageResult<Self> {
        // The write connection stays open: it is the one every write needs, and it keeps an
        // in-memory database alive while the read connections come and go.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(map_sqlx)?;
        MIGRATOR.run(&writer).await.map_err(map_migrate)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(map_sqlx)?;
        Ok(Self { pool, writer })
    }

    /// The read pool, for benchmarks and tests that compare with hand-written SQL. Writes made
    /// through it take the file's write lock like any other connection's.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction: it holds the database's write lock from its first statement.
    async fn begin_write(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_sqlx)
    }

    /// A read transaction: its queries see one snapshot.
    async fn begin_read(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(map_sqlx)
    }
}

async fn finish(tx: Transaction<'static, Sqlite>) -> StorageResult<()> {
    tx.commit().await.map_err(map_sqlx)
}

/// The smallest id a page may start with: every id sorts after `after` exactly when it is at
/// least this one. `None` when no id can follow.
fn ids_from(after: Option<Uuid>) -> Option<Uuid> {
    match after {
        None => Some(Uuid::nil()),
        Some(a) => a.as_u128().checked_add(1).map(Uuid::from_u128),
    }
}

/// The largest id a newest-first page may start with. `None` when no id can come before.
fn ids_up_to(before: Option<Uuid>) -> Option<Uuid> {
    match before {
        None => Some(Uuid::from_u128(u128::MAX)),
        Some(b) => b.as_u128().checked_sub(1).map(Uuid::from_u128),
    }
}

fn limit<C>(page: &PageRequest<C>) -> i64 {
    i64::try_from(page.clamped_limit()).unwrap_or(i64::MAX)
}

#[async_trait]
impl TenantRepo for SqliteStorage {
    async fn get_tenant(&self, tenant: TenantId) -> StorageResult<Option<Tenant>> {
        let row: Option<TenantRow> = sqlx::query_as(concat!(
            "SELECT ",
            tenant_columns!(),
            " FROM tenant WHERE tenant_id = $1"
        ))
        .bind(tenant.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(Tenant::try_from).transpose()
    }

    async fn get_role(&self, tenant: TenantId, id: RoleId) -> StorageResult<Option<Role>> {
        let mut tx = self.begin_read().await?;
        let row: Option<RoleRow> = sqlx::query_as(concat!(
            "SELECT ",
            role_columns!(),
            " FROM role WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let permissions: Vec<RolePermissionRow> =
            sqlx::query_as("SELECT role_id, permission FROM role_permission WHERE tenant_id = $1 AND role_id = $2")
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(read::build_roles(vec![row], permissions)?.pop())
    }

    async fn list_roles(&self, tenant: TenantId) -> StorageResult<Vec<Role>> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<RoleRow> = sqlx::query_as(concat!(
            "SELECT ",
            role_columns!(),
            " FROM role WHERE tenant_id = $1 ORDER BY name, id"
        ))
        .bind(tenant.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let permissions: Vec<RolePermissionRow> =
            sqlx::query_as("SELECT role_id, permission FROM role_permission WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        finish(tx).await?;
        read::build_roles(rows, permissions)
    }

    async fn get_staff_user(&self, tenant: TenantId, id: StaffUserId) -> StorageResult<Option<StaffUser>> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<StaffUserRow> = sqlx::query_as(concat!(
            "SELECT ",
            staff_user_columns!(),
            " FROM staff_user WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let users = read::load_staff_users(&mut tx, tenant, rows).await?;
        finish(tx).await?;
        Ok(users.into_iter().next())
    }

    async fn find_staff_user_by_email(&self, tenant: TenantId, email: &Email) -> StorageResult<Option<StaffUser>> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<StaffUserRow> = sqlx::query_as(concat!(
            "SELECT ",
            staff_user_columns!(),
            " FROM staff_user WHERE tenant_id = $1 AND email = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(email.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let users = read::load_staff_users(&mut tx, tenant, rows).await?;
        finish(tx).await?;
        Ok(users.into_iter().next())
    }

    async fn list_staff_users(
        &self,
        tenant: TenantId,
        page: PageRequest<StaffUserId>,
    ) -> StorageResult<Vec<StaffUser>> {
        let Some(from) = ids_from(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin_read().await?;
        let rows: Vec<StaffUserRow> = sqlx::query_as(concat!(
            "SELECT ",
            staff_user_columns!(),
            " FROM staff_user WHERE tenant_id = $1 AND id >= $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant.as_uuid())
        .bind(from)
        .bind(limit(&page))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let users = read::load_staff_users(&mut tx, tenant, rows).await?;
        finish(tx).await?;
        Ok(users)
    }
}

#[async_trait]
impl CompanyRepo for SqliteStorage {
    async fn get_company(&self, tenant: TenantId, id: CompanyId) -> StorageResult<Option<Company>> {
        let row: Option<CompanyRow> = sqlx::query_as(concat!(
            "SELECT ",
            company_columns!(),
            " FROM company WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(Company::try_from).transpose()
    }

    async fn list_companies(&self, tenant: TenantId, page: PageRequest<CompanyId>) -> StorageResult<Vec<Company>> {
        let Some(from) = ids_from(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        let rows: Vec<CompanyRow> = sqlx::query_as(concat!(
            "SELECT ",
            company_columns!(),
            " FROM company WHERE tenant_id = $1 AND id >= $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant.as_uuid())
        .bind(from)
        .bind(limit(&page))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.into_iter().map(Company::try_from).collect()
    }

    async fn get_site(&self, tenant: TenantId, id: SiteId) -> StorageResult<Option<Site>> {
        let row: Option<SiteRow> = sqlx::query_as(concat!(
            "SELECT ",
            site_columns!(),
            " FROM site WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(Site::try_from).transpose()
    }

    async fn list_sites_for_company(&self, tenant: TenantId, company: CompanyId) -> StorageResult<Vec<Site>> {
        let rows: Vec<SiteRow> = sqlx::query_as(concat!(
            "SELECT ",
            site_columns!(),
            " FROM site WHERE tenant_id = $1 AND company_id = $2 ORDER BY id"
        ))
        .bind(tenant.as_uuid())
        .bind(company.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.into_iter().map(Site::try_from).collect()
    }
}

#[async_trait]
impl TemplateRepo for SqliteStorage {
    async fn get_template(&self, tenant: TenantId, id: TemplateId) -> StorageResult<Option<Template>> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<TemplateRow> = sqlx::query_as(concat!(
            "SELECT ",
            template_columns!(),
            " FROM template WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let templates = read::load_templates(&mut tx, tenant, rows).await?;
        finish(tx).await?;
        Ok(templates.into_iter().next())
    }

    async fn list_templates(&self, tenant: TenantId, page: PageRequest<TemplateId>) -> StorageResult<Vec<Template>> {
        let Some(from) = ids_from(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin_read().await?;
        let rows: Vec<TemplateRow> = sqlx::query_as(concat!(
            "SELECT ",
            template_columns!(),
            " FROM template WHERE tenant_id = $1 AND id >= $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant.as_uuid())
        .bind(from)
        .bind(limit(&page))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let templates = read::load_templates(&mut tx, tenant, rows).await?;
        finish(tx).await?;
        Ok(templates)
    }
}

#[async_trait]
impl PortalRepo for SqliteStorage {
    async fn get_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<Portal>> {
        let row: Option<PortalRow> = sqlx::query_as(concat!(
            "SELECT ",
            portal_columns!(),
            " FROM portal WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(Portal::try_from).transpose()
    }

    async fn load_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<PortalState>> {
        let mut tx = self.begin_read().await?;
        let state = read::load_portal(&mut tx, tenant, id).await?;
        finish(tx).await?;
        Ok(state)
    }

    async fn list_portals(
        &self,
        tenant: TenantId,
        filter: PortalFilter,
        page: PageRequest<PortalId>,
    ) -> StorageResult<Vec<Portal>> {
        let Some(from) = ids_from(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        // One statement per filter shape, so each can use its own index.
        let sql = match (filter.status, filter.company) {
            (None, None) => concat!(
                "SELECT ",
                portal_columns!(),
                " FROM portal WHERE tenant_id = $1 AND id >= $2 ORDER BY id LIMIT $3"
            ),
            (Some(_), None) => concat!(
                "SELECT ",
                portal_columns!(),
                " FROM portal WHERE tenant_id = $1 AND id >= $2 AND status = $4 ORDER BY id LIMIT $3"
            ),
            (None, Some(_)) => concat!(
                "SELECT ",
                portal_columns!(),
                " FROM portal WHERE tenant_id = $1 AND id >= $2 AND company_id = $5 ORDER BY id LIMIT $3"
            ),
            (Some(_), Some(_)) => concat!(
                "SELECT ",
                portal_columns!(),
                " FROM portal WHERE tenant_id = $1 AND id >= $2 AND status = $4 AND company_id = $5 \
                 ORDER BY id LIMIT $3"
            ),
        };
        let mut query = sqlx::query_as::<_, PortalRow>(sql)
            .bind(tenant.as_uuid())
            .bind(from)
            .bind(limit(&page));
        // `$4` and `$5` are bound only when the statement names them.
        match (filter.status, filter.company) {
            (None, None) => {}
            (Some(s), None) => query = query.bind(s.as_str()),
            (None, Some(c)) => query = query.bind(None::<&str>).bind(c.as_uuid()),
            (Some(s), Some(c)) => query = query.bind(s.as_str()).bind(c.as_uuid()),
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        rows.into_iter().map(Portal::try_from).collect()
    }

    async fn task_counts(&self, tenant: TenantId, portals: &[PortalId]) -> StorageResult<Vec<PortalTaskCounts>> {
        if portals.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<TaskCountsRow> = sqlx::query_as(
            "SELECT p.id AS portal_id, COUNT(t.id) AS total, COALESCE(SUM(t.status = 'completed'), 0) AS completed \
             FROM portal p LEFT JOIN task t ON t.tenant_id = p.tenant_id AND t.portal_id = p.id \
             WHERE p.tenant_id = $1 AND p.id IN (SELECT unhex(value) FROM json_each($2)) GROUP BY p.id",
        )
        .bind(tenant.as_uuid())
        .bind(read::id_list(portals.iter().map(|p| p.as_uuid())))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let counts: HashMap<PortalId, PortalTaskCounts> = rows
            .into_iter()
            .map(|r| PortalTaskCounts::try_from(r).map(|c| (c.portal, c)))
            .collect::<StorageResult<_>>()?;
        // In the order asked for; a portal of no tenant's or of another tenant's is left out.
        Ok(portals.iter().filter_map(|p| counts.get(p).copied()).collect())
    }

    async fn list_assigned_tasks(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        req: PageRequest<AssignedTaskCursor>,
    ) -> StorageResult<Vec<AssignedTask>> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<AssignedTaskRow> = sqlx::query_as(
            "SELECT t.tenant_id, t.id, t.portal_id, t.phase_id, t.position, t.title, t.description, t.owner, \
             t.evidence, t.priority, t.due_offset_days, t.due_date, t.status, t.block_reason, t.assignee_id, \
             t.completed_at, t.completed_by_kind, t.completed_by_id, t.completed_by_display, t.completion_reason, \
             t.version, p.name AS portal_name, ph.position AS phase_position \
             FROM task t \
             JOIN portal p ON p.tenant_id = t.tenant_id AND p.id = t.portal_id \
             JOIN portal_phase ph ON ph.tenant_id = t.tenant_id AND ph.id = t.phase_id \
             WHERE t.tenant_id = $1 AND t.assignee_id = $2 AND t.status <> 'completed' AND p.status = 'active' \
             AND ($3 IS NULL OR (ph.position, t.position, t.id) > ($3, $4, $5)) \
             ORDER BY ph.position, t.position, t.id LIMIT $6",
        )
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .bind(req.after.map(|c| c.phase_position))
        .bind(req.after.map(|c| c.task_position))
        .bind(req.after.map(|c| c.task.as_uuid()))
        .bind(limit(&req))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.task.id).collect();
        let mut children = read::load_task_children(&mut tx, tenant, &ids).await?;
        finish(tx).await?;
        rows.into_iter()
            .map(|r| {
                let kids = children.remove(&r.task.id).unwrap_or_default();
                r.into_assigned(kids)
            })
            .collect()
    }

    async fn list_comments_for_task(&self, tenant: TenantId, task: TaskId) -> StorageResult<Vec<Comment>> {
        let rows: Vec<CommentRow> = sqlx::query_as(concat!(
            "SELECT ",
            comment_columns!(),
            " FROM task_comment WHERE tenant_id = $1 AND task_id = $2 ORDER BY created_at, id"
        ))
        .bind(tenant.as_uuid())
        .bind(task.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let mut comments = rows
            .into_iter()
            .map(Comment::try_from)
            .collect::<StorageResult<Vec<_>>>()?;
        // The SQL order is already right for sqlx's RFC 3339 text; sorting the decoded times
        // keeps it right for rows written with another precision or offset.
        comments.sort_by_key(|c| (c.created_at, c.id));
        Ok(comments)
    }

    async fn modify_portal(
        &self,
        tenant: TenantId,
        id: PortalId,
        decide: &PortalDecision<'_>,
    ) -> StorageResult<Option<Result<Outcome, CommandError>>> {
        let mut tx = self.begin_write().await?;
        let Some(state) = read::load_portal(&mut tx, tenant, id).await? else {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(None);
        };
        let outcome = match decide(&state) {
            Ok(outcome) => outcome,
            Err(refused) => {
                tx.rollback().await.map_err(map_sqlx)?;
                return Ok(Some(Err(refused)));
            }
        };
        match write::apply_outcome(&mut tx, tenant, &outcome).await? {
            Ok(()) => {
                tx.commit().await.map_err(map_sqlx)?;
                Ok(Some(Ok(outcome)))
            }
            // The portal's own rows cannot have changed under the write lock, but a decision
            // also writes rows outside the portal's state that it did not read (the reminder
            // ledger, digest items): another writer may have recorded the same reminder or
            // queued the same digest since the caller looked. That is a refusal, as the
            // reference store answers it, and nothing of the outcome is written.
            Err(refused) => {
                tx.rollback().await.map_err(map_sqlx)?;
                Ok(Some(Err(refused)))
            }
        }
    }
}

#[async_trait]
impl ActivityRepo for SqliteStorage {
    async fn list_activity(
        &self,
        tenant: TenantId,
        filter: &ActivityFilter,
        page: PageRequest<EventId>,
    ) -> StorageResult<Vec<ActivityEvent>> {
        let Some(up_to) = ids_up_to(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        let kinds = (!filter.kinds.is_empty())
            .then(|| serde_json::Value::from(filter.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()).to_string());
        let sql = match (filter.portal, &kinds) {
            (None, None) => concat!(
                "SELECT ",
                event_columns!(),
                " FROM activity_event WHERE tenant_id = $1 AND id <= $2 ORDER BY id DESC LIMIT $3"
            ),
            (Some(_), None) => concat!(
                "SELECT ",
                event_columns!(),
                " FROM activity_event WHERE tenant_id = $1 AND id <= $2 AND portal_id = $4 ORDER BY id DESC LIMIT $3"
            ),
            (None, Some(_)) => concat!(
                "SELECT ",
                event_columns!(),
                " FROM activity_event WHERE tenant_id = $1 AND id <= $2 \
                 AND kind IN (SELECT value FROM json_each($5)) ORDER BY id DESC LIMIT $3"
            ),
            (Some(_), Some(_)) => concat!(
                "SELECT ",
                event_columns!(),
                " FROM activity_event WHERE tenant_id = $1 AND id <= $2 AND portal_id = $4 \
                 AND kind IN (SELECT value FROM json_each($5)) ORDER BY id DESC LIMIT $3"
            ),
        };
        let mut query = sqlx::query_as::<_, EventRow>(sql)
            .bind(tenant.as_uuid())
            .bind(up_to)
            .bind(limit(&page));
        match (filter.portal, kinds) {
            (None, None) => {}
            (Some(p), None) => query = query.bind(p.as_uuid()),
            (None, Some(k)) => query = query.bind(None::<Uuid>).bind(k),
            (Some(p), Some(k)) => query = query.bind(p.as_uuid()).bind(k),
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        rows.into_iter().map(ActivityEvent::try_from).collect()
    }
}

#[async_trait]
impl OutcomeRepo for SqliteStorage {
    async fn commit_outcome(&self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>> {
        // Refused before the write lock is taken.
        write::check_outcome(tenant, outcome)?;
        if outcome.is_empty() {
            return Ok(Ok(()));
        }
        let mut tx = self.begin_write().await?;
        match write::apply_outcome(&mut tx, tenant, outcome).await? {
            Ok(()) => {
                tx.commit().await.map_err(map_sqlx)?;
                Ok(Ok(()))
            }
            Err(refused) => {
                tx.rollback().await.map_err(map_sqlx)?;
                Ok(Err(refused))
            }
        }
    }
}
