//! [`MemoryStorage`]: the in-memory reference implementation of every storage trait (feature
//! `testing`). It defines the observable behaviour the SQL backends must match; the differential
//! property test in `portal-tests` compares them.
//!
//! One mutex guards all data, so every method is trivially one transaction; a commit applies its
//! writes to a copy and swaps it in only when every write succeeded.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::{AccessChallenge, AccessLink, ContactSession};
use crate::activity::ActivityEvent;
use crate::auth::{StaffSession, TokenHash};
use crate::company::{Company, Site};
use crate::error::CommandError;
use crate::id::{
    AccessLinkId, ChallengeId, CommentId, CompanyId, ContactId, DigestItemId, EventId, MessageId, PhaseId, PortalId,
    RoleId, SiteId, StaffUserId, TaskId, TemplateId, TenantId,
};
use crate::lifecycle::PortalStatus;
use crate::mail::{ClaimedMessage, MessageSecret, MessageStatus, OutboxEntry};
use crate::notifications::{DigestItem, PendingDigest, ReminderRecord};
use crate::outcome::{AccessEffect, OutboundMessage, Outcome, Write};
use crate::portal::{Contact, Phase, Portal, PortalState};
use crate::storage::{
    AccessRepo, ActivityFilter, ActivityRepo, AssignedTask, AssignedTaskCursor, AuthRepo, CompanyRepo,
    NotificationRepo, OutboxRepo, OutcomeRepo, PageRequest, PortalDecision, PortalFilter, PortalRepo, PortalTaskCounts,
    PurgeReport, StorageError, StorageResult, TemplateRepo, TenantRepo,
};
use crate::task::{Comment, Task};
use crate::template::Template;
use crate::tenant::{Role, StaffUser, Tenant};
use crate::value::Email;

type Map<K, V> = BTreeMap<(TenantId, K), V>;

#[derive(Debug, Clone, Default)]
struct Db {
    tenants: BTreeMap<TenantId, Tenant>,
    roles: Map<RoleId, Role>,
    staff: Map<StaffUserId, StaffUser>,
    companies: Map<CompanyId, Company>,
    sites: Map<SiteId, Site>,
    templates: Map<TemplateId, Template>,
    portals: Map<PortalId, Portal>,
    phases: Map<PhaseId, Phase>,
    tasks: Map<TaskId, Task>,
    contacts: Map<ContactId, Contact>,
    comments: Map<CommentId, Comment>,
    events: Map<EventId, ActivityEvent>,
    outbox: Map<MessageId, OutboxRow>,
    hosts: BTreeMap<String, TenantId>,
    passwords: Map<StaffUserId, String>,
    sessions: BTreeMap<TokenHash, StaffSession>,
    sign_in_attempts: BTreeMap<(TenantId, String), AttemptCounter>,
    links: Map<AccessLinkId, AccessLink>,
    contact_sessions: BTreeMap<TokenHash, ContactSession>,
    challenges: Map<ChallengeId, AccessChallenge>,
    reminders: Vec<ReminderRecord>,
    digest_items: Map<DigestItemId, DigestItem>,
}

/// A sign-in attempt counter: its window, the count in it, and when it last counted.
#[derive(Debug, Clone, Copy)]
struct AttemptCounter {
    window_start: DateTime<Utc>,
    count: u32,
    last_attempt_at: DateTime<Utc>,
}

/// A message in the outbox with its delivery state.
#[derive(Debug, Clone)]
struct OutboxRow {
    message: OutboundMessage,
    status: MessageStatus,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
}

impl OutboxRow {
    fn entry(&self) -> OutboxEntry {
        let m = &self.message;
        OutboxEntry {
            id: m.id,
            portal_id: m.portal_id,
            contact_id: m.contact_id,
            kind: m.kind,
            recipient: m.recipient.clone(),
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            created_at: m.created_at,
            sent_at: self.sent_at,
        }
    }
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    db: Mutex<Db>,
}

impl MemoryStorage {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Db> {
        // A panic while holding the lock cannot leave a half-applied commit (commits swap in a
        // finished copy), so a poisoned lock still guards consistent data.
        self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn page<K: Copy + Ord, V: Clone>(
    map: &Map<K, V>,
    tenant: TenantId,
    req: PageRequest<K>,
    keep: impl Fn(&V) -> bool,
) -> Vec<V> {
    map.iter()
        .filter(|((t, k), _)| *t == tenant && req.after.is_none_or(|a| *k > a))
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .take(req.clamped_limit())
        .cloned()
        .collect()
}

fn tenant_rows<K: Copy + Ord, V: Clone>(map: &Map<K, V>, tenant: TenantId) -> impl Iterator<Item = &V> {
    map.iter().filter(move |((t, _), _)| *t == tenant).map(|(_, v)| v)
}

fn already(entity: &'static str, value: &dyn std::fmt::Display) -> CommandError {
    CommandError::AlreadyExists {
        entity,
        value: value.to_string(),
    }
}

/// Compare-and-set on a versioned row: gone is "not found", another version is "stale".
fn cas<K: Copy + Ord, V>(
    map: &mut Map<K, V>,
    key: (TenantId, K),
    entity: &'static str,
    id: uuid::Uuid,
    expected: i64,
    version: impl Fn(&V) -> i64,
) -> Result<(), CommandError> {
    match map.get(&key) {
        None => Err(CommandError::NotFound { entity, id }),
        Some(v) if version(v) != expected => Err(CommandError::Stale {
            entity,
            id,
            expected,
            actual: version(v),
        }),
        Some(_) => Ok(()),
    }
}

fn insert<K: Copy + Ord, V>(
    map: &mut Map<K, V>,
    key: (TenantId, K),
    entity: &'static str,
    id: uuid::Uuid,
    v: V,
) -> Result<(), CommandError> {
    if map.contains_key(&key) {
        return Err(already(entity, &id));
    }
    map.insert(key, v);
    Ok(())
}

impl Db {
    /// Auth rows of a staff user that does not exist are refused, as the SQL backends' foreign
    /// keys refuse them.
    fn require_staff_user(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<()> {
        if self.staff.contains_key(&(tenant, user)) {
            Ok(())
        } else {
            Err(StorageError::Invariant(format!(
                "auth row for unknown staff user {user}"
            )))
        }
    }

    fn check_contact(&self, tenant: TenantId, c: &Contact) -> Result<(), CommandError> {
        for other in tenant_rows(&self.contacts, tenant).filter(|o| o.portal_id == c.portal_id && o.id != c.id) {
            if other.email == c.email {
                return Err(already("contact", &c.email));
            }
            if c.primary && other.primary {
                return Err(already("primary contact", &c.portal_id));
            }
        }
        Ok(())
    }

    /// Whether the session works at `now`: not expired and its link not revoked.
    fn session_live(&self, s: &ContactSession, now: DateTime<Utc>) -> bool {
        s.is_live(now)
            && self
                .links
                .get(&(s.tenant_id, s.link_id))
                .is_some_and(|l| l.revoked_at.is_none())
    }

    /// Revokes the links and ends the sessions of one tenant that `which` selects by (portal,
    /// contact).
    fn revoke_access(&mut self, tenant: TenantId, at: DateTime<Utc>, which: impl Fn(PortalId, ContactId) -> bool) {
        for l in self
            .links
            .values_mut()
            .filter(|l| l.tenant_id == tenant && l.revoked_at.is_none() && which(l.portal_id, l.contact_id))
        {
            l.revoked_at = Some(at);
        }
        self.contact_sessions
            .retain(|_, s| !(s.tenant_id == tenant && which(s.portal_id, s.contact_id)));
    }

    fn delete_access_rows(&mut self, tenant: TenantId, which: impl Fn(PortalId, ContactId) -> bool) {
        self.links
            .retain(|(t, _), l| !(*t == tenant && which(l.portal_id, l.contact_id)));
        self.contact_sessions
            .retain(|_, s| !(s.tenant_id == tenant && which(s.portal_id, s.contact_id)));
        self.challenges
            .retain(|(t, _), c| !(*t == tenant && which(c.portal_id, c.contact_id)));
        // The reminder ledger and digest items go with their portal or contact too (ON DELETE
        // CASCADE in the SQL stores).
        self.reminders
            .retain(|r| !(r.tenant_id == tenant && which(r.portal_id, r.contact_id)));
        self.digest_items
            .retain(|(t, _), d| !(*t == tenant && which(d.portal_id, d.contact_id)));
    }

    fn delete_task_rows(&mut self, tenant: TenantId, id: TaskId) {
        self.tasks.remove(&(tenant, id));
        for t in self.tasks.values_mut().filter(|t| t.tenant_id == tenant) {
            t.depends_on.retain(|d| *d != id);
        }
        self.comments.retain(|(t, _), c| !(*t == tenant && c.task_id == id));
        self.reminders.retain(|r| !(r.tenant_id == tenant && r.task_id == id));
    }

    fn apply(&mut self, tenant: TenantId, w: &Write) -> Result<(), CommandError> {
        match w {
            Write::InsertTenant(t) => {
                if self.tenants.contains_key(&t.id) {
                    return Err(already("tenant", &t.id));
                }
                self.tenants.insert(t.id, t.clone());
            }
            Write::UpdateTenant {
                tenant: t,
                expected_version,
            } => {
                match self.tenants.get(&t.id) {
                    None => {
                        return Err(CommandError::NotFound {
                            entity: "tenant",
                            id: t.id.as_uuid(),
                        });
                    }
                    Some(cur) if cur.version != *expected_version => {
                        return Err(CommandError::Stale {
                            entity: "tenant",
                            id: t.id.as_uuid(),
                            expected: *expected_version,
                            actual: cur.version,
                        });
                    }
                    Some(_) => {}
                }
                self.tenants.insert(t.id, t.clone());
            }
            Write::InsertRole(r) => {
                if tenant_rows(&self.roles, tenant).any(|o| o.name == r.name) {
                    return Err(already("role", &r.name));
                }
                insert(&mut self.roles, (tenant, r.id), "role", r.id.as_uuid(), r.clone())?;
            }
            Write::UpdateRole { role, expected_version } => {
                cas(
                    &mut self.roles,
                    (tenant, role.id),
                    "role",
                    role.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                if tenant_rows(&self.roles, tenant).any(|o| o.name == role.name && o.id != role.id) {
                    return Err(already("role", &role.name));
                }
                self.roles.insert((tenant, role.id), role.clone());
            }
            Write::InsertStaffUser(u) => {
                if tenant_rows(&self.staff, tenant).any(|o| o.email == u.email) {
                    return Err(already("staff user", &u.email));
                }
                insert(&mut self.staff, (tenant, u.id), "staff user", u.id.as_uuid(), u.clone())?;
            }
            Write::UpdateStaffUser { user, expected_version } => {
                cas(
                    &mut self.staff,
                    (tenant, user.id),
                    "staff user",
                    user.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                if tenant_rows(&self.staff, tenant).any(|o| o.email == user.email && o.id != user.id) {
                    return Err(already("staff user", &user.email));
                }
                self.staff.insert((tenant, user.id), user.clone());
            }
            Write::InsertCompany(c) => insert(
                &mut self.companies,
                (tenant, c.id),
                "company",
                c.id.as_uuid(),
                c.clone(),
            )?,
            Write::UpdateCompany {
                company,
                expected_version,
            } => {
                cas(
                    &mut self.companies,
                    (tenant, company.id),
                    "company",
                    company.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.companies.insert((tenant, company.id), company.clone());
            }
            Write::InsertSite(s) => {
                if !self.companies.contains_key(&(tenant, s.company_id)) {
                    return Err(CommandError::NotFound {
                        entity: "company",
                        id: s.company_id.as_uuid(),
                    });
                }
                insert(&mut self.sites, (tenant, s.id), "site", s.id.as_uuid(), s.clone())?;
            }
            Write::UpdateSite { site, expected_version } => {
                cas(
                    &mut self.sites,
                    (tenant, site.id),
                    "site",
                    site.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.sites.insert((tenant, site.id), site.clone());
            }
            Write::DeleteSite { id, expected_version } => {
                cas(
                    &mut self.sites,
                    (tenant, *id),
                    "site",
                    id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.sites.remove(&(tenant, *id));
            }
            Write::InsertTemplate(t) => insert(
                &mut self.templates,
                (tenant, t.id),
                "template",
                t.id.as_uuid(),
                t.clone(),
            )?,
            Write::ReplaceTemplate {
                template,
                expected_version,
            } => {
                cas(
                    &mut self.templates,
                    (tenant, template.id),
                    "template",
                    template.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.templates.insert((tenant, template.id), template.clone());
            }
            Write::DeleteTemplate { id, expected_version } => {
                cas(
                    &mut self.templates,
                    (tenant, *id),
                    "template",
                    id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.templates.remove(&(tenant, *id));
            }
            Write::InsertPortal(state) => {
                let p = &state.portal;
                if !self.companies.contains_key(&(tenant, p.company_id)) {
                    return Err(CommandError::NotFound {
                        entity: "company",
                        id: p.company_id.as_uuid(),
                    });
                }
                insert(&mut self.portals, (tenant, p.id), "portal", p.id.as_uuid(), p.clone())?;
                for ph in &state.phases {
                    insert(&mut self.phases, (tenant, ph.id), "phase", ph.id.as_uuid(), ph.clone())?;
                }
                for t in &state.tasks {
                    insert(&mut self.tasks, (tenant, t.id), "task", t.id.as_uuid(), t.clone())?;
                }
                for c in &state.contacts {
                    self.check_contact(tenant, c)?;
                    insert(&mut self.contacts, (tenant, c.id), "contact", c.id.as_uuid(), c.clone())?;
                }
            }
            Write::UpdatePortal {
                portal,
                expected_version,
            } => {
                cas(
                    &mut self.portals,
                    (tenant, portal.id),
                    "portal",
                    portal.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.portals.insert((tenant, portal.id), portal.clone());
            }
            Write::DeletePortal { id } => {
                self.portals.remove(&(tenant, *id));
                self.phases.retain(|(t, _), p| !(*t == tenant && p.portal_id == *id));
                self.tasks.retain(|(t, _), x| !(*t == tenant && x.portal_id == *id));
                self.contacts.retain(|(t, _), c| !(*t == tenant && c.portal_id == *id));
                self.comments.retain(|(t, _), c| !(*t == tenant && c.portal_id == *id));
                self.delete_access_rows(tenant, |portal, _| portal == *id);
                self.outbox
                    .retain(|(t, _), m| !(*t == tenant && m.message.portal_id == Some(*id)));
            }
            Write::InsertPhase(p) => insert(&mut self.phases, (tenant, p.id), "phase", p.id.as_uuid(), p.clone())?,
            Write::UpdatePhase {
                phase,
                expected_version,
            } => {
                cas(
                    &mut self.phases,
                    (tenant, phase.id),
                    "phase",
                    phase.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.phases.insert((tenant, phase.id), phase.clone());
            }
            Write::DeletePhase { id } => {
                self.phases.remove(&(tenant, *id));
                let gone: Vec<TaskId> = tenant_rows(&self.tasks, tenant)
                    .filter(|t| t.phase_id == *id)
                    .map(|t| t.id)
                    .collect();
                for t in gone {
                    self.delete_task_rows(tenant, t);
                }
            }
            Write::InsertTask(t) => {
                if !self.phases.contains_key(&(tenant, t.phase_id)) {
                    return Err(CommandError::NotFound {
                        entity: "phase",
                        id: t.phase_id.as_uuid(),
                    });
                }
                insert(&mut self.tasks, (tenant, t.id), "task", t.id.as_uuid(), (**t).clone())?;
            }
            Write::UpdateTask { task, expected_version } => {
                cas(
                    &mut self.tasks,
                    (tenant, task.id),
                    "task",
                    task.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.tasks.insert((tenant, task.id), (**task).clone());
            }
            Write::DeleteTask { id } => self.delete_task_rows(tenant, *id),
            Write::InsertContact(c) => {
                self.check_contact(tenant, c)?;
                insert(&mut self.contacts, (tenant, c.id), "contact", c.id.as_uuid(), c.clone())?;
            }
            Write::UpdateContact {
                contact,
                expected_version,
            } => {
                cas(
                    &mut self.contacts,
                    (tenant, contact.id),
                    "contact",
                    contact.id.as_uuid(),
                    *expected_version,
                    |r| r.version,
                )?;
                self.check_contact(tenant, contact)?;
                self.contacts.insert((tenant, contact.id), contact.clone());
            }
            Write::DeleteContact { id } => {
                self.contacts.remove(&(tenant, *id));
                self.delete_access_rows(tenant, |_, contact| contact == *id);
                self.outbox
                    .retain(|(t, _), m| !(*t == tenant && m.message.contact_id == Some(*id)));
            }
            Write::InsertAccessLink(l) => {
                // As the foreign key to the contact refuses it.
                if !self.contacts.contains_key(&(tenant, l.contact_id)) {
                    return Err(CommandError::NotFound {
                        entity: "contact",
                        id: l.contact_id.as_uuid(),
                    });
                }
                if self.links.values().any(|o| o.token_hash == l.token_hash) {
                    return Err(already("access link", &l.id));
                }
                insert(
                    &mut self.links,
                    (tenant, l.id),
                    "access link",
                    l.id.as_uuid(),
                    l.clone(),
                )?;
            }
            Write::RevokeContactAccess { contact_id, at } => {
                self.revoke_access(tenant, *at, |_, contact| contact == *contact_id);
            }
            Write::InsertContactSession(s) => {
                // As the foreign key to the link refuses it.
                if !self.links.contains_key(&(tenant, s.link_id)) {
                    return Err(CommandError::NotFound {
                        entity: "access link",
                        id: s.link_id.as_uuid(),
                    });
                }
                if self.contact_sessions.contains_key(&s.token_hash) {
                    return Err(already("contact session", &s.link_id));
                }
                self.contact_sessions.insert(s.token_hash, s.clone());
            }
            Write::InsertAccessChallenge(c) => {
                // As the foreign key to the link refuses it.
                if !self.links.contains_key(&(tenant, c.link_id)) {
                    return Err(CommandError::NotFound {
                        entity: "access link",
                        id: c.link_id.as_uuid(),
                    });
                }
                if tenant_rows(&self.challenges, tenant).any(|x| x.token_hash == c.token_hash) {
                    return Err(already("access code", &c.id));
                }
                insert(
                    &mut self.challenges,
                    (tenant, c.id),
                    "access code",
                    c.id.as_uuid(),
                    c.clone(),
                )?;
            }
            Write::InsertReminderRecord(r) => {
                // As the foreign keys refuse it.
                if !self.tasks.contains_key(&(tenant, r.task_id))
                    || !self.contacts.contains_key(&(tenant, r.contact_id))
                {
                    return Err(CommandError::NotFound {
                        entity: "task",
                        id: r.task_id.as_uuid(),
                    });
                }
                if self
                    .reminders
                    .iter()
                    .any(|x| x.tenant_id == tenant && x.is_for(r.task_id, r.contact_id, r.reason, r.due_date))
                {
                    return Err(already("reminder", &r.task_id));
                }
                self.reminders.push(r.clone());
            }
            Write::InsertDigestItem(d) => {
                if !self.contacts.contains_key(&(tenant, d.contact_id)) {
                    return Err(CommandError::NotFound {
                        entity: "contact",
                        id: d.contact_id.as_uuid(),
                    });
                }
                insert(
                    &mut self.digest_items,
                    (tenant, d.id),
                    "digest item",
                    d.id.as_uuid(),
                    d.clone(),
                )?;
            }
            Write::DeleteDigestItems { contact_id, ids } => {
                for id in ids {
                    match self.digest_items.remove(&(tenant, *id)) {
                        Some(d) if d.contact_id == *contact_id => {}
                        _ => {
                            return Err(CommandError::Stale {
                                entity: "digest item",
                                id: id.as_uuid(),
                                expected: 1,
                                actual: 0,
                            });
                        }
                    }
                }
            }
            Write::UseAccessChallenge { id, at } => match self.challenges.get_mut(&(tenant, *id)) {
                Some(c) if c.used_at.is_none() => c.used_at = Some(*at),
                Some(_) => {
                    return Err(CommandError::Stale {
                        entity: "access code",
                        id: id.as_uuid(),
                        expected: 0,
                        actual: 1,
                    });
                }
                None => {
                    return Err(CommandError::NotFound {
                        entity: "access code",
                        id: id.as_uuid(),
                    });
                }
            },
            Write::InsertComment(c) => {
                if !self.tasks.contains_key(&(tenant, c.task_id)) {
                    return Err(CommandError::NotFound {
                        entity: "task",
                        id: c.task_id.as_uuid(),
                    });
                }
                insert(&mut self.comments, (tenant, c.id), "comment", c.id.as_uuid(), c.clone())?;
            }
            Write::EraseEventsOfPortal { portal_id, erased_by } => {
                for e in self
                    .events
                    .values_mut()
                    .filter(|e| e.tenant_id == tenant && e.portal_id == Some(*portal_id))
                {
                    e.summary = String::new();
                    e.details = serde_json::Value::Null;
                    e.actor.display = None;
                    e.erased_by = Some(*erased_by);
                }
            }
        }
        Ok(())
    }

    /// The outbox row still claimed by `attempt`.
    fn claimed(&mut self, tenant: TenantId, id: MessageId, attempt: u32) -> Option<&mut OutboxRow> {
        self.outbox
            .get_mut(&(tenant, id))
            .filter(|r| r.status == MessageStatus::Sending && r.attempts == attempt)
    }

    fn commit(&mut self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>> {
        if let Some(bad) = outcome.tenants().find(|t| *t != tenant) {
            return Err(StorageError::Invariant(format!(
                "a write for tenant {bad} in a commit for tenant {tenant}"
            )));
        }
        let mut next = self.clone();
        for w in &outcome.writes {
            if let Err(e) = next.apply(tenant, w) {
                return Ok(Err(e));
            }
        }
        for e in &outcome.events {
            if let Err(e) = insert(&mut next.events, (tenant, e.id), "event", e.id.as_uuid(), e.clone()) {
                return Ok(Err(e));
            }
        }
        for m in &outcome.messages {
            if matches!(m.secret, Some(MessageSecret::Clear { .. })) {
                return Err(StorageError::Invariant(format!(
                    "message {} carries its secret in clear; the engine seals secrets before they are stored",
                    m.id
                )));
            }
            let row = OutboxRow {
                message: m.clone(),
                status: MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: m.created_at,
                lease_until: None,
                last_error: None,
                sent_at: None,
            };
            if let Err(e) = insert(&mut next.outbox, (tenant, m.id), "message", m.id.as_uuid(), row) {
                return Ok(Err(e));
            }
        }
        for effect in &outcome.effects {
            match *effect {
                AccessEffect::RevokeAllClientAccess { portal_id, at } => {
                    next.revoke_access(tenant, at, |portal, _| portal == portal_id);
                }
            }
        }
        *self = next;
        Ok(Ok(()))
    }

    fn load_portal(&self, tenant: TenantId, id: PortalId) -> Option<PortalState> {
        let portal = self.portals.get(&(tenant, id))?.clone();
        let mut state = PortalState {
            portal,
            phases: tenant_rows(&self.phases, tenant)
                .filter(|p| p.portal_id == id)
                .cloned()
                .collect(),
            tasks: tenant_rows(&self.tasks, tenant)
                .filter(|t| t.portal_id == id)
                .cloned()
                .collect(),
            contacts: tenant_rows(&self.contacts, tenant)
                .filter(|c| c.portal_id == id)
                .cloned()
                .collect(),
        };
        state.sort();
        Some(state)
    }
}

#[async_trait]
impl TenantRepo for MemoryStorage {
    async fn get_tenant(&self, tenant: TenantId) -> StorageResult<Option<Tenant>> {
        Ok(self.lock().tenants.get(&tenant).cloned())
    }
    async fn get_role(&self, tenant: TenantId, id: RoleId) -> StorageResult<Option<Role>> {
        Ok(self.lock().roles.get(&(tenant, id)).cloned())
    }
    async fn list_roles(&self, tenant: TenantId) -> StorageResult<Vec<Role>> {
        let mut roles: Vec<Role> = tenant_rows(&self.lock().roles, tenant).cloned().collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(roles)
    }
    async fn get_staff_user(&self, tenant: TenantId, id: StaffUserId) -> StorageResult<Option<StaffUser>> {
        Ok(self.lock().staff.get(&(tenant, id)).cloned())
    }
    async fn find_staff_user_by_email(&self, tenant: TenantId, email: &Email) -> StorageResult<Option<StaffUser>> {
        Ok(tenant_rows(&self.lock().staff, tenant)
            .find(|u| &u.email == email)
            .cloned())
    }
    async fn list_staff_users(&self, tenant: TenantId, req: PageRequest<StaffUserId>) -> StorageResult<Vec<StaffUser>> {
        let db = self.lock();
        Ok(page(&db.staff, tenant, req, |_| true))
    }
}

#[async_trait]
impl CompanyRepo for MemoryStorage {
    async fn get_company(&self, tenant: TenantId, id: CompanyId) -> StorageResult<Option<Company>> {
        Ok(self.lock().companies.get(&(tenant, id)).cloned())
    }
    async fn list_companies(&self, tenant: TenantId, req: PageRequest<CompanyId>) -> StorageResult<Vec<Company>> {
        let db = self.lock();
        Ok(page(&db.companies, tenant, req, |_| true))
    }
    async fn get_site(&self, tenant: TenantId, id: SiteId) -> StorageResult<Option<Site>> {
        Ok(self.lock().sites.get(&(tenant, id)).cloned())
    }
    async fn list_sites_for_company(&self, tenant: TenantId, company: CompanyId) -> StorageResult<Vec<Site>> {
        Ok(tenant_rows(&self.lock().sites, tenant)
            .filter(|s| s.company_id == company)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl TemplateRepo for MemoryStorage {
    async fn get_template(&self, tenant: TenantId, id: TemplateId) -> StorageResult<Option<Template>> {
        Ok(self.lock().templates.get(&(tenant, id)).cloned())
    }
    async fn list_templates(&self, tenant: TenantId, req: PageRequest<TemplateId>) -> StorageResult<Vec<Template>> {
        let db = self.lock();
        Ok(page(&db.templates, tenant, req, |_| true))
    }
}

#[async_trait]
impl PortalRepo for MemoryStorage {
    async fn get_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<Portal>> {
        Ok(self.lock().portals.get(&(tenant, id)).cloned())
    }
    async fn load_portal(&self, tenant: TenantId, id: PortalId) -> StorageResult<Option<PortalState>> {
        Ok(self.lock().load_portal(tenant, id))
    }
    async fn list_portals(
        &self,
        tenant: TenantId,
        filter: PortalFilter,
        req: PageRequest<PortalId>,
    ) -> StorageResult<Vec<Portal>> {
        let db = self.lock();
        Ok(page(&db.portals, tenant, req, |p| {
            filter.status.is_none_or(|s| p.status == s) && filter.company.is_none_or(|c| p.company_id == c)
        }))
    }
    async fn task_counts(&self, tenant: TenantId, portals: &[PortalId]) -> StorageResult<Vec<PortalTaskCounts>> {
        let db = self.lock();
        Ok(portals
            .iter()
            .filter(|p| db.portals.contains_key(&(tenant, **p)))
            .map(|&portal| {
                let tasks = tenant_rows(&db.tasks, tenant).filter(|t| t.portal_id == portal);
                let (total, completed) = tasks.fold((0u32, 0u32), |(n, c), t| (n + 1, c + u32::from(t.is_completed())));
                PortalTaskCounts {
                    portal,
                    total,
                    completed,
                }
            })
            .collect())
    }
    async fn list_assigned_tasks(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        req: PageRequest<AssignedTaskCursor>,
    ) -> StorageResult<Vec<AssignedTask>> {
        let db = self.lock();
        let mut items: Vec<AssignedTask> = tenant_rows(&db.tasks, tenant)
            .filter(|t| t.assignee == Some(user) && !t.is_completed())
            .filter_map(|t| {
                let portal = db.portals.get(&(tenant, t.portal_id))?;
                let phase = db.phases.get(&(tenant, t.phase_id))?;
                (portal.status == PortalStatus::Active).then(|| AssignedTask {
                    portal_name: portal.name.clone(),
                    phase_position: phase.position,
                    task: t.clone(),
                })
            })
            .filter(|a| req.after.is_none_or(|after| a.cursor() > after))
            .collect();
        items.sort_by_key(AssignedTask::cursor);
        items.truncate(req.clamped_limit());
        Ok(items)
    }
    async fn list_comments_for_task(&self, tenant: TenantId, task: TaskId) -> StorageResult<Vec<Comment>> {
        let mut comments: Vec<Comment> = tenant_rows(&self.lock().comments, tenant)
            .filter(|c| c.task_id == task)
            .cloned()
            .collect();
        comments.sort_by_key(|c| (c.created_at, c.id));
        Ok(comments)
    }
    async fn modify_portal(
        &self,
        tenant: TenantId,
        id: PortalId,
        decide: &PortalDecision<'_>,
    ) -> StorageResult<Option<Result<Outcome, CommandError>>> {
        let mut db = self.lock();
        let Some(state) = db.load_portal(tenant, id) else {
            return Ok(None);
        };
        let outcome = match decide(&state) {
            Ok(o) => o,
            Err(e) => return Ok(Some(Err(e))),
        };
        // A refusal here comes from rows outside the portal's state (the reminder ledger, digest
        // items) that another writer changed since the caller read them: nothing is written.
        Ok(Some(db.commit(tenant, &outcome)?.map(|()| outcome)))
    }
}

#[async_trait]
impl ActivityRepo for MemoryStorage {
    async fn list_activity(
        &self,
        tenant: TenantId,
        filter: &ActivityFilter,
        req: PageRequest<EventId>,
    ) -> StorageResult<Vec<ActivityEvent>> {
        let db = self.lock();
        Ok(db
            .events
            .iter()
            .rev()
            .filter(|((t, id), e)| {
                *t == tenant
                    && req.after.is_none_or(|a| *id < a)
                    && filter.portal.is_none_or(|p| e.portal_id == Some(p))
                    && (filter.kinds.is_empty() || filter.kinds.contains(&e.kind))
            })
            .take(req.clamped_limit())
            .map(|(_, e)| e.clone())
            .collect())
    }
}

#[async_trait]
impl OutboxRepo for MemoryStorage {
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> StorageResult<Vec<ClaimedMessage>> {
        let mut db = self.lock();
        let mut due: Vec<(DateTime<Utc>, (TenantId, MessageId))> = db
            .outbox
            .iter()
            .filter(|(_, r)| match r.status {
                MessageStatus::Queued => r.next_attempt_at <= now,
                MessageStatus::Sending => r.lease_until.is_some_and(|l| l < now),
                MessageStatus::Sent | MessageStatus::Failed => false,
            })
            .map(|(k, r)| (r.next_attempt_at, *k))
            .collect();
        due.sort();
        due.truncate(limit.min(crate::storage::MAX_PAGE));
        Ok(due
            .into_iter()
            .filter_map(|(_, key)| {
                let row = db.outbox.get_mut(&key)?;
                row.status = MessageStatus::Sending;
                row.attempts += 1;
                row.lease_until = Some(lease_until);
                Some(ClaimedMessage {
                    message: row.message.clone(),
                    attempt: row.attempts,
                })
            })
            .collect())
    }

    async fn mark_message_sent(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        Ok(self.lock().claimed(tenant, id, attempt).is_some_and(|row| {
            row.status = MessageStatus::Sent;
            row.sent_at = Some(at);
            row.lease_until = None;
            row.message.secret = None;
            true
        }))
    }

    async fn mark_message_retry(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> StorageResult<bool> {
        Ok(self.lock().claimed(tenant, id, attempt).is_some_and(|row| {
            row.status = MessageStatus::Queued;
            row.next_attempt_at = next_attempt_at;
            row.lease_until = None;
            row.last_error = Some(error.to_owned());
            true
        }))
    }

    async fn mark_message_failed(
        &self,
        tenant: TenantId,
        id: MessageId,
        attempt: u32,
        error: &str,
    ) -> StorageResult<bool> {
        Ok(self.lock().claimed(tenant, id, attempt).is_some_and(|row| {
            row.status = MessageStatus::Failed;
            row.lease_until = None;
            row.last_error = Some(error.to_owned());
            true
        }))
    }

    async fn requeue_failed_message(&self, tenant: TenantId, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let mut db = self.lock();
        Ok(match db.outbox.get_mut(&(tenant, id)) {
            Some(row) if row.status == MessageStatus::Failed => {
                row.status = MessageStatus::Queued;
                row.attempts = 0;
                row.next_attempt_at = now;
                true
            }
            _ => false,
        })
    }

    async fn list_messages(
        &self,
        tenant: TenantId,
        status: Option<MessageStatus>,
        req: PageRequest<MessageId>,
    ) -> StorageResult<Vec<OutboxEntry>> {
        Ok(self
            .lock()
            .outbox
            .iter()
            .rev()
            .filter(|((t, id), r)| {
                *t == tenant && req.after.is_none_or(|a| *id < a) && status.is_none_or(|s| r.status == s)
            })
            .take(req.clamped_limit())
            .map(|(_, r)| r.entry())
            .collect())
    }

    async fn get_message(&self, tenant: TenantId, id: MessageId) -> StorageResult<Option<OutboundMessage>> {
        Ok(self.lock().outbox.get(&(tenant, id)).map(|r| r.message.clone()))
    }
}

#[async_trait]
impl OutcomeRepo for MemoryStorage {
    async fn commit_outcome(&self, tenant: TenantId, outcome: &Outcome) -> StorageResult<Result<(), CommandError>> {
        self.lock().commit(tenant, outcome)
    }
}

#[async_trait]
impl AuthRepo for MemoryStorage {
    async fn tenant_for_host(&self, host: &str) -> StorageResult<Option<TenantId>> {
        Ok(self.lock().hosts.get(host).copied())
    }
    async fn add_tenant_host(&self, tenant: TenantId, host: &str) -> StorageResult<Result<(), CommandError>> {
        let mut db = self.lock();
        if !db.tenants.contains_key(&tenant) {
            return Ok(Err(CommandError::NotFound {
                entity: "tenant",
                id: tenant.as_uuid(),
            }));
        }
        match db.hosts.get(host) {
            Some(t) if *t == tenant => Ok(Ok(())),
            Some(_) => Ok(Err(already("tenant host", &host))),
            None => {
                db.hosts.insert(host.to_owned(), tenant);
                Ok(Ok(()))
            }
        }
    }
    async fn list_tenant_hosts(&self, tenant: TenantId) -> StorageResult<Vec<String>> {
        Ok(self
            .lock()
            .hosts
            .iter()
            .filter(|(_, t)| **t == tenant)
            .map(|(h, _)| h.clone())
            .collect())
    }
    async fn password_hash(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<Option<String>> {
        Ok(self.lock().passwords.get(&(tenant, user)).cloned())
    }
    async fn set_password_hash(
        &self,
        tenant: TenantId,
        user: StaffUserId,
        hash: &str,
        _now: DateTime<Utc>,
    ) -> StorageResult<()> {
        let mut db = self.lock();
        db.require_staff_user(tenant, user)?;
        db.passwords.insert((tenant, user), hash.to_owned());
        db.sessions.retain(|_, s| !(s.tenant_id == tenant && s.user_id == user));
        Ok(())
    }
    async fn insert_staff_session(&self, session: &StaffSession) -> StorageResult<()> {
        let mut db = self.lock();
        db.require_staff_user(session.tenant_id, session.user_id)?;
        if db.sessions.contains_key(&session.token_hash) {
            return Err(StorageError::Invariant(
                "a session token hash was issued twice".to_owned(),
            ));
        }
        db.sessions.insert(session.token_hash, session.clone());
        Ok(())
    }
    async fn staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<StaffSession>> {
        Ok(self
            .lock()
            .sessions
            .get(token)
            .filter(|s| s.tenant_id == tenant)
            .cloned())
    }
    async fn delete_staff_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let mut db = self.lock();
        if db.sessions.get(token).is_some_and(|s| s.tenant_id == tenant) {
            db.sessions.remove(token);
            return Ok(true);
        }
        Ok(false)
    }
    async fn delete_staff_sessions_of(&self, tenant: TenantId, user: StaffUserId) -> StorageResult<u64> {
        let mut db = self.lock();
        let before = db.sessions.len();
        db.sessions.retain(|_, s| !(s.tenant_id == tenant && s.user_id == user));
        Ok((before - db.sessions.len()) as u64)
    }
    async fn delete_expired_staff_sessions(&self, now: DateTime<Utc>) -> StorageResult<u64> {
        let mut db = self.lock();
        let before = db.sessions.len();
        db.sessions.retain(|_, s| s.is_live(now));
        Ok((before - db.sessions.len()) as u64)
    }
    async fn count_sign_in_attempt(
        &self,
        tenant: TenantId,
        key: &str,
        window_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<u32> {
        let mut db = self.lock();
        if !db.tenants.contains_key(&tenant) {
            return Err(StorageError::Invariant(format!(
                "sign-in attempt for unknown tenant {tenant}"
            )));
        }
        let entry = db
            .sign_in_attempts
            .entry((tenant, key.to_owned()))
            .or_insert(AttemptCounter {
                window_start,
                count: 0,
                last_attempt_at: now,
            });
        if entry.window_start == window_start {
            entry.count = entry.count.saturating_add(1);
        } else {
            entry.window_start = window_start;
            entry.count = 1;
        }
        entry.last_attempt_at = now;
        Ok(entry.count)
    }
    async fn purge_expired(&self, now: DateTime<Utc>) -> StorageResult<PurgeReport> {
        let cutoff = now - crate::auth::ATTEMPT_RETENTION;
        let mut db = self.lock();
        let gone = |before: usize, after: usize| (before - after) as u64;
        let before = db.sign_in_attempts.len();
        db.sign_in_attempts.retain(|_, c| c.last_attempt_at >= cutoff);
        let sign_in_attempts = gone(before, db.sign_in_attempts.len());
        let before = db.challenges.len();
        // A day past its expiry, not at once: until then an expired challenge is still found
        // and answers `invalid_code` as expired; afterwards it answers as an unknown one, alike.
        db.challenges.retain(|_, c| c.expires_at >= cutoff);
        let access_challenges = gone(before, db.challenges.len());
        let before = db.contact_sessions.len();
        db.contact_sessions.retain(|_, s| now < s.expires_at);
        let contact_sessions = gone(before, db.contact_sessions.len());
        let before = db.sessions.len();
        db.sessions.retain(|_, s| s.is_live(now));
        let staff_sessions = gone(before, db.sessions.len());
        Ok(PurgeReport {
            sign_in_attempts,
            access_challenges,
            contact_sessions,
            staff_sessions,
        })
    }
}

#[async_trait]
impl NotificationRepo for MemoryStorage {
    async fn list_reminder_records(&self, tenant: TenantId, portal: PortalId) -> StorageResult<Vec<ReminderRecord>> {
        Ok(self
            .lock()
            .reminders
            .iter()
            .filter(|r| r.tenant_id == tenant && r.portal_id == portal)
            .cloned()
            .collect())
    }

    async fn list_active_portals(
        &self,
        after: Option<(TenantId, PortalId)>,
        limit: usize,
    ) -> StorageResult<Vec<(TenantId, PortalId)>> {
        let db = self.lock();
        Ok(db
            .portals
            .iter()
            .filter(|(key, p)| after.is_none_or(|a| **key > a) && p.status == PortalStatus::Active)
            .map(|(key, _)| *key)
            .take(limit.clamp(1, 1000))
            .collect())
    }

    async fn list_pending_digests(
        &self,
        after: Option<(TenantId, ContactId)>,
        limit: usize,
    ) -> StorageResult<Vec<PendingDigest>> {
        let db = self.lock();
        let mut by_contact: BTreeMap<(TenantId, ContactId), PendingDigest> = BTreeMap::new();
        for d in db.digest_items.values() {
            let key = (d.tenant_id, d.contact_id);
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            by_contact
                .entry(key)
                .and_modify(|p| p.oldest = p.oldest.min(d.created_at))
                .or_insert(PendingDigest {
                    tenant_id: d.tenant_id,
                    portal_id: d.portal_id,
                    contact_id: d.contact_id,
                    oldest: d.created_at,
                });
        }
        Ok(by_contact.into_values().take(limit.clamp(1, 1000)).collect())
    }

    async fn list_digest_items(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<DigestItem>> {
        Ok(tenant_rows(&self.lock().digest_items, tenant)
            .filter(|d| d.contact_id == contact)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AccessRepo for MemoryStorage {
    async fn get_access_link(&self, tenant: TenantId, id: AccessLinkId) -> StorageResult<Option<AccessLink>> {
        Ok(self.lock().links.get(&(tenant, id)).cloned())
    }
    async fn get_contact(&self, tenant: TenantId, id: ContactId) -> StorageResult<Option<Contact>> {
        Ok(self.lock().contacts.get(&(tenant, id)).cloned())
    }
    async fn find_access_challenge(
        &self,
        tenant: TenantId,
        token: &TokenHash,
    ) -> StorageResult<Option<AccessChallenge>> {
        Ok(tenant_rows(&self.lock().challenges, tenant)
            .find(|c| c.token_hash == *token)
            .cloned())
    }
    async fn find_access_link(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<Option<AccessLink>> {
        Ok(tenant_rows(&self.lock().links, tenant)
            .find(|l| l.token_hash == *token)
            .cloned())
    }
    async fn list_access_links(&self, tenant: TenantId, contact: ContactId) -> StorageResult<Vec<AccessLink>> {
        let db = self.lock();
        let mut links: Vec<AccessLink> = tenant_rows(&db.links, tenant)
            .filter(|l| l.contact_id == contact)
            .cloned()
            .collect();
        links.sort_by_key(|l| (l.created_at, l.id));
        Ok(links)
    }
    async fn touch_contact_session(
        &self,
        tenant: TenantId,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> StorageResult<Option<ContactSession>> {
        let mut db = self.lock();
        let Some(session) = db.contact_sessions.get(token).filter(|s| s.tenant_id == tenant) else {
            return Ok(None);
        };
        if !db.session_live(session, now) {
            return Ok(None);
        }
        let touched = session.touched(now);
        db.contact_sessions.insert(*token, touched.clone());
        Ok(Some(touched))
    }
    async fn list_contact_sessions(
        &self,
        tenant: TenantId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<ContactSession>> {
        let db = self.lock();
        let mut sessions: Vec<ContactSession> = db
            .contact_sessions
            .values()
            .filter(|s| s.tenant_id == tenant && s.contact_id == contact && db.session_live(s, now))
            .cloned()
            .collect();
        sessions.sort_by_key(|s| (s.created_at, s.token_hash));
        Ok(sessions)
    }
    async fn delete_contact_session(&self, tenant: TenantId, token: &TokenHash) -> StorageResult<bool> {
        let mut db = self.lock();
        if db.contact_sessions.get(token).is_some_and(|s| s.tenant_id == tenant) {
            db.contact_sessions.remove(token);
            return Ok(true);
        }
        Ok(false)
    }
    async fn delete_contact_sessions_of(&self, tenant: TenantId, contact: ContactId) -> StorageResult<u64> {
        let mut db = self.lock();
        let before = db.contact_sessions.len();
        db.contact_sessions
            .retain(|_, s| !(s.tenant_id == tenant && s.contact_id == contact));
        Ok((before - db.contact_sessions.len()) as u64)
    }
}
