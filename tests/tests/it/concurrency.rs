//! Concurrent writers on the real backends, over separate pooled connections.

use std::sync::Arc;

use portal_core::CommandError;
use portal_core::service::ServiceError;
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
