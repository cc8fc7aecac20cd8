//! Property tests of the pure core. Each states its property in the `///` comment above it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use crate::auth::SecretToken;
use crate::commands::portal::{StartOnboarding, TransitionEnv, TransitionRequest, start_onboarding, transition_portal};
use crate::commands::task::{block_task, bulk_reassign, complete_task, reopen_task, start_task, unblock_task};
use crate::commands::{Ctx, template::create_template};
use crate::company::Company;
use crate::id::{CompanyId, PortalId, StaffUserId, TaskId, TenantId};
use crate::lifecycle::{ALLOWED_MOVES, PortalStatus, check_move, is_allowed};
use crate::outcome::{Outcome, Write};
use crate::policy::{
    AccessDenied, Action, ContactPrincipal, PortalUserPrincipal, PortalUserRole, Principal, Resource, StaffPrincipal,
    SystemPrincipal, authorize,
};
use crate::portal::{ContactInput, ContactRole, PortalState};
use crate::progress::progress;
use crate::task::{EvidenceType, TaskOwner, TaskStatus};
use crate::template::{TaskKey, Template, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use crate::tenant::{Permission, PermissionSet, StaffUser, Tenant, TenantSettings};
use crate::value::{Description, Email, Name, Priority, Reason, Title};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_440_000, 0).unwrap_or_default()
}

fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn tenant(n: u128) -> Tenant {
    Tenant {
        id: TenantId::from_uuid(uuid(n)),
        name: Name::parse("T").unwrap_or_else(|_| unreachable!()),
        settings: TenantSettings::default(),
        link_settings: crate::tenant::LinkSettings::default(),
        branding: crate::tenant::Branding::default(),
        notification_settings: crate::notifications::NotificationSettings::new(),
        version: 1,
        created_at: now(),
    }
}

fn admin(t: &Tenant) -> Principal {
    Principal::Staff(StaffPrincipal {
        tenant_id: t.id,
        user_id: StaffUserId::from_uuid(uuid(7)),
        email: Email::parse("a@msp.example.com").unwrap_or_else(|_| unreachable!()),
        permissions: PermissionSet::all(),
    })
}

/// A template input from a random DAG: task `i` may depend only on tasks before it.
fn template_input(deps: &[Vec<usize>], phases: usize) -> TemplateInput {
    let per_phase = deps.len().div_ceil(phases.max(1)).max(1);
    let mut out = TemplateInput {
        name: Name::parse("Generated").unwrap_or_else(|_| unreachable!()),
        description: Description::empty(),
        phases: Vec::new(),
    };
    for (i, d) in deps.iter().enumerate() {
        if i % per_phase == 0 {
            out.phases.push(TemplatePhaseInput {
                name: Name::parse(&format!("Phase {}", i / per_phase)).unwrap_or_else(|_| unreachable!()),
                description: Description::empty(),
                tasks: Vec::new(),
            });
        }
        let mut depends_on: Vec<TaskKey> = d.iter().filter(|j| **j < i).map(|j| key(*j)).collect();
        depends_on.dedup();
        if let Some(p) = out.phases.last_mut() {
            p.tasks.push(TemplateTaskInput {
                key: key(i),
                title: Title::parse(&format!("Task {i}")).unwrap_or_else(|_| unreachable!()),
                description: Description::empty(),
                owner: if i % 3 == 0 { TaskOwner::Client } else { TaskOwner::Msp },
                evidence: EvidenceType::None,
                priority: Priority::Normal,
                due_offset: None,
                checklist: vec![],
                depends_on,
                survey: vec![],
            });
        }
    }
    out
}

fn key(i: usize) -> TaskKey {
    TaskKey::parse(&format!("t{i}")).unwrap_or_else(|_| unreachable!())
}

fn build_template(t: &Tenant, input: &TemplateInput, ctx: &mut Ctx) -> Template {
    let (_, outcome) = create_template(&admin(t), ctx, input).unwrap_or_else(|e| panic!("valid template: {e}"));
    match outcome.writes.into_iter().next() {
        Some(Write::InsertTemplate(tpl)) => tpl,
        other => panic!("expected a template insert, got {other:?}"),
    }
}

fn contacts() -> Vec<ContactInput> {
    vec![ContactInput {
        name: Name::parse("Pat").unwrap_or_else(|_| unreachable!()),
        email: Email::parse("pat@client.example.org").unwrap_or_else(|_| unreachable!()),
        role: ContactRole::PrimaryContact,
        primary: true,
    }]
}

fn start(t: &Tenant, template: &Template, ctx: &mut Ctx, activate: bool) -> PortalState {
    let company = Company {
        id: CompanyId::from_uuid(uuid(99)),
        tenant_id: t.id,
        name: Name::parse("Client").unwrap_or_else(|_| unreachable!()),
        version: 1,
        created_at: now(),
    };
    let req = StartOnboarding {
        name: Name::parse("Onboarding").unwrap_or_else(|_| unreachable!()),
        contacts: contacts(),
        activate,
    };
    let (_, outcome) = start_onboarding(
        &admin(t),
        ctx,
        t,
        &company,
        template,
        &req,
        &SecretToken::from_bytes([9; 32]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match outcome.writes.into_iter().next() {
        Some(Write::InsertPortal(s)) => *s,
        other => panic!("expected a portal insert, got {other:?}"),
    }
}

/// Applies an outcome's portal writes to a state, the way storage would.
fn apply(state: &mut PortalState, outcome: &Outcome) {
    for w in &outcome.writes {
        match w {
            Write::UpdateTask { task, expected_version } => {
                let slot = state
                    .tasks
                    .iter_mut()
                    .find(|t| t.id == task.id)
                    .unwrap_or_else(|| panic!("task exists"));
                assert_eq!(slot.version, *expected_version, "compare-and-set on the loaded version");
                *slot = (**task).clone();
            }
            Write::UpdatePortal { portal, .. } => state.portal = portal.clone(),
            // An activation's links: not part of the portal state.
            Write::InsertAccessLink(_) => {}
            other => panic!("unexpected write {other:?}"),
        }
    }
}

fn dags() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..24).prop_flat_map(|n| proptest::collection::vec(proptest::collection::vec(0usize..24, 0..3), n))
}

#[derive(Debug, Clone)]
enum TaskOp {
    Start(usize),
    Complete(usize),
    Reopen(usize),
    Block(usize),
    Unblock(usize),
}

fn ops() -> impl Strategy<Value = Vec<TaskOp>> {
    proptest::collection::vec(
        prop_oneof![
            (0usize..24).prop_map(TaskOp::Start),
            (0usize..24).prop_map(TaskOp::Complete),
            (0usize..24).prop_map(TaskOp::Complete),
            (0usize..24).prop_map(TaskOp::Reopen),
            (0usize..24).prop_map(TaskOp::Block),
            (0usize..24).prop_map(TaskOp::Unblock),
        ],
        0..60,
    )
}

fn all_statuses() -> impl Strategy<Value = PortalStatus> {
    prop::sample::select(PortalStatus::ALL.to_vec())
}

/// ONB-3 written out independently of [`ALLOWED_MOVES`], as the oracle the table is held to.
fn spec_allows(from: PortalStatus, to: PortalStatus) -> bool {
    use PortalStatus::{Active, Archived, Completed, Converted, Draft};
    matches!(
        (from, to),
        (Draft, Active) | (Active, Completed) | (Completed, Converted) | (Archived, Draft)
    ) || (to == Archived && from != Archived)
}

proptest! {
    /// The lifecycle table is closed: it lists exactly the moves of ONB-3, a move is allowed
    /// exactly when it is listed, and every refusal names the current and the
    /// requested status.
    #[test]
    fn lifecycle_table_is_closed(from in all_statuses(), to in all_statuses()) {
        let listed = ALLOWED_MOVES.contains(&(from, to));
        prop_assert_eq!(listed, spec_allows(from, to), "the table is exactly ONB-3");
        prop_assert_eq!(is_allowed(from, to), listed);
        match check_move(from, to) {
            Ok(()) => prop_assert!(listed),
            Err(crate::CommandError::IllegalTransition { from: f, to: t }) => {
                prop_assert!(!listed);
                prop_assert_eq!((f, t), (from, to));
            }
            Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
        }
    }

    /// Driving a portal with random lifecycle requests: each allowed move (with its guards met)
    /// lands exactly on the requested status, each refusal changes nothing and, when the table
    /// forbids the move, names both statuses.
    #[test]
    fn lifecycle_moves_land_or_refuse(requests in proptest::collection::vec((all_statuses(), any::<bool>(), any::<bool>()), 0..20)) {
        let t = tenant(1);
        let mut ctx = Ctx::new(now(), [1; 16]);
        let template = build_template(&t, &template_input(&[vec![], vec![0]], 1), &mut ctx);
        let mut state = start(&t, &template, &mut ctx, false);
        for (to, confirm, finish_tasks) in requests {
            if finish_tasks && state.portal.status == PortalStatus::Active {
                for i in 0..state.tasks.len() {
                    let x = state.tasks[i].clone();
                    let reason = Reason::parse("done").unwrap_or_else(|_| unreachable!());
                    if let Ok(o) = complete_task(&admin(&t), &mut ctx, &state, x.id, x.version, Some(&reason)) {
                        apply(&mut state, &o);
                    }
                }
            }
            let from = state.portal.status;
            let req = TransitionRequest { to, expected_version: state.portal.version, confirm };
            let (company, seed) = (Name::parse("Client").unwrap_or_else(|_| unreachable!()), SecretToken::from_bytes([9; 32]));
            match transition_portal(&admin(&t), &mut ctx, &state, TransitionEnv::new(&t, &company, &seed), req) {
                Ok(outcome) => {
                    prop_assert!(is_allowed(from, to));
                    apply(&mut state, &outcome);
                    prop_assert_eq!(state.portal.status, to);
                    if to == PortalStatus::Completed {
                        prop_assert!(state.tasks.iter().all(|x| x.is_completed()), "completed with open tasks");
                    }
                }
                Err(crate::CommandError::IllegalTransition { from: f, to: t2 }) => {
                    prop_assert!(!is_allowed(from, to));
                    prop_assert_eq!((f, t2), (from, to));
                }
                Err(_) => prop_assert!(is_allowed(from, to), "only guards of allowed moves refuse otherwise"),
            }
        }
    }

    /// After any sequence of task commands on an active portal, a task that is not completed is
    /// `blocked` exactly when it has an incomplete dependency or a manual block; a task only
    /// becomes completed while every dependency is completed; progress (rounded down) stays in
    /// [0, 100] and is 100 exactly when every task is completed.
    #[test]
    fn task_statuses_follow_dependencies(deps in dags(), phases in 1usize..4, ops in ops()) {
        let t = tenant(1);
        let mut ctx = Ctx::new(now(), [2; 16]);
        let template = build_template(&t, &template_input(&deps, phases), &mut ctx);
        let mut state = start(&t, &template, &mut ctx, true);
        let who = admin(&t);
        let reason = Reason::parse("on behalf").unwrap_or_else(|_| unreachable!());
        let n = state.tasks.len();
        for op in ops {
            let pick = |i: usize| state.tasks[i % n].clone();
            let (task, result) = match op {
                TaskOp::Start(i) => { let x = pick(i); let r = start_task(&who, &mut ctx, &state, x.id, x.version); (x, r) }
                TaskOp::Complete(i) => { let x = pick(i); let r = complete_task(&who, &mut ctx, &state, x.id, x.version, Some(&reason)); (x, r) }
                TaskOp::Reopen(i) => { let x = pick(i); let r = reopen_task(&who, &mut ctx, &state, x.id, x.version); (x, r) }
                TaskOp::Block(i) => { let x = pick(i); let r = block_task(&who, &mut ctx, &state, x.id, x.version, &reason); (x, r) }
                TaskOp::Unblock(i) => { let x = pick(i); let r = unblock_task(&who, &mut ctx, &state, x.id, x.version); (x, r) }
            };
            let deps_done = task.depends_on.iter().all(|d| state.task(*d).is_some_and(|x| x.is_completed()));
            if let Ok(outcome) = result {
                apply(&mut state, &outcome);
                let after = state.task(task.id).map(|x| x.status);
                if after == Some(TaskStatus::Completed) && task.status != TaskStatus::Completed {
                    prop_assert!(deps_done, "completed while a dependency was open");
                }
            }
            let completed: HashSet<TaskId> = state.tasks.iter().filter(|x| x.is_completed()).map(|x| x.id).collect();
            for x in state.tasks.iter().filter(|x| !x.is_completed()) {
                let waiting = x.block_reason.is_some() || x.depends_on.iter().any(|d| !completed.contains(d));
                prop_assert_eq!(x.status == TaskStatus::Blocked, waiting, "task {:?}", x.id);
            }
            let p = progress(&state.phases, &state.tasks, now().date_naive());
            prop_assert!(p.percent <= 100);
            prop_assert_eq!(p.percent == 100, completed.len() == n);
        }
    }

    /// Progress is the completed share rounded down: for any counts (up to the 2,000-task limit)
    /// `percent × total ≤ completed × 100 < (percent + 1) × total`, it stays in [0, 100], and it is
    /// 100 exactly when every task is completed (0 for no task).
    #[test]
    fn progress_rounds_down(total in 0usize..=2_000, done in 0usize..=2_000) {
        let completed = done.min(total);
        let p = usize::from(crate::progress::percent(completed, total));
        prop_assert!(p <= 100);
        if total == 0 {
            prop_assert_eq!(p, 0);
        } else {
            prop_assert!(p * total <= completed * 100 && completed * 100 < (p + 1) * total);
            prop_assert_eq!(p == 100, completed == total);
        }
    }

    /// A started portal is a copy: editing (or replacing) its template afterwards leaves the
    /// portal exactly as it was, and the portal's dependencies only point at its own tasks.
    #[test]
    fn started_portal_ignores_template_edits(deps in dags(), new_deps in dags(), phases in 1usize..4) {
        let t = tenant(1);
        let mut ctx = Ctx::new(now(), [3; 16]);
        let template = build_template(&t, &template_input(&deps, phases), &mut ctx);
        let state = start(&t, &template, &mut ctx, false);
        let before = state.clone();
        let outcome = crate::commands::template::replace_template(&admin(&t), &mut ctx, &template, template.version, &template_input(&new_deps, 2))
            .unwrap_or_else(|e| panic!("{e}"));
        let only_template = outcome.writes.iter().all(|w| matches!(w, Write::ReplaceTemplate { .. }));
        prop_assert!(only_template, "replacing a template writes nothing else");
        prop_assert_eq!(&state, &before);
        let ids: HashSet<TaskId> = state.tasks.iter().map(|x| x.id).collect();
        prop_assert!(state.tasks.iter().flat_map(|x| &x.depends_on).all(|d| ids.contains(d)));
        let template_ids: HashSet<uuid::Uuid> = template.tasks().map(|x| x.id.as_uuid()).collect();
        prop_assert!(ids.iter().all(|i| !template_ids.contains(&i.as_uuid())));
    }

    /// Bulk reassignment changes all the listed tasks or none: with an unknown or repeated id in
    /// the list nothing is written; otherwise exactly the listed tasks get the new assignee.
    #[test]
    fn bulk_reassignment_is_all_or_nothing(deps in dags(), picks in proptest::collection::vec(0usize..30, 1..12), bogus in any::<bool>()) {
        let t = tenant(1);
        let mut ctx = Ctx::new(now(), [4; 16]);
        let template = build_template(&t, &template_input(&deps, 2), &mut ctx);
        let state = start(&t, &template, &mut ctx, true);
        let user = StaffUser {
            id: StaffUserId::from_uuid(uuid(8)),
            tenant_id: t.id,
            email: Email::parse("tech@msp.example.com").unwrap_or_else(|_| unreachable!()),
            display_name: Name::parse("Tech").unwrap_or_else(|_| unreachable!()),
            roles: vec![],
            active: true,
            version: 1,
            created_at: now(),
        };
        let mut ids: Vec<TaskId> = picks.iter().map(|i| state.tasks[i % state.tasks.len()].id).collect();
        if bogus {
            ids.push(TaskId::from_uuid(uuid(12345)));
        }
        let unique: HashSet<TaskId> = ids.iter().copied().collect();
        let valid = !bogus && unique.len() == ids.len();
        match bulk_reassign(&admin(&t), &mut ctx, &state, &ids, Some(&user)) {
            Ok(outcome) => {
                prop_assert!(valid);
                let mut next = state.clone();
                apply(&mut next, &outcome);
                for x in &next.tasks {
                    let want = if unique.contains(&x.id) { Some(user.id) } else { None };
                    prop_assert_eq!(x.assignee, want);
                }
            }
            Err(_) => prop_assert!(!valid),
        }
    }

    /// `authorize` never grants anything across tenants, whatever the principal's kind,
    /// permissions or scope, and whatever ids the resource carries.
    #[test]
    fn authorize_never_crosses_tenants(
        kind in 0u8..4,
        perms in proptest::collection::vec(prop::sample::select(Permission::ALL.to_vec()), 0..9),
        action in prop::sample::select(Action::ALL.to_vec()),
        resource_kind in 0u8..4,
        same_ids in any::<bool>(),
        status in all_statuses(),
        a in 1u128..1000,
        b in 1u128..1000,
    ) {
        prop_assume!(a != b);
        let (ta, tb) = (TenantId::from_uuid(uuid(a)), TenantId::from_uuid(uuid(b)));
        let portal = PortalId::from_uuid(uuid(5));
        let company = CompanyId::from_uuid(uuid(6));
        let email = Email::parse("x@y.example.com").unwrap_or_else(|_| unreachable!());
        let principal = match kind {
            0 => Principal::Staff(StaffPrincipal { tenant_id: ta, user_id: StaffUserId::from_uuid(uuid(1)), email, permissions: perms.into_iter().collect() }),
            1 => Principal::Contact(ContactPrincipal { tenant_id: ta, portal_id: portal, contact_id: crate::id::ContactId::from_uuid(uuid(2)), email }),
            2 => Principal::PortalUser(PortalUserPrincipal { tenant_id: ta, user_id: crate::id::PortalUserId::from_uuid(uuid(3)), email, companies: vec![company], sites: None, role: PortalUserRole::Admin }),
            _ => Principal::System(SystemPrincipal { tenant_id: ta, worker: "outbox" }),
        };
        // With `same_ids` the resource carries exactly the principal's own portal and company ids.
        let (p, c) = if same_ids { (portal, company) } else { (PortalId::from_uuid(uuid(50)), CompanyId::from_uuid(uuid(60))) };
        let resource = match resource_kind {
            0 => Resource::Tenant { tenant: tb },
            1 => Resource::Company { tenant: tb, company: c },
            2 => Resource::Portal { tenant: tb, company: c, portal: p, status },
            _ => Resource::Task { tenant: tb, company: c, portal: p, status, owner: TaskOwner::Client },
        };
        prop_assert_eq!(authorize(&principal, action, &resource), Err(AccessDenied::OtherTenant));
    }
}

#[test]
fn contacts_see_only_their_live_portal() {
    let t = TenantId::from_uuid(uuid(1));
    let portal = PortalId::from_uuid(uuid(2));
    let company = CompanyId::from_uuid(uuid(3));
    let contact = Principal::Contact(ContactPrincipal {
        tenant_id: t,
        portal_id: portal,
        contact_id: crate::id::ContactId::from_uuid(uuid(4)),
        email: Email::parse("c@client.example.org").unwrap_or_else(|_| unreachable!()),
    });
    let task = |status, owner| Resource::Task {
        tenant: t,
        company,
        portal,
        status,
        owner,
    };
    assert_eq!(
        authorize(
            &contact,
            Action::WorkOnTask,
            &task(PortalStatus::Active, TaskOwner::Client)
        ),
        Ok(())
    );
    assert_eq!(
        authorize(
            &contact,
            Action::WorkOnTask,
            &task(PortalStatus::Active, TaskOwner::Msp)
        ),
        Err(AccessDenied::Forbidden {
            action: Action::WorkOnTask
        })
    );
    assert_eq!(
        authorize(
            &contact,
            Action::ReadTask,
            &task(PortalStatus::Draft, TaskOwner::Client)
        ),
        Err(AccessDenied::OutOfScope)
    );
    let other = Resource::Portal {
        tenant: t,
        company,
        portal: PortalId::from_uuid(uuid(9)),
        status: PortalStatus::Active,
    };
    assert_eq!(
        authorize(&contact, Action::ReadPortal, &other),
        Err(AccessDenied::OutOfScope)
    );
    assert_eq!(
        authorize(
            &contact,
            Action::ManageTask,
            &task(PortalStatus::Active, TaskOwner::Client)
        ),
        Err(AccessDenied::Forbidden {
            action: Action::ManageTask
        })
    );
}

#[test]
fn staff_permissions_gate_actions() {
    let t = TenantId::from_uuid(uuid(1));
    let staff = |perms: &[Permission]| {
        Principal::Staff(StaffPrincipal {
            tenant_id: t,
            user_id: StaffUserId::from_uuid(uuid(2)),
            email: Email::parse("s@msp.example.com").unwrap_or_else(|_| unreachable!()),
            permissions: perms.iter().copied().collect(),
        })
    };
    let tenant_res = Resource::Tenant { tenant: t };
    assert!(authorize(&staff(&[]), Action::ReadTenant, &tenant_res).is_ok());
    assert!(authorize(&staff(&[]), Action::ReadPortal, &tenant_res).is_err());
    assert!(authorize(&staff(&[Permission::ReadOnboarding]), Action::ReadPortal, &tenant_res).is_ok());
    assert!(authorize(&staff(&[Permission::ReadOnboarding]), Action::EditPortal, &tenant_res).is_err());
    assert!(authorize(&staff(&[Permission::ManageOnboarding]), Action::ReadPortal, &tenant_res).is_ok());
    assert!(
        authorize(
            &staff(&[Permission::ManageOnboarding]),
            Action::ManageUsers,
            &tenant_res
        )
        .is_err()
    );
    assert!(authorize(&staff(&[Permission::ManageUsers]), Action::ManageUsers, &tenant_res).is_ok());
    assert!(
        authorize(
            &staff(&[Permission::ManageSettings]),
            Action::ManageSettings,
            &tenant_res
        )
        .is_ok()
    );
    let system = Principal::System(SystemPrincipal {
        tenant_id: t,
        worker: "w",
    });
    assert!(authorize(&system, Action::ReadPortal, &tenant_res).is_ok());
    assert!(authorize(&system, Action::DeletePortal, &tenant_res).is_err());
}
