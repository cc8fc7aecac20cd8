//! Staff sign-in (AUTH-6): secret tokens and their hashes, passwords, sessions and the sign-in
//! rate limit. Pure: the caller brings the random bytes and the time, and runs the (deliberately
//! slow) password functions off its async executor.
//!
//! # Decisions
//!
//! - A session id is a [`SecretToken`]: 32 random bytes, shown once as base64url, stored only as
//!   its SHA-256 ([`TokenHash`]) and looked up by that hash. A leaked database therefore opens no
//!   session.
//! - Passwords are hashed with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1) into a
//!   PHC string that carries its own parameters and salt.
//! - A staff session lives [`STAFF_SESSION_LIFETIME`] from sign-in (a working day); sign-out ends it
//!   at once.
//! - Sign-in attempts are counted per account and per client address in fixed windows of
//!   [`SIGN_IN_WINDOW_MINUTES`]; past [`SIGN_IN_LIMIT_PER_ACCOUNT`] or [`SIGN_IN_LIMIT_PER_ADDRESS`]
//!   attempts in a window the password is not even checked.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ValueError;
use crate::id::{StaffUserId, TenantId};

/// 32 random bytes: a session id or an access token. Never stored; see [`TokenHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken([u8; 32]);

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

impl SecretToken {
    /// The token made of `bytes`, which must come from a cryptographically secure source.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the base64url form (no padding) of [`Self::encode`].
    ///
    /// # Errors
    ///
    /// When `text` is not 43 base64url characters encoding 32 bytes.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::InvalidCharacters {
            field: "token",
            allowed: "43 base64url characters",
        };
        if text.len() != 43 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        bytes.try_into().map(Self).map_err(|_| invalid())
    }

    /// The base64url form (43 characters, no padding), for a cookie, a header or a link.
    #[must_use]
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A fresh token for one member of a batch (one per contact of an activation, say),
    /// derived from this token as a secret seed: HMAC-SHA256 keyed by the seed over a label. A
    /// pure command gets one seed from its caller and needs no RNG; tokens of different labels
    /// are independent, and no token reveals the seed or another token.
    #[must_use]
    pub fn derive_token(&self, label: &[u8]) -> Self {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"portal-engine/derived-token/");
        mac.update(label);
        Self(mac.finalize().into_bytes().into())
    }

    /// The SHA-256 of the token's bytes: the only form that is stored.
    #[must_use]
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0).into())
    }

    /// A value derived from the token for another purpose (for example the CSRF token of a
    /// session): SHA-256 of a purpose label and the token, base64url. Knowing it reveals neither
    /// the token nor its stored hash.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"portal-engine/");
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.0);
        URL_SAFE_NO_PAD.encode(h.finalize())
    }
}

/// The SHA-256 of a [`SecretToken`], as stored and looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The 32 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes.
    ///
    /// # Errors
    ///
    /// When `bytes` is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ValueError> {
        bytes.try_into().map(Self).map_err(|_| ValueError::InvalidCharacters {
            field: "token_hash",
            allowed: "32 bytes",
        })
    }
}

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work an attacker can ask).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A password as typed, validated for length. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// A new password: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`] characters.
    ///
    /// # Errors
    ///
    /// When it is too short or too long.
    pub fn new(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        let n = text.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(ValueError::TooShort {
                field: "password",
                min: MIN_PASSWORD_CHARS,
                actual: n,
            });
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(ValueError::TooLong {
                field: "password",
                max: MAX_PASSWORD_CHARS,
                actual: n,
            });
        }
        Ok(Self(text))
    }

    /// The password as typed.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

fn owasp_argon2() -> Argon2<'static> {
    // The OWASP parameters are valid by construction.
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("the OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with argon2id at the OWASP parameters and the caller's random `salt` into a
/// PHC string. Slow on purpose (tens of milliseconds): call it off the async executor.
#[must_use]
pub fn hash_password(password: &Password, salt: &[u8; 16]) -> String {
    // A 16-byte salt always encodes and argon2id with valid parameters cannot fail on it.
    #[allow(clippy::expect_used)]
    let salt = SaltString::encode_b64(salt).expect("a 16-byte salt encodes");
    #[allow(clippy::expect_used)]
    owasp_argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("argon2id hashes any password with a valid salt")
        .to_string()
}

/// Whether `password` matches the stored PHC string. A malformed stored hash never matches.
/// Slow on purpose: call it off the async executor.
#[must_use]
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A PHC hash of a password nobody knows, verified against when an account does not exist so
/// that a sign-in takes as long for an unknown email as for a wrong password.
#[must_use]
pub fn decoy_password_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$2X6mRHdExY0zOEqfwGMpb2EFwr+SgEkhJ3R9b5ZzZhE"
}

/// How long a staff session lives from sign-in.
pub const STAFF_SESSION_LIFETIME: Duration = Duration::hours(12);

/// A signed-in staff user's session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffSession {
    /// The SHA-256 of the session token.
    pub token_hash: TokenHash,
    /// Tenant.
    pub tenant_id: TenantId,
    /// The signed-in user.
    pub user_id: StaffUserId,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// When the session stops working.
    pub expires_at: DateTime<Utc>,
}

impl StaffSession {
    /// A session for `user` starting `now`, identified by `token`.
    #[must_use]
    pub fn start(token: &SecretToken, tenant_id: TenantId, user_id: StaffUserId, now: DateTime<Utc>) -> Self {
        Self {
            token_hash: token.hash(),
            tenant_id,
            user_id,
            created_at: now,
            expires_at: now + STAFF_SESSION_LIFETIME,
        }
    }

    /// Whether the session still works at `now`.
    #[must_use]
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// Length of a sign-in counting window.
pub const SIGN_IN_WINDOW_MINUTES: i64 = 15;
/// Sign-in attempts allowed per account (email) in one window.
pub const SIGN_IN_LIMIT_PER_ACCOUNT: u32 = 10;
/// Sign-in attempts allowed per client address in one window.
pub const SIGN_IN_LIMIT_PER_ADDRESS: u32 = 50;

/// How long a sign-in attempt counter, and an expired one-time-code challenge, are kept after
/// their last use before [`crate::storage::AuthRepo::purge_expired`] deletes them.
///
/// A day: longer than any counting window ([`SIGN_IN_WINDOW_MINUTES`]) and than the life of any
/// one-time-code challenge ([`crate::access::CODE_LIFETIME`]). A counter whose last attempt is
/// older than that belongs to a window that has closed, or (for the never-resetting counter of
/// a challenge token, [`crate::access::code_attempt_key`]) to a challenge that has expired, so
/// deleting it loses no count that could still refuse an attempt.
pub const ATTEMPT_RETENTION: Duration = Duration::days(1);

/// The start of the counting window `now` falls in.
#[must_use]
pub fn sign_in_window(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::minutes(SIGN_IN_WINDOW_MINUTES))
        .unwrap_or(now)
}

/// The counter key of an account (its email, lower-cased by [`crate::value::Email`]).
#[must_use]
pub fn account_key(email: &crate::value::Email) -> String {
    format!("account:{}", email.as_str())
}

/// The counter key of a client address.
#[must_use]
pub fn address_key(address: std::net::IpAddr) -> String {
    format!("address:{address}")
}

/// When the next window starts, for a `Retry-After` answer.
#[must_use]
pub fn retry_after_seconds(now: DateTime<Utc>) -> i64 {
    let next = sign_in_window(now) + Duration::minutes(SIGN_IN_WINDOW_MINUTES);
    (next - now).num_seconds().max(1)
}

/// Normalises a `Host` header value into the key of a tenant host (BRD-2): lower case, the port
/// and a trailing dot removed. `None` when it is not a plausible host name.
#[must_use]
pub fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim();
    // Strip a port, minding bracketed IPv6 literals.
    let name = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(name)
}

/// How long a staff password reset link works.
pub const PASSWORD_RESET_LIFETIME: Duration = Duration::hours(1);

const RESET_BODY: usize = 16 + 8;
const RESET_TAG: usize = 16;

fn reset_message(tenant: TenantId, body: &[u8], current_hash: Option<&str>) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + RESET_BODY + 32);
    m.extend_from_slice(tenant.as_uuid().as_bytes());
    m.extend_from_slice(body);
    // Bound to the password it replaces: once the password changes (this link used, or any
    // other change), the link no longer verifies. No row is needed to make it single-use.
    m.extend_from_slice(&Sha256::digest(current_hash.unwrap_or("").as_bytes()));
    m
}

/// A staff password reset link's token: the user, its expiry and a 128-bit MAC over them, the
/// tenant and a digest of the user's current password hash, under the master key's
/// password-reset key. It stops working when it expires or when the password changes.
#[must_use]
pub fn password_reset_token(
    key: &crate::crypto::MasterKey,
    tenant: TenantId,
    user: StaffUserId,
    expires: DateTime<Utc>,
    current_hash: Option<&str>,
) -> String {
    let mut body = Vec::with_capacity(RESET_BODY + RESET_TAG);
    body.extend_from_slice(user.as_uuid().as_bytes());
    body.extend_from_slice(&expires.timestamp().to_be_bytes());
    let mac = key.mac(
        crate::crypto::KeyPurpose::PasswordReset,
        &reset_message(tenant, &body, current_hash),
    );
    body.extend_from_slice(&mac[..RESET_TAG]);
    URL_SAFE_NO_PAD.encode(body)
}

/// The user a reset token names and its expiry, read without checking it (to look up the
/// user's current hash); `None` when it is not shaped like one.
#[must_use]
pub fn password_reset_claims(text: &str) -> Option<(StaffUserId, DateTime<Utc>)> {
    if text.len() > 64 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    if bytes.len() != RESET_BODY + RESET_TAG {
        return None;
    }
    let user = StaffUserId::from_uuid(uuid::Uuid::from_slice(&bytes[..16]).ok()?);
    let at = i64::from_be_bytes(bytes[16..RESET_BODY].try_into().ok()?);
    Some((user, DateTime::from_timestamp(at, 0)?))
}

/// Whether `text` is a reset token of `tenant` for the password whose hash is `current_hash`,
/// not expired at `now`.
#[must_use]
pub fn password_reset_ok(
    key: &crate::crypto::MasterKey,
    tenant: TenantId,
    text: &str,
    current_hash: Option<&str>,
    now: DateTime<Utc>,
) -> bool {
    let Some((_, expires)) = password_reset_claims(text) else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(text) else {
        return false;
    };
    let (body, tag) = bytes.split_at(RESET_BODY);
    expires > now
        && key.verify_mac_prefix(
            crate::crypto::KeyPurpose::PasswordReset,
            &reset_message(tenant, body, current_hash),
            tag,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hash_is_sha256_of_the_bytes() {
        let t = SecretToken::from_bytes([7; 32]);
        let text = t.encode();
        assert_eq!(text.len(), 43);
        assert_eq!(SecretToken::parse(&text).expect("parses"), t);
        assert_eq!(t.hash().0, <[u8; 32]>::from(Sha256::digest([7u8; 32])));
        assert_ne!(t.derive("csrf"), t.derive("other"));
        assert!(!format!("{t:?}").contains(&text));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in ["", "abc", &"A".repeat(44), &"*".repeat(43), &"A".repeat(42)] {
            assert!(SecretToken::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_owasp_and_verify() {
        let pw = Password::new("correct horse battery").expect("valid");
        let stored = hash_password(&pw, &[1; 16]);
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify_password("correct horse battery", &stored));
        assert!(!verify_password("correct horse batterx", &stored));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(
            PasswordHash::new(decoy_password_hash()).is_ok(),
            "the decoy is a well-formed hash"
        );
        assert!(!verify_password("anything", decoy_password_hash()));
        assert!(Password::new("short").is_err());
        assert!(Password::new("x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert!(!format!("{pw:?}").contains("horse"));
    }

    #[test]
    fn sessions_expire_after_their_lifetime() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let s = StaffSession::start(
            &SecretToken::from_bytes([1; 32]),
            TenantId::from_uuid(uuid::Uuid::nil()),
            StaffUserId::from_uuid(uuid::Uuid::nil()),
            now,
        );
        assert!(s.is_live(now + STAFF_SESSION_LIFETIME - Duration::seconds(1)));
        assert!(!s.is_live(now + STAFF_SESSION_LIFETIME));
    }

    #[test]
    fn sign_in_windows_are_fixed_and_retry_after_points_at_the_next() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::minutes(20);
        assert_eq!(sign_in_window(now), DateTime::<Utc>::UNIX_EPOCH + Duration::minutes(15));
        assert_eq!(retry_after_seconds(now), 600);
    }

    #[test]
    fn counters_outlive_every_window_and_challenge() {
        assert!(ATTEMPT_RETENTION > Duration::minutes(SIGN_IN_WINDOW_MINUTES));
        assert!(ATTEMPT_RETENTION > crate::access::CODE_LIFETIME);
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalise_host("Portal.Example.COM:8080").as_deref(),
            Some("portal.example.com")
        );
        assert_eq!(
            normalise_host("portal.example.com.").as_deref(),
            Some("portal.example.com")
        );
        assert_eq!(normalise_host("127.0.0.1:3000").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalise_host("[::1]:3000").as_deref(), Some("[::1]"));
        assert_eq!(normalise_host("").as_deref(), None);
        assert_eq!(normalise_host("bad host").as_deref(), None);
        assert_eq!(normalise_host("evil/path").as_deref(), None);
    }

    #[test]
    fn password_reset_tokens_expire_and_die_with_the_password() {
        let key = crate::crypto::MasterKey::from_material(&[3; 32]).expect("key");
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
        let user = StaffUserId::from_uuid(uuid::Uuid::from_u128(2));
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let expires = now + PASSWORD_RESET_LIFETIME;
        let t = password_reset_token(&key, tenant, user, expires, Some("$argon2id$old"));
        assert_eq!(password_reset_claims(&t), Some((user, expires)));
        assert!(password_reset_ok(&key, tenant, &t, Some("$argon2id$old"), now));
        // Expired, another password (used already), another tenant, another key.
        assert!(!password_reset_ok(&key, tenant, &t, Some("$argon2id$old"), expires));
        assert!(!password_reset_ok(&key, tenant, &t, Some("$argon2id$new"), now));
        assert!(!password_reset_ok(&key, tenant, &t, None, now));
        let other_tenant = TenantId::from_uuid(uuid::Uuid::from_u128(9));
        assert!(!password_reset_ok(&key, other_tenant, &t, Some("$argon2id$old"), now));
        let other_key = crate::crypto::MasterKey::from_material(&[4; 32]).expect("key");
        assert!(!password_reset_ok(&other_key, tenant, &t, Some("$argon2id$old"), now));
        // A later expiry written into the token breaks its MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).expect("base64");
        bytes[23] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        assert!(!password_reset_ok(&key, tenant, &forged, Some("$argon2id$old"), now));
        for junk in ["", "x", "not a token at all", &"A".repeat(500)] {
            assert!(!password_reset_ok(&key, tenant, junk, Some("$argon2id$old"), now));
            assert_eq!(password_reset_claims(junk), None);
        }
    }
}
