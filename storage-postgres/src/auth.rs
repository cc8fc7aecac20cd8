//! [`AuthRepo`] on PostgreSQL: tenant hosts, staff password hashes, staff sessions and sign-in
//! attempt counters (migrations `staff_auth` and `attempt_times`), and the purge of the rows
//! that only grow (counters, one-time-code challenges, contact and staff sessions).
//!
//! A session's token hash is a 32-byte `BYTEA` (checked by the schema) and its primary key.
//! Inserts that may clash use `ON CONFLICT` so no statement aborts its transaction. Rows pointing
//! at a tenant or staff user that does not exist are refused by the foreign keys:
//! `add_tenant_host` answers `NotFound("tenant")`, the methods with no room for a refusal
//! [`StorageError::Invariant`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::auth::{ATTEMPT_RETENTION, StaffSession, TokenHash};
use portal_core::error::CommandError;
use portal_core::id::{StaffUserId, TenantId};
use portal_core::storage::{AuthRepo, PurgeReport, StorageError, StorageResult};
use uuid::Uuid;

use crate::PgStorage;
use crate::error::{is_foreign_key_violation, map_sqlx};
use crate::rows::SessionRow;

const TENANT_FOR_HOST: &str = "SELECT tenant_id FROM tenant_hosts WHERE host = $1";

/// The trait brings no time: a mapping is stamped with the database's clock.
const INSERT_TENANT_HOST: &str = "INSERT INTO tenant_hosts (host, tenant_id, created_at) VALUES ($1, $2, now()) \
     ON CONFLICT (host) DO NOTHING";

/// Sorted byte by byte (`COLLATE "C"`), as Rust sorts strings, whatever the database's collation.
const LIST_TENANT_HOSTS: &str = "SELECT host FROM tenant_hosts WHERE tenant_id = $1 ORDER BY host COLLATE \"C\"";

const PASSWORD_HASH: &str = "SELECT password_hash FROM staff_credentials WHERE tenant_id = $1 AND user_id = $2";

const UPSERT_PASSWORD_HASH: &str = "INSERT INTO staff_credentials (tenant_id, user_id, password_hash, updated_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (tenant_id, user_id) DO UPDATE SET password_hash = excluded.password_hash, \
         updated_at = excluded.updated_at";

const DELETE_SESSIONS_OF: &str = "DELETE FROM staff_sessions WHERE tenant_id = $1 AND user_id = $2";

const INSERT_SESSION: &str = "INSERT INTO staff_sessions (token_hash, tenant_id, user_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING";

const GET_SESSION: &str = "SELECT token_hash, tenant_id, user_id, created_at, expires_at FROM staff_sessions \
     WHERE token_hash = $1 AND tenant_id = $2";

const DELETE_SESSION: &str = "DELETE FROM staff_sessions WHERE token_hash = $1 AND tenant_id = $2";

/// A session works while `now < expires_at` (`StaffSession::is_live`).
const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM staff_sessions WHERE expires_at <= $1";

/// One statement, atomic under concurrency: the counter of this window goes up by one, a counter
/// of another window restarts at 1, the time of this attempt is noted, and the count comes back.
const COUNT_SIGN_IN_ATTEMPT: &str = "INSERT INTO sign_in_attempts (tenant_id, key, window_start, count, last_attempt_at) \
     VALUES ($1, $2, $3, 1, $4) \
     ON CONFLICT (tenant_id, key) DO UPDATE SET count = CASE \
         WHEN sign_in_attempts.window_start = excluded.window_start THEN sign_in_attempts.count + 1 ELSE 1 END, \
         window_start = excluded.window_start, last_attempt_at = excluded.last_attempt_at \
     RETURNING count";

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

impl PgStorage {
    /// Runs one of the purge's deletes, with its one time bound; how many rows went.
    async fn delete_before(&self, sql: &'static str, at: DateTime<Utc>) -> StorageResult<u64> {
        let r = sqlx::query(sql).bind(at).execute(&self.pool).await.map_err(map_sqlx)?;
        Ok(r.rows_affected())
    }
}

/// The refusal of a write whose staff user (or tenant) does not exist, for the methods that can
/// only report a storage error.
fn missing_user(e: sqlx::Error, what: &str, tenant: TenantId, user: StaffUserId) -> StorageError {
    if is_foreign_key_violation(&e) {
        StorageError::Invariant(format!(
            "{what} for staff user {user}, who does not exist in tenant {tenant}"
        ))
    } else {
        map_sqlx(e)
    }
}

#[async_trait]
impl AuthRepo for PgStorage {
    async fn tenant_for_host(&self, host: &str) -> StorageResult<Option<TenantId>> {
        let id: Option<Uuid> = sqlx::query_scalar(TENANT_FOR_HOST)
            .bind(host)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(id.map(TenantId::from_uuid))
    }

    async fn add_tenant_host(&self, tenant: TenantId, host: &str) -> StorageResult<Result<(), CommandError>> {
        // READ COMMITTED: when the insert skips the row because another transaction committed
        // it, the next statement's snapshot sees that row.
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let inserted = sqlx::query(INSERT_TENANT_HOST)
            .bind(host)
            .bind(tenant.as_uuid())
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(r) if r.rows_affected() > 0 => {
                tx.commit().await.map_err(map_sqlx)?;
                return Ok(Ok(()));
            }
            Ok(_) => {}
            // Dropping the transaction rolls it back.
            Err(e) if is_foreign_key_violation(&e) => {
                return Ok(Err(CommandError::NotFound {
                    entity: "tenant",
                    id: tenant.as_uuid(),
                }));
            }
            Err(e) => return Err(map_sqlx(e)),
        }
        // The host is taken: by this tenant (a no-op) or by another.
        let owner: Option<Uuid> = sqlx::query_scalar(TENANT_FOR_HOST)
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
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
        sqlx::query_scalar(LIST_TENANT_HOSTS)
            .bind(tenant.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    async fn password_hash(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<Option<String>> {
        sqlx::query_scalar(PASSWORD_HASH)
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
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        sqlx::query(UPSERT_PASSWORD_HASH)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| missing_user(e, "a password", tenant, user))?;
        sqlx::query(DELETE_SESSIONS_OF)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)
    }

    async fn insert_staff_session(&self, session: &StaffSession) -> StorageResult<()> {
        let r = sqlx::query(INSERT_SESSION)
            .bind(session.token_hash.as_bytes().as_slice())
            .bind(session.tenant_id.as_uuid())
            .bind(session.user_id.as_uuid())
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| missing_user(e, "a session", session.tenant_id, session.user_id))?;
        if r.rows_affected() == 0 {
            return Err(StorageError::Invariant(
                "a session token hash was issued twice".to_owned(),
            ));
        }
        Ok(())
    }

    async fn staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<StaffSession>> {
        sqlx::query_as::<_, SessionRow>(GET_SESSION)
            .bind(token.as_bytes().as_slice())
            .bind(tenant.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(StaffSession::try_from)
            .transpose()
    }

    async fn delete_staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let r = sqlx::query(DELETE_SESSION)
            .bind(token.as_bytes().as_slice())
            .bind(tenant.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_staff_sessions_of(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<u64> {
        let r = sqlx::query(DELETE_SESSIONS_OF)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(r.rows_affected())
    }

    async fn delete_expired_staff_sessions(&self, now: DateTime<Utc>) -> StorageResult<u64> {
        let r = sqlx::query(DELETE_EXPIRED_SESSIONS)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(r.rows_affected())
    }

    async fn count_sign_in_attempt(
        &self,
        tenant: TenantId,
        key: &str,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<u32> {
        let count: i32 = sqlx::query_scalar(COUNT_SIGN_IN_ATTEMPT)
            .bind(tenant.as_uuid())
            .bind(key)
            .bind(window_start)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StorageError::Invariant(format!(
                        "a sign-in attempt counted for tenant {tenant}, which does not exist"
                    ))
                } else {
                    map_sqlx(e)
                }
            })?;
        u32::try_from(count).map_err(|e| StorageError::Corrupt(format!("sign-in attempt count: {e}")))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StorageResult<PurgeReport> {
        // One statement per table, each its own transaction: nothing needs the four deletes to
        // land together, and no purge holds the locks of one table's rows while it waits for
        // another's (a portal or contact deleted meanwhile cascades through the same tables).
        // Two purges at once delete each row once: a row the other deleted first is skipped. A
        // counter counted while the purge waits for its row lock is checked again afterwards,
        // with its new `last_attempt_at`, and stays.
        let cutoff = now - ATTEMPT_RETENTION;
        Ok(PurgeReport {
            sign_in_attempts: self.delete_before(PURGE_SIGN_IN_ATTEMPTS, cutoff).await?,
            access_challenges: self.delete_before(PURGE_ACCESS_CHALLENGES, cutoff).await?,
            contact_sessions: self.delete_before(PURGE_CONTACT_SESSIONS, now).await?,
            staff_sessions: self.delete_before(DELETE_EXPIRED_SESSIONS, now).await?,
        })
    }
}
