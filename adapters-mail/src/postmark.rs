//! Postmark's HTTP API (`POST /email`), through `reqwest` with rustls (ring).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use portal_core::mail::{Delivered, Mailbox, OutgoingEmail, SecretText, SendError, Transport};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::config::{ConfigError, TransportOptions, host_of, is_loopback, parse_bool, parse_url, percent_decode};
use crate::mime::{IDEMPOTENCY_HEADER, extra_headers, message_id_header, one_line};

/// The header that carries the server token.
const TOKEN_HEADER: &str = "X-Postmark-Server-Token";

/// Postmark's transactional sending API (MAIL-4).
///
/// Sends each email as one `POST {base_url}/email` with the server token in
/// `X-Postmark-Server-Token`, the `outbound` (transactional) message stream, the message kind as
/// the tag, open and link tracking off (links carry tokens), and the `Message-ID` and
/// `X-Portal-Idempotency-Key` headers every attempt repeats.
///
/// Answers map to [`SendError`] as follows:
///
/// | answer | result |
/// |---|---|
/// | 200, `ErrorCode` 0 | delivered, `provider_id` = Postmark's `MessageID` |
/// | `ErrorCode` 10 / HTTP 401 (bad or missing server token) | transient, saying the token is wrong, so messages wait while it is fixed |
/// | `ErrorCode` 100 (maintenance), 429 (rate limit) | transient |
/// | other `ErrorCode`s with 422 (406 inactive recipient, 300 invalid request, 400/401 sender signature, 405, 411, 412, 413, ...) | permanent |
/// | HTTP 413 (too large), other 4xx | permanent |
/// | HTTP 429, 5xx, 404 (wrong base URL), timeouts, connection errors | transient |
///
/// The token is never logged: `Debug` shows the base URL only, and the header is marked
/// sensitive.
#[derive(Clone)]
pub struct PostmarkTransport {
    client: reqwest::Client,
    endpoint: Url,
    token: Arc<SecretText>,
}

impl std::fmt::Debug for PostmarkTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostmarkTransport")
            .field("endpoint", &self.endpoint.as_str())
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Postmark's answer to `POST /email` (success and error share it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "MessageID")]
    message_id: Option<String>,
}

/// A `rustls` client configuration with the ring provider and the platform's trust store, so the
/// crate needs no process-wide crypto provider.
fn tls_config() -> Result<rustls::ClientConfig, ConfigError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth())
}

impl PostmarkTransport {
    /// Postmark's API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.postmarkapp.com";

    /// A transport sending with `server_token` to `base_url` ([`Self::DEFAULT_BASE_URL`] in
    /// production; a fake in tests). A plain `http://` base URL is accepted for loopback hosts
    /// only.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an empty token, a malformed base URL, plain HTTP to a remote host, or a
    /// TLS set-up that fails.
    pub fn new(server_token: &str, base_url: &str, options: &TransportOptions) -> Result<Self, ConfigError> {
        let base = parse_url(base_url)?;
        let host = host_of(&base)?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => return Err(ConfigError::PlaintextRefused { host }),
            other => return Err(ConfigError::UnsupportedScheme(other.to_owned())),
        }
        Self::build(server_token, &base, options)
    }

    /// A transport from `postmark://<server-token>@api.postmarkapp.com[:port]` (HTTPS) or
    /// `postmark+http://<token>@127.0.0.1:PORT` (plain HTTP, loopback only unless
    /// `?insecure=true`). The token is percent-decoded.
    ///
    /// # Errors
    ///
    /// As [`Self::new`].
    pub fn from_url(url: &str, options: &TransportOptions) -> Result<Self, ConfigError> {
        let parsed = parse_url(url)?;
        let scheme = match parsed.scheme() {
            "postmark" => "https",
            "postmark+http" => "http",
            other => return Err(ConfigError::UnsupportedScheme(other.to_owned())),
        };
        let host = host_of(&parsed)?;
        let mut insecure = false;
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "insecure" => insecure = parse_bool("insecure", &v)?,
                other => return Err(ConfigError::InvalidUrl(format!("unknown parameter `{other}`"))),
            }
        }
        if scheme == "http" && !insecure && !is_loopback(&host) {
            return Err(ConfigError::PlaintextRefused { host });
        }
        let authority = match (parsed.host(), parsed.port()) {
            (Some(url::Host::Ipv6(ip)), Some(p)) => format!("[{ip}]:{p}"),
            (Some(url::Host::Ipv6(ip)), None) => format!("[{ip}]"),
            (_, Some(p)) => format!("{host}:{p}"),
            (_, None) => host,
        };
        let base = parse_url(&format!("{scheme}://{authority}"))?;
        let token = percent_decode(parsed.username())?;
        Self::build(&token, &base, options)
    }

    fn build(server_token: &str, base: &Url, options: &TransportOptions) -> Result<Self, ConfigError> {
        if server_token.trim().is_empty() {
            return Err(ConfigError::InvalidUrl(
                "the Postmark server token is missing".to_owned(),
            ));
        }
        if HeaderValue::from_str(server_token).is_err() {
            return Err(ConfigError::InvalidUrl(
                "the Postmark server token has characters a header cannot carry".to_owned(),
            ));
        }
        let endpoint = base.join("email").map_err(|e| ConfigError::InvalidUrl(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(std::time::Duration::from_secs(10)))
            .user_agent(concat!("portal-mail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        Ok(Self {
            client,
            endpoint,
            token: Arc::new(SecretText::new(server_token.to_owned())),
        })
    }

    fn headers(&self) -> Result<HeaderMap, SendError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut token = HeaderValue::from_str(self.token.expose())
            .map_err(|_| SendError::Transient("the Postmark server token cannot be sent as a header".to_owned()))?;
        token.set_sensitive(true);
        headers.insert(TOKEN_HEADER, token);
        Ok(headers)
    }
}

/// `"Name" <address>`, the form Postmark's `From`, `To` and `ReplyTo` take.
fn address(m: &Mailbox) -> String {
    match m.name.as_deref().map(one_line).filter(|n| !n.is_empty()) {
        Some(name) => format!(
            "\"{}\" <{}>",
            name.replace('\\', "\\\\").replace('"', "\\\""),
            m.email.as_str()
        ),
        None => m.email.as_str().to_owned(),
    }
}

/// The JSON body of `POST /email`.
fn body(email: &OutgoingEmail) -> Result<Value, SendError> {
    let mut headers = vec![
        json!({ "Name": "Message-ID", "Value": message_id_header(email)? }),
        json!({ "Name": IDEMPOTENCY_HEADER, "Value": one_line(&email.idempotency_key) }),
    ];
    headers.extend(
        extra_headers(email)?
            .into_iter()
            .map(|(name, value)| json!({ "Name": name, "Value": value })),
    );
    let attachments: Vec<Value> = email
        .attachments
        .iter()
        .map(|a| {
            json!({
                "Name": one_line(&a.filename),
                "Content": base64::engine::general_purpose::STANDARD.encode(&a.content),
                "ContentType": a.content_type,
            })
        })
        .collect();
    let mut body = json!({
        "From": address(&email.from),
        "To": address(&email.to),
        "Subject": one_line(&email.subject),
        "TextBody": email.text,
        "HtmlBody": email.html,
        "Tag": email.kind.as_str(),
        "MessageStream": "outbound",
        "TrackOpens": false,
        "TrackLinks": "None",
        "Headers": headers,
        "Metadata": { "idempotency_key": email.idempotency_key },
    });
    if let Some(reply_to) = &email.reply_to {
        body["ReplyTo"] = json!(address(reply_to));
    }
    if !attachments.is_empty() {
        body["Attachments"] = json!(attachments);
    }
    Ok(body)
}

const TOKEN_WRONG: &str = "Postmark refused the server token (ErrorCode 10): the token in the transport URL is wrong or \
                           missing; the message stays queued until it is fixed";

/// The result of an `ErrorCode` other than 0.
fn by_error_code(code: i64, message: &str) -> SendError {
    match code {
        10 => SendError::Transient(TOKEN_WRONG.to_owned()),
        100 => SendError::Transient(format!("Postmark is in maintenance (ErrorCode 100): {message}")),
        429 => SendError::Transient(format!("Postmark rate limit (ErrorCode 429): {message}")),
        406 => SendError::Permanent(format!(
            "Postmark: the recipient is inactive (bounced, complained or unsubscribed) (ErrorCode 406): {message}"
        )),
        _ => SendError::Permanent(format!("Postmark refused the message (ErrorCode {code}): {message}")),
    }
}

/// Postmark's `Message` text, shortened.
fn short(text: Option<&str>) -> String {
    let text = one_line(text.unwrap_or(""));
    if text.chars().count() > 300 {
        text.chars().take(300).chain("...".chars()).collect()
    } else {
        text
    }
}

/// The result of one answer.
fn outcome(status: u16, raw: &[u8]) -> Result<Delivered, SendError> {
    let answer: Option<Answer> = serde_json::from_slice(raw).ok();
    let code = answer.as_ref().and_then(|a| a.error_code);
    let message = short(answer.as_ref().and_then(|a| a.message.as_deref()));
    match (status, code) {
        (200, Some(0) | None) => Ok(Delivered {
            provider_id: answer.and_then(|a| a.message_id).filter(|id| !id.is_empty()),
        }),
        (401, _) | (_, Some(10)) => Err(SendError::Transient(TOKEN_WRONG.to_owned())),
        (200 | 422, Some(code)) => Err(by_error_code(code, &message)),
        (413, _) => Err(SendError::Permanent(format!(
            "Postmark: the message is too large (HTTP 413): {message}"
        ))),
        (429, _) => Err(SendError::Transient(format!(
            "Postmark rate limit (HTTP 429): {message}"
        ))),
        (404, _) => Err(SendError::Transient(
            "Postmark answered 404: the base URL of the transport is wrong".to_owned(),
        )),
        (400..=499, _) => Err(SendError::Permanent(format!(
            "Postmark refused the message (HTTP {status}): {message}"
        ))),
        _ => Err(SendError::Transient(format!(
            "Postmark answered HTTP {status}: {message}"
        ))),
    }
}

#[async_trait]
impl Transport for PostmarkTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivered, SendError> {
        let body = body(email)?;
        let response = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers()?)
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "failed"
                };
                SendError::Transient(format!("Postmark request {what}: {e}"))
            })?;
        let status = response.status().as_u16();
        let raw = response
            .bytes()
            .await
            .map_err(|e| SendError::Transient(format!("Postmark answer could not be read: {e}")))?;
        outcome(status, &raw)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portal_core::mail::MailKind;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::testing;

    const TOKEN: &str = "server-token-1234";

    fn transport(server: &MockServer) -> PostmarkTransport {
        PostmarkTransport::new(
            TOKEN,
            &server.uri(),
            &TransportOptions {
                timeout: Duration::from_secs(5),
                smtp_pool_size: 1,
                smtp_root_certificates: Vec::new(),
            },
        )
        .unwrap()
    }

    async fn answering(template: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .respond_with(template)
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn sends_postmarks_shape_and_reads_the_message_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .and(header("X-Postmark-Server-Token", TOKEN))
            .and(header("Accept", "application/json"))
            .and(header("Content-Type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "To": "priya@northwind.example",
                "SubmittedAt": "2026-03-02T12:01:05.1794748-05:00",
                "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
                "ErrorCode": 0,
                "Message": "OK"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let email = testing::render(MailKind::MeetingInvitation);
        let delivered = transport(&server).send(&email).await.unwrap();
        assert_eq!(
            delivered.provider_id.as_deref(),
            Some("b7bc2f4a-e38e-4336-af7d-e6c392c2f817")
        );
        let requests = server.received_requests().await.unwrap();
        let sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(sent["From"], "\"Acme IT Portal\" <portal@acme-it.example>");
        assert_eq!(sent["To"], "\"Priya Patel\" <priya@northwind.example>");
        assert_eq!(sent["ReplyTo"], "help@acme-it.example");
        assert_eq!(sent["Subject"], email.subject.as_str());
        assert_eq!(sent["TextBody"], email.text.as_str());
        assert_eq!(sent["HtmlBody"], email.html.as_str());
        assert_eq!(sent["Tag"], "meeting_invitation");
        assert_eq!(sent["MessageStream"], "outbound");
        assert_eq!(sent["TrackLinks"], "None");
        let headers = sent["Headers"].as_array().unwrap();
        let header_value = |name: &str| {
            headers
                .iter()
                .find(|h| h["Name"] == name)
                .map(|h| h["Value"].as_str().unwrap().to_owned())
        };
        assert_eq!(header_value("Message-ID"), Some(format!("<{}>", email.message_id)));
        assert_eq!(
            header_value("X-Portal-Idempotency-Key"),
            Some(email.idempotency_key.clone())
        );
        let attachment = &sent["Attachments"][0];
        assert_eq!(attachment["Name"], "invite.ics");
        assert_eq!(
            attachment["ContentType"],
            "text/calendar; charset=utf-8; method=REQUEST"
        );
        let ics = base64::engine::general_purpose::STANDARD
            .decode(attachment["Content"].as_str().unwrap())
            .unwrap();
        assert_eq!(ics, email.attachments[0].content);
        assert!(!String::from_utf8_lossy(&requests[0].body).contains(TOKEN));
    }

    #[tokio::test]
    async fn answers_map_to_transient_and_permanent() {
        let cases = [
            (
                ResponseTemplate::new(422).set_body_json(json!({
                    "ErrorCode": 406,
                    "Message": "You tried to send to recipient(s) that have been marked as inactive."
                })),
                false,
                "inactive",
            ),
            (
                ResponseTemplate::new(422).set_body_json(json!({"ErrorCode": 300, "Message": "Invalid email request"})),
                false,
                "300",
            ),
            (
                ResponseTemplate::new(429).set_body_json(json!({"ErrorCode": 429, "Message": "Rate limit exceeded"})),
                true,
                "rate limit",
            ),
            (ResponseTemplate::new(500).set_body_string("oops"), true, "500"),
            (ResponseTemplate::new(503), true, "503"),
            (
                ResponseTemplate::new(401).set_body_json(json!({
                    "ErrorCode": 10,
                    "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid."
                })),
                true,
                "server token",
            ),
            (ResponseTemplate::new(413), false, "too large"),
        ];
        let email = testing::render(MailKind::TaskSummary);
        for (template, transient, says) in cases {
            let server = answering(template).await;
            let err = transport(&server).send(&email).await.unwrap_err();
            assert_eq!(matches!(err, SendError::Transient(_)), transient, "{err}");
            assert!(err.to_string().to_lowercase().contains(says), "{err}");
            assert!(!err.to_string().contains(TOKEN));
        }
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_slow_server_are_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t =
            PostmarkTransport::new(TOKEN, &format!("http://127.0.0.1:{port}"), &TransportOptions::default()).unwrap();
        let email = testing::render(MailKind::TaskSummary);
        assert!(matches!(t.send(&email).await, Err(SendError::Transient(_))));

        let server = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
        let t = PostmarkTransport::new(
            TOKEN,
            &server.uri(),
            &TransportOptions {
                timeout: Duration::from_millis(300),
                smtp_pool_size: 1,
                smtp_root_certificates: Vec::new(),
            },
        )
        .unwrap();
        let err = t.send(&email).await.unwrap_err();
        assert!(
            matches!(err, SendError::Transient(ref m) if m.contains("timed out")),
            "{err}"
        );
    }

    #[test]
    fn urls_and_debug_never_show_the_token() {
        let o = TransportOptions::default();
        let t = PostmarkTransport::from_url("postmark://s3cr3t%2Fxyz@api.postmarkapp.com", &o).unwrap();
        assert_eq!(t.endpoint.as_str(), "https://api.postmarkapp.com/email");
        assert_eq!(t.token.expose(), "s3cr3t/xyz");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let t = PostmarkTransport::from_url("postmark+http://tok@127.0.0.1:8025", &o).unwrap();
        assert_eq!(t.endpoint.as_str(), "http://127.0.0.1:8025/email");
        assert!(PostmarkTransport::from_url("postmark://api.postmarkapp.com", &o).is_err());
        assert!(PostmarkTransport::from_url("postmark://t@api.postmarkapp.com?x=1", &o).is_err());
        assert!(matches!(
            PostmarkTransport::new("t", "http://api.postmarkapp.com", &o),
            Err(ConfigError::PlaintextRefused { .. })
        ));
    }

    #[test]
    fn display_names_are_quoted() {
        let m = Mailbox {
            name: Some("Acme, \"IT\"\r\nBcc: x@y".to_owned()),
            email: portal_core::value::Email::parse("a@acme.example").unwrap(),
        };
        assert_eq!(address(&m), r#""Acme, \"IT\" Bcc: x@y" <a@acme.example>"#);
    }
}
