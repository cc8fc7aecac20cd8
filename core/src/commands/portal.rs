//! Starting onboarding (ONB-2), the portal lifecycle (ONB-3 to ONB-5), renaming and deleting
//! (ONB-6, ACT-4).

use std::collections::HashMap;

use chrono::Days;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::{LinkMail, link_message, new_link};
use super::task::{derive_statuses, diff_portal};
use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::auth::SecretToken;
use crate::company::Company;
use crate::error::CommandError;
use crate::id::{PortalId, TaskId, TemplateTaskId};
use crate::lifecycle::{PortalStatus, check_move};
use crate::mail::MailKind;
use crate::outcome::{AccessEffect, Outcome, Write};
use crate::policy::{Action, Principal, Resource};
use crate::portal::{Contact, ContactInput, MAX_CONTACTS, Phase, Portal, PortalState};
use crate::task::{ChecklistItem, SurveyQuestion, Task, TaskStatus};
use crate::template::Template;
use crate::tenant::{Tenant, TenantSettings};
use crate::value::Name;

/// A request to start onboarding a company from a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartOnboarding {
    /// The new portal's name.
    pub name: Name,
    /// The client contacts; at most one primary, exactly one when activating at once.
    pub contacts: Vec<ContactInput>,
    /// Go live at once instead of staying in draft.
    #[serde(default)]
    pub activate: bool,
}

/// A request to move a portal through its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransitionRequest {
    /// The status to move to.
    pub to: PortalStatus,
    /// The portal version the caller saw.
    pub expected_version: i64,
    /// Archiving revokes all client access and needs `true` here (ONB-5).
    #[serde(default)]
    pub confirm: bool,
}

pub(crate) fn portal_resource(p: &Portal) -> Resource {
    Resource::Portal {
        tenant: p.tenant_id,
        company: p.company_id,
        portal: p.id,
        status: p.status,
    }
}

pub(crate) fn scope(p: &Portal) -> (Option<crate::id::CompanyId>, Option<PortalId>) {
    (Some(p.company_id), Some(p.id))
}

/// CON-1: no duplicate emails, at most one primary, and exactly one when `activating`.
pub(crate) fn check_contacts<'a>(
    contacts: impl Iterator<Item = (&'a crate::value::Email, bool)>,
    activating: bool,
) -> Result<(), CommandError> {
    let mut primaries = 0;
    let mut seen = std::collections::HashSet::new();
    let mut count = 0;
    for (email, primary) in contacts {
        count += 1;
        if !seen.insert(email.as_str().to_lowercase()) {
            return Err(CommandError::DuplicateContactEmail {
                email: email.to_string(),
            });
        }
        primaries += usize::from(primary);
    }
    if count > MAX_CONTACTS {
        return Err(CommandError::TooMany {
            what: "contacts",
            max: MAX_CONTACTS,
            actual: count,
        });
    }
    if primaries > 1 || (activating && primaries != 1) {
        return Err(CommandError::PrimaryContact { primaries });
    }
    Ok(())
}

/// Starts onboarding: copies the template's phases and tasks into a new portal of `company`,
/// with dependencies re-pointed to the copies (ONB-2). The portal stays in draft unless the
/// request activates it, which then follows activation's rules (ONB-4): every contact gets a
/// link, its token derived from `link_seed`, and an invitation.
pub fn start_onboarding(
    principal: &Principal,
    ctx: &mut Ctx,
    tenant: &Tenant,
    company: &Company,
    template: &Template,
    request: &StartOnboarding,
    link_seed: &SecretToken,
) -> Result<(PortalId, Outcome), CommandError> {
    allow(
        principal,
        Action::CreatePortal,
        &Resource::Company {
            tenant: company.tenant_id,
            company: company.id,
        },
    )?;
    if template.tenant_id != company.tenant_id || tenant.id != company.tenant_id {
        return Err(CommandError::NotFound {
            entity: "template",
            id: template.id.as_uuid(),
        });
    }
    check_contacts(request.contacts.iter().map(|c| (&c.email, c.primary)), request.activate)?;

    let portal = Portal {
        id: ctx.ids.next_id(),
        tenant_id: tenant.id,
        company_id: company.id,
        template_id: Some(template.id),
        name: request.name.clone(),
        status: PortalStatus::Draft,
        version: 1,
        created_at: ctx.now,
        updated_at: ctx.now,
        activated_at: None,
    };
    let task_ids: HashMap<TemplateTaskId, TaskId> = template.tasks().map(|t| (t.id, ctx.ids.next_id())).collect();
    let mut phases = Vec::with_capacity(template.phases.len());
    let mut tasks = Vec::with_capacity(task_ids.len());
    for (pi, tp) in template.phases.iter().enumerate() {
        let phase = Phase {
            id: ctx.ids.next_id(),
            tenant_id: tenant.id,
            portal_id: portal.id,
            position: pi as i32,
            name: tp.name.clone(),
            description: tp.description.clone(),
            version: 1,
        };
        for (ti, tt) in tp.tasks.iter().enumerate() {
            let mut depends_on: Vec<TaskId> = tt.depends_on.iter().filter_map(|d| task_ids.get(d).copied()).collect();
            depends_on.sort();
            tasks.push(Task {
                id: task_ids[&tt.id],
                tenant_id: tenant.id,
                portal_id: portal.id,
                phase_id: phase.id,
                position: ti as i32,
                title: tt.title.clone(),
                description: tt.description.clone(),
                owner: tt.owner,
                evidence: tt.evidence,
                priority: tt.priority,
                due_offset: tt.due_offset,
                due_date: None,
                status: if depends_on.is_empty() {
                    TaskStatus::Pending
                } else {
                    TaskStatus::Blocked
                },
                block_reason: None,
                assignee: None,
                depends_on,
                checklist: tt
                    .checklist
                    .iter()
                    .map(|text| ChecklistItem {
                        id: ctx.ids.next_id(),
                        text: text.clone(),
                        done: false,
                    })
                    .collect(),
                survey: tt
                    .survey
                    .iter()
                    .map(|q| SurveyQuestion {
                        id: ctx.ids.next_id(),
                        ..q.clone()
                    })
                    .collect(),
                completed_at: None,
                completed_by: None,
                completion_reason: None,
                version: 1,
            });
        }
        phases.push(phase);
    }
    let contacts: Vec<Contact> = request
        .contacts
        .iter()
        .map(|c| Contact {
            id: ctx.ids.next_id(),
            tenant_id: tenant.id,
            portal_id: portal.id,
            name: c.name.clone(),
            email: c.email.clone(),
            role: c.role,
            primary: c.primary,
            notifications: crate::notifications::NotificationPreferences::default(),
            version: 1,
            created_at: ctx.now,
        })
        .collect();
    let mut state = PortalState {
        portal,
        phases,
        tasks,
        contacts,
    };
    let mut events = vec![ctx.event(
        principal,
        tenant.id,
        scope(&state.portal),
        EventKind::PortalCreated,
        format!(
            "Onboarding {} started for {} from template {}",
            state.portal.name, company.name, template.name
        ),
        json!({
            "template_id": template.id,
            "template_version": template.version,
            "phases": state.phases.len(),
            "tasks": state.tasks.len(),
            "contacts": state.contacts.len(),
        }),
    )];
    for c in &state.contacts {
        events.push(ctx.event(
            principal,
            tenant.id,
            scope(&state.portal),
            EventKind::ContactAdded,
            format!("Contact {} added", c.email),
            json!({ "contact_id": c.id, "role": c.role, "primary": c.primary }),
        ));
    }
    let mut links = Vec::new();
    let mut messages = Vec::new();
    if request.activate {
        activate(&mut state, &tenant.settings, ctx);
        for contact in &state.contacts {
            let token = link_seed.derive_token(contact.id.as_uuid().as_bytes());
            let link = new_link(ctx, contact, &tenant.link_settings, &token);
            messages.push(link_message(
                ctx,
                &state,
                &company.name,
                contact,
                &link,
                &token,
                MailKind::ContactInvitation,
            ));
            links.push(Write::InsertAccessLink(link));
        }
        events.push(ctx.event(
            principal,
            tenant.id,
            scope(&state.portal),
            EventKind::PortalStatusChanged,
            format!("Portal {} moved from draft to active", state.portal.name),
            json!({ "from": PortalStatus::Draft, "to": PortalStatus::Active, "invitations": links.len() }),
        ));
    }
    state.sort();
    let id = state.portal.id;
    let mut writes = vec![Write::InsertPortal(Box::new(state))];
    writes.extend(links);
    Ok((
        id,
        Outcome {
            writes,
            events,
            messages,
            ..Outcome::default()
        },
    ))
}

/// Activation (ONB-4): the portal goes live, and every task without a due date gets one from its
/// offset, counted from today in the tenant's time zone.
fn activate(state: &mut PortalState, settings: &TenantSettings, ctx: &Ctx) {
    let today = settings.time_zone.today(ctx.now);
    state.portal.status = PortalStatus::Active;
    state.portal.activated_at = Some(ctx.now);
    for t in &mut state.tasks {
        if t.due_date.is_none()
            && let Some(offset) = t.due_offset
        {
            t.due_date = today.checked_add_days(Days::new(u64::from(offset.days())));
        }
    }
}

/// Renames a portal.
pub fn rename_portal(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    expected_version: i64,
    name: Name,
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::EditPortal, &portal_resource(p))?;
    check_version("portal", p.id.as_uuid(), expected_version, p.version)?;
    let portal = Portal {
        name,
        version: p.version + 1,
        updated_at: ctx.now,
        ..p.clone()
    };
    let ev = ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::PortalUpdated,
        format!("Portal {} renamed to {}", p.name, portal.name),
        json!({ "before": p.name, "after": portal.name }),
    );
    Ok(Outcome {
        writes: vec![Write::UpdatePortal {
            portal,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// What a lifecycle move needs beyond the portal.
#[derive(Debug, Clone, Copy)]
pub struct TransitionEnv<'a> {
    /// The tenant's settings (time zone of the due dates).
    pub settings: &'a TenantSettings,
    /// Link expiry and the company name, for the invitations of an activation.
    pub mail: LinkMail<'a>,
    /// On activation each contact's new link token is derived from this seed
    /// ([`SecretToken::derive_token`] over the contact id), so the command needs no RNG.
    pub link_seed: &'a SecretToken,
}

impl<'a> TransitionEnv<'a> {
    /// An environment for tests and tools: the tenant's settings and link settings, `company`
    /// as the company name, and `seed` for the link tokens.
    #[must_use]
    pub const fn new(tenant: &'a Tenant, company: &'a Name, seed: &'a SecretToken) -> Self {
        Self {
            settings: &tenant.settings,
            mail: LinkMail {
                settings: &tenant.link_settings,
                company_name: company,
            },
            link_seed: seed,
        }
    }
}

/// Moves a portal through the lifecycle table (ONB-3). Activation sets due dates (ONB-4), needs
/// exactly one primary contact, and issues every contact a link and mails it (an invitation the
/// first time, a new link on a re-activation after a restore); completion needs every task
/// completed; archiving needs `confirm` and revokes all client access (ONB-5); restore returns to
/// draft.
pub fn transition_portal(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    env: TransitionEnv<'_>,
    request: TransitionRequest,
) -> Result<Outcome, CommandError> {
    let settings = env.settings;
    let p = &state.portal;
    allow(principal, Action::TransitionPortal, &portal_resource(p))?;
    check_version("portal", p.id.as_uuid(), request.expected_version, p.version)?;
    let from = p.status;
    let to = request.to;
    check_move(from, to)?;
    let mut next = state.clone();
    let mut out = Outcome::default();
    let mut invitations = Vec::new();
    let mut details = json!({ "from": from, "to": to });
    match to {
        PortalStatus::Active => {
            check_contacts(state.contacts.iter().map(|c| (&c.email, c.primary)), true)?;
            activate(&mut next, settings, ctx);
            let dated = next
                .tasks
                .iter()
                .zip(&state.tasks)
                .filter(|(a, b)| a.due_date != b.due_date)
                .count();
            details["due_dates_set"] = json!(dated);
            let kind = if p.activated_at.is_some() {
                MailKind::AccessLink
            } else {
                MailKind::ContactInvitation
            };
            for contact in &state.contacts {
                let token = env.link_seed.derive_token(contact.id.as_uuid().as_bytes());
                let link = new_link(ctx, contact, env.mail.settings, &token);
                let message = link_message(ctx, &next, env.mail.company_name, contact, &link, &token, kind);
                out.messages.push(message);
                invitations.push(Write::InsertAccessLink(link));
            }
            details["invitations"] = json!(state.contacts.len());
        }
        PortalStatus::Completed => {
            let incomplete = state.tasks.iter().filter(|t| !t.is_completed()).count();
            if incomplete > 0 {
                return Err(CommandError::TasksIncomplete { incomplete });
            }
            next.portal.status = to;
        }
        PortalStatus::Archived => {
            if !request.confirm {
                return Err(CommandError::ConfirmationRequired {
                    expected: "`confirm: true`: archiving revokes every client session and link of this portal"
                        .to_owned(),
                });
            }
            next.portal.status = to;
            out.effects.push(AccessEffect::RevokeAllClientAccess {
                portal_id: p.id,
                at: ctx.now,
            });
            details["revoked"] = json!("all client sessions and access links of this portal");
        }
        PortalStatus::Draft | PortalStatus::Converted => next.portal.status = to,
    }
    next.portal.version = p.version + 1;
    next.portal.updated_at = ctx.now;
    let mut writes = vec![Write::UpdatePortal {
        portal: next.portal.clone(),
        expected_version: request.expected_version,
    }];
    derive_statuses(&mut next.tasks);
    writes.extend(diff_portal(state, &next));
    writes.extend(invitations);
    out.writes = writes;
    out.events.push(ctx.event(
        principal,
        p.tenant_id,
        scope(p),
        EventKind::PortalStatusChanged,
        format!("Portal {} moved from {from} to {to}", p.name),
        details,
    ));
    Ok(out)
}

/// Deletes a portal and everything in it (ONB-6). `confirmation` must be the portal's exact name.
/// The content of the portal's events is erased, each kept as a tombstone, and a tenant-level
/// audit event records the delete (ACT-4).
pub fn delete_portal(
    principal: &Principal,
    ctx: &mut Ctx,
    state: &PortalState,
    confirmation: &str,
) -> Result<Outcome, CommandError> {
    let p = &state.portal;
    allow(principal, Action::DeletePortal, &portal_resource(p))?;
    if confirmation != p.name.as_str() {
        return Err(CommandError::ConfirmationRequired {
            expected: "the portal's exact name as the confirmation value".to_owned(),
        });
    }
    let audit = ctx.event(
        principal,
        p.tenant_id,
        (Some(p.company_id), None),
        EventKind::PortalDeleted,
        format!("Portal {} deleted", p.name),
        json!({
            "portal_id": p.id,
            "name": p.name,
            "status": p.status,
            "tasks": state.tasks.len(),
            "contacts": state.contacts.len(),
        }),
    );
    Ok(Outcome {
        writes: vec![
            Write::EraseEventsOfPortal {
                portal_id: p.id,
                erased_by: audit.id,
            },
            Write::DeletePortal { id: p.id },
        ],
        events: vec![audit],
        effects: vec![AccessEffect::RevokeAllClientAccess {
            portal_id: p.id,
            at: ctx.now,
        }],
        ..Outcome::default()
    })
}
