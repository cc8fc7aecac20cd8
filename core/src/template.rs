//! Onboarding templates (ONB-1): ordered phases of ordered tasks, validated as one document.
//!
//! Tasks of a template refer to each other by a *key*, a short name unique within the template
//! (`"sign-msa"`), so a whole template can be written as one JSON document with its dependencies.
//! Keys map to stable [`TemplateTaskId`]s: replacing a template keeps the id of every task whose
//! key is still there.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CommandError, ValueError};
use crate::graph;
use crate::id::{IdGen, SurveyQuestionId, TemplateId, TemplatePhaseId, TemplateTaskId, TenantId};
use crate::portal::{
    MAX_CHECKLIST_ITEMS, MAX_DEPENDENCIES, MAX_PHASES, MAX_SURVEY_OPTIONS, MAX_SURVEY_QUESTIONS, MAX_TASKS,
};
use crate::task::{EvidenceType, SurveyKind, SurveyQuestion, TaskOwner};
use crate::value::{DayOffset, Description, ItemText, Name, Priority, Title};

/// A template task's key: 1 to 64 characters of ASCII letters, digits, `-`, `_` and `.`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$", example = "sign-msa")
)]
#[serde(transparent)]
pub struct TaskKey(String);

impl TaskKey {
    /// Longest key accepted.
    pub const MAX_CHARS: usize = 64;

    /// Checks the key's characters and length.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.is_empty() {
            return Err(ValueError::Empty { field: "key" });
        }
        if raw.len() > Self::MAX_CHARS {
            return Err(ValueError::TooLong {
                field: "key",
                max: Self::MAX_CHARS,
                actual: raw.chars().count(),
            });
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ValueError::InvalidCharacters {
                field: "key",
                allowed: "ASCII letters, digits, `-`, `_` and `.`",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TaskKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// Id.
    pub id: TemplateId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Name.
    pub name: Name,
    /// Description.
    pub description: Description,
    /// Ordered phases.
    pub phases: Vec<TemplatePhase>,
    /// Compare-and-set version: a template is edited as one document.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Template {
    /// Every task, in order.
    pub fn tasks(&self) -> impl Iterator<Item = &TemplateTask> {
        self.phases.iter().flat_map(|p| p.tasks.iter())
    }
}

/// A phase of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatePhase {
    /// Id.
    pub id: TemplatePhaseId,
    /// Name.
    pub name: Name,
    /// Description.
    pub description: Description,
    /// Ordered tasks.
    pub tasks: Vec<TemplateTask>,
}

/// A task of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateTask {
    /// Id.
    pub id: TemplateTaskId,
    /// Key, unique within the template.
    pub key: TaskKey,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// MSP or client.
    pub owner: TaskOwner,
    /// Evidence type.
    pub evidence: EvidenceType,
    /// Priority.
    pub priority: Priority,
    /// Days after activation it falls due.
    pub due_offset: Option<DayOffset>,
    /// Ordered checklist texts.
    pub checklist: Vec<ItemText>,
    /// Tasks of the same template that must be completed first, sorted by id.
    pub depends_on: Vec<TemplateTaskId>,
    /// Survey questions.
    pub survey: Vec<SurveyQuestion>,
}

/// A template as written by a person: the whole document, referring to tasks by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateInput {
    /// Name.
    pub name: Name,
    /// Description.
    #[serde(default = "Description::empty")]
    pub description: Description,
    /// Ordered phases.
    pub phases: Vec<TemplatePhaseInput>,
}

/// A phase of a [`TemplateInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatePhaseInput {
    /// Name.
    pub name: Name,
    /// Description.
    #[serde(default = "Description::empty")]
    pub description: Description,
    /// Ordered tasks.
    pub tasks: Vec<TemplateTaskInput>,
}

/// A task of a [`TemplateInput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateTaskInput {
    /// Key, unique within the template.
    pub key: TaskKey,
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
    /// Keys of tasks of the same template that must be completed first.
    #[serde(default)]
    pub depends_on: Vec<TaskKey>,
    /// Survey questions.
    #[serde(default)]
    pub survey: Vec<SurveyQuestionInput>,
}

/// A survey question as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SurveyQuestionInput {
    /// The question.
    pub text: ItemText,
    /// Its kind.
    pub kind: SurveyKind,
    /// Options of a choice question.
    #[serde(default)]
    pub options: Vec<ItemText>,
}

impl Description {
    /// The empty description.
    #[must_use]
    pub fn empty() -> Self {
        Self::parse("").unwrap_or_else(|_| unreachable!("an empty description is valid"))
    }
}

impl Priority {
    /// `normal`, the default priority.
    #[must_use]
    pub const fn default_normal() -> Self {
        Self::Normal
    }
}

fn limit(what: &'static str, max: usize, actual: usize) -> Result<(), CommandError> {
    if actual > max {
        Err(CommandError::TooMany { what, max, actual })
    } else {
        Ok(())
    }
}

pub(crate) fn check_survey(questions: &[SurveyQuestionInput]) -> Result<(), CommandError> {
    limit("survey questions", MAX_SURVEY_QUESTIONS, questions.len())?;
    for q in questions {
        limit("survey options", MAX_SURVEY_OPTIONS, q.options.len())?;
        let needs_options = matches!(q.kind, SurveyKind::SingleChoice | SurveyKind::MultipleChoice);
        if needs_options && q.options.len() < 2 {
            return Err(CommandError::EmptyList {
                what: "options of a choice question (at least two)",
            });
        }
    }
    Ok(())
}

pub(crate) fn build_survey(ids: &mut IdGen, questions: &[SurveyQuestionInput]) -> Vec<SurveyQuestion> {
    questions
        .iter()
        .map(|q| SurveyQuestion {
            id: ids.next_id::<SurveyQuestionId>(),
            text: q.text.clone(),
            kind: q.kind,
            options: if matches!(q.kind, SurveyKind::SingleChoice | SurveyKind::MultipleChoice) {
                q.options.clone()
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// Validates a template document and turns it into phases and tasks with ids.
///
/// Ids of phases are kept by position and ids of tasks by key from `previous` (when replacing a
/// template) so that references to them stay meaningful; new ones come from `ids`.
pub fn build_phases(
    input: &TemplateInput,
    previous: Option<&Template>,
    ids: &mut IdGen,
) -> Result<Vec<TemplatePhase>, CommandError> {
    limit("phases", MAX_PHASES, input.phases.len())?;
    let total: usize = input.phases.iter().map(|p| p.tasks.len()).sum();
    limit("tasks", MAX_TASKS, total)?;

    let old_task_ids: HashMap<&TaskKey, TemplateTaskId> = previous
        .map(|t| t.tasks().map(|task| (&task.key, task.id)).collect())
        .unwrap_or_default();
    let mut key_ids: HashMap<&TaskKey, TemplateTaskId> = HashMap::with_capacity(total);
    for task in input.phases.iter().flat_map(|p| &p.tasks) {
        let id = old_task_ids.get(&task.key).copied().unwrap_or_else(|| ids.next_id());
        if key_ids.insert(&task.key, id).is_some() {
            return Err(CommandError::DuplicateKey {
                key: task.key.to_string(),
            });
        }
    }

    let mut phases = Vec::with_capacity(input.phases.len());
    for (i, phase) in input.phases.iter().enumerate() {
        let id = previous
            .and_then(|t| t.phases.get(i))
            .map_or_else(|| ids.next_id(), |p| p.id);
        let mut tasks = Vec::with_capacity(phase.tasks.len());
        for task in &phase.tasks {
            limit("checklist items", MAX_CHECKLIST_ITEMS, task.checklist.len())?;
            limit("dependencies", MAX_DEPENDENCIES, task.depends_on.len())?;
            check_survey(&task.survey)?;
            let id = key_ids[&task.key];
            let mut depends_on = Vec::with_capacity(task.depends_on.len());
            let mut seen = HashSet::with_capacity(task.depends_on.len());
            for dep in &task.depends_on {
                let Some(&dep_id) = key_ids.get(dep) else {
                    return Err(CommandError::UnknownDependencyKey {
                        task: task.key.to_string(),
                        depends_on: dep.to_string(),
                    });
                };
                if seen.insert(dep_id) {
                    depends_on.push(dep_id);
                }
            }
            // A set of dependencies: kept sorted so every store returns it the same way.
            depends_on.sort();
            tasks.push(TemplateTask {
                id,
                key: task.key.clone(),
                title: task.title.clone(),
                description: task.description.clone(),
                owner: task.owner,
                evidence: task.evidence,
                priority: task.priority,
                due_offset: task.due_offset,
                checklist: task.checklist.clone(),
                depends_on,
                survey: build_survey(ids, &task.survey),
            });
        }
        phases.push(TemplatePhase {
            id,
            name: phase.name.clone(),
            description: phase.description.clone(),
            tasks,
        });
    }
    graph::check(
        phases
            .iter()
            .flat_map(|p| p.tasks.iter())
            .map(|t| (t.id, t.depends_on.as_slice())),
    )?;
    Ok(phases)
}
