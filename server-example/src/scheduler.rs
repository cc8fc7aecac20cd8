//! The notification scheduler of the reference server (BYD-5): automatic reminders and daily
//! digests, one pass each every `--notification-interval-seconds`.
//!
//! Every process may run it: a reminder is recorded in the ledger in the commit that queues it,
//! and a digest deletes its items in the commit that queues it, so two processes never send the
//! same one (the second commit is refused and writes nothing). `--no-scheduler` leaves the work
//! to other processes.

use std::future::Future;
use std::time::Duration;

use portal_core::service::Engine;

/// Runs a reminder pass and a digest pass, then waits `interval`, until `shutdown` completes. A
/// failing pass is logged and tried again at the next tick; the pass in flight is finished
/// before shutdown.
pub async fn run(engine: Engine, interval: Duration, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tick(&engine).await;
        tokio::select! {
            () = shutdown.as_mut() => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One reminder pass and one digest pass.
pub async fn tick(engine: &Engine) {
    match engine.run_reminders().await {
        Ok(r) if r.committed > 0 || r.raced > 0 => tracing::info!(
            portals = r.scanned,
            reminded = r.committed,
            messages = r.messages,
            raced = r.raced,
            "automatic reminders"
        ),
        Ok(r) => tracing::debug!(portals = r.scanned, "automatic reminders: nothing due"),
        Err(e) => tracing::error!(error = %e, "automatic reminders failed"),
    }
    match engine.send_digests().await {
        Ok(r) if r.committed > 0 || r.raced > 0 => tracing::info!(
            contacts = r.scanned,
            digests = r.committed,
            messages = r.messages,
            raced = r.raced,
            "daily digests"
        ),
        Ok(r) => tracing::debug!(contacts = r.scanned, "daily digests: none due"),
        Err(e) => tracing::error!(error = %e, "daily digests failed"),
    }
}
