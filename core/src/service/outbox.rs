//! Staff's view of outgoing mail (MAIL-3): the delivery state of the tenant's messages and a
//! retry of a failed one. Delivery itself is the worker's (`portal-mail`).

use super::{Engine, ServiceResult, not_found};
use crate::commands::allow;
use crate::id::MessageId;
use crate::mail::{MessageStatus, OutboxEntry};
use crate::policy::{Action, Principal, Resource};
use crate::storage::PageRequest;

impl Engine {
    /// The tenant's messages, newest first, optionally of one status, keyset-paged.
    pub async fn list_outbox(
        &self,
        principal: &Principal,
        status: Option<MessageStatus>,
        page: PageRequest<MessageId>,
    ) -> ServiceResult<Vec<OutboxEntry>> {
        let tenant = principal.tenant_id();
        allow(principal, Action::ReadOutbox, &Resource::Tenant { tenant })?;
        Ok(self.storage.list_messages(tenant, status, page).await?)
    }

    /// Queues a failed message again, due now, with a fresh count of attempts. A message that
    /// is not failed (or not the tenant's) is "not found".
    pub async fn retry_message(&self, principal: &Principal, id: MessageId) -> ServiceResult<()> {
        let tenant = principal.tenant_id();
        allow(principal, Action::RetryMail, &Resource::Tenant { tenant })?;
        if self
            .storage
            .requeue_failed_message(tenant, id, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(not_found("failed message", id.as_uuid()))
        }
    }
}
