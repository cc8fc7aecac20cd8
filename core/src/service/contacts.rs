//! The engine's contact reads and edits (CON-1): each edit is a portal command, decided and
//! committed under the portal's lock (see [`crate::commands::contact`] for the rules).

use super::{Engine, ServiceResult, not_found};
use crate::commands;
use crate::id::{ContactId, PortalId};
use crate::outcome::{Outcome, Write};
use crate::policy::Principal;
use crate::portal::{Contact, ContactInput};
use crate::storage::StorageError;

/// The contact `outcome` wrote with this id, if it wrote it.
fn written(outcome: &Outcome, id: ContactId) -> Option<Contact> {
    outcome.writes.iter().find_map(|w| match w {
        Write::InsertContact(c) | Write::UpdateContact { contact: c, .. } if c.id == id => Some(c.clone()),
        _ => None,
    })
}

impl Engine {
    /// The contacts of a portal the principal may read, in creation order.
    pub async fn list_contacts(&self, principal: &Principal, portal: PortalId) -> ServiceResult<Vec<Contact>> {
        Ok(self.load_portal(principal, portal).await?.contacts)
    }

    /// Adds a contact to a draft or active portal and returns it as written. A primary contact
    /// takes the flag from the current primary in the same commit.
    pub async fn add_contact(
        &self,
        principal: &Principal,
        portal: PortalId,
        input: &ContactInput,
    ) -> ServiceResult<Contact> {
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                commands::contact::add_contact(principal, ctx, state, input).map(|(_, o)| o)
            })
            .await?;
        outcome
            .writes
            .iter()
            .find_map(|w| match w {
                Write::InsertContact(c) => Some(c.clone()),
                _ => None,
            })
            .ok_or_else(|| StorageError::Invariant("the committed outcome has no new contact".to_owned()).into())
    }

    /// Edits a contact (compare-and-set on its version) and returns it as it is afterwards.
    pub async fn update_contact(
        &self,
        principal: &Principal,
        portal: PortalId,
        id: ContactId,
        expected_version: i64,
        patch: &commands::contact::ContactPatch,
    ) -> ServiceResult<Contact> {
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                commands::contact::update_contact(principal, ctx, state, id, expected_version, patch)
            })
            .await?;
        if let Some(c) = written(&outcome, id) {
            return Ok(c);
        }
        // The patch changed nothing: the contact as it is now.
        self.list_contacts(principal, portal)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("contact", id.as_uuid()))
    }

    /// Removes a contact (compare-and-set on its version).
    pub async fn remove_contact(
        &self,
        principal: &Principal,
        portal: PortalId,
        id: ContactId,
        expected_version: i64,
    ) -> ServiceResult<Outcome> {
        self.portal_command(principal, portal, |ctx, state| {
            commands::contact::remove_contact(principal, ctx, state, id, expected_version)
        })
        .await
    }
}
