//! The demo tenant: seeded once, reused after, and a person can sign in with what it prints.

use std::sync::Arc;

use portal_core::auth::Password;
use portal_core::lifecycle::PortalStatus;
use portal_core::storage::{PageRequest, PortalFilter};
use portal_core::task::EvidenceType;
use portal_server::app::{OsEntropy, ServerSettings, SystemClock};
use portal_server::{AppState, setup};
use portal_tests::harness::TestStore;

use crate::on_both_backends;

async fn the_demo_is_seeded_once(store: &TestStore) {
    let state = AppState::with_parts(
        store.storage.clone(),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
        Arc::new(portal_tests::harness::test_master_key()),
        ServerSettings::default(),
    );
    let first = setup::seed_demo(&state, Password::new("first demo password").expect("valid"))
        .await
        .expect("the demo seeds");
    assert!(first.created);
    let again = setup::seed_demo(&state, Password::new("second demo password").expect("valid"))
        .await
        .expect("the demo is found");
    assert!(!again.created);
    assert_eq!(first.tenant, again.tenant);

    let t = first.tenant;
    let s = &store.storage;
    let templates = s.list_templates(t, PageRequest::first(10)).await.expect("storage");
    assert_eq!(templates.len(), 1);
    let template = &templates[0];
    assert_eq!(template.name.as_str(), "Standard MSP onboarding");
    assert_eq!(template.phases.len(), 4);
    assert_eq!(template.tasks().count(), 20);
    for evidence in EvidenceType::ALL {
        assert!(
            template.tasks().any(|t| t.evidence == *evidence),
            "{evidence:?} is used"
        );
    }
    assert!(template.tasks().any(|t| !t.depends_on.is_empty()));
    let portals = s
        .list_portals(t, PortalFilter::default(), PageRequest::first(10))
        .await
        .expect("storage");
    let mut statuses: Vec<PortalStatus> = portals.iter().map(|p| p.status).collect();
    statuses.sort_by_key(|s| s.as_str());
    assert_eq!(statuses, [PortalStatus::Active, PortalStatus::Draft]);
    assert_eq!(
        s.list_companies(t, PageRequest::first(10))
            .await
            .expect("storage")
            .len(),
        1
    );
    assert_eq!(s.list_tenant_hosts(t).await.expect("storage"), [setup::DEMO_HOST]);

    // The second run's password is the one that works.
    let admin = s
        .find_staff_user_by_email(
            t,
            &portal_core::value::Email::parse(setup::DEMO_ADMIN_EMAIL).expect("email"),
        )
        .await
        .expect("storage")
        .expect("the demo administrator");
    let hash = s
        .password_hash(t, admin.id)
        .await
        .expect("storage")
        .expect("a password");
    assert!(portal_core::auth::verify_password("second demo password", &hash));
    assert!(!portal_core::auth::verify_password("first demo password", &hash));
}

on_both_backends!(
    api_the_demo_is_seeded_once_on_sqlite,
    api_the_demo_is_seeded_once_on_postgres,
    the_demo_is_seeded_once
);
