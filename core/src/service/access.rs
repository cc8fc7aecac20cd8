//! The engine's contact access links and sessions (CON-2 to CON-5, BYD-4). The engine draws each
//! token from its [`crate::storage::Entropy`] (32 bytes) and hands it to the pure command, which
//! puts only its hash in the outcome; the token goes back to the caller once, to show.

use chrono::{DateTime, Utc};

use super::{Engine, ServiceError, ServiceResult, not_found};
use crate::access::{AccessLink, ContactSession};
use crate::auth::{SecretToken, TokenHash};
use crate::commands;
use crate::error::CommandError;
use crate::id::{ContactId, PortalId, TenantId};
use crate::outcome::{Outcome, Write};
use crate::policy::{ContactPrincipal, Principal};
use crate::portal::PortalState;
use crate::storage::StorageError;
use crate::tenant::LinkSettings;

/// A link just issued, with its token: show the token once, it is not stored.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    /// The link as stored.
    pub link: AccessLink,
    /// Its token.
    pub token: SecretToken,
}

/// A contact session just started by opening a link, with its token: give it to the client once.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The session as stored.
    pub session: ContactSession,
    /// Its token.
    pub token: SecretToken,
}

fn issued(outcome: &Outcome) -> ServiceResult<AccessLink> {
    outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::InsertAccessLink(l) => Some(l.clone()),
            _ => None,
        })
        .ok_or_else(|| StorageError::Invariant("the committed outcome has no new access link".to_owned()).into())
}

impl Engine {
    /// 32 fresh bytes from the engine's entropy, as a token.
    fn secret_token(&self) -> SecretToken {
        let mut bytes = [0u8; 32];
        self.entropy.fill(&mut bytes);
        SecretToken::from_bytes(bytes)
    }

    async fn settings_of(&self, tenant: TenantId) -> ServiceResult<LinkSettings> {
        Ok(self
            .storage
            .get_tenant(tenant)
            .await?
            .ok_or_else(|| not_found("tenant", tenant.as_uuid()))?
            .link_settings)
    }

    /// Issues a new access link for a contact of an active portal ("resend": earlier links stay
    /// valid until they expire).
    pub async fn issue_access_link(
        &self,
        principal: &Principal,
        portal: PortalId,
        contact: ContactId,
    ) -> ServiceResult<IssuedLink> {
        let settings = self.settings_of(principal.tenant_id()).await?;
        let token = self.secret_token();
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                commands::access::issue_link(principal, ctx, state, &settings, contact, &token).map(|(_, o)| o)
            })
            .await?;
        Ok(IssuedLink {
            link: issued(&outcome)?,
            token,
        })
    }

    /// Revokes every earlier link and session of a contact of an active portal and issues one new
    /// link.
    pub async fn regenerate_access_link(
        &self,
        principal: &Principal,
        portal: PortalId,
        contact: ContactId,
    ) -> ServiceResult<IssuedLink> {
        let settings = self.settings_of(principal.tenant_id()).await?;
        let token = self.secret_token();
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                commands::access::regenerate_link(principal, ctx, state, &settings, contact, &token).map(|(_, o)| o)
            })
            .await?;
        Ok(IssuedLink {
            link: issued(&outcome)?,
            token,
        })
    }

    /// Revokes every link and ends every session of a contact at once.
    pub async fn revoke_contact_access(
        &self,
        principal: &Principal,
        portal: PortalId,
        contact: ContactId,
    ) -> ServiceResult<Outcome> {
        self.portal_command(principal, portal, |ctx, state| {
            commands::access::revoke_access(principal, ctx, state, contact)
        })
        .await
    }

    /// Every link of a contact of a portal the principal may read (revoked and expired ones too),
    /// oldest first.
    pub async fn list_access_links(
        &self,
        principal: &Principal,
        portal: PortalId,
        contact: ContactId,
    ) -> ServiceResult<Vec<AccessLink>> {
        let state = self.load_portal(principal, portal).await?;
        if !state.contacts.iter().any(|c| c.id == contact) {
            return Err(not_found("contact", contact.as_uuid()));
        }
        Ok(self.storage.list_access_links(state.portal.tenant_id, contact).await?)
    }

    /// Opens the link whose token is `token` in `tenant` (CON-4): a new contact session and a
    /// `contact_accessed_portal` event, committed under the portal's lock. `None` for every kind
    /// of bad link (unknown, revoked, expired, portal not active, contact gone), so callers give
    /// one answer for all.
    pub async fn open_access_link(
        &self,
        tenant: TenantId,
        token: &SecretToken,
    ) -> ServiceResult<Option<OpenedSession>> {
        let Some(link) = self.storage.find_access_link(tenant, &token.hash()).await? else {
            return Ok(None);
        };
        let session_token = self.secret_token();
        let ctx = self.ctx();
        let decide = |state: &PortalState| {
            commands::access::open_link(&mut ctx.clone(), state, &link, &session_token).map(|(_, o)| o)
        };
        // Every refusal (revoked, expired, portal not live, contact gone) and a portal gone
        // answer alike.
        let Some(Ok(outcome)) = self.storage.modify_portal(tenant, link.portal_id, &decide).await? else {
            return Ok(None);
        };
        let session = outcome
            .writes
            .iter()
            .find_map(|w| match w {
                Write::InsertContactSession(s) => Some(s.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                ServiceError::from(StorageError::Invariant(
                    "the committed outcome has no contact session".to_owned(),
                ))
            })?;
        Ok(Some(OpenedSession {
            session,
            token: session_token,
        }))
    }

    /// The contact session with this token hash in `tenant`, rolled to now, with its contact's
    /// principal; `None` when it is unknown, expired, its link revoked, or its contact or portal
    /// gone. Whether the portal is active is the policy's question on each read.
    pub async fn contact_session(
        &self,
        tenant: TenantId,
        token: &TokenHash,
    ) -> ServiceResult<Option<(ContactSession, Principal)>> {
        let now = self.clock.now();
        let Some(session) = self.storage.touch_contact_session(tenant, token, now).await? else {
            return Ok(None);
        };
        let Some(state) = self.storage.load_portal(tenant, session.portal_id).await? else {
            return Ok(None);
        };
        let Some(contact) = state.contacts.iter().find(|c| c.id == session.contact_id) else {
            return Ok(None);
        };
        let principal = Principal::Contact(ContactPrincipal {
            tenant_id: tenant,
            portal_id: session.portal_id,
            contact_id: contact.id,
            email: contact.email.clone(),
        });
        Ok(Some((session, principal)))
    }

    /// A contact's own links and live sessions (BYD-4). Only a contact principal has any.
    pub async fn own_access(&self, principal: &Principal) -> ServiceResult<(Vec<AccessLink>, Vec<ContactSession>)> {
        let Principal::Contact(p) = principal else {
            return Err(CommandError::Access(crate::policy::AccessDenied::Forbidden {
                action: crate::policy::Action::ReadPortal,
            })
            .into());
        };
        let links = self.storage.list_access_links(p.tenant_id, p.contact_id).await?;
        let sessions = self
            .storage
            .list_contact_sessions(p.tenant_id, p.contact_id, self.clock.now())
            .await?;
        Ok((links, sessions))
    }

    /// Ends one contact session (sign out); whether it existed.
    pub async fn end_contact_session(&self, tenant: TenantId, token: &TokenHash) -> ServiceResult<bool> {
        Ok(self.storage.delete_contact_session(tenant, token).await?)
    }

    /// Ends every session of the contact behind `principal` ("sign out everywhere"); how many.
    pub async fn end_all_contact_sessions(&self, principal: &Principal) -> ServiceResult<u64> {
        let Principal::Contact(p) = principal else {
            return Ok(0);
        };
        Ok(self
            .storage
            .delete_contact_sessions_of(p.tenant_id, p.contact_id)
            .await?)
    }

    /// The time the engine's clock says it is.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
