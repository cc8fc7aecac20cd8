//! Concurrent writers on the real backends, over separate pooled connections.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use portal_core::CommandError;
use portal_core::crypto::Sealed;
use portal_core::id::MessageId;
use portal_core::mail::{MailKind, MessageSecret, MessageStatus};
use portal_core::outcome::{OutboundMessage, Outcome};
use portal_core::service::ServiceError;
use portal_core::storage::PageRequest;
use portal_core::task::{EvidenceType, TaskOwner, TaskStatus};
use portal_core::template::{TaskKey, TemplateInput, TemplatePhaseInput, TemplateTaskInput};
use portal_core::value::{Description, Priority, Title};
use portal_tests::fixtures;
use portal_tests::harness::{self, TestStore};

const WRITERS: usize = 16;

/// `WRITERS` independent MSP tasks and one final task that depends on all of them.
fn fan_in() -> TemplateInput {
    let task = |key: &str, deps: Vec<TaskKey>| TemplateTaskInput {
        key: TaskKey::parse(key).expect("key"),
        title: Title::parse(key).expect("title"),
        description: Description::empty(),
        owner: TaskOwner::Msp,
        evidence: EvidenceType::None,
        priority: Priority::Normal,
        due_offset: None,
        checklist: vec![],
        depends_on: deps,
        survey: vec![],
    };
    let mut tasks: Vec<_> = (0..WRITERS).map(|i| task(&format!("w{i}"), vec![])).collect();
    tasks.push(task(
        "final",
        (0..WRITERS)
            .map(|i| TaskKey::parse(&format!("w{i}")).expect("key"))
            .collect(),
    ));
    TemplateInput {
        name: fixtures::name("Fan-in"),
        description: Description::empty(),
        phases: vec![TemplatePhaseInput {
            name: fixtures::name("All"),
            description: Description::empty(),
            tasks,
        }],
    }
}

async fn many_writers_complete_different_tasks(store: TestStore) {
    let (engine, _) = harness::engine(store.storage.clone());
    let (_, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fan_in(), true).await;
    let state = engine.load_portal(&admin, portal).await.expect("portal");
    let workers: Vec<_> = state
        .tasks
        .iter()
        .filter(|t| t.depends_on.is_empty())
        .cloned()
        .collect();
    assert_eq!(workers.len(), WRITERS);
    let engine = Arc::new(engine);
    let admin = Arc::new(admin);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|t| {
            let (engine, admin) = (engine.clone(), admin.clone());
            tokio::spawn(async move { engine.complete_task(&admin, portal, t.id, t.version, None).await })
        })
        .collect();
    for h in handles {
        h.await.expect("writer ran").expect("every writer succeeds");
    }
    let after = engine.load_portal(&admin, portal).await.expect("portal");
    let done = after.tasks.iter().filter(|t| t.status == TaskStatus::Completed).count();
    assert_eq!(done, WRITERS, "no completion was lost");
    let last = after
        .tasks
        .iter()
        .find(|t| t.title.as_str() == "final")
        .expect("final task");
    assert_eq!(last.status, TaskStatus::Pending, "the dependent saw every completion");
    store.cleanup().await;
}

async fn two_writers_race_on_one_task(store: TestStore) {
    let (engine, _) = harness::engine(store.storage.clone());
    let (_, admin) = fixtures::tenant(&engine, "acme").await;
    let (_, _, portal) = fixtures::portal(&engine, &admin, &fan_in(), true).await;
    let state = engine.load_portal(&admin, portal).await.expect("portal");
    let engine = Arc::new(engine);
    let admin = Arc::new(admin);
    for t in state.tasks.iter().filter(|t| t.depends_on.is_empty()) {
        let race: Vec<_> = (0..2)
            .map(|_| {
                let (engine, admin, t) = (engine.clone(), admin.clone(), t.clone());
                tokio::spawn(async move { engine.complete_task(&admin, portal, t.id, t.version, None).await })
            })
            .collect();
        let mut won = 0;
        let mut stale = 0;
        for h in race {
            match h.await.expect("writer ran") {
                Ok(_) => won += 1,
                Err(ServiceError::Command(CommandError::Stale { .. })) => stale += 1,
                Err(e) => panic!("unexpected result {e:?}"),
            }
        }
        assert_eq!(
            (won, stale),
            (1, 1),
            "exactly one writer wins, the other gets the stale result"
        );
    }
    let after = engine.load_portal(&admin, portal).await.expect("portal");
    assert_eq!(
        after.tasks.iter().filter(|t| t.status == TaskStatus::Completed).count(),
        WRITERS
    );
    store.cleanup().await;
}

const MESSAGES: usize = 300;
const CLAIMERS: usize = 4;

/// `CLAIMERS` workers claim small batches of `MESSAGES` due messages of two tenants at once and
/// mark each sent: every message is claimed exactly once, on its first attempt, and ends sent.
async fn concurrent_claimers_claim_each_message_once(store: TestStore) {
    let storage = store.storage.clone();
    let (engine, _) = harness::engine(storage.clone());
    let (acme, _) = fixtures::tenant(&engine, "acme").await;
    let (other, _) = fixtures::tenant(&engine, "other").await;
    let mut ctx = engine.ctx();
    let t0 = ctx.now;
    let mut queued: Vec<(portal_core::id::TenantId, MessageId)> = Vec::new();
    for (k, tenant) in [acme.id, other.id].into_iter().enumerate() {
        let messages: Vec<OutboundMessage> = (0..MESSAGES / 2)
            .map(|i| {
                let n = u8::try_from(i % 251).expect("small");
                OutboundMessage {
                    id: ctx.ids.next_id(),
                    tenant_id: tenant,
                    portal_id: None,
                    contact_id: None,
                    kind: MailKind::AccessLink,
                    recipient: fixtures::email(&format!("user{i}@client.example.org")),
                    recipient_name: None,
                    payload: serde_json::json!({ "i": i }),
                    secret: Some(MessageSecret::Sealed {
                        sealed: Sealed {
                            key_id: "00112233aabbccdd".to_owned(),
                            nonce: vec![n; 24],
                            ciphertext: vec![n; 40],
                        },
                    }),
                    // Interleaved due times across the two tenants.
                    created_at: t0 + Duration::milliseconds(i64::try_from(2 * i + k).expect("small")),
                }
            })
            .collect();
        queued.extend(messages.iter().map(|m| (tenant, m.id)));
        let outcome = Outcome {
            messages,
            ..Outcome::default()
        };
        storage
            .commit_outcome(tenant, &outcome)
            .await
            .expect("storage")
            .expect("queued");
    }
    let now = t0 + Duration::hours(1);
    let lease = now + Duration::minutes(10);
    let workers: Vec<_> = (0..CLAIMERS)
        .map(|w| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = storage.claim_messages(now, lease, 3 + w * 2).await.expect("claim");
                    if batch.is_empty() {
                        return mine;
                    }
                    for c in batch {
                        assert_eq!(c.attempt, 1, "claimed once");
                        assert!(
                            storage
                                .mark_message_sent(c.message.tenant_id, c.message.id, c.attempt, now)
                                .await
                                .expect("mark"),
                            "the claimer's attempt is the current one"
                        );
                        mine.push((c.message.tenant_id, c.message.id));
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in workers {
        all.extend(h.await.expect("claimer ran"));
    }
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "no message was claimed twice");
    let expected: HashSet<_> = queued.into_iter().collect();
    assert_eq!(distinct, expected, "every message was claimed");
    for tenant in [acme.id, other.id] {
        let sent = storage
            .list_messages(tenant, Some(MessageStatus::Sent), PageRequest::first(500))
            .await
            .expect("storage");
        assert_eq!(sent.len(), MESSAGES / 2);
        assert!(sent.iter().all(|e| e.attempts == 1));
    }
    assert!(
        storage
            .claim_messages(now + Duration::days(1), lease + Duration::days(1), 500)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is left to claim"
    );
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_claimers_claim_each_message_once() {
    concurrent_claimers_claim_each_message_once(harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claimers_claim_each_message_once() {
    let Some(store) = harness::postgres().await else { return };
    concurrent_claimers_claim_each_message_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_many_writers_complete_different_tasks() {
    many_writers_complete_different_tasks(harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_writers_race_on_one_task() {
    two_writers_race_on_one_task(harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_many_writers_complete_different_tasks() {
    let Some(store) = harness::postgres().await else { return };
    many_writers_complete_different_tasks(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_writers_race_on_one_task() {
    let Some(store) = harness::postgres().await else { return };
    two_writers_race_on_one_task(store).await;
}
