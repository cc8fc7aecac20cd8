//! [`OutboxRepo`] on SQLite: the mail worker's claims and results, and the staff's view of the
//! outbox (migration `outbox_and_branding`). Messages are inserted by the commit path.
//!
//! Every write is one statement in a `BEGIN IMMEDIATE` transaction on the write connection, so
//! a claim (`UPDATE ... RETURNING`) and a mark never interleave with another writer's: within
//! one process the write connection serialises them, across processes the database's write
//! lock does. A `mark_*` call acts only while the row is still `sending` with the attempt it
//! names (fencing), so a worker whose lease ran out cannot overwrite the result of the worker
//! that claimed the message after it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portal_core::id::{MessageId, TenantId};
use portal_core::mail::{ClaimedMessage, MessageStatus, OutboxEntry, SentMark};
use portal_core::outcome::OutboundMessage;
use portal_core::storage::{MAX_PAGE, OutboxRepo, PageRequest, StorageResult};

use crate::error::map_sqlx;
use crate::rows::{MessageRow, OutboxEntryRow, message_columns, outbox_entry_columns};
use crate::{SqliteStorage, finish, ids_up_to, limit};

/// Most characters of a delivery error kept with the message.
pub(crate) const MAX_ERROR_CHARS: usize = 1_000;

/// A delivery error as stored: at most [`MAX_ERROR_CHARS`] characters.
pub(crate) fn stored_error(error: &str) -> &str {
    error
        .char_indices()
        .nth(MAX_ERROR_CHARS)
        .map_or(error, |(end, _)| &error[..end])
}

/// The due rows (queued and due, or sending with a lease that ran out), oldest due first, are
/// leased in the same statement that picks them. The partial index `outbox_message_due` serves
/// the inner `SELECT`: its `status IN (...)` term is the index's own condition.
const CLAIM: &str = concat!(
    "UPDATE outbox_message SET status = 'sending', attempts = attempts + 1, lease_until = $2 \
     WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM outbox_message \
       WHERE status IN ('queued','sending') \
         AND ((status = 'queued' AND next_attempt_at <= $1) OR (status = 'sending' AND lease_until < $1)) \
       ORDER BY next_attempt_at, tenant_id, id LIMIT $3) \
     RETURNING ",
    message_columns!()
);

const MARK_SENT: &str = "UPDATE outbox_message SET status = 'sent', sent_at = $4, lease_until = NULL, \
     secret_key_id = NULL, secret_nonce = NULL, secret_ciphertext = NULL \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

const MARK_RETRY: &str = "UPDATE outbox_message SET status = 'queued', next_attempt_at = $4, lease_until = NULL, \
     last_error = $5 \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

const MARK_FAILED: &str = "UPDATE outbox_message SET status = 'failed', lease_until = NULL, last_error = $4 \
     WHERE tenant_id = $1 AND id = $2 AND status = 'sending' AND attempts = $3";

const REQUEUE: &str = "UPDATE outbox_message SET status = 'queued', attempts = 0, next_attempt_at = $3, \
     lease_until = NULL \
     WHERE tenant_id = $1 AND id = $2 AND status = 'failed'";

const LIST_ALL: &str = concat!(
    "SELECT ",
    outbox_entry_columns!(),
    " FROM outbox_message WHERE tenant_id = $1 AND id <= $2 ORDER BY id DESC LIMIT $3"
);

const LIST_OF_STATUS: &str = concat!(
    "SELECT ",
    outbox_entry_columns!(),
    " FROM outbox_message WHERE tenant_id = $1 AND id <= $2 AND status = $4 ORDER BY id DESC LIMIT $3"
);

const GET: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM outbox_message WHERE tenant_id = $1 AND id = $2"
);

impl SqliteStorage {
    /// Runs one fenced or guarded `UPDATE` in a write transaction; whether it changed the row.
    async fn update_one(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let changed = query.execute(&mut *tx).await.map_err(map_sqlx)?.rows_affected();
        finish(tx).await?;
        Ok(changed > 0)
    }
}

#[async_trait]
impl OutboxRepo for SqliteStorage {
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
        let mut tx = self.begin_write().await?;
        let rows: Vec<MessageRow> = sqlx::query_as(CLAIM)
            .bind(now)
            .bind(lease_until)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        finish(tx).await?;
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
        self.update_one(
            sqlx::query(MARK_SENT)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(i64::from(attempt))
                .bind(at),
        )
        .await
    }

    async fn mark_messages_sent(&self, marks: &[SentMark]) -> StorageResult<usize> {
        if marks.is_empty() {
            return Ok(0);
        }
        // One write transaction for the whole group: each mark is still its own fenced UPDATE.
        let mut tx = self.begin_write().await?;
        let mut applied = 0;
        for m in marks {
            let changed = sqlx::query(MARK_SENT)
                .bind(m.tenant_id.as_uuid())
                .bind(m.id.as_uuid())
                .bind(i64::from(m.attempt))
                .bind(m.at)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?
                .rows_affected();
            if changed > 0 {
                applied += 1;
            }
        }
        finish(tx).await?;
        Ok(applied)
    }

    async fn mark_message_retry(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<bool> {
        self.update_one(
            sqlx::query(MARK_RETRY)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(i64::from(attempt))
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
        self.update_one(
            sqlx::query(MARK_FAILED)
                .bind(tenant.as_uuid())
                .bind(id.as_uuid())
                .bind(i64::from(attempt))
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
        let Some(up_to) = ids_up_to(page.after.map(|a| a.as_uuid())) else {
            return Ok(Vec::new());
        };
        let query = sqlx::query_as::<_, OutboxEntryRow>(if status.is_some() { LIST_OF_STATUS } else { LIST_ALL })
            .bind(tenant.as_uuid())
            .bind(up_to)
            .bind(limit(&page));
        let query = match status {
            Some(s) => query.bind(s.as_str()),
            None => query,
        };
        let rows = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        rows.into_iter().map(OutboxEntry::try_from).collect()
    }

    async fn get_message(&self, tenant: TenantId, id: MessageId) -> StorageResult<Option<OutboundMessage>> {
        let row: Option<MessageRow> = sqlx::query_as(GET)
            .bind(tenant.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(|r| r.into_message().map(|(m, _)| m)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_at_a_character_boundary() {
        assert_eq!(stored_error("short"), "short");
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        assert_eq!(stored_error(&long).chars().count(), MAX_ERROR_CHARS);
        let exact = "x".repeat(MAX_ERROR_CHARS);
        assert_eq!(stored_error(&exact), exact);
    }
}
