//! MAIL-3 under failure, on both backends, with messages queued the real way (an engine
//! activating portals with contacts, so every invitation carries a sealed token) and delivered
//! by the real worker and SMTP transport to an SMTP server on loopback:
//!
//! - a worker that dies between the send and the mark (its `run_once` dropped mid-batch) loses
//!   nothing: after the lease, a fresh worker sends the unmarked messages again, with the same
//!   `Message-ID` and idempotency key;
//! - an unreachable server keeps every message queued, with back-off, until a server answers;
//! - a server that refuses the recipient fails the messages for good, and staff can queue them
//!   again;
//! - PERF-12's correctness half: two workers on separate connections to one PostgreSQL database
//!   never send one message twice.

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use portal_core::commands::portal::StartOnboarding;
use portal_core::id::{MessageId, TenantId};
use portal_core::mail::{
    Delivered, Mailbox, MessageSecret, MessageStatus, OutboxEntry, OutgoingEmail, SendError, Transport,
};
use portal_core::policy::Principal;
use portal_core::portal::{ContactInput, ContactRole};
use portal_core::service::Engine;
use portal_core::storage::{Clock as _, PageRequest, Storage};
use portal_mail::{OutboxWorker, Renderer, TransportOptions, WorkerSettings, WorkerStats, transport_from_url};
use portal_server::app::OsEntropy;
use portal_tests::fixtures;
use portal_tests::harness::{self, TestClock, TestStore, test_master_key};

use crate::on_both_backends;
use crate::smtp::Received;

/// The host of the renderer's public URL: every `Message-ID` ends with it.
const PUBLIC_HOST: &str = "portal.outbox.test";

// ---------------------------------------------------------------------------------------------
// An SMTP server on loopback that accepts or refuses

#[derive(Default)]
struct Shared {
    /// Answer `RCPT TO` with 550.
    refuse: AtomicBool,
    inbox: Mutex<Vec<Received>>,
}

#[derive(Clone, Default)]
struct Capture {
    shared: Arc<Shared>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Capture {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.shared.refuse.load(Ordering::SeqCst) {
            Response::custom(550, "5.1.1 no such mailbox here".to_owned())
        } else {
            response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.shared
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Received {
                to: std::mem::take(&mut self.to),
                data: std::mem::take(&mut self.data),
            });
        response::OK
    }
}

/// The server's port and what it accepted. Unlike `crate::smtp::SmtpSink` it serves 32
/// connections at once: a lettre pool parks its idle connections on server threads, and two
/// workers each sending 8 at a time would otherwise wait for a free thread.
struct Sink {
    port: u16,
    shared: Arc<Shared>,
}

impl Sink {
    fn start(refuse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("an address").port();
        let handler = Capture::default();
        handler.shared.refuse.store(refuse, Ordering::SeqCst);
        let shared = handler.shared.clone();
        let mut server = Server::new(handler);
        server
            .with_name("localhost")
            .with_ssl(SslConfig::None)
            .expect("no TLS")
            .with_num_threads(32)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self { port, shared }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.shared.inbox.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("smtp://127.0.0.1:{port}?tls=none")
}

// ---------------------------------------------------------------------------------------------
// Queueing the real way, and the worker

/// A tenant whose administrator activated `portals` portals of `contacts` contacts each: one
/// invitation per contact, its token sealed by the engine, in the outbox.
struct Queued {
    engine: Engine,
    clock: Arc<TestClock>,
    tenant: TenantId,
    admin: Principal,
    /// Every queued message's id.
    ids: BTreeSet<MessageId>,
}

fn contact_inputs(portal: usize, n: usize) -> Vec<ContactInput> {
    (0..n)
        .map(|i| ContactInput {
            name: fixtures::name(&format!("Contact {i}")),
            email: fixtures::email(&format!("c{i}.p{portal}@client.example.org")),
            role: if i == 0 {
                ContactRole::PrimaryContact
            } else {
                ContactRole::It
            },
            primary: i == 0,
        })
        .collect()
}

async fn queue_invitations(storage: Arc<dyn Storage>, portals: usize, contacts: usize) -> Queued {
    let (engine, clock) = harness::engine(storage);
    let (tenant, admin) = fixtures::tenant(&engine, "outbox").await;
    let template = engine
        .create_template(&admin, &fixtures::small_template())
        .await
        .expect("template");
    for p in 0..portals {
        let company = engine
            .create_company(&admin, fixtures::name(&format!("Client {p}")))
            .await
            .expect("company");
        engine
            .start_onboarding(
                &admin,
                company.id,
                template,
                &StartOnboarding {
                    name: fixtures::name(&format!("Client {p} onboarding")),
                    contacts: contact_inputs(p, contacts),
                    activate: true,
                },
            )
            .await
            .expect("portal started and activated");
    }
    let entries = outbox(engine.storage(), tenant.id).await;
    assert_eq!(entries.len(), portals * contacts, "one invitation per contact");
    for e in &entries {
        assert_eq!(e.status, MessageStatus::Queued);
        let m = engine
            .storage()
            .get_message(tenant.id, e.id)
            .await
            .expect("storage")
            .expect("the message");
        assert!(
            matches!(m.secret, Some(MessageSecret::Sealed { .. })),
            "queued with its token sealed"
        );
    }
    Queued {
        engine,
        clock,
        tenant: tenant.id,
        admin,
        ids: entries.iter().map(|e| e.id).collect(),
    }
}

/// Every message of the tenant, as staff see them.
async fn outbox(storage: &Arc<dyn Storage>, tenant: TenantId) -> Vec<OutboxEntry> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(200);
    loop {
        let batch = storage.list_messages(tenant, None, page).await.expect("storage");
        let Some(last) = batch.last().map(|e| e.id) else {
            break;
        };
        let full = batch.len() == 200;
        all.extend(batch);
        if !full {
            break;
        }
        page = PageRequest {
            after: Some(last),
            limit: 200,
        };
    }
    all
}

fn worker(
    storage: Arc<dyn Storage>,
    transport: Arc<dyn Transport>,
    clock: Arc<TestClock>,
    settings: WorkerSettings,
) -> OutboxWorker {
    let renderer = Renderer::new(
        &format!("https://{PUBLIC_HOST}"),
        Mailbox {
            name: None,
            email: fixtures::email("portal@outbox.test"),
        },
    )
    .expect("a renderer");
    OutboxWorker::new(
        storage,
        transport,
        renderer,
        &test_master_key(),
        clock,
        Arc::new(OsEntropy),
        settings,
    )
}

fn smtp(url: &str) -> Arc<dyn Transport> {
    transport_from_url(
        url,
        &TransportOptions {
            timeout: Duration::from_secs(10),
            ..TransportOptions::default()
        },
    )
    .expect("an SMTP URL")
}

/// What arrived, per `Message-ID`: the idempotency keys and the envelope recipients of every
/// copy.
#[derive(Debug, Default)]
struct Copies {
    count: usize,
    keys: BTreeSet<String>,
    recipients: BTreeSet<Vec<String>>,
}

fn by_message_id(mails: &[Received]) -> HashMap<String, Copies> {
    let mut out: HashMap<String, Copies> = HashMap::new();
    for m in mails {
        let parsed = m.parsed();
        let id = parsed.message_id().expect("a Message-ID").to_owned();
        let key = parsed
            .header("X-Portal-Idempotency-Key")
            .and_then(|h| h.as_text())
            .expect("an idempotency key")
            .to_owned();
        let c = out.entry(id).or_default();
        c.count += 1;
        c.keys.insert(key);
        c.recipients.insert(m.to.clone());
    }
    out
}

/// Every queued message arrived at least once, under its own `Message-ID`
/// (`<message id>@<public host>`) and idempotency key (the message id), every copy of one
/// message to the same recipient. Returns how many copies were duplicates.
fn assert_each_delivered(mails: &[Received], ids: &BTreeSet<MessageId>) -> usize {
    let copies = by_message_id(mails);
    assert_eq!(copies.len(), ids.len(), "one Message-ID per message");
    for id in ids {
        let message_id = format!("{id}@{PUBLIC_HOST}");
        let c = copies
            .get(&message_id)
            .unwrap_or_else(|| panic!("message {id} was never delivered"));
        assert_eq!(
            c.keys,
            BTreeSet::from([id.as_uuid().to_string()]),
            "every copy of {message_id} carries the message's idempotency key"
        );
        assert_eq!(c.recipients.len(), 1, "every copy of {message_id} to one recipient");
    }
    copies.values().map(|c| c.count - 1).sum()
}

async fn assert_all(storage: &Arc<dyn Storage>, tenant: TenantId, status: MessageStatus) -> Vec<OutboxEntry> {
    let entries = outbox(storage, tenant).await;
    for e in &entries {
        assert_eq!(e.status, status, "{e:?}");
    }
    entries
}

// ---------------------------------------------------------------------------------------------
// A worker that dies between the send and the mark

/// The real SMTP transport whose first `hang` sends never return once the server accepted the
/// message: the process died after the send, before the worker marked the message sent.
struct DiesAfterSending {
    inner: Arc<dyn Transport>,
    hang: AtomicUsize,
    hung: AtomicUsize,
}

/// What `#[async_trait]` makes of `Transport::send` (this crate does not depend on the macro).
type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>>;

impl Transport for DiesAfterSending {
    fn send<'life0, 'life1, 'async_trait>(&'life0 self, email: &'life1 OutgoingEmail) -> SendFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let delivered = self.inner.send(email).await?;
            if self
                .hang
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                self.hung.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            Ok(delivered)
        })
    }
}

async fn a_crash_between_send_and_mark_redelivers_with_the_same_message_id(store: &TestStore) {
    const PORTALS: usize = 4;
    const CONTACTS: usize = 6;
    const HANG: usize = 5;
    let total = PORTALS * CONTACTS;
    let q = queue_invitations(store.storage.clone(), PORTALS, CONTACTS).await;
    let storage = store.storage.clone();
    let sink = Sink::start(false);
    let dying = Arc::new(DiesAfterSending {
        inner: smtp(&sink.url()),
        hang: AtomicUsize::new(HANG),
        hung: AtomicUsize::new(0),
    });
    let settings = WorkerSettings::default();
    let first = worker(storage.clone(), dying.clone(), q.clock.clone(), settings);

    // The batch runs until every message was handed to the server and all but the hung ones
    // were marked sent; then the worker is dropped mid-batch, as a killed process would be.
    let settled = async {
        loop {
            let sent = outbox(&storage, q.tenant)
                .await
                .iter()
                .filter(|e| e.status == MessageStatus::Sent)
                .count();
            if dying.hung.load(Ordering::SeqCst) == HANG && sent == total - HANG {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = first.run_once() => panic!("the batch must not complete: {r:?}"),
        () = settled => {}
        () = tokio::time::sleep(Duration::from_secs(60)) => panic!("the batch never settled"),
    }
    drop(first);
    assert_eq!(sink.received().len(), total, "every message reached the server once");
    let entries = outbox(&storage, q.tenant).await;
    let sending: Vec<&OutboxEntry> = entries.iter().filter(|e| e.status == MessageStatus::Sending).collect();
    assert_eq!(sending.len(), HANG, "delivered but never marked: still `sending`");
    for e in &sending {
        let m = storage
            .get_message(q.tenant, e.id)
            .await
            .expect("storage")
            .expect("the message");
        assert!(m.secret.is_some(), "an unmarked message keeps its sealed token");
    }

    // A fresh worker (the restarted process) leaves them alone while the lease holds...
    let plain = worker(storage.clone(), smtp(&sink.url()), q.clock.clone(), settings);
    assert_eq!(
        plain.run_once().await.expect("runs").claimed,
        0,
        "the lease still holds"
    );
    // ... and sends them again once it ran out.
    q.clock.advance(settings.lease + chrono::Duration::seconds(1));
    let stats = plain.run_once().await.expect("runs");
    assert_eq!(
        stats,
        WorkerStats {
            claimed: HANG,
            sent: HANG,
            retried: 0,
            failed: 0
        }
    );
    assert_eq!(plain.run_once().await.expect("runs").claimed, 0);

    let entries = assert_all(&storage, q.tenant, MessageStatus::Sent).await;
    assert_eq!(entries.len(), total);
    for e in &entries {
        let redelivered = sending.iter().any(|s| s.id == e.id);
        assert_eq!(e.attempts, if redelivered { 2 } else { 1 }, "{e:?}");
        let m = storage
            .get_message(q.tenant, e.id)
            .await
            .expect("storage")
            .expect("the message");
        assert_eq!(m.secret, None, "the token is deleted once sent");
    }
    let mails = sink.received();
    assert_eq!(mails.len(), total + HANG);
    let duplicates = assert_each_delivered(&mails, &q.ids);
    assert_eq!(duplicates, HANG, "exactly the unmarked messages went twice");
}

on_both_backends!(
    outbox_a_crash_between_send_and_mark_redelivers_with_the_same_message_id_on_sqlite,
    outbox_a_crash_between_send_and_mark_redelivers_with_the_same_message_id_on_postgres,
    a_crash_between_send_and_mark_redelivers_with_the_same_message_id
);

// ---------------------------------------------------------------------------------------------
// An unreachable server

async fn an_unreachable_smtp_server_keeps_mail_queued(store: &TestStore) {
    let q = queue_invitations(store.storage.clone(), 3, 2).await;
    let storage = store.storage.clone();
    let settings = WorkerSettings::default();
    let down = worker(storage.clone(), smtp(&closed_port_url()), q.clock.clone(), settings);
    let stats = down.run_once().await.expect("runs");
    assert_eq!(
        stats,
        WorkerStats {
            claimed: 6,
            sent: 0,
            retried: 6,
            failed: 0
        }
    );
    // read after the run: later than the worker's clock by a few ticks of a millisecond
    let now = q.clock.now();
    let entries = assert_all(&storage, q.tenant, MessageStatus::Queued).await;
    assert_eq!(entries.len(), 6, "nothing lost");
    for e in &entries {
        assert_eq!(e.attempts, 1, "{e:?}");
        let error = e.last_error.as_deref().expect("the failure is noted");
        assert!(error.contains("127.0.0.1"), "{error}");
        // equal jitter over a 30 s base: between 15 and 30 s later
        assert!(
            e.next_attempt_at > now + chrono::Duration::seconds(14)
                && e.next_attempt_at <= now + chrono::Duration::seconds(31),
            "backed off: {e:?}, now {now}"
        );
        let m = storage
            .get_message(q.tenant, e.id)
            .await
            .expect("storage")
            .expect("the message");
        assert!(m.secret.is_some(), "kept for the retry");
    }
    assert_eq!(down.run_once().await.expect("runs").claimed, 0, "not due yet");

    // Later, a server answers.
    q.clock.advance(chrono::Duration::seconds(31));
    let sink = Sink::start(false);
    let up = worker(storage.clone(), smtp(&sink.url()), q.clock.clone(), settings);
    let stats = up.run_once().await.expect("runs");
    assert_eq!((stats.claimed, stats.sent), (6, 6), "{stats:?}");
    for e in assert_all(&storage, q.tenant, MessageStatus::Sent).await {
        assert_eq!(e.attempts, 2, "{e:?}");
    }
    let mails = sink.received();
    assert_eq!(mails.len(), 6);
    assert_eq!(assert_each_delivered(&mails, &q.ids), 0);
}

on_both_backends!(
    outbox_an_unreachable_smtp_server_keeps_mail_queued_on_sqlite,
    outbox_an_unreachable_smtp_server_keeps_mail_queued_on_postgres,
    an_unreachable_smtp_server_keeps_mail_queued
);

// ---------------------------------------------------------------------------------------------
// A refusing server

async fn a_refusing_server_fails_permanently_and_staff_can_retry(store: &TestStore) {
    let q = queue_invitations(store.storage.clone(), 2, 2).await;
    let storage = store.storage.clone();
    let settings = WorkerSettings::default();
    let refusing = Sink::start(true);
    let stats = worker(storage.clone(), smtp(&refusing.url()), q.clock.clone(), settings)
        .run_once()
        .await
        .expect("runs");
    assert_eq!((stats.claimed, stats.failed, stats.sent), (4, 4, 0), "{stats:?}");
    assert!(refusing.received().is_empty());
    for e in assert_all(&storage, q.tenant, MessageStatus::Failed).await {
        let error = e.last_error.as_deref().expect("the refusal is noted");
        assert!(error.contains("550"), "{error}");
        assert_eq!(e.attempts, 1, "failed at once, no retry");
    }

    // Staff queue them again (the outbox API's retry).
    for id in &q.ids {
        q.engine.retry_message(&q.admin, *id).await.expect("queued again");
    }
    for e in assert_all(&storage, q.tenant, MessageStatus::Queued).await {
        assert_eq!((e.attempts, e.last_error.is_some()), (0, true), "{e:?}");
    }
    assert!(
        q.engine
            .retry_message(&q.admin, *q.ids.first().expect("one"))
            .await
            .is_err(),
        "only a failed message can be queued again"
    );
    let good = Sink::start(false);
    let stats = worker(storage.clone(), smtp(&good.url()), q.clock.clone(), settings)
        .run_once()
        .await
        .expect("runs");
    assert_eq!((stats.claimed, stats.sent), (4, 4), "{stats:?}");
    assert_all(&storage, q.tenant, MessageStatus::Sent).await;
    assert_eq!(assert_each_delivered(&good.received(), &q.ids), 0);
}

on_both_backends!(
    outbox_a_refusing_server_fails_permanently_and_staff_can_retry_on_sqlite,
    outbox_a_refusing_server_fails_permanently_and_staff_can_retry_on_postgres,
    a_refusing_server_fails_permanently_and_staff_can_retry
);

// ---------------------------------------------------------------------------------------------
// PERF-12, correctness: two workers on one PostgreSQL database

/// Runs batches until one claims nothing; returns the sum of their stats.
async fn drain(worker: OutboxWorker) -> WorkerStats {
    let mut all = WorkerStats::default();
    loop {
        let s = worker.run_once().await.expect("runs");
        if s.claimed == 0 {
            return all;
        }
        all.claimed += s.claimed;
        all.sent += s.sent;
        all.retried += s.retried;
        all.failed += s.failed;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_two_workers_never_send_one_message_twice_on_postgres() {
    let Some(store) = harness::postgres().await else {
        return;
    };
    let q = queue_invitations(store.storage.clone(), 10, 50).await;
    let url = store.database_url.clone().expect("a database URL");
    let sink = Sink::start(false);
    let settings = WorkerSettings {
        // small batches: the two workers take turns many times over the 500 messages
        batch: 16,
        ..WorkerSettings::default()
    };
    let mut tasks = Vec::new();
    for _ in 0..2 {
        // a store of its own, on connections of its own: another process
        let storage: Arc<dyn Storage> = Arc::new(
            portal_storage_postgres::PgStorage::connect(&url)
                .await
                .expect("a second connection pool"),
        );
        let w = worker(storage, smtp(&sink.url()), q.clock.clone(), settings);
        tasks.push(tokio::spawn(drain(w)));
    }
    let mut stats = Vec::new();
    for t in tasks {
        stats.push(t.await.expect("the worker task"));
    }
    assert_eq!(stats.iter().map(|s| s.claimed).sum::<usize>(), 500, "{stats:?}");
    assert_eq!(stats.iter().map(|s| s.sent).sum::<usize>(), 500, "{stats:?}");
    assert!(stats.iter().all(|s| s.sent > 0), "both workers delivered: {stats:?}");
    let entries = assert_all(&store.storage, q.tenant, MessageStatus::Sent).await;
    assert_eq!(entries.len(), 500);
    assert!(entries.iter().all(|e| e.attempts == 1), "each message claimed once");
    let mails = sink.received();
    assert_eq!(mails.len(), 500, "each message received exactly once");
    assert_eq!(assert_each_delivered(&mails, &q.ids), 0);
    store.cleanup().await;
}
