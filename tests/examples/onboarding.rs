#![allow(clippy::print_stdout)] // a command-line demo prints by design
//! Runs a whole onboarding on SQLite with no server: a tenant and its admin, a template, a
//! company, a portal started from the template, activation, every task completed in dependency
//! order, completion, and the activity log.
//!
//! ```text
//! cargo run -p portal-tests --example onboarding -- [sqlite://path.db | postgres://...]
//! ```

use std::sync::Arc;

use portal_core::commands::admin::FirstAdmin;
use portal_core::commands::portal::{StartOnboarding, TransitionRequest};
use portal_core::lifecycle::PortalStatus;
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::service::Engine;
use portal_core::storage::{ActivityFilter, Clock, PageRequest, Storage};
use portal_core::task::{TaskOwner, TaskStatus};
use portal_core::tenant::{TenantSettings, TimeZone};
use portal_core::value::{Email, Name, Reason};

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

fn os_entropy(buf: &mut [u8]) {
    // Fresh ids need fresh randomness: UUIDs v4 come from the OS generator.
    for chunk in buf.chunks_mut(16) {
        let r = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&r.as_bytes()[..chunk.len()]);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("portal.db").display()));
    let storage: Arc<dyn Storage> = if url.starts_with("postgres") {
        Arc::new(portal_storage_postgres::PgStorage::connect(&url).await?)
    } else {
        Arc::new(portal_storage_sqlite::SqliteStorage::connect(&url).await?)
    };
    // A real deployment reads its master key from its configuration; this example draws one.
    let mut key = [0u8; 32];
    os_entropy(&mut key);
    let master_key = portal_core::crypto::MasterKey::from_material(&key)?;
    let engine = Engine::new(
        storage.clone(),
        Arc::new(SystemClock),
        Arc::new(os_entropy),
        &master_key,
    );

    let settings = TenantSettings {
        time_zone: TimeZone::parse("Europe/London")?,
        ..TenantSettings::default()
    };
    let admin_email = Email::parse("admin@northwind-it.example.com")?;
    let tenant = engine
        .create_tenant(
            Name::parse("Northwind IT")?,
            settings,
            Some(FirstAdmin {
                email: admin_email.clone(),
                display_name: Name::parse("Nora Admin")?,
            }),
        )
        .await?;
    let user = storage
        .find_staff_user_by_email(tenant.id, &admin_email)
        .await?
        .ok_or("admin missing")?;
    let admin = engine
        .staff_principal(tenant.id, user.id)
        .await?
        .ok_or("principal missing")?;

    let template = engine
        .create_template(&admin, &portal_tests::fixtures::small_template())
        .await?;
    let company = engine.create_company(&admin, Name::parse("Contoso Dental")?).await?;
    let portal = engine
        .start_onboarding(
            &admin,
            company.id,
            template,
            &StartOnboarding {
                name: Name::parse("Contoso Dental onboarding")?,
                contacts: vec![ContactInput {
                    name: Name::parse("Dana Dentist")?,
                    email: Email::parse("dana@contoso-dental.example.org")?,
                    role: ContactRole::PrimaryContact,
                    primary: true,
                }],
                activate: true,
            },
        )
        .await?;
    println!("started portal {portal} for {} on {url}", company.name);

    let reason = Reason::parse("Completed with the client on the kick-off call")?;
    loop {
        let (state, progress) = engine.portal_overview(&admin, portal).await?;
        println!("progress {:>3}%  {:?}", progress.percent, progress.counts);
        let Some(next) = state.tasks.iter().find(|t| t.status == TaskStatus::Pending) else {
            break;
        };
        let why = (next.owner == TaskOwner::Client).then(|| reason.clone());
        engine.complete_task(&admin, portal, next.id, next.version, why).await?;
        println!("  completed: {} (due {:?})", next.title, next.due_date);
    }
    let version = engine.load_portal(&admin, portal).await?.portal.version;
    engine
        .transition_portal(
            &admin,
            portal,
            TransitionRequest {
                to: PortalStatus::Completed,
                expected_version: version,
                confirm: false,
            },
        )
        .await?;

    let filter = ActivityFilter {
        portal: Some(portal),
        kinds: vec![],
    };
    let events = engine.list_activity(&admin, &filter, PageRequest::first(100)).await?;
    println!("\nactivity (newest first):");
    for e in events {
        println!("  {}  {:<24} {}", e.at.format("%H:%M:%S%.3f"), e.kind, e.summary);
    }
    Ok(())
}
