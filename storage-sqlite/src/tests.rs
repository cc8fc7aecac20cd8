//! What the conformance suite in `portal-tests` does not reach: this backend's own storage
//! format, read back through the domain parsers, and its keyset bounds.

use chrono::{TimeZone, Utc};
use portal_core::id::{RoleId, StaffUserId, TenantId};
use portal_core::outcome::{Outcome, Write};
use portal_core::storage::{OutcomeRepo, StorageError, TenantRepo};
use portal_core::tenant::{Role, StaffUser, Tenant, TenantSettings};
use portal_core::value::{Email, Name};
use uuid::Uuid;

use crate::{SqliteStorage, ids_from, ids_up_to};

async fn store() -> (SqliteStorage, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("portal.db").display());
    let storage = SqliteStorage::connect(&url).await.expect("connects and migrates");
    (storage, dir)
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("a valid name")
}

fn tenant(n: u128) -> Tenant {
    Tenant {
        id: TenantId::from_uuid(Uuid::from_u128(n)),
        name: name("Acme"),
        settings: TenantSettings::default(),
        link_settings: portal_core::tenant::LinkSettings::default(),
        branding: portal_core::tenant::Branding::default(),
        notification_settings: portal_core::notifications::NotificationSettings::new(),
        version: 1,
        created_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("a time"),
    }
}

fn writes(writes: Vec<Write>) -> Outcome {
    Outcome {
        writes,
        ..Outcome::default()
    }
}

#[test]
fn keyset_bounds_are_exact() {
    let id = Uuid::from_u128(41);
    assert_eq!(ids_from(None), Some(Uuid::nil()));
    assert_eq!(ids_from(Some(id)), Some(Uuid::from_u128(42)));
    assert_eq!(ids_from(Some(Uuid::from_u128(u128::MAX))), None);
    assert_eq!(ids_up_to(None), Some(Uuid::from_u128(u128::MAX)));
    assert_eq!(ids_up_to(Some(id)), Some(Uuid::from_u128(40)));
    assert_eq!(ids_up_to(Some(Uuid::nil())), None);
}

/// A row changed behind the engine's back reads as corrupt, never as an invalid value.
#[tokio::test]
async fn invalid_stored_values_are_corrupt() {
    let (storage, _dir) = store().await;
    let t = tenant(1);
    storage
        .commit_outcome(t.id, &writes(vec![Write::InsertTenant(t.clone())]))
        .await
        .expect("storage")
        .expect("ok");
    assert_eq!(storage.get_tenant(t.id).await.expect("reads"), Some(t.clone()));
    for sql in [
        "UPDATE tenant SET time_zone = 'Mars/Olympus_Mons' WHERE tenant_id = $1",
        "UPDATE tenant SET time_zone = 'UTC', name = '   ' WHERE tenant_id = $1",
        "UPDATE tenant SET name = 'Acme', created_at = 'yesterday' WHERE tenant_id = $1",
    ] {
        sqlx::query(sql)
            .bind(t.id.as_uuid())
            .execute(storage.pool())
            .await
            .expect("tampered");
        let err = storage.get_tenant(t.id).await.expect_err(sql);
        assert!(matches!(err, StorageError::Corrupt(_)), "{sql}: {err:?}");
    }
}

/// A staff user's roles read back in the order written, through updates, whatever their ids.
#[tokio::test]
async fn staff_roles_keep_their_order() {
    let (storage, _dir) = store().await;
    let t = tenant(1);
    let roles: Vec<Role> = [30_u128, 10, 20]
        .into_iter()
        .map(|n| Role {
            id: RoleId::from_uuid(Uuid::from_u128(n)),
            tenant_id: t.id,
            name: name(&format!("Role {n}")),
            permissions: portal_core::tenant::PermissionSet::EMPTY,
            version: 1,
        })
        .collect();
    let user = StaffUser {
        id: StaffUserId::from_uuid(Uuid::from_u128(7)),
        tenant_id: t.id,
        email: Email::parse("ada@acme.example.com").expect("an email"),
        display_name: name("Ada"),
        roles: roles.iter().map(|r| r.id).collect(),
        active: true,
        version: 1,
        created_at: t.created_at,
    };
    let mut w = vec![Write::InsertTenant(t.clone())];
    w.extend(roles.iter().cloned().map(Write::InsertRole));
    w.push(Write::InsertStaffUser(user.clone()));
    storage
        .commit_outcome(t.id, &writes(w))
        .await
        .expect("storage")
        .expect("ok");
    assert_eq!(
        storage.get_staff_user(t.id, user.id).await.expect("reads"),
        Some(user.clone())
    );

    let updated = StaffUser {
        roles: vec![roles[2].id, roles[0].id],
        version: 2,
        ..user.clone()
    };
    let update = Write::UpdateStaffUser {
        user: updated.clone(),
        expected_version: 1,
    };
    storage
        .commit_outcome(t.id, &writes(vec![update]))
        .await
        .expect("storage")
        .expect("ok");
    assert_eq!(
        storage.get_staff_user(t.id, user.id).await.expect("reads"),
        Some(updated)
    );
}

/// Where the schema holds more than the reference store checks: auth rows of a tenant or staff
/// user that does not exist are refused by their foreign keys, without breaking the next call.
#[tokio::test]
async fn auth_rows_of_missing_parents_are_refused() {
    use portal_core::CommandError;
    use portal_core::auth::{SecretToken, StaffSession};
    use portal_core::storage::AuthRepo;

    let (storage, _dir) = store().await;
    let t = tenant(1);
    storage
        .commit_outcome(t.id, &writes(vec![Write::InsertTenant(t.clone())]))
        .await
        .expect("storage")
        .expect("ok");
    let ghost_tenant = tenant(5).id;
    let ghost_user = StaffUserId::from_uuid(Uuid::from_u128(6));
    let now = t.created_at;

    assert_eq!(
        storage
            .add_tenant_host(ghost_tenant, "ghost.example.com")
            .await
            .expect("storage"),
        Err(CommandError::NotFound {
            entity: "tenant",
            id: ghost_tenant.as_uuid(),
        })
    );
    assert_eq!(
        storage.tenant_for_host("ghost.example.com").await.expect("storage"),
        None
    );
    let err = storage
        .set_password_hash(t.id, ghost_user, "x", now)
        .await
        .expect_err("no such user");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    let session = StaffSession::start(&SecretToken::from_bytes([9; 32]), t.id, ghost_user, now);
    let err = storage.insert_staff_session(&session).await.expect_err("no such user");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    let err = storage
        .count_sign_in_attempt(ghost_tenant, "account:x@example.com", now, now)
        .await
        .expect_err("no such tenant");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    assert_eq!(
        storage
            .add_tenant_host(t.id, "acme.example.com")
            .await
            .expect("storage"),
        Ok(())
    );
    assert_eq!(
        storage.tenant_for_host("acme.example.com").await.expect("storage"),
        Some(t.id)
    );
    // The mapping is stamped with the database's clock in a form that reads back as a time.
    let stamped: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT created_at FROM tenant_hosts WHERE host = 'acme.example.com'")
            .fetch_one(storage.pool())
            .await
            .expect("a time");
    assert!(stamped.timestamp() > 0, "{stamped}");
}

/// A message whose sealed secret is tampered with reads as corrupt, a delivery error is kept to
/// 1,000 characters, and a message of a portal that does not exist is refused by its foreign key
/// (the reference store keeps it) without breaking the next commit.
#[tokio::test]
async fn outbox_rows_as_stored() {
    use portal_core::id::{MessageId, PortalId};
    use portal_core::mail::{MailKind, MessageStatus};
    use portal_core::outcome::OutboundMessage;
    use portal_core::storage::{OutboxRepo, PageRequest};

    let (storage, _dir) = store().await;
    let t = tenant(1);
    storage
        .commit_outcome(t.id, &writes(vec![Write::InsertTenant(t.clone())]))
        .await
        .expect("storage")
        .expect("ok");
    let at = t.created_at;
    let m = OutboundMessage {
        id: MessageId::from_uuid(Uuid::from_u128(10)),
        tenant_id: t.id,
        portal_id: None,
        contact_id: None,
        kind: MailKind::PasswordReset,
        recipient: Email::parse("pat@client.example.org").expect("email"),
        recipient_name: None,
        payload: serde_json::json!({ "n": 1 }),
        secret: None,
        created_at: at,
    };
    let queue = |m: OutboundMessage| Outcome {
        messages: vec![m],
        ..Outcome::default()
    };
    let orphan = OutboundMessage {
        id: MessageId::from_uuid(Uuid::from_u128(11)),
        portal_id: Some(PortalId::from_uuid(Uuid::from_u128(99))),
        ..m.clone()
    };
    let err = storage
        .commit_outcome(t.id, &queue(orphan))
        .await
        .expect_err("no portal");
    assert!(matches!(err, StorageError::Invariant(_)), "{err:?}");
    storage
        .commit_outcome(t.id, &queue(m.clone()))
        .await
        .expect("storage")
        .expect("queued");

    let claimed = storage
        .claim_messages(at, at + chrono::Duration::minutes(1), 10)
        .await
        .expect("storage");
    assert_eq!(claimed.len(), 1);
    let long = "é".repeat(3_000);
    assert!(
        storage
            .mark_message_retry(t.id, m.id, 1, at, &long)
            .await
            .expect("storage")
    );
    let listed = storage
        .list_messages(t.id, Some(MessageStatus::Queued), PageRequest::first(10))
        .await
        .expect("storage");
    assert_eq!(
        listed[0].last_error.as_deref(),
        Some("é".repeat(1_000).as_str()),
        "cut to 1,000 characters"
    );

    sqlx::query(
        "UPDATE outbox_message SET secret_key_id = 'k', secret_nonce = zeroblob(24), secret_ciphertext = NULL \
         WHERE id = $1",
    )
    .bind(m.id.as_uuid())
    .execute(storage.pool())
    .await
    .expect_err("the schema keeps the secret's columns together");
    sqlx::query("UPDATE outbox_message SET kind = 'newsletter' WHERE id = $1")
        .bind(m.id.as_uuid())
        .execute(storage.pool())
        .await
        .expect_err("the schema knows the kinds");
    sqlx::query("UPDATE outbox_message SET recipient = 'not an address' WHERE id = $1")
        .bind(m.id.as_uuid())
        .execute(storage.pool())
        .await
        .expect("tampered");
    let err = storage.get_message(t.id, m.id).await.expect_err("corrupt");
    assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    sqlx::query("UPDATE tenant SET primary_colour = 'blue' WHERE tenant_id = $1")
        .bind(t.id.as_uuid())
        .execute(storage.pool())
        .await
        .expect("tampered");
    let err = storage.get_tenant(t.id).await.expect_err("corrupt");
    assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
}

/// A counted attempt stores its time as `last_attempt_at`, in the one statement that counts it;
/// a counter written before migration `attempt_times` (no time) goes at the first purge, and the
/// purge finds its rows through the indexes of that migration.
#[tokio::test]
async fn counters_keep_their_last_attempt_and_old_ones_are_purged() {
    use chrono::DateTime;
    use portal_core::storage::{AuthRepo, PurgeReport};

    let (storage, _dir) = store().await;
    let t = tenant(1);
    storage
        .commit_outcome(t.id, &writes(vec![Write::InsertTenant(t.clone())]))
        .await
        .expect("storage")
        .expect("ok");
    let now = t.created_at;
    let window = portal_core::auth::sign_in_window(now);
    assert_eq!(
        storage
            .count_sign_in_attempt(t.id, "account:a@example.com", window, now)
            .await
            .expect("storage"),
        1
    );
    let last: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_attempt_at FROM sign_in_attempts WHERE key = 'account:a@example.com'")
            .fetch_one(storage.pool())
            .await
            .expect("reads");
    assert_eq!(last, Some(now));
    sqlx::query(
        "INSERT INTO sign_in_attempts (tenant_id, key, window_start, count) VALUES ($1, 'address:192.0.2.1', $2, 3)",
    )
    .bind(t.id.as_uuid())
    .bind(window)
    .execute(storage.pool())
    .await
    .expect("a counter of before the migration");
    assert_eq!(
        storage.purge_expired(now).await.expect("storage"),
        PurgeReport {
            sign_in_attempts: 1,
            ..PurgeReport::default()
        }
    );
    assert_eq!(
        storage
            .count_sign_in_attempt(t.id, "account:a@example.com", window, now)
            .await
            .expect("storage"),
        2,
        "the counter with a time stays"
    );

    for (sql, index) in [
        (
            "DELETE FROM sign_in_attempts WHERE last_attempt_at IS NULL OR last_attempt_at < $1",
            "sign_in_attempts_by_last_attempt",
        ),
        (
            "DELETE FROM access_challenge WHERE expires_at < $1",
            "access_challenge_by_expiry",
        ),
        (
            "DELETE FROM contact_session WHERE expires_at <= $1",
            "contact_session_by_expiry",
        ),
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(now)
                .fetch_all(storage.pool())
                .await
                .expect("a plan");
        assert!(
            plan.iter().any(|(_, _, _, detail)| detail.contains(index)),
            "{sql}: {plan:?}"
        );
    }
}
