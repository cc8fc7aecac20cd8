//! Task statuses and dependencies (TSK-1), assignment (TSK-4), comments (TSK-7) and checklist
//! items (TSK-8). The status rules are in [`crate::task`]'s docs.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::portal::{portal_resource, scope};
use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::error::CommandError;
use crate::id::{ChecklistItemId, TaskId};
use crate::lifecycle::PortalStatus;
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal, Resource};
use crate::portal::{MAX_TASKS, PortalState};
use crate::task::{Comment, EvidenceType, Task, TaskOwner, TaskStatus};
use crate::tenant::StaffUser;
use crate::value::{CommentBody, Reason};

/// Sets the status of every task that is not completed from the rule: `blocked` exactly when a
/// dependency is not completed or it is blocked by hand; a task that stops being blocked returns
/// to `pending`.
pub fn derive_statuses(tasks: &mut [Task]) {
    let completed: HashSet<TaskId> = tasks.iter().filter(|t| t.is_completed()).map(|t| t.id).collect();
    for t in tasks.iter_mut() {
        if t.is_completed() {
            continue;
        }
        let waiting = t.block_reason.is_some() || t.depends_on.iter().any(|d| !completed.contains(d));
        if waiting {
            t.status = TaskStatus::Blocked;
        } else if t.status == TaskStatus::Blocked {
            t.status = TaskStatus::Pending;
        }
    }
}

/// The writes that turn `before` into `after` (phases, tasks and contacts; not the portal row).
/// Changed rows get the next version; new rows keep theirs; rows gone are deleted.
pub(crate) fn diff_portal(before: &PortalState, after: &PortalState) -> Vec<Write> {
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();

    let old_phases: HashMap<_, _> = before.phases.iter().map(|p| (p.id, p)).collect();
    let new_phase_ids: HashSet<_> = after.phases.iter().map(|p| p.id).collect();
    for p in &after.phases {
        match old_phases.get(&p.id) {
            None => inserts.push(Write::InsertPhase(p.clone())),
            Some(old) if *old != p => {
                let mut p = p.clone();
                p.version = old.version + 1;
                updates.push(Write::UpdatePhase {
                    phase: p,
                    expected_version: old.version,
                });
            }
            Some(_) => {}
        }
    }

    let old_tasks: HashMap<_, _> = before.tasks.iter().map(|t| (t.id, t)).collect();
    let new_task_ids: HashSet<_> = after.tasks.iter().map(|t| t.id).collect();
    for t in &after.tasks {
        match old_tasks.get(&t.id) {
            None => inserts.push(Write::InsertTask(Box::new(t.clone()))),
            Some(old) if *old != t => {
                let mut t = t.clone();
                t.version = old.version + 1;
                updates.push(Write::UpdateTask {
                    task: Box::new(t),
                    expected_version: old.version,
                });
            }
            Some(_) => {}
        }
    }
    for t in &before.tasks {
        if !new_task_ids.contains(&t.id) {
            deletes.push(Write::DeleteTask { id: t.id });
        }
    }
    for p in &before.phases {
        if !new_phase_ids.contains(&p.id) {
            deletes.push(Write::DeletePhase { id: p.id });
        }
    }

    let old_contacts: HashMap<_, _> = before.contacts.iter().map(|c| (c.id, c)).collect();
    let new_contact_ids: HashSet<_> = after.contacts.iter().map(|c| c.id).collect();
    for c in &after.contacts {
        match old_contacts.get(&c.id) {
            None => inserts.push(Write::InsertContact(c.clone())),
            Some(old) if *old != c => {
                let mut c = c.clone();
                c.version = old.version + 1;
                updates.push(Write::UpdateContact {
                    contact: c,
                    expected_version: old.version,
                });
            }
            Some(_) => {}
        }
    }
    for c in &before.contacts {
        if !new_contact_ids.contains(&c.id) {
            deletes.push(Write::DeleteContact { id: c.id });
        }
    }

    inserts.extend(updates);
    inserts.extend(deletes);
    inserts
}

pub(crate) fn task_resource(state: &PortalState, task: &Task) -> Resource {
    let p = &state.portal;
    Resource::Task {
        tenant: p.tenant_id,
        company: p.company_id,
        portal: p.id,
        status: p.status,
        owner: task.owner,
    }
}

/// Finds the task, authorises `action` on it and checks the caller's version. A task of another
/// portal (or tenant) is "not found".
fn target<'s>(
    principal: &Principal,
    state: &'s PortalState,
    id: TaskId,
    action: Action,
    expected_version: Option<i64>,
) -> Result<&'s Task, CommandError> {
    let task = state.task(id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })?;
    allow(principal, action, &task_resource(state, task))?;
    if let Some(expected) = expected_version {
        check_version("task", id.as_uuid(), expected, task.version)?;
    }
    Ok(task)
}

fn require_status(state: &PortalState, required: PortalStatus) -> Result<(), CommandError> {
    if state.portal.status == required {
        Ok(())
    } else {
        Err(CommandError::PortalStatus {
            required,
            actual: state.portal.status,
        })
    }
}

/// Applies `change` to a copy of the portal's tasks, re-derives statuses and returns the writes.
fn change_tasks(state: &PortalState, change: impl FnOnce(&mut Vec<Task>)) -> (PortalState, Vec<Write>) {
    let mut next = state.clone();
    change(&mut next.tasks);
    derive_statuses(&mut next.tasks);
    let writes = diff_portal(state, &next);
    (next, writes)
}

fn task_mut(tasks: &mut [Task], id: TaskId) -> Option<&mut Task> {
    tasks.iter_mut().find(|t| t.id == id)
}

fn status_details(before: &PortalState, after: &PortalState, task: TaskId) -> serde_json::Value {
    // Which dependents moved as a consequence, so the log explains the knock-on effect.
    let moved: Vec<_> = after
        .tasks
        .iter()
        .filter(|t| t.id != task)
        .filter_map(|t| {
            let old = before.task(t.id)?;
            (old.status != t.status).then(|| json!({ "task_id": t.id, "from": old.status, "to": t.status }))
        })
        .collect();
    json!({ "task_id": task, "dependents": moved })
}

/// `pending → in_progress`, in an active portal.
pub fn start_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::WorkOnTask, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    match task.status {
        TaskStatus::Pending => {}
        TaskStatus::Blocked => return Err(blocked(state, task)),
        from => {
            return Err(CommandError::IllegalTaskMove {
                task: id.as_uuid(),
                from,
                to: TaskStatus::InProgress,
            });
        }
    }
    let (_, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.status = TaskStatus::InProgress;
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskStatusChanged,
        format!("Task {} started", task.title),
        json!({ "task_id": id, "from": task.status, "to": TaskStatus::InProgress }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

fn blocked(state: &PortalState, task: &Task) -> CommandError {
    let incomplete = task
        .depends_on
        .iter()
        .filter(|d| state.task(**d).is_none_or(|t| !t.is_completed()))
        .count();
    CommandError::TaskBlocked {
        task: task.id.as_uuid(),
        incomplete_dependencies: incomplete,
        manually_blocked: task.block_reason.is_some(),
    }
}

/// Completes a task of an active portal. Only while every dependency is completed and there is
/// no manual block. Staff completing a client-owned task must give a reason, which is recorded.
/// Dependents whose last open dependency this was return to `pending`.
pub fn complete_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
    reason: Option<&Reason>,
) -> Result<Outcome, CommandError> {
    let task = state.task(id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })?;
    let on_behalf = matches!(principal, Principal::Staff(_)) && task.owner == TaskOwner::Client;
    let action = if on_behalf {
        Action::ManageTask
    } else {
        Action::WorkOnTask
    };
    let task = target(principal, state, id, action, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    // A contact completes by hand only tasks whose completion is the evidence; the others
    // complete through their evidence (a signature, an upload, answers).
    if matches!(principal, Principal::Contact(_))
        && !matches!(task.evidence, EvidenceType::Acknowledgement | EvidenceType::None)
    {
        return Err(CommandError::WrongEvidence {
            expected: EvidenceType::Acknowledgement,
            actual: task.evidence,
        });
    }
    match task.status {
        TaskStatus::Pending | TaskStatus::InProgress => {}
        TaskStatus::Blocked => return Err(blocked(state, task)),
        TaskStatus::Completed => {
            return Err(CommandError::IllegalTaskMove {
                task: id.as_uuid(),
                from: task.status,
                to: TaskStatus::Completed,
            });
        }
    }
    if on_behalf && reason.is_none() {
        return Err(CommandError::ReasonRequired);
    }
    let actor = principal.actor();
    let now = ctx.now;
    let (next, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.status = TaskStatus::Completed;
            t.completed_at = Some(now);
            t.completed_by = Some(actor);
            t.completion_reason = reason.cloned();
        }
    });
    let mut details = status_details(state, &next, id);
    details["from"] = json!(task.status);
    if let Some(r) = reason {
        details["reason"] = json!(r);
        details["on_behalf_of_client"] = json!(on_behalf);
    }
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskCompleted,
        format!("Task {} completed", task.title),
        details,
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Reopens a completed task of an active portal: it becomes `pending` (or `blocked` if a
/// dependency of its own has been reopened since), and its dependents that are not completed
/// become `blocked`. Completed dependents stay completed.
pub fn reopen_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::ManageTask, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    if task.status != TaskStatus::Completed {
        return Err(CommandError::IllegalTaskMove {
            task: id.as_uuid(),
            from: task.status,
            to: TaskStatus::Pending,
        });
    }
    let (next, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.status = TaskStatus::Pending;
            t.completed_at = None;
            t.completed_by = None;
            t.completion_reason = None;
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskReopened,
        format!("Task {} reopened", task.title),
        status_details(state, &next, id),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Blocks a task by hand with a reason (active portals; not a completed task).
pub fn block_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
    reason: &Reason,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::ManageTask, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    if task.is_completed() {
        return Err(CommandError::IllegalTaskMove {
            task: id.as_uuid(),
            from: task.status,
            to: TaskStatus::Blocked,
        });
    }
    let r = reason.clone();
    let (_, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.block_reason = Some(r);
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskBlocked,
        format!("Task {} blocked by hand", task.title),
        json!({ "task_id": id, "from": task.status, "reason": reason }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Lifts a manual block. The task stays `blocked` while a dependency is open.
pub fn unblock_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::ManageTask, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    if task.block_reason.is_none() {
        return Err(CommandError::IllegalTaskMove {
            task: id.as_uuid(),
            from: task.status,
            to: TaskStatus::Pending,
        });
    }
    let (next, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.block_reason = None;
        }
    });
    let to = next.task(id).map_or(TaskStatus::Pending, |t| t.status);
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskUnblocked,
        format!("Manual block of task {} lifted", task.title),
        json!({ "task_id": id, "to": to }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

fn check_assignee(state: &PortalState, assignee: Option<&StaffUser>) -> Result<(), CommandError> {
    match assignee {
        Some(u) if u.tenant_id != state.portal.tenant_id || !u.active => Err(CommandError::NotFound {
            entity: "staff user",
            id: u.id.as_uuid(),
        }),
        _ => Ok(()),
    }
}

fn require_open(state: &PortalState) -> Result<(), CommandError> {
    match state.portal.status {
        PortalStatus::Draft | PortalStatus::Active => Ok(()),
        actual => Err(CommandError::PortalStatus {
            required: PortalStatus::Active,
            actual,
        }),
    }
}

/// Assigns a task to a staff user of the tenant, or unassigns it (`None`). Draft or active portals.
pub fn assign_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
    assignee: Option<&StaffUser>,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::ManageTask, Some(expected_version))?;
    require_open(state)?;
    check_assignee(state, assignee)?;
    let to = assignee.map(|u| u.id);
    let (_, writes) = change_tasks(state, |tasks| {
        if let Some(t) = task_mut(tasks, id) {
            t.assignee = to;
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TaskAssigned,
        match assignee {
            Some(u) => format!("Task {} assigned to {}", task.title, u.email),
            None => format!("Task {} unassigned", task.title),
        },
        json!({ "task_id": id, "from": task.assignee, "to": to }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Reassigns many tasks at once, all or nothing (TSK-4): an unknown, repeated or foreign task id
/// refuses the whole request.
pub fn bulk_reassign(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    ids: &[TaskId],
    assignee: Option<&StaffUser>,
) -> Result<Outcome, CommandError> {
    allow(principal, Action::ManageTask, &portal_resource(&state.portal))?;
    require_open(state)?;
    if ids.is_empty() {
        return Err(CommandError::EmptyList {
            what: "tasks to reassign",
        });
    }
    if ids.len() > MAX_TASKS {
        return Err(CommandError::TooMany {
            what: "tasks to reassign",
            max: MAX_TASKS,
            actual: ids.len(),
        });
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        target(principal, state, *id, Action::ManageTask, None)?;
        if !seen.insert(*id) {
            return Err(CommandError::DuplicateId {
                entity: "task",
                id: id.as_uuid(),
            });
        }
    }
    check_assignee(state, assignee)?;
    let to = assignee.map(|u| u.id);
    let (_, writes) = change_tasks(state, |tasks| {
        for t in tasks.iter_mut().filter(|t| seen.contains(&t.id)) {
            t.assignee = to;
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::TasksReassigned,
        match assignee {
            Some(u) => format!("{} task(s) reassigned to {}", ids.len(), u.email),
            None => format!("{} task(s) unassigned", ids.len()),
        },
        json!({ "task_ids": ids, "to": to }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Ticks or unticks a checklist item of a task in an active portal.
pub fn set_checklist_item(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
    item: ChecklistItemId,
    done: bool,
) -> Result<Outcome, CommandError> {
    let task = target(principal, state, id, Action::WorkOnTask, Some(expected_version))?;
    require_status(state, PortalStatus::Active)?;
    let Some(current) = task.checklist.iter().find(|i| i.id == item) else {
        return Err(CommandError::NotFound {
            entity: "checklist item",
            id: item.as_uuid(),
        });
    };
    let (_, writes) = change_tasks(state, |tasks| {
        if let Some(i) = task_mut(tasks, id).and_then(|t| t.checklist.iter_mut().find(|i| i.id == item)) {
            i.done = done;
        }
    });
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        EventKind::ChecklistUpdated,
        format!(
            "Checklist item \"{}\" of task {} {}",
            current.text,
            task.title,
            if done { "done" } else { "not done" }
        ),
        json!({ "task_id": id, "item_id": item, "done": done }),
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Adds a comment to a task's thread, optionally marked as a question (TSK-7).
pub fn add_comment(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    body: CommentBody,
    is_question: bool,
) -> Result<(Comment, Outcome), CommandError> {
    let task = target(principal, state, id, Action::CommentOnTask, None)?;
    if state.portal.status == PortalStatus::Archived {
        return Err(CommandError::PortalStatus {
            required: PortalStatus::Active,
            actual: state.portal.status,
        });
    }
    let comment = Comment {
        id: ctx.ids.next_id(),
        tenant_id: state.portal.tenant_id,
        portal_id: state.portal.id,
        task_id: id,
        author: principal.actor(),
        body,
        is_question,
        created_at: ctx.now,
    };
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        if is_question {
            EventKind::QuestionAsked
        } else {
            EventKind::CommentAdded
        },
        format!(
            "{} on task {}",
            if is_question { "Question" } else { "Comment" },
            task.title
        ),
        json!({ "task_id": id, "comment_id": comment.id, "is_question": is_question }),
    );
    Ok((
        comment.clone(),
        Outcome {
            writes: vec![Write::InsertComment(comment)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}
