//! The outbox worker of the reference server: which transport, which sender, and when it runs.

use anyhow::Context as _;
use portal_core::mail::Mailbox;
use portal_core::value::Email;
use portal_mail::{OutboxWorker, Renderer, TransportOptions, WorkerSettings, transport_from_url};

use crate::app::AppState;
use crate::config::ServeArgs;

/// Where `serve --demo` writes mail when no mail URL is configured.
pub const DEMO_MAIL_URL: &str = "file://./portal-mail";

/// The outbox worker `serve` runs, or `None` when this process delivers no mail (no mail URL
/// outside the demo, or `--no-mail-worker`). Messages stay queued until a worker delivers them.
///
/// # Errors
///
/// When the mail URL or the sender address is not valid.
pub fn outbox_worker(state: &AppState, args: &ServeArgs) -> anyhow::Result<Option<OutboxWorker>> {
    if args.no_mail_worker {
        tracing::info!("this process delivers no mail (--no-mail-worker)");
        return Ok(None);
    }
    let url = match (&args.mail_url, args.demo) {
        (Some(url), _) => url.expose().to_owned(),
        (None, true) => DEMO_MAIL_URL.to_owned(),
        (None, false) => {
            tracing::warn!("no PORTAL_MAIL_URL: mail is queued in the outbox but not delivered");
            return Ok(None);
        }
    };
    let mut options = TransportOptions::default();
    if let Some(path) = &args.mail_ca_file {
        let pem = std::fs::read(path).with_context(|| format!("PORTAL_MAIL_CA_FILE {}", path.display()))?;
        options.smtp_root_certificates.push(pem);
    }
    let transport = transport_from_url(&url, &options).context("PORTAL_MAIL_URL")?;
    let sender = Email::parse(&args.mail_from).context("PORTAL_MAIL_FROM")?;
    let renderer = Renderer::new(
        &state.settings.public_url,
        Mailbox {
            name: None,
            email: sender,
        },
    )
    .context("PORTAL_PUBLIC_URL")?
    .with_unsubscribe_key(state.master_key.clone());
    if url.starts_with("file:") {
        tracing::info!(mail_url = %url, "mail is written to files");
    }
    Ok(Some(OutboxWorker::new(
        state.storage.clone(),
        transport,
        renderer,
        &state.master_key,
        state.clock.clone(),
        state.entropy.clone(),
        WorkerSettings {
            lease: chrono::Duration::seconds(i64::from(args.mail_lease_seconds)),
            ..WorkerSettings::default()
        },
    )))
}
