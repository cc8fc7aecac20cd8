//! The staff dashboard: the active-onboarding banner (DASH-1) and "my onboarding tasks" (DASH-2).

use serde::{Deserialize, Serialize};

use super::{Engine, ServiceResult};
use crate::commands::allow;
use crate::error::CommandError;
use crate::id::PortalId;
use crate::policy::{AccessDenied, Action, Principal, Resource};
use crate::portal::Portal;
use crate::progress::percent;
use crate::storage::{AssignedTask, AssignedTaskCursor, PageRequest, PortalFilter};
use crate::value::Name;

/// A portal in a list: with its company's name and its progress (DASH-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalSummary {
    /// The portal.
    #[serde(flatten)]
    pub portal: Portal,
    /// Its company's name.
    pub company_name: Name,
    /// All its tasks.
    pub total_tasks: u32,
    /// Its completed tasks.
    pub completed_tasks: u32,
    /// Completed share of all tasks, rounded down (ONB-7).
    pub percent: u8,
}

impl Engine {
    /// Portals the principal may read, with company name and progress, keyset-paged by id. With
    /// the status filter `active` this is the active-onboarding banner (DASH-1).
    pub async fn portal_summaries(
        &self,
        principal: &Principal,
        filter: PortalFilter,
        page: PageRequest<PortalId>,
    ) -> ServiceResult<Vec<PortalSummary>> {
        let portals = self.list_portals(principal, filter, page).await?;
        let tenant = principal.tenant_id();
        let ids: Vec<PortalId> = portals.iter().map(|p| p.id).collect();
        let counts = self.storage.task_counts(tenant, &ids).await?;
        let mut names = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(portals.len());
        for portal in portals {
            let company_name = match names.get(&portal.company_id) {
                Some(n) => Clone::clone(n),
                None => {
                    let Some(c) = self.storage.get_company(tenant, portal.company_id).await? else {
                        continue;
                    };
                    names.insert(c.id, c.name.clone());
                    c.name
                }
            };
            let (total, completed) = counts
                .iter()
                .find(|c| c.portal == portal.id)
                .map_or((0, 0), |c| (c.total, c.completed));
            out.push(PortalSummary {
                portal,
                company_name,
                total_tasks: total,
                completed_tasks: completed,
                percent: percent(completed as usize, total as usize),
            });
        }
        Ok(out)
    }

    /// The signed-in staff user's open tasks across all active portals, by phase order then task
    /// order (DASH-2), keyset-paged.
    pub async fn my_tasks(
        &self,
        principal: &Principal,
        page: PageRequest<AssignedTaskCursor>,
    ) -> ServiceResult<Vec<AssignedTask>> {
        let Principal::Staff(staff) = principal else {
            return Err(CommandError::Access(AccessDenied::OutOfScope).into());
        };
        allow(
            principal,
            Action::ReadTask,
            &Resource::Tenant {
                tenant: staff.tenant_id,
            },
        )?;
        Ok(self
            .storage
            .list_assigned_tasks(staff.tenant_id, staff.user_id, page)
            .await?)
    }
}
