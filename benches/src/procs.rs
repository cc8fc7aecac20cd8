//! Helpers of the benchmarks that run the release server as a process of its own (`http`,
//! `mail`): settings from the environment, the database URLs of the test server, a free port,
//! the machine's load and the CPU time of processes, the age of the built binary, and the
//! benchmark databases they create and drop on the PostgreSQL test server.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The setting `name` from the environment, parsed, or `default` when it is not set.
///
/// # Panics
///
/// When it is set to something that does not parse: a benchmark run on a mistyped setting
/// would measure something else.
#[must_use]
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The load averages over 1, 5 and 15 minutes, as `/proc/loadavg` gives them (`?` off Linux).
#[must_use]
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// The newest modification time of the files under `dir` (`target` excluded).
#[must_use]
pub fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if path.file_name().is_none_or(|n| n != "target") {
                    stack.push(path);
                }
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    newest
}

/// The PostgreSQL server's URL: `PORTAL_TEST_PG_URL`, or the local test server.
#[must_use]
pub fn pg_admin_url() -> String {
    std::env::var("PORTAL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
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

/// Busy time of every core of the machine so far (`/proc/stat`: user, nice, system, irq,
/// softirq and steal ticks of 10 ms).
#[must_use]
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat.lines().find(|l| l.starts_with("cpu ")).map_or(0, |l| {
        l.split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse::<u64>().ok())
            .enumerate()
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
            .map(|(_, v)| v)
            .sum()
    });
    Duration::from_millis(ticks * 10)
}

/// CPU time of the PostgreSQL backends connected to `db` (found by their process title,
/// `postgres: <user> <db> ...`). A backend that exits during a run takes its time with it.
#[must_use]
pub fn pg_backends_cpu(db: &str) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let needle = format!(" {db} ");
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let title = String::from_utf8_lossy(&c);
                title.starts_with("postgres:") && title.contains(&needle)
            })
        })
        .filter_map(crate::loadgen::cpu_time)
        .sum()
}

/// A free port on loopback (bound and released: another process could take it in between).
#[must_use]
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

/// Creates the database `db` on the PostgreSQL server at [`pg_admin_url`] and returns that URL,
/// or `None` with a loud notice naming the `benchmark` skipped when no server answers in 5 s.
///
/// # Panics
///
/// When the server answers but refuses to create the database.
pub async fn create_pg_database(db: &str, benchmark: &str) -> Option<String> {
    use sqlx::Connection as _;
    let admin_url = pg_admin_url();
    let connected = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin_url)).await;
    let mut admin = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip_pg(benchmark, &admin_url, &e.to_string()),
        Err(_) => return skip_pg(benchmark, &admin_url, "timed out"),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the benchmark database {db}: {e}"));
    Some(admin_url)
}

fn skip_pg(benchmark: &str, url: &str, why: &str) -> Option<String> {
    eprintln!(
        "\n*** SKIPPING the PostgreSQL {benchmark} benchmark: no server at {url} ({why}); set PORTAL_TEST_PG_URL ***\n"
    );
    None
}

/// Drops the database `db` (closing its connections) on the server at `admin_url`.
///
/// # Errors
///
/// When the server cannot be reached or refuses.
pub async fn drop_pg_database(admin_url: &str, db: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}
