//! Automatic reminders, daily digests and notification preferences (BYD-5): the passes a
//! scheduler runs, and the contact's own settings.
//!
//! A pass walks every tenant's active portals (or every contact with digest items waiting) in
//! keyset pages, decides on the state it read, and commits under the portal's write lock only
//! when there is something to send (the decision is made again there, on the current state).
//! Several processes may run passes at once: the ledger and the digest deletes refuse a second
//! writer, whose commit then writes nothing (counted as `raced`).

use std::collections::HashMap;

use super::{Engine, ServiceError, ServiceResult, not_found};
use crate::commands::reminders::{self, PreferenceChange, ReminderEnv};
use crate::error::CommandError;
use crate::id::{PortalId, TenantId};
use crate::notifications::{NotificationPreferences, UnsubscribeToken, digest_boundary};
use crate::outcome::Outcome;
use crate::policy::{Principal, SystemPrincipal};
use crate::tenant::Tenant;

/// Portals (or contacts) read per page of a pass.
const PASS_PAGE: usize = 200;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Portals (reminders) or contacts (digests) looked at.
    pub scanned: usize,
    /// Commits made: portals reminded, digests sent (or dropped with their portal inactive).
    pub committed: usize,
    /// Messages queued.
    pub messages: usize,
    /// Commits refused because another writer did the same first.
    pub raced: usize,
}

fn system(tenant: TenantId, worker: &'static str) -> Principal {
    Principal::System(SystemPrincipal {
        tenant_id: tenant,
        worker,
    })
}

/// Whether a refusal means "someone else got there first" (or the row went away meanwhile).
const fn lost_race(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Command(
            CommandError::AlreadyExists { .. } | CommandError::Stale { .. } | CommandError::NotFound { .. }
        )
    )
}

impl Engine {
    async fn tenant_cached<'a>(
        &self,
        cache: &'a mut HashMap<TenantId, Tenant>,
        id: TenantId,
    ) -> ServiceResult<Option<&'a Tenant>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(id) {
            let Some(t) = self.storage.get_tenant(id).await? else {
                return Ok(None);
            };
            slot.insert(t);
        }
        Ok(cache.get(&id))
    }

    /// Sends the automatic reminders due now in every active portal of every tenant.
    ///
    /// # Errors
    ///
    /// A storage failure; refusals of single portals are counted, not returned.
    pub async fn run_reminders(&self) -> ServiceResult<PassReport> {
        let mut report = PassReport::default();
        let mut tenants = HashMap::new();
        let mut after = None;
        loop {
            let page = self.storage.list_active_portals(after, PASS_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for (tenant_id, portal) in page {
                report.scanned += 1;
                let Some(tenant) = self.tenant_cached(&mut tenants, tenant_id).await?.cloned() else {
                    continue;
                };
                match self.remind_portal(&tenant, portal).await {
                    Ok(Some(o)) => {
                        report.committed += 1;
                        report.messages += o.messages.len();
                    }
                    Ok(None) => {}
                    Err(e) if lost_race(&e) => report.raced += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    /// The reminders of one portal: `None` when nothing is due.
    async fn remind_portal(&self, tenant: &Tenant, portal: PortalId) -> ServiceResult<Option<Outcome>> {
        let principal = system(tenant.id, "reminders");
        let Some(state) = self.storage.load_portal(tenant.id, portal).await? else {
            return Ok(None);
        };
        let company = self
            .storage
            .get_company(tenant.id, state.portal.company_id)
            .await?
            .ok_or_else(|| not_found("company", state.portal.company_id.as_uuid()))?;
        let recorded = self.storage.list_reminder_records(tenant.id, portal).await?;
        let env = ReminderEnv {
            settings: &tenant.settings,
            notifications: &tenant.notification_settings,
            company_name: &company.name,
        };
        // Decide on what was read first: most portals have nothing due, and they cost no write.
        let preview = reminders::due_reminders(&principal, &mut self.ctx(), &state, env, &recorded)?;
        if preview.writes.is_empty() {
            return Ok(None);
        }
        let outcome = self
            .portal_command(&principal, portal, |ctx, state| {
                reminders::due_reminders(&principal, ctx, state, env, &recorded)
            })
            .await?;
        Ok((!outcome.writes.is_empty()).then_some(outcome))
    }

    /// Sends every contact's daily digest that is due now: the items older than the last digest
    /// hour of the contact's tenant.
    ///
    /// # Errors
    ///
    /// A storage failure; refusals of single digests are counted, not returned.
    pub async fn send_digests(&self) -> ServiceResult<PassReport> {
        let mut report = PassReport::default();
        let mut tenants = HashMap::new();
        let now = self.clock.now();
        let mut after = None;
        loop {
            let page = self.storage.list_pending_digests(after, PASS_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.tenant_id, last.contact_id));
            for pending in page {
                report.scanned += 1;
                let Some(tenant) = self.tenant_cached(&mut tenants, pending.tenant_id).await?.cloned() else {
                    continue;
                };
                let boundary = digest_boundary(
                    &tenant.settings.time_zone,
                    tenant.notification_settings.digest_hour,
                    now,
                );
                if pending.oldest >= boundary {
                    continue;
                }
                let principal = system(tenant.id, "digests");
                let items: Vec<_> = self
                    .storage
                    .list_digest_items(tenant.id, pending.contact_id)
                    .await?
                    .into_iter()
                    .filter(|i| i.created_at < boundary)
                    .collect();
                let company_name = match self.storage.get_portal(tenant.id, pending.portal_id).await? {
                    Some(p) => self.storage.get_company(tenant.id, p.company_id).await?.map(|c| c.name),
                    None => None,
                };
                let Some(company_name) = company_name else { continue };
                let result = self
                    .portal_command(&principal, pending.portal_id, |ctx, state| {
                        reminders::send_digest(&principal, ctx, state, &company_name, pending.contact_id, &items)
                    })
                    .await;
                match result {
                    Ok(o) => {
                        report.committed += usize::from(!o.writes.is_empty());
                        report.messages += o.messages.len();
                    }
                    Err(e) if lost_race(&e) => report.raced += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    /// The contact's own notification preferences.
    ///
    /// # Errors
    ///
    /// `not_found` for anything but a contact principal of a live portal.
    pub async fn notification_preferences(&self, principal: &Principal) -> ServiceResult<NotificationPreferences> {
        let Principal::Contact(me) = principal else {
            return Err(not_found("contact", uuid::Uuid::nil()));
        };
        let (state, _) = self.portal_overview(principal, me.portal_id).await?;
        state
            .contacts
            .iter()
            .find(|c| c.id == me.contact_id)
            .map(|c| c.notifications)
            .ok_or_else(|| not_found("contact", me.contact_id.as_uuid()))
    }

    /// Sets the contact's own notification preferences (all topics at once).
    ///
    /// # Errors
    ///
    /// `not_found` for anything but a contact principal of a live portal.
    pub async fn set_notification_preferences(
        &self,
        principal: &Principal,
        prefs: NotificationPreferences,
    ) -> ServiceResult<NotificationPreferences> {
        let Principal::Contact(me) = principal else {
            return Err(not_found("contact", uuid::Uuid::nil()));
        };
        self.change_preferences(principal, me.portal_id, me.contact_id, PreferenceChange::Set(prefs))
            .await
    }

    /// A one-click unsubscribe (RFC 8058) with a token already verified by the caller, in the
    /// tenant the request came to. Works whatever the portal's status; unsubscribing twice is
    /// no change.
    ///
    /// # Errors
    ///
    /// `not_found` when the token is of another tenant or its contact is gone.
    pub async fn unsubscribe(
        &self,
        tenant: TenantId,
        token: UnsubscribeToken,
    ) -> ServiceResult<NotificationPreferences> {
        if token.tenant_id != tenant {
            return Err(not_found("contact", token.contact_id.as_uuid()));
        }
        let principal = system(tenant, "unsubscribe");
        self.change_preferences(
            &principal,
            token.portal_id,
            token.contact_id,
            PreferenceChange::Unsubscribe(token.topic),
        )
        .await
    }

    async fn change_preferences(
        &self,
        principal: &Principal,
        portal: PortalId,
        contact: crate::id::ContactId,
        change: PreferenceChange,
    ) -> ServiceResult<NotificationPreferences> {
        let seen = std::sync::Mutex::new(None);
        self.portal_command(principal, portal, |ctx, state| {
            let (prefs, outcome) = reminders::change_preferences(principal, ctx, state, contact, change)?;
            *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(prefs);
            Ok(outcome)
        })
        .await?;
        let prefs = seen.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        prefs.ok_or_else(|| not_found("contact", contact.as_uuid()))
    }
}
