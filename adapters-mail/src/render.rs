//! Rendering a queued message into an email with the tenant's branding (MAIL-1, MAIL-2, BRD-1).
//!
//! Each [`MailKind`] has three `minijinja` templates compiled into the crate (from
//! `adapters-mail/templates/`): `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`. The HTML ones
//! extend one shared layout, `layout.html`: a header bar in the tenant's primary colour with its
//! logo and app name, the message, and a footer. HTML templates are auto-escaped; an undefined
//! variable is an error, so a template mistake cannot silently drop a link.
//!
//! # Payloads
//!
//! What a template shows comes from the message's `payload` (a JSON snapshot the core command took
//! when it queued the message) and its secret (the link token or code, opened by the worker). A
//! field marked *required* below is a [`RenderError::Payload`] when missing; any other field may
//! be missing or `null`, and the message renders without it. Times are RFC 3339, dates
//! `YYYY-MM-DD`; times are shown in the tenant's time zone (meetings: in the meeting's).
//!
//! | kind | payload | secret |
//! |---|---|---|
//! | `contact_invitation`, `access_link` | `portal_name` (required), `company_name`, `contact_name`, `expires_at` | link token: `{public_url}/access/…` |
//! | `verification_code` | `portal_name` (required), `company_name`, `contact_name`, `expires_at` | the code |
//! | `task_summary` | `portal_name`, `tasks` (required), `company_name`, `contact_name`, `progress_percent` (number), `portal_link_hint` | none |
//! | `phase_summary` | as `task_summary`, plus `phase_name` (required) | none |
//! | `task_reminder` | `portal_name`, `task` (required), `company_name`, `contact_name`, `reason` (`unlocked`, `due_soon`, `overdue`) | none |
//! | `portal_user_invite` | `name`, `expires_at` | token: `{public_url}/setup/…` |
//! | `password_reset` | `name`, `expires_at` | token: `{public_url}/reset-password/…` |
//! | `automatic_reminder` | `portal_name`, `reason` (`unlocked`, `due_soon`, `overdue`), `tasks` (required, not empty), `company_name`, `contact_name`, `topic` | none |
//! | `notification_digest` | `portal_name`, `items` (required, not empty: each `kind` (a summary or reminder kind) with that kind's `tasks` or `task`, `reason`, `phase_name`, `progress_percent`), `company_name`, `contact_name` | none |
//! | `meeting_invitation` | `title`, `starts_at`, `ends_at`, `time_zone` (IANA), `uid`, `sequence` (integer), `organizer_email` (required), `description`, `location`, `organizer_name`, `portal_name`, `contact_name`, `cancelled` (boolean) | none |
//!
//! A task (in `tasks` and `task`) is `{"title" (required), "phase", "status", "due_date",
//! "due_state" ("overdue", "due_soon", "on_track" or "ok"), "owner" ("client" or "msp")}`.
//!
//! A meeting invitation carries `invite.ics` (`text/calendar; charset=utf-8; method=REQUEST`):
//! one `VEVENT` with the payload's `UID` and `SEQUENCE`, the recipient as `ATTENDEE`, and its times
//! in the meeting's time zone with a `VTIMEZONE` of that zone's real transitions. With
//! `"cancelled": true` it is a `METHOD:CANCEL` instead.
//!
//! # Headers
//!
//! `From` is the branding's sender name (else the app name) and sender address (else the
//! deployment's default sender address); `Reply-To` is the branding's reply address. The
//! `Message-ID` is `<{message id}@{host of the public URL}>` and the idempotency key the message
//! id, the same on every attempt. Subjects and names are flattened to one line, so nothing in a
//! payload can add a header.
//!
//! Notifications to a contact (summaries, reminders, digests; not links, codes or meetings)
//! carry a one-click unsubscribe (BYD-5) when the renderer has the key
//! ([`Renderer::with_unsubscribe_key`]): a link in the footer to `{public_url}/unsubscribe/…`
//! (the payload's `topic`, or every topic for a digest), and `List-Unsubscribe:
//! <{public_url}/api/v1/unsubscribe/…>` with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 2369, RFC 8058).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use portal_core::crypto::MasterKey;
use portal_core::mail::{Attachment, MailKind, Mailbox, OutboundMessage, OutgoingEmail};
use portal_core::notifications::{Topic, UnsubscribeToken};
use portal_core::tenant::Tenant;
use portal_core::value::Email;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::config::{ConfigError, host_of, parse_url};
use crate::ics;
use crate::mime::one_line;

/// Why a message could not be rendered. Never worth retrying: the worker marks the message
/// failed. Messages never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The payload misses a required field or has a malformed one.
    #[error("the {kind} payload is not usable: {reason}")]
    Payload {
        /// Which message.
        kind: MailKind,
        /// What is wrong.
        reason: String,
    },
    /// The message needs a link token or code and has none.
    #[error("a {0} message needs its link token or code, and has none")]
    MissingSecret(MailKind),
    /// A template failed (a bug in this crate's templates).
    #[error("template {name} failed: {reason}")]
    Template {
        /// The template.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// The primary colour when the branding's is unusable.
const DEFAULT_COLOUR: &str = "#1f6feb";

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// Every template, compiled in.
const TEMPLATES: &[(&str, &str)] = templates!(
    "layout.html",
    "layout.txt",
    "macros.html",
    "contact_invitation.subject.txt",
    "contact_invitation.txt",
    "contact_invitation.html",
    "access_link.subject.txt",
    "access_link.txt",
    "access_link.html",
    "verification_code.subject.txt",
    "verification_code.txt",
    "verification_code.html",
    "task_summary.subject.txt",
    "task_summary.txt",
    "task_summary.html",
    "phase_summary.subject.txt",
    "phase_summary.txt",
    "phase_summary.html",
    "task_reminder.subject.txt",
    "task_reminder.txt",
    "task_reminder.html",
    "portal_user_invite.subject.txt",
    "portal_user_invite.txt",
    "portal_user_invite.html",
    "password_reset.subject.txt",
    "password_reset.txt",
    "password_reset.html",
    "meeting_invitation.subject.txt",
    "meeting_invitation.txt",
    "meeting_invitation.html",
    "automatic_reminder.subject.txt",
    "automatic_reminder.txt",
    "automatic_reminder.html",
    "notification_digest.subject.txt",
    "notification_digest.txt",
    "notification_digest.html",
);

/// Renders queued messages with their tenant's branding. Cheap to share: hold one per process.
#[derive(Clone)]
pub struct Renderer {
    env: Environment<'static>,
    public_url: String,
    message_host: String,
    default_sender: Mailbox,
    unsubscribe_key: Option<Arc<MasterKey>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("public_url", &self.public_url)
            .field("default_sender", &self.default_sender.email)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer for a deployment reached at `public_url` (`https://portal.msp.example`, or with
    /// a path prefix), sending from `default_sender`'s address when a tenant's branding names
    /// none. (The sender's display name always comes from the tenant: its sender name, else its
    /// app name.)
    ///
    /// # Errors
    ///
    /// [`ConfigError::PublicUrl`] when `public_url` is not an `http(s)://` URL with a host and
    /// without a query or fragment.
    pub fn new(public_url: &str, default_sender: Mailbox) -> Result<Self, ConfigError> {
        let url = parse_url(public_url.trim()).map_err(|e| ConfigError::PublicUrl(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::PublicUrl(
                "it must start with https:// or http://".to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(ConfigError::PublicUrl(
                "it may not have a query, a fragment or user info".to_owned(),
            ));
        }
        let host = host_of(&url).map_err(|_| ConfigError::PublicUrl("it has no host".to_owned()))?;
        let message_host = match url.host() {
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => format!("[{host}]"),
            _ => host.to_ascii_lowercase(),
        };
        let public_url = url.as_str().trim_end_matches('/').to_owned();

        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("the compiled-in template {name} does not parse: {e:#}"));
        }
        Ok(Self {
            env,
            public_url,
            message_host,
            default_sender,
            unsubscribe_key: None,
        })
    }

    /// The same renderer signing one-click unsubscribe links (BYD-5, RFC 8058) with `key` (the
    /// deployment's master key, as the server's unsubscribe endpoint checks them). Without it,
    /// notifications carry no unsubscribe link.
    #[must_use]
    pub fn with_unsubscribe_key(mut self, key: Arc<MasterKey>) -> Self {
        self.unsubscribe_key = Some(key);
        self
    }

    /// The unsubscribe token of a notification to a contact: its topic (the payload's `topic`),
    /// or every topic for a digest. `None` for messages that are not notifications (links,
    /// codes, meetings) or without a key.
    fn unsubscribe_token(&self, message: &OutboundMessage) -> Option<String> {
        let key = self.unsubscribe_key.as_deref()?;
        let (portal_id, contact_id) = (message.portal_id?, message.contact_id?);
        let topic = match message.kind {
            MailKind::TaskSummary | MailKind::PhaseSummary | MailKind::TaskReminder | MailKind::AutomaticReminder => {
                Some(message.payload.get("topic")?.as_str()?.parse::<Topic>().ok()?)
            }
            MailKind::NotificationDigest => None,
            _ => return None,
        };
        Some(
            UnsubscribeToken {
                tenant_id: message.tenant_id,
                portal_id,
                contact_id,
                topic,
            }
            .encode(key),
        )
    }

    /// The public URL links start with (no trailing slash).
    #[must_use]
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Renders `message` of `tenant`, with `secret` (the opened link token or code) when the
    /// message has one.
    ///
    /// # Errors
    ///
    /// [`RenderError`]: a required payload field missing or malformed, a secret missing where the
    /// kind needs one.
    pub fn render(
        &self,
        tenant: &Tenant,
        message: &OutboundMessage,
        secret: Option<&str>,
    ) -> Result<OutgoingEmail, RenderError> {
        let kind = message.kind;
        let brand = Brand::of(tenant);
        let tz = tenant.settings.time_zone.0;
        let need_secret = || secret.filter(|s| !s.is_empty()).ok_or(RenderError::MissingSecret(kind));
        let mut attachments = Vec::new();
        let mut ctx = match kind {
            MailKind::ContactInvitation | MailKind::AccessLink | MailKind::VerificationCode => {
                let p: ContactPayload = payload(message)?;
                let mut c = Map::new();
                c.insert("portal_name".into(), json!(one_line(&p.portal_name)));
                c.insert("company_name".into(), json!(line(p.company_name)));
                c.insert("greeting_name".into(), json!(greeting(p.contact_name, message)));
                c.insert("expires".into(), json!(p.expires_at.map(|t| datetime(t, tz))));
                if kind == MailKind::VerificationCode {
                    c.insert("code".into(), json!(need_secret()?));
                } else {
                    c.insert("link".into(), json!(self.link("access", need_secret()?)));
                }
                c
            }
            MailKind::TaskSummary | MailKind::PhaseSummary => {
                let p: SummaryPayload = payload(message)?;
                if kind == MailKind::PhaseSummary && p.phase_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return Err(RenderError::Payload {
                        kind,
                        reason: "missing field `phase_name`".to_owned(),
                    });
                }
                let rows: Vec<TaskRow> = p.tasks.into_iter().map(TaskRow::from).collect();
                let mut c = Map::new();
                c.insert("portal_name".into(), json!(one_line(&p.portal_name)));
                c.insert("company_name".into(), json!(line(p.company_name)));
                c.insert("greeting_name".into(), json!(greeting(p.contact_name, message)));
                c.insert("phase_name".into(), json!(line(p.phase_name)));
                c.insert(
                    "progress".into(),
                    json!(p.progress_percent.filter(|n| n.is_finite()).map(percent)),
                );
                c.insert(
                    "hint".into(),
                    json!(p.portal_link_hint.filter(|h| !h.trim().is_empty())),
                );
                c.insert("task_table".into(), json!(task_table(&rows)));
                c.insert("open_count".into(), json!(rows.iter().filter(|r| !r.done).count()));
                c.insert("tasks".into(), json!(rows));
                c
            }
            MailKind::TaskReminder => {
                let p: ReminderPayload = payload(message)?;
                let reason = match p.reason.as_deref() {
                    Some(r @ ("unlocked" | "due_soon" | "overdue")) => Some(r.to_owned()),
                    _ => None,
                };
                let mut c = Map::new();
                c.insert("portal_name".into(), json!(one_line(&p.portal_name)));
                c.insert("company_name".into(), json!(line(p.company_name)));
                c.insert("greeting_name".into(), json!(greeting(p.contact_name, message)));
                c.insert("reason".into(), json!(reason));
                c.insert("task".into(), json!(TaskRow::from(p.task)));
                c
            }
            MailKind::PortalUserInvite | MailKind::PasswordReset => {
                let p: UserPayload = payload(message)?;
                let path = if kind == MailKind::PortalUserInvite {
                    "setup"
                } else {
                    "reset-password"
                };
                let mut c = Map::new();
                c.insert("greeting_name".into(), json!(greeting(p.name, message)));
                c.insert("expires".into(), json!(p.expires_at.map(|t| datetime(t, tz))));
                c.insert("link".into(), json!(self.link(path, need_secret()?)));
                c
            }
            MailKind::AutomaticReminder => {
                let p: AutomaticReminderPayload = payload(message)?;
                let reason = match p.reason.as_str() {
                    r @ ("unlocked" | "due_soon" | "overdue") => r.to_owned(),
                    other => {
                        return Err(RenderError::Payload {
                            kind,
                            reason: format!("unknown reason `{}`", one_line(other)),
                        });
                    }
                };
                if p.tasks.is_empty() {
                    return Err(RenderError::Payload {
                        kind,
                        reason: "no tasks".to_owned(),
                    });
                }
                let rows: Vec<TaskRow> = p.tasks.into_iter().map(TaskRow::from).collect();
                let mut c = Map::new();
                c.insert("portal_name".into(), json!(one_line(&p.portal_name)));
                c.insert("company_name".into(), json!(line(p.company_name)));
                c.insert("greeting_name".into(), json!(greeting(p.contact_name, message)));
                c.insert("reason".into(), json!(reason));
                c.insert("task_table".into(), json!(task_table(&rows)));
                c.insert("tasks".into(), json!(rows));
                c
            }
            MailKind::NotificationDigest => {
                let p: DigestPayload = payload(message)?;
                if p.items.is_empty() {
                    return Err(RenderError::Payload {
                        kind,
                        reason: "no items".to_owned(),
                    });
                }
                let sections: Vec<Value> = p
                    .items
                    .into_iter()
                    .map(|item| digest_section(item, kind))
                    .collect::<Result<_, _>>()?;
                let mut c = Map::new();
                c.insert("portal_name".into(), json!(one_line(&p.portal_name)));
                c.insert("company_name".into(), json!(line(p.company_name)));
                c.insert("greeting_name".into(), json!(greeting(p.contact_name, message)));
                c.insert("count".into(), json!(sections.len()));
                c.insert("sections".into(), json!(sections));
                c
            }
            MailKind::MeetingInvitation => {
                let p: MeetingPayload = payload(message)?;
                let (c, ics) = meeting(p, message, kind)?;
                attachments.push(Attachment {
                    filename: "invite.ics".to_owned(),
                    content_type: format!(
                        "text/calendar; charset=utf-8; method={}",
                        if c["cancelled"] == json!(true) {
                            "CANCEL"
                        } else {
                            "REQUEST"
                        }
                    ),
                    content: ics.into_bytes(),
                });
                c
            }
        };
        ctx.insert("app_name".into(), json!(brand.app_name));
        ctx.insert("colour".into(), json!(brand.colour));
        ctx.insert("on_colour".into(), json!(brand.on_colour));
        ctx.insert("logo_url".into(), json!(brand.logo_url));
        let unsubscribe = self.unsubscribe_token(message);
        ctx.insert(
            "unsubscribe_url".into(),
            json!(unsubscribe.as_deref().map(|t| self.link("unsubscribe", t))),
        );
        ctx.insert(
            "unsubscribe_all".into(),
            json!(message.kind == MailKind::NotificationDigest),
        );

        let base = kind.as_str();
        let subject = one_line(&self.template(&format!("{base}.subject.txt"), &ctx)?);
        ctx.insert("subject".into(), json!(subject));
        let text = self.template(&format!("{base}.txt"), &ctx)?;
        let html = self.template(&format!("{base}.html"), &ctx)?;

        let branding = &tenant.branding;
        let from = Mailbox {
            name: Some(one_line(
                branding
                    .sender_name
                    .as_ref()
                    .map_or(brand.app_name.as_str(), |n| n.as_str()),
            )),
            email: branding
                .sender_email
                .clone()
                .unwrap_or_else(|| self.default_sender.email.clone()),
        };
        let mut headers = vec![("Auto-Submitted".to_owned(), "auto-generated".to_owned())];
        if let Some(token) = &unsubscribe {
            // RFC 2369 and RFC 8058: mail clients offer "unsubscribe" and POST
            // `List-Unsubscribe=One-Click` to the URL, without the recipient signing in.
            headers.push((
                "List-Unsubscribe".to_owned(),
                format!("<{}>", self.link("api/v1/unsubscribe", token)),
            ));
            headers.push((
                "List-Unsubscribe-Post".to_owned(),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
        }
        Ok(OutgoingEmail {
            message_id: format!("{}@{}", message.id.as_uuid(), self.message_host),
            idempotency_key: message.idempotency_key(),
            kind,
            from,
            reply_to: branding.reply_to.clone().map(|email| Mailbox { name: None, email }),
            to: Mailbox {
                name: message
                    .recipient_name
                    .as_deref()
                    .map(one_line)
                    .filter(|n| !n.is_empty()),
                email: message.recipient.clone(),
            },
            subject,
            text,
            html,
            headers,
            attachments,
        })
    }

    fn template(&self, name: &str, ctx: &Map<String, Value>) -> Result<String, RenderError> {
        let failed = |e: minijinja::Error| RenderError::Template {
            name: name.to_owned(),
            reason: format!("{e:#}"),
        };
        let t = self.env.get_template(name).map_err(failed)?;
        let out = t.render(minijinja::value::Serde(ctx)).map_err(failed)?;
        Ok(tidy(&out))
    }

    /// `{public_url}/{path}/{token}` (the server's route for it), the token percent-encoded where
    /// it is not URL-safe.
    fn link(&self, path: &str, token: &str) -> String {
        let mut encoded = String::with_capacity(token.len());
        for b in token.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{}/{path}/{encoded}", self.public_url)
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` in HTML; minijinja's default also escapes `/`, which
/// turns every link into `https:&#x2f;&#x2f;...` (valid, but unreadable and hard to check).
fn html_escape(text: &str, out: &mut minijinja::Output<'_>) -> std::fmt::Result {
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&text[last..i])?;
        out.write_str(entity)?;
        last = i + 1;
    }
    out.write_str(&text[last..])
}

/// The formatter: strings that are not marked safe are escaped by [`html_escape`] in HTML
/// templates; everything else (numbers, safe strings, text templates, undefined values, which
/// are errors) goes to minijinja's own formatter.
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &mut minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(text)) if !value.is_safe() => Ok(html_escape(text, out)?),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Trailing spaces off every line, at most one blank line in a row, one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        // the signature separator keeps its space
        let line = if line == "--" { "-- " } else { line };
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The tenant's branding as the templates use it, each value checked again (it is put in `style`
/// and `src` attributes).
struct Brand {
    app_name: String,
    colour: String,
    on_colour: &'static str,
    logo_url: Option<String>,
}

impl Brand {
    fn of(tenant: &Tenant) -> Self {
        let b = &tenant.branding;
        let colour = if is_hex_colour(&b.primary_colour) {
            b.primary_colour.to_ascii_lowercase()
        } else {
            DEFAULT_COLOUR.to_owned()
        };
        let logo_url = b.logo_url.clone().filter(|u| {
            let lower = u.to_ascii_lowercase();
            (lower.starts_with("https://") || lower.starts_with("http://"))
                && u.chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\'))
        });
        Self {
            app_name: one_line(b.display_name(&tenant.name)),
            on_colour: text_colour_on(&colour),
            colour,
            logo_url,
        }
    }
}

fn is_hex_colour(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 7 && b[0] == b'#' && b[1..].iter().all(u8::is_ascii_hexdigit)
}

/// White or near-black, whichever contrasts more with `#rrggbb` (WCAG relative luminance).
fn text_colour_on(colour: &str) -> &'static str {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(&colour[i..i + 2], 16).unwrap_or(0)) / 255.0;
        if v <= 0.040_45 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    let on_white = 1.05 / (l + 0.05);
    let on_dark = (l + 0.05) / 0.05;
    if on_white >= on_dark { "#ffffff" } else { "#1f2328" }
}

fn payload<T: DeserializeOwned>(message: &OutboundMessage) -> Result<T, RenderError> {
    T::deserialize(&message.payload).map_err(|e| RenderError::Payload {
        kind: message.kind,
        reason: e.to_string(),
    })
}

/// An optional name on one line; `None` when it is empty.
fn line(text: Option<String>) -> Option<String> {
    text.map(|t| one_line(&t)).filter(|t| !t.is_empty())
}

/// The name to greet: the payload's, else the recipient's display name.
fn greeting(name: Option<String>, message: &OutboundMessage) -> Option<String> {
    name.or_else(|| message.recipient_name.clone())
        .map(|n| one_line(&n))
        .filter(|n| !n.is_empty())
}

/// `Tuesday 3 March 2026, 14:00 GMT` in `tz`.
fn datetime(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%A %-d %B %Y, %H:%M %Z").to_string()
}

fn percent(n: f64) -> i64 {
    // a percentage: 0..=100 fits
    #[allow(clippy::cast_possible_truncation)]
    let p = n.round().clamp(0.0, 100.0) as i64;
    p
}

#[derive(Deserialize)]
struct ContactPayload {
    portal_name: String,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct TaskPayload {
    title: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    due_date: Option<NaiveDate>,
    #[serde(default)]
    due_state: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Deserialize)]
struct SummaryPayload {
    portal_name: String,
    tasks: Vec<TaskPayload>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    progress_percent: Option<f64>,
    #[serde(default)]
    portal_link_hint: Option<String>,
    #[serde(default)]
    phase_name: Option<String>,
}

#[derive(Deserialize)]
struct ReminderPayload {
    portal_name: String,
    task: TaskPayload,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct AutomaticReminderPayload {
    portal_name: String,
    reason: String,
    tasks: Vec<TaskPayload>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
}

#[derive(Deserialize)]
struct DigestPayload {
    portal_name: String,
    items: Vec<DigestItemPayload>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
}

/// One item of a digest: what the message it stands for would have carried, and its kind.
#[derive(Deserialize)]
struct DigestItemPayload {
    kind: MailKind,
    #[serde(default)]
    tasks: Vec<TaskPayload>,
    #[serde(default)]
    task: Option<TaskPayload>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    phase_name: Option<String>,
    #[serde(default)]
    progress_percent: Option<f64>,
}

/// A digest item as the templates show it: a heading and its tasks.
fn digest_section(item: DigestItemPayload, kind: MailKind) -> Result<Value, RenderError> {
    let reason_heading = |r: Option<&str>| match r {
        Some("unlocked") => "Ready for you",
        Some("due_soon") => "Due soon",
        Some("overdue") => "Overdue",
        _ => "Reminder",
    };
    let heading = match item.kind {
        MailKind::TaskSummary => match item.progress_percent.filter(|n| n.is_finite()) {
            Some(p) => format!("Task summary ({}% done)", percent(p)),
            None => "Task summary".to_owned(),
        },
        MailKind::PhaseSummary => format!(
            "Summary of phase {}",
            line(item.phase_name).unwrap_or_else(|| "-".to_owned())
        ),
        MailKind::TaskReminder | MailKind::AutomaticReminder => reason_heading(item.reason.as_deref()).to_owned(),
        other => {
            return Err(RenderError::Payload {
                kind,
                reason: format!("a digest cannot carry a {other} message"),
            });
        }
    };
    let rows: Vec<TaskRow> = item.tasks.into_iter().chain(item.task).map(TaskRow::from).collect();
    Ok(json!({ "heading": heading, "task_table": task_table(&rows), "tasks": rows }))
}

#[derive(Deserialize)]
struct UserPayload {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct MeetingPayload {
    title: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    time_zone: String,
    uid: String,
    sequence: i64,
    organizer_email: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    organizer_name: Option<String>,
    #[serde(default)]
    portal_name: Option<String>,
    #[serde(default)]
    contact_name: Option<String>,
    #[serde(default)]
    cancelled: bool,
}

/// A task as the templates show it.
#[derive(serde::Serialize)]
struct TaskRow {
    title: String,
    phase: Option<String>,
    status: String,
    done: bool,
    due: Option<String>,
    /// `overdue`, `due_soon` or `on_track`.
    due_state: Option<&'static str>,
    due_state_label: Option<&'static str>,
    owner: Option<&'static str>,
}

impl From<TaskPayload> for TaskRow {
    fn from(t: TaskPayload) -> Self {
        let status = t.status.as_deref().unwrap_or("");
        let (due_state, due_state_label) = match t.due_state.as_deref() {
            Some("overdue") => (Some("overdue"), Some("overdue")),
            Some("due_soon") => (Some("due_soon"), Some("due soon")),
            Some("on_track" | "ok") => (Some("on_track"), Some("on track")),
            _ => (None, None),
        };
        Self {
            title: one_line(&t.title),
            phase: t.phase.map(|p| one_line(&p)).filter(|p| !p.is_empty()),
            status: match status {
                "pending" => "Pending".to_owned(),
                "in_progress" => "In progress".to_owned(),
                "completed" => "Completed".to_owned(),
                "blocked" => "Blocked".to_owned(),
                "" => "-".to_owned(),
                other => {
                    let words = one_line(&other.replace('_', " "));
                    let mut chars = words.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().chain(chars).collect())
                        .unwrap_or_default()
                }
            },
            done: status == "completed",
            due: t.due_date.map(|d| d.format("%-d %b %Y").to_string()),
            due_state,
            due_state_label,
            owner: match t.owner.as_deref() {
                Some("client") => Some("You"),
                Some("msp") => Some("Us"),
                _ => None,
            },
        }
    }
}

/// The tasks as aligned plain-text columns.
fn task_table(rows: &[TaskRow]) -> String {
    const MAX_TITLE: usize = 48;
    let due_text = |r: &TaskRow| match (&r.due, r.due_state_label) {
        (Some(d), Some(s)) if r.due_state != Some("on_track") && !r.done => format!("{d} ({s})"),
        (Some(d), _) => d.clone(),
        (None, _) => "-".to_owned(),
    };
    let header = ["Task", "Phase", "Status", "Due", "Who"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.title.clone(),
                r.phase.clone().unwrap_or_else(|| "-".to_owned()),
                r.status.clone(),
                due_text(r),
                r.owner.unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths[0] = widths[0].min(MAX_TITLE);
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&header);
    out.push('\n');
    for row in &cells {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// The context and calendar of a meeting invitation.
fn meeting(
    p: MeetingPayload,
    message: &OutboundMessage,
    kind: MailKind,
) -> Result<(Map<String, Value>, String), RenderError> {
    let bad = |reason: String| RenderError::Payload { kind, reason };
    let tz: Tz = p.time_zone.parse().map_err(|_| {
        bad(format!(
            "`time_zone` {:?} is not an IANA time zone",
            one_line(&p.time_zone)
        ))
    })?;
    if p.ends_at <= p.starts_at {
        return Err(bad("`ends_at` is not after `starts_at`".to_owned()));
    }
    let uid = one_line(&p.uid);
    if uid.is_empty() {
        return Err(bad("`uid` is empty".to_owned()));
    }
    let organizer =
        Email::parse(&p.organizer_email).map_err(|e| bad(format!("`organizer_email` is not an address: {e}")))?;
    let title = one_line(&p.title);
    let attendee_name = greeting(p.contact_name.clone(), message);
    let ics = ics::calendar(&ics::Meeting {
        uid: &uid,
        sequence: p.sequence,
        title: &title,
        description: p.description.as_deref(),
        location: p.location.as_deref(),
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        tz,
        organizer_name: p.organizer_name.as_deref(),
        organizer_email: organizer.as_str(),
        attendee_name: message.recipient_name.as_deref().or(attendee_name.as_deref()),
        attendee_email: message.recipient.as_str(),
        stamp: message.created_at,
        cancelled: p.cancelled,
    });
    let start = p.starts_at.with_timezone(&tz);
    let end = p.ends_at.with_timezone(&tz);
    let when = if start.date_naive() == end.date_naive() {
        format!(
            "{}, {}–{} ({})",
            start.format("%A %-d %B %Y"),
            start.format("%H:%M"),
            end.format("%H:%M"),
            tz.name()
        )
    } else {
        format!(
            "{} – {} ({})",
            start.format("%A %-d %B %Y, %H:%M"),
            end.format("%A %-d %B %Y, %H:%M"),
            tz.name()
        )
    };
    let mut c = Map::new();
    c.insert("title".into(), json!(title));
    c.insert("date".into(), json!(start.format("%-d %B %Y").to_string()));
    c.insert("when".into(), json!(when));
    c.insert(
        "description".into(),
        json!(p.description.filter(|d| !d.trim().is_empty())),
    );
    c.insert(
        "location".into(),
        json!(p.location.map(|l| one_line(&l)).filter(|l| !l.is_empty())),
    );
    c.insert(
        "organizer_name".into(),
        json!(p.organizer_name.map(|n| one_line(&n)).filter(|n| !n.is_empty())),
    );
    c.insert("organizer_email".into(), json!(organizer.as_str()));
    c.insert("portal_name".into(), json!(line(p.portal_name)));
    c.insert("greeting_name".into(), json!(attendee_name));
    c.insert("updated".into(), json!(p.sequence > 0));
    c.insert("cancelled".into(), json!(p.cancelled));
    Ok((c, ics))
}

#[cfg(test)]
mod tests {
    use portal_core::mail::MailKind;

    use super::*;
    use crate::testing::{self, TOKEN};

    fn all_kinds() -> Vec<(MailKind, OutgoingEmail)> {
        MailKind::ALL.iter().map(|k| (*k, testing::render(*k))).collect()
    }

    #[test]
    fn every_kind_renders_text_and_html_with_the_branding() {
        for (kind, e) in all_kinds() {
            assert_eq!(e.kind, kind);
            assert!(
                !e.subject.is_empty() && !e.subject.contains('\n'),
                "{kind}: {:?}",
                e.subject
            );
            assert!(e.text.contains("Acme IT Portal"), "{kind} text:\n{}", e.text);
            assert!(e.html.contains("Acme IT Portal"), "{kind}");
            assert!(e.html.contains("background:#0a7f4f"), "{kind}: the primary colour");
            assert!(
                e.html.contains(r#"<img src="https://acme-it.example/logo.svg""#),
                "{kind}: the logo"
            );
            assert!(e.html.starts_with("<!DOCTYPE html>"), "{kind}");
            assert_eq!(e.from.name.as_deref(), Some("Acme IT Portal"));
            assert_eq!(e.from.email.as_str(), "portal@acme-it.example");
            assert_eq!(e.reply_to.as_ref().unwrap().email.as_str(), "help@acme-it.example");
            assert_eq!(e.to.email.as_str(), "priya@northwind.example");
            assert!(e.message_id.ends_with("@portal.acme-it.example"), "{}", e.message_id);
            assert_eq!(e.message_id.split('@').next(), Some(e.idempotency_key.as_str()));
            assert!(!e.text.contains("{{") && !e.html.contains("{{"), "{kind}");
        }
    }

    #[test]
    fn links_and_codes_are_in_both_bodies() {
        let base = "https://portal.acme-it.example";
        for (kind, path) in [
            (MailKind::ContactInvitation, "access"),
            (MailKind::AccessLink, "access"),
            (MailKind::PortalUserInvite, "setup"),
            (MailKind::PasswordReset, "reset-password"),
        ] {
            let e = testing::render(kind);
            let link = format!("{base}/{path}/{TOKEN}");
            assert!(e.text.contains(&link), "{kind} text:\n{}", e.text);
            assert!(e.html.contains(&format!("href=\"{link}\"")), "{kind} html");
            assert!(!e.subject.contains(TOKEN));
        }
        let e = testing::render(MailKind::VerificationCode);
        assert!(e.text.contains(testing::CODE) && e.html.contains(testing::CODE));
        assert!(!e.subject.contains(testing::CODE));
        assert!(e.text.contains("30 minutes"));
        assert!(e.text.contains("ignore"));
    }

    #[test]
    fn subjects_say_what_the_message_is() {
        let subject = |k| testing::render(k).subject;
        assert_eq!(
            subject(MailKind::ContactInvitation),
            "You're invited to your onboarding portal: Northwind onboarding"
        );
        assert_eq!(subject(MailKind::AccessLink), "Your new link to Northwind onboarding");
        assert_eq!(subject(MailKind::TaskReminder), "Overdue: Send the network diagram");
        assert_eq!(subject(MailKind::PasswordReset), "Reset your Acme IT Portal password");
        assert_eq!(
            subject(MailKind::MeetingInvitation),
            "Updated invitation: Kick-off call on 3 March 2026"
        );
    }

    #[test]
    fn summaries_list_tasks_as_a_table_and_aligned_lines() {
        let e = testing::render(MailKind::TaskSummary);
        assert!(e.html.contains("<table"), "{}", e.html);
        assert!(e.html.contains("Send the network diagram"));
        assert!(e.text.contains("40%"));
        let lines: Vec<&str> = e.text.lines().filter(|l| l.contains("Kick-off")).collect();
        assert_eq!(lines.len(), 2, "{}", e.text);
        let column = |l: &str| l.find("Kick-off").unwrap();
        assert_eq!(column(lines[0]), column(lines[1]), "{}", e.text);
        assert!(e.text.contains("1 Mar 2026 (overdue)"), "{}", e.text);
        let phase = testing::render(MailKind::PhaseSummary);
        assert!(phase.subject.contains("Kick-off"), "{}", phase.subject);
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let mut tenant = testing::tenant();
        tenant.branding.app_name = None;
        let mut m = testing::message(MailKind::ContactInvitation);
        m.payload["portal_name"] = json!("<script>alert('x')</script> & co");
        let e = testing::renderer().render(&tenant, &m, Some(TOKEN)).unwrap();
        assert!(!e.html.contains("<script>"), "{}", e.html);
        assert!(e.html.contains("&lt;script&gt;"));
        assert!(e.text.contains("<script>alert('x')</script> & co"));
        assert!(
            e.subject.contains("<script>"),
            "the subject is text, encoded by the transport"
        );
    }

    #[test]
    fn a_line_break_in_a_name_never_reaches_a_header() {
        let e = testing::render_injection();
        assert!(!e.subject.contains(['\r', '\n']));
        assert!(e.subject.contains("Acme Bcc: evil@x"), "{}", e.subject);
        assert!(!e.to.name.as_deref().unwrap().contains(['\r', '\n']));
    }

    #[test]
    fn branding_falls_back_and_bad_values_are_dropped() {
        let mut tenant = testing::tenant();
        tenant.branding.app_name = None;
        tenant.branding.sender_name = None;
        tenant.branding.sender_email = None;
        tenant.branding.reply_to = None;
        tenant.branding.logo_url = Some("javascript:alert(1)".to_owned());
        tenant.branding.primary_colour = "red;background:url(x)".to_owned();
        let e = testing::renderer()
            .render(&tenant, &testing::message(MailKind::AccessLink), Some(TOKEN))
            .unwrap();
        assert_eq!(e.from.name.as_deref(), Some("Acme IT"));
        assert_eq!(e.from.email.as_str(), "noreply@portal.example");
        assert_eq!(e.reply_to, None);
        assert!(!e.html.contains("<img"));
        assert!(!e.html.contains("javascript"));
        assert!(e.html.contains("background:#1f6feb"));
        // a light colour gets dark text
        tenant.branding.primary_colour = "#FFE066".to_owned();
        let e = testing::renderer()
            .render(&tenant, &testing::message(MailKind::AccessLink), Some(TOKEN))
            .unwrap();
        assert!(e.html.contains("color:#1f2328"));
    }

    #[test]
    fn missing_fields_and_secrets() {
        let r = testing::renderer();
        let t = testing::tenant();
        let mut m = testing::message(MailKind::ContactInvitation);
        m.payload.as_object_mut().unwrap().remove("portal_name");
        let err = r.render(&t, &m, Some(TOKEN)).unwrap_err();
        assert!(matches!(err, RenderError::Payload { .. }), "{err}");
        assert!(err.to_string().contains("portal_name"), "{err}");

        let mut m = testing::message(MailKind::ContactInvitation);
        for field in ["company_name", "contact_name", "expires_at"] {
            m.payload.as_object_mut().unwrap().remove(field);
        }
        let e = r.render(&t, &m, Some(TOKEN)).unwrap();
        assert!(
            e.text.contains("Hello Priya Patel,"),
            "falls back to the recipient name:\n{}",
            e.text
        );
        assert!(!e.text.contains("until"));

        let err = r
            .render(&t, &testing::message(MailKind::PasswordReset), None)
            .unwrap_err();
        assert_eq!(err, RenderError::MissingSecret(MailKind::PasswordReset));

        let mut m = testing::message(MailKind::PhaseSummary);
        m.payload.as_object_mut().unwrap().remove("phase_name");
        assert!(r.render(&t, &m, None).is_err());

        let mut m = testing::message(MailKind::MeetingInvitation);
        m.payload["time_zone"] = json!("Mars/Olympus");
        assert!(r.render(&t, &m, None).is_err());

        let mut m = testing::message(MailKind::TaskSummary);
        m.payload = json!({ "portal_name": "P", "tasks": [{ "title": "Only a title" }] });
        let e = r.render(&t, &m, None).unwrap();
        assert!(e.text.contains("Only a title"));
    }

    #[test]
    fn a_meeting_invitation_carries_a_request_calendar() {
        let e = testing::render(MailKind::MeetingInvitation);
        assert_eq!(e.attachments.len(), 1);
        let a = &e.attachments[0];
        assert_eq!(a.filename, "invite.ics");
        assert_eq!(a.content_type, "text/calendar; charset=utf-8; method=REQUEST");
        let ics = String::from_utf8(a.content.clone()).unwrap();
        testing::assert_ics_request(&ics, "meeting-42@acme-it.example", 2);
        assert!(ics.contains("ATTENDEE;CN=\"Priya Patel\""));
        assert!(ics.contains("mailto:priya@northwind.example"));
        assert!(
            e.text.contains("Tuesday 3 March 2026, 14:00–15:00 (Europe/London)"),
            "{}",
            e.text
        );
        assert!(e.text.contains("Teams link in the description"));
    }

    #[test]
    fn public_urls_are_checked() {
        let sender = testing::renderer().default_sender;
        assert!(Renderer::new("ftp://x.example", sender.clone()).is_err());
        assert!(Renderer::new("https://x.example/?a=1", sender.clone()).is_err());
        assert!(Renderer::new("not a url", sender.clone()).is_err());
        let r = Renderer::new("https://Portal.Example/clients/", sender.clone()).unwrap();
        assert_eq!(r.public_url(), "https://portal.example/clients");
        assert_eq!(r.message_host, "portal.example");
        assert_eq!(
            r.link("access", "a/b+c"),
            "https://portal.example/clients/access/a%2Fb%2Bc"
        );
        let r = Renderer::new("http://127.0.0.1:8080", sender).unwrap();
        assert_eq!(r.message_host, "[127.0.0.1]");
    }

    #[test]
    fn tidy_collapses_blank_lines() {
        assert_eq!(tidy("\n\na  \n\n\n\nb\n--\nc\n\n"), "a\n\nb\n-- \nc\n");
    }

    fn to_contact(kind: MailKind) -> OutboundMessage {
        let mut m = testing::message(kind);
        m.portal_id = Some(portal_core::id::PortalId::from_uuid(uuid::Uuid::from_u128(0x9)));
        m.contact_id = Some(portal_core::id::ContactId::from_uuid(uuid::Uuid::from_u128(0xc)));
        m
    }

    fn header<'a>(e: &'a OutgoingEmail, name: &str) -> Option<&'a str> {
        e.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn notifications_to_contacts_carry_a_one_click_unsubscribe_for_their_topic() {
        let key = Arc::new(testing::master_key());
        let r = testing::renderer().with_unsubscribe_key(Arc::clone(&key));
        let cases = [
            (MailKind::TaskSummary, Some(Topic::Summaries)),
            (MailKind::TaskReminder, Some(Topic::Reminders)),
            (MailKind::AutomaticReminder, Some(Topic::Overdue)),
            (MailKind::NotificationDigest, None),
        ];
        for (kind, topic) in cases {
            let mut m = to_contact(kind);
            if let Some(t) = topic {
                m.payload["topic"] = json!(t);
            }
            let e = r.render(&testing::tenant(), &m, None).unwrap();
            let list = header(&e, "List-Unsubscribe").unwrap_or_else(|| panic!("{kind}: no List-Unsubscribe"));
            let prefix = "<https://portal.acme-it.example/api/v1/unsubscribe/";
            assert!(list.starts_with(prefix) && list.ends_with('>'), "{kind}: {list}");
            let token = &list[prefix.len()..list.len() - 1];
            let decoded = UnsubscribeToken::decode(&key, token).expect("a valid token");
            assert_eq!(decoded.topic, topic, "{kind}");
            assert_eq!(Some(decoded.contact_id), m.contact_id);
            assert_eq!(Some(decoded.portal_id), m.portal_id);
            assert_eq!(decoded.tenant_id, m.tenant_id);
            assert_eq!(
                header(&e, "List-Unsubscribe-Post"),
                Some("List-Unsubscribe=One-Click"),
                "{kind}"
            );
            let page = format!("https://portal.acme-it.example/unsubscribe/{token}");
            assert!(e.text.contains(&page), "{kind} text:\n{}", e.text);
            assert!(e.html.contains(&format!(r#"href="{page}""#)), "{kind} html");
        }
        // Not on what a contact needs to get in, nor on meetings, nor without a contact.
        for kind in [
            MailKind::ContactInvitation,
            MailKind::VerificationCode,
            MailKind::MeetingInvitation,
        ] {
            let e = r
                .render(&testing::tenant(), &to_contact(kind), testing::secret(kind))
                .unwrap();
            assert_eq!(header(&e, "List-Unsubscribe"), None, "{kind}");
            assert!(!e.text.contains("/unsubscribe/"), "{kind}");
        }
        let e = r
            .render(&testing::tenant(), &testing::message(MailKind::AutomaticReminder), None)
            .unwrap();
        assert_eq!(header(&e, "List-Unsubscribe"), None, "no contact, no link");
        // Without the key there is no link at all.
        let e = testing::renderer()
            .render(&testing::tenant(), &to_contact(MailKind::TaskSummary), None)
            .unwrap();
        assert_eq!(header(&e, "List-Unsubscribe"), None);
    }

    #[test]
    fn automatic_reminders_and_digests_show_their_tasks() {
        let e = testing::render(MailKind::AutomaticReminder);
        assert_eq!(e.subject, "Overdue: 2 tasks in Northwind onboarding");
        assert!(e.text.contains("Send the network diagram") && e.text.contains("Set up backups"));
        assert!(e.html.contains("overdue"));
        let mut m = testing::message(MailKind::AutomaticReminder);
        m.payload["reason"] = json!("unlocked");
        m.payload["tasks"] = json!([m.payload["tasks"][0]]);
        let e = testing::renderer().render(&testing::tenant(), &m, None).unwrap();
        assert_eq!(e.subject, "Ready for you: Send the network diagram");
        m.payload["reason"] = json!("whenever");
        assert!(matches!(
            testing::renderer().render(&testing::tenant(), &m, None),
            Err(RenderError::Payload { .. })
        ));
        m.payload["reason"] = json!("overdue");
        m.payload["tasks"] = json!([]);
        assert!(testing::renderer().render(&testing::tenant(), &m, None).is_err());

        let e = testing::render(MailKind::NotificationDigest);
        assert_eq!(e.subject, "Your daily update from Northwind onboarding: 3 items");
        for text in [&e.text, &e.html] {
            assert!(text.contains("Task summary (40% done)"));
            assert!(text.contains("Due soon"));
            assert!(text.contains("Reminder"));
            assert!(text.contains("Sign the contract"));
        }
        let mut m = testing::message(MailKind::NotificationDigest);
        m.payload["items"][0]["kind"] = json!("contact_invitation");
        assert!(testing::renderer().render(&testing::tenant(), &m, None).is_err());
    }
}
