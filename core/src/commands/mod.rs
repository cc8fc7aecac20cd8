//! The pure commands. Each takes the principal, a [`Ctx`] (now and fresh ids), the current state
//! and the request, checks [`authorize`] first, and returns a
//! [`CommandError`] or an [`Outcome`](crate::outcome::Outcome) for storage to commit. None does I/O.

pub mod access;
pub mod admin;
pub mod contact;
pub mod draft;
pub mod notify;
pub mod portal;
pub mod reminders;
pub mod task;
pub mod template;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use crate::activity::{ActivityEvent, EventKind, clip_summary};
use crate::error::CommandError;
use crate::id::{CompanyId, IdGen, PortalId, TenantId};
use crate::policy::{Action, Principal, Resource, authorize};

/// What a command may know of the world: the time and a source of fresh ids.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Now.
    pub now: DateTime<Utc>,
    /// Ids for the rows and events it makes.
    pub ids: IdGen,
}

impl Ctx {
    /// A context for one command at `now`, with 16 bytes of fresh entropy. `now` is cut to
    /// whole microseconds, the precision every backend stores, so what is written reads back
    /// equal.
    #[must_use]
    pub fn new(now: DateTime<Utc>, entropy: [u8; 16]) -> Self {
        let now = now.trunc_subsecs(6);
        Self {
            now,
            ids: IdGen::new(now, entropy),
        }
    }

    pub(crate) fn event(
        &mut self,
        principal: &Principal,
        tenant_id: TenantId,
        scope: (Option<CompanyId>, Option<PortalId>),
        kind: EventKind,
        summary: String,
        details: Value,
    ) -> ActivityEvent {
        ActivityEvent {
            id: self.ids.next_id(),
            tenant_id,
            company_id: scope.0,
            portal_id: scope.1,
            kind,
            actor: principal.actor(),
            at: self.now,
            summary: clip_summary(summary),
            details,
            erased_by: None,
        }
    }
}

pub(crate) fn allow(principal: &Principal, action: Action, resource: &Resource) -> Result<(), CommandError> {
    authorize(principal, action, resource).map_err(CommandError::Access)
}

pub(crate) fn check_version(
    entity: &'static str,
    id: uuid::Uuid,
    expected: i64,
    actual: i64,
) -> Result<(), CommandError> {
    if expected == actual {
        Ok(())
    } else {
        Err(CommandError::Stale {
            entity,
            id,
            expected,
            actual,
        })
    }
}

#[cfg(test)]
mod invitation_tests;
