//! PERF-5 and PERF-10: a staff `GET /api/v1/portals/{id}` (the portal overview of a 60-task
//! portal) over real HTTP on loopback, against the reference server and against a floor, on
//! SQLite and on PostgreSQL; and the reference server's memory. PERF-6: a contact opening their
//! access link from a verified browser (`POST /api/v1/access`), round-robin over 10,000
//! contacts, against the same server and a floor of its own in the same processes.
//!
//! - **The server**: the release binary `target/release/portal-server` (or `PORTAL_SERVER_BIN`),
//!   started as a process of its own with `serve` on the prepared database, its environment
//!   cleared but for `DATABASE_URL`, `PORTAL_BIND`, `PORTAL_MASTER_KEY` (a fixed key of the
//!   benchmark, which also signs PERF-6's verified-browser cookies) and
//!   `PORTAL_ACCESS_LIMIT_PER_ADDRESS` (raised to 10⁹: every PERF-6 request comes from
//!   127.0.0.1, and the default of 30 openings per address and 15 minutes would answer 429; the
//!   counter is still written on every opening), and `PORTAL_NO_SCHEDULER=true` (the
//!   notification scheduler walks every active portal at start and every 5 minutes: work no
//!   request here does, which would land in the middle of a round). Build it first:
//!   `cargo build --release -p portal-server` (the benchmark cannot run cargo itself while
//!   `cargo bench` holds the build directory; it warns when the binary is older than the
//!   sources it is built from).
//! - **The floor**: this same executable started again as a second process (with
//!   `PORTAL_BENCH_HTTP_FLOOR_URL` set). For PERF-5 it serves one axum route that runs the same
//!   SELECT statements as the server's request does (the tenant host, the session, the staff user and
//!   their roles, all roles, the tenant, the portal's seven queries in one read transaction, the
//!   company), each in the same transaction as the store runs it, with sqlx through the store's
//!   own pool (`SqliteStorage::pool`, `PgStorage::pool`: same size, same connection options,
//!   same statement cache), and answers the rows as JSON: no engine, no policy, no domain
//!   types, no middleware.
//! - **PERF-6** (`POST /api/v1/access` with the link's token in the JSON body, the tenant found
//!   by the `Host` header, and the contact's verified-browser cookie, computed with the server's
//!   key, so that the server answers 200 with a contact session and the `contact accessed
//!   portal` event; a 202, the mailed code of an unverified browser, counts as a failure). The
//!   data: the second tenant of the data set gets contacts added to its active portals (through
//!   portal-core's `add_contact`, committed through the store, no more than a portal may hold)
//!   until they hold `PORTAL_BENCH_HTTP_CONTACTS` (10,000) contacts, and every one of them an
//!   access link issued at load time (`issue_link`, whose token only the benchmark knows; the
//!   store keeps its SHA-256), at the real time, so that the links are live. The requests go
//!   over those contacts in a seeded random order, round-robin, each with its own token and
//!   cookie; every opening makes a new session. The floor's route `POST /api/v1/access` looks
//!   the tenant up by host, then in one write transaction (SQLite: on a one-connection write
//!   pool with the store's options and `BEGIN IMMEDIATE`, as the store writes) the link by
//!   token hash with its portal's status, checks it opens the portal (not revoked, not expired,
//!   portal active), inserts the session row, commits and answers the session token as JSON: no
//!   engine, no policy, no cookie check, no rate-limit counter, no event.
//!   The rate-limit counter is one row per tenant and client address: with every connection
//!   from 127.0.0.1 (the default), every opening updates the same row.
//!   `PORTAL_BENCH_HTTP_CLIENT_ADDRESSES=<n>` (1 to 254) opens connection `k` from
//!   `127.0.0.(2 + k % n)` instead, so that the server sees `n` client addresses, as it would
//!   see contacts opening their links from their own networks.
//! - **Scenarios**: arguments `perf5` (PERF-5 and PERF-10) and `perf6` select them (both by
//!   default), alongside the backends: `-- perf6 sqlite`. PERF-5 runs first in the same
//!   server and floor processes, so its memory figures are those of a fresh process.
//! - **The load**: [`portal_benches::loadgen`] in this process on a current-thread runtime (one
//!   core at most): (a) closed loop, `PORTAL_BENCH_HTTP_CONNECTIONS` (16) keep-alive
//!   connections for `PORTAL_BENCH_HTTP_SECS` (10) seconds after a warm-up of
//!   `PORTAL_BENCH_HTTP_WARMUP` (2) seconds; (b) open loop at `PORTAL_BENCH_HTTP_RATE` (500)
//!   requests per second for `PORTAL_BENCH_HTTP_RATE_SECS` (10) seconds after the same warm-up,
//!   over 32 connections. Each is repeated `PORTAL_BENCH_HTTP_ROUNDS` (3) times, server and
//!   floor taking turns (server first in even rounds, floor first in odd ones) so that both
//!   see the same disturbance. Throughput is the median of the rounds; latencies pool the
//!   rounds' samples. PERF-6 runs the closed loop only.
//! - **Memory** (PERF-10): `VmRSS` and `VmHWM` of the server process from `/proc/<pid>/status`:
//!   after start, idle after a sign-in and one overview `GET`, and the peak under the load
//!   (`VmRSS` sampled every 50 ms during the load, and `VmHWM` at the end, which also covers
//!   start-up and the sign-in's argon2 hash).
//! - **Data**: the seeded generator's `bench-slice` size by default (`PORTAL_BENCH_SIZE`): 4
//!   tenants shaped like the ordinary tenants of `bench` (500 portals of 60 tasks each, 200
//!   companies, 25 staff, ~52.6 k events), loaded through the store. The PERF-5 request reads one
//!   active, part-done 60-task portal of the first tenant as one of its technicians, whose
//!   password the benchmark sets and who signs in through the server's own
//!   `POST /api/v1/auth/sign-in`; the tenant is found by the `Host` header, mapped to it in the
//!   tenant host table.
//! - **Backends**: SQLite on a temporary file (WAL, the store's settings), and PostgreSQL on a
//!   fresh database `portal_bench_http_<pid>` of the server at `PORTAL_TEST_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`), analysed while it loads (without fresh
//!   statistics the load slows down tenfold as the tables grow) and vacuumed and analysed after
//!   (this machine's server runs without autovacuum), dropped at the end; skipped with a notice
//!   when no server answers. Arguments select backends by name: `-- sqlite`, `-- postgres`.
//! - **Also reported**: CPU time per request of the measured process (and of the PostgreSQL
//!   backends serving the benchmark's database) and of the load generator, and the CPU the rest
//!   of the machine used meanwhile: the disturbance, in cores.
//!
//! `PORTAL_BENCH_HTTP_QUIET_LOAD=<x>` makes each backend's load wait (up to 20 minutes, with
//! both processes started and idle) until the 1-minute load average is below `x`.
//!
//! Run: `cargo build --release -p portal-server && cargo bench -p portal-benches --bench http`
//! (one scenario: `... --bench http -- perf6`).
//! The table goes to standard output, progress to standard error. Run outside `cargo bench`
//! (without `--bench`) it does nothing, so `cargo test --all-targets` does not start a load test.

#![allow(clippy::print_stdout)] // the result table goes to standard output, by design

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use chrono::Utc;
use portal_benches::generate::{Counts, DataSet};
use portal_benches::load::load_with;
use portal_benches::loadgen::{self, LoadReport, ProcMemory, Target, mib};
use portal_benches::procs::{
    self, env_or, free_addr, load_average, machine_busy, newest_mtime, pg_backends_cpu, with_database,
};
use portal_benches::stats::{self, Summary};
use portal_benches::{DEFAULT_SEED, Size, now};
use portal_core::Outcome;
use portal_core::access::{VERIFIED_BROWSER_LIFETIME, verified_browser_cookie_name, verified_browser_value};
use portal_core::auth::{self, Password, SecretToken};
use portal_core::commands::{self, Ctx};
use portal_core::crypto::MasterKey;
use portal_core::id::{ContactId, PortalId, TenantId};
use portal_core::lifecycle::PortalStatus;
use portal_core::outcome::Write;
use portal_core::portal::{ContactInput, ContactRole, MAX_CONTACTS};
use portal_core::storage::Storage;
use portal_core::value::{Email, Name};
use portal_storage_postgres::PgStorage;
use portal_storage_sqlite::SqliteStorage;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// Set (to the database URL) in the environment of the floor's process.
const FLOOR_URL_ENV: &str = "PORTAL_BENCH_HTTP_FLOOR_URL";
/// The address the floor's process listens on.
const FLOOR_BIND_ENV: &str = "PORTAL_BENCH_HTTP_FLOOR_BIND";
/// The host name mapped to the measured tenant.
const HOST: &str = "t00.portal-bench.example.com";
/// The measured staff user's password.
const PASSWORD: &str = "portal-bench-http-password";
/// Connections of the open-loop runs: all of them busy at once at 500 req/s would take
/// latencies of 64 ms, three times the target.
const OPEN_LOOP_CONNECTIONS: usize = 32;
/// PERF-5: the server's throughput as a share of the floor's.
const TARGET_SHARE: f64 = 0.40;
/// PERF-5: p99 at the fixed rate.
const TARGET_P99: Duration = Duration::from_millis(20);
/// PERF-10: idle RSS.
const TARGET_IDLE_KIB: u64 = 40 * 1024;
/// PERF-10: RSS under load.
const TARGET_LOAD_KIB: u64 = 150 * 1024;
/// PERF-6: the host name mapped to its tenant (the data set's second).
const PERF6_HOST: &str = "t01.portal-bench.example.com";
/// PERF-6: the server's throughput as a share of the floor's.
const PERF6_TARGET_SHARE: f64 = 0.40;
/// PERF-6, orientation: requests per second on 2 cores.
const PERF6_ORIENTATION: f64 = 3_000.0;
/// The server's master key (`PORTAL_MASTER_KEY`), with which the benchmark signs PERF-6's
/// verified-browser cookies as the server does.
const MASTER_KEY: [u8; 32] = *b"portal-bench-http-master-key-32b";
/// `PORTAL_ACCESS_LIMIT_PER_ADDRESS` of the server: every PERF-6 opening comes from 127.0.0.1.
const ACCESS_LIMIT: u32 = 1_000_000_000;

fn main() {
    if let Ok(url) = std::env::var(FLOOR_URL_ENV) {
        let bind = std::env::var(FLOOR_BIND_ENV).unwrap_or_else(|_| "127.0.0.1:0".to_owned());
        floor::serve(&url, &bind);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        eprintln!("[portal-benches] http: a load test; run it with `cargo bench -p portal-benches --bench http`");
        return;
    }
    // Arguments naming a scenario (`perf5`, `perf6`) select scenarios; the others backends.
    let (scenarios, filters): (Vec<&String>, Vec<&String>) = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .partition(|a| a.starts_with("perf"));
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let scenario = |name: &str| scenarios.is_empty() || scenarios.iter().any(|s| s.as_str() == name);
    let mut settings = Settings::from_env();
    settings.perf5 = scenario("perf5");
    settings.perf6 = scenario("perf6");
    if !settings.perf5 && !settings.perf6 {
        eprintln!("[portal-benches] http: no scenario named {scenarios:?}; the scenarios are `perf5` and `perf6`");
        return;
    }
    let Some(server_bin) = server_binary() else { return };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
    let mut results = Vec::new();
    if wanted("http_sqlite") {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("portal-bench-http.db").display());
        let fixture = rt.block_on(async {
            let storage = SqliteStorage::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("SQLite store at {url}: {e}"));
            let mut fixture = prepare(&storage, None, settings.size, "sqlite", &url).await;
            if settings.perf6 {
                fixture.perf6 = Some(prepare_perf6(&storage, &fixture.data, settings.contacts, "sqlite").await);
            }
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(storage.pool())
                .await
                .unwrap_or_else(|e| panic!("checkpointing {url}: {e}"));
            storage.pool().close().await;
            fixture
        });
        results.push(run_backend(&rt, &settings, &server_bin, fixture, dir.path()));
    }
    if wanted("http_postgres")
        && let Some((admin_url, db)) = rt.block_on(create_pg_database())
    {
        let url = with_database(&admin_url, &db);
        let run = || {
            let fixture = rt.block_on(async {
                let storage = PgStorage::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL store at {url}: {e}"));
                let mut fixture = prepare(&storage, Some(&storage), settings.size, "postgres", &url).await;
                fixture.pg_database = Some(db.clone());
                if settings.perf6 {
                    fixture.perf6 = Some(prepare_perf6(&storage, &fixture.data, settings.contacts, "postgres").await);
                }
                // This machine's server runs without autovacuum: clean up after the load's
                // updates and give the planner statistics, as autovacuum would have.
                sqlx::query("VACUUM (ANALYZE)")
                    .execute(storage.pool())
                    .await
                    .unwrap_or_else(|e| panic!("VACUUM ANALYZE of {url}: {e}"));
                storage.pool().close().await;
                fixture
            });
            let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
            run_backend(&rt, &settings, &server_bin, fixture, logs.path())
        };
        // The database is dropped even when the run panics.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        rt.block_on(drop_pg_database(&admin_url, &db));
        match outcome {
            Ok(r) => results.push(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    if !results.is_empty() {
        print_table(&settings, &results);
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

/// The run's knobs, from the environment.
struct Settings {
    size: Size,
    connections: usize,
    window: Duration,
    warmup: Duration,
    rounds: usize,
    rate: f64,
    rate_window: Duration,
    /// Before the load starts, wait (up to 20 minutes) until the 1-minute load average is below
    /// this.
    quiet_load: Option<f64>,
    /// PERF-6: contacts of active portals in its tenant, each opening its own link.
    contacts: usize,
    /// PERF-6: client addresses the connections come from (127.0.0.1, or 127.0.0.2 and on).
    client_addresses: u8,
    /// Run PERF-5 (and PERF-10).
    perf5: bool,
    /// Run PERF-6.
    perf6: bool,
}

impl Settings {
    fn from_env() -> Self {
        let size = match std::env::var(Size::ENV) {
            Ok(v) => Size::parse(&v).unwrap_or_else(|e| panic!("{e}")),
            Err(_) => Size::BenchSlice,
        };
        if size.spec().tasks_per_portal != 60 {
            eprintln!(
                "\n*** PORTAL_BENCH_SIZE={size}: its portals have {} tasks, PERF-5 names 60 (use `bench-slice` or \
                 `bench`) ***\n",
                size.spec().tasks_per_portal
            );
        }
        Self {
            size,
            connections: env_or("PORTAL_BENCH_HTTP_CONNECTIONS", 16usize).max(1),
            window: Duration::from_secs_f64(env_or("PORTAL_BENCH_HTTP_SECS", 10.0)),
            warmup: Duration::from_secs_f64(env_or("PORTAL_BENCH_HTTP_WARMUP", 2.0)),
            rounds: env_or("PORTAL_BENCH_HTTP_ROUNDS", 3usize).max(1),
            rate: env_or("PORTAL_BENCH_HTTP_RATE", 500.0),
            rate_window: Duration::from_secs_f64(env_or("PORTAL_BENCH_HTTP_RATE_SECS", 10.0)),
            quiet_load: std::env::var("PORTAL_BENCH_HTTP_QUIET_LOAD")
                .ok()
                .map(|_| env_or("PORTAL_BENCH_HTTP_QUIET_LOAD", 1.0)),
            contacts: env_or("PORTAL_BENCH_HTTP_CONTACTS", 10_000usize).max(1),
            client_addresses: env_or("PORTAL_BENCH_HTTP_CLIENT_ADDRESSES", 1u8).clamp(1, 254),
            perf5: true,
            perf6: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server binary

/// The release `portal-server` next to this benchmark's own `target/release`, or
/// `PORTAL_SERVER_BIN`; `None` (with a notice) when it is missing.
fn server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PORTAL_SERVER_BIN").map_or_else(
        || {
            // This executable is target/release/deps/http-<hash>.
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent()?.parent().map(|d| d.join("portal-server")))
                .unwrap_or_else(|| PathBuf::from("target/release/portal-server"))
        },
        PathBuf::from,
    );
    if !path.is_file() {
        eprintln!(
            "\n*** SKIPPING the HTTP benchmark: no server binary at {} ; build it first with \
             `cargo build --release -p portal-server` (or set PORTAL_SERVER_BIN) ***\n",
            path.display()
        );
        return None;
    }
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = ["server-example", "core", "storage-sqlite", "storage-postgres"]
        .iter()
        .filter_map(|d| newest_mtime(&workspace.join(d)))
        .max();
    if let (Some(built), Some(newest)) = (built, newest)
        && newest > built
    {
        eprintln!(
            "\n*** WARNING: {} is older than the sources it is built from; rebuild it with \
             `cargo build --release -p portal-server` ***\n",
            path.display()
        );
    }
    eprintln!("[portal-benches] http: server binary {}", path.display());
    Some(path)
}

// ---------------------------------------------------------------------------------------------
// The data

/// A loaded store and what a request needs.
struct Fixture {
    backend: &'static str,
    url: String,
    data: DataSet,
    tenant: TenantId,
    portal: PortalId,
    portal_tasks: usize,
    portal_completed: usize,
    email: String,
    load_secs: f64,
    /// PostgreSQL only: the database's name.
    pg_database: Option<String>,
    /// PERF-6's contacts, when it runs.
    perf6: Option<Perf6Fixture>,
}

/// PERF-6: the contacts whose links the requests open.
struct Perf6Fixture {
    tenant: TenantId,
    /// Active portals of the tenant (they hold the contacts).
    portals: usize,
    /// Contacts the benchmark added to them.
    added: usize,
    /// Every contact of an active portal of the tenant with the token of its live link, in
    /// the (seeded, random) order the requests take them.
    openers: Vec<(ContactId, SecretToken)>,
    /// Seconds the contacts and links took to commit.
    secs: f64,
}

/// Loads the data set into `storage`, sets the password of a technician of the first tenant,
/// maps [`HOST`] to that tenant and picks the portal to read.
async fn prepare(
    storage: &dyn Storage,
    pg: Option<&PgStorage>,
    size: Size,
    backend: &'static str,
    url: &str,
) -> Fixture {
    let started = Instant::now();
    // PostgreSQL: fresh planner statistics after the first tenant's setup, after 1 and 10
    // portals, then every 100 (see `load_with`). Without them a connection's cached plans of
    // the task updates, made while `task` was empty, look tasks up by `task_by_phase` (tenant
    // only) instead of the primary key: loading the first tenant took 15 minutes and more,
    // each update reading every task of the tenant several times.
    let mut analyzed = None;
    let data = load_with(storage, size, DEFAULT_SEED, backend, async |c: &Counts| {
        let step = match c.portals {
            0 => 0,
            1..10 => 1,
            10..100 => 10,
            n => n / 100 * 100,
        };
        if let Some(pg) = pg
            && analyzed != Some(step)
        {
            analyzed = Some(step);
            pg.analyze().await.unwrap_or_else(|e| panic!("{backend}: ANALYZE: {e}"));
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{backend}: {e}"));
    let load_secs = started.elapsed().as_secs_f64();
    let t0 = &data.tenants[0];
    let admin = t0.staff[0].id;
    let user = t0
        .workers
        .iter()
        .find(|w| w.user.id != admin)
        .map_or(&t0.staff[0], |w| &w.user);
    let password = Password::new(PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let hash = auth::hash_password(&password, &[7u8; 16]);
    storage
        .set_password_hash(t0.tenant.id, user.id, &hash, now())
        .await
        .unwrap_or_else(|e| panic!("{backend}: setting a password: {e}"));
    storage
        .add_tenant_host(t0.tenant.id, HOST)
        .await
        .unwrap_or_else(|e| panic!("{backend}: mapping {HOST}: {e}"))
        .unwrap_or_else(|e| panic!("{backend}: mapping {HOST}: {e}"));
    // An active portal part-way done: every kind of task status and due state in its overview.
    let part_done = |p: &&portal_benches::generate::PortalSummary| {
        p.status == PortalStatus::Active && p.completed * 4 >= p.tasks && p.completed * 4 <= p.tasks * 3
    };
    let portal = t0
        .portals
        .iter()
        .find(part_done)
        .or_else(|| t0.portals.iter().find(|p| p.status == PortalStatus::Active))
        .unwrap_or(&t0.portals[0]);
    Fixture {
        backend,
        url: url.to_owned(),
        tenant: t0.tenant.id,
        portal: portal.id,
        portal_tasks: portal.tasks,
        portal_completed: portal.completed,
        email: user.email.as_str().to_owned(),
        load_secs,
        pg_database: None,
        perf6: None,
        data,
    }
}

/// PERF-6: maps [`PERF6_HOST`] to the data set's second tenant, adds contacts to its active
/// portals (evenly, up to [`MAX_CONTACTS`] each) until they hold `wanted`, and issues every
/// contact of an active portal an access link, one commit per portal, through portal-core's
/// own commands (`add_contact`, `issue_link`: their events included, their mail left out) at
/// the real time, so that the links are live for the server's clock.
async fn prepare_perf6(storage: &dyn Storage, data: &DataSet, wanted: usize, backend: &'static str) -> Perf6Fixture {
    let started = Instant::now();
    let t = data.tenants.get(1).unwrap_or(&data.tenants[0]);
    let tenant = t.tenant.id;
    assert!(
        t.tenant.settings.forwarded_link_protection,
        "{backend}: PERF-6 needs a tenant with forwarded-link protection on"
    );
    storage
        .add_tenant_host(tenant, PERF6_HOST)
        .await
        .unwrap_or_else(|e| panic!("{backend}: mapping {PERF6_HOST}: {e}"))
        .unwrap_or_else(|e| panic!("{backend}: mapping {PERF6_HOST}: {e}"));
    let active: Vec<_> = t.portals.iter().filter(|p| p.status == PortalStatus::Active).collect();
    let existing: usize = active.iter().map(|p| p.contacts.len()).sum();
    // Additions, one portal after the other in turn, while a portal has room.
    let mut adds = vec![0usize; active.len()];
    let mut to_add = wanted.saturating_sub(existing);
    while to_add > 0 {
        let before = to_add;
        for (i, p) in active.iter().enumerate() {
            if to_add > 0 && p.contacts.len() + adds[i] < MAX_CONTACTS {
                adds[i] += 1;
                to_add -= 1;
            }
        }
        if to_add == before {
            break;
        }
    }
    let added: usize = adds.iter().sum();
    if existing + added < wanted {
        eprintln!(
            "\n*** PERF-6: the {} active portals of tenant {tenant} hold at most {} contacts ({MAX_CONTACTS} each), \
             not the {wanted} asked for: use PORTAL_BENCH_SIZE=bench-slice or bench ***\n",
            active.len(),
            existing + added
        );
    }
    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED ^ 0x5045_5246_2d36);
    let at = Utc::now();
    let mut openers = Vec::with_capacity(existing + added);
    for (i, p) in active.iter().enumerate() {
        let mut state = storage
            .load_portal(tenant, p.id)
            .await
            .unwrap_or_else(|e| panic!("{backend}: loading portal {}: {e}", p.id))
            .unwrap_or_else(|| panic!("{backend}: portal {} is gone", p.id));
        let company = t
            .companies
            .iter()
            .find(|c| c.id == p.company_id)
            .unwrap_or_else(|| panic!("{backend}: the company of portal {} is not in the data set", p.id));
        let mut ctx = Ctx::new(at, rng.random());
        let mut all = Outcome::default();
        for k in 0..adds[i] {
            let input = ContactInput {
                name: Name::parse(&format!("Opener {k}")).unwrap_or_else(|e| panic!("{e}")),
                email: Email::parse(&format!("opener{k}@perf6-p{i}.example.org")).unwrap_or_else(|e| panic!("{e}")),
                role: ContactRole::It,
                primary: false,
            };
            let (_, o) = commands::contact::add_contact(&t.admin, &mut ctx, &state, &input)
                .unwrap_or_else(|e| panic!("{backend}: adding a contact to portal {}: {e}", p.id));
            state.contacts.extend(o.writes.iter().filter_map(|w| match w {
                Write::InsertContact(c) => Some(c.clone()),
                _ => None,
            }));
            absorb(&mut all, o);
        }
        let mail = commands::access::LinkMail {
            settings: &t.tenant.link_settings,
            company_name: &company.name,
        };
        for c in &state.contacts {
            let token = SecretToken::from_bytes(rng.random());
            let (_, o) = commands::access::issue_link(&t.admin, &mut ctx, &state, mail, c.id, &token)
                .unwrap_or_else(|e| panic!("{backend}: issuing a link in portal {}: {e}", p.id));
            absorb(&mut all, o);
            openers.push((c.id, token));
        }
        storage
            .commit_outcome(tenant, &all)
            .await
            .unwrap_or_else(|e| panic!("{backend}: committing PERF-6's contacts: {e}"))
            .unwrap_or_else(|e| panic!("{backend}: committing PERF-6's contacts: {e}"));
    }
    openers.shuffle(&mut rng);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "[portal-benches] http {backend}: PERF-6: {} contacts of {} active portals of tenant {tenant} ({added} added), \
         each with a live link, in {secs:.1} s",
        openers.len(),
        active.len()
    );
    Perf6Fixture {
        tenant,
        portals: active.len(),
        added,
        openers,
        secs,
    }
}

/// Adds what `o` writes, appends and effects to `all`; its mail is left out (the links'
/// invitations are not what PERF-6 measures, and an outbox of 10,000 messages nobody delivers
/// would only sit there).
fn absorb(all: &mut Outcome, o: Outcome) {
    all.writes.extend(o.writes);
    all.events.extend(o.events);
    all.effects.extend(o.effects);
}

/// Creates `portal_bench_http_<pid>`: the server's URL and the database's name, or `None` (with
/// a notice) when no server answers.
async fn create_pg_database() -> Option<(String, String)> {
    let db = format!("portal_bench_http_{}", std::process::id());
    procs::create_pg_database(&db, "HTTP").await.map(|url| (url, db))
}

async fn drop_pg_database(admin_url: &str, db: &str) {
    match procs::drop_pg_database(admin_url, db).await {
        Ok(()) => eprintln!("[portal-benches] http: dropped the database {db}"),
        Err(e) => eprintln!("[portal-benches] http: could not drop the benchmark database {db}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The processes

/// A server process, stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Process {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with a cleared environment plus `env`, its standard error to
    /// `<dir>/<name>.log`.
    fn spawn(name: &'static str, mut command: Command, env: &[(&str, &str)], addr: SocketAddr, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        command
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self { name, child, addr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn memory(&self) -> ProcMemory {
        ProcMemory::of(self.pid()).unwrap_or_else(|| self.fail("is gone"))
    }

    fn fail(&self, what: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{} {what}; the end of its log ({}):\n{}",
            self.name,
            self.log.display(),
            tail.join("\n")
        );
    }

    /// Waits until `GET /healthz` answers 200.
    async fn wait_ready(&mut self) {
        let target = Target::new(self.addr, "localhost", "/healthz", None).unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, _)) = loadgen::once(&target).await
                && status.is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("exited ({status}) before answering"));
            }
            if Instant::now() > deadline {
                self.fail("did not answer /healthz within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples a process's `VmRSS` every 50 ms while the load runs; keeps the largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&max_kib));
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(mem) = ProcMemory::of(pid) {
                    m.fetch_max(mem.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { stop, max_kib, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max_kib.load(Ordering::Relaxed)
    }
}

/// Waits until the 1-minute load average is below `max` (no longer than 20 minutes): on a
/// machine shared with other builds, the load then starts in a quiet moment.
async fn wait_for_quiet(max: Option<f64>) {
    let Some(max) = max else { return };
    let one_minute = || {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut said = false;
    while one_minute() >= max && Instant::now() < deadline {
        if !said {
            eprintln!(
                "[portal-benches] http: waiting for the 1-minute load average to fall below {max} (now {})",
                load_average()
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if one_minute() >= max {
        eprintln!(
            "[portal-benches] http: the load average stayed at or above {max} for 20 minutes; measuring anyway ({})",
            load_average()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// The runs of one side, as they come.
#[derive(Default)]
struct Rounds {
    closed: Vec<LoadReport>,
    open: Vec<LoadReport>,
    cpu: Vec<Cpu>,
    open_cpu: Vec<Cpu>,
}

/// CPU time at one moment: the measured process, the PostgreSQL backends serving the benchmark's
/// database, and this process (the load generator).
struct CpuSnapshot {
    process: Duration,
    database: Duration,
    generator: Duration,
    /// Busy time of the whole machine (every core), from `/proc/stat`.
    machine: Duration,
    at: Instant,
}

impl CpuSnapshot {
    fn take(pid: u32, pg_database: Option<&str>) -> Self {
        Self {
            process: loadgen::cpu_time(pid).unwrap_or_default(),
            database: pg_database.map_or(Duration::ZERO, pg_backends_cpu),
            generator: loadgen::cpu_time(std::process::id()).unwrap_or_default(),
            machine: machine_busy(),
            at: Instant::now(),
        }
    }

    fn since(&self, before: &Self, exchanges: u64) -> Cpu {
        Cpu {
            process: self.process.saturating_sub(before.process),
            database: self.database.saturating_sub(before.database),
            generator: self.generator.saturating_sub(before.generator),
            exchanges,
            others: {
                let ours = (self.process + self.database + self.generator)
                    .saturating_sub(before.process + before.database + before.generator);
                self.machine.saturating_sub(before.machine).saturating_sub(ours)
            },
            wall: self.at - before.at,
        }
    }
}

/// CPU time used during one run (warm-up included) and the exchanges it served.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    process: Duration,
    database: Duration,
    generator: Duration,
    exchanges: u64,
    /// CPU time the rest of the machine used meanwhile (other agents' builds and tests): the
    /// disturbance.
    others: Duration,
    wall: Duration,
}

impl Cpu {
    fn sum(all: &[Self]) -> Self {
        all.iter().fold(Self::default(), |a, c| Self {
            process: a.process + c.process,
            database: a.database + c.database,
            generator: a.generator + c.generator,
            exchanges: a.exchanges + c.exchanges,
            others: a.others + c.others,
            wall: a.wall + c.wall,
        })
    }

    /// Cores the rest of the machine kept busy on average.
    fn other_cores(&self) -> f64 {
        self.others.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    fn per_request(&self, d: Duration) -> f64 {
        d.as_secs_f64() / self.exchanges.max(1) as f64
    }
}

fn us(secs: f64) -> String {
    format!("{:.0}µs", secs * 1e6)
}

/// What one side (server or floor) measured.
struct Side {
    /// Body bytes of one answer.
    body_bytes: usize,
    /// Closed-loop rounds.
    closed: Vec<LoadReport>,
    /// CPU time of each closed-loop round.
    cpu: Vec<Cpu>,
    /// CPU time of each open-loop round.
    open_cpu: Vec<Cpu>,
    /// Open-loop rounds.
    open: Vec<LoadReport>,
    /// After start, before any request.
    mem_start: ProcMemory,
    /// Idle after the first request(s).
    mem_idle: ProcMemory,
    /// The largest `VmRSS` sampled during the load.
    load_rss_max_kib: u64,
    /// At the end of the load.
    mem_end: ProcMemory,
}

impl Side {
    fn closed_throughputs(&self) -> Vec<f64> {
        closed_throughputs(&self.closed)
    }

    fn median_throughput(&self) -> f64 {
        median(self.closed_throughputs())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[(v.len() - 1) / 2] }
}

struct BackendResult {
    fixture: Fixture,
    perf5: Option<Perf5Result>,
    perf6: Option<Perf6Result>,
    context: String,
}

/// PERF-5 and PERF-10 of one backend.
struct Perf5Result {
    server: Side,
    floor: Side,
    load_before: String,
    load_after: String,
}

/// PERF-6 of one backend.
struct Perf6Result {
    server: Rounds,
    floor: Rounds,
    /// Body bytes of one answer: server, floor.
    body_bytes: [usize; 2],
    load_before: String,
    load_after: String,
}

fn closed_throughputs(closed: &[LoadReport]) -> Vec<f64> {
    closed.iter().map(LoadReport::throughput).collect()
}

/// Starts the server and the floor on the prepared database, runs the scenarios asked for
/// (PERF-5 first, on fresh processes) and stops both.
fn run_backend(
    rt: &tokio::runtime::Runtime,
    settings: &Settings,
    server_bin: &Path,
    fixture: Fixture,
    dir: &Path,
) -> BackendResult {
    let server_addr = free_addr();
    let bind = server_addr.to_string();
    let key = base64::engine::general_purpose::STANDARD.encode(MASTER_KEY);
    let limit = ACCESS_LIMIT.to_string();
    let mut server = Process::spawn(
        "portal-server",
        {
            let mut c = Command::new(server_bin);
            c.arg("serve");
            c
        },
        &[
            ("DATABASE_URL", &fixture.url),
            ("PORTAL_BIND", &bind),
            ("PORTAL_MASTER_KEY", &key),
            ("PORTAL_ACCESS_LIMIT_PER_ADDRESS", &limit),
            ("PORTAL_NO_SCHEDULER", "true"),
        ],
        server_addr,
        dir,
    );
    let floor_addr = free_addr();
    let floor_bind = floor_addr.to_string();
    let mut floor = Process::spawn(
        "floor",
        Command::new(std::env::current_exe().unwrap_or_else(|e| panic!("this executable: {e}"))),
        &[(FLOOR_URL_ENV, &fixture.url), (FLOOR_BIND_ENV, &floor_bind)],
        floor_addr,
        dir,
    );
    let (perf5, perf6) = rt.block_on(async {
        server.wait_ready().await;
        floor.wait_ready().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let perf5 = if settings.perf5 {
            Some(run_perf5(settings, &server, &floor, &fixture).await)
        } else {
            None
        };
        let perf6 = match &fixture.perf6 {
            Some(p6) => Some(run_perf6(settings, &server, &floor, &fixture, p6).await),
            None => None,
        };
        (perf5, perf6)
    });
    drop(server);
    drop(floor);
    BackendResult {
        fixture,
        perf5,
        perf6,
        context: stats::context_line(),
    }
}

/// The closed-loop rounds of a scenario, server (`targets[0]`) and floor (`targets[1]`) taking
/// turns: server first in even rounds, floor first in odd ones.
async fn closed_rounds(
    settings: &Settings,
    label: &str,
    targets: [(&str, &Target, u32); 2],
    db: Option<&str>,
    sides: &mut [Rounds; 2],
) {
    for round in 0..settings.rounds {
        for k in 0..2 {
            let i = if round % 2 == 0 { k } else { 1 - k };
            let (name, target, pid) = targets[i];
            let before = CpuSnapshot::take(pid, db);
            let r = loadgen::closed_loop(target, settings.connections, settings.warmup, settings.window)
                .await
                .unwrap_or_else(|e| panic!("{label} {name}: closed loop: {e}"));
            let cpu = CpuSnapshot::take(pid, db).since(&before, r.exchanges);
            eprintln!(
                "[portal-benches] http {label} round {}: {name:<13} closed loop, {} connections: {:>7.0} req/s, \
                 p50 {}, p99 {}, {} failures; CPU per request: process {}, database {}, load generator {}; \
                 other processes {:.2} cores (load average {})",
                round + 1,
                settings.connections,
                r.throughput(),
                r.latency().map_or_else(|| "-".to_owned(), |s| stats::fmt(s.median)),
                r.latency().map_or_else(|| "-".to_owned(), |s| stats::fmt(s.p99)),
                failures(&r),
                us(cpu.per_request(cpu.process)),
                db.map_or_else(|| "(in process)".to_owned(), |_| us(cpu.per_request(cpu.database))),
                us(cpu.per_request(cpu.generator)),
                cpu.other_cores(),
                load_average()
            );
            sides[i].closed.push(r);
            sides[i].cpu.push(cpu);
        }
    }
}

/// PERF-5 and PERF-10: sign in, check one overview on each side, then the closed and open
/// loops, sampling the memory of both processes.
async fn run_perf5(settings: &Settings, server: &Process, floor: &Process, fixture: &Fixture) -> Perf5Result {
    let backend = fixture.backend;
    let label = format!("{backend} perf5");
    let server_start = server.memory();
    let floor_start = floor.memory();

    // Sign in through the server, as a client would.
    let body = serde_json::json!({ "email": fixture.email, "password": PASSWORD }).to_string();
    let (status, answer) = loadgen::post_json(server.addr, HOST, "/api/v1/auth/sign-in", body)
        .await
        .unwrap_or_else(|e| panic!("{backend}: sign-in: {e}"));
    let token = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .filter(|_| status.is_success())
        .unwrap_or_else(|| {
            server.fail(&format!(
                "refused the sign-in: {status} {}",
                String::from_utf8_lossy(&answer)
            ))
        });
    let path = format!("/api/v1/portals/{}", fixture.portal);
    let server_target = Target::new(server.addr, HOST, &path, Some(&token)).unwrap_or_else(|e| panic!("{e}"));
    let floor_target = Target::new(floor.addr, HOST, &path, Some(&token)).unwrap_or_else(|e| panic!("{e}"));

    // One request each, checked.
    let server_bytes = check_overview(server, &server_target, fixture).await;
    let floor_bytes = check_overview(floor, &floor_target, fixture).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let server_idle = server.memory();
    let floor_idle = floor.memory();
    eprintln!(
        "[portal-benches] http {backend}: portal-server VmRSS {} after start, {} idle after sign-in + 1 GET \
         (VmHWM {} / {}); floor {} / {}",
        mib(server_start.rss_kib),
        mib(server_idle.rss_kib),
        mib(server_start.hwm_kib),
        mib(server_idle.hwm_kib),
        mib(floor_start.rss_kib),
        mib(floor_idle.rss_kib)
    );
    wait_for_quiet(settings.quiet_load).await;
    let load_before = load_average();
    let server_sampler = RssSampler::start(server.pid());
    let floor_sampler = RssSampler::start(floor.pid());

    let mut sides: [Rounds; 2] = Default::default();
    let targets = [
        ("portal-server", &server_target, server.pid()),
        ("floor", &floor_target, floor.pid()),
    ];
    let db = fixture.pg_database.as_deref();
    closed_rounds(settings, &label, targets, db, &mut sides).await;
    for round in 0..settings.rounds {
        for k in 0..2 {
            let i = if round % 2 == 0 { k } else { 1 - k };
            let (name, target, pid) = targets[i];
            let before = CpuSnapshot::take(pid, db);
            let r = loadgen::open_loop(
                target,
                settings.rate,
                OPEN_LOOP_CONNECTIONS,
                settings.warmup,
                settings.rate_window,
            )
            .await
            .unwrap_or_else(|e| panic!("{backend} {name}: open loop: {e}"));
            let cpu = CpuSnapshot::take(pid, db).since(&before, r.exchanges);
            eprintln!(
                "[portal-benches] http {label} round {}: {name:<13} {:.0} req/s (achieved {:.0}): p50 {}, p99 {} \
                 (from due: p99 {}), {} late sends, {} failures; other processes {:.2} cores (load average {})",
                round + 1,
                settings.rate,
                r.throughput(),
                r.latency().map_or_else(|| "-".to_owned(), |s| stats::fmt(s.median)),
                r.latency().map_or_else(|| "-".to_owned(), |s| stats::fmt(s.p99)),
                r.latency_from_due()
                    .map_or_else(|| "-".to_owned(), |s| stats::fmt(s.p99)),
                r.late_sends,
                failures(&r),
                cpu.other_cores(),
                load_average()
            );
            sides[i].open.push(r);
            sides[i].open_cpu.push(cpu);
        }
    }
    let server_rss_max = server_sampler.finish().await;
    let floor_rss_max = floor_sampler.finish().await;
    let load_after = load_average();
    let [server_rounds, floor_rounds] = sides;
    Perf5Result {
        server: Side {
            body_bytes: server_bytes,
            closed: server_rounds.closed,
            open: server_rounds.open,
            cpu: server_rounds.cpu,
            open_cpu: server_rounds.open_cpu,
            mem_start: server_start,
            mem_idle: server_idle,
            load_rss_max_kib: server_rss_max,
            mem_end: server.memory(),
        },
        floor: Side {
            body_bytes: floor_bytes,
            closed: floor_rounds.closed,
            open: floor_rounds.open,
            cpu: floor_rounds.cpu,
            open_cpu: floor_rounds.open_cpu,
            mem_start: floor_start,
            mem_idle: floor_idle,
            load_rss_max_kib: floor_rss_max,
            mem_end: floor.memory(),
        },
        load_before,
        load_after,
    }
}

/// PERF-6: one opening on each side, checked, then the closed-loop rounds over every contact.
async fn run_perf6(
    settings: &Settings,
    server: &Process,
    floor: &Process,
    fixture: &Fixture,
    p6: &Perf6Fixture,
) -> Perf6Result {
    let label = format!("{} perf6", fixture.backend);
    // The verified-browser cookie of each contact, as the server sets it after a one-time code
    // (valid for 90 days from now).
    let key = MasterKey::from_material(&MASTER_KEY).unwrap_or_else(|e| panic!("the benchmark's master key: {e}"));
    let expires = Utc::now() + VERIFIED_BROWSER_LIFETIME;
    let requests: Vec<(String, Vec<(String, String)>)> = p6
        .openers
        .iter()
        .map(|(contact, token)| {
            let cookie = format!(
                "{}={}",
                verified_browser_cookie_name(*contact),
                verified_browser_value(&key, p6.tenant, *contact, expires)
            );
            (
                serde_json::json!({ "token": token.encode() }).to_string(),
                vec![("cookie".to_owned(), cookie)],
            )
        })
        .collect();
    // One client address (127.0.0.1) by default; with more, connection k comes from
    // 127.0.0.(2 + k % n): the server counts openings per address.
    let sources: Vec<IpAddr> = if settings.client_addresses > 1 {
        (0..settings.client_addresses)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect()
    } else {
        Vec::new()
    };
    let target = |addr| {
        Target::post_json(addr, PERF6_HOST, "/api/v1/access", requests.iter().cloned())
            .unwrap_or_else(|e| panic!("{e}"))
            .expect(StatusCode::OK)
            .from_sources(sources.clone())
    };
    let server_target = target(server.addr);
    let floor_target = target(floor.addr);
    let body_bytes = [
        check_opening(server, &server_target).await,
        check_opening(floor, &floor_target).await,
    ];
    wait_for_quiet(settings.quiet_load).await;
    let load_before = load_average();
    let mut sides: [Rounds; 2] = Default::default();
    let targets = [
        ("portal-server", &server_target, server.pid()),
        ("floor", &floor_target, floor.pid()),
    ];
    closed_rounds(settings, &label, targets, fixture.pg_database.as_deref(), &mut sides).await;
    let [server_rounds, floor_rounds] = sides;
    Perf6Result {
        server: server_rounds,
        floor: floor_rounds,
        body_bytes,
        load_before,
        load_after: load_average(),
    }
}

/// One `GET` of the overview: it must answer 200 with the portal's tasks. Returns the body's size.
async fn check_overview(process: &Process, target: &Target, fixture: &Fixture) -> usize {
    let (status, body) = loadgen::once(target)
        .await
        .unwrap_or_else(|e| process.fail(&format!("GET {}: {e}", target.path)));
    let tasks = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["tasks"].as_array().map(Vec::len));
    if !status.is_success() || tasks != Some(fixture.portal_tasks) {
        process.fail(&format!(
            "answered GET {} with {status} and {tasks:?} tasks (expected {}): {}",
            target.path,
            fixture.portal_tasks,
            String::from_utf8_lossy(&body).chars().take(500).collect::<String>()
        ));
    }
    body.len()
}

/// One opening of a link: it must answer 200 with a session token (a 202 means the server did
/// not take the verified-browser cookie and mailed a code). Returns the body's size.
async fn check_opening(process: &Process, target: &Target) -> usize {
    let (status, body) = loadgen::once(target)
        .await
        .unwrap_or_else(|e| process.fail(&format!("POST {}: {e}", target.path)));
    let session = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["session_token"].as_str().map(str::to_owned));
    if status != StatusCode::OK || session.is_none() {
        process.fail(&format!(
            "answered POST {} with {status} (expected 200 with a session token): {}",
            target.path,
            String::from_utf8_lossy(&body).chars().take(500).collect::<String>()
        ));
    }
    body.len()
}

/// The failures of a run, with the statuses that were not the expected one.
fn failures(r: &LoadReport) -> String {
    let statuses: Vec<String> = r.other_statuses.iter().map(|(s, n)| format!("{n}x{s}")).collect();
    match (r.failures(), r.errors) {
        (0, _) => "0".to_owned(),
        (n, 0) => format!("{n} ({})", statuses.join(", ")),
        (n, e) if statuses.is_empty() => format!("{n} ({e} transport errors)"),
        (n, e) => format!("{n} ({}, {e} transport errors)", statuses.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// The report

fn ms(s: Option<Summary>, f: impl Fn(&Summary) -> f64) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{:.2}ms", f(&s) * 1e3))
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn print_table(settings: &Settings, results: &[BackendResult]) {
    let perf5: Vec<(&BackendResult, &Perf5Result)> = results
        .iter()
        .filter_map(|r| r.perf5.as_ref().map(|p| (r, p)))
        .collect();
    if !perf5.is_empty() {
        print_perf5(settings, &perf5);
    }
    let perf6: Vec<(&BackendResult, &Perf6Result)> = results
        .iter()
        .filter_map(|r| r.perf6.as_ref().map(|p| (r, p)))
        .collect();
    if !perf6.is_empty() {
        print_perf6(settings, &perf6);
    }
}

fn print_perf5(settings: &Settings, results: &[(&BackendResult, &Perf5Result)]) {
    println!();
    println!(
        "PERF-5 / PERF-10: staff GET /api/v1/portals/{{id}} over HTTP/1.1 on loopback ({})",
        results[0].0.context
    );
    println!(
        "  load: closed loop {} connections x {:.0} s, open loop {:.0} req/s x {:.0} s over {} connections; \
         {} rounds each after {:.0} s of warm-up, server and floor taking turns",
        settings.connections,
        settings.window.as_secs_f64(),
        settings.rate,
        settings.rate_window.as_secs_f64(),
        OPEN_LOOP_CONNECTIONS,
        settings.rounds,
        settings.warmup.as_secs_f64()
    );
    println!(
        "  columns: req/s = median of the closed-loop rounds (each round's figure after it); p50/p99 = closed-loop \
         latency; cpu/req = user+system CPU of the measured process per request (SQLite runs inside it); db/req = the \
         PostgreSQL backends' CPU per request; gen/req = the load generator's; @rate = open loop, latency from \
         sending, `due` from when the request was due; late = sends > 2 ms after due; body = bytes of one answer; others = cores the rest of the machine \
         kept busy meanwhile (other agents' work: the disturbance), closed loop / open loop"
    );
    for (b, r) in results {
        let f = &b.fixture;
        println!();
        println!(
            "{}: `{}` data set, seed {} ({}), loaded in {:.0} s; portal {} of tenant {} ({} tasks, {} completed); \
             load average {} before the load, {} after",
            f.backend,
            f.data.size,
            f.data.seed,
            f.data.counts,
            f.load_secs,
            f.portal,
            f.tenant,
            f.portal_tasks,
            f.portal_completed,
            r.load_before,
            r.load_after
        );
        println!(
            "  {:<14} {:>8} {:>20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>8} {:>7} {:>11}",
            "",
            "req/s",
            "rounds",
            "p50",
            "p99",
            "cpu/req",
            "db/req",
            "gen/req",
            "p50@rate",
            "p99@rate",
            "p99 due",
            "late",
            "failures",
            "body",
            "others"
        );
        for (name, side) in [("portal-server", &r.server), ("floor", &r.floor)] {
            let closed = LoadReport::combine(&side.closed);
            let open = LoadReport::combine(&side.open);
            let rounds: Vec<String> = side.closed_throughputs().iter().map(|t| format!("{t:.0}")).collect();
            let cpu = Cpu::sum(&side.cpu);
            let db = if f.pg_database.is_some() {
                us(cpu.per_request(cpu.database))
            } else {
                "-".to_owned()
            };
            println!(
                "  {:<14} {:>8.0} {:>20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>5} {:>8} {:>7} {:>11}",
                name,
                side.median_throughput(),
                rounds.join(" / "),
                ms(closed.latency(), |s| s.median),
                ms(closed.latency(), |s| s.p99),
                us(cpu.per_request(cpu.process)),
                db,
                us(cpu.per_request(cpu.generator)),
                ms(open.latency(), |s| s.median),
                ms(open.latency(), |s| s.p99),
                ms(open.latency_from_due(), |s| s.p99),
                open.late_sends,
                closed.failures() + open.failures(),
                side.body_bytes,
                format!(
                    "{:.2} / {:.2}",
                    cpu.other_cores(),
                    Cpu::sum(&side.open_cpu).other_cores()
                )
            );
        }
        let share = r.server.median_throughput() / r.floor.median_throughput().max(1e-9);
        let paired: Vec<f64> = r
            .server
            .closed_throughputs()
            .iter()
            .zip(r.floor.closed_throughputs())
            .map(|(s, f)| s / f.max(1e-9))
            .collect();
        let paired_text: Vec<String> = paired.iter().map(|p| format!("{:.0} %", p * 100.0)).collect();
        let open = LoadReport::combine(&r.server.open);
        let p99 = open.latency().map_or(f64::INFINITY, |s| s.p99);
        let p99_due = open.latency_from_due().map_or(f64::INFINITY, |s| s.p99);
        println!(
            "  PERF-5 throughput: server / floor = {:.1} % of the floor (per round: {}); target >= {:.0} %: {}",
            share * 100.0,
            paired_text.join(", "),
            TARGET_SHARE * 100.0,
            verdict(share >= TARGET_SHARE)
        );
        println!(
            "  PERF-5 latency at {:.0} req/s (achieved {:.0}): server p99 {:.2} ms from sending, {:.2} ms from due \
             ({} samples); target <= {} ms: {} from sending, {} from due",
            settings.rate,
            open.throughput(),
            p99 * 1e3,
            p99_due * 1e3,
            open.latencies.len(),
            TARGET_P99.as_millis(),
            verdict(p99 <= TARGET_P99.as_secs_f64()),
            verdict(p99_due <= TARGET_P99.as_secs_f64())
        );
        let s = &r.server;
        let peak = s.load_rss_max_kib.max(s.mem_end.rss_kib);
        println!(
            "  PERF-10 memory of portal-server: VmRSS {} after start, {} idle after sign-in + 1 GET (target <= 40 MiB: \
             {}); VmHWM {} after start, {} after sign-in + 1 GET; under load: VmRSS peak {} sampled, VmHWM {} (whole \
             life; target <= 150 MiB: {})",
            mib(s.mem_start.rss_kib),
            mib(s.mem_idle.rss_kib),
            verdict(s.mem_idle.rss_kib <= TARGET_IDLE_KIB),
            mib(s.mem_start.hwm_kib),
            mib(s.mem_idle.hwm_kib),
            mib(peak),
            mib(s.mem_end.hwm_kib),
            verdict(s.mem_end.hwm_kib <= TARGET_LOAD_KIB)
        );
        let fl = &r.floor;
        println!(
            "  (floor process, orientation: VmRSS {} after start, {} idle, peak {} sampled, VmHWM {})",
            mib(fl.mem_start.rss_kib),
            mib(fl.mem_idle.rss_kib),
            mib(fl.load_rss_max_kib.max(fl.mem_end.rss_kib)),
            mib(fl.mem_end.hwm_kib)
        );
    }
}

fn print_perf6(settings: &Settings, results: &[(&BackendResult, &Perf6Result)]) {
    println!();
    println!(
        "PERF-6: a contact opening their link from a verified browser, POST /api/v1/access over HTTP/1.1 on \
         loopback ({})",
        results[0].0.context
    );
    println!(
        "  load: closed loop {} connections x {:.0} s, {} rounds after {:.0} s of warm-up, server and floor taking \
         turns; each request the next contact of a seeded random order (round-robin), with its own link token and \
         verified-browser cookie; every opening starts a new session; {}",
        settings.connections,
        settings.window.as_secs_f64(),
        settings.rounds,
        settings.warmup.as_secs_f64(),
        if settings.client_addresses > 1 {
            format!(
                "connections from {} client addresses (127.0.0.2-{})",
                settings.client_addresses,
                1 + settings.client_addresses
            )
        } else {
            "every connection from 127.0.0.1 (one client address, one rate-limit counter)".to_owned()
        }
    );
    println!(
        "  columns: req/s = median of the rounds (each round's figure after it); p50/p99 = latency, the rounds' \
         samples pooled; cpu/req = user+system CPU of the measured process per request (SQLite runs inside it); \
         db/req = the PostgreSQL backends' CPU per request; gen/req = the load generator's; failures = answers other \
         than 200 and transport errors; body = bytes of one answer; others = cores the rest of the machine kept busy"
    );
    for (b, r) in results {
        let f = &b.fixture;
        let Some(p6) = &f.perf6 else { continue };
        println!();
        println!(
            "{}: `{}` data set, seed {}; tenant {} ({PERF6_HOST}): {} contacts of {} active portals, each with a live \
             link ({} contacts added, contacts and links committed in {:.1} s); load average {} before the load, {} after",
            f.backend,
            f.data.size,
            f.data.seed,
            p6.tenant,
            p6.openers.len(),
            p6.portals,
            p6.added,
            p6.secs,
            r.load_before,
            r.load_after
        );
        println!(
            "  {:<14} {:>8} {:>20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>6} {:>7}",
            "", "req/s", "rounds", "p50", "p99", "cpu/req", "db/req", "gen/req", "failures", "body", "others"
        );
        for (name, side, bytes) in [
            ("portal-server", &r.server, r.body_bytes[0]),
            ("floor", &r.floor, r.body_bytes[1]),
        ] {
            let closed = LoadReport::combine(&side.closed);
            let rounds: Vec<String> = closed_throughputs(&side.closed)
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect();
            let cpu = Cpu::sum(&side.cpu);
            let db = if f.pg_database.is_some() {
                us(cpu.per_request(cpu.database))
            } else {
                "-".to_owned()
            };
            println!(
                "  {:<14} {:>8.0} {:>20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>6} {:>7.2}",
                name,
                median(closed_throughputs(&side.closed)),
                rounds.join(" / "),
                ms(closed.latency(), |s| s.median),
                ms(closed.latency(), |s| s.p99),
                us(cpu.per_request(cpu.process)),
                db,
                us(cpu.per_request(cpu.generator)),
                failures(&closed),
                bytes,
                cpu.other_cores()
            );
        }
        let server = median(closed_throughputs(&r.server.closed));
        let share = server / median(closed_throughputs(&r.floor.closed)).max(1e-9);
        let paired: Vec<String> = closed_throughputs(&r.server.closed)
            .iter()
            .zip(closed_throughputs(&r.floor.closed))
            .map(|(s, f)| format!("{:.0} %", s / f.max(1e-9) * 100.0))
            .collect();
        println!(
            "  PERF-6 throughput: server / floor = {:.1} % of the floor (per round: {}); target >= {:.0} %: {}; \
             orientation >= {PERF6_ORIENTATION:.0} req/s: {server:.0} req/s",
            share * 100.0,
            paired.join(", "),
            PERF6_TARGET_SHARE * 100.0,
            verdict(share >= PERF6_TARGET_SHARE)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The floor

/// The floor. PERF-5: one axum route running the server's SELECT statements with sqlx and
/// answering the rows as JSON. The statements are copied from the stores
/// (`portal-storage-sqlite`'s `read.rs`, `auth.rs` and `lib.rs`; `portal-storage-postgres`'s
/// `read.rs`, `portal.rs` and `auth.rs`), in the order the server's request runs them and in
/// the same transactions. PERF-6: a route opening a link with the fewest statements a correct
/// handler needs (see [`open_link`]).
mod floor {
    use std::sync::Arc;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use chrono::{DateTime, NaiveDate, SubsecRound as _, Utc};
    use portal_core::access::CONTACT_SESSION_IDLE;
    use portal_core::auth::SecretToken;
    use portal_storage_postgres::PgStorage;
    use portal_storage_sqlite::SqliteStorage;
    use rand::TryRngCore as _;
    use serde::{Deserialize, Serialize};
    use sqlx::sqlite::SqlitePoolOptions;
    use sqlx::types::Json;
    use sqlx::{FromRow, PgPool, SqlitePool};
    use uuid::Uuid;

    /// The floor's store, opened as the server opens it. SQLite: the store's read pool, and a
    /// one-connection write pool with the same options, as the store writes (its own write pool
    /// is not public).
    enum Db {
        Sqlite(SqliteStorage, SqlitePool),
        Postgres(PgStorage),
    }

    /// Serves the floor on `bind` until killed.
    pub(super) fn serve(url: &str, bind: &str) {
        // As `#[tokio::main]` builds it for the server: one worker per core.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
        rt.block_on(async {
            let db = if url.starts_with("sqlite:") {
                let storage = SqliteStorage::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("floor: {url}: {e}"));
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .connect_with((*storage.pool().connect_options()).clone())
                    .await
                    .unwrap_or_else(|e| panic!("floor: the write pool of {url}: {e}"));
                Db::Sqlite(storage, writer)
            } else {
                Db::Postgres(
                    PgStorage::connect(url)
                        .await
                        .unwrap_or_else(|e| panic!("floor: {url}: {e}")),
                )
            };
            let app = Router::new()
                .route("/healthz", get(|| std::future::ready("ok")))
                .route("/api/v1/portals/{id}", get(overview))
                .route("/api/v1/access", post(open_link))
                .with_state(Arc::new(db));
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .unwrap_or_else(|e| panic!("floor: cannot listen on {bind}: {e}"));
            axum::serve(listener, app)
                .await
                .unwrap_or_else(|e| panic!("floor: {e}"));
        });
    }

    // Rows, decoded into plain types (no domain values) that decode on both backends.

    #[derive(FromRow, Serialize)]
    struct SessionRow {
        #[serde(skip)]
        #[allow(dead_code)] // read as the store reads it, never shown
        token_hash: Vec<u8>,
        tenant_id: Uuid,
        user_id: Uuid,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    }

    #[derive(FromRow, Serialize)]
    struct StaffUserRow {
        tenant_id: Uuid,
        id: Uuid,
        email: String,
        display_name: String,
        active: bool,
        version: i64,
        created_at: DateTime<Utc>,
    }

    #[derive(FromRow, Serialize)]
    struct PgStaffUserRow {
        tenant_id: Uuid,
        id: Uuid,
        email: String,
        display_name: String,
        active: bool,
        version: i64,
        created_at: DateTime<Utc>,
        roles: Vec<Uuid>,
    }

    #[derive(FromRow, Serialize)]
    struct UserRoleRow {
        user_id: Uuid,
        role_id: Uuid,
    }

    #[derive(FromRow, Serialize)]
    struct RoleRow {
        tenant_id: Uuid,
        id: Uuid,
        name: String,
        version: i64,
    }

    #[derive(FromRow, Serialize)]
    struct PgRoleRow {
        tenant_id: Uuid,
        id: Uuid,
        name: String,
        version: i64,
        permissions: Vec<String>,
    }

    #[derive(FromRow, Serialize)]
    struct RolePermissionRow {
        role_id: Uuid,
        permission: String,
    }

    #[derive(FromRow, Serialize)]
    struct TenantRow {
        tenant_id: Uuid,
        name: String,
        time_zone: String,
        billable_default: bool,
        forwarded_link_protection: bool,
        version: i64,
        created_at: DateTime<Utc>,
    }

    #[derive(FromRow, Serialize)]
    struct PortalRow {
        tenant_id: Uuid,
        id: Uuid,
        company_id: Uuid,
        template_id: Option<Uuid>,
        name: String,
        status: String,
        version: i64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        activated_at: Option<DateTime<Utc>>,
    }

    #[derive(FromRow, Serialize)]
    struct PhaseRow {
        tenant_id: Uuid,
        id: Uuid,
        portal_id: Uuid,
        position: i32,
        name: String,
        description: String,
        version: i64,
    }

    #[derive(FromRow, Serialize)]
    struct TaskRow {
        tenant_id: Uuid,
        id: Uuid,
        portal_id: Uuid,
        phase_id: Uuid,
        position: i32,
        title: String,
        description: String,
        owner: String,
        evidence: String,
        priority: String,
        due_offset_days: Option<i32>,
        due_date: Option<NaiveDate>,
        status: String,
        block_reason: Option<String>,
        assignee_id: Option<Uuid>,
        completed_at: Option<DateTime<Utc>>,
        completed_by_kind: Option<String>,
        completed_by_id: Option<Uuid>,
        completed_by_display: Option<String>,
        completion_reason: Option<String>,
        version: i64,
    }

    #[derive(FromRow, Serialize)]
    struct DependencyRow {
        task_id: Uuid,
        depends_on_id: Uuid,
    }

    #[derive(FromRow, Serialize)]
    struct ChecklistRow {
        id: Uuid,
        task_id: Uuid,
        text: String,
        done: bool,
    }

    #[derive(FromRow, Serialize)]
    struct SurveyRow {
        id: Uuid,
        task_id: Uuid,
        text: String,
        kind: String,
        options: Json<serde_json::Value>,
    }

    #[derive(FromRow, Serialize)]
    struct ContactRow {
        tenant_id: Uuid,
        id: Uuid,
        portal_id: Uuid,
        name: String,
        email: String,
        role: String,
        is_primary: bool,
        version: i64,
        created_at: DateTime<Utc>,
    }

    #[derive(FromRow, Serialize)]
    struct CompanyRow {
        tenant_id: Uuid,
        id: Uuid,
        name: String,
        version: i64,
        created_at: DateTime<Utc>,
    }

    /// Who is asking, as each backend reads it.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Staff {
        Sqlite {
            user: Vec<StaffUserRow>,
            user_roles: Vec<UserRoleRow>,
            roles: Vec<RoleRow>,
            role_permissions: Vec<RolePermissionRow>,
        },
        Postgres {
            user: Option<PgStaffUserRow>,
            roles: Vec<PgRoleRow>,
        },
    }

    /// Every row the request read.
    #[derive(Serialize)]
    struct Answer {
        session: SessionRow,
        staff: Staff,
        tenant: Option<TenantRow>,
        portal: PortalRow,
        phases: Vec<PhaseRow>,
        tasks: Vec<TaskRow>,
        dependencies: Vec<DependencyRow>,
        checklist_items: Vec<ChecklistRow>,
        survey_questions: Vec<SurveyRow>,
        contacts: Vec<ContactRow>,
        company: Option<CompanyRow>,
    }

    fn refuse(status: StatusCode, what: &str) -> Response {
        (status, what.to_owned()).into_response()
    }

    fn db_error(e: &sqlx::Error) -> Response {
        refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
    }

    /// The host of the request, without a port.
    fn host(headers: &HeaderMap) -> Option<String> {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_ascii_lowercase())
    }

    /// The host without a port, and the hash of the bearer token.
    fn who(headers: &HeaderMap) -> Result<(String, [u8; 32]), (StatusCode, &'static str)> {
        let host = host(headers).ok_or((StatusCode::NOT_FOUND, "no host"))?;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| SecretToken::parse(t).ok())
            .ok_or((StatusCode::UNAUTHORIZED, "no token"))?;
        Ok((host, token.hash().0))
    }

    async fn overview(State(db): State<Arc<Db>>, Path(portal): Path<Uuid>, headers: HeaderMap) -> Response {
        let answer = match who(&headers) {
            Err((status, what)) => return refuse(status, what),
            Ok((host, token)) => match &*db {
                Db::Sqlite(s, _) => sqlite(s.pool(), &host, &token, portal).await,
                Db::Postgres(s) => postgres(s.pool(), &host, &token, portal).await,
            },
        };
        match answer {
            Ok(Some(a)) => axum::Json(a).into_response(),
            Ok(None) => refuse(StatusCode::NOT_FOUND, "not found"),
            Err(e) => db_error(&e),
        }
    }

    /// `portal-storage-sqlite`: `tenant_for_host`, `staff_session`, `get_staff_user` (one read
    /// transaction), `list_roles` (one read transaction), `get_tenant`, `load_portal` (one read
    /// transaction), `get_company`.
    async fn sqlite(
        pool: &SqlitePool,
        host: &str,
        token: &[u8; 32],
        portal: Uuid,
    ) -> Result<Option<Answer>, sqlx::Error> {
        let Some(tenant): Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let Some(session) = sqlx::query_as::<_, SessionRow>(
            "SELECT token_hash, tenant_id, user_id, created_at, expires_at FROM staff_sessions \
             WHERE token_hash = $1 AND tenant_id = $2",
        )
        .bind(token.as_slice())
        .bind(tenant)
        .fetch_optional(pool)
        .await?
        else {
            return Ok(None);
        };

        let mut tx = pool.begin().await?;
        let user: Vec<StaffUserRow> = sqlx::query_as(
            "SELECT tenant_id, id, email, display_name, active, version, created_at FROM staff_user \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(session.user_id)
        .fetch_all(&mut *tx)
        .await?;
        let user_roles: Vec<UserRoleRow> = sqlx::query_as(
            "SELECT user_id, role_id FROM staff_user_role WHERE tenant_id = $1 AND user_id BETWEEN $2 AND $3 \
             ORDER BY rowid",
        )
        .bind(tenant)
        .bind(session.user_id)
        .bind(session.user_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut tx = pool.begin().await?;
        let roles: Vec<RoleRow> =
            sqlx::query_as("SELECT tenant_id, id, name, version FROM role WHERE tenant_id = $1 ORDER BY name, id")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await?;
        let role_permissions: Vec<RolePermissionRow> =
            sqlx::query_as("SELECT role_id, permission FROM role_permission WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;

        let tenant_row: Option<TenantRow> = sqlx::query_as(
            "SELECT tenant_id, name, time_zone, billable_default, forwarded_link_protection, version, created_at \
             FROM tenant WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(pool)
        .await?;

        let mut tx = pool.begin().await?;
        let Some(portal_row) = sqlx::query_as::<_, PortalRow>(
            "SELECT tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
             activated_at FROM portal WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let phases: Vec<PhaseRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, position, name, description, version FROM portal_phase \
             WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let tasks: Vec<TaskRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, priority, \
             due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
             completed_by_id, completed_by_display, completion_reason, version FROM task \
             WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let dependencies: Vec<DependencyRow> = sqlx::query_as(
            "SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let checklist_items: Vec<ChecklistRow> = sqlx::query_as(
            "SELECT id, task_id, text, done FROM task_checklist_item WHERE tenant_id = $1 AND portal_id = $2 \
             ORDER BY task_id, position",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let survey_questions: Vec<SurveyRow> = sqlx::query_as(
            "SELECT id, task_id, text, kind, options FROM task_survey_question WHERE tenant_id = $1 AND portal_id = $2 \
             ORDER BY task_id, position",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let contacts: Vec<ContactRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, name, email, role, is_primary, version, created_at FROM contact \
             WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let company: Option<CompanyRow> = sqlx::query_as(
            "SELECT tenant_id, id, name, version, created_at FROM company WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(portal_row.company_id)
        .fetch_optional(pool)
        .await?;

        Ok(Some(Answer {
            session,
            staff: Staff::Sqlite {
                user,
                user_roles,
                roles,
                role_permissions,
            },
            tenant: tenant_row,
            portal: portal_row,
            phases,
            tasks,
            dependencies,
            checklist_items,
            survey_questions,
            contacts,
            company,
        }))
    }

    /// `portal-storage-postgres`: `tenant_for_host`, `staff_session`, `get_staff_user`,
    /// `list_roles`, `get_tenant`, `load_portal` (one `REPEATABLE READ, READ ONLY` transaction),
    /// `get_company`.
    async fn postgres(
        pool: &PgPool,
        host: &str,
        token: &[u8; 32],
        portal: Uuid,
    ) -> Result<Option<Answer>, sqlx::Error> {
        let Some(tenant): Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let Some(session) = sqlx::query_as::<_, SessionRow>(
            "SELECT token_hash, tenant_id, user_id, created_at, expires_at FROM staff_sessions \
             WHERE token_hash = $1 AND tenant_id = $2",
        )
        .bind(token.as_slice())
        .bind(tenant)
        .fetch_optional(pool)
        .await?
        else {
            return Ok(None);
        };
        let user: Option<PgStaffUserRow> = sqlx::query_as(
            "SELECT u.tenant_id, u.id, u.email, u.display_name, u.active, u.version, u.created_at, \
                    ARRAY(SELECT r.role_id FROM staff_user_role r WHERE r.tenant_id = u.tenant_id AND r.user_id = u.id ORDER BY r.role_id) AS roles \
             FROM staff_user u WHERE u.tenant_id = $1 AND u.id = $2",
        )
        .bind(tenant)
        .bind(session.user_id)
        .fetch_optional(pool)
        .await?;
        let roles: Vec<PgRoleRow> = sqlx::query_as(
            "SELECT r.tenant_id, r.id, r.name, r.version, \
                    ARRAY(SELECT p.permission FROM role_permission p WHERE p.tenant_id = r.tenant_id AND p.role_id = r.id) AS permissions \
             FROM role r WHERE r.tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(pool)
        .await?;
        let tenant_row: Option<TenantRow> = sqlx::query_as(
            "SELECT tenant_id, name, time_zone, billable_default, forwarded_link_protection, version, created_at \
             FROM tenant WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(pool)
        .await?;

        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let Some(portal_row) = sqlx::query_as::<_, PortalRow>(
            "SELECT tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
                    activated_at \
             FROM portal WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let phases: Vec<PhaseRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, position, name, description, version \
             FROM portal_phase WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let tasks: Vec<TaskRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, \
                    priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
                    completed_by_id, completed_by_display, completion_reason, version \
             FROM task WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let dependencies: Vec<DependencyRow> = sqlx::query_as(
            "SELECT task_id, depends_on_id FROM task_dependency WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let checklist_items: Vec<ChecklistRow> = sqlx::query_as(
            "SELECT task_id, id, text, done FROM task_checklist_item \
             WHERE tenant_id = $1 AND portal_id = $2 ORDER BY task_id, position, id",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let survey_questions: Vec<SurveyRow> = sqlx::query_as(
            "SELECT task_id, id, text, kind, options FROM task_survey_question \
             WHERE tenant_id = $1 AND portal_id = $2 ORDER BY task_id, position, id",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        let contacts: Vec<ContactRow> = sqlx::query_as(
            "SELECT tenant_id, id, portal_id, name, email, role, is_primary, version, created_at \
             FROM contact WHERE tenant_id = $1 AND portal_id = $2",
        )
        .bind(tenant)
        .bind(portal)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let company: Option<CompanyRow> = sqlx::query_as(
            "SELECT tenant_id, id, name, version, created_at FROM company WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(portal_row.company_id)
        .fetch_optional(pool)
        .await?;

        Ok(Some(Answer {
            session,
            staff: Staff::Postgres { user, roles },
            tenant: tenant_row,
            portal: portal_row,
            phases,
            tasks,
            dependencies,
            checklist_items,
            survey_questions,
            contacts,
            company,
        }))
    }

    // PERF-6

    /// The body of `POST /api/v1/access`.
    #[derive(Deserialize)]
    struct OpenLinkRequest {
        token: String,
    }

    /// What the floor answers: the new session.
    #[derive(Serialize)]
    struct Opened {
        session_token: String,
        expires_at: DateTime<Utc>,
        portal_id: Uuid,
    }

    /// A link with its portal's status.
    #[derive(FromRow)]
    struct LinkRow {
        id: Uuid,
        portal_id: Uuid,
        contact_id: Uuid,
        expires_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
        status: String,
    }

    /// The link by token hash with its portal's status: the one lookup a correct handler needs
    /// (a removed contact takes its links with it, `ON DELETE CASCADE`).
    const LINK: &str = "SELECT l.id, l.portal_id, l.contact_id, l.expires_at, l.revoked_at, p.status \
                        FROM access_link l JOIN portal p ON p.tenant_id = l.tenant_id AND p.id = l.portal_id \
                        WHERE l.tenant_id = $1 AND l.token_hash = $2";
    /// The session row, as the stores write it.
    const SESSION: &str = "INSERT INTO contact_session (tenant_id, token_hash, portal_id, contact_id, link_id, \
                           created_at, last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)";

    /// A new session of the link in `row`, when the link opens its portal now: the session's
    /// token, its start (now) and its expiry.
    fn session_of(row: &LinkRow) -> Option<(SecretToken, DateTime<Utc>, DateTime<Utc>)> {
        let now = Utc::now().trunc_subsecs(6);
        if row.revoked_at.is_some() || now >= row.expires_at || row.status != "active" {
            return None;
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .unwrap_or_else(|e| panic!("the operating system's random number generator: {e}"));
        Some((SecretToken::from_bytes(bytes), now, now + CONTACT_SESSION_IDLE))
    }

    /// `POST /api/v1/access`: the tenant by host, then in one write transaction the link by
    /// token hash with its portal's status, a check that it opens the portal now, the session
    /// row; commit, and the session token as JSON. No engine, no policy, no cookie check, no
    /// rate-limit counter, no event.
    async fn open_link(
        State(db): State<Arc<Db>>,
        headers: HeaderMap,
        axum::Json(request): axum::Json<OpenLinkRequest>,
    ) -> Response {
        let Some(host) = host(&headers) else {
            return refuse(StatusCode::NOT_FOUND, "no host");
        };
        let Ok(token) = SecretToken::parse(&request.token) else {
            return refuse(StatusCode::NOT_FOUND, "link_not_found");
        };
        let hash = token.hash().0;
        let opened = match &*db {
            Db::Sqlite(s, writer) => open_sqlite(s.pool(), writer, &host, &hash).await,
            Db::Postgres(s) => open_postgres(s.pool(), &host, &hash).await,
        };
        match opened {
            Ok(Some(o)) => axum::Json(o).into_response(),
            Ok(None) => refuse(StatusCode::NOT_FOUND, "link_not_found"),
            Err(e) => db_error(&e),
        }
    }

    async fn open_sqlite(
        pool: &SqlitePool,
        writer: &SqlitePool,
        host: &str,
        hash: &[u8; 32],
    ) -> Result<Option<Opened>, sqlx::Error> {
        let Some(tenant): Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some(link) = sqlx::query_as::<_, LinkRow>(LINK)
            .bind(tenant)
            .bind(hash.as_slice())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let Some((session, now, expires_at)) = session_of(&link) else {
            return Ok(None);
        };
        sqlx::query(SESSION)
            .bind(tenant)
            .bind(session.hash().0.as_slice())
            .bind(link.portal_id)
            .bind(link.contact_id)
            .bind(link.id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Opened {
            session_token: session.encode(),
            expires_at,
            portal_id: link.portal_id,
        }))
    }

    async fn open_postgres(pool: &PgPool, host: &str, hash: &[u8; 32]) -> Result<Option<Opened>, sqlx::Error> {
        let Some(tenant): Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM tenant_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let mut tx = pool.begin().await?;
        let Some(link) = sqlx::query_as::<_, LinkRow>(LINK)
            .bind(tenant)
            .bind(hash.as_slice())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let Some((session, now, expires_at)) = session_of(&link) else {
            return Ok(None);
        };
        sqlx::query(SESSION)
            .bind(tenant)
            .bind(session.hash().0.as_slice())
            .bind(link.portal_id)
            .bind(link.contact_id)
            .bind(link.id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Opened {
            session_token: session.encode(),
            expires_at,
            portal_id: link.portal_id,
        }))
    }
}
