//! The notification scheduler of the reference server (BYD-5): automatic reminders and daily
//! digests, one pass each every `--notification-interval-seconds`, and with them the purge of
//! expired rows that would otherwise only grow (sign-in attempt counters, one-time-code
//! challenges, contact and staff sessions: `Engine::purge_expired`).
//!
//! Every process may run it: a reminder is recorded in the ledger in the commit that queues it,
//! and a digest deletes its items in the commit that queues it, so two processes never send the
//! same one (the second commit is refused and writes nothing); two purges at once delete each
//! row once. `--no-scheduler` leaves the work to other processes.

use std::future::Future;
use std::time::Duration;

use portal_core::service::Engine;

/// Runs a reminder pass, a digest pass and a purge, then waits `interval`, until `shutdown`
/// completes. A failing pass is logged and tried again at the next tick; the pass in flight is
/// finished before shutdown.
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

/// One reminder pass, one digest pass and one purge of expired rows.
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
    match engine.purge_expired().await {
        Ok(r) if r.total() > 0 => tracing::info!(
            sign_in_attempts = r.sign_in_attempts,
            access_challenges = r.access_challenges,
            contact_sessions = r.contact_sessions,
            staff_sessions = r.staff_sessions,
            "expired rows purged"
        ),
        Ok(_) => tracing::debug!("expired rows: none to purge"),
        Err(e) => tracing::error!(error = %e, "purge of expired rows failed"),
    }
}
