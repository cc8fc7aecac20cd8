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
    pub(super) fn secret_token(&self) -> SecretToken {
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
        let company_name = self.company_name_of(principal, portal).await?;
        let token = self.secret_token();
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                let mail = commands::access::LinkMail {
                    settings: &settings,
                    company_name: &company_name,
                };
                commands::access::issue_link(principal, ctx, state, mail, contact, &token).map(|(_, o)| o)
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
        let company_name = self.company_name_of(principal, portal).await?;
        let token = self.secret_token();
        let outcome = self
            .portal_command(principal, portal, |ctx, state| {
                let mail = commands::access::LinkMail {
                    settings: &settings,
                    company_name: &company_name,
                };
                commands::access::regenerate_link(principal, ctx, state, mail, contact, &token).map(|(_, o)| o)
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
    /// `contact_accessed_portal` event. `None` for every kind of bad link (unknown, revoked,
    /// expired, portal not active, contact gone), so callers give one answer for all.
    pub async fn open_access_link(
        &self,
        tenant: TenantId,
        token: &SecretToken,
    ) -> ServiceResult<Option<OpenedSession>> {
        let Some(link) = self.storage.find_access_link(tenant, &token.hash()).await? else {
            return Ok(None);
        };
        self.open_found_link(tenant, &link).await
    }

    /// [`Self::open_access_link`] for a link the caller has already found by its token. It reads
    /// the portal's row and the contact only, and commits the session and the event without the
    /// portal's lock: a revocation or an archive committed meanwhile still shuts the session out,
    /// because every use of a session checks its link and the portal again.
    pub async fn open_found_link(&self, tenant: TenantId, link: &AccessLink) -> ServiceResult<Option<OpenedSession>> {
        let Some(portal) = self.storage.get_portal(tenant, link.portal_id).await? else {
            return Ok(None);
        };
        let contact = self.storage.get_contact(tenant, link.contact_id).await?;
        let session_token = self.secret_token();
        let mut ctx = self.ctx();
        let Ok((_, outcome)) =
            commands::access::open_link_of(&mut ctx, &portal, contact.as_ref(), link, &session_token)
        else {
            return Ok(None);
        };
        let outcome = self.seal(outcome);
        // The contact removed meanwhile: its row is gone and the session cannot refer to it.
        if self.storage.commit_outcome(tenant, &outcome).await?.is_err() {
            return Ok(None);
        }
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
        let Some(contact) = self
            .storage
            .get_contact(tenant, session.contact_id)
            .await?
            .filter(|c| c.portal_id == session.portal_id)
        else {
            return Ok(None);
        };
        let principal = Principal::Contact(ContactPrincipal {
            tenant_id: tenant,
            portal_id: session.portal_id,
            contact_id: contact.id,
            email: contact.email,
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

/// What a client that opened a link from a browser not verified for the link's contact gets
/// (CON-5): a challenge token to send back with the mailed code. Unknown, revoked and expired
/// links get one too (with no code behind it), so the answer says nothing about the link.
#[derive(Debug, Clone)]
pub struct CodeChallenge {
    /// The challenge token; stored only as its hash.
    pub token: SecretToken,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
}

/// The answer to a one-time code.
#[derive(Debug, Clone)]
pub enum CodeVerdict {
    /// The code was right: a contact session.
    Opened(OpenedSession),
    /// Wrong, expired, used, or no such challenge; all alike.
    Refused,
    /// Too many tries of this challenge: a new code is needed.
    Exhausted,
}

impl Engine {
    /// The link with this token in `tenant`, whatever its state: for the server to see whose
    /// verified-browser cookie would let the opener in without a code.
    pub async fn find_access_link(&self, tenant: TenantId, token: &SecretToken) -> ServiceResult<Option<AccessLink>> {
        Ok(self.storage.find_access_link(tenant, &token.hash()).await?)
    }

    /// Answers the opening of a link from a browser not verified for its contact (CON-5). `link`
    /// is what [`Self::find_access_link`] found for the token (`None` for an unknown token): a
    /// challenge always, and, when the link would open its portal and the contact has not had
    /// [`crate::access::CODES_PER_CONTACT_PER_WINDOW`] codes in this window, a stored challenge
    /// and the code mailed to the contact in the same commit.
    pub async fn request_access_code(
        &self,
        tenant: TenantId,
        link: Option<&AccessLink>,
    ) -> ServiceResult<CodeChallenge> {
        let challenge = CodeChallenge {
            token: self.secret_token(),
            expires_at: self.clock.now() + crate::access::CODE_LIFETIME,
        };
        let Some(link) = link.filter(|l| l.tenant_id == tenant) else {
            return Ok(challenge);
        };
        if !link.is_usable(self.clock.now()) {
            return Ok(challenge);
        }
        let now = self.clock.now();
        let sent = self
            .storage
            .count_sign_in_attempt(
                tenant,
                &format!("access-code-contact:{}", link.contact_id),
                crate::auth::sign_in_window(now),
                now,
            )
            .await?;
        if sent > crate::access::CODES_PER_CONTACT_PER_WINDOW {
            return Ok(challenge);
        }
        let Some(portal) = self.storage.get_portal(tenant, link.portal_id).await? else {
            return Ok(challenge);
        };
        let Some(company) = self.storage.get_company(tenant, portal.company_id).await? else {
            return Ok(challenge);
        };
        let mut bytes = [0u8; 8];
        self.entropy.fill(&mut bytes);
        let code = crate::access::code_from_bytes(bytes);
        let ctx = self.ctx();
        let decide = |state: &PortalState| {
            commands::access::request_code(&mut ctx.clone(), state, link, &company.name, &challenge.token, &code)
                .map(|(_, o)| self.seal(o))
        };
        // A link that opens nothing gets the same answer, without a code.
        let _ = self.storage.modify_portal(tenant, link.portal_id, &decide).await?;
        Ok(challenge)
    }

    /// Checks a one-time code against its challenge (CON-5). Every try counts, for challenges
    /// that exist and made-up ones alike; past [`crate::access::MAX_CODE_ATTEMPTS`] the
    /// challenge is spent. A right code opens the portal like the link would, once.
    pub async fn verify_access_code(
        &self,
        tenant: TenantId,
        challenge_token: &SecretToken,
        code: &str,
    ) -> ServiceResult<CodeVerdict> {
        let hash = challenge_token.hash();
        let tries = self
            .storage
            .count_sign_in_attempt(
                tenant,
                &crate::access::code_attempt_key(&hash),
                DateTime::UNIX_EPOCH,
                self.clock.now(),
            )
            .await?;
        if tries > crate::access::MAX_CODE_ATTEMPTS {
            return Ok(CodeVerdict::Exhausted);
        }
        if !crate::access::is_code_shaped(code) {
            return Ok(CodeVerdict::Refused);
        }
        let Some(challenge) = self.storage.find_access_challenge(tenant, &hash).await? else {
            return Ok(CodeVerdict::Refused);
        };
        let Some(link) = self.storage.get_access_link(tenant, challenge.link_id).await? else {
            return Ok(CodeVerdict::Refused);
        };
        let session_token = self.secret_token();
        let ctx = self.ctx();
        let decide = |state: &PortalState| {
            commands::access::verify_code(
                &mut ctx.clone(),
                state,
                &link,
                &challenge,
                challenge_token,
                code,
                &session_token,
            )
            .map(|(_, o)| self.seal(o))
        };
        let Some(Ok(outcome)) = self.storage.modify_portal(tenant, challenge.portal_id, &decide).await? else {
            return Ok(CodeVerdict::Refused);
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
        Ok(CodeVerdict::Opened(OpenedSession {
            session,
            token: session_token,
        }))
    }
}
