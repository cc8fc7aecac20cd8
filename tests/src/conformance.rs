//! The conformance scenarios. Each takes a fresh, migrated, empty store and panics on the first
//! behaviour that differs from the contract of `portal_core::storage`.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use portal_core::CommandError;
use portal_core::activity::{ActivityEvent, EventKind};
use portal_core::auth::{SIGN_IN_WINDOW_MINUTES, STAFF_SESSION_LIFETIME, SecretToken, StaffSession, sign_in_window};
use portal_core::commands::contact::ContactPatch;
use portal_core::commands::draft::{TaskInput, TaskPatch};
use portal_core::commands::portal::{StartOnboarding, TransitionRequest};
use portal_core::commands::{self, Ctx};
use portal_core::crypto::Sealed;
use portal_core::id::{ContactId, DigestItemId, EventId, MessageId, PortalId, StaffUserId, TaskId, TenantId};
use portal_core::lifecycle::PortalStatus;
use portal_core::mail::{ClaimedMessage, MailKind, MessageSecret, MessageStatus, OutboxEntry, SecretText, SentMark};
use portal_core::notifications::{
    Delivery, DigestItem, NotificationPreferences, NotificationSettings, PendingDigest, ReminderCadence,
    ReminderReason, ReminderRecord, Topic,
};
use portal_core::outcome::{OutboundMessage, Outcome, Write};
use portal_core::policy::Principal;
use portal_core::portal::{Contact, ContactInput, ContactRole, PortalState};
use portal_core::service::{Engine, ServiceError, ServiceResult};
use portal_core::storage::{
    ActivityFilter, AssignedTask, Clock, PageRequest, PortalFilter, PortalTaskCounts, Storage, StorageError,
};
use portal_core::task::{EvidenceType, TaskOwner, TaskStatus};
use portal_core::tenant::{Branding, LinkSettings, Permission, PermissionSet};
use portal_core::value::{CommentBody, Description, Reason, Title};

use crate::fixtures::{self, email, name};
use crate::harness::engine;

fn code(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::Command(c) => c.code(),
        ServiceError::Storage(s) => panic!("storage failed: {s}"),
    }
}

async fn state(engine: &Engine, admin: &Principal, portal: PortalId) -> PortalState {
    engine.load_portal(admin, portal).await.expect("portal loads")
}

fn task_by_title<'s>(s: &'s PortalState, title: &str) -> &'s portal_core::task::Task {
    s.tasks
        .iter()
        .find(|t| t.title.as_str() == title)
        .unwrap_or_else(|| panic!("task {title}"))
}

/// Tenants, roles and staff users round-trip; emails and role names are unique per tenant.
pub async fn tenants_roles_and_staff(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    assert_eq!(
        storage.get_tenant(tenant.id).await.expect("storage"),
        Some(tenant.clone())
    );
    let roles = storage.list_roles(tenant.id).await.expect("storage");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].permissions, PermissionSet::all());
    let Principal::Staff(p) = &admin else {
        panic!("a staff principal")
    };
    assert_eq!(p.permissions, PermissionSet::all());

    let perms: PermissionSet = [Permission::ReadOnboarding].into_iter().collect();
    let viewer = engine.create_role(&admin, name("Viewer"), perms).await.expect("role");
    assert_eq!(
        storage
            .get_role(tenant.id, viewer)
            .await
            .expect("storage")
            .map(|r| r.permissions),
        Some(perms)
    );
    let dup = engine
        .create_role(&admin, name("Viewer"), perms)
        .await
        .expect_err("duplicate role name");
    assert_eq!(code(&dup), "already_exists");

    let tech = engine
        .create_staff_user(&admin, email("tech@acme.example.com"), name("Tess Tech"), &[viewer])
        .await
        .expect("user");
    let again = engine
        .create_staff_user(&admin, email("tech@acme.example.com"), name("Tess Again"), &[viewer])
        .await
        .expect_err("duplicate email");
    assert_eq!(code(&again), "already_exists");
    let u = storage
        .get_staff_user(tenant.id, tech)
        .await
        .expect("storage")
        .expect("user");
    assert_eq!(u.roles, vec![viewer]);
    assert_eq!(
        storage
            .find_staff_user_by_email(tenant.id, &u.email)
            .await
            .expect("storage"),
        Some(u.clone())
    );
    let tech_principal = engine
        .staff_principal(tenant.id, tech)
        .await
        .expect("storage")
        .expect("principal");
    let Principal::Staff(tp) = &tech_principal else {
        panic!("a staff principal")
    };
    assert_eq!(tp.permissions, perms);

    let all = storage
        .list_staff_users(tenant.id, PageRequest::first(10))
        .await
        .expect("storage");
    assert_eq!(all.len(), 2);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let second = storage
        .list_staff_users(
            tenant.id,
            PageRequest {
                after: Some(all[0].id),
                limit: 10,
            },
        )
        .await
        .expect("storage");
    assert_eq!(second, all[1..].to_vec());

    // Tenant settings: compare-and-set on the tenant's version.
    let mut settings = tenant.settings.clone();
    settings.billable_default = false;
    assert_eq!(tenant.link_settings.access_link_expiry_days, 30, "the default");
    let too_long = LinkSettings {
        access_link_expiry_days: 366,
    };
    let e = engine
        .update_tenant(
            &admin,
            tenant.version,
            name("Acme IT"),
            settings.clone(),
            Some(too_long),
            None,
        )
        .await
        .expect_err("out of range");
    assert_eq!(code(&e), "invalid_value");
    let links = LinkSettings {
        access_link_expiry_days: 14,
    };
    engine
        .update_tenant(
            &admin,
            tenant.version,
            name("Acme IT"),
            settings.clone(),
            Some(links),
            None,
        )
        .await
        .expect("settings");
    let stale = engine
        .update_tenant(&admin, tenant.version, name("Acme IT 2"), settings, None, None)
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    let t = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(
        (t.name.as_str(), t.version, t.settings.billable_default),
        ("Acme IT", tenant.version + 1, false)
    );
    assert_eq!(t.link_settings, links, "the link settings round-trip");
}

/// Nothing of one tenant is visible or changeable through another's id space.
pub async fn tenant_isolation(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (a, admin_a) = fixtures::tenant(&engine, "alpha").await;
    let (b, admin_b) = fixtures::tenant(&engine, "beta").await;
    let (company, template, portal) = fixtures::portal(&engine, &admin_a, &fixtures::small_template(), true).await;
    let st = state(&engine, &admin_a, portal).await;
    let task = st.tasks[0].id;

    assert!(storage.get_company(b.id, company).await.expect("storage").is_none());
    assert!(storage.get_template(b.id, template).await.expect("storage").is_none());
    assert!(storage.get_portal(b.id, portal).await.expect("storage").is_none());
    assert!(storage.load_portal(b.id, portal).await.expect("storage").is_none());
    assert!(
        storage
            .list_comments_for_task(b.id, task)
            .await
            .expect("storage")
            .is_empty()
    );
    assert!(
        storage
            .list_portals(b.id, PortalFilter::default(), PageRequest::first(50))
            .await
            .expect("storage")
            .is_empty()
    );
    assert!(
        storage
            .list_companies(b.id, PageRequest::first(50))
            .await
            .expect("storage")
            .is_empty()
    );
    assert!(
        storage
            .list_templates(b.id, PageRequest::first(50))
            .await
            .expect("storage")
            .is_empty()
    );
    let b_events = storage
        .list_activity(b.id, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage");
    assert!(b_events.iter().all(|e| e.tenant_id == b.id));
    let noop = |_: &PortalState| -> Result<Outcome, CommandError> { Ok(Outcome::default()) };
    assert!(
        storage
            .modify_portal(b.id, portal, &noop)
            .await
            .expect("storage")
            .is_none()
    );

    // Through the engine, B's admin gets "not found" for A's ids, exactly like unknown ids.
    let e = engine.load_portal(&admin_b, portal).await.expect_err("other tenant");
    assert_eq!(code(&e), "not_found");
    let e = engine
        .complete_task(&admin_b, portal, task, 1, None)
        .await
        .expect_err("other tenant");
    assert_eq!(code(&e), "not_found");
    let e = engine.get_company(&admin_b, company).await.expect_err("other tenant");
    assert_eq!(code(&e), "not_found");

    // A commit that carries a row of another tenant is refused as a broken invariant, and
    // writes nothing.
    let mut ctx = Ctx::new(chrono::Utc::now(), [9; 16]);
    let (_, outcome) = commands::admin::create_company(&admin_a, &mut ctx, name("Sneaky")).expect("command");
    let err = storage
        .commit_outcome(b.id, &outcome)
        .await
        .expect_err("foreign rows refused");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    assert_eq!(
        storage
            .list_companies(a.id, PageRequest::first(50))
            .await
            .expect("storage")
            .len(),
        1
    );
}

/// Companies and sites: create, read, page, compare-and-set, delete.
pub async fn companies_and_sites(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            engine
                .create_company(&admin, name(&format!("Client {i}")))
                .await
                .expect("company")
                .id,
        );
    }
    let page1 = storage
        .list_companies(tenant.id, PageRequest::first(2))
        .await
        .expect("storage");
    let page2 = storage
        .list_companies(
            tenant.id,
            PageRequest {
                after: Some(page1[1].id),
                limit: 2,
            },
        )
        .await
        .expect("storage");
    let page3 = storage
        .list_companies(
            tenant.id,
            PageRequest {
                after: Some(page2[1].id),
                limit: 2,
            },
        )
        .await
        .expect("storage");
    let seen: Vec<_> = page1.iter().chain(&page2).chain(&page3).map(|c| c.id).collect();
    ids.sort();
    assert_eq!(seen, ids);

    let company = storage
        .get_company(tenant.id, ids[0])
        .await
        .expect("storage")
        .expect("company");
    let mut ctx = engine.ctx();
    let update =
        commands::admin::update_company(&admin, &mut ctx, &company, company.version, name("Renamed")).expect("cmd");
    storage
        .commit_outcome(tenant.id, &update)
        .await
        .expect("storage")
        .expect("committed");
    let stale = commands::admin::update_company(&admin, &mut engine.ctx(), &company, company.version, name("Again"))
        .expect("cmd");
    let r = storage.commit_outcome(tenant.id, &stale).await.expect("storage");
    assert!(
        matches!(
            r,
            Err(CommandError::Stale {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        storage
            .get_company(tenant.id, company.id)
            .await
            .expect("storage")
            .map(|c| c.name.to_string()),
        Some("Renamed".into())
    );

    let site = engine
        .create_site(
            &admin,
            company.id,
            name("HQ"),
            Description::parse("1 Main St").expect("addr"),
        )
        .await
        .expect("site");
    assert_eq!(
        storage.get_site(tenant.id, site.id).await.expect("storage"),
        Some(site.clone())
    );
    assert_eq!(
        storage
            .list_sites_for_company(tenant.id, company.id)
            .await
            .expect("storage"),
        vec![site.clone()]
    );
    let upd = commands::admin::update_site(
        &admin,
        &mut engine.ctx(),
        &site,
        1,
        name("Head office"),
        site.address.clone(),
    )
    .expect("cmd");
    storage
        .commit_outcome(tenant.id, &upd)
        .await
        .expect("storage")
        .expect("committed");
    let del_stale = commands::admin::delete_site(&admin, &mut engine.ctx(), &site, 1).expect("cmd");
    assert!(matches!(
        storage.commit_outcome(tenant.id, &del_stale).await.expect("storage"),
        Err(CommandError::Stale { .. })
    ));
    let current = storage
        .get_site(tenant.id, site.id)
        .await
        .expect("storage")
        .expect("site");
    let del = commands::admin::delete_site(&admin, &mut engine.ctx(), &current, current.version).expect("cmd");
    storage
        .commit_outcome(tenant.id, &del)
        .await
        .expect("storage")
        .expect("committed");
    assert!(storage.get_site(tenant.id, site.id).await.expect("storage").is_none());
}

/// A template is stored and read back as the same document; replacing is compare-and-set and
/// never touches portals started from it.
pub async fn templates_and_copy_semantics(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let input = fixtures::small_template();
    let mut ctx = engine.ctx();
    let (id, outcome) = commands::template::create_template(&admin, &mut ctx, &input).expect("valid template");
    storage
        .commit_outcome(tenant.id, &outcome)
        .await
        .expect("storage")
        .expect("committed");
    let Some(Write::InsertTemplate(written)) = outcome.writes.first() else {
        panic!("insert")
    };
    let read = storage
        .get_template(tenant.id, id)
        .await
        .expect("storage")
        .expect("template");
    assert_eq!(&read, written, "a template reads back exactly as written");
    assert_eq!(
        storage
            .list_templates(tenant.id, PageRequest::first(10))
            .await
            .expect("storage"),
        vec![read.clone()]
    );

    let company = engine.create_company(&admin, name("Client")).await.expect("company");
    let portal = engine
        .start_onboarding(
            &admin,
            company.id,
            id,
            &commands::portal::StartOnboarding {
                name: name("Onboarding"),
                contacts: fixtures::contacts(),
                activate: false,
            },
        )
        .await
        .expect("started");
    let before = state(&engine, &admin, portal).await;
    assert_eq!(before.tasks.len(), 7);
    assert_eq!(before.phases.len(), 3);
    // Dependencies point at the copies, never at template tasks.
    let ids: std::collections::HashSet<TaskId> = before.tasks.iter().map(|t| t.id).collect();
    assert!(before.tasks.iter().flat_map(|t| &t.depends_on).all(|d| ids.contains(d)));
    assert_eq!(
        task_by_title(&before, "Sign the master services agreement").status,
        TaskStatus::Blocked
    );
    assert_eq!(task_by_title(&before, "Kick-off meeting").status, TaskStatus::Pending);

    let mut changed = input.clone();
    changed.phases.remove(2);
    changed.phases[0].tasks[0].title = Title::parse("A different kick-off").expect("title");
    engine
        .replace_template(&admin, id, read.version, &changed)
        .await
        .expect("replaced");
    let stale = engine
        .replace_template(&admin, id, read.version, &changed)
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    let t2 = storage
        .get_template(tenant.id, id)
        .await
        .expect("storage")
        .expect("template");
    assert_eq!(t2.phases.len(), 2);
    assert_eq!(
        t2.phases[0].tasks[0].id, read.phases[0].tasks[0].id,
        "task ids are kept by key"
    );
    assert_eq!(
        state(&engine, &admin, portal).await,
        before,
        "the portal did not follow the template"
    );

    engine.delete_template(&admin, id, t2.version).await.expect("deleted");
    assert!(storage.get_template(tenant.id, id).await.expect("storage").is_none());
    assert_eq!(
        state(&engine, &admin, portal).await,
        before,
        "the portal outlives its template"
    );
}

/// Draft → active → completed → converted → archived → draft, with every refusal named and every
/// move logged.
pub async fn portal_lifecycle(storage: Arc<dyn Storage>) {
    let (engine, clock) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;
    assert_eq!(s.portal.status, PortalStatus::Draft);
    assert!(s.tasks.iter().all(|t| t.due_date.is_none()));

    let bad = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Completed,
                expected_version: 1,
                confirm: false,
            },
        )
        .await
        .expect_err("draft → completed is not allowed");
    assert!(matches!(
        bad.command(),
        Some(CommandError::IllegalTransition {
            from: PortalStatus::Draft,
            to: PortalStatus::Completed
        })
    ));

    engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Active,
                expected_version: 1,
                confirm: false,
            },
        )
        .await
        .expect("activated");
    let s = state(&engine, &admin, portal).await;
    assert_eq!((s.portal.status, s.portal.version), (PortalStatus::Active, 2));
    // 2026-03-02 in Amsterdam + offset.
    let kickoff = task_by_title(&s, "Kick-off meeting");
    assert_eq!(kickoff.due_date.map(|d| d.to_string()), Some("2026-03-04".to_owned()));

    let stale = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Completed,
                expected_version: 1,
                confirm: false,
            },
        )
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    let open = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Completed,
                expected_version: 2,
                confirm: false,
            },
        )
        .await
        .expect_err("tasks open");
    assert!(matches!(
        open.command(),
        Some(CommandError::TasksIncomplete { incomplete: 7 })
    ));

    // Complete every task in dependency order, as staff (client tasks need a reason).
    let reason = Reason::parse("Done on the client's behalf during the call").expect("reason");
    for _ in 0..7 {
        let s = state(&engine, &admin, portal).await;
        let next = s
            .tasks
            .iter()
            .find(|t| t.status == TaskStatus::Pending)
            .expect("a pending task");
        let r = (next.owner == TaskOwner::Client).then(|| reason.clone());
        engine
            .complete_task(&admin, portal, next.id, next.version, r)
            .await
            .expect("completed");
        clock.advance(Duration::hours(1));
    }
    let s = state(&engine, &admin, portal).await;
    assert!(s.tasks.iter().all(|t| t.status == TaskStatus::Completed));
    assert_eq!(
        s.progress(tenant.settings.time_zone.today(chrono::Utc::now())).percent,
        100
    );

    for (to, confirm) in [(PortalStatus::Completed, false), (PortalStatus::Converted, false)] {
        let v = state(&engine, &admin, portal).await.portal.version;
        engine
            .transition_portal(
                &admin,
                portal,
                TransitionRequest {
                    to,
                    expected_version: v,
                    confirm,
                },
            )
            .await
            .expect("moved");
    }
    let v = state(&engine, &admin, portal).await.portal.version;
    let unconfirmed = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Archived,
                expected_version: v,
                confirm: false,
            },
        )
        .await
        .expect_err("archive needs confirmation");
    assert_eq!(code(&unconfirmed), "confirmation_required");
    let archived = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Archived,
                expected_version: v,
                confirm: true,
            },
        )
        .await
        .expect("archived");
    assert_eq!(
        archived.effects.len(),
        1,
        "archiving carries the revocation of client access"
    );
    engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Draft,
                expected_version: v + 1,
                confirm: false,
            },
        )
        .await
        .expect("restored");

    let filter = ActivityFilter {
        portal: Some(portal),
        kinds: vec![EventKind::PortalStatusChanged],
    };
    let moves = storage
        .list_activity(tenant.id, &filter, PageRequest::first(50))
        .await
        .expect("storage");
    let seen: Vec<(String, String)> = moves
        .iter()
        .rev()
        .map(|e| {
            (
                e.details["from"].as_str().unwrap_or("").to_owned(),
                e.details["to"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("draft", "active"),
        ("active", "completed"),
        ("completed", "converted"),
        ("converted", "archived"),
        ("archived", "draft"),
    ];
    assert_eq!(
        seen,
        expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    );
}

/// Dependencies block and unblock; reopening re-blocks open dependents; manual blocks; versions.
pub async fn task_statuses_and_dependencies(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (_, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let kickoff = task_by_title(&s, "Kick-off meeting").clone();
    let msa = task_by_title(&s, "Sign the master services agreement").clone();

    let blocked = engine
        .complete_task(
            &admin,
            portal,
            msa.id,
            msa.version,
            Some(Reason::parse("x").expect("r")),
        )
        .await
        .expect_err("blocked");
    assert!(matches!(
        blocked.command(),
        Some(CommandError::TaskBlocked {
            incomplete_dependencies: 1,
            ..
        })
    ));

    engine
        .complete_task(&admin, portal, kickoff.id, kickoff.version, None)
        .await
        .expect("kick-off done");
    let s = state(&engine, &admin, portal).await;
    assert_eq!(
        task_by_title(&s, "Sign the master services agreement").status,
        TaskStatus::Pending
    );
    let again = engine
        .complete_task(&admin, portal, kickoff.id, kickoff.version, None)
        .await
        .expect_err("stale");
    assert_eq!(code(&again), "stale_version");

    // Manual block and unblock.
    let msa = task_by_title(&s, "Sign the master services agreement").clone();
    let reason = Reason::parse("Waiting for the legal team").expect("reason");
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::block_task(&admin, ctx, st, msa.id, msa.version, &reason)
        })
        .await
        .expect("blocked by hand");
    let s = state(&engine, &admin, portal).await;
    let msa = task_by_title(&s, "Sign the master services agreement").clone();
    assert_eq!(
        (msa.status, msa.block_reason.as_ref().map(Reason::as_str)),
        (TaskStatus::Blocked, Some("Waiting for the legal team"))
    );
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::unblock_task(&admin, ctx, st, msa.id, msa.version)
        })
        .await
        .expect("unblocked");
    let s = state(&engine, &admin, portal).await;
    let msa = task_by_title(&s, "Sign the master services agreement").clone();
    assert_eq!(msa.status, TaskStatus::Pending);

    // Start, then complete on the client's behalf (reason required and recorded).
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::start_task(&admin, ctx, st, msa.id, msa.version)
        })
        .await
        .expect("started");
    let msa = task_by_title(
        &state(&engine, &admin, portal).await,
        "Sign the master services agreement",
    )
    .clone();
    assert_eq!(msa.status, TaskStatus::InProgress);
    let no_reason = engine
        .complete_task(&admin, portal, msa.id, msa.version, None)
        .await
        .expect_err("reason needed");
    assert_eq!(code(&no_reason), "reason_required");
    engine
        .complete_task(
            &admin,
            portal,
            msa.id,
            msa.version,
            Some(Reason::parse("Signed on paper").expect("r")),
        )
        .await
        .expect("completed for the client");
    let s = state(&engine, &admin, portal).await;
    let msa = task_by_title(&s, "Sign the master services agreement").clone();
    assert_eq!(
        msa.completion_reason.as_ref().map(Reason::as_str),
        Some("Signed on paper")
    );
    assert!(msa.completed_by.is_some() && msa.completed_at.is_some());
    assert_eq!(task_by_title(&s, "Share admin credentials").status, TaskStatus::Pending);
    assert_eq!(task_by_title(&s, "Environment survey").status, TaskStatus::Pending);

    // Reopening the kick-off re-blocks nothing completed, and the MSA (completed) stays completed;
    // reopening the MSA blocks its two open dependents.
    let kickoff = task_by_title(&s, "Kick-off meeting").clone();
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::reopen_task(&admin, ctx, st, kickoff.id, kickoff.version)
        })
        .await
        .expect("reopened");
    let s = state(&engine, &admin, portal).await;
    assert_eq!(task_by_title(&s, "Kick-off meeting").status, TaskStatus::Pending);
    assert_eq!(
        task_by_title(&s, "Sign the master services agreement").status,
        TaskStatus::Completed
    );
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::reopen_task(&admin, ctx, st, msa.id, msa.version)
        })
        .await
        .expect("reopened");
    let s = state(&engine, &admin, portal).await;
    assert_eq!(
        task_by_title(&s, "Sign the master services agreement").status,
        TaskStatus::Blocked
    );
    assert_eq!(task_by_title(&s, "Share admin credentials").status, TaskStatus::Blocked);
    assert_eq!(task_by_title(&s, "Environment survey").status, TaskStatus::Blocked);
    assert!(
        task_by_title(&s, "Sign the master services agreement")
            .completion_reason
            .is_none()
    );
}

/// Draft editing: phases and tasks added, edited, moved and deleted; the graph re-checked.
pub async fn draft_editing(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (_, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;

    let outcome = engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::add_phase(&admin, ctx, st, name("Security review"), Description::empty(), Some(1))
                .map(|(_, o)| o)
        })
        .await
        .expect("phase added");
    let Some(Write::InsertPhase(phase)) = outcome.writes.iter().find(|w| matches!(w, Write::InsertPhase(_))) else {
        panic!("phase insert")
    };
    let s2 = state(&engine, &admin, portal).await;
    assert_eq!(
        s2.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Kick-off", "Security review", "Discovery", "Go-live"]
    );
    assert_eq!(s2.phases.iter().map(|p| p.position).collect::<Vec<_>>(), [0, 1, 2, 3]);

    let cutover = task_by_title(&s, "Cut over mail").id;
    let input = TaskInput {
        title: Title::parse("Review firewall rules").expect("title"),
        description: Description::empty(),
        owner: TaskOwner::Msp,
        evidence: EvidenceType::None,
        priority: portal_core::value::Priority::Critical,
        due_offset: None,
        checklist: vec![],
        depends_on: vec![cutover],
        survey: vec![],
    };
    let pid = phase.id;
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::add_task(&admin, ctx, st, pid, &input, None).map(|(_, o)| o)
        })
        .await
        .expect("task added");
    let s3 = state(&engine, &admin, portal).await;
    let review = task_by_title(&s3, "Review firewall rules").clone();
    assert_eq!(review.status, TaskStatus::Blocked);

    // A cycle is refused and nothing changes.
    let cut = task_by_title(&s3, "Cut over mail").clone();
    let patch = TaskPatch {
        depends_on: Some(vec![review.id]),
        ..TaskPatch::default()
    };
    let cyc = engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::update_task(&admin, ctx, st, cut.id, cut.version, &patch)
        })
        .await
        .expect_err("cycle");
    assert_eq!(code(&cyc), "dependency_cycle");
    assert_eq!(state(&engine, &admin, portal).await, s3);

    // Deleting the cut-over removes the edge: the review task is unblocked.
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::delete_task(&admin, ctx, st, cut.id)
        })
        .await
        .expect("deleted");
    let s4 = state(&engine, &admin, portal).await;
    let review = task_by_title(&s4, "Review firewall rules").clone();
    assert!(review.depends_on.is_empty());
    assert_eq!(review.status, TaskStatus::Pending);
    assert!(s4.task(cut.id).is_none());

    // Move the review task to the top of the first phase, then reorder phases.
    let first = s4.phases[0].id;
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::move_task(&admin, ctx, st, review.id, first, 0)
        })
        .await
        .expect("moved");
    let s5 = state(&engine, &admin, portal).await;
    assert_eq!(s5.tasks[0].id, review.id);
    let order: Vec<_> = s5.phases.iter().rev().map(|p| p.id).collect();
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::reorder_phases(&admin, ctx, st, &order)
        })
        .await
        .expect("reordered");
    let s6 = state(&engine, &admin, portal).await;
    assert_eq!(s6.phases.iter().map(|p| p.id).collect::<Vec<_>>(), order);
    assert_eq!(
        s6.portal.version,
        s5.portal.version + 1,
        "the phase order is the portal's: a reorder moves its version"
    );
    let bad = engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::reorder_phases(&admin, ctx, st, &order[1..])
        })
        .await
        .expect_err("incomplete order");
    assert_eq!(code(&bad), "bad_order");

    // Delete a phase with its tasks.
    let discovery = s6
        .phases
        .iter()
        .find(|p| p.name.as_str() == "Discovery")
        .expect("phase")
        .id;
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::delete_phase(&admin, ctx, st, discovery)
        })
        .await
        .expect("phase deleted");
    let s7 = state(&engine, &admin, portal).await;
    assert!(s7.tasks.iter().all(|t| t.phase_id != discovery));
    assert_eq!(s7.phases.len(), 3);

    // Edits of structure are refused once active.
    engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Active,
                expected_version: s7.portal.version,
                confirm: false,
            },
        )
        .await
        .expect("active");
    let late = engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::draft::delete_phase(&admin, ctx, st, first)
        })
        .await
        .expect_err("not a draft");
    assert_eq!(code(&late), "wrong_portal_status");
}

/// Assignment, all-or-nothing bulk reassignment, checklist and comments.
pub async fn assignment_checklist_comments(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let tech = engine
        .create_staff_user(&admin, email("tech@acme.example.com"), name("Tess Tech"), &[])
        .await
        .expect("user");
    let s = state(&engine, &admin, portal).await;
    let ids: Vec<TaskId> = s.tasks.iter().map(|t| t.id).collect();

    let bogus = TaskId::from_uuid(uuid::Uuid::from_u128(42));
    let mut with_bogus = ids[..3].to_vec();
    with_bogus.push(bogus);
    let e = engine
        .bulk_reassign(&admin, portal, &with_bogus, Some(tech))
        .await
        .expect_err("unknown task");
    assert_eq!(code(&e), "not_found");
    assert_eq!(state(&engine, &admin, portal).await, s, "nothing changed");

    engine
        .bulk_reassign(&admin, portal, &ids[..3], Some(tech))
        .await
        .expect("reassigned");
    let s2 = state(&engine, &admin, portal).await;
    assert!(s2.tasks[..3].iter().all(|t| t.assignee == Some(tech)));
    assert!(s2.tasks[3..].iter().all(|t| t.assignee.is_none()));

    let t0 = s2.tasks[0].clone();
    engine
        .assign_task(&admin, portal, t0.id, t0.version, None)
        .await
        .expect("unassigned");
    let e = engine
        .assign_task(&admin, portal, t0.id, t0.version, None)
        .await
        .expect_err("stale");
    assert_eq!(code(&e), "stale_version");

    let s3 = state(&engine, &admin, portal).await;
    let kickoff = task_by_title(&s3, "Kick-off meeting").clone();
    let item = kickoff.checklist[1].id;
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::set_checklist_item(&admin, ctx, st, kickoff.id, kickoff.version, item, true)
        })
        .await
        .expect("ticked");
    let k = task_by_title(&state(&engine, &admin, portal).await, "Kick-off meeting").clone();
    assert_eq!(k.checklist.iter().map(|i| i.done).collect::<Vec<_>>(), [false, true]);

    for (body, q) in [("When can we start?", true), ("Next Monday works.", false)] {
        engine
            .portal_command(&admin, portal, |ctx, st| {
                commands::task::add_comment(&admin, ctx, st, k.id, CommentBody::parse(body).expect("body"), q)
                    .map(|(_, o)| o)
            })
            .await
            .expect("commented");
    }
    let comments = storage.list_comments_for_task(tenant.id, k.id).await.expect("storage");
    assert_eq!(
        comments
            .iter()
            .map(|c| (c.body.as_str(), c.is_question))
            .collect::<Vec<_>>(),
        [("When can we start?", true), ("Next Monday works.", false)]
    );
    let kinds: Vec<EventKind> = storage
        .list_activity(
            tenant.id,
            &ActivityFilter {
                portal: Some(portal),
                kinds: vec![EventKind::QuestionAsked, EventKind::CommentAdded],
            },
            PageRequest::first(10),
        )
        .await
        .expect("storage")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::CommentAdded, EventKind::QuestionAsked]);
}

/// Deleting a portal removes everything in it, tombstones its events and records the delete.
pub async fn delete_portal_keeps_tombstones(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let task = s.tasks[0].clone();
    engine
        .portal_command(&admin, portal, |ctx, st| {
            commands::task::add_comment(&admin, ctx, st, task.id, CommentBody::parse("hello").expect("b"), false)
                .map(|(_, o)| o)
        })
        .await
        .expect("comment");
    let filter = ActivityFilter {
        portal: Some(portal),
        kinds: vec![],
    };
    let before = storage
        .list_activity(tenant.id, &filter, PageRequest::first(100))
        .await
        .expect("storage");
    assert!(before.len() >= 4);

    let wrong = engine
        .delete_portal(&admin, portal, "yes")
        .await
        .expect_err("needs the name");
    assert_eq!(code(&wrong), "confirmation_required");
    assert!(storage.get_portal(tenant.id, portal).await.expect("storage").is_some());

    let outcome = engine
        .delete_portal(&admin, portal, "Client Co onboarding")
        .await
        .expect("deleted");
    let audit_id = outcome.events[0].id;
    assert!(storage.get_portal(tenant.id, portal).await.expect("storage").is_none());
    assert!(storage.load_portal(tenant.id, portal).await.expect("storage").is_none());
    assert!(
        storage
            .list_comments_for_task(tenant.id, task.id)
            .await
            .expect("storage")
            .is_empty()
    );

    let after = storage
        .list_activity(tenant.id, &filter, PageRequest::first(100))
        .await
        .expect("storage");
    assert_eq!(after.len(), before.len(), "every event survives as a tombstone");
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (a.id, a.kind, a.at, a.actor.kind, a.actor.id),
            (b.id, b.kind, b.at, b.actor.kind, b.actor.id)
        );
        assert_eq!(
            (a.summary.as_str(), &a.details, &a.actor.display),
            ("", &serde_json::Value::Null, &None)
        );
        assert_eq!(a.erased_by, Some(audit_id));
    }
    let audit = storage
        .list_activity(
            tenant.id,
            &ActivityFilter {
                portal: None,
                kinds: vec![EventKind::PortalDeleted],
            },
            PageRequest::first(10),
        )
        .await
        .expect("storage");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].portal_id, None);
    assert_eq!(audit[0].details["portal_id"], serde_json::json!(portal));
}

/// The activity log pages newest first by cursor and filters by type.
pub async fn activity_paging(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    for i in 0..12 {
        engine
            .create_company(&admin, name(&format!("C{i}")))
            .await
            .expect("company");
    }
    let all = storage
        .list_activity(tenant.id, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let mut paged = Vec::new();
    let mut after: Option<EventId> = None;
    loop {
        let page = storage
            .list_activity(tenant.id, &ActivityFilter::default(), PageRequest { after, limit: 5 })
            .await
            .expect("storage");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.id);
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let companies = storage
        .list_activity(
            tenant.id,
            &ActivityFilter {
                portal: None,
                kinds: vec![EventKind::CompanyCreated],
            },
            PageRequest::first(500),
        )
        .await
        .expect("storage");
    assert_eq!(companies.len(), 12);
}

/// A commit is all or nothing: rows, events and outbox messages together.
pub async fn outcome_commit_is_atomic(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let (company, mut outcome) = commands::admin::create_company(&admin, &mut ctx, name("Outboxed")).expect("cmd");
    let message = message(tenant.id, ctx.ids.next_id(), ctx.now, 1);
    outcome.messages.push(message.clone());
    storage
        .commit_outcome(tenant.id, &outcome)
        .await
        .expect("storage")
        .expect("committed");
    assert_eq!(
        storage.get_message(tenant.id, message.id).await.expect("storage"),
        Some(message.clone())
    );
    assert_eq!(
        ids_of(&outbox(&storage, tenant.id, None).await),
        vec![message.id],
        "the message is queued with the company"
    );

    // A second commit whose last write is stale leaves no trace of its first write, events or
    // messages.
    let mut ctx = engine.ctx();
    let (other, mut bad) = commands::admin::create_company(&admin, &mut ctx, name("Never")).expect("cmd");
    let stale = commands::admin::update_company(&admin, &mut ctx, &company, 1, name("x")).expect("cmd");
    let stale_again = commands::admin::update_company(&admin, &mut ctx, &company, 1, name("y")).expect("cmd");
    storage
        .commit_outcome(tenant.id, &stale)
        .await
        .expect("storage")
        .expect("first update");
    bad.writes.extend(stale_again.writes);
    let never_sent = OutboundMessage {
        id: ctx.ids.next_id(),
        ..message.clone()
    };
    bad.messages.push(never_sent.clone());
    let events_before = storage
        .list_activity(tenant.id, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage")
        .len();
    let r = storage.commit_outcome(tenant.id, &bad).await.expect("storage");
    assert!(matches!(r, Err(CommandError::Stale { .. })), "{r:?}");
    assert!(
        storage
            .get_company(tenant.id, other.id)
            .await
            .expect("storage")
            .is_none()
    );
    assert_eq!(ids_of(&outbox(&storage, tenant.id, None).await), vec![message.id]);
    assert_eq!(
        storage.get_message(tenant.id, never_sent.id).await.expect("storage"),
        None
    );
    let events_after = storage
        .list_activity(tenant.id, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage")
        .len();
    assert_eq!(events_before, events_after);

    // Replaying an insert is refused, not duplicated.
    let dup = storage.commit_outcome(tenant.id, &outcome).await.expect("storage");
    assert!(matches!(dup, Err(CommandError::AlreadyExists { .. })), "{dup:?}");
}

/// CON-1 in the database too: one primary contact per portal, one email per portal.
pub async fn contact_uniqueness(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;
    let primary = s.contacts.iter().find(|c| c.primary).expect("a primary").clone();
    let mut ctx = engine.ctx();
    let second_primary = portal_core::portal::Contact {
        id: ctx.ids.next_id(),
        email: email("other@client.example.org"),
        ..primary.clone()
    };
    let r = storage
        .commit_outcome(
            tenant.id,
            &Outcome {
                writes: vec![Write::InsertContact(second_primary)],
                ..Outcome::default()
            },
        )
        .await
        .expect("storage");
    assert!(matches!(r, Err(CommandError::AlreadyExists { .. })), "{r:?}");
    let same_email = portal_core::portal::Contact {
        id: ctx.ids.next_id(),
        primary: false,
        ..primary
    };
    let r = storage
        .commit_outcome(
            tenant.id,
            &Outcome {
                writes: vec![Write::InsertContact(same_email)],
                ..Outcome::default()
            },
        )
        .await
        .expect("storage");
    assert!(matches!(r, Err(CommandError::AlreadyExists { .. })), "{r:?}");
    assert_eq!(state(&engine, &admin, portal).await.contacts.len(), 2);
}

fn contact_input(name_: &str, email_: &str, role: ContactRole, primary: bool) -> ContactInput {
    ContactInput {
        name: name(name_),
        email: email(email_),
        role,
        primary,
    }
}

fn flag(primary: bool) -> ContactPatch {
    ContactPatch {
        primary: Some(primary),
        ..ContactPatch::default()
    }
}

fn contact_of(s: &PortalState, id: ContactId) -> Contact {
    s.contacts
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("contact {id}"))
}

fn primaries(s: &PortalState) -> Vec<ContactId> {
    s.contacts.iter().filter(|c| c.primary).map(|c| c.id).collect()
}

/// CON-1 through the engine: contacts added, edited and removed in draft and active portals. The
/// primary flag moves in one commit whichever contact is older (the store checks "one primary"
/// at each write, so the old primary must be cleared first), emails stay unique, an active
/// portal keeps its primary, other statuses refuse, and every change is logged.
#[allow(clippy::too_many_lines)] // one scenario, told in order
pub async fn contacts_add_edit_remove(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (company, template, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;
    let pat = s.contacts.iter().find(|c| c.primary).expect("Pat is primary").id;
    let ian = s.contacts.iter().find(|c| !c.primary).expect("Ian is not").id;
    assert!(contact_of(&s, pat).created_at <= contact_of(&s, ian).created_at && pat < ian);

    // Add a contact to the draft: it reads back as written, after the others.
    let olga = engine
        .add_contact(
            &admin,
            portal,
            &contact_input(
                "Olga Office",
                "olga@client.example.org",
                ContactRole::OfficeManager,
                false,
            ),
        )
        .await
        .expect("added");
    assert_eq!((olga.version, olga.primary, olga.portal_id), (1, false, portal));
    let s = state(&engine, &admin, portal).await;
    assert_eq!(s.contacts.last(), Some(&olga));
    assert_eq!(engine.list_contacts(&admin, portal).await.expect("list"), s.contacts);

    // The flag moves to a newer contact, then back to the older one: both commit, each in one
    // outcome, and both rows' versions move on.
    let ian_now = engine
        .update_contact(&admin, portal, ian, 1, &flag(true))
        .await
        .expect("Ian becomes primary");
    assert_eq!((ian_now.primary, ian_now.version), (true, 2));
    let s = state(&engine, &admin, portal).await;
    assert_eq!(primaries(&s), vec![ian]);
    assert_eq!(contact_of(&s, pat).version, 2, "the former primary's row changed too");
    assert_eq!(contact_of(&s, ian), ian_now);
    let pat_now = engine
        .update_contact(&admin, portal, pat, 2, &flag(true))
        .await
        .expect("Pat, the older contact, becomes primary again");
    assert_eq!((pat_now.primary, pat_now.version), (true, 3));
    let s = state(&engine, &admin, portal).await;
    assert_eq!(primaries(&s), vec![pat]);
    assert_eq!(contact_of(&s, ian).version, 3);

    // A new contact added as primary takes the flag in the same commit.
    let quinn = engine
        .add_contact(
            &admin,
            portal,
            &contact_input("Quinn", "quinn@client.example.org", ContactRole::DecisionMaker, true),
        )
        .await
        .expect("added as primary");
    let s = state(&engine, &admin, portal).await;
    assert_eq!(primaries(&s), vec![quinn.id]);
    assert_eq!(contact_of(&s, pat).version, 4);

    // Emails are unique per portal, whatever their case; a stale version changes nothing.
    let dup = engine
        .add_contact(
            &admin,
            portal,
            &contact_input("Pat Again", "PAT@client.example.org", ContactRole::It, false),
        )
        .await
        .expect_err("a taken email");
    assert_eq!(code(&dup), "duplicate_contact_email");
    let to_pat = ContactPatch {
        email: Some(email("pat@client.example.org")),
        ..ContactPatch::default()
    };
    let dup = engine
        .update_contact(&admin, portal, olga.id, 1, &to_pat)
        .await
        .expect_err("a taken email");
    assert_eq!(code(&dup), "duplicate_contact_email");
    let stale = engine
        .update_contact(&admin, portal, ian, 1, &flag(true))
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    let stale = engine
        .remove_contact(&admin, portal, olga.id, 2)
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    assert_eq!(state(&engine, &admin, portal).await, s, "refusals change nothing");

    // Name, email and role edits; a patch that changes nothing keeps the version.
    let edited = engine
        .update_contact(
            &admin,
            portal,
            olga.id,
            1,
            &ContactPatch {
                name: Some(name("Olga Officer")),
                email: Some(email("olga.officer@client.example.org")),
                role: Some(ContactRole::Finance),
                primary: None,
            },
        )
        .await
        .expect("edited");
    assert_eq!(
        (edited.name.as_str(), edited.email.as_str(), edited.role, edited.version),
        (
            "Olga Officer",
            "olga.officer@client.example.org",
            ContactRole::Finance,
            2
        )
    );
    let same = engine
        .update_contact(&admin, portal, olga.id, 2, &ContactPatch::default())
        .await
        .expect("nothing to change");
    assert_eq!(same, edited);

    // A draft may lose its primary, but then cannot be activated.
    engine
        .update_contact(&admin, portal, quinn.id, 1, &flag(false))
        .await
        .expect("a draft may have no primary");
    let activate = |version| TransitionRequest {
        to: PortalStatus::Active,
        expected_version: version,
        confirm: false,
    };
    let refused = engine
        .transition_portal(&admin, portal, activate(1))
        .await
        .expect_err("no primary");
    assert_eq!(code(&refused), "primary_contact");
    engine
        .update_contact(&admin, portal, ian, 3, &flag(true))
        .await
        .expect("Ian becomes primary");
    engine
        .transition_portal(&admin, portal, activate(1))
        .await
        .expect("activated");

    // Active: the primary can be neither un-flagged nor removed; it can be handed over.
    let s = state(&engine, &admin, portal).await;
    let ian_v = contact_of(&s, ian).version;
    let r = engine
        .update_contact(&admin, portal, ian, ian_v, &flag(false))
        .await
        .expect_err("the primary stays");
    assert_eq!(code(&r), "primary_contact");
    let r = engine
        .remove_contact(&admin, portal, ian, ian_v)
        .await
        .expect_err("the primary stays");
    assert_eq!(code(&r), "primary_contact");
    let pat_v = contact_of(&s, pat).version;
    engine
        .update_contact(&admin, portal, pat, pat_v, &flag(true))
        .await
        .expect("handed over");
    let s = state(&engine, &admin, portal).await;
    assert_eq!(primaries(&s), vec![pat]);
    engine
        .remove_contact(&admin, portal, ian, contact_of(&s, ian).version)
        .await
        .expect("a former primary may go");
    engine
        .add_contact(
            &admin,
            portal,
            &contact_input("Rita", "rita@client.example.org", ContactRole::It, false),
        )
        .await
        .expect("contacts may join an active portal");
    let s = state(&engine, &admin, portal).await;
    // Pat, Olga, Quinn and Rita.
    assert_eq!(s.contacts.len(), 4);
    assert!(s.contacts.iter().all(|c| c.id != ian));
    assert_eq!(primaries(&s), vec![pat]);

    // Unknown contacts, and contacts of another portal, are not found.
    let other = engine
        .start_onboarding(
            &admin,
            company,
            template,
            &StartOnboarding {
                name: name("Second onboarding"),
                contacts: vec![contact_input("Zoe", "zoe@client.example.org", ContactRole::It, true)],
                activate: false,
            },
        )
        .await
        .expect("another portal");
    let zoe = state(&engine, &admin, other).await.contacts[0].id;
    let r = engine
        .remove_contact(&admin, portal, zoe, 1)
        .await
        .expect_err("another portal's contact");
    assert_eq!(code(&r), "not_found");
    let r = engine
        .update_contact(&admin, portal, ian, 1, &flag(true))
        .await
        .expect_err("removed");
    assert_eq!(code(&r), "not_found");

    // Other statuses refuse every contact change.
    let version = s.portal.version;
    engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Archived,
                expected_version: version,
                confirm: true,
            },
        )
        .await
        .expect("archived");
    let r = engine
        .add_contact(
            &admin,
            portal,
            &contact_input("Sid", "sid@client.example.org", ContactRole::It, false),
        )
        .await
        .expect_err("archived");
    assert_eq!(code(&r), "wrong_portal_status");
    let r = engine
        .update_contact(&admin, portal, pat, contact_of(&s, pat).version, &flag(false))
        .await
        .expect_err("archived");
    assert_eq!(code(&r), "wrong_portal_status");
    let r = engine
        .remove_contact(&admin, portal, pat, contact_of(&s, pat).version)
        .await
        .expect_err("archived");
    assert_eq!(code(&r), "wrong_portal_status");
    assert_eq!(state(&engine, &admin, portal).await.contacts, s.contacts);

    // Every change is in the portal's log, scoped to it.
    let log = storage
        .list_activity(
            tenant.id,
            &ActivityFilter {
                portal: Some(portal),
                kinds: vec![
                    EventKind::ContactAdded,
                    EventKind::ContactUpdated,
                    EventKind::ContactRemoved,
                ],
            },
            PageRequest::first(100),
        )
        .await
        .expect("storage");
    let count = |kind| log.iter().filter(|e| e.kind == kind).count();
    // Pat and Ian at the start, Olga, Quinn and Rita.
    assert_eq!(count(EventKind::ContactAdded), 5);
    // Ian, Pat, Olga, Quinn, Ian, Pat: the refusals and the no-op logged nothing.
    assert_eq!(count(EventKind::ContactUpdated), 6);
    assert_eq!(count(EventKind::ContactRemoved), 1);
    assert!(log.iter().all(|e| e.portal_id == Some(portal)));
    let removed = log
        .iter()
        .find(|e| e.kind == EventKind::ContactRemoved)
        .expect("the removal");
    assert_eq!(removed.details["contact_id"], serde_json::json!(ian));
}

/// Every kind of event the core knows is one the store accepts: an event of each, committed and
/// read back by kind. (On the SQL backends a kind is a row of `event_kind`, added by migration.)
pub async fn every_event_kind_is_stored(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let events: Vec<ActivityEvent> = EventKind::ALL
        .iter()
        .map(|kind| ActivityEvent {
            id: ctx.ids.next_id(),
            tenant_id: tenant.id,
            company_id: None,
            portal_id: None,
            kind: *kind,
            actor: admin.actor(),
            at: ctx.now,
            summary: format!("A {kind} event"),
            details: serde_json::json!({ "kind": kind }),
            erased_by: None,
        })
        .collect();
    storage
        .commit_outcome(
            tenant.id,
            &Outcome {
                events: events.clone(),
                ..Outcome::default()
            },
        )
        .await
        .expect("every kind is stored")
        .expect("committed");
    for event in &events {
        let found = storage
            .list_activity(
                tenant.id,
                &ActivityFilter {
                    portal: None,
                    kinds: vec![event.kind],
                },
                PageRequest::first(10),
            )
            .await
            .expect("storage");
        assert!(found.contains(event), "{}: {found:?}", event.kind);
    }
}

/// A 1,000-task portal starts, loads and completes tasks (PERF-2's size, ONB limits).
pub async fn large_portal(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (_, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::sized_template(20, 50), true).await;
    let s = state(&engine, &admin, portal).await;
    assert_eq!(s.tasks.len(), 1_000);
    assert_eq!(s.tasks.iter().filter(|t| t.status == TaskStatus::Pending).count(), 20);
    let first = s.tasks[0].clone();
    engine
        .complete_task(&admin, portal, first.id, first.version, None)
        .await
        .expect("completed");
    let s2 = state(&engine, &admin, portal).await;
    assert_eq!(s2.tasks[1].status, TaskStatus::Pending);
    assert_eq!(s2.tasks.iter().filter(|t| t.status == TaskStatus::Completed).count(), 1);
}

/// A session of `user` signed in at `at`, identified by a token made of `byte`.
fn session(byte: u8, tenant: portal_core::id::TenantId, user: StaffUserId, at: DateTime<Utc>) -> StaffSession {
    StaffSession::start(&SecretToken::from_bytes([byte; 32]), tenant, user, at)
}

/// Tenant hosts, staff password hashes, staff sessions and sign-in attempt counters (AUTH-6,
/// BRD-2): uniqueness of hosts across tenants, tenant scoping of every session read and delete,
/// sessions ended by a password change, expiry, and counters that never hand out a number twice.
pub async fn auth_hosts_sessions_and_attempts(storage: Arc<dyn Storage>) {
    let (engine, clock) = engine(storage.clone());
    let (a, admin_a) = fixtures::tenant(&engine, "alpha").await;
    let (b, admin_b) = fixtures::tenant(&engine, "beta").await;
    let (Principal::Staff(pa), Principal::Staff(pb)) = (&admin_a, &admin_b) else {
        panic!("staff principals")
    };
    let (ua, ub) = (pa.user_id, pb.user_id);
    let tech = engine
        .create_staff_user(&admin_a, email("tech@alpha.example.com"), name("Tess Tech"), &[])
        .await
        .expect("user");

    // Auth rows of a tenant or staff user that does not exist are refused.
    let ghost_tenant = portal_core::id::TenantId::from_uuid(uuid::Uuid::from_u128(7));
    let ghost_user = StaffUserId::from_uuid(uuid::Uuid::from_u128(7));
    assert!(matches!(
        storage
            .add_tenant_host(ghost_tenant, "ghost.example.com")
            .await
            .expect("storage"),
        Err(CommandError::NotFound { .. })
    ));
    assert!(
        storage
            .set_password_hash(a.id, ghost_user, "x", clock.now())
            .await
            .is_err()
    );
    let ghost_session = StaffSession::start(&SecretToken::from_bytes([9; 32]), a.id, ghost_user, clock.now());
    assert!(storage.insert_staff_session(&ghost_session).await.is_err());
    assert!(
        storage
            .count_sign_in_attempt(ghost_tenant, "account:x@y.example.com", clock.now(), clock.now())
            .await
            .is_err()
    );

    // Hosts: one tenant per host; mapping a host again to its tenant is a no-op.
    let hosts = [
        "portal2.alpha.example.com",
        "portal.alpha.example.com",
        "portal-2.alpha.example.com",
    ];
    for h in hosts {
        assert_eq!(storage.add_tenant_host(a.id, h).await.expect("storage"), Ok(()), "{h}");
    }
    assert_eq!(
        storage
            .add_tenant_host(a.id, "portal.alpha.example.com")
            .await
            .expect("storage"),
        Ok(()),
        "the same tenant maps the same host again"
    );
    let taken = storage
        .add_tenant_host(b.id, "portal.alpha.example.com")
        .await
        .expect("storage");
    assert_eq!(
        taken,
        Err(CommandError::AlreadyExists {
            entity: "tenant host",
            value: "portal.alpha.example.com".to_owned(),
        })
    );
    assert_eq!(
        storage
            .add_tenant_host(b.id, "portal.beta.example.com")
            .await
            .expect("storage"),
        Ok(())
    );
    // Byte order, whatever the database's collation: '-' < '.' < '2'.
    assert_eq!(
        storage.list_tenant_hosts(a.id).await.expect("storage"),
        [
            "portal-2.alpha.example.com",
            "portal.alpha.example.com",
            "portal2.alpha.example.com"
        ]
    );
    assert_eq!(
        storage.list_tenant_hosts(b.id).await.expect("storage"),
        ["portal.beta.example.com"]
    );
    assert_eq!(
        storage
            .tenant_for_host("portal.alpha.example.com")
            .await
            .expect("storage"),
        Some(a.id)
    );
    assert_eq!(
        storage
            .tenant_for_host("portal.beta.example.com")
            .await
            .expect("storage"),
        Some(b.id)
    );
    assert_eq!(
        storage.tenant_for_host("unknown.example.com").await.expect("storage"),
        None
    );

    // Sessions: read and ended only within their tenant; a token hash is issued once.
    let now = clock.now();
    let s1 = session(1, a.id, ua, now);
    storage.insert_staff_session(&s1).await.expect("inserted");
    assert_eq!(
        storage.staff_session(a.id, &s1.token_hash).await.expect("storage"),
        Some(s1.clone())
    );
    assert_eq!(
        storage.staff_session(b.id, &s1.token_hash).await.expect("storage"),
        None
    );
    let twice = storage
        .insert_staff_session(&session(1, a.id, tech, now))
        .await
        .expect_err("a token hash is issued once");
    assert!(matches!(twice, StorageError::Invariant(_)), "{twice:?}");
    assert_eq!(
        storage.staff_session(a.id, &s1.token_hash).await.expect("storage"),
        Some(s1.clone()),
        "the refused insert changed nothing"
    );
    assert!(
        !storage
            .delete_staff_session(b.id, &s1.token_hash)
            .await
            .expect("storage")
    );
    assert!(
        storage
            .staff_session(a.id, &s1.token_hash)
            .await
            .expect("storage")
            .is_some()
    );
    assert!(
        storage
            .delete_staff_session(a.id, &s1.token_hash)
            .await
            .expect("storage")
    );
    assert!(
        storage
            .staff_session(a.id, &s1.token_hash)
            .await
            .expect("storage")
            .is_none()
    );
    assert!(
        !storage
            .delete_staff_session(a.id, &s1.token_hash)
            .await
            .expect("storage")
    );

    for s in [
        session(2, a.id, ua, now),
        session(3, a.id, ua, now),
        session(4, a.id, tech, now),
    ] {
        storage.insert_staff_session(&s).await.expect("inserted");
    }
    assert_eq!(storage.delete_staff_sessions_of(b.id, ua).await.expect("storage"), 0);
    assert_eq!(storage.delete_staff_sessions_of(a.id, ua).await.expect("storage"), 2);
    assert_eq!(storage.delete_staff_sessions_of(a.id, ua).await.expect("storage"), 0);
    let tech_session = session(4, a.id, tech, now);
    assert_eq!(
        storage
            .staff_session(a.id, &tech_session.token_hash)
            .await
            .expect("storage"),
        Some(tech_session.clone()),
        "another user's session stays"
    );

    // Passwords: setting one ends every session of that user, and only theirs.
    let (h1, h2) = (
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$first",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$second",
    );
    assert_eq!(storage.password_hash(a.id, ua).await.expect("storage"), None);
    storage.set_password_hash(a.id, ua, h1, clock.now()).await.expect("set");
    assert_eq!(
        storage.password_hash(a.id, ua).await.expect("storage").as_deref(),
        Some(h1)
    );
    assert_eq!(storage.password_hash(b.id, ua).await.expect("storage"), None);
    assert_eq!(storage.password_hash(a.id, tech).await.expect("storage"), None);
    let (s5, s6) = (session(5, a.id, ua, now), session(6, a.id, ua, now));
    for s in [&s5, &s6] {
        storage.insert_staff_session(s).await.expect("inserted");
    }
    storage
        .set_password_hash(a.id, ua, h2, clock.now())
        .await
        .expect("set again");
    assert_eq!(
        storage.password_hash(a.id, ua).await.expect("storage").as_deref(),
        Some(h2)
    );
    for s in [&s5, &s6] {
        assert!(
            storage
                .staff_session(a.id, &s.token_hash)
                .await
                .expect("storage")
                .is_none(),
            "a new password ends the user's sessions"
        );
    }
    assert!(
        storage
            .staff_session(a.id, &tech_session.token_hash)
            .await
            .expect("storage")
            .is_some()
    );
    storage.set_password_hash(b.id, ub, h1, clock.now()).await.expect("set");
    assert_eq!(
        storage.password_hash(b.id, ub).await.expect("storage").as_deref(),
        Some(h1)
    );
    assert_eq!(
        storage.password_hash(a.id, ua).await.expect("storage").as_deref(),
        Some(h2)
    );

    // Expiry: a session works while now < expires_at; the sweep covers every tenant and keeps
    // an expired session readable until it runs.
    assert!(storage.delete_staff_sessions_of(a.id, tech).await.expect("storage") == 1);
    let now = clock.now();
    let live = session(10, a.id, ua, now);
    let old = session(11, a.id, ua, now - STAFF_SESSION_LIFETIME - Duration::hours(1));
    let edge = session(12, a.id, tech, now - STAFF_SESSION_LIFETIME);
    let almost = session(13, a.id, tech, now - STAFF_SESSION_LIFETIME + Duration::milliseconds(1));
    let b_old = session(14, b.id, ub, now - Duration::days(2));
    let b_live = session(15, b.id, ub, now);
    for s in [&live, &old, &edge, &almost, &b_old, &b_live] {
        storage.insert_staff_session(s).await.expect("inserted");
    }
    assert_eq!(
        storage.staff_session(a.id, &old.token_hash).await.expect("storage"),
        Some(old.clone()),
        "an expired session reads back until the sweep"
    );
    assert_eq!(storage.delete_expired_staff_sessions(now).await.expect("storage"), 3);
    for (s, kept) in [
        (&live, true),
        (&old, false),
        (&edge, false),
        (&almost, true),
        (&b_old, false),
        (&b_live, true),
    ] {
        assert_eq!(
            storage
                .staff_session(s.tenant_id, &s.token_hash)
                .await
                .expect("storage"),
            kept.then(|| s.clone()),
            "session expiring at {}",
            s.expires_at
        );
    }
    assert_eq!(storage.delete_expired_staff_sessions(now).await.expect("storage"), 0);

    // Sign-in attempts: counted per tenant and key in fixed windows.
    let window = sign_in_window(now);
    let next = window + Duration::minutes(SIGN_IN_WINDOW_MINUTES);
    let account = "account:admin@alpha.example.com";
    let address = "address:192.0.2.7";
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(
            storage
                .count_sign_in_attempt(a.id, account, window, now)
                .await
                .expect("storage"),
        );
    }
    assert_eq!(seen, [1, 2, 3]);
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, address, window, now)
            .await
            .expect("storage"),
        1
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(b.id, account, window, now)
            .await
            .expect("storage"),
        1
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, account, window, now)
            .await
            .expect("storage"),
        4
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, account, next, now)
            .await
            .expect("storage"),
        1
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, account, next, now)
            .await
            .expect("storage"),
        2
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, address, window, now)
            .await
            .expect("storage"),
        2
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(b.id, account, window, now)
            .await
            .expect("storage"),
        2
    );

    // Concurrent attempts never share a number.
    let key = "address:198.51.100.20";
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let storage = storage.clone();
        attempts.spawn(async move { storage.count_sign_in_attempt(a.id, key, next, now).await });
    }
    let mut counts: Vec<u32> = attempts
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("storage"))
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u32>>());
    assert_eq!(
        storage
            .count_sign_in_attempt(a.id, key, next, now)
            .await
            .expect("storage"),
        21
    );
}

/// The open tasks assigned to a staff user in active portals (DASH-2), in phase, task and id
/// order, keyset-paged; and task counts of a list of portals (DASH-1).
pub async fn assigned_tasks_and_task_counts(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let tech = engine
        .create_staff_user(&admin, email("tech@acme.example.com"), name("Tess Tech"), &[])
        .await
        .expect("user");
    let other = engine
        .create_staff_user(&admin, email("otto@acme.example.com"), name("Otto Other"), &[])
        .await
        .expect("user");
    let (_, _, onboarding) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let (_, _, draft) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let (_, _, second) = fixtures::portal(&engine, &admin, &fixtures::sized_template(2, 3), true).await;
    for portal in [onboarding, draft, second] {
        let ids: Vec<TaskId> = state(&engine, &admin, portal)
            .await
            .tasks
            .iter()
            .map(|t| t.id)
            .collect();
        engine
            .bulk_reassign(&admin, portal, &ids, Some(tech))
            .await
            .expect("assigned");
    }
    let s = state(&engine, &admin, onboarding).await;
    let docs = task_by_title(&s, "Upload network diagrams").clone();
    engine
        .assign_task(&admin, onboarding, docs.id, docs.version, Some(other))
        .await
        .expect("assigned");
    let kickoff = task_by_title(&s, "Kick-off meeting").clone();
    engine
        .complete_task(&admin, onboarding, kickoff.id, kickoff.version, None)
        .await
        .expect("completed");
    let msa = task_by_title(
        &state(&engine, &admin, onboarding).await,
        "Sign the master services agreement",
    )
    .clone();
    let reason = Reason::parse("Signed on paper during the kick-off").expect("reason");
    engine
        .complete_task(&admin, onboarding, msa.id, msa.version, Some(reason))
        .await
        .expect("completed");
    let first = state(&engine, &admin, second).await.tasks[0].clone();
    engine
        .complete_task(&admin, second, first.id, first.version, None)
        .await
        .expect("completed");

    // What the reference order gives, from the portals as loaded.
    let expected = |states: Vec<PortalState>, user: StaffUserId| {
        let mut items: Vec<AssignedTask> = states
            .iter()
            .filter(|s| s.portal.status == PortalStatus::Active)
            .flat_map(|s| {
                s.tasks
                    .iter()
                    .filter(move |t| t.assignee == Some(user) && t.status != TaskStatus::Completed)
                    .map(move |t| AssignedTask {
                        portal_name: s.portal.name.clone(),
                        phase_position: s.phase(t.phase_id).expect("its phase").position,
                        task: t.clone(),
                    })
            })
            .collect();
        items.sort_by_key(AssignedTask::cursor);
        items
    };
    let mut states = Vec::new();
    for portal in [onboarding, draft, second] {
        states.push(state(&engine, &admin, portal).await);
    }
    let mine = expected(states.clone(), tech);
    // Onboarding: 7 tasks less one of Otto's and two completed; second: 6 less one completed.
    assert_eq!(mine.len(), 4 + 5);
    assert!(mine.iter().all(|a| a.task.portal_id != draft));
    let all = storage
        .list_assigned_tasks(tenant.id, tech, PageRequest::first(500))
        .await
        .expect("storage");
    assert_eq!(all, mine);
    assert!(all.windows(2).all(|w| w[0].cursor() < w[1].cursor()));
    assert!(
        all.windows(2).any(|w| w[0].task.portal_id != w[1].task.portal_id),
        "the portals' tasks interleave by phase position"
    );

    for limit in [1, 2, 4] {
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = storage
                .list_assigned_tasks(tenant.id, tech, PageRequest { after, limit })
                .await
                .expect("storage");
            assert!(page.len() <= limit);
            let Some(last) = page.last() else { break };
            after = Some(last.cursor());
            paged.extend(page);
        }
        assert_eq!(paged, all, "pages of {limit}");
    }

    let ottos = storage
        .list_assigned_tasks(tenant.id, other, PageRequest::first(50))
        .await
        .expect("storage");
    assert_eq!(ottos, expected(states.clone(), other));
    assert_eq!(ottos.iter().map(|a| a.task.id).collect::<Vec<_>>(), [docs.id]);
    let Principal::Staff(me) = &admin else {
        panic!("a staff principal")
    };
    assert!(
        storage
            .list_assigned_tasks(tenant.id, me.user_id, PageRequest::first(50))
            .await
            .expect("storage")
            .is_empty()
    );

    // Another tenant's assignments stay in that tenant.
    let (b, admin_b) = fixtures::tenant(&engine, "beta").await;
    let Principal::Staff(pb) = &admin_b else {
        panic!("a staff principal")
    };
    let (_, _, b_portal) = fixtures::portal(&engine, &admin_b, &fixtures::small_template(), true).await;
    let b_ids: Vec<TaskId> = state(&engine, &admin_b, b_portal)
        .await
        .tasks
        .iter()
        .map(|t| t.id)
        .collect();
    engine
        .bulk_reassign(&admin_b, b_portal, &b_ids, Some(pb.user_id))
        .await
        .expect("assigned");
    let theirs = storage
        .list_assigned_tasks(b.id, pb.user_id, PageRequest::first(50))
        .await
        .expect("storage");
    assert_eq!(
        theirs,
        expected(vec![state(&engine, &admin_b, b_portal).await], pb.user_id)
    );
    assert_eq!(theirs.len(), 7);
    for (t, u) in [(b.id, tech), (tenant.id, pb.user_id)] {
        assert!(
            storage
                .list_assigned_tasks(t, u, PageRequest::first(50))
                .await
                .expect("storage")
                .is_empty()
        );
    }

    // Task counts, in the order asked; ids of no portal of the tenant are left out.
    let (_, _, empty) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    for phase in state(&engine, &admin, empty).await.phases {
        engine
            .portal_command(&admin, empty, |ctx, st| {
                commands::draft::delete_phase(&admin, ctx, st, phase.id)
            })
            .await
            .expect("phase deleted");
    }
    let unknown = PortalId::from_uuid(uuid::Uuid::from_u128(7));
    let counts = storage
        .task_counts(tenant.id, &[second, unknown, onboarding, b_portal, empty, draft])
        .await
        .expect("storage");
    let count = |portal, total, completed| PortalTaskCounts {
        portal,
        total,
        completed,
    };
    assert_eq!(
        counts,
        [
            count(second, 6, 1),
            count(onboarding, 7, 2),
            count(empty, 0, 0),
            count(draft, 7, 0)
        ]
    );
    assert!(storage.task_counts(tenant.id, &[]).await.expect("storage").is_empty());
    assert_eq!(
        storage
            .task_counts(b.id, &[onboarding, b_portal])
            .await
            .expect("storage"),
        [count(b_portal, 7, 0)]
    );

    // Activating the draft brings its tasks in.
    let v = state(&engine, &admin, draft).await.portal.version;
    engine
        .transition_portal(
            &admin,
            draft,
            TransitionRequest {
                to: PortalStatus::Active,
                expected_version: v,
                confirm: false,
            },
        )
        .await
        .expect("activated");
    let mut states = Vec::new();
    for portal in [onboarding, draft, second] {
        states.push(state(&engine, &admin, portal).await);
    }
    let now_mine = storage
        .list_assigned_tasks(tenant.id, tech, PageRequest::first(500))
        .await
        .expect("storage");
    assert_eq!(now_mine.len(), 9 + 7);
    assert_eq!(now_mine, expected(states, tech));
}

/// Every scenario, by name, for embedders who run the suite in a loop.
pub const SCENARIOS: &[&str] = &[
    "tenants_roles_and_staff",
    "tenant_isolation",
    "companies_and_sites",
    "templates_and_copy_semantics",
    "portal_lifecycle",
    "task_statuses_and_dependencies",
    "draft_editing",
    "assignment_checklist_comments",
    "delete_portal_keeps_tombstones",
    "activity_paging",
    "outcome_commit_is_atomic",
    "contact_uniqueness",
    "contacts_add_edit_remove",
    "every_event_kind_is_stored",
    "large_portal",
    "auth_hosts_sessions_and_attempts",
    "assigned_tasks_and_task_counts",
    "access_links_and_sessions",
    "outbox_messages_commit_sealed",
    "outbox_claim_and_mark_sent",
    "outbox_group_marks",
    "outbox_leases_and_fencing",
    "outbox_retry_and_requeue",
    "outbox_listing_pages_newest_first",
    "outbox_follows_deleted_portals_and_contacts",
    "tenant_branding_round_trips",
    "access_challenges",
    "reminder_ledger_records_each_reminder_once",
    "digest_items_wait_per_contact",
    "contact_notification_preferences_round_trip",
    "tenant_notification_settings_round_trip",
    "active_portals_page_across_tenants",
    "modify_portal_returns_ledger_refusals",
    "expired_rows_are_purged",
];

/// The raw bytes of a token, decoded from its base64url form by hand (to look for them in what
/// is stored).
#[must_use]
pub fn raw_token_bytes(token: &SecretToken) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::with_capacity(32);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in token.encode().bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("a base64url character");
        acc = (acc << 6) | u32::try_from(v).expect("small");
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xFF).expect("a byte"));
        }
    }
    out
}

async fn transition(engine: &Engine, admin: &Principal, portal: PortalId, to: PortalStatus) -> ServiceResult<Outcome> {
    let v = state(engine, admin, portal).await.portal.version;
    engine
        .transition_portal(
            admin,
            portal,
            TransitionRequest {
                to,
                expected_version: v,
                confirm: true,
            },
        )
        .await
}

/// Access links and contact sessions (CON-2 to CON-5, ONB-4 to ONB-6, BYD-4): issue and resend
/// both work, regenerate and revoke kill earlier links and sessions, links and sessions expire,
/// archive revokes everything in its own commit, deleting a contact or a portal removes its rows,
/// another tenant finds nothing, and no raw token is stored.
#[allow(clippy::too_many_lines)]
pub async fn access_links_and_sessions(storage: Arc<dyn Storage>) {
    let (engine, clock) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    let (_, _, draft) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let pat = s.contacts.iter().find(|c| c.primary).expect("Pat").id;
    let ian = s.contacts.iter().find(|c| !c.primary).expect("Ian").id;
    let draft_pat = state(&engine, &admin, draft).await.contacts[0].id;
    // Activation invited each contact: one link each, and an invitation queued with its token
    // sealed (MAIL-3).
    let invitation = engine.list_access_links(&admin, portal, pat).await.expect("links");
    assert_eq!(invitation.len(), 1, "the activation's invitation link");
    let invitation = invitation[0].clone();
    let invited: Vec<OutboundMessage> = {
        let mut invited = Vec::new();
        for e in outbox(&storage, tenant.id, None).await {
            invited.extend(storage.get_message(tenant.id, e.id).await.expect("storage"));
        }
        invited
    };
    let to_pat: Vec<&OutboundMessage> = invited.iter().filter(|m| m.contact_id == Some(pat)).collect();
    assert_eq!(to_pat.len(), 1, "{invited:?}");
    assert_eq!(
        (to_pat[0].kind, to_pat[0].portal_id),
        (MailKind::ContactInvitation, Some(portal))
    );
    assert!(
        matches!(to_pat[0].secret, Some(MessageSecret::Sealed { .. })),
        "the token is stored sealed"
    );
    let live = |t: &SecretToken| {
        let storage = storage.clone();
        let hash = t.hash();
        let now = engine.now();
        async move {
            storage
                .touch_contact_session(tenant.id, &hash, now)
                .await
                .expect("storage")
                .is_some()
        }
    };

    // A draft portal's contact gets no link (ONB-4); a contact of another portal is not found.
    let e = engine
        .issue_access_link(&admin, draft, draft_pat)
        .await
        .expect_err("draft");
    assert_eq!(code(&e), "wrong_portal_status");
    let e = engine
        .issue_access_link(&admin, portal, draft_pat)
        .await
        .expect_err("another portal's contact");
    assert_eq!(code(&e), "not_found");

    // Issue, then resend: two links, both open the portal; the expiry is the tenant's 30 days.
    let first = engine.issue_access_link(&admin, portal, pat).await.expect("issued");
    let second = engine.issue_access_link(&admin, portal, pat).await.expect("resent");
    assert_eq!(first.link.expires_at - first.link.created_at, Duration::days(30));
    assert_ne!(first.link.token_hash, second.link.token_hash);
    for issued in [&first, &second] {
        assert_eq!(issued.link.token_hash, issued.token.hash());
        assert_ne!(
            issued.link.token_hash.as_bytes().to_vec(),
            raw_token_bytes(&issued.token)
        );
        let stored = storage
            .find_access_link(tenant.id, &issued.token.hash())
            .await
            .expect("storage");
        assert_eq!(stored.as_ref(), Some(&issued.link));
        let raw = portal_core::auth::TokenHash::from_slice(&raw_token_bytes(&issued.token)).expect("32 bytes");
        assert_eq!(
            storage.find_access_link(tenant.id, &raw).await.expect("storage"),
            None,
            "the raw token is not what is stored"
        );
        assert_eq!(
            storage
                .find_access_link(other.id, &issued.token.hash())
                .await
                .expect("storage"),
            None,
            "another tenant finds nothing"
        );
        assert!(
            engine
                .open_access_link(other.id, &issued.token)
                .await
                .expect("storage")
                .is_none()
        );
    }
    let s1 = engine
        .open_access_link(tenant.id, &first.token)
        .await
        .expect("storage")
        .expect("the first link opens");
    let s2 = engine
        .open_access_link(tenant.id, &second.token)
        .await
        .expect("storage")
        .expect("the resent link opens too");
    assert_eq!((s1.session.portal_id, s1.session.contact_id), (portal, pat));
    assert_eq!(s1.session.expires_at - s1.session.created_at, Duration::hours(24));
    assert!(live(&s1.token).await && live(&s2.token).await);
    assert!(
        storage
            .touch_contact_session(other.id, &s1.token.hash(), engine.now())
            .await
            .expect("storage")
            .is_none(),
        "another tenant's session lookup finds nothing"
    );
    let (rolled, contact) = engine
        .contact_session(tenant.id, &s1.token.hash())
        .await
        .expect("storage")
        .expect("live");
    assert!(rolled.expires_at > s1.session.expires_at, "the session rolls");
    assert_eq!(rolled.created_at, s1.session.created_at);
    let (overview, _) = engine
        .portal_overview(&contact, portal)
        .await
        .expect("the contact reads its portal");
    assert_eq!(overview.portal.id, portal);
    assert_eq!(
        code(
            &engine
                .portal_overview(&contact, draft)
                .await
                .expect_err("not its portal")
        ),
        "not_found"
    );
    let opened = engine
        .list_activity(
            &admin,
            &ActivityFilter {
                portal: Some(portal),
                kinds: vec![EventKind::ContactAccessedPortal],
            },
            PageRequest::first(10),
        )
        .await
        .expect("activity");
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].actor, contact.actor());
    for ev in &opened {
        let text = serde_json::to_string(ev).expect("serialises");
        assert!(!text.contains(&first.token.encode()) && !text.contains(&second.token.encode()));
    }
    let (own_links, own_sessions) = engine.own_access(&contact).await.expect("own access");
    assert_eq!(
        own_links,
        vec![invitation.clone(), first.link.clone(), second.link.clone()]
    );
    assert_eq!(own_sessions.len(), 2);

    // Regenerate: one new link; every earlier link and session of Pat is dead.
    let third = engine
        .regenerate_access_link(&admin, portal, pat)
        .await
        .expect("regenerated");
    assert!(!live(&s1.token).await && !live(&s2.token).await);
    for dead in [&first, &second] {
        assert!(
            engine
                .open_access_link(tenant.id, &dead.token)
                .await
                .expect("storage")
                .is_none()
        );
    }
    let links = engine.list_access_links(&admin, portal, pat).await.expect("links");
    assert_eq!(links.len(), 4);
    assert!(links[..3].iter().all(|l| l.revoked_at.is_some()) && links[3] == third.link);
    let s3 = engine
        .open_access_link(tenant.id, &third.token)
        .await
        .expect("storage")
        .expect("the new link opens");

    // Revoke: the link and the session die at once.
    engine
        .revoke_contact_access(&admin, portal, pat)
        .await
        .expect("revoked");
    assert!(!live(&s3.token).await);
    assert!(
        engine
            .open_access_link(tenant.id, &third.token)
            .await
            .expect("storage")
            .is_none()
    );
    assert!(
        engine
            .list_access_links(&admin, portal, pat)
            .await
            .expect("links")
            .iter()
            .all(|l| l.revoked_at.is_some())
    );

    // Sign-out and sign-out everywhere end sessions without touching the link.
    let ian_link = engine.issue_access_link(&admin, portal, ian).await.expect("issued");
    let a = engine
        .open_access_link(tenant.id, &ian_link.token)
        .await
        .expect("storage")
        .expect("opens");
    let b = engine
        .open_access_link(tenant.id, &ian_link.token)
        .await
        .expect("storage")
        .expect("opens again");
    assert!(
        engine
            .end_contact_session(tenant.id, &a.token.hash())
            .await
            .expect("signed out")
    );
    assert!(
        !engine
            .end_contact_session(other.id, &b.token.hash())
            .await
            .expect("storage")
    );
    assert!(!live(&a.token).await && live(&b.token).await);
    let (_, ian_principal) = engine
        .contact_session(tenant.id, &b.token.hash())
        .await
        .expect("storage")
        .expect("live");
    assert_eq!(
        engine
            .end_all_contact_sessions(&ian_principal)
            .await
            .expect("everywhere"),
        1
    );
    assert!(!live(&b.token).await);

    // Archive: a refused (stale) archive revokes nothing; the real one revokes every link and
    // session of the portal in its own commit. Restore and re-activate: old links stay dead.
    let c = engine
        .open_access_link(tenant.id, &ian_link.token)
        .await
        .expect("storage")
        .expect("opens");
    let v = state(&engine, &admin, portal).await.portal.version;
    let stale = engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Archived,
                expected_version: v - 1,
                confirm: true,
            },
        )
        .await
        .expect_err("stale");
    assert_eq!(code(&stale), "stale_version");
    assert!(live(&c.token).await, "a refused archive revokes nothing");
    let archived = transition(&engine, &admin, portal, PortalStatus::Archived)
        .await
        .expect("archived");
    assert!(matches!(
        archived.effects.as_slice(),
        [portal_core::outcome::AccessEffect::RevokeAllClientAccess { portal_id, .. }] if *portal_id == portal
    ));
    assert!(!live(&c.token).await);
    let revoked = engine.list_access_links(&admin, portal, ian).await.expect("links");
    assert!(revoked.iter().all(|l| l.revoked_at.is_some()), "{revoked:?}");
    transition(&engine, &admin, portal, PortalStatus::Draft)
        .await
        .expect("restored");
    transition(&engine, &admin, portal, PortalStatus::Active)
        .await
        .expect("active again");
    assert!(
        engine
            .open_access_link(tenant.id, &ian_link.token)
            .await
            .expect("storage")
            .is_none(),
        "old links stay dead after a restore"
    );

    // Expiry: links after the tenant's days, sessions after 24 hours without use.
    let fresh = engine.issue_access_link(&admin, portal, ian).await.expect("issued");
    let d = engine
        .open_access_link(tenant.id, &fresh.token)
        .await
        .expect("storage")
        .expect("opens");
    clock.advance(Duration::hours(23));
    assert!(live(&d.token).await, "used within 24 hours");
    clock.advance(Duration::hours(24) + Duration::seconds(1));
    assert!(!live(&d.token).await, "unused for 24 hours");
    clock.advance(Duration::days(29));
    assert!(
        engine
            .open_access_link(tenant.id, &fresh.token)
            .await
            .expect("storage")
            .is_none(),
        "expired"
    );

    // Removing a contact deletes its links and sessions; deleting the portal deletes them all.
    let fresh = engine.issue_access_link(&admin, portal, ian).await.expect("issued");
    let e = engine
        .open_access_link(tenant.id, &fresh.token)
        .await
        .expect("storage")
        .expect("opens");
    let ian_version = state(&engine, &admin, portal)
        .await
        .contacts
        .iter()
        .find(|c| c.id == ian)
        .expect("Ian")
        .version;
    engine
        .remove_contact(&admin, portal, ian, ian_version)
        .await
        .expect("removed");
    assert!(!live(&e.token).await);
    assert_eq!(
        storage.list_access_links(tenant.id, ian).await.expect("storage"),
        vec![]
    );
    assert_eq!(
        storage
            .find_access_link(tenant.id, &fresh.token.hash())
            .await
            .expect("storage"),
        None
    );
    let last = engine.issue_access_link(&admin, portal, pat).await.expect("issued");
    let f = engine
        .open_access_link(tenant.id, &last.token)
        .await
        .expect("storage")
        .expect("opens");
    engine
        .delete_portal(&admin, portal, "Client Co onboarding")
        .await
        .expect("deleted");
    assert!(!live(&f.token).await);
    assert_eq!(
        storage.list_access_links(tenant.id, pat).await.expect("storage"),
        vec![]
    );
    assert_eq!(
        storage
            .find_access_link(tenant.id, &last.token.hash())
            .await
            .expect("storage"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// The outbox (MAIL-3) and tenant branding (BRD-1)

/// A message of `tenant` with a sealed secret, due when created; `n` varies its content.
fn message(tenant: TenantId, id: MessageId, at: DateTime<Utc>, n: u8) -> OutboundMessage {
    OutboundMessage {
        id,
        tenant_id: tenant,
        portal_id: None,
        contact_id: None,
        kind: MailKind::AccessLink,
        recipient: email(&format!("pat{n}@client.example.org")),
        recipient_name: Some(format!("Pat {n}")),
        payload: serde_json::json!({
            "portal_name": "Client Co onboarding",
            "n": n,
            "tasks": [{ "title": "Kick-off meeting", "due": "2026-03-04" }],
        }),
        secret: Some(MessageSecret::Sealed {
            sealed: Sealed {
                key_id: "00112233aabbccdd".to_owned(),
                nonce: vec![n; 24],
                ciphertext: (0..48u8).map(|i| i ^ n).collect(),
            },
        }),
        created_at: at,
    }
}

/// Commits an outcome of nothing but `messages`.
async fn queue(storage: &Arc<dyn Storage>, tenant: TenantId, messages: Vec<OutboundMessage>) {
    let outcome = Outcome {
        messages,
        ..Outcome::default()
    };
    storage
        .commit_outcome(tenant, &outcome)
        .await
        .expect("storage")
        .expect("queued");
}

/// The tenant's outbox as staff see it (one page), optionally of one status.
async fn outbox(storage: &Arc<dyn Storage>, tenant: TenantId, status: Option<MessageStatus>) -> Vec<OutboxEntry> {
    storage
        .list_messages(tenant, status, PageRequest::first(500))
        .await
        .expect("storage")
}

fn ids_of(entries: &[OutboxEntry]) -> Vec<MessageId> {
    entries.iter().map(|e| e.id).collect()
}

/// One message's delivery state.
async fn delivery(storage: &Arc<dyn Storage>, tenant: TenantId, id: MessageId) -> OutboxEntry {
    outbox(storage, tenant, None)
        .await
        .into_iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("message {id} is listed"))
}

async fn claim(
    storage: &Arc<dyn Storage>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Vec<ClaimedMessage> {
    storage.claim_messages(now, lease_until, limit).await.expect("storage")
}

fn claimed(message: &OutboundMessage, attempt: u32) -> ClaimedMessage {
    ClaimedMessage {
        message: message.clone(),
        attempt,
    }
}

/// MAIL-3: a message commits with the rest of its outcome and reads back as written, its secret
/// sealed; a message carrying its secret in clear fails the whole commit, through either
/// commit path.
pub async fn outbox_messages_commit_sealed(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let (company, mut outcome) = commands::admin::create_company(&admin, &mut ctx, name("Sealed Co")).expect("cmd");
    let sealed = message(tenant.id, ctx.ids.next_id(), ctx.now, 1);
    let plain = OutboundMessage {
        kind: MailKind::TaskSummary,
        recipient_name: None,
        secret: None,
        payload: serde_json::json!({ "empty": {}, "list": [], "unicode": "Zoë — 東京" }),
        ..message(tenant.id, ctx.ids.next_id(), ctx.now, 2)
    };
    outcome.messages.extend([sealed.clone(), plain.clone()]);
    storage
        .commit_outcome(tenant.id, &outcome)
        .await
        .expect("storage")
        .expect("committed");
    assert!(
        storage
            .get_company(tenant.id, company.id)
            .await
            .expect("storage")
            .is_some()
    );
    for m in [&sealed, &plain] {
        assert_eq!(
            storage.get_message(tenant.id, m.id).await.expect("storage").as_ref(),
            Some(m),
            "a message reads back as written"
        );
        let e = delivery(&storage, tenant.id, m.id).await;
        assert_eq!(
            e,
            OutboxEntry {
                id: m.id,
                portal_id: None,
                contact_id: None,
                kind: m.kind,
                recipient: m.recipient.clone(),
                status: MessageStatus::Queued,
                attempts: 0,
                next_attempt_at: m.created_at,
                last_error: None,
                created_at: m.created_at,
                sent_at: None,
            },
            "queued, no attempt yet, due when created"
        );
    }
    assert_eq!(
        storage
            .get_message(tenant.id, ctx.ids.next_id())
            .await
            .expect("storage"),
        None
    );

    // A clear secret: nothing of the outcome is written, and the store says why.
    let mut ctx = engine.ctx();
    let (never, mut bad) = commands::admin::create_company(&admin, &mut ctx, name("Clear Co")).expect("cmd");
    let clear = OutboundMessage {
        secret: Some(MessageSecret::Clear {
            text: SecretText::new("hunter2-token".to_owned()),
        }),
        ..message(tenant.id, ctx.ids.next_id(), ctx.now, 3)
    };
    bad.messages
        .extend([plain_copy(&plain, ctx.ids.next_id()), clear.clone()]);
    let events_before = storage
        .list_activity(tenant.id, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage");
    let r = storage.commit_outcome(tenant.id, &bad).await;
    assert!(matches!(r, Err(StorageError::Invariant(_))), "{r:?}");
    assert!(
        storage
            .get_company(tenant.id, never.id)
            .await
            .expect("storage")
            .is_none()
    );
    assert_eq!(
        storage
            .list_activity(tenant.id, &ActivityFilter::default(), PageRequest::first(500))
            .await
            .expect("storage"),
        events_before,
        "no event of the refused commit"
    );
    assert_eq!(
        ids_of(&outbox(&storage, tenant.id, None).await).len(),
        2,
        "no message either"
    );
    assert_eq!(storage.get_message(tenant.id, clear.id).await.expect("storage"), None);

    // The same under a portal's lock.
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let before = state(&engine, &admin, portal).await;
    let clear_again = clear.clone();
    let decide = move |s: &PortalState| {
        let mut ctx = Ctx::new(clear_again.created_at, [9; 16]);
        let mut o = commands::portal::rename_portal(&admin, &mut ctx, s, s.portal.version, name("Renamed"))?;
        o.messages.push(OutboundMessage {
            portal_id: Some(s.portal.id),
            ..clear_again.clone()
        });
        Ok(o)
    };
    let r = storage.modify_portal(tenant.id, portal, &decide).await;
    assert!(matches!(r, Err(StorageError::Invariant(_))), "{r:?}");
    assert_eq!(
        storage.load_portal(tenant.id, portal).await.expect("storage"),
        Some(before),
        "the portal is unchanged"
    );
    assert_eq!(storage.get_message(tenant.id, clear.id).await.expect("storage"), None);
}

fn plain_copy(m: &OutboundMessage, id: MessageId) -> OutboundMessage {
    OutboundMessage { id, ..m.clone() }
}

/// Marking a group of delivered messages sent at once (the worker's group commit): each mark is
/// fenced by its own attempt, the count says how many applied, every applied one is `sent` with
/// its secret deleted, and a stale one changes nothing.
pub async fn outbox_group_marks(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let messages: Vec<OutboundMessage> = (0..5u8)
        .map(|i| message(tenant.id, ctx.ids.next_id(), t0 + Duration::seconds(i.into()), i))
        .collect();
    queue(&storage, tenant.id, messages.clone()).await;
    let now = t0 + Duration::minutes(1);
    let lease = now + Duration::minutes(5);
    let claimed = claim(&storage, now, lease, 10).await;
    assert_eq!(claimed.len(), 5);
    assert_eq!(storage.mark_messages_sent(&[]).await.expect("storage"), 0);
    let at = now + Duration::seconds(2);
    let mut marks: Vec<SentMark> = claimed
        .iter()
        .map(|c| SentMark {
            tenant_id: tenant.id,
            id: c.message.id,
            attempt: c.attempt,
            at,
        })
        .collect();
    // The last one names a stale attempt.
    if let Some(last) = marks.last_mut() {
        last.attempt += 1;
    }
    assert_eq!(storage.mark_messages_sent(&marks).await.expect("storage"), 4);
    for (i, m) in marks.iter().enumerate() {
        let e = delivery(&storage, tenant.id, m.id).await;
        let stored = storage
            .get_message(tenant.id, m.id)
            .await
            .expect("storage")
            .expect("the message");
        if i < 4 {
            assert_eq!((e.status, e.sent_at), (MessageStatus::Sent, Some(at)));
            assert_eq!(stored.secret, None, "the sealed secret is deleted once sent");
        } else {
            assert_eq!(
                (e.status, e.sent_at),
                (MessageStatus::Sending, None),
                "a stale mark changes nothing"
            );
            assert!(stored.secret.is_some());
        }
    }
    // Marked again: nothing applies.
    assert_eq!(storage.mark_messages_sent(&marks[..4]).await.expect("storage"), 0);
}

/// A claim leases the due messages, oldest due first and no more than asked; a sent message
/// loses its secret, keeps its sending time and is never claimed again.
pub async fn outbox_claim_and_mark_sent(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let first = message(tenant.id, ctx.ids.next_id(), t0, 1);
    let second = message(tenant.id, ctx.ids.next_id(), t0 + Duration::seconds(1), 2);
    let later = message(tenant.id, ctx.ids.next_id(), t0 + Duration::hours(1), 3);
    queue(&storage, tenant.id, vec![later.clone(), second.clone(), first.clone()]).await;

    assert!(
        claim(&storage, t0 - Duration::milliseconds(1), t0 + Duration::minutes(5), 10)
            .await
            .is_empty(),
        "nothing is due yet"
    );
    assert!(
        claim(&storage, t0 + Duration::seconds(2), t0 + Duration::minutes(5), 0)
            .await
            .is_empty(),
        "a claim of none claims none"
    );
    let lease = t0 + Duration::minutes(5);
    let now = t0 + Duration::seconds(2);
    assert_eq!(
        claim(&storage, now, lease, 1).await,
        vec![claimed(&first, 1)],
        "the oldest due first, its secret sealed"
    );
    assert_eq!(claim(&storage, now, lease, 10).await, vec![claimed(&second, 1)]);
    assert!(
        claim(&storage, now + Duration::seconds(1), lease, 10).await.is_empty(),
        "leased messages are not claimed again"
    );
    let e = delivery(&storage, tenant.id, first.id).await;
    assert_eq!((e.status, e.attempts, e.sent_at), (MessageStatus::Sending, 1, None));

    let sent_at = now + Duration::seconds(3);
    assert!(
        storage
            .mark_message_sent(tenant.id, first.id, 1, sent_at)
            .await
            .expect("storage")
    );
    assert_eq!(
        storage.get_message(tenant.id, first.id).await.expect("storage"),
        Some(OutboundMessage {
            secret: None,
            ..first.clone()
        }),
        "the sealed secret is deleted once sent"
    );
    let e = delivery(&storage, tenant.id, first.id).await;
    assert_eq!(
        (e.status, e.attempts, e.sent_at, e.last_error),
        (MessageStatus::Sent, 1, Some(sent_at), None)
    );
    assert!(
        !storage
            .mark_message_sent(tenant.id, first.id, 1, sent_at)
            .await
            .expect("storage"),
        "a sent message is marked once"
    );
    assert_eq!(
        ids_of(&outbox(&storage, tenant.id, Some(MessageStatus::Sent)).await),
        vec![first.id]
    );

    // A day later: the second's lease ran out and the later one is due; the sent one stays sent.
    let day = t0 + Duration::days(1);
    assert_eq!(
        claim(&storage, day, day + Duration::minutes(5), 10).await,
        vec![claimed(&second, 2), claimed(&later, 1)]
    );
}

/// A lease holds until it runs out, then the message is claimed again with the next attempt
/// number; the result of the attempt whose lease ran out is refused and changes nothing.
pub async fn outbox_leases_and_fencing(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let m = message(tenant.id, ctx.ids.next_id(), t0, 1);
    queue(&storage, tenant.id, vec![m.clone()]).await;
    let lease = t0 + Duration::seconds(60);
    assert_eq!(
        claim(&storage, t0 + Duration::seconds(1), lease, 10).await,
        vec![claimed(&m, 1)]
    );
    assert!(claim(&storage, t0 + Duration::seconds(30), lease, 10).await.is_empty());
    assert!(
        claim(&storage, lease, lease + Duration::seconds(60), 10)
            .await
            .is_empty(),
        "the lease holds up to its end"
    );
    let after = lease + Duration::milliseconds(1);
    let lease2 = after + Duration::seconds(60);
    assert_eq!(
        claim(&storage, after, lease2, 10).await,
        vec![claimed(&m, 2)],
        "claimed again once the lease ran out"
    );

    let before = delivery(&storage, tenant.id, m.id).await;
    assert_eq!((before.status, before.attempts), (MessageStatus::Sending, 2));
    assert!(
        !storage
            .mark_message_sent(tenant.id, m.id, 1, after)
            .await
            .expect("storage")
    );
    assert!(
        !storage
            .mark_message_retry(tenant.id, m.id, 1, after + Duration::minutes(1), "timeout")
            .await
            .expect("storage")
    );
    assert!(
        !storage
            .mark_message_failed(tenant.id, m.id, 1, "550 rejected")
            .await
            .expect("storage")
    );
    assert!(
        !storage
            .mark_message_sent(tenant.id, m.id, 3, after)
            .await
            .expect("storage"),
        "an attempt not yet made"
    );
    assert_eq!(
        delivery(&storage, tenant.id, m.id).await,
        before,
        "the stale attempt changed nothing"
    );
    assert_eq!(
        storage.get_message(tenant.id, m.id).await.expect("storage"),
        Some(m.clone()),
        "the secret is still there"
    );

    assert!(
        storage
            .mark_message_failed(tenant.id, m.id, 2, "550 5.1.1 mailbox unavailable")
            .await
            .expect("storage")
    );
    let e = delivery(&storage, tenant.id, m.id).await;
    assert_eq!(
        (e.status, e.attempts, e.last_error.as_deref(), e.sent_at),
        (MessageStatus::Failed, 2, Some("550 5.1.1 mailbox unavailable"), None)
    );
    assert!(
        !storage
            .mark_message_sent(tenant.id, m.id, 2, after)
            .await
            .expect("storage"),
        "a failed message is no longer claimed"
    );
    assert!(
        claim(&storage, t0 + Duration::days(30), t0 + Duration::days(31), 10)
            .await
            .is_empty(),
        "a failed message is never claimed"
    );
}

/// A retry puts the message back until its next attempt is due, keeping the error; a failed
/// message is queued again by staff, its attempts counted from zero.
pub async fn outbox_retry_and_requeue(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let m = message(tenant.id, ctx.ids.next_id(), t0, 1);
    queue(&storage, tenant.id, vec![m.clone()]).await;
    assert_eq!(
        claim(&storage, t0 + Duration::seconds(1), t0 + Duration::seconds(61), 10).await,
        vec![claimed(&m, 1)]
    );
    let next = t0 + Duration::minutes(5);
    assert!(
        storage
            .mark_message_retry(tenant.id, m.id, 1, next, "421 4.7.0 try again later")
            .await
            .expect("storage")
    );
    let e = delivery(&storage, tenant.id, m.id).await;
    assert_eq!(
        (e.status, e.attempts, e.next_attempt_at, e.last_error.as_deref()),
        (MessageStatus::Queued, 1, next, Some("421 4.7.0 try again later"))
    );
    assert!(
        claim(&storage, next - Duration::seconds(1), next + Duration::minutes(1), 10)
            .await
            .is_empty(),
        "not before its next attempt"
    );
    assert_eq!(
        claim(&storage, next, next + Duration::minutes(1), 10).await,
        vec![claimed(&m, 2)],
        "due at its next attempt"
    );
    assert_eq!(
        delivery(&storage, tenant.id, m.id).await.last_error.as_deref(),
        Some("421 4.7.0 try again later"),
        "the last error stays while it is sent again"
    );
    assert!(
        storage
            .mark_message_failed(tenant.id, m.id, 2, "550 no such user")
            .await
            .expect("storage")
    );

    let now = next + Duration::hours(1);
    assert!(
        !storage
            .requeue_failed_message(other.id, m.id, now)
            .await
            .expect("storage"),
        "another tenant's message"
    );
    assert!(
        !storage
            .requeue_failed_message(tenant.id, ctx.ids.next_id(), now)
            .await
            .expect("storage"),
        "no such message"
    );
    assert_eq!(delivery(&storage, tenant.id, m.id).await.status, MessageStatus::Failed);
    assert!(
        storage
            .requeue_failed_message(tenant.id, m.id, now)
            .await
            .expect("storage")
    );
    let e = delivery(&storage, tenant.id, m.id).await;
    assert_eq!(
        (e.status, e.attempts, e.next_attempt_at, e.last_error.as_deref()),
        (MessageStatus::Queued, 0, now, Some("550 no such user"))
    );
    assert!(
        !storage
            .requeue_failed_message(tenant.id, m.id, now)
            .await
            .expect("storage"),
        "a queued message is not failed"
    );
    assert_eq!(
        claim(&storage, now, now + Duration::minutes(1), 10).await,
        vec![claimed(&m, 1)],
        "claimed as a first attempt"
    );
    assert!(
        storage
            .mark_message_sent(tenant.id, m.id, 1, now)
            .await
            .expect("storage")
    );
    assert!(
        !storage
            .requeue_failed_message(tenant.id, m.id, now)
            .await
            .expect("storage"),
        "a sent message is not failed"
    );
}

/// Staff list the outbox newest first, by cursor and status, and see nothing of another
/// tenant's; a worker cannot mark another tenant's message.
pub async fn outbox_listing_pages_newest_first(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let mine: Vec<OutboundMessage> = (0..7u8)
        .map(|i| {
            message(
                tenant.id,
                ctx.ids.next_id(),
                t0 + Duration::milliseconds(i64::from(i)),
                i,
            )
        })
        .collect();
    let theirs: Vec<OutboundMessage> = (0..2u8)
        .map(|i| {
            message(
                other.id,
                ctx.ids.next_id(),
                t0 + Duration::milliseconds(100 + i64::from(i)),
                i,
            )
        })
        .collect();
    queue(&storage, tenant.id, mine.clone()).await;
    queue(&storage, other.id, theirs.clone()).await;

    let now = t0 + Duration::seconds(1);
    let all = claim(&storage, now, now + Duration::minutes(5), 100).await;
    let expected: Vec<ClaimedMessage> = mine.iter().chain(&theirs).map(|m| claimed(m, 1)).collect();
    assert_eq!(all, expected, "a claim spans tenants, oldest due first");
    for m in mine.iter().step_by(2) {
        assert!(
            storage
                .mark_message_sent(tenant.id, m.id, 1, now)
                .await
                .expect("storage")
        );
    }
    assert!(
        !storage
            .mark_message_sent(tenant.id, theirs[0].id, 1, now)
            .await
            .expect("storage"),
        "another tenant's message"
    );
    assert_eq!(
        delivery(&storage, other.id, theirs[0].id).await.status,
        MessageStatus::Sending
    );
    assert_eq!(
        storage.get_message(tenant.id, theirs[0].id).await.expect("storage"),
        None
    );

    let mut newest_first: Vec<MessageId> = mine.iter().map(|m| m.id).collect();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    let listed = outbox(&storage, tenant.id, None).await;
    assert_eq!(ids_of(&listed), newest_first);
    for (status, parity) in [(MessageStatus::Sent, 0), (MessageStatus::Sending, 1)] {
        let mut want: Vec<MessageId> = mine.iter().skip(parity).step_by(2).map(|m| m.id).collect();
        want.sort_unstable_by(|a, b| b.cmp(a));
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = storage
                .list_messages(tenant.id, Some(status), PageRequest { after, limit: 2 })
                .await
                .expect("storage");
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            assert!(page.iter().all(|e| e.status == status));
            after = page.last().map(|e| e.id);
            paged.extend(page);
        }
        assert_eq!(ids_of(&paged), want, "{status:?} pages");
    }
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = storage
            .list_messages(tenant.id, None, PageRequest { after, limit: 3 })
            .await
            .expect("storage");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|e| e.id);
        paged.extend(page);
    }
    assert_eq!(paged, listed, "the pages make the whole list");
    assert!(
        outbox(&storage, tenant.id, Some(MessageStatus::Failed))
            .await
            .is_empty()
    );

    let mut theirs_newest_first: Vec<MessageId> = theirs.iter().map(|m| m.id).collect();
    theirs_newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids_of(&outbox(&storage, other.id, None).await), theirs_newest_first);
    assert!(
        outbox(&storage, other.id, Some(MessageStatus::Sent)).await.is_empty(),
        "another tenant sees none of the sent ones"
    );
}

/// ONB-6: deleting a contact deletes its messages, deleting a portal the portal's; the
/// tenant's other messages stay.
pub async fn outbox_follows_deleted_portals_and_contacts(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let (_, _, kept_portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;
    let pat = s.contacts.iter().find(|c| c.primary).expect("a primary").clone();
    let ian = s.contacts.iter().find(|c| !c.primary).expect("another contact").clone();
    let mut ctx = engine.ctx();
    let at = ctx.now;
    let of_portal = |id: MessageId, contact: Option<ContactId>, kind: MailKind, n: u8| OutboundMessage {
        portal_id: Some(portal),
        contact_id: contact,
        kind,
        ..message(tenant.id, id, at, n)
    };
    let summary = of_portal(ctx.ids.next_id(), None, MailKind::TaskSummary, 1);
    let to_pat = of_portal(ctx.ids.next_id(), Some(pat.id), MailKind::ContactInvitation, 2);
    let to_ian = of_portal(ctx.ids.next_id(), Some(ian.id), MailKind::TaskReminder, 3);
    let other_portal = OutboundMessage {
        portal_id: Some(kept_portal),
        ..message(tenant.id, ctx.ids.next_id(), at, 4)
    };
    let tenant_wide = OutboundMessage {
        kind: MailKind::PasswordReset,
        ..message(tenant.id, ctx.ids.next_id(), at, 5)
    };
    let all = vec![
        summary.clone(),
        to_pat.clone(),
        to_ian.clone(),
        other_portal.clone(),
        tenant_wide.clone(),
    ];
    queue(&storage, tenant.id, all.clone()).await;
    for m in &all {
        assert_eq!(
            storage.get_message(tenant.id, m.id).await.expect("storage").as_ref(),
            Some(m)
        );
    }
    let e = delivery(&storage, tenant.id, to_ian.id).await;
    assert_eq!((e.portal_id, e.contact_id), (Some(portal), Some(ian.id)));

    let listed = |storage: Arc<dyn Storage>| async move {
        let mut ids = ids_of(&outbox(&storage, tenant.id, None).await);
        ids.sort_unstable();
        ids
    };
    let sorted = |ms: &[&OutboundMessage]| {
        let mut ids: Vec<MessageId> = ms.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids
    };
    engine
        .remove_contact(&admin, portal, ian.id, ian.version)
        .await
        .expect("removed");
    assert_eq!(
        listed(storage.clone()).await,
        sorted(&[&summary, &to_pat, &other_portal, &tenant_wide]),
        "the removed contact's message is gone"
    );
    assert_eq!(storage.get_message(tenant.id, to_ian.id).await.expect("storage"), None);

    engine
        .delete_portal(&admin, portal, "Client Co onboarding")
        .await
        .expect("deleted");
    assert_eq!(
        listed(storage.clone()).await,
        sorted(&[&other_portal, &tenant_wide]),
        "the deleted portal's messages are gone"
    );
    assert_eq!(storage.get_message(tenant.id, summary.id).await.expect("storage"), None);
}

/// BRD-1: a tenant starts with the default branding; an update writes every field, leaving it
/// out keeps it, and a wrong colour is refused.
pub async fn tenant_branding_round_trips(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    assert_eq!(tenant.branding, Branding::default());
    let stored = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(stored.branding.primary_colour, "#1f6feb");
    assert_eq!(stored, tenant);

    let full = Branding {
        app_name: Some(name("Acme Client Portal")),
        logo_url: Some("https://acme.example.com/brand/logo.svg?v=2".to_owned()),
        primary_colour: "#0A7e3d".to_owned(),
        sender_name: Some(name("Acme IT onboarding")),
        sender_email: Some(email("onboarding@acme.example.com")),
        reply_to: Some(email("help@acme.example.com")),
    };
    engine
        .update_tenant(
            &admin,
            tenant.version,
            tenant.name.clone(),
            tenant.settings.clone(),
            None,
            Some(full.clone()),
        )
        .await
        .expect("branding");
    let t = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(
        t,
        portal_core::tenant::Tenant {
            branding: full.clone(),
            version: tenant.version + 1,
            ..tenant.clone()
        }
    );

    engine
        .update_tenant(&admin, t.version, name("Acme IT"), t.settings.clone(), None, None)
        .await
        .expect("rename");
    let t = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(
        (t.name.as_str(), &t.branding),
        ("Acme IT", &full),
        "left out, it is kept"
    );

    let minimal = Branding {
        primary_colour: "#abcdef".to_owned(),
        ..Branding::default()
    };
    engine
        .update_tenant(
            &admin,
            t.version,
            t.name.clone(),
            t.settings.clone(),
            None,
            Some(minimal.clone()),
        )
        .await
        .expect("cleared");
    let t = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(t.branding, minimal, "fields cleared back to none");

    let wrong = Branding {
        primary_colour: "blue".to_owned(),
        ..full
    };
    let e = engine
        .update_tenant(&admin, t.version, t.name.clone(), t.settings.clone(), None, Some(wrong))
        .await
        .expect_err("not a colour");
    assert_eq!(code(&e), "invalid_value");
    assert_eq!(
        storage.get_tenant(tenant.id).await.expect("storage").expect("tenant"),
        t
    );
    assert_eq!(
        storage
            .get_tenant(other.id)
            .await
            .expect("storage")
            .expect("tenant")
            .branding,
        Branding::default(),
        "another tenant's branding is its own"
    );
}

/// CON-5 in the database: a one-time code challenge is stored by its token hash and found only
/// in its tenant, needs its link, is used once, and goes with its contact and its portal.
pub async fn access_challenges(storage: Arc<dyn Storage>) {
    use portal_core::access::{AccessChallenge, CODE_LIFETIME, code_hash};
    use portal_core::id::ChallengeId;

    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let pat = s.contacts.iter().find(|c| c.primary).expect("Pat").clone();
    let ian = s.contacts.iter().find(|c| !c.primary).expect("Ian").clone();
    let pat_link = engine
        .issue_access_link(&admin, portal, pat.id)
        .await
        .expect("issued")
        .link;
    let ian_link = engine
        .issue_access_link(&admin, portal, ian.id)
        .await
        .expect("issued")
        .link;
    assert_eq!(
        storage.get_access_link(tenant.id, pat_link.id).await.expect("storage"),
        Some(pat_link.clone())
    );
    assert_eq!(
        storage.get_access_link(other.id, pat_link.id).await.expect("storage"),
        None
    );

    let mut ctx = engine.ctx();
    let now = ctx.now;
    let challenge = |id: ChallengeId, link: &portal_core::access::AccessLink, byte: u8| {
        let token = SecretToken::from_bytes([byte; 32]);
        AccessChallenge {
            id,
            tenant_id: tenant.id,
            portal_id: link.portal_id,
            contact_id: link.contact_id,
            link_id: link.id,
            token_hash: token.hash(),
            code_hash: code_hash(&token, "123456"),
            created_at: now,
            expires_at: now + CODE_LIFETIME,
            used_at: None,
        }
    };
    let commit = |w: Write| {
        let storage = storage.clone();
        async move {
            storage
                .commit_outcome(
                    tenant.id,
                    &Outcome {
                        writes: vec![w],
                        ..Outcome::default()
                    },
                )
                .await
                .expect("storage")
        }
    };
    let for_pat = challenge(ctx.ids.next_id(), &pat_link, 1);
    let for_ian = challenge(ctx.ids.next_id(), &ian_link, 2);
    for c in [&for_pat, &for_ian] {
        commit(Write::InsertAccessChallenge(c.clone())).await.expect("stored");
    }
    assert_eq!(
        storage
            .find_access_challenge(tenant.id, &for_pat.token_hash)
            .await
            .expect("storage"),
        Some(for_pat.clone())
    );
    assert_eq!(
        storage
            .find_access_challenge(other.id, &for_pat.token_hash)
            .await
            .expect("storage"),
        None,
        "another tenant finds nothing"
    );

    let again = commit(Write::InsertAccessChallenge(for_pat.clone())).await;
    assert!(
        matches!(
            &again,
            Err(CommandError::AlreadyExists {
                entity: "access code",
                ..
            })
        ),
        "{again:?}"
    );
    let same_token: ChallengeId = ctx.ids.next_id();
    let r = commit(Write::InsertAccessChallenge(AccessChallenge {
        id: same_token,
        ..for_pat.clone()
    }))
    .await;
    assert!(
        matches!(
            &r,
            Err(CommandError::AlreadyExists {
                entity: "access code",
                ..
            })
        ),
        "{r:?}"
    );
    let ghost_link = portal_core::access::AccessLink {
        id: ctx.ids.next_id(),
        ..pat_link.clone()
    };
    let r = commit(Write::InsertAccessChallenge(challenge(
        ctx.ids.next_id(),
        &ghost_link,
        3,
    )))
    .await;
    assert_eq!(
        r,
        Err(CommandError::NotFound {
            entity: "access link",
            id: ghost_link.id.as_uuid(),
        })
    );

    let at = now + Duration::minutes(1);
    commit(Write::UseAccessChallenge { id: for_pat.id, at })
        .await
        .expect("used");
    assert_eq!(
        storage
            .find_access_challenge(tenant.id, &for_pat.token_hash)
            .await
            .expect("storage")
            .and_then(|c| c.used_at),
        Some(at)
    );
    let r = commit(Write::UseAccessChallenge { id: for_pat.id, at }).await;
    assert!(
        matches!(
            &r,
            Err(CommandError::Stale {
                entity: "access code",
                ..
            })
        ),
        "a code opens once: {r:?}"
    );
    let ghost: ChallengeId = ctx.ids.next_id();
    assert_eq!(
        commit(Write::UseAccessChallenge { id: ghost, at }).await,
        Err(CommandError::NotFound {
            entity: "access code",
            id: ghost.as_uuid(),
        })
    );

    // Removing Ian removes his challenge; deleting the portal removes Pat's.
    let ian_version = state(&engine, &admin, portal)
        .await
        .contacts
        .iter()
        .find(|c| c.id == ian.id)
        .expect("Ian")
        .version;
    engine
        .remove_contact(&admin, portal, ian.id, ian_version)
        .await
        .expect("removed");
    assert_eq!(
        storage
            .find_access_challenge(tenant.id, &for_ian.token_hash)
            .await
            .expect("storage"),
        None
    );
    engine
        .delete_portal(&admin, portal, "Client Co onboarding")
        .await
        .expect("deleted");
    assert_eq!(
        storage
            .find_access_challenge(tenant.id, &for_pat.token_hash)
            .await
            .expect("storage"),
        None
    );
    assert_eq!(
        storage.get_access_link(tenant.id, pat_link.id).await.expect("storage"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Notification preferences, the reminder ledger and daily digests (BYD-5)

/// A ledger row of `tenant`'s reminder about `task` for `contact`.
fn reminder(
    tenant: TenantId,
    portal: PortalId,
    task: TaskId,
    contact: ContactId,
    reason: ReminderReason,
    due_date: Option<NaiveDate>,
    sent_at: DateTime<Utc>,
) -> ReminderRecord {
    ReminderRecord {
        tenant_id: tenant,
        portal_id: portal,
        task_id: task,
        contact_id: contact,
        reason,
        due_date,
        sent_at,
    }
}

/// A digest item of `contact`; `n` varies its payload.
fn digest_item(id: DigestItemId, contact: &Contact, topic: Topic, created_at: DateTime<Utc>, n: u8) -> DigestItem {
    DigestItem {
        id,
        tenant_id: contact.tenant_id,
        portal_id: contact.portal_id,
        contact_id: contact.id,
        topic,
        payload: serde_json::json!({
            "n": n,
            "tasks": [{ "title": "Environment survey", "due": "2026-03-04" }],
            "note": "naïve café ✓",
        }),
        created_at,
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

/// Commits an outcome of nothing but `writes`.
async fn commit_writes(storage: &Arc<dyn Storage>, tenant: TenantId, writes: Vec<Write>) -> Result<(), CommandError> {
    storage
        .commit_outcome(
            tenant,
            &Outcome {
                writes,
                ..Outcome::default()
            },
        )
        .await
        .expect("storage")
}

/// A portal's ledger in a fixed order (the trait leaves the order open).
async fn ledger(storage: &Arc<dyn Storage>, tenant: TenantId, portal: PortalId) -> Vec<ReminderRecord> {
    let mut records = storage.list_reminder_records(tenant, portal).await.expect("storage");
    records.sort_by_key(|r| (r.task_id, r.contact_id, r.reason, r.due_date, r.sent_at));
    records
}

fn sorted_ledger(mut records: Vec<ReminderRecord>) -> Vec<ReminderRecord> {
    records.sort_by_key(|r| (r.task_id, r.contact_id, r.reason, r.due_date, r.sent_at));
    records
}

/// An event of the notification kinds, for checking that a refused commit leaves none.
fn notification_event(
    tenant: TenantId,
    portal: PortalId,
    id: EventId,
    actor: &Principal,
    at: DateTime<Utc>,
) -> ActivityEvent {
    ActivityEvent {
        id,
        tenant_id: tenant,
        company_id: None,
        portal_id: Some(portal),
        kind: EventKind::NotificationPreferencesChanged,
        actor: actor.actor(),
        at,
        summary: "Notification preferences changed".to_owned(),
        details: serde_json::json!({ "overdue": "off" }),
        erased_by: None,
    }
}

async fn has_event(storage: &Arc<dyn Storage>, tenant: TenantId, id: EventId) -> bool {
    storage
        .list_activity(tenant, &ActivityFilter::default(), PageRequest::first(500))
        .await
        .expect("storage")
        .iter()
        .any(|e| e.id == id)
}

/// The pair of contacts of the fixtures' portal: the primary one first.
fn pat_and_ian(s: &PortalState) -> (Contact, Contact) {
    (
        s.contacts.iter().find(|c| c.primary).expect("a primary").clone(),
        s.contacts.iter().find(|c| !c.primary).expect("another contact").clone(),
    )
}

/// BYD-5: the reminder ledger records each (task, contact, reason, due date) once. A second
/// record of the same reminder, a missing due date included, is refused as `already_exists` and
/// leaves nothing of its commit; another due date is another reminder; a missing task or
/// contact is `not_found`; the ledger goes with its task, contact and portal.
#[allow(clippy::too_many_lines)]
pub async fn reminder_ledger_records_each_reminder_once(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let (_, _, other_portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let (pat, ian) = pat_and_ian(&s);
    let survey = task_by_title(&s, "Environment survey").id;
    let handover = task_by_title(&s, "Acknowledge handover").id;
    let o = state(&engine, &admin, other_portal).await;
    let (other_pat, _) = pat_and_ian(&o);
    let other_task = task_by_title(&o, "Environment survey").id;
    let mut ctx = engine.ctx();
    let at = ctx.now;
    let t = tenant.id;

    let unlocked = reminder(t, portal, survey, pat.id, ReminderReason::Unlocked, None, at);
    let due_soon = reminder(
        t,
        portal,
        survey,
        pat.id,
        ReminderReason::DueSoon,
        Some(date(2026, 3, 4)),
        at,
    );
    let overdue_ian = reminder(
        t,
        portal,
        survey,
        ian.id,
        ReminderReason::Overdue,
        Some(date(2026, 3, 4)),
        at + Duration::seconds(1),
    );
    let handover_pat = reminder(t, portal, handover, pat.id, ReminderReason::Unlocked, None, at);
    let elsewhere = reminder(
        t,
        other_portal,
        other_task,
        other_pat.id,
        ReminderReason::Unlocked,
        None,
        at,
    );
    let all = vec![
        unlocked.clone(),
        due_soon.clone(),
        overdue_ian.clone(),
        handover_pat.clone(),
    ];
    commit_writes(
        &storage,
        t,
        all.iter()
            .chain([&elsewhere])
            .cloned()
            .map(Write::InsertReminderRecord)
            .collect(),
    )
    .await
    .expect("recorded");
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));
    assert_eq!(ledger(&storage, t, other_portal).await, vec![elsewhere.clone()]);

    // The same reminder again (decided later): refused, with nothing of its commit written.
    let later = at + Duration::hours(1);
    let item = digest_item(ctx.ids.next_id(), &pat, Topic::DueSoon, later, 1);
    let event = notification_event(t, portal, ctx.ids.next_id(), &admin, later);
    let mail = OutboundMessage {
        portal_id: Some(portal),
        contact_id: Some(pat.id),
        kind: MailKind::AutomaticReminder,
        ..message(t, ctx.ids.next_id(), later, 1)
    };
    let again = Outcome {
        writes: vec![
            Write::InsertDigestItem(item.clone()),
            Write::InsertReminderRecord(ReminderRecord {
                sent_at: later,
                ..due_soon.clone()
            }),
        ],
        events: vec![event.clone()],
        messages: vec![mail.clone()],
        ..Outcome::default()
    };
    let r = storage.commit_outcome(t, &again).await.expect("storage");
    assert_eq!(
        r,
        Err(CommandError::AlreadyExists {
            entity: "reminder",
            value: survey.to_string(),
        })
    );
    assert_eq!(storage.get_message(t, mail.id).await.expect("storage"), None);
    assert!(
        !has_event(&storage, t, event.id).await,
        "no event of the refused commit"
    );
    assert_eq!(
        storage.list_digest_items(t, pat.id).await.expect("storage"),
        vec![],
        "no digest item of the refused commit"
    );
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));

    // A reminder without a due date clashes with the one recorded without one too.
    let r = commit_writes(
        &storage,
        t,
        vec![Write::InsertReminderRecord(ReminderRecord {
            sent_at: later,
            ..unlocked.clone()
        })],
    )
    .await;
    assert!(
        matches!(r, Err(CommandError::AlreadyExists { entity: "reminder", .. })),
        "{r:?}"
    );
    // So does a repeat inside one commit.
    let twice_new = reminder(t, portal, handover, ian.id, ReminderReason::Unlocked, None, later);
    let r = commit_writes(
        &storage,
        t,
        vec![
            Write::InsertReminderRecord(twice_new.clone()),
            Write::InsertReminderRecord(twice_new.clone()),
        ],
    )
    .await;
    assert!(
        matches!(r, Err(CommandError::AlreadyExists { entity: "reminder", .. })),
        "{r:?}"
    );
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));

    // A moved due date is a new reminder, as is another reason or contact; and the first commit
    // goes through with a message of the new kind.
    let moved = ReminderRecord {
        due_date: Some(date(2026, 3, 11)),
        sent_at: later,
        ..due_soon.clone()
    };
    let overdue_pat = ReminderRecord {
        contact_id: pat.id,
        sent_at: later,
        ..overdue_ian.clone()
    };
    let accepted = Outcome {
        writes: vec![
            Write::InsertReminderRecord(moved.clone()),
            Write::InsertReminderRecord(overdue_pat.clone()),
        ],
        messages: vec![mail.clone()],
        ..Outcome::default()
    };
    storage
        .commit_outcome(t, &accepted)
        .await
        .expect("storage")
        .expect("a new due date is a new reminder");
    assert_eq!(
        storage.get_message(t, mail.id).await.expect("storage"),
        Some(mail.clone()),
        "the outbox takes automatic reminders"
    );
    let mut all = all;
    all.extend([moved.clone(), overdue_pat.clone()]);
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));

    // A task or contact that is not there.
    let no_task: TaskId = ctx.ids.next_id();
    let r = commit_writes(
        &storage,
        t,
        vec![Write::InsertReminderRecord(ReminderRecord {
            task_id: no_task,
            ..unlocked.clone()
        })],
    )
    .await;
    assert_eq!(
        r,
        Err(CommandError::NotFound {
            entity: "task",
            id: no_task.as_uuid(),
        })
    );
    let no_contact: ContactId = ctx.ids.next_id();
    let r = commit_writes(
        &storage,
        t,
        vec![Write::InsertReminderRecord(ReminderRecord {
            contact_id: no_contact,
            ..unlocked.clone()
        })],
    )
    .await;
    assert_eq!(
        r,
        Err(CommandError::NotFound {
            entity: "task",
            id: survey.as_uuid(),
        }),
        "a missing contact is reported as the reference store reports it"
    );

    // Another tenant sees none of it.
    let (other, _) = fixtures::tenant(&engine, "other").await;
    assert_eq!(
        storage.list_reminder_records(other.id, portal).await.expect("storage"),
        vec![]
    );

    // The ledger goes with its task, its contact and its portal.
    commit_writes(&storage, t, vec![Write::DeleteTask { id: handover }])
        .await
        .expect("task deleted");
    all.retain(|r| r.task_id != handover);
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));
    commit_writes(&storage, t, vec![Write::DeleteContact { id: ian.id }])
        .await
        .expect("contact deleted");
    all.retain(|r| r.contact_id != ian.id);
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(all.clone()));
    assert!(!all.is_empty());
    commit_writes(&storage, t, vec![Write::DeletePortal { id: portal }])
        .await
        .expect("portal deleted");
    assert_eq!(ledger(&storage, t, portal).await, vec![]);
    assert_eq!(
        ledger(&storage, t, other_portal).await,
        vec![elsewhere],
        "another portal's ledger stays"
    );
}

/// BYD-5: digest items wait per contact, listed by id; the contacts with items waiting page by
/// (tenant, contact) with their oldest item's time; deleting items once their digest is queued
/// is all or nothing (one already gone is `stale`); items go with their contact and portal.
#[allow(clippy::too_many_lines)]
pub async fn digest_items_wait_per_contact(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (a, admin_a) = fixtures::tenant(&engine, "alpha").await;
    let (b, admin_b) = fixtures::tenant(&engine, "beta").await;
    let (_, _, portal_a) = fixtures::portal(&engine, &admin_a, &fixtures::small_template(), true).await;
    let (_, _, portal_b) = fixtures::portal(&engine, &admin_b, &fixtures::small_template(), true).await;
    let (pat, ian) = pat_and_ian(&state(&engine, &admin_a, portal_a).await);
    let (pat_b, _) = pat_and_ian(&state(&engine, &admin_b, portal_b).await);
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let h = Duration::hours;

    // Pat's second item is older than the first: the oldest time is not the first id's.
    let p1 = digest_item(ctx.ids.next_id(), &pat, Topic::DueSoon, t0 + h(2), 1);
    let p2 = digest_item(ctx.ids.next_id(), &pat, Topic::Overdue, t0 + h(1), 2);
    let p3 = digest_item(ctx.ids.next_id(), &pat, Topic::Summaries, t0 + h(5), 3);
    let i1 = digest_item(ctx.ids.next_id(), &ian, Topic::TaskUnlocked, t0 + h(3), 4);
    let b1 = digest_item(ctx.ids.next_id(), &pat_b, Topic::Reminders, t0, 5);
    commit_writes(
        &storage,
        a.id,
        [&p1, &p2, &p3, &i1]
            .into_iter()
            .cloned()
            .map(Write::InsertDigestItem)
            .collect(),
    )
    .await
    .expect("kept");
    commit_writes(&storage, b.id, vec![Write::InsertDigestItem(b1.clone())])
        .await
        .expect("kept");
    let mut by_id = vec![p1.clone(), p2.clone(), p3.clone()];
    by_id.sort_by_key(|d| d.id);
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), by_id);
    assert_eq!(
        storage.list_digest_items(a.id, ian.id).await.expect("storage"),
        vec![i1.clone()]
    );
    assert_eq!(
        storage.list_digest_items(b.id, pat.id).await.expect("storage"),
        vec![],
        "another tenant's contact id finds nothing"
    );

    let pending = |d: &DigestItem, oldest: DateTime<Utc>| PendingDigest {
        tenant_id: d.tenant_id,
        portal_id: d.portal_id,
        contact_id: d.contact_id,
        oldest,
    };
    let mut expected = vec![pending(&p1, t0 + h(1)), pending(&i1, t0 + h(3)), pending(&b1, t0)];
    expected.sort_by_key(|p| (p.tenant_id, p.contact_id));
    assert_eq!(
        storage.list_pending_digests(None, 100).await.expect("storage"),
        expected
    );
    // One at a time, after the last one seen; a limit of 0 is 1.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = storage.list_pending_digests(after, 0).await.expect("storage");
        assert!(page.len() <= 1);
        let Some(last) = page.last() else { break };
        after = Some((last.tenant_id, last.contact_id));
        paged.extend(page);
    }
    assert_eq!(paged, expected);
    let last = expected.last().expect("some");
    assert_eq!(
        storage
            .list_pending_digests(Some((last.tenant_id, last.contact_id)), 10)
            .await
            .expect("storage"),
        vec![]
    );
    assert_eq!(
        storage
            .list_pending_digests(Some((expected[0].tenant_id, expected[0].contact_id)), 10)
            .await
            .expect("storage"),
        expected[1..].to_vec()
    );

    // A taken id, a contact that is not there.
    let r = commit_writes(&storage, a.id, vec![Write::InsertDigestItem(p1.clone())]).await;
    assert_eq!(
        r,
        Err(CommandError::AlreadyExists {
            entity: "digest item",
            value: p1.id.as_uuid().to_string(),
        })
    );
    let no_contact: ContactId = ctx.ids.next_id();
    let stray = DigestItem {
        id: ctx.ids.next_id(),
        contact_id: no_contact,
        ..p1.clone()
    };
    let r = commit_writes(&storage, a.id, vec![Write::InsertDigestItem(stray)]).await;
    assert_eq!(
        r,
        Err(CommandError::NotFound {
            entity: "contact",
            id: no_contact.as_uuid(),
        })
    );

    // Pat's digest is queued: their items go in the same commit.
    let digest_mail = OutboundMessage {
        portal_id: Some(portal_a),
        contact_id: Some(pat.id),
        kind: MailKind::NotificationDigest,
        ..message(a.id, ctx.ids.next_id(), t0 + h(6), 7)
    };
    storage
        .commit_outcome(
            a.id,
            &Outcome {
                writes: vec![Write::DeleteDigestItems {
                    contact_id: pat.id,
                    ids: vec![p2.id],
                }],
                messages: vec![digest_mail.clone()],
                ..Outcome::default()
            },
        )
        .await
        .expect("storage")
        .expect("deleted");
    assert_eq!(
        storage.get_message(a.id, digest_mail.id).await.expect("storage"),
        Some(digest_mail.clone()),
        "the outbox takes digests"
    );
    let mut left = vec![p1.clone(), p3.clone()];
    left.sort_by_key(|d| d.id);
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), left);

    // One of them gone already: stale, naming it, and nothing deleted.
    let r = commit_writes(
        &storage,
        a.id,
        vec![Write::DeleteDigestItems {
            contact_id: pat.id,
            ids: vec![p1.id, p2.id, p3.id],
        }],
    )
    .await;
    assert_eq!(
        r,
        Err(CommandError::Stale {
            entity: "digest item",
            id: p2.id.as_uuid(),
            expected: 1,
            actual: 0,
        })
    );
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), left);
    // Another contact's item is not theirs to delete; nor is an id named twice deleted twice.
    for (contact, ids) in [(ian.id, vec![i1.id, p1.id]), (pat.id, vec![p1.id, p1.id])] {
        let r = commit_writes(
            &storage,
            a.id,
            vec![Write::DeleteDigestItems {
                contact_id: contact,
                ids,
            }],
        )
        .await;
        assert_eq!(
            r,
            Err(CommandError::Stale {
                entity: "digest item",
                id: p1.id.as_uuid(),
                expected: 1,
                actual: 0,
            })
        );
    }
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), left);
    assert_eq!(
        storage.list_digest_items(a.id, ian.id).await.expect("storage"),
        vec![i1.clone()]
    );
    commit_writes(
        &storage,
        a.id,
        vec![Write::DeleteDigestItems {
            contact_id: pat.id,
            ids: vec![p3.id, p1.id],
        }],
    )
    .await
    .expect("deleted");
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), vec![]);
    let mut expected = vec![pending(&i1, t0 + h(3)), pending(&b1, t0)];
    expected.sort_by_key(|p| (p.tenant_id, p.contact_id));
    assert_eq!(
        storage.list_pending_digests(None, 100).await.expect("storage"),
        expected,
        "a contact without items is not pending"
    );

    // Items go with their contact and their portal.
    let i2 = digest_item(ctx.ids.next_id(), &ian, Topic::Overdue, t0 + h(7), 8);
    let p4 = digest_item(ctx.ids.next_id(), &pat, Topic::Overdue, t0 + h(7), 9);
    commit_writes(
        &storage,
        a.id,
        vec![Write::InsertDigestItem(i2), Write::InsertDigestItem(p4.clone())],
    )
    .await
    .expect("kept");
    commit_writes(&storage, a.id, vec![Write::DeleteContact { id: ian.id }])
        .await
        .expect("contact deleted");
    assert_eq!(storage.list_digest_items(a.id, ian.id).await.expect("storage"), vec![]);
    assert_eq!(
        storage.list_digest_items(a.id, pat.id).await.expect("storage"),
        vec![p4]
    );
    commit_writes(&storage, a.id, vec![Write::DeletePortal { id: portal_a }])
        .await
        .expect("portal deleted");
    assert_eq!(storage.list_digest_items(a.id, pat.id).await.expect("storage"), vec![]);
    assert_eq!(
        storage.list_pending_digests(None, 100).await.expect("storage"),
        vec![pending(&b1, t0)]
    );
}

/// BYD-5: a contact's notification preferences are stored with the contact wherever it is
/// written (a new portal's contacts, an added contact, an edited one) and read back as written.
pub async fn contact_notification_preferences_round_trip(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (company, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), false).await;
    let s = state(&engine, &admin, portal).await;
    assert!(
        s.contacts
            .iter()
            .all(|c| c.notifications == NotificationPreferences::default()),
        "contacts start with every topic immediate"
    );
    let mut ctx = engine.ctx();
    let t = tenant.id;
    let digest_some = NotificationPreferences::default()
        .with(Topic::DueSoon, Delivery::DailyDigest)
        .with(Topic::Summaries, Delivery::Off);

    // A new portal's contacts.
    let new_portal = bare_portal(t, company, ctx.ids.next_id(), PortalStatus::Draft, ctx.now);
    let contact = |portal: PortalId, id: ContactId, n: &str, primary: bool, p: NotificationPreferences| Contact {
        id,
        tenant_id: t,
        portal_id: portal,
        name: name(&format!("{n} Person")),
        email: email(&format!("{}@client.example.org", n.to_lowercase())),
        role: ContactRole::It,
        primary,
        notifications: p,
        version: 1,
        created_at: ctx.now,
    };
    let first = contact(new_portal.id, ctx.ids.next_id(), "Dana", true, digest_some);
    let second = contact(
        new_portal.id,
        ctx.ids.next_id(),
        "Eli",
        false,
        NotificationPreferences::ALL_OFF,
    );
    commit_writes(
        &storage,
        t,
        vec![Write::InsertPortal(Box::new(PortalState {
            portal: new_portal.clone(),
            phases: vec![],
            tasks: vec![],
            contacts: vec![first.clone(), second.clone()],
        }))],
    )
    .await
    .expect("portal inserted");
    let loaded = storage
        .load_portal(t, new_portal.id)
        .await
        .expect("storage")
        .expect("portal");
    assert_eq!(contact_of(&loaded, first.id), first);
    assert_eq!(contact_of(&loaded, second.id), second);

    // An added contact.
    let overdue_only = NotificationPreferences::ALL_OFF.with(Topic::Overdue, Delivery::Immediate);
    let added = contact(portal, ctx.ids.next_id(), "Fay", false, overdue_only);
    commit_writes(&storage, t, vec![Write::InsertContact(added.clone())])
        .await
        .expect("contact inserted");
    assert_eq!(contact_of(&state(&engine, &admin, portal).await, added.id), added);

    // An edited contact, with the event of the change.
    let (pat, _) = pat_and_ian(&s);
    let edited = Contact {
        notifications: NotificationPreferences::default().with(Topic::Reminders, Delivery::DailyDigest),
        version: pat.version + 1,
        ..pat.clone()
    };
    let event = notification_event(t, portal, ctx.ids.next_id(), &admin, ctx.now);
    storage
        .commit_outcome(
            t,
            &Outcome {
                writes: vec![Write::UpdateContact {
                    contact: edited.clone(),
                    expected_version: pat.version,
                }],
                events: vec![event.clone()],
                ..Outcome::default()
            },
        )
        .await
        .expect("storage")
        .expect("contact updated");
    assert_eq!(contact_of(&state(&engine, &admin, portal).await, pat.id), edited);
    assert!(has_event(&storage, t, event.id).await, "the new event kind is stored");
    let stale = commit_writes(
        &storage,
        t,
        vec![Write::UpdateContact {
            contact: Contact {
                notifications: NotificationPreferences::ALL_OFF,
                version: pat.version + 1,
                ..pat.clone()
            },
            expected_version: pat.version,
        }],
    )
    .await;
    assert!(matches!(stale, Err(CommandError::Stale { .. })), "{stale:?}");
    assert_eq!(contact_of(&state(&engine, &admin, portal).await, pat.id), edited);

    // Back to the defaults.
    let reset = Contact {
        notifications: NotificationPreferences::default(),
        version: edited.version + 1,
        ..edited.clone()
    };
    commit_writes(
        &storage,
        t,
        vec![Write::UpdateContact {
            contact: reset.clone(),
            expected_version: edited.version,
        }],
    )
    .await
    .expect("contact updated");
    assert_eq!(contact_of(&state(&engine, &admin, portal).await, pat.id), reset);
}

/// A portal row with no phases, tasks or contacts.
fn bare_portal(
    tenant: TenantId,
    company: portal_core::id::CompanyId,
    id: PortalId,
    status: PortalStatus,
    at: DateTime<Utc>,
) -> portal_core::portal::Portal {
    portal_core::portal::Portal {
        id,
        tenant_id: tenant,
        company_id: company,
        template_id: None,
        name: name("Bare portal"),
        status,
        version: 1,
        created_at: at,
        updated_at: at,
        activated_at: (status != PortalStatus::Draft).then_some(at),
    }
}

/// BYD-5: a tenant starts with the default reminder cadence and digest hour; every field of the
/// notification settings is written with the tenant and read back.
pub async fn tenant_notification_settings_round_trip(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, _) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    assert_eq!(tenant.notification_settings, NotificationSettings::new());
    let stored = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
    assert_eq!(stored, tenant);

    let mut current = tenant.clone();
    for settings in [
        NotificationSettings {
            reminders: ReminderCadence {
                on_unlock: false,
                days_before_due: None,
                when_overdue: true,
            },
            digest_hour: 23,
        },
        NotificationSettings {
            reminders: ReminderCadence {
                on_unlock: true,
                days_before_due: Some(30),
                when_overdue: false,
            },
            digest_hour: 0,
        },
        NotificationSettings {
            reminders: ReminderCadence {
                on_unlock: false,
                days_before_due: Some(1),
                when_overdue: false,
            },
            digest_hour: 17,
        },
    ] {
        let next = portal_core::tenant::Tenant {
            notification_settings: settings,
            version: current.version + 1,
            ..current.clone()
        };
        commit_writes(
            &storage,
            tenant.id,
            vec![Write::UpdateTenant {
                tenant: next.clone(),
                expected_version: current.version,
            }],
        )
        .await
        .expect("tenant updated");
        let stored = storage.get_tenant(tenant.id).await.expect("storage").expect("tenant");
        assert_eq!(stored, next);
        current = next;
    }
    assert_eq!(
        storage
            .get_tenant(other.id)
            .await
            .expect("storage")
            .expect("tenant")
            .notification_settings,
        NotificationSettings::new(),
        "another tenant's settings are its own"
    );
}

/// BYD-5: the reminder scheduler's walk over every tenant's active portals, in (tenant, portal)
/// order, page after page; portals of any other status stay out.
pub async fn active_portals_page_across_tenants(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (a, admin_a) = fixtures::tenant(&engine, "alpha").await;
    let (b, admin_b) = fixtures::tenant(&engine, "beta").await;
    assert_eq!(storage.list_active_portals(None, 10).await.expect("storage"), vec![]);
    let company_a = engine
        .create_company(&admin_a, name("Client A"))
        .await
        .expect("company")
        .id;
    let company_b = engine
        .create_company(&admin_b, name("Client B"))
        .await
        .expect("company")
        .id;
    let mut ctx = engine.ctx();
    let at = ctx.now;
    let mut active = Vec::new();
    let mut portals = Vec::new();
    for (tenant, company, statuses) in [
        (
            a.id,
            company_a,
            &[
                PortalStatus::Active,
                PortalStatus::Draft,
                PortalStatus::Active,
                PortalStatus::Archived,
                PortalStatus::Active,
            ][..],
        ),
        (
            b.id,
            company_b,
            &[PortalStatus::Completed, PortalStatus::Active, PortalStatus::Active][..],
        ),
    ] {
        let mut writes = Vec::new();
        for status in statuses {
            let p = bare_portal(tenant, company, ctx.ids.next_id(), *status, at);
            if *status == PortalStatus::Active {
                active.push((tenant, p.id));
            }
            portals.push(p.clone());
            writes.push(Write::InsertPortal(Box::new(PortalState {
                portal: p,
                phases: vec![],
                tasks: vec![],
                contacts: vec![],
            })));
        }
        commit_writes(&storage, tenant, writes).await.expect("portals");
    }
    active.sort_unstable();
    assert_eq!(active.len(), 5);
    assert_eq!(storage.list_active_portals(None, 1000).await.expect("storage"), active);
    assert_eq!(
        storage.list_active_portals(None, 0).await.expect("storage"),
        active[..1].to_vec(),
        "a limit of 0 is 1"
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = storage.list_active_portals(after, 2).await.expect("storage");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(*last);
        paged.extend(page);
    }
    assert_eq!(paged, active);
    assert_eq!(
        storage
            .list_active_portals(Some(active[2]), 1000)
            .await
            .expect("storage"),
        active[3..].to_vec()
    );

    // A portal leaving `active` leaves the walk.
    let leaving = portals
        .iter()
        .find(|p| p.id == active[1].1)
        .expect("the portal")
        .clone();
    commit_writes(
        &storage,
        leaving.tenant_id,
        vec![Write::UpdatePortal {
            portal: portal_core::portal::Portal {
                status: PortalStatus::Archived,
                version: leaving.version + 1,
                ..leaving.clone()
            },
            expected_version: leaving.version,
        }],
    )
    .await
    .expect("archived");
    active.remove(1);
    assert_eq!(storage.list_active_portals(None, 1000).await.expect("storage"), active);
}

/// BYD-5: a decision made under a portal's lock that records a reminder recorded already (by
/// another writer since the caller looked) comes back as the refusal, not as a storage failure,
/// and nothing of it is written; a decision with new ledger rows commits.
pub async fn modify_portal_returns_ledger_refusals(storage: Arc<dyn Storage>) {
    let (engine, _) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let s = state(&engine, &admin, portal).await;
    let (pat, _) = pat_and_ian(&s);
    let survey = task_by_title(&s, "Environment survey").id;
    let mut ctx = engine.ctx();
    let t = tenant.id;
    let at = ctx.now;
    let first = reminder(
        t,
        portal,
        survey,
        pat.id,
        ReminderReason::DueSoon,
        Some(date(2026, 3, 4)),
        at,
    );
    commit_writes(&storage, t, vec![Write::InsertReminderRecord(first.clone())])
        .await
        .expect("recorded");

    let later = at + Duration::minutes(5);
    let item = digest_item(ctx.ids.next_id(), &pat, Topic::DueSoon, later, 1);
    let event = notification_event(t, portal, ctx.ids.next_id(), &admin, later);
    let mail = OutboundMessage {
        portal_id: Some(portal),
        contact_id: Some(pat.id),
        kind: MailKind::AutomaticReminder,
        ..message(t, ctx.ids.next_id(), later, 1)
    };
    let outcome_with = |record: ReminderRecord| Outcome {
        writes: vec![
            Write::InsertDigestItem(item.clone()),
            Write::InsertReminderRecord(record),
        ],
        events: vec![event.clone()],
        messages: vec![mail.clone()],
        ..Outcome::default()
    };
    let again = outcome_with(ReminderRecord {
        sent_at: later,
        ..first.clone()
    });
    let decide = move |_: &PortalState| Ok(again.clone());
    let r = storage.modify_portal(t, portal, &decide).await;
    assert!(
        matches!(r, Ok(Some(Err(CommandError::AlreadyExists { entity: "reminder", .. })))),
        "{r:?}"
    );
    assert_eq!(storage.get_message(t, mail.id).await.expect("storage"), None);
    assert!(!has_event(&storage, t, event.id).await);
    assert_eq!(storage.list_digest_items(t, pat.id).await.expect("storage"), vec![]);
    assert_eq!(ledger(&storage, t, portal).await, vec![first.clone()]);
    assert_eq!(
        storage.load_portal(t, portal).await.expect("storage"),
        Some(s.clone()),
        "the portal is unchanged"
    );

    // Digest items another sender took meanwhile: stale, as a refusal too.
    let gone: DigestItemId = ctx.ids.next_id();
    let take = Outcome {
        writes: vec![Write::DeleteDigestItems {
            contact_id: pat.id,
            ids: vec![gone],
        }],
        ..Outcome::default()
    };
    let decide = move |_: &PortalState| Ok(take.clone());
    let r = storage.modify_portal(t, portal, &decide).await;
    assert!(
        matches!(
            r,
            Ok(Some(Err(CommandError::Stale {
                entity: "digest item",
                ..
            })))
        ),
        "{r:?}"
    );

    // A new reminder commits, with everything else of its decision.
    let moved = ReminderRecord {
        due_date: Some(date(2026, 3, 11)),
        sent_at: later,
        ..first.clone()
    };
    let fresh = outcome_with(moved.clone());
    let expected = fresh.clone();
    let decide = move |_: &PortalState| Ok(fresh.clone());
    let r = storage.modify_portal(t, portal, &decide).await.expect("storage");
    assert_eq!(r, Some(Ok(expected)));
    assert_eq!(
        storage.get_message(t, mail.id).await.expect("storage"),
        Some(mail.clone())
    );
    assert!(has_event(&storage, t, event.id).await);
    assert_eq!(
        storage.list_digest_items(t, pat.id).await.expect("storage"),
        vec![item.clone()]
    );
    assert_eq!(ledger(&storage, t, portal).await, sorted_ledger(vec![first, moved]));
}

/// Housekeeping (`AuthRepo::purge_expired`, `Engine::purge_expired`), across tenants: a sign-in
/// attempt counter goes a day after its last attempt (whatever its window, the never-resetting
/// counter of a challenge token too) and not before; a one-time-code challenge a day after it
/// expired; contact and staff sessions once expired. The report counts what went, and what is
/// left works as before.
#[allow(clippy::too_many_lines)]
pub async fn expired_rows_are_purged(storage: Arc<dyn Storage>) {
    use portal_core::access::{AccessChallenge, CODE_LIFETIME, CONTACT_SESSION_IDLE, ContactSession, code_attempt_key};
    use portal_core::auth::ATTEMPT_RETENTION;
    use portal_core::storage::PurgeReport;

    let (engine, clock) = engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let (other, other_admin) = fixtures::tenant(&engine, "other").await;
    let (Principal::Staff(staff), Principal::Staff(other_staff)) = (&admin, &other_admin) else {
        panic!("staff principals")
    };
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fixtures::small_template(), true).await;
    let pat = state(&engine, &admin, portal)
        .await
        .contacts
        .iter()
        .find(|c| c.primary)
        .expect("Pat")
        .clone();
    let link = engine
        .issue_access_link(&admin, portal, pat.id)
        .await
        .expect("issued")
        .link;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    assert_eq!(
        storage.purge_expired(t0).await.expect("storage"),
        PurgeReport::default(),
        "nothing has expired yet"
    );

    // Counters counted at t0, one in another tenant; two of them counted again at t0 + 20 h,
    // one in a new window, one (a challenge token's) in its fixed window.
    let later = t0 + Duration::hours(20);
    let mut challenge = |byte: u8, created_at: DateTime<Utc>| {
        let token = SecretToken::from_bytes([byte; 32]);
        AccessChallenge {
            id: ctx.ids.next_id(),
            tenant_id: tenant.id,
            portal_id: link.portal_id,
            contact_id: link.contact_id,
            link_id: link.id,
            token_hash: token.hash(),
            code_hash: portal_core::access::code_hash(&token, "123456"),
            created_at,
            expires_at: created_at + CODE_LIFETIME,
            used_at: None,
        }
    };
    let live_challenge = challenge(1, t0);
    let recent_challenge = challenge(2, t0 - Duration::hours(1));
    let old_challenge = challenge(3, t0 - Duration::days(2));
    let code_key = code_attempt_key(&live_challenge.token_hash);
    let account = "account:pat@client.example.com";
    let address = "address:198.51.100.7";
    let count = |t: portal_core::id::TenantId, key: String, window: DateTime<Utc>, now: DateTime<Utc>| {
        let storage = storage.clone();
        async move {
            storage
                .count_sign_in_attempt(t, &key, window, now)
                .await
                .expect("storage")
        }
    };
    assert_eq!(count(tenant.id, account.into(), sign_in_window(t0), t0).await, 1);
    assert_eq!(count(other.id, account.into(), sign_in_window(t0), t0).await, 1);
    assert_eq!(count(tenant.id, address.into(), sign_in_window(t0), t0).await, 1);
    assert_eq!(count(tenant.id, code_key.clone(), DateTime::UNIX_EPOCH, t0).await, 1);
    assert_eq!(
        count(tenant.id, address.into(), sign_in_window(later), later).await,
        1,
        "a new window restarts the count"
    );
    assert_eq!(
        count(tenant.id, code_key.clone(), DateTime::UNIX_EPOCH, later).await,
        2,
        "a fixed window keeps counting"
    );

    // Challenges: live, expired half an hour ago, expired two days ago.
    let commit = |w: Write| {
        let storage = storage.clone();
        async move {
            storage
                .commit_outcome(
                    tenant.id,
                    &Outcome {
                        writes: vec![w],
                        ..Outcome::default()
                    },
                )
                .await
                .expect("storage")
                .expect("committed");
        }
    };
    for c in [&live_challenge, &recent_challenge, &old_challenge] {
        commit(Write::InsertAccessChallenge(c.clone())).await;
    }

    // Contact sessions: live, expiring at t0 exactly, expired two days ago.
    let contact_session =
        |byte: u8, started: DateTime<Utc>| ContactSession::start(&SecretToken::from_bytes([byte; 32]), &link, started);
    let live_contact = contact_session(11, t0);
    let edge_contact = contact_session(12, t0 - CONTACT_SESSION_IDLE);
    let old_contact = contact_session(13, t0 - Duration::days(3));
    assert_eq!(edge_contact.expires_at, t0);
    for s in [&live_contact, &edge_contact, &old_contact] {
        commit(Write::InsertContactSession(s.clone())).await;
    }

    // Staff sessions: a live one, and one expired an hour ago in the other tenant.
    let live_staff = session(21, tenant.id, staff.user_id, t0);
    let old_staff = session(
        22,
        other.id,
        other_staff.user_id,
        t0 - STAFF_SESSION_LIFETIME - Duration::hours(1),
    );
    for s in [&live_staff, &old_staff] {
        storage.insert_staff_session(s).await.expect("inserted");
    }

    // At t0: what had expired before (the old challenge for over a day) goes; the challenge
    // expired half an hour ago stays, and so does every counter.
    assert_eq!(
        storage.purge_expired(t0).await.expect("storage"),
        PurgeReport {
            sign_in_attempts: 0,
            access_challenges: 1,
            contact_sessions: 2,
            staff_sessions: 1,
        }
    );
    let find = |c: &AccessChallenge| {
        let (storage, token) = (storage.clone(), c.token_hash);
        async move { storage.find_access_challenge(tenant.id, &token).await.expect("storage") }
    };
    assert_eq!(find(&live_challenge).await, Some(live_challenge.clone()));
    assert_eq!(
        find(&recent_challenge).await,
        Some(recent_challenge.clone()),
        "a challenge expired less than a day ago is kept"
    );
    assert_eq!(find(&old_challenge).await, None);
    assert_eq!(
        storage
            .list_contact_sessions(tenant.id, pat.id, t0)
            .await
            .expect("storage"),
        vec![live_contact.clone()]
    );
    for s in [&edge_contact, &old_contact] {
        assert!(
            !storage
                .delete_contact_session(tenant.id, &s.token_hash)
                .await
                .expect("storage"),
            "the session expiring at {} is gone",
            s.expires_at
        );
    }
    assert_eq!(
        storage
            .staff_session(tenant.id, &live_staff.token_hash)
            .await
            .expect("storage"),
        Some(live_staff.clone())
    );
    assert_eq!(
        storage
            .staff_session(other.id, &old_staff.token_hash)
            .await
            .expect("storage"),
        None
    );

    // At t0 + 23 h every counter of t0 is still within its day; the staff session has expired.
    assert_eq!(
        storage
            .purge_expired(t0 + ATTEMPT_RETENTION - Duration::hours(1))
            .await
            .expect("storage"),
        PurgeReport {
            staff_sessions: 1,
            ..PurgeReport::default()
        }
    );

    // At t0 + 25 h the two counters last counted at t0 go, in both tenants; the two counted
    // again at t0 + 20 h stay. Both challenges expired more than a day ago, the live contact
    // session has expired.
    let t25 = t0 + ATTEMPT_RETENTION + Duration::hours(1);
    assert_eq!(
        storage.purge_expired(t25).await.expect("storage"),
        PurgeReport {
            sign_in_attempts: 2,
            access_challenges: 2,
            contact_sessions: 1,
            staff_sessions: 0,
        }
    );
    assert_eq!(find(&live_challenge).await, None);
    assert_eq!(find(&recent_challenge).await, None);
    assert!(
        !storage
            .delete_contact_session(tenant.id, &live_contact.token_hash)
            .await
            .expect("storage")
    );
    assert_eq!(
        count(tenant.id, code_key.clone(), DateTime::UNIX_EPOCH, t25).await,
        3,
        "a counter counted again later keeps its count"
    );
    assert_eq!(count(tenant.id, address.into(), sign_in_window(later), t25).await, 2);
    assert_eq!(
        count(tenant.id, account.into(), sign_in_window(t0), t25).await,
        1,
        "a purged counter starts again"
    );
    assert_eq!(count(other.id, account.into(), sign_in_window(t0), t25).await, 1);

    // The engine purges at its clock's time.
    assert_eq!(engine.purge_expired().await.expect("purged"), PurgeReport::default());
    clock.advance(Duration::hours(25) + ATTEMPT_RETENTION + Duration::hours(1));
    assert_eq!(
        engine.purge_expired().await.expect("purged"),
        PurgeReport {
            sign_in_attempts: 4,
            ..PurgeReport::default()
        }
    );
    assert_eq!(engine.purge_expired().await.expect("purged"), PurgeReport::default());
}
