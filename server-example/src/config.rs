//! The command line and environment of `portal-server`.
//!
//! Every setting is a flag and an environment variable (`--database-url` / `DATABASE_URL`, ...).
//! Values that must not leak are typed so: [`DatabaseUrl`] prints its password as `***`, and
//! [`Secret`] prints `[redacted]` and has no `Display`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `portal-server`: the reference server of the MSP portal engine.
#[derive(Debug, Parser)]
#[command(name = "portal-server", version, about)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub config: Config,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What `portal-server` does.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Connect to the database, run its migrations, and serve HTTP until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Connect to the database, run its migrations, and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage staff users.
    #[command(subcommand)]
    User(UserCommand),
}

/// Options of `serve`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Seed the demo tenant (once; later runs reuse it), serve it on localhost, and print how to
    /// sign in.
    #[arg(long, env = "PORTAL_DEMO")]
    pub demo: bool,
    /// The demo administrator's password; a fresh one is made and printed at each start when
    /// absent.
    #[arg(long, env = "PORTAL_DEMO_PASSWORD", hide_env_values = true)]
    pub demo_password: Option<Secret>,
    /// Where mail goes: `smtp://user:pass@host:587` (STARTTLS), `smtps://...:465` (implicit TLS),
    /// `smtp://127.0.0.1:2525?tls=none` (loopback, no TLS), `postmark://<server-token>@api.postmarkapp.com`,
    /// or `file:///var/spool/portal-mail` (one `.eml` per message). Without it the server queues
    /// mail but delivers none; `--demo` then writes to `file://./portal-mail`.
    #[arg(long = "mail-url", env = "PORTAL_MAIL_URL", hide_env_values = true)]
    pub mail_url: Option<Secret>,
    /// A PEM file of certificates to trust (beside the system's) for the SMTP relay's TLS: the
    /// root of a private CA, for a relay inside the network.
    #[arg(long = "mail-ca-file", env = "PORTAL_MAIL_CA_FILE")]
    pub mail_ca_file: Option<std::path::PathBuf>,
    /// The sender address of tenants whose branding names none.
    #[arg(
        long = "mail-from",
        env = "PORTAL_MAIL_FROM",
        default_value = "portal@portal.invalid"
    )]
    pub mail_from: String,
    /// Do not deliver mail from this process (another process runs the outbox worker).
    #[arg(long = "no-mail-worker", env = "PORTAL_NO_MAIL_WORKER")]
    pub no_mail_worker: bool,
    /// How long the mail worker's claim of a message lasts, in seconds: a message whose worker
    /// died between sending it and marking it sent is sent again (with the same `Message-ID`)
    /// once its claim has run out. Longer than a batch takes to send.
    #[arg(
        long = "mail-lease-seconds",
        env = "PORTAL_MAIL_LEASE_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(1..=86_400)
    )]
    pub mail_lease_seconds: u32,
    /// How many times one client address may open access links (and try one-time codes) in a
    /// 15-minute window before it gets 429 `too_many_attempts`.
    #[arg(
        long = "access-limit-per-address",
        env = "PORTAL_ACCESS_LIMIT_PER_ADDRESS",
        default_value_t = crate::api::access::ACCESS_LIMIT_PER_ADDRESS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub access_limit_per_address: u32,
    /// Do not run the scheduler in this process (another process does): automatic reminders,
    /// daily digests, and the purge of expired sessions, challenges and attempt counters.
    #[arg(long = "no-scheduler", env = "PORTAL_NO_SCHEDULER")]
    pub no_scheduler: bool,
    /// How often the scheduler sends the automatic reminders and daily digests that are due and
    /// purges expired rows, in seconds.
    #[arg(
        long = "notification-interval-seconds",
        env = "PORTAL_NOTIFICATION_INTERVAL_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(1..=86_400)
    )]
    pub notification_interval_seconds: u32,
}

/// `tenant ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with its administrator role and first administrator, and print its id.
    Create {
        /// The tenant's name.
        #[arg(long)]
        name: String,
        /// A host name the tenant is served at (repeatable), e.g. `portal.example.com`.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// The IANA time zone due dates are reckoned in.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
        /// The first administrator's email.
        #[arg(long)]
        admin_email: String,
        /// The first administrator's name.
        #[arg(long, default_value = "Administrator")]
        admin_name: String,
        /// The first administrator's password (at least 12 characters).
        #[arg(long, env = "PORTAL_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Secret,
    },
    /// Map one more host name to a tenant.
    AddHost {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The host name.
        #[arg(long)]
        host: String,
    },
}

/// `user ...`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum UserCommand {
    /// Create a staff user with a password, and print their id.
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The user's name.
        #[arg(long)]
        name: String,
        /// A role name the user holds (repeatable), e.g. `Administrator`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// The password (at least 12 characters).
        #[arg(long, env = "PORTAL_USER_PASSWORD", hide_env_values = true)]
        password: Secret,
    },
    /// Set a staff user's password; every session of the user ends.
    SetPassword {
        /// The tenant's id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The new password (at least 12 characters).
        #[arg(long, env = "PORTAL_USER_PASSWORD", hide_env_values = true)]
        password: Secret,
    },
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// The database: `sqlite://path/to/file.db` or `postgres://user:password@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://portal.db", global = true)]
    pub database_url: DatabaseUrl,
    /// The address to listen on.
    #[arg(long = "bind", env = "PORTAL_BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,
    /// The URL people reach the server at (used in links and to decide on secure cookies).
    #[arg(
        long = "public-url",
        env = "PORTAL_PUBLIC_URL",
        default_value = "http://localhost:8080",
        global = true
    )]
    pub public_url: String,
    /// The key that protects stored secrets (not used yet).
    #[arg(
        long = "master-key",
        env = "PORTAL_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    pub master_key: Option<Secret>,
    /// The tenant that serves local hosts (`localhost`, `127.0.0.1`) that no tenant claims.
    #[arg(long = "default-tenant", env = "PORTAL_DEFAULT_TENANT", global = true)]
    pub default_tenant: Option<uuid::Uuid>,
    /// How logs are written.
    #[arg(
        long = "log-format",
        env = "PORTAL_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Plain,
        global = true
    )]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A secret setting. `Debug` prints `[redacted]`; there is no `Display`, so the value only
/// leaves through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    #[must_use]
    pub const fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A database URL with an explicit scheme. `Debug` and `Display` mask its password
/// (`postgres://user:***@host/db`, and any `password=` query parameter).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// A database URL without a scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a database URL needs a scheme (`sqlite://portal.db` or `postgres://user@host/db`), got `{masked}`")]
pub struct MissingScheme {
    /// The value given, password masked.
    pub masked: String,
}

impl DatabaseUrl {
    /// Parses `url`, which must start with a scheme (`sqlite:`, `postgres:`, ...). A bare path is
    /// refused rather than guessed at.
    ///
    /// # Errors
    ///
    /// [`MissingScheme`] when there is no `scheme:` prefix.
    pub fn parse(url: &str) -> Result<Self, MissingScheme> {
        let url = url.trim();
        match url.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
            {
                Ok(Self(url.to_owned()))
            }
            _ => Err(MissingScheme { masked: mask(url) }),
        }
    }

    /// The scheme, lower-cased (`sqlite`, `postgres`, ...).
    #[must_use]
    pub fn scheme(&self) -> String {
        self.0.split_once(':').map_or("", |(s, _)| s).to_ascii_lowercase()
    }

    /// The whole URL, password included: only for connecting.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    #[must_use]
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl FromStr for DatabaseUrl {
    type Err = MissingScheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.masked()).finish()
    }
}

/// `url` with the password of its user info and of any `password=` query parameter replaced by
/// `***`.
fn mask(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let mut out = String::with_capacity(url.len());
    match base.find("://") {
        Some(i) => {
            let (head, rest) = base.split_at(i + 3);
            out.push_str(head);
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_database_url_is_masked() {
        let url = DatabaseUrl::parse("postgres://user:s3cret@host:5432/db").unwrap();
        assert_eq!(url.to_string(), "postgres://user:***@host:5432/db");
        assert_eq!(format!("{url:?}"), r#"DatabaseUrl("postgres://user:***@host:5432/db")"#);
        assert_eq!(url.expose(), "postgres://user:s3cret@host:5432/db");
        assert_eq!(url.scheme(), "postgres");
    }

    #[test]
    fn passwords_with_at_signs_and_query_passwords_are_masked() {
        let url = DatabaseUrl::parse("postgresql://me:p@ss@db.example/app?sslmode=require&password=s3cret").unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("p@ss"), "{shown}");
        assert_eq!(
            url.to_string(),
            "postgresql://me:***@db.example/app?sslmode=require&password=***"
        );
    }

    #[test]
    fn urls_without_a_password_are_shown_as_they_are() {
        for raw in [
            "sqlite://portal.db",
            "sqlite::memory:",
            "postgres://postgres@127.0.0.1/test",
        ] {
            assert_eq!(DatabaseUrl::parse(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn a_bare_path_is_not_a_database_url() {
        assert!(DatabaseUrl::parse("portal.db").is_err());
        assert!(DatabaseUrl::parse("/var/lib/portal.db").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }

    #[test]
    fn the_master_key_never_prints() {
        let cli = Cli::try_parse_from(["portal-server", "--master-key", "hunter2-very-secret", "serve"]).unwrap();
        let key = cli.config.master_key.as_ref().unwrap();
        assert_eq!(key.expose(), "hunter2-very-secret");
        assert_eq!(format!("{key:?}"), "[redacted]");
        let shown = format!("{cli:?} {cli:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn defaults_and_subcommands_parse() {
        let cli = Cli::try_parse_from(["portal-server", "migrate"]).unwrap();
        assert_eq!(cli.command, Command::Migrate);
        let cli = Cli::try_parse_from([
            "portal-server",
            "serve",
            "--bind",
            "0.0.0.0:9000",
            "--log-format",
            "json",
            "--database-url",
            "postgres://u:pw@h/d",
        ])
        .unwrap();
        assert_eq!(
            cli.command,
            Command::Serve(ServeArgs {
                demo: false,
                demo_password: None,
                mail_url: None,
                mail_ca_file: None,
                mail_from: "portal@portal.invalid".to_owned(),
                no_mail_worker: false,
                mail_lease_seconds: 300,
                access_limit_per_address: 30,
                no_scheduler: false,
                notification_interval_seconds: 300,
            })
        );
        assert_eq!(cli.config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(cli.config.log_format, LogFormat::Json);
        assert_eq!(cli.config.database_url.scheme(), "postgres");
        assert!(Cli::try_parse_from(["portal-server", "serve", "--database-url", "portal.db"]).is_err());
    }

    #[test]
    fn the_mail_lease_is_a_positive_number_of_seconds() {
        let cli = Cli::try_parse_from(["portal-server", "serve", "--mail-lease-seconds", "5"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.mail_lease_seconds, 5);
        for bad in ["0", "-1", "soon", "86401"] {
            assert!(
                Cli::try_parse_from(["portal-server", "serve", "--mail-lease-seconds", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_access_limit_is_a_positive_number() {
        let cli = Cli::try_parse_from(["portal-server", "serve", "--access-limit-per-address", "1000000"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.access_limit_per_address, 1_000_000);
        for bad in ["0", "-1", "many", "4294967296"] {
            assert!(
                Cli::try_parse_from(["portal-server", "serve", "--access-limit-per-address", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
