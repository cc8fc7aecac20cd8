//! The one commit path: an [`Outcome`]'s writes, events and messages applied on one
//! transaction, shared by [`OutcomeRepo::commit_outcome`] and
//! [`PortalRepo::modify_portal`](portal_core::storage::PortalRepo::modify_portal).
//!
//! Every write answers a clash the way the in-memory reference store does, in the same order of
//! checks, without making PostgreSQL abort the transaction where it can:
//!
//! - inserts use `ON CONFLICT DO NOTHING` and, when nothing was inserted, look up why (a unique
//!   value taken, the id taken, a parent missing through a `WHERE EXISTS` guard);
//! - updates and deletes are compare-and-set (`... AND version = $expected`); when no row
//!   matched, the current version says `NotFound` or `Stale`; an update that must also keep a
//!   value unique (role names, staff emails, contact emails and primaries) carries a
//!   `NOT EXISTS` guard and reports the clash after the version check, as the reference store
//!   does.

mod access;
mod admin;
mod notifications;
mod portal;

use std::collections::HashSet;

use async_trait::async_trait;
use portal_core::activity::ActivityEvent;
use portal_core::crypto::Sealed;
use portal_core::error::CommandError;
use portal_core::id::TenantId;
use portal_core::mail::MessageSecret;
use portal_core::outcome::{AccessEffect, OutboundMessage, Outcome, Write};
use portal_core::storage::{OutcomeRepo, StorageError, StorageResult};
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use crate::PgStorage;
use crate::batch::{insert_contacts, insert_phases, insert_tasks};
use crate::error::{Fail, Step, already, append_violation, map_sqlx, not_found, violation};

/// The write being applied, for turning a violated constraint into the right refusal.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'w> {
    /// The commit's tenant: every row is written under it.
    pub(crate) tenant: TenantId,
    write: &'w Write,
}

impl Cx<'_> {
    /// A failed statement of this write as a refusal or a store failure.
    pub(crate) fn err(self, e: sqlx::Error) -> Fail {
        violation(e, self.tenant, self.write)
    }

    pub(super) fn t(self) -> Uuid {
        self.tenant.as_uuid()
    }
}

/// Applies `outcome` on `conn`, which must be inside a transaction the caller commits on
/// `Ok(Ok(()))` and rolls back otherwise.
///
/// A row of another tenant, and a message carrying its secret in clear, are refused before
/// anything is written ([`StorageError::Invariant`]). Then the writes are applied in order, the events appended
/// and the messages queued (status `queued`, no attempt yet, due at once), and last the access
/// effects applied (archiving revokes every link and session of the portal).
pub(crate) async fn apply_outcome(
    conn: &mut PgConnection,
    tenant: TenantId,
    outcome: &Outcome,
) -> StorageResult<Result<(), CommandError>> {
    if let Some(bad) = outcome.tenants().find(|t| *t != tenant) {
        return Err(StorageError::Invariant(format!(
            "a write for tenant {bad} in a commit for tenant {tenant}"
        )));
    }
    if let Some(m) = outcome
        .messages
        .iter()
        .find(|m| matches!(m.secret, Some(MessageSecret::Clear { .. })))
    {
        return Err(StorageError::Invariant(format!(
            "message {} carries its secret in clear; the engine seals secrets before they are stored",
            m.id
        )));
    }
    let applied = async {
        for w in &outcome.writes {
            apply_write(conn, Cx { tenant, write: w }).await?;
        }
        insert_events(conn, tenant, &outcome.events).await?;
        insert_messages(conn, tenant, &outcome.messages).await?;
        for effect in &outcome.effects {
            match *effect {
                AccessEffect::RevokeAllClientAccess { portal_id, at } => {
                    access::revoke(conn, tenant, access::Scope::Portal(portal_id.as_uuid()), at)
                        .await
                        .map_err(|e| Fail::Store(map_sqlx(e)))?;
                }
            }
        }
        Ok(())
    };
    match applied.await {
        Ok(()) => Ok(Ok(())),
        Err(Fail::Refused(e)) => Ok(Err(e)),
        Err(Fail::Store(e)) => Err(e),
    }
}

#[async_trait]
impl OutcomeRepo for PgStorage {
    async fn commit_outcome(&self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>> {
        if outcome.is_empty() {
            return Ok(Ok(()));
        }
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let result = apply_outcome(&mut tx, tenant, outcome).await?;
        if result.is_ok() {
            tx.commit().await.map_err(map_sqlx)?;
        } else {
            tx.rollback().await.map_err(map_sqlx)?;
        }
        Ok(result)
    }
}

/// Why a compare-and-set matched no row: the row is gone (`NotFound`) or carries another
/// version (`Stale`). `Ok` when the version is the expected one after all, which for a guarded
/// update means the guard refused it.
pub(super) async fn version_refusal(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    version_sql: &'static str,
    entity: &'static str,
    id: Uuid,
    expected: i64,
) -> Step {
    let actual: Option<i64> = sqlx::query_scalar(version_sql)
        .bind(cx.t())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    match actual {
        None => Err(not_found(entity, id)),
        Some(actual) if actual != expected => Err(Fail::Refused(CommandError::Stale {
            entity,
            id,
            expected,
            actual,
        })),
        Some(_) => Ok(()),
    }
}

/// Completes a plain compare-and-set that touched `rows` rows.
pub(super) async fn cas(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    rows: u64,
    version_sql: &'static str,
    entity: &'static str,
    id: Uuid,
    expected: i64,
) -> Step {
    if rows > 0 {
        return Ok(());
    }
    version_refusal(conn, cx, version_sql, entity, id, expected).await?;
    // Versions only grow, so a row back at the expected version after missing it cannot be.
    Err(Fail::Store(StorageError::Invariant(format!(
        "compare-and-set on {entity} {id} matched no row although its version is {expected}"
    ))))
}

pub(super) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type PgScalar<'q, T> = sqlx::query::QueryScalar<'q, sqlx::Postgres, T, sqlx::postgres::PgArguments>;

/// Runs one statement of the current write, giving the rows it touched.
pub(super) async fn exec(conn: &mut PgConnection, cx: Cx<'_>, query: PgQuery<'_>) -> Step<u64> {
    Ok(query.execute(conn).await.map_err(|e| cx.err(e))?.rows_affected())
}

/// Runs one single-value `SELECT` of the current write.
pub(super) async fn scalar<T>(conn: &mut PgConnection, cx: Cx<'_>, query: PgScalar<'_, T>) -> Step<T>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    query.fetch_one(conn).await.map_err(|e| cx.err(e))
}

/// Applies one write.
async fn apply_write(conn: &mut PgConnection, cx: Cx<'_>) -> Step {
    match cx.write {
        Write::InsertTenant(t) => admin::insert_tenant(conn, cx, t).await,
        Write::UpdateTenant {
            tenant,
            expected_version,
        } => admin::update_tenant(conn, cx, tenant, *expected_version).await,
        Write::InsertRole(r) => admin::insert_role(conn, cx, r).await,
        Write::UpdateRole { role, expected_version } => admin::update_role(conn, cx, role, *expected_version).await,
        Write::InsertStaffUser(u) => admin::insert_staff_user(conn, cx, u).await,
        Write::UpdateStaffUser { user, expected_version } => {
            admin::update_staff_user(conn, cx, user, *expected_version).await
        }
        Write::InsertCompany(c) => admin::insert_company(conn, cx, c).await,
        Write::UpdateCompany {
            company,
            expected_version,
        } => admin::update_company(conn, cx, company, *expected_version).await,
        Write::InsertSite(s) => admin::insert_site(conn, cx, s).await,
        Write::UpdateSite { site, expected_version } => admin::update_site(conn, cx, site, *expected_version).await,
        Write::DeleteSite { id, expected_version } => admin::delete_site(conn, cx, *id, *expected_version).await,
        Write::InsertTemplate(t) => admin::insert_template(conn, cx, t).await,
        Write::ReplaceTemplate {
            template,
            expected_version,
        } => admin::replace_template(conn, cx, template, *expected_version).await,
        Write::DeleteTemplate { id, expected_version } => {
            admin::delete_template(conn, cx, *id, *expected_version).await
        }
        Write::InsertPortal(state) => portal::insert_portal(conn, cx, state).await,
        Write::UpdatePortal {
            portal,
            expected_version,
        } => portal::update_portal(conn, cx, portal, *expected_version).await,
        Write::DeletePortal { id } => portal::delete_portal(conn, cx, *id).await,
        Write::InsertPhase(p) => insert_phases(conn, cx, &[p]).await,
        Write::UpdatePhase {
            phase,
            expected_version,
        } => portal::update_phase(conn, cx, phase, *expected_version).await,
        Write::DeletePhase { id } => portal::delete_phase(conn, cx, *id).await,
        Write::InsertTask(t) => insert_tasks(conn, cx, &[&**t]).await,
        Write::UpdateTask { task, expected_version } => portal::update_task(conn, cx, task, *expected_version).await,
        Write::DeleteTask { id } => portal::delete_task(conn, cx, *id).await,
        Write::InsertContact(c) => insert_contacts(conn, cx, &[c]).await,
        Write::UpdateContact {
            contact,
            expected_version,
        } => portal::update_contact(conn, cx, contact, *expected_version).await,
        Write::DeleteContact { id } => portal::delete_contact(conn, cx, *id).await,
        Write::InsertComment(c) => portal::insert_comment(conn, cx, c).await,
        Write::InsertAccessLink(l) => access::insert_link(conn, cx, l).await,
        Write::RevokeContactAccess { contact_id, at } => {
            access::revoke(conn, cx.tenant, access::Scope::Contact(contact_id.as_uuid()), *at)
                .await
                .map_err(|e| cx.err(e))
        }
        Write::InsertContactSession(s) => access::insert_session(conn, cx, s).await,
        Write::InsertAccessChallenge(c) => access::insert_challenge(conn, cx, c).await,
        Write::UseAccessChallenge { id, at } => access::use_challenge(conn, cx, *id, *at).await,
        Write::EraseEventsOfPortal { portal_id, erased_by } => {
            portal::erase_events_of_portal(conn, cx, *portal_id, *erased_by).await
        }
        Write::InsertReminderRecord(r) => notifications::insert_reminder(conn, cx, r).await,
        Write::InsertDigestItem(d) => notifications::insert_digest_item(conn, cx, d).await,
        Write::DeleteDigestItems { contact_id, ids } => {
            notifications::delete_digest_items(conn, cx, *contact_id, ids).await
        }
    }
}

const INSERT_EVENTS: &str = "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, \
         actor_id, actor_display, at, summary, details, erased_by) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::text[], \
             $9::timestamptz[], $10::text[], $11::jsonb[], $12::uuid[]) \
     ON CONFLICT DO NOTHING RETURNING id";

/// Appends events; an id already used is `AlreadyExists("event", id)`.
async fn insert_events(conn: &mut PgConnection, tenant: TenantId, events: &[ActivityEvent]) -> Step {
    if events.is_empty() {
        return Ok(());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_EVENTS)
        .bind(tenant.as_uuid())
        .bind(events.iter().map(|e| e.id.as_uuid()).bind_iter())
        .bind(events.iter().map(|e| e.company_id.map(|c| c.as_uuid())).bind_iter())
        .bind(events.iter().map(|e| e.portal_id.map(|p| p.as_uuid())).bind_iter())
        .bind(events.iter().map(|e| e.kind.as_str()).bind_iter())
        .bind(events.iter().map(|e| e.actor.kind.as_str()).bind_iter())
        .bind(events.iter().map(|e| e.actor.id).bind_iter())
        .bind(events.iter().map(|e| e.actor.display.as_deref()).bind_iter())
        .bind(events.iter().map(|e| e.at).bind_iter())
        .bind(events.iter().map(|e| e.summary.as_str()).bind_iter())
        .bind(events.iter().map(|e| &e.details).bind_iter())
        .bind(events.iter().map(|e| e.erased_by.map(|b| b.as_uuid())).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| append_violation(e, tenant, "event"))?;
    if inserted.len() == events.len() {
        return Ok(());
    }
    let inserted: HashSet<Uuid> = inserted.into_iter().collect();
    let mut seen = HashSet::new();
    match events
        .iter()
        .map(|e| e.id.as_uuid())
        .find(|id| !seen.insert(*id) || !inserted.contains(id))
    {
        Some(id) => Err(already("event", &id)),
        None => Err(Fail::Store(StorageError::Invariant(
            "an event insert skipped a row but no clash explains it".to_owned(),
        ))),
    }
}

const INSERT_MESSAGES: &str = "INSERT INTO outbox_message (tenant_id, id, portal_id, contact_id, kind, recipient, \
         recipient_name, payload, secret_key_id, secret_nonce, secret_ciphertext, status, attempts, next_attempt_at, \
         created_at) \
     SELECT $1, u.id, u.portal_id, u.contact_id, u.kind, u.recipient, u.recipient_name, u.payload, u.key_id, u.nonce, \
            u.ciphertext, 'queued', 0, u.created_at, u.created_at \
     FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::text[], \
                 $10::bytea[], $11::bytea[], $12::timestamptz[]) \
          AS u(id, portal_id, contact_id, kind, recipient, recipient_name, payload, key_id, nonce, ciphertext, \
               created_at) \
     ON CONFLICT DO NOTHING RETURNING id";

/// The sealed secret of a message (a clear one was refused before anything was written).
fn sealed(m: &OutboundMessage) -> Option<&Sealed> {
    match &m.secret {
        Some(MessageSecret::Sealed { sealed }) => Some(sealed),
        Some(MessageSecret::Clear { .. }) | None => None,
    }
}

/// Queues messages (`queued`, no attempt yet, due when created); an id already used is
/// `AlreadyExists("message", id)`. A message of a portal or contact that does not exist is
/// refused by its foreign key ([`StorageError::Invariant`]).
async fn insert_messages(conn: &mut PgConnection, tenant: TenantId, messages: &[OutboundMessage]) -> Step {
    if messages.is_empty() {
        return Ok(());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_MESSAGES)
        .bind(tenant.as_uuid())
        .bind(messages.iter().map(|m| m.id.as_uuid()).bind_iter())
        .bind(messages.iter().map(|m| m.portal_id.map(|p| p.as_uuid())).bind_iter())
        .bind(messages.iter().map(|m| m.contact_id.map(|c| c.as_uuid())).bind_iter())
        .bind(messages.iter().map(|m| m.kind.as_str()).bind_iter())
        .bind(messages.iter().map(|m| m.recipient.as_str()).bind_iter())
        .bind(messages.iter().map(|m| m.recipient_name.as_deref()).bind_iter())
        .bind(messages.iter().map(|m| &m.payload).bind_iter())
        .bind(
            messages
                .iter()
                .map(|m| sealed(m).map(|s| s.key_id.as_str()))
                .bind_iter(),
        )
        .bind(
            messages
                .iter()
                .map(|m| sealed(m).map(|s| s.nonce.as_slice()))
                .bind_iter(),
        )
        .bind(
            messages
                .iter()
                .map(|m| sealed(m).map(|s| s.ciphertext.as_slice()))
                .bind_iter(),
        )
        .bind(messages.iter().map(|m| m.created_at).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| append_violation(e, tenant, "outbox message"))?;
    if inserted.len() == messages.len() {
        return Ok(());
    }
    let inserted: HashSet<Uuid> = inserted.into_iter().collect();
    let mut seen = HashSet::new();
    match messages
        .iter()
        .map(|m| m.id.as_uuid())
        .find(|id| !seen.insert(*id) || !inserted.contains(id))
    {
        Some(id) => Err(already("message", &id)),
        None => Err(Fail::Store(StorageError::Invariant(
            "a message insert skipped a row but no clash explains it".to_owned(),
        ))),
    }
}
