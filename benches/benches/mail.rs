//! PERF-9: the mail outbox. 10,000 queued messages delivered to an SMTP server on loopback by
//! the reference server's outbox worker, against a bare lettre client sending the same messages
//! to the same server in the same run; then a `kill -9` of the server in the middle of the
//! delivery and a restart, after which every message must have been delivered, duplicates only
//! under the same `Message-ID` and idempotency key. On SQLite and PostgreSQL; on PostgreSQL also
//! two server processes against one (PERF-12, for orientation).
//!
//! - **The messages**: `PORTAL_BENCH_MAIL_MESSAGES` (10,000) contact invitations, queued the real
//!   way: an [`Engine`] (seeded clock and entropy, the benchmark's master key) starts 200
//!   portals from a generated 60-task template, each with 50 contacts, activated at once, so
//!   each activation commits 50 invitations whose link tokens the engine sealed under the
//!   outbox key. Queued once per backend into a prepared database, which every run copies
//!   (SQLite: the file; PostgreSQL: `CREATE DATABASE ... TEMPLATE`), so every run starts from
//!   the same 10,000 queued rows.
//! - **The SMTP server**: in this process on `127.0.0.1`, `mailin`'s SMTP session (the engine of
//!   the tests' `mailin-embedded`) under an accept loop of the benchmark's own, a thread per
//!   connection, keeping of each message only its `Message-ID`, idempotency key, envelope
//!   recipients and size. Measured twice (`PORTAL_BENCH_MAIL_ACK`: `both`, `delayed`, `quick`):
//!   with the kernel's delayed ACK, as any SMTP server has it, and with `TCP_QUICKACK` set before
//!   every read. lettre 0.11.23 writes a message's body and its final `.` in two writes on a
//!   socket with Nagle's algorithm on, so each message waits for the server's delayed ACK
//!   (~40 ms on Linux): in the first mode both sides are bound by that wait, in the second the
//!   wait is gone and the comparison shows what each side costs.
//! - **The worker under test**: the release binary `target/release/portal-server` (or
//!   `PORTAL_SERVER_BIN`), `serve` on the copied database, its environment cleared but for
//!   `DATABASE_URL`, `PORTAL_BIND`, `PORTAL_PUBLIC_URL`, `PORTAL_MASTER_KEY`, `PORTAL_MAIL_URL`
//!   (`smtp://127.0.0.1:<port>?tls=none`), `PORTAL_NO_SCHEDULER=true` and, for the crash run,
//!   `PORTAL_MAIL_LEASE_SECONDS`.
//!   Its outbox worker runs with its defaults (batches of 64, 8 sends at once, a pool of 4 SMTP
//!   connections). Measured: from the first message the SMTP server receives to the first poll
//!   of the database (every 50 ms) that finds all messages `sent`; also from the process's
//!   start.
//! - **The floor**: a bare lettre `AsyncSmtpTransport` in this process, built as portal-mail's
//!   `SmtpTransport` builds it (clear text to loopback, the same pool size, idle timeout and
//!   timeout), sending the same messages with the same concurrency (`buffer_unordered` of the
//!   worker's default). The messages are read back from the prepared database, their tokens
//!   opened with the same key, rendered with [`portal_mail::Renderer`] with the server's public
//!   URL and sender, and built into lettre messages the way portal-mail builds them, all before
//!   the clock starts: the floor times the sends only.
//! - **Rounds**: `PORTAL_BENCH_MAIL_ROUNDS` (3) per ACK mode, floor and worker taking turns
//!   (floor first in odd rounds); on PostgreSQL each round also runs two server processes on
//!   one copy. The throughput is the median of the rounds; the ratio is that of the medians.
//! - **The crash run** (with delayed ACKs when they are measured): a copy delivered by a server
//!   with `PORTAL_MAIL_LEASE_SECONDS=5`, killed with SIGKILL once half the messages reached the
//!   SMTP server, restarted at once; then every message must be `sent`, every queued message
//!   received at least once, and every copy of a message must carry its `Message-ID`, its
//!   idempotency key and its recipient.
//! - **Also reported**: CPU time per message of the server process(es), of the PostgreSQL
//!   backends serving the run's database and of this process (the SMTP server, the poller and,
//!   for the floor, the client), and the CPU the rest of the machine used meanwhile.
//!
//! The servers' logs go to a temporary directory removed at the end, or to the directory
//! `PORTAL_BENCH_MAIL_LOGS` names (one `<run>-<n>.log` per process).
//!
//! `PORTAL_BENCH_MAIL_QUIET_LOAD=<x>` makes each backend and ACK mode wait (up to 20 minutes)
//! until the 1-minute load average is below `x` before its first round.
//!
//! Run: `cargo build --release -p portal-server && cargo bench -p portal-benches --bench mail`
//! (`-- sqlite` or `-- postgres` for one backend). The tables go to standard output, progress
//! to standard error. Run outside `cargo bench` (without `--bench`) it does nothing.

#![allow(clippy::print_stdout)] // the result table goes to standard output, by design

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, BufWriter, Read, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use portal_benches::loadgen::cpu_time;
use portal_benches::procs::{
    self, env_or, free_addr, load_average, machine_busy, newest_mtime, pg_backends_cpu, with_database,
};
use portal_benches::{DEFAULT_SEED, generate, now};
use portal_core::commands::admin::FirstAdmin;
use portal_core::commands::portal::StartOnboarding;
use portal_core::crypto::{KeyPurpose, MasterKey};
use portal_core::id::TenantId;
use portal_core::mail::{Mailbox, MessageSecret, OutboundMessage, OutgoingEmail};
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::service::Engine;
use portal_core::storage::{Clock, PageRequest, Storage};
use portal_core::tenant::{TenantSettings, TimeZone};
use portal_core::value::{Email, Name};
use portal_mail::{Renderer, TransportOptions, WorkerSettings};
use portal_storage_postgres::PgStorage;
use portal_storage_sqlite::SqliteStorage;
use rand::{RngCore as _, SeedableRng as _, rngs::StdRng};
use sqlx::Connection as _;

/// The public URL the server is started with (and the floor renders with): every `Message-ID`
/// ends with `@localhost`.
const PUBLIC_URL: &str = "http://localhost:8080";
/// The sender of tenants whose branding names none: the server's default `PORTAL_MAIL_FROM`.
const MAIL_FROM: &str = "portal@portal.invalid";
/// The `Message-ID` host of [`PUBLIC_URL`].
const MESSAGE_HOST: &str = "localhost";
/// Contacts per portal: the engine's maximum, so one activation queues 50 invitations.
const CONTACTS_PER_PORTAL: usize = portal_core::portal::MAX_CONTACTS;
/// The lease of the crash run's server, in seconds.
const CRASH_LEASE_SECONDS: u32 = 5;
/// How often the database is polled for the delivery's progress.
const POLL: Duration = Duration::from_millis(50);
/// PERF-9: the worker's throughput as a share of the floor's.
const TARGET_SHARE: f64 = 0.50;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        eprintln!(
            "[portal-benches] mail: a delivery benchmark; run it with `cargo bench -p portal-benches --bench mail`"
        );
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    let settings = Settings::from_env();
    let Some(server_bin) = server_binary() else { return };

    // Two worker threads, as the server's own runtime has on this machine: the floor's client
    // gets as many cores as the worker's process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
    let sink = Sink::start();
    eprintln!("[portal-benches] mail: SMTP server on 127.0.0.1:{}", sink.port);
    let mut results = Vec::new();
    if wanted("mail_sqlite") {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let prepared_path = dir.path().join("prepared.db");
        let url = format!("sqlite://{}", prepared_path.display());
        let prepared = rt.block_on(async {
            let storage = Arc::new(
                SqliteStorage::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("SQLite store at {url}: {e}")),
            );
            let prepared = prepare(storage.clone(), settings.messages, "sqlite").await;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(storage.pool())
                .await
                .unwrap_or_else(|e| panic!("checkpointing {url}: {e}"));
            storage.pool().close().await;
            prepared
        });
        let backend = Backend::Sqlite {
            prepared: prepared_path,
            dir: dir.path().to_path_buf(),
        };
        results.push(run_backend(&rt, &settings, &server_bin, &sink, &backend, &prepared));
    }
    if wanted("mail_postgres")
        && let Some((admin_url, db)) = rt.block_on(create_pg_database("prepared"))
    {
        let url = with_database(&admin_url, &db);
        let run = || {
            let prepared = rt.block_on(async {
                let storage = Arc::new(
                    PgStorage::connect(&url)
                        .await
                        .unwrap_or_else(|e| panic!("PostgreSQL store at {url}: {e}")),
                );
                let prepared = prepare(storage.clone(), settings.messages, "postgres").await;
                // This machine's server runs without autovacuum: give the planner the
                // statistics autovacuum would have (the copies inherit them).
                sqlx::query("VACUUM (ANALYZE)")
                    .execute(storage.pool())
                    .await
                    .unwrap_or_else(|e| panic!("VACUUM ANALYZE of {url}: {e}"));
                storage.pool().close().await;
                prepared
            });
            let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
            let backend = Backend::Postgres {
                admin_url: admin_url.clone(),
                prepared: db.clone(),
                dir: logs.path().to_path_buf(),
            };
            run_backend(&rt, &settings, &server_bin, &sink, &backend, &prepared)
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
        print_tables(&settings, &results);
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    messages: usize,
    rounds: usize,
    /// The ACK modes of the SMTP server to measure in.
    acks: Vec<Ack>,
    quiet_load: Option<f64>,
}

impl Settings {
    fn from_env() -> Self {
        let messages = env_or("PORTAL_BENCH_MAIL_MESSAGES", 10_000usize);
        assert!(
            messages >= CONTACTS_PER_PORTAL && messages.is_multiple_of(CONTACTS_PER_PORTAL),
            "PORTAL_BENCH_MAIL_MESSAGES must be a multiple of {CONTACTS_PER_PORTAL}"
        );
        Self {
            messages,
            rounds: env_or("PORTAL_BENCH_MAIL_ROUNDS", 3usize).max(1),
            acks: match std::env::var("PORTAL_BENCH_MAIL_ACK").as_deref().map(str::trim) {
                Err(_) | Ok("" | "both") => vec![Ack::Delayed, Ack::Quick],
                Ok("delayed") => vec![Ack::Delayed],
                Ok("quick") => vec![Ack::Quick],
                Ok(other) => panic!("PORTAL_BENCH_MAIL_ACK={other:?}: use `both`, `delayed` or `quick`"),
            },
            quiet_load: std::env::var("PORTAL_BENCH_MAIL_QUIET_LOAD").ok().map(|v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{v:?} is not a load average"))
            }),
        }
    }
}

/// The server binary, with a warning when it is older than the sources it is built from.
fn server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PORTAL_SERVER_BIN").map_or_else(
        || {
            // This executable is target/release/deps/mail-<hash>.
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent()?.parent().map(|d| d.join("portal-server")))
                .unwrap_or_else(|| PathBuf::from("target/release/portal-server"))
        },
        PathBuf::from,
    );
    if !path.is_file() {
        eprintln!(
            "\n*** SKIPPING the mail benchmark: no server binary at {} ; build it first with \
             `cargo build --release -p portal-server` (or set PORTAL_SERVER_BIN) ***\n",
            path.display()
        );
        return None;
    }
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = [
        "server-example",
        "core",
        "storage-sqlite",
        "storage-postgres",
        "adapters-mail",
    ]
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
    eprintln!("[portal-benches] mail: server binary {}", path.display());
    Some(path)
}

// ---------------------------------------------------------------------------------------------
// The SMTP server

/// What the server keeps of one message.
#[derive(Debug, Clone)]
struct Record {
    /// Without the angle brackets.
    message_id: String,
    idempotency_key: String,
    to: Vec<String>,
}

#[derive(Default)]
struct SinkState {
    records: Mutex<Vec<Record>>,
    first_at: Mutex<Option<Instant>>,
    count: AtomicU64,
    bytes: AtomicU64,
    /// ACK every segment at once (`TCP_QUICKACK` before each read) instead of the kernel's
    /// delayed ACK.
    quick_ack: AtomicBool,
}

struct Capture {
    state: Arc<SinkState>,
    to: Vec<String>,
    data: Vec<u8>,
}

/// The value of header `name` (case-insensitive) in the head of the message `text`, unfolded
/// lines only (lettre folds neither of the two headers read here).
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().take_while(|l| !l.is_empty()).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

impl mailin::Handler for Capture {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> mailin::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin::Response {
        let head = String::from_utf8_lossy(&self.data);
        let head = head.as_ref();
        let record = Record {
            message_id: header(head, "Message-ID")
                .unwrap_or("")
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned(),
            idempotency_key: header(head, "X-Portal-Idempotency-Key").unwrap_or("").to_owned(),
            to: std::mem::take(&mut self.to),
        };
        self.state.bytes.fetch_add(self.data.len() as u64, Ordering::Relaxed);
        self.data.clear();
        let mut records = self.state.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.is_empty() {
            *self.state.first_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        records.push(record);
        self.state.count.fetch_add(1, Ordering::Relaxed);
        mailin::response::OK
    }
}

/// The reading half of a connection: with quick ACKs on, `TCP_QUICKACK` is set before every
/// read (the kernel leaves quick-ACK mode again by itself).
struct Reading {
    stream: TcpStream,
    state: Arc<SinkState>,
}

impl Read for Reading {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.state.quick_ack.load(Ordering::Relaxed) {
            quick_ack(&self.stream);
        }
        self.stream.read(buf)
    }
}

#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    use std::os::linux::net::TcpStreamExt as _;
    let _ = stream.set_quickack(true);
}

/// Elsewhere the quick-ACK rounds measure the same as the others.
#[cfg(not(target_os = "linux"))]
fn quick_ack(_: &TcpStream) {}

/// One SMTP session, as `mailin-embedded` runs it (`running.rs`): a line at a time through
/// `mailin`'s session, each answer written in one flush.
fn serve_connection(stream: TcpStream, builder: &mailin::SessionBuilder, state: Arc<SinkState>) {
    let remote = stream.peer_addr().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let Ok(write_half) = stream.try_clone() else { return };
    let mut writer = BufWriter::new(write_half);
    let mut reader = BufReader::new(Reading {
        stream,
        state: state.clone(),
    });
    let mut session = builder.build(
        remote,
        Capture {
            state,
            to: Vec::new(),
            data: Vec::new(),
        },
    );
    let answer = |writer: &mut BufWriter<TcpStream>, r: &mailin::Response| {
        r.write_to(writer).and_then(|()| writer.flush()).is_ok()
    };
    if !answer(&mut writer, &session.greeting()) {
        return;
    }
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let r = session.process(&line);
        match r.action {
            mailin::Action::NoReply => {}
            mailin::Action::Reply => {
                if !answer(&mut writer, &r) {
                    return;
                }
            }
            mailin::Action::Close | mailin::Action::UpgradeTls => {
                answer(&mut writer, &r);
                return;
            }
        }
    }
}

/// The SMTP server: its port and what it received since the last [`Sink::take`]. A thread per
/// connection (a lettre pool parks its idle connections on the server, so a fixed pool of
/// threads could leave new connections waiting); they live until the benchmark ends.
struct Sink {
    port: u16,
    state: Arc<SinkState>,
}

/// What the server received during one run.
struct Received {
    records: Vec<Record>,
    first_at: Option<Instant>,
    bytes: u64,
}

impl Sink {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind a free port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("an address: {e}"))
            .port();
        let state = Arc::new(SinkState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            let builder = Arc::new(mailin::SessionBuilder::new("localhost"));
            for stream in listener.incoming().flatten() {
                let (builder, state) = (builder.clone(), shared.clone());
                std::thread::spawn(move || serve_connection(stream, &builder, state));
            }
        });
        Self { port, state }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    fn count(&self) -> u64 {
        self.state.count.load(Ordering::Relaxed)
    }

    fn set_quick_ack(&self, on: bool) {
        self.state.quick_ack.store(on, Ordering::Relaxed);
    }

    /// Takes what arrived and starts counting afresh.
    fn take(&self) -> Received {
        let mut records = self.state.records.lock().unwrap_or_else(PoisonError::into_inner);
        let first_at = self
            .state
            .first_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.state.count.store(0, Ordering::Relaxed);
        Received {
            records: std::mem::take(&mut *records),
            first_at,
            bytes: self.state.bytes.swap(0, Ordering::Relaxed),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The messages

/// A clock that moves on by a millisecond per reading, from the data set's "now".
struct StepClock(Mutex<DateTime<Utc>>);

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += chrono::Duration::milliseconds(1);
        *t
    }
}

/// The benchmark's master key (fixed, so the floor opens what the engine sealed).
fn master_key_material() -> [u8; 32] {
    *b"portal-benches PERF-9 master key"
}

/// One queued message as the floor sends it, and what the SMTP server must see of it.
struct Expected {
    /// `Message-ID` without brackets.
    message_id: String,
    idempotency_key: String,
    recipient: String,
}

/// The prepared database's messages.
struct Prepared {
    expected: Vec<Expected>,
    /// The same messages rendered, for the floor.
    emails: Vec<OutgoingEmail>,
    queue_time: Duration,
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Queues `messages` invitations through an engine (portals of 50 contacts, activated at
/// once), reads them back and renders them as the worker would.
async fn prepare(storage: Arc<dyn Storage>, messages: usize, label: &str) -> Prepared {
    let started = Instant::now();
    let rng = Mutex::new(StdRng::seed_from_u64(DEFAULT_SEED));
    let entropy = move |buf: &mut [u8]| rng.lock().unwrap_or_else(PoisonError::into_inner).fill_bytes(buf);
    let key = MasterKey::from_material(&master_key_material()).unwrap_or_else(|e| panic!("a master key: {e}"));
    let engine = Engine::new(
        storage.clone(),
        Arc::new(StepClock(Mutex::new(now()))),
        Arc::new(entropy),
        &key,
    );
    let tenant = engine
        .create_tenant(
            name("Mail bench MSP"),
            TenantSettings {
                time_zone: TimeZone::parse("Europe/Amsterdam").unwrap_or_else(|e| panic!("a zone: {e}")),
                ..TenantSettings::default()
            },
            Some(FirstAdmin {
                email: email("admin@mail-bench.example.com"),
                display_name: name("Ada Admin"),
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("a tenant: {e}"));
    let user = storage
        .find_staff_user_by_email(tenant.id, &email("admin@mail-bench.example.com"))
        .await
        .unwrap_or_else(|e| panic!("storage: {e}"))
        .unwrap_or_else(|| panic!("the administrator"));
    let admin = engine
        .staff_principal(tenant.id, user.id)
        .await
        .unwrap_or_else(|e| panic!("storage: {e}"))
        .unwrap_or_else(|| panic!("a principal"));
    let mut template_rng = StdRng::seed_from_u64(DEFAULT_SEED);
    let template = engine
        .create_template(
            &admin,
            &generate::template_input(&mut template_rng, "Standard onboarding", 6, 60),
        )
        .await
        .unwrap_or_else(|e| panic!("a template: {e}"));
    let portals = messages / CONTACTS_PER_PORTAL;
    for p in 0..portals {
        let company = engine
            .create_company(&admin, name(&format!("Client {p:03}")))
            .await
            .unwrap_or_else(|e| panic!("a company: {e}"));
        let contacts = (0..CONTACTS_PER_PORTAL)
            .map(|c| ContactInput {
                name: name(&format!("Contact {c:02} of client {p:03}")),
                email: email(&format!("contact{c:02}@client{p:03}.example.org")),
                role: if c == 0 {
                    ContactRole::PrimaryContact
                } else {
                    ContactRole::It
                },
                primary: c == 0,
            })
            .collect();
        engine
            .start_onboarding(
                &admin,
                company.id,
                template,
                &StartOnboarding {
                    name: name(&format!("Client {p:03} onboarding")),
                    contacts,
                    activate: true,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("portal {p}: {e}"));
        if (p + 1) % 50 == 0 {
            eprintln!(
                "[portal-benches] mail: {label}: {} of {messages} messages queued ({:.1} s)",
                (p + 1) * CONTACTS_PER_PORTAL,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let queue_time = started.elapsed();
    let (expected, emails) = read_back(storage.as_ref(), tenant.id, &key, messages).await;
    eprintln!(
        "[portal-benches] mail: {label}: {} messages queued in {:.1} s, read back and rendered in {:.1} s",
        expected.len(),
        queue_time.as_secs_f64(),
        (started.elapsed() - queue_time).as_secs_f64()
    );
    Prepared {
        expected,
        emails,
        queue_time,
    }
}

/// Every queued message of `tenant`, its token opened and rendered as the server renders it.
async fn read_back(
    storage: &dyn Storage,
    tenant_id: TenantId,
    key: &MasterKey,
    messages: usize,
) -> (Vec<Expected>, Vec<OutgoingEmail>) {
    let tenant = storage
        .get_tenant(tenant_id)
        .await
        .unwrap_or_else(|e| panic!("storage: {e}"))
        .unwrap_or_else(|| panic!("the tenant"));
    let renderer = Renderer::new(
        PUBLIC_URL,
        Mailbox {
            name: None,
            email: email(MAIL_FROM),
        },
    )
    .unwrap_or_else(|e| panic!("a renderer: {e}"));
    let sealing = key.sealing_key(KeyPurpose::Outbox);
    let mut ids = Vec::with_capacity(messages);
    let mut page = PageRequest::first(500);
    loop {
        let batch = storage
            .list_messages(tenant_id, None, page)
            .await
            .unwrap_or_else(|e| panic!("storage: {e}"));
        let Some(last) = batch.last().map(|e| e.id) else { break };
        ids.extend(batch.iter().map(|e| e.id));
        page = PageRequest {
            after: Some(last),
            limit: 500,
        };
    }
    assert_eq!(ids.len(), messages, "every invitation is queued");
    let mut expected = Vec::with_capacity(messages);
    let mut emails = Vec::with_capacity(messages);
    for id in ids {
        let message: OutboundMessage = storage
            .get_message(tenant_id, id)
            .await
            .unwrap_or_else(|e| panic!("storage: {e}"))
            .unwrap_or_else(|| panic!("message {id}"));
        let Some(MessageSecret::Sealed { sealed }) = &message.secret else {
            panic!("message {id} is queued without a sealed token")
        };
        let token = sealing
            .open(sealed, &OutboundMessage::secret_aad(message.tenant_id, message.id))
            .unwrap_or_else(|e| panic!("the token of {id} does not open: {e}"));
        let token = String::from_utf8(token.to_vec()).unwrap_or_else(|e| panic!("a text token: {e}"));
        let rendered = renderer
            .render(&tenant, &message, Some(&token))
            .unwrap_or_else(|e| panic!("rendering {id}: {e}"));
        assert!(rendered.attachments.is_empty(), "invitations have no attachment");
        assert_eq!(rendered.message_id, format!("{id}@{MESSAGE_HOST}"));
        expected.push(Expected {
            message_id: rendered.message_id.clone(),
            idempotency_key: message.idempotency_key(),
            recipient: message.recipient.as_str().to_owned(),
        });
        emails.push(rendered);
    }
    (expected, emails)
}

/// The lettre message of `email`, built as portal-mail's transports build it (`mime.rs`):
/// `multipart/alternative` text and HTML, its `Message-ID`, the idempotency key header, the
/// reply address and the extra headers.
fn lettre_message(email: &OutgoingEmail) -> lettre::Message {
    let mailbox = |m: &Mailbox| {
        lettre::message::Mailbox::new(
            m.name.clone(),
            lettre::Address::from_str(m.email.as_str()).unwrap_or_else(|e| panic!("an address: {e}")),
        )
    };
    let mut builder = lettre::Message::builder()
        .from(mailbox(&email.from))
        .to(mailbox(&email.to))
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}>", email.message_id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Portal-Idempotency-Key"),
            email.idempotency_key.clone(),
        ));
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox(reply_to));
    }
    for (n, v) in &email.headers {
        let n = HeaderName::new_from_ascii(n.clone()).unwrap_or_else(|_| panic!("a header name: {n}"));
        builder = builder.raw_header(HeaderValue::new(n, v.clone()));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(email.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(email.html.clone()),
                ),
        )
        .unwrap_or_else(|e| panic!("a message: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Databases

enum Backend {
    Sqlite {
        prepared: PathBuf,
        dir: PathBuf,
    },
    Postgres {
        admin_url: String,
        prepared: String,
        dir: PathBuf,
    },
}

/// One run's copy of the prepared database.
struct RunDb {
    url: String,
    /// PostgreSQL: the admin URL and the database, dropped when the run is over.
    pg: Option<(String, String)>,
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Self::Sqlite { dir, .. } | Self::Postgres { dir, .. } => dir,
        }
    }

    async fn copy(&self, run: &str) -> RunDb {
        match self {
            Self::Sqlite { prepared, dir } => {
                let path = dir.join(format!("{run}.db"));
                std::fs::copy(prepared, &path).unwrap_or_else(|e| panic!("copying {}: {e}", prepared.display()));
                RunDb {
                    url: format!("sqlite://{}", path.display()),
                    pg: None,
                }
            }
            Self::Postgres {
                admin_url, prepared, ..
            } => {
                let db = format!("portal_bench_mail_{}_{run}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{admin_url}: {e}"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE \"{db}\" TEMPLATE \"{prepared}\""
                )))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("copying {prepared} to {db}: {e}"));
                RunDb {
                    url: with_database(admin_url, &db),
                    pg: Some((admin_url.clone(), db)),
                }
            }
        }
    }
}

impl RunDb {
    fn pg_database(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, db)| db.as_str())
    }

    async fn drop_db(self) {
        if let Some((admin_url, db)) = &self.pg {
            drop_pg_database(admin_url, db).await;
        } else if let Some(path) = self.url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// A connection that counts the outbox's rows by status.
enum Poller {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

#[derive(Debug, Clone, Copy, Default)]
struct StatusCounts {
    queued: u64,
    sending: u64,
    sent: u64,
    failed: u64,
}

const COUNT_SQL: &str = "SELECT status, COUNT(*) FROM outbox_message GROUP BY status";

impl Poller {
    async fn connect(db: &RunDb) -> Self {
        if db.pg.is_some() {
            Self::Pg(
                sqlx::PgConnection::connect(&db.url)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", db.url)),
            )
        } else {
            Self::Sqlite(
                sqlx::SqliteConnection::connect(&db.url)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", db.url)),
            )
        }
    }

    async fn counts(&mut self) -> StatusCounts {
        let rows: Vec<(String, i64)> = match self {
            Self::Sqlite(c) => sqlx::query_as(COUNT_SQL).fetch_all(c).await,
            Self::Pg(c) => sqlx::query_as(COUNT_SQL).fetch_all(c).await,
        }
        .unwrap_or_else(|e| panic!("counting the outbox: {e}"));
        let mut counts = StatusCounts::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match status.as_str() {
                "queued" => counts.queued = n,
                "sending" => counts.sending = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                other => panic!("unknown outbox status {other}"),
            }
        }
        counts
    }

    async fn close(self) {
        let _ = match self {
            Self::Sqlite(c) => c.close().await,
            Self::Pg(c) => c.close().await,
        };
    }
}

/// Creates `portal_bench_mail_<pid>_<suffix>`: the server's URL and the database's name, or
/// `None` (with a notice) when no server answers.
async fn create_pg_database(suffix: &str) -> Option<(String, String)> {
    let db = format!("portal_bench_mail_{}_{suffix}", std::process::id());
    procs::create_pg_database(&db, "mail").await.map(|url| (url, db))
}

async fn drop_pg_database(admin_url: &str, db: &str) {
    if let Err(e) = procs::drop_pg_database(admin_url, db).await {
        eprintln!("[portal-benches] mail: could not drop the benchmark database {db}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The server processes

/// A server process, stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `portal-server serve` on `db`, its environment cleared but for the settings it
    /// needs, its standard error to `<dir>/<name>.log` (or `$PORTAL_BENCH_MAIL_LOGS/<name>.log`).
    fn serve(bin: &Path, db: &RunDb, sink: &Sink, lease_seconds: Option<u32>, dir: &Path, name: &str) -> Self {
        let log = std::env::var_os("PORTAL_BENCH_MAIL_LOGS")
            .map_or_else(|| dir.to_path_buf(), PathBuf::from)
            .join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let key = base64::engine::general_purpose::STANDARD.encode(master_key_material());
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("PORTAL_BIND", free_addr().to_string())
            .env("PORTAL_PUBLIC_URL", PUBLIC_URL)
            .env("PORTAL_MASTER_KEY", key)
            .env("PORTAL_MAIL_URL", sink.url())
            // The scheduler's reminder pass would walk every portal at start and could queue
            // reminders of its own: not what is measured.
            .env("PORTAL_NO_SCHEDULER", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        if let Some(s) = lease_seconds {
            command.env("PORTAL_MAIL_LEASE_SECONDS", s.to_string());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.fail(&format!("exited ({status})"));
        }
    }

    fn fail(&self, what: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "portal-server {what}; the end of its log ({}):\n{}",
            self.log.display(),
            tail.join("\n")
        );
    }

    /// `kill -9`.
    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lines of its log that are warnings or errors.
    fn complaints(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
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

// ---------------------------------------------------------------------------------------------
// CPU

fn own_cpu() -> Duration {
    cpu_time(std::process::id()).unwrap_or_default()
}

/// CPU used during one run.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    /// The server process(es); zero for the floor.
    server: Duration,
    /// The PostgreSQL backends of the run's database.
    database: Duration,
    /// This process: the SMTP server, the poller and (floor) the client.
    bench: Duration,
    /// The rest of the machine.
    others: Duration,
    wall: Duration,
}

impl Cpu {
    fn other_cores(&self) -> f64 {
        self.others.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

fn one_minute_load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Waits (no longer than 20 minutes) until the 1-minute load average is below `max`.
async fn wait_for_quiet(max: Option<f64>) {
    let Some(max) = max else { return };
    let deadline = Instant::now() + Duration::from_secs(20 * 60);
    let mut said = false;
    while one_minute_load() >= max && Instant::now() < deadline {
        if !said {
            eprintln!(
                "[portal-benches] mail: waiting for the 1-minute load average to fall below {max} (now {})",
                load_average()
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if one_minute_load() >= max {
        eprintln!(
            "[portal-benches] mail: the load average stayed at or above {max} for 20 minutes; measuring anyway ({})",
            load_average()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Checking what arrived

/// What the SMTP server received in one run, held against the queued messages.
#[derive(Debug, Clone, Copy, Default)]
struct Delivery {
    received: usize,
    /// Queued messages received at least once.
    distinct: usize,
    /// Copies beyond the first of a message.
    duplicates: usize,
    /// Messages with two copies or more.
    duplicated_messages: usize,
    /// Every copy of every message carried its `Message-ID`, its idempotency key and went to its
    /// recipient, and nothing else arrived.
    consistent: bool,
    bytes_per_message: f64,
}

fn check(received: &Received, expected: &[Expected]) -> Delivery {
    let by_id: HashMap<&str, &Expected> = expected.iter().map(|e| (e.message_id.as_str(), e)).collect();
    let mut copies: HashMap<&str, usize> = HashMap::new();
    let mut consistent = true;
    for r in &received.records {
        match by_id.get(r.message_id.as_str()) {
            Some(e) => {
                if r.idempotency_key != e.idempotency_key || r.to.len() != 1 || r.to[0] != e.recipient {
                    consistent = false;
                }
                *copies.entry(e.message_id.as_str()).or_default() += 1;
            }
            None => consistent = false,
        }
    }
    Delivery {
        received: received.records.len(),
        distinct: copies.len(),
        duplicates: copies.values().map(|n| n - 1).sum(),
        duplicated_messages: copies.values().filter(|n| **n > 1).count(),
        consistent,
        bytes_per_message: received.bytes as f64 / received.records.len().max(1) as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// The runs

/// One run of the floor or of the worker.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// From the first message received (floor: from the first send) to all sent.
    elapsed: Duration,
    /// From the process's start to all sent (worker only).
    from_start: Option<Duration>,
    delivery: Delivery,
    cpu: Cpu,
}

impl Run {
    fn throughput(&self, messages: usize) -> f64 {
        messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// The floor: the prepared messages sent by a bare lettre client.
async fn floor_run(sink: &Sink, prepared: &Prepared) -> Run {
    let options = TransportOptions::default();
    let concurrency = WorkerSettings::default().concurrency;
    // As portal-mail's `SmtpTransport::from_url` builds a `smtp://127.0.0.1:PORT?tls=none`
    // transport.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port)
        .timeout(Some(options.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(options.smtp_pool_size.max(1))
                .idle_timeout(Duration::from_secs(60)),
        )
        .build();
    let messages: Vec<lettre::Message> = prepared.emails.iter().map(lettre_message).collect();
    let _ = sink.take();
    let (cpu0, machine0) = (own_cpu(), machine_busy());
    let started = Instant::now();
    let failures = futures_util::stream::iter(messages)
        .map(|m| transport.send(m))
        .buffer_unordered(concurrency)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    let elapsed = started.elapsed();
    let bench = own_cpu().saturating_sub(cpu0);
    let others = machine_busy().saturating_sub(machine0).saturating_sub(bench);
    assert_eq!(failures, 0, "the floor's sends failed");
    let received = sink.take();
    let delivery = check(&received, &prepared.expected);
    assert!(
        delivery.consistent && delivery.distinct == prepared.expected.len() && delivery.duplicates == 0,
        "the floor delivered {delivery:?}"
    );
    Run {
        elapsed,
        from_start: None,
        delivery,
        cpu: Cpu {
            server: Duration::ZERO,
            database: Duration::ZERO,
            bench,
            others,
            wall: elapsed,
        },
    }
}

/// What the crash run saw around the kill.
#[derive(Debug, Clone, Copy)]
struct Crash {
    /// Messages the SMTP server had received when the server was killed.
    received_at_kill: u64,
    /// The outbox right after the kill.
    at_kill: StatusCounts,
    /// From the kill to all sent (includes the lease of the messages in flight).
    kill_to_all_sent: Duration,
}

/// The worker: `processes` servers on a fresh copy, until every message is `sent`; with
/// `crash`, the server is killed (SIGKILL) when half the messages have arrived and restarted.
async fn worker_run(
    bin: &Path,
    sink: &Sink,
    backend: &Backend,
    prepared: &Prepared,
    name: &str,
    processes: usize,
    crash: bool,
) -> (Run, Option<Crash>) {
    let n = prepared.expected.len() as u64;
    let db = backend.copy(name).await;
    let mut poller = Poller::connect(&db).await;
    let before = poller.counts().await;
    assert_eq!(before.queued, n, "the copy starts with every message queued");
    let _ = sink.take();
    let lease = crash.then_some(CRASH_LEASE_SECONDS);
    let (cpu0, machine0, db0) = (
        own_cpu(),
        machine_busy(),
        db.pg_database().map_or(Duration::ZERO, pg_backends_cpu),
    );
    let started = Instant::now();
    let mut servers: Vec<Process> = (0..processes)
        .map(|i| Process::serve(bin, &db, sink, lease, backend.dir(), &format!("{name}-{i}")))
        .collect();
    let mut killed_cpu = Duration::ZERO;
    let mut crash_seen: Option<(u64, StatusCounts, Instant)> = None;
    let deadline = started + Duration::from_secs(15 * 60);
    let done_at = loop {
        tokio::time::sleep(POLL).await;
        for s in &mut servers {
            s.check_alive();
        }
        if crash && crash_seen.is_none() && sink.count() >= n / 2 {
            let victim = servers.remove(0);
            killed_cpu += cpu_time(victim.pid()).unwrap_or_default();
            victim.kill9();
            let killed_at = Instant::now();
            let received_at_kill = sink.count();
            let at_kill = poller.counts().await;
            eprintln!(
                "[portal-benches] mail: {name}: killed (SIGKILL) with {received_at_kill} messages received; outbox: {at_kill:?}"
            );
            crash_seen = Some((received_at_kill, at_kill, killed_at));
            servers.push(Process::serve(
                bin,
                &db,
                sink,
                lease,
                backend.dir(),
                &format!("{name}-restarted"),
            ));
            continue;
        }
        let counts = poller.counts().await;
        if counts.sent == n {
            break Instant::now();
        }
        assert!(counts.failed == 0, "{name}: messages failed: {counts:?}");
        assert!(
            Instant::now() < deadline,
            "{name}: not delivered after 15 minutes: {counts:?}"
        );
    };
    let server_cpu = killed_cpu
        + servers
            .iter()
            .map(|s| cpu_time(s.pid()).unwrap_or_default())
            .sum::<Duration>();
    let database = db
        .pg_database()
        .map_or(Duration::ZERO, pg_backends_cpu)
        .saturating_sub(db0);
    let bench = own_cpu().saturating_sub(cpu0);
    let machine = machine_busy().saturating_sub(machine0);
    let wall = started.elapsed();
    let complaints: Vec<String> = servers.iter().flat_map(Process::complaints).collect();
    if !complaints.is_empty() {
        eprintln!(
            "[portal-benches] mail: {name}: {} warnings or errors in the server's log, e.g. {}",
            complaints.len(),
            complaints[0]
        );
    }
    drop(servers);
    poller.close().await;
    db.drop_db().await;
    let received = sink.take();
    let delivery = check(&received, &prepared.expected);
    let first = received
        .first_at
        .unwrap_or_else(|| panic!("{name}: nothing was received"));
    let run = Run {
        elapsed: done_at - first,
        from_start: Some(done_at - started),
        delivery,
        cpu: Cpu {
            server: server_cpu,
            database,
            bench,
            others: machine.saturating_sub(server_cpu + database + bench),
            wall,
        },
    };
    let crash = crash_seen.map(|(received_at_kill, at_kill, killed_at)| Crash {
        received_at_kill,
        at_kill,
        kill_to_all_sent: done_at - killed_at,
    });
    (run, crash)
}

/// How the SMTP server's kernel acknowledges what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// The kernel's delayed ACK, as for any SMTP server.
    Delayed,
    /// `TCP_QUICKACK` before every read: no sender waits for a delayed ACK.
    Quick,
}

impl Ack {
    fn label(self) -> &'static str {
        match self {
            Self::Delayed => "delayed ACK (kernel default)",
            Self::Quick => "quick ACK (TCP_QUICKACK)",
        }
    }
}

/// The rounds of one ACK mode.
struct Series {
    ack: Ack,
    floor: Vec<Run>,
    worker: Vec<Run>,
    /// PostgreSQL: two server processes on one copy.
    two: Vec<Run>,
}

/// Everything measured on one backend.
struct BackendResult {
    backend: &'static str,
    messages: usize,
    queue_time: Duration,
    series: Vec<Series>,
    crash_ack: Ack,
    crash_run: Run,
    crash: Crash,
    load_before: String,
    load_after: String,
}

fn run_backend(
    rt: &tokio::runtime::Runtime,
    settings: &Settings,
    bin: &Path,
    sink: &Sink,
    backend: &Backend,
    prepared: &Prepared,
) -> BackendResult {
    rt.block_on(async {
        let load_before = load_average();
        let n = prepared.expected.len();
        let label = backend.name();
        let say = |what: &str, run: &Run| {
            eprintln!(
                "[portal-benches] mail: {label} {what}: {:.0} messages/s ({:.2} s{}), received {} ({} duplicates), \
                 CPU/message: server {:.0} µs, database {:.0} µs, this process {:.0} µs; others {:.2} cores; load {}",
                run.throughput(n),
                run.elapsed.as_secs_f64(),
                run.from_start.map_or_else(String::new, |d| format!(
                    ", {:.2} s from the process's start",
                    d.as_secs_f64()
                )),
                run.delivery.received,
                run.delivery.duplicates,
                per_message_us(run.cpu.server, n),
                per_message_us(run.cpu.database, n),
                per_message_us(run.cpu.bench, n),
                run.cpu.other_cores(),
                load_average(),
            );
        };
        let exactly_once = |who: &str, r: &Run| {
            assert!(
                r.delivery.consistent && r.delivery.distinct == n && r.delivery.duplicates == 0,
                "{label}: {who} delivered {:?}",
                r.delivery
            );
        };
        let mut series = Vec::new();
        for &ack in &settings.acks {
            wait_for_quiet(settings.quiet_load).await;
            sink.set_quick_ack(ack == Ack::Quick);
            let mode = match ack {
                Ack::Delayed => "delayed",
                Ack::Quick => "quick",
            };
            let (mut floor, mut worker, mut two) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..settings.rounds {
                let floor_first = round % 2 == 0;
                if floor_first {
                    let r = floor_run(sink, prepared).await;
                    say(&format!("{mode} ACK round {} floor", round + 1), &r);
                    floor.push(r);
                }
                let name = format!("{mode}-r{round}-worker");
                let (r, _) = worker_run(bin, sink, backend, prepared, &name, 1, false).await;
                say(&format!("{mode} ACK round {} portal-server", round + 1), &r);
                exactly_once("the worker", &r);
                worker.push(r);
                if matches!(backend, Backend::Postgres { .. }) {
                    let name = format!("{mode}-r{round}-two");
                    let (r, _) = worker_run(bin, sink, backend, prepared, &name, 2, false).await;
                    say(&format!("{mode} ACK round {} two portal-servers", round + 1), &r);
                    exactly_once("two processes", &r);
                    two.push(r);
                }
                if !floor_first {
                    let r = floor_run(sink, prepared).await;
                    say(&format!("{mode} ACK round {} floor", round + 1), &r);
                    floor.push(r);
                }
            }
            series.push(Series {
                ack,
                floor,
                worker,
                two,
            });
        }
        let crash_ack = if settings.acks.contains(&Ack::Delayed) {
            Ack::Delayed
        } else {
            Ack::Quick
        };
        sink.set_quick_ack(crash_ack == Ack::Quick);
        let (crash_run, crash) = worker_run(bin, sink, backend, prepared, "crash", 1, true).await;
        let crash = crash.unwrap_or_else(|| panic!("the crash run killed nothing"));
        say("crash run", &crash_run);
        assert!(
            crash_run.delivery.consistent && crash_run.delivery.distinct == n,
            "{label}: after the kill and the restart: {:?}",
            crash_run.delivery
        );
        BackendResult {
            backend: label,
            messages: n,
            queue_time: prepared.queue_time,
            series,
            crash_ack,
            crash_run,
            crash,
            load_before,
            load_after: load_average(),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The tables

fn per_message_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn verdict(pass: bool) -> &'static str {
    if pass { "**pass**" } else { "**FAIL**" }
}

/// `median (r1 / r2 / r3)` of the runs' throughputs.
fn throughputs(runs: &[Run], n: usize) -> (f64, String) {
    let t: Vec<f64> = runs.iter().map(|r| r.throughput(n)).collect();
    let each: Vec<String> = t.iter().map(|x| format!("{x:.0}")).collect();
    (median(t), each.join(" / "))
}

fn cpu_line(runs: &[Run], n: usize) -> String {
    let sum = |f: fn(&Cpu) -> Duration| runs.iter().map(|r| f(&r.cpu)).sum::<Duration>();
    let count = n * runs.len();
    let db = sum(|c| c.database);
    let server = sum(|c| c.server);
    let head = if server.is_zero() {
        "—".to_owned()
    } else if db.is_zero() {
        format!("{:.0} µs", per_message_us(server, count))
    } else {
        format!(
            "{:.0} µs (+ {:.0} µs)",
            per_message_us(server, count),
            per_message_us(db, count)
        )
    };
    let others = runs.iter().map(|r| r.cpu.other_cores()).fold(0.0, f64::max);
    format!(
        "{head} | {:.0} µs | {others:.2}",
        per_message_us(sum(|c| c.bench), count)
    )
}

fn print_tables(settings: &Settings, results: &[BackendResult]) {
    println!();
    println!(
        "PERF-9 mail outbox — {}; {} messages, {} rounds",
        portal_benches::stats::context_line(),
        settings.messages,
        settings.rounds
    );
    println!();
    println!(
        "| backend | SMTP server's ACKs | side | messages/s, median (rounds) | time, median | from process start, median | CPU/message: process (+ database) | CPU/message: bench process | other cores, max | received / duplicates | bytes/message |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let n = r.messages;
        for series in &r.series {
            let mut sides: Vec<(&str, &[Run])> = vec![
                ("floor (bare lettre)", &series.floor),
                ("portal-server", &series.worker),
            ];
            if !series.two.is_empty() {
                sides.push(("two portal-servers", &series.two));
            }
            for (side, runs) in sides {
                let (median_tp, each) = throughputs(runs, n);
                let time = median(runs.iter().map(|x| x.elapsed.as_secs_f64()).collect());
                let from_start = runs
                    .iter()
                    .filter_map(|x| x.from_start)
                    .map(|d| d.as_secs_f64())
                    .collect::<Vec<_>>();
                let from_start = if from_start.is_empty() {
                    "—".to_owned()
                } else {
                    format!("{:.2} s", median(from_start))
                };
                let received: usize = runs.iter().map(|x| x.delivery.received).sum();
                let duplicates: usize = runs.iter().map(|x| x.delivery.duplicates).sum();
                let bytes = runs.iter().map(|x| x.delivery.bytes_per_message).sum::<f64>() / runs.len() as f64;
                println!(
                    "| {} | {} | {side} | **{median_tp:.0}** ({each}) | {time:.2} s | {from_start} | {} | {received} / {duplicates} | {bytes:.0} |",
                    r.backend,
                    series.ack.label(),
                    cpu_line(runs, n)
                );
            }
        }
    }
    println!();
    println!(
        "| backend | SMTP server's ACKs | worker / floor, medians (per round) | target ≥ 50 % | two processes / one (orientation) |"
    );
    println!("|---|---|---|---|---|");
    for r in results {
        let n = r.messages;
        for series in &r.series {
            let (floor, _) = throughputs(&series.floor, n);
            let (worker, _) = throughputs(&series.worker, n);
            let per_round: Vec<String> = series
                .worker
                .iter()
                .zip(&series.floor)
                .map(|(w, f)| format!("{:.0} %", 100.0 * w.throughput(n) / f.throughput(n)))
                .collect();
            let share = worker / floor;
            let two = if series.two.is_empty() {
                "—".to_owned()
            } else {
                format!("{:.2}×", throughputs(&series.two, n).0 / worker)
            };
            println!(
                "| {} | {} | **{:.1} %** ({}) | {} | {two} |",
                r.backend,
                series.ack.label(),
                100.0 * share,
                per_round.join(", "),
                verdict(share >= TARGET_SHARE),
            );
        }
    }
    println!();
    println!(
        "| backend | SMTP server's ACKs | killed after | outbox at the kill (queued / sending / sent) | kill to all sent | received | distinct of {} | duplicates (messages) | every copy: same Message-ID, key, recipient | result |",
        settings.messages
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let c = &r.crash;
        let d = &r.crash_run.delivery;
        let pass = d.consistent && d.distinct == r.messages;
        println!(
            "| {} | {} | {} received | {} / {} / {} | {:.2} s (lease {CRASH_LEASE_SECONDS} s) | {} | {} | {} ({}) | {} | {} |",
            r.backend,
            r.crash_ack.label(),
            c.received_at_kill,
            c.at_kill.queued,
            c.at_kill.sending,
            c.at_kill.sent,
            c.kill_to_all_sent.as_secs_f64(),
            d.received,
            d.distinct,
            d.duplicates,
            d.duplicated_messages,
            if d.consistent { "yes" } else { "**no**" },
            verdict(pass)
        );
    }
    println!();
    for r in results {
        println!(
            "{}: {} messages queued in {:.1} s; load average before {}, after {}",
            r.backend,
            r.messages,
            r.queue_time.as_secs_f64(),
            r.load_before,
            r.load_after
        );
    }
}
