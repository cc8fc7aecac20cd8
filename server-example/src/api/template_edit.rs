//! Piecewise edits of a template document (ONB-1), pure: a stored [`Template`] is turned back into
//! the [`TemplateInput`] it was written as, one edit is applied to that document, and the core
//! validates and replaces the whole template (`Engine::replace_template`) with it.
//!
//! Nothing here validates what the core validates (keys, dependencies, cycles, limits); these
//! functions only find what the edit names (unknown phase or key: `CommandError::NotFound`) and
//! keep references between tasks consistent.

use std::collections::HashMap;

use portal_core::error::{CommandError, ValueError};
use portal_core::id::TemplatePhaseId;
use portal_core::template::{
    SurveyQuestionInput, TaskKey, Template, TemplateInput, TemplatePhaseInput, TemplateTaskInput,
};
use portal_core::value::{Description, Name};

/// The document a template was written as: ids of dependencies mapped back to task keys.
///
/// A dependency id naming no task of the template (which a stored template never has) is left
/// out.
pub(crate) fn to_input(template: &Template) -> TemplateInput {
    let keys: HashMap<_, _> = template.tasks().map(|t| (t.id, &t.key)).collect();
    TemplateInput {
        name: template.name.clone(),
        description: template.description.clone(),
        phases: template
            .phases
            .iter()
            .map(|p| TemplatePhaseInput {
                name: p.name.clone(),
                description: p.description.clone(),
                tasks: p
                    .tasks
                    .iter()
                    .map(|t| TemplateTaskInput {
                        key: t.key.clone(),
                        title: t.title.clone(),
                        description: t.description.clone(),
                        owner: t.owner,
                        evidence: t.evidence,
                        priority: t.priority,
                        due_offset: t.due_offset,
                        checklist: t.checklist.clone(),
                        depends_on: t
                            .depends_on
                            .iter()
                            .filter_map(|id| keys.get(id).map(|k| (*k).clone()))
                            .collect(),
                        survey: t
                            .survey
                            .iter()
                            .map(|q| SurveyQuestionInput {
                                text: q.text.clone(),
                                kind: q.kind,
                                options: q.options.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn phase_not_found(id: TemplatePhaseId) -> CommandError {
    CommandError::NotFound {
        entity: "template phase",
        id: id.as_uuid(),
    }
}

fn phase_index_not_found() -> CommandError {
    CommandError::NotFound {
        entity: "template phase",
        id: uuid::Uuid::nil(),
    }
}

fn task_not_found() -> CommandError {
    // A key is not a UUID; a not-found answer shows no id anyway.
    CommandError::NotFound {
        entity: "template task",
        id: uuid::Uuid::nil(),
    }
}

/// Where a new item goes among `len`: `position` (0-based, at most `len`), or the end.
fn insert_at(position: Option<usize>, len: usize) -> Result<usize, CommandError> {
    match position {
        None => Ok(len),
        Some(p) if p <= len => Ok(p),
        Some(p) => Err(CommandError::Value(ValueError::OutOfRange {
            field: "position",
            min: 0,
            max: i64::try_from(len).unwrap_or(i64::MAX),
            actual: i64::try_from(p).unwrap_or(i64::MAX),
        })),
    }
}

/// The position of the phase with `id` in `template`.
pub(crate) fn phase_index(template: &Template, id: TemplatePhaseId) -> Result<usize, CommandError> {
    template
        .phases
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| phase_not_found(id))
}

/// Inserts a phase at `position` (0-based; the end when `None`); returns where it went.
pub(crate) fn insert_phase(
    input: &mut TemplateInput,
    phase: TemplatePhaseInput,
    position: Option<usize>,
) -> Result<usize, CommandError> {
    let at = insert_at(position, input.phases.len())?;
    input.phases.insert(at, phase);
    Ok(at)
}

/// Renames the phase at `index` and sets its description; its tasks stay.
pub(crate) fn update_phase(
    input: &mut TemplateInput,
    index: usize,
    name: Name,
    description: Description,
) -> Result<(), CommandError> {
    let p = input.phases.get_mut(index).ok_or_else(phase_index_not_found)?;
    p.name = name;
    p.description = description;
    Ok(())
}

/// Removes the phase at `index` with its tasks; tasks of other phases stop depending on them.
pub(crate) fn remove_phase(input: &mut TemplateInput, index: usize) -> Result<TemplatePhaseInput, CommandError> {
    if index >= input.phases.len() {
        return Err(phase_index_not_found());
    }
    let removed = input.phases.remove(index);
    let keys: Vec<&TaskKey> = removed.tasks.iter().map(|t| &t.key).collect();
    strip_dependencies(input, &keys);
    Ok(removed)
}

/// Inserts `task` into the phase at `phase` at `position` (0-based; the end when `None`).
pub(crate) fn insert_task(
    input: &mut TemplateInput,
    phase: usize,
    task: TemplateTaskInput,
    position: Option<usize>,
) -> Result<(), CommandError> {
    let p = input.phases.get_mut(phase).ok_or_else(phase_index_not_found)?;
    let at = insert_at(position, p.tasks.len())?;
    p.tasks.insert(at, task);
    Ok(())
}

fn find_task<'i>(input: &'i mut TemplateInput, key: &TaskKey) -> Option<&'i mut TemplateTaskInput> {
    input
        .phases
        .iter_mut()
        .flat_map(|p| p.tasks.iter_mut())
        .find(|t| &t.key == key)
}

/// Replaces the task with `key` by `task`, in place. When `task` has another key, every other
/// task's dependency on the old key follows it to the new one.
pub(crate) fn replace_task(
    input: &mut TemplateInput,
    key: &TaskKey,
    task: TemplateTaskInput,
) -> Result<(), CommandError> {
    let new_key = task.key.clone();
    *find_task(input, key).ok_or_else(task_not_found)? = task;
    if &new_key != key {
        for t in input.phases.iter_mut().flat_map(|p| p.tasks.iter_mut()) {
            if t.key == new_key {
                continue;
            }
            for dep in &mut t.depends_on {
                if dep == key {
                    *dep = new_key.clone();
                }
            }
        }
    }
    Ok(())
}

/// Removes the task with `key`; every other task stops depending on it (ADR 0002).
pub(crate) fn remove_task(input: &mut TemplateInput, key: &TaskKey) -> Result<TemplateTaskInput, CommandError> {
    let removed = input
        .phases
        .iter_mut()
        .find_map(|p| {
            let i = p.tasks.iter().position(|t| &t.key == key)?;
            Some(p.tasks.remove(i))
        })
        .ok_or_else(task_not_found)?;
    strip_dependencies(input, &[key]);
    Ok(removed)
}

fn strip_dependencies(input: &mut TemplateInput, keys: &[&TaskKey]) {
    for t in input.phases.iter_mut().flat_map(|p| p.tasks.iter_mut()) {
        t.depends_on.retain(|d| !keys.contains(&d));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use portal_core::id::{IdGen, TemplateId, TenantId};
    use portal_core::template::build_phases;
    use serde_json::json;

    use super::*;

    fn ids() -> IdGen {
        IdGen::new(
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().unwrap_or_default(),
            [7; 16],
        )
    }

    fn document() -> TemplateInput {
        serde_json::from_value(json!({
            "name": "Onboarding",
            "description": "The usual.",
            "phases": [
                { "name": "Start", "tasks": [
                    { "key": "sign-msa", "title": "Sign the MSA", "owner": "client", "evidence": "signature",
                      "priority": "high", "due_offset": 3 },
                    { "key": "kickoff", "title": "Kickoff", "owner": "msp", "evidence": "meeting",
                      "depends_on": ["sign-msa"], "checklist": ["Agree dates"] },
                ] },
                { "name": "Build", "description": "Set up.", "tasks": [
                    { "key": "survey", "title": "Tell us", "owner": "client", "evidence": "survey",
                      "survey": [{ "text": "Colour?", "kind": "single_choice", "options": ["Red", "Blue"] }] },
                    { "key": "go-live", "title": "Go live", "owner": "msp", "evidence": "none",
                      "depends_on": ["survey", "kickoff", "sign-msa"] },
                ] },
            ],
        }))
        .unwrap_or_else(|e| panic!("the test document parses: {e}"))
    }

    fn template(input: &TemplateInput) -> Template {
        let mut ids = ids();
        let phases = build_phases(input, None, &mut ids).unwrap_or_else(|e| panic!("valid: {e}"));
        Template {
            id: ids.next_id::<TemplateId>(),
            tenant_id: ids.next_id::<TenantId>(),
            name: input.name.clone(),
            description: input.description.clone(),
            phases,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn key(k: &str) -> TaskKey {
        TaskKey::parse(k).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Survey question ids are made afresh on every build (by the core); everything else must
    /// survive, so the rebuilt template takes the original's question ids before comparing.
    fn with_question_ids_of(mut rebuilt: Template, original: &Template) -> Template {
        let questions = |t: &Template| {
            t.tasks()
                .flat_map(|t| t.survey.iter().map(|q| q.id))
                .collect::<Vec<_>>()
        };
        let original_ids = questions(original);
        assert_eq!(original_ids.len(), questions(&rebuilt).len());
        let mut ids = original_ids.into_iter();
        for q in rebuilt
            .phases
            .iter_mut()
            .flat_map(|p| p.tasks.iter_mut())
            .flat_map(|t| t.survey.iter_mut())
        {
            q.id = ids.next().unwrap_or(q.id);
        }
        rebuilt
    }

    #[test]
    fn to_input_then_build_gives_the_same_document() {
        let original = template(&document());
        let input = to_input(&original);
        let mut more_ids = IdGen::new(Utc::now(), [9; 16]);
        let rebuilt = Template {
            phases: build_phases(&input, Some(&original), &mut more_ids).unwrap_or_else(|e| panic!("{e}")),
            ..original.clone()
        };
        assert_eq!(with_question_ids_of(rebuilt, &original), original);
        // Keys come back for dependency ids (in the stored, id-sorted order).
        let go_live = input.phases[1].tasks[1].depends_on.clone();
        let mut expected = vec![key("survey"), key("kickoff"), key("sign-msa")];
        expected.sort_by_key(|k| original.tasks().find(|t| &t.key == k).map(|t| t.id));
        assert_eq!(go_live, expected);
        assert_eq!(to_input(&template(&input)), input);
    }

    #[test]
    fn deleting_a_task_strips_it_from_depends_on() {
        let mut input = to_input(&template(&document()));
        let removed = remove_task(&mut input, &key("sign-msa")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(removed.key, key("sign-msa"));
        assert_eq!(input.phases[0].tasks.len(), 1);
        assert!(input.phases[0].tasks[0].depends_on.is_empty());
        let mut rest = input.phases[1].tasks[1].depends_on.clone();
        rest.sort();
        assert_eq!(rest, vec![key("kickoff"), key("survey")]);
        assert!(build_phases(&input, None, &mut ids()).is_ok());
        assert!(matches!(
            remove_task(&mut input, &key("sign-msa")),
            Err(CommandError::NotFound { .. })
        ));
    }

    #[test]
    fn deleting_a_phase_strips_its_tasks_from_depends_on() {
        let mut input = document();
        let removed = remove_phase(&mut input, 0).map(|p| p.tasks.len());
        assert_eq!(removed.ok(), Some(2));
        assert_eq!(input.phases[0].tasks[1].depends_on, vec![key("survey")]);
        assert!(build_phases(&input, None, &mut ids()).is_ok());
        assert!(matches!(
            remove_phase(&mut input, 1),
            Err(CommandError::NotFound { .. })
        ));
    }

    #[test]
    fn re_keying_a_task_moves_the_dependencies_on_it() {
        let mut input = document();
        let mut task = input.phases[0].tasks[0].clone();
        task.key = key("msa");
        replace_task(&mut input, &key("sign-msa"), task).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.phases[0].tasks[0].key, key("msa"));
        assert_eq!(input.phases[0].tasks[1].depends_on, vec![key("msa")]);
        assert!(input.phases[1].tasks[1].depends_on.contains(&key("msa")));
        assert!(build_phases(&input, None, &mut ids()).is_ok());
        let other = input.phases[0].tasks[0].clone();
        assert!(matches!(
            replace_task(&mut input, &key("nope"), other),
            Err(CommandError::NotFound { .. })
        ));
    }

    #[test]
    fn positions_are_checked() {
        let mut input = document();
        let phase = input.phases[1].clone();
        assert_eq!(insert_phase(&mut input, phase.clone(), Some(0)).ok(), Some(0));
        assert_eq!(insert_phase(&mut input, phase.clone(), None).ok(), Some(3));
        assert!(matches!(
            insert_phase(&mut input, phase, Some(5)),
            Err(CommandError::Value(ValueError::OutOfRange { max: 4, actual: 5, .. }))
        ));
        let mut input = document();
        let mut task = input.phases[0].tasks[0].clone();
        task.key = key("new");
        insert_task(&mut input, 1, task.clone(), Some(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.phases[1].tasks[1].key, key("new"));
        assert!(insert_task(&mut input, 1, task.clone(), Some(9)).is_err());
        assert!(matches!(
            insert_task(&mut input, 7, task, None),
            Err(CommandError::NotFound { .. })
        ));
    }
}
