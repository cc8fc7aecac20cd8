//! Checks of the PostgreSQL specifics against the in-memory reference store: one engine story
//! run over both with the same clock and entropy must leave the same observable state, and raw
//! outcomes must be refused with the same error, clash by clash (the write paths' own checks,
//! the diagnosis of multi-row inserts and the constraint mapping).
//!
//! Each test makes a fresh database on the server named by `PORTAL_TEST_PG_URL` (the local
//! test server by default) and drops it when it passes; without a server they say so and pass.
//! The cross-backend conformance suite, the concurrency tests and the PERF-4 benchmark live in
//! `portal-tests` and `portal-benches`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use portal_core::commands::admin::FirstAdmin;
use portal_core::commands::draft::{self, TaskInput, TaskPatch};
use portal_core::commands::portal::{StartOnboarding, TransitionRequest};
use portal_core::commands::task;
use portal_core::error::CommandError;
use portal_core::id::{EventId, PortalId, TenantId};
use portal_core::lifecycle::PortalStatus;
use portal_core::memory::MemoryStorage;
use portal_core::outcome::{Outcome, Write};
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole, PortalState};
use portal_core::service::{Engine, ServiceError};
use portal_core::storage::{
    ActivityFilter, Clock, Entropy, PageRequest, PortalFilter, PortalRepo, Storage, StorageError,
};
use portal_core::task::{EvidenceType, SurveyKind, TaskOwner, TaskStatus};
use portal_core::template::{SurveyQuestionInput, TaskKey, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use portal_core::tenant::{Permission, PermissionSet, TenantSettings, TimeZone};
use portal_core::value::{CommentBody, DayOffset, Description, Email, ItemText, Name, Priority, Reason, Title};
use sqlx::Connection;

use crate::PgStorage;

/// A per-test database, dropped by [`Scratch::finish`].
struct Scratch {
    storage: Arc<PgStorage>,
    admin_url: String,
    db: String,
}

fn admin_url() -> String {
    std::env::var("PORTAL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn scratch() -> Option<Scratch> {
    let admin_url = admin_url();
    let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await else {
        eprintln!("*** skipped: no PostgreSQL server at {admin_url} ***");
        return None;
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let db = format!(
        "portal_pg_unit_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Utc::now().timestamp_micros()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&mut admin)
        .await
        .expect("create the scratch database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL");
    let storage = PgStorage::connect(&format!("{base}/{db}"))
        .await
        .expect("connect and migrate");
    Some(Scratch {
        storage: Arc::new(storage),
        admin_url,
        db,
    })
}

impl Scratch {
    async fn finish(self) {
        self.storage.pool().close().await;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("admin connection");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.db
        )))
        .execute(&mut admin)
        .await
        .expect("drop the scratch database");
    }
}

/// A clock that moves a millisecond per reading, so both engines see the same times.
struct StepClock(Mutex<DateTime<Utc>>);

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += Duration::milliseconds(1);
        *now
    }
}

/// Entropy from a counter, so both engines make the same ids.
struct CounterEntropy(AtomicU64);

impl Entropy for CounterEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self
            .0
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n.to_le_bytes()[i % 8] ^ (i as u8);
        }
    }
}

fn engine(storage: Arc<dyn Storage>) -> Engine {
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("a time");
    Engine::new(
        storage,
        Arc::new(StepClock(Mutex::new(start))),
        Arc::new(CounterEntropy(AtomicU64::new(1))),
        &portal_core::crypto::MasterKey::from_material(&[7u8; 32]).expect("a master key"),
    )
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("name")
}

fn text(s: &str) -> ItemText {
    ItemText::parse(s).expect("text")
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

fn template_task(key: &str, owner: TaskOwner, evidence: EvidenceType, deps: &[&str]) -> TemplateTaskInput {
    TemplateTaskInput {
        key: TaskKey::parse(key).expect("key"),
        title: Title::parse(&format!("Do {key}")).expect("title"),
        description: Description::parse("Line one\nline two").expect("description"),
        owner,
        evidence,
        priority: Priority::High,
        due_offset: Some(DayOffset::parse(3).expect("offset")),
        checklist: vec![text("Prepare"), text("Confirm"), text("Écrire ünïcode")],
        depends_on: deps.iter().map(|d| TaskKey::parse(d).expect("key")).collect(),
        survey: if evidence == EvidenceType::Survey {
            vec![
                SurveyQuestionInput {
                    text: text("How many users?"),
                    kind: SurveyKind::Text,
                    options: vec![],
                },
                SurveyQuestionInput {
                    text: text("Mail platform?"),
                    kind: SurveyKind::SingleChoice,
                    options: vec![text("Microsoft 365"), text("Google Workspace")],
                },
            ]
        } else {
            vec![]
        },
    }
}

fn template_input(label: &str) -> TemplateInput {
    use EvidenceType as E;
    use TaskOwner::{Client, Msp};
    TemplateInput {
        name: name(label),
        description: Description::parse("Kick-off to handover").expect("description"),
        phases: vec![
            TemplatePhaseInput {
                name: name("Kick-off"),
                description: Description::empty(),
                tasks: vec![
                    template_task("kickoff", Msp, E::Meeting, &[]),
                    template_task("msa", Client, E::Signature, &["kickoff"]),
                ],
            },
            TemplatePhaseInput {
                name: name("Discovery"),
                description: Description::empty(),
                tasks: vec![
                    template_task("survey", Client, E::Survey, &["msa"]),
                    template_task("creds", Client, E::Credentials, &["msa"]),
                ],
            },
            TemplatePhaseInput {
                name: name("Go-live"),
                description: Description::empty(),
                // Listed in an order that is not id order on purpose: see `normalise`.
                tasks: vec![template_task("cutover", Msp, E::None, &["survey", "creds"])],
            },
        ],
    }
}

/// What a step answered, with storage failures as test failures.
fn answer<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(ServiceError::Command(e)) => format!("refused {e:?}"),
        Err(ServiceError::Storage(e)) => panic!("storage failed: {e}"),
    }
}

/// The engine story both stores run; returns each step's answer.
#[allow(clippy::too_many_lines)]
async fn story(e: &Engine) -> (TenantId, Vec<String>) {
    let mut log = Vec::new();
    let settings = TenantSettings {
        time_zone: TimeZone::parse("Europe/Amsterdam").expect("zone"),
        ..TenantSettings::default()
    };
    let admin = FirstAdmin {
        email: email("admin@msp.example.com"),
        display_name: name("Ada Admin"),
    };
    let tenant = e
        .create_tenant(name("MSP"), settings, Some(admin))
        .await
        .expect("tenant");
    let s = e.storage();
    let user = s
        .find_staff_user_by_email(tenant.id, &email("admin@msp.example.com"))
        .await
        .expect("storage")
        .expect("admin");
    let p: Principal = e
        .staff_principal(tenant.id, user.id)
        .await
        .expect("storage")
        .expect("principal");

    let perms: PermissionSet = [Permission::ReadOnboarding, Permission::ManageOnboarding]
        .into_iter()
        .collect();
    let zed = e.create_role(&p, name("zed"), perms).await;
    log.push(answer(e.create_role(&p, name("Auditors"), PermissionSet::EMPTY).await));
    log.push(answer(e.create_role(&p, name("Auditors"), perms).await));
    log.push(answer(e.create_role(&p, name("Émile"), perms).await));
    let zed = zed.expect("role");
    log.push(answer(
        e.create_staff_user(&p, email("bob@msp.example.com"), name("Bob"), &[zed, user.roles[0]])
            .await,
    ));
    log.push(answer(
        e.create_staff_user(&p, email("bob@msp.example.com"), name("Bob 2"), &[zed])
            .await,
    ));
    log.push(answer(
        e.update_tenant(&p, 1, name("MSP renamed"), TenantSettings::default(), None, None)
            .await,
    ));
    log.push(answer(
        e.update_tenant(&p, 1, name("MSP stale"), TenantSettings::default(), None, None)
            .await,
    ));

    let company = e.create_company(&p, name("Client Co")).await.expect("company");
    let other_company = e.create_company(&p, name("Other Co")).await.expect("company");
    log.push(answer(
        e.create_site(
            &p,
            company.id,
            name("HQ"),
            Description::parse("1 Main St").expect("address"),
        )
        .await,
    ));
    log.push(answer(
        e.create_site(&p, company.id, name("Depot"), Description::empty()).await,
    ));

    let template = e
        .create_template(&p, &template_input("Standard"))
        .await
        .expect("template");
    let spare = e.create_template(&p, &template_input("Spare")).await.expect("template");
    let mut replaced = template_input("Standard v2");
    replaced.phases[1].tasks.pop();
    replaced.phases[2].tasks[0].depends_on.pop();
    replaced.phases.push(TemplatePhaseInput {
        name: name("Aftercare"),
        description: Description::empty(),
        tasks: vec![template_task(
            "review",
            TaskOwner::Msp,
            EvidenceType::Survey,
            &["cutover", "kickoff"],
        )],
    });
    log.push(answer(e.replace_template(&p, template, 1, &replaced).await));
    log.push(answer(e.replace_template(&p, template, 1, &replaced).await));
    log.push(answer(e.delete_template(&p, spare, 1).await));

    let contacts = vec![
        ContactInput {
            name: name("Pat Primary"),
            email: email("pat@client.example.org"),
            role: ContactRole::PrimaryContact,
            primary: true,
        },
        ContactInput {
            name: name("Ian IT"),
            email: email("ian@client.example.org"),
            role: ContactRole::It,
            primary: false,
        },
    ];
    let start = |label: &str| StartOnboarding {
        name: name(label),
        contacts: contacts.clone(),
        activate: false,
    };
    let portal = e
        .start_onboarding(&p, company.id, template, &start("Onboarding"))
        .await
        .expect("portal");
    let doomed = e
        .start_onboarding(&p, other_company.id, template, &start("Doomed"))
        .await
        .expect("portal");
    let state = |_: &Engine, id: PortalId| {
        let p = p.clone();
        async move { e.load_portal(&p, id).await.expect("portal state") }
    };

    // Draft edits: a phase, a task with dependencies, a patch, a move, deletes.
    let st = state(e, portal).await;
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            draft::add_phase(&p, ctx, s, name("Extra"), Description::empty(), Some(1)).map(|(_, o)| o)
        })
        .await,
    ));
    let st2 = state(e, portal).await;
    let extra = st2.phases[1].id;
    let deps = vec![st.tasks[0].id, st.tasks[1].id];
    let input = TaskInput {
        title: Title::parse("Extra task").expect("title"),
        description: Description::empty(),
        owner: TaskOwner::Client,
        evidence: EvidenceType::Survey,
        priority: Priority::Low,
        due_offset: None,
        checklist: vec![text("one"), text("two")],
        depends_on: deps,
        survey: vec![SurveyQuestionInput {
            text: text("Yes?"),
            kind: SurveyKind::YesNo,
            options: vec![],
        }],
    };
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            draft::add_task(&p, ctx, s, extra, &input, None).map(|(_, o)| o)
        })
        .await,
    ));
    let st3 = state(e, portal).await;
    let added = st3
        .tasks
        .iter()
        .find(|t| t.title.as_str() == "Extra task")
        .expect("added")
        .clone();
    let patch = TaskPatch {
        checklist: Some(vec![text("two"), text("three")]),
        depends_on: Some(vec![st.tasks[1].id]),
        due_date: Some(Some(chrono::NaiveDate::from_ymd_opt(2026, 4, 1).expect("date"))),
        ..TaskPatch::default()
    };
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            draft::update_task(&p, ctx, s, added.id, added.version, &patch)
        })
        .await,
    ));
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            draft::update_task(&p, ctx, s, added.id, added.version, &patch)
        })
        .await,
    ));
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            draft::move_task(&p, ctx, s, st.tasks[3].id, extra, 0)
        })
        .await,
    ));
    let last_phase = st3.phases.last().expect("phase").id;
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| draft::delete_phase(&p, ctx, s, last_phase))
            .await,
    ));
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| draft::delete_task(&p, ctx, s, added.id))
            .await,
    ));

    // Live work: activate, complete in order, a stale completion, a reopen, a block, comments.
    let st4 = state(e, portal).await;
    log.push(answer(
        e.transition_portal(
            &p,
            portal,
            TransitionRequest {
                to: PortalStatus::Active,
                expected_version: st4.portal.version,
                confirm: false,
            },
        )
        .await,
    ));
    let reason = Reason::parse("Done on the client's behalf").expect("reason");
    for i in 0..3 {
        let st = state(e, portal).await;
        let t = &st.tasks[i];
        log.push(answer(
            e.complete_task(&p, portal, t.id, t.version, Some(reason.clone())).await,
        ));
        log.push(answer(
            e.complete_task(&p, portal, t.id, t.version, Some(reason.clone())).await,
        ));
    }
    let st5 = state(e, portal).await;
    let t0 = st5.tasks[0].clone();
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| task::reopen_task(&p, ctx, s, t0.id, t0.version))
            .await,
    ));
    let st6 = state(e, portal).await;
    let open = st6
        .tasks
        .iter()
        .find(|t| t.status != TaskStatus::Completed)
        .expect("open")
        .clone();
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            task::block_task(
                &p,
                ctx,
                s,
                open.id,
                open.version,
                &Reason::parse("Waiting").expect("reason"),
            )
        })
        .await,
    ));
    let with_items = st6
        .tasks
        .iter()
        .find(|t| !t.checklist.is_empty())
        .expect("checklist")
        .clone();
    log.push(answer(
        e.portal_command(&p, portal, |ctx, s| {
            task::set_checklist_item(
                &p,
                ctx,
                s,
                with_items.id,
                with_items.version,
                with_items.checklist[1].id,
                true,
            )
        })
        .await,
    ));
    for (body, question) in [("First", false), ("Second?", true), ("Third", false)] {
        log.push(answer(
            e.portal_command(&p, portal, |ctx, s| {
                task::add_comment(&p, ctx, s, t0.id, CommentBody::parse(body).expect("body"), question).map(|(_, o)| o)
            })
            .await,
        ));
    }
    let all: Vec<_> = st6.tasks.iter().map(|t| t.id).collect();
    log.push(answer(e.bulk_reassign(&p, portal, &all, Some(user.id)).await));
    log.push(answer(e.delete_portal(&p, doomed, "Doomed").await));
    (tenant.id, log)
}

/// Everything a tenant's reads show, with the two lists no table keeps in order (a staff user's
/// roles, a template task's dependencies) sorted.
async fn snapshot(s: &dyn Storage, tenant: TenantId) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |what: &str, v: String| out.push((what.to_owned(), v));
    put("tenant", format!("{:?}", s.get_tenant(tenant).await.expect("read")));
    let roles = s.list_roles(tenant).await.expect("read");
    for r in &roles {
        put("role", format!("{:?}", s.get_role(tenant, r.id).await.expect("read")));
    }
    put("roles", format!("{roles:?}"));
    let mut staff = s.list_staff_users(tenant, PageRequest::first(2)).await.expect("read");
    let after = staff.last().map(|u| u.id);
    staff.extend(
        s.list_staff_users(tenant, PageRequest { after, limit: 10 })
            .await
            .expect("read"),
    );
    for u in &mut staff {
        let by_email = s.find_staff_user_by_email(tenant, &u.email).await.expect("read");
        assert_eq!(by_email.as_ref().map(|b| b.id), Some(u.id));
        u.roles.sort();
    }
    put("staff", format!("{staff:?}"));
    let companies = s.list_companies(tenant, PageRequest::first(10)).await.expect("read");
    for c in &companies {
        put(
            "sites",
            format!("{:?}", s.list_sites_for_company(tenant, c.id).await.expect("read")),
        );
    }
    put("companies", format!("{companies:?}"));
    let mut templates = s.list_templates(tenant, PageRequest::first(10)).await.expect("read");
    for t in &mut templates {
        let one = s.get_template(tenant, t.id).await.expect("read").expect("template");
        assert_eq!(&one, t);
        for task in t.phases.iter_mut().flat_map(|p| p.tasks.iter_mut()) {
            task.depends_on.sort();
        }
    }
    put("templates", format!("{templates:?}"));
    let portals = s
        .list_portals(tenant, PortalFilter::default(), PageRequest::first(10))
        .await
        .expect("read");
    put("portals", format!("{portals:?}"));
    for status in PortalStatus::ALL {
        let filter = PortalFilter {
            status: Some(*status),
            company: None,
        };
        put(
            "portals by status",
            format!(
                "{:?}",
                s.list_portals(tenant, filter, PageRequest::first(10))
                    .await
                    .expect("read")
            ),
        );
    }
    for p in &portals {
        let filter = PortalFilter {
            status: None,
            company: Some(p.company_id),
        };
        put(
            "portals by company",
            format!(
                "{:?}",
                s.list_portals(tenant, filter, PageRequest::first(10))
                    .await
                    .expect("read")
            ),
        );
        let state: PortalState = s.load_portal(tenant, p.id).await.expect("read").expect("portal");
        assert_eq!(
            s.get_portal(tenant, p.id).await.expect("read").as_ref(),
            Some(&state.portal)
        );
        for t in &state.tasks {
            put(
                "comments",
                format!("{:?}", s.list_comments_for_task(tenant, t.id).await.expect("read")),
            );
        }
        put("portal state", format!("{state:?}"));
    }
    let mut after: Option<EventId> = None;
    loop {
        let page = s
            .list_activity(tenant, &ActivityFilter::default(), PageRequest { after, limit: 7 })
            .await
            .expect("read");
        put("activity page", format!("{page:?}"));
        match page.last() {
            Some(last) => after = Some(last.id),
            None => break,
        }
    }
    for p in &portals {
        let filter = ActivityFilter {
            portal: Some(p.id),
            kinds: vec![
                portal_core::activity::EventKind::TaskCompleted,
                portal_core::activity::EventKind::CommentAdded,
            ],
        };
        put(
            "activity of portal",
            format!(
                "{:?}",
                s.list_activity(tenant, &filter, PageRequest::first(100))
                    .await
                    .expect("read")
            ),
        );
    }
    put(
        "outbox",
        format!(
            "{:?}",
            s.list_messages(tenant, None, PageRequest::first(100))
                .await
                .expect("read")
        ),
    );
    out
}

#[tokio::test]
async fn engine_story_leaves_the_state_the_reference_store_leaves() {
    let Some(db) = scratch().await else { return };
    let memory: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let pg: Arc<dyn Storage> = db.storage.clone();
    let (tenant, expected_log) = story(&engine(memory.clone())).await;
    let (pg_tenant, log) = story(&engine(pg.clone())).await;
    assert_eq!(tenant, pg_tenant);
    for (i, (want, got)) in expected_log.iter().zip(&log).enumerate() {
        assert_eq!(want, got, "step {i} answered differently");
    }
    let want = snapshot(&*memory, tenant).await;
    let got = snapshot(&*pg, tenant).await;
    assert_eq!(want.len(), got.len());
    for ((what, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(w, g, "{what} differs");
    }
    // Another tenant sees nothing of it.
    let stranger = TenantId::from_uuid(uuid::Uuid::from_u128(7));
    assert_eq!(snapshot(&*memory, stranger).await, snapshot(&*pg, stranger).await);
    db.finish().await;
}

/// Commits `outcome` on both stores and checks they answer alike.
async fn both(memory: &MemoryStorage, pg: &PgStorage, tenant: TenantId, outcome: &Outcome) -> Result<(), CommandError> {
    use portal_core::storage::OutcomeRepo;
    let want = memory
        .commit_outcome(tenant, outcome)
        .await
        .expect("memory never fails");
    let got = pg.commit_outcome(tenant, outcome).await.expect("storage");
    assert_eq!(want, got, "answers differ for {:?}", outcome.writes.first());
    got
}

fn one(w: Write) -> Outcome {
    Outcome {
        writes: vec![w],
        ..Outcome::default()
    }
}

#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn raw_outcomes_are_refused_as_the_reference_store_refuses_them() {
    let Some(db) = scratch().await else { return };
    let memory = MemoryStorage::new();
    let (mem_engine, pg_engine) = (engine(Arc::new(MemoryStorage::new())), engine(db.storage.clone()));
    // Build realistic rows with a throwaway engine, then replay raw writes on both stores.
    let (tenant_id, _) = story(&mem_engine).await;
    drop(pg_engine);
    let src = mem_engine.storage();
    let tenant = src.get_tenant(tenant_id).await.expect("read").expect("tenant");
    let roles = src.list_roles(tenant_id).await.expect("read");
    let staff = src
        .list_staff_users(tenant_id, PageRequest::first(10))
        .await
        .expect("read");
    let companies = src
        .list_companies(tenant_id, PageRequest::first(10))
        .await
        .expect("read");
    let portals = src
        .list_portals(tenant_id, PortalFilter::default(), PageRequest::first(10))
        .await
        .expect("read");
    let state = src
        .load_portal(tenant_id, portals[0].id)
        .await
        .expect("read")
        .expect("portal");
    let pg = &*db.storage;
    let t = tenant_id;

    // Inserting twice: the second is refused with the same entity and value.
    assert_eq!(
        both(&memory, pg, t, &one(Write::InsertTenant(tenant.clone()))).await,
        Ok(())
    );
    assert!(
        both(&memory, pg, t, &one(Write::InsertTenant(tenant.clone())))
            .await
            .is_err()
    );
    for r in &roles {
        assert_eq!(both(&memory, pg, t, &one(Write::InsertRole(r.clone()))).await, Ok(()));
    }
    // Same id and same name: the name is reported, as the reference store checks it first.
    assert!(
        both(&memory, pg, t, &one(Write::InsertRole(roles[0].clone())))
            .await
            .is_err()
    );
    let mut renamed = roles[0].clone();
    renamed.id = portal_core::id::RoleId::from_uuid(uuid::Uuid::from_u128(99));
    assert!(
        both(&memory, pg, t, &one(Write::InsertRole(renamed.clone())))
            .await
            .is_err()
    );
    renamed.name = roles[1].name.clone();
    let update = Write::UpdateRole {
        role: {
            let mut r = roles[0].clone();
            r.name = roles[1].name.clone();
            r.version += 1;
            r
        },
        expected_version: roles[0].version,
    };
    assert!(both(&memory, pg, t, &one(update)).await.is_err());
    let stale = Write::UpdateRole {
        role: roles[0].clone(),
        expected_version: roles[0].version + 5,
    };
    assert!(both(&memory, pg, t, &one(stale)).await.is_err());
    let missing = Write::UpdateRole {
        role: renamed,
        expected_version: 1,
    };
    assert!(both(&memory, pg, t, &one(missing)).await.is_err());
    let mut perms = roles[1].clone();
    perms.permissions = PermissionSet::all();
    perms.version += 1;
    let ok = Write::UpdateRole {
        role: perms,
        expected_version: roles[1].version,
    };
    assert_eq!(both(&memory, pg, t, &one(ok)).await, Ok(()));

    for u in &staff {
        assert_eq!(
            both(&memory, pg, t, &one(Write::InsertStaffUser(u.clone()))).await,
            Ok(())
        );
    }
    assert!(
        both(&memory, pg, t, &one(Write::InsertStaffUser(staff[0].clone())))
            .await
            .is_err()
    );
    let mut clash = staff[1].clone();
    clash.email = staff[0].email.clone();
    clash.version += 1;
    let update = Write::UpdateStaffUser {
        user: clash,
        expected_version: staff[1].version,
    };
    assert!(both(&memory, pg, t, &one(update)).await.is_err());

    // A site or a portal of a company that does not exist yet.
    let sites = src
        .list_sites_for_company(t, portals[0].company_id)
        .await
        .expect("read");
    assert!(
        both(&memory, pg, t, &one(Write::InsertSite(sites[0].clone())))
            .await
            .is_err()
    );
    assert!(
        both(&memory, pg, t, &one(Write::InsertPortal(Box::new(state.clone()))))
            .await
            .is_err()
    );
    for c in &companies {
        assert_eq!(
            both(&memory, pg, t, &one(Write::InsertCompany(c.clone()))).await,
            Ok(())
        );
    }
    assert_eq!(
        both(&memory, pg, t, &one(Write::InsertSite(sites[0].clone()))).await,
        Ok(())
    );
    assert!(
        both(&memory, pg, t, &one(Write::InsertSite(sites[0].clone())))
            .await
            .is_err()
    );
    let delete = |v| Write::DeleteSite {
        id: sites[0].id,
        expected_version: v,
    };
    assert!(both(&memory, pg, t, &one(delete(9))).await.is_err());
    assert_eq!(both(&memory, pg, t, &one(delete(sites[0].version))).await, Ok(()));
    assert!(both(&memory, pg, t, &one(delete(sites[0].version))).await.is_err());

    // A whole portal, then the same again; then clashing contacts and a comment on no task.
    assert_eq!(
        both(&memory, pg, t, &one(Write::InsertPortal(Box::new(state.clone())))).await,
        Ok(())
    );
    assert!(
        both(&memory, pg, t, &one(Write::InsertPortal(Box::new(state.clone()))))
            .await
            .is_err()
    );
    let mut fresh = state.clone();
    fresh.portal.id = PortalId::from_uuid(uuid::Uuid::from_u128(1234));
    assert!(
        both(&memory, pg, t, &one(Write::InsertPortal(Box::new(fresh))))
            .await
            .is_err()
    );
    let mut second = state.contacts[1].clone();
    second.id = portal_core::id::ContactId::from_uuid(uuid::Uuid::from_u128(5));
    assert!(
        both(&memory, pg, t, &one(Write::InsertContact(second.clone())))
            .await
            .is_err()
    );
    second.email = email("new@client.example.org");
    second.primary = true;
    assert!(
        both(&memory, pg, t, &one(Write::InsertContact(second.clone())))
            .await
            .is_err()
    );
    second.primary = false;
    assert_eq!(
        both(&memory, pg, t, &one(Write::InsertContact(second.clone()))).await,
        Ok(())
    );
    let mut promoted = second.clone();
    promoted.primary = true;
    promoted.version += 1;
    let update = Write::UpdateContact {
        contact: promoted,
        expected_version: second.version,
    };
    assert!(both(&memory, pg, t, &one(update)).await.is_err());
    let mut comment = src
        .list_comments_for_task(t, state.tasks[0].id)
        .await
        .expect("read")
        .first()
        .cloned()
        .expect("a comment");
    assert_eq!(
        both(&memory, pg, t, &one(Write::InsertComment(comment.clone()))).await,
        Ok(())
    );
    assert!(
        both(&memory, pg, t, &one(Write::InsertComment(comment.clone())))
            .await
            .is_err()
    );
    comment.task_id = portal_core::id::TaskId::from_uuid(uuid::Uuid::from_u128(77));
    comment.id = portal_core::id::CommentId::from_uuid(uuid::Uuid::from_u128(78));
    assert!(both(&memory, pg, t, &one(Write::InsertComment(comment))).await.is_err());

    // A task in a phase that does not exist: the phase is reported, even when the id is taken.
    let mut orphan = state.tasks[1].clone();
    orphan.phase_id = portal_core::id::PhaseId::from_uuid(uuid::Uuid::from_u128(55));
    let refused = both(&memory, pg, t, &one(Write::InsertTask(Box::new(orphan.clone())))).await;
    assert!(matches!(refused, Err(CommandError::NotFound { entity: "phase", .. })));
    orphan.id = portal_core::id::TaskId::from_uuid(uuid::Uuid::from_u128(56));
    let refused = both(&memory, pg, t, &one(Write::InsertTask(Box::new(orphan.clone())))).await;
    assert!(matches!(refused, Err(CommandError::NotFound { entity: "phase", .. })));

    // Rows pointing at parents that do not exist, which the reference store keeps but the
    // foreign keys refuse (no command makes them): named refusals, not storage failures.
    let mut dangling = state.tasks[1].clone();
    let nowhere = portal_core::id::TaskId::from_uuid(uuid::Uuid::from_u128(57));
    dangling.depends_on.push(nowhere);
    dangling.version += 1;
    let update = Write::UpdateTask {
        task: Box::new(dangling),
        expected_version: state.tasks[1].version,
    };
    let refused = portal_core::storage::OutcomeRepo::commit_outcome(pg, t, &one(update)).await;
    assert_eq!(
        refused.expect("storage"),
        Err(CommandError::UnknownDependency {
            task: state.tasks[1].id.as_uuid(),
            depends_on: nowhere.as_uuid(),
        })
    );
    let mut roleless = staff[1].clone();
    roleless.id = portal_core::id::StaffUserId::from_uuid(uuid::Uuid::from_u128(58));
    roleless.email = email("carol@msp.example.com");
    let no_role = portal_core::id::RoleId::from_uuid(uuid::Uuid::from_u128(59));
    roleless.roles.push(no_role);
    let refused =
        portal_core::storage::OutcomeRepo::commit_outcome(pg, t, &one(Write::InsertStaffUser(roleless))).await;
    assert_eq!(
        refused.expect("storage"),
        Err(CommandError::NotFound {
            entity: "role",
            id: no_role.as_uuid(),
        })
    );

    // A task update that is stale, one of a task that is gone, and a failing outcome leaving
    // nothing behind.
    let task0 = state.tasks[0].clone();
    let stale = Write::UpdateTask {
        task: Box::new(task0.clone()),
        expected_version: task0.version + 1,
    };
    assert!(both(&memory, pg, t, &one(stale)).await.is_err());
    let events = src
        .list_activity(t, &ActivityFilter::default(), PageRequest::first(3))
        .await
        .expect("read");
    let partial = Outcome {
        writes: vec![
            Write::DeleteTask { id: task0.id },
            Write::InsertCompany(companies[0].clone()),
        ],
        events: events.clone(),
        ..Outcome::default()
    };
    assert!(both(&memory, pg, t, &partial).await.is_err());
    assert_eq!(
        pg.load_portal(t, state.portal.id)
            .await
            .expect("read")
            .map(|s| s.tasks.len()),
        Some(state.tasks.len())
    );
    let appended = Outcome {
        events: events.clone(),
        ..Outcome::default()
    };
    assert_eq!(both(&memory, pg, t, &appended).await, Ok(()));
    assert!(both(&memory, pg, t, &appended).await.is_err());
    let erase = Write::EraseEventsOfPortal {
        portal_id: state.portal.id,
        erased_by: events[0].id,
    };
    assert_eq!(both(&memory, pg, t, &one(erase)).await, Ok(()));
    assert_eq!(
        both(&memory, pg, t, &one(Write::DeleteTask { id: task0.id })).await,
        Ok(())
    );
    assert_eq!(
        both(&memory, pg, t, &one(Write::DeletePortal { id: state.portal.id })).await,
        Ok(())
    );

    // A row of another tenant is an invariant failure, before anything is written.
    let foreign = TenantId::from_uuid(uuid::Uuid::from_u128(3));
    let refused =
        portal_core::storage::OutcomeRepo::commit_outcome(pg, foreign, &one(Write::InsertTenant(tenant))).await;
    assert!(matches!(refused, Err(StorageError::Invariant(_))));

    let want = snapshot(&memory, t).await;
    let got = snapshot(pg, t).await;
    for ((what, w), (_, g)) in want.iter().zip(&got) {
        assert_eq!(w, g, "{what} differs");
    }
    db.finish().await;
}

/// Where the schema holds more than the reference store checks: auth rows of a tenant or staff
/// user that does not exist are refused by their foreign keys, without breaking the next call.
#[tokio::test]
async fn auth_rows_of_missing_parents_are_refused() {
    use portal_core::auth::{SecretToken, StaffSession};
    use portal_core::id::StaffUserId;
    use portal_core::storage::AuthRepo;

    let Some(db) = scratch().await else { return };
    let pg = &*db.storage;
    let e = engine(db.storage.clone());
    let (tenant, _) = story(&e).await;
    let ghost_tenant = TenantId::from_uuid(uuid::Uuid::from_u128(5));
    let ghost_user = StaffUserId::from_uuid(uuid::Uuid::from_u128(6));
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("a time");

    assert_eq!(
        pg.add_tenant_host(ghost_tenant, "ghost.example.com")
            .await
            .expect("storage"),
        Err(CommandError::NotFound {
            entity: "tenant",
            id: ghost_tenant.as_uuid(),
        })
    );
    assert_eq!(pg.tenant_for_host("ghost.example.com").await.expect("storage"), None);
    let err = pg
        .set_password_hash(tenant, ghost_user, "x", now)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    let session = StaffSession::start(&SecretToken::from_bytes([9; 32]), tenant, ghost_user, now);
    let err = pg.insert_staff_session(&session).await.expect_err("no such user");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    let err = pg
        .count_sign_in_attempt(ghost_tenant, "account:x@example.com", now, now)
        .await
        .expect_err("no such tenant");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    assert_eq!(
        pg.add_tenant_host(tenant, "acme.example.com").await.expect("storage"),
        Ok(())
    );
    assert_eq!(
        pg.tenant_for_host("acme.example.com").await.expect("storage"),
        Some(tenant)
    );
    db.finish().await;
}

/// A delivery error is kept to 1,000 characters without NUL, a message of a portal that does not
/// exist is refused by its foreign key (the reference store keeps it) without breaking the next
/// commit, and tampered rows read as corrupt.
#[tokio::test]
async fn outbox_rows_as_stored() {
    use portal_core::id::MessageId;
    use portal_core::mail::{MailKind, MessageStatus};
    use portal_core::outcome::OutboundMessage;
    use portal_core::storage::{OutboxRepo, OutcomeRepo, TenantRepo};

    let Some(db) = scratch().await else { return };
    let pg = &*db.storage;
    let e = engine(db.storage.clone());
    let (tenant, _) = story(&e).await;
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("a time");
    let m = OutboundMessage {
        id: MessageId::from_uuid(uuid::Uuid::from_u128(10)),
        tenant_id: tenant,
        portal_id: None,
        contact_id: None,
        kind: MailKind::PasswordReset,
        recipient: email("pat@client.example.org"),
        recipient_name: None,
        payload: serde_json::json!({ "n": 1 }),
        secret: None,
        created_at: at,
    };
    let queue = |m: OutboundMessage| Outcome {
        messages: vec![m],
        ..Outcome::default()
    };
    let orphan = OutboundMessage {
        id: MessageId::from_uuid(uuid::Uuid::from_u128(11)),
        portal_id: Some(PortalId::from_uuid(uuid::Uuid::from_u128(99))),
        ..m.clone()
    };
    let err = pg.commit_outcome(tenant, &queue(orphan)).await.expect_err("no portal");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    pg.commit_outcome(tenant, &queue(m.clone()))
        .await
        .expect("storage")
        .expect("queued");

    // The story may have queued messages of its own: claim them all.
    let far = at + Duration::days(365);
    let claimed = pg
        .claim_messages(far, far + Duration::minutes(1), 500)
        .await
        .expect("storage");
    let mine = claimed.iter().find(|c| c.message.id == m.id).expect("claimed");
    let long = format!("a\0{}", "é".repeat(3_000));
    assert!(
        pg.mark_message_retry(tenant, m.id, mine.attempt, far, &long)
            .await
            .expect("storage")
    );
    let listed = pg
        .list_messages(tenant, Some(MessageStatus::Queued), PageRequest::first(500))
        .await
        .expect("storage");
    let entry = listed.iter().find(|x| x.id == m.id).expect("listed");
    assert_eq!(
        entry.last_error.as_deref(),
        Some(format!("a\u{fffd}{}", "é".repeat(998)).as_str()),
        "cut to 1,000 characters, NUL replaced"
    );

    for sql in [
        "UPDATE outbox_message SET secret_key_id = 'k', secret_nonce = '\\x00'::bytea WHERE id = $1",
        "UPDATE outbox_message SET kind = 'newsletter' WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(m.id.as_uuid())
            .execute(pg.pool())
            .await
            .expect_err(sql);
    }
    sqlx::query("UPDATE outbox_message SET recipient = 'not an address' WHERE id = $1")
        .bind(m.id.as_uuid())
        .execute(pg.pool())
        .await
        .expect("tampered");
    let err = pg.get_message(tenant, m.id).await.expect_err("corrupt");
    assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    sqlx::query("UPDATE tenant SET primary_colour = 'blue' WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .execute(pg.pool())
        .await
        .expect("tampered");
    let err = pg.get_tenant(tenant).await.expect_err("corrupt");
    assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    db.finish().await;
}

/// A counted attempt stores its time as `last_attempt_at`, in the one statement that counts it,
/// and a counter written before migration `attempt_times` (no time) goes at the first purge.
#[tokio::test]
async fn counters_keep_their_last_attempt_and_old_ones_are_purged() {
    use portal_core::storage::{AuthRepo, PurgeReport};

    let Some(db) = scratch().await else { return };
    let pg = &*db.storage;
    let e = engine(db.storage.clone());
    let (tenant, _) = story(&e).await;
    // Whatever the story left behind goes first.
    let now = Utc.with_ymd_and_hms(2030, 1, 1, 9, 0, 0).single().expect("a time");
    pg.purge_expired(now).await.expect("storage");
    let window = portal_core::auth::sign_in_window(now);
    assert_eq!(
        pg.count_sign_in_attempt(tenant, "account:a@example.com", window, now)
            .await
            .expect("storage"),
        1
    );
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_attempt_at FROM sign_in_attempts WHERE key = 'account:a@example.com'")
            .fetch_one(pg.pool())
            .await
            .expect("reads");
    assert_eq!(last, Some(now));
    sqlx::query(
        "INSERT INTO sign_in_attempts (tenant_id, key, window_start, count) VALUES ($1, 'address:192.0.2.1', $2, 3)",
    )
    .bind(tenant.as_uuid())
    .bind(window)
    .execute(pg.pool())
    .await
    .expect("a counter of before the migration");
    assert_eq!(
        pg.purge_expired(now).await.expect("storage"),
        PurgeReport {
            sign_in_attempts: 1,
            ..PurgeReport::default()
        }
    );
    assert_eq!(
        pg.count_sign_in_attempt(tenant, "account:a@example.com", window, now)
            .await
            .expect("storage"),
        2,
        "the counter with a time stays"
    );
    db.finish().await;
}
