//! [`NotificationRepo`] on SQLite: what the reminder scheduler and the digest sender read
//! (migration `notification_preferences`). The ledger and the digest items are written by the
//! commit path. A portal's reminder records read back oldest first (then by their key); the
//! reference store keeps the order written, which is the same order for records written by
//! successive decisions.
//!
//! The cross-tenant pages are keyset pages on row values, `(tenant_id, id) > ($1, $2)`, which
//! SQLite turns into a range of the index that leads with those columns: `portal_active` (a
//! partial index of the active portals) and `notification_digest_item_by_contact`.

use async_trait::async_trait;
use portal_core::id::{ContactId, PortalId, TenantId};
use portal_core::notifications::{DigestItem, PendingDigest, ReminderRecord};
use portal_core::storage::{NotificationRepo, StorageResult};
use uuid::Uuid;

use crate::SqliteStorage;
use crate::error::map_sqlx;
use crate::rows::{DigestItemRow, PendingDigestRow, ReminderRow};

/// Most rows of one cross-tenant page.
const MAX_LIMIT: usize = 1000;

/// A page size clamped to 1..=[`MAX_LIMIT`], as a SQL `LIMIT`.
fn clamped(limit: usize) -> i64 {
    i64::try_from(limit.clamp(1, MAX_LIMIT)).unwrap_or(1)
}

/// Oldest first; the order of one decision's rows (same time) is fixed by the key.
const LIST_REMINDERS: &str = "SELECT tenant_id, portal_id, task_id, contact_id, reason, due_date, sent_at \
     FROM reminder_sent WHERE tenant_id = $1 AND portal_id = $2 \
     ORDER BY sent_at, task_id, contact_id, reason, due_date";

const ACTIVE_PORTALS_FIRST: &str = "SELECT tenant_id, id FROM portal WHERE status = 'active' \
     ORDER BY tenant_id, id LIMIT $1";

const ACTIVE_PORTALS_AFTER: &str = "SELECT tenant_id, id FROM portal WHERE status = 'active' \
     AND (tenant_id, id) > ($2, $3) ORDER BY tenant_id, id LIMIT $1";

/// One row per contact with items waiting: its oldest item's time, and the portal of its first
/// item (by id), as the reference store reports it.
macro_rules! pending_digests {
    ($after:literal) => {
        concat!(
            "SELECT g.tenant_id, f.portal_id, g.contact_id, g.oldest FROM ( \
                 SELECT tenant_id, contact_id, MIN(id) AS first_id, MIN(created_at) AS oldest \
                 FROM notification_digest_item ",
            $after,
            " GROUP BY tenant_id, contact_id ORDER BY tenant_id, contact_id LIMIT $1 \
             ) g \
             JOIN notification_digest_item f ON f.tenant_id = g.tenant_id AND f.id = g.first_id \
             ORDER BY g.tenant_id, g.contact_id"
        )
    };
}

const PENDING_DIGESTS_FIRST: &str = pending_digests!("");

const PENDING_DIGESTS_AFTER: &str = pending_digests!("WHERE (tenant_id, contact_id) > ($2, $3)");

const LIST_DIGEST_ITEMS: &str = "SELECT tenant_id, id, portal_id, contact_id, topic, payload, created_at \
     FROM notification_digest_item WHERE tenant_id = $1 AND contact_id = $2 ORDER BY id";

#[async_trait]
impl NotificationRepo for SqliteStorage {
    async fn list_reminder_records(&self, tenant: TenantId, portal: PortalId) -> StorageResult<Vec<ReminderRecord>> {
        let rows: Vec<ReminderRow> = sqlx::query_as(LIST_REMINDERS)
            .bind(tenant.as_uuid())
            .bind(portal.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.into_iter().map(ReminderRecord::try_from).collect()
    }

    async fn list_active_portals(
        &self,
        after: Option<(TenantId, PortalId)>,
        limit: usize,
    ) -> StorageResult<Vec<(TenantId, PortalId)>> {
        let query = match after {
            None => sqlx::query_as(ACTIVE_PORTALS_FIRST).bind(clamped(limit)),
            Some((t, p)) => sqlx::query_as(ACTIVE_PORTALS_AFTER)
                .bind(clamped(limit))
                .bind(t.as_uuid())
                .bind(p.as_uuid()),
        };
        let rows: Vec<(Uuid, Uuid)> = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(t, p)| (TenantId::from_uuid(t), PortalId::from_uuid(p)))
            .collect())
    }

    async fn list_pending_digests(
        &self,
        after: Option<(TenantId, ContactId)>,
        limit: usize,
    ) -> StorageResult<Vec<PendingDigest>> {
        let query = match after {
            None => sqlx::query_as(PENDING_DIGESTS_FIRST).bind(clamped(limit)),
            Some((t, c)) => sqlx::query_as(PENDING_DIGESTS_AFTER)
                .bind(clamped(limit))
                .bind(t.as_uuid())
                .bind(c.as_uuid()),
        };
        let rows: Vec<PendingDigestRow> = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        Ok(rows.into_iter().map(PendingDigest::from).collect())
    }

    async fn list_digest_items(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<DigestItem>> {
        let rows: Vec<DigestItemRow> = sqlx::query_as(LIST_DIGEST_ITEMS)
            .bind(tenant.as_uuid())
            .bind(contact.as_uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.into_iter().map(DigestItem::try_from).collect()
    }
}
