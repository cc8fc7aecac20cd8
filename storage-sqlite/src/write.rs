//! The one commit path: applying an [`Outcome`] on a connection inside a `BEGIN IMMEDIATE`
//! transaction, shared by `commit_outcome` and `modify_portal`.
//!
//! # How refusals are found
//!
//! Each write (and the events, and the messages) runs inside a savepoint. Updates are
//! compare-and-set statements; when one changes no row, the current version is read to tell
//! "not found" from "stale". Inserts and updates simply run: when the schema refuses one (a
//! UNIQUE, PRIMARY KEY or FOREIGN KEY violation), the savepoint is rolled back and
//! [`explain`] replays the reference store's checks, in the reference store's order, against
//! the state before the write, so the caller gets the very [`CommandError`] `MemoryStorage`
//! returns. The happy path pays no extra query for those checks.

use std::collections::HashSet;

use portal_core::activity::ActivityEvent;
use portal_core::error::CommandError;
use portal_core::id::{ContactId, DigestItemId, TenantId};
use portal_core::mail::MessageSecret;
use portal_core::outcome::{AccessEffect, OutboundMessage, Outcome, Write};
use portal_core::portal::{Contact, PortalState};
use portal_core::storage::{StorageError, StorageResult};
use portal_core::task::Task;
use portal_core::template::Template;
use portal_core::value::{Email, Name};
use sqlx::query_builder::Separated;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::error::{is_constraint, map_sqlx};
use crate::rows::{json_text, notification_preferences_json, survey_options_json};

/// Most bind variables one statement may carry: `SQLITE_MAX_VARIABLE_NUMBER` of the bundled
/// SQLite (3.32 and later).
const MAX_VARIABLES: usize = 32_766;

/// Most rows of one multi-row INSERT. Larger statements save little and cost a lot to prepare
/// and to keep in the statement cache.
const MAX_ROWS: usize = 128;

/// Why a write did not go through.
enum Fail {
    /// The schema refused it; [`explain`] finds out why.
    Constraint(sqlx::Error),
    /// The store failed.
    Store(StorageError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        if is_constraint(&e) {
            Self::Constraint(e)
        } else {
            Self::Store(map_sqlx(e))
        }
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Self {
        Self::Store(e)
    }
}

/// The result of one step: `Ok(Err(_))` is a compare-and-set refusal.
type Applied = Result<Result<(), CommandError>, Fail>;

/// One unit of the commit, run inside its own savepoint.
#[derive(Clone, Copy)]
enum Step<'a> {
    Write(&'a Write),
    Events(&'a [ActivityEvent]),
    Messages(&'a [OutboundMessage]),
}

/// Applies the outcome on `conn`, which must be inside a `BEGIN IMMEDIATE` transaction: every
/// write in order, then the events, then the messages. On `Ok(Err(_))` some rows may have been
/// written; the caller rolls the transaction back.
pub(crate) async fn apply_outcome(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    outcome: &Outcome,
) -> StorageResult<Result<(), CommandError>> {
    check_outcome(tenant, outcome)?;
    let steps = outcome
        .writes
        .iter()
        .map(Step::Write)
        .chain((!outcome.events.is_empty()).then_some(Step::Events(&outcome.events)))
        .chain((!outcome.messages.is_empty()).then_some(Step::Messages(&outcome.messages)));
    for step in steps {
        if let Err(e) = guarded(conn, tenant, step).await? {
            return Ok(Err(e));
        }
    }
    // Access effects come after the writes, in the same transaction.
    for effect in &outcome.effects {
        match *effect {
            AccessEffect::RevokeAllClientAccess { portal_id, at } => {
                revoke_access(conn, tenant, Scope::Portal(portal_id.as_uuid()), at)
                    .await
                    .map_err(map_sqlx)?;
            }
        }
    }
    Ok(Ok(()))
}

/// Refuses an outcome that carries a row of another tenant than the commit's, or a message
/// whose secret is in clear (the engine seals secrets before they reach storage, MAIL-3).
pub(crate) fn check_outcome(tenant: TenantId, outcome: &Outcome) -> StorageResult<()> {
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
    Ok(())
}

async fn run(conn: &mut SqliteConnection, sql: &'static str) -> StorageResult<()> {
    sqlx::query(sql).execute(&mut *conn).await.map_err(map_sqlx)?;
    Ok(())
}

/// Runs one step inside a savepoint and turns a schema refusal into the reference store's error.
async fn guarded(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    step: Step<'_>,
) -> StorageResult<Result<(), CommandError>> {
    run(conn, "SAVEPOINT portal_step").await?;
    let applied = match step {
        Step::Write(w) => apply_write(conn, tenant, w).await,
        Step::Events(events) => insert_events(conn, tenant, events).await.map(Ok),
        Step::Messages(messages) => insert_messages(conn, tenant, messages).await.map(Ok),
    };
    match applied {
        Ok(Ok(())) => {
            run(conn, "RELEASE portal_step").await?;
            Ok(Ok(()))
        }
        Ok(Err(refused)) => {
            run(conn, "ROLLBACK TO portal_step").await?;
            Ok(Err(refused))
        }
        Err(Fail::Store(e)) => Err(e),
        Err(Fail::Constraint(e)) => {
            run(conn, "ROLLBACK TO portal_step").await?;
            match explain(conn, tenant, step).await? {
                Some(refused) => Ok(Err(refused)),
                None => Err(StorageError::Invariant(format!(
                    "the schema refused a {} write that the reference store accepts: {e}",
                    step_entity(step)
                ))),
            }
        }
    }
}

fn step_entity(step: Step<'_>) -> &'static str {
    match step {
        Step::Write(w) => w.entity(),
        Step::Events(_) => "event",
        Step::Messages(_) => "message",
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-row inserts

type Sep<'a> = Separated<'a, Sqlite, &'static str>;

/// Inserts `rows` with multi-row `INSERT ... VALUES (...), (...)` statements in chunks that
/// stay under SQLite's variable limit. `head` is `INSERT INTO table (columns) `; `push` binds
/// the `columns` values of one row.
async fn insert_rows<T: Sync>(
    conn: &mut SqliteConnection,
    head: &'static str,
    columns: usize,
    rows: &[T],
    push: impl Fn(&mut Sep<'_>, &T) + Send + Sync,
) -> Result<(), sqlx::Error> {
    let per_statement = (MAX_VARIABLES / columns).clamp(1, MAX_ROWS);
    for chunk in rows.chunks(per_statement) {
        let mut builder = QueryBuilder::<Sqlite>::new(head);
        builder.push_values(chunk, |mut sep, row| push(&mut sep, row));
        // Full chunks and single rows repeat, so their prepared statements are worth caching;
        // a remainder of odd size would only push useful statements out of the cache.
        let persistent = chunk.len() == per_statement || chunk.len() == 1;
        builder.build().persistent(persistent).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A position (index in its list) as stored.
fn pos(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

fn push_task(sep: &mut Sep<'_>, tenant: TenantId, t: &Task) {
    let by = t.completed_by.as_ref();
    sep.push_bind(tenant.as_uuid())
        .push_bind(t.id.as_uuid())
        .push_bind(t.portal_id.as_uuid())
        .push_bind(t.phase_id.as_uuid())
        .push_bind(i64::from(t.position))
        .push_bind(t.title.as_str())
        .push_bind(t.description.as_str())
        .push_bind(t.owner.as_str())
        .push_bind(t.evidence.as_str())
        .push_bind(t.priority.as_str())
        .push_bind(t.due_offset.map(|d| i64::from(d.days())))
        .push_bind(t.due_date)
        .push_bind(t.status.as_str())
        .push_bind(t.block_reason.as_ref().map(|r| r.as_str()))
        .push_bind(t.assignee.map(|a| a.as_uuid()))
        .push_bind(t.completed_at)
        .push_bind(by.map(|a| a.kind.as_str()))
        .push_bind(by.and_then(|a| a.id))
        .push_bind(by.and_then(|a| a.display.as_deref()))
        .push_bind(t.completion_reason.as_ref().map(|r| r.as_str()))
        .push_bind(t.version);
}

const INSERT_TASK: &str = "INSERT INTO task (tenant_id, id, portal_id, phase_id, position, title, description, owner, \
     evidence, priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, \
     completed_by_kind, completed_by_id, completed_by_display, completion_reason, version) ";

/// Inserts task rows, then their dependencies (after every task, so they may refer to each
/// other), checklist items and survey questions.
async fn insert_tasks(conn: &mut SqliteConnection, tenant: TenantId, tasks: &[&Task]) -> Result<(), sqlx::Error> {
    insert_rows(conn, INSERT_TASK, 21, tasks, |sep, t| push_task(sep, tenant, t)).await?;
    insert_task_children(conn, tenant, tasks).await
}

async fn insert_task_children(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    tasks: &[&Task],
) -> Result<(), sqlx::Error> {
    let deps: Vec<(&Task, Uuid)> = tasks
        .iter()
        .flat_map(|t| t.depends_on.iter().map(move |d| (*t, d.as_uuid())))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO task_dependency (tenant_id, task_id, depends_on_id, portal_id) ",
        4,
        &deps,
        |sep, (t, d)| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(*d)
                .push_bind(t.portal_id.as_uuid());
        },
    )
    .await?;
    let items: Vec<(&Task, usize)> = tasks
        .iter()
        .flat_map(|t| (0..t.checklist.len()).map(move |i| (*t, i)))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO task_checklist_item (tenant_id, id, task_id, portal_id, position, text, done) ",
        7,
        &items,
        |sep, (t, i)| {
            let item = &t.checklist[*i];
            sep.push_bind(tenant.as_uuid())
                .push_bind(item.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(pos(*i))
                .push_bind(item.text.as_str())
                .push_bind(item.done);
        },
    )
    .await?;
    let questions: Vec<(&Task, usize)> = tasks
        .iter()
        .flat_map(|t| (0..t.survey.len()).map(move |i| (*t, i)))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO task_survey_question (tenant_id, id, task_id, portal_id, position, text, kind, options) ",
        8,
        &questions,
        |sep, (t, i)| {
            let q = &t.survey[*i];
            sep.push_bind(tenant.as_uuid())
                .push_bind(q.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(pos(*i))
                .push_bind(q.text.as_str())
                .push_bind(q.kind.as_str())
                .push_bind(survey_options_json(&q.options));
        },
    )
    .await
}

async fn insert_portal(conn: &mut SqliteConnection, tenant: TenantId, s: &PortalState) -> Result<(), sqlx::Error> {
    let p = &s.portal;
    sqlx::query(
        "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
         activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant.as_uuid())
    .bind(p.id.as_uuid())
    .bind(p.company_id.as_uuid())
    .bind(p.template_id.map(|t| t.as_uuid()))
    .bind(p.name.as_str())
    .bind(p.status.as_str())
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(p.activated_at)
    .execute(&mut *conn)
    .await?;
    insert_rows(
        conn,
        "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) ",
        7,
        &s.phases,
        |sep, ph| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(ph.id.as_uuid())
                .push_bind(ph.portal_id.as_uuid())
                .push_bind(i64::from(ph.position))
                .push_bind(ph.name.as_str())
                .push_bind(ph.description.as_str())
                .push_bind(ph.version);
        },
    )
    .await?;
    let tasks: Vec<&Task> = s.tasks.iter().collect();
    insert_tasks(conn, tenant, &tasks).await?;
    insert_rows(conn, INSERT_CONTACT, CONTACT_COLUMNS, &s.contacts, |sep, c| {
        push_contact(sep, tenant, c);
    })
    .await
}

const INSERT_CONTACT: &str = "INSERT INTO contact (tenant_id, id, portal_id, name, email, role, is_primary, version, \
     created_at, notification_preferences) ";

/// The columns of [`INSERT_CONTACT`].
const CONTACT_COLUMNS: usize = 10;

fn push_contact(sep: &mut Sep<'_>, tenant: TenantId, c: &Contact) {
    sep.push_bind(tenant.as_uuid())
        .push_bind(c.id.as_uuid())
        .push_bind(c.portal_id.as_uuid())
        .push_bind(c.name.as_str())
        .push_bind(c.email.as_str())
        .push_bind(c.role.as_str())
        .push_bind(c.primary)
        .push_bind(c.version)
        .push_bind(c.created_at)
        .push_bind(notification_preferences_json(&c.notifications));
}

/// Inserts a template's phases, tasks, checklists, dependencies (after every task) and
/// surveys; the template row is already there.
async fn insert_template_children(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    t: &Template,
) -> Result<(), sqlx::Error> {
    let phases: Vec<(usize, &portal_core::template::TemplatePhase)> = t.phases.iter().enumerate().collect();
    insert_rows(
        conn,
        "INSERT INTO template_phase (tenant_id, id, template_id, position, name, description) ",
        6,
        &phases,
        |sep, (i, ph)| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(ph.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(pos(*i))
                .push_bind(ph.name.as_str())
                .push_bind(ph.description.as_str());
        },
    )
    .await?;
    let tasks: Vec<(&portal_core::template::TemplatePhase, usize)> = t
        .phases
        .iter()
        .flat_map(|ph| (0..ph.tasks.len()).map(move |i| (ph, i)))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO template_task (tenant_id, id, template_id, phase_id, position, task_key, title, description, \
         owner, evidence, priority, due_offset_days) ",
        12,
        &tasks,
        |sep, (ph, i)| {
            let task = &ph.tasks[*i];
            sep.push_bind(tenant.as_uuid())
                .push_bind(task.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(ph.id.as_uuid())
                .push_bind(pos(*i))
                .push_bind(task.key.as_str())
                .push_bind(task.title.as_str())
                .push_bind(task.description.as_str())
                .push_bind(task.owner.as_str())
                .push_bind(task.evidence.as_str())
                .push_bind(task.priority.as_str())
                .push_bind(task.due_offset.map(|d| i64::from(d.days())));
        },
    )
    .await?;
    let items: Vec<(Uuid, usize, &str)> = t
        .tasks()
        .flat_map(|task| {
            task.checklist
                .iter()
                .enumerate()
                .map(move |(i, text)| (task.id.as_uuid(), i, text.as_str()))
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO template_task_checklist_item (tenant_id, task_id, position, text) ",
        4,
        &items,
        |sep, (task, i, text)| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(*task)
                .push_bind(pos(*i))
                .push_bind(*text);
        },
    )
    .await?;
    // Stored in list order: reads return them by rowid, which keeps that order.
    let deps: Vec<(Uuid, Uuid)> = t
        .tasks()
        .flat_map(|task| task.depends_on.iter().map(move |d| (task.id.as_uuid(), d.as_uuid())))
        .collect();
    insert_rows(
        conn,
        "INSERT INTO template_task_dependency (tenant_id, task_id, depends_on_id) ",
        3,
        &deps,
        |sep, (task, dep)| {
            sep.push_bind(tenant.as_uuid()).push_bind(*task).push_bind(*dep);
        },
    )
    .await?;
    let questions: Vec<(Uuid, usize, &portal_core::task::SurveyQuestion)> = t
        .tasks()
        .flat_map(|task| {
            task.survey
                .iter()
                .enumerate()
                .map(move |(i, q)| (task.id.as_uuid(), i, q))
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO template_task_survey_question (tenant_id, id, task_id, position, text, kind, options) ",
        7,
        &questions,
        |sep, (task, i, q)| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(q.id.as_uuid())
                .push_bind(*task)
                .push_bind(pos(*i))
                .push_bind(q.text.as_str())
                .push_bind(q.kind.as_str())
                .push_bind(survey_options_json(&q.options));
        },
    )
    .await
}

async fn insert_events(conn: &mut SqliteConnection, tenant: TenantId, events: &[ActivityEvent]) -> Result<(), Fail> {
    insert_rows(
        conn,
        "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, \
         actor_display, at, summary, details, erased_by) ",
        12,
        events,
        |sep, e| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(e.id.as_uuid())
                .push_bind(e.company_id.map(|c| c.as_uuid()))
                .push_bind(e.portal_id.map(|p| p.as_uuid()))
                .push_bind(e.kind.as_str())
                .push_bind(e.actor.kind.as_str())
                .push_bind(e.actor.id)
                .push_bind(e.actor.display.as_deref())
                .push_bind(e.at)
                .push_bind(e.summary.as_str())
                .push_bind(json_text(&e.details))
                .push_bind(e.erased_by.map(|x| x.as_uuid()));
        },
    )
    .await?;
    Ok(())
}

/// Queues messages: `queued`, no attempt yet, due when created. Their secrets are sealed
/// ([`check_outcome`] refused a clear one before the transaction began).
async fn insert_messages(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    messages: &[OutboundMessage],
) -> Result<(), Fail> {
    insert_rows(
        conn,
        "INSERT INTO outbox_message (tenant_id, id, portal_id, contact_id, kind, recipient, recipient_name, payload, \
         secret_key_id, secret_nonce, secret_ciphertext, status, attempts, next_attempt_at, created_at) ",
        15,
        messages,
        |sep, m| {
            let sealed = match &m.secret {
                Some(MessageSecret::Sealed { sealed }) => Some(sealed),
                Some(MessageSecret::Clear { .. }) | None => None,
            };
            sep.push_bind(tenant.as_uuid())
                .push_bind(m.id.as_uuid())
                .push_bind(m.portal_id.map(|p| p.as_uuid()))
                .push_bind(m.contact_id.map(|c| c.as_uuid()))
                .push_bind(m.kind.as_str())
                .push_bind(m.recipient.as_str())
                .push_bind(m.recipient_name.as_deref())
                .push_bind(json_text(&m.payload))
                .push_bind(sealed.map(|s| s.key_id.as_str()))
                .push_bind(sealed.map(|s| s.nonce.as_slice()))
                .push_bind(sealed.map(|s| s.ciphertext.as_slice()))
                .push_bind("queued")
                .push_bind(0_i64)
                .push_bind(m.created_at)
                .push_bind(m.created_at);
        },
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Versioned rows

/// A table whose rows carry a compare-and-set version.
#[derive(Clone, Copy)]
enum Versioned {
    Tenant,
    Role,
    StaffUser,
    Company,
    Site,
    Template,
    Portal,
    Phase,
    Task,
    Contact,
}

impl Versioned {
    /// The entity name the reference store uses in errors.
    const fn entity(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Role => "role",
            Self::StaffUser => "staff user",
            Self::Company => "company",
            Self::Site => "site",
            Self::Template => "template",
            Self::Portal => "portal",
            Self::Phase => "phase",
            Self::Task => "task",
            Self::Contact => "contact",
        }
    }

    /// `$1` is the tenant, `$2` the row's id.
    const fn version_sql(self) -> &'static str {
        match self {
            // The tenant row is keyed by its own id, which the commit's tenant check made equal.
            Self::Tenant => "SELECT version FROM tenant WHERE tenant_id = $1 AND tenant_id = $2",
            Self::Role => "SELECT version FROM role WHERE tenant_id = $1 AND id = $2",
            Self::StaffUser => "SELECT version FROM staff_user WHERE tenant_id = $1 AND id = $2",
            Self::Company => "SELECT version FROM company WHERE tenant_id = $1 AND id = $2",
            Self::Site => "SELECT version FROM site WHERE tenant_id = $1 AND id = $2",
            Self::Template => "SELECT version FROM template WHERE tenant_id = $1 AND id = $2",
            Self::Portal => "SELECT version FROM portal WHERE tenant_id = $1 AND id = $2",
            Self::Phase => "SELECT version FROM portal_phase WHERE tenant_id = $1 AND id = $2",
            Self::Task => "SELECT version FROM task WHERE tenant_id = $1 AND id = $2",
            Self::Contact => "SELECT version FROM contact WHERE tenant_id = $1 AND id = $2",
        }
    }
}

/// The reference store's compare-and-set check: gone is "not found", another version "stale".
async fn cas_check(
    conn: &mut SqliteConnection,
    table: Versioned,
    tenant: TenantId,
    id: Uuid,
    expected: i64,
) -> StorageResult<Result<(), CommandError>> {
    let current: Option<i64> = sqlx::query_scalar(table.version_sql())
        .bind(tenant.as_uuid())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(match current {
        None => Err(CommandError::NotFound {
            entity: table.entity(),
            id,
        }),
        Some(actual) if actual != expected => Err(CommandError::Stale {
            entity: table.entity(),
            id,
            expected,
            actual,
        }),
        Some(_) => Ok(()),
    })
}

/// After a compare-and-set statement: no row changed means the check failed, and says how.
async fn after_cas(
    conn: &mut SqliteConnection,
    changed: u64,
    table: Versioned,
    tenant: TenantId,
    id: Uuid,
    expected: i64,
) -> Result<Result<(), CommandError>, Fail> {
    if changed > 0 {
        return Ok(Ok(()));
    }
    match cas_check(conn, table, tenant, id, expected).await? {
        Err(refused) => Ok(Err(refused)),
        Ok(()) => Err(Fail::Store(StorageError::Invariant(format!(
            "a compare-and-set update of {} {id} changed no row although its version matches",
            table.entity()
        )))),
    }
}

// ---------------------------------------------------------------------------------------------
// Writes

#[allow(clippy::too_many_lines)] // one arm per kind of write, each a few statements
async fn apply_write(conn: &mut SqliteConnection, tenant: TenantId, w: &Write) -> Applied {
    let tid = tenant.as_uuid();
    match w {
        Write::InsertTenant(t) => {
            sqlx::query(
                "INSERT INTO tenant (tenant_id, name, time_zone, billable_default, forwarded_link_protection, version, \
                 created_at, access_link_expiry_days, app_name, logo_url, primary_colour, sender_name, sender_email, \
                 reply_to, reminder_on_unlock, reminder_days_before_due, reminder_when_overdue, digest_hour) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            )
            .bind(t.id.as_uuid())
            .bind(t.name.as_str())
            .bind(t.settings.time_zone.name())
            .bind(t.settings.billable_default)
            .bind(t.settings.forwarded_link_protection)
            .bind(t.version)
            .bind(t.created_at)
            .bind(i64::from(t.link_settings.access_link_expiry_days))
            .bind(t.branding.app_name.as_ref().map(Name::as_str))
            .bind(t.branding.logo_url.as_deref())
            .bind(t.branding.primary_colour.as_str())
            .bind(t.branding.sender_name.as_ref().map(Name::as_str))
            .bind(t.branding.sender_email.as_ref().map(Email::as_str))
            .bind(t.branding.reply_to.as_ref().map(Email::as_str))
            .bind(t.notification_settings.reminders.on_unlock)
            .bind(t.notification_settings.reminders.days_before_due.map(i64::from))
            .bind(t.notification_settings.reminders.when_overdue)
            .bind(i64::from(t.notification_settings.digest_hour))
            .execute(&mut *conn)
            .await?;
        }
        Write::UpdateTenant {
            tenant: t,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE tenant SET name = $3, time_zone = $4, billable_default = $5, forwarded_link_protection = $6, \
                 version = $7, created_at = $8, access_link_expiry_days = $9, app_name = $10, logo_url = $11, \
                 primary_colour = $12, sender_name = $13, sender_email = $14, reply_to = $15, \
                 reminder_on_unlock = $16, reminder_days_before_due = $17, reminder_when_overdue = $18, \
                 digest_hour = $19 WHERE tenant_id = $1 AND version = $2",
            )
            .bind(t.id.as_uuid())
            .bind(expected_version)
            .bind(t.name.as_str())
            .bind(t.settings.time_zone.name())
            .bind(t.settings.billable_default)
            .bind(t.settings.forwarded_link_protection)
            .bind(t.version)
            .bind(t.created_at)
            .bind(i64::from(t.link_settings.access_link_expiry_days))
            .bind(t.branding.app_name.as_ref().map(Name::as_str))
            .bind(t.branding.logo_url.as_deref())
            .bind(t.branding.primary_colour.as_str())
            .bind(t.branding.sender_name.as_ref().map(Name::as_str))
            .bind(t.branding.sender_email.as_ref().map(Email::as_str))
            .bind(t.branding.reply_to.as_ref().map(Email::as_str))
            .bind(t.notification_settings.reminders.on_unlock)
            .bind(t.notification_settings.reminders.days_before_due.map(i64::from))
            .bind(t.notification_settings.reminders.when_overdue)
            .bind(i64::from(t.notification_settings.digest_hour))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Tenant,
                tenant,
                t.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::InsertRole(r) => {
            sqlx::query("INSERT INTO role (tenant_id, id, name, version) VALUES ($1, $2, $3, $4)")
                .bind(tid)
                .bind(r.id.as_uuid())
                .bind(r.name.as_str())
                .bind(r.version)
                .execute(&mut *conn)
                .await?;
            insert_permissions(conn, tenant, r).await?;
        }
        Write::UpdateRole { role, expected_version } => {
            let changed = sqlx::query(
                "UPDATE role SET name = $4, version = $5 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(role.id.as_uuid())
            .bind(expected_version)
            .bind(role.name.as_str())
            .bind(role.version)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if let Err(e) = after_cas(
                conn,
                changed,
                Versioned::Role,
                tenant,
                role.id.as_uuid(),
                *expected_version,
            )
            .await?
            {
                return Ok(Err(e));
            }
            sqlx::query("DELETE FROM role_permission WHERE tenant_id = $1 AND role_id = $2")
                .bind(tid)
                .bind(role.id.as_uuid())
                .execute(&mut *conn)
                .await?;
            insert_permissions(conn, tenant, role).await?;
        }
        Write::InsertStaffUser(u) => {
            sqlx::query(
                "INSERT INTO staff_user (tenant_id, id, email, display_name, active, version, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tid)
            .bind(u.id.as_uuid())
            .bind(u.email.as_str())
            .bind(u.display_name.as_str())
            .bind(u.active)
            .bind(u.version)
            .bind(u.created_at)
            .execute(&mut *conn)
            .await?;
            insert_staff_roles(conn, tenant, u).await?;
        }
        Write::UpdateStaffUser { user, expected_version } => {
            let changed = sqlx::query(
                "UPDATE staff_user SET email = $4, display_name = $5, active = $6, version = $7, created_at = $8 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(user.id.as_uuid())
            .bind(expected_version)
            .bind(user.email.as_str())
            .bind(user.display_name.as_str())
            .bind(user.active)
            .bind(user.version)
            .bind(user.created_at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if let Err(e) = after_cas(
                conn,
                changed,
                Versioned::StaffUser,
                tenant,
                user.id.as_uuid(),
                *expected_version,
            )
            .await?
            {
                return Ok(Err(e));
            }
            sqlx::query("DELETE FROM staff_user_role WHERE tenant_id = $1 AND user_id = $2")
                .bind(tid)
                .bind(user.id.as_uuid())
                .execute(&mut *conn)
                .await?;
            insert_staff_roles(conn, tenant, user).await?;
        }
        Write::InsertCompany(c) => {
            sqlx::query("INSERT INTO company (tenant_id, id, name, version, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(tid)
                .bind(c.id.as_uuid())
                .bind(c.name.as_str())
                .bind(c.version)
                .bind(c.created_at)
                .execute(&mut *conn)
                .await?;
        }
        Write::UpdateCompany {
            company,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE company SET name = $4, version = $5, created_at = $6 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(company.id.as_uuid())
            .bind(expected_version)
            .bind(company.name.as_str())
            .bind(company.version)
            .bind(company.created_at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Company,
                tenant,
                company.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::InsertSite(s) => {
            sqlx::query(
                "INSERT INTO site (tenant_id, id, company_id, name, address, version) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tid)
            .bind(s.id.as_uuid())
            .bind(s.company_id.as_uuid())
            .bind(s.name.as_str())
            .bind(s.address.as_str())
            .bind(s.version)
            .execute(&mut *conn)
            .await?;
        }
        Write::UpdateSite { site, expected_version } => {
            let changed = sqlx::query(
                "UPDATE site SET company_id = $4, name = $5, address = $6, version = $7 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(site.id.as_uuid())
            .bind(expected_version)
            .bind(site.company_id.as_uuid())
            .bind(site.name.as_str())
            .bind(site.address.as_str())
            .bind(site.version)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Site,
                tenant,
                site.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::DeleteSite { id, expected_version } => {
            let changed = sqlx::query("DELETE FROM site WHERE tenant_id = $1 AND id = $2 AND version = $3")
                .bind(tid)
                .bind(id.as_uuid())
                .bind(expected_version)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            return after_cas(conn, changed, Versioned::Site, tenant, id.as_uuid(), *expected_version).await;
        }
        Write::InsertTemplate(t) => {
            sqlx::query(
                "INSERT INTO template (tenant_id, id, name, description, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tid)
            .bind(t.id.as_uuid())
            .bind(t.name.as_str())
            .bind(t.description.as_str())
            .bind(t.version)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&mut *conn)
            .await?;
            insert_template_children(conn, tenant, t).await?;
        }
        Write::ReplaceTemplate {
            template: t,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE template SET name = $4, description = $5, version = $6, created_at = $7, updated_at = $8 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(t.id.as_uuid())
            .bind(expected_version)
            .bind(t.name.as_str())
            .bind(t.description.as_str())
            .bind(t.version)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if let Err(e) = after_cas(
                conn,
                changed,
                Versioned::Template,
                tenant,
                t.id.as_uuid(),
                *expected_version,
            )
            .await?
            {
                return Ok(Err(e));
            }
            // The document is replaced whole; tasks go first, then phases, and their checklists,
            // dependencies and surveys follow by ON DELETE CASCADE.
            sqlx::query("DELETE FROM template_task WHERE tenant_id = $1 AND template_id = $2")
                .bind(tid)
                .bind(t.id.as_uuid())
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM template_phase WHERE tenant_id = $1 AND template_id = $2")
                .bind(tid)
                .bind(t.id.as_uuid())
                .execute(&mut *conn)
                .await?;
            insert_template_children(conn, tenant, t).await?;
        }
        Write::DeleteTemplate { id, expected_version } => {
            let changed = sqlx::query("DELETE FROM template WHERE tenant_id = $1 AND id = $2 AND version = $3")
                .bind(tid)
                .bind(id.as_uuid())
                .bind(expected_version)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Template,
                tenant,
                id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::InsertPortal(state) => insert_portal(conn, tenant, state).await?,
        Write::UpdatePortal {
            portal,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE portal SET company_id = $4, template_id = $5, name = $6, status = $7, version = $8, \
                 created_at = $9, updated_at = $10, activated_at = $11 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(portal.id.as_uuid())
            .bind(expected_version)
            .bind(portal.company_id.as_uuid())
            .bind(portal.template_id.map(|t| t.as_uuid()))
            .bind(portal.name.as_str())
            .bind(portal.status.as_str())
            .bind(portal.version)
            .bind(portal.created_at)
            .bind(portal.updated_at)
            .bind(portal.activated_at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Portal,
                tenant,
                portal.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::DeletePortal { id } => {
            // Phases, tasks (with their dependencies, checklists, surveys and comments) and
            // contacts follow by ON DELETE CASCADE; events stay (ACT-4 erases them separately).
            sqlx::query("DELETE FROM portal WHERE tenant_id = $1 AND id = $2")
                .bind(tid)
                .bind(id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        Write::InsertPhase(p) => {
            sqlx::query(
                "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tid)
            .bind(p.id.as_uuid())
            .bind(p.portal_id.as_uuid())
            .bind(p.position)
            .bind(p.name.as_str())
            .bind(p.description.as_str())
            .bind(p.version)
            .execute(&mut *conn)
            .await?;
        }
        Write::UpdatePhase {
            phase,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE portal_phase SET portal_id = $4, position = $5, name = $6, description = $7, version = $8 \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(phase.id.as_uuid())
            .bind(expected_version)
            .bind(phase.portal_id.as_uuid())
            .bind(phase.position)
            .bind(phase.name.as_str())
            .bind(phase.description.as_str())
            .bind(phase.version)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Phase,
                tenant,
                phase.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::DeletePhase { id } => {
            // Its tasks, and every dependency on them, follow by ON DELETE CASCADE.
            sqlx::query("DELETE FROM portal_phase WHERE tenant_id = $1 AND id = $2")
                .bind(tid)
                .bind(id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        Write::InsertTask(t) => insert_tasks(conn, tenant, &[&**t]).await?,
        Write::UpdateTask { task, expected_version } => {
            return update_task(conn, tenant, task, *expected_version).await;
        }
        Write::DeleteTask { id } => {
            // Its dependencies, checklist, survey, comments and every dependency on it follow
            // by ON DELETE CASCADE.
            sqlx::query("DELETE FROM task WHERE tenant_id = $1 AND id = $2")
                .bind(tid)
                .bind(id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        Write::InsertContact(c) => {
            insert_rows(
                conn,
                INSERT_CONTACT,
                CONTACT_COLUMNS,
                std::slice::from_ref(c),
                |sep, c| {
                    push_contact(sep, tenant, c);
                },
            )
            .await?;
        }
        Write::UpdateContact {
            contact: c,
            expected_version,
        } => {
            let changed = sqlx::query(
                "UPDATE contact SET portal_id = $4, name = $5, email = $6, role = $7, is_primary = $8, version = $9, \
                 created_at = $10, notification_preferences = $11 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(tid)
            .bind(c.id.as_uuid())
            .bind(expected_version)
            .bind(c.portal_id.as_uuid())
            .bind(c.name.as_str())
            .bind(c.email.as_str())
            .bind(c.role.as_str())
            .bind(c.primary)
            .bind(c.version)
            .bind(c.created_at)
            .bind(notification_preferences_json(&c.notifications))
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return after_cas(
                conn,
                changed,
                Versioned::Contact,
                tenant,
                c.id.as_uuid(),
                *expected_version,
            )
            .await;
        }
        Write::DeleteContact { id } => {
            sqlx::query("DELETE FROM contact WHERE tenant_id = $1 AND id = $2")
                .bind(tid)
                .bind(id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        Write::InsertComment(c) => {
            sqlx::query(
                "INSERT INTO task_comment (tenant_id, id, portal_id, task_id, author_kind, author_id, author_display, \
                 body, is_question, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(tid)
            .bind(c.id.as_uuid())
            .bind(c.portal_id.as_uuid())
            .bind(c.task_id.as_uuid())
            .bind(c.author.kind.as_str())
            .bind(c.author.id)
            .bind(c.author.display.as_deref())
            .bind(c.body.as_str())
            .bind(c.is_question)
            .bind(c.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::InsertAccessLink(l) => {
            sqlx::query(
                "INSERT INTO access_link (tenant_id, id, portal_id, contact_id, token_hash, created_at, expires_at, \
                 revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tid)
            .bind(l.id.as_uuid())
            .bind(l.portal_id.as_uuid())
            .bind(l.contact_id.as_uuid())
            .bind(l.token_hash.as_bytes().as_slice())
            .bind(l.created_at)
            .bind(l.expires_at)
            .bind(l.revoked_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::RevokeContactAccess { contact_id, at } => {
            revoke_access(conn, tenant, Scope::Contact(contact_id.as_uuid()), *at).await?;
        }
        Write::InsertContactSession(cs) => {
            sqlx::query(
                "INSERT INTO contact_session (tenant_id, token_hash, portal_id, contact_id, link_id, created_at, \
                 last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tid)
            .bind(cs.token_hash.as_bytes().as_slice())
            .bind(cs.portal_id.as_uuid())
            .bind(cs.contact_id.as_uuid())
            .bind(cs.link_id.as_uuid())
            .bind(cs.created_at)
            .bind(cs.last_used_at)
            .bind(cs.expires_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::InsertAccessChallenge(c) => {
            sqlx::query(
                "INSERT INTO access_challenge (tenant_id, id, portal_id, contact_id, link_id, token_hash, code_hash, \
                 created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(tid)
            .bind(c.id.as_uuid())
            .bind(c.portal_id.as_uuid())
            .bind(c.contact_id.as_uuid())
            .bind(c.link_id.as_uuid())
            .bind(c.token_hash.as_bytes().as_slice())
            .bind(c.code_hash.as_bytes().as_slice())
            .bind(c.created_at)
            .bind(c.expires_at)
            .bind(c.used_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::UseAccessChallenge { id, at } => {
            // Set once: a second use is refused as stale, as the reference store does.
            let changed = sqlx::query(
                "UPDATE access_challenge SET used_at = $3 WHERE tenant_id = $1 AND id = $2 AND used_at IS NULL",
            )
            .bind(tid)
            .bind(id.as_uuid())
            .bind(*at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed == 0 {
                let id = id.as_uuid();
                return Ok(Err(if exists(conn, exists_sql::ACCESS_CHALLENGE, tenant, id).await? {
                    CommandError::Stale {
                        entity: "access code",
                        id,
                        expected: 0,
                        actual: 1,
                    }
                } else {
                    not_found("access code", id)
                }));
            }
        }
        Write::InsertReminderRecord(r) => {
            sqlx::query(
                "INSERT INTO reminder_sent (tenant_id, portal_id, task_id, contact_id, reason, due_date, sent_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tid)
            .bind(r.portal_id.as_uuid())
            .bind(r.task_id.as_uuid())
            .bind(r.contact_id.as_uuid())
            .bind(r.reason.as_str())
            .bind(r.due_date)
            .bind(r.sent_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::InsertDigestItem(d) => {
            sqlx::query(
                "INSERT INTO notification_digest_item (tenant_id, id, portal_id, contact_id, topic, payload, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tid)
            .bind(d.id.as_uuid())
            .bind(d.portal_id.as_uuid())
            .bind(d.contact_id.as_uuid())
            .bind(d.topic.as_str())
            .bind(json_text(&d.payload))
            .bind(d.created_at)
            .execute(&mut *conn)
            .await?;
        }
        Write::DeleteDigestItems { contact_id, ids } => {
            return delete_digest_items(conn, tenant, *contact_id, ids).await;
        }
        Write::EraseEventsOfPortal { portal_id, erased_by } => {
            sqlx::query(
                "UPDATE activity_event SET summary = '', details = 'null', actor_display = NULL, erased_by = $3 \
                 WHERE tenant_id = $1 AND portal_id = $2",
            )
            .bind(tid)
            .bind(portal_id.as_uuid())
            .bind(erased_by.as_uuid())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(Ok(()))
}

/// Deletes a contact's digest items; unless every one of them was there (and the contact's), the
/// first that was not is refused as stale, as the reference store does, and the caller rolls
/// back the deletes of the others.
async fn delete_digest_items(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    contact: ContactId,
    ids: &[DigestItemId],
) -> Applied {
    if ids.is_empty() {
        return Ok(Ok(()));
    }
    let deleted: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM notification_digest_item WHERE tenant_id = $1 AND contact_id = $2 \
         AND id IN (SELECT unhex(value) FROM json_each($3)) RETURNING id",
    )
    .bind(tenant.as_uuid())
    .bind(contact.as_uuid())
    .bind(crate::read::id_list(ids.iter().map(|i| i.as_uuid())))
    .fetch_all(&mut *conn)
    .await?;
    if deleted.len() == ids.len() {
        return Ok(Ok(()));
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
    Ok(Err(CommandError::Stale {
        entity: "digest item",
        id: missing,
        expected: 1,
        actual: 0,
    }))
}

/// Whose client access [`revoke_access`] ends.
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// Every link and session of one contact.
    Contact(Uuid),
    /// Every link and session of one portal.
    Portal(Uuid),
}

/// Revokes the links not yet revoked (`revoked_at = at`) and deletes the sessions of the scope.
pub(crate) async fn revoke_access(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    scope: Scope,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let (links, sessions, id) = match scope {
        Scope::Contact(id) => (
            "UPDATE access_link SET revoked_at = $3 WHERE tenant_id = $1 AND contact_id = $2 AND revoked_at IS NULL",
            "DELETE FROM contact_session WHERE tenant_id = $1 AND contact_id = $2",
            id,
        ),
        Scope::Portal(id) => (
            "UPDATE access_link SET revoked_at = $3 WHERE tenant_id = $1 AND portal_id = $2 AND revoked_at IS NULL",
            "DELETE FROM contact_session WHERE tenant_id = $1 AND portal_id = $2",
            id,
        ),
    };
    sqlx::query(links)
        .bind(tenant.as_uuid())
        .bind(id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sessions)
        .bind(tenant.as_uuid())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_permissions(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    role: &portal_core::tenant::Role,
) -> Result<(), sqlx::Error> {
    let permissions: Vec<&'static str> = role.permissions.iter().map(|p| p.as_str()).collect();
    insert_rows(
        conn,
        "INSERT INTO role_permission (tenant_id, role_id, permission) ",
        3,
        &permissions,
        |sep, p| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(role.id.as_uuid())
                .push_bind(*p);
        },
    )
    .await
}

/// The user's roles in list order: reads return them by rowid, which keeps that order.
async fn insert_staff_roles(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    user: &portal_core::tenant::StaffUser,
) -> Result<(), sqlx::Error> {
    insert_rows(
        conn,
        "INSERT INTO staff_user_role (tenant_id, user_id, role_id) ",
        3,
        &user.roles,
        |sep, r| {
            sep.push_bind(tenant.as_uuid())
                .push_bind(user.id.as_uuid())
                .push_bind(r.as_uuid());
        },
    )
    .await
}

/// Rewrites the task row (compare-and-set) and replaces its dependencies, checklist and survey.
async fn update_task(conn: &mut SqliteConnection, tenant: TenantId, t: &Task, expected: i64) -> Applied {
    let tid = tenant.as_uuid();
    let by = t.completed_by.as_ref();
    let changed = sqlx::query(
        "UPDATE task SET portal_id = $4, phase_id = $5, position = $6, title = $7, description = $8, owner = $9, \
         evidence = $10, priority = $11, due_offset_days = $12, due_date = $13, status = $14, block_reason = $15, \
         assignee_id = $16, completed_at = $17, completed_by_kind = $18, completed_by_id = $19, \
         completed_by_display = $20, completion_reason = $21, version = $22 \
         WHERE tenant_id = $1 AND id = $2 AND version = $3",
    )
    .bind(tid)
    .bind(t.id.as_uuid())
    .bind(expected)
    .bind(t.portal_id.as_uuid())
    .bind(t.phase_id.as_uuid())
    .bind(t.position)
    .bind(t.title.as_str())
    .bind(t.description.as_str())
    .bind(t.owner.as_str())
    .bind(t.evidence.as_str())
    .bind(t.priority.as_str())
    .bind(t.due_offset.map(|d| i64::from(d.days())))
    .bind(t.due_date)
    .bind(t.status.as_str())
    .bind(t.block_reason.as_ref().map(|r| r.as_str()))
    .bind(t.assignee.map(|a| a.as_uuid()))
    .bind(t.completed_at)
    .bind(by.map(|a| a.kind.as_str()))
    .bind(by.and_then(|a| a.id))
    .bind(by.and_then(|a| a.display.as_deref()))
    .bind(t.completion_reason.as_ref().map(|r| r.as_str()))
    .bind(t.version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if let Err(e) = after_cas(conn, changed, Versioned::Task, tenant, t.id.as_uuid(), expected).await? {
        return Ok(Err(e));
    }
    // Each child table has an index that leads with (tenant_id, task_id).
    for sql in [
        "DELETE FROM task_dependency WHERE tenant_id = $1 AND task_id = $2",
        "DELETE FROM task_checklist_item WHERE tenant_id = $1 AND task_id = $2",
        "DELETE FROM task_survey_question WHERE tenant_id = $1 AND task_id = $2",
    ] {
        sqlx::query(sql)
            .bind(tid)
            .bind(t.id.as_uuid())
            .execute(&mut *conn)
            .await?;
    }
    insert_task_children(conn, tenant, &[t]).await?;
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------------
// Explaining a refusal of the schema

/// `SELECT 1` by tenant and id; `$1` is the tenant, `$2` the id.
mod exists_sql {
    pub(super) const TENANT: &str = "SELECT 1 FROM tenant WHERE tenant_id = $1 AND tenant_id = $2";
    pub(super) const ROLE: &str = "SELECT 1 FROM role WHERE tenant_id = $1 AND id = $2";
    pub(super) const STAFF_USER: &str = "SELECT 1 FROM staff_user WHERE tenant_id = $1 AND id = $2";
    pub(super) const COMPANY: &str = "SELECT 1 FROM company WHERE tenant_id = $1 AND id = $2";
    pub(super) const SITE: &str = "SELECT 1 FROM site WHERE tenant_id = $1 AND id = $2";
    pub(super) const TEMPLATE: &str = "SELECT 1 FROM template WHERE tenant_id = $1 AND id = $2";
    pub(super) const PORTAL: &str = "SELECT 1 FROM portal WHERE tenant_id = $1 AND id = $2";
    pub(super) const PHASE: &str = "SELECT 1 FROM portal_phase WHERE tenant_id = $1 AND id = $2";
    pub(super) const TASK: &str = "SELECT 1 FROM task WHERE tenant_id = $1 AND id = $2";
    pub(super) const CONTACT: &str = "SELECT 1 FROM contact WHERE tenant_id = $1 AND id = $2";
    pub(super) const COMMENT: &str = "SELECT 1 FROM task_comment WHERE tenant_id = $1 AND id = $2";
    pub(super) const EVENT: &str = "SELECT 1 FROM activity_event WHERE tenant_id = $1 AND id = $2";
    pub(super) const MESSAGE: &str = "SELECT 1 FROM outbox_message WHERE tenant_id = $1 AND id = $2";
    pub(super) const ACCESS_LINK: &str = "SELECT 1 FROM access_link WHERE tenant_id = $1 AND id = $2";
    pub(super) const ACCESS_CHALLENGE: &str = "SELECT 1 FROM access_challenge WHERE tenant_id = $1 AND id = $2";
    pub(super) const DIGEST_ITEM: &str = "SELECT 1 FROM notification_digest_item WHERE tenant_id = $1 AND id = $2";
}

/// Whether a token hash is already stored (token hashes are unique across tenants).
async fn hash_taken(
    conn: &mut SqliteConnection,
    sql: &'static str,
    hash: &portal_core::auth::TokenHash,
) -> StorageResult<bool> {
    let row: Option<i64> = sqlx::query_scalar(sql)
        .bind(hash.as_bytes().as_slice())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(row.is_some())
}

async fn exists(conn: &mut SqliteConnection, sql: &'static str, tenant: TenantId, id: Uuid) -> StorageResult<bool> {
    let row: Option<i64> = sqlx::query_scalar(sql)
        .bind(tenant.as_uuid())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(row.is_some())
}

async fn exists_text(
    conn: &mut SqliteConnection,
    sql: &'static str,
    tenant: TenantId,
    value: &str,
) -> StorageResult<bool> {
    let row: Option<i64> = sqlx::query_scalar(sql)
        .bind(tenant.as_uuid())
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(row.is_some())
}

fn already(entity: &'static str, value: &dyn std::fmt::Display) -> CommandError {
    CommandError::AlreadyExists {
        entity,
        value: value.to_string(),
    }
}

fn not_found(entity: &'static str, id: Uuid) -> CommandError {
    CommandError::NotFound { entity, id }
}

/// The first id of the list, in order, that is already stored or repeats an earlier one: the
/// insert the reference store refuses first.
async fn first_taken(
    conn: &mut SqliteConnection,
    sql: &'static str,
    tenant: TenantId,
    ids: impl Iterator<Item = Uuid> + Send,
) -> StorageResult<Option<Uuid>> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) || exists(conn, sql, tenant, id).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Another contact of a portal, as the uniqueness checks see it.
struct OtherContact {
    id: Uuid,
    email: String,
    primary: bool,
}

async fn contacts_of_portal(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    portal: Uuid,
) -> StorageResult<Vec<OtherContact>> {
    let rows: Vec<(Uuid, String, bool)> =
        sqlx::query_as("SELECT id, email, is_primary FROM contact WHERE tenant_id = $1 AND portal_id = $2")
            .bind(tenant.as_uuid())
            .bind(portal)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_sqlx)?;
    Ok(rows
        .into_iter()
        .map(|(id, email, primary)| OtherContact { id, email, primary })
        .collect())
}

/// The reference store's `check_contact`: the first other contact of the portal, by id, that
/// has the same email or is primary too.
fn contact_clash(c: &Contact, others: &mut Vec<OtherContact>) -> Option<CommandError> {
    others.retain(|o| o.id != c.id.as_uuid());
    others.sort_by_key(|o| o.id);
    others.iter().find_map(|o| {
        if o.email == c.email.as_str() {
            Some(already("contact", &c.email))
        } else if c.primary && o.primary {
            Some(already("primary contact", &c.portal_id))
        } else {
            None
        }
    })
}

/// What a task refers to beyond the reference store's checks: its portal, phase, assignee and
/// dependencies. `placed_*` are rows of the same write that the schema would already hold.
async fn task_refs(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    t: &Task,
    placed_phases: &HashSet<Uuid>,
    placed_tasks: &HashSet<Uuid>,
    placed_portal: Option<Uuid>,
) -> StorageResult<Option<CommandError>> {
    let portal = t.portal_id.as_uuid();
    if placed_portal != Some(portal) && !exists(conn, exists_sql::PORTAL, tenant, portal).await? {
        return Ok(Some(not_found("portal", portal)));
    }
    let phase = t.phase_id.as_uuid();
    if !placed_phases.contains(&phase) && !exists(conn, exists_sql::PHASE, tenant, phase).await? {
        return Ok(Some(not_found("phase", phase)));
    }
    if let Some(a) = t.assignee
        && !exists(conn, exists_sql::STAFF_USER, tenant, a.as_uuid()).await?
    {
        return Ok(Some(not_found("staff user", a.as_uuid())));
    }
    for d in &t.depends_on {
        let d = d.as_uuid();
        if !placed_tasks.contains(&d) && !exists(conn, exists_sql::TASK, tenant, d).await? {
            return Ok(Some(CommandError::UnknownDependency {
                task: t.id.as_uuid(),
                depends_on: d,
            }));
        }
    }
    Ok(None)
}

async fn tenant_missing(conn: &mut SqliteConnection, tenant: TenantId) -> StorageResult<Option<CommandError>> {
    Ok((!exists(conn, exists_sql::TENANT, tenant, tenant.as_uuid()).await?)
        .then(|| not_found("tenant", tenant.as_uuid())))
}

/// Replays the reference store's checks for a step the schema refused, against the state before
/// the step, and returns the error it gives. Checks the reference store does not make (a
/// reference to a row that does not exist) come last; `None` means nothing explains the
/// refusal.
#[allow(clippy::too_many_lines)] // one arm per kind of write
async fn explain(conn: &mut SqliteConnection, tenant: TenantId, step: Step<'_>) -> StorageResult<Option<CommandError>> {
    macro_rules! check {
        ($e:expr) => {
            if let Some(e) = $e {
                return Ok(Some(e));
            }
        };
    }
    macro_rules! cas {
        ($table:expr, $id:expr, $expected:expr) => {
            if let Err(e) = cas_check(conn, $table, tenant, $id, $expected).await? {
                return Ok(Some(e));
            }
        };
    }
    let none: HashSet<Uuid> = HashSet::new();
    let w = match step {
        Step::Write(w) => w,
        Step::Events(events) => {
            check!(
                first_taken(conn, exists_sql::EVENT, tenant, events.iter().map(|e| e.id.as_uuid()))
                    .await?
                    .map(|id| already("event", &id))
            );
            return tenant_missing(conn, tenant).await;
        }
        Step::Messages(messages) => {
            check!(
                first_taken(
                    conn,
                    exists_sql::MESSAGE,
                    tenant,
                    messages.iter().map(|m| m.id.as_uuid())
                )
                .await?
                .map(|id| already("message", &id))
            );
            return tenant_missing(conn, tenant).await;
        }
    };
    match w {
        Write::InsertTenant(t) => {
            check!(
                exists(conn, exists_sql::TENANT, t.id, t.id.as_uuid())
                    .await?
                    .then(|| already("tenant", &t.id))
            );
        }
        Write::UpdateTenant {
            tenant: t,
            expected_version,
        } => cas!(Versioned::Tenant, t.id.as_uuid(), *expected_version),
        Write::InsertRole(r) => {
            let name_taken = exists_text(
                conn,
                "SELECT 1 FROM role WHERE tenant_id = $1 AND name = $2",
                tenant,
                r.name.as_str(),
            )
            .await?;
            check!(name_taken.then(|| already("role", &r.name)));
            check!(
                exists(conn, exists_sql::ROLE, tenant, r.id.as_uuid())
                    .await?
                    .then(|| already("role", &r.id))
            );
            check!(tenant_missing(conn, tenant).await?);
        }
        Write::UpdateRole { role, expected_version } => {
            cas!(Versioned::Role, role.id.as_uuid(), *expected_version);
            let other: Option<Uuid> = sqlx::query_scalar("SELECT id FROM role WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_uuid())
                .bind(role.name.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_sqlx)?;
            check!(
                other
                    .filter(|o| *o != role.id.as_uuid())
                    .map(|_| already("role", &role.name))
            );
        }
        Write::InsertStaffUser(u) | Write::UpdateStaffUser { user: u, .. } => {
            if let Write::UpdateStaffUser { expected_version, .. } = w {
                cas!(Versioned::StaffUser, u.id.as_uuid(), *expected_version);
            }
            let other: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM staff_user WHERE tenant_id = $1 AND email = $2")
                    .bind(tenant.as_uuid())
                    .bind(u.email.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_sqlx)?;
            check!(
                other
                    .filter(|o| *o != u.id.as_uuid())
                    .map(|_| already("staff user", &u.email))
            );
            if matches!(w, Write::InsertStaffUser(_)) {
                check!(other.map(|_| already("staff user", &u.email)));
                check!(
                    exists(conn, exists_sql::STAFF_USER, tenant, u.id.as_uuid())
                        .await?
                        .then(|| already("staff user", &u.id))
                );
                check!(tenant_missing(conn, tenant).await?);
            }
            for r in &u.roles {
                check!(
                    (!exists(conn, exists_sql::ROLE, tenant, r.as_uuid()).await?)
                        .then(|| not_found("role", r.as_uuid()))
                );
            }
        }
        Write::InsertCompany(c) => {
            check!(
                exists(conn, exists_sql::COMPANY, tenant, c.id.as_uuid())
                    .await?
                    .then(|| already("company", &c.id))
            );
            check!(tenant_missing(conn, tenant).await?);
        }
        Write::UpdateCompany {
            company,
            expected_version,
        } => cas!(Versioned::Company, company.id.as_uuid(), *expected_version),
        Write::InsertSite(s) => {
            let company = s.company_id.as_uuid();
            check!((!exists(conn, exists_sql::COMPANY, tenant, company).await?).then(|| not_found("company", company)));
            check!(
                exists(conn, exists_sql::SITE, tenant, s.id.as_uuid())
                    .await?
                    .then(|| already("site", &s.id))
            );
        }
        Write::UpdateSite { site, expected_version } => {
            cas!(Versioned::Site, site.id.as_uuid(), *expected_version);
            let company = site.company_id.as_uuid();
            check!((!exists(conn, exists_sql::COMPANY, tenant, company).await?).then(|| not_found("company", company)));
        }
        Write::DeleteSite { id, expected_version } => cas!(Versioned::Site, id.as_uuid(), *expected_version),
        Write::InsertTemplate(t) => {
            check!(
                exists(conn, exists_sql::TEMPLATE, tenant, t.id.as_uuid())
                    .await?
                    .then(|| already("template", &t.id))
            );
            check!(tenant_missing(conn, tenant).await?);
        }
        Write::ReplaceTemplate {
            template,
            expected_version,
        } => cas!(Versioned::Template, template.id.as_uuid(), *expected_version),
        Write::DeleteTemplate { id, expected_version } => cas!(Versioned::Template, id.as_uuid(), *expected_version),
        Write::InsertPortal(s) => return explain_insert_portal(conn, tenant, s).await,
        Write::UpdatePortal {
            portal,
            expected_version,
        } => {
            cas!(Versioned::Portal, portal.id.as_uuid(), *expected_version);
            let company = portal.company_id.as_uuid();
            check!((!exists(conn, exists_sql::COMPANY, tenant, company).await?).then(|| not_found("company", company)));
        }
        Write::InsertPhase(p) => {
            check!(
                exists(conn, exists_sql::PHASE, tenant, p.id.as_uuid())
                    .await?
                    .then(|| already("phase", &p.id))
            );
            let portal = p.portal_id.as_uuid();
            check!((!exists(conn, exists_sql::PORTAL, tenant, portal).await?).then(|| not_found("portal", portal)));
        }
        Write::UpdatePhase {
            phase,
            expected_version,
        } => {
            cas!(Versioned::Phase, phase.id.as_uuid(), *expected_version);
            let portal = phase.portal_id.as_uuid();
            check!((!exists(conn, exists_sql::PORTAL, tenant, portal).await?).then(|| not_found("portal", portal)));
        }
        Write::InsertTask(t) => {
            let phase = t.phase_id.as_uuid();
            check!((!exists(conn, exists_sql::PHASE, tenant, phase).await?).then(|| not_found("phase", phase)));
            check!(
                exists(conn, exists_sql::TASK, tenant, t.id.as_uuid())
                    .await?
                    .then(|| already("task", &t.id))
            );
            check!(task_refs(conn, tenant, t, &none, &none, None).await?);
        }
        Write::UpdateTask { task, expected_version } => {
            cas!(Versioned::Task, task.id.as_uuid(), *expected_version);
            check!(task_refs(conn, tenant, task, &none, &none, None).await?);
        }
        Write::InsertContact(c) | Write::UpdateContact { contact: c, .. } => {
            if let Write::UpdateContact { expected_version, .. } = w {
                cas!(Versioned::Contact, c.id.as_uuid(), *expected_version);
            }
            let mut others = contacts_of_portal(conn, tenant, c.portal_id.as_uuid()).await?;
            check!(contact_clash(c, &mut others));
            if matches!(w, Write::InsertContact(_)) {
                check!(
                    exists(conn, exists_sql::CONTACT, tenant, c.id.as_uuid())
                        .await?
                        .then(|| already("contact", &c.id))
                );
            }
            let portal = c.portal_id.as_uuid();
            check!((!exists(conn, exists_sql::PORTAL, tenant, portal).await?).then(|| not_found("portal", portal)));
        }
        Write::InsertComment(c) => {
            let task = c.task_id.as_uuid();
            check!((!exists(conn, exists_sql::TASK, tenant, task).await?).then(|| not_found("task", task)));
            check!(
                exists(conn, exists_sql::COMMENT, tenant, c.id.as_uuid())
                    .await?
                    .then(|| already("comment", &c.id))
            );
        }
        Write::InsertAccessLink(l) => {
            let contact = l.contact_id.as_uuid();
            check!((!exists(conn, exists_sql::CONTACT, tenant, contact).await?).then(|| not_found("contact", contact)));
            check!(
                hash_taken(conn, "SELECT 1 FROM access_link WHERE token_hash = $1", &l.token_hash)
                    .await?
                    .then(|| already("access link", &l.id))
            );
            check!(
                exists(conn, exists_sql::ACCESS_LINK, tenant, l.id.as_uuid())
                    .await?
                    .then(|| already("access link", &l.id))
            );
        }
        Write::InsertContactSession(cs) => {
            let link = cs.link_id.as_uuid();
            check!(
                (!exists(conn, exists_sql::ACCESS_LINK, tenant, link).await?).then(|| not_found("access link", link))
            );
            check!(
                hash_taken(
                    conn,
                    "SELECT 1 FROM contact_session WHERE token_hash = $1",
                    &cs.token_hash
                )
                .await?
                .then(|| already("contact session", &cs.link_id))
            );
        }
        Write::InsertAccessChallenge(c) => {
            let link = c.link_id.as_uuid();
            check!(
                (!exists(conn, exists_sql::ACCESS_LINK, tenant, link).await?).then(|| not_found("access link", link))
            );
            check!(
                hash_taken(
                    conn,
                    "SELECT 1 FROM access_challenge WHERE token_hash = $1",
                    &c.token_hash
                )
                .await?
                .then(|| already("access code", &c.id))
            );
            check!(
                exists(conn, exists_sql::ACCESS_CHALLENGE, tenant, c.id.as_uuid())
                    .await?
                    .then(|| already("access code", &c.id))
            );
        }
        Write::InsertReminderRecord(r) => {
            // The reference store answers a missing task or contact as a missing task.
            let (task, contact) = (r.task_id.as_uuid(), r.contact_id.as_uuid());
            let missing = !exists(conn, exists_sql::TASK, tenant, task).await?
                || !exists(conn, exists_sql::CONTACT, tenant, contact).await?;
            check!(missing.then(|| not_found("task", task)));
            let sent: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM reminder_sent WHERE tenant_id = $1 AND task_id = $2 AND contact_id = $3 \
                 AND reason = $4 AND COALESCE(due_date, '') = COALESCE($5, '')",
            )
            .bind(tenant.as_uuid())
            .bind(task)
            .bind(contact)
            .bind(r.reason.as_str())
            .bind(r.due_date)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx)?;
            check!(sent.map(|_| already("reminder", &r.task_id)));
            let portal = r.portal_id.as_uuid();
            check!((!exists(conn, exists_sql::PORTAL, tenant, portal).await?).then(|| not_found("portal", portal)));
        }
        Write::InsertDigestItem(d) => {
            let contact = d.contact_id.as_uuid();
            check!((!exists(conn, exists_sql::CONTACT, tenant, contact).await?).then(|| not_found("contact", contact)));
            check!(
                exists(conn, exists_sql::DIGEST_ITEM, tenant, d.id.as_uuid())
                    .await?
                    .then(|| already("digest item", &d.id.as_uuid()))
            );
            let portal = d.portal_id.as_uuid();
            check!((!exists(conn, exists_sql::PORTAL, tenant, portal).await?).then(|| not_found("portal", portal)));
        }
        Write::DeletePortal { .. }
        | Write::DeletePhase { .. }
        | Write::DeleteTask { .. }
        | Write::DeleteContact { .. }
        | Write::RevokeContactAccess { .. }
        | Write::UseAccessChallenge { .. }
        | Write::DeleteDigestItems { .. }
        | Write::EraseEventsOfPortal { .. } => {}
    }
    Ok(None)
}

/// The reference store inserts the portal, then each phase, each task and each contact in
/// order, and refuses at the first clash.
async fn explain_insert_portal(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    s: &PortalState,
) -> StorageResult<Option<CommandError>> {
    let p = &s.portal;
    let company = p.company_id.as_uuid();
    if !exists(conn, exists_sql::COMPANY, tenant, company).await? {
        return Ok(Some(not_found("company", company)));
    }
    if exists(conn, exists_sql::PORTAL, tenant, p.id.as_uuid()).await? {
        return Ok(Some(already("portal", &p.id)));
    }
    if let Some(id) = first_taken(
        conn,
        exists_sql::PHASE,
        tenant,
        s.phases.iter().map(|ph| ph.id.as_uuid()),
    )
    .await?
    {
        return Ok(Some(already("phase", &id)));
    }
    if let Some(id) = first_taken(conn, exists_sql::TASK, tenant, s.tasks.iter().map(|t| t.id.as_uuid())).await? {
        return Ok(Some(already("task", &id)));
    }
    let mut placed: Vec<&Contact> = Vec::with_capacity(s.contacts.len());
    for c in &s.contacts {
        let mut others = contacts_of_portal(conn, tenant, c.portal_id.as_uuid()).await?;
        others.extend(
            placed
                .iter()
                .filter(|o| o.portal_id == c.portal_id)
                .map(|o| OtherContact {
                    id: o.id.as_uuid(),
                    email: o.email.as_str().to_owned(),
                    primary: o.primary,
                }),
        );
        if let Some(e) = contact_clash(c, &mut others) {
            return Ok(Some(e));
        }
        if placed.iter().any(|o| o.id == c.id) || exists(conn, exists_sql::CONTACT, tenant, c.id.as_uuid()).await? {
            return Ok(Some(already("contact", &c.id)));
        }
        placed.push(c);
    }
    let phases: HashSet<Uuid> = s.phases.iter().map(|ph| ph.id.as_uuid()).collect();
    let tasks: HashSet<Uuid> = s.tasks.iter().map(|t| t.id.as_uuid()).collect();
    for t in &s.tasks {
        if let Some(e) = task_refs(conn, tenant, t, &phases, &tasks, Some(p.id.as_uuid())).await? {
            return Ok(Some(e));
        }
    }
    for ph in &s.phases {
        let portal = ph.portal_id.as_uuid();
        if portal != p.id.as_uuid() && !exists(conn, exists_sql::PORTAL, tenant, portal).await? {
            return Ok(Some(not_found("portal", portal)));
        }
    }
    Ok(None)
}
