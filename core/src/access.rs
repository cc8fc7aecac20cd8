//! Contact access links and contact sessions (CON-2 to CON-5, ONB-4 to ONB-6, BYD-4): the stored
//! rows. The commands that issue, revoke and open links are in [`crate::commands::access`].
//!
//! # Decisions
//!
//! - A link's token is a [`SecretToken`] (32 bytes from the caller's entropy), shown once in the
//!   answer that created it and stored only as its SHA-256 ([`TokenHash`]); links are looked up by
//!   (tenant, hash). Since only hashes are stored, "resend" is a new link; earlier links stay valid
//!   until they expire (CON-3).
//! - A link opens the portal until `expires_at` (issue time + the tenant's
//!   `access_link_expiry_days`, BYD-4) unless it was revoked (`revoked_at`). Revoked links are
//!   kept, so staff see what was revoked and when; a delete of the contact or portal removes them.
//! - Opening a link starts a [`ContactSession`] with its own token. A session rolls: each use
//!   moves `expires_at` to that time + [`CONTACT_SESSION_IDLE`] (CON-5 "sessions roll for 24 hours
//!   of use"). A session names the link that started it and works only while that link is not
//!   revoked, so a session started from a link read just before a concurrent revoke dies with it.
//! - Link rows are domain state written through the one commit path (ADR 0001):
//!   [`Write::InsertAccessLink`](crate::outcome::Write::InsertAccessLink),
//!   [`Write::RevokeContactAccess`](crate::outcome::Write::RevokeContactAccess) (every link
//!   revoked and every session ended for one contact) and
//!   [`Write::InsertContactSession`](crate::outcome::Write::InsertContactSession); the
//!   portal-wide revoke of an archive is the access effect
//!   [`AccessEffect::RevokeAllClientAccess`](crate::outcome::AccessEffect::RevokeAllClientAccess).
//!   Rolling a session and signing out are direct calls of [`crate::storage::AccessRepo`], like
//!   staff sessions: they raise no event.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{SecretToken, TokenHash};
use crate::id::{AccessLinkId, ContactId, PortalId, TenantId};

/// How long a contact session lives after its last use.
pub const CONTACT_SESSION_IDLE: Duration = Duration::hours(24);

/// A contact's access link, as stored (never with its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLink {
    /// Id.
    pub id: AccessLinkId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal it opens.
    pub portal_id: PortalId,
    /// The contact it is for.
    pub contact_id: ContactId,
    /// SHA-256 of the token.
    pub token_hash: TokenHash,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops opening the portal.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl AccessLink {
    /// Whether the link may open a session at `now` (not revoked, not expired). Whether the
    /// portal is active and the contact still exists is checked by the command that opens it.
    #[must_use]
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A contact's session, started by opening an access link, scoped to one portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSession {
    /// SHA-256 of the session token.
    pub token_hash: TokenHash,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The one portal it opens.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// The link that started it; the session ends when that link is revoked.
    pub link_id: AccessLinkId,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last use.
    pub last_used_at: DateTime<Utc>,
    /// When it stops working unless used again.
    pub expires_at: DateTime<Utc>,
}

impl ContactSession {
    /// A session started `now` from `link`, identified by `token`.
    #[must_use]
    pub fn start(token: &SecretToken, link: &AccessLink, now: DateTime<Utc>) -> Self {
        Self {
            token_hash: token.hash(),
            tenant_id: link.tenant_id,
            portal_id: link.portal_id,
            contact_id: link.contact_id,
            link_id: link.id,
            created_at: now,
            last_used_at: now,
            expires_at: now + CONTACT_SESSION_IDLE,
        }
    }

    /// Whether the session still works at `now` (its link's revocation is checked by storage).
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    /// The session after a use at `now`: it rolls for another [`CONTACT_SESSION_IDLE`].
    #[must_use]
    pub fn touched(&self, now: DateTime<Utc>) -> Self {
        Self {
            last_used_at: now,
            expires_at: now + CONTACT_SESSION_IDLE,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_expire_and_revoke_and_sessions_roll() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let link = AccessLink {
            id: AccessLinkId::from_uuid(uuid::Uuid::nil()),
            tenant_id: TenantId::from_uuid(uuid::Uuid::nil()),
            portal_id: PortalId::from_uuid(uuid::Uuid::nil()),
            contact_id: ContactId::from_uuid(uuid::Uuid::nil()),
            token_hash: SecretToken::from_bytes([1; 32]).hash(),
            created_at: now,
            expires_at: now + Duration::days(30),
            revoked_at: None,
        };
        assert!(link.is_usable(now + Duration::days(30) - Duration::seconds(1)));
        assert!(!link.is_usable(now + Duration::days(30)));
        assert!(
            !AccessLink {
                revoked_at: Some(now),
                ..link
            }
            .is_usable(now)
        );
        let s = ContactSession::start(&SecretToken::from_bytes([2; 32]), &link, now);
        assert!(!s.is_live(now + CONTACT_SESSION_IDLE));
        let later = now + Duration::hours(20);
        let t = s.touched(later);
        assert!(t.is_live(now + CONTACT_SESSION_IDLE));
        assert_eq!(t.expires_at, later + CONTACT_SESSION_IDLE);
        assert_eq!(t.created_at, now);
    }
}
