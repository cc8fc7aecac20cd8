//! Writes of the reminder ledger and of digest items (BYD-5).

use std::collections::HashSet;

use portal_core::error::CommandError;
use portal_core::id::{ContactId, DigestItemId};
use portal_core::notifications::{DigestItem, ReminderRecord};
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use super::{Cx, exec, scalar};
use crate::error::{Fail, Step, already, not_found};

/// Written only when its task and contact exist, so a missing one is told apart from a reminder
/// already recorded (`reminder_sent_once`, whose NULL due dates clash with each other).
const INSERT_REMINDER: &str = "INSERT INTO reminder_sent (tenant_id, portal_id, task_id, contact_id, reason, due_date, \
         sent_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $3) \
       AND EXISTS (SELECT 1 FROM contact WHERE tenant_id = $1 AND id = $4) \
     ON CONFLICT DO NOTHING";
const TASK_AND_CONTACT_EXIST: &str = "SELECT EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $2) \
       AND EXISTS (SELECT 1 FROM contact WHERE tenant_id = $1 AND id = $3)";

/// A missing task or contact is `NotFound("task")` (as the reference store answers both), the
/// same reminder recorded already `AlreadyExists("reminder", task)`. A portal that does not
/// exist is refused by its foreign key.
pub(super) async fn insert_reminder(conn: &mut PgConnection, cx: Cx<'_>, r: &ReminderRecord) -> Step {
    let query = sqlx::query(INSERT_REMINDER)
        .bind(cx.t())
        .bind(r.portal_id.as_uuid())
        .bind(r.task_id.as_uuid())
        .bind(r.contact_id.as_uuid())
        .bind(r.reason.as_str())
        .bind(r.due_date)
        .bind(r.sent_at);
    if exec(conn, cx, query).await? == 0 {
        let exist = sqlx::query_scalar(TASK_AND_CONTACT_EXIST)
            .bind(cx.t())
            .bind(r.task_id.as_uuid())
            .bind(r.contact_id.as_uuid());
        return Err(if scalar(conn, cx, exist).await? {
            already("reminder", &r.task_id)
        } else {
            not_found("task", r.task_id)
        });
    }
    Ok(())
}

/// Written only when its contact exists, so a missing contact is told apart from a taken id.
const INSERT_DIGEST_ITEM: &str = "INSERT INTO notification_digest_item (tenant_id, id, portal_id, contact_id, topic, \
         payload, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7 \
     WHERE EXISTS (SELECT 1 FROM contact WHERE tenant_id = $1 AND id = $4) \
     ON CONFLICT DO NOTHING";
const CONTACT_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM contact WHERE tenant_id = $1 AND id = $2)";

/// A missing contact is `NotFound("contact")`, a taken id `AlreadyExists("digest item")`, in the
/// reference store's order. A portal that does not exist is refused by its foreign key.
pub(super) async fn insert_digest_item(conn: &mut PgConnection, cx: Cx<'_>, d: &DigestItem) -> Step {
    let query = sqlx::query(INSERT_DIGEST_ITEM)
        .bind(cx.t())
        .bind(d.id.as_uuid())
        .bind(d.portal_id.as_uuid())
        .bind(d.contact_id.as_uuid())
        .bind(d.topic.as_str())
        .bind(&d.payload)
        .bind(d.created_at);
    if exec(conn, cx, query).await? == 0 {
        let contact = sqlx::query_scalar(CONTACT_EXISTS)
            .bind(cx.t())
            .bind(d.contact_id.as_uuid());
        return Err(if scalar(conn, cx, contact).await? {
            already("digest item", &d.id.as_uuid())
        } else {
            not_found("contact", d.contact_id)
        });
    }
    Ok(())
}

const DELETE_DIGEST_ITEMS: &str = "DELETE FROM notification_digest_item \
     WHERE tenant_id = $1 AND contact_id = $2 AND id = ANY($3::uuid[]) RETURNING id";

/// Deletes a contact's digest items; unless every one of them was there (and the contact's), the
/// first that was not is refused as stale, as the reference store does, and the caller rolls
/// back the deletes of the others.
pub(super) async fn delete_digest_items(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    contact: ContactId,
    ids: &[DigestItemId],
) -> Step {
    if ids.is_empty() {
        return Ok(());
    }
    let deleted: Vec<Uuid> = sqlx::query_scalar(DELETE_DIGEST_ITEMS)
        .bind(cx.t())
        .bind(contact.as_uuid())
        .bind(ids.iter().map(|i| i.as_uuid()).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    if deleted.len() == ids.len() {
        return Ok(());
    }
    // The reference store deletes them in order and stops at the first one missing (or named
    // twice).
    let deleted: HashSet<Uuid> = deleted.into_iter().collect();
    let mut seen = HashSet::new();
    let missing = ids
        .iter()
        .map(|i| i.as_uuid())
        .find(|id| !seen.insert(*id) || !deleted.contains(id))
        .unwrap_or_else(|| ids[0].as_uuid());
    Err(Fail::Refused(CommandError::Stale {
        entity: "digest item",
        id: missing,
        expected: 1,
        actual: 0,
    }))
}
