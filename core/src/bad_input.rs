//! Bad input of every kind gets a typed error naming what is wrong, never a panic.

use chrono::{DateTime, Utc};

use crate::CommandError;
use crate::auth::SecretToken;
use crate::commands::Ctx;
use crate::commands::draft::{TaskInput, add_task};
use crate::commands::portal::{StartOnboarding, TransitionEnv, TransitionRequest, start_onboarding, transition_portal};
use crate::commands::task::complete_task;
use crate::commands::template::create_template;
use crate::company::Company;
use crate::error::ValueError;
use crate::id::{CompanyId, PhaseId, StaffUserId, TaskId, TenantId};
use crate::lifecycle::PortalStatus;
use crate::outcome::Write;
use crate::policy::{Principal, StaffPrincipal};
use crate::portal::{ContactInput, ContactRole, MAX_TASKS, PortalState};
use crate::task::{EvidenceType, SurveyKind, TaskOwner};
use crate::template::{SurveyQuestionInput, TaskKey, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use crate::tenant::{PermissionSet, Tenant, TenantSettings};
use crate::value::{Description, Email, ItemText, Name, Priority, Title};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_440_000, 0).unwrap_or_default()
}

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("expected a valid value: {e:?}"))
}

fn tenant() -> Tenant {
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

fn admin() -> Principal {
    Principal::Staff(StaffPrincipal {
        tenant_id: tenant().id,
        user_id: StaffUserId::from_uuid(uuid::Uuid::from_u128(2)),
        email: ok(Email::parse("a@msp.example.com")),
        permissions: PermissionSet::all(),
    })
}

fn task(key: &str, deps: &[&str]) -> TemplateTaskInput {
    TemplateTaskInput {
        key: ok(TaskKey::parse(key)),
        title: ok(Title::parse(key)),
        description: Description::empty(),
        owner: TaskOwner::Msp,
        evidence: EvidenceType::None,
        priority: Priority::Normal,
        due_offset: None,
        checklist: vec![],
        depends_on: deps.iter().map(|d| ok(TaskKey::parse(d))).collect(),
        survey: vec![],
    }
}

fn template(tasks: Vec<TemplateTaskInput>) -> TemplateInput {
    TemplateInput {
        name: ok(Name::parse("T")),
        description: Description::empty(),
        phases: vec![TemplatePhaseInput {
            name: ok(Name::parse("P")),
            description: Description::empty(),
            tasks,
        }],
    }
}

fn create(input: &TemplateInput) -> Result<(), CommandError> {
    create_template(&admin(), &mut Ctx::new(now(), [0; 16]), input).map(|_| ())
}

#[test]
fn template_graph_errors_name_the_tasks() {
    assert!(matches!(
        create(&template(vec![task("a", &["c"]), task("b", &["a"]), task("c", &["b"])])),
        Err(CommandError::DependencyCycle { path }) if path.len() == 4
    ));
    assert_eq!(
        create(&template(vec![task("a", &["missing"])])),
        Err(CommandError::UnknownDependencyKey {
            task: "a".into(),
            depends_on: "missing".into()
        })
    );
    assert!(matches!(
        create(&template(vec![task("a", &["a"])])),
        Err(CommandError::SelfDependency { .. })
    ));
    assert_eq!(
        create(&template(vec![task("a", &[]), task("a", &[])])),
        Err(CommandError::DuplicateKey { key: "a".into() })
    );
}

#[test]
fn template_limits() {
    let many: Vec<_> = (0..=MAX_TASKS).map(|i| task(&format!("t{i}"), &[])).collect();
    assert_eq!(
        create(&template(many)),
        Err(CommandError::TooMany {
            what: "tasks",
            max: MAX_TASKS,
            actual: MAX_TASKS + 1
        })
    );
    let mut t = task("a", &[]);
    t.checklist = (0..101).map(|i| ok(ItemText::parse(&format!("item {i}")))).collect();
    assert!(matches!(
        create(&template(vec![t])),
        Err(CommandError::TooMany {
            what: "checklist items",
            ..
        })
    ));
    let mut t = task("a", &[]);
    t.survey = vec![SurveyQuestionInput {
        text: ok(ItemText::parse("Pick")),
        kind: SurveyKind::SingleChoice,
        options: vec![],
    }];
    assert!(matches!(
        create(&template(vec![t])),
        Err(CommandError::EmptyList { .. })
    ));
    let mut input = template(vec![]);
    input.phases = (0..101)
        .map(|i| TemplatePhaseInput {
            name: ok(Name::parse(&format!("P{i}"))),
            description: Description::empty(),
            tasks: vec![],
        })
        .collect();
    assert!(matches!(
        create(&input),
        Err(CommandError::TooMany { what: "phases", .. })
    ));
    // 1,000 tasks is within the limit.
    let thousand: Vec<_> = (0..1_000)
        .map(|i| task(&format!("t{i}"), if i > 0 { &["t0"] } else { &[] }))
        .collect();
    assert!(create(&template(thousand)).is_ok());
}

#[test]
fn json_documents_are_validated_field_by_field() {
    let bad = [
        (r#"{"name": "", "phases": []}"#, "name"),
        (
            r#"{"name": "T", "phases": [{"name": "P", "tasks": [{"key": "a b", "title": "x", "owner": "msp", "evidence": "none"}]}]}"#,
            "key",
        ),
        (
            r#"{"name": "T", "phases": [{"name": "P", "tasks": [{"key": "a", "title": "x", "owner": "vendor", "evidence": "none"}]}]}"#,
            "vendor",
        ),
        (
            r#"{"name": "T", "phases": [{"name": "P", "tasks": [{"key": "a", "title": "x", "owner": "msp", "evidence": "none", "due_offset": -2}]}]}"#,
            "negative",
        ),
        (r#"{"name": "T"}"#, "phases"),
    ];
    for (doc, mentions) in bad {
        let err = serde_json::from_str::<TemplateInput>(doc)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(mentions), "{doc}: `{err}` should mention {mentions}");
    }
    let long = format!(r#"{{"name": "{}", "phases": []}}"#, "x".repeat(121));
    assert!(serde_json::from_str::<TemplateInput>(&long).is_err());
}

fn started(contacts: Vec<ContactInput>, activate: bool) -> Result<PortalState, CommandError> {
    let t = tenant();
    let mut ctx = Ctx::new(now(), [1; 16]);
    let (_, o) = ok(create_template(
        &admin(),
        &mut ctx,
        &template(vec![task("a", &[]), task("b", &["a"])]),
    ));
    let Some(Write::InsertTemplate(tpl)) = o.writes.into_iter().next() else {
        panic!("template")
    };
    let company = Company {
        id: CompanyId::from_uuid(uuid::Uuid::from_u128(3)),
        tenant_id: t.id,
        name: ok(Name::parse("C")),
        version: 1,
        created_at: now(),
    };
    let req = StartOnboarding {
        name: ok(Name::parse("Portal")),
        contacts,
        activate,
    };
    let (_, o) = start_onboarding(
        &admin(),
        &mut ctx,
        &t,
        &company,
        &tpl,
        &req,
        &SecretToken::from_bytes([9; 32]),
    )?;
    match o.writes.into_iter().next() {
        Some(Write::InsertPortal(s)) => Ok(*s),
        _ => panic!("portal"),
    }
}

fn contact(email: &str, primary: bool) -> ContactInput {
    ContactInput {
        name: ok(Name::parse("C")),
        email: ok(Email::parse(email)),
        role: ContactRole::It,
        primary,
    }
}

#[test]
fn contact_rules_of_con_1() {
    let two = vec![contact("a@x.example.com", true), contact("b@x.example.com", true)];
    assert_eq!(
        started(two, false).err(),
        Some(CommandError::PrimaryContact { primaries: 2 })
    );
    assert_eq!(
        started(vec![contact("a@x.example.com", false)], true).err(),
        Some(CommandError::PrimaryContact { primaries: 0 })
    );
    let dup = vec![contact("a@x.example.com", true), contact("A@x.example.com", false)];
    assert!(matches!(
        started(dup, false),
        Err(CommandError::DuplicateContactEmail { .. })
    ));
    // A draft may have no primary yet, but activating it later needs exactly one.
    let draft = ok(started(vec![contact("a@x.example.com", false)], false));
    let req = TransitionRequest {
        to: PortalStatus::Active,
        expected_version: 1,
        confirm: false,
    };
    let (t, company, seed) = (
        tenant(),
        Name::parse("Client").unwrap(),
        SecretToken::from_bytes([9; 32]),
    );
    let env = TransitionEnv::new(&t, &company, &seed);
    assert_eq!(
        transition_portal(&admin(), &mut Ctx::new(now(), [2; 16]), &draft, env, req).err(),
        Some(CommandError::PrimaryContact { primaries: 0 })
    );
}

#[test]
fn unknown_ids_are_not_found() {
    let state = ok(started(vec![contact("a@x.example.com", true)], true));
    let ghost = TaskId::from_uuid(uuid::Uuid::from_u128(404));
    assert_eq!(
        complete_task(&admin(), &mut Ctx::new(now(), [3; 16]), &state, ghost, 1, None).err(),
        Some(CommandError::NotFound {
            entity: "task",
            id: ghost.as_uuid()
        })
    );
    let draft = ok(started(vec![contact("a@x.example.com", true)], false));
    let phase = PhaseId::from_uuid(uuid::Uuid::from_u128(405));
    let input = TaskInput {
        title: ok(Title::parse("x")),
        description: Description::empty(),
        owner: TaskOwner::Msp,
        evidence: EvidenceType::None,
        priority: Priority::Low,
        due_offset: None,
        checklist: vec![],
        depends_on: vec![],
        survey: vec![],
    };
    assert_eq!(
        add_task(&admin(), &mut Ctx::new(now(), [4; 16]), &draft, phase, &input, None).err(),
        Some(CommandError::NotFound {
            entity: "phase",
            id: phase.as_uuid()
        })
    );
    let with_ghost_dep = TaskInput {
        depends_on: vec![ghost],
        ..input
    };
    let first_phase = draft.phases[0].id;
    assert!(matches!(
        add_task(&admin(), &mut Ctx::new(now(), [5; 16]), &draft, first_phase, &with_ghost_dep, None),
        Err(CommandError::UnknownDependency { depends_on, .. }) if depends_on == ghost.as_uuid()
    ));
}

#[test]
fn value_errors_name_the_field() {
    assert_eq!(Title::parse(""), Err(ValueError::Empty { field: "title" }));
    assert_eq!(
        Title::parse(&"t".repeat(201)),
        Err(ValueError::TooLong {
            field: "title",
            max: 200,
            actual: 201
        })
    );
    assert!(
        CommandError::from(ValueError::Empty { field: "title" })
            .to_string()
            .contains("title")
    );
}
