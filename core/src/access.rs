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

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::auth::{SecretToken, TokenHash};
use crate::crypto::{KeyPurpose, MasterKey};
use crate::id::{AccessLinkId, ChallengeId, ContactId, PortalId, TenantId};

/// How long a contact session lives after its last use.
pub const CONTACT_SESSION_IDLE: Duration = Duration::hours(24);

/// How long a one-time code of forwarded-link protection works (CON-5).
pub const CODE_LIFETIME: Duration = Duration::minutes(30);
/// Tries of one code; after them a new code is needed (CON-5).
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Codes mailed to one contact in one sign-in window ([`crate::auth::SIGN_IN_WINDOW_MINUTES`]); later requests get the
/// same answer but no mail, so nobody can flood a contact's inbox.
pub const CODES_PER_CONTACT_PER_WINDOW: u32 = 5;
/// How long a verified browser is remembered.
pub const VERIFIED_BROWSER_LIFETIME: Duration = Duration::days(90);

/// A one-time code sent to a contact who opened a link from a browser that is not verified for
/// them (CON-5). The answer to the opening carries a challenge token (shown once, stored as its
/// hash, like every token); the code goes to the contact's mailbox. Both together open the
/// portal. The code is stored only as SHA-256 over the challenge token and the code
/// ([`code_hash`]), so a stolen table does not reveal codes: guessing one needs the challenge
/// token, which is not stored.
///
/// Tries are counted per challenge token (see [`code_attempt_key`]) in the same atomic counters
/// as sign-in attempts, for challenges that exist and for made-up ones alike, so both answer
/// the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessChallenge {
    /// Id.
    pub id: ChallengeId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal the link opens.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// The link that was opened; the challenge dies with it.
    pub link_id: AccessLinkId,
    /// SHA-256 of the challenge token.
    pub token_hash: TokenHash,
    /// [`code_hash`] of the challenge token and the code.
    pub code_hash: TokenHash,
    /// When the code was sent.
    pub created_at: DateTime<Utc>,
    /// When the code stops working.
    pub expires_at: DateTime<Utc>,
    /// When the code was used; a code opens the portal once.
    pub used_at: Option<DateTime<Utc>>,
}

impl AccessChallenge {
    /// Whether the code may still be tried at `now` (not used, not expired). The link's own
    /// state is checked when the portal is opened.
    #[must_use]
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// The stored form of a code: SHA-256 over a label, the challenge token and the code.
#[must_use]
pub fn code_hash(challenge: &SecretToken, code: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(b"portal-engine/access-code\0");
    h.update(challenge.hash().0);
    h.update(challenge.derive("access-code").as_bytes());
    h.update(code.as_bytes());
    TokenHash(h.finalize().into())
}

/// A six-digit code from 8 random bytes (the modulo bias over 2^64 is below 10^-13).
#[must_use]
pub fn code_from_bytes(bytes: [u8; 8]) -> String {
    format!("{:06}", u64::from_le_bytes(bytes) % 1_000_000)
}

/// Whether `text` has the shape of a code (six ASCII digits), before anything is looked up.
#[must_use]
pub fn is_code_shaped(text: &str) -> bool {
    text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The attempt counter of a challenge token (existing or not), for
/// [`crate::storage::AuthRepo::count_sign_in_attempt`] with the fixed window start
/// [`DateTime::UNIX_EPOCH`]: the count never resets, a challenge lives 30 minutes.
#[must_use]
pub fn code_attempt_key(challenge: &TokenHash) -> String {
    format!("access-code:{}", URL_SAFE_NO_PAD.encode(challenge.0))
}

/// The name of the cookie that remembers a browser verified for `contact`.
#[must_use]
pub fn verified_browser_cookie_name(contact: ContactId) -> String {
    format!("portal_vb_{}", contact.as_uuid().simple())
}

fn verified_browser_message(tenant: TenantId, contact: ContactId, expires: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(tenant.as_uuid().as_bytes());
    m.extend_from_slice(contact.as_uuid().as_bytes());
    m.extend_from_slice(&expires.to_be_bytes());
    m
}

/// The value of the verified-browser cookie of `contact`: its expiry (Unix seconds) and a MAC
/// over tenant, contact and expiry under the master key's verified-browser key.
#[must_use]
pub fn verified_browser_value(key: &MasterKey, tenant: TenantId, contact: ContactId, expires: DateTime<Utc>) -> String {
    let at = expires.timestamp();
    let mac = key.mac(
        KeyPurpose::VerifiedBrowser,
        &verified_browser_message(tenant, contact, at),
    );
    format!("v1.{at}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Whether `value` is a verified-browser cookie of `contact` in `tenant` that has not expired at
/// `now`. Any malformed value is simply not verified.
#[must_use]
pub fn verified_browser_ok(
    key: &MasterKey,
    tenant: TenantId,
    contact: ContactId,
    value: &str,
    now: DateTime<Utc>,
) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(at), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(at) = at.parse::<i64>() else { return false };
    let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
        return false;
    };
    at > now.timestamp()
        && key.verify_mac(
            KeyPurpose::VerifiedBrowser,
            &verified_browser_message(tenant, contact, at),
            &mac,
        )
}

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
    fn codes_are_six_digits_and_hashed_with_their_challenge() {
        assert_eq!(code_from_bytes([0; 8]), "000000");
        assert_eq!(code_from_bytes(u64::MAX.to_le_bytes()).len(), 6);
        assert!(is_code_shaped("012345"));
        for bad in ["12345", "1234567", "12a456", "١٢٣٤٥٦", ""] {
            assert!(!is_code_shaped(bad), "{bad}");
        }
        let (a, b) = (SecretToken::from_bytes([1; 32]), SecretToken::from_bytes([2; 32]));
        assert_eq!(code_hash(&a, "123456"), code_hash(&a, "123456"));
        assert_ne!(code_hash(&a, "123456"), code_hash(&a, "123457"));
        assert_ne!(code_hash(&a, "123456"), code_hash(&b, "123456"));
    }

    #[test]
    fn verified_browser_cookies_bind_tenant_contact_and_expiry() {
        let key = MasterKey::from_material(&[4; 32]).unwrap();
        let other_key = MasterKey::from_material(&[5; 32]).unwrap();
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let (t, c) = (
            TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            ContactId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        let other_c = ContactId::from_uuid(uuid::Uuid::from_u128(3));
        let v = verified_browser_value(&key, t, c, now + VERIFIED_BROWSER_LIFETIME);
        assert!(verified_browser_ok(&key, t, c, &v, now));
        assert!(!verified_browser_ok(&key, t, c, &v, now + VERIFIED_BROWSER_LIFETIME));
        assert!(!verified_browser_ok(&key, t, other_c, &v, now));
        assert!(!verified_browser_ok(
            &key,
            TenantId::from_uuid(uuid::Uuid::from_u128(9)),
            c,
            &v,
            now
        ));
        assert!(!verified_browser_ok(&other_key, t, c, &v, now));
        // a later expiry with the old MAC does not verify
        let mac = v.rsplit('.').next().unwrap();
        let forged = format!("v1.{}.{mac}", (now + Duration::days(3650)).timestamp());
        assert!(!verified_browser_ok(&key, t, c, &forged, now));
        for junk in ["", "v1", "v1.x.y", "v2.1.AAAA", "v1.99999999999.!!"] {
            assert!(!verified_browser_ok(&key, t, c, junk, now), "{junk}");
        }
    }

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
