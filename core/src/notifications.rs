//! Notification preferences, the reminder cadence and daily digests (BYD-5).
//!
//! - **Preferences belong to the contact** ([`NotificationPreferences`], on every
//!   [`Contact`](crate::portal::Contact)): for each [`Topic`] (event type) of their portal,
//!   [`Delivery::Immediate`] (the default), [`Delivery::DailyDigest`] or [`Delivery::Off`]. A
//!   contact belongs to one portal, so a contact's preferences are per portal. Staff see them and
//!   cannot change them; a contact changes them from a contact session or, without one, with the
//!   one-click unsubscribe link every notification carries ([`UnsubscribeToken`], RFC 8058).
//! - **What is never filtered**: messages a contact needs to get in at all or asked for (the
//!   invitation, a new link, a one-time code) and meeting invitations (a calendar entry someone
//!   agreed to). Everything else staff send (summaries, reminders) and every automatic reminder
//!   goes through the preferences.
//! - **The reminder cadence is the tenant's** ([`ReminderCadence`]): remind about a client task
//!   when it unlocks (its last dependency is completed), `N` days before it is due, and once it
//!   is overdue. Each reminder is recorded in a ledger ([`ReminderRecord`]) keyed by task,
//!   contact, reason and due date, in the same commit as its mail, so the same reminder is never
//!   sent twice (a moved due date is a new reminder).
//! - **Daily digests** collect what a contact chose to receive as a digest ([`DigestItem`]) and
//!   go out once a day at the tenant's digest hour in its time zone ([`digest_boundary`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::{KeyPurpose, MasterKey};
use crate::error::ValueError;
use crate::id::{ContactId, DigestItemId, PortalId, TaskId, TenantId};
use crate::tenant::TimeZone;

/// An event type a contact may be notified of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Task and phase summaries staff send.
    Summaries,
    /// Reminders about a task staff send.
    Reminders,
    /// A task of the client unlocked: its last dependency was completed.
    TaskUnlocked,
    /// A task of the client is due in a few days.
    DueSoon,
    /// A task of the client is overdue.
    Overdue,
}

crate::string_enum!(Topic {
    Summaries => "summaries",
    Reminders => "reminders",
    TaskUnlocked => "task_unlocked",
    DueSoon => "due_soon",
    Overdue => "overdue",
});

impl Topic {
    const fn code(self) -> u8 {
        match self {
            Self::Summaries => 1,
            Self::Reminders => 2,
            Self::TaskUnlocked => 3,
            Self::DueSoon => 4,
            Self::Overdue => 5,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Summaries,
            2 => Self::Reminders,
            3 => Self::TaskUnlocked,
            4 => Self::DueSoon,
            5 => Self::Overdue,
            _ => return None,
        })
    }
}

/// How a contact wants to hear of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A message of its own, at once.
    #[default]
    Immediate,
    /// Collected into one message a day.
    DailyDigest,
    /// Not at all.
    Off,
}

crate::string_enum!(Delivery {
    Immediate => "immediate",
    DailyDigest => "daily_digest",
    Off => "off",
});

/// A contact's choice per topic; a topic left out is [`Delivery::Immediate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// Task and phase summaries staff send.
    #[serde(default)]
    pub summaries: Delivery,
    /// Reminders staff send about one task.
    #[serde(default)]
    pub reminders: Delivery,
    /// A task of theirs unlocked.
    #[serde(default)]
    pub task_unlocked: Delivery,
    /// A task of theirs is due soon.
    #[serde(default)]
    pub due_soon: Delivery,
    /// A task of theirs is overdue.
    #[serde(default)]
    pub overdue: Delivery,
}

impl NotificationPreferences {
    /// Every topic off: what "unsubscribe from everything" leaves.
    pub const ALL_OFF: Self = Self {
        summaries: Delivery::Off,
        reminders: Delivery::Off,
        task_unlocked: Delivery::Off,
        due_soon: Delivery::Off,
        overdue: Delivery::Off,
    };

    /// The delivery chosen for `topic`.
    #[must_use]
    pub const fn get(&self, topic: Topic) -> Delivery {
        match topic {
            Topic::Summaries => self.summaries,
            Topic::Reminders => self.reminders,
            Topic::TaskUnlocked => self.task_unlocked,
            Topic::DueSoon => self.due_soon,
            Topic::Overdue => self.overdue,
        }
    }

    /// The same preferences with `topic` set to `delivery`.
    #[must_use]
    pub const fn with(mut self, topic: Topic, delivery: Delivery) -> Self {
        match topic {
            Topic::Summaries => self.summaries = delivery,
            Topic::Reminders => self.reminders = delivery,
            Topic::TaskUnlocked => self.task_unlocked = delivery,
            Topic::DueSoon => self.due_soon = delivery,
            Topic::Overdue => self.overdue = delivery,
        }
        self
    }
}

/// Longest lead time of a "due soon" reminder, in days.
pub const MAX_DAYS_BEFORE_DUE: u8 = 30;
/// The lead time tenants start with, in days.
pub const DEFAULT_DAYS_BEFORE_DUE: u8 = 2;
/// The hour of the day (in the tenant's time zone) digests go out by default.
pub const DEFAULT_DIGEST_HOUR: u8 = 8;

/// When client tasks are reminded of automatically; set per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReminderCadence {
    /// When a task unlocks (its last dependency is completed).
    pub on_unlock: bool,
    /// This many days (1 to 30) before a task is due; never when `null`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 30))]
    pub days_before_due: Option<u8>,
    /// Once, when a task becomes overdue.
    pub when_overdue: bool,
}

impl Default for ReminderCadence {
    fn default() -> Self {
        Self {
            on_unlock: true,
            days_before_due: Some(DEFAULT_DAYS_BEFORE_DUE),
            when_overdue: true,
        }
    }
}

/// The tenant's notification settings (BYD-5): the reminder cadence and the digest hour. Kept
/// beside [`TenantSettings`](crate::tenant::TenantSettings) like the link settings; tenants
/// stored before it existed read the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// The automatic reminders.
    #[serde(default)]
    pub reminders: ReminderCadence,
    /// The hour (0 to 23, in the tenant's time zone) daily digests go out; 8 when left out.
    #[serde(default = "default_digest_hour")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 23, default = 8))]
    pub digest_hour: u8,
}

const fn default_digest_hour() -> u8 {
    DEFAULT_DIGEST_HOUR
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl NotificationSettings {
    /// The defaults: every reminder on, 2 days before due, digests at 08:00.
    #[must_use]
    pub fn new() -> Self {
        Self {
            reminders: ReminderCadence::default(),
            digest_hour: DEFAULT_DIGEST_HOUR,
        }
    }

    /// Refuses values outside their ranges.
    ///
    /// # Errors
    ///
    /// `days_before_due` outside 1..=30 or `digest_hour` above 23.
    pub fn check(&self) -> Result<(), ValueError> {
        if let Some(d) = self.reminders.days_before_due
            && !(1..=MAX_DAYS_BEFORE_DUE).contains(&d)
        {
            return Err(ValueError::OutOfRange {
                field: "days_before_due",
                min: 1,
                max: i64::from(MAX_DAYS_BEFORE_DUE),
                actual: i64::from(d),
            });
        }
        if self.digest_hour > 23 {
            return Err(ValueError::OutOfRange {
                field: "digest_hour",
                min: 0,
                max: 23,
                actual: i64::from(self.digest_hour),
            });
        }
        Ok(())
    }
}

/// Why an automatic reminder is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReminderReason {
    /// The task's last dependency was completed.
    Unlocked,
    /// The task is due within the tenant's lead time.
    DueSoon,
    /// The task is past its due date.
    Overdue,
}

crate::string_enum!(ReminderReason {
    Unlocked => "unlocked",
    DueSoon => "due_soon",
    Overdue => "overdue",
});

impl ReminderReason {
    /// The topic a contact's preference for this reminder is read from.
    #[must_use]
    pub const fn topic(self) -> Topic {
        match self {
            Self::Unlocked => Topic::TaskUnlocked,
            Self::DueSoon => Topic::DueSoon,
            Self::Overdue => Topic::Overdue,
        }
    }
}

/// One automatic reminder decided for one contact: the ledger row that keeps it from being
/// decided again. Written whatever the contact's preference (a reminder switched off is not
/// sent later either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderRecord {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// The task.
    pub task_id: TaskId,
    /// The contact.
    pub contact_id: ContactId,
    /// Why.
    pub reason: ReminderReason,
    /// The due date it was about (`None` for an unlock): a new date is a new reminder.
    pub due_date: Option<NaiveDate>,
    /// When it was decided.
    pub sent_at: DateTime<Utc>,
}

impl ReminderRecord {
    /// Whether this record is the ledger entry of the same reminder as the one described.
    #[must_use]
    pub fn is_for(&self, task: TaskId, contact: ContactId, reason: ReminderReason, due: Option<NaiveDate>) -> bool {
        self.task_id == task && self.contact_id == contact && self.reason == reason && self.due_date == due
    }
}

/// Something a contact chose to receive in their daily digest, waiting for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItem {
    /// Id.
    pub id: DigestItemId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// What it is about.
    pub topic: Topic,
    /// What the digest shows of it (titles, due dates; nothing secret).
    pub payload: Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// A contact with digest items waiting, and the oldest one's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingDigest {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The portal.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// The oldest waiting item's time.
    pub oldest: DateTime<Utc>,
}

/// The latest digest time at or before `now`: `hour`:00 in `zone` today, or yesterday when
/// that is still to come. Items older than it go out in the digest due at it. On a day the
/// hour does not exist (a daylight-saving gap), the first instant after the gap.
#[must_use]
pub fn digest_boundary(zone: &TimeZone, hour: u8, now: DateTime<Utc>) -> DateTime<Utc> {
    let at = |day: NaiveDate| -> DateTime<Utc> {
        let time = NaiveTime::from_hms_opt(u32::from(hour.min(23)), 0, 0).unwrap_or(NaiveTime::MIN);
        let naive = day.and_time(time);
        match zone.0.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            // A gap: an hour later exists (gaps are at most an hour in the tz database's zones).
            chrono::LocalResult::None => zone
                .0
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
                .map_or(naive.and_utc(), |t| t.with_timezone(&Utc)),
        }
    };
    let today = zone.today(now);
    let candidate = at(today);
    if candidate <= now {
        candidate
    } else {
        at(today.pred_opt().unwrap_or(today))
    }
}

/// The link in a notification that switches it off without signing in (RFC 8058 one-click):
/// the tenant, the contact and the topic (or every topic), signed with a key derived from the
/// master key. It only ever switches notifications off, so it does not expire; forging one
/// needs the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeToken {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The contact's portal.
    pub portal_id: PortalId,
    /// The contact.
    pub contact_id: ContactId,
    /// The topic switched off; every topic when `None`.
    pub topic: Option<Topic>,
}

const UNSUBSCRIBE_BODY: usize = 16 + 16 + 16 + 1;
const UNSUBSCRIBE_TAG: usize = 16;

impl UnsubscribeToken {
    fn body(&self) -> [u8; UNSUBSCRIBE_BODY] {
        let mut b = [0u8; UNSUBSCRIBE_BODY];
        b[..16].copy_from_slice(self.tenant_id.as_uuid().as_bytes());
        b[16..32].copy_from_slice(self.portal_id.as_uuid().as_bytes());
        b[32..48].copy_from_slice(self.contact_id.as_uuid().as_bytes());
        b[48] = self.topic.map_or(0, Topic::code);
        b
    }

    /// The token as it goes in a URL: URL-safe base64 of the body and a 128-bit MAC.
    #[must_use]
    pub fn encode(&self, key: &MasterKey) -> String {
        let body = self.body();
        let mac = key.mac(KeyPurpose::Unsubscribe, &body);
        let mut all = Vec::with_capacity(UNSUBSCRIBE_BODY + UNSUBSCRIBE_TAG);
        all.extend_from_slice(&body);
        all.extend_from_slice(&mac[..UNSUBSCRIBE_TAG]);
        URL_SAFE_NO_PAD.encode(all)
    }

    /// The token `text` stands for, when it is well formed and its MAC is right.
    #[must_use]
    pub fn decode(key: &MasterKey, text: &str) -> Option<Self> {
        if text.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != UNSUBSCRIBE_BODY + UNSUBSCRIBE_TAG {
            return None;
        }
        let (body, tag) = bytes.split_at(UNSUBSCRIBE_BODY);
        if !key.verify_mac_prefix(KeyPurpose::Unsubscribe, body, tag) {
            return None;
        }
        let id = |b: &[u8]| uuid::Uuid::from_slice(b).ok();
        let topic = match body[48] {
            0 => None,
            code => Some(Topic::from_code(code)?),
        };
        Some(Self {
            tenant_id: TenantId::from_uuid(id(&body[..16])?),
            portal_id: PortalId::from_uuid(id(&body[16..32])?),
            contact_id: ContactId::from_uuid(id(&body[32..48])?),
            topic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_material(&[7u8; 32]).expect("key")
    }

    fn token(topic: Option<Topic>) -> UnsubscribeToken {
        UnsubscribeToken {
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            portal_id: PortalId::from_uuid(uuid::Uuid::from_u128(3)),
            contact_id: ContactId::from_uuid(uuid::Uuid::from_u128(2)),
            topic,
        }
    }

    #[test]
    fn unsubscribe_tokens_round_trip_and_refuse_tampering() {
        let k = key();
        for topic in std::iter::once(None).chain(Topic::ALL.iter().copied().map(Some)) {
            let t = token(topic);
            let text = t.encode(&k);
            assert_eq!(UnsubscribeToken::decode(&k, &text), Some(t));
        }
        let text = token(Some(Topic::Overdue)).encode(&k);
        // Every single-character change is refused.
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(b).expect("ascii");
            if changed != text {
                assert_eq!(UnsubscribeToken::decode(&k, &changed), None, "position {i}");
            }
        }
        // Another key's token, a truncated one, junk.
        let other = MasterKey::from_material(&[8u8; 32]).expect("key");
        assert_eq!(UnsubscribeToken::decode(&other, &text), None);
        assert_eq!(UnsubscribeToken::decode(&k, &text[..text.len() - 2]), None);
        assert_eq!(UnsubscribeToken::decode(&k, "not a token"), None);
        assert_eq!(UnsubscribeToken::decode(&k, &"A".repeat(4096)), None);
    }

    #[test]
    fn digest_boundary_is_the_last_digest_hour_in_the_zone() {
        let ams = TimeZone::parse("Europe/Amsterdam").expect("zone");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc);
        // 07:30 UTC is 08:30 in Amsterdam in winter: today's 08:00 local (07:00 UTC).
        assert_eq!(
            digest_boundary(&ams, 8, at("2026-12-01T07:30:00Z")),
            at("2026-12-01T07:00:00Z")
        );
        // 06:30 UTC is 07:30 local: yesterday's.
        assert_eq!(
            digest_boundary(&ams, 8, at("2026-12-01T06:30:00Z")),
            at("2026-11-30T07:00:00Z")
        );
        // Exactly at the hour: that hour.
        assert_eq!(
            digest_boundary(&ams, 8, at("2026-12-01T07:00:00Z")),
            at("2026-12-01T07:00:00Z")
        );
        // Summer time: 08:00 local is 06:00 UTC.
        assert_eq!(
            digest_boundary(&ams, 8, at("2026-07-01T12:00:00Z")),
            at("2026-07-01T06:00:00Z")
        );
        // 02:00 does not exist on 2026-03-29 in Amsterdam: the first instant after the gap.
        assert_eq!(
            digest_boundary(&ams, 2, at("2026-03-29T12:00:00Z")),
            at("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(NotificationSettings::new().check().is_ok());
        assert_eq!(NotificationSettings::default(), NotificationSettings::new());
        let read: NotificationSettings = serde_json::from_str("{}").expect("json");
        assert_eq!(read.digest_hour, DEFAULT_DIGEST_HOUR);
        let mut s = NotificationSettings::new();
        s.reminders.days_before_due = Some(0);
        assert!(s.check().is_err());
        s.reminders.days_before_due = Some(31);
        assert!(s.check().is_err());
        s.reminders.days_before_due = None;
        assert!(s.check().is_ok());
        s.digest_hour = 24;
        assert!(s.check().is_err());
    }

    #[test]
    fn preferences_default_to_immediate_and_read_partial_json() {
        let p: NotificationPreferences = serde_json::from_str(r#"{"overdue":"off"}"#).expect("json");
        assert_eq!(p.get(Topic::Overdue), Delivery::Off);
        assert_eq!(p.get(Topic::Summaries), Delivery::Immediate);
        assert!(serde_json::from_str::<NotificationPreferences>(r#"{"sms":"off"}"#).is_err());
        assert!(serde_json::from_str::<NotificationPreferences>(r#"{"overdue":"weekly"}"#).is_err());
        let all = Topic::ALL
            .iter()
            .fold(NotificationPreferences::default(), |p, t| p.with(*t, Delivery::Off));
        assert_eq!(all, NotificationPreferences::ALL_OFF);
    }
}
