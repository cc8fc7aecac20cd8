//! [`AuthRepo`] on SQLite: tenant hosts, staff password hashes, staff sessions and sign-in
//! attempt counters (migrations `staff_auth` and `attempt_times`), and the purge of the rows
//! that only grow (counters, one-time-code challenges, contact and staff sessions).
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction on the write connection, like the commit
//! path. A session's token hash is a 32-byte BLOB (checked by the schema). Rows pointing at a
//! tenant or staff user that does not exist are refused by the foreign keys: `add_tenant_host`
//! answers `NotFound("tenant")`, the methods with no room for a refusal
//! [`StorageError::Invariant`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::auth::{ATTEMPT_RETENTION, StaffSession, TokenHash};
use portal_core::error::CommandError;
use portal_core::id::{StaffUserId, TenantId};
use portal_core::storage::{AuthRepo, PurgeReport, StorageError, StorageResult};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::{is_foreign_key, map_sqlx, parse};
use crate::rows::{SessionRow, session_columns};
use crate::{SqliteStorage, finish};

/// A session works while `now < expires_at` (`StaffSession::is_live`). sqlx's RFC 3339 text
/// sorts in time order, so the comparison can use the index on `expires_at`.
const DELETE_EXPIRED_STAFF_SESSIONS: &str = "DELETE FROM staff_sessions WHERE expires_at <= $1";

/// Counters last counted before the cutoff (`now - ATTEMPT_RETENTION`), and those written before
/// migration `attempt_times`, which have no last-attempt time.
const PURGE_SIGN_IN_ATTEMPTS: &str =
    "DELETE FROM sign_in_attempts WHERE last_attempt_at IS NULL OR last_attempt_at < $1";

/// Challenges that expired before the cutoff (`now - ATTEMPT_RETENTION`). Not at expiry: for a
/// day a just-expired challenge is still found and answers `invalid_code` as expired; afterwards
/// it answers as an unknown token does, the same `invalid_code`.
const PURGE_ACCESS_CHALLENGES: &str = "DELETE FROM access_challenge WHERE expires_at < $1";

/// A contact session works while `now < expires_at`.
const PURGE_CONTACT_SESSIONS: &str = "DELETE FROM contact_session WHERE expires_at <= $1";

/// The refusal of a write whose staff user (or tenant) does not exist, for the methods that can
/// only report a storage error.
fn missing_user(e: sqlx::Error, what: &str, tenant: TenantId, user: StaffUserId) -> StorageError {
    if is_foreign_key(&e) {
        StorageError::Invariant(format!(
            "{what} for staff user {user}, who does not exist in tenant {tenant}"
        ))
    } else {
        map_sqlx(e)
    }
}

/// Runs one of the purge's deletes, with its one time bound; how many rows went.
async fn delete_before(conn: &mut SqliteConnection, sql: &'static str, at: DateTime<Utc>) -> StorageResult<u64> {
    let r = sqlx::query(sql).bind(at).execute(conn).await.map_err(map_sqlx)?;
    Ok(r.rows_affected())
}

#[async_trait]
impl AuthRepo for SqliteStorage {
    async fn tenant_for_host(&self, host: &str) -> StorageResult<Option<TenantId>> {
        let id: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(id.map(TenantId::from_uuid))
    }

    async fn add_tenant_host(&self, tenant: TenantId, host: &str) -> StorageResult<Result<(), CommandError>> {
        let mut tx = self.begin_write().await?;
        // The trait brings no time: the mapping is stamped with the database's clock, in the
        // RFC 3339 form sqlx writes times in.
        let inserted = sqlx::query(
            "INSERT INTO tenant_hosts (host, tenant_id, created_at) \
             VALUES ($1, $2, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')) ON CONFLICT (host) DO NOTHING",
        )
        .bind(host)
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(r) if r.rows_affected() > 0 => {
                finish(tx).await?;
                return Ok(Ok(()));
            }
            Ok(_) => {}
            Err(e) if is_foreign_key(&e) => {
                tx.rollback().await.map_err(map_sqlx)?;
                return Ok(Err(CommandError::NotFound {
                    entity: "tenant",
                    id: tenant.as_uuid(),
                }));
            }
            Err(e) => return Err(map_sqlx(e)),
        }
        // The host is taken: by this tenant (a no-op) or by another.
        let owner: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        match owner {
            Some(owner) if owner == tenant.as_uuid() => Ok(Ok(())),
            Some(_) => Ok(Err(CommandError::AlreadyExists {
                entity: "tenant host",
                value: host.to_owned(),
            })),
            None => Err(StorageError::Invariant(format!(
                "the insert of host {host} clashed with no row"
            ))),
        }
    }

    async fn list_tenant_hosts(&self, tenant: TenantId) -> StorageResult<Vec<String>> {
        // SQLite compares TEXT byte by byte (BINARY collation): Rust's string order.
        sqlx::query_scalar("SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY host")
            .bind(tenant.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    async fn password_hash(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<Option<String>> {
        sqlx::query_scalar("SELECT password_hash FROM staff_credentials WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    async fn set_password_hash(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO staff_credentials (tenant_id, user_id, password_hash, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = excluded.password_hash, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| missing_user(e, "a password", tenant, user))?;
        sqlx::query("DELETE FROM staff_sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await
    }

    async fn insert_staff_session(&self, session: &StaffSession) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO staff_sessions (token_hash, tenant_id, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(session.token_hash.as_bytes().as_slice())
        .bind(session.tenant_id.as_uuid())
        .bind(session.user_id.as_uuid())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| missing_user(e, "a session", session.tenant_id, session.user_id))?;
        if r.rows_affected() == 0 {
            tx.rollback().await.map_err(map_sqlx)?;
            return Err(StorageError::Invariant(
                "a session token hash was issued twice".to_owned(),
            ));
        }
        finish(tx).await
    }

    async fn staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<StaffSession>> {
        let row: Option<SessionRow> = sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM staff_sessions WHERE token_hash = $1 AND tenant_id = $2"
        ))
        .bind(token.as_bytes().as_slice())
        .bind(tenant.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        row.map(StaffSession::try_from).transpose()
    }

    async fn delete_staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1 AND tenant_id = $2")
            .bind(token.as_bytes().as_slice())
            .bind(tenant.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_staff_sessions_of(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<u64> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM staff_sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(r.rows_affected())
    }

    async fn delete_expired_staff_sessions(&self, now: DateTime<Utc>) -> StorageResult<u64> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(DELETE_EXPIRED_STAFF_SESSIONS)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
        Ok(r.rows_affected())
    }

    async fn count_sign_in_attempt(
        &self,
        tenant: TenantId,
        key: &str,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<u32> {
        let mut tx = self.begin_write().await?;
        // One statement: the counter of this window goes up by one, a counter of another window
        // restarts at 1, the time of this attempt is noted, and the count comes back.
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO sign_in_attempts (tenant_id, key, window_start, count, last_attempt_at) \
             VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (tenant_id, key) DO UPDATE SET count = CASE \
             WHEN sign_in_attempts.window_start = excluded.window_start THEN sign_in_attempts.count + 1 ELSE 1 END, \
             window_start = excluded.window_start, last_attempt_at = excluded.last_attempt_at \
             RETURNING count",
        )
        .bind(tenant.as_uuid())
        .bind(key)
        .bind(window_start)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_foreign_key(&e) {
                StorageError::Invariant(format!(
                    "a sign-in attempt counted for tenant {tenant}, which does not exist"
                ))
            } else {
                map_sqlx(e)
            }
        })?;
        finish(tx).await?;
        parse("sign_in_attempts.count", u32::try_from(count))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StorageResult<PurgeReport> {
        // One write transaction, one statement per table. The cutoffs are bound as sqlx's RFC 3339
        // text, which sorts in time order like the stored times.
        let cutoff = now - ATTEMPT_RETENTION;
        let mut tx = self.begin_write().await?;
        let report = PurgeReport {
            sign_in_attempts: delete_before(&mut tx, PURGE_SIGN_IN_ATTEMPTS, cutoff).await?,
            access_challenges: delete_before(&mut tx, PURGE_ACCESS_CHALLENGES, cutoff).await?,
            contact_sessions: delete_before(&mut tx, PURGE_CONTACT_SESSIONS, now).await?,
            staff_sessions: delete_before(&mut tx, DELETE_EXPIRED_STAFF_SESSIONS, now).await?,
        };
        finish(tx).await?;
        Ok(report)
    }
}
