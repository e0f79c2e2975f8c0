//! The command line (SPEC §7): `serve` (default), `migrate`,
//! `check-config`, `staff add|list`, `token create`.
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
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a staff member (by id or email) and print it
    Create {
        #[arg(long, value_name = "ID|EMAIL")]
        staff: String,
    },
}

/// Sets up logging: `serve` logs to stdout, every other command to stderr.
fn init_logging(config: &Config, to_stdout: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // async-imap logs every command at trace level, LOGIN's password
    // included: never let that through, whatever level ops choose.
    let filter = match crate::channels::email::imap::LOG_FILTER_GUARD.parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    use std::io::IsTerminal;
    let ansi = if to_stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let result = match (config.logging.format, to_stdout) {
        (LogFormat::Json, true) => builder
            .json()
            .flatten_event(false)
            .with_current_span(true)
            .try_init(),
        (LogFormat::Json, false) => builder.json().with_writer(std::io::stderr).try_init(),
        (LogFormat::Pretty, true) => builder.try_init(),
        (LogFormat::Pretty, false) => builder.with_writer(std::io::stderr).try_init(),
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
        Command::Serve => serve(config).await,
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
        Command::Token(TokenCommand::Create { staff }) => {
            let store = open_migrated(&config).await?;
            let found = match staff.parse::<i64>() {
                Ok(id) => store.get_staff(id).await.ok(),
                Err(_) => store.staff_by_email(&staff).await?,
            };
            let staff = found.with_context(|| format!("no staff member {staff}"))?;
            let token = store.create_token(staff.id).await?;
            eprintln!(
                "created a token for #{} {} <{}>",
                staff.id, staff.name, staff.email
            );
            print_token(&token)
        }
    }
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
                crate::app::redact_url(&config.database.url)
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

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        database = %crate::app::redact_url(&config.database.url),
        sms = config.twilio.enabled,
        "starting switchboard"
    );
    // Before anything that takes time, so SIGTERM is never lost.
    let shutdown = crate::app::shutdown_signal();
    let app = Application::build(config, Options::default())
        .await
        .inspect_err(|e| crate::systemd::status(&format!("start-up failed: {e:#}")))?;
    if let Some(token) = &app.first_admin_token {
        let mut out = std::io::stdout().lock();
        writeln!(out, "admin token: {token}")?;
        out.flush()?;
    }
    app.run(shutdown).await
}
