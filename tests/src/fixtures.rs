//! Builders of realistic test data, shared by every backend (no SQL files).

use portal_core::commands::admin::FirstAdmin;
use portal_core::commands::portal::StartOnboarding;
use portal_core::id::{CompanyId, PortalId, TemplateId};
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::service::Engine;
use portal_core::task::{EvidenceType, SurveyKind, TaskOwner};
use portal_core::template::{SurveyQuestionInput, TaskKey, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use portal_core::tenant::{Tenant, TenantSettings, TimeZone};
use portal_core::value::{DayOffset, Description, Email, ItemText, Name, Priority, Title};

/// Parses a name (test data is valid by construction).
///
/// # Panics
///
/// On an invalid name.
#[must_use]
pub fn name(s: &str) -> Name {
    Name::parse(s).expect("a valid name")
}

/// Parses an email.
///
/// # Panics
///
/// On an invalid address.
#[must_use]
pub fn email(s: &str) -> Email {
    Email::parse(s).expect("a valid email")
}

/// A tenant in `Europe/Amsterdam` with its administrator, and that administrator's principal.
///
/// # Panics
///
/// When the store refuses the bootstrap.
pub async fn tenant(engine: &Engine, label: &str) -> (Tenant, Principal) {
    let settings = TenantSettings {
        time_zone: TimeZone::parse("Europe/Amsterdam").expect("a zone"),
        ..TenantSettings::default()
    };
    let admin = FirstAdmin {
        email: email(&format!("admin@{label}.example.com")),
        display_name: name("Ada Admin"),
    };
    let tenant = engine
        .create_tenant(name(&format!("{label} MSP")), settings, Some(admin))
        .await
        .expect("tenant created");
    let user = engine
        .storage()
        .find_staff_user_by_email(tenant.id, &email(&format!("admin@{label}.example.com")))
        .await
        .expect("storage")
        .expect("the admin exists");
    let principal = engine
        .staff_principal(tenant.id, user.id)
        .await
        .expect("storage")
        .expect("a principal");
    (tenant, principal)
}

fn task(
    key: &str,
    title: &str,
    owner: TaskOwner,
    evidence: EvidenceType,
    offset: i64,
    deps: &[&str],
) -> TemplateTaskInput {
    TemplateTaskInput {
        key: TaskKey::parse(key).expect("a key"),
        title: Title::parse(title).expect("a title"),
        description: Description::parse(&format!("Steps for: {title}")).expect("a description"),
        owner,
        evidence,
        priority: if offset < 3 { Priority::High } else { Priority::Normal },
        due_offset: Some(DayOffset::parse(offset).expect("an offset")),
        checklist: vec![
            ItemText::parse("Prepare").expect("text"),
            ItemText::parse("Confirm").expect("text"),
        ],
        depends_on: deps.iter().map(|d| TaskKey::parse(d).expect("a key")).collect(),
        survey: if evidence == EvidenceType::Survey {
            vec![
                SurveyQuestionInput {
                    text: ItemText::parse("How many users?").expect("text"),
                    kind: SurveyKind::Text,
                    options: vec![],
                },
                SurveyQuestionInput {
                    text: ItemText::parse("Mail platform?").expect("text"),
                    kind: SurveyKind::SingleChoice,
                    options: vec![
                        ItemText::parse("Microsoft 365").expect("text"),
                        ItemText::parse("Google Workspace").expect("text"),
                    ],
                },
            ]
        } else {
            vec![]
        },
    }
}

/// A small realistic template: 3 phases, 7 tasks, every owner, several evidence types and a
/// dependency chain (`kickoff` ← `msa` ← {`admin-creds`, `survey`} ← `cutover` ← `handover`).
#[must_use]
pub fn small_template() -> TemplateInput {
    use EvidenceType as E;
    use TaskOwner::{Client, Msp};
    TemplateInput {
        name: name("Standard onboarding"),
        description: Description::parse("Kick-off to handover").expect("a description"),
        phases: vec![
            TemplatePhaseInput {
                name: name("Kick-off"),
                description: Description::empty(),
                tasks: vec![
                    task("kickoff", "Kick-off meeting", Msp, E::Meeting, 2, &[]),
                    task(
                        "msa",
                        "Sign the master services agreement",
                        Client,
                        E::Signature,
                        5,
                        &["kickoff"],
                    ),
                ],
            },
            TemplatePhaseInput {
                name: name("Discovery"),
                description: Description::empty(),
                tasks: vec![
                    task(
                        "admin-creds",
                        "Share admin credentials",
                        Client,
                        E::Credentials,
                        7,
                        &["msa"],
                    ),
                    task("survey", "Environment survey", Client, E::Survey, 7, &["msa"]),
                    task("docs", "Upload network diagrams", Client, E::FileUpload, 10, &[]),
                ],
            },
            TemplatePhaseInput {
                name: name("Go-live"),
                description: Description::empty(),
                tasks: vec![
                    task("cutover", "Cut over mail", Msp, E::None, 14, &["admin-creds", "survey"]),
                    task(
                        "handover",
                        "Acknowledge handover",
                        Client,
                        E::Acknowledgement,
                        21,
                        &["cutover"],
                    ),
                ],
            },
        ],
    }
}

/// A generated template of `phases × tasks_per_phase` tasks where every task after the first of
/// a phase depends on the one before it.
#[must_use]
pub fn sized_template(phases: usize, tasks_per_phase: usize) -> TemplateInput {
    TemplateInput {
        name: name(&format!("Template {phases}x{tasks_per_phase}")),
        description: Description::empty(),
        phases: (0..phases)
            .map(|p| TemplatePhaseInput {
                name: name(&format!("Phase {p}")),
                description: Description::empty(),
                tasks: (0..tasks_per_phase)
                    .map(|t| {
                        let key = format!("p{p}t{t}");
                        let prev = format!("p{p}t{}", t.wrapping_sub(1));
                        let deps: Vec<&str> = if t > 0 { vec![prev.as_str()] } else { vec![] };
                        let owner = if t % 2 == 0 { TaskOwner::Msp } else { TaskOwner::Client };
                        task(
                            &key,
                            &format!("Task {t} of phase {p}"),
                            owner,
                            EvidenceType::Acknowledgement,
                            (t % 30) as i64,
                            &deps,
                        )
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Two contacts, the first primary.
#[must_use]
pub fn contacts() -> Vec<ContactInput> {
    vec![
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
    ]
}

/// A company, a template and a portal started from it (draft unless `activate`).
///
/// # Panics
///
/// When a step the fixtures rely on is refused.
pub async fn portal(
    engine: &Engine,
    admin: &Principal,
    template: &TemplateInput,
    activate: bool,
) -> (CompanyId, TemplateId, PortalId) {
    let company = engine.create_company(admin, name("Client Co")).await.expect("company");
    let template = engine.create_template(admin, template).await.expect("template");
    let portal = engine
        .start_onboarding(
            admin,
            company.id,
            template,
            &StartOnboarding {
                name: name("Client Co onboarding"),
                contacts: contacts(),
                activate,
            },
        )
        .await
        .expect("portal started");
    (company.id, template, portal)
}
