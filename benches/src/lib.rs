//! # portal-benches
//!
//! Seeded data sets and the benchmarks of the MSP portal engine, held against the targets of
//! the project's `PERFORMANCE.md` (PERF-1, PERF-2, PERF-4, PERF-5, PERF-9 and PERF-10 so far).
//!
//! ## Data sets
//!
//! [`generate::Generator`] builds a data set of one of the [`Size`]s of the performance targets'
//! table (`small`, `bench`) from a seed: the same seed gives the same data, id for id. Every
//! row comes out of portal-core's own commands (`portal_core::commands::*`), run with a
//! [`Ctx`](portal_core::commands::Ctx) whose time is a synthetic clock and whose entropy comes
//! from the seeded RNG, so what is stored is exactly what the engine would have stored: tenants
//! with their administrator, roles and staff, companies, templates, and portals started from
//! them with their phases, tasks, dependencies, checklists, surveys and contacts. Portals then
//! live a history of task work (start, complete, reopen, block, assign, checklist ticks,
//! comments) whose activity events are the data set's activity log. PSA tickets and time
//! entries of the table do not exist in the engine yet and are not generated.
//!
//! The generator yields [`generate::Batch`]es, each a list of outcomes to commit in order;
//! [`load::load`] commits them into any `Arc<dyn Storage>` through
//! [`commit_outcome`](portal_core::storage::OutcomeRepo::commit_outcome), printing its progress
//! on standard error. The size is chosen by the `PORTAL_BENCH_SIZE` environment variable
//! (`small`, the default, or `bench`; see [`Size::from_env`]): the full `bench` set is
//! 10,000 portals and 3 M events and takes a long while to load on two cores.
//!
//! ## Benchmarks
//!
//! `benches/core.rs` (PERF-1 `authorize`, PERF-2 progress of a 1,000-task portal) and
//! `benches/storage.rs` (PERF-4 starting a 500-task portal on SQLite and PostgreSQL, each against
//! its hand-written floor), run with `cargo bench -p portal-benches`. Besides divan's table,
//! each prints a percentile report (median and p99 from samples of its own, see [`stats`]).
//! `benches/http.rs` (PERF-5, PERF-10) is a load test with a `main` of its own: it drives the
//! release `portal-server` binary and a bare axum + sqlx floor, each in a process of its own,
//! with the load generator of [`loadgen`]. `benches/mail.rs` (PERF-9, and PERF-12 for
//! orientation) is another: 10,000 invitations queued through an engine, delivered by the
//! release server's outbox worker and by a bare lettre client to an SMTP server in the
//! benchmark's process, then a `kill -9` of the server mid-delivery and a restart.

pub mod generate;
pub mod load;
pub mod loadgen;
pub mod procs;
pub mod stats;

pub use generate::{DEFAULT_SEED, DataSet, Generator, now};

/// The data-set sizes of `PERFORMANCE.md` that the engine can hold today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 2 tenants × 5 portals of 30 tasks, 1 k events: what tests use, loads in seconds.
    Small,
    /// 20 tenants × 500 portals of 60 tasks, 3 M events (2 M of them in the first tenant).
    Bench,
    /// 4 tenants each shaped like one of the 19 ordinary tenants of [`Size::Bench`] (25 staff,
    /// 200 companies, 5 templates, 500 portals of 60 tasks in 6 phases, 52,631 events): 2,000
    /// portals, 120,000 tasks, 210 k events. `bench` without its heavy tenant and 15 of the
    /// others, for benchmarks that read a few portals and need realistic tables, not 28 minutes
    /// of loading (the HTTP benchmark, PERF-5 and PERF-10).
    BenchSlice,
}

impl Size {
    /// The environment variable naming the size: `small` (the default), `bench` or
    /// `bench-slice`.
    pub const ENV: &'static str = "PORTAL_BENCH_SIZE";

    /// The size named by [`Size::ENV`], `small` when unset.
    ///
    /// # Errors
    ///
    /// A message naming the accepted values when the variable holds anything else.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(Self::ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::Small),
            Ok(v) => Self::parse(&v),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{} is not valid UTF-8", Self::ENV)),
        }
    }

    /// Parses `small`, `bench` or `bench-slice` (case-insensitive, surrounding spaces ignored).
    ///
    /// # Errors
    ///
    /// A message naming the accepted values.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "small" => Ok(Self::Small),
            "bench" => Ok(Self::Bench),
            "bench-slice" => Ok(Self::BenchSlice),
            other => Err(format!(
                "{}={other:?} is not a data-set size: use `small`, `bench` or `bench-slice`",
                Self::ENV
            )),
        }
    }

    /// The size's name in the table.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Bench => "bench",
            Self::BenchSlice => "bench-slice",
        }
    }

    /// The counts of the size.
    #[must_use]
    pub const fn spec(self) -> SizeSpec {
        match self {
            Self::Small => SizeSpec {
                tenants: 2,
                staff_per_tenant: 4,
                companies_per_tenant: 5,
                templates_per_tenant: 2,
                portals_per_tenant: 5,
                tasks_per_portal: 30,
                phases_per_template: 5,
                events: 1_000,
                heavy_tenant_events: None,
            },
            Self::Bench => SizeSpec {
                tenants: 20,
                staff_per_tenant: 25,
                companies_per_tenant: 200,
                templates_per_tenant: 5,
                portals_per_tenant: 500,
                tasks_per_portal: 60,
                phases_per_template: 6,
                events: 3_000_000,
                heavy_tenant_events: Some(2_000_000),
            },
            Self::BenchSlice => SizeSpec {
                tenants: 4,
                staff_per_tenant: 25,
                companies_per_tenant: 200,
                templates_per_tenant: 5,
                portals_per_tenant: 500,
                tasks_per_portal: 60,
                phases_per_template: 6,
                // What each of the 19 ordinary `bench` tenants gets: (3 M - 2 M) / 19.
                events: 4 * 52_631,
                heavy_tenant_events: None,
            },
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a [`Size`] holds. Event counts are targets: the generator spends them as task work
/// spread over the portals, and a portal that must be completed may overspend a little (the
/// actual count is in [`generate::Counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    /// Tenants.
    pub tenants: usize,
    /// Staff users per tenant, the administrator included.
    pub staff_per_tenant: usize,
    /// Companies per tenant.
    pub companies_per_tenant: usize,
    /// Templates per tenant.
    pub templates_per_tenant: usize,
    /// Portals per tenant.
    pub portals_per_tenant: usize,
    /// Tasks per portal (every template has exactly this many).
    pub tasks_per_portal: usize,
    /// Phases per template.
    pub phases_per_template: usize,
    /// Activity events in all, over every tenant.
    pub events: u64,
    /// Events of the first tenant when it is the heavy one; the rest share the remainder.
    pub heavy_tenant_events: Option<u64>,
}

impl SizeSpec {
    /// The event target of tenant `index`.
    #[must_use]
    pub fn tenant_events(&self, index: usize) -> u64 {
        let tenants = self.tenants.max(1) as u64;
        match self.heavy_tenant_events {
            Some(heavy) if index == 0 => heavy,
            Some(heavy) => self.events.saturating_sub(heavy) / (tenants - 1).max(1),
            None => self.events / tenants,
        }
    }

    /// Portals in all.
    #[must_use]
    pub const fn portals(&self) -> usize {
        self.tenants * self.portals_per_tenant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(Size::parse("small"), Ok(Size::Small));
        assert_eq!(Size::parse(" BENCH "), Ok(Size::Bench));
        assert_eq!(Size::parse("bench-slice"), Ok(Size::BenchSlice));
        assert_eq!(Size::parse(""), Ok(Size::Small));
        assert!(Size::parse("large").is_err());
    }

    #[test]
    fn bench_events_add_up() {
        let spec = Size::Bench.spec();
        let total: u64 = (0..spec.tenants).map(|i| spec.tenant_events(i)).sum();
        assert_eq!(spec.tenant_events(0), 2_000_000);
        assert!(total <= spec.events && total + spec.tenants as u64 > spec.events);
        let slice = Size::BenchSlice.spec();
        assert_eq!(slice.tenant_events(3), spec.tenant_events(1));
        let small = Size::Small.spec();
        assert_eq!(small.tenant_events(0) + small.tenant_events(1), 1_000);
    }
}
