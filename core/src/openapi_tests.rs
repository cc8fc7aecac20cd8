//! The `openapi` feature's schemas checked against what serde actually writes and reads.
//!
//! The components are built with utoipa exactly as a server's document would hold them, then
//! used as a draft 2020-12 JSON Schema (what OpenAPI 3.1 schemas are), with formats asserted and
//! with `additionalProperties: false` added to every object so that a field serde writes but the
//! schema does not describe fails too. For each representative value:
//!
//! - the value serde writes is valid against its component, and its keys are exactly the
//!   component's properties;
//! - for every property, leaving it out is accepted by serde exactly when the schema accepts it
//!   (so `required` is neither missing nor too much), and the same for setting it to `null` (so
//!   nullability is exact).
//!
//! Enums are checked variant by variant against their `ALL` tables, and the validated values
//! (texts, email, keys, offsets, permission sets) on inputs around their limits.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::activity::{ActivityEvent, Actor, ActorKind, EventKind};
use crate::commands::contact::ContactPatch;
use crate::commands::draft::{TaskInput, TaskPatch};
use crate::commands::portal::{StartOnboarding, TransitionRequest};
use crate::company::{Company, Site};
use crate::id::{IdGen, PhaseId, PortalId, TaskId, TenantId};
use crate::lifecycle::PortalStatus;
use crate::portal::{Contact, ContactInput, ContactRole, Phase, Portal, PortalState};
use crate::progress::{PhaseStatus, Progress};
use crate::storage::{AssignedTask, AssignedTaskCursor, PortalTaskCounts};
use crate::task::{
    ChecklistItem, Comment, DueState, EvidenceType, SurveyKind, SurveyQuestion, Task, TaskOwner, TaskStatus,
};
use crate::template::{
    SurveyQuestionInput, TaskKey, Template, TemplateInput, TemplatePhase, TemplatePhaseInput, TemplateTask,
    TemplateTaskInput,
};
use crate::tenant::{Permission, PermissionSet, Role, StaffUser, Tenant, TenantSettings, TimeZone};
use crate::value::{CommentBody, DayOffset, Description, Email, Hours, ItemText, Name, Priority, Reason, Title};

#[derive(OpenApi)]
#[openapi(components(schemas(
    Tenant,
    TenantSettings,
    Role,
    StaffUser,
    PermissionSet,
    Company,
    Site,
    Template,
    TemplateInput,
    PortalState,
    ContactInput,
    ContactPatch,
    Task,
    Comment,
    DueState,
    Progress,
    ActivityEvent,
    AssignedTask,
    AssignedTaskCursor,
    PortalTaskCounts,
    TaskInput,
    TaskPatch,
    StartOnboarding,
    TransitionRequest,
    Hours,
)))]
struct Doc;

/// The components of [`Doc`] as one JSON Schema document whose `#/components/schemas/...`
/// references resolve.
struct Schemas {
    components: Value,
}

impl Schemas {
    fn new() -> Self {
        let doc = serde_json::to_value(Doc::openapi()).unwrap_or_else(|e| panic!("the document serialises: {e}"));
        let mut components = doc["components"].clone();
        close_objects(&mut components);
        Self { components }
    }

    fn component(&self, name: &str) -> &Value {
        let c = &self.components["schemas"][name];
        assert!(c.is_object(), "no component {name}");
        c
    }

    fn validator(&self, name: &str) -> jsonschema::Validator {
        self.component(name);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{name}"),
            "components": self.components,
        });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("the schema of {name} compiles: {e}"))
    }
}

/// Adds `additionalProperties: false` to every schema that lists properties. None of the types
/// is flattened or composed with `allOf`, so this changes nothing for the values serde writes
/// unless a written field is missing from the schema.
fn close_objects(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The checks of the module docs for one struct value.
fn check<T: Serialize + DeserializeOwned>(s: &Schemas, name: &str, value: &T) {
    let v = serde_json::to_value(value).unwrap_or_else(|e| panic!("{name} serialises: {e}"));
    let validator = s.validator(name);
    let errs = errors(&validator, &v);
    assert!(
        errs.is_empty(),
        "{name} as serde writes it fails its schema: {errs:#?}\n{v:#}"
    );
    assert!(serde_json::from_value::<T>(v.clone()).is_ok(), "{name} reads back");

    let component = s.component(name);
    let props: BTreeSet<&str> = component["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} is an object schema"))
        .keys()
        .map(String::as_str)
        .collect();
    let Value::Object(fields) = &v else {
        panic!("{name} serialises to an object")
    };
    let written: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(props, written, "{name}: schema properties vs fields serde writes");

    for field in fields.keys() {
        let mut without: Map<String, Value> = fields.clone();
        without.remove(field);
        let without = Value::Object(without);
        let serde_ok = serde_json::from_value::<T>(without.clone()).is_ok();
        assert_eq!(
            validator.is_valid(&without),
            serde_ok,
            "{name}.{field} left out: serde accepts = {serde_ok}, schema {:?}",
            errors(&validator, &without)
        );

        let mut null: Map<String, Value> = fields.clone();
        null.insert(field.clone(), Value::Null);
        let null = Value::Object(null);
        let serde_ok = serde_json::from_value::<T>(null.clone()).is_ok();
        assert_eq!(
            validator.is_valid(&null),
            serde_ok,
            "{name}.{field} = null: serde accepts = {serde_ok}, schema {:?}",
            errors(&validator, &null)
        );
    }
}

/// A unit enum's schema lists exactly its `ALL` names, each of which serde writes and reads.
fn check_enum<T: Serialize + DeserializeOwned + Copy>(
    s: &Schemas,
    name: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) {
    let listed: Vec<&str> = s.component(name)["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has an enum"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let names: Vec<&str> = all.iter().map(|v| as_str(*v)).collect();
    assert_eq!(listed, names, "{name}: schema enum vs ALL");
    let validator = s.validator(name);
    for v in all {
        let written = serde_json::to_value(v).unwrap_or_else(|e| panic!("{name} serialises: {e}"));
        assert_eq!(written, json!(as_str(*v)), "{name} is written as its name");
        assert!(validator.is_valid(&written), "{name} {written}");
    }
    assert_same_verdict::<T>(&validator, name, &[json!("no_such_variant"), json!(0), Value::Null]);
}

/// For each candidate, the schema accepts it exactly when serde reads it.
fn assert_same_verdict<T: DeserializeOwned>(validator: &jsonschema::Validator, name: &str, candidates: &[Value]) {
    for c in candidates {
        let serde_ok = serde_json::from_value::<T>(c.clone()).is_ok();
        assert_eq!(
            validator.is_valid(c),
            serde_ok,
            "{name} {c}: serde accepts = {serde_ok}, schema {:?}",
            errors(validator, c)
        );
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_440_000, 123_000_000).unwrap_or_default()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn text(s: &str) -> ItemText {
    ItemText::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn key(s: &str) -> TaskKey {
    TaskKey::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn offset(days: i64) -> DayOffset {
    DayOffset::parse(days).unwrap_or_else(|e| panic!("{e}"))
}

fn staff_actor() -> Actor {
    Actor {
        kind: ActorKind::Staff,
        id: Some(uuid::Uuid::from_u128(7)),
        display: Some("jo@msp.example.com".to_owned()),
    }
}

struct Fixture {
    ids: IdGen,
    tenant: TenantId,
    portal: PortalId,
    phase: PhaseId,
}

impl Fixture {
    fn new() -> Self {
        let mut ids = IdGen::new(now(), [3; 16]);
        Self {
            tenant: ids.next_id(),
            portal: ids.next_id(),
            phase: ids.next_id(),
            ids,
        }
    }

    fn tenant(&self) -> Tenant {
        Tenant {
            id: self.tenant,
            name: name("Acme MSP"),
            settings: TenantSettings {
                time_zone: TimeZone::parse("Europe/Amsterdam").unwrap_or_else(|e| panic!("{e}")),
                billable_default: false,
                forwarded_link_protection: true,
            },
            link_settings: crate::tenant::LinkSettings {
                access_link_expiry_days: 14,
            },
            branding: crate::tenant::Branding {
                app_name: Some(Name::parse("Acme Client Hub").unwrap()),
                logo_url: Some("https://msp.example/logo.svg".to_owned()),
                primary_colour: "#0a7cff".to_owned(),
                sender_name: None,
                sender_email: Some(email("portal@msp.example")),
                reply_to: None,
            },
            notification_settings: crate::notifications::NotificationSettings::new(),
            version: 3,
            created_at: now(),
        }
    }

    fn role(&mut self) -> Role {
        Role {
            id: self.ids.next_id(),
            tenant_id: self.tenant,
            name: name("Onboarding lead"),
            permissions: [
                Permission::ManageUsers,
                Permission::ReadOnboarding,
                Permission::ManageOnboarding,
            ]
            .into_iter()
            .collect(),
            version: 1,
        }
    }

    fn staff_user(&mut self) -> StaffUser {
        StaffUser {
            id: self.ids.next_id(),
            tenant_id: self.tenant,
            email: email("Jo.Smith@MSP.example.com"),
            display_name: name("Jo Smith"),
            roles: vec![self.ids.next_id(), self.ids.next_id()],
            active: true,
            version: 2,
            created_at: now(),
        }
    }

    /// A task with a checklist, a survey, dependencies, a due date and a completion.
    fn completed_task(&mut self, depends_on: Vec<TaskId>) -> Task {
        Task {
            id: self.ids.next_id(),
            tenant_id: self.tenant,
            portal_id: self.portal,
            phase_id: self.phase,
            position: 1,
            title: Title::parse("Sign the MSA").unwrap_or_else(|e| panic!("{e}")),
            description: Description::parse("Read it.\nThen sign.").unwrap_or_else(|e| panic!("{e}")),
            owner: TaskOwner::Client,
            evidence: EvidenceType::Survey,
            priority: Priority::High,
            due_offset: Some(offset(14)),
            due_date: Some(day(2026, 3, 24)),
            status: TaskStatus::Completed,
            block_reason: None,
            assignee: Some(self.ids.next_id()),
            depends_on,
            checklist: vec![
                ChecklistItem {
                    id: self.ids.next_id(),
                    text: text("Read the terms"),
                    done: true,
                },
                ChecklistItem {
                    id: self.ids.next_id(),
                    text: text("Sign\tpage 4"),
                    done: false,
                },
            ],
            survey: vec![SurveyQuestion {
                id: self.ids.next_id(),
                text: text("Which office first?"),
                kind: SurveyKind::SingleChoice,
                options: vec![text("Utrecht"), text("Gent")],
            }],
            completed_at: Some(now()),
            completed_by: Some(staff_actor()),
            completion_reason: Some(Reason::parse("Signed on paper").unwrap_or_else(|e| panic!("{e}"))),
            version: 4,
        }
    }

    /// A task with nothing optional set.
    fn bare_task(&mut self) -> Task {
        Task {
            id: self.ids.next_id(),
            tenant_id: self.tenant,
            portal_id: self.portal,
            phase_id: self.phase,
            position: 0,
            title: Title::parse("Kick-off").unwrap_or_else(|e| panic!("{e}")),
            description: Description::empty(),
            owner: TaskOwner::Msp,
            evidence: EvidenceType::None,
            priority: Priority::Normal,
            due_offset: None,
            due_date: None,
            status: TaskStatus::Blocked,
            block_reason: Some(Reason::parse("Waiting for the contract").unwrap_or_else(|e| panic!("{e}"))),
            assignee: None,
            depends_on: Vec::new(),
            checklist: Vec::new(),
            survey: Vec::new(),
            completed_at: None,
            completed_by: None,
            completion_reason: None,
            version: 1,
        }
    }

    fn portal_state(&mut self) -> PortalState {
        let bare = self.bare_task();
        let done = self.completed_task(vec![bare.id]);
        PortalState {
            portal: Portal {
                id: self.portal,
                tenant_id: self.tenant,
                company_id: self.ids.next_id(),
                template_id: Some(self.ids.next_id()),
                name: name("Acme onboarding"),
                status: PortalStatus::Active,
                version: 5,
                created_at: now(),
                updated_at: now(),
                activated_at: Some(now()),
            },
            phases: vec![Phase {
                id: self.phase,
                tenant_id: self.tenant,
                portal_id: self.portal,
                position: 0,
                name: name("Contracts"),
                description: Description::empty(),
                version: 1,
            }],
            tasks: vec![bare, done],
            contacts: vec![Contact {
                id: self.ids.next_id(),
                tenant_id: self.tenant,
                portal_id: self.portal,
                name: name("Sam Client"),
                email: email("sam@client.example.org"),
                role: ContactRole::DecisionMaker,
                primary: true,
                notifications: crate::notifications::NotificationPreferences::default(),
                version: 1,
                created_at: now(),
            }],
        }
    }

    fn template(&mut self) -> Template {
        let first = self.ids.next_id();
        Template {
            id: self.ids.next_id(),
            tenant_id: self.tenant,
            name: name("Standard onboarding"),
            description: Description::parse("For new clients.").unwrap_or_else(|e| panic!("{e}")),
            phases: vec![TemplatePhase {
                id: self.ids.next_id(),
                name: name("Contracts"),
                description: Description::empty(),
                tasks: vec![
                    TemplateTask {
                        id: first,
                        key: key("kick-off"),
                        title: Title::parse("Kick-off").unwrap_or_else(|e| panic!("{e}")),
                        description: Description::empty(),
                        owner: TaskOwner::Msp,
                        evidence: EvidenceType::Meeting,
                        priority: Priority::Normal,
                        due_offset: None,
                        checklist: Vec::new(),
                        depends_on: Vec::new(),
                        survey: Vec::new(),
                    },
                    TemplateTask {
                        id: self.ids.next_id(),
                        key: key("sign_msa.v2"),
                        title: Title::parse("Sign the MSA").unwrap_or_else(|e| panic!("{e}")),
                        description: Description::empty(),
                        owner: TaskOwner::Client,
                        evidence: EvidenceType::Signature,
                        priority: Priority::Critical,
                        due_offset: Some(offset(0)),
                        checklist: vec![text("Read"), text("Sign")],
                        depends_on: vec![first],
                        survey: vec![SurveyQuestion {
                            id: self.ids.next_id(),
                            text: text("Any remarks?"),
                            kind: SurveyKind::Text,
                            options: Vec::new(),
                        }],
                    },
                ],
            }],
            version: 2,
            created_at: now(),
            updated_at: now(),
        }
    }
}

fn template_input() -> TemplateInput {
    TemplateInput {
        name: name("Standard onboarding"),
        description: Description::empty(),
        phases: vec![TemplatePhaseInput {
            name: name("Contracts"),
            description: Description::empty(),
            tasks: vec![TemplateTaskInput {
                key: key("sign-msa"),
                title: Title::parse("Sign the MSA").unwrap_or_else(|e| panic!("{e}")),
                description: Description::empty(),
                owner: TaskOwner::Client,
                evidence: EvidenceType::Survey,
                priority: Priority::Low,
                due_offset: Some(offset(3_650)),
                checklist: vec![text("Read")],
                depends_on: vec![key("kick-off")],
                survey: vec![survey_input()],
            }],
        }],
    }
}

fn survey_input() -> SurveyQuestionInput {
    SurveyQuestionInput {
        text: text("Which offices?"),
        kind: SurveyKind::MultipleChoice,
        options: vec![text("Utrecht"), text("Gent")],
    }
}

#[test]
fn tasks_and_portals_match_their_schemas() {
    let s = Schemas::new();
    let mut f = Fixture::new();
    let bare = f.bare_task();
    let other: TaskId = f.ids.next_id();
    let done = f.completed_task(vec![bare.id, other]);
    check(&s, "Task", &bare);
    check(&s, "Task", &done);
    check(&s, "ChecklistItem", &done.checklist[0]);
    check(&s, "SurveyQuestion", &done.survey[0]);
    check(&s, "Actor", &staff_actor());
    check(
        &s,
        "Actor",
        &Actor {
            kind: ActorKind::System,
            id: None,
            display: None,
        },
    );
    check(
        &s,
        "Comment",
        &Comment {
            id: f.ids.next_id(),
            tenant_id: f.tenant,
            portal_id: f.portal,
            task_id: done.id,
            author: staff_actor(),
            body: CommentBody::parse("Is page 4 the right one?").unwrap_or_else(|e| panic!("{e}")),
            is_question: true,
            created_at: now(),
        },
    );

    let state = f.portal_state();
    check(&s, "PortalState", &state);
    check(&s, "Portal", &state.portal);
    let mut draft = state.portal.clone();
    draft.template_id = None;
    draft.activated_at = None;
    draft.status = PortalStatus::Draft;
    check(&s, "Portal", &draft);
    check(&s, "Phase", &state.phases[0]);
    check(&s, "Contact", &state.contacts[0]);

    let progress: Progress = state.progress(day(2026, 3, 22));
    check(&s, "Progress", &progress);
    check(&s, "PhaseProgress", &progress.phases[0]);
    check(&s, "StatusCounts", &progress.counts);
    check(&s, "DueCounts", &progress.due);

    check(
        &s,
        "AssignedTask",
        &AssignedTask {
            portal_name: state.portal.name,
            phase_position: 0,
            task: done.clone(),
        },
    );
    check(
        &s,
        "AssignedTaskCursor",
        &AssignedTaskCursor {
            phase_position: 2,
            task_position: 3,
            task: done.id,
        },
    );
    check(
        &s,
        "PortalTaskCounts",
        &PortalTaskCounts {
            portal: f.portal,
            total: 12,
            completed: 5,
        },
    );
}

#[test]
fn templates_match_their_schemas() {
    let s = Schemas::new();
    let mut f = Fixture::new();
    let template = f.template();
    check(&s, "Template", &template);
    check(&s, "TemplatePhase", &template.phases[0]);
    check(&s, "TemplateTask", &template.phases[0].tasks[0]);
    check(&s, "TemplateTask", &template.phases[0].tasks[1]);

    let input = template_input();
    check(&s, "TemplateInput", &input);
    check(&s, "TemplatePhaseInput", &input.phases[0]);
    check(&s, "TemplateTaskInput", &input.phases[0].tasks[0]);
    check(&s, "SurveyQuestionInput", &survey_input());

    // The smallest document a person may write.
    let minimal = json!({
        "name": "Tiny",
        "phases": [{"name": "Only", "tasks": [{"key": "a", "title": "A", "owner": "msp", "evidence": "none"}]}]
    });
    assert!(serde_json::from_value::<TemplateInput>(minimal.clone()).is_ok());
    assert!(s.validator("TemplateInput").is_valid(&minimal));
}

#[test]
fn tenants_and_staff_match_their_schemas() {
    let s = Schemas::new();
    let mut f = Fixture::new();
    check(&s, "Tenant", &f.tenant());
    check(&s, "TenantSettings", &TenantSettings::default());
    check(&s, "Role", &f.role());
    check(
        &s,
        "Role",
        &Role {
            permissions: PermissionSet::EMPTY,
            ..f.role()
        },
    );
    let user = f.staff_user();
    check(&s, "StaffUser", &user);
    check(
        &s,
        "StaffUser",
        &StaffUser {
            roles: Vec::new(),
            active: false,
            ..user
        },
    );
    check(
        &s,
        "Company",
        &Company {
            id: f.ids.next_id(),
            tenant_id: f.tenant,
            name: name("Client BV"),
            version: 1,
            created_at: now(),
        },
    );
    check(
        &s,
        "Site",
        &Site {
            id: f.ids.next_id(),
            tenant_id: f.tenant,
            company_id: f.ids.next_id(),
            name: name("Head office"),
            address: Description::parse("Main street 1\n1234 AB Utrecht").unwrap_or_else(|e| panic!("{e}")),
            version: 1,
        },
    );

    // The permission set: an array of permission names, read from any array of them.
    let set = s.validator("PermissionSet");
    assert!(set.is_valid(&serde_json::to_value(PermissionSet::all()).unwrap_or_default()));
    assert_same_verdict::<PermissionSet>(
        &set,
        "PermissionSet",
        &[
            json!([]),
            json!(["manage_users", "read_onboarding"]),
            json!(["manage_users", "manage_users"]),
            json!(["nope"]),
            json!("manage_users"),
            Value::Null,
        ],
    );
    assert_same_verdict::<TimeZone>(
        &s.validator("TimeZone"),
        "TimeZone",
        &[json!("UTC"), json!("America/New_York"), json!(3), Value::Null],
    );
}

#[test]
fn requests_match_their_schemas() {
    let s = Schemas::new();
    let mut f = Fixture::new();
    let task_input = TaskInput {
        title: Title::parse("Install agents").unwrap_or_else(|e| panic!("{e}")),
        description: Description::empty(),
        owner: TaskOwner::Msp,
        evidence: EvidenceType::FileUpload,
        priority: Priority::Normal,
        due_offset: Some(offset(7)),
        checklist: vec![text("Servers"), text("Laptops")],
        depends_on: vec![f.ids.next_id()],
        survey: vec![survey_input()],
    };
    check(&s, "TaskInput", &task_input);
    check(
        &s,
        "TaskInput",
        &TaskInput {
            due_offset: None,
            ..task_input
        },
    );

    // A patch clearing the due date (`Some(None)` is written as `null`), and one changing it.
    let clear = TaskPatch {
        due_date: Some(None),
        title: Some(Title::parse("Renamed").unwrap_or_else(|e| panic!("{e}"))),
        ..TaskPatch::default()
    };
    assert_eq!(
        serde_json::to_value(&clear).unwrap_or_default()["due_date"],
        Value::Null
    );
    check(&s, "TaskPatch", &clear);
    check(&s, "TaskPatch", &TaskPatch::default());
    check(
        &s,
        "TaskPatch",
        &TaskPatch {
            title: Some(Title::parse("T").unwrap_or_else(|e| panic!("{e}"))),
            description: Some(Description::empty()),
            priority: Some(Priority::Critical),
            due_date: Some(Some(day(2026, 12, 31))),
            owner: Some(TaskOwner::Client),
            evidence: Some(EvidenceType::Credentials),
            due_offset: Some(Some(offset(30))),
            depends_on: Some(vec![f.ids.next_id()]),
            checklist: Some(vec![text("One")]),
            survey: Some(vec![survey_input()]),
        },
    );
    // Absent, null and a value are all read; a request may send just one field.
    let patch = s.validator("TaskPatch");
    assert_same_verdict::<TaskPatch>(
        &patch,
        "TaskPatch",
        &[
            json!({}),
            json!({"due_date": null}),
            json!({"due_date": "2026-04-01"}),
            json!({"due_date": "yesterday"}),
            json!({"due_offset": null}),
            json!({"due_offset": 5}),
            json!({"due_offset": -5}),
            json!({"due_offset": 3_651}),
        ],
    );

    let contact = ContactInput {
        name: name("Sam Client"),
        email: email("sam@client.example.org"),
        role: ContactRole::PrimaryContact,
        primary: true,
    };
    check(&s, "ContactInput", &contact);
    check(&s, "ContactPatch", &ContactPatch::default());
    check(
        &s,
        "ContactPatch",
        &ContactPatch {
            name: Some(name("Sam Other")),
            email: Some(email("sam.other@client.example.org")),
            role: Some(ContactRole::Finance),
            primary: Some(false),
        },
    );
    // Absent and null leave a field as it is; a request may send just one field.
    let patch = s.validator("ContactPatch");
    assert_same_verdict::<ContactPatch>(
        &patch,
        "ContactPatch",
        &[
            json!({}),
            json!({"primary": true}),
            json!({"primary": null}),
            json!({"primary": "yes"}),
            json!({"role": "it"}),
            json!({"role": "boss"}),
            json!({"email": 5}),
            json!({"name": ""}),
        ],
    );
    check(
        &s,
        "StartOnboarding",
        &StartOnboarding {
            name: name("Acme onboarding"),
            contacts: vec![contact],
            activate: true,
        },
    );
    check(
        &s,
        "TransitionRequest",
        &TransitionRequest {
            to: PortalStatus::Archived,
            expected_version: 4,
            confirm: true,
        },
    );
}

#[test]
fn activity_matches_its_schema() {
    let s = Schemas::new();
    let mut f = Fixture::new();
    let event = ActivityEvent {
        id: f.ids.next_id(),
        tenant_id: f.tenant,
        company_id: Some(f.ids.next_id()),
        portal_id: Some(f.portal),
        kind: EventKind::TaskCompleted,
        actor: staff_actor(),
        at: now(),
        summary: "Sign the MSA completed".to_owned(),
        details: json!({"task": f.ids.next_id::<TaskId>(), "from": "in_progress", "to": "completed"}),
        erased_by: None,
    };
    check(&s, "ActivityEvent", &event);
    // An erased tombstone: no scope, empty summary, null details.
    check(
        &s,
        "ActivityEvent",
        &ActivityEvent {
            company_id: None,
            portal_id: None,
            summary: String::new(),
            details: Value::Null,
            erased_by: Some(f.ids.next_id()),
            ..event
        },
    );
}

#[test]
fn enums_list_exactly_their_names() {
    let s = Schemas::new();
    check_enum(&s, "Permission", Permission::ALL, Permission::as_str);
    check_enum(&s, "PortalStatus", PortalStatus::ALL, PortalStatus::as_str);
    check_enum(&s, "TaskStatus", TaskStatus::ALL, TaskStatus::as_str);
    check_enum(&s, "TaskOwner", TaskOwner::ALL, TaskOwner::as_str);
    check_enum(&s, "EvidenceType", EvidenceType::ALL, EvidenceType::as_str);
    check_enum(&s, "SurveyKind", SurveyKind::ALL, SurveyKind::as_str);
    check_enum(&s, "DueState", DueState::ALL, DueState::as_str);
    check_enum(&s, "ContactRole", ContactRole::ALL, ContactRole::as_str);
    check_enum(&s, "Priority", Priority::ALL, Priority::as_str);
    check_enum(&s, "EventKind", EventKind::ALL, EventKind::as_str);
    check_enum(&s, "ActorKind", ActorKind::ALL, ActorKind::as_str);
    check_enum(&s, "PhaseStatus", PhaseStatus::ALL, PhaseStatus::as_str);
}

/// Texts without surrounding white space (which `parse` trims and the schema cannot) around
/// their limits and with each kind of control character.
fn texts(min: usize, max: usize) -> Vec<Value> {
    let mut out = vec![
        json!(""),
        json!("x".repeat(min.max(1))),
        json!("é".repeat(max)),
        json!("x".repeat(max)),
        json!("x".repeat(max + 1)),
        json!("é".repeat(max + 1)),
        json!(3),
        Value::Null,
    ];
    if min > 1 {
        out.push(json!("x".repeat(min - 1)));
    }
    for c in [
        '\n', '\r', '\t', '\u{0}', '\u{7}', '\u{b}', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}',
    ] {
        out.push(json!(format!("a{c}b")));
    }
    out
}

#[test]
fn validated_values_have_their_limits() {
    let s = Schemas::new();
    let v = |name: &str| s.validator(name);
    assert_same_verdict::<Name>(&v("Name"), "Name", &texts(Name::MIN_CHARS, Name::MAX_CHARS));
    assert_same_verdict::<Title>(&v("Title"), "Title", &texts(Title::MIN_CHARS, Title::MAX_CHARS));
    assert_same_verdict::<Description>(
        &v("Description"),
        "Description",
        &texts(Description::MIN_CHARS, Description::MAX_CHARS),
    );
    assert_same_verdict::<Reason>(&v("Reason"), "Reason", &texts(Reason::MIN_CHARS, Reason::MAX_CHARS));
    assert_same_verdict::<CommentBody>(
        &v("CommentBody"),
        "CommentBody",
        &texts(CommentBody::MIN_CHARS, CommentBody::MAX_CHARS),
    );
    assert_same_verdict::<ItemText>(
        &v("ItemText"),
        "ItemText",
        &texts(ItemText::MIN_CHARS, ItemText::MAX_CHARS),
    );
    let long_email = format!(
        "{}@{}.example.com",
        "a".repeat(64),
        ["b".repeat(63), "c".repeat(63)].join(".")
    );
    assert!(long_email.len() <= Email::MAX_CHARS);
    assert_same_verdict::<Email>(
        &v("Email"),
        "Email",
        &[
            json!("a@b.c"),
            json!("a@bc"),
            json!("a@b.co"),
            json!("jo.smith@example.com"),
            json!(long_email),
            json!(""),
            json!(format!("{}@example.com", "a".repeat(243))),
            Value::Null,
        ],
    );
    assert_same_verdict::<TaskKey>(
        &v("TaskKey"),
        "TaskKey",
        &[
            json!("a"),
            json!("sign-msa_v2.1"),
            json!("x".repeat(TaskKey::MAX_CHARS)),
            json!("x".repeat(TaskKey::MAX_CHARS + 1)),
            json!(""),
            json!("a b"),
            json!("a/b"),
            json!("ä"),
            json!("a\n"),
            json!(1),
        ],
    );
    assert_same_verdict::<DayOffset>(
        &v("DayOffset"),
        "DayOffset",
        &[
            json!(0),
            json!(14),
            json!(DayOffset::MAX),
            json!(DayOffset::MAX + 1),
            json!(-1),
            json!(1.5),
            json!("14"),
            Value::Null,
        ],
    );
    assert_same_verdict::<TaskId>(
        &v("TaskId"),
        "TaskId",
        &[
            json!("0190a5b4-7d2e-7c3a-9f1e-123456789abc"),
            json!("not-a-uuid"),
            json!(""),
            json!(7),
            Value::Null,
        ],
    );
    // `Hours` is only ever written: hundredths of an hour, as an integer.
    let hours = v("Hours");
    for h in [0, 1_234, Hours::MAX_HUNDREDTHS] {
        let written = serde_json::to_value(Hours::from_hundredths(h).unwrap_or_default()).unwrap_or_default();
        assert_eq!(written, json!(h));
        assert!(hours.is_valid(&written));
    }
    assert!(!hours.is_valid(&json!(Hours::MAX_HUNDREDTHS + 1)));
    assert!(!hours.is_valid(&json!(-1)));
}
