//! Clocks, entropy and the backend factories the tests share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use portal_core::memory::MemoryStorage;
use portal_core::service::Engine;
use portal_core::storage::{Clock, Entropy, Storage};
use sqlx::Connection;

/// A clock tests move by hand.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    /// A clock at 2026-03-02 09:00 UTC (a Monday).
    #[must_use]
    pub fn new() -> Self {
        Self(Mutex::new(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap_or_default(),
        ))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        // Each reading moves on by a millisecond so events of successive commands are ordered.
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += Duration::milliseconds(1);
        *now
    }
}

/// Deterministic entropy: a counter, so two engines fed the same commands make the same ids.
#[derive(Debug, Default)]
pub struct CounterEntropy(AtomicU64);

impl Entropy for CounterEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let n = self
            .0
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (n.rotate_left((i as u32 % 8) * 8) & 0xFF) as u8 ^ (i as u8);
        }
    }
}

/// The master key of the tests' engines (fixed, so a test can open what its engine sealed).
#[must_use]
pub fn test_master_key() -> portal_core::crypto::MasterKey {
    portal_core::crypto::MasterKey::from_material(b"portal-tests fixed master key, 32+ bytes").expect("long enough")
}

/// An engine over `storage` with a [`TestClock`] and [`CounterEntropy`].
#[must_use]
pub fn engine(storage: Arc<dyn Storage>) -> (Engine, Arc<TestClock>) {
    let clock = Arc::new(TestClock::new());
    (
        Engine::new(
            storage,
            clock.clone(),
            Arc::new(CounterEntropy::default()),
            &test_master_key(),
        ),
        clock,
    )
}

/// A store under test, with whatever must live as long as it (a temporary file, a database to
/// drop).
pub struct TestStore {
    /// The store.
    pub storage: Arc<dyn Storage>,
    /// What the backend is (`memory`, `sqlite`, `postgres`).
    pub backend: &'static str,
    /// The database URL of a SQLite or PostgreSQL store, for tests that look at the raw tables.
    pub database_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestStore {
    /// Drops the per-test PostgreSQL database (a no-op for the other backends). Called after a
    /// passing test; a failing one leaves its database behind for a look.
    pub async fn cleanup(self) {
        let Self { storage, pg, .. } = self;
        drop(storage);
        if let Some((admin_url, db)) = pg
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await
        {
            let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            // A database left behind only costs disk on the test server; the test passed.
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
}

/// The in-memory reference store.
#[must_use]
pub fn memory() -> TestStore {
    TestStore {
        storage: Arc::new(MemoryStorage::new()),
        backend: "memory",
        database_url: None,
        _dir: None,
        pg: None,
    }
}

/// A SQLite store on a fresh temporary file.
///
/// # Panics
///
/// When the file cannot be created or migrated: the test cannot run without it.
pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("portal.db").display());
    let storage = portal_storage_sqlite::SqliteStorage::connect(&url)
        .await
        .expect("SQLite store connects and migrates");
    TestStore {
        storage: Arc::new(storage),
        backend: "sqlite",
        database_url: Some(url),
        _dir: Some(dir),
        pg: None,
    }
}

/// The PostgreSQL server tests use: `PORTAL_TEST_PG_URL`, or the local server every machine of
/// this project runs.
#[must_use]
pub fn pg_admin_url() -> String {
    std::env::var("PORTAL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether a missing PostgreSQL server fails the tests (in CI) or skips them with a notice.
#[must_use]
pub fn pg_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("PORTAL_REQUIRE_PG").is_some()
}

/// A connection to the PostgreSQL test server; `None` (with a loud notice) when no server is
/// reachable and the environment does not require one.
///
/// # Panics
///
/// When the server is unreachable and CI (or `PORTAL_REQUIRE_PG`) is set.
pub async fn pg_admin() -> Option<sqlx::PgConnection> {
    let admin_url = pg_admin_url();
    match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(
                !pg_required(),
                "PostgreSQL is required here but {admin_url} is unreachable: {e}"
            );
            eprintln!("\n*** SKIPPING a PostgreSQL test: no server at {admin_url} ({e}); set PORTAL_TEST_PG_URL ***\n");
            None
        }
    }
}

/// Creates a fresh, empty database on the test server and returns its name and URL.
///
/// # Panics
///
/// When the database cannot be created.
pub async fn fresh_pg_database(admin: &mut sqlx::PgConnection) -> (String, String) {
    let db = format!("portal_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(admin)
        .await
        .expect("create the per-test database");
    let url = with_database(&pg_admin_url(), &db);
    (db, url)
}

/// A PostgreSQL store on a fresh database of the test server; `None` when [`pg_admin`] is.
///
/// # Panics
///
/// As [`pg_admin`], or when the database cannot be created or migrated.
pub async fn postgres() -> Option<TestStore> {
    let mut admin = pg_admin().await?;
    let (db, url) = fresh_pg_database(&mut admin).await;
    let storage = portal_storage_postgres::PgStorage::connect(&url)
        .await
        .expect("PostgreSQL store connects and migrates");
    Some(TestStore {
        storage: Arc::new(storage),
        backend: "postgres",
        database_url: Some(url),
        _dir: None,
        pg: Some((pg_admin_url(), db)),
    })
}

/// `url` with its database name replaced by `db`.
#[must_use]
pub fn with_database(url: &str, db: &str) -> String {
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
