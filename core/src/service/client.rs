//! The contact's own view of its portal (BYD-4, TSK-5): read through the policy as the contact,
//! shaped by [`crate::client_view`].

use super::{Engine, ServiceResult, not_found};
use crate::client_view::ClientPortal;
use crate::policy::Principal;

impl Engine {
    /// The contact's portal as the contact sees it. Only a contact principal has one; the
    /// policy lets it read its own portal while the portal is active.
    pub async fn contact_portal(&self, principal: &Principal) -> ServiceResult<ClientPortal> {
        let Principal::Contact(contact) = principal else {
            return Err(not_found("portal", uuid::Uuid::nil()));
        };
        let (state, progress) = self.portal_overview(principal, contact.portal_id).await?;
        let company = self
            .storage
            .get_company(contact.tenant_id, state.portal.company_id)
            .await?
            .ok_or_else(|| not_found("portal", contact.portal_id.as_uuid()))?;
        Ok(ClientPortal::of(&state, progress, company.name))
    }
}
