//! The seeded data-set generator: every row comes out of portal-core's commands.
//!
//! Each tenant has an RNG of its own, seeded from the data set's seed and the tenant's index,
//! so tenants do not depend on one another and the same seed always gives the same data. Times
//! come from a synthetic clock that ends before [`now`]: tenants were set up about 400 days
//! before it, portals were started over the year before it, and each portal's history runs
//! forward from its start.

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use portal_core::activity::ActivityEvent;
use portal_core::auth::SecretToken;
use portal_core::commands::admin::{self, FirstAdmin};
use portal_core::commands::portal::{self as portal_cmd, StartOnboarding, TransitionRequest};
use portal_core::commands::task::{self as task_cmd, derive_statuses};
use portal_core::commands::{Ctx, template as template_cmd};
use portal_core::company::Company;
use portal_core::error::CommandError;
use portal_core::id::{CompanyId, PortalId, TenantId};
use portal_core::lifecycle::PortalStatus;
use portal_core::outcome::{Outcome, Write};
use portal_core::policy::{ContactPrincipal, Principal, StaffPrincipal, SystemPrincipal};
use portal_core::portal::{ContactInput, ContactRole, PortalState};
use portal_core::task::{EvidenceType, SurveyKind, TaskOwner, TaskStatus};
use portal_core::template::{
    SurveyQuestionInput, TaskKey, Template, TemplateInput, TemplatePhaseInput, TemplateTaskInput,
};
use portal_core::tenant::{Permission, PermissionSet, Role, StaffUser, Tenant, TenantSettings, TimeZone};
use portal_core::value::{CommentBody, DayOffset, Description, Email, ItemText, Name, Priority, Reason, Title};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Size, SizeSpec};

/// The seed the benchmarks use unless told otherwise.
pub const DEFAULT_SEED: u64 = 20_260_302;

/// The moment every data set is generated up to: Monday 2 March 2026, 09:00 UTC. Benchmarks
/// that need a clock use it, so due states are the same from run to run.
#[must_use]
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap_or_default()
}

/// A command context at `at` with 16 bytes from `rng`.
pub fn ctx(rng: &mut StdRng, at: DateTime<Utc>) -> Ctx {
    Ctx::new(at, rng.random())
}

// ---------------------------------------------------------------------------------------------
// Values (valid by construction: a refusal is a bug of the generator)

fn valid<T, E: std::fmt::Display>(what: &str, raw: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("the generator made an invalid {what} {raw:?}: {e}"))
}

fn name(s: &str) -> Name {
    valid("name", s, Name::parse(s))
}

fn email(s: &str) -> Email {
    valid("email", s, Email::parse(s))
}

fn title(s: &str) -> Title {
    valid("title", s, Title::parse(s))
}

fn description(s: &str) -> Description {
    valid("description", s, Description::parse(s))
}

fn item(s: &str) -> ItemText {
    valid("text", s, ItemText::parse(s))
}

fn reason(s: &str) -> Reason {
    valid("reason", s, Reason::parse(s))
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Picks one of `choices` with probability proportional to its weight.
fn weighted<T: Copy>(rng: &mut StdRng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|c| c.1).sum();
    let mut roll = rng.random_range(0..total);
    for &(value, weight) in choices {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    choices[choices.len() - 1].0
}

const ZONES: &[&str] = &[
    "Europe/Amsterdam",
    "America/New_York",
    "Europe/London",
    "America/Chicago",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Europe/Berlin",
    "UTC",
];

const MSP_WORDS: &[&str] = &[
    "Bluewave",
    "Ironclad",
    "Brightpath",
    "Northstar",
    "Cloudline",
    "Keystone",
    "Redwood",
    "Summit",
    "Harbor",
    "Lighthouse",
];

const COMPANY_WORDS: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Adatum",
    "Litware",
    "Proseware",
    "Tailspin",
    "Wingtip",
    "Woodgrove",
    "Alpine",
    "Fourth Coffee",
    "Lucerne",
    "Margie's",
    "Coho",
    "Humongous",
    "Trey",
];

const COMPANY_KINDS: &[&str] = &[
    "Dental",
    "Legal",
    "Accounting",
    "Logistics",
    "Manufacturing",
    "Clinic",
    "Architects",
    "Realty",
    "Insurance",
    "Engineering",
];

const FIRST_NAMES: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Mia", "Noah",
    "Olga", "Pavel", "Quinn", "Rosa", "Sam", "Tariq",
];

const LAST_NAMES: &[&str] = &[
    "Smith", "Jansen", "Garcia", "Nguyen", "Kowalski", "Okafor", "Rossi", "Dubois", "Larsen", "Silva",
];

const PHASE_NAMES: &[&str] = &[
    "Kick-off",
    "Discovery",
    "Access and credentials",
    "Network",
    "Identity",
    "Mail migration",
    "Endpoints",
    "Backup",
    "Security baseline",
    "Line-of-business apps",
    "Documentation",
    "Go-live",
    "Handover",
];

const VERBS: &[&str] = &[
    "Configure",
    "Review",
    "Document",
    "Migrate",
    "Verify",
    "Install",
    "Audit",
    "Enable",
    "Collect",
    "Schedule",
    "Sign",
    "Upload",
];

const OBJECTS: &[&str] = &[
    "the firewall rules",
    "admin credentials",
    "the backup policy",
    "mailboxes",
    "MFA for all users",
    "the network diagram",
    "endpoint protection",
    "the master services agreement",
    "the Wi-Fi controllers",
    "the domain registrar access",
    "printer inventory",
    "the line-of-business application",
    "shared drives",
    "the patching window",
    "the escalation contacts",
];

const CHECKLIST: &[&str] = &[
    "Prepare",
    "Confirm with the client",
    "Test",
    "Record in documentation",
    "Screenshot the result",
    "Notify the account manager",
    "Double-check licensing",
];

const COMMENTS: &[&str] = &[
    "Done on our side, please confirm.",
    "Waiting for the vendor to answer.",
    "Could you send the details by Friday?",
    "Scheduled for next week.",
    "Thanks, that works for us.",
    "We found two more devices, adding them to the list.",
    "Which site does this apply to?",
    "Credentials received, testing now.",
];

// ---------------------------------------------------------------------------------------------
// Templates

/// A template document of `tasks` tasks spread over `phases` phases, drawn from `rng`: about a
/// third of the tasks depend on one to three of the twelve tasks before them, most tasks have a
/// checklist, survey tasks have questions, and due offsets grow by a week per phase.
#[must_use]
pub fn template_input(rng: &mut StdRng, template_name: &str, phases: usize, tasks: usize) -> TemplateInput {
    let phases = phases.max(1);
    let mut k = 0usize;
    let mut phase_inputs = Vec::with_capacity(phases);
    for p in 0..phases {
        let count = tasks / phases + usize::from(p < tasks % phases);
        let mut task_inputs = Vec::with_capacity(count);
        for _ in 0..count {
            task_inputs.push(task_input(rng, k, p));
            k += 1;
        }
        let phase_name = if p < PHASE_NAMES.len() {
            PHASE_NAMES[p].to_owned()
        } else {
            format!("{} {}", PHASE_NAMES[p % PHASE_NAMES.len()], p / PHASE_NAMES.len() + 1)
        };
        phase_inputs.push(TemplatePhaseInput {
            name: name(&phase_name),
            description: description(&format!("Phase {} of {phases}: {phase_name}.", p + 1)),
            tasks: task_inputs,
        });
    }
    TemplateInput {
        name: name(template_name),
        description: description(&format!("{tasks} tasks in {phases} phases, generated.")),
        phases: phase_inputs,
    }
}

fn task_input(rng: &mut StdRng, k: usize, phase: usize) -> TemplateTaskInput {
    let verb = pick(rng, VERBS);
    let object = pick(rng, OBJECTS);
    let text = format!("{verb} {object}");
    let mut depends_on = Vec::new();
    if k > 0 && rng.random_bool(0.35) {
        let lo = k.saturating_sub(12);
        let wanted = rng.random_range(1..=3usize).min(k - lo);
        while depends_on.len() < wanted {
            let d = rng.random_range(lo..k);
            if !depends_on.contains(&d) {
                depends_on.push(d);
            }
        }
    }
    let evidence = weighted(
        rng,
        &[
            (EvidenceType::Acknowledgement, 25),
            (EvidenceType::None, 20),
            (EvidenceType::FileUpload, 15),
            (EvidenceType::Signature, 10),
            (EvidenceType::Credentials, 10),
            (EvidenceType::Meeting, 10),
            (EvidenceType::Survey, 10),
        ],
    );
    let checklist = (0..rng.random_range(0..=4usize))
        .map(|i| item(&format!("{}. {}", i + 1, pick(rng, CHECKLIST))))
        .collect();
    let survey = if evidence == EvidenceType::Survey {
        (0..rng.random_range(1..=3usize))
            .map(|i| survey_question(rng, i))
            .collect()
    } else {
        Vec::new()
    };
    TemplateTaskInput {
        key: valid("key", "t", TaskKey::parse(&format!("t{k}"))),
        title: title(&text),
        description: description(&format!(
            "{text} for the client, following the MSP's runbook. Record anything unusual in the comments."
        )),
        owner: if rng.random_bool(0.55) {
            TaskOwner::Msp
        } else {
            TaskOwner::Client
        },
        evidence,
        priority: weighted(
            rng,
            &[
                (Priority::Low, 15),
                (Priority::Normal, 60),
                (Priority::High, 20),
                (Priority::Critical, 5),
            ],
        ),
        due_offset: rng.random_bool(0.9).then(|| {
            let days = (phase * 7) as i64 + rng.random_range(0..7i64);
            valid("offset", "days", DayOffset::parse(days))
        }),
        checklist,
        depends_on: depends_on
            .into_iter()
            .map(|d| valid("key", "t", TaskKey::parse(&format!("t{d}"))))
            .collect(),
        survey,
    }
}

fn survey_question(rng: &mut StdRng, i: usize) -> SurveyQuestionInput {
    let kind = weighted(
        rng,
        &[
            (SurveyKind::Text, 3),
            (SurveyKind::SingleChoice, 3),
            (SurveyKind::MultipleChoice, 2),
            (SurveyKind::YesNo, 2),
        ],
    );
    let options = match kind {
        SurveyKind::SingleChoice | SurveyKind::MultipleChoice => (0..rng.random_range(2..=4usize))
            .map(|o| item(&format!("Option {}", o + 1)))
            .collect(),
        SurveyKind::Text | SurveyKind::YesNo => Vec::new(),
    };
    SurveyQuestionInput {
        text: item(&format!("Question {}: how is this set up today?", i + 1)),
        kind,
        options,
    }
}

/// The PERF-4 template: 20 phases, 500 tasks, drawn from `seed`.
#[must_use]
pub fn perf4_template(seed: u64) -> TemplateInput {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5045_5246_2d34);
    template_input(&mut rng, "PERF-4 onboarding 20x500", 20, 500)
}

// ---------------------------------------------------------------------------------------------
// The data set

/// A staff user who may work on portals, with their principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The user.
    pub user: StaffUser,
    /// Their principal (the union of their roles' permissions).
    pub principal: Principal,
}

/// A portal of the data set, in brief.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSummary {
    /// Id.
    pub id: PortalId,
    /// Its company.
    pub company_id: CompanyId,
    /// Its status at the end of its history.
    pub status: PortalStatus,
    /// Its tasks.
    pub tasks: usize,
    /// Tasks completed at the end of its history.
    pub completed: usize,
    /// Activity events of its history.
    pub events: usize,
    /// Principals of its contacts (the first is the primary one).
    pub contacts: Vec<ContactPrincipal>,
}

/// One tenant of the data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantData {
    /// The tenant.
    pub tenant: Tenant,
    /// Its roles: Administrator, Technician, Viewer.
    pub roles: Vec<Role>,
    /// The administrator's principal.
    pub admin: Principal,
    /// Every staff user, the administrator first.
    pub staff: Vec<StaffUser>,
    /// Staff users who may manage onboarding (the administrator included).
    pub workers: Vec<Worker>,
    /// Companies.
    pub companies: Vec<Company>,
    /// Templates, whole.
    pub templates: Vec<Template>,
    /// Portals, in the order they were started.
    pub portals: Vec<PortalSummary>,
}

impl TenantData {
    /// A system principal of this tenant.
    #[must_use]
    pub const fn system(&self, worker: &'static str) -> Principal {
        Principal::System(SystemPrincipal {
            tenant_id: self.tenant.id,
            worker,
        })
    }
}

/// Rows made, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Tenants.
    pub tenants: u64,
    /// Staff users.
    pub staff: u64,
    /// Companies.
    pub companies: u64,
    /// Templates.
    pub templates: u64,
    /// Portals.
    pub portals: u64,
    /// Portal tasks.
    pub tasks: u64,
    /// Task comments.
    pub comments: u64,
    /// Activity events.
    pub events: u64,
    /// Outcomes (one transaction each when loaded).
    pub commits: u64,
}

impl Counts {
    fn add(&mut self, o: &Outcome) {
        self.commits += 1;
        self.events += o.events.len() as u64;
        for w in &o.writes {
            match w {
                Write::InsertTenant(_) => self.tenants += 1,
                Write::InsertStaffUser(_) => self.staff += 1,
                Write::InsertCompany(_) => self.companies += 1,
                Write::InsertTemplate(_) => self.templates += 1,
                Write::InsertPortal(s) => {
                    self.portals += 1;
                    self.tasks += s.tasks.len() as u64;
                }
                Write::InsertComment(_) => self.comments += 1,
                _ => {}
            }
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tenants, {} staff, {} companies, {} templates, {} portals, {} tasks, {} comments, {} events",
            self.tenants,
            self.staff,
            self.companies,
            self.templates,
            self.portals,
            self.tasks,
            self.comments,
            self.events
        )
    }
}

/// A generated data set, without its rows (they went to storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSet {
    /// Its size.
    pub size: Size,
    /// Its seed.
    pub seed: u64,
    /// Its tenants.
    pub tenants: Vec<TenantData>,
    /// What it holds.
    pub counts: Counts,
}

/// What a [`Batch`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// A tenant with its roles, staff, companies and templates (one outcome per command).
    TenantSetup {
        /// The tenant's index in the data set.
        index: usize,
    },
    /// One portal with its whole history, merged into one outcome.
    Portal {
        /// The tenant's index in the data set.
        tenant: usize,
        /// The portal's index in its tenant.
        index: usize,
    },
}

/// Outcomes to commit in order, each in one transaction, all of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The tenant every row belongs to.
    pub tenant: TenantId,
    /// What the batch is.
    pub kind: BatchKind,
    /// The outcomes.
    pub outcomes: Vec<Outcome>,
}

/// Yields a data set batch by batch, keeping in memory only the tenant it is working on and a
/// summary of the others.
#[derive(Debug)]
pub struct Generator {
    size: Size,
    spec: SizeSpec,
    seed: u64,
    next_tenant: usize,
    current: Option<TenantGen>,
    tenants: Vec<TenantData>,
    counts: Counts,
}

impl Generator {
    /// A generator of `size` from `seed`.
    #[must_use]
    pub const fn new(size: Size, seed: u64) -> Self {
        Self {
            size,
            spec: size.spec(),
            seed,
            next_tenant: 0,
            current: None,
            tenants: Vec::new(),
            counts: Counts {
                tenants: 0,
                staff: 0,
                companies: 0,
                templates: 0,
                portals: 0,
                tasks: 0,
                comments: 0,
                events: 0,
                commits: 0,
            },
        }
    }

    /// The counts of the size being generated.
    #[must_use]
    pub const fn spec(&self) -> &SizeSpec {
        &self.spec
    }

    /// What has been yielded so far.
    #[must_use]
    pub const fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The next batch, `None` when the data set is complete.
    ///
    /// # Panics
    ///
    /// When a generated command is refused by portal-core: a bug of the generator.
    pub fn next_batch(&mut self) -> Option<Batch> {
        if let Some(current) = &mut self.current {
            if current.next_portal < self.spec.portals_per_tenant {
                let batch = current.portal(&self.spec);
                batch.outcomes.iter().for_each(|o| self.counts.add(o));
                return Some(batch);
            }
            if let Some(done) = self.current.take() {
                self.tenants.push(done.data);
            }
        }
        if self.next_tenant >= self.spec.tenants {
            return None;
        }
        let index = self.next_tenant;
        self.next_tenant += 1;
        let (current, batch) = TenantGen::setup(self.seed, index, &self.spec);
        self.current = Some(current);
        batch.outcomes.iter().for_each(|o| self.counts.add(o));
        Some(batch)
    }

    /// The data set once every batch has been taken (batches not taken yet are generated and
    /// dropped).
    #[must_use]
    pub fn finish(mut self) -> DataSet {
        while self.next_batch().is_some() {}
        DataSet {
            size: self.size,
            seed: self.seed,
            tenants: self.tenants,
            counts: self.counts,
        }
    }
}

/// The whole data set generated in memory, rows dropped: for benchmarks that need principals
/// and ids but no store.
#[must_use]
pub fn generate(size: Size, seed: u64) -> DataSet {
    Generator::new(size, seed).finish()
}

fn tenant_seed(seed: u64, index: usize) -> u64 {
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[derive(Debug)]
struct TenantGen {
    index: usize,
    rng: StdRng,
    data: TenantData,
    next_portal: usize,
    /// Events still to spend on the portals not generated yet.
    events_left: u64,
}

fn take_write<T>(o: &Outcome, f: impl Fn(&Write) -> Option<T>) -> T {
    o.writes
        .iter()
        .find_map(f)
        .unwrap_or_else(|| panic!("a command's outcome lacks the row it was expected to write"))
}

fn refused(what: &str) -> impl FnOnce(CommandError) -> Outcome + '_ {
    move |e| panic!("the generator's {what} was refused by portal-core: {e}")
}

impl TenantGen {
    fn setup(seed: u64, index: usize, spec: &SizeSpec) -> (Self, Batch) {
        let mut rng = StdRng::seed_from_u64(tenant_seed(seed, index));
        let mut clock = now() - Duration::days(400) + Duration::hours(index as i64);
        let mut tick = |rng: &mut StdRng| {
            clock += Duration::seconds(rng.random_range(20..600));
            ctx(rng, clock)
        };
        let label = format!("t{index:02}");
        let domain = format!("{label}.msp.example.com");
        let zone = ZONES[index % ZONES.len()];
        let settings = TenantSettings {
            time_zone: valid("zone", zone, TimeZone::parse(zone)),
            billable_default: rng.random_bool(0.7),
            forwarded_link_protection: true,
        };
        let msp = format!("{} IT {}", pick(&mut rng, MSP_WORDS), index + 1);
        let mut outcomes = Vec::new();

        let o = admin::create_tenant(
            &mut tick(&mut rng),
            name(&msp),
            settings,
            Some(FirstAdmin {
                email: email(&format!("admin@{domain}")),
                display_name: name("Ada Admin"),
            }),
        );
        let tenant = take_write(&o, |w| match w {
            Write::InsertTenant(t) => Some(t.clone()),
            _ => None,
        });
        let mut roles = vec![take_write(&o, |w| match w {
            Write::InsertRole(r) => Some(r.clone()),
            _ => None,
        })];
        let admin_user = take_write(&o, |w| match w {
            Write::InsertStaffUser(u) => Some(u.clone()),
            _ => None,
        });
        outcomes.push(o);
        let staff_principal = |u: &StaffUser, roles: &[Role]| {
            Principal::Staff(StaffPrincipal {
                tenant_id: u.tenant_id,
                user_id: u.id,
                email: u.email.clone(),
                permissions: u.permissions(roles),
            })
        };
        let admin = staff_principal(&admin_user, &roles);

        for (role_name, permissions) in [
            (
                "Technician",
                PermissionSet::EMPTY
                    .with(Permission::ReadOnboarding)
                    .with(Permission::ManageOnboarding),
            ),
            ("Viewer", PermissionSet::EMPTY.with(Permission::ReadOnboarding)),
        ] {
            let (_, o) = admin::create_role(&admin, &mut tick(&mut rng), &roles, name(role_name), permissions)
                .unwrap_or_else(|e| panic!("the generator's role was refused: {e}"));
            roles.push(take_write(&o, |w| match w {
                Write::InsertRole(r) => Some(r.clone()),
                _ => None,
            }));
            outcomes.push(o);
        }

        let mut staff = vec![admin_user];
        for i in 1..spec.staff_per_tenant {
            let role = weighted(&mut rng, &[(1usize, 75), (2, 15), (0, 10)]);
            let first = pick(&mut rng, FIRST_NAMES);
            let last = pick(&mut rng, LAST_NAMES);
            let address = format!("{}.{}{i}@{domain}", first.to_lowercase(), last.to_lowercase());
            let (_, o) = admin::create_staff_user(
                &admin,
                &mut tick(&mut rng),
                &roles,
                email(&address),
                name(&format!("{first} {last}")),
                &[roles[role].id],
            )
            .unwrap_or_else(|e| panic!("the generator's staff user was refused: {e}"));
            staff.push(take_write(&o, |w| match w {
                Write::InsertStaffUser(u) => Some(u.clone()),
                _ => None,
            }));
            outcomes.push(o);
        }
        let workers = staff
            .iter()
            .filter(|u| u.permissions(&roles).contains(Permission::ManageOnboarding))
            .map(|u| Worker {
                user: u.clone(),
                principal: staff_principal(u, &roles),
            })
            .collect();

        let mut companies = Vec::with_capacity(spec.companies_per_tenant);
        for i in 0..spec.companies_per_tenant {
            let company_name = format!(
                "{} {} {}",
                pick(&mut rng, COMPANY_WORDS),
                pick(&mut rng, COMPANY_KINDS),
                i + 1
            );
            let (company, o) = admin::create_company(&admin, &mut tick(&mut rng), name(&company_name))
                .unwrap_or_else(|e| panic!("the generator's company was refused: {e}"));
            companies.push(company);
            outcomes.push(o);
        }

        let mut templates = Vec::with_capacity(spec.templates_per_tenant);
        for i in 0..spec.templates_per_tenant {
            let input = template_input(
                &mut rng,
                &format!("Onboarding playbook {}", i + 1),
                spec.phases_per_template,
                spec.tasks_per_portal,
            );
            let (_, o) = template_cmd::create_template(&admin, &mut tick(&mut rng), &input)
                .unwrap_or_else(|e| panic!("the generator's template was refused: {e}"));
            templates.push(take_write(&o, |w| match w {
                Write::InsertTemplate(t) => Some(t.clone()),
                _ => None,
            }));
            outcomes.push(o);
        }

        let setup_events: u64 = outcomes.iter().map(|o| o.events.len() as u64).sum();
        let data = TenantData {
            tenant,
            roles,
            admin,
            staff,
            workers,
            companies,
            templates,
            portals: Vec::with_capacity(spec.portals_per_tenant),
        };
        let batch = Batch {
            tenant: data.tenant.id,
            kind: BatchKind::TenantSetup { index },
            outcomes,
        };
        (
            Self {
                index,
                rng,
                data,
                next_portal: 0,
                events_left: spec.tenant_events(index).saturating_sub(setup_events),
            },
            batch,
        )
    }

    fn portal(&mut self, spec: &SizeSpec) -> Batch {
        let index = self.next_portal;
        self.next_portal += 1;
        let left = (spec.portals_per_tenant - index).max(1) as u64;
        let budget = usize::try_from(self.events_left / left).unwrap_or(usize::MAX);
        let rng = &mut self.rng;

        // Started over the year before `now`, in order, a little jitter each.
        let span = Duration::days(335).num_seconds();
        let offset = span * index as i64 / spec.portals_per_tenant.max(1) as i64;
        let created =
            now() - Duration::days(365) + Duration::seconds(offset) + Duration::seconds(rng.random_range(0..43_200));
        let company = pick(rng, &self.data.companies).clone();
        let template = pick(rng, &self.data.templates);
        let plan = weighted(
            rng,
            &[
                (PortalStatus::Draft, 10),
                (PortalStatus::Active, 60),
                (PortalStatus::Completed, 20),
                (PortalStatus::Archived, 10),
            ],
        );
        let activate_at_start = plan != PortalStatus::Draft && rng.random_bool(0.5);
        let contacts = contact_inputs(rng, &company);
        let starter = pick(rng, &self.data.workers).principal.clone();
        let request = StartOnboarding {
            name: name(&format!("{} onboarding", company.name)),
            contacts,
            activate: activate_at_start,
        };
        let seed = SecretToken::from_bytes(rng.random());
        let (portal_id, mut first) = portal_cmd::start_onboarding(
            &starter,
            &mut ctx(rng, created),
            &self.data.tenant,
            &company,
            template,
            &request,
            &seed,
        )
        .unwrap_or_else(|e| panic!("the generator's portal was refused: {e}"));
        // Past mail, as in `Sim::run`.
        first.messages.clear();
        let state = take_write(&first, |w| match w {
            Write::InsertPortal(s) => Some((**s).clone()),
            _ => None,
        });
        let contacts: Vec<ContactPrincipal> = state
            .contacts
            .iter()
            .map(|c| ContactPrincipal {
                tenant_id: c.tenant_id,
                portal_id: c.portal_id,
                contact_id: c.id,
                email: c.email.clone(),
            })
            .collect();
        // The history fits in the time between the start and `now` (at most 60 days of it).
        let available = (now() - created - Duration::hours(12))
            .min(Duration::days(60))
            .num_seconds()
            .max(3_600);
        let step_max = (available * 2 / budget.max(1) as i64).clamp(60, 2 * 86_400);
        let mut sim = Sim {
            rng,
            workers: &self.data.workers,
            contacts: contacts.iter().cloned().map(Principal::Contact).collect(),
            tenant: &self.data.tenant,
            company_name: &company.name,
            state,
            out: first,
            clock: created,
            step_max,
        };
        sim.history(plan, activate_at_start, budget);
        let Sim { state, out, .. } = sim;
        let events = out.events.len();
        self.events_left = self.events_left.saturating_sub(events as u64);
        self.data.portals.push(PortalSummary {
            id: portal_id,
            company_id: company.id,
            status: state.portal.status,
            tasks: state.tasks.len(),
            completed: state.tasks.iter().filter(|t| t.is_completed()).count(),
            events,
            contacts,
        });
        Batch {
            tenant: self.data.tenant.id,
            kind: BatchKind::Portal {
                tenant: self.index,
                index,
            },
            outcomes: vec![out],
        }
    }
}

fn contact_inputs(rng: &mut StdRng, company: &Company) -> Vec<ContactInput> {
    let domain = format!("client{}.example.org", company.id.as_uuid().simple());
    let roles = [
        ContactRole::PrimaryContact,
        ContactRole::It,
        ContactRole::DecisionMaker,
        ContactRole::Finance,
        ContactRole::OfficeManager,
    ];
    (0..rng.random_range(1..=3usize))
        .map(|i| {
            let first = pick(rng, FIRST_NAMES);
            let last = pick(rng, LAST_NAMES);
            ContactInput {
                name: name(&format!("{first} {last}")),
                email: email(&format!("{}.{}{i}@{domain}", first.to_lowercase(), last.to_lowercase())),
                role: if i == 0 {
                    ContactRole::PrimaryContact
                } else {
                    *pick(rng, &roles[1..])
                },
                primary: i == 0,
            }
        })
        .collect()
}

/// Applies the rows of `o` that later commands of the same portal read.
fn apply(state: &mut PortalState, o: &Outcome) {
    for w in &o.writes {
        match w {
            Write::UpdateTask { task, .. } => {
                if let Some(t) = state.tasks.iter_mut().find(|t| t.id == task.id) {
                    t.clone_from(task);
                }
            }
            Write::UpdatePortal { portal, .. } => state.portal.clone_from(portal),
            _ => {}
        }
    }
}

/// One portal's history, run command by command on its state and merged into one outcome.
struct Sim<'a> {
    rng: &'a mut StdRng,
    workers: &'a [Worker],
    contacts: Vec<Principal>,
    tenant: &'a Tenant,
    company_name: &'a Name,
    state: PortalState,
    out: Outcome,
    clock: DateTime<Utc>,
    step_max: i64,
}

impl Sim<'_> {
    fn run(&mut self, what: &str, command: impl FnOnce(&mut Ctx, &PortalState) -> Result<Outcome, CommandError>) {
        self.clock += Duration::seconds(self.rng.random_range(30..=self.step_max));
        let mut ctx = ctx(self.rng, self.clock);
        let o = command(&mut ctx, &self.state).unwrap_or_else(refused(what));
        apply(&mut self.state, &o);
        let Outcome {
            writes,
            events,
            messages,
            effects,
        } = o;
        self.out.writes.extend(writes);
        self.out.events.extend(events);
        // A generated history lies in the past: its mail went out long ago, so the outbox of
        // the data set stays empty (and no token is ever stored in clear).
        drop(messages);
        self.out.effects.extend(effects);
    }

    fn staff(&mut self) -> Principal {
        pick(self.rng, self.workers).principal.clone()
    }

    /// A contact while the portal is active and the coin says so, staff otherwise.
    fn someone(&mut self, contact_share: f64) -> Principal {
        if self.state.portal.status == PortalStatus::Active && self.rng.random_bool(contact_share) {
            pick(self.rng, &self.contacts).clone()
        } else {
            self.staff()
        }
    }

    fn completed(&self) -> usize {
        self.state.tasks.iter().filter(|t| t.is_completed()).count()
    }

    fn transition(&mut self, to: PortalStatus) {
        let principal = self.staff();
        let (tenant, company) = (self.tenant, self.company_name);
        let seed = SecretToken::from_bytes(self.rng.random());
        let request = TransitionRequest {
            to,
            expected_version: self.state.portal.version,
            confirm: to == PortalStatus::Archived,
        };
        self.run("transition", |ctx, s| {
            portal_cmd::transition_portal(
                &principal,
                ctx,
                s,
                portal_cmd::TransitionEnv::new(tenant, company, &seed),
                request,
            )
        });
    }

    fn history(&mut self, plan: PortalStatus, activated: bool, budget: usize) {
        let n = self.state.tasks.len();
        if !activated {
            for _ in 0..self.rng.random_range(0..=3usize) {
                self.assign();
            }
            if plan == PortalStatus::Draft {
                return;
            }
            self.transition(PortalStatus::Active);
        }
        let mut target = match plan {
            PortalStatus::Completed => n,
            PortalStatus::Archived => self.rng.random_range(n / 5..=n),
            _ => self.rng.random_range(0..=n * 95 / 100),
        };
        let closing = usize::from(matches!(plan, PortalStatus::Completed | PortalStatus::Archived));
        loop {
            let progress_left = target.saturating_sub(self.completed());
            let chatter_left = budget.saturating_sub(self.out.events.len() + progress_left * 3 / 2 + closing);
            if progress_left == 0 && chatter_left == 0 {
                break;
            }
            let progress = progress_left > 0
                && (chatter_left == 0 || self.rng.random_range(0..progress_left + chatter_left) < progress_left);
            if progress {
                if !self.progress_step() {
                    target = self.completed();
                }
            } else {
                self.chatter_step();
            }
        }
        match plan {
            PortalStatus::Completed if self.completed() == n => self.transition(PortalStatus::Completed),
            PortalStatus::Archived => self.transition(PortalStatus::Archived),
            _ => {}
        }
    }

    /// Starts or completes one of the first workable tasks; lifts a manual block when nothing
    /// else can move. `false` when nothing can.
    fn progress_step(&mut self) -> bool {
        let workable: Vec<usize> = self
            .state
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.status, TaskStatus::Pending | TaskStatus::InProgress))
            .map(|(i, _)| i)
            .take(3)
            .collect();
        if workable.is_empty() {
            let Some(i) = self.state.tasks.iter().position(|t| t.block_reason.is_some()) else {
                return false;
            };
            self.unblock(i);
            return true;
        }
        let i = *pick(self.rng, &workable);
        let (id, version, owner, status, evidence) = {
            let t = &self.state.tasks[i];
            (t.id, t.version, t.owner, t.status, t.evidence)
        };
        let contact_may = owner == TaskOwner::Client;
        let mut principal = if contact_may { self.someone(0.8) } else { self.staff() };
        if status == TaskStatus::Pending && self.rng.random_bool(0.5) {
            self.run("start", |ctx, s| task_cmd::start_task(&principal, ctx, s, id, version));
        } else {
            // A contact completes by hand only what its completion proves (acknowledgement,
            // none); the other evidence flows do not exist yet, so staff record those.
            if matches!(principal, Principal::Contact(_))
                && !matches!(evidence, EvidenceType::Acknowledgement | EvidenceType::None)
            {
                principal = self.staff();
            }
            let why = (contact_may && matches!(principal, Principal::Staff(_)))
                .then(|| reason("Confirmed by the client on the phone"));
            self.run("complete", |ctx, s| {
                task_cmd::complete_task(&principal, ctx, s, id, version, why.as_ref())
            });
        }
        true
    }

    fn chatter_step(&mut self) {
        let active = self.state.portal.status == PortalStatus::Active;
        let roll = self.rng.random_range(0..100u32);
        if roll < 60 || (!active && roll < 85) {
            self.comment();
        } else if roll < 85 {
            self.tick_checklist();
        } else if roll < 98 || !active {
            self.assign();
        } else if roll < 99 {
            self.block_or_unblock();
        } else {
            self.reopen();
        }
    }

    fn comment(&mut self) {
        let i = self.rng.random_range(0..self.state.tasks.len());
        let id = self.state.tasks[i].id;
        let principal = self.someone(0.5);
        let question = self.rng.random_bool(0.2);
        let text = *pick(self.rng, COMMENTS);
        let body = valid("comment", text, CommentBody::parse(text));
        self.run("comment", |ctx, s| {
            task_cmd::add_comment(&principal, ctx, s, id, body, question).map(|(_, o)| o)
        });
    }

    fn tick_checklist(&mut self) {
        let with_items: Vec<usize> = (0..self.state.tasks.len())
            .filter(|&i| !self.state.tasks[i].checklist.is_empty())
            .collect();
        if with_items.is_empty() {
            self.comment();
            return;
        }
        let i = *pick(self.rng, &with_items);
        let t = &self.state.tasks[i];
        let (id, version, owner) = (t.id, t.version, t.owner);
        let which = self.rng.random_range(0..t.checklist.len());
        let (item_id, done) = (t.checklist[which].id, t.checklist[which].done);
        let principal = if owner == TaskOwner::Client {
            self.someone(0.7)
        } else {
            self.staff()
        };
        self.run("checklist", |ctx, s| {
            task_cmd::set_checklist_item(&principal, ctx, s, id, version, item_id, !done)
        });
    }

    fn assign(&mut self) {
        if !matches!(self.state.portal.status, PortalStatus::Draft | PortalStatus::Active) {
            self.comment();
            return;
        }
        let i = self.rng.random_range(0..self.state.tasks.len());
        let (id, version) = (self.state.tasks[i].id, self.state.tasks[i].version);
        let principal = self.staff();
        let workers = self.workers;
        let to = (!self.rng.random_bool(0.1)).then(|| &pick(self.rng, workers).user);
        self.run("assign", |ctx, s| {
            task_cmd::assign_task(&principal, ctx, s, id, version, to)
        });
    }

    fn unblock(&mut self, i: usize) {
        let (id, version) = (self.state.tasks[i].id, self.state.tasks[i].version);
        let principal = self.staff();
        self.run("unblock", |ctx, s| {
            task_cmd::unblock_task(&principal, ctx, s, id, version)
        });
    }

    fn block_or_unblock(&mut self) {
        if let Some(i) = self.state.tasks.iter().position(|t| t.block_reason.is_some()) {
            self.unblock(i);
            return;
        }
        let open: Vec<usize> = (0..self.state.tasks.len())
            .filter(|&i| !self.state.tasks[i].is_completed())
            .collect();
        if open.is_empty() {
            self.comment();
            return;
        }
        let i = *pick(self.rng, &open);
        let (id, version) = (self.state.tasks[i].id, self.state.tasks[i].version);
        let principal = self.staff();
        let why = reason("Waiting for the client's hardware delivery");
        self.run("block", |ctx, s| {
            task_cmd::block_task(&principal, ctx, s, id, version, &why)
        });
    }

    fn reopen(&mut self) {
        let done: Vec<usize> = (0..self.state.tasks.len())
            .filter(|&i| self.state.tasks[i].is_completed())
            .collect();
        if done.is_empty() {
            self.comment();
            return;
        }
        let i = *pick(self.rng, &done);
        let (id, version) = (self.state.tasks[i].id, self.state.tasks[i].version);
        let principal = self.staff();
        self.run("reopen", |ctx, s| {
            task_cmd::reopen_task(&principal, ctx, s, id, version)
        });
    }
}

// ---------------------------------------------------------------------------------------------
// PERF-2's portal

/// A live portal of `tasks` tasks (20 phases) for PERF-2, with the events of its start, and the
/// date ("today" in the tenant's zone at [`now`]) to compute its progress on.
///
/// It is started from a generated template by `start_onboarding` and activated three weeks
/// before `now`; then, walking the tasks in order, about 45 % of those whose dependencies are
/// completed are marked completed and 10 % in progress, and the statuses of the rest are derived
/// by portal-core's rule (`blocked` behind an open dependency). So it holds every status and
/// every due state.
#[must_use]
pub fn perf2_portal(seed: u64, tasks: usize) -> (PortalState, Vec<ActivityEvent>, NaiveDate) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5045_5246_2d32);
    let started = now() - Duration::days(21);
    let o = admin::create_tenant(
        &mut ctx(&mut rng, started - Duration::days(30)),
        name("PERF-2 MSP"),
        TenantSettings {
            time_zone: valid("zone", "Europe/Amsterdam", TimeZone::parse("Europe/Amsterdam")),
            ..TenantSettings::default()
        },
        Some(FirstAdmin {
            email: email("admin@perf2.example.com"),
            display_name: name("Ada Admin"),
        }),
    );
    let tenant = take_write(&o, |w| match w {
        Write::InsertTenant(t) => Some(t.clone()),
        _ => None,
    });
    let user = take_write(&o, |w| match w {
        Write::InsertStaffUser(u) => Some(u.clone()),
        _ => None,
    });
    let admin = Principal::Staff(StaffPrincipal {
        tenant_id: tenant.id,
        user_id: user.id,
        email: user.email,
        permissions: PermissionSet::all(),
    });
    let (company, _) = admin::create_company(&admin, &mut ctx(&mut rng, started), name("PERF-2 Client"))
        .unwrap_or_else(|e| panic!("PERF-2's company was refused: {e}"));
    let input = template_input(&mut rng, "PERF-2 template", 20, tasks);
    let (_, o) = template_cmd::create_template(&admin, &mut ctx(&mut rng, started), &input)
        .unwrap_or_else(|e| panic!("PERF-2's template was refused: {e}"));
    let template = take_write(&o, |w| match w {
        Write::InsertTemplate(t) => Some(t.clone()),
        _ => None,
    });
    let request = StartOnboarding {
        name: name("PERF-2 portal"),
        contacts: contact_inputs(&mut rng, &company),
        activate: true,
    };
    let seed = SecretToken::from_bytes(rng.random());
    let (_, mut o) = portal_cmd::start_onboarding(
        &admin,
        &mut ctx(&mut rng, started),
        &tenant,
        &company,
        &template,
        &request,
        &seed,
    )
    .unwrap_or_else(|e| panic!("PERF-2's portal was refused: {e}"));
    // Past mail, as in `Sim::run`.
    o.messages.clear();
    let mut state = take_write(&o, |w| match w {
        Write::InsertPortal(s) => Some((**s).clone()),
        _ => None,
    });
    let mut done = std::collections::HashSet::new();
    for t in &mut state.tasks {
        let ready = t.depends_on.iter().all(|d| done.contains(d));
        if ready && rng.random_bool(0.45) {
            t.status = TaskStatus::Completed;
            t.completed_at = Some(started + Duration::hours(rng.random_range(1..480)));
            done.insert(t.id);
        } else if ready && rng.random_bool(0.1) {
            t.status = TaskStatus::InProgress;
        }
    }
    derive_statuses(&mut state.tasks);
    let today = tenant.settings.time_zone.today(now());
    (state, o.events, today)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(seed: u64) -> Vec<Batch> {
        let mut g = Generator::new(Size::Small, seed);
        std::iter::from_fn(|| g.next_batch()).collect()
    }

    #[test]
    fn same_seed_same_data() {
        assert_eq!(batches(7), batches(7));
        assert_ne!(batches(7), batches(8));
    }

    #[test]
    fn small_has_the_table_sizes() {
        let d = generate(Size::Small, DEFAULT_SEED);
        let c = d.counts;
        assert_eq!(c.tenants, 2);
        assert_eq!(c.companies, 10);
        assert_eq!(c.portals, 10);
        assert_eq!(c.tasks, 300);
        assert!((900..=1_200).contains(&c.events), "{c}");
        assert!(
            d.tenants
                .iter()
                .all(|t| t.templates.iter().all(|t| t.tasks().count() == 30))
        );
        let statuses: std::collections::HashSet<_> = d
            .tenants
            .iter()
            .flat_map(|t| t.portals.iter().map(|p| p.status))
            .collect();
        assert!(statuses.len() >= 2, "{statuses:?}");
    }

    /// The whole `bench` size, generated without a store: minutes of CPU, so run by hand
    /// (`cargo test --release -p portal-benches -- --ignored`).
    #[test]
    #[ignore = "minutes of CPU; run by hand"]
    fn bench_size_generates() {
        let started = std::time::Instant::now();
        let d = generate(Size::Bench, DEFAULT_SEED);
        let c = d.counts;
        eprintln!("bench: {c} in {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(c.tenants, 20);
        assert_eq!(c.companies, 20 * 200);
        assert_eq!(c.portals, 20 * 500);
        assert_eq!(c.tasks, 20 * 500 * 60);
        let heavy: usize = d.tenants[0].portals.iter().map(|p| p.events).sum();
        assert!(heavy > 1_900_000, "the heavy tenant has {heavy} portal events");
        assert!((2_900_000..=3_200_000).contains(&c.events), "{c}");
    }

    #[test]
    fn perf_inputs_have_their_sizes() {
        let t = perf4_template(DEFAULT_SEED);
        assert_eq!(t.phases.len(), 20);
        let tasks: Vec<_> = t.phases.iter().flat_map(|p| &p.tasks).collect();
        assert_eq!(tasks.len(), 500);
        eprintln!(
            "PERF-4 template: {} dependencies, {} checklist items, {} survey questions",
            tasks.iter().map(|t| t.depends_on.len()).sum::<usize>(),
            tasks.iter().map(|t| t.checklist.len()).sum::<usize>(),
            tasks.iter().map(|t| t.survey.len()).sum::<usize>()
        );
        let (state, _, _) = perf2_portal(DEFAULT_SEED, 1_000);
        assert_eq!(state.tasks.len(), 1_000);
        for s in [
            TaskStatus::Pending,
            TaskStatus::InProgress,
            TaskStatus::Completed,
            TaskStatus::Blocked,
        ] {
            assert!(state.tasks.iter().any(|t| t.status == s), "no {s:?} task");
        }
    }
}
