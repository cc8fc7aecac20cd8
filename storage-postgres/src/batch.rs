//! Multi-row inserts of portal rows (phases, tasks with their checklists, surveys and
//! dependencies, contacts) and of template documents, each one `INSERT ... SELECT FROM UNNEST`
//! of one array per column: a constant SQL text the server prepares once per connection, a
//! fixed number of bind parameters whatever the number of rows (far under the 65,535 limit),
//! one round trip per table.
//!
//! Phases, tasks and contacts that clash on a unique value are skipped (`ON CONFLICT DO
//! NOTHING`) and the ids actually inserted come back, so a clash leaves the transaction usable
//! and is reported as the reference store reports it: the first row, in the outcome's order,
//! that a one-by-one insert would refuse. The rows under them (dependencies, checklist items,
//! survey questions, a template's phases and tasks) carry ids that only the command made, so a
//! clash there is a broken invariant, not a refusal.

use std::collections::HashSet;

use portal_core::portal::{Contact, Phase};
use portal_core::storage::StorageError;
use portal_core::task::Task;
use portal_core::template::Template;
use sqlx::PgConnection;
use sqlx::postgres::PgBindIterExt;
use uuid::Uuid;

use crate::error::{Fail, Step, already, not_found};
use crate::rows::{notification_preferences_json, survey_options_json};
use crate::write::Cx;

/// A position in an ordered list as stored.
pub(crate) fn position(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// The first id of `ids`, in order, that a one-by-one insert would refuse: seen earlier in the
/// batch, or not among the ids the statement inserted.
fn first_refused(ids: impl IntoIterator<Item = Uuid>, inserted: &HashSet<Uuid>) -> Option<Uuid> {
    let mut seen = HashSet::new();
    ids.into_iter().find(|id| !seen.insert(*id) || !inserted.contains(id))
}

/// A batch that inserted fewer rows than it was given, with no reason found: a concurrent
/// transaction removed the clashing row in between.
fn unexplained(entity: &str) -> Fail {
    Fail::Store(StorageError::Invariant(format!(
        "a {entity} insert skipped a row but no clash explains it"
    )))
}

const INSERT_PHASES: &str = "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::int4[], $5::text[], $6::text[], $7::int8[]) \
     ON CONFLICT DO NOTHING RETURNING id";

/// Inserts phases; a taken id is `AlreadyExists("phase", id)`.
pub(crate) async fn insert_phases(conn: &mut PgConnection, cx: Cx<'_>, phases: &[&Phase]) -> Step {
    if phases.is_empty() {
        return Ok(());
    }
    let inserted: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(INSERT_PHASES)
        .bind(cx.tenant.as_uuid())
        .bind(phases.iter().map(|p| p.id.as_uuid()).bind_iter())
        .bind(phases.iter().map(|p| p.portal_id.as_uuid()).bind_iter())
        .bind(phases.iter().map(|p| p.position).bind_iter())
        .bind(phases.iter().map(|p| p.name.as_str()).bind_iter())
        .bind(phases.iter().map(|p| p.description.as_str()).bind_iter())
        .bind(phases.iter().map(|p| p.version).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?
        .into_iter()
        .collect();
    if inserted.len() == phases.len() {
        return Ok(());
    }
    match first_refused(phases.iter().map(|p| p.id.as_uuid()), &inserted) {
        Some(id) => Err(already("phase", &id)),
        None => Err(unexplained("phase")),
    }
}

const INSERT_TASKS: &str = "INSERT INTO task (tenant_id, id, portal_id, phase_id, position, title, description, owner, \
         evidence, priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, \
         completed_by_kind, completed_by_id, completed_by_display, completion_reason, version) \
     SELECT $1, u.* FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::text[], $11::int4[], $12::date[], $13::text[], $14::text[], $15::uuid[], \
             $16::timestamptz[], $17::text[], $18::uuid[], $19::text[], $20::text[], $21::int8[]) \
          AS u(id, portal_id, phase_id, position, title, description, owner, evidence, priority, due_offset_days, \
               due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, completed_by_id, \
               completed_by_display, completion_reason, version) \
     ON CONFLICT DO NOTHING RETURNING id";

const EXISTING_PHASES: &str = "SELECT id FROM portal_phase WHERE tenant_id = $1 AND id = ANY($2)";

/// Inserts task rows, then their dependencies, checklist items and survey questions.
///
/// A task whose phase does not exist is `NotFound("phase", id)`: found here when the same row
/// also clashed (the reference store checks the phase first), otherwise reported by the foreign
/// key (see [`crate::error::violation`]).
pub(crate) async fn insert_tasks(conn: &mut PgConnection, cx: Cx<'_>, tasks: &[&Task]) -> Step {
    if tasks.is_empty() {
        return Ok(());
    }
    let inserted: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(INSERT_TASKS)
        .bind(cx.tenant.as_uuid())
        .bind(tasks.iter().map(|t| t.id.as_uuid()).bind_iter())
        .bind(tasks.iter().map(|t| t.portal_id.as_uuid()).bind_iter())
        .bind(tasks.iter().map(|t| t.phase_id.as_uuid()).bind_iter())
        .bind(tasks.iter().map(|t| t.position).bind_iter())
        .bind(tasks.iter().map(|t| t.title.as_str()).bind_iter())
        .bind(tasks.iter().map(|t| t.description.as_str()).bind_iter())
        .bind(tasks.iter().map(|t| t.owner.as_str()).bind_iter())
        .bind(tasks.iter().map(|t| t.evidence.as_str()).bind_iter())
        .bind(tasks.iter().map(|t| t.priority.as_str()).bind_iter())
        .bind(
            tasks
                .iter()
                .map(|t| t.due_offset.map(|d| i32::from(d.days())))
                .bind_iter(),
        )
        .bind(tasks.iter().map(|t| t.due_date).bind_iter())
        .bind(tasks.iter().map(|t| t.status.as_str()).bind_iter())
        .bind(
            tasks
                .iter()
                .map(|t| t.block_reason.as_ref().map(|r| r.as_str()))
                .bind_iter(),
        )
        .bind(tasks.iter().map(|t| t.assignee.map(|a| a.as_uuid())).bind_iter())
        .bind(tasks.iter().map(|t| t.completed_at).bind_iter())
        .bind(
            tasks
                .iter()
                .map(|t| t.completed_by.as_ref().map(|a| a.kind.as_str()))
                .bind_iter(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| t.completed_by.as_ref().and_then(|a| a.id))
                .bind_iter(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| t.completed_by.as_ref().and_then(|a| a.display.as_deref()))
                .bind_iter(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| t.completion_reason.as_ref().map(|r| r.as_str()))
                .bind_iter(),
        )
        .bind(tasks.iter().map(|t| t.version).bind_iter())
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?
        .into_iter()
        .collect();
    if inserted.len() < tasks.len() {
        return Err(task_refusal(conn, cx, tasks, &inserted).await);
    }
    insert_task_children(conn, cx, tasks).await
}

/// Why the task insert skipped a row: its id is taken (or, first, its phase is missing).
async fn task_refusal(conn: &mut PgConnection, cx: Cx<'_>, tasks: &[&Task], inserted: &HashSet<Uuid>) -> Fail {
    let phases: HashSet<Uuid> = match sqlx::query_scalar::<_, Uuid>(EXISTING_PHASES)
        .bind(cx.tenant.as_uuid())
        .bind(tasks.iter().map(|t| t.phase_id.as_uuid()).bind_iter())
        .fetch_all(&mut *conn)
        .await
    {
        Ok(ids) => ids.into_iter().collect(),
        Err(e) => return cx.err(e),
    };
    let mut seen = HashSet::new();
    for t in tasks {
        let id = t.id.as_uuid();
        if !phases.contains(&t.phase_id.as_uuid()) {
            return not_found("phase", t.phase_id);
        }
        if !seen.insert(id) || !inserted.contains(&id) {
            return already("task", &id);
        }
    }
    unexplained("task")
}

/// One statement for the dependencies, checklist items and survey questions of any number of
/// tasks. A dependency on a task that does not exist is refused by its foreign key (see
/// [`crate::error::violation`]).
const INSERT_TASK_CHILDREN: &str = "WITH dependencies AS ( \
         INSERT INTO task_dependency (tenant_id, task_id, depends_on_id, portal_id) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[]) \
     ), checklist AS ( \
         INSERT INTO task_checklist_item (tenant_id, id, task_id, portal_id, position, text, done) \
         SELECT $1, * FROM UNNEST($5::uuid[], $6::uuid[], $7::uuid[], $8::int4[], $9::text[], $10::bool[]) \
     ) \
     INSERT INTO task_survey_question (tenant_id, id, task_id, portal_id, position, text, kind, options) \
     SELECT $1, * FROM UNNEST($11::uuid[], $12::uuid[], $13::uuid[], $14::int4[], $15::text[], $16::text[], \
             $17::jsonb[])";

/// Inserts the dependencies, checklist items and survey questions of tasks whose rows are
/// written (and whose old children, for an update, are gone).
pub(crate) async fn insert_task_children(conn: &mut PgConnection, cx: Cx<'_>, tasks: &[&Task]) -> Step {
    let mut dependencies: Vec<(Uuid, Uuid, Uuid)> = Vec::new();
    let mut per_task = HashSet::new();
    for t in tasks {
        per_task.clear();
        // The table holds a dependency once; a repeated one (which no command makes) is kept once.
        for d in &t.depends_on {
            if per_task.insert(*d) {
                dependencies.push((t.id.as_uuid(), d.as_uuid(), t.portal_id.as_uuid()));
            }
        }
    }
    let items = || {
        tasks
            .iter()
            .flat_map(|t| t.checklist.iter().enumerate().map(move |(i, c)| (*t, i, c)))
    };
    let questions = || {
        tasks
            .iter()
            .flat_map(|t| t.survey.iter().enumerate().map(move |(i, q)| (*t, i, q)))
    };
    if dependencies.is_empty() && items().next().is_none() && questions().next().is_none() {
        return Ok(());
    }
    let options: Vec<serde_json::Value> = questions().map(|(_, _, q)| survey_options_json(&q.options)).collect();
    sqlx::query(INSERT_TASK_CHILDREN)
        .bind(cx.tenant.as_uuid())
        .bind(dependencies.iter().map(|d| d.0).bind_iter())
        .bind(dependencies.iter().map(|d| d.1).bind_iter())
        .bind(dependencies.iter().map(|d| d.2).bind_iter())
        .bind(items().map(|(_, _, c)| c.id.as_uuid()).bind_iter())
        .bind(items().map(|(t, _, _)| t.id.as_uuid()).bind_iter())
        .bind(items().map(|(t, _, _)| t.portal_id.as_uuid()).bind_iter())
        .bind(items().map(|(_, i, _)| position(i)).bind_iter())
        .bind(items().map(|(_, _, c)| c.text.as_str()).bind_iter())
        .bind(items().map(|(_, _, c)| c.done).bind_iter())
        .bind(questions().map(|(_, _, q)| q.id.as_uuid()).bind_iter())
        .bind(questions().map(|(t, _, _)| t.id.as_uuid()).bind_iter())
        .bind(questions().map(|(t, _, _)| t.portal_id.as_uuid()).bind_iter())
        .bind(questions().map(|(_, i, _)| position(i)).bind_iter())
        .bind(questions().map(|(_, _, q)| q.text.as_str()).bind_iter())
        .bind(questions().map(|(_, _, q)| q.kind.as_str()).bind_iter())
        .bind(options.iter().bind_iter())
        .execute(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    Ok(())
}

const INSERT_CONTACTS: &str = "INSERT INTO contact (tenant_id, id, portal_id, name, email, role, is_primary, version, \
         created_at, notification_preferences) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::int8[], \
             $9::timestamptz[], $10::jsonb[]) \
     ON CONFLICT DO NOTHING RETURNING id";

const CONTACTS_OF_PORTALS: &str =
    "SELECT id, portal_id, email, is_primary FROM contact WHERE tenant_id = $1 AND portal_id = ANY($2)";

const EXISTING_CONTACTS: &str = "SELECT id FROM contact WHERE tenant_id = $1 AND id = ANY($2)";

/// Inserts contacts: a second contact with the same email on a portal is
/// `AlreadyExists("contact", email)`, a second primary `AlreadyExists("primary contact",
/// portal)`, a taken id `AlreadyExists("contact", id)`.
pub(crate) async fn insert_contacts(conn: &mut PgConnection, cx: Cx<'_>, contacts: &[&Contact]) -> Step {
    if contacts.is_empty() {
        return Ok(());
    }
    let inserted: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(INSERT_CONTACTS)
        .bind(cx.tenant.as_uuid())
        .bind(contacts.iter().map(|c| c.id.as_uuid()).bind_iter())
        .bind(contacts.iter().map(|c| c.portal_id.as_uuid()).bind_iter())
        .bind(contacts.iter().map(|c| c.name.as_str()).bind_iter())
        .bind(contacts.iter().map(|c| c.email.as_str()).bind_iter())
        .bind(contacts.iter().map(|c| c.role.as_str()).bind_iter())
        .bind(contacts.iter().map(|c| c.primary).bind_iter())
        .bind(contacts.iter().map(|c| c.version).bind_iter())
        .bind(contacts.iter().map(|c| c.created_at).bind_iter())
        .bind(
            contacts
                .iter()
                .map(|c| notification_preferences_json(&c.notifications))
                .bind_iter(),
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?
        .into_iter()
        .collect();
    if inserted.len() == contacts.len() {
        return Ok(());
    }
    Err(contact_refusal(conn, cx, contacts, &inserted).await)
}

/// A contact as far as the clash checks go.
struct ContactKey {
    id: Uuid,
    portal_id: Uuid,
    email: String,
    primary: bool,
}

/// Replays the reference store's checks on the batch, one contact after the other, against the
/// contacts that were there before and the batch's earlier ones.
async fn contact_refusal(conn: &mut PgConnection, cx: Cx<'_>, contacts: &[&Contact], inserted: &HashSet<Uuid>) -> Fail {
    let before: Result<Vec<(Uuid, Uuid, String, bool)>, sqlx::Error> = sqlx::query_as(CONTACTS_OF_PORTALS)
        .bind(cx.tenant.as_uuid())
        .bind(contacts.iter().map(|c| c.portal_id.as_uuid()).bind_iter())
        .fetch_all(&mut *conn)
        .await;
    let taken: Result<Vec<Uuid>, sqlx::Error> = sqlx::query_scalar(EXISTING_CONTACTS)
        .bind(cx.tenant.as_uuid())
        .bind(contacts.iter().map(|c| c.id.as_uuid()).bind_iter())
        .fetch_all(&mut *conn)
        .await;
    let (before, taken) = match (before, taken) {
        (Ok(b), Ok(t)) => (b, t),
        (Err(e), _) | (_, Err(e)) => return cx.err(e),
    };
    let mut known: Vec<ContactKey> = before
        .into_iter()
        .filter(|(id, ..)| !inserted.contains(id))
        .map(|(id, portal_id, email, primary)| ContactKey {
            id,
            portal_id,
            email,
            primary,
        })
        .collect();
    let mut taken: HashSet<Uuid> = taken.into_iter().filter(|id| !inserted.contains(id)).collect();
    for c in contacts {
        let id = c.id.as_uuid();
        let portal_id = c.portal_id.as_uuid();
        let mut others: Vec<&ContactKey> = known
            .iter()
            .filter(|o| o.portal_id == portal_id && o.id != id)
            .collect();
        others.sort_by_key(|o| o.id);
        for o in others {
            if o.email == c.email.as_str() {
                return already("contact", &c.email);
            }
            if c.primary && o.primary {
                return already("primary contact", &c.portal_id);
            }
        }
        if !taken.insert(id) {
            return already("contact", &id);
        }
        known.push(ContactKey {
            id,
            portal_id,
            email: c.email.as_str().to_owned(),
            primary: c.primary,
        });
    }
    unexplained("contact")
}

const INSERT_TEMPLATE_PHASES: &str = "INSERT INTO template_phase (tenant_id, id, template_id, position, name, description) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::int4[], $5::text[], $6::text[])";

const INSERT_TEMPLATE_TASKS: &str = "INSERT INTO template_task (tenant_id, id, template_id, phase_id, position, task_key, \
         title, description, owner, evidence, priority, due_offset_days) \
     SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::text[], $11::text[], $12::int4[])";

const INSERT_TEMPLATE_TASK_CHILDREN: &str = "WITH checklist AS ( \
         INSERT INTO template_task_checklist_item (tenant_id, task_id, position, text) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::int4[], $4::text[]) \
     ), survey AS ( \
         INSERT INTO template_task_survey_question (tenant_id, id, task_id, position, text, kind, options) \
         SELECT $1, * FROM UNNEST($5::uuid[], $6::uuid[], $7::int4[], $8::text[], $9::text[], $10::jsonb[]) \
     ) \
     INSERT INTO template_task_dependency (tenant_id, task_id, depends_on_id) \
     SELECT $1, * FROM UNNEST($11::uuid[], $12::uuid[])";

/// Inserts a template's phases, tasks, checklists, surveys and dependencies (the template row
/// is written, and for a replacement its old phases are gone).
pub(crate) async fn insert_template_document(conn: &mut PgConnection, cx: Cx<'_>, template: &Template) -> Step {
    let t = cx.tenant.as_uuid();
    let template_id = template.id.as_uuid();
    let phases = &template.phases;
    if phases.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_TEMPLATE_PHASES)
        .bind(t)
        .bind(phases.iter().map(|p| p.id.as_uuid()).bind_iter())
        .bind(phases.iter().map(|_| template_id).bind_iter())
        .bind(phases.iter().enumerate().map(|(i, _)| position(i)).bind_iter())
        .bind(phases.iter().map(|p| p.name.as_str()).bind_iter())
        .bind(phases.iter().map(|p| p.description.as_str()).bind_iter())
        .execute(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    let tasks = || {
        phases.iter().flat_map(|p| {
            p.tasks
                .iter()
                .enumerate()
                .map(move |(i, task)| (p.id.as_uuid(), i, task))
        })
    };
    if tasks().next().is_none() {
        return Ok(());
    }
    sqlx::query(INSERT_TEMPLATE_TASKS)
        .bind(t)
        .bind(tasks().map(|(_, _, k)| k.id.as_uuid()).bind_iter())
        .bind(tasks().map(|_| template_id).bind_iter())
        .bind(tasks().map(|(phase, _, _)| phase).bind_iter())
        .bind(tasks().map(|(_, i, _)| position(i)).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.key.as_str()).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.title.as_str()).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.description.as_str()).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.owner.as_str()).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.evidence.as_str()).bind_iter())
        .bind(tasks().map(|(_, _, k)| k.priority.as_str()).bind_iter())
        .bind(
            tasks()
                .map(|(_, _, k)| k.due_offset.map(|d| i32::from(d.days())))
                .bind_iter(),
        )
        .execute(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    let items = || {
        tasks().flat_map(|(_, _, k)| {
            k.checklist
                .iter()
                .enumerate()
                .map(move |(i, text)| (k.id.as_uuid(), i, text))
        })
    };
    let questions =
        || tasks().flat_map(|(_, _, k)| k.survey.iter().enumerate().map(move |(i, q)| (k.id.as_uuid(), i, q)));
    let dependencies = || {
        tasks().flat_map(|(_, _, k)| {
            let mut seen = HashSet::new();
            k.depends_on
                .iter()
                .filter(move |d| seen.insert(**d))
                .map(move |d| (k.id.as_uuid(), d.as_uuid()))
        })
    };
    if items().next().is_none() && questions().next().is_none() && dependencies().next().is_none() {
        return Ok(());
    }
    let options: Vec<serde_json::Value> = questions().map(|(_, _, q)| survey_options_json(&q.options)).collect();
    sqlx::query(INSERT_TEMPLATE_TASK_CHILDREN)
        .bind(t)
        .bind(items().map(|(task, _, _)| task).bind_iter())
        .bind(items().map(|(_, i, _)| position(i)).bind_iter())
        .bind(items().map(|(_, _, text)| text.as_str()).bind_iter())
        .bind(questions().map(|(_, _, q)| q.id.as_uuid()).bind_iter())
        .bind(questions().map(|(task, _, _)| task).bind_iter())
        .bind(questions().map(|(_, i, _)| position(i)).bind_iter())
        .bind(questions().map(|(_, _, q)| q.text.as_str()).bind_iter())
        .bind(questions().map(|(_, _, q)| q.kind.as_str()).bind_iter())
        .bind(options.iter().bind_iter())
        .bind(dependencies().map(|(task, _)| task).bind_iter())
        .bind(dependencies().map(|(_, d)| d).bind_iter())
        .execute(&mut *conn)
        .await
        .map_err(|e| cx.err(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_refused_is_the_first_duplicate_or_skipped_row() {
        let [a, b, c] = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];
        let all: HashSet<Uuid> = [a, b, c].into_iter().collect();
        assert_eq!(first_refused([a, b, c], &all), None);
        assert_eq!(first_refused([a, b, a, c], &all), Some(a));
        let without_b: HashSet<Uuid> = [a, c].into_iter().collect();
        assert_eq!(first_refused([a, b, c, c], &without_b), Some(b));
    }
}
