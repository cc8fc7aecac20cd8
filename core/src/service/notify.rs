//! Staff-sent mail about an active portal (MAIL-1, TSK-6): summaries, reminders and meeting
//! invitations, each queued in the outbox in one commit with its `notification_sent` event.

use super::{Engine, ServiceResult, not_found};
use crate::commands::notify::{Meeting, MeetingRequest, NotifyEnv};
use crate::commands::{self};
use crate::id::{ContactId, PhaseId, PortalId, TaskId};
use crate::outcome::Outcome;
use crate::policy::Principal;
use crate::tenant::TenantSettings;

impl Engine {
    async fn tenant_settings(&self, principal: &Principal) -> ServiceResult<TenantSettings> {
        let tenant = principal.tenant_id();
        Ok(self
            .storage
            .get_tenant(tenant)
            .await?
            .ok_or_else(|| not_found("tenant", tenant.as_uuid()))?
            .settings)
    }

    /// Mails a summary of every task (or, with `phase`, of one phase) to the chosen contacts,
    /// all of them when `contacts` is `None`.
    pub async fn send_task_summary(
        &self,
        principal: &Principal,
        portal: PortalId,
        phase: Option<PhaseId>,
        contacts: Option<&[ContactId]>,
    ) -> ServiceResult<Outcome> {
        let settings = self.tenant_settings(principal).await?;
        let company_name = self.company_name_of(principal, portal).await?;
        self.portal_command(principal, portal, |ctx, state| {
            let env = NotifyEnv {
                settings: &settings,
                company_name: &company_name,
            };
            commands::notify::send_task_summary(principal, ctx, state, env, phase, contacts)
        })
        .await
    }

    /// Mails a reminder about one task to the chosen contacts (all when `None`).
    pub async fn send_task_reminder(
        &self,
        principal: &Principal,
        portal: PortalId,
        task: TaskId,
        contacts: Option<&[ContactId]>,
    ) -> ServiceResult<Outcome> {
        let settings = self.tenant_settings(principal).await?;
        let company_name = self.company_name_of(principal, portal).await?;
        self.portal_command(principal, portal, |ctx, state| {
            let env = NotifyEnv {
                settings: &settings,
                company_name: &company_name,
            };
            commands::notify::send_task_reminder(principal, ctx, state, env, task, contacts)
        })
        .await
    }

    /// Invites the chosen contacts (all when `None`) to the meeting of a `meeting` task, or
    /// cancels it; the staff member sending it is the organiser.
    pub async fn send_meeting_invitation(
        &self,
        principal: &Principal,
        portal: PortalId,
        task: TaskId,
        meeting: &MeetingRequest,
        contacts: Option<&[ContactId]>,
    ) -> ServiceResult<Outcome> {
        let Principal::Staff(staff) = principal else {
            return Err(not_found("portal", portal.as_uuid()));
        };
        let organizer = self
            .storage
            .get_staff_user(staff.tenant_id, staff.user_id)
            .await?
            .ok_or_else(|| not_found("staff user", staff.user_id.as_uuid()))?;
        let settings = self.tenant_settings(principal).await?;
        let company_name = self.company_name_of(principal, portal).await?;
        self.portal_command(principal, portal, |ctx, state| {
            let env = NotifyEnv {
                settings: &settings,
                company_name: &company_name,
            };
            let m = Meeting {
                request: meeting,
                organizer_name: &organizer.display_name,
                organizer_email: &organizer.email,
            };
            commands::notify::send_meeting_invitation(principal, ctx, state, env, task, m, contacts)
        })
        .await
    }
}
