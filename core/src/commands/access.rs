//! Contact access links (CON-2 to CON-4): issuing (and resending), revoking, regenerating and
//! opening them. The stored rows and the decisions behind them are described in
//! [`crate::access`].
//!
//! # Rules
//!
//! - Issuing and regenerating need [`Action::EditPortal`] and an `active` portal
//!   (`wrong_portal_status` otherwise): a link of a draft or archived portal would open nothing
//!   (ONB-4). Revoking needs [`Action::EditPortal`] in any status.
//! - A command cannot draw random bytes: the caller passes the [`SecretToken`] of the new link or
//!   session and only its hash enters the outcome. No token ever enters an event.
//! - Issue (also "resend", CON-3) adds a link and leaves earlier ones valid until they expire.
//!   Regenerate revokes every earlier link and session of the contact and issues one new link, in
//!   one outcome (the revoke is written first). Revoke ends every link and session of the contact.
//! - Opening a link ([`open_link`]) succeeds only when the link is not revoked, not expired, its
//!   portal is `active` and its contact still exists; every failure is the same
//!   [`CommandError::NotFound`] of an `access link`, so a caller cannot tell an unknown link from an
//!   expired, revoked or draft one. The access is recorded as `contact_accessed_portal` with the
//!   contact as the actor.

use serde_json::json;

use super::portal::{portal_resource, scope};
use super::{Ctx, allow};
use crate::access::{AccessChallenge, AccessLink, CODE_LIFETIME, ContactSession, code_hash};
use crate::activity::EventKind;
use crate::auth::SecretToken;
use crate::error::CommandError;
use crate::id::ContactId;
use crate::lifecycle::PortalStatus;
use crate::mail::{MailKind, MessageSecret, OutboundMessage, SecretText};
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, ContactPrincipal, Principal};
use crate::portal::{Contact, Portal, PortalState};
use crate::tenant::LinkSettings;
use crate::value::Name;

pub(crate) fn contact_of(state: &PortalState, id: ContactId) -> Result<&Contact, CommandError> {
    state
        .contacts
        .iter()
        .find(|c| c.id == id)
        .ok_or(CommandError::NotFound {
            entity: "contact",
            id: id.as_uuid(),
        })
}

fn require_active(state: &PortalState) -> Result<(), CommandError> {
    match state.portal.status {
        PortalStatus::Active => Ok(()),
        actual => Err(CommandError::PortalStatus {
            required: PortalStatus::Active,
            actual,
        }),
    }
}

/// What a command that mails a contact a link needs beyond the portal: the tenant's link
/// settings and the client company's name (the portal state does not carry it).
#[derive(Debug, Clone, Copy)]
pub struct LinkMail<'a> {
    /// The tenant's link settings (expiry).
    pub settings: &'a LinkSettings,
    /// The client company's name, for the message.
    pub company_name: &'a Name,
}

/// The message that carries a new link to its contact (MAIL-1): `kind` is
/// [`MailKind::ContactInvitation`] or [`MailKind::AccessLink`]. The token goes in as the
/// message's clear secret; the engine seals it before the outcome is stored.
pub(crate) fn link_message(
    ctx: &mut Ctx,
    state: &PortalState,
    company_name: &Name,
    contact: &Contact,
    link: &AccessLink,
    token: &SecretToken,
    kind: MailKind,
) -> OutboundMessage {
    let payload = json!({
        "portal_name": state.portal.name,
        "company_name": company_name,
        "contact_name": contact.name,
        "expires_at": link.expires_at,
    });
    message_to(ctx, contact, kind, payload, Some(token.encode()))
}

/// A message to a contact of a portal: `secret` (a link token or a code) goes in clear, and the
/// engine seals it before the outcome is stored.
pub(crate) fn message_to(
    ctx: &mut Ctx,
    contact: &Contact,
    kind: MailKind,
    payload: serde_json::Value,
    secret: Option<String>,
) -> OutboundMessage {
    OutboundMessage {
        id: ctx.ids.next_id(),
        tenant_id: contact.tenant_id,
        portal_id: Some(contact.portal_id),
        contact_id: Some(contact.id),
        kind,
        recipient: contact.email.clone(),
        recipient_name: Some(contact.name.as_str().to_owned()),
        payload,
        secret: secret.map(|text| MessageSecret::Clear {
            text: SecretText::new(text),
        }),
        created_at: ctx.now,
    }
}

pub(crate) fn new_link(ctx: &mut Ctx, contact: &Contact, settings: &LinkSettings, token: &SecretToken) -> AccessLink {
    AccessLink {
        id: ctx.ids.next_id(),
        tenant_id: contact.tenant_id,
        portal_id: contact.portal_id,
        contact_id: contact.id,
        token_hash: token.hash(),
        created_at: ctx.now,
        expires_at: ctx.now + settings.access_link_lifetime(),
        revoked_at: None,
    }
}

/// Issues a new access link for a contact of an active portal and mails it (also "resend
/// invite": earlier links stay valid until they expire). Returns the link as stored; the caller
/// may show `token` once.
pub fn issue_link(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    mail: LinkMail<'_>,
    contact: ContactId,
    token: &SecretToken,
) -> Result<(AccessLink, Outcome), CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    let contact = contact_of(state, contact)?;
    require_active(state)?;
    let link = new_link(ctx, contact, mail.settings, token);
    let message = link_message(
        ctx,
        state,
        mail.company_name,
        contact,
        &link,
        token,
        MailKind::AccessLink,
    );
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::AccessLinkIssued,
        format!("Access link issued to {}", contact.email),
        json!({ "contact_id": contact.id, "link_id": link.id, "expires_at": link.expires_at }),
    );
    Ok((
        link.clone(),
        Outcome {
            writes: vec![Write::InsertAccessLink(link)],
            events: vec![ev],
            messages: vec![message],
            ..Outcome::default()
        },
    ))
}

/// Revokes every access link of a contact and ends every session of it at once (CON-3).
pub fn revoke_access(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    contact: ContactId,
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    let contact = contact_of(state, contact)?;
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::ContactAccessRevoked,
        format!("Access of {} revoked", contact.email),
        json!({ "contact_id": contact.id, "revoked": "every access link and session of the contact" }),
    );
    Ok(Outcome {
        writes: vec![Write::RevokeContactAccess {
            contact_id: contact.id,
            at: ctx.now,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Revokes every earlier link and session of a contact of an active portal and issues and mails
/// one new link, in one outcome (CON-3 "regenerate token").
pub fn regenerate_link(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    mail: LinkMail<'_>,
    contact: ContactId,
    token: &SecretToken,
) -> Result<(AccessLink, Outcome), CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    let contact = contact_of(state, contact)?;
    require_active(state)?;
    let link = new_link(ctx, contact, mail.settings, token);
    let message = link_message(
        ctx,
        state,
        mail.company_name,
        contact,
        &link,
        token,
        MailKind::AccessLink,
    );
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::AccessLinkRegenerated,
        format!("Access link of {} regenerated; earlier links revoked", contact.email),
        json!({ "contact_id": contact.id, "link_id": link.id, "expires_at": link.expires_at }),
    );
    Ok((
        link.clone(),
        Outcome {
            writes: vec![
                Write::RevokeContactAccess {
                    contact_id: contact.id,
                    at: ctx.now,
                },
                Write::InsertAccessLink(link),
            ],
            events: vec![ev],
            messages: vec![message],
            ..Outcome::default()
        },
    ))
}

/// Opens `link` (found by its token's hash) on the portal's current state: a new contact session
/// identified by `session_token` and a `contact_accessed_portal` event (CON-4). Every reason to
/// refuse (revoked, expired, another portal, portal not active, contact gone) is the same
/// "access link not found".
pub fn open_link(
    ctx: &mut Ctx,
    state: &PortalState,
    link: &AccessLink,
    session_token: &SecretToken,
) -> Result<(ContactSession, Outcome), CommandError> {
    open_link_of(ctx, &state.portal, contact_in(state, link), link, session_token)
}

/// [`open_link`] on the portal's row and the link's contact only (`None`: gone), as read
/// without the portal's lock: the session it starts is checked again on every use (its link
/// not revoked, the portal active), so a revocation or an archive that commits meanwhile
/// still shuts it out.
pub fn open_link_of(
    ctx: &mut Ctx,
    p: &Portal,
    contact: Option<&Contact>,
    link: &AccessLink,
    session_token: &SecretToken,
) -> Result<(ContactSession, Outcome), CommandError> {
    let (contact, principal) = opener(ctx, p, contact, link)?;
    let session = ContactSession::start(session_token, link, ctx.now);
    let ev = ctx.event(
        &principal,
        p.tenant_id,
        scope(p),
        EventKind::ContactAccessedPortal,
        format!("{} opened the portal", contact.email),
        json!({ "contact_id": contact.id, "link_id": link.id }),
    );
    Ok((
        session.clone(),
        Outcome {
            writes: vec![Write::InsertContactSession(session)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Sends a one-time code for `link` (CON-5): opening it from a browser not verified for its
/// contact. The challenge is stored (its token and code only as hashes) and the code is mailed
/// to the contact; the caller gives `challenge_token` to the client once. Refused exactly like
/// [`open_link`] when the link would not open the portal.
pub fn request_code(
    ctx: &mut Ctx,
    state: &PortalState,
    link: &AccessLink,
    company_name: &Name,
    challenge_token: &SecretToken,
    code: &str,
) -> Result<(AccessChallenge, Outcome), CommandError> {
    let p = &state.portal;
    let (contact, _) = opener(ctx, p, contact_in(state, link), link)?;
    let challenge = AccessChallenge {
        id: ctx.ids.next_id(),
        tenant_id: p.tenant_id,
        portal_id: p.id,
        contact_id: contact.id,
        link_id: link.id,
        token_hash: challenge_token.hash(),
        code_hash: code_hash(challenge_token, code),
        created_at: ctx.now,
        expires_at: ctx.now + CODE_LIFETIME,
        used_at: None,
    };
    let payload = json!({
        "portal_name": p.name,
        "company_name": company_name,
        "contact_name": contact.name,
        "expires_at": challenge.expires_at,
    });
    let message = message_to(ctx, contact, MailKind::VerificationCode, payload, Some(code.to_owned()));
    Ok((
        challenge.clone(),
        Outcome {
            writes: vec![Write::InsertAccessChallenge(challenge)],
            messages: vec![message],
            ..Outcome::default()
        },
    ))
}

/// Opens the portal with a one-time code (CON-5): the challenge must be open (not used, not
/// expired), belong to `link`, and `code` must be its code; then the link opens the portal as in
/// [`open_link`] and the challenge is used up in the same outcome. Every refusal is the same
/// "access code not found".
pub fn verify_code(
    ctx: &mut Ctx,
    state: &PortalState,
    link: &AccessLink,
    challenge: &AccessChallenge,
    challenge_token: &SecretToken,
    code: &str,
    session_token: &SecretToken,
) -> Result<(ContactSession, Outcome), CommandError> {
    let refused = CommandError::NotFound {
        entity: "access code",
        id: challenge.id.as_uuid(),
    };
    if !challenge.is_open(ctx.now)
        || challenge.link_id != link.id
        || challenge.token_hash != challenge_token.hash()
        || code_hash(challenge_token, code) != challenge.code_hash
    {
        return Err(refused);
    }
    let (session, mut outcome) = open_link(ctx, state, link, session_token).map_err(|_| refused)?;
    outcome.writes.insert(
        0,
        Write::UseAccessChallenge {
            id: challenge.id,
            at: ctx.now,
        },
    );
    Ok((session, outcome))
}

/// The link's contact in the portal's state, if it is still there.
fn contact_in<'a>(state: &'a PortalState, link: &AccessLink) -> Option<&'a Contact> {
    state.contacts.iter().find(|c| c.id == link.contact_id)
}

/// The contact `link` lets in on the portal's current state, as a principal: every reason to
/// refuse (revoked, expired, another portal, portal not active, contact gone) is the same
/// "access link not found".
fn opener<'a>(
    ctx: &Ctx,
    p: &Portal,
    contact: Option<&'a Contact>,
    link: &AccessLink,
) -> Result<(&'a Contact, Principal), CommandError> {
    let refused = || CommandError::NotFound {
        entity: "access link",
        id: link.id.as_uuid(),
    };
    if link.portal_id != p.id || link.tenant_id != p.tenant_id || !link.is_usable(ctx.now) {
        return Err(refused());
    }
    let contact = contact
        .filter(|c| c.id == link.contact_id && c.portal_id == p.id && c.tenant_id == p.tenant_id)
        .ok_or_else(refused)?;
    let principal = Principal::Contact(ContactPrincipal {
        tenant_id: p.tenant_id,
        portal_id: p.id,
        contact_id: contact.id,
        email: contact.email.clone(),
    });
    // The policy lets a contact read its own portal only while it is active (ONB-4).
    allow(&principal, Action::ReadPortal, &portal_resource(p)).map_err(|_| refused())?;
    Ok((contact, principal))
}
