//! One `.eml` file per message, for development and demos.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use portal_core::mail::{Delivered, OutgoingEmail, SendError, Transport};

use crate::config::ConfigError;
use crate::mime::build_message;

/// Writes each email as `{dir}/{idempotency key}.eml` (the message id, a UUID): the full RFC 5322
/// text, built exactly as [`SmtpTransport`](crate::SmtpTransport) would send it (MAIL-4).
///
/// Each file is written to a temporary file in the same directory, flushed to disk and renamed
/// over its final name, so a reader never sees half a message and a redelivery of the same
/// message replaces the same file (idempotent). `provider_id` is the file's path.
#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir`, created (with its parents) if missing.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Directory`] when it cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| ConfigError::Directory {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether `key` is safe as a file name: letters, digits, `-`, `_` and `.`, not starting with `.`.
fn safe_file_stem(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".portal-mail-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivered, SendError> {
        if !safe_file_stem(&email.idempotency_key) {
            return Err(SendError::Permanent(format!(
                "idempotency key {:?} cannot name a file",
                email.idempotency_key
            )));
        }
        let bytes = build_message(email)?.formatted();
        let dir = self.dir.clone();
        let path = dir.join(format!("{}.eml", email.idempotency_key));
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &bytes))
            .await
            .map_err(|e| SendError::Transient(format!("the file writer stopped: {e}")))?
            .map_err(|e| SendError::Transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(Delivered {
            provider_id: Some(path.display().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use mail_parser::MessageParser;
    use portal_core::mail::MailKind;

    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn writes_a_parseable_eml_and_overwrites_it_on_redelivery() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTransport::new(dir.path().join("out")).unwrap();
        let mut email = testing::render(MailKind::ContactInvitation);
        let delivered = t.send(&email).await.unwrap();
        let path = t.dir().join(format!("{}.eml", email.idempotency_key));
        assert_eq!(delivered.provider_id, Some(path.display().to_string()));
        let first = std::fs::read(&path).unwrap();
        let m = MessageParser::default().parse(&first).unwrap();
        assert_eq!(m.subject(), Some(email.subject.as_str()));
        assert_eq!(m.message_id(), Some(email.message_id.as_str()));
        assert!(m.body_text(0).unwrap().contains(testing::TOKEN));

        email.subject = "Second attempt".to_owned();
        t.send(&email).await.unwrap();
        let names: Vec<_> = std::fs::read_dir(t.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![format!("{}.eml", email.idempotency_key)],
            "no temp files left"
        );
        let second = std::fs::read(&path).unwrap();
        let m = MessageParser::default().parse(&second).unwrap();
        assert_eq!(m.subject(), Some("Second attempt"));
        assert_eq!(m.message_id(), Some(email.message_id.as_str()));
    }

    #[tokio::test]
    async fn refuses_a_key_that_is_not_a_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTransport::new(dir.path()).unwrap();
        let mut email = testing::render(MailKind::TaskSummary);
        email.idempotency_key = "../escape".to_owned();
        assert!(matches!(t.send(&email).await, Err(SendError::Permanent(_))));
        assert!(!dir.path().parent().unwrap().join("escape.eml").exists());
    }
}
