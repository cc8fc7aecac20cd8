//! Building a transport from a URL, and the errors of configuration.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portal_core::mail::Transport;
use url::{Host, Url};

use crate::{FileTransport, PostmarkTransport, SmtpTransport};

/// A transport or renderer could not be built from its configuration. Messages never contain a
/// password or token from the URL.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL does not parse or does not have the parts its scheme needs.
    #[error("invalid mail URL: {0}")]
    InvalidUrl(String),
    /// A scheme no transport handles.
    #[error("unsupported mail transport scheme `{0}` (use smtp, smtps, postmark, postmark+http or file)")]
    UnsupportedScheme(String),
    /// Plain text (no TLS) to a host that is not on this machine, without `insecure=true`.
    #[error(
        "refusing to send mail in clear text to {host}: `tls=none` (or `postmark+http`) is for loopback hosts; \
         add `insecure=true` to the URL to allow it anyway"
    )]
    PlaintextRefused {
        /// The host.
        host: String,
    },
    /// The TLS client could not be set up (for example the platform's trust store is unusable).
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("HTTP client set-up failed: {0}")]
    Http(String),
    /// The directory of the file transport cannot be created.
    #[error("mail directory {} cannot be used: {source}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The public URL given to the renderer is not an `http(s)://` URL with a host.
    #[error("invalid public URL: {0}")]
    PublicUrl(String),
}

/// Settings shared by the network transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Longest time one send may take: connecting, TLS, the SMTP dialogue or the HTTP exchange.
    /// A send that takes longer fails as transient. Default 30 s.
    pub timeout: Duration,
    /// Most SMTP connections kept open and reused (the pool). Default 4.
    pub smtp_pool_size: u32,
    /// PEM certificates trusted beside the system's when an SMTP relay's TLS certificate is
    /// checked: the root of a private CA, for a relay inside the MSP's network. Empty by default.
    pub smtp_root_certificates: Vec<Vec<u8>>,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            smtp_pool_size: 4,
            smtp_root_certificates: Vec::new(),
        }
    }
}

/// Builds the transport a URL names:
///
/// | URL | transport |
/// |---|---|
/// | `smtp://[user:password@]host[:port]` | [`SmtpTransport`], STARTTLS required, port 587 by default |
/// | `smtp://host:port?tls=none` | [`SmtpTransport`] in clear text: loopback hosts only, unless `&insecure=true` is added |
/// | `smtps://[user:password@]host[:port]` | [`SmtpTransport`], implicit TLS, port 465 by default |
/// | `postmark://<server-token>@api.postmarkapp.com` | [`PostmarkTransport`] over HTTPS |
/// | `postmark+http://<token>@127.0.0.1:PORT` | [`PostmarkTransport`] over plain HTTP, for fakes in tests: loopback only unless `?insecure=true` |
/// | `file:///absolute/dir` or `file://./relative/dir` | [`FileTransport`], one `<message id>.eml` per message |
///
/// User names, passwords and tokens are percent-decoded (write `@` as `%40`). Unknown query
/// parameters are refused, so a typo never silently weakens TLS.
///
/// # Errors
///
/// [`ConfigError`] naming what is wrong; it never repeats a password or token.
pub fn transport_from_url(url: &str, options: &TransportOptions) -> Result<Arc<dyn Transport>, ConfigError> {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("smtp" | "smtps") => Ok(Arc::new(SmtpTransport::from_url(url, options)?)),
        Some("postmark" | "postmark+http") => Ok(Arc::new(PostmarkTransport::from_url(url, options)?)),
        Some("file") => Ok(Arc::new(FileTransport::new(file_path(url)?)?)),
        Some(other) => Err(ConfigError::UnsupportedScheme(other.to_owned())),
        None => Err(ConfigError::InvalidUrl("expected scheme://...".to_owned())),
    }
}

/// The directory of a `file://` URL.
fn file_path(url: &str) -> Result<PathBuf, ConfigError> {
    let rest = &url["file://".len()..];
    if rest.starts_with('/') {
        Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| ConfigError::InvalidUrl("a file:// URL needs a directory path".to_owned()))
    } else if rest.starts_with("./") || rest.starts_with("../") {
        Ok(PathBuf::from(rest))
    } else {
        Err(ConfigError::InvalidUrl(
            "use file:///absolute/dir or file://./relative/dir".to_owned(),
        ))
    }
}

/// A parsed URL whose parse error never shows the URL itself (it may hold a password).
pub(crate) fn parse_url(url: &str) -> Result<Url, ConfigError> {
    Url::parse(url).map_err(|e| ConfigError::InvalidUrl(e.to_string()))
}

/// The host of `url` in the form a socket connect takes (no brackets around IPv6).
pub(crate) fn host_of(url: &Url) -> Result<String, ConfigError> {
    match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => Ok(d.to_owned()),
        Some(Host::Ipv4(ip)) => Ok(ip.to_string()),
        Some(Host::Ipv6(ip)) => Ok(ip.to_string()),
        _ => Err(ConfigError::InvalidUrl("the URL has no host".to_owned())),
    }
}

/// Whether `host` is this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Decodes `%XX` escapes (as in the user info of a URL).
pub(crate) fn percent_decode(text: &str) -> Result<String, ConfigError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ConfigError::InvalidUrl("a %-escape in the user info is malformed".to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConfigError::InvalidUrl("the user info is not UTF-8".to_owned()))
}

/// A `true`/`false` query value.
pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::InvalidUrl(format!("`{name}` must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_their_transport() {
        let o = TransportOptions::default();
        assert!(transport_from_url("smtp://mail.example.com", &o).is_ok());
        assert!(transport_from_url("smtps://u:p@mail.example.com:2465", &o).is_ok());
        assert!(transport_from_url("postmark://tok@api.postmarkapp.com", &o).is_ok());
        assert!(transport_from_url("postmark+http://tok@127.0.0.1:9", &o).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("mail").display());
        assert!(transport_from_url(&url, &o).is_ok());
        assert!(dir.path().join("mail").is_dir());
        assert!(matches!(
            transport_from_url("ftp://x", &o).err(),
            Some(ConfigError::UnsupportedScheme(s)) if s == "ftp"
        ));
        assert!(matches!(
            transport_from_url("nothing", &o).err(),
            Some(ConfigError::InvalidUrl(_))
        ));
        assert!(matches!(
            transport_from_url("file://relative", &o).err(),
            Some(ConfigError::InvalidUrl(_))
        ));
    }

    #[test]
    fn file_urls_take_absolute_and_dot_relative_paths() {
        assert_eq!(
            file_path("file:///var/mail/portal").unwrap(),
            PathBuf::from("/var/mail/portal")
        );
        assert_eq!(file_path("file:///tmp/a%20b").unwrap(), PathBuf::from("/tmp/a b"));
        assert_eq!(file_path("file://./outbox").unwrap(), PathBuf::from("./outbox"));
        assert_eq!(file_path("file://../outbox").unwrap(), PathBuf::from("../outbox"));
    }

    #[test]
    fn plaintext_postmark_is_refused_off_loopback() {
        let o = TransportOptions::default();
        let err = transport_from_url("postmark+http://sekrit@mail.example.com", &o)
            .err()
            .expect("refused");
        assert!(matches!(err, ConfigError::PlaintextRefused { .. }), "{err}");
        assert!(!err.to_string().contains("sekrit"));
        assert!(transport_from_url("postmark+http://tok@mail.example.com?insecure=true", &o).is_ok());
    }

    #[test]
    fn helpers() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.2"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mail.example.com"));
        assert!(!is_loopback("10.0.0.1"));
        assert_eq!(percent_decode("a%40b%3Ac").unwrap(), "a@b:c");
        assert!(percent_decode("a%4").is_err());
    }
}
