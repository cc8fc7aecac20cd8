//! SMTP through `lettre`: pooled connections, STARTTLS or implicit TLS with rustls (ring), and
//! the mapping of SMTP replies to transient and permanent failures.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use portal_core::mail::{Delivered, OutgoingEmail, SendError, Transport};

use crate::config::{ConfigError, TransportOptions, host_of, is_loopback, parse_bool, parse_url, percent_decode};
use crate::mime::build_message;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://...?tls=none`: clear text.
    None,
}

/// Reply codes of a failed authentication: configuration to fix, not a message to give up on.
const AUTH_FAILURE_CODES: &[&str] = &["530", "534", "535", "538"];

/// An SMTP relay (MAIL-4), built from a URL by [`SmtpTransport::from_url`].
///
/// Connections are pooled and reused; each send has the timeout of its [`TransportOptions`].
/// Failures map to [`SendError`] as follows:
///
/// - a 5xx reply ([RFC 5321 §4.2.1](https://www.rfc-editor.org/rfc/rfc5321#section-4.2.1)) is
///   permanent, except an authentication failure (530, 534, 535, 538), which is transient so
///   that messages wait while an administrator fixes the credentials;
/// - a 4xx reply, a refused or reset connection, a timeout and a TLS failure are transient.
///
/// It may be built outside a Tokio runtime: the connection pool starts with the first send,
/// which must run on a Tokio runtime.
pub struct SmtpTransport {
    builder: AsyncSmtpTransportBuilder,
    /// Built on the first send, inside the runtime (the pool spawns its idle-connection reaper).
    inner: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    server: String,
    security: Security,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("server", &self.server)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpTransport {
    fn drop(&mut self) {
        // lettre's pool closes its connections on a task it spawns when dropped, which panics
        // outside a runtime (a transport dropped after its runtime shut down). There, the open
        // connections are left to the process's end instead.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(inner) = self.inner.take()
        {
            std::mem::forget(inner);
        }
    }
}

impl SmtpTransport {
    /// A transport to the relay `url` names:
    ///
    /// - `smtp://[user:password@]host[:port]`: STARTTLS required (the send fails if the server
    ///   does not offer it), port 587 by default;
    /// - `smtps://[user:password@]host[:port]`: implicit TLS, port 465 by default;
    /// - `smtp://host[:port]?tls=none`: clear text, for a relay on this machine; refused for any
    ///   other host unless `&insecure=true` is added.
    ///
    /// Certificates are checked against the operating system's trust store.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a malformed URL, an unknown parameter, clear text to a remote host, or
    /// a TLS set-up that fails.
    pub fn from_url(url: &str, options: &TransportOptions) -> Result<Self, ConfigError> {
        let parsed = parse_url(url)?;
        let implicit = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(ConfigError::UnsupportedScheme(other.to_owned())),
        };
        let host = host_of(&parsed)?;
        let mut tls_none = false;
        let mut insecure = false;
        for (k, v) in parsed.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") => tls_none = true,
                ("tls", "starttls") if !implicit => tls_none = false,
                ("tls", "implicit") if implicit => {}
                ("tls", _) => {
                    return Err(ConfigError::InvalidUrl(if implicit {
                        "smtps:// is always implicit TLS; use smtp://...?tls=none for clear text".to_owned()
                    } else {
                        "`tls` must be `starttls` (the default) or `none`".to_owned()
                    }));
                }
                ("insecure", v) => insecure = parse_bool("insecure", v)?,
                (other, _) => return Err(ConfigError::InvalidUrl(format!("unknown parameter `{other}`"))),
            }
        }
        if tls_none && !insecure && !is_loopback(&host) {
            return Err(ConfigError::PlaintextRefused { host });
        }
        let security = match (implicit, tls_none) {
            (true, _) => Security::Implicit,
            (false, false) => Security::StartTls,
            (false, true) => Security::None,
        };
        let port = parsed.port().unwrap_or(if implicit { 465 } else { 587 });
        let builder = match security {
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| ConfigError::Tls(e.to_string()))?,
            Security::Implicit => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(|e| ConfigError::Tls(e.to_string()))?
            }
            Security::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        };
        let builder = if options.smtp_root_certificates.is_empty() || security == Security::None {
            builder
        } else {
            let mut params = TlsParameters::builder(host.clone());
            for pem in &options.smtp_root_certificates {
                // lettre reads a PEM without any certificate as an empty list: refuse it here,
                // or a mistyped file would silently trust nothing more.
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::Tls(
                        "a trusted root certificate file holds no PEM certificate".to_owned(),
                    ));
                }
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| ConfigError::Tls(format!("a trusted root certificate does not parse: {e}")))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| ConfigError::Tls(e.to_string()))?;
            builder.tls(if security == Security::Implicit {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            })
        };
        let mut builder = builder.port(port).timeout(Some(options.timeout)).pool_config(
            PoolConfig::new()
                .max_size(options.smtp_pool_size.max(1))
                .idle_timeout(Duration::from_secs(60)),
        );
        let user = percent_decode(parsed.username())?;
        if !user.is_empty() {
            let password = percent_decode(parsed.password().unwrap_or(""))?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Self {
            builder,
            inner: OnceLock::new(),
            server: format!("{host}:{port}"),
            security,
            // lettre's timeout bounds each read and write; this bounds the whole dialogue.
            timeout: options.timeout.saturating_mul(2),
        })
    }
}

/// The error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Maps a `lettre` SMTP error to a transient or permanent failure.
fn classify(e: &lettre::transport::smtp::Error, server: &str) -> SendError {
    let text = chain(e);
    if e.is_permanent() {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if AUTH_FAILURE_CODES.contains(&code.as_str()) {
            SendError::Transient(format!(
                "SMTP authentication at {server} failed ({text}); check the user and password of the SMTP URL"
            ))
        } else {
            SendError::Permanent(format!("{server} refused the message: {text}"))
        }
    } else if e.is_transient() {
        SendError::Transient(format!("{server} deferred the message: {text}"))
    } else if e.is_timeout() {
        SendError::Transient(format!("{server} timed out: {text}"))
    } else if e.is_tls() {
        SendError::Transient(format!("TLS with {server} failed: {text}"))
    } else {
        // connection refused or reset, a malformed reply, no STARTTLS offered, a pool shut down:
        // either the network or the relay's configuration, both worth another attempt.
        SendError::Transient(format!("SMTP with {server} failed: {text}"))
    }
}

/// The queue id in a `250 2.0.0 Ok: queued as ABC123` reply, if the server names one.
fn queue_id(response: &lettre::transport::smtp::response::Response) -> Option<String> {
    response.message().find_map(|line| {
        let lower = line.to_ascii_lowercase();
        let at = lower.find("queued as ")?;
        let id = line[at + "queued as ".len()..].split_whitespace().next()?;
        (!id.is_empty()).then(|| id.to_owned())
    })
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivered, SendError> {
        let message = build_message(email)?;
        let inner = self.inner.get_or_init(|| self.builder.clone().build());
        match tokio::time::timeout(self.timeout, inner.send(message)).await {
            Err(_) => Err(SendError::Transient(format!(
                "SMTP with {} took longer than {} s",
                self.server,
                self.timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(classify(&e, &self.server)),
            Ok(Ok(response)) => Ok(Delivered {
                provider_id: queue_id(&response),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use mail_parser::{MessageParser, MimeHeaders};
    use portal_core::mail::MailKind;

    use super::*;
    use crate::testing::{self, SinkMode, SmtpSink};

    fn opts() -> TransportOptions {
        TransportOptions {
            timeout: Duration::from_secs(10),
            smtp_pool_size: 2,
            smtp_root_certificates: Vec::new(),
        }
    }

    fn to(sink: &SmtpSink) -> SmtpTransport {
        SmtpTransport::from_url(&format!("smtp://127.0.0.1:{}?tls=none", sink.port), &opts()).unwrap()
    }

    #[test]
    fn urls_pick_security_ports_and_refuse_clear_text_to_remote_hosts() {
        let o = opts();
        let t = SmtpTransport::from_url("smtp://mail.example.com", &o).unwrap();
        assert_eq!(
            (t.server.as_str(), t.security),
            ("mail.example.com:587", Security::StartTls)
        );
        let t = SmtpTransport::from_url("smtps://u%40x:p%3Aw@mail.example.com", &o).unwrap();
        assert_eq!(
            (t.server.as_str(), t.security),
            ("mail.example.com:465", Security::Implicit)
        );
        let t = SmtpTransport::from_url("smtp://localhost:2525?tls=none", &o).unwrap();
        assert_eq!((t.server.as_str(), t.security), ("localhost:2525", Security::None));
        let t = SmtpTransport::from_url("smtp://[::1]:2525?tls=none", &o).unwrap();
        assert_eq!(t.server, "::1:2525");
        let err = SmtpTransport::from_url("smtp://user:hunter2@mail.example.com?tls=none", &o).unwrap_err();
        assert!(matches!(err, ConfigError::PlaintextRefused { ref host } if host == "mail.example.com"));
        assert!(!err.to_string().contains("hunter2"));
        assert!(SmtpTransport::from_url("smtp://mail.example.com?tls=none&insecure=true", &o).is_ok());
        assert!(SmtpTransport::from_url("smtps://mail.example.com?tls=none", &o).is_err());
        assert!(SmtpTransport::from_url("smtp://mail.example.com?tsl=none", &o).is_err());
        assert!(SmtpTransport::from_url("smtp://", &o).is_err());
        let shown = format!(
            "{:?}",
            SmtpTransport::from_url("smtp://u:hunter2@mail.example.com", &o).unwrap()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn delivers_a_parseable_multipart_message_with_an_ics_attachment() {
        let sink = SmtpSink::start(SinkMode::Accept);
        let email = testing::render(MailKind::MeetingInvitation);
        to(&sink).send(&email).await.unwrap();
        let mails = sink.mails();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.from, "portal@acme-it.example");
        assert_eq!(mail.to, vec!["priya@northwind.example".to_owned()]);
        let m = MessageParser::default().parse(&mail.data).unwrap();
        let from = m.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Acme IT Portal"));
        assert_eq!(from.address(), Some("portal@acme-it.example"));
        assert_eq!(
            m.to().unwrap().first().unwrap().address(),
            Some("priya@northwind.example")
        );
        assert_eq!(m.to().unwrap().first().unwrap().name(), Some("Priya Patel"));
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("help@acme-it.example")
        );
        assert_eq!(m.subject(), Some(email.subject.as_str()));
        assert_eq!(m.message_id(), Some(email.message_id.as_str()));
        assert_eq!(
            m.header("X-Portal-Idempotency-Key").and_then(|h| h.as_text()),
            Some(email.idempotency_key.as_str())
        );
        assert!(m.content_type().unwrap().subtype() == Some("mixed"));
        assert!(m.body_text(0).unwrap().contains("Kick-off call"));
        assert!(m.body_html(0).unwrap().contains("Kick-off call"));
        let ics = m.attachments().next().expect("the invitation is attached");
        let ct = ics.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("calendar")));
        assert_eq!(ct.attribute("method"), Some("REQUEST"));
        assert_eq!(ics.attachment_name(), Some("invite.ics"));
        let text = std::str::from_utf8(ics.contents()).unwrap();
        testing::assert_ics_request(text, "meeting-42@acme-it.example", 2);
    }

    #[tokio::test]
    async fn a_link_message_carries_the_link_in_both_parts() {
        let sink = SmtpSink::start(SinkMode::Accept);
        let email = testing::render(MailKind::ContactInvitation);
        to(&sink).send(&email).await.unwrap();
        let data = &sink.mails()[0].data;
        let m = MessageParser::default().parse(data).unwrap();
        assert!(m.content_type().unwrap().subtype() == Some("alternative"));
        assert_eq!(m.text_body.len(), 1);
        assert_eq!(m.html_body.len(), 1);
        let link = format!("https://portal.acme-it.example/access/{}", testing::TOKEN);
        assert!(m.body_text(0).unwrap().contains(&link));
        assert!(m.body_html(0).unwrap().contains(&link));
    }

    #[tokio::test]
    async fn a_portal_name_with_a_line_break_adds_no_header() {
        let sink = SmtpSink::start(SinkMode::Accept);
        let email = testing::render_injection();
        to(&sink).send(&email).await.unwrap();
        let mail = &sink.mails()[0];
        assert_eq!(mail.to, vec!["priya@northwind.example".to_owned()]);
        let m = MessageParser::default().parse(&mail.data).unwrap();
        assert!(m.bcc().is_none());
        assert!(m.header("Bcc").is_none());
        assert!(m.subject().unwrap().contains("Bcc: evil@x"));
        let raw = String::from_utf8_lossy(&mail.data);
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !head.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn replies_map_to_transient_and_permanent() {
        let email = testing::render(MailKind::TaskSummary);
        for (mode, transient) in [
            (SinkMode::RejectRcpt(550), false),
            (SinkMode::RejectRcpt(451), true),
            (SinkMode::RejectData(554), false),
            (SinkMode::RejectData(452), true),
        ] {
            let sink = SmtpSink::start(mode);
            let err = to(&sink).send(&email).await.unwrap_err();
            assert_eq!(matches!(err, SendError::Transient(_)), transient, "{mode:?}: {err}");
            assert!(sink.mails().is_empty());
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}?tls=none"), &opts()).unwrap();
        let err = t.send(&testing::render(MailKind::TaskSummary)).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err}");
    }

    #[tokio::test]
    async fn starttls_is_required_when_not_disabled() {
        // the loopback sink offers no STARTTLS: a `smtp://` URL without `tls=none` must not fall
        // back to clear text, and the failure is transient (configuration to fix).
        let sink = SmtpSink::start(SinkMode::Accept);
        let t = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{}", sink.port), &opts()).unwrap();
        let err = t.send(&testing::render(MailKind::TaskSummary)).await.unwrap_err();
        assert!(matches!(err, SendError::Transient(_)), "{err}");
        assert!(sink.mails().is_empty());
    }

    #[test]
    fn can_be_built_before_and_dropped_after_the_runtime() {
        // built outside any runtime (as `transport_from_url` in a synchronous `main`), used in
        // one, dropped after it shut down: lettre's pool would panic spawning its clean-up.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = SmtpTransport::from_url(&format!("smtp://127.0.0.1:{port}?tls=none"), &opts()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sent = runtime.block_on(t.send(&testing::render(MailKind::TaskSummary)));
        assert!(matches!(sent, Err(SendError::Transient(_))));
        drop(runtime);
        drop(t);
    }

    #[test]
    fn queue_ids_are_read_from_the_reply() {
        use lettre::transport::smtp::response::{Category, Code, Detail, Response, Severity};
        let code = Code::new(Severity::PositiveCompletion, Category::MailSystem, Detail::Zero);
        let r = Response::new(code, vec!["2.0.0 Ok: queued as 4Xz9 extra".to_owned()]);
        assert_eq!(queue_id(&r).as_deref(), Some("4Xz9"));
        let r = Response::new(code, vec!["OK".to_owned()]);
        assert_eq!(queue_id(&r), None);
    }
}
