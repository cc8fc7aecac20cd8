//! The conformance suite on every backend. Test names carry the backend:
//! `conformance::sqlite::portal_lifecycle`.

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use portal_tests::conformance as suite;
            #[allow(unused_imports)]
            use portal_tests::harness;

            conformance!(@tests $make;
                tenants_roles_and_staff,
                tenant_isolation,
                companies_and_sites,
                templates_and_copy_semantics,
                portal_lifecycle,
                task_statuses_and_dependencies,
                draft_editing,
                assignment_checklist_comments,
                delete_portal_keeps_tombstones,
                activity_paging,
                outcome_commit_is_atomic,
                contact_uniqueness,
                contacts_add_edit_remove,
                every_event_kind_is_stored,
                large_portal,
                auth_hosts_sessions_and_attempts,
                assigned_tasks_and_task_counts,
                access_links_and_sessions,
                outbox_messages_commit_sealed,
                outbox_claim_and_mark_sent,
                outbox_group_marks,
                outbox_leases_and_fencing,
                outbox_retry_and_requeue,
                outbox_listing_pages_newest_first,
                outbox_follows_deleted_portals_and_contacts,
                tenant_branding_round_trips,
                access_challenges,
                reminder_ledger_records_each_reminder_once,
                digest_items_wait_per_contact,
                contact_notification_preferences_round_trip,
                tenant_notification_settings_round_trip,
                active_portals_page_across_tenants,
                modify_portal_returns_ledger_refusals,
                expired_rows_are_purged,
            );
        }
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(store) = $make else { return };
            suite::$name(store.storage.clone()).await;
            store.cleanup().await;
        }
    )+};
}

conformance!(memory, Some(harness::memory()));
conformance!(sqlite, Some(harness::sqlite().await));
conformance!(postgres, harness::postgres().await);
