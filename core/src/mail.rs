//! Outbound mail (MAIL-1 to MAIL-4): the messages the engine queues, their delivery states, the
//! retry policy, and the transport trait that adapters implement.
//!
//! # Decisions
//!
//! - A command never sends mail. It puts an [`OutboundMessage`] in its outcome; storage writes it
//!   to the outbox in the same transaction as the rest of the outcome (MAIL-3), and a worker
//!   (`portal-mail`) renders and delivers it later. What the renderer needs is in
//!   [`OutboundMessage::payload`], a snapshot taken when the message was queued, so a later edit
//!   (a renamed portal) never changes a message already accepted.
//! - A message that carries a link token or a one-time code holds it in
//!   [`OutboundMessage::secret`]. Commands put it there in clear ([`MessageSecret::Clear`]); the
//!   engine seals it under the outbox key ([`crate::crypto::KeyPurpose::Outbox`], bound to the
//!   tenant and message ids) before the outcome reaches storage, and storage refuses a clear
//!   secret. Once delivered, the sealed secret is deleted from the row.
//! - Each message has a stable idempotency key (its id) that a redelivery repeats, as the
//!   `Message-ID` header and as the provider's idempotency field, so a duplicate caused by a crash
//!   between the send and the mark-sent is recognisable.
//! - Delivery states: `queued` → `sending` (claimed by a worker with a lease) → `sent`, or back to
//!   `queued` with a later `next_attempt_at` after a transient failure, or `failed` after a
//!   permanent failure or [`RetryPolicy::max_attempts`]. A `sending` row whose lease ran out (a
//!   worker died) is claimed again. Staff see failed messages and may queue them again.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::Sealed;
use crate::id::{ContactId, MessageId, PortalId, TenantId};
use crate::value::Email;

/// Which message (MAIL-1). Stored as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// A contact's first link to an activated portal (ONB-4, CON-2).
    ContactInvitation,
    /// A new link for a contact: resend or regenerate (CON-3), re-activation after a restore.
    AccessLink,
    /// A one-time code for forwarded-link protection (CON-5).
    VerificationCode,
    /// Every task of the portal with its status and due date.
    TaskSummary,
    /// The tasks of one phase with their status and due dates.
    PhaseSummary,
    /// A reminder about one task.
    TaskReminder,
    /// A portal user's one-time setup link.
    PortalUserInvite,
    /// A password reset link.
    PasswordReset,
    /// A meeting invitation with an ICS attachment (TSK-6).
    MeetingInvitation,
    /// Automatic reminders of one topic about the contact's tasks (BYD-5).
    AutomaticReminder,
    /// A contact's daily digest (BYD-5).
    NotificationDigest,
}

crate::string_enum!(MailKind {
    ContactInvitation => "contact_invitation",
    AccessLink => "access_link",
    VerificationCode => "verification_code",
    TaskSummary => "task_summary",
    PhaseSummary => "phase_summary",
    TaskReminder => "task_reminder",
    PortalUserInvite => "portal_user_invite",
    PasswordReset => "password_reset",
    MeetingInvitation => "meeting_invitation",
    AutomaticReminder => "automatic_reminder",
    NotificationDigest => "notification_digest",
});

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for its next attempt.
    Queued,
    /// Claimed by a worker, being sent.
    Sending,
    /// Accepted by the transport.
    Sent,
    /// Given up: a permanent failure or too many attempts. Staff may queue it again.
    Failed,
}

crate::string_enum!(MessageStatus {
    Queued => "queued",
    Sending => "sending",
    Sent => "sent",
    Failed => "failed",
});

/// A secret held in memory only: its `Debug` and `Serialize` forms are redacted and its bytes
/// are wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps `text`.
    #[must_use]
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The secret.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

/// The token or code a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum MessageSecret {
    /// In clear, as a command makes it; never stored (storage refuses it).
    Clear {
        /// The secret.
        text: SecretText,
    },
    /// Sealed under the outbox key, as stored.
    Sealed {
        /// The sealed secret.
        sealed: Sealed,
    },
}

/// A message to enqueue in the outbox (MAIL-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Id; also the idempotency key every delivery attempt repeats.
    pub id: MessageId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal it is about, if any: deleting the portal deletes its queued mail (ONB-6).
    pub portal_id: Option<PortalId>,
    /// The contact it is for, if any.
    pub contact_id: Option<ContactId>,
    /// Which message.
    pub kind: MailKind,
    /// Recipient address.
    pub recipient: Email,
    /// Recipient display name.
    pub recipient_name: Option<String>,
    /// What the renderer needs (names, dates, task lists): never a token or code.
    pub payload: serde_json::Value,
    /// The link token or one-time code the message carries, if any.
    pub secret: Option<MessageSecret>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

impl OutboundMessage {
    /// The stable idempotency key of every delivery attempt of this message.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        self.id.as_uuid().to_string()
    }

    /// The associated data its secret is sealed with: the tenant and message ids, so a sealed
    /// secret copied to another row does not open.
    #[must_use]
    pub fn secret_aad(tenant: TenantId, id: MessageId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32);
        aad.extend_from_slice(tenant.as_uuid().as_bytes());
        aad.extend_from_slice(id.as_uuid().as_bytes());
        aad
    }
}

/// A message as a worker claimed it: the message and the number of this attempt (1 for the
/// first). Marking the result names the attempt, so a worker whose lease ran out cannot
/// overwrite the result of the worker that claimed the message after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    /// The message, its secret sealed.
    pub message: OutboundMessage,
    /// This attempt's number.
    pub attempt: u32,
}

/// A delivered message to mark sent (see
/// [`crate::storage::OutboxRepo::mark_messages_sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentMark {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The message.
    pub id: MessageId,
    /// The attempt that sent it.
    pub attempt: u32,
    /// When the transport accepted it.
    pub at: DateTime<Utc>,
}

/// The delivery state of a queued message, as staff see it (no payload, no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxEntry {
    /// Id (and idempotency key).
    pub id: MessageId,
    /// The portal it is about.
    pub portal_id: Option<PortalId>,
    /// The contact it is for.
    pub contact_id: Option<ContactId>,
    /// Which message.
    pub kind: MailKind,
    /// Recipient address.
    pub recipient: Email,
    /// Where it is in its delivery.
    pub status: MessageStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (queued messages).
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the transport accepted it.
    pub sent_at: Option<DateTime<Utc>>,
}

/// When to try again after a transient failure: exponential back-off with jitter, capped, and a
/// final `failed` state after `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 30 s, doubling, capped at one hour, 10 attempts (about 5 hours in all).
    fn default() -> Self {
        Self {
            base: Duration::seconds(30),
            max_delay: Duration::hours(1),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based), with "equal jitter": half the
    /// exponential delay fixed, the other half scaled by `jitter` (a random value the caller
    /// draws, spread over `0..=u16::MAX`). `None` when no attempt is left.
    #[must_use]
    pub fn delay_after(&self, attempt: u32, jitter: u16) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1_i64 << attempt.saturating_sub(1).min(30);
        let full = self
            .base
            .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
            .map_or(self.max_delay, |d| d.min(self.max_delay));
        let half = full / 2;
        let spread = half.num_milliseconds() * i64::from(jitter) / i64::from(u16::MAX);
        Some(half + Duration::milliseconds(spread))
    }
}

/// A mailbox: an address and an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// Address.
    pub email: Email,
}

/// A file attached to an email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type, with parameters (for example `text/calendar; method=REQUEST`).
    pub content_type: String,
    /// Content.
    pub content: Vec<u8>,
}

/// A rendered email, ready for a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The `Message-ID` (without angle brackets); the same on every attempt.
    pub message_id: String,
    /// The idempotency key; the same on every attempt.
    pub idempotency_key: String,
    /// Which message, for a provider's tag.
    pub kind: MailKind,
    /// Sender.
    pub from: Mailbox,
    /// Reply address.
    pub reply_to: Option<Mailbox>,
    /// Recipient.
    pub to: Mailbox,
    /// Subject (one line).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Extra headers (`List-Unsubscribe`, ...), names and values on one line each.
    pub headers: Vec<(String, String)>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

/// What a transport reports when it accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivered {
    /// The provider's id of the message, if it gives one.
    pub provider_id: Option<String>,
}

/// Why a transport did not accept a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt later: a refused or lost connection, a timeout, a 4xx SMTP reply,
    /// a provider's rate limit or server error.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed as it is: a 5xx SMTP reply, an inactive recipient, a malformed request.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A mail transport (MAIL-4): SMTP, a provider's HTTP API, a file. Implementations are in
/// `portal-mail`.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends one email.
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivered, SendError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_with_jitter_and_stops() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1, 0), Some(Duration::seconds(15)));
        assert_eq!(p.delay_after(1, u16::MAX), Some(Duration::seconds(30)));
        assert_eq!(p.delay_after(2, u16::MAX), Some(Duration::seconds(60)));
        assert_eq!(p.delay_after(9, u16::MAX), Some(Duration::hours(1)));
        assert_eq!(p.delay_after(9, 0), Some(Duration::minutes(30)));
        assert_eq!(p.delay_after(10, 0), None);
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            ..p
        };
        assert_eq!(huge.delay_after(200, u16::MAX), Some(Duration::hours(1)));
    }

    #[test]
    fn secrets_never_print() {
        let s = MessageSecret::Clear {
            text: SecretText::new("hunter2".to_owned()),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
    }
}
