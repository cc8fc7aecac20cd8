//! PERF-4: starting a portal from a 20-phase / 500-task template in one transaction.
//!
//! The measured path is the whole `Engine::start_onboarding`: reading the tenant, the company
//! and the template (whole: phases, tasks, checklists, surveys, dependencies), authorising, the
//! pure command copying the template, and the commit of the portal with its 20 phases, 500
//! tasks, their dependencies, checklist items and survey questions, 2 contacts and 3 activity
//! events, in one transaction. Targets: SQLite ≤ 30 ms, PostgreSQL ≤ 60 ms, and ≤ 3× the floor.
//!
//! The floor, measured in the same run through the same pool: the same rows (built beforehand,
//! outside the timing) written by hand-written multi-row `INSERT ... VALUES` statements, one per
//! table, in one transaction, with no domain code and no read.
//!
//! Backends: SQLite on a temporary file, and PostgreSQL on a fresh database of the server named
//! by `PORTAL_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped at the
//! end; the PostgreSQL benchmarks are skipped with a notice when no server answers. Each store
//! first gets the generated data set (`PORTAL_BENCH_SIZE`, `small` by default) so its indexes
//! are not empty, then the PERF-4 template. Between samples, outside the timing, the portals
//! just written are deleted again (and on PostgreSQL their tables vacuumed), so that every
//! sample writes into a store that holds the data set rather than the data set plus every
//! portal of the samples before it.
//!
//! After divan's table a percentile report (median and p99 over interleaved samples of the
//! engine path and the floor) is printed on standard error; see `portal_benches::stats`.
//!
//! Run: `cargo bench -p portal-benches --bench storage`.

use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use divan::Bencher;
use portal_benches::generate::{DataSet, perf4_template};
use portal_benches::load::load;
use portal_benches::stats::{self, Summary};
use portal_benches::{DEFAULT_SEED, Size, now};
use portal_core::activity::ActivityEvent;
use portal_core::commands::Ctx;
use portal_core::commands::portal::{StartOnboarding, start_onboarding};
use portal_core::company::Company;
use portal_core::outcome::Write;
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole, PortalState};
use portal_core::service::Engine;
use portal_core::storage::{Clock, Entropy, Storage};
use portal_core::template::Template;
use portal_core::tenant::Tenant;
use portal_core::value::{Email, Name};
use portal_storage_postgres::PgStorage;
use portal_storage_sqlite::SqliteStorage;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sqlx::{Connection, PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};

/// Samples of each benchmark in divan's run and in the percentile report.
const SAMPLES: u32 = 100;

/// One runtime for every store: a pool's connections belong to the runtime that opened them.
static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a tokio runtime: {e}"))
});

static SQLITE: OnceLock<Fixture> = OnceLock::new();
static POSTGRES: OnceLock<Option<Fixture>> = OnceLock::new();
/// The SQLite file's directory, removed at the end.
static SQLITE_DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);
/// The PostgreSQL server's URL and the database made for this run, dropped at the end.
static PG_DATABASE: Mutex<Option<(String, String)>> = Mutex::new(None);

/// How a floor writes its rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// `INSERT ... VALUES (...), (...), ...` with one bind per value, per table.
    Values,
    /// PostgreSQL only: `INSERT ... SELECT FROM UNNEST($1::uuid[], ...)` with one array per
    /// column, per table: the fastest way to send many rows through sqlx.
    Unnest,
}

impl Floor {
    const fn bench_name(self) -> &'static str {
        match self {
            Self::Values => "floor_multi_row_insert",
            Self::Unnest => "floor_unnest_insert",
        }
    }
}

/// The pool the floor writes through: the store's own.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A clock that moves on by a second at each reading, from [`now`]. A clock that stood still
/// would give every portal's ids the same UUIDv7 millisecond, so the ids of successive portals
/// would interleave all over the indexes instead of landing at their right edge as they do in
/// production, where time moves on: a cost no real deployment pays.
struct StepClock(Mutex<chrono::DateTime<chrono::Utc>>);

impl Clock for StepClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += chrono::Duration::seconds(1);
        *t
    }
}

/// A store holding the data set and the PERF-4 template, with what it takes to start portals.
struct Fixture {
    backend: &'static str,
    data: DataSet,
    engine: Engine,
    clock: Arc<StepClock>,
    pool: Pool,
    admin: Principal,
    tenant: Tenant,
    company: Company,
    template: Template,
    request: StartOnboarding,
    /// Entropy of the floor's rows (the engine has its own).
    rng: Mutex<StdRng>,
    /// Portals written by the measured code and not yet deleted (see [`Fixture::settle`]).
    pending: Mutex<Vec<uuid::Uuid>>,
}

fn size() -> Size {
    Size::from_env().unwrap_or_else(|e| panic!("{e}"))
}

fn contacts() -> Vec<ContactInput> {
    let parse = |n: &str, e: &str| {
        (
            Name::parse(n).unwrap_or_else(|err| panic!("{err}")),
            Email::parse(e).unwrap_or_else(|err| panic!("{err}")),
        )
    };
    let (n1, e1) = parse("Pat Primary", "pat@perf4-client.example.org");
    let (n2, e2) = parse("Ian IT", "ian@perf4-client.example.org");
    vec![
        ContactInput {
            name: n1,
            email: e1,
            role: ContactRole::PrimaryContact,
            primary: true,
        },
        ContactInput {
            name: n2,
            email: e2,
            role: ContactRole::It,
            primary: false,
        },
    ]
}

impl Fixture {
    /// Loads the data set into `storage`, runs `after_load`, creates the PERF-4 template and
    /// warms up.
    fn new(backend: &'static str, storage: Arc<dyn Storage>, pool: Pool, after_load: impl FnOnce()) -> Self {
        let size = size();
        let data = RT
            .block_on(load(storage.as_ref(), size, DEFAULT_SEED, backend))
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        after_load();
        let t0 = &data.tenants[0];
        let rng = Mutex::new(StdRng::seed_from_u64(DEFAULT_SEED ^ 0x4534));
        let engine_rng = Mutex::new(StdRng::seed_from_u64(DEFAULT_SEED ^ 0x4535));
        let entropy: Arc<dyn Entropy> = Arc::new(move |buf: &mut [u8]| {
            engine_rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .fill_bytes(buf);
        });
        let clock = Arc::new(StepClock(Mutex::new(now())));
        let key = portal_core::crypto::MasterKey::from_material(&[7; 32]).expect("a 32-byte key");
        let engine = Engine::new(storage, Arc::clone(&clock) as Arc<dyn Clock>, entropy, &key);
        let admin = t0.admin.clone();
        let template = RT.block_on(async {
            let id = engine.create_template(&admin, &perf4_template(DEFAULT_SEED)).await?;
            engine.get_template(&admin, id).await
        });
        let template = template.unwrap_or_else(|e| panic!("{backend}: the PERF-4 template: {e}"));
        let fixture = Self {
            backend,
            engine,
            clock,
            pool,
            admin,
            tenant: t0.tenant.clone(),
            company: t0.companies[0].clone(),
            template,
            request: StartOnboarding {
                name: Name::parse("PERF-4 portal").unwrap_or_else(|e| panic!("{e}")),
                contacts: contacts(),
                activate: false,
            },
            rng,
            data,
            pending: Mutex::new(Vec::new()),
        };
        // Warm-up: statement caches, page cache, the pool's connections.
        for _ in 0..5 {
            fixture.start();
            for &kind in fixture.floors() {
                let (state, events) = fixture.rows();
                fixture.floor(kind, &state, &events);
            }
            fixture.settle();
        }
        eprintln!(
            "[portal-benches] {backend}: ready: `{size}` data set ({}), PERF-4 template of {} phases / {} tasks",
            fixture.data.counts,
            fixture.template.phases.len(),
            fixture.template.tasks().count()
        );
        fixture
    }

    /// The measured path: `Engine::start_onboarding`, whole.
    fn start(&self) {
        let id = RT
            .block_on(
                self.engine
                    .start_onboarding(&self.admin, self.company.id, self.template.id, &self.request),
            )
            .unwrap_or_else(|e| panic!("{}: start_onboarding: {e}", self.backend));
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id.as_uuid());
    }

    /// Deletes the portals written since the last call (with their phases, tasks and children,
    /// by the schema's cascades) and, on PostgreSQL, vacuums their tables: run between samples,
    /// outside the timing, so every sample writes into a store holding the data set and not
    /// the hundreds of 500-task portals of the samples before it (a store growing a hundredfold
    /// during the run would measure its own growth: PostgreSQL's 128 MB of shared buffers
    /// overflow within a few hundred portals). Their 3 activity events each stay.
    fn settle(&self) {
        let ids = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if ids.is_empty() {
            return;
        }
        let tenant = self.tenant.id.as_uuid();
        let r = match &self.pool {
            Pool::Sqlite(pool) => RT.block_on(async {
                let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM portal WHERE tenant_id = ");
                qb.push_bind(tenant).push(" AND id IN ");
                qb.push_tuples(&ids, |mut b, id| {
                    b.push_bind(*id);
                });
                qb.build().execute(pool).await.map(drop)
            }),
            Pool::Postgres(pool) => RT.block_on(async {
                sqlx::query("DELETE FROM portal WHERE tenant_id = $1 AND id = ANY($2)")
                    .bind(tenant)
                    .bind(&ids)
                    .execute(pool)
                    .await?;
                sqlx::query(
                    "VACUUM portal, portal_phase, task, task_dependency, task_checklist_item, \
                     task_survey_question, contact",
                )
                .execute(pool)
                .await
                .map(drop)
            }),
        };
        r.unwrap_or_else(|e| panic!("{}: deleting the benchmark's portals: {e}", self.backend));
    }

    /// The rows the engine writes for one portal, with fresh ids: what the floor inserts.
    fn rows(&self) -> (PortalState, Vec<ActivityEvent>) {
        let seed = self.rng.lock().unwrap_or_else(PoisonError::into_inner).random();
        let mut ctx = Ctx::new(self.clock.now(), seed);
        let (_, outcome) = start_onboarding(
            &self.admin,
            &mut ctx,
            &self.tenant,
            &self.company,
            &self.template,
            &self.request,
            &portal_core::auth::SecretToken::from_bytes([7; 32]),
        )
        .unwrap_or_else(|e| panic!("start_onboarding: {e}"));
        let state = outcome
            .writes
            .into_iter()
            .find_map(|w| match w {
                Write::InsertPortal(s) => Some(*s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("start_onboarding writes a portal"));
        (state, outcome.events)
    }

    /// The floors this backend has.
    const fn floors(&self) -> &'static [Floor] {
        match self.pool {
            Pool::Sqlite(_) => &[Floor::Values],
            Pool::Postgres(_) => &[Floor::Values, Floor::Unnest],
        }
    }

    /// A floor: the same rows by hand-written multi-row INSERTs in one transaction.
    fn floor(&self, kind: Floor, state: &PortalState, events: &[ActivityEvent]) {
        let r = match (&self.pool, kind) {
            (Pool::Sqlite(pool), _) => RT.block_on(sqlite_floor(pool, state, events)),
            (Pool::Postgres(pool), Floor::Values) => RT.block_on(pg_floor(pool, state, events)),
            (Pool::Postgres(pool), Floor::Unnest) => RT.block_on(pg_floor_unnest(pool, state, events)),
        };
        r.unwrap_or_else(|e| panic!("{}: the floor's insert: {e}", self.backend));
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(state.portal.id.as_uuid());
    }
}

// ---------------------------------------------------------------------------------------------
// The floors

/// Most bind variables of one SQLite statement (`SQLITE_MAX_VARIABLE_NUMBER` since 3.32).
const SQLITE_MAX_VARIABLES: usize = 32_766;
/// Most bind parameters of one PostgreSQL statement.
const PG_MAX_PARAMETERS: usize = 65_535;

/// Rows of one multi-row statement that stay within `max` variables.
const fn rows_per_statement(max: usize, columns: usize) -> usize {
    let n = max / columns;
    if n == 0 { 1 } else { n }
}

/// Every checklist item, survey question and dependency of the portal with its task.
struct Children<'a> {
    deps: Vec<(&'a portal_core::task::Task, portal_core::id::TaskId)>,
    items: Vec<(&'a portal_core::task::Task, usize)>,
    questions: Vec<(&'a portal_core::task::Task, usize)>,
}

fn children(state: &PortalState) -> Children<'_> {
    let tasks = &state.tasks;
    Children {
        deps: tasks
            .iter()
            .flat_map(|t| t.depends_on.iter().map(move |d| (t, *d)))
            .collect(),
        items: tasks
            .iter()
            .flat_map(|t| (0..t.checklist.len()).map(move |i| (t, i)))
            .collect(),
        questions: tasks
            .iter()
            .flat_map(|t| (0..t.survey.len()).map(move |i| (t, i)))
            .collect(),
    }
}

fn position(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

async fn sqlite_floor(pool: &SqlitePool, s: &PortalState, events: &[ActivityEvent]) -> Result<(), sqlx::Error> {
    /// One multi-row INSERT per chunk of rows.
    async fn insert<T>(
        conn: &mut sqlx::SqliteConnection,
        head: &str,
        columns: usize,
        rows: &[T],
        mut push: impl FnMut(&mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>, &T),
    ) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(rows_per_statement(SQLITE_MAX_VARIABLES, columns)) {
            let mut qb = QueryBuilder::<Sqlite>::new(head);
            qb.push_values(chunk, |mut sep, row| push(&mut sep, row));
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    let tenant = s.portal.tenant_id.as_uuid();
    let p = &s.portal;
    let c = children(s);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
         activated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant)
    .bind(p.id.as_uuid())
    .bind(p.company_id.as_uuid())
    .bind(p.template_id.map(|t| t.as_uuid()))
    .bind(p.name.as_str())
    .bind(p.status.as_str())
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(p.activated_at)
    .execute(&mut *tx)
    .await?;
    insert(
        &mut tx,
        "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) ",
        7,
        &s.phases,
        |b, ph| {
            b.push_bind(tenant)
                .push_bind(ph.id.as_uuid())
                .push_bind(ph.portal_id.as_uuid())
                .push_bind(ph.position)
                .push_bind(ph.name.as_str())
                .push_bind(ph.description.as_str())
                .push_bind(ph.version);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task (tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, \
         priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
         completed_by_id, completed_by_display, completion_reason, version) ",
        21,
        &s.tasks,
        |b, t| {
            let by = t.completed_by.as_ref();
            b.push_bind(tenant)
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(t.phase_id.as_uuid())
                .push_bind(t.position)
                .push_bind(t.title.as_str())
                .push_bind(t.description.as_str())
                .push_bind(t.owner.as_str())
                .push_bind(t.evidence.as_str())
                .push_bind(t.priority.as_str())
                .push_bind(t.due_offset.map(|d| i32::from(d.days())))
                .push_bind(t.due_date)
                .push_bind(t.status.as_str())
                .push_bind(t.block_reason.as_ref().map(|r| r.as_str()))
                .push_bind(t.assignee.map(|a| a.as_uuid()))
                .push_bind(t.completed_at)
                .push_bind(by.map(|a| a.kind.as_str()))
                .push_bind(by.and_then(|a| a.id))
                .push_bind(by.and_then(|a| a.display.as_deref()))
                .push_bind(t.completion_reason.as_ref().map(|r| r.as_str()))
                .push_bind(t.version);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_dependency (tenant_id, task_id, depends_on_id, portal_id) ",
        4,
        &c.deps,
        |b, (t, d)| {
            b.push_bind(tenant)
                .push_bind(t.id.as_uuid())
                .push_bind(d.as_uuid())
                .push_bind(t.portal_id.as_uuid());
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_checklist_item (tenant_id, id, task_id, portal_id, position, text, done) ",
        7,
        &c.items,
        |b, (t, i)| {
            let item = &t.checklist[*i];
            b.push_bind(tenant)
                .push_bind(item.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(position(*i))
                .push_bind(item.text.as_str())
                .push_bind(item.done);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_survey_question (tenant_id, id, task_id, portal_id, position, text, kind, options) ",
        8,
        &c.questions,
        |b, (t, i)| {
            let q = &t.survey[*i];
            b.push_bind(tenant)
                .push_bind(q.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(position(*i))
                .push_bind(q.text.as_str())
                .push_bind(q.kind.as_str())
                .push_bind(serde_json::to_string(&q.options).unwrap_or_default());
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO contact (tenant_id, id, portal_id, name, email, role, is_primary, version, created_at) ",
        9,
        &s.contacts,
        |b, ct| {
            b.push_bind(tenant)
                .push_bind(ct.id.as_uuid())
                .push_bind(ct.portal_id.as_uuid())
                .push_bind(ct.name.as_str())
                .push_bind(ct.email.as_str())
                .push_bind(ct.role.as_str())
                .push_bind(ct.primary)
                .push_bind(ct.version)
                .push_bind(ct.created_at);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, \
         actor_display, at, summary, details, erased_by) ",
        12,
        events,
        |b, e| {
            b.push_bind(tenant)
                .push_bind(e.id.as_uuid())
                .push_bind(e.company_id.map(|x| x.as_uuid()))
                .push_bind(e.portal_id.map(|x| x.as_uuid()))
                .push_bind(e.kind.as_str())
                .push_bind(e.actor.kind.as_str())
                .push_bind(e.actor.id)
                .push_bind(e.actor.display.as_deref())
                .push_bind(e.at)
                .push_bind(e.summary.as_str())
                .push_bind(e.details.to_string())
                .push_bind(e.erased_by.map(|x| x.as_uuid()));
        },
    )
    .await?;
    tx.commit().await
}

async fn pg_floor(pool: &PgPool, s: &PortalState, events: &[ActivityEvent]) -> Result<(), sqlx::Error> {
    /// One multi-row INSERT per chunk of rows.
    async fn insert<T>(
        conn: &mut sqlx::PgConnection,
        head: &str,
        columns: usize,
        rows: &[T],
        mut push: impl FnMut(&mut sqlx::query_builder::Separated<'_, Postgres, &'static str>, &T),
    ) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(rows_per_statement(PG_MAX_PARAMETERS, columns)) {
            let mut qb = QueryBuilder::<Postgres>::new(head);
            qb.push_values(chunk, |mut sep, row| push(&mut sep, row));
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    let tenant = s.portal.tenant_id.as_uuid();
    let p = &s.portal;
    let c = children(s);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
         activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(p.id.as_uuid())
    .bind(p.company_id.as_uuid())
    .bind(p.template_id.map(|t| t.as_uuid()))
    .bind(p.name.as_str())
    .bind(p.status.as_str())
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(p.activated_at)
    .execute(&mut *tx)
    .await?;
    insert(
        &mut tx,
        "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) ",
        7,
        &s.phases,
        |b, ph| {
            b.push_bind(tenant)
                .push_bind(ph.id.as_uuid())
                .push_bind(ph.portal_id.as_uuid())
                .push_bind(ph.position)
                .push_bind(ph.name.as_str())
                .push_bind(ph.description.as_str())
                .push_bind(ph.version);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task (tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, \
         priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
         completed_by_id, completed_by_display, completion_reason, version) ",
        21,
        &s.tasks,
        |b, t| {
            let by = t.completed_by.as_ref();
            b.push_bind(tenant)
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(t.phase_id.as_uuid())
                .push_bind(t.position)
                .push_bind(t.title.as_str())
                .push_bind(t.description.as_str())
                .push_bind(t.owner.as_str())
                .push_bind(t.evidence.as_str())
                .push_bind(t.priority.as_str())
                .push_bind(t.due_offset.map(|d| i32::from(d.days())))
                .push_bind(t.due_date)
                .push_bind(t.status.as_str())
                .push_bind(t.block_reason.as_ref().map(|r| r.as_str()))
                .push_bind(t.assignee.map(|a| a.as_uuid()))
                .push_bind(t.completed_at)
                .push_bind(by.map(|a| a.kind.as_str()))
                .push_bind(by.and_then(|a| a.id))
                .push_bind(by.and_then(|a| a.display.as_deref()))
                .push_bind(t.completion_reason.as_ref().map(|r| r.as_str()))
                .push_bind(t.version);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_dependency (tenant_id, task_id, depends_on_id, portal_id) ",
        4,
        &c.deps,
        |b, (t, d)| {
            b.push_bind(tenant)
                .push_bind(t.id.as_uuid())
                .push_bind(d.as_uuid())
                .push_bind(t.portal_id.as_uuid());
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_checklist_item (tenant_id, id, task_id, portal_id, position, text, done) ",
        7,
        &c.items,
        |b, (t, i)| {
            let item = &t.checklist[*i];
            b.push_bind(tenant)
                .push_bind(item.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(position(*i))
                .push_bind(item.text.as_str())
                .push_bind(item.done);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO task_survey_question (tenant_id, id, task_id, portal_id, position, text, kind, options) ",
        8,
        &c.questions,
        |b, (t, i)| {
            let q = &t.survey[*i];
            b.push_bind(tenant)
                .push_bind(q.id.as_uuid())
                .push_bind(t.id.as_uuid())
                .push_bind(t.portal_id.as_uuid())
                .push_bind(position(*i))
                .push_bind(q.text.as_str())
                .push_bind(q.kind.as_str())
                .push_bind(serde_json::to_value(&q.options).unwrap_or_default());
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO contact (tenant_id, id, portal_id, name, email, role, is_primary, version, created_at) ",
        9,
        &s.contacts,
        |b, ct| {
            b.push_bind(tenant)
                .push_bind(ct.id.as_uuid())
                .push_bind(ct.portal_id.as_uuid())
                .push_bind(ct.name.as_str())
                .push_bind(ct.email.as_str())
                .push_bind(ct.role.as_str())
                .push_bind(ct.primary)
                .push_bind(ct.version)
                .push_bind(ct.created_at);
        },
    )
    .await?;
    insert(
        &mut tx,
        "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, \
         actor_display, at, summary, details, erased_by) ",
        12,
        events,
        |b, e| {
            b.push_bind(tenant)
                .push_bind(e.id.as_uuid())
                .push_bind(e.company_id.map(|x| x.as_uuid()))
                .push_bind(e.portal_id.map(|x| x.as_uuid()))
                .push_bind(e.kind.as_str())
                .push_bind(e.actor.kind.as_str())
                .push_bind(e.actor.id)
                .push_bind(e.actor.display.as_deref())
                .push_bind(e.at)
                .push_bind(e.summary.as_str())
                .push_bind(&e.details)
                .push_bind(e.erased_by.map(|x| x.as_uuid()));
        },
    )
    .await?;
    tx.commit().await
}

/// The PostgreSQL floor with one array per column: per table one
/// `INSERT ... SELECT $1, * FROM UNNEST(...)`, in one transaction.
async fn pg_floor_unnest(pool: &PgPool, s: &PortalState, events: &[ActivityEvent]) -> Result<(), sqlx::Error> {
    fn col<'a, T, U>(rows: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
        rows.iter().map(f).collect()
    }
    let tenant = s.portal.tenant_id.as_uuid();
    let p = &s.portal;
    let c = children(s);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO portal (tenant_id, id, company_id, template_id, name, status, version, created_at, updated_at, \
         activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant)
    .bind(p.id.as_uuid())
    .bind(p.company_id.as_uuid())
    .bind(p.template_id.map(|t| t.as_uuid()))
    .bind(p.name.as_str())
    .bind(p.status.as_str())
    .bind(p.version)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(p.activated_at)
    .execute(&mut *tx)
    .await?;
    let ph = &s.phases;
    sqlx::query(
        "INSERT INTO portal_phase (tenant_id, id, portal_id, position, name, description, version) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::int4[], $5::text[], $6::text[], $7::int8[])",
    )
    .bind(tenant)
    .bind(col(ph, |x| x.id.as_uuid()))
    .bind(col(ph, |x| x.portal_id.as_uuid()))
    .bind(col(ph, |x| x.position))
    .bind(col(ph, |x| x.name.as_str()))
    .bind(col(ph, |x| x.description.as_str()))
    .bind(col(ph, |x| x.version))
    .execute(&mut *tx)
    .await?;
    let t = &s.tasks;
    let by = |x: &portal_core::task::Task| x.completed_by.clone();
    sqlx::query(
        "INSERT INTO task (tenant_id, id, portal_id, phase_id, position, title, description, owner, evidence, \
         priority, due_offset_days, due_date, status, block_reason, assignee_id, completed_at, completed_by_kind, \
         completed_by_id, completed_by_display, completion_reason, version) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::text[], $11::int4[], $12::date[], $13::text[], $14::text[], $15::uuid[], \
         $16::timestamptz[], $17::text[], $18::uuid[], $19::text[], $20::text[], $21::int8[])",
    )
    .bind(tenant)
    .bind(col(t, |x| x.id.as_uuid()))
    .bind(col(t, |x| x.portal_id.as_uuid()))
    .bind(col(t, |x| x.phase_id.as_uuid()))
    .bind(col(t, |x| x.position))
    .bind(col(t, |x| x.title.as_str()))
    .bind(col(t, |x| x.description.as_str()))
    .bind(col(t, |x| x.owner.as_str()))
    .bind(col(t, |x| x.evidence.as_str()))
    .bind(col(t, |x| x.priority.as_str()))
    .bind(col(t, |x| x.due_offset.map(|d| i32::from(d.days()))))
    .bind(col(t, |x| x.due_date))
    .bind(col(t, |x| x.status.as_str()))
    .bind(col(t, |x| x.block_reason.as_ref().map(|r| r.as_str())))
    .bind(col(t, |x| x.assignee.map(|a| a.as_uuid())))
    .bind(col(t, |x| x.completed_at))
    .bind(col(t, |x| by(x).map(|a| a.kind.as_str())))
    .bind(col(t, |x| by(x).and_then(|a| a.id)))
    .bind(col(t, |x| by(x).and_then(|a| a.display)))
    .bind(col(t, |x| x.completion_reason.as_ref().map(|r| r.as_str())))
    .bind(col(t, |x| x.version))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO task_dependency (tenant_id, task_id, depends_on_id, portal_id) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[])",
    )
    .bind(tenant)
    .bind(col(&c.deps, |(t, _)| t.id.as_uuid()))
    .bind(col(&c.deps, |(_, d)| d.as_uuid()))
    .bind(col(&c.deps, |(t, _)| t.portal_id.as_uuid()))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO task_checklist_item (tenant_id, id, task_id, portal_id, position, text, done) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::bool[])",
    )
    .bind(tenant)
    .bind(col(&c.items, |(t, i)| t.checklist[*i].id.as_uuid()))
    .bind(col(&c.items, |(t, _)| t.id.as_uuid()))
    .bind(col(&c.items, |(t, _)| t.portal_id.as_uuid()))
    .bind(col(&c.items, |(_, i)| position(*i)))
    .bind(col(&c.items, |(t, i)| t.checklist[*i].text.as_str()))
    .bind(col(&c.items, |(t, i)| t.checklist[*i].done))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO task_survey_question (tenant_id, id, task_id, portal_id, position, text, kind, options) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::int4[], $6::text[], $7::text[], \
         $8::jsonb[])",
    )
    .bind(tenant)
    .bind(col(&c.questions, |(t, i)| t.survey[*i].id.as_uuid()))
    .bind(col(&c.questions, |(t, _)| t.id.as_uuid()))
    .bind(col(&c.questions, |(t, _)| t.portal_id.as_uuid()))
    .bind(col(&c.questions, |(_, i)| position(*i)))
    .bind(col(&c.questions, |(t, i)| t.survey[*i].text.as_str()))
    .bind(col(&c.questions, |(t, i)| t.survey[*i].kind.as_str()))
    .bind(col(&c.questions, |(t, i)| {
        serde_json::to_value(&t.survey[*i].options).unwrap_or_default()
    }))
    .execute(&mut *tx)
    .await?;
    let ct = &s.contacts;
    sqlx::query(
        "INSERT INTO contact (tenant_id, id, portal_id, name, email, role, is_primary, version, created_at) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bool[], \
         $8::int8[], $9::timestamptz[])",
    )
    .bind(tenant)
    .bind(col(ct, |x| x.id.as_uuid()))
    .bind(col(ct, |x| x.portal_id.as_uuid()))
    .bind(col(ct, |x| x.name.as_str()))
    .bind(col(ct, |x| x.email.as_str()))
    .bind(col(ct, |x| x.role.as_str()))
    .bind(col(ct, |x| x.primary))
    .bind(col(ct, |x| x.version))
    .bind(col(ct, |x| x.created_at))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO activity_event (tenant_id, id, company_id, portal_id, kind, actor_kind, actor_id, \
         actor_display, at, summary, details, erased_by) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], \
         $8::text[], $9::timestamptz[], $10::text[], $11::jsonb[], $12::uuid[])",
    )
    .bind(tenant)
    .bind(col(events, |e| e.id.as_uuid()))
    .bind(col(events, |e| e.company_id.map(|x| x.as_uuid())))
    .bind(col(events, |e| e.portal_id.map(|x| x.as_uuid())))
    .bind(col(events, |e| e.kind.as_str()))
    .bind(col(events, |e| e.actor.kind.as_str()))
    .bind(col(events, |e| e.actor.id))
    .bind(col(events, |e| e.actor.display.as_deref()))
    .bind(col(events, |e| e.at))
    .bind(col(events, |e| e.summary.as_str()))
    .bind(col(events, |e| e.details.clone()))
    .bind(col(events, |e| e.erased_by.map(|x| x.as_uuid())))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

// ---------------------------------------------------------------------------------------------
// The stores

fn sqlite() -> &'static Fixture {
    SQLITE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("portal-bench.db").display());
        *SQLITE_DIR.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir);
        let storage = RT
            .block_on(SqliteStorage::connect(&url))
            .unwrap_or_else(|e| panic!("SQLite store at {url}: {e}"));
        let pool = Pool::Sqlite(storage.pool().clone());
        Fixture::new("sqlite", Arc::new(storage), pool, || {})
    })
}

/// The server's URL: `PORTAL_TEST_PG_URL`, or the local test server.
fn pg_admin_url() -> String {
    std::env::var("PORTAL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn postgres() -> Option<&'static Fixture> {
    POSTGRES
        .get_or_init(|| {
            let admin_url = pg_admin_url();
            let connect = async {
                tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url))
                    .await
                    .map_err(|_| "timed out".to_owned())?
                    .map_err(|e| e.to_string())
            };
            let mut admin = match RT.block_on(connect) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!(
                        "\n*** SKIPPING the PostgreSQL benchmarks: no server at {admin_url} ({e}); set \
                         PORTAL_TEST_PG_URL ***\n"
                    );
                    return None;
                }
            };
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let db = format!("portal_bench_{}_{nanos}", std::process::id());
            RT.block_on(sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\""))).execute(&mut admin))
                .unwrap_or_else(|e| panic!("creating the benchmark database {db}: {e}"));
            *PG_DATABASE.lock().unwrap_or_else(PoisonError::into_inner) = Some((admin_url.clone(), db.clone()));
            let url = with_database(&admin_url, &db);
            let storage = RT
                .block_on(PgStorage::connect(&url))
                .unwrap_or_else(|e| panic!("PostgreSQL store at {url}: {e}"));
            let pool = Pool::Postgres(storage.pool().clone());
            let storage = Arc::new(storage);
            let analyzed = Arc::clone(&storage);
            // A freshly filled database has no planner statistics yet (see `PgStorage::analyze`).
            let after_load = move || {
                RT.block_on(analyzed.analyze())
                    .unwrap_or_else(|e| panic!("ANALYZE of {url}: {e}"));
            };
            Some(Fixture::new("postgres", storage, pool, after_load))
        })
        .as_ref()
}

fn cleanup() {
    if let Some((admin_url, db)) = PG_DATABASE.lock().unwrap_or_else(PoisonError::into_inner).take() {
        let dropped = RT.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
        });
        if let Err(e) = dropped {
            eprintln!("[portal-benches] could not drop the benchmark database {db}: {e}");
        }
    }
    drop(SQLITE_DIR.lock().unwrap_or_else(PoisonError::into_inner).take());
}

// ---------------------------------------------------------------------------------------------
// The benchmarks

fn engine_bench(bencher: Bencher<'_, '_>, fixture: Option<&'static Fixture>) {
    let Some(f) = fixture else { return };
    bencher.with_inputs(|| f.settle()).bench_local_refs(|()| f.start());
}

fn floor_bench(bencher: Bencher<'_, '_>, fixture: Option<&'static Fixture>, kind: Floor) {
    let Some(f) = fixture else { return };
    bencher
        .with_inputs(|| {
            f.settle();
            f.rows()
        })
        .bench_local_refs(|(state, events)| f.floor(kind, state, events));
}

/// PERF-4 on SQLite (a temporary file, WAL, `synchronous = NORMAL`).
mod perf4_sqlite {
    use super::{Bencher, Floor, SAMPLES, engine_bench, floor_bench, sqlite};

    /// `Engine::start_onboarding` from the 20 × 500 template, whole.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn engine_start_onboarding(bencher: Bencher<'_, '_>) {
        engine_bench(bencher, Some(sqlite()));
    }

    /// The floor: the same rows by hand-written multi-row INSERTs, one transaction.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn floor_multi_row_insert(bencher: Bencher<'_, '_>) {
        floor_bench(bencher, Some(sqlite()), Floor::Values);
    }
}

/// PERF-4 on PostgreSQL (a fresh database on `PORTAL_TEST_PG_URL`).
mod perf4_postgres {
    use super::{Bencher, Floor, SAMPLES, engine_bench, floor_bench, postgres};

    /// `Engine::start_onboarding` from the 20 × 500 template, whole.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn engine_start_onboarding(bencher: Bencher<'_, '_>) {
        engine_bench(bencher, postgres());
    }

    /// The floor: the same rows by hand-written multi-row INSERTs, one transaction.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn floor_multi_row_insert(bencher: Bencher<'_, '_>) {
        floor_bench(bencher, postgres(), Floor::Values);
    }

    /// The floor with one array per column: `INSERT ... SELECT FROM UNNEST(...)` per table.
    #[divan::bench(sample_count = SAMPLES, sample_size = 1)]
    fn floor_unnest_insert(bencher: Bencher<'_, '_>) {
        floor_bench(bencher, postgres(), Floor::Unnest);
    }
}

/// Opens (once) the store of one backend.
type FixtureFn = fn() -> Option<&'static Fixture>;

/// Interleaved samples of the engine path and each floor: the engine's, then each floor's.
fn interleaved(f: &Fixture, samples: u32) -> (Summary, Vec<(Floor, Summary)>) {
    let mut engine = Vec::new();
    let mut floors: Vec<(Floor, Vec<Duration>)> = f.floors().iter().map(|&k| (k, Vec::new())).collect();
    // `PORTAL_BENCH_SERIES=1` prints every sample in order, to tell drift from noise.
    let series = std::env::var("PORTAL_BENCH_SERIES").is_ok_and(|v| v.trim() == "1");
    for i in 0..samples {
        f.settle();
        let t = Instant::now();
        f.start();
        engine.push(t.elapsed());
        for (kind, times) in &mut floors {
            f.settle();
            let (state, events) = f.rows();
            let t = Instant::now();
            f.floor(*kind, &state, &events);
            times.push(t.elapsed());
        }
        if series {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let floor_ms: Vec<String> = floors
                .iter()
                .map(|(_, t)| format!("{:.1}", ms(t[t.len() - 1])))
                .collect();
            eprintln!(
                "[series] {} #{i}: engine {:.1} ms, floors {} ms",
                f.backend,
                ms(engine[engine.len() - 1]),
                floor_ms.join(" / ")
            );
        }
    }
    let none = || panic!("no samples");
    (
        Summary::of(&engine).unwrap_or_else(none),
        floors
            .into_iter()
            .map(|(k, t)| (k, Summary::of(&t).unwrap_or_else(none)))
            .collect(),
    )
}

fn main() {
    divan::main();
    if stats::report_enabled() {
        let mut lines = Vec::new();
        let backends: [(&str, FixtureFn); 2] = [("perf4_sqlite", || Some(sqlite())), ("perf4_postgres", postgres)];
        for (module, fixture) in backends {
            let engine_name = format!("{module}::engine_start_onboarding");
            let wanted = stats::report_wanted(&engine_name)
                || [Floor::Values, Floor::Unnest]
                    .iter()
                    .any(|k| stats::report_wanted(&format!("{module}::{}", k.bench_name())));
            if !wanted {
                continue;
            }
            let Some(f) = fixture() else { continue };
            let (engine, floors) = interleaved(f, SAMPLES);
            lines.push(format!(
                "{module}: `{}` data set, seed {} ({} portals, {} tasks, {} events before the run)",
                f.data.size, f.data.seed, f.data.counts.portals, f.data.counts.tasks, f.data.counts.events
            ));
            lines.push(engine.line(&engine_name));
            for (kind, floor) in &floors {
                lines.push(floor.line(&format!("{module}::{}", kind.bench_name())));
            }
            for (kind, floor) in &floors {
                lines.push(engine.ratio_line(&format!("{module} engine / {}", kind.bench_name()), floor));
            }
        }
        if !lines.is_empty() {
            eprintln!(
                "\npercentiles (own samples, engine and floors interleaved; {})",
                stats::context_line()
            );
            for l in lines {
                eprintln!("  {l}");
            }
        }
    }
    cleanup();
}
