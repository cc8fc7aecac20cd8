//! Automatic reminders, daily digests and a contact's notification preferences (BYD-5).
//!
//! # Rules
//!
//! - **Which tasks**: client-owned, not completed tasks of an `active` portal. A task *unlocks*
//!   when it has dependencies, every one is completed and it is not blocked by hand; it is *due
//!   soon* from `days_before_due` days before its due date to the date itself; it is *overdue*
//!   from the day after its due date (days reckoned in the tenant's time zone, TSK-2). Each
//!   reason is on or off in the tenant's [`ReminderCadence`](crate::notifications::ReminderCadence).
//! - **Never twice**: a reminder is recorded in the ledger for each contact (task, contact,
//!   reason, due date) in the commit that queues it, whatever the contact's preference, and a
//!   reminder already recorded is not decided again; a second writer recording the same one is
//!   refused (`already_exists`) and commits nothing. A task whose due date moves is reminded of
//!   again for the new date; an unlock is reminded of once per task.
//! - **Preferences**: each contact gets, per topic, one message listing the tasks
//!   ([`MailKind::AutomaticReminder`]), an item of their daily digest, or nothing.
//! - **Digests**: a contact's waiting items older than the last digest time go out in one
//!   [`MailKind::NotificationDigest`] in the commit that deletes them (refused as stale when any
//!   is gone already: another writer sent them). Items of a portal no longer active are dropped
//!   unsent: clients hear of a portal only while it is live (ONB-4).
//! - **Preferences are the contact's**: a contact session changes its own contact's; the system
//!   changes them on a one-click unsubscribe. Staff cannot ([`Action::ManageNotifications`]).

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

use super::access::contact_of;
use super::notify::{Delivered, task_view};
use super::portal::{portal_resource, scope};
use super::{Ctx, allow};
use crate::activity::EventKind;
use crate::error::CommandError;
use crate::id::ContactId;
use crate::lifecycle::PortalStatus;
use crate::mail::MailKind;
use crate::notifications::{
    DigestItem, NotificationPreferences, NotificationSettings, ReminderReason, ReminderRecord, Topic,
};
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal};
use crate::portal::{Contact, PortalState};
use crate::task::{Task, TaskOwner};
use crate::tenant::TenantSettings;
use crate::value::Name;

/// What the reminder decision needs beyond the portal.
#[derive(Debug, Clone, Copy)]
pub struct ReminderEnv<'a> {
    /// The tenant's settings (time zone).
    pub settings: &'a TenantSettings,
    /// The tenant's notification settings (the cadence).
    pub notifications: &'a NotificationSettings,
    /// The client company's name.
    pub company_name: &'a Name,
}

/// The reasons to remind about `task` on `today` under the tenant's cadence, each with the due
/// date it is about.
fn reasons(
    state: &PortalState,
    task: &Task,
    env: ReminderEnv<'_>,
    today: NaiveDate,
) -> Vec<(ReminderReason, Option<NaiveDate>)> {
    let cadence = env.notifications.reminders;
    let mut out = Vec::new();
    if task.owner != TaskOwner::Client || task.is_completed() {
        return out;
    }
    if cadence.on_unlock
        && !task.depends_on.is_empty()
        && task.block_reason.is_none()
        && task
            .depends_on
            .iter()
            .all(|d| state.task(*d).is_none_or(Task::is_completed))
    {
        out.push((ReminderReason::Unlocked, None));
    }
    if let Some(due) = task.due_date {
        if let Some(days) = cadence.days_before_due
            && today <= due
            && today >= due - Duration::days(i64::from(days))
        {
            out.push((ReminderReason::DueSoon, Some(due)));
        }
        if cadence.when_overdue && today > due {
            out.push((ReminderReason::Overdue, Some(due)));
        }
    }
    out
}

/// The automatic reminders due now for an active portal, given the reminders already recorded
/// for it. An empty outcome when there is nothing to remind of.
pub fn due_reminders(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    env: ReminderEnv<'_>,
    recorded: &[ReminderRecord],
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::SendNotifications, &portal_resource(p))?;
    if p.status != PortalStatus::Active || state.contacts.is_empty() {
        return Ok(Outcome::default());
    }
    let today = env.settings.time_zone.today(ctx.now);
    // (task, reason, due) in portal order.
    let mut due: Vec<(&Task, ReminderReason, Option<NaiveDate>)> = Vec::new();
    for t in &state.tasks {
        for (reason, date) in reasons(state, t, env, today) {
            due.push((t, reason, date));
        }
    }
    let mut writes = Vec::new();
    let mut delivered = Delivered::default();
    let mut recorded_now = Vec::new();
    for contact in &state.contacts {
        for reason in [
            ReminderReason::Unlocked,
            ReminderReason::DueSoon,
            ReminderReason::Overdue,
        ] {
            let tasks: Vec<&Task> = due
                .iter()
                .filter(|(t, r, d)| *r == reason && !recorded.iter().any(|x| x.is_for(t.id, contact.id, *r, *d)))
                .map(|(t, _, d)| {
                    writes.push(Write::InsertReminderRecord(ReminderRecord {
                        tenant_id: p.tenant_id,
                        portal_id: p.id,
                        task_id: t.id,
                        contact_id: contact.id,
                        reason,
                        due_date: *d,
                        sent_at: ctx.now,
                    }));
                    recorded_now.push(json!({ "task_id": t.id, "contact_id": contact.id, "reason": reason }));
                    *t
                })
                .collect();
            if tasks.is_empty() {
                continue;
            }
            let payload = json!({
                "portal_name": p.name,
                "company_name": env.company_name,
                "contact_name": contact.name,
                "topic": reason.topic(),
                "reason": reason,
                "tasks": tasks.iter().map(|t| task_view(state, t, today)).collect::<Vec<Value>>(),
            });
            delivered.deliver(ctx, contact, Some(reason.topic()), MailKind::AutomaticReminder, payload);
        }
    }
    if writes.is_empty() {
        return Ok(Outcome::default());
    }
    let mut details = json!({ "kind": MailKind::AutomaticReminder, "reminders": recorded_now });
    delivered.describe(&mut details);
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::NotificationSent,
        format!("{} automatic reminder(s) for {}", recorded_now.len(), p.name),
        details,
    );
    let Delivered {
        messages, digest_items, ..
    } = delivered;
    writes.extend(digest_items);
    Ok(Outcome {
        writes,
        events: vec![ev],
        messages,
        ..Outcome::default()
    })
}

/// Queues one digest of `items` (a contact's waiting digest items) and deletes them; on a portal
/// no longer active, deletes them unsent.
pub fn send_digest(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    company_name: &Name,
    contact: ContactId,
    items: &[DigestItem],
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::SendNotifications, &portal_resource(p))?;
    let c = contact_of(state, contact)?;
    let mut items: Vec<&DigestItem> = items.iter().filter(|i| i.contact_id == c.id).collect();
    if items.is_empty() {
        return Ok(Outcome::default());
    }
    items.sort_by_key(|i| (i.created_at, i.id));
    let delete = Write::DeleteDigestItems {
        contact_id: c.id,
        ids: items.iter().map(|i| i.id).collect(),
    };
    if p.status != PortalStatus::Active {
        return Ok(Outcome {
            writes: vec![delete],
            ..Outcome::default()
        });
    }
    let payload = json!({
        "portal_name": p.name,
        "company_name": company_name,
        "contact_name": c.name,
        "items": items
            .iter()
            .map(|i| {
                let mut v = i.payload.clone();
                v["topic"] = json!(i.topic);
                v["at"] = json!(i.created_at);
                v
            })
            .collect::<Vec<Value>>(),
    });
    let message = super::access::message_to(ctx, c, MailKind::NotificationDigest, payload, None);
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::NotificationSent,
        format!("Daily digest of {} item(s) sent to {}", items.len(), c.name),
        json!({
            "kind": MailKind::NotificationDigest,
            "recipients": [c.id],
            "messages": [message.id],
            "items": items.len(),
        }),
    );
    Ok(Outcome {
        writes: vec![delete],
        events: vec![ev],
        messages: vec![message],
        ..Outcome::default()
    })
}

/// How a change of preferences came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferenceChange {
    /// The contact set them all.
    Set(NotificationPreferences),
    /// A one-click unsubscribe from one topic, or from every topic.
    Unsubscribe(Option<Topic>),
}

/// Changes a contact's notification preferences: a contact session its own, the system on an
/// unsubscribe link. Nothing is written when nothing changes. Returns the preferences now in
/// force with the outcome.
pub fn change_preferences(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    contact: ContactId,
    change: PreferenceChange,
) -> Result<(NotificationPreferences, Outcome), CommandError> {
    let p = &state.portal;
    allow(principal, Action::ManageNotifications, &portal_resource(p))?;
    let c = contact_of(state, contact)?;
    if let Principal::Contact(me) = principal
        && me.contact_id != c.id
    {
        return Err(CommandError::Access(crate::policy::AccessDenied::OutOfScope));
    }
    let next = match change {
        PreferenceChange::Set(prefs) => prefs,
        PreferenceChange::Unsubscribe(None) => NotificationPreferences::ALL_OFF,
        PreferenceChange::Unsubscribe(Some(topic)) => c.notifications.with(topic, crate::notifications::Delivery::Off),
    };
    if next == c.notifications {
        return Ok((next, Outcome::default()));
    }
    let updated = Contact {
        notifications: next,
        version: c.version + 1,
        ..c.clone()
    };
    let how = match change {
        PreferenceChange::Set(_) => "changed",
        PreferenceChange::Unsubscribe(_) => "unsubscribed",
    };
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::NotificationPreferencesChanged,
        format!("{} {how} notification preferences", c.name),
        json!({ "contact_id": c.id, "from": c.notifications, "to": next, "via": how }),
    );
    Ok((
        next,
        Outcome {
            writes: vec![Write::UpdateContact {
                contact: updated,
                expected_version: c.version,
            }],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::commands::notify::tests::{active, admin, env_of, now, ok, tenant};
    use crate::commands::notify::{NotifyEnv, send_task_summary};
    use crate::notifications::Delivery;
    use crate::policy::{ContactPrincipal, SystemPrincipal};
    use crate::task::TaskStatus;

    fn system() -> Principal {
        Principal::System(SystemPrincipal {
            tenant_id: tenant().id,
            worker: "test",
        })
    }

    fn as_contact(c: &Contact) -> Principal {
        Principal::Contact(ContactPrincipal {
            tenant_id: c.tenant_id,
            portal_id: c.portal_id,
            contact_id: c.id,
            email: c.email.clone(),
        })
    }

    fn at(day: u32) -> DateTime<Utc> {
        now() + Duration::days(i64::from(day) - 2)
    }

    fn run(
        state: &PortalState,
        cadence: NotificationSettings,
        when: DateTime<Utc>,
        recorded: &[ReminderRecord],
    ) -> Outcome {
        let (settings, company) = env_of(&tenant());
        let env = ReminderEnv {
            settings: &settings,
            notifications: &cadence,
            company_name: &company,
        };
        ok(due_reminders(
            &system(),
            &mut Ctx::new(when, [9; 16]),
            state,
            env,
            recorded,
        ))
    }

    fn records(o: &Outcome) -> Vec<ReminderRecord> {
        o.writes
            .iter()
            .filter_map(|w| match w {
                Write::InsertReminderRecord(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn digest_items(o: &Outcome) -> Vec<DigestItem> {
        o.writes
            .iter()
            .filter_map(|w| match w {
                Write::InsertDigestItem(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    fn task_id(s: &PortalState, title: &str) -> crate::id::TaskId {
        s.tasks
            .iter()
            .find(|t| t.title.as_str() == title)
            .map_or_else(|| panic!("{title}"), |t| t.id)
    }

    fn task_mut<'a>(s: &'a mut PortalState, title: &str) -> &'a mut Task {
        s.tasks
            .iter_mut()
            .find(|t| t.title.as_str() == title)
            .unwrap_or_else(|| panic!("{title}"))
    }

    /// The fixture's portal (started 2026-03-02): `call` due 03-04, `sign` due 03-07, `wifi`
    /// without a date, all the client's; contacts Ann and Bo.
    #[test]
    fn due_soon_then_overdue_each_once_per_contact_and_due_date() {
        let s = active();
        let cadence = NotificationSettings::new(); // 2 days before, overdue on, unlock on
        // 03-01: nothing is within 2 days yet.
        assert_eq!(run(&s, cadence, at(1), &[]), Outcome::default());
        // 03-02: `call` (due 03-04) is.
        let o = run(&s, cadence, at(2), &[]);
        let recorded = records(&o);
        assert_eq!(recorded.len(), 2, "one per contact");
        assert!(
            recorded
                .iter()
                .all(|r| r.reason == ReminderReason::DueSoon && r.task_id == task_id(&s, "call"))
        );
        assert_eq!(o.messages.len(), 2);
        let m = &o.messages[0];
        assert_eq!(m.kind, MailKind::AutomaticReminder);
        assert_eq!(m.payload["topic"], "due_soon");
        assert_eq!(m.payload["tasks"][0]["title"], "call");
        assert!(m.secret.is_none());
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].kind, EventKind::NotificationSent);
        assert_eq!(o.events[0].actor.kind, crate::activity::ActorKind::System);
        // Never twice: with the ledger, the next runs that day and the next find nothing new.
        assert_eq!(run(&s, cadence, at(2), &recorded), Outcome::default());
        assert_eq!(run(&s, cadence, at(3), &recorded), Outcome::default());
        // 03-05: `call` is overdue (a new reason) and `sign` (due 03-07) is due soon.
        let o = run(&s, cadence, at(5), &recorded);
        let mut reasons: Vec<_> = records(&o).iter().map(|r| (r.reason, r.task_id)).collect();
        reasons.sort();
        reasons.dedup();
        assert_eq!(
            reasons,
            [
                (ReminderReason::DueSoon, task_id(&s, "sign")),
                (ReminderReason::Overdue, task_id(&s, "call"))
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(o.messages.len(), 4, "per contact one message per reason");
        let mut all = recorded;
        all.extend(records(&o));
        assert_eq!(run(&s, cadence, at(6), &all), Outcome::default());
        // A moved due date is a new reminder.
        let mut moved = s;
        task_mut(&mut moved, "call").due_date = Some(at(7).date_naive());
        let o = run(&moved, cadence, at(6), &all);
        assert_eq!(records(&o).len(), 2);
        assert!(records(&o).iter().all(|r| r.reason == ReminderReason::DueSoon));
    }

    #[test]
    fn unlocks_are_reminded_of_once_and_only_for_open_client_tasks() {
        let mut s = active();
        let sign = task_id(&s, "sign");
        let no_dates = NotificationSettings {
            reminders: crate::notifications::ReminderCadence {
                on_unlock: true,
                days_before_due: None,
                when_overdue: false,
            },
            ..NotificationSettings::new()
        };
        task_mut(&mut s, "wifi").depends_on = vec![sign];
        assert_eq!(run(&s, no_dates, at(2), &[]), Outcome::default(), "still locked");
        task_mut(&mut s, "sign").status = TaskStatus::Completed;
        let o = run(&s, no_dates, at(2), &[]);
        assert_eq!(records(&o).len(), 2);
        assert!(
            records(&o)
                .iter()
                .all(|r| r.reason == ReminderReason::Unlocked && r.due_date.is_none())
        );
        assert_eq!(o.messages[0].payload["topic"], "task_unlocked");
        assert_eq!(run(&s, no_dates, at(3), &records(&o)), Outcome::default());
        // Blocked by hand, done, or the MSP's: no reminder.
        for change in 0..3 {
            let mut t = s.clone();
            let w = task_mut(&mut t, "wifi");
            match change {
                0 => w.block_reason = Some(ok(crate::value::Reason::parse("waiting"))),
                1 => w.status = TaskStatus::Completed,
                _ => w.owner = TaskOwner::Msp,
            }
            assert_eq!(run(&t, no_dates, at(2), &[]), Outcome::default(), "case {change}");
        }
        // Nothing on a portal that is not active, nor with the cadence off.
        let mut paused = s.clone();
        paused.portal.status = PortalStatus::Draft;
        assert_eq!(run(&paused, no_dates, at(2), &[]), Outcome::default());
        let off = NotificationSettings {
            reminders: crate::notifications::ReminderCadence {
                on_unlock: false,
                days_before_due: None,
                when_overdue: false,
            },
            ..NotificationSettings::new()
        };
        assert_eq!(run(&s, off, at(9), &[]), Outcome::default());
    }

    #[test]
    fn preferences_decide_message_digest_or_nothing_and_the_ledger_records_all() {
        let mut s = active();
        s.contacts[0].notifications = NotificationPreferences::default().with(Topic::DueSoon, Delivery::Off);
        s.contacts[1].notifications = NotificationPreferences::default().with(Topic::DueSoon, Delivery::DailyDigest);
        let o = run(&s, NotificationSettings::new(), at(2), &[]);
        assert!(o.messages.is_empty());
        assert_eq!(records(&o).len(), 2, "switched off is not sent later either");
        let items = digest_items(&o);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].contact_id, s.contacts[1].id);
        assert_eq!(items[0].topic, Topic::DueSoon);
        assert_eq!(items[0].payload["kind"], "automatic_reminder");
        let details = &o.events[0].details;
        assert_eq!(details["skipped"], json!([s.contacts[0].id]));
        assert_eq!(details["digested"], json!([s.contacts[1].id]));

        // Staff-sent summaries follow the same preferences.
        s.contacts[0].notifications = NotificationPreferences::default().with(Topic::Summaries, Delivery::Off);
        s.contacts[1].notifications = NotificationPreferences::default().with(Topic::Summaries, Delivery::DailyDigest);
        let (settings, company) = env_of(&tenant());
        let env = NotifyEnv {
            settings: &settings,
            company_name: &company,
        };
        let o = ok(send_task_summary(
            &admin(),
            &mut Ctx::new(now(), [3; 16]),
            &s,
            env,
            None,
            None,
        ));
        assert!(o.messages.is_empty());
        assert_eq!(digest_items(&o).len(), 1);
        assert_eq!(digest_items(&o)[0].payload["kind"], "task_summary");
        assert_eq!(o.events.len(), 1, "the event says who got what");
    }

    #[test]
    fn a_digest_goes_out_once_with_every_item_and_not_for_a_portal_gone_quiet() {
        let mut s = active();
        let bo = s.contacts[1].id;
        s.contacts[1].notifications = NotificationPreferences::default().with(Topic::DueSoon, Delivery::DailyDigest);
        let items = digest_items(&run(&s, NotificationSettings::new(), at(2), &[]));
        let company = ok(Name::parse("Contoso"));
        let o = ok(send_digest(
            &system(),
            &mut Ctx::new(at(3), [5; 16]),
            &s,
            &company,
            bo,
            &items,
        ));
        assert_eq!(o.messages.len(), 1);
        assert_eq!(o.messages[0].kind, MailKind::NotificationDigest);
        assert_eq!(o.messages[0].contact_id, Some(bo));
        assert_eq!(o.messages[0].payload["items"][0]["topic"], "due_soon");
        assert_eq!(
            o.writes,
            vec![Write::DeleteDigestItems {
                contact_id: bo,
                ids: items.iter().map(|i| i.id).collect()
            }]
        );
        // Another contact's items are not this contact's digest.
        let ann = s.contacts[0].id;
        assert_eq!(
            ok(send_digest(
                &system(),
                &mut Ctx::new(at(3), [5; 16]),
                &s,
                &company,
                ann,
                &items
            )),
            Outcome::default()
        );
        // A portal no longer live: the items go, nothing is sent.
        s.portal.status = PortalStatus::Archived;
        let o = ok(send_digest(
            &system(),
            &mut Ctx::new(at(3), [5; 16]),
            &s,
            &company,
            bo,
            &items,
        ));
        assert!(o.messages.is_empty() && o.events.is_empty());
        assert_eq!(o.writes.len(), 1);
        // Contacts and staff do not send digests.
        assert!(
            send_digest(
                &as_contact(&s.contacts[1]),
                &mut Ctx::new(at(3), [5; 16]),
                &s,
                &company,
                bo,
                &items
            )
            .is_err()
        );
    }

    #[test]
    fn preferences_are_the_contacts_own() {
        let s = active();
        let (ann, bo) = (&s.contacts[0], &s.contacts[1]);
        let mut ctx = Ctx::new(now(), [6; 16]);
        let wanted = NotificationPreferences::default().with(Topic::Overdue, Delivery::DailyDigest);
        let (now_in_force, o) = ok(change_preferences(
            &as_contact(ann),
            &mut ctx,
            &s,
            ann.id,
            PreferenceChange::Set(wanted),
        ));
        assert_eq!(now_in_force, wanted);
        let Some(Write::UpdateContact {
            contact,
            expected_version,
        }) = o.writes.first()
        else {
            panic!("a contact update")
        };
        assert_eq!(
            (contact.notifications, *expected_version, contact.version),
            (wanted, ann.version, ann.version + 1)
        );
        assert_eq!(o.events[0].kind, EventKind::NotificationPreferencesChanged);
        // Not another contact's, not staff.
        assert!(change_preferences(&as_contact(ann), &mut ctx, &s, bo.id, PreferenceChange::Set(wanted)).is_err());
        assert!(matches!(
            change_preferences(&admin(), &mut ctx, &s, ann.id, PreferenceChange::Set(wanted)),
            Err(CommandError::Access(crate::policy::AccessDenied::Forbidden { .. }))
        ));
        // The same again writes nothing.
        let (_, o) = ok(change_preferences(
            &as_contact(ann),
            &mut ctx,
            &s,
            ann.id,
            PreferenceChange::Set(NotificationPreferences::default()),
        ));
        assert_eq!(o, Outcome::default());
        // Unsubscribe links (the system): one topic, or everything, in any portal status.
        let mut archived = s.clone();
        archived.portal.status = PortalStatus::Archived;
        let (p, _) = ok(change_preferences(
            &system(),
            &mut ctx,
            &archived,
            bo.id,
            PreferenceChange::Unsubscribe(Some(Topic::Summaries)),
        ));
        assert_eq!(
            p,
            NotificationPreferences::default().with(Topic::Summaries, Delivery::Off)
        );
        let (p, _) = ok(change_preferences(
            &system(),
            &mut ctx,
            &s,
            bo.id,
            PreferenceChange::Unsubscribe(None),
        ));
        assert_eq!(p, NotificationPreferences::ALL_OFF);
    }
}
