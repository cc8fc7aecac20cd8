//! Managing the client contacts of a portal (CON-1): adding, editing and removing them.
//!
//! # Rules
//!
//! - Contacts change only while the portal is `draft` or `active` (`wrong_portal_status`
//!   otherwise), and need [`Action::EditPortal`].
//! - Emails are unique within a portal, compared without regard to case
//!   (`duplicate_contact_email`); a portal holds at most [`MAX_CONTACTS`].
//! - At most one contact is primary at any time. Making a contact primary (adding one with the
//!   flag, or setting it) *moves* the flag: the current primary loses it in the same outcome.
//!   The write that clears the old flag comes **before** the write that sets the new one, because
//!   the database's partial unique index (`contact_one_primary`) is checked at each statement, and
//!   the reference store checks each write in order the same way.
//! - An `active` portal always has exactly one primary (activation requires it, ONB-4): there the
//!   primary can be neither removed nor un-flagged; another contact takes the flag instead
//!   (`primary_contact`). A `draft` may be left without one until it is activated.
//! - Each contact has its own compare-and-set version. Moving the flag changes the former
//!   primary's row too, so its version moves on as well.
//!
//! # Events
//!
//! `contact_added`, `contact_updated` and `contact_removed`, all scoped to the portal. The
//! contact's email is personal data: it appears only in the summary and details, which a portal
//! delete erases from every event of the portal (ACT-4), never in a tenant-level event.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::portal::{portal_resource, scope};
use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::error::CommandError;
use crate::id::ContactId;
use crate::lifecycle::PortalStatus;
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal};
use crate::portal::{Contact, ContactInput, ContactRole, MAX_CONTACTS, PortalState};
use crate::value::{Email, Name};

/// Changes to a contact; `None` (or an absent field) leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<Name>,
    /// New email, unique within the portal.
    #[serde(default)]
    pub email: Option<Email>,
    /// New role.
    #[serde(default)]
    pub role: Option<ContactRole>,
    /// `true` makes the contact the primary one (the current primary loses the flag); `false`
    /// clears it, which an active portal refuses for its primary.
    #[serde(default)]
    pub primary: Option<bool>,
}

/// Contacts change in `draft` and `active` portals only.
fn require_open(state: &PortalState) -> Result<(), CommandError> {
    match state.portal.status {
        PortalStatus::Draft | PortalStatus::Active => Ok(()),
        actual => Err(CommandError::PortalStatus {
            required: PortalStatus::Active,
            actual,
        }),
    }
}

fn contact_edit(principal: &Principal, state: &PortalState) -> Result<(), CommandError> {
    allow(principal, Action::EditPortal, &portal_resource(&state.portal))?;
    require_open(state)
}

/// The contact with this id, checked against the caller's version. A contact of another portal
/// (or tenant) is "not found".
fn target(state: &PortalState, id: ContactId, expected_version: i64) -> Result<&Contact, CommandError> {
    let contact = state
        .contacts
        .iter()
        .find(|c| c.id == id)
        .ok_or(CommandError::NotFound {
            entity: "contact",
            id: id.as_uuid(),
        })?;
    check_version("contact", id.as_uuid(), expected_version, contact.version)?;
    Ok(contact)
}

/// Refuses `email` when another contact of the portal (any but `except`) has it, in any case.
fn check_email_free(state: &PortalState, email: &Email, except: Option<ContactId>) -> Result<(), CommandError> {
    let wanted = email.as_str().to_lowercase();
    if state
        .contacts
        .iter()
        .any(|c| Some(c.id) != except && c.email.as_str().to_lowercase() == wanted)
    {
        return Err(CommandError::DuplicateContactEmail {
            email: email.to_string(),
        });
    }
    Ok(())
}

/// The write that clears the flag of the current primary (other than `except`), if there is one.
/// It must come before any write that sets the flag on another contact.
fn unflag_primary(state: &PortalState, except: ContactId) -> Option<(ContactId, Write)> {
    let old = state.contacts.iter().find(|c| c.primary && c.id != except)?;
    let contact = Contact {
        primary: false,
        version: old.version + 1,
        ..old.clone()
    };
    Some((
        old.id,
        Write::UpdateContact {
            contact,
            expected_version: old.version,
        },
    ))
}

/// Refuses to leave an active portal without its primary contact.
fn keep_primary_while_active(state: &PortalState) -> Result<(), CommandError> {
    if state.portal.status == PortalStatus::Active {
        return Err(CommandError::PrimaryContact { primaries: 0 });
    }
    Ok(())
}

/// Adds a contact to a draft or active portal. With `primary`, the contact takes the flag from
/// the current primary in the same outcome (that contact's row is written first).
pub fn add_contact(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    input: &ContactInput,
) -> Result<(ContactId, Outcome), CommandError> {
    contact_edit(principal, state)?;
    let count = state.contacts.len() + 1;
    if count > MAX_CONTACTS {
        return Err(CommandError::TooMany {
            what: "contacts",
            max: MAX_CONTACTS,
            actual: count,
        });
    }
    check_email_free(state, &input.email, None)?;
    let p = &state.portal;
    let contact = Contact {
        id: ctx.ids.next_id(),
        tenant_id: p.tenant_id,
        portal_id: p.id,
        name: input.name.clone(),
        email: input.email.clone(),
        role: input.role,
        primary: input.primary,
        notifications: crate::notifications::NotificationPreferences::default(),
        version: 1,
        created_at: ctx.now,
    };
    let id = contact.id;
    let mut writes = Vec::with_capacity(2);
    let mut moved_from = None;
    if contact.primary
        && let Some((old, unflag)) = unflag_primary(state, id)
    {
        moved_from = Some(old);
        writes.push(unflag);
    }
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::ContactAdded,
        format!("Contact {} added", contact.email),
        json!({
            "contact_id": id,
            "role": contact.role,
            "primary": contact.primary,
            "primary_moved_from": moved_from,
        }),
    );
    writes.push(Write::InsertContact(contact));
    Ok((
        id,
        Outcome {
            writes,
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Edits a contact of a draft or active portal (compare-and-set on the contact's version).
/// `primary: true` moves the flag from the current primary, whose row is written first;
/// `primary: false` on the primary of an active portal is refused (`primary_contact`). A patch
/// that changes nothing writes nothing and logs nothing.
pub fn update_contact(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: ContactId,
    expected_version: i64,
    patch: &ContactPatch,
) -> Result<Outcome, CommandError> {
    contact_edit(principal, state)?;
    let current = target(state, id, expected_version)?;
    let mut next = current.clone();
    let mut fields = Vec::new();
    if let Some(name) = &patch.name
        && *name != next.name
    {
        next.name = name.clone();
        fields.push("name");
    }
    if let Some(email) = &patch.email
        && *email != next.email
    {
        check_email_free(state, email, Some(id))?;
        next.email = email.clone();
        fields.push("email");
    }
    if let Some(role) = patch.role
        && role != next.role
    {
        next.role = role;
        fields.push("role");
    }
    if let Some(primary) = patch.primary
        && primary != next.primary
    {
        if !primary {
            keep_primary_while_active(state)?;
        }
        next.primary = primary;
        fields.push("primary");
    }
    if fields.is_empty() {
        return Ok(Outcome::default());
    }
    next.version = current.version + 1;

    let mut writes = Vec::with_capacity(2);
    let mut moved_from = None;
    if next.primary
        && !current.primary
        && let Some((old, unflag)) = unflag_primary(state, id)
    {
        moved_from = Some(old);
        writes.push(unflag);
    }
    let summary = if next.email == current.email {
        format!("Contact {} updated", current.email)
    } else {
        format!("Contact {} updated: email now {}", current.email, next.email)
    };
    let p = &state.portal;
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::ContactUpdated,
        summary,
        json!({
            "contact_id": id,
            "fields": fields,
            "role": next.role,
            "primary": next.primary,
            "primary_moved_from": moved_from,
        }),
    );
    writes.push(Write::UpdateContact {
        contact: next,
        expected_version,
    });
    Ok(Outcome {
        writes,
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Removes a contact from a draft or active portal (compare-and-set on the contact's version).
/// The primary contact of an active portal cannot be removed: make another contact primary first
/// (`primary_contact`).
pub fn remove_contact(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    id: ContactId,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    contact_edit(principal, state)?;
    let contact = target(state, id, expected_version)?;
    if contact.primary {
        keep_primary_while_active(state)?;
    }
    let p = &state.portal;
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::ContactRemoved,
        format!("Contact {} removed", contact.email),
        json!({ "contact_id": id, "role": contact.role, "primary": contact.primary }),
    );
    Ok(Outcome {
        writes: vec![Write::DeleteContact { id }],
        events: vec![ev],
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::id::{CompanyId, PortalId, StaffUserId, TenantId};
    use crate::policy::{ContactPrincipal, StaffPrincipal};
    use crate::portal::Portal;
    use crate::tenant::{Permission, PermissionSet};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_440_000, 0).unwrap_or_default()
    }

    fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("expected success: {e:?}"))
    }

    fn tenant() -> TenantId {
        TenantId::from_uuid(uuid::Uuid::from_u128(1))
    }

    fn staff(permissions: PermissionSet) -> Principal {
        Principal::Staff(StaffPrincipal {
            tenant_id: tenant(),
            user_id: StaffUserId::from_uuid(uuid::Uuid::from_u128(2)),
            email: ok(Email::parse("admin@msp.example.com")),
            permissions,
        })
    }

    fn admin() -> Principal {
        staff(PermissionSet::all())
    }

    fn ctx(n: u8) -> Ctx {
        Ctx::new(now(), [n; 16])
    }

    fn input(name: &str, email: &str, primary: bool) -> ContactInput {
        ContactInput {
            name: ok(Name::parse(name)),
            email: ok(Email::parse(email)),
            role: ContactRole::It,
            primary,
        }
    }

    fn empty(status: PortalStatus) -> PortalState {
        PortalState {
            portal: Portal {
                id: PortalId::from_uuid(uuid::Uuid::from_u128(10)),
                tenant_id: tenant(),
                company_id: CompanyId::from_uuid(uuid::Uuid::from_u128(11)),
                template_id: None,
                name: ok(Name::parse("Onboarding")),
                status,
                version: 1,
                created_at: now(),
                updated_at: now(),
                activated_at: None,
            },
            phases: vec![],
            tasks: vec![],
            contacts: vec![],
        }
    }

    /// Applies an outcome's contact writes in order, as storage would, and checks after each
    /// write what the database checks per statement: at most one primary, emails unique.
    fn apply(state: &mut PortalState, outcome: &Outcome) {
        for w in &outcome.writes {
            match w {
                Write::InsertContact(c) => {
                    assert!(state.contacts.iter().all(|o| o.id != c.id), "a fresh id");
                    state.contacts.push(c.clone());
                }
                Write::UpdateContact {
                    contact,
                    expected_version,
                } => {
                    let slot = state
                        .contacts
                        .iter_mut()
                        .find(|c| c.id == contact.id)
                        .unwrap_or_else(|| panic!("the contact exists"));
                    assert_eq!(slot.version, *expected_version, "compare-and-set on the loaded version");
                    assert_eq!(contact.version, expected_version + 1, "the next version");
                    *slot = contact.clone();
                }
                Write::DeleteContact { id } => state.contacts.retain(|c| c.id != *id),
                other => panic!("unexpected write {other:?}"),
            }
            assert!(
                state.contacts.iter().filter(|c| c.primary).count() <= 1,
                "at most one primary after each write: {:?}",
                outcome.writes
            );
            let mut emails: Vec<String> = state.contacts.iter().map(|c| c.email.as_str().to_lowercase()).collect();
            emails.sort();
            emails.dedup();
            assert_eq!(emails.len(), state.contacts.len(), "emails unique");
        }
    }

    fn add(state: &mut PortalState, n: u8, name: &str, email: &str, primary: bool) -> ContactId {
        let (id, o) = ok(add_contact(&admin(), &mut ctx(n), state, &input(name, email, primary)));
        apply(state, &o);
        id
    }

    fn get(state: &PortalState, id: ContactId) -> &Contact {
        state
            .contacts
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("contact {id}"))
    }

    fn primary(state: &PortalState) -> Option<ContactId> {
        state.contacts.iter().find(|c| c.primary).map(|c| c.id)
    }

    fn make_primary(value: bool) -> ContactPatch {
        ContactPatch {
            primary: Some(value),
            ..ContactPatch::default()
        }
    }

    #[test]
    fn adding_a_primary_moves_the_flag_and_unflags_first() {
        let mut s = empty(PortalStatus::Draft);
        let ann = add(&mut s, 1, "Ann", "ann@client.example.org", true);
        let (bob, o) = ok(add_contact(
            &admin(),
            &mut ctx(2),
            &s,
            &input("Bob", "bob@client.example.org", true),
        ));
        assert!(
            matches!(&o.writes[..], [Write::UpdateContact { contact, .. }, Write::InsertContact(c)]
                if contact.id == ann && !contact.primary && c.id == bob && c.primary),
            "{:?}",
            o.writes
        );
        assert_eq!(o.events.len(), 1);
        assert_eq!(o.events[0].kind, EventKind::ContactAdded);
        assert_eq!(o.events[0].portal_id, Some(s.portal.id), "scoped to the portal (ACT-4)");
        assert_eq!(o.events[0].details["primary_moved_from"], json!(ann));
        apply(&mut s, &o);
        assert_eq!(primary(&s), Some(bob));
        assert_eq!(get(&s, ann).version, 2, "the former primary's row moved on");
        assert_eq!(get(&s, bob).version, 1);
    }

    #[test]
    fn setting_the_flag_moves_it_whichever_contact_is_older() {
        for status in [PortalStatus::Draft, PortalStatus::Active] {
            let mut s = empty(PortalStatus::Draft);
            // The new primary was created before the current one, and after it: the unflagging
            // write comes first either way.
            let older = add(&mut s, 1, "Old", "old@client.example.org", false);
            let current = add(&mut s, 2, "Cur", "cur@client.example.org", true);
            let newer = add(&mut s, 3, "New", "new@client.example.org", false);
            s.portal.status = status;
            for (n, to) in [(4, older), (5, newer), (6, current)] {
                let from = ok(primary(&s).ok_or("a primary"));
                let v = get(&s, to).version;
                let o = ok(update_contact(&admin(), &mut ctx(n), &s, to, v, &make_primary(true)));
                assert!(
                    matches!(&o.writes[..], [Write::UpdateContact { contact: a, .. }, Write::UpdateContact { contact: b, .. }]
                        if a.id == from && !a.primary && b.id == to && b.primary),
                    "{:?}",
                    o.writes
                );
                assert_eq!(o.events[0].kind, EventKind::ContactUpdated);
                assert_eq!(o.events[0].details["fields"], json!(["primary"]));
                assert_eq!(o.events[0].details["primary_moved_from"], json!(from));
                apply(&mut s, &o);
                assert_eq!(primary(&s), Some(to));
            }
        }
    }

    #[test]
    fn an_active_portal_keeps_its_primary() {
        let mut s = empty(PortalStatus::Draft);
        let pat = add(&mut s, 1, "Pat", "pat@client.example.org", true);
        let ian = add(&mut s, 2, "Ian", "ian@client.example.org", false);
        s.portal.status = PortalStatus::Active;
        let refused = Some(CommandError::PrimaryContact { primaries: 0 });
        assert_eq!(
            update_contact(&admin(), &mut ctx(3), &s, pat, 1, &make_primary(false)).err(),
            refused
        );
        assert_eq!(remove_contact(&admin(), &mut ctx(4), &s, pat, 1).err(), refused);
        // Another contact may go, and the primary may go once another holds the flag.
        let o = ok(remove_contact(&admin(), &mut ctx(5), &s, ian, 1));
        assert_eq!(o.writes, vec![Write::DeleteContact { id: ian }]);
        assert_eq!(o.events[0].kind, EventKind::ContactRemoved);
        apply(&mut s, &o);
        let sam = add(&mut s, 6, "Sam", "sam@client.example.org", true);
        let o = ok(remove_contact(&admin(), &mut ctx(7), &s, pat, 2));
        apply(&mut s, &o);
        assert_eq!(primary(&s), Some(sam));

        // A draft may be left without a primary.
        s.portal.status = PortalStatus::Draft;
        let o = ok(update_contact(&admin(), &mut ctx(8), &s, sam, 1, &make_primary(false)));
        apply(&mut s, &o);
        assert_eq!(primary(&s), None);
        let o = ok(remove_contact(&admin(), &mut ctx(9), &s, sam, 2));
        apply(&mut s, &o);
        assert!(s.contacts.is_empty());
    }

    #[test]
    fn emails_are_unique_per_portal_whatever_their_case() {
        let mut s = empty(PortalStatus::Draft);
        let ann = add(&mut s, 1, "Ann", "ann@client.example.org", false);
        let bob = add(&mut s, 2, "Bob", "bob@client.example.org", false);
        assert!(matches!(
            add_contact(
                &admin(),
                &mut ctx(3),
                &s,
                &input("Ann 2", "ANN@client.example.org", false)
            ),
            Err(CommandError::DuplicateContactEmail { .. })
        ));
        let to_ann = ContactPatch {
            email: Some(ok(Email::parse("Ann@Client.example.org"))),
            ..ContactPatch::default()
        };
        assert!(matches!(
            update_contact(&admin(), &mut ctx(4), &s, bob, 1, &to_ann),
            Err(CommandError::DuplicateContactEmail { .. })
        ));
        // A contact may change the case of its own address.
        let o = ok(update_contact(&admin(), &mut ctx(5), &s, ann, 1, &to_ann));
        assert_eq!(o.events[0].details["fields"], json!(["email"]));
        apply(&mut s, &o);
        assert_eq!(get(&s, ann).email.as_str(), "Ann@client.example.org");
    }

    #[test]
    fn versions_statuses_permissions_and_limits() {
        let mut s = empty(PortalStatus::Draft);
        let ann = add(&mut s, 1, "Ann", "ann@client.example.org", true);
        assert!(matches!(
            update_contact(&admin(), &mut ctx(2), &s, ann, 7, &make_primary(false)),
            Err(CommandError::Stale {
                entity: "contact",
                expected: 7,
                actual: 1,
                ..
            })
        ));
        assert!(matches!(
            remove_contact(&admin(), &mut ctx(3), &s, ann, 0),
            Err(CommandError::Stale { .. })
        ));
        let ghost = ContactId::from_uuid(uuid::Uuid::from_u128(404));
        assert_eq!(
            remove_contact(&admin(), &mut ctx(4), &s, ghost, 1).err(),
            Some(CommandError::NotFound {
                entity: "contact",
                id: ghost.as_uuid()
            })
        );

        // Nothing changed: nothing written, nothing logged, the version stays.
        let same = ContactPatch {
            name: Some(ok(Name::parse("Ann"))),
            primary: Some(true),
            ..ContactPatch::default()
        };
        assert!(ok(update_contact(&admin(), &mut ctx(5), &s, ann, 1, &same)).is_empty());
        let renamed = ContactPatch {
            name: Some(ok(Name::parse("Ann Other"))),
            role: Some(ContactRole::Finance),
            ..ContactPatch::default()
        };
        let o = ok(update_contact(&admin(), &mut ctx(6), &s, ann, 1, &renamed));
        assert_eq!(o.events[0].details["fields"], json!(["name", "role"]));
        assert_eq!(o.writes.len(), 1);
        apply(&mut s, &o);
        assert_eq!(get(&s, ann).version, 2);
        assert!(get(&s, ann).primary);

        for status in [PortalStatus::Completed, PortalStatus::Converted, PortalStatus::Archived] {
            s.portal.status = status;
            let wrong = |r: Result<Outcome, CommandError>| {
                assert!(
                    matches!(r, Err(CommandError::PortalStatus { actual, .. }) if actual == status),
                    "{status}"
                );
            };
            wrong(
                add_contact(
                    &admin(),
                    &mut ctx(7),
                    &s,
                    &input("Zed", "zed@client.example.org", false),
                )
                .map(|(_, o)| o),
            );
            wrong(update_contact(&admin(), &mut ctx(8), &s, ann, 2, &renamed));
            wrong(remove_contact(&admin(), &mut ctx(9), &s, ann, 2));
        }
        s.portal.status = PortalStatus::Draft;

        let reader = staff([Permission::ReadOnboarding].into_iter().collect());
        assert!(matches!(
            remove_contact(&reader, &mut ctx(10), &s, ann, 2),
            Err(CommandError::Access(_))
        ));
        let contact = Principal::Contact(ContactPrincipal {
            tenant_id: tenant(),
            portal_id: s.portal.id,
            contact_id: ann,
            email: ok(Email::parse("ann@client.example.org")),
        });
        assert!(matches!(
            update_contact(&contact, &mut ctx(11), &s, ann, 2, &renamed),
            Err(CommandError::Access(_))
        ));

        for i in 1..MAX_CONTACTS {
            add(&mut s, 20 + i as u8, "Many", &format!("c{i}@client.example.org"), false);
        }
        assert_eq!(s.contacts.len(), MAX_CONTACTS);
        assert_eq!(
            add_contact(
                &admin(),
                &mut ctx(13),
                &s,
                &input("One more", "more@client.example.org", false)
            )
            .err(),
            Some(CommandError::TooMany {
                what: "contacts",
                max: MAX_CONTACTS,
                actual: MAX_CONTACTS + 1
            })
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add { email: usize, primary: bool },
        Flag { contact: usize, primary: bool },
        Email { contact: usize, email: usize },
        Remove { contact: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..8, any::<bool>()).prop_map(|(email, primary)| Op::Add { email, primary }),
            (0usize..8, any::<bool>()).prop_map(|(contact, primary)| Op::Flag { contact, primary }),
            (0usize..8, 0usize..8).prop_map(|(contact, email)| Op::Email { contact, email }),
            (0usize..8).prop_map(|contact| Op::Remove { contact }),
        ]
    }

    proptest! {
        /// Whatever contact commands run, in a draft or an active portal: every write keeps at
        /// most one primary and unique emails (checked after each write, as the database checks
        /// each statement), an active portal always has exactly one primary, and a refused
        /// command is refused with a CON-1 code.
        #[test]
        fn contact_commands_keep_con_1(active in any::<bool>(), ops in proptest::collection::vec(op(), 0..40)) {
            let mut s = empty(PortalStatus::Draft);
            add(&mut s, 0, "First", "first@client.example.org", true);
            if active {
                s.portal.status = PortalStatus::Active;
            }
            for (n, op) in ops.iter().enumerate() {
                let mut c = Ctx::new(now(), [(n % 250) as u8 + 1; 16]);
                let pick = |i: usize| s.contacts.get(i % s.contacts.len().max(1)).map(|c| (c.id, c.version));
                let email = |i: usize| ok(Email::parse(&format!("c{i}@client.example.org")));
                let r = match *op {
                    Op::Add { email: e, primary } => {
                        let input = ContactInput { name: ok(Name::parse("C")), email: email(e), role: ContactRole::It, primary };
                        add_contact(&admin(), &mut c, &s, &input).map(|(_, o)| o)
                    }
                    Op::Flag { contact, primary } => match pick(contact) {
                        Some((id, v)) => update_contact(&admin(), &mut c, &s, id, v, &make_primary(primary)),
                        None => continue,
                    },
                    Op::Email { contact, email: e } => match pick(contact) {
                        Some((id, v)) => {
                            let patch = ContactPatch { email: Some(email(e)), ..ContactPatch::default() };
                            update_contact(&admin(), &mut c, &s, id, v, &patch)
                        }
                        None => continue,
                    },
                    Op::Remove { contact } => match pick(contact) {
                        Some((id, v)) => remove_contact(&admin(), &mut c, &s, id, v),
                        None => continue,
                    },
                };
                match r {
                    Ok(o) => apply(&mut s, &o),
                    Err(e) => prop_assert!(
                        matches!(e.code(), "primary_contact" | "duplicate_contact_email"),
                        "{e:?}"
                    ),
                }
                if active {
                    prop_assert_eq!(s.contacts.iter().filter(|c| c.primary).count(), 1);
                }
            }
        }
    }
}
