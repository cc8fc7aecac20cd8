//! The outbox worker (MAIL-3): claims due messages, opens their secrets, renders, sends and
//! records each result.
//!
//! # Decisions
//!
//! - A claim is a lease (`WorkerSettings::lease`). The worker marks a message sent only after the
//!   transport accepted it; a crash in between leaves it `sending` until the lease runs out, and
//!   the next claim sends it again with the same `Message-ID` and idempotency key.
//! - Sent messages are marked by a group commit running beside the sends
//!   ([`portal_core::storage::OutboxRepo::mark_messages_sent`]): each commit takes every mark
//!   that arrived while the previous one ran, so no send slot waits for a transaction of its own.
//!   A crash loses at most the marks not yet committed; those messages go again after their
//!   lease, under the same `Message-ID`.
//! - A message whose lease has already run out when its turn comes (a slow batch) is not sent:
//!   another worker may have claimed it, and it is left to that claim.
//! - Transient failures are retried after [`RetryPolicy::delay_after`] with random jitter, and
//!   marked failed once the policy has no attempt left; permanent failures, render errors, sealed
//!   secrets that do not open and messages of a tenant that no longer exists fail at once.
//! - [`OutboxWorker::run`] finishes the batch in flight before it stops, so a shutdown never cuts
//!   a message off between its send and its mark (each send is bounded by the transport's
//!   timeout).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _, future, stream};
use portal_core::crypto::{KeyPurpose, MasterKey, SealingKey};
use portal_core::id::TenantId;
use portal_core::mail::{
    ClaimedMessage, MessageSecret, OutboundMessage, RetryPolicy, SecretText, SendError, SentMark, Transport,
};
use portal_core::storage::{Clock, Entropy, Storage, StorageError};
use portal_core::tenant::Tenant;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::render::Renderer;

/// How the worker claims and paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Most messages claimed at once. Default 64.
    pub batch: usize,
    /// How long a claim lasts before another worker may take the message. Longer than a batch
    /// takes to send. Default 5 minutes.
    pub lease: chrono::Duration,
    /// Pause when nothing was due. Default 1 s.
    pub poll_interval: Duration,
    /// Most sends in flight at once. Default 8.
    pub concurrency: usize,
    /// Back-off after transient failures.
    pub retry: RetryPolicy,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch: 64,
            lease: chrono::Duration::minutes(5),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            retry: RetryPolicy::default(),
        }
    }
}

/// What one [`OutboxWorker::run_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStats {
    /// Messages claimed.
    pub claimed: usize,
    /// Accepted by the transport and marked sent.
    pub sent: usize,
    /// Transient failures queued again for later.
    pub retried: usize,
    /// Marked failed.
    pub failed: usize,
}

/// What became of one claimed message.
enum Done {
    Sent,
    Retried,
    Failed,
    /// Its lease ran out before its turn; left to whoever claims it next.
    Skipped,
}

/// Longest error text stored with a message.
const MAX_ERROR_CHARS: usize = 1000;

/// Longest pause after storage errors.
const MAX_BACK_OFF: Duration = Duration::from_secs(60);

/// How long [`OutboxWorker::run`] reuses a tenant it read (its branding and time zone): a
/// change shows in mail within this time.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(30);

/// A claimed batch and the end of its lease.
type ClaimResult = Result<(Vec<ClaimedMessage>, DateTime<Utc>), StorageError>;

/// The tenants of claimed messages, each kept for [`TENANT_CACHE_TTL`] (`None`: gone).
#[derive(Default)]
struct TenantCache {
    tenants: HashMap<TenantId, (Option<Arc<Tenant>>, std::time::Instant)>,
}

impl TenantCache {
    /// Reads the tenants of `batch` that are not cached or whose entry is too old.
    async fn fill(&mut self, worker: &OutboxWorker, batch: &[ClaimedMessage]) -> Result<(), StorageError> {
        for c in batch {
            let id = c.message.tenant_id;
            let fresh = self
                .tenants
                .get(&id)
                .is_some_and(|(_, at)| at.elapsed() < TENANT_CACHE_TTL);
            if !fresh {
                let tenant = worker.storage.get_tenant(id).await?.map(Arc::new);
                self.tenants.insert(id, (tenant, std::time::Instant::now()));
            }
        }
        Ok(())
    }

    fn get(&self, id: TenantId) -> Option<Arc<Tenant>> {
        self.tenants.get(&id).and_then(|(t, _)| t.clone())
    }
}

/// Delivers the outbox: see the [module documentation](self).
pub struct OutboxWorker {
    storage: Arc<dyn Storage>,
    transport: Arc<dyn Transport>,
    renderer: Renderer,
    key: SealingKey,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    settings: WorkerSettings,
}

impl std::fmt::Debug for OutboxWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxWorker")
            .field("renderer", &self.renderer)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The domain of an address, for logs at `info` level.
fn domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("?", |(_, d)| d)
}

fn clip(text: &str) -> String {
    if text.chars().count() > MAX_ERROR_CHARS {
        text.chars().take(MAX_ERROR_CHARS).collect()
    } else {
        text.to_owned()
    }
}

impl OutboxWorker {
    /// A worker over `storage`, sending through `transport`. Secrets are opened with the outbox
    /// key of `master_key` (the key the engine sealed them with).
    #[must_use]
    pub fn new(
        storage: Arc<dyn Storage>,
        transport: Arc<dyn Transport>,
        renderer: Renderer,
        master_key: &MasterKey,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            storage,
            transport,
            renderer,
            key: master_key.sealing_key(KeyPurpose::Outbox),
            clock,
            entropy,
            settings,
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// Claims one batch of due messages and delivers it.
    ///
    /// # Errors
    ///
    /// The first [`StorageError`] of the claim, the tenant look-ups or the marks. Every message of
    /// the batch is still attempted and marked where storage allowed; one left unmarked is
    /// claimed again when its lease runs out.
    pub async fn run_once(&self) -> Result<WorkerStats, StorageError> {
        let now = self.clock.now();
        let lease_until = now + self.settings.lease;
        let claimed = self
            .storage
            .claim_messages(now, lease_until, self.settings.batch.max(1))
            .await?;
        let mut stats = WorkerStats {
            claimed: claimed.len(),
            ..WorkerStats::default()
        };
        if claimed.is_empty() {
            return Ok(stats);
        }
        let mut tenants: HashMap<TenantId, Option<Tenant>> = HashMap::new();
        for c in &claimed {
            let id = c.message.tenant_id;
            if let Entry::Vacant(slot) = tenants.entry(id) {
                slot.insert(self.storage.get_tenant(id).await?);
            }
        }
        // Sent messages are marked by a group commit running beside the sends: whatever was
        // delivered since the last commit goes in the next one, so no send waits for a
        // transaction of its own. A crash loses at most the marks not yet committed; those
        // messages are sent again after their lease, under the same Message-ID.
        let (marks, pending) = unbounded_channel::<SentMark>();
        let sends = async {
            let results: Vec<Result<Done, StorageError>> = stream::iter(claimed.into_iter().map(|c| {
                let tenant = tenants.get(&c.message.tenant_id).and_then(Option::as_ref);
                self.deliver(c, tenant, lease_until, &marks)
            }))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
            drop(marks);
            results
        };
        let (results, flushed) = future::join(sends, self.flush_marks(pending)).await;
        let mut first_error = flushed.err();
        for r in results {
            match r {
                Ok(Done::Sent) => stats.sent += 1,
                Ok(Done::Retried) => stats.retried += 1,
                Ok(Done::Failed) => stats.failed += 1,
                Ok(Done::Skipped) => {}
                Err(e) => {
                    tracing::error!(error = %e, "outbox worker: recording a delivery result failed; the message is claimed again when its lease runs out");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    /// Delivers until `shutdown` completes, as a pipeline: up to `concurrency` sends in flight
    /// at all times, the next batch claimed while the current one is still being sent (when
    /// fewer than a batch of claimed messages wait), sent messages marked by one group commit
    /// running beside it all, and the tenants of messages kept for [`TENANT_CACHE_TTL`]. When a
    /// claim finds less than a full batch, the next waits `poll_interval`; while storage fails,
    /// a growing pause (up to a minute). On shutdown it claims nothing more, finishes every
    /// message it claimed (so none waits for its lease), commits the last marks, and returns.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (marks, pending) = unbounded_channel::<SentMark>();
        let flushed = self.flush_marks(pending).map(|result| {
            if let Err(e) = result {
                tracing::error!(error = %e, "outbox worker: some marks were not recorded; those messages go again after their lease");
            }
        });
        future::join(self.pipeline(marks, shutdown), flushed).await;
        tracing::info!("outbox worker stopped");
    }

    async fn pipeline(&self, marks: UnboundedSender<SentMark>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let concurrency = self.settings.concurrency.max(1);
        // Claim the next batch while a whole batch still waits: a claim takes a few
        // milliseconds, and the sends must not run dry meanwhile.
        let refill = self.settings.batch.max(concurrency);
        let mut queue: VecDeque<(ClaimedMessage, DateTime<Utc>)> = VecDeque::new();
        let mut in_flight = FuturesUnordered::new();
        let mut claim: Option<Pin<Box<dyn Future<Output = ClaimResult> + Send + '_>>> = None;
        let mut tenants = TenantCache::default();
        let mut next_claim = tokio::time::Instant::now();
        let mut failures: u32 = 0;
        let mut stopping = false;
        loop {
            if !stopping && claim.is_none() && queue.len() < refill && tokio::time::Instant::now() >= next_claim {
                claim = Some(Box::pin(self.claim_batch()));
            }
            while in_flight.len() < concurrency {
                let Some((c, lease_until)) = queue.pop_front() else {
                    break;
                };
                let tenant = tenants.get(c.message.tenant_id);
                let marks = marks.clone();
                in_flight.push(async move { self.deliver(c, tenant.as_deref(), lease_until, &marks).await });
            }
            if stopping && in_flight.is_empty() && queue.is_empty() && claim.is_none() {
                break;
            }
            tokio::select! {
                () = shutdown.as_mut(), if !stopping => stopping = true,
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "outbox worker: recording a delivery result failed; the message is claimed again when its lease runs out");
                    }
                }
                result = async { claim.as_mut().expect("guarded by the branch condition").await }, if claim.is_some() => {
                    claim = None;
                    match result {
                        Ok((batch, lease_until)) => {
                            failures = 0;
                            if batch.len() < self.settings.batch.max(1) {
                                // Everything due is claimed: look again after the poll interval.
                                next_claim = tokio::time::Instant::now() + self.settings.poll_interval;
                            }
                            match tenants.fill(self, &batch).await {
                                Ok(()) => queue.extend(batch.into_iter().map(|c| (c, lease_until))),
                                Err(e) => {
                                    // Left to their lease: claimed again once it runs out.
                                    tracing::error!(error = %e, messages = batch.len(), "outbox worker: reading tenants failed");
                                    next_claim = tokio::time::Instant::now() + self.settings.poll_interval;
                                }
                            }
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let pause = self
                                .settings
                                .poll_interval
                                .max(Duration::from_millis(100))
                                .saturating_mul(1 << failures.min(10))
                                .min(MAX_BACK_OFF);
                            tracing::error!(error = %e, failures, pause_ms = pause.as_millis(), "outbox worker: storage failed");
                            next_claim = tokio::time::Instant::now() + pause;
                        }
                    }
                }
                () = tokio::time::sleep_until(next_claim), if !stopping && claim.is_none() && queue.len() < refill => {}
            }
        }
    }

    /// Claims one batch: the messages and the end of their lease.
    async fn claim_batch(&self) -> ClaimResult {
        let now = self.clock.now();
        let lease_until = now + self.settings.lease;
        let batch = self
            .storage
            .claim_messages(now, lease_until, self.settings.batch.max(1))
            .await?;
        Ok((batch, lease_until))
    }

    /// Commits the marks of delivered messages as they arrive, in groups: each commit takes
    /// every mark that came in while the previous one ran. Ends when every sender is gone.
    async fn flush_marks(&self, mut pending: UnboundedReceiver<SentMark>) -> Result<(), StorageError> {
        let mut first_error = None;
        let mut group = Vec::new();
        while let Some(mark) = pending.recv().await {
            group.push(mark);
            while let Ok(mark) = pending.try_recv() {
                group.push(mark);
            }
            match self.storage.mark_messages_sent(&group).await {
                Ok(applied) if applied < group.len() => tracing::warn!(
                    marks = group.len(),
                    applied,
                    "outbox claims were taken over by other attempts; their results not recorded"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, marks = group.len(), "outbox worker: marking sent failed; those messages are claimed again when their lease runs out");
                    first_error.get_or_insert(e);
                }
            }
            group.clear();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Opens the message's secret: `Ok(None)` when it has none, `Err(reason)` when it does not
    /// open.
    fn open(&self, message: &OutboundMessage) -> Result<Option<SecretText>, String> {
        match &message.secret {
            None => Ok(None),
            Some(MessageSecret::Clear { text }) => {
                // storage refuses clear secrets; one read back is used, but never logged
                tracing::warn!(message = %message.id, "outbox message carries its secret in clear");
                Ok(Some(text.clone()))
            }
            Some(MessageSecret::Sealed { sealed }) => {
                let aad = OutboundMessage::secret_aad(message.tenant_id, message.id);
                let bytes = self
                    .key
                    .open(sealed, &aad)
                    .map_err(|e| format!("the sealed secret does not open: {e}"))?;
                let text = std::str::from_utf8(&bytes).map_err(|_| "the sealed secret is not text".to_owned())?;
                Ok(Some(SecretText::new(text.to_owned())))
            }
        }
    }

    async fn deliver(
        &self,
        claimed: ClaimedMessage,
        tenant: Option<&Tenant>,
        lease_until: DateTime<Utc>,
        marks: &UnboundedSender<SentMark>,
    ) -> Result<Done, StorageError> {
        let ClaimedMessage { message, attempt } = claimed;
        let Some(tenant) = tenant else {
            return self
                .fail(&message, attempt, "the tenant of the message no longer exists")
                .await;
        };
        let secret = match self.open(&message) {
            Ok(s) => s,
            Err(reason) => return self.fail(&message, attempt, &reason).await,
        };
        let email = match self
            .renderer
            .render(tenant, &message, secret.as_ref().map(SecretText::expose))
        {
            Ok(e) => e,
            Err(e) => return self.fail(&message, attempt, &e.to_string()).await,
        };
        drop(secret);
        if self.clock.now() >= lease_until {
            tracing::warn!(message = %message.id, kind = %message.kind, attempt, "outbox lease ran out before sending; left for the next claim");
            return Ok(Done::Skipped);
        }
        let result = self.transport.send(&email).await;
        let now = self.clock.now();
        match result {
            Ok(delivered) => {
                tracing::info!(
                    message = %message.id, kind = %message.kind, attempt,
                    recipient_domain = domain(message.recipient.as_str()),
                    provider_id = delivered.provider_id.as_deref().unwrap_or(""),
                    "mail delivered"
                );
                tracing::debug!(message = %message.id, recipient = message.recipient.as_str(), "mail delivered to");
                // Marked by the batch's group commit (`flush_marks`); the send slot moves on.
                let _ = marks.send(SentMark {
                    tenant_id: message.tenant_id,
                    id: message.id,
                    attempt,
                    at: now,
                });
                Ok(Done::Sent)
            }
            Err(SendError::Transient(reason)) => {
                let mut jitter = [0u8; 2];
                self.entropy.fill(&mut jitter);
                match self.settings.retry.delay_after(attempt, u16::from_le_bytes(jitter)) {
                    Some(delay) => {
                        let next = now + delay;
                        tracing::warn!(
                            message = %message.id, kind = %message.kind, attempt, error = %reason,
                            next_attempt_at = %next, "mail delivery failed; will retry"
                        );
                        let applied = self
                            .storage
                            .mark_message_retry(message.tenant_id, message.id, attempt, next, &clip(&reason))
                            .await?;
                        note_mark(&message, applied);
                        Ok(Done::Retried)
                    }
                    None => {
                        self.fail(
                            &message,
                            attempt,
                            &format!("gave up after {attempt} attempts: {reason}"),
                        )
                        .await
                    }
                }
            }
            Err(SendError::Permanent(reason)) => self.fail(&message, attempt, &reason).await,
        }
    }

    async fn fail(&self, message: &OutboundMessage, attempt: u32, reason: &str) -> Result<Done, StorageError> {
        tracing::error!(message = %message.id, kind = %message.kind, attempt, error = %reason, "mail delivery failed for good");
        let applied = self
            .storage
            .mark_message_failed(message.tenant_id, message.id, attempt, &clip(reason))
            .await?;
        note_mark(message, applied);
        Ok(Done::Failed)
    }
}

/// Notes a mark that found the claim no longer this attempt's.
fn note_mark(message: &OutboundMessage, applied: bool) {
    if !applied {
        tracing::warn!(message = %message.id, "outbox claim was taken over by another attempt; result not recorded");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use portal_core::mail::{Delivered, MailKind, MessageStatus, OutgoingEmail};
    use portal_core::memory::MemoryStorage;
    use portal_core::storage::{OutboxRepo as _, OutcomeRepo as _};
    use tokio::sync::Notify;

    use super::*;
    use crate::testing::{self, SinkMode, SmtpSink, StepClock, ZeroEntropy};
    use crate::{SmtpTransport, TransportOptions};

    struct Setup {
        storage: Arc<MemoryStorage>,
        clock: Arc<StepClock>,
        sink: SmtpSink,
        smtp: Arc<dyn Transport>,
        tenant: TenantId,
    }

    async fn setup(mode: SinkMode, kinds: &[MailKind]) -> Setup {
        let storage = Arc::new(MemoryStorage::new());
        let tenant = testing::tenant();
        let messages = kinds.iter().map(|k| testing::sealed_message(*k)).collect();
        testing::queue(&storage, &tenant, messages).await;
        let sink = SmtpSink::start(mode);
        let smtp: Arc<dyn Transport> = Arc::new(
            SmtpTransport::from_url(
                &format!("smtp://127.0.0.1:{}?tls=none", sink.port),
                &TransportOptions {
                    timeout: Duration::from_secs(10),
                    smtp_pool_size: 2,
                    smtp_root_certificates: Vec::new(),
                },
            )
            .unwrap(),
        );
        Setup {
            storage,
            clock: Arc::new(StepClock::new(testing::now() + chrono::Duration::seconds(1))),
            sink,
            smtp,
            tenant: tenant.id,
        }
    }

    fn worker(s: &Setup, transport: Arc<dyn Transport>) -> OutboxWorker {
        OutboxWorker::new(
            s.storage.clone(),
            transport,
            testing::renderer(),
            &testing::master_key(),
            s.clock.clone(),
            Arc::new(ZeroEntropy),
            WorkerSettings {
                poll_interval: Duration::from_millis(20),
                concurrency: 4,
                ..WorkerSettings::default()
            },
        )
    }

    async fn message_of(s: &Setup, kind: MailKind) -> OutboundMessage {
        s.storage
            .get_message(s.tenant, testing::message(kind).id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn entry(s: &Setup, kind: MailKind) -> portal_core::mail::OutboxEntry {
        let id = testing::message(kind).id;
        s.storage
            .list_messages(s.tenant, None, portal_core::storage::PageRequest::first(100))
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap()
    }

    #[tokio::test]
    async fn delivers_every_kind_once_and_clears_the_secrets() {
        let s = setup(SinkMode::Accept, MailKind::ALL).await;
        assert!(matches!(
            message_of(&s, MailKind::ContactInvitation).await.secret,
            Some(MessageSecret::Sealed { .. })
        ));
        let w = worker(&s, s.smtp.clone());
        let stats = w.run_once().await.unwrap();
        assert_eq!(
            stats,
            WorkerStats {
                claimed: MailKind::ALL.len(),
                sent: MailKind::ALL.len(),
                retried: 0,
                failed: 0
            }
        );
        assert_eq!(w.run_once().await.unwrap(), WorkerStats::default());
        let mails = s.sink.mails();
        assert_eq!(mails.len(), MailKind::ALL.len());
        for kind in MailKind::ALL {
            let e = entry(&s, *kind).await;
            assert_eq!((e.status, e.attempts), (MessageStatus::Sent, 1), "{kind}");
            assert_eq!(message_of(&s, *kind).await.secret, None, "{kind}: secret cleared");
        }
        let invitation = mails
            .iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .find(|m| m.contains("X-Portal-Idempotency-Key: 00000000-0000-7000-8000-000000000001"))
            .expect("the invitation was delivered");
        assert!(invitation.contains(testing::TOKEN), "the opened token is in the link");
        let code = mails
            .iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .find(|m| m.contains("X-Portal-Idempotency-Key: 00000000-0000-7000-8000-000000000003"))
            .unwrap();
        assert!(code.contains(testing::CODE));
    }

    #[tokio::test]
    async fn a_deferral_is_retried_with_back_off_then_delivered() {
        let s = setup(SinkMode::RejectRcpt(451), &[MailKind::AccessLink]).await;
        let w = worker(&s, s.smtp.clone());
        let stats = w.run_once().await.unwrap();
        assert_eq!((stats.claimed, stats.retried), (1, 1));
        let e = entry(&s, MailKind::AccessLink).await;
        assert_eq!(e.status, MessageStatus::Queued);
        // equal jitter with a zero draw: half of the 30 s base
        assert_eq!(e.next_attempt_at, s.clock.now() + chrono::Duration::seconds(15));
        assert!(e.last_error.as_deref().unwrap().contains("451"), "{:?}", e.last_error);
        assert!(
            message_of(&s, MailKind::AccessLink).await.secret.is_some(),
            "kept for the retry"
        );

        assert_eq!(w.run_once().await.unwrap().claimed, 0, "not due yet");
        s.sink.set_mode(SinkMode::Accept);
        s.clock.advance(chrono::Duration::seconds(15));
        let stats = w.run_once().await.unwrap();
        assert_eq!((stats.claimed, stats.sent), (1, 1));
        let e = entry(&s, MailKind::AccessLink).await;
        assert_eq!((e.status, e.attempts), (MessageStatus::Sent, 2));
        assert_eq!(s.sink.mails().len(), 1);
        assert_eq!(message_of(&s, MailKind::AccessLink).await.secret, None);
    }

    #[tokio::test]
    async fn a_rejection_fails_the_message() {
        let s = setup(SinkMode::RejectRcpt(550), &[MailKind::TaskSummary]).await;
        let stats = worker(&s, s.smtp.clone()).run_once().await.unwrap();
        assert_eq!((stats.claimed, stats.failed), (1, 1));
        let e = entry(&s, MailKind::TaskSummary).await;
        assert_eq!(e.status, MessageStatus::Failed);
        assert!(e.last_error.unwrap().contains("550"));
        assert!(s.sink.mails().is_empty());
    }

    #[tokio::test]
    async fn the_last_attempt_fails_for_good() {
        let s = setup(SinkMode::RejectRcpt(451), &[MailKind::TaskSummary]).await;
        let mut w = worker(&s, s.smtp.clone());
        w.settings.retry.max_attempts = 1;
        let stats = w.run_once().await.unwrap();
        assert_eq!(stats.failed, 1);
        let e = entry(&s, MailKind::TaskSummary).await;
        assert_eq!(e.status, MessageStatus::Failed);
        assert!(e.last_error.unwrap().starts_with("gave up after 1 attempts"));
    }

    /// The real SMTP transport, whose first send never returns after the server accepted the
    /// message: a worker that dies between the send and the mark.
    struct DiesAfterFirstSend {
        inner: Arc<dyn Transport>,
        died: Mutex<bool>,
        sent: Notify,
    }

    #[async_trait::async_trait]
    impl Transport for DiesAfterFirstSend {
        async fn send(&self, email: &OutgoingEmail) -> Result<Delivered, SendError> {
            let delivered = self.inner.send(email).await?;
            let first = !std::mem::replace(&mut *self.died.lock().unwrap(), true);
            if first {
                self.sent.notify_one();
                std::future::pending::<()>().await;
            }
            Ok(delivered)
        }
    }

    #[tokio::test]
    async fn a_crash_between_send_and_mark_redelivers_with_the_same_message_id() {
        let s = setup(SinkMode::Accept, &[MailKind::ContactInvitation]).await;
        let transport = Arc::new(DiesAfterFirstSend {
            inner: s.smtp.clone(),
            died: Mutex::new(false),
            sent: Notify::new(),
        });
        let w = worker(&s, transport.clone());
        tokio::select! {
            _ = w.run_once() => panic!("the first delivery must not complete"),
            () = transport.sent.notified() => {}
        }
        // the worker is gone; the message was delivered but is still `sending`
        assert_eq!(s.sink.mails().len(), 1);
        assert_eq!(
            entry(&s, MailKind::ContactInvitation).await.status,
            MessageStatus::Sending
        );
        assert_eq!(w.run_once().await.unwrap().claimed, 0, "the lease still holds");

        s.clock.advance(w.settings().lease + chrono::Duration::seconds(1));
        let stats = w.run_once().await.unwrap();
        assert_eq!((stats.claimed, stats.sent), (1, 1));
        let e = entry(&s, MailKind::ContactInvitation).await;
        assert_eq!((e.status, e.attempts), (MessageStatus::Sent, 2));

        let mails = s.sink.mails();
        assert_eq!(mails.len(), 2, "delivered twice");
        let ids: Vec<String> = mails
            .iter()
            .map(|m| {
                mail_parser::MessageParser::default()
                    .parse(&m.data)
                    .unwrap()
                    .message_id()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids[0], ids[1], "with one Message-ID");
        assert_eq!(
            ids[0],
            format!(
                "{}@portal.acme-it.example",
                testing::message(MailKind::ContactInvitation).id
            )
        );
    }

    #[tokio::test]
    async fn unusable_messages_fail_without_being_sent() {
        let s = setup(SinkMode::Accept, &[]).await;
        // a secret sealed under another master key, a payload missing its portal, and a tenant
        // that does not exist (queued in a commit of its own)
        let mut foreign = testing::message(MailKind::AccessLink);
        foreign.secret = Some(MessageSecret::Sealed {
            sealed: portal_core::crypto::MasterKey::from_material(&[9; 32])
                .unwrap()
                .sealing_key(KeyPurpose::Outbox)
                .seal(
                    [1; 24],
                    &OutboundMessage::secret_aad(foreign.tenant_id, foreign.id),
                    b"x",
                ),
        });
        let mut broken = testing::message(MailKind::TaskSummary);
        broken.payload = serde_json::json!({ "tasks": [] });
        let outcome = portal_core::outcome::Outcome {
            messages: vec![foreign.clone(), broken.clone()],
            ..Default::default()
        };
        s.storage.commit_outcome(s.tenant, &outcome).await.unwrap().unwrap();
        let mut orphan = testing::message(MailKind::TaskReminder);
        orphan.tenant_id = TenantId::from_uuid(uuid::Uuid::from_u128(0xdead));
        let outcome = portal_core::outcome::Outcome {
            messages: vec![orphan.clone()],
            ..Default::default()
        };
        s.storage
            .commit_outcome(orphan.tenant_id, &outcome)
            .await
            .unwrap()
            .unwrap();

        let stats = worker(&s, s.smtp.clone()).run_once().await.unwrap();
        assert_eq!((stats.claimed, stats.failed, stats.sent), (3, 3, 0));
        assert!(s.sink.mails().is_empty());
        let failed = s
            .storage
            .list_messages(
                s.tenant,
                Some(MessageStatus::Failed),
                portal_core::storage::PageRequest::first(10),
            )
            .await
            .unwrap();
        let error_of = |id| failed.iter().find(|e| e.id == id).unwrap().last_error.clone().unwrap();
        assert!(error_of(foreign.id).contains("does not open"));
        assert!(error_of(broken.id).contains("portal_name"));
        let orphans = s
            .storage
            .list_messages(
                orphan.tenant_id,
                Some(MessageStatus::Failed),
                portal_core::storage::PageRequest::first(10),
            )
            .await
            .unwrap();
        assert!(orphans[0].last_error.as_deref().unwrap().contains("tenant"));
    }

    #[tokio::test]
    async fn run_delivers_and_stops_on_shutdown() {
        let s = setup(SinkMode::Accept, &[MailKind::TaskSummary, MailKind::PasswordReset]).await;
        let w = Arc::new(worker(&s, s.smtp.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let w = w.clone();
            async move {
                w.run(async {
                    let _ = stopped.await;
                })
                .await;
            }
        });
        for _ in 0..200 {
            if s.sink.mails().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(s.sink.mails().len(), 2);
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .unwrap();
        assert_eq!(entry(&s, MailKind::PasswordReset).await.status, MessageStatus::Sent);
    }

    #[tokio::test]
    async fn run_claims_the_next_batch_while_sending_and_delivers_each_once() {
        let s = setup(SinkMode::Accept, MailKind::ALL).await;
        let mut w = worker(&s, s.smtp.clone());
        w.settings.batch = 3;
        w.settings.concurrency = 2;
        let w = Arc::new(w);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let w = w.clone();
            async move {
                w.run(async {
                    let _ = stopped.await;
                })
                .await;
            }
        });
        for _ in 0..250 {
            if s.sink.mails().len() >= MailKind::ALL.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A few more polls: nothing comes twice.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .unwrap();
        let mails = s.sink.mails();
        assert_eq!(mails.len(), MailKind::ALL.len());
        let mut ids: Vec<String> = mails
            .iter()
            .map(|m| {
                let text = String::from_utf8_lossy(&m.data).into_owned();
                let at = text.find("X-Portal-Idempotency-Key: ").expect("a key");
                text[at..].lines().next().unwrap_or_default().to_owned()
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), MailKind::ALL.len(), "each message once");
        for kind in MailKind::ALL {
            let e = entry(&s, *kind).await;
            assert_eq!(
                (e.status, e.attempts),
                (MessageStatus::Sent, 1),
                "{kind}: marked by the group commit"
            );
        }
    }
}
