//! The command line (SPEC §7, §9): `serve` (default), `migrate`,
//! `check-config`, `staff add|list|invite`, `token create`.
//!
//! Output contract for scripts: `staff add` and `token create` print the new
//! token alone on one line of standard output; everything else, logs
//! included, goes to standard error. `serve` logs to standard output (the
//! journal) and prints the first admin's token there as `admin token: …`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{Application, Options};
use crate::config::{Config, LogFormat};
use crate::domain::{EmailAddress, Role};
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "switchboard",
    version,
    about = "Customer SMS and email in, support issues out"
)]
pub struct Cli {
    /// Configuration file (default: /etc/switchboard/switchboard.toml if present, else built-in defaults)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (the default)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Validate the configuration; exits non-zero naming the bad key
    CheckConfig,
    /// Manage staff
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum StaffCommand {
    /// Add a staff member and print their first token
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent", value_parser = ["admin", "agent"])]
        role: String,
    },
    /// List staff
    List,
    /// Print a fresh one-time link (valid 24 h) where they choose a password
    Invite {
        #[arg(long, value_name = "ID|EMAIL")]
        staff: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a staff member (by id or email) and print it
    Create {
        #[arg(long, value_name = "ID|EMAIL")]
        staff: String,
    },
}

/// The log filter for `level`, with the guard that keeps async-imap's
/// trace logging (LOGIN with its password) out whatever level ops choose.
pub fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    match crate::channels::email::imap::LOG_FILTER_GUARD.parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    }
}

/// Sets up logging: `serve` logs to stdout, every other command to stderr.
/// The filter is reloadable (SIGHUP changes `logging.level`) unless
/// `RUST_LOG` chose it.
fn init_logging(config: &Config, to_stdout: bool) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = log_filter(from_env.as_deref().unwrap_or(&config.logging.level));
    use std::io::IsTerminal;
    let ansi = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // Each arm has its own subscriber type; the reload handle is kept as a
    // closure so `reload` does not need to name it.
    macro_rules! init {
        ($b:expr) => {{
            let b = $b.with_filter_reloading();
            let handle = b.reload_handle();
            if from_env.is_none() {
                crate::reload::set_log_reloader(move |level| {
                    handle.reload(log_filter(level)).map_err(|e| e.to_string())
                });
            }
            b.try_init()
        }};
    }
    let result = match (config.logging.format, to_stdout) {
        (LogFormat::Json, true) => {
            init!(builder.json().flatten_event(false).with_current_span(true))
        }
        (LogFormat::Json, false) => init!(builder.json().with_writer(std::io::stderr)),
        (LogFormat::Pretty, true) => init!(builder),
        (LogFormat::Pretty, false) => init!(builder.with_writer(std::io::stderr)),
    };
    let _ = result;
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    let path = path.cloned().or_else(Config::default_path);
    Config::load(path.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckConfig = command {
        let config = load_config(cli.config.as_ref())?;
        eprintln!("configuration OK");
        eprintln!("{}", config.redacted_summary());
        return Ok(());
    }
    let config = load_config(cli.config.as_ref())?;
    init_logging(&config, matches!(command, Command::Serve));
    match command {
        Command::Serve => serve(config, cli.config.clone()).await,
        Command::Migrate => {
            let store = open(&config).await?;
            store.migrate().await.context("applying migrations")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => Ok(()),
        Command::Staff(StaffCommand::Add { email, name, role }) => {
            let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let role = Role::parse(&role).context("--role must be admin or agent")?;
            let store = open_migrated(&config).await?;
            let staff = store
                .create_staff(email.as_str(), &name, role)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let token = store.create_token(staff.id).await?;
            eprintln!(
                "added staff member #{} {} <{}> ({})",
                staff.id, staff.name, staff.email, staff.role
            );
            print_token(&token)
        }
        Command::Staff(StaffCommand::List) => {
            let store = open_migrated(&config).await?;
            for s in store.list_staff().await? {
                eprintln!(
                    "{:>5}  {:<6} {:<8} {} <{}>",
                    s.id,
                    s.role.as_str(),
                    if s.active { "active" } else { "inactive" },
                    s.name,
                    s.email
                );
            }
            Ok(())
        }
        Command::Staff(StaffCommand::Invite { staff }) => {
            let store = open_migrated(&config).await?;
            let staff = find_staff(&store, &staff).await?;
            anyhow::ensure!(staff.active, "#{} {} is deactivated", staff.id, staff.email);
            let link = crate::web::signin::invite_link(&store, &config.server.public_url, staff.id)
                .await?;
            eprintln!(
                "sign-in link for #{} {} <{}>, valid 24 hours, usable once:",
                staff.id, staff.name, staff.email
            );
            print_token(&link)
        }
        Command::Token(TokenCommand::Create { staff }) => {
            let store = open_migrated(&config).await?;
            let staff = find_staff(&store, &staff).await?;
            let token = store.create_token(staff.id).await?;
            eprintln!(
                "created a token for #{} {} <{}>",
                staff.id, staff.name, staff.email
            );
            print_token(&token)
        }
    }
}

/// A staff member by id or email.
async fn find_staff(store: &Store, which: &str) -> anyhow::Result<crate::store::Staff> {
    let found = match which.parse::<i64>() {
        Ok(id) => store.get_staff(id).await.ok(),
        Err(_) => store.staff_by_email(&which.trim().to_lowercase()).await?,
    };
    found.with_context(|| format!("no staff member {which}"))
}

fn print_token(token: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    Ok(())
}

async fn open(config: &Config) -> anyhow::Result<Store> {
    crate::app::install_crypto_provider();
    Store::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "opening the database ({})",
                crate::redact::redact_url(&config.database.url)
            )
        })
}

async fn open_migrated(config: &Config) -> anyhow::Result<Store> {
    let store = open(config).await?;
    if config.database.auto_migrate {
        store.migrate().await.context("applying migrations")?;
    }
    Ok(store)
}

async fn serve(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        database = %crate::redact::redact_url(&config.database.url),
        sms = config.twilio.enabled,
        "starting switchboard"
    );
    // Before anything that takes time, so SIGTERM is never lost.
    let shutdown = crate::app::shutdown_signal();
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let app = Application::build(config, Options::default())
        .await
        .inspect_err(|e| crate::systemd::status(&format!("start-up failed: {e:#}")))?;
    if let Some(token) = &app.first_admin_token {
        let mut out = std::io::stdout().lock();
        writeln!(out, "admin token: {token}")?;
        if let Some(link) = &app.first_admin_link {
            writeln!(out, "sign-in link: {link}")?;
        }
        out.flush()?;
    }
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(hangup, path, app.reload_handle()));
    #[cfg(not(unix))]
    let _ = path;
    app.run(shutdown).await
}

/// SIGHUP: load the configuration again and hand it to the daemon, which
/// applies what it safely can (see `reload`). A configuration that does not
/// load is refused whole, with the reason in the log.
#[cfg(unix)]
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    handle: crate::app::ReloadHandle,
) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        match load_config(path.as_ref()) {
            Ok(config) => {
                if !handle.reload(config).await {
                    return;
                }
            }
            Err(e) => {
                crate::metrics::Metrics::install().config_reload("failed");
                tracing::error!(error = %e, "configuration reload refused; still running on the previous configuration");
            }
        }
    }
}
