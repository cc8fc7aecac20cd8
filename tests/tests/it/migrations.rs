//! The two backends' migrations stay in step: the same versions and names, and the same tables
//! with the same columns and nullability once applied.

use std::collections::BTreeMap;

use sqlx::{Connection, Row};

fn list(m: &sqlx::migrate::Migrator) -> Vec<(i64, String)> {
    m.iter().map(|m| (m.version, m.description.to_string())).collect()
}

#[test]
fn both_backends_list_the_same_migrations() {
    let sqlite = list(&portal_storage_sqlite::MIGRATOR);
    let postgres = list(&portal_storage_postgres::MIGRATOR);
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

type Shape = BTreeMap<String, BTreeMap<String, bool>>;

#[tokio::test]
async fn both_backends_build_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shape.db").display());
    let mut lite = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    portal_storage_sqlite::MIGRATOR
        .run(&mut lite)
        .await
        .expect("sqlite migrations");
    let mut sqlite: Shape = BTreeMap::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%'",
    )
    .fetch_all(&mut lite)
    .await
    .expect("tables");
    for t in tables {
        let cols = sqlx::query("SELECT name, \"notnull\", pk FROM pragma_table_info(?)")
            .bind(&t)
            .fetch_all(&mut lite)
            .await
            .expect("columns");
        let entry = sqlite.entry(t).or_default();
        for c in cols {
            let pk: i64 = c.get("pk");
            let notnull: i64 = c.get("notnull");
            entry.insert(c.get("name"), notnull == 1 || pk > 0);
        }
    }

    let Some(mut admin) = portal_tests::harness::pg_admin().await else {
        return;
    };
    let (db, url) = portal_tests::harness::fresh_pg_database(&mut admin).await;
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    portal_storage_postgres::MIGRATOR
        .run(&mut pg)
        .await
        .expect("postgres migrations");
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx_%'",
    )
    .fetch_all(&mut pg)
    .await
    .expect("columns");
    let mut postgres: Shape = BTreeMap::new();
    for r in rows {
        let n: String = r.get("n");
        postgres.entry(r.get("t")).or_default().insert(r.get("c"), n == "NO");
    }
    drop(pg);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{db}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .expect("drop");
    assert_eq!(sqlite, postgres, "tables, columns and NOT NULL agree");
}

/// The `event_kind` rows each backend's migrations leave, sorted.
fn sorted(mut kinds: Vec<String>) -> Vec<String> {
    kinds.sort();
    kinds
}

/// Every `EventKind` of the core is a row of `event_kind` on both backends, and no row names a
/// kind the core does not know: a new variant needs a paired migration that inserts it.
#[tokio::test]
async fn both_backends_list_every_event_kind() {
    let expected = sorted(
        portal_core::activity::EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("kinds.db").display());
    let mut lite = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    portal_storage_sqlite::MIGRATOR
        .run(&mut lite)
        .await
        .expect("sqlite migrations");
    let sqlite: Vec<String> = sqlx::query_scalar("SELECT name FROM event_kind")
        .fetch_all(&mut lite)
        .await
        .expect("sqlite kinds");
    assert_eq!(sorted(sqlite), expected, "SQLite's event_kind rows are EventKind::ALL");
    // The rebuilt `activity_event` kept its indexes, and its key into `event_kind` holds.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'activity_event' AND sql IS NOT NULL \
         ORDER BY name",
    )
    .fetch_all(&mut lite)
    .await
    .expect("indexes");
    assert_eq!(indexes, ["activity_event_by_kind", "activity_event_by_portal"]);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list('activity_event') ORDER BY 1")
            .fetch_all(&mut lite)
            .await
            .expect("foreign keys");
    assert_eq!(keys, ["event_kind", "tenant"]);

    let Some(mut admin) = portal_tests::harness::pg_admin().await else {
        return;
    };
    let (db, url) = portal_tests::harness::fresh_pg_database(&mut admin).await;
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    portal_storage_postgres::MIGRATOR
        .run(&mut pg)
        .await
        .expect("postgres migrations");
    let postgres: Vec<String> = sqlx::query_scalar("SELECT name FROM event_kind")
        .fetch_all(&mut pg)
        .await
        .expect("postgres kinds");
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'activity_event'::regclass ORDER BY 1",
    )
    .fetch_all(&mut pg)
    .await
    .expect("constraints");
    drop(pg);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{db}\" WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .expect("drop");
    assert_eq!(
        sorted(postgres),
        expected,
        "PostgreSQL's event_kind rows are EventKind::ALL"
    );
    assert_eq!(
        checks,
        [
            "activity_event_actor_kind_check",
            "activity_event_kind_fkey",
            "activity_event_pkey",
            "activity_event_tenant_id_fkey"
        ],
        "the kind CHECK gave way to the key into event_kind"
    );
}
