//! Differential property test: random command sequences applied through the in-memory reference
//! model and through each real backend give the same result for every command and leave the same
//! observable state.

use std::sync::Arc;

use portal_core::commands::contact::ContactPatch;
use portal_core::commands::draft::TaskInput;
use portal_core::commands::portal::{StartOnboarding, TransitionRequest};
use portal_core::commands::{self};
use portal_core::id::{CompanyId, PortalId, StaffUserId, TemplateId};
use portal_core::lifecycle::PortalStatus;
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::service::{Engine, ServiceError};
use portal_core::storage::{ActivityFilter, PageRequest, PortalFilter, Storage};
use portal_core::task::{EvidenceType, TaskOwner};
use portal_core::value::{CommentBody, Description, Priority, Reason, Title};
use portal_tests::fixtures::{self, name};
use portal_tests::harness::{self, TestStore};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Company,
    StaffUser,
    Template {
        phases: usize,
        per_phase: usize,
    },
    ReplaceTemplate {
        template: usize,
        phases: usize,
    },
    Start {
        company: usize,
        template: usize,
        activate: bool,
    },
    Transition {
        portal: usize,
        to: PortalStatus,
        confirm: bool,
    },
    Begin {
        portal: usize,
        task: usize,
    },
    Complete {
        portal: usize,
        task: usize,
        reason: bool,
    },
    Reopen {
        portal: usize,
        task: usize,
    },
    Block {
        portal: usize,
        task: usize,
    },
    Unblock {
        portal: usize,
        task: usize,
    },
    Assign {
        portal: usize,
        task: usize,
        user: Option<usize>,
    },
    Bulk {
        portal: usize,
        tasks: Vec<usize>,
        user: Option<usize>,
    },
    Comment {
        portal: usize,
        task: usize,
        question: bool,
    },
    AddTask {
        portal: usize,
        phase: usize,
        dep: Option<usize>,
    },
    DeleteTask {
        portal: usize,
        task: usize,
    },
    DeletePortal {
        portal: usize,
        confirm: bool,
    },
    AddContact {
        portal: usize,
        email: usize,
        primary: bool,
    },
    EditContact {
        portal: usize,
        contact: usize,
        email: Option<usize>,
        primary: Option<bool>,
    },
    RemoveContact {
        portal: usize,
        contact: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0usize..8;
    prop_oneof![
        1 => Just(Op::Company),
        1 => Just(Op::StaffUser),
        1 => (1usize..4, 1usize..5).prop_map(|(phases, per_phase)| Op::Template { phases, per_phase }),
        1 => (i(), 1usize..3).prop_map(|(template, phases)| Op::ReplaceTemplate { template, phases }),
        2 => (i(), i(), any::<bool>()).prop_map(|(company, template, activate)| Op::Start { company, template, activate }),
        2 => (i(), prop::sample::select(PortalStatus::ALL.to_vec()), any::<bool>()).prop_map(|(portal, to, confirm)| Op::Transition { portal, to, confirm }),
        1 => (i(), 0usize..20).prop_map(|(portal, task)| Op::Begin { portal, task }),
        5 => (i(), 0usize..20, any::<bool>()).prop_map(|(portal, task, reason)| Op::Complete { portal, task, reason }),
        1 => (i(), 0usize..20).prop_map(|(portal, task)| Op::Reopen { portal, task }),
        1 => (i(), 0usize..20).prop_map(|(portal, task)| Op::Block { portal, task }),
        1 => (i(), 0usize..20).prop_map(|(portal, task)| Op::Unblock { portal, task }),
        1 => (i(), 0usize..20, proptest::option::of(i())).prop_map(|(portal, task, user)| Op::Assign { portal, task, user }),
        1 => (i(), proptest::collection::vec(0usize..20, 1..5), proptest::option::of(i())).prop_map(|(portal, tasks, user)| Op::Bulk { portal, tasks, user }),
        1 => (i(), 0usize..20, any::<bool>()).prop_map(|(portal, task, question)| Op::Comment { portal, task, question }),
        1 => (i(), 0usize..4, proptest::option::of(0usize..20)).prop_map(|(portal, phase, dep)| Op::AddTask { portal, phase, dep }),
        1 => (i(), 0usize..20).prop_map(|(portal, task)| Op::DeleteTask { portal, task }),
        1 => (i(), any::<bool>()).prop_map(|(portal, confirm)| Op::DeletePortal { portal, confirm }),
        1 => (i(), 0usize..6, any::<bool>()).prop_map(|(portal, email, primary)| Op::AddContact { portal, email, primary }),
        2 => (i(), 0usize..6, proptest::option::of(0usize..6), proptest::option::of(any::<bool>()))
            .prop_map(|(portal, contact, email, primary)| Op::EditContact { portal, contact, email, primary }),
        1 => (i(), 0usize..6).prop_map(|(portal, contact)| Op::RemoveContact { portal, contact }),
    ]
}

#[derive(Default)]
struct Ids {
    companies: Vec<CompanyId>,
    users: Vec<StaffUserId>,
    templates: Vec<TemplateId>,
    portals: Vec<PortalId>,
}

fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[i % v.len()])
}

fn outcome<T>(r: Result<T, ServiceError>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(ServiceError::Command(e)) => e.code().to_owned(),
        Err(ServiceError::Storage(e)) => panic!("the store failed: {e}"),
    }
}

/// Runs the ops and returns what each returned, then a snapshot of everything observable.
async fn run(storage: Arc<dyn Storage>, ops: &[Op]) -> (Vec<String>, String) {
    let (engine, _) = harness::engine(storage.clone());
    let (tenant, admin) = fixtures::tenant(&engine, "acme").await;
    let mut ids = Ids::default();
    // A baseline so most commands land on something: two companies, two staff users, two
    // templates, an active portal and a draft one.
    let baseline = [
        Op::Company,
        Op::Company,
        Op::StaffUser,
        Op::StaffUser,
        Op::Template {
            phases: 3,
            per_phase: 4,
        },
        Op::Template {
            phases: 2,
            per_phase: 2,
        },
        Op::Start {
            company: 0,
            template: 0,
            activate: true,
        },
        Op::Start {
            company: 1,
            template: 1,
            activate: false,
        },
    ];
    for (n, op) in baseline.iter().enumerate() {
        assert_eq!(
            apply(&engine, &admin, &mut ids, 1_000 + n, op).await,
            "ok",
            "baseline {op:?}"
        );
    }
    let mut trace = Vec::with_capacity(ops.len());
    for (n, op) in ops.iter().enumerate() {
        trace.push(apply(&engine, &admin, &mut ids, n, op).await);
    }
    let t = tenant.id;
    let mut snap = Vec::new();
    snap.push(format!("{:?}", storage.get_tenant(t).await.expect("storage")));
    snap.push(format!("{:?}", storage.list_roles(t).await.expect("storage")));
    snap.push(format!(
        "{:?}",
        storage
            .list_staff_users(t, PageRequest::first(500))
            .await
            .expect("storage")
    ));
    snap.push(format!(
        "{:?}",
        storage
            .list_companies(t, PageRequest::first(500))
            .await
            .expect("storage")
    ));
    snap.push(format!(
        "{:?}",
        storage
            .list_templates(t, PageRequest::first(500))
            .await
            .expect("storage")
    ));
    snap.push(format!(
        "{:?}",
        storage
            .list_portals(t, PortalFilter::default(), PageRequest::first(500))
            .await
            .expect("storage")
    ));
    for p in &ids.portals {
        let state = storage.load_portal(t, *p).await.expect("storage");
        snap.push(format!("{state:?}"));
        for task in state.iter().flat_map(|s| &s.tasks) {
            snap.push(format!(
                "{:?}",
                storage.list_comments_for_task(t, task.id).await.expect("storage")
            ));
        }
    }
    snap.push(format!(
        "{:?}",
        storage
            .list_activity(t, &ActivityFilter::default(), PageRequest::first(500))
            .await
            .expect("storage")
    ));
    snap.push(format!(
        "{:?}",
        storage
            .list_messages(t, None, PageRequest::first(500))
            .await
            .expect("storage")
    ));
    (trace, snap.join("\n"))
}

async fn apply(engine: &Engine, admin: &Principal, ids: &mut Ids, n: usize, op: &Op) -> String {
    let reason = Reason::parse("on the client's behalf").expect("reason");
    let task_of = |state: &portal_core::portal::PortalState, i: usize| {
        pick(&state.tasks.iter().map(|t| (t.id, t.version)).collect::<Vec<_>>(), i)
    };
    match op {
        Op::Company => match engine.create_company(admin, name(&format!("Company {n}"))).await {
            Ok(c) => {
                ids.companies.push(c.id);
                "ok".to_owned()
            }
            Err(e) => outcome::<()>(Err(e)),
        },
        Op::StaffUser => {
            let r = engine
                .create_staff_user(
                    admin,
                    fixtures::email(&format!("tech{n}@acme.example.com")),
                    name("Tech"),
                    &[],
                )
                .await;
            if let Ok(id) = &r {
                ids.users.push(*id);
            }
            outcome(r)
        }
        Op::Template { phases, per_phase } => {
            let r = engine
                .create_template(admin, &fixtures::sized_template(*phases, *per_phase))
                .await;
            if let Ok(id) = &r {
                ids.templates.push(*id);
            }
            outcome(r)
        }
        Op::ReplaceTemplate { template, phases } => {
            let Some(id) = pick(&ids.templates, *template) else {
                return "skip".into();
            };
            let version = engine
                .storage()
                .get_template(admin.tenant_id(), id)
                .await
                .expect("storage")
                .map_or(0, |t| t.version);
            outcome(
                engine
                    .replace_template(admin, id, version, &fixtures::sized_template(*phases, 2))
                    .await,
            )
        }
        Op::Start {
            company,
            template,
            activate,
        } => {
            let (Some(c), Some(t)) = (pick(&ids.companies, *company), pick(&ids.templates, *template)) else {
                return "skip".into();
            };
            let req = StartOnboarding {
                name: name(&format!("Portal {n}")),
                contacts: fixtures::contacts(),
                activate: *activate,
            };
            let r = engine.start_onboarding(admin, c, t, &req).await;
            if let Ok(id) = &r {
                ids.portals.push(*id);
            }
            outcome(r)
        }
        Op::Transition { portal, to, confirm } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let version = engine
                .storage()
                .get_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
                .map_or(0, |p| p.version);
            outcome(
                engine
                    .transition_portal(
                        admin,
                        p,
                        TransitionRequest {
                            to: *to,
                            expected_version: version,
                            confirm: *confirm,
                        },
                    )
                    .await,
            )
        }
        Op::DeletePortal { portal, confirm } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let name = engine
                .storage()
                .get_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
                .map(|p| p.name.to_string());
            let confirmation = if *confirm {
                name.unwrap_or_default()
            } else {
                "no".to_owned()
            };
            outcome(engine.delete_portal(admin, p, &confirmation).await)
        }
        Op::AddContact { portal, email, primary } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let input = ContactInput {
                name: name(&format!("Contact {n}")),
                email: fixtures::email(&format!("c{email}@client.example.org")),
                role: ContactRole::It,
                primary: *primary,
            };
            outcome(engine.add_contact(admin, p, &input).await)
        }
        Op::EditContact { portal, contact, .. } | Op::RemoveContact { portal, contact } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let Some(state) = engine
                .storage()
                .load_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
            else {
                return "gone".into();
            };
            let Some((c, v)) = pick(
                &state.contacts.iter().map(|c| (c.id, c.version)).collect::<Vec<_>>(),
                *contact,
            ) else {
                return "no contact".into();
            };
            match op {
                Op::EditContact { email, primary, .. } => {
                    let patch = ContactPatch {
                        email: email.map(|e| fixtures::email(&format!("c{e}@client.example.org"))),
                        primary: *primary,
                        ..ContactPatch::default()
                    };
                    outcome(engine.update_contact(admin, p, c, v, &patch).await)
                }
                _ => outcome(engine.remove_contact(admin, p, c, v).await),
            }
        }
        Op::Begin { portal, task }
        | Op::Complete { portal, task, .. }
        | Op::Reopen { portal, task }
        | Op::Block { portal, task }
        | Op::Unblock { portal, task }
        | Op::Assign { portal, task, .. }
        | Op::Comment { portal, task, .. }
        | Op::DeleteTask { portal, task } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let Some(state) = engine
                .storage()
                .load_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
            else {
                return outcome(engine.load_portal(admin, p).await);
            };
            let Some((t, v)) = task_of(&state, *task) else {
                return "no task".into();
            };
            let r = match op {
                Op::Begin { .. } => {
                    engine
                        .portal_command(admin, p, |ctx, s| commands::task::start_task(admin, ctx, s, t, v))
                        .await
                }
                Op::Complete { reason: with, .. } => {
                    engine.complete_task(admin, p, t, v, with.then(|| reason.clone())).await
                }
                Op::Reopen { .. } => {
                    engine
                        .portal_command(admin, p, |ctx, s| commands::task::reopen_task(admin, ctx, s, t, v))
                        .await
                }
                Op::Block { .. } => {
                    engine
                        .portal_command(admin, p, |ctx, s| {
                            commands::task::block_task(admin, ctx, s, t, v, &reason)
                        })
                        .await
                }
                Op::Unblock { .. } => {
                    engine
                        .portal_command(admin, p, |ctx, s| commands::task::unblock_task(admin, ctx, s, t, v))
                        .await
                }
                Op::Assign { user, .. } => {
                    engine
                        .assign_task(admin, p, t, v, user.and_then(|u| pick(&ids.users, u)))
                        .await
                }
                Op::Comment { question, .. } => {
                    engine
                        .portal_command(admin, p, |ctx, s| {
                            commands::task::add_comment(
                                admin,
                                ctx,
                                s,
                                t,
                                CommentBody::parse("Any news?").expect("body"),
                                *question,
                            )
                            .map(|(_, o)| o)
                        })
                        .await
                }
                _ => {
                    engine
                        .portal_command(admin, p, |ctx, s| commands::draft::delete_task(admin, ctx, s, t))
                        .await
                }
            };
            outcome(r)
        }
        Op::Bulk { portal, tasks, user } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let Some(state) = engine
                .storage()
                .load_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
            else {
                return "gone".into();
            };
            let list: Vec<_> = tasks
                .iter()
                .filter_map(|i| task_of(&state, *i).map(|(t, _)| t))
                .collect();
            outcome(
                engine
                    .bulk_reassign(admin, p, &list, user.and_then(|u| pick(&ids.users, u)))
                    .await,
            )
        }
        Op::AddTask { portal, phase, dep } => {
            let Some(p) = pick(&ids.portals, *portal) else {
                return "skip".into();
            };
            let Some(state) = engine
                .storage()
                .load_portal(admin.tenant_id(), p)
                .await
                .expect("storage")
            else {
                return "gone".into();
            };
            let Some(ph) = pick(&state.phases.iter().map(|p| p.id).collect::<Vec<_>>(), *phase) else {
                return "no phase".into();
            };
            let input = TaskInput {
                title: Title::parse(&format!("Added {n}")).expect("title"),
                description: Description::empty(),
                owner: TaskOwner::Client,
                evidence: EvidenceType::FileUpload,
                priority: Priority::Low,
                due_offset: None,
                checklist: vec![],
                depends_on: dep
                    .and_then(|d| task_of(&state, d))
                    .map(|(t, _)| t)
                    .into_iter()
                    .collect(),
                survey: vec![],
            };
            outcome(
                engine
                    .portal_command(admin, p, |ctx, s| {
                        commands::draft::add_task(admin, ctx, s, ph, &input, Some(0)).map(|(_, o)| o)
                    })
                    .await,
            )
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn differential(make: fn(&tokio::runtime::Runtime) -> Option<TestStore>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..40))| {
        let Some(store) = make(&rt) else { return Ok(()) };
        let model = harness::memory();
        let (expected_trace, expected) = rt.block_on(run(model.storage.clone(), &ops));
        let (trace, actual) = rt.block_on(run(store.storage.clone(), &ops));
        prop_assert_eq!(&trace, &expected_trace, "every command returns what the model returns");
        prop_assert_eq!(actual, expected, "the observable state equals the model's");
        rt.block_on(store.cleanup());
    });
}

#[test]
fn sqlite_matches_the_model() {
    differential(|rt| Some(rt.block_on(harness::sqlite())));
}

#[test]
fn postgres_matches_the_model() {
    differential(|rt| rt.block_on(harness::postgres()));
}
