//! [`OutboxRepo`] on PostgreSQL: the mail worker's claims and results, and the staff's view of
//! the outbox (migration `outbox_and_branding`). Messages are inserted by the commit path.
//!
//! A claim is one statement: the due rows are picked `FOR UPDATE SKIP LOCKED` and leased in the
//! `UPDATE` that contains the pick, so several server processes claiming at once each get other
//! rows, and none waits for another's. A row another claim has just leased is skipped while that
//! claim's transaction is open, and fails the due condition (re-checked on the newest row
//! version) once it has committed. The `mark_*` calls act only while the row is still `sending`
//! with the attempt they name (fencing), so a worker whose lease ran out cannot overwrite the
//! result of the worker that claimed the message after it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::id::{MessageId, TenantId};
use portal_core::mail::{ClaimedMessage, MessageStatus, OutboxEntry, SentMark};
use portal_core::outcome::OutboundMessage;
use portal_core::storage::{MAX_PAGE, OutboxRepo, PageRequest, StorageResult};

use crate::PgStorage;
use crate::error::map_sqlx;
use crate::read::sql_limit;
use crate::rows::{MessageRow, OutboxEntryRow, convert};

/// Most characters of a delivery error kept with the message.
pub(crate) const MAX_ERROR_CHARS: usize = 1_000;

/// A delivery error as stored: at most [`MAX_ERROR_CHARS`] characters, without NUL (which
/// PostgreSQL's `text` cannot hold).
pub(crate) fn stored_error(error: &str) -> String {
    error
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| if c == '\0' { char::REPLACEMENT_CHARACTER } else { c })
        .collect()
}

/// The columns a claim returns and a read of one message selects.
macro_rules! message_columns {
    () => {
        "tenant_id, id, portal_id, contact_id, kind, recipient, recipient_name, payload, secret_key_id, secret_nonce, \
         secret_ciphertext, attempts, next_attempt_at, created_at"
    };
}

/// Due rows (queued and due, or sending with a lease that ran out), oldest due first, leased in
/// the statement that picks them. The partial index `outbox_message_due` serves the pick.
const CLAIM: &str = concat!(
    "UPDATE outbox_message SET status = 'sending', attempts = attempts + 1, lease_until = $2 \
     WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM outbox_message \
       WHERE status IN ('queued','sending') \
         AND ((status = 'queued' AND next_attempt_at <= $1) OR (status = 'sending' AND lease_until < $1)) \
       ORDER BY next_attempt_at, tenant_id, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    message_columns!()
);

const MARK_SENT: &str = "UPDATE outbox_message SET status = 'sent', sent_at = $4, lease_until = NULL, \
     secret_key_id = NULL, secret_nonce = NULL, secret_ciphertext = NULL \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

/// The group form of [`MARK_SENT`]: one statement over arrays of (tenant, id, attempt, at), each
/// row still fenced by its own attempt.
const MARK_SENT_MANY: &str = "UPDATE outbox_message m SET status = 'sent', sent_at = g.at, lease_until = NULL, \
     secret_key_id = NULL, secret_nonce = NULL, secret_ciphertext = NULL \
     FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[]) AS g(tenant_id, id, attempt, at) \
     WHERE m.tenant_id = g.tenant_id AND m.id = g.id AND m.status = 'sending' AND m.attempts = g.attempt";

const MARK_RETRY: &str = "UPDATE outbox_message SET status = 'queued', next_attempt_at = $4, lease_until = NULL, \
     last_error = $5 \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

const MARK_FAILED: &str = "UPDATE outbox_message SET status = 'failed', lease_until = NULL, last_error = $4 \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

const REQUEUE: &str = "UPDATE outbox_message SET status = 'queued', attempts = 0, next_attempt_at = $3, \
     lease_until = NULL \
     WHERE tenant_id = $1 AND id = $2 AND status = 'failed'";

const LIST: &str = "SELECT id, portal_id, contact_id, kind, recipient, status, attempts, next_attempt_at, last_error, \
            created_at, sent_at \
     FROM outbox_message \
     WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) AND ($3::text IS NULL OR status = $3) \
     ORDER BY id DESC LIMIT $4";

const GET: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM outbox_message WHERE tenant_id = $1 AND id = $2"
);

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl PgStorage {
    /// Runs one fenced or guarded `UPDATE`; whether it changed the row.
    async fn update_one(&self, query: PgQuery<'_>) -> StorageResult<bool> {
        Ok(query.execute(&self.pool).await.map_err(map_sqlx)?.rows_affected() > 0)
    }
}

#[async_trait]
impl OutboxRepo for PgStorage {
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StorageResult<Vec<ClaimedMessage>> {
        let limit = limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<MessageRow> = sqlx::query_as(CLAIM)
            .bind(now)
            .bind(lease_until)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        // RETURNING gives no order: the oldest due first, as the claim picked them.
        let mut claimed = rows
            .into_iter()
            .map(|r| {
                let due = r.next_attempt_at;
                let (message, attempt) = r.into_message()?;
                Ok((due, message.tenant_id, message.id, ClaimedMessage { message, attempt }))
            })
            .collect::<StorageResult<Vec<_>>>()?;
        claimed.sort_by_key(|(due, tenant, id, _)| (*due, *tenant, *id));
        Ok(claimed.into_iter().map(|(.., c)| c).collect())
    }

    async fn mark_message_sent(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        // `attempts` is an INTEGER: an attempt beyond it was never claimed.
        let Ok(attempt) = i32::try_from(attempt) else {
            return Ok(false);
        };
        self.update_one(
            sqlx::query(MARK_SENT)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(attempt)
                .bind(at),
        )
        .await
    }

    async fn mark_messages_sent(&self, marks: &[SentMark]) -> StorageResult<usize> {
        if marks.is_empty() {
            return Ok(0);
        }
        let mut tenants = Vec::with_capacity(marks.len());
        let mut ids = Vec::with_capacity(marks.len());
        let mut attempts = Vec::with_capacity(marks.len());
        let mut ats = Vec::with_capacity(marks.len());
        for m in marks {
            // `attempts` is an INTEGER: an attempt beyond it was never claimed.
            let Ok(attempt) = i32::try_from(m.attempt) else {
                continue;
            };
            tenants.push(m.tenant_id.as_uuid());
            ids.push(m.id.as_uuid());
            attempts.push(attempt);
            ats.push(m.at);
        }
        let changed = sqlx::query(MARK_SENT_MANY)
            .bind(tenants)
            .bind(ids)
            .bind(attempts)
            .bind(ats)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    async fn mark_message_retry(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<bool> {
        let Ok(attempt) = i32::try_from(attempt) else {
            return Ok(false);
        };
        self.update_one(
            sqlx::query(MARK_RETRY)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(attempt)
                .bind(next_attempt_at)
                .bind(stored_error(error)),
        )
        .await
    }

    async fn mark_message_failed(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        error: &str,
    ) -> StorageResult<bool> {
        let Ok(attempt) = i32::try_from(attempt) else {
            return Ok(false);
        };
        self.update_one(
            sqlx::query(MARK_FAILED)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(attempt)
                .bind(stored_error(error)),
        )
        .await
    }

    async fn requeue_failed_message(&self, tenant: TenantId, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        self.update_one(sqlx::query(REQUEUE).bind(tenant.as_uuid()).bind(id.as_uuid()).bind(now))
            .await
    }

    async fn list_messages(
        &self,
        tenant: TenantId,
        status: Option<MessageStatus>,
        page: PageRequest<MessageId>,
    ) -> StorageResult<Vec<OutboxEntry>> {
        let rows = sqlx::query_as::<_, OutboxEntryRow>(LIST)
            .bind(tenant.as_uuid())
            .bind(page.after.map(|a| a.as_uuid()))
            .bind(status.map(MessageStatus::as_str))
            .bind(sql_limit(&page))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        convert(rows)
    }

    async fn get_message(&self, tenant: TenantId, id: MessageId) -> StorageResult<Option<OutboundMessage>> {
        sqlx::query_as::<_, MessageRow>(GET)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?
            .map(|r| r.into_message().map(|(m, _)| m))
            .transpose()
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn errors_are_cut_and_cleaned() {
        assert_eq!(stored_error("short"), "short");
        assert_eq!(stored_error("a\0b"), "a\u{fffd}b");
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        assert_eq!(stored_error(&long).chars().count(), MAX_ERROR_CHARS);
    }
}
