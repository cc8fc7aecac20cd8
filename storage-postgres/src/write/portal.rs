//! Writes of portals, phases, tasks, contacts, comments, and the erasure of a portal's events.

use portal_core::id::{ContactId, EventId, PhaseId, PortalId, TaskId};
use portal_core::portal::{Contact, Phase, Portal, PortalState};
use portal_core::storage::StorageError;
use portal_core::task::{Comment, Task};
use sqlx::PgConnection;

use super::admin::COMPANY_EXISTS;
use super::{Cx, cas, exec, scalar, version_refusal};
use crate::batch::{insert_contacts, insert_phases, insert_task_children, insert_tasks};
use crate::error::{Fail, Step, already, not_found};
use crate::rows::notification_preferences_json;

const PORTAL_VERSION: &str = "SELECT version FROM portal WHERE tenant_id = $1 AND id = $2";
/// Written only when its company exists, so a missing company is told apart from a taken id.
const INSERT_PORTAL: &str = "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, \
         created_at, updated_at, activated_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM company WHERE tenant_id = $1 AND id = $3) \
     ON CONFLICT DO NOTHING";
const UPDATE_PORTAL: &str = "UPDATE portal SET company_id = $3, template_id = $4, name = $5, status = $6, version = $7, \
         created_at = $8, updated_at = $9, activated_at = $10 \
     WHERE tenant_id = $1 AND id = $2 AND version = $11";
/// Phases, tasks (with dependencies both ways, checklists, surveys, comments) and contacts
/// follow by `ON DELETE CASCADE`.
const DELETE_PORTAL: &str = "DELETE FROM portal WHERE tenant_id = $1 AND id = $2";

/// The portal row (its company must exist), then phases, tasks with their children, and
/// contacts: one multi-row statement per table, whatever the number of tasks.
pub(super) async fn insert_portal(conn: &mut PgConnection, cx: Cx<'_>, state: &PortalState) -> Step {
    let p = &state.portal;
    let query = sqlx::query(INSERT_PORTAL)
        .bind(cx.t())
        .bind(p.id.as_uuid())
        .bind(p.company_id.as_uuid())
        .bind(p.template_id.map(|id| id.as_uuid()))
        .bind(p.name.as_str())
        .bind(p.status.as_str())
        .bind(p.version)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.activated_at);
    if exec(conn, cx, query).await? == 0 {
        let company = sqlx::query_scalar(COMPANY_EXISTS)
            .bind(cx.t())
            .bind(p.company_id.as_uuid());
        return Err(if scalar(conn, cx, company).await? {
            already("portal", &p.id)
        } else {
            not_found("company", p.company_id)
        });
    }
    let phases: Vec<&Phase> = state.phases.iter().collect();
    insert_phases(conn, cx, &phases).await?;
    let tasks: Vec<&Task> = state.tasks.iter().collect();
    insert_tasks(conn, cx, &tasks).await?;
    let contacts: Vec<&Contact> = state.contacts.iter().collect();
    insert_contacts(conn, cx, &contacts).await
}

pub(super) async fn update_portal(conn: &mut PgConnection, cx: Cx<'_>, portal: &Portal, expected: i64) -> Step {
    let query = sqlx::query(UPDATE_PORTAL)
        .bind(cx.t())
        .bind(portal.id.as_uuid())
        .bind(portal.company_id.as_uuid())
        .bind(portal.template_id.map(|id| id.as_uuid()))
        .bind(portal.name.as_str())
        .bind(portal.status.as_str())
        .bind(portal.version)
        .bind(portal.created_at)
        .bind(portal.updated_at)
        .bind(portal.activated_at)
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, PORTAL_VERSION, "portal", portal.id.as_uuid(), expected).await
}

pub(super) async fn delete_portal(conn: &mut PgConnection, cx: Cx<'_>, id: PortalId) -> Step {
    exec(conn, cx, sqlx::query(DELETE_PORTAL).bind(cx.t()).bind(id.as_uuid())).await?;
    Ok(())
}

const PHASE_VERSION: &str = "SELECT version FROM portal_phase WHERE tenant_id = $1 AND id = $2";
const UPDATE_PHASE: &str = "UPDATE portal_phase SET portal_id = $3, position = $4, name = $5, description = $6, \
         version = $7 \
     WHERE tenant_id = $1 AND id = $2 AND version = $8";
/// Its tasks (and everything under them) follow by `ON DELETE CASCADE`.
const DELETE_PHASE: &str = "DELETE FROM portal_phase WHERE tenant_id = $1 AND id = $2";

pub(super) async fn update_phase(conn: &mut PgConnection, cx: Cx<'_>, phase: &Phase, expected: i64) -> Step {
    let query = sqlx::query(UPDATE_PHASE)
        .bind(cx.t())
        .bind(phase.id.as_uuid())
        .bind(phase.portal_id.as_uuid())
        .bind(phase.position)
        .bind(phase.name.as_str())
        .bind(phase.description.as_str())
        .bind(phase.version)
        .bind(expected);
    let rows = exec(conn, cx, query).await?;
    cas(conn, cx, rows, PHASE_VERSION, "phase", phase.id.as_uuid(), expected).await
}

pub(super) async fn delete_phase(conn: &mut PgConnection, cx: Cx<'_>, id: PhaseId) -> Step {
    exec(conn, cx, sqlx::query(DELETE_PHASE).bind(cx.t()).bind(id.as_uuid())).await?;
    Ok(())
}

const TASK_VERSION: &str = "SELECT version FROM task WHERE tenant_id = $1 AND id = $2";
/// The compare-and-set on the task row and, only when it matched, the removal of the task's
/// dependencies, checklist items and survey questions, which are then written afresh: one
/// round trip for the common update. Checklist items and survey questions are found through
/// the portal the task was in (`current` reads the row as it was before the statement), the
/// only index that leads to them.
const UPDATE_TASK: &str = "WITH current AS ( \
         SELECT portal_id FROM task WHERE tenant_id = $1 AND id = $2 \
     ), updated AS ( \
         UPDATE task SET portal_id = $3, phase_id = $4, position = $5, title = $6, description = $7, owner = $8, \
             evidence = $9, priority = $10, due_offset_days = $11, due_date = $12, status = $13, block_reason = $14, \
             assignee_id = $15, completed_at = $16, completed_by_kind = $17, completed_by_id = $18, \
             completed_by_display = $19, completion_reason = $20, version = $21 \
         WHERE tenant_id = $1 AND id = $2 AND version = $22 \
         RETURNING id \
     ), dependencies AS ( \
         DELETE FROM task_dependency d USING updated u \
         WHERE d.tenant_id = $1 AND d.task_id = u.id \
     ), checklist AS ( \
         DELETE FROM task_checklist_item c USING updated u, current p \
         WHERE c.tenant_id = $1 AND c.portal_id = p.portal_id AND c.task_id = u.id \
     ), survey AS ( \
         DELETE FROM task_survey_question q USING updated u, current p \
         WHERE q.tenant_id = $1 AND q.portal_id = p.portal_id AND q.task_id = u.id \
     ) \
     SELECT count(*) FROM updated";
/// Dependencies on it, checklists, surveys and comments follow by `ON DELETE CASCADE`.
const DELETE_TASK: &str = "DELETE FROM task WHERE tenant_id = $1 AND id = $2";

pub(super) async fn update_task(conn: &mut PgConnection, cx: Cx<'_>, task: &Task, expected: i64) -> Step {
    let id = task.id.as_uuid();
    let query = sqlx::query_scalar(UPDATE_TASK)
        .bind(cx.t())
        .bind(id)
        .bind(task.portal_id.as_uuid())
        .bind(task.phase_id.as_uuid())
        .bind(task.position)
        .bind(task.title.as_str())
        .bind(task.description.as_str())
        .bind(task.owner.as_str())
        .bind(task.evidence.as_str())
        .bind(task.priority.as_str())
        .bind(task.due_offset.map(|d| i32::from(d.days())))
        .bind(task.due_date)
        .bind(task.status.as_str())
        .bind(task.block_reason.as_ref().map(|r| r.as_str()))
        .bind(task.assignee.map(|a| a.as_uuid()))
        .bind(task.completed_at)
        .bind(task.completed_by.as_ref().map(|a| a.kind.as_str()))
        .bind(task.completed_by.as_ref().and_then(|a| a.id))
        .bind(task.completed_by.as_ref().and_then(|a| a.display.as_deref()))
        .bind(task.completion_reason.as_ref().map(|r| r.as_str()))
        .bind(task.version)
        .bind(expected);
    let updated: i64 = scalar(conn, cx, query).await?;
    cas(
        conn,
        cx,
        u64::try_from(updated).unwrap_or(0),
        TASK_VERSION,
        "task",
        id,
        expected,
    )
    .await?;
    insert_task_children(conn, cx, &[task]).await
}

pub(super) async fn delete_task(conn: &mut PgConnection, cx: Cx<'_>, id: TaskId) -> Step {
    exec(conn, cx, sqlx::query(DELETE_TASK).bind(cx.t()).bind(id.as_uuid())).await?;
    Ok(())
}

const CONTACT_VERSION: &str = "SELECT version FROM contact WHERE tenant_id = $1 AND id = $2";
const UPDATE_CONTACT: &str = "UPDATE contact SET portal_id = $3, name = $4, email = $5, role = $6, is_primary = $7, \
         version = $8, created_at = $9, notification_preferences = $11 \
     WHERE tenant_id = $1 AND id = $2 AND version = $10 \
       AND NOT EXISTS (SELECT 1 FROM contact o \
                       WHERE o.tenant_id = $1 AND o.portal_id = $3 AND o.id <> $2 \
                         AND (o.email = $5 OR ($7 AND o.is_primary)))";
/// The first other contact of the portal (by id, as the reference store scans them) that the
/// contact clashes with, and whether the clash is the email.
const CONTACT_CLASH: &str = "SELECT email = $4 FROM contact \
     WHERE tenant_id = $1 AND portal_id = $2 AND id <> $3 AND (email = $4 OR ($5 AND is_primary)) \
     ORDER BY id LIMIT 1";
const DELETE_CONTACT: &str = "DELETE FROM contact WHERE tenant_id = $1 AND id = $2";

/// A guarded update: the contact's email stays unique on its portal and the portal keeps at
/// most one primary contact. The version is checked before the clash, as the reference store
/// does.
pub(super) async fn update_contact(conn: &mut PgConnection, cx: Cx<'_>, contact: &Contact, expected: i64) -> Step {
    let id = contact.id.as_uuid();
    // A clash the guard saw can be gone by the time it is looked up (its row deleted by a
    // transaction that committed in between); the update is then simply tried again.
    for _ in 0..3 {
        let query = sqlx::query(UPDATE_CONTACT)
            .bind(cx.t())
            .bind(id)
            .bind(contact.portal_id.as_uuid())
            .bind(contact.name.as_str())
            .bind(contact.email.as_str())
            .bind(contact.role.as_str())
            .bind(contact.primary)
            .bind(contact.version)
            .bind(contact.created_at)
            .bind(expected)
            .bind(notification_preferences_json(&contact.notifications));
        if exec(conn, cx, query).await? > 0 {
            return Ok(());
        }
        version_refusal(conn, cx, CONTACT_VERSION, "contact", id, expected).await?;
        let clash: Option<bool> = sqlx::query_scalar(CONTACT_CLASH)
            .bind(cx.t())
            .bind(contact.portal_id.as_uuid())
            .bind(id)
            .bind(contact.email.as_str())
            .bind(contact.primary)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| cx.err(e))?;
        match clash {
            Some(true) => return Err(already("contact", &contact.email)),
            Some(false) => return Err(already("primary contact", &contact.portal_id)),
            None => {}
        }
    }
    Err(Fail::Store(StorageError::Unavailable(
        format!("contact {id} kept clashing with rows that vanished; try again").into(),
    )))
}

pub(super) async fn delete_contact(conn: &mut PgConnection, cx: Cx<'_>, id: ContactId) -> Step {
    exec(conn, cx, sqlx::query(DELETE_CONTACT).bind(cx.t()).bind(id.as_uuid())).await?;
    Ok(())
}

/// Written only when its task exists, so a missing task is told apart from a taken id.
const INSERT_COMMENT: &str = "INSERT INTO task_comment (tenant_id, id, portal_id, task_id, author_kind, author_id, \
         author_display, body, is_question, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $4) \
     ON CONFLICT DO NOTHING";
const TASK_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM task WHERE tenant_id = $1 AND id = $2)";

/// A missing task is reported before an id already taken, as the reference store checks.
pub(super) async fn insert_comment(conn: &mut PgConnection, cx: Cx<'_>, comment: &Comment) -> Step {
    let query = sqlx::query(INSERT_COMMENT)
        .bind(cx.t())
        .bind(comment.id.as_uuid())
        .bind(comment.portal_id.as_uuid())
        .bind(comment.task_id.as_uuid())
        .bind(comment.author.kind.as_str())
        .bind(comment.author.id)
        .bind(comment.author.display.as_deref())
        .bind(comment.body.as_str())
        .bind(comment.is_question)
        .bind(comment.created_at);
    if exec(conn, cx, query).await? == 0 {
        let task = sqlx::query_scalar(TASK_EXISTS)
            .bind(cx.t())
            .bind(comment.task_id.as_uuid());
        return Err(if scalar(conn, cx, task).await? {
            already("comment", &comment.id)
        } else {
            not_found("task", comment.task_id)
        });
    }
    Ok(())
}

/// ACT-4: the events stay as tombstones naming the delete's audit event.
const ERASE_EVENTS_OF_PORTAL: &str = "UPDATE activity_event \
     SET summary = '', details = 'null'::jsonb, actor_display = NULL, erased_by = $3 \
     WHERE tenant_id = $1 AND portal_id = $2";

pub(super) async fn erase_events_of_portal(
    conn: &mut PgConnection,
    cx: Cx<'_>,
    portal: PortalId,
    erased_by: EventId,
) -> Step {
    let query = sqlx::query(ERASE_EVENTS_OF_PORTAL)
        .bind(cx.t())
        .bind(portal.as_uuid())
        .bind(erased_by.as_uuid());
    exec(conn, cx, query).await?;
    Ok(())
}
