//! Editing a portal's phases and tasks (ONB-4). Structure (phases, tasks, ownership, evidence,
//! dependencies, checklists, surveys) changes only in `draft`; title, description, priority and
//! due date may also change while the portal is `active`. Every edit re-checks the dependency
//! graph.
//!
//! Deleting a task that others depend on removes those dependency edges (the dependents may
//! become unblocked); deleting a phase deletes its tasks the same way.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::portal::{portal_resource, scope};
use super::task::{derive_statuses, diff_portal, task_resource};
use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::error::CommandError;
use crate::graph;
use crate::id::{PhaseId, TaskId};
use crate::lifecycle::PortalStatus;
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal};
use crate::portal::{MAX_CHECKLIST_ITEMS, MAX_DEPENDENCIES, MAX_PHASES, MAX_TASKS, Phase, Portal, PortalState};
use crate::task::{ChecklistItem, EvidenceType, Task, TaskOwner, TaskStatus};
use crate::template::{SurveyQuestionInput, build_survey, check_survey};
use crate::value::{DayOffset, Description, ItemText, Name, Priority, Title};

/// A new task for a draft portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInput {
    /// Title.
    pub title: Title,
    /// Description.
    #[serde(default = "Description::empty")]
    pub description: Description,
    /// MSP or client.
    pub owner: TaskOwner,
    /// Evidence type.
    pub evidence: EvidenceType,
    /// Priority.
    #[serde(default = "Priority::default_normal")]
    pub priority: Priority,
    /// Days after activation it falls due.
    #[serde(default)]
    pub due_offset: Option<DayOffset>,
    /// Ordered checklist texts.
    #[serde(default)]
    pub checklist: Vec<ItemText>,
    /// Tasks of the same portal that must be completed first.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
    /// Survey questions.
    #[serde(default)]
    pub survey: Vec<SurveyQuestionInput>,
}

/// Changes to a task; `None` leaves a field as it is. Only the first four may change in an active
/// portal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskPatch {
    /// New title.
    pub title: Option<Title>,
    /// New description.
    pub description: Option<Description>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New due date (`Some(None)` clears it).
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<chrono::NaiveDate>))]
    pub due_date: Option<Option<chrono::NaiveDate>>,
    /// New owner (draft only).
    pub owner: Option<TaskOwner>,
    /// New evidence type (draft only).
    pub evidence: Option<EvidenceType>,
    /// New due offset (draft only; `Some(None)` clears it).
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<DayOffset>))]
    pub due_offset: Option<Option<DayOffset>>,
    /// New dependencies (draft only).
    pub depends_on: Option<Vec<TaskId>>,
    /// New checklist (draft only); items whose text is unchanged keep their id and done flag.
    pub checklist: Option<Vec<ItemText>>,
    /// New survey (draft only).
    pub survey: Option<Vec<SurveyQuestionInput>>,
}

impl TaskPatch {
    fn touches_structure(&self) -> bool {
        self.owner.is_some()
            || self.evidence.is_some()
            || self.due_offset.is_some()
            || self.depends_on.is_some()
            || self.checklist.is_some()
            || self.survey.is_some()
    }
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn require_draft(state: &PortalState) -> Result<(), CommandError> {
    if state.portal.status == PortalStatus::Draft {
        Ok(())
    } else {
        Err(CommandError::PortalStatus {
            required: PortalStatus::Draft,
            actual: state.portal.status,
        })
    }
}

fn draft_edit(principal: &Principal, state: &PortalState) -> Result<(), CommandError> {
    allow(principal, Action::EditPortal, &portal_resource(&state.portal))?;
    require_draft(state)
}

/// Positions follow the order of the vectors: each command edits `phases` and `tasks` in the
/// order it wants, and this derives the stored positions from it.
fn renumber(next: &mut PortalState) {
    for (i, p) in next.phases.iter_mut().enumerate() {
        p.position = i as i32;
    }
    let phases: Vec<PhaseId> = next.phases.iter().map(|p| p.id).collect();
    for phase in phases {
        for (i, t) in next.tasks.iter_mut().filter(|t| t.phase_id == phase).enumerate() {
            t.position = i as i32;
        }
    }
}

/// Validates the edited portal, re-derives statuses and builds the outcome.
fn finish(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    mut next: PortalState,
    kind: EventKind,
    summary: String,
    details: serde_json::Value,
) -> Result<Outcome, CommandError> {
    if next.phases.len() > MAX_PHASES {
        return Err(CommandError::TooMany {
            what: "phases",
            max: MAX_PHASES,
            actual: next.phases.len(),
        });
    }
    if next.tasks.len() > MAX_TASKS {
        return Err(CommandError::TooMany {
            what: "tasks",
            max: MAX_TASKS,
            actual: next.tasks.len(),
        });
    }
    graph::check(next.tasks.iter().map(|t| (t.id, t.depends_on.as_slice())))?;
    renumber(&mut next);
    next.sort();
    derive_statuses(&mut next.tasks);
    let writes = diff_portal(state, &next);
    let ev = ctx.event(
        principal,
        state.portal.tenant_id,
        scope(&state.portal),
        kind,
        summary,
        details,
    );
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

fn insert_at<T>(items: &mut Vec<T>, position: Option<usize>, item: T) {
    let at = position.unwrap_or(items.len()).min(items.len());
    items.insert(at, item);
}

/// Adds a phase at `position` (the end when `None`).
pub fn add_phase(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    name: Name,
    description: Description,
    position: Option<usize>,
) -> Result<(PhaseId, Outcome), CommandError> {
    draft_edit(principal, state)?;
    let phase = Phase {
        id: ctx.ids.next_id(),
        tenant_id: state.portal.tenant_id,
        portal_id: state.portal.id,
        position: 0,
        name,
        description,
        version: 1,
    };
    let id = phase.id;
    let mut next = state.clone();
    insert_at(&mut next.phases, position, phase.clone());
    let summary = format!("Phase {} added", phase.name);
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::PhaseAdded,
        summary,
        json!({ "phase_id": id }),
    )
    .map(|o| (id, o))
}

/// Renames a phase or changes its description.
pub fn update_phase(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: PhaseId,
    expected_version: i64,
    name: Name,
    description: Description,
) -> Result<Outcome, CommandError> {
    draft_edit(principal, state)?;
    let phase = state.phase(id).ok_or(CommandError::NotFound {
        entity: "phase",
        id: id.as_uuid(),
    })?;
    check_version("phase", id.as_uuid(), expected_version, phase.version)?;
    let summary = format!("Phase {name} updated");
    let details = json!({ "phase_id": id, "before": phase.name, "after": name });
    let mut next = state.clone();
    if let Some(p) = next.phases.iter_mut().find(|p| p.id == id) {
        p.name = name;
        p.description = description;
    }
    finish(principal, ctx, state, next, EventKind::PhaseUpdated, summary, details)
}

/// Deletes a phase with its tasks; dependency edges to those tasks are removed.
pub fn delete_phase(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: PhaseId,
) -> Result<Outcome, CommandError> {
    draft_edit(principal, state)?;
    let phase = state.phase(id).ok_or(CommandError::NotFound {
        entity: "phase",
        id: id.as_uuid(),
    })?;
    let mut next = state.clone();
    next.phases.retain(|p| p.id != id);
    let gone: Vec<TaskId> = next.tasks.iter().filter(|t| t.phase_id == id).map(|t| t.id).collect();
    next.tasks.retain(|t| t.phase_id != id);
    for t in &mut next.tasks {
        t.depends_on.retain(|d| !gone.contains(d));
    }
    let summary = format!("Phase {} deleted with {} task(s)", phase.name, gone.len());
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::PhaseDeleted,
        summary,
        json!({ "phase_id": id, "deleted_tasks": gone }),
    )
}

/// Puts the phases in the given order, which must list each phase exactly once.
pub fn reorder_phases(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    order: &[PhaseId],
) -> Result<Outcome, CommandError> {
    draft_edit(principal, state)?;
    let bad = || CommandError::BadOrder {
        entity: "phase",
        expected: state.phases.len(),
    };
    if order.len() != state.phases.len() {
        return Err(bad());
    }
    let mut next = state.clone();
    next.phases.clear();
    for id in order {
        let p = state.phase(*id).ok_or_else(bad)?;
        if next.phases.iter().any(|q| q.id == *id) {
            return Err(bad());
        }
        next.phases.push(p.clone());
    }
    let mut outcome = finish(
        principal,
        ctx,
        state,
        next,
        EventKind::PhasesReordered,
        "Phases reordered".to_owned(),
        json!({ "order": order }),
    )?;
    // The order of phases is the portal's own: a reorder moves the portal's version, so two
    // reorders made from the same read cannot both win.
    let portal = Portal {
        version: state.portal.version + 1,
        updated_at: ctx.now,
        ..state.portal.clone()
    };
    outcome.writes.push(Write::UpdatePortal {
        portal,
        expected_version: state.portal.version,
    });
    Ok(outcome)
}

fn check_task_lists(checklist: usize, depends_on: usize) -> Result<(), CommandError> {
    if checklist > MAX_CHECKLIST_ITEMS {
        return Err(CommandError::TooMany {
            what: "checklist items",
            max: MAX_CHECKLIST_ITEMS,
            actual: checklist,
        });
    }
    if depends_on > MAX_DEPENDENCIES {
        return Err(CommandError::TooMany {
            what: "dependencies",
            max: MAX_DEPENDENCIES,
            actual: depends_on,
        });
    }
    Ok(())
}

fn dedup(ids: &[TaskId]) -> Vec<TaskId> {
    let mut v = ids.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Adds a task to a phase at `position` (the end when `None`).
pub fn add_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    phase: PhaseId,
    input: &TaskInput,
    position: Option<usize>,
) -> Result<(TaskId, Outcome), CommandError> {
    draft_edit(principal, state)?;
    if state.phase(phase).is_none() {
        return Err(CommandError::NotFound {
            entity: "phase",
            id: phase.as_uuid(),
        });
    }
    check_task_lists(input.checklist.len(), input.depends_on.len())?;
    check_survey(&input.survey)?;
    let task = Task {
        id: ctx.ids.next_id(),
        tenant_id: state.portal.tenant_id,
        portal_id: state.portal.id,
        phase_id: phase,
        position: 0,
        title: input.title.clone(),
        description: input.description.clone(),
        owner: input.owner,
        evidence: input.evidence,
        priority: input.priority,
        due_offset: input.due_offset,
        due_date: None,
        status: TaskStatus::Pending,
        block_reason: None,
        assignee: None,
        depends_on: dedup(&input.depends_on),
        checklist: input
            .checklist
            .iter()
            .map(|text| ChecklistItem {
                id: ctx.ids.next_id(),
                text: text.clone(),
                done: false,
            })
            .collect(),
        survey: build_survey(&mut ctx.ids, &input.survey),
        completed_at: None,
        completed_by: None,
        completion_reason: None,
        version: 1,
    };
    let id = task.id;
    let mut next = state.clone();
    let summary = format!("Task {} added", task.title);
    // Insert among the phase's tasks at the requested position, keeping the other phases as they are.
    let in_phase: Vec<usize> = next
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.phase_id == phase)
        .map(|(i, _)| i)
        .collect();
    let at = match position {
        Some(p) if p < in_phase.len() => in_phase[p],
        _ => in_phase.last().map_or(next.tasks.len(), |i| i + 1),
    };
    next.tasks.insert(at, task);
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::TaskAdded,
        summary,
        json!({ "task_id": id, "phase_id": phase }),
    )
    .map(|o| (id, o))
}

/// Edits a task. Structural fields need a draft portal; title, description, priority and due
/// date may also change in an active one.
pub fn update_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    expected_version: i64,
    patch: &TaskPatch,
) -> Result<Outcome, CommandError> {
    let task = state.task(id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })?;
    allow(principal, Action::EditPortal, &task_resource(state, task))?;
    check_version("task", id.as_uuid(), expected_version, task.version)?;
    match state.portal.status {
        PortalStatus::Draft => {}
        PortalStatus::Active if !patch.touches_structure() => {}
        _ => require_draft(state)?,
    }
    if let Some(c) = &patch.checklist {
        check_task_lists(c.len(), 0)?;
    }
    if let Some(d) = &patch.depends_on {
        check_task_lists(0, d.len())?;
    }
    if let Some(s) = &patch.survey {
        check_survey(s)?;
    }
    let mut next = state.clone();
    let mut changed = Vec::new();
    if let Some(t) = next.tasks.iter_mut().find(|t| t.id == id) {
        macro_rules! set {
            ($field:ident, $value:expr) => {{
                let v = $value;
                if t.$field != v {
                    t.$field = v;
                    changed.push(stringify!($field));
                }
            }};
        }
        if let Some(v) = &patch.title {
            set!(title, v.clone());
        }
        if let Some(v) = &patch.description {
            set!(description, v.clone());
        }
        if let Some(v) = patch.priority {
            set!(priority, v);
        }
        if let Some(v) = patch.due_date {
            set!(due_date, v);
        }
        if let Some(v) = patch.owner {
            set!(owner, v);
        }
        if let Some(v) = patch.evidence {
            set!(evidence, v);
        }
        if let Some(v) = patch.due_offset {
            set!(due_offset, v);
        }
        if let Some(v) = &patch.depends_on {
            set!(depends_on, dedup(v));
        }
        if let Some(texts) = &patch.checklist {
            let old = std::mem::take(&mut t.checklist);
            let items: Vec<ChecklistItem> = texts
                .iter()
                .map(|text| {
                    old.iter()
                        .find(|i| &i.text == text)
                        .cloned()
                        .unwrap_or_else(|| ChecklistItem {
                            id: ctx.ids.next_id(),
                            text: text.clone(),
                            done: false,
                        })
                })
                .collect();
            if items != old {
                changed.push("checklist");
            }
            t.checklist = items;
        }
        if let Some(s) = &patch.survey {
            t.survey = build_survey(&mut ctx.ids, s);
            changed.push("survey");
        }
    }
    let summary = format!("Task {} updated", task.title);
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::TaskUpdated,
        summary,
        json!({ "task_id": id, "fields": changed }),
    )
}

/// Deletes a task; dependency edges to it are removed.
pub fn delete_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
) -> Result<Outcome, CommandError> {
    draft_edit(principal, state)?;
    let task = state.task(id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })?;
    let mut next = state.clone();
    next.tasks.retain(|t| t.id != id);
    let mut unlinked = Vec::new();
    for t in &mut next.tasks {
        if t.depends_on.contains(&id) {
            t.depends_on.retain(|d| *d != id);
            unlinked.push(t.id);
        }
    }
    let summary = format!("Task {} deleted", task.title);
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::TaskDeleted,
        summary,
        json!({ "task_id": id, "dependents_unlinked": unlinked }),
    )
}

/// Moves a task to `position` within `phase` (its own or another).
pub fn move_task(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: TaskId,
    phase: PhaseId,
    position: usize,
) -> Result<Outcome, CommandError> {
    draft_edit(principal, state)?;
    let task = state.task(id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })?;
    if state.phase(phase).is_none() {
        return Err(CommandError::NotFound {
            entity: "phase",
            id: phase.as_uuid(),
        });
    }
    let mut next = state.clone();
    let Some(from) = next.tasks.iter().position(|t| t.id == id) else {
        return Err(CommandError::NotFound {
            entity: "task",
            id: id.as_uuid(),
        });
    };
    let mut moving = next.tasks.remove(from);
    moving.phase_id = phase;
    let in_phase: Vec<usize> = next
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.phase_id == phase)
        .map(|(i, _)| i)
        .collect();
    let at = match in_phase.get(position) {
        Some(&i) => i,
        None => in_phase.last().map_or(next.tasks.len(), |i| i + 1),
    };
    next.tasks.insert(at, moving);
    let summary = format!("Task {} moved", task.title);
    finish(
        principal,
        ctx,
        state,
        next,
        EventKind::TasksReordered,
        summary,
        json!({ "task_id": id, "from_phase": task.phase_id, "to_phase": phase, "position": position }),
    )
}
