//! The master key: read from the configuration (base64 of at least 32 bytes), or for the demo
//! kept in a file beside the working directory so queued mail survives a restart.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use portal_core::crypto::{MIN_MASTER_KEY_BYTES, MasterKey};
use portal_core::storage::Entropy;

use crate::config::Secret;

/// Where `serve --demo` keeps its master key when none is configured.
pub const DEMO_KEY_FILE: &str = ".portal-master-key";

/// How to make a key, for error messages.
const HOW: &str = "generate one with `openssl rand -base64 32` and set PORTAL_MASTER_KEY";

/// Decodes a configured master key: base64 (standard or URL-safe, padded or not) of at least
/// 32 bytes.
///
/// # Errors
///
/// When the value is not base64 or decodes to fewer than 32 bytes.
pub fn parse_master_key(value: &Secret) -> anyhow::Result<MasterKey> {
    let text = value.expose().trim();
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .with_context(|| format!("PORTAL_MASTER_KEY is not base64; {HOW}"))?;
    if bytes.len() < MIN_MASTER_KEY_BYTES {
        bail!(
            "PORTAL_MASTER_KEY decodes to {} bytes, at least {MIN_MASTER_KEY_BYTES} are needed; {HOW}",
            bytes.len()
        );
    }
    Ok(MasterKey::from_material(&bytes)?)
}

/// The demo's master key: read from `path`, or made from `entropy` and written there (mode 0600)
/// on the first start.
///
/// # Errors
///
/// When the file cannot be read or written, or holds no valid key.
pub fn demo_master_key(path: &Path, entropy: &dyn Entropy) -> anyhow::Result<MasterKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return parse_master_key(&Secret::new(text))
            .with_context(|| format!("the demo master key in {} is not valid", path.display()));
    }
    let mut bytes = [0u8; 32];
    entropy.fill(&mut bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", STANDARD.encode(bytes)).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(
        file = %path.display(),
        "no PORTAL_MASTER_KEY is set: the demo made a master key and keeps it in this file; a real deployment sets PORTAL_MASTER_KEY"
    );
    Ok(MasterKey::from_material(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_base64_of_32_bytes() {
        let good = STANDARD.encode([7u8; 32]);
        let key = parse_master_key(&Secret::new(good)).unwrap();
        let url_safe = parse_master_key(&Secret::new(URL_SAFE_NO_PAD.encode([7u8; 32]))).unwrap();
        assert_eq!(key.key_id(), url_safe.key_id());
        let short = parse_master_key(&Secret::new(STANDARD.encode([7u8; 31]))).unwrap_err();
        assert!(short.to_string().contains("31 bytes"), "{short}");
        let junk = parse_master_key(&Secret::new("not base64 at all!".to_owned())).unwrap_err();
        assert!(junk.to_string().contains("not base64"), "{junk}");
    }

    #[test]
    fn the_demo_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEMO_KEY_FILE);
        let entropy = |buf: &mut [u8]| buf.fill(3);
        let first = demo_master_key(&path, &entropy).unwrap();
        let again = demo_master_key(&path, &|buf: &mut [u8]| buf.fill(9)).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
