//! Pure computations of portal-core, with allocation counts (divan's `AllocProfiler` is the
//! global allocator, so divan's table shows allocations per call).
//!
//! - PERF-1: `authorize(principal, action, resource)` on the allow and the deny path for staff,
//!   contact and system principals. Target: ≤ 1 µs median, 0 allocations on the allow path.
//! - PERF-2: progress, phase statuses and due counts of a 1,000-task portal
//!   (`portal_core::progress::progress`). Target: ≤ 50 µs. Its floor, measured in the same run:
//!   one bare pass over the same `Vec<Task>` counting statuses.
//!
//! Principals, ids and the portal come from the seeded generator (`small` data set, seed
//! [`DEFAULT_SEED`]). After divan's table a percentile report (median and p99) is printed on
//! standard error; see `portal_benches::stats`.
//!
//! Run: `cargo bench -p portal-benches --bench core`.

use std::sync::LazyLock;

use chrono::NaiveDate;
use divan::{AllocProfiler, Bencher, black_box};
use portal_benches::generate::{self, perf2_portal};
use portal_benches::stats;
use portal_benches::{DEFAULT_SEED, Size};
use portal_core::lifecycle::PortalStatus;
use portal_core::policy::{AccessDenied, Action, Principal, Resource, StaffPrincipal, authorize};
use portal_core::portal::PortalState;
use portal_core::task::{Task, TaskOwner, TaskStatus};
use portal_core::tenant::Permission;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

/// Tasks of PERF-2's portal.
const PERF2_TASKS: usize = 1_000;

/// One authorisation question and the answer it must get.
struct Case {
    name: &'static str,
    principal: Principal,
    action: Action,
    resource: Resource,
    expected: Result<(), AccessDenied>,
}

const CASE_NAMES: &[&str] = &[
    "staff_allow",
    "staff_deny_forbidden",
    "staff_deny_other_tenant",
    "contact_allow",
    "contact_deny_other_portal",
    "system_allow",
    "system_deny_forbidden",
];

static CASES: LazyLock<Vec<Case>> = LazyLock::new(cases);

static PERF2: LazyLock<(PortalState, NaiveDate)> = LazyLock::new(|| {
    let (state, _, today) = perf2_portal(DEFAULT_SEED, PERF2_TASKS);
    (state, today)
});

/// The questions, asked of the first two tenants of the `small` data set: a technician (read
/// and manage onboarding, nothing else), a contact of a portal, and a system worker.
fn cases() -> Vec<Case> {
    let data = generate::generate(Size::Small, DEFAULT_SEED);
    let (t0, t1) = (&data.tenants[0], &data.tenants[1]);
    let technician = t0
        .workers
        .iter()
        .map(|w| &w.principal)
        .find(|p| matches!(p, Principal::Staff(s) if !s.permissions.contains(Permission::ManageUsers)))
        .cloned()
        .unwrap_or_else(|| {
            // No technician was drawn: the administrator with the Technician role's permissions.
            let Principal::Staff(admin) = &t0.admin else {
                unreachable!("the administrator is staff")
            };
            Principal::Staff(StaffPrincipal {
                permissions: t0.roles[1].permissions,
                ..admin.clone()
            })
        });
    // The resources are plain facts: the portals are taken as live (`active`), the state in
    // which contacts reach them.
    let portal = |t: &generate::TenantData, i: usize| {
        let p = &t.portals[i];
        Resource::Portal {
            tenant: t.tenant.id,
            company: p.company_id,
            portal: p.id,
            status: PortalStatus::Active,
        }
    };
    let p0 = &t0.portals[0];
    let contact = Principal::Contact(p0.contacts[0].clone());
    let client_task = Resource::Task {
        tenant: t0.tenant.id,
        company: p0.company_id,
        portal: p0.id,
        status: PortalStatus::Active,
        owner: TaskOwner::Client,
    };
    let system = t0.system("outbox");
    let forbidden = |action| Err(AccessDenied::Forbidden { action });
    vec![
        Case {
            name: "staff_allow",
            principal: technician.clone(),
            action: Action::ReadPortal,
            resource: portal(t0, 0),
            expected: Ok(()),
        },
        Case {
            name: "staff_deny_forbidden",
            principal: technician.clone(),
            action: Action::ManageUsers,
            resource: Resource::Tenant { tenant: t0.tenant.id },
            expected: forbidden(Action::ManageUsers),
        },
        Case {
            name: "staff_deny_other_tenant",
            principal: technician,
            action: Action::ReadPortal,
            resource: portal(t1, 0),
            expected: Err(AccessDenied::OtherTenant),
        },
        Case {
            name: "contact_allow",
            principal: contact.clone(),
            action: Action::WorkOnTask,
            resource: client_task,
            expected: Ok(()),
        },
        Case {
            name: "contact_deny_other_portal",
            principal: contact,
            action: Action::ReadPortal,
            resource: portal(t0, 1),
            expected: Err(AccessDenied::OutOfScope),
        },
        Case {
            name: "system_allow",
            principal: system.clone(),
            action: Action::ReadPortal,
            resource: portal(t0, 0),
            expected: Ok(()),
        },
        Case {
            name: "system_deny_forbidden",
            principal: system,
            action: Action::EditPortal,
            resource: portal(t0, 0),
            expected: forbidden(Action::EditPortal),
        },
    ]
}

fn case(name: &str) -> &'static Case {
    let case = CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no authorisation case {name}"));
    assert_eq!(
        authorize(&case.principal, case.action, &case.resource),
        case.expected,
        "case {name} does not get its expected answer"
    );
    case
}

fn ask(case: &Case) -> Result<(), AccessDenied> {
    authorize(
        black_box(&case.principal),
        black_box(case.action),
        black_box(&case.resource),
    )
}

/// PERF-1.
mod perf1 {
    use super::{Bencher, CASE_NAMES, ask, case};

    /// `authorize`, one call per iteration.
    #[divan::bench(args = CASE_NAMES)]
    fn authorize(bencher: Bencher<'_, '_>, name: &str) {
        let case = case(name);
        bencher.bench_local(|| ask(case));
    }
}

/// The floor of PERF-2: one pass over the tasks, counting statuses.
fn count_statuses(tasks: &[Task]) -> [usize; 4] {
    let mut counts = [0usize; 4];
    for t in tasks {
        let i = match t.status {
            TaskStatus::Pending => 0,
            TaskStatus::InProgress => 1,
            TaskStatus::Completed => 2,
            TaskStatus::Blocked => 3,
        };
        counts[i] += 1;
    }
    counts
}

fn perf2_progress() -> portal_core::progress::Progress {
    let (state, today) = &*PERF2;
    portal_core::progress::progress(black_box(&state.phases), black_box(&state.tasks), black_box(*today))
}

fn perf2_floor() -> [usize; 4] {
    count_statuses(black_box(&PERF2.0.tasks))
}

/// PERF-2, on a 1,000-task portal of 20 phases.
mod perf2 {
    use super::{Bencher, LazyLock, PERF2, perf2_floor, perf2_progress};

    /// Progress + phase statuses + due counts (`portal_core::progress::progress`).
    #[divan::bench]
    fn progress_1000_tasks(bencher: Bencher<'_, '_>) {
        LazyLock::force(&PERF2);
        bencher.bench_local(perf2_progress);
    }

    /// The floor: one bare pass over the same tasks counting statuses.
    #[divan::bench]
    fn floor_one_pass_1000_tasks(bencher: Bencher<'_, '_>) {
        LazyLock::force(&PERF2);
        bencher.bench_local(perf2_floor);
    }
}

fn main() {
    divan::main();
    if !stats::report_enabled() {
        return;
    }
    let mut lines = Vec::new();
    for name in CASE_NAMES {
        let full = format!("perf1::authorize::{name}");
        if stats::report_wanted(&full) {
            let case = case(name);
            // Samples of 1,000 calls each: the p99 is that of the per-call mean of a sample.
            let s = stats::sample(2_000, 1_000, || ask(case));
            lines.push(s.line(&full));
        }
    }
    let progress_name = "perf2::progress_1000_tasks";
    let floor_name = "perf2::floor_one_pass_1000_tasks";
    if stats::report_wanted(progress_name) || stats::report_wanted(floor_name) {
        LazyLock::force(&PERF2);
        let p = stats::sample(2_000, 1, perf2_progress);
        let f = stats::sample(2_000, 1, perf2_floor);
        lines.push(p.line(progress_name));
        lines.push(f.line(floor_name));
        lines.push(p.ratio_line("perf2 progress / floor", &f));
    }
    if !lines.is_empty() {
        eprintln!("\npercentiles (own samples; {})", stats::context_line());
        for l in lines {
            eprintln!("  {l}");
        }
    }
}
