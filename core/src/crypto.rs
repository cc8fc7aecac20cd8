//! Keys derived from the master key, and sealing of secrets at rest (MAIL-3, later TSK-6 and
//! PSA-7).
//!
//! # Decisions
//!
//! - The deployment configures one master key (at least 32 bytes of key material, typically 32
//!   random bytes in base64). Nothing is ever encrypted under it directly: each purpose gets its
//!   own key, derived with HKDF-SHA256 (`info` = `portal-engine/<purpose>`), so a key for the
//!   outbox can never open a credential and the verified-browser cookie's MAC key is independent
//!   of both.
//! - Sealing is XChaCha20-Poly1305: a 24-byte nonce drawn by the caller (outside the core; 24
//!   random bytes never repeat in practice), associated data binding the value to its row (for
//!   the outbox: tenant id and message id), and the key id stored with each value, so a rotated
//!   key is recognised instead of producing garbage.
//! - The key id is the first 8 bytes (hex) of an HKDF output of the master key; it names the key
//!   without revealing anything of it.
//! - The core stays pure: it never draws the nonce itself, the caller passes it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The least key material a master key is made from.
pub const MIN_MASTER_KEY_BYTES: usize = 32;

/// What a key derived from the master key is for. Each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Secrets in queued messages: link tokens and one-time codes (MAIL-3).
    Outbox,
    /// The MAC of the contact's verified-browser cookie (CON-5).
    VerifiedBrowser,
    /// The MAC of one-click unsubscribe links (BYD-5).
    Unsubscribe,
    /// The MAC of staff password reset links.
    PasswordReset,
}

impl KeyPurpose {
    const fn label(self) -> &'static str {
        match self {
            Self::Outbox => "outbox/v1",
            Self::VerifiedBrowser => "verified-browser/v1",
            Self::Unsubscribe => "unsubscribe/v1",
            Self::PasswordReset => "password-reset/v1",
        }
    }
}

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The master key material is too short.
    #[error("the master key must be at least {MIN_MASTER_KEY_BYTES} bytes of key material, got {0}")]
    ShortMasterKey(usize),
    /// The value was sealed under another key (a rotated or foreign master key).
    #[error("sealed under key {found}, this deployment has key {expected}")]
    UnknownKey {
        /// The key id of this deployment.
        expected: String,
        /// The key id stored with the value.
        found: String,
    },
    /// The ciphertext, nonce or associated data does not authenticate.
    #[error("the sealed value does not authenticate (tampered, or bound to another row)")]
    Tampered,
}

/// The deployment's master key. Its bytes never leave this type; `Debug` shows the key id only.
pub struct MasterKey {
    prk: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn expand(prk: &[u8; 32], info: &str) -> Zeroizing<[u8; 32]> {
    // `from_prk` accepts any PRK of at least the hash length; ours is exactly 32 bytes.
    let hk = Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK is long enough for HKDF-SHA256");
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(format!("portal-engine/{info}").as_bytes(), okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

impl MasterKey {
    /// The master key made from `material` (at least [`MIN_MASTER_KEY_BYTES`] bytes of
    /// high-entropy key material).
    ///
    /// # Errors
    ///
    /// [`CryptoError::ShortMasterKey`] when `material` is too short.
    pub fn from_material(material: &[u8]) -> Result<Self, CryptoError> {
        if material.len() < MIN_MASTER_KEY_BYTES {
            return Err(CryptoError::ShortMasterKey(material.len()));
        }
        let (prk, _) = Hkdf::<Sha256>::extract(Some(b"portal-engine master key"), material);
        let prk_bytes = Zeroizing::new(<[u8; 32]>::from(prk));
        let id_bytes = expand(&prk_bytes, "key-id");
        let id = id_bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { prk: prk_bytes, id })
    }

    /// The key id stored with every value sealed under a key of this master key.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The sealing key of a purpose.
    #[must_use]
    pub fn sealing_key(&self, purpose: KeyPurpose) -> SealingKey {
        SealingKey {
            key: expand(&self.prk, purpose.label()),
            id: self.id.clone(),
        }
    }

    /// The MAC of `message` under the key of `purpose` (HMAC-SHA256).
    #[must_use]
    pub fn mac(&self, purpose: KeyPurpose, message: &[u8]) -> [u8; 32] {
        let key = expand(&self.prk, purpose.label());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `message` under the key of `purpose`, compared in constant
    /// time.
    #[must_use]
    pub fn verify_mac(&self, purpose: KeyPurpose, message: &[u8], tag: &[u8]) -> bool {
        let key = expand(&self.prk, purpose.label());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }

    /// Whether `tag` (at least 16 bytes) is the start of the MAC of `message` under the key of
    /// `purpose`, compared in constant time: for tokens that carry a truncated MAC.
    #[must_use]
    pub fn verify_mac_prefix(&self, purpose: KeyPurpose, message: &[u8], tag: &[u8]) -> bool {
        let key = expand(&self.prk, purpose.label());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key length");
        mac.update(message);
        tag.len() >= 16 && mac.verify_truncated_left(tag).is_ok()
    }
}

/// A value sealed with XChaCha20-Poly1305, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The id of the master key it was sealed under.
    pub key_id: String,
    /// The 24-byte nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A key that seals and opens values of one purpose.
pub struct SealingKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Seals `plaintext` bound to `aad` with `nonce` (24 fresh random bytes from the caller).
    #[must_use]
    pub fn seal(&self, nonce: [u8; 24], aad: &[u8], plaintext: &[u8]) -> Sealed {
        let ciphertext = self
            .cipher()
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        Sealed {
            key_id: self.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a value sealed by [`Self::seal`] with the same `aad`.
    ///
    /// # Errors
    ///
    /// [`CryptoError::UnknownKey`] when it was sealed under another master key,
    /// [`CryptoError::Tampered`] when it does not authenticate.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.key_id != self.id {
            return Err(CryptoError::UnknownKey {
                expected: self.id.clone(),
                found: sealed.key_id.clone(),
            });
        }
        let nonce: [u8; 24] = sealed.nonce.as_slice().try_into().map_err(|_| CryptoError::Tampered)?;
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_material(&[byte; 32]).unwrap()
    }

    #[test]
    fn short_material_is_refused() {
        assert_eq!(
            MasterKey::from_material(&[1; 31]).unwrap_err(),
            CryptoError::ShortMasterKey(31)
        );
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_aad() {
        let k = key(7).sealing_key(KeyPurpose::Outbox);
        let sealed = k.seal([3; 24], b"tenant/message", b"the token");
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"the token"));
        assert_eq!(k.open(&sealed, b"tenant/message").unwrap().as_slice(), b"the token");
        assert_eq!(k.open(&sealed, b"tenant/other"), Err(CryptoError::Tampered));
        let mut flipped = sealed;
        flipped.ciphertext[0] ^= 1;
        assert_eq!(k.open(&flipped, b"tenant/message"), Err(CryptoError::Tampered));
    }

    #[test]
    fn purposes_and_master_keys_do_not_mix() {
        let m = key(7);
        let sealed = m.sealing_key(KeyPurpose::Outbox).seal([0; 24], b"a", b"x");
        // same key id, other purpose: does not authenticate
        assert_eq!(
            m.sealing_key(KeyPurpose::VerifiedBrowser).open(&sealed, b"a"),
            Err(CryptoError::Tampered)
        );
        // other master key: recognised by its id
        assert!(matches!(
            key(8).sealing_key(KeyPurpose::Outbox).open(&sealed, b"a"),
            Err(CryptoError::UnknownKey { .. })
        ));
        assert_ne!(key(7).key_id(), key(8).key_id());
        assert_eq!(key(7).key_id(), m.key_id());
    }

    #[test]
    fn macs_verify_only_their_message_and_purpose() {
        let m = key(1);
        let tag = m.mac(KeyPurpose::VerifiedBrowser, b"contact-1");
        assert!(m.verify_mac(KeyPurpose::VerifiedBrowser, b"contact-1", &tag));
        assert!(!m.verify_mac(KeyPurpose::VerifiedBrowser, b"contact-2", &tag));
        assert!(!m.verify_mac(KeyPurpose::Outbox, b"contact-1", &tag));
        assert!(!key(2).verify_mac(KeyPurpose::VerifiedBrowser, b"contact-1", &tag));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let m = key(0xAB);
        let shown = format!("{m:?} {:?}", m.sealing_key(KeyPurpose::Outbox));
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains(m.key_id()));
    }
}
