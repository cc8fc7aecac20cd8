//! `portal-server`: the reference server of the MSP portal engine.

use anyhow::Context as _;
use clap::Parser as _;
use portal_server::config::{Cli, Command, LogFormat};
use portal_server::{AppState, storage};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_format);
    let config = &cli.config;

    let backend = storage::backend_for(&config.database_url)?;
    tracing::info!(database_url = %config.database_url, %backend, "connecting and running migrations");
    let (store, backend) = storage::connect(&config.database_url).await?;
    tracing::info!(%backend, "database ready");

    match cli.command {
        Command::Migrate => {
            tracing::info!("migrations are up to date");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("cannot listen on {}", config.bind))?;
            let addr = listener.local_addr().context("the listener has no address")?;
            tracing::info!(%addr, public_url = %config.public_url, "listening");
            portal_server::serve(listener, AppState::new(store), shutdown_signal())
                .await
                .context("the server failed")?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as plain lines or JSON.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
