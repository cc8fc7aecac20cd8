//! Test fixtures: a branded tenant, one message of each kind, a real SMTP server on loopback
//! (`mailin-embedded`), a clock that moves when told and an iCalendar check.

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use mailin_embedded::{Response, Server, SslConfig, response};
use portal_core::crypto::{KeyPurpose, MasterKey};
use portal_core::id::{MessageId, TenantId};
use portal_core::mail::{MailKind, Mailbox, MessageSecret, OutboundMessage, OutgoingEmail};
use portal_core::memory::MemoryStorage;
use portal_core::outcome::{Outcome, Write};
use portal_core::storage::{Clock, Entropy, OutcomeRepo as _};
use portal_core::tenant::{Branding, LinkSettings, Tenant, TenantSettings, TimeZone};
use portal_core::value::{Email, Name};
use serde_json::{Value, json};

use crate::Renderer;

/// The link token of the link messages.
pub(crate) const TOKEN: &str = "tok_Zm9vYmFyYmF6cXV4cXV1eA";
/// The code of the verification message.
pub(crate) const CODE: &str = "482913";

pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

pub(crate) fn tenant() -> Tenant {
    Tenant {
        id: TenantId::from_uuid(uuid::Uuid::from_u128(0xa11ce)),
        name: Name::parse("Acme IT").unwrap(),
        settings: TenantSettings {
            time_zone: TimeZone::parse("Europe/London").unwrap(),
            ..TenantSettings::default()
        },
        link_settings: LinkSettings::default(),
        notification_settings: portal_core::notifications::NotificationSettings::new(),
        branding: Branding {
            app_name: Some(Name::parse("Acme IT Portal").unwrap()),
            logo_url: Some("https://acme-it.example/logo.svg".to_owned()),
            primary_colour: "#0A7F4F".to_owned(),
            sender_name: None,
            sender_email: Some(email("portal@acme-it.example")),
            reply_to: Some(email("help@acme-it.example")),
        },
        version: 1,
        created_at: now(),
    }
}

pub(crate) fn renderer() -> Renderer {
    Renderer::new(
        "https://portal.acme-it.example/",
        Mailbox {
            name: Some("Portal".to_owned()),
            email: email("noreply@portal.example"),
        },
    )
    .unwrap()
}

pub(crate) fn master_key() -> MasterKey {
    MasterKey::from_material(&[7; 32]).unwrap()
}

fn tasks() -> Value {
    json!([
        {"title": "Sign the contract", "phase": "Kick-off", "status": "completed",
         "due_date": "2026-02-20", "due_state": null, "owner": "client"},
        {"title": "Send the network diagram", "phase": "Kick-off", "status": "in_progress",
         "due_date": "2026-03-01", "due_state": "overdue", "owner": "client"},
        {"title": "Set up backups", "phase": "Migration", "status": "pending",
         "due_date": null, "due_state": null, "owner": "msp"}
    ])
}

fn payload(kind: MailKind) -> Value {
    let contact = json!({
        "portal_name": "Northwind onboarding",
        "company_name": "Northwind Traders",
        "contact_name": "Priya Patel",
        "expires_at": "2026-04-01T09:00:00Z"
    });
    let mut summary = json!({
        "portal_name": "Northwind onboarding",
        "company_name": "Northwind Traders",
        "contact_name": "Priya Patel",
        "progress_percent": 40,
        "tasks": tasks(),
        "portal_link_hint": "Open your portal with the link from your invitation email."
    });
    match kind {
        MailKind::ContactInvitation | MailKind::AccessLink | MailKind::VerificationCode => contact,
        MailKind::TaskSummary => summary,
        MailKind::PhaseSummary => {
            summary["phase_name"] = json!("Kick-off");
            summary["tasks"] = json!(tasks().as_array().unwrap()[..2]);
            summary
        }
        MailKind::TaskReminder => json!({
            "portal_name": "Northwind onboarding",
            "company_name": "Northwind Traders",
            "contact_name": "Priya Patel",
            "task": tasks()[1],
            "reason": "overdue"
        }),
        MailKind::AutomaticReminder => json!({
            "portal_name": "Northwind onboarding",
            "company_name": "Northwind Traders",
            "contact_name": "Priya Patel",
            "topic": "overdue",
            "reason": "overdue",
            "tasks": [tasks()[1], tasks()[2]]
        }),
        MailKind::NotificationDigest => json!({
            "portal_name": "Northwind onboarding",
            "company_name": "Northwind Traders",
            "contact_name": "Priya Patel",
            "items": [
                { "kind": "task_summary", "topic": "summaries", "progress_percent": 40, "tasks": tasks(), "at": "2026-03-02T09:00:00Z" },
                { "kind": "automatic_reminder", "topic": "due_soon", "reason": "due_soon", "tasks": [tasks()[2]], "at": "2026-03-02T10:00:00Z" },
                { "kind": "task_reminder", "topic": "reminders", "reason": null, "task": tasks()[0], "at": "2026-03-02T11:00:00Z" }
            ]
        }),
        MailKind::PortalUserInvite | MailKind::PasswordReset => json!({
            "name": "Tess Tech",
            "expires_at": "2026-03-09T09:00:00Z"
        }),
        MailKind::MeetingInvitation => json!({
            "title": "Kick-off call",
            "description": "Agenda: introductions, scope, plan.\nTeams link in the description: https://teams.example/l/1",
            "location": "Microsoft Teams",
            "starts_at": "2026-03-03T14:00:00Z",
            "ends_at": "2026-03-03T15:00:00Z",
            "time_zone": "Europe/London",
            "uid": "meeting-42@acme-it.example",
            "sequence": 2,
            "organizer_name": "Tess Tech",
            "organizer_email": "tess@acme-it.example",
            "portal_name": "Northwind onboarding",
            "contact_name": "Priya Patel"
        }),
    }
}

/// The message id of `kind`: `00000000-0000-7000-8000-00000000000N`, N its place in
/// [`MailKind::ALL`] from 1.
fn message_id(kind: MailKind) -> MessageId {
    let n = MailKind::ALL.iter().position(|k| *k == kind).unwrap() as u128 + 1;
    MessageId::from_uuid(uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 | n))
}

/// The message of `kind`, without its secret.
pub(crate) fn message(kind: MailKind) -> OutboundMessage {
    OutboundMessage {
        id: message_id(kind),
        tenant_id: tenant().id,
        portal_id: None,
        contact_id: None,
        kind,
        recipient: email("priya@northwind.example"),
        recipient_name: Some("Priya Patel".to_owned()),
        payload: payload(kind),
        secret: None,
        created_at: now(),
    }
}

/// The secret a message of `kind` carries.
pub(crate) fn secret(kind: MailKind) -> Option<&'static str> {
    match kind {
        MailKind::ContactInvitation | MailKind::AccessLink | MailKind::PortalUserInvite | MailKind::PasswordReset => {
            Some(TOKEN)
        }
        MailKind::VerificationCode => Some(CODE),
        _ => None,
    }
}

/// The message of `kind` with its secret sealed as the engine seals it.
pub(crate) fn sealed_message(kind: MailKind) -> OutboundMessage {
    let mut m = message(kind);
    m.secret = secret(kind).map(|s| MessageSecret::Sealed {
        sealed: master_key().sealing_key(KeyPurpose::Outbox).seal(
            [u8::try_from(m.id.as_uuid().as_u128() & 0xff).unwrap(); 24],
            &OutboundMessage::secret_aad(m.tenant_id, m.id),
            s.as_bytes(),
        ),
    });
    m
}

/// The rendered message of `kind`.
pub(crate) fn render(kind: MailKind) -> OutgoingEmail {
    renderer().render(&tenant(), &message(kind), secret(kind)).unwrap()
}

/// An invitation whose portal and recipient names try to add a `Bcc` header.
pub(crate) fn render_injection() -> OutgoingEmail {
    let mut m = message(MailKind::ContactInvitation);
    m.payload["portal_name"] = json!("Acme\r\nBcc: evil@x");
    m.recipient_name = Some("Priya\r\nBcc: evil@x".to_owned());
    renderer().render(&tenant(), &m, Some(TOKEN)).unwrap()
}

/// Inserts `tenant` and queues `messages` in one commit.
pub(crate) async fn queue(storage: &MemoryStorage, tenant: &Tenant, messages: Vec<OutboundMessage>) {
    let outcome = Outcome {
        writes: vec![Write::InsertTenant(tenant.clone())],
        messages,
        ..Outcome::default()
    };
    storage.commit_outcome(tenant.id, &outcome).await.unwrap().unwrap();
}

/// A clock that moves only when told.
pub(crate) struct StepClock(Mutex<DateTime<Utc>>);

impl StepClock {
    pub(crate) fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub(crate) fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Zeros: the smallest jitter.
pub(crate) struct ZeroEntropy;

impl Entropy for ZeroEntropy {
    fn fill(&self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

/// What the SMTP sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkMode {
    /// Accepts every message.
    Accept,
    /// Answers `RCPT TO` with this code.
    RejectRcpt(u16),
    /// Answers the `DATA` command with this code. (Not the end of the data: `mailin` 0.6 stays
    /// in its data state after an error there, and the client then waits for an answer.)
    RejectData(u16),
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) data: Vec<u8>,
}

struct Shared {
    mode: Mutex<SinkMode>,
    mails: Mutex<Vec<Captured>>,
}

#[derive(Clone)]
struct Handler {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler {
    fn mode(&self) -> SinkMode {
        *self.shared.mode.lock().unwrap()
    }
}

impl mailin_embedded::Handler for Handler {
    fn rcpt(&mut self, _to: &str) -> Response {
        match self.mode() {
            SinkMode::RejectRcpt(code) => Response::custom(code, "rejected by the test sink".to_owned()),
            _ => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        if let SinkMode::RejectData(code) = self.mode() {
            return Response::custom(code, "rejected by the test sink".to_owned());
        }
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.shared.mails.lock().unwrap().push(Captured {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        });
        response::OK
    }
}

/// A real SMTP server on `127.0.0.1`, on its own threads, capturing what it accepts. It serves
/// until the test process ends (`mailin-embedded` has no shutdown).
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub(crate) fn start(mode: SinkMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            mails: Mutex::new(Vec::new()),
        });
        let mut server = Server::new(Handler {
            shared: shared.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .unwrap()
            .with_num_threads(8)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self { port, shared }
    }

    pub(crate) fn set_mode(&self, mode: SinkMode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub(crate) fn mails(&self) -> Vec<Captured> {
        self.shared.mails.lock().unwrap().clone()
    }
}

/// Parses `ics` with the `icalendar` crate's parser and checks it is a `REQUEST` for `uid` at
/// `sequence` with a zoned start.
pub(crate) fn assert_ics_request(ics: &str, uid: &str, sequence: i64) {
    let unfolded = icalendar::parser::unfold(ics);
    let cal = icalendar::parser::read_calendar(&unfolded).unwrap();
    let method = cal.properties.iter().find(|p| p.name == "METHOD").unwrap();
    assert_eq!(method.val.as_str(), "REQUEST");
    let event = cal.components.iter().find(|c| c.name == "VEVENT").unwrap();
    assert_eq!(event.find_prop("UID").unwrap().val.as_str(), uid);
    assert_eq!(event.find_prop("SEQUENCE").unwrap().val.as_str(), sequence.to_string());
    let start = event.find_prop("DTSTART").unwrap();
    let tzid = start.params.iter().find(|p| p.key == "TZID").unwrap();
    assert_eq!(tzid.val.as_ref().unwrap().as_str(), "Europe/London");
    assert_eq!(start.val.as_str(), "20260303T140000");
    assert!(cal.components.iter().any(|c| c.name == "VTIMEZONE"));
    assert!(
        event
            .find_prop("ORGANIZER")
            .unwrap()
            .val
            .as_str()
            .ends_with("tess@acme-it.example")
    );
}
