//! `portal-server`: the reference server of the MSP portal engine.

#![allow(clippy::print_stdout)] // the command line prints what it made, by design

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Parser as _;
use portal_core::auth::Password;
use portal_core::crypto::MasterKey;
use portal_core::id::TenantId;
use portal_core::storage::Entropy as _;
use portal_server::app::{OsEntropy, ServerSettings, SystemClock};
use portal_server::config::{Cli, Command, LogFormat, TenantCommand, UserCommand};
use portal_server::{AppState, keys, setup, storage};
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

    let public_url = config.public_url.trim_end_matches('/').to_owned();
    let settings = ServerSettings {
        default_tenant: config.default_tenant.map(TenantId::from_uuid),
        secure_cookies: public_url.starts_with("https://"),
        public_url: public_url.clone(),
        access_limit_per_address: match &cli.command {
            Command::Serve(args) => args.access_limit_per_address,
            _ => portal_server::api::access::ACCESS_LIMIT_PER_ADDRESS,
        },
    };
    let master_key = match (&config.master_key, &cli.command) {
        (Some(key), _) => keys::parse_master_key(key)?,
        (None, Command::Serve(args)) if args.demo => {
            keys::demo_master_key(std::path::Path::new(keys::DEMO_KEY_FILE), &OsEntropy)?
        }
        (None, Command::Serve(_)) => anyhow::bail!(
            "PORTAL_MASTER_KEY is required to serve (it seals the tokens of queued mail); generate one with `openssl rand -base64 32`"
        ),
        (None, _) => {
            // The administrative subcommands queue no mail: a key of this run only will do.
            let mut bytes = [0u8; 32];
            OsEntropy.fill(&mut bytes);
            MasterKey::from_material(&bytes)?
        }
    };
    let mut state = AppState::with_parts(
        store,
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
        Arc::new(master_key),
        settings,
    );

    match cli.command {
        Command::Migrate => {
            tracing::info!("migrations are up to date");
            Ok(())
        }
        Command::Tenant(TenantCommand::Create {
            name,
            hosts,
            time_zone,
            admin_email,
            admin_name,
            admin_password,
        }) => {
            let created = setup::create_tenant(
                &state,
                &name,
                &time_zone,
                &hosts,
                &admin_email,
                &admin_name,
                Password::new(admin_password.expose())?,
            )
            .await?;
            println!("tenant {} created: {}", created.tenant.name, created.tenant.id);
            println!("administrator {admin_email}: {}", created.admin);
            for host in &created.hosts {
                println!("served at host {host}");
            }
            Ok(())
        }
        Command::Tenant(TenantCommand::AddHost { tenant, host }) => {
            let host = setup::add_host(&state, TenantId::from_uuid(tenant), &host).await?;
            println!("host {host} now serves tenant {tenant}");
            Ok(())
        }
        Command::User(UserCommand::Create {
            tenant,
            email,
            name,
            roles,
            password,
        }) => {
            let id = setup::create_user(
                &state,
                TenantId::from_uuid(tenant),
                &email,
                &name,
                &roles,
                Password::new(password.expose())?,
            )
            .await?;
            println!("staff user {email} created: {id}");
            Ok(())
        }
        Command::User(UserCommand::SetPassword {
            tenant,
            email,
            password,
        }) => {
            setup::set_password_by_email(
                &state,
                TenantId::from_uuid(tenant),
                &email,
                Password::new(password.expose())?,
            )
            .await?;
            println!("password of {email} set; their sessions have ended");
            Ok(())
        }
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("cannot listen on {}", config.bind))?;
            let addr = listener.local_addr().context("the listener has no address")?;
            if args.demo {
                let password = match &args.demo_password {
                    Some(p) => p.expose().to_owned(),
                    None => {
                        let mut bytes = [0u8; 15];
                        state.entropy.fill(&mut bytes);
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
                    }
                };
                let demo = setup::seed_demo(&state, Password::new(password.clone())?).await?;
                if state.settings.default_tenant.is_none() {
                    state.settings.default_tenant = Some(demo.tenant);
                }
                let what = if demo.created { "created" } else { "found" };
                println!();
                println!(
                    "Demo tenant {what}. Sign in at {public_url} (API: {public_url}/api/v1, OpenAPI: {public_url}/api/openapi.json)"
                );
                println!("  email:    {}", setup::DEMO_ADMIN_EMAIL);
                println!("  password: {password}");
                println!();
                println!("  curl -s -X POST {public_url}/api/v1/auth/sign-in -H 'content-type: application/json' \\");
                println!(
                    "       -d '{{\"email\":\"{}\",\"password\":\"{password}\"}}'",
                    setup::DEMO_ADMIN_EMAIL
                );
                println!();
            }
            let (stop_worker, stopped) = tokio::sync::watch::channel(false);
            let worker = portal_server::mail::outbox_worker(&state, &args)?.map(|worker| {
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    worker
                        .run(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await;
                })
            });
            let scheduler = if args.no_scheduler {
                tracing::info!(
                    "this process runs no scheduler: no automatic reminders, digests or purges (--no-scheduler)"
                );
                None
            } else {
                let engine = state.engine.clone();
                let interval = std::time::Duration::from_secs(u64::from(args.notification_interval_seconds));
                let mut stopped = stopped.clone();
                Some(tokio::spawn(portal_server::scheduler::run(
                    engine,
                    interval,
                    async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    },
                )))
            };
            tracing::info!(%addr, public_url = %public_url, "listening");
            let served = portal_server::serve(listener, state, shutdown_signal()).await;
            let _ = stop_worker.send(true);
            if let Some(worker) = worker {
                // A send in flight finishes or its lease runs out: nothing queued is lost.
                let _ = worker.await;
            }
            if let Some(scheduler) = scheduler {
                let _ = scheduler.await;
            }
            served.context("the server failed")?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as plain lines or JSON.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: a log file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
