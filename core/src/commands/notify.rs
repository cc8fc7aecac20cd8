//! Mail that staff send about an active portal (MAIL-1, TSK-6): a summary of every task, a
//! summary of one phase, a reminder about one task, and a meeting invitation for a `meeting`
//! task. Each goes to the contacts staff choose (all contacts of the portal by default) and is
//! recorded as one `notification_sent` event.
//!
//! # Rules
//!
//! - Sending needs [`Action::EditPortal`] and an `active` portal (`wrong_portal_status`
//!   otherwise): clients hear about a portal only while it is live (ONB-4).
//! - Recipients are contact ids of the portal, each once; an unknown id is `not_found`, an empty
//!   list `empty_list`.
//! - Summaries and reminders follow each recipient's preference (BYD-5,
//!   [`crate::notifications`]): a message now, an item of their daily digest, or nothing. The
//!   event lists who got what. Meeting invitations go to every chosen contact.
//! - What the mail shows is a snapshot taken now (titles, statuses, due dates and due states
//!   reckoned for today in the tenant's time zone, TSK-2); nothing secret is in it.
//! - A meeting needs a task with `meeting` evidence (`wrong_evidence_type`), lasts 5 minutes to
//!   24 hours, and has a stable UID per task (`task-<id>@portal`); each send carries a larger
//!   SEQUENCE (minutes since 2026-01-01), so a moved meeting updates the attendees' calendar
//!   entry instead of adding a second one, and a cancellation (`cancelled`) removes it.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::access::message_to;
use super::portal::{portal_resource, scope};
use super::{Ctx, allow};
use crate::activity::EventKind;
use crate::error::{CommandError, ValueError};
use crate::id::{ContactId, PhaseId, TaskId};
use crate::lifecycle::PortalStatus;
use crate::mail::{MailKind, OutboundMessage};
use crate::notifications::{Delivery, DigestItem, Topic};
use crate::outcome::Outcome;
use crate::outcome::Write;
use crate::policy::{Action, Principal};
use crate::portal::{Contact, PortalState};
use crate::progress::progress;
use crate::task::{EvidenceType, Task, due_state};
use crate::tenant::{TenantSettings, TimeZone};
use crate::value::{Description, Email, Name, Title};

/// What a notification needs beyond the portal: the tenant's settings (time zone) and the
/// client company's name.
#[derive(Debug, Clone, Copy)]
pub struct NotifyEnv<'a> {
    /// The tenant's settings.
    pub settings: &'a TenantSettings,
    /// The client company's name.
    pub company_name: &'a Name,
}

/// A meeting to invite contacts to (TSK-6 `meeting` evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MeetingRequest {
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// How long it lasts, 5 to 1,440 minutes.
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 1440))]
    pub duration_minutes: u32,
    /// The time zone the invitation shows; the tenant's when left out.
    #[serde(default)]
    pub time_zone: Option<TimeZone>,
    /// Its title; the task's title when left out.
    #[serde(default)]
    pub title: Option<Title>,
    /// An optional description.
    #[serde(default)]
    pub description: Option<Description>,
    /// Where, or the meeting link (an `http(s)://` URL).
    #[serde(default)]
    pub location: Option<Title>,
    /// A cancellation of the task's meeting instead of an invitation.
    #[serde(default)]
    pub cancelled: bool,
}

/// Shortest meeting, in minutes.
pub const MIN_MEETING_MINUTES: u32 = 5;
/// Longest meeting, in minutes.
pub const MAX_MEETING_MINUTES: u32 = 1_440;

fn require_active(state: &PortalState) -> Result<(), CommandError> {
    match state.portal.status {
        PortalStatus::Active => Ok(()),
        actual => Err(CommandError::PortalStatus {
            required: PortalStatus::Active,
            actual,
        }),
    }
}

/// The contacts to write to: the chosen ones, each once, or every contact.
fn recipients<'a>(state: &'a PortalState, chosen: Option<&[ContactId]>) -> Result<Vec<&'a Contact>, CommandError> {
    let Some(ids) = chosen else {
        return Ok(state.contacts.iter().collect());
    };
    if ids.is_empty() {
        return Err(CommandError::EmptyList { what: "contacts" });
    }
    let mut out: Vec<&Contact> = Vec::with_capacity(ids.len());
    for id in ids {
        let c = state
            .contacts
            .iter()
            .find(|c| c.id == *id)
            .ok_or(CommandError::NotFound {
                entity: "contact",
                id: id.as_uuid(),
            })?;
        if !out.iter().any(|o| o.id == c.id) {
            out.push(c);
        }
    }
    Ok(out)
}

fn task_of(state: &PortalState, id: TaskId) -> Result<&Task, CommandError> {
    state.tasks.iter().find(|t| t.id == id).ok_or(CommandError::NotFound {
        entity: "task",
        id: id.as_uuid(),
    })
}

pub(crate) fn task_view(state: &PortalState, t: &Task, today: NaiveDate) -> Value {
    let phase = state
        .phases
        .iter()
        .find(|p| p.id == t.phase_id)
        .map(|p| p.name.as_str());
    json!({
        "title": t.title,
        "phase": phase,
        "status": t.status,
        "due_date": t.due_date,
        "due_state": due_state(t.due_date, t.status, today),
        "owner": t.owner,
    })
}

/// The tasks in portal order: by phase position, then task position.
fn ordered(state: &PortalState) -> Vec<&Task> {
    let mut tasks: Vec<&Task> = state.tasks.iter().collect();
    let phase_pos = |t: &Task| {
        state
            .phases
            .iter()
            .find(|p| p.id == t.phase_id)
            .map_or(i32::MAX, |p| p.position)
    };
    tasks.sort_by_key(|t| (phase_pos(t), t.position));
    tasks
}

/// What one notification says: its kind, the topic whose preference decides how each recipient
/// gets it (`None`: a message to everyone), the payload every recipient gets (plus their name),
/// and the event's summary and details.
struct Notice {
    kind: MailKind,
    topic: Option<Topic>,
    payload: Value,
    summary: String,
    details: Value,
}

/// One message per recipient and the event.
fn send(principal: &Principal, ctx: &mut Ctx, state: &PortalState, to: &[&Contact], notice: Notice) -> Outcome {
    let Notice {
        kind,
        topic,
        mut payload,
        summary,
        mut details,
    } = notice;
    let p = &state.portal;
    if let Some(topic) = topic {
        payload["topic"] = json!(topic);
    }
    let mut delivered = Delivered::default();
    for c in to {
        let mut body = payload.clone();
        body["contact_name"] = json!(c.name);
        delivered.deliver(ctx, c, topic, kind, body);
    }
    details["kind"] = json!(kind);
    delivered.describe(&mut details);
    let Delivered {
        messages, digest_items, ..
    } = delivered;
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::NotificationSent,
        summary,
        details,
    );
    Outcome {
        writes: digest_items,
        events: vec![ev],
        messages,
        ..Outcome::default()
    }
}

/// What became of one notification's recipients: messages now, digest items, or nothing.
#[derive(Default)]
pub(crate) struct Delivered {
    pub(crate) messages: Vec<OutboundMessage>,
    pub(crate) digest_items: Vec<Write>,
    recipients: Vec<ContactId>,
    digested: Vec<ContactId>,
    skipped: Vec<ContactId>,
}

impl Delivered {
    /// Delivers `payload` to `contact` as their preference for `topic` says (a message when
    /// `topic` is `None`).
    pub(crate) fn deliver(
        &mut self,
        ctx: &mut Ctx,
        contact: &Contact,
        topic: Option<Topic>,
        kind: MailKind,
        payload: Value,
    ) {
        match topic.map_or(Delivery::Immediate, |t| contact.notifications.get(t)) {
            Delivery::Immediate => {
                self.recipients.push(contact.id);
                self.messages.push(message_to(ctx, contact, kind, payload, None));
            }
            Delivery::DailyDigest => {
                self.digested.push(contact.id);
                let mut payload = payload;
                payload["kind"] = json!(kind);
                self.digest_items.push(Write::InsertDigestItem(DigestItem {
                    id: ctx.ids.next_id(),
                    tenant_id: contact.tenant_id,
                    portal_id: contact.portal_id,
                    contact_id: contact.id,
                    // `deliver` digests only with a topic.
                    topic: topic.unwrap_or(Topic::Summaries),
                    payload,
                    created_at: ctx.now,
                }));
            }
            Delivery::Off => self.skipped.push(contact.id),
        }
    }

    /// Who got what, in an event's details.
    pub(crate) fn describe(&self, details: &mut Value) {
        details["recipients"] = json!(self.recipients);
        details["messages"] = json!(self.messages.iter().map(|m| m.id).collect::<Vec<_>>());
        details["digested"] = json!(self.digested);
        details["skipped"] = json!(self.skipped);
    }
}

/// Mails a summary of every task of the portal (or, with `phase`, of one phase) with status and
/// due date to the chosen contacts.
pub fn send_task_summary(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    env: NotifyEnv<'_>,
    phase: Option<PhaseId>,
    chosen: Option<&[ContactId]>,
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    require_active(state)?;
    let to = recipients(state, chosen)?;
    let today = env.settings.time_zone.today(ctx.now);
    let phase = phase
        .map(|id| {
            state
                .phases
                .iter()
                .find(|ph| ph.id == id)
                .ok_or(CommandError::NotFound {
                    entity: "phase",
                    id: id.as_uuid(),
                })
        })
        .transpose()?;
    let tasks: Vec<Value> = ordered(state)
        .into_iter()
        .filter(|t| phase.is_none_or(|ph| t.phase_id == ph.id))
        .map(|t| task_view(state, t, today))
        .collect();
    let mut payload = json!({
        "portal_name": p.name,
        "company_name": env.company_name,
        "progress_percent": progress(&state.phases, &state.tasks, today).percent,
        "tasks": tasks,
    });
    let (kind, what) = match phase {
        Some(ph) => {
            payload["phase_name"] = json!(ph.name);
            (MailKind::PhaseSummary, format!("Summary of phase {}", ph.name))
        }
        None => (MailKind::TaskSummary, "Task summary".to_owned()),
    };
    let notice = Notice {
        kind,
        topic: Some(Topic::Summaries),
        summary: format!("{what} of {} sent to {} contact(s)", p.name, to.len()),
        details: json!({ "phase_id": phase.map(|ph| ph.id) }),
        payload,
    };
    Ok(send(principal, ctx, state, &to, notice))
}

/// Mails a reminder about one task to the chosen contacts; the reason is the task's due state
/// (`overdue`, `due_soon`) or, for a task without a date or still on time, none.
pub fn send_task_reminder(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    env: NotifyEnv<'_>,
    task: TaskId,
    chosen: Option<&[ContactId]>,
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    require_active(state)?;
    let t = task_of(state, task)?;
    let to = recipients(state, chosen)?;
    let today = env.settings.time_zone.today(ctx.now);
    let reason = match due_state(t.due_date, t.status, today) {
        Some(crate::task::DueState::Overdue) => Some("overdue"),
        Some(crate::task::DueState::DueSoon) => Some("due_soon"),
        _ => None,
    };
    let payload = json!({
        "portal_name": p.name,
        "company_name": env.company_name,
        "task": task_view(state, t, today),
        "reason": reason,
    });
    let notice = Notice {
        kind: MailKind::TaskReminder,
        topic: Some(Topic::Reminders),
        payload,
        summary: format!("Reminder about {} sent to {} contact(s)", t.title, to.len()),
        details: json!({ "task_id": t.id, "reason": reason }),
    };
    Ok(send(principal, ctx, state, &to, notice))
}

/// The SEQUENCE of a meeting sent at `now`: minutes since 2026-01-01 UTC, so each later send of
/// the same meeting (a move, a cancellation) is a larger number.
fn sequence(now: DateTime<Utc>) -> i64 {
    let epoch = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or(DateTime::UNIX_EPOCH);
    (now - epoch).num_minutes().max(0)
}

/// A meeting and who organises it (the staff member sending it).
#[derive(Debug, Clone, Copy)]
pub struct Meeting<'a> {
    /// The meeting.
    pub request: &'a MeetingRequest,
    /// The organiser's name.
    pub organizer_name: &'a Name,
    /// The organiser's address.
    pub organizer_email: &'a Email,
}

/// Invites the chosen contacts to the meeting of a `meeting` task (or cancels it), with an ICS
/// attachment.
pub fn send_meeting_invitation(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    env: NotifyEnv<'_>,
    task: TaskId,
    meeting: Meeting<'_>,
    chosen: Option<&[ContactId]>,
) -> Result<Outcome, CommandError> {
    let Meeting {
        request: meeting,
        organizer_name,
        organizer_email,
    } = meeting;
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    require_active(state)?;
    let t = task_of(state, task)?;
    if t.evidence != EvidenceType::Meeting {
        return Err(CommandError::WrongEvidence {
            expected: EvidenceType::Meeting,
            actual: t.evidence,
        });
    }
    if !(MIN_MEETING_MINUTES..=MAX_MEETING_MINUTES).contains(&meeting.duration_minutes) {
        return Err(ValueError::OutOfRange {
            field: "duration_minutes",
            min: MIN_MEETING_MINUTES.into(),
            max: MAX_MEETING_MINUTES.into(),
            actual: meeting.duration_minutes.into(),
        }
        .into());
    }
    let to = recipients(state, chosen)?;
    let ends_at = meeting.starts_at + Duration::minutes(meeting.duration_minutes.into());
    let zone = meeting.time_zone.unwrap_or(env.settings.time_zone);
    let title = meeting.title.as_ref().unwrap_or(&t.title);
    let payload = json!({
        "portal_name": p.name,
        "company_name": env.company_name,
        "title": title,
        "description": meeting.description,
        "location": meeting.location,
        "starts_at": meeting.starts_at,
        "ends_at": ends_at,
        "time_zone": zone,
        "uid": format!("task-{}@portal", t.id),
        "sequence": sequence(ctx.now),
        "organizer_name": organizer_name,
        "organizer_email": organizer_email,
        "cancelled": meeting.cancelled,
    });
    let what = if meeting.cancelled {
        "Meeting cancellation"
    } else {
        "Meeting invitation"
    };
    let notice = Notice {
        kind: MailKind::MeetingInvitation,
        topic: None,
        payload,
        summary: format!("{what} for {} sent to {} contact(s)", t.title, to.len()),
        details: json!({ "task_id": t.id, "starts_at": meeting.starts_at, "ends_at": ends_at, "cancelled": meeting.cancelled }),
    };
    Ok(send(principal, ctx, state, &to, notice))
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{Duration, TimeZone as _};

    use super::*;
    use crate::auth::SecretToken;
    use crate::commands::portal::{
        StartOnboarding, TransitionEnv, TransitionRequest, start_onboarding, transition_portal,
    };
    use crate::company::Company;
    use crate::id::{CompanyId, StaffUserId, TenantId};
    use crate::outcome::Write;
    use crate::policy::StaffPrincipal;
    use crate::portal::{ContactInput, ContactRole};
    use crate::task::{TaskOwner, TaskStatus};
    use crate::template::{TaskKey, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
    use crate::tenant::{PermissionSet, Tenant};
    use crate::value::{DayOffset, Priority};

    pub(crate) fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e:?}"))
    }

    pub(crate) fn now() -> DateTime<Utc> {
        ok(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().ok_or("a time"))
    }

    pub(crate) fn tenant() -> Tenant {
        Tenant {
            id: TenantId::from_uuid(uuid::Uuid::from_u128(1)),
            name: ok(Name::parse("MSP")),
            settings: TenantSettings::default(),
            link_settings: crate::tenant::LinkSettings::default(),
            branding: crate::tenant::Branding::default(),
            notification_settings: crate::notifications::NotificationSettings::new(),
            version: 1,
            created_at: now(),
        }
    }

    pub(crate) fn admin() -> Principal {
        Principal::Staff(StaffPrincipal {
            tenant_id: tenant().id,
            user_id: StaffUserId::from_uuid(uuid::Uuid::from_u128(2)),
            email: ok(Email::parse("a@msp.example.com")),
            permissions: PermissionSet::all(),
        })
    }

    fn task(key: &str, evidence: EvidenceType, due: Option<u16>) -> TemplateTaskInput {
        TemplateTaskInput {
            key: ok(TaskKey::parse(key)),
            title: ok(Title::parse(key)),
            description: Description::empty(),
            owner: TaskOwner::Client,
            evidence,
            priority: Priority::Normal,
            due_offset: due.map(|d| ok(DayOffset::parse(d.into()))),
            checklist: vec![],
            depends_on: vec![],
            survey: vec![],
        }
    }

    /// An active portal: phase P1 with `call` (meeting, due in 2 days) and `sign` (due in 5),
    /// phase P2 with `wifi`; contacts Ann (primary) and Bo.
    pub(crate) fn active() -> PortalState {
        let t = tenant();
        let mut ctx = Ctx::new(now(), [1; 16]);
        let phase = |name: &str, tasks| TemplatePhaseInput {
            name: ok(Name::parse(name)),
            description: Description::empty(),
            tasks,
        };
        let (_, o) = ok(crate::commands::template::create_template(
            &admin(),
            &mut ctx,
            &TemplateInput {
                name: ok(Name::parse("T")),
                description: Description::empty(),
                phases: vec![
                    phase(
                        "P1",
                        vec![
                            task("call", EvidenceType::Meeting, Some(2)),
                            task("sign", EvidenceType::Signature, Some(5)),
                        ],
                    ),
                    phase("P2", vec![task("wifi", EvidenceType::None, None)]),
                ],
            },
        ));
        let Some(Write::InsertTemplate(tpl)) = o.writes.first() else {
            panic!("a template")
        };
        let company = Company {
            id: CompanyId::from_uuid(uuid::Uuid::from_u128(3)),
            tenant_id: t.id,
            name: ok(Name::parse("Contoso")),
            version: 1,
            created_at: now(),
        };
        let contact = |n: &str, e: &str, primary| ContactInput {
            name: ok(Name::parse(n)),
            email: ok(Email::parse(e)),
            role: ContactRole::It,
            primary,
        };
        let req = StartOnboarding {
            name: ok(Name::parse("Onboarding")),
            contacts: vec![
                contact("Ann", "ann@c.example", true),
                contact("Bo", "bo@c.example", false),
            ],
            activate: true,
        };
        let seed = SecretToken::from_bytes([4; 32]);
        let (_, o) = ok(start_onboarding(&admin(), &mut ctx, &t, &company, tpl, &req, &seed));
        let Some(Write::InsertPortal(state)) = o.writes.into_iter().next() else {
            panic!("a portal")
        };
        *state
    }

    pub(crate) fn env_of(t: &Tenant) -> (TenantSettings, Name) {
        (t.settings.clone(), ok(Name::parse("Contoso")))
    }

    #[test]
    fn summaries_go_to_every_contact_or_the_chosen_ones() {
        let s = active();
        let (settings, company) = env_of(&tenant());
        let env = NotifyEnv {
            settings: &settings,
            company_name: &company,
        };
        let mut ctx = Ctx::new(now(), [2; 16]);
        let o = ok(send_task_summary(&admin(), &mut ctx, &s, env, None, None));
        assert_eq!(o.messages.len(), 2);
        assert!(
            o.messages
                .iter()
                .all(|m| m.kind == MailKind::TaskSummary && m.secret.is_none())
        );
        let titles: Vec<&str> = o.messages[0].payload["tasks"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["title"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(titles, ["call", "sign", "wifi"], "portal order");
        assert_eq!(o.messages[0].payload["tasks"][0]["due_state"], "due_soon");
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].kind, EventKind::NotificationSent);

        let bo = s.contacts[1].id;
        let p2 = s.phases[1].id;
        let o = ok(send_task_summary(
            &admin(),
            &mut ctx,
            &s,
            env,
            Some(p2),
            Some(&[bo, bo]),
        ));
        assert_eq!(o.messages.len(), 1, "each contact once");
        assert_eq!(o.messages[0].kind, MailKind::PhaseSummary);
        assert_eq!(o.messages[0].recipient.as_str(), "bo@c.example");
        assert_eq!(o.messages[0].payload["tasks"].as_array().map(Vec::len), Some(1));

        assert_eq!(
            send_task_summary(&admin(), &mut ctx, &s, env, None, Some(&[])).err(),
            Some(CommandError::EmptyList { what: "contacts" })
        );
        let stranger = ContactId::from_uuid(uuid::Uuid::from_u128(99));
        assert!(matches!(
            send_task_summary(&admin(), &mut ctx, &s, env, None, Some(&[stranger])),
            Err(CommandError::NotFound { entity: "contact", .. })
        ));
    }

    #[test]
    fn nothing_is_sent_about_a_portal_that_is_not_active() {
        let s = active();
        let t = tenant();
        let (settings, company) = env_of(&t);
        let env = NotifyEnv {
            settings: &settings,
            company_name: &company,
        };
        let seed = SecretToken::from_bytes([5; 32]);
        let req = TransitionRequest {
            to: PortalStatus::Archived,
            expected_version: s.portal.version,
            confirm: true,
        };
        let mut ctx = Ctx::new(now(), [3; 16]);
        let o = ok(transition_portal(
            &admin(),
            &mut ctx,
            &s,
            TransitionEnv::new(&t, &company, &seed),
            req,
        ));
        let mut archived = s.clone();
        for w in o.writes {
            if let Write::UpdatePortal { portal, .. } = w {
                archived.portal = portal;
            }
        }
        assert!(matches!(
            send_task_summary(&admin(), &mut ctx, &archived, env, None, None),
            Err(CommandError::PortalStatus { .. })
        ));
    }

    #[test]
    fn reminders_say_why_and_meetings_keep_their_uid_and_grow_their_sequence() {
        let s = active();
        let (settings, company) = env_of(&tenant());
        let env = NotifyEnv {
            settings: &settings,
            company_name: &company,
        };
        let call = s.tasks.iter().find(|t| t.title.as_str() == "call").map(|t| t.id);
        let sign = s.tasks.iter().find(|t| t.title.as_str() == "sign").map(|t| t.id);
        let (call, sign) = (ok(call.ok_or("call")), ok(sign.ok_or("sign")));
        // Day 0: `call` is due in 2 days (due soon); day 3: overdue.
        let o = ok(send_task_reminder(
            &admin(),
            &mut Ctx::new(now(), [4; 16]),
            &s,
            env,
            call,
            None,
        ));
        assert_eq!(o.messages[0].payload["reason"], "due_soon");
        let later = now() + Duration::days(3);
        let o = ok(send_task_reminder(
            &admin(),
            &mut Ctx::new(later, [4; 16]),
            &s,
            env,
            call,
            None,
        ));
        assert_eq!(o.messages[0].payload["reason"], "overdue");
        let mut done = s.clone();
        if let Some(t) = done.tasks.iter_mut().find(|t| t.id == call) {
            t.status = TaskStatus::Completed;
        }
        let o = ok(send_task_reminder(
            &admin(),
            &mut Ctx::new(later, [4; 16]),
            &done,
            env,
            call,
            None,
        ));
        assert!(o.messages[0].payload["reason"].is_null());

        let request = MeetingRequest {
            starts_at: now() + Duration::days(1),
            duration_minutes: 45,
            time_zone: None,
            title: None,
            description: None,
            location: Some(ok(Title::parse("https://meet.example/x"))),
            cancelled: false,
        };
        let (name, email) = (ok(Name::parse("Ada")), ok(Email::parse("ada@msp.example.com")));
        let meeting = |r| Meeting {
            request: r,
            organizer_name: &name,
            organizer_email: &email,
        };
        let first = ok(send_meeting_invitation(
            &admin(),
            &mut Ctx::new(now(), [5; 16]),
            &s,
            env,
            call,
            meeting(&request),
            None,
        ));
        let moved = MeetingRequest {
            duration_minutes: 30,
            ..request.clone()
        };
        let second = ok(send_meeting_invitation(
            &admin(),
            &mut Ctx::new(now() + Duration::minutes(10), [6; 16]),
            &s,
            env,
            call,
            meeting(&moved),
            None,
        ));
        let p1 = &first.messages[0].payload;
        let p2 = &second.messages[0].payload;
        assert_eq!(p1["uid"], p2["uid"]);
        assert!(p2["sequence"].as_i64() > p1["sequence"].as_i64());
        assert_eq!(p1["title"], "call");
        assert_eq!(p1["time_zone"], "UTC");
        assert_eq!(p1["organizer_email"], "ada@msp.example.com");
        assert!(matches!(
            send_meeting_invitation(
                &admin(),
                &mut Ctx::new(now(), [7; 16]),
                &s,
                env,
                sign,
                meeting(&request),
                None
            ),
            Err(CommandError::WrongEvidence {
                expected: EvidenceType::Meeting,
                actual: EvidenceType::Signature
            })
        ));
        for bad in [0, 4, 1_441] {
            let r = MeetingRequest {
                duration_minutes: bad,
                ..request.clone()
            };
            assert!(matches!(
                send_meeting_invitation(
                    &admin(),
                    &mut Ctx::new(now(), [8; 16]),
                    &s,
                    env,
                    call,
                    Meeting {
                        request: &r,
                        organizer_name: &name,
                        organizer_email: &email,
                    },
                    None
                ),
                Err(CommandError::Value(ValueError::OutOfRange {
                    field: "duration_minutes",
                    ..
                }))
            ));
        }
    }
}
