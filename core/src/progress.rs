//! Progress of a portal and derived phase status (ONB-7), with due states (TSK-2): one pass over
//! the tasks.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::id::PhaseId;
use crate::portal::{Phase, PortalState};
use crate::task::{DueState, Task, TaskStatus, due_state};

/// Derived status of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    /// No task started (none in progress or completed), or no task at all.
    NotStarted,
    /// Some work done, not all.
    InProgress,
    /// Every task completed (and at least one task).
    Completed,
}

crate::string_enum!(PhaseStatus {
    NotStarted => "not_started",
    InProgress => "in_progress",
    Completed => "completed",
});

/// Task counts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    /// Pending.
    pub pending: usize,
    /// In progress.
    pub in_progress: usize,
    /// Completed.
    pub completed: usize,
    /// Blocked.
    pub blocked: usize,
}

impl StatusCounts {
    fn add(&mut self, s: TaskStatus) {
        match s {
            TaskStatus::Pending => self.pending += 1,
            TaskStatus::InProgress => self.in_progress += 1,
            TaskStatus::Completed => self.completed += 1,
            TaskStatus::Blocked => self.blocked += 1,
        }
    }

    /// All tasks counted.
    #[must_use]
    pub const fn total(&self) -> usize {
        self.pending + self.in_progress + self.completed + self.blocked
    }
}

/// Task counts by due state; tasks without a due date are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DueCounts {
    /// Due later, or completed.
    pub ok: usize,
    /// Due within 3 days.
    pub due_soon: usize,
    /// Overdue.
    pub overdue: usize,
}

/// Percentage of completed tasks, rounded down; 0 for no tasks.
#[must_use]
pub fn percent(completed: usize, total: usize) -> u8 {
    // completed ≤ total, so the quotient is at most 100.
    (completed.min(total) * 100)
        .checked_div(total)
        .map_or(0, |p| u8::try_from(p).unwrap_or(100))
}

/// Progress of one phase: "N of M completed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhaseProgress {
    /// The phase.
    pub phase_id: PhaseId,
    /// Derived status.
    pub status: PhaseStatus,
    /// Counts by status.
    pub counts: StatusCounts,
    /// Completed share, rounded down.
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub percent: u8,
}

/// Progress of a portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    /// Completed share of all tasks, rounded down; 100 exactly when every task is completed.
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub percent: u8,
    /// Counts by status.
    pub counts: StatusCounts,
    /// Counts by due state.
    pub due: DueCounts,
    /// Each phase, in order.
    pub phases: Vec<PhaseProgress>,
    /// The day ("today" in the tenant's time zone) the due states were reckoned for (TSK-2).
    pub as_of: NaiveDate,
}

fn phase_status(c: &StatusCounts) -> PhaseStatus {
    if c.total() > 0 && c.completed == c.total() {
        PhaseStatus::Completed
    } else if c.completed > 0 || c.in_progress > 0 {
        PhaseStatus::InProgress
    } else {
        PhaseStatus::NotStarted
    }
}

/// Progress, phase statuses and due counts in one pass over `tasks`.
#[must_use]
pub fn progress(phases: &[Phase], tasks: &[Task], today: NaiveDate) -> Progress {
    let index: HashMap<PhaseId, usize> = phases.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let mut per_phase = vec![StatusCounts::default(); phases.len()];
    let mut counts = StatusCounts::default();
    let mut due = DueCounts::default();
    for t in tasks {
        counts.add(t.status);
        if let Some(&i) = index.get(&t.phase_id) {
            per_phase[i].add(t.status);
        }
        match due_state(t.due_date, t.status, today) {
            Some(DueState::Ok) => due.ok += 1,
            Some(DueState::DueSoon) => due.due_soon += 1,
            Some(DueState::Overdue) => due.overdue += 1,
            None => {}
        }
    }
    Progress {
        as_of: today,
        percent: percent(counts.completed, counts.total()),
        counts,
        due,
        phases: phases
            .iter()
            .zip(per_phase)
            .map(|(p, c)| PhaseProgress {
                phase_id: p.id,
                status: phase_status(&c),
                percent: percent(c.completed, c.total()),
                counts: c,
            })
            .collect(),
    }
}

impl PortalState {
    /// [`progress`] of this portal on `today`.
    #[must_use]
    pub fn progress(&self, today: NaiveDate) -> Progress {
        progress(&self.phases, &self.tasks, today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(2, 3), 66);
        assert_eq!(percent(999, 1000), 99);
        assert_eq!(percent(1000, 1000), 100);
    }
}
