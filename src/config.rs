//! Typed configuration: built-in defaults, then the TOML file, then
//! `SWITCHBOARD__SECTION__KEY` environment variables (env wins), then secrets
//! read from `*_file` paths, then [`Config::validate`].
//!
//! Everything the daemon reads from the outside world about *how to run* goes
//! through this module, and I want a bad value to die here, with the dotted
//! key in the message (`config key `imap[0].host`: is required`), rather
//! than as a confusing failure minutes later in an IMAP worker. So the shape
//! is "parse, don't validate" where a type can carry the rule (socket
//! addresses, durations, cron schedules, the phone region, enums), and one
//! `validate()` pass for the rules that span several keys (twilio needs a
//! token *and* exactly one sender, `after_ingest = "move"` needs `move_to`).
//!
//! # Why I layer the sources myself instead of using config-rs
//!
//! config-rs is in the dependency list and I tried to make it fit, but its
//! environment source only splits lists (`attachments.allowed=jpg,png`) when
//! `try_parsing(true)` is on, and `try_parsing` guesses a type from the
//! *string*: `SWITCHBOARD__TWILIO__FROM=+15550100` becomes the integer
//! 15550100 and the `+` is gone; an IMAP username `0123` would lose its
//! zero. It also cannot address an entry of `[[imap]]` from the environment.
//! The layering itself is small, so I do it here:
//!
//! * the file is parsed with `toml` into a tree whose leaves keep their TOML
//!   types (a file is typed; `max_connections = "8"` is an error there);
//! * each environment variable is laid onto that tree as a leaf that is only
//!   a string, replacing whatever the file had at that key;
//! * a small serde `Deserializer` over the tree turns an environment string
//!   into a bool, an integer or a comma-separated list *only when the field
//!   being filled asks for one*. The target type decides, never the look of
//!   the string, so `"+15550100"` stays a string and `"8"` still fills a
//!   `u32`. Because the deserializer is mine, it also records the path as it
//!   descends, so every error (unknown key, wrong type, bad duration) names
//!   the full dotted key, `imap[0].oauth2.token_url` style. That is what
//!   `serde_path_to_error` would give; doing it inline saves a dependency and
//!   lets me say *which environment variable* set a bad key.
//!
//! The cost is about 500 lines of tree and deserializer glue, paid once and
//! tested below.
//!
//! # Environment variables
//!
//! `SWITCHBOARD__<SECTION>__<KEY>`, case-insensitive, `__` between levels,
//! single `_` inside a key (`SWITCHBOARD__TWILIO__AUTH_TOKEN`). A purely
//! numeric level indexes a list: `SWITCHBOARD__IMAP__0__PASSWORD` sets the
//! password of the first `[[imap]]` table (index == length appends a new
//! one). Lists are written comma-separated (`jpg,png`; items are trimmed, so
//! an ack word containing a comma can only be set in the file). Booleans
//! accept `true/false/yes/no/on/off/1/0`. Setting `X` in the environment
//! removes a file's `X_file` and vice versa, so env really wins for secrets.
//! Variables named `SWITCHBOARD_…` with a single underscore are not ours.
//!
//! # Secrets
//!
//! `twilio.auth_token`, `imap[].password`, `smtp.password`,
//! `imap[].oauth2.client_secret` and `imap[].oauth2.refresh_token` may each be
//! given as `X_file`: a path whose content, trimmed, is the secret. A relative
//! path is first looked up in `$CREDENTIALS_DIRECTORY` (systemd
//! `LoadCredential=`), then taken as-is. Giving both `X` and `X_file`, an
//! unreadable file or an empty one is an error naming the key. Secrets of a
//! channel that is off (twilio disabled, smtp without host) are not read.
//! After loading, `X` holds the secret and `X_file` still tells where it came
//! from. [`Secret`] prints as `[redacted]` in `Debug` and `Display`, and so
//! does the password of a `database.url` in `Debug` and in
//! [`Config::redacted_summary`]. The secret string itself is not zeroised on
//! drop; `secrecy` would do that but adds little against a process dump.
//!
//! # Values
//!
//! * Durations ([`Dur`]): a whole number and a unit, `ms`, `s`, `m`, `h`, `d`
//!   (`500ms`, `30s`, `2m`, `1h`, `7d`, `0s`); parts may be chained (`1h30m`).
//!   `auto_close.after` and `retention.raw_mail` are `Option<Dur>`, `""` = off.
//! * Cron schedules ([`Schedule`], parsed by `croner`): the standard 5-field
//!   crontab `minute hour day-of-month month day-of-week`, or 6 fields with a
//!   leading seconds field. Ranges, lists and steps (`1-5`, `1,15`, `*/5`,
//!   `10-50/10`), month and weekday names (`JAN`, `mon-fri`), weekday 0 or 7
//!   = Sunday, day-of-month OR day-of-week as in Vixie cron, the nicknames
//!   `@hourly @daily @weekly @monthly @yearly`, and croner's extensions `?`,
//!   `L`, `W`, `#` and a `+` prefix on the weekday field for AND. Rejected:
//!   4 or 7 fields (no year field), out-of-range values, and `0/10`-style
//!   steps. I use `croner` rather than `cron` because `cron` demands a
//!   seconds field and numbers weekdays from 1 = Sunday, so an operator's
//!   `0 8 * * 1-5` would silently run Sunday to Thursday.
//!   Times are evaluated by the scheduler, not here.
//! * `server.public_url` and `twilio.api_base` are stored without trailing
//!   `/` so callers can append `/webhooks/...` without doubling slashes.
//! * `attachments.allowed` is stored lower-case without a leading dot.
//! * `threading.default_region` is a `phonenumber` region id (`US`, `gb`…).
//!
//! # Defaults and systemd
//!
//! [`Config::default`] is pure: it reads nothing. Loading adds two systemd
//! touches: with `$STATE_DIRECTORY` set (its first entry if `:`-separated),
//! an unconfigured `database.url` becomes `sqlite://$STATE_DIRECTORY/switchboard.db`
//! and an unconfigured `attachments.dir` becomes `$STATE_DIRECTORY/attachments`.
//! A `[twilio]` table that is present without `enabled` counts as enabled (a
//! user who writes the table means to use it); an absent table is off. SMTP
//! is off while `smtp.host` is empty. Validation stops at the first problem:
//! `check-config` reports one key at a time, which keeps [`ConfigError`] a
//! plain value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::redact::redact_url;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor};

/// Where `serve` looks for a config file when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/switchboard/switchboard.toml";

/// Prefix of the environment variables that set config keys.
const ENV_PREFIX: &str = "SWITCHBOARD__";

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A configuration problem, naming the dotted key when there is one.
///
/// Displays as ``config key `server.listen`: invalid socket address "x"``, or
/// just the message when no single key is at fault (unreadable file, TOML
/// syntax error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key such as `server.listen` or `imap[0].host`.
    pub key: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about one key.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// An error that is not about one key.
    pub fn general(message: impl Into<String>) -> Self {
        ConfigError {
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "config key `{key}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------

/// A secret string (token, password). `Debug` and `Display` print
/// `[redacted]`; call [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A duration written `500ms`, `30s`, `2m`, `1h`, `7d` (parts may be chained:
/// `1h30m`). Named `Dur` so it does not shadow `std::time::Duration`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub std::time::Duration);

impl Dur {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Dur(std::time::Duration::from_secs(secs))
    }

    /// The `std` duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses `30s`, `2m`, `1h`, `7d`, `500ms`, `1h30m`.
    pub fn parse(input: &str) -> Result<Dur, String> {
        let s = input.trim();
        let bad = || {
            format!(
                "invalid duration {input:?}: expected a whole number and a unit \
                 (ms, s, m, h or d), e.g. \"30s\", \"2m\", \"1h\", \"7d\""
            )
        };
        let too_large = || format!("duration {input:?} is too large");
        if s.is_empty() {
            return Err(bad());
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let secs = |per: u64| n.checked_mul(per).map(std::time::Duration::from_secs);
            let part = match &rest[..unit_len] {
                "ms" => Some(std::time::Duration::from_millis(n)),
                "s" => secs(1),
                "m" => secs(60),
                "h" => secs(3_600),
                "d" => secs(86_400),
                _ => return Err(bad()),
            }
            .ok_or_else(too_large)?;
            total = total.checked_add(part).ok_or_else(too_large)?;
            rest = &rest[unit_len..];
        }
        Ok(Dur(total))
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dur::parse(s)
    }
}

impl From<Dur> for std::time::Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

impl fmt::Display for Dur {
    /// The shortest exact spelling: `0s`, `500ms`, `90s`, `2m`, `7d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(f, "{d:?}");
        }
        if d.subsec_millis() != 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let s = d.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, per) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if s.is_multiple_of(per) {
                return write!(f, "{}{unit}", s / per);
            }
        }
        write!(f, "{s}s")
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dur({self})")
    }
}

/// A cron schedule, parsed once at load so the scheduler cannot meet a bad
/// one. See the module documentation for the accepted syntax.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a 5-field crontab expression (or 6 with leading seconds).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = expr.trim();
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "invalid cron expression {expr:?}: it has {fields} fields, expected 5 \
                 (`minute hour day-of-month month day-of-week`) or 6 with a leading seconds field"
            ));
        }
        let cron = parser
            .parse(expr)
            .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))?;
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The parsed schedule, for computing the next run.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    /// A built-in default; these constants are covered by a test.
    fn builtin(expr: &'static str) -> Schedule {
        Schedule::parse(expr).expect("built-in cron expression is valid")
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// Transport security of an IMAP or SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Implicit TLS from the first byte (IMAP 993, SMTP 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, SMTP 587).
    StartTls,
    /// No TLS at all; only when configured explicitly.
    Plain,
}

impl Security {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::StartTls => "starttls",
            Security::Plain => "plain",
        }
    }
}

/// What happens to a mail on the server once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    /// Set `\Seen`.
    #[default]
    Seen,
    /// Move to `move_to`.
    Move,
    /// Delete (expunge).
    Delete,
}

impl AfterIngest {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterIngest::Seen => "seen",
            AfterIngest::Move => "move",
            AfterIngest::Delete => "delete",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line (journald, log shippers).
    Json,
}

impl LogFormat {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

/// The whole configuration. Field names are the TOML section names.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub twilio: TwilioConfig,
    pub imap: Vec<ImapConfig>,
    pub smtp: SmtpConfig,
    pub threading: ThreadingConfig,
    pub notifications: NotificationsConfig,
    pub escalation: EscalationConfig,
    pub auto_close: AutoCloseConfig,
    pub digest: DigestConfig,
    pub retention: RetentionConfig,
    pub attachments: AttachmentsConfig,
    pub auto_ack: AutoAckConfig,
    pub logging: LoggingConfig,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// API, webhooks, web page.
    #[serde(deserialize_with = "de_parsed")]
    pub listen: SocketAddr,
    /// Separate `/metrics` listener; `""` = none.
    #[serde(deserialize_with = "de_opt_parsed")]
    pub metrics_listen: Option<SocketAddr>,
    /// How the outside world reaches us; stored without trailing `/`.
    #[serde(deserialize_with = "de_url")]
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            public_url: "http://127.0.0.1:8080".to_string(),
        }
    }
}

/// `[database]`
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…`, `sqlite::memory:`, `postgres://…` or `postgresql://…`.
    pub url: String,
    pub max_connections: u32,
    /// `serve` applies pending migrations first.
    pub auto_migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://switchboard.db".to_string(),
            max_connections: 8,
            auto_migrate: true,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    /// Hand-written so a password inside the URL never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("auto_migrate", &self.auto_migrate)
            .finish()
    }
}

/// `[twilio]` — the SMS channel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioConfig {
    /// `false` when the table is absent; `true` when present without the key.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `AC…`
    pub account_sid: String,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub auth_token: Option<Secret>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub auth_token_file: Option<PathBuf>,
    /// Sender number (or short code / alphanumeric id); exclusive with
    /// `messaging_service_sid`.
    #[serde(deserialize_with = "de_opt_parsed")]
    pub from: Option<String>,
    /// `MG…`
    #[serde(deserialize_with = "de_opt_parsed")]
    pub messaging_service_sid: Option<String>,
    /// Stored without trailing `/`.
    #[serde(deserialize_with = "de_url")]
    pub api_base: String,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            enabled: false,
            account_sid: String::new(),
            auth_token: None,
            auth_token_file: None,
            from: None,
            messaging_service_sid: None,
            api_base: "https://api.twilio.com".to_string(),
        }
    }
}

/// One `[[imap]]` mailbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Unique, stable name (cursor key, logs, `/readyz`).
    pub name: String,
    pub host: String,
    /// `None`: 993 for `tls`, else 143. See [`ImapConfig::port`].
    pub port: Option<u16>,
    pub security: Security,
    pub username: String,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub password: Option<Secret>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub password_file: Option<PathBuf>,
    /// XOAUTH2 instead of a password.
    pub oauth2: Option<OAuth2Config>,
    /// Our address on this mailbox; `None`: the username. See [`ImapConfig::address`].
    #[serde(deserialize_with = "de_opt_parsed")]
    pub address: Option<String>,
    pub mailbox: String,
    pub after_ingest: AfterIngest,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub move_to: Option<String>,
    pub idle: bool,
    pub poll_interval: Dur,
    /// Extra trusted CA (PEM).
    #[serde(deserialize_with = "de_opt_parsed")]
    pub ca_file: Option<PathBuf>,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            name: String::new(),
            host: String::new(),
            port: None,
            security: Security::Tls,
            username: String::new(),
            password: None,
            password_file: None,
            oauth2: None,
            address: None,
            mailbox: "INBOX".to_string(),
            after_ingest: AfterIngest::Seen,
            move_to: None,
            idle: true,
            poll_interval: Dur::from_secs(60),
            ca_file: None,
        }
    }
}

impl ImapConfig {
    /// The port to connect to: the configured one, else 993 (tls) or 143.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 993,
            Security::StartTls | Security::Plain => 143,
        })
    }

    /// Our address on this mailbox: `address`, else `username`.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.username)
    }
}

/// `[imap.oauth2]` — XOAUTH2 with a refresh token exchanged at `token_url`.
///
/// `client_secret` is optional because public clients (Microsoft 365 device
/// flow) have none; `refresh_token` is required by `validate()`. Both are
/// `Option` because either may come from `X_file`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuth2Config {
    pub token_url: String,
    pub client_id: String,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub client_secret: Option<Secret>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub refresh_token: Option<Secret>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub refresh_token_file: Option<PathBuf>,
}

/// `[smtp]` — outbound mail. Off while `host` is empty.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// `None`: 465 for `tls`, 587 for `starttls`, 25 for `plain`.
    pub port: Option<u16>,
    pub security: Security,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub username: Option<String>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub password: Option<Secret>,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub password_file: Option<PathBuf>,
    /// `From` of notifications, e.g. `Support <support@example.com>`.
    pub from: String,
    #[serde(deserialize_with = "de_opt_parsed")]
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            security: Security::StartTls,
            username: None,
            password: None,
            password_file: None,
            from: String::new(),
            ca_file: None,
        }
    }
}

impl SmtpConfig {
    /// Whether outbound mail is configured at all.
    pub fn enabled(&self) -> bool {
        !self.host.trim().is_empty()
    }

    /// The port to connect to: the configured one, else by `security`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            Security::Tls => 465,
            Security::StartTls => 587,
            Security::Plain => 25,
        })
    }
}

/// `[threading]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreadingConfig {
    /// Region for phone numbers without a country code.
    #[serde(deserialize_with = "de_parsed")]
    pub default_region: phonenumber::country::Id,
    pub reopen_window: Dur,
    pub auto_resolve_acks: bool,
    pub ack_words: Vec<String>,
}

impl Default for ThreadingConfig {
    fn default() -> Self {
        ThreadingConfig {
            default_region: phonenumber::country::Id::US,
            reopen_window: Dur::from_secs(0),
            auto_resolve_acks: false,
            ack_words: ["ok", "okay", "thanks", "thank you", "thx", "yes", "👍"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

/// `[notifications]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    pub email_coalesce: Dur,
    /// In-app notifications older than this are deleted, read or not.
    pub retention: Dur,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            email_coalesce: Dur::from_secs(120),
            retention: Dur::from_secs(30 * 86_400),
        }
    }
}

/// `[escalation]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationConfig {
    pub after: Dur,
    pub schedule: Schedule,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            after: Dur::from_secs(30 * 60),
            schedule: Schedule::builtin("*/5 * * * *"),
        }
    }
}

/// `[auto_close]` — off while `after` is `None`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoCloseConfig {
    #[serde(deserialize_with = "de_opt_parsed")]
    pub after: Option<Dur>,
    pub schedule: Schedule,
}

impl Default for AutoCloseConfig {
    fn default() -> Self {
        AutoCloseConfig {
            after: None,
            schedule: Schedule::builtin("0 * * * *"),
        }
    }
}

/// `[digest]` — off while `schedule` is `None`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestConfig {
    #[serde(deserialize_with = "de_opt_parsed")]
    pub schedule: Option<Schedule>,
}

/// `[retention]` — raw mail is kept forever while `raw_mail` is `None`.
/// `rejected` bounds the rejected-inbound log, which anyone can add to
/// (an unsigned webhook is a rejection): it is always on, purged by the
/// hourly housekeeping job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(deserialize_with = "de_opt_parsed")]
    pub raw_mail: Option<Dur>,
    pub schedule: Schedule,
    pub rejected: Dur,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_mail: None,
            schedule: Schedule::builtin("30 3 * * *"),
            rejected: Dur::from_secs(30 * 86_400),
        }
    }
}

/// `[attachments]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_files: u32,
    /// Lower-case extensions without the dot.
    #[serde(deserialize_with = "de_extensions")]
    pub allowed: Vec<String>,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            dir: PathBuf::from("attachments"),
            max_bytes: 10 * 1024 * 1024,
            max_files: 10,
            allowed: [
                "jpg", "jpeg", "png", "gif", "webp", "pdf", "doc", "docx", "xls", "xlsx", "ppt",
                "pptx",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// `[auto_ack]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoAckConfig {
    pub enabled: bool,
    pub max_per_hour: u32,
    /// `{issue}` is replaced by the issue number.
    pub text: String,
}

impl Default for AutoAckConfig {
    fn default() -> Self {
        AutoAckConfig {
            enabled: false,
            max_per_hour: 3,
            text: "We received your message (reference #{issue}). We'll get back to you soon."
                .to_string(),
        }
    }
}

/// `[logging]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive string.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Pretty,
            level: "info".to_string(),
        }
    }
}

fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------------------
// Field parsers used through `deserialize_with`
// ---------------------------------------------------------------------------

/// Types that are written as one string in the config.
trait ParseValue: Sized {
    fn parse_value(s: &str) -> Result<Self, String>;
}

impl ParseValue for SocketAddr {
    fn parse_value(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map_err(|_| format!("invalid socket address {s:?}"))
    }
}

impl ParseValue for String {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
}

impl ParseValue for PathBuf {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(PathBuf::from(s))
    }
}

impl ParseValue for Secret {
    fn parse_value(s: &str) -> Result<Self, String> {
        Ok(Secret(s.to_string()))
    }
}

impl ParseValue for Dur {
    fn parse_value(s: &str) -> Result<Self, String> {
        Dur::parse(s)
    }
}

impl ParseValue for Schedule {
    fn parse_value(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

impl ParseValue for phonenumber::country::Id {
    fn parse_value(s: &str) -> Result<Self, String> {
        let code = s.trim().to_ascii_uppercase();
        let bad =
            || format!("unknown region code {s:?}: expected a two-letter code such as US or GB");
        if code.len() != 2 || !code.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(bad());
        }
        code.parse().map_err(|_| bad())
    }
}

macro_rules! deserialize_via_parse_value {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                de_parsed(d)
            }
        }
    )*};
}
deserialize_via_parse_value!(Secret, Dur, Schedule);

fn de_parsed<'de, D: de::Deserializer<'de>, T: ParseValue>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    T::parse_value(&s).map_err(de::Error::custom)
}

/// `""` (or only whitespace) is `None`.
fn de_opt_parsed<'de, D: de::Deserializer<'de>, T: ParseValue>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        Ok(None)
    } else {
        T::parse_value(&s).map(Some).map_err(de::Error::custom)
    }
}

fn de_url<'de, D: de::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(s.trim().trim_end_matches('/').to_string())
}

fn de_extensions<'de, D: de::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    Ok(list
        .into_iter()
        .map(|e| e.trim().trim_start_matches('.').to_lowercase())
        .collect())
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

impl Config {
    /// Defaults → TOML file (if `path` is given) → `SWITCHBOARD__*` variables
    /// of this process (env wins) → `*_file` secrets → [`Config::validate`].
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            match (key.into_string(), value.into_string()) {
                (Ok(k), Ok(v)) => vars.push((k, v)),
                (Ok(k), Err(_)) if is_ours(&k) => {
                    return Err(ConfigError::general(format!(
                        "environment variable {k} is not valid UTF-8"
                    )));
                }
                _ => {}
            }
        }
        Config::load_with_env(path, vars)
    }

    /// Like [`Config::load`], with the environment given explicitly (tests).
    /// `STATE_DIRECTORY` and `CREDENTIALS_DIRECTORY` are taken from it too.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env = EnvLayer::collect(env)?;
        let mut root = match path {
            Some(p) => read_toml(p)?,
            None => Node::Table(BTreeMap::new()),
        };
        for ov in &env.overrides {
            insert_env(&mut root, &ov.segs, &mut Vec::new(), ov)?;
        }
        if let Some(dir) = &env.state_directory {
            let dir = dir.trim_end_matches('/');
            set_if_absent(
                &mut root,
                "database",
                "url",
                format!("sqlite://{dir}/switchboard.db"),
            );
            set_if_absent(
                &mut root,
                "attachments",
                "dir",
                Path::new(dir)
                    .join("attachments")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let mut config = Config::deserialize(root).map_err(|e| env.annotate(e.into()))?;
        config
            .resolve_secret_files(env.credentials_directory.as_deref())
            .map_err(|e| env.annotate(e))?;
        config.validate().map_err(|e| env.annotate(e))?;
        Ok(config)
    }

    /// `/etc/switchboard/switchboard.toml` if it exists, else `None`
    /// (built-in defaults).
    pub fn default_path() -> Option<PathBuf> {
        let path = PathBuf::from(DEFAULT_CONFIG_PATH);
        path.is_file().then_some(path)
    }

    /// Reads every `X_file` into `X` (see the module docs).
    fn resolve_secret_files(&mut self, creds: Option<&Path>) -> Result<(), ConfigError> {
        if self.twilio.enabled {
            let t = &mut self.twilio;
            resolve_secret(
                "twilio.auth_token",
                &mut t.auth_token,
                &t.auth_token_file,
                creds,
            )?;
        }
        for (i, m) in self.imap.iter_mut().enumerate() {
            resolve_secret(
                &format!("imap[{i}].password"),
                &mut m.password,
                &m.password_file,
                creds,
            )?;
            if let Some(o) = &mut m.oauth2 {
                resolve_secret(
                    &format!("imap[{i}].oauth2.client_secret"),
                    &mut o.client_secret,
                    &o.client_secret_file,
                    creds,
                )?;
                resolve_secret(
                    &format!("imap[{i}].oauth2.refresh_token"),
                    &mut o.refresh_token,
                    &o.refresh_token_file,
                    creds,
                )?;
            }
        }
        if self.smtp.enabled() {
            let s = &mut self.smtp;
            resolve_secret("smtp.password", &mut s.password, &s.password_file, creds)?;
        }
        Ok(())
    }

    /// Checks every rule that a field's type does not already guarantee.
    /// Returns the first problem, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // server
        let server = &self.server;
        if server.metrics_listen == Some(server.listen) {
            return Err(ConfigError::at(
                "server.metrics_listen",
                format!("must differ from server.listen ({})", server.listen),
            ));
        }
        check_http_url("server.public_url", &server.public_url)?;

        // database
        let db = &self.database;
        let lower = db.url.trim().to_ascii_lowercase();
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(ConfigError::at(
                "database.url",
                format!(
                    "unsupported database URL {:?}: expected sqlite://… or postgres://…",
                    redact_url(&db.url)
                ),
            ));
        }
        if db.max_connections < 1 {
            return Err(ConfigError::at(
                "database.max_connections",
                "must be at least 1",
            ));
        }

        self.validate_twilio()?;
        self.validate_imap()?;
        self.validate_smtp()?;

        // schedules and durations: the types already parsed them
        if self.auto_close.after.is_some_and(|d| d.0.is_zero()) {
            return Err(ConfigError::at(
                "auto_close.after",
                "must be longer than 0s (use \"\" to turn auto-close off)",
            ));
        }
        if self.notifications.retention.0.is_zero() {
            return Err(ConfigError::at(
                "notifications.retention",
                "must be longer than 0s",
            ));
        }
        if self.retention.rejected.0.is_zero() {
            return Err(ConfigError::at(
                "retention.rejected",
                "must be longer than 0s",
            ));
        }
        if self.retention.raw_mail.is_some_and(|d| d.0.is_zero()) {
            return Err(ConfigError::at(
                "retention.raw_mail",
                "must be longer than 0s (use \"\" to keep raw mail)",
            ));
        }

        // attachments
        let att = &self.attachments;
        if att.dir.as_os_str().is_empty() {
            return Err(ConfigError::at("attachments.dir", "is required"));
        }
        if att.max_bytes < 1 {
            return Err(ConfigError::at(
                "attachments.max_bytes",
                "must be at least 1",
            ));
        }
        if att.max_files < 1 {
            return Err(ConfigError::at(
                "attachments.max_files",
                "must be at least 1",
            ));
        }
        if let Some(i) = att.allowed.iter().position(|e| e.is_empty()) {
            return Err(ConfigError::at(
                format!("attachments.allowed[{i}]"),
                "empty extension",
            ));
        }

        // auto_ack
        if self.auto_ack.enabled {
            if self.auto_ack.max_per_hour < 1 {
                return Err(ConfigError::at(
                    "auto_ack.max_per_hour",
                    "must be at least 1 when auto_ack is enabled",
                ));
            }
            if self.auto_ack.text.trim().is_empty() {
                return Err(ConfigError::at(
                    "auto_ack.text",
                    "is required when auto_ack is enabled",
                ));
            }
        }

        // logging
        check_log_level(&self.logging.level).map_err(|m| ConfigError::at("logging.level", m))?;
        Ok(())
    }

    fn validate_twilio(&self) -> Result<(), ConfigError> {
        let t = &self.twilio;
        if !t.enabled {
            return Ok(());
        }
        if !t.account_sid.starts_with("AC") {
            return Err(ConfigError::at(
                "twilio.account_sid",
                format!("must start with \"AC\", got {:?}", t.account_sid),
            ));
        }
        if t.auth_token.is_none() && t.auth_token_file.is_none() {
            return Err(ConfigError::at(
                "twilio.auth_token",
                "is required when twilio is enabled (or give auth_token_file)",
            ));
        }
        match (&t.from, &t.messaging_service_sid) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    "twilio.messaging_service_sid",
                    "give either `from` or `messaging_service_sid`, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::at(
                    "twilio.from",
                    "is required when twilio is enabled (or give messaging_service_sid)",
                ));
            }
            (None, Some(sid)) if !sid.starts_with("MG") => {
                return Err(ConfigError::at(
                    "twilio.messaging_service_sid",
                    format!("must start with \"MG\", got {sid:?}"),
                ));
            }
            _ => {}
        }
        check_http_url("twilio.api_base", &t.api_base)
    }

    fn validate_imap(&self) -> Result<(), ConfigError> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, m) in self.imap.iter().enumerate() {
            let key = |k: &str| format!("imap[{i}].{k}");
            if m.name.trim().is_empty() {
                return Err(ConfigError::at(key("name"), "is required"));
            }
            if let Some(first) = seen.insert(m.name.as_str(), i) {
                return Err(ConfigError::at(
                    key("name"),
                    format!("duplicate mailbox name {:?} (also imap[{first}])", m.name),
                ));
            }
            if m.host.trim().is_empty() {
                return Err(ConfigError::at(key("host"), "is required"));
            }
            if m.port == Some(0) {
                return Err(ConfigError::at(key("port"), "must be 1-65535"));
            }
            if m.username.trim().is_empty() {
                return Err(ConfigError::at(key("username"), "is required"));
            }
            let has_password = m.password.is_some() || m.password_file.is_some();
            match (&m.oauth2, has_password) {
                (Some(_), true) => {
                    return Err(ConfigError::at(
                        key("oauth2"),
                        "give either a password or an [imap.oauth2] table, not both",
                    ));
                }
                (None, false) => {
                    return Err(ConfigError::at(
                        key("password"),
                        "is required (or password_file, or an [imap.oauth2] table)",
                    ));
                }
                (Some(o), false) => {
                    check_http_url(&key("oauth2.token_url"), &o.token_url)?;
                    if o.client_id.trim().is_empty() {
                        return Err(ConfigError::at(key("oauth2.client_id"), "is required"));
                    }
                    if o.refresh_token.is_none() && o.refresh_token_file.is_none() {
                        return Err(ConfigError::at(
                            key("oauth2.refresh_token"),
                            "is required (or refresh_token_file)",
                        ));
                    }
                }
                (None, true) => {}
            }
            if !m.address().contains('@') {
                return Err(ConfigError::at(
                    key("address"),
                    format!(
                        "{:?} is not an email address; set `address` (it defaults to the username)",
                        m.address()
                    ),
                ));
            }
            if m.mailbox.trim().is_empty() {
                return Err(ConfigError::at(key("mailbox"), "is required"));
            }
            if m.after_ingest == AfterIngest::Move && m.move_to.is_none() {
                return Err(ConfigError::at(
                    key("move_to"),
                    "is required when after_ingest = \"move\"",
                ));
            }
            if m.poll_interval.0.is_zero() {
                return Err(ConfigError::at(
                    key("poll_interval"),
                    "must be longer than 0s",
                ));
            }
            if let Some(ca) = &m.ca_file {
                check_file_exists(&key("ca_file"), ca)?;
            }
        }
        Ok(())
    }

    fn validate_smtp(&self) -> Result<(), ConfigError> {
        let s = &self.smtp;
        if !s.enabled() {
            return Ok(());
        }
        if s.port == Some(0) {
            return Err(ConfigError::at("smtp.port", "must be 1-65535"));
        }
        if !s.from.contains('@') {
            return Err(ConfigError::at(
                "smtp.from",
                format!(
                    "must be an address such as \"Support <support@example.com>\", got {:?}",
                    s.from
                ),
            ));
        }
        let has_password = s.password.is_some() || s.password_file.is_some();
        match (&s.username, has_password) {
            (Some(_), false) => Err(ConfigError::at(
                "smtp.password",
                "is required when smtp.username is set (or password_file)",
            )),
            (None, true) => Err(ConfigError::at(
                "smtp.username",
                "is required when a password is set",
            )),
            _ => match &s.ca_file {
                Some(ca) => check_file_exists("smtp.ca_file", ca),
                None => Ok(()),
            },
        }
    }

    /// A TOML-like listing of the effective configuration with every secret
    /// shown as `[redacted]` (and a password in `database.url` masked), for
    /// `check-config` and start-up logs.
    pub fn redacted_summary(&self) -> String {
        let mut out = Summary::default();
        let s = &self.server;
        out.section("server");
        out.kv("listen", quote(&s.listen.to_string()));
        out.kv(
            "metrics_listen",
            quote_opt(s.metrics_listen.map(|a| a.to_string())),
        );
        out.kv("public_url", quote(&s.public_url));

        let d = &self.database;
        out.section("database");
        out.kv("url", quote(&redact_url(&d.url)));
        out.kv("max_connections", d.max_connections);
        out.kv("auto_migrate", d.auto_migrate);

        let t = &self.twilio;
        out.section("twilio");
        out.kv("enabled", t.enabled);
        out.kv("account_sid", quote(&t.account_sid));
        out.secret("auth_token", &t.auth_token, &t.auth_token_file);
        out.kv("from", quote_opt(t.from.clone()));
        out.kv(
            "messaging_service_sid",
            quote_opt(t.messaging_service_sid.clone()),
        );
        out.kv("api_base", quote(&t.api_base));

        for m in &self.imap {
            out.raw("\n[[imap]]\n");
            out.kv("name", quote(&m.name));
            out.kv("host", quote(&m.host));
            out.kv("port", m.port());
            out.kv("security", quote(m.security.as_str()));
            out.kv("username", quote(&m.username));
            out.secret("password", &m.password, &m.password_file);
            out.kv("address", quote(m.address()));
            out.kv("mailbox", quote(&m.mailbox));
            out.kv("after_ingest", quote(m.after_ingest.as_str()));
            out.kv("move_to", quote_opt(m.move_to.clone()));
            out.kv("idle", m.idle);
            out.kv("poll_interval", quote(&m.poll_interval.to_string()));
            out.kv("ca_file", quote_opt(m.ca_file.as_deref().map(path_str)));
            if let Some(o) = &m.oauth2 {
                out.raw("[imap.oauth2]\n");
                out.kv("token_url", quote(&o.token_url));
                out.kv("client_id", quote(&o.client_id));
                out.secret("client_secret", &o.client_secret, &o.client_secret_file);
                out.secret("refresh_token", &o.refresh_token, &o.refresh_token_file);
            }
        }

        let m = &self.smtp;
        out.section("smtp");
        out.kv("host", quote(&m.host));
        out.kv("port", m.port());
        out.kv("security", quote(m.security.as_str()));
        out.kv("username", quote_opt(m.username.clone()));
        out.secret("password", &m.password, &m.password_file);
        out.kv("from", quote(&m.from));
        out.kv("ca_file", quote_opt(m.ca_file.as_deref().map(path_str)));

        let th = &self.threading;
        out.section("threading");
        out.kv("default_region", quote(th.default_region.as_ref()));
        out.kv("reopen_window", quote(&th.reopen_window.to_string()));
        out.kv("auto_resolve_acks", th.auto_resolve_acks);
        out.kv("ack_words", quote_list(&th.ack_words));

        out.section("notifications");
        out.kv(
            "email_coalesce",
            quote(&self.notifications.email_coalesce.to_string()),
        );
        out.kv(
            "retention",
            quote(&self.notifications.retention.to_string()),
        );

        out.section("escalation");
        out.kv("after", quote(&self.escalation.after.to_string()));
        out.kv("schedule", quote(self.escalation.schedule.as_str()));

        out.section("auto_close");
        out.kv(
            "after",
            quote_opt(self.auto_close.after.map(|d| d.to_string())),
        );
        out.kv("schedule", quote(self.auto_close.schedule.as_str()));

        out.section("digest");
        out.kv(
            "schedule",
            quote_opt(self.digest.schedule.as_ref().map(|s| s.to_string())),
        );

        out.section("retention");
        out.kv(
            "raw_mail",
            quote_opt(self.retention.raw_mail.map(|d| d.to_string())),
        );
        out.kv("schedule", quote(self.retention.schedule.as_str()));
        out.kv("rejected", quote(&self.retention.rejected.to_string()));

        let a = &self.attachments;
        out.section("attachments");
        out.kv("dir", quote(&path_str(&a.dir)));
        out.kv("max_bytes", a.max_bytes);
        out.kv("max_files", a.max_files);
        out.kv("allowed", quote_list(&a.allowed));

        let aa = &self.auto_ack;
        out.section("auto_ack");
        out.kv("enabled", aa.enabled);
        out.kv("max_per_hour", aa.max_per_hour);
        out.kv("text", quote(&aa.text));

        out.section("logging");
        out.kv("format", quote(self.logging.format.as_str()));
        out.kv("level", quote(&self.logging.level));
        out.0
    }
}

/// Builds the text of [`Config::redacted_summary`].
#[derive(Default)]
struct Summary(String);

impl Summary {
    fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        self.0.push_str(&format!("[{name}]\n"));
    }

    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn kv(&mut self, key: &str, value: impl fmt::Display) {
        self.0.push_str(&format!("{key} = {value}\n"));
    }

    fn secret(&mut self, key: &str, value: &Option<Secret>, file: &Option<PathBuf>) {
        let shown = if value.is_some() {
            "\"[redacted]\""
        } else {
            "\"\""
        };
        self.kv(key, shown);
        if let Some(path) = file {
            self.kv(&format!("{key}_file"), quote(&path_str(path)));
        }
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn quote_opt(s: Option<String>) -> String {
    quote(s.as_deref().unwrap_or(""))
}

fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(", "))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::at(
            key,
            format!("must be an absolute http:// or https:// URL, got {value:?} ({why})"),
        )
    };
    let url = reqwest::Url::parse(value).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!("scheme {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    Ok(())
}

fn check_file_exists(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ConfigError::at(
            key,
            format!(
                "file {:?} does not exist or is not a file",
                path.display().to_string()
            ),
        ))
    }
}

/// `EnvFilter::try_new` accepts a bare word as a *target* name, so a typo
/// like `infoo` would silently mean "trace everything from target infoo".
/// I reject bare words that are not level names; write `target=level`.
fn check_log_level(level: &str) -> Result<(), String> {
    if level.trim().is_empty() {
        return Err("must not be empty; use e.g. \"info\"".to_string());
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid filter directive {level:?}: {e}"))?;
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    for d in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare_word = d
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':'));
        if bare_word && !LEVELS.contains(&d.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} is neither a level (trace, debug, info, warn, error, off) \
                 nor a `target=level` directive"
            ));
        }
    }
    Ok(())
}

fn resolve_secret(
    key: &str,
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    creds: Option<&Path>,
) -> Result<(), ConfigError> {
    let Some(path) = file else {
        return Ok(());
    };
    let name = key.rsplit('.').next().unwrap_or(key);
    if value.is_some() {
        return Err(ConfigError::at(
            key,
            format!("both `{name}` and `{name}_file` are set; give only one"),
        ));
    }
    let file_key = format!("{key}_file");
    let mut resolved = path.clone();
    let mut looked_in_creds = false;
    if let Some(dir) = creds.filter(|_| path.is_relative()) {
        looked_in_creds = true;
        let candidate = dir.join(path);
        if candidate.exists() {
            resolved = candidate;
        }
    }
    let text = std::fs::read_to_string(&resolved).map_err(|e| {
        let also = if looked_in_creds && resolved == *path {
            " (not found in $CREDENTIALS_DIRECTORY either)"
        } else {
            ""
        };
        ConfigError::at(
            &file_key,
            format!(
                "cannot read secret file {:?}{also}: {e}",
                resolved.display().to_string()
            ),
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(ConfigError::at(
            &file_key,
            format!("secret file {:?} is empty", resolved.display().to_string()),
        ));
    }
    *value = Some(Secret(secret.to_string()));
    Ok(())
}

fn read_toml(path: &Path) -> Result<Node, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::general(format!("cannot read config file {}: {e}", path.display()))
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ConfigError::general(format!("cannot parse config file {}: {e}", path.display()))
    })?;
    Ok(Node::from_toml(toml::Value::Table(table)))
}

// ---------------------------------------------------------------------------
// The merged tree and the environment layer
// ---------------------------------------------------------------------------

/// One step of a key path: `server`, `listen`, or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The merged configuration before it is typed. File leaves keep their TOML
/// type; environment leaves are strings that the deserializer converts only
/// when the target field asks for a bool, a number or a list.
#[derive(Debug, Clone)]
enum Node {
    Table(BTreeMap<String, Node>),
    Array(Vec<Node>),
    /// A scalar from the file (never a table or array).
    File(toml::Value),
    /// A value from the environment.
    Env(String),
}

impl Node {
    fn from_toml(v: toml::Value) -> Node {
        match v {
            toml::Value::Table(t) => Node::Table(
                t.into_iter()
                    .map(|(k, v)| (k, Node::from_toml(v)))
                    .collect(),
            ),
            toml::Value::Array(a) => Node::Array(a.into_iter().map(Node::from_toml).collect()),
            other => Node::File(other),
        }
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Table(_) => Unexpected::Map,
            Node::Array(_) => Unexpected::Seq,
            Node::Env(s) => Unexpected::Str(s),
            Node::File(v) => match v {
                toml::Value::String(s) => Unexpected::Str(s),
                toml::Value::Integer(i) => Unexpected::Signed(*i),
                toml::Value::Float(f) => Unexpected::Float(*f),
                toml::Value::Boolean(b) => Unexpected::Bool(*b),
                toml::Value::Datetime(_) => Unexpected::Other("datetime"),
                toml::Value::Array(_) => Unexpected::Seq,
                toml::Value::Table(_) => Unexpected::Map,
            },
        }
    }
}

/// One `SWITCHBOARD__…` variable.
struct EnvOverride {
    var: String,
    segs: Vec<Seg>,
    value: String,
}

/// What the environment contributes.
struct EnvLayer {
    overrides: Vec<EnvOverride>,
    state_directory: Option<String>,
    credentials_directory: Option<PathBuf>,
}

fn is_ours(var: &str) -> bool {
    var.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

impl EnvLayer {
    fn collect(env: impl IntoIterator<Item = (String, String)>) -> Result<EnvLayer, ConfigError> {
        let mut layer = EnvLayer {
            overrides: Vec::new(),
            state_directory: None,
            credentials_directory: None,
        };
        for (var, value) in env {
            if var == "STATE_DIRECTORY" {
                layer.state_directory = value
                    .split(':')
                    .next()
                    .filter(|d| !d.is_empty())
                    .map(String::from);
                continue;
            }
            if var == "CREDENTIALS_DIRECTORY" {
                layer.credentials_directory =
                    Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty());
                continue;
            }
            if !is_ours(&var) {
                continue;
            }
            let mut segs = Vec::new();
            for part in var[ENV_PREFIX.len()..].split("__") {
                if part.is_empty() {
                    return Err(ConfigError::general(format!(
                        "environment variable {var}: empty key segment (levels are separated by exactly two underscores)"
                    )));
                }
                if part.chars().all(|c| c.is_ascii_digit()) {
                    if segs.is_empty() {
                        return Err(ConfigError::general(format!(
                            "environment variable {var}: must start with a section name"
                        )));
                    }
                    let i = part.parse().map_err(|_| {
                        ConfigError::general(format!("environment variable {var}: index too large"))
                    })?;
                    segs.push(Seg::Index(i));
                } else {
                    segs.push(Seg::Key(part.to_lowercase()));
                }
            }
            layer.overrides.push(EnvOverride { var, segs, value });
        }
        // Sorted by path (indices numerically) so `[[imap]]` entries are
        // created in order and the result does not depend on env order.
        layer
            .overrides
            .sort_by(|a, b| a.segs.cmp(&b.segs).then_with(|| a.var.cmp(&b.var)));
        for pair in layer.overrides.windows(2) {
            if pair[0].segs == pair[1].segs {
                return Err(ConfigError::at(
                    render_path(&pair[0].segs),
                    format!(
                        "set by both environment variables {} and {}",
                        pair[0].var, pair[1].var
                    ),
                ));
            }
        }
        Ok(layer)
    }

    /// Appends "(set by environment variable X)" when the key came from env.
    fn annotate(&self, mut err: ConfigError) -> ConfigError {
        let Some(key) = &err.key else {
            return err;
        };
        let under = |a: &str, b: &str| {
            a == b || a.starts_with(&format!("{b}.")) || a.starts_with(&format!("{b}["))
        };
        let hit = self
            .overrides
            .iter()
            .find(|ov| under(key, &render_path(&ov.segs)))
            .or_else(|| {
                self.overrides
                    .iter()
                    .find(|ov| under(&render_path(&ov.segs), key))
            });
        if let Some(ov) = hit {
            err.message
                .push_str(&format!(" (set by environment variable {})", ov.var));
        }
        err
    }
}

/// Lays one environment value onto the tree, creating tables and list
/// entries on the way.
fn insert_env(
    node: &mut Node,
    segs: &[Seg],
    walked: &mut Vec<Seg>,
    ov: &EnvOverride,
) -> Result<(), ConfigError> {
    let Some((seg, rest)) = segs.split_first() else {
        *node = Node::Env(ov.value.clone());
        return Ok(());
    };
    let empty_for = |rest: &[Seg]| match rest.first() {
        Some(Seg::Index(_)) => Node::Array(Vec::new()),
        Some(Seg::Key(_)) => Node::Table(BTreeMap::new()),
        None => Node::Env(String::new()),
    };
    match (node, seg) {
        (Node::Table(table), Seg::Key(k)) => {
            if rest.is_empty() {
                // `X` from env replaces the file's `X_file`, and vice versa.
                let twin = match k.strip_suffix("_file") {
                    Some(base) => base.to_string(),
                    None => format!("{k}_file"),
                };
                if matches!(table.get(&twin), Some(Node::File(_))) {
                    table.remove(&twin);
                }
            }
            let child = table.entry(k.clone()).or_insert_with(|| empty_for(rest));
            walked.push(seg.clone());
            insert_env(child, rest, walked, ov)
        }
        (Node::Array(items), Seg::Index(i)) => {
            if *i == items.len() {
                items.push(empty_for(rest));
            }
            let len = items.len();
            let Some(child) = items.get_mut(*i) else {
                walked.push(seg.clone());
                return Err(ConfigError::at(
                    render_path(walked),
                    format!(
                        "environment variable {} skips list entries: the list has {len}, so the next index is {len}",
                        ov.var
                    ),
                ));
            };
            walked.push(seg.clone());
            insert_env(child, rest, walked, ov)
        }
        (existing, _) => {
            let what = match seg {
                Seg::Key(_) => "a table",
                Seg::Index(_) => "a list",
            };
            let kind = match existing {
                Node::Table(_) => "a table",
                Node::Array(_) => "a list",
                Node::File(_) | Node::Env(_) => "a single value",
            };
            Err(ConfigError::at(
                render_path(walked),
                format!(
                    "environment variable {} treats this key as {what}, but it is {kind}",
                    ov.var
                ),
            ))
        }
    }
}

/// Sets `section.key` unless it is already there (the `STATE_DIRECTORY`
/// defaults).
fn set_if_absent(root: &mut Node, section: &str, key: &str, value: String) {
    if let Node::Table(top) = root
        && let Node::Table(sec) = top
            .entry(section.to_string())
            .or_insert_with(|| Node::Table(BTreeMap::new()))
    {
        sec.entry(key.to_string())
            .or_insert(Node::File(toml::Value::String(value)));
    }
}

// ---------------------------------------------------------------------------
// The deserializer over the tree
// ---------------------------------------------------------------------------

/// A deserialization error with the path where it happened. Each level
/// prepends its own step as the error travels outwards.
#[derive(Debug)]
struct DeError {
    path: Vec<Seg>,
    message: String,
}

impl DeError {
    fn at(mut self, seg: Seg) -> Self {
        self.path.insert(0, seg);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: Vec::new(),
            message: msg.to_string(),
        }
    }

    // The key itself is added to the path by `TableAccess::next_key_seed`.
    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        let message = if expected.is_empty() {
            "unknown key".to_string()
        } else {
            format!("unknown key (expected one of: {})", expected.join(", "))
        };
        DeError {
            path: Vec::new(),
            message,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            path: vec![Seg::Key(field.to_string())],
            message: "is required".to_string(),
        }
    }
}

impl From<DeError> for ConfigError {
    fn from(e: DeError) -> Self {
        ConfigError {
            key: (!e.path.is_empty()).then(|| render_path(&e.path)),
            message: e.message,
        }
    }
}

struct TableAccess {
    iter: std::collections::btree_map::IntoIter<String, Node>,
    pending: Option<(String, Node)>,
}

impl<'de> MapAccess<'de> for TableAccess {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let k = seed
            .deserialize(de::value::StringDeserializer::<DeError>::new(key.clone()))
            .map_err(|e| e.at(Seg::Key(key.clone())))?;
        self.pending = Some((key, value));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before its key"))?;
        seed.deserialize(value).map_err(|e| e.at(Seg::Key(key)))
    }
}

struct ArrayAccess {
    iter: std::iter::Enumerate<std::vec::IntoIter<Node>>,
}

impl<'de> SeqAccess<'de> for ArrayAccess {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(node)
                .map(Some)
                .map_err(|e| e.at(Seg::Index(i))),
        }
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Node>, visitor: V) -> Result<V::Value, DeError> {
    visitor.visit_seq(ArrayAccess {
        iter: items.into_iter().enumerate(),
    })
}

/// Integers from the environment: parsed only because the field wants one.
fn visit_env_int<'de, V: Visitor<'de>>(s: &str, visitor: V) -> Result<V::Value, DeError> {
    let t = s.trim();
    if t.starts_with('-') {
        match t.parse::<i64>() {
            Ok(n) => visitor.visit_i64(n),
            Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &"an integer")),
        }
    } else {
        match t.parse::<u64>() {
            Ok(n) => visitor.visit_u64(n),
            Err(_) => Err(de::Error::invalid_value(Unexpected::Str(s), &"an integer")),
        }
    }
}

macro_rules! env_coercing_ints {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self {
                Node::Env(s) => visit_env_int(&s, visitor),
                other => other.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Table(t) => visitor.visit_map(TableAccess {
                iter: t.into_iter(),
                pending: None,
            }),
            Node::Array(a) => visit_array(a, visitor),
            Node::Env(s) => visitor.visit_string(s),
            Node::File(v) => match v {
                toml::Value::String(s) => visitor.visit_string(s),
                toml::Value::Integer(i) => visitor.visit_i64(i),
                toml::Value::Float(f) => visitor.visit_f64(f),
                toml::Value::Boolean(b) => visitor.visit_bool(b),
                toml::Value::Datetime(d) => visitor.visit_string(d.to_string()),
                nested @ (toml::Value::Array(_) | toml::Value::Table(_)) => {
                    Node::from_toml(nested).deserialize_any(visitor)
                }
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => visitor.visit_bool(true),
                "false" | "no" | "off" | "0" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_value(
                    Unexpected::Str(&s),
                    &"true or false",
                )),
            },
            other => other.deserialize_any(visitor),
        }
    }

    env_coercing_ints!(
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => match s.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => Err(de::Error::invalid_value(Unexpected::Str(&s), &"a number")),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Absence is handled by `#[serde(default)]`; `""` by `de_opt_parsed`.
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => {
                let items = if s.trim().is_empty() {
                    Vec::new()
                } else {
                    s.split(',')
                        .map(|p| Node::Env(p.trim().to_string()))
                        .collect()
                };
                visit_array(items, visitor)
            }
            Node::Table(_) => Err(de::Error::invalid_type(
                Unexpected::Map,
                &"a list (a list of tables is written [[name]], once per entry)",
            )),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Node::Table(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a table")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) | Node::File(toml::Value::String(s)) => visitor.visit_enum(
                de::value::StringDeserializer::<DeError>::new(s.trim().to_string()),
            ),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).expect("create file");
        f.write_all(content.as_bytes()).expect("write file");
        path
    }

    /// Loads `toml` (written to a temp file) with the given environment.
    fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(dir.path(), "switchboard.toml", toml);
        Config::load_with_env(Some(&path), env(vars))
    }

    fn load_ok(toml: &str, vars: &[(&str, &str)]) -> Config {
        match load(toml, vars) {
            Ok(c) => c,
            Err(e) => panic!("expected config to load, got: {e}"),
        }
    }

    fn load_err(toml: &str, vars: &[(&str, &str)]) -> ConfigError {
        match load(toml, vars) {
            Ok(c) => panic!("expected an error, got {c:#?}"),
            Err(e) => e,
        }
    }

    fn key(e: &ConfigError) -> &str {
        e.key.as_deref().unwrap_or("<none>")
    }

    const TWILIO_OK: &str = r#"
[twilio]
account_sid = "AC123"
auth_token = "tok"
from = "+15550100"
"#;

    /// The full example of SPEC §8, with a real IMAP password.
    const SPEC_EXAMPLE: &str = r##"
[server]
listen = "127.0.0.1:8080"           # API, webhooks, web page
metrics_listen = ""                  # optional separate listener for /metrics
public_url = "http://127.0.0.1:8080" # as the outside world (Twilio, links in emails) sees us

[database]
url = "sqlite://switchboard.db"     # or postgres://user@host/db
max_connections = 8
auto_migrate = true                  # serve applies pending migrations

[twilio]                             # SMS channel; absent or enabled=false: off
enabled = true
account_sid = "AC…"
auth_token = "…"
from = "+15550100"                  # or messaging_service_sid = "MG…"
api_base = "https://api.twilio.com"

[[imap]]                             # one table per mailbox
name = "support"
host = "imap.example.com"
port = 993
security = "tls"                     # tls | starttls | plain
username = "support@example.com"
password = "hunter2-imap"           # or password_file, or the oauth2 table below
address = "support@example.com"     # our address on this mailbox (From of replies); default: username
mailbox = "INBOX"
after_ingest = "seen"                # seen | move | delete
move_to = "Processed"
idle = true
poll_interval = "60s"
ca_file = ""                         # extra trusted CA (PEM), e.g. a self-signed test server
# [imap.oauth2] token_url, client_id, client_secret, refresh_token  → XOAUTH2

[smtp]                               # outbound mail: replies and notifications
host = "smtp.example.com"
port = 587
security = "starttls"                # tls | starttls | plain
username = ""
password = ""
from = "Support <support@example.com>"  # for notifications; replies use the mailbox address
ca_file = ""

[threading]
default_region = "US"
reopen_window = "0s"
auto_resolve_acks = false
ack_words = ["ok", "okay", "thanks", "thank you", "thx", "yes", "👍"]

[notifications]
email_coalesce = "2m"

[escalation]
after = "30m"
schedule = "*/5 * * * *"             # standard 5-field crontab

[auto_close]                         # off unless `after` is set
after = ""
schedule = "0 * * * *"

[digest]
schedule = ""                        # e.g. "0 8 * * 1-5"; empty: off

[retention]
raw_mail = ""                        # e.g. "180d"; empty: keep
schedule = "30 3 * * *"
rejected = "30d"                     # rejected-inbound log rows older than this are deleted

[attachments]
dir = "attachments"
max_bytes = 10485760
max_files = 10
allowed = ["jpg","jpeg","png","gif","webp","pdf","doc","docx","xls","xlsx","ppt","pptx"]

[auto_ack]
enabled = false
max_per_hour = 3
text = "We received your message (reference #{issue}). We'll get back to you soon."

[logging]
format = "pretty"                    # pretty | json
level = "info"                       # any tracing EnvFilter directive
"##;

    // --- defaults -------------------------------------------------------

    #[test]
    fn defaults_with_no_file() {
        let c = Config::load_with_env(None, env(&[])).expect("defaults load");
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(c.server.metrics_listen, None);
        assert_eq!(c.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://switchboard.db");
        assert_eq!(c.database.max_connections, 8);
        assert!(c.database.auto_migrate);
        assert!(!c.twilio.enabled);
        assert_eq!(c.twilio.api_base, "https://api.twilio.com");
        assert!(c.imap.is_empty());
        assert!(!c.smtp.enabled());
        assert_eq!(c.threading.default_region, phonenumber::country::Id::US);
        assert_eq!(c.threading.reopen_window.get(), std::time::Duration::ZERO);
        assert_eq!(c.threading.ack_words.len(), 7);
        assert_eq!(c.threading.ack_words[6], "👍");
        assert_eq!(c.notifications.email_coalesce, Dur::from_secs(120));
        assert_eq!(c.escalation.after, Dur::from_secs(1800));
        assert_eq!(c.escalation.schedule.as_str(), "*/5 * * * *");
        assert_eq!(c.auto_close.after, None);
        assert_eq!(c.auto_close.schedule.as_str(), "0 * * * *");
        assert_eq!(c.digest.schedule, None);
        assert_eq!(c.retention.raw_mail, None);
        assert_eq!(c.retention.schedule.as_str(), "30 3 * * *");
        assert_eq!(c.attachments.dir, PathBuf::from("attachments"));
        assert_eq!(c.attachments.max_bytes, 10_485_760);
        assert_eq!(c.attachments.max_files, 10);
        assert_eq!(c.attachments.allowed.len(), 12);
        assert!(!c.auto_ack.enabled);
        assert_eq!(c.auto_ack.max_per_hour, 3);
        assert_eq!(c.logging.format, LogFormat::Pretty);
        assert_eq!(c.logging.level, "info");
        Config::default().validate().expect("defaults are valid");
    }

    #[test]
    fn default_path_matches_the_filesystem() {
        let exists = Path::new(DEFAULT_CONFIG_PATH).is_file();
        assert_eq!(
            Config::default_path(),
            exists.then(|| PathBuf::from(DEFAULT_CONFIG_PATH))
        );
    }

    #[test]
    fn spec_example_loads() {
        let c = load_ok(SPEC_EXAMPLE, &[]);
        assert!(c.twilio.enabled);
        assert_eq!(c.twilio.from.as_deref(), Some("+15550100"));
        assert_eq!(c.imap.len(), 1);
        let m = &c.imap[0];
        assert_eq!(m.name, "support");
        assert_eq!(m.port(), 993);
        assert_eq!(m.security, Security::Tls);
        assert_eq!(
            m.password.as_ref().map(Secret::expose),
            Some("hunter2-imap")
        );
        assert_eq!(m.move_to.as_deref(), Some("Processed"));
        assert_eq!(m.ca_file, None);
        assert!(c.smtp.enabled());
        assert_eq!(c.smtp.port(), 587);
        assert_eq!(c.smtp.username, None);
        assert_eq!(c.smtp.password, None);
        assert_eq!(c.server.metrics_listen, None);
        assert_eq!(c.digest.schedule, None);
        assert_eq!(c.attachments, AttachmentsConfig::default());
        assert_eq!(c.threading, ThreadingConfig::default());
    }

    // --- layering -------------------------------------------------------

    #[test]
    fn file_overrides_defaults() {
        let c = load_ok(
            r#"
[server]
listen = "0.0.0.0:9000"
metrics_listen = "127.0.0.1:9100"
public_url = "https://help.example.com/"

[database]
url = "postgres://sb@db/sb"
max_connections = 20
auto_migrate = false

[escalation]
after = "1h"

[logging]
format = "json"
level = "info,switchboard=debug"
"#,
            &[],
        );
        assert_eq!(c.server.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(
            c.server.metrics_listen,
            Some("127.0.0.1:9100".parse().expect("addr"))
        );
        assert_eq!(c.server.public_url, "https://help.example.com");
        assert_eq!(c.database.url, "postgres://sb@db/sb");
        assert_eq!(c.database.max_connections, 20);
        assert!(!c.database.auto_migrate);
        assert_eq!(c.escalation.after, Dur::from_secs(3600));
        assert_eq!(c.logging.format, LogFormat::Json);
        // untouched keys keep their defaults
        assert_eq!(c.escalation.schedule.as_str(), "*/5 * * * *");
    }

    #[test]
    fn env_overrides_file() {
        let c = load_ok(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[database]\nmax_connections = 20\n",
            &[
                ("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:7000"),
                ("switchboard__database__Max_Connections", "3"),
                ("SWITCHBOARD_SERVER_LISTEN", "not ours, ignored"),
            ],
        );
        assert_eq!(c.server.listen, "127.0.0.1:7000".parse().expect("addr"));
        assert_eq!(c.database.max_connections, 3);
    }

    #[test]
    fn phone_number_and_leading_zero_survive_env() {
        let c = load_ok(
            TWILIO_OK,
            &[
                ("SWITCHBOARD__TWILIO__FROM", "+15550100"),
                ("SWITCHBOARD__TWILIO__AUTH_TOKEN", "0012345"),
                ("SWITCHBOARD__AUTO_ACK__TEXT", "true"),
            ],
        );
        assert_eq!(c.twilio.from.as_deref(), Some("+15550100"));
        assert_eq!(
            c.twilio.auth_token.as_ref().map(Secret::expose),
            Some("0012345")
        );
        assert_eq!(c.auto_ack.text, "true");
    }

    #[test]
    fn bool_and_int_from_env() {
        let c = load_ok(
            "",
            &[
                ("SWITCHBOARD__DATABASE__AUTO_MIGRATE", "false"),
                ("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "8"),
                ("SWITCHBOARD__AUTO_ACK__ENABLED", "TRUE"),
                ("SWITCHBOARD__AUTO_ACK__MAX_PER_HOUR", "5"),
                ("SWITCHBOARD__ATTACHMENTS__MAX_BYTES", "2048"),
                ("SWITCHBOARD__THREADING__AUTO_RESOLVE_ACKS", "yes"),
            ],
        );
        assert!(!c.database.auto_migrate);
        assert_eq!(c.database.max_connections, 8);
        assert!(c.auto_ack.enabled);
        assert_eq!(c.auto_ack.max_per_hour, 5);
        assert_eq!(c.attachments.max_bytes, 2048);
        assert!(c.threading.auto_resolve_acks);
    }

    #[test]
    fn bad_int_and_bool_from_env_name_key_and_variable() {
        let e = load_err("", &[("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "eight")]);
        assert_eq!(key(&e), "database.max_connections");
        assert!(
            e.message.contains("SWITCHBOARD__DATABASE__MAX_CONNECTIONS"),
            "{e}"
        );
        let e = load_err("", &[("SWITCHBOARD__DATABASE__AUTO_MIGRATE", "maybe")]);
        assert_eq!(key(&e), "database.auto_migrate");
        let e = load_err("", &[("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "-1")]);
        assert_eq!(key(&e), "database.max_connections");
    }

    #[test]
    fn file_values_are_typed_strictly() {
        // A number where a string belongs is not silently stringified, and a
        // string where a number belongs is not silently parsed.
        let e = load_err("[twilio]\nfrom = 15550100\n", &[]);
        assert_eq!(key(&e), "twilio.from");
        let e = load_err("[database]\nmax_connections = \"8\"\n", &[]);
        assert_eq!(key(&e), "database.max_connections");
    }

    #[test]
    fn lists_from_env_are_comma_separated() {
        let c = load_ok(
            "",
            &[
                ("SWITCHBOARD__ATTACHMENTS__ALLOWED", "jpg, .PNG,pdf"),
                ("SWITCHBOARD__THREADING__ACK_WORDS", "ok,thank you,👍"),
            ],
        );
        assert_eq!(c.attachments.allowed, vec!["jpg", "png", "pdf"]);
        assert_eq!(c.threading.ack_words, vec!["ok", "thank you", "👍"]);
        let c = load_ok("", &[("SWITCHBOARD__THREADING__ACK_WORDS", "")]);
        assert!(c.threading.ack_words.is_empty());
    }

    #[test]
    fn env_can_address_imap_entries() {
        let file = r#"
[[imap]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "from-file"
"#;
        let c = load_ok(
            file,
            &[
                ("SWITCHBOARD__IMAP__0__PASSWORD", "from-env"),
                ("SWITCHBOARD__IMAP__0__PORT", "1993"),
                ("SWITCHBOARD__IMAP__1__NAME", "sales"),
                ("SWITCHBOARD__IMAP__1__HOST", "imap.example.com"),
                ("SWITCHBOARD__IMAP__1__USERNAME", "sales@example.com"),
                ("SWITCHBOARD__IMAP__1__PASSWORD", "pw"),
                ("SWITCHBOARD__IMAP__1__SECURITY", "starttls"),
            ],
        );
        assert_eq!(c.imap.len(), 2);
        assert_eq!(
            c.imap[0].password.as_ref().map(Secret::expose),
            Some("from-env")
        );
        assert_eq!(c.imap[0].port(), 1993);
        assert_eq!(c.imap[1].name, "sales");
        assert_eq!(c.imap[1].port(), 143);

        let e = load_err(file, &[("SWITCHBOARD__IMAP__5__HOST", "x")]);
        assert_eq!(key(&e), "imap[5]");
        assert!(e.message.contains("skips"), "{e}");
    }

    #[test]
    fn same_key_from_two_env_spellings_is_an_error() {
        let e = load_err(
            "",
            &[
                ("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:1"),
                ("switchboard__server__listen", "127.0.0.1:2"),
            ],
        );
        assert_eq!(key(&e), "server.listen");
    }

    #[test]
    fn malformed_env_name_is_an_error() {
        let e = load_err("", &[("SWITCHBOARD__SERVER____LISTEN", "x")]);
        assert!(e.message.contains("SWITCHBOARD__SERVER____LISTEN"), "{e}");
        let e = load_err("", &[("SWITCHBOARD__SERVER__LISTEN__PORT", "1")]);
        assert_eq!(key(&e), "server.listen");
    }

    // --- unknown keys ---------------------------------------------------

    #[test]
    fn unknown_key_in_file_is_named() {
        let e = load_err("[server]\nlissen = \"127.0.0.1:1\"\n", &[]);
        assert_eq!(key(&e), "server.lissen");
        assert!(e.message.contains("listen"), "suggests valid keys: {e}");
        assert!(
            e.to_string()
                .starts_with("config key `server.lissen`: unknown key")
        );

        let e = load_err("[[imap]]\nname = \"a\"\nhots = \"x\"\n", &[]);
        assert_eq!(key(&e), "imap[0].hots");

        let e = load_err(
            "[[imap]]\nname = \"a\"\n[imap.oauth2]\ntoken_uri = \"x\"\n",
            &[],
        );
        assert_eq!(key(&e), "imap[0].oauth2.token_uri");

        let e = load_err("[imap]\nname = \"a\"\n", &[]);
        assert_eq!(key(&e), "imap");
        assert!(e.message.contains("[[name]]"), "{e}");

        let e = load_err("[sever]\nlisten = \"x\"\n", &[]);
        assert_eq!(key(&e), "sever");
    }

    #[test]
    fn unknown_key_in_env_is_named() {
        let e = load_err("", &[("SWITCHBOARD__SERVER__LISSEN", "127.0.0.1:1")]);
        assert_eq!(key(&e), "server.lissen");
        assert!(e.message.contains("SWITCHBOARD__SERVER__LISSEN"), "{e}");

        let e = load_err("", &[("SWITCHBOARD__NOPE__X", "1")]);
        assert_eq!(key(&e), "nope");
        assert!(e.message.contains("SWITCHBOARD__NOPE__X"), "{e}");
    }

    // --- secrets --------------------------------------------------------

    #[test]
    fn every_secret_can_come_from_a_file_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p =
            |name: &str, content: &str| write_file(dir.path(), name, content).display().to_string();
        let toml = format!(
            r#"
[twilio]
account_sid = "AC1"
auth_token_file = "{}"
from = "+15550100"

[[imap]]
name = "a"
host = "imap.example.com"
username = "a@example.com"
password_file = "{}"

[[imap]]
name = "b"
host = "imap.example.com"
username = "b@example.com"
[imap.oauth2]
token_url = "https://login.example.com/token"
client_id = "cid"
client_secret_file = "{}"
refresh_token_file = "{}"

[smtp]
host = "smtp.example.com"
username = "u"
password_file = "{}"
from = "s@example.com"
"#,
            p("twilio", "  sek-twilio\n"),
            p("imap", "sek-imap\n"),
            p("cs", "\tsek-cs \n"),
            p("rt", "sek-rt\r\n"),
            p("smtp", "sek-smtp\n\n"),
        );
        let c = load_ok(&toml, &[]);
        let exposed = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
        assert_eq!(exposed(&c.twilio.auth_token).as_deref(), Some("sek-twilio"));
        assert_eq!(exposed(&c.imap[0].password).as_deref(), Some("sek-imap"));
        let o = c.imap[1].oauth2.as_ref().expect("oauth2 table");
        assert_eq!(exposed(&o.client_secret).as_deref(), Some("sek-cs"));
        assert_eq!(exposed(&o.refresh_token).as_deref(), Some("sek-rt"));
        assert_eq!(exposed(&c.smtp.password).as_deref(), Some("sek-smtp"));

        let summary = c.redacted_summary();
        for secret in ["sek-twilio", "sek-imap", "sek-cs", "sek-rt", "sek-smtp"] {
            assert!(!summary.contains(secret), "{secret} leaked:\n{summary}");
        }
        let debug = format!("{c:?}");
        for secret in ["sek-twilio", "sek-imap", "sek-cs", "sek-rt", "sek-smtp"] {
            assert!(!debug.contains(secret), "{secret} leaked in Debug");
        }
    }

    #[test]
    fn secret_files_are_found_in_credentials_directory() {
        let creds = tempfile::tempdir().expect("tempdir");
        write_file(creds.path(), "twilio-token", "cred-token\n");
        write_file(creds.path(), "imap-pw", "cred-imap\n");
        let toml = r#"
[twilio]
account_sid = "AC1"
auth_token_file = "twilio-token"
from = "+15550100"

[[imap]]
name = "a"
host = "h"
username = "a@example.com"
password_file = "imap-pw"
"#;
        let creds_dir = creds.path().display().to_string();
        let c = load_ok(toml, &[("CREDENTIALS_DIRECTORY", &creds_dir)]);
        assert_eq!(
            c.twilio.auth_token.as_ref().map(Secret::expose),
            Some("cred-token")
        );
        assert_eq!(
            c.imap[0].password.as_ref().map(Secret::expose),
            Some("cred-imap")
        );

        // Without the variable the relative path is taken as-is and is missing.
        let e = load_err(toml, &[]);
        assert_eq!(key(&e), "twilio.auth_token_file");
    }

    #[test]
    fn secret_and_secret_file_together_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = write_file(dir.path(), "tok", "x");
        let toml = format!(
            "{TWILIO_OK}auth_token_file = {:?}\n",
            f.display().to_string()
        );
        let e = load_err(&toml, &[]);
        assert_eq!(key(&e), "twilio.auth_token");
        assert!(e.message.contains("auth_token_file"), "{e}");
    }

    #[test]
    fn secret_from_env_replaces_secret_file_from_file() {
        let toml = r#"
[twilio]
account_sid = "AC1"
auth_token_file = "/nonexistent/token"
from = "+15550100"
"#;
        let c = load_ok(toml, &[("SWITCHBOARD__TWILIO__AUTH_TOKEN", "env-token")]);
        assert_eq!(
            c.twilio.auth_token.as_ref().map(Secret::expose),
            Some("env-token")
        );
        assert_eq!(c.twilio.auth_token_file, None);
    }

    #[test]
    fn missing_or_empty_secret_file_names_key_and_path() {
        let toml = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"a@example.com\"\npassword_file = \"/nonexistent/imap-pw\"\n";
        let e = load_err(toml, &[]);
        assert_eq!(key(&e), "imap[0].password_file");
        assert!(e.message.contains("/nonexistent/imap-pw"), "{e}");

        let dir = tempfile::tempdir().expect("tempdir");
        let f = write_file(dir.path(), "empty", " \n");
        let toml = format!(
            "[smtp]\nhost = \"smtp.example.com\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword_file = {:?}\n",
            f.display().to_string()
        );
        let e = load_err(&toml, &[]);
        assert_eq!(key(&e), "smtp.password_file");
        assert!(e.message.contains("empty"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");

        let mut c = Config::default();
        c.database.url = "postgres://sb:dbpass@db/sb?sslmode=require&password=qpass".into();
        let debug = format!("{c:?}");
        let summary = c.redacted_summary();
        for text in [&debug, &summary] {
            assert!(!text.contains("dbpass"), "{text}");
            assert!(!text.contains("qpass"), "{text}");
            assert!(text.contains("postgres://sb:[redacted]@db/sb"), "{text}");
        }
        assert!(
            summary.contains("[server]\nlisten = \"127.0.0.1:8080\""),
            "{summary}"
        );
    }

    // --- validation -----------------------------------------------------

    #[test]
    fn error_display_format() {
        let e = load_err("[server]\nlisten = \"x\"\n", &[]);
        assert_eq!(
            e.to_string(),
            "config key `server.listen`: invalid socket address \"x\""
        );
        assert_eq!(ConfigError::general("boom").to_string(), "boom");
    }

    #[test]
    fn the_documented_example_config_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/switchboard.example.toml");
        let c = Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.notifications.retention, Dur::from_secs(30 * 86_400));
        assert_eq!(c.notifications.email_coalesce, Dur::from_secs(120));
        assert_eq!(c.retention.rejected, Dur::from_secs(30 * 86_400));
    }

    #[test]
    fn bad_duration_is_named() {
        let e = load_err("[escalation]\nafter = \"30 minutes\"\n", &[]);
        assert_eq!(key(&e), "escalation.after");
        assert!(e.message.contains("invalid duration"), "{e}");
        let e = load_err("", &[("SWITCHBOARD__NOTIFICATIONS__EMAIL_COALESCE", "2")]);
        assert_eq!(key(&e), "notifications.email_coalesce");
        let e = load_err("[[imap]]\nname = \"a\"\npoll_interval = \"1x\"\n", &[]);
        assert_eq!(key(&e), "imap[0].poll_interval");
        let e = load_err("[auto_close]\nafter = \"0s\"\n", &[]);
        assert_eq!(key(&e), "auto_close.after");
        let e = load_err("[notifications]\nretention = \"0s\"\n", &[]);
        assert_eq!(key(&e), "notifications.retention");
        let e = load_err("[notifications]\nretention = \"a month\"\n", &[]);
        assert_eq!(key(&e), "notifications.retention");
        let c = load_ok("[notifications]\nretention = \"7d\"\n", &[]);
        assert_eq!(c.notifications.retention, Dur::from_secs(7 * 86_400));
        assert_eq!(
            Config::default().notifications.retention,
            Dur::from_secs(30 * 86_400)
        );
    }

    #[test]
    fn bad_cron_is_named() {
        let e = load_err("[escalation]\nschedule = \"*/5 * * *\"\n", &[]);
        assert_eq!(key(&e), "escalation.schedule");
        assert!(e.message.contains("invalid cron expression"), "{e}");
        let e = load_err("[retention]\nschedule = \"61 3 * * *\"\n", &[]);
        assert_eq!(key(&e), "retention.schedule");
        let e = load_err("[digest]\nschedule = \"0 8 * * 1-5 2030\"\n", &[]);
        assert_eq!(key(&e), "digest.schedule");
        let e = load_err("", &[("SWITCHBOARD__AUTO_CLOSE__SCHEDULE", "every hour")]);
        assert_eq!(key(&e), "auto_close.schedule");
    }

    #[test]
    fn cron_accepts_standard_and_seconds_forms() {
        for ok in [
            "*/5 * * * *",
            "0 8 * * 1-5",
            "0 8 * * mon-fri",
            "30 3 1,15 JAN *",
            "0 0 * * 7",
            "15 */5 * * * *",
            "@daily",
        ] {
            assert!(Schedule::parse(ok).is_ok(), "{ok} should parse");
        }
        for bad in [
            "",
            "* * * *",
            "0/10 * * * *",
            "0 0 0 1 1 * 2030",
            "0 24 * * *",
            "0 0 * * 8",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let c = load_ok("[digest]\nschedule = \"0 8 * * 1-5\"\n", &[]);
        assert_eq!(
            c.digest.schedule.as_ref().map(Schedule::as_str),
            Some("0 8 * * 1-5")
        );
    }

    #[test]
    fn bad_listen_is_named() {
        let e = load_err("[server]\nlisten = \"localhost\"\n", &[]);
        assert_eq!(key(&e), "server.listen");
        let e = load_err("", &[("SWITCHBOARD__SERVER__METRICS_LISTEN", "9100")]);
        assert_eq!(key(&e), "server.metrics_listen");
        let e = load_err("[server]\nmetrics_listen = \"127.0.0.1:8080\"\n", &[]);
        assert_eq!(key(&e), "server.metrics_listen");
    }

    #[test]
    fn bad_urls_are_named() {
        let e = load_err("[database]\nurl = \"mysql://u:secretpw@h/db\"\n", &[]);
        assert_eq!(key(&e), "database.url");
        assert!(!e.message.contains("secretpw"), "{e}");
        for ok in [
            "sqlite::memory:",
            "sqlite:///var/lib/sb.db",
            "postgresql://h/db",
        ] {
            let c = load_ok(&format!("[database]\nurl = {ok:?}\n"), &[]);
            assert_eq!(c.database.url, ok);
        }
        let e = load_err("[server]\npublic_url = \"ftp://example.com\"\n", &[]);
        assert_eq!(key(&e), "server.public_url");
        let e = load_err("[server]\npublic_url = \"example.com\"\n", &[]);
        assert_eq!(key(&e), "server.public_url");
        let e = load_err("[database]\nmax_connections = 0\n", &[]);
        assert_eq!(key(&e), "database.max_connections");
    }

    #[test]
    fn twilio_rules() {
        // Absent table: off. Present without `enabled`: on.
        assert!(!load_ok("", &[]).twilio.enabled);
        assert!(load_ok(TWILIO_OK, &[]).twilio.enabled);
        // Explicitly disabled: nothing else is checked.
        let c = load_ok("[twilio]\nenabled = false\naccount_sid = \"nope\"\n", &[]);
        assert!(!c.twilio.enabled);

        let e = load_err(
            "[twilio]\naccount_sid = \"AC1\"\nfrom = \"+15550100\"\n",
            &[],
        );
        assert_eq!(key(&e), "twilio.auth_token");
        let e = load_err(
            "[twilio]\naccount_sid = \"XX1\"\nauth_token = \"t\"\nfrom = \"+1\"\n",
            &[],
        );
        assert_eq!(key(&e), "twilio.account_sid");
        let e = load_err("[twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\n", &[]);
        assert_eq!(key(&e), "twilio.from");
        let e = load_err(
            &format!("{TWILIO_OK}messaging_service_sid = \"MG1\"\n"),
            &[],
        );
        assert_eq!(key(&e), "twilio.messaging_service_sid");
        let c = load_ok(
            "[twilio]\naccount_sid = \"AC1\"\nauth_token = \"t\"\nmessaging_service_sid = \"MG1\"\napi_base = \"http://127.0.0.1:9999/\"\n",
            &[],
        );
        assert_eq!(c.twilio.api_base, "http://127.0.0.1:9999");
        // env alone turns it on and supplies it
        let c = load_ok(
            "",
            &[
                ("SWITCHBOARD__TWILIO__ACCOUNT_SID", "AC9"),
                ("SWITCHBOARD__TWILIO__AUTH_TOKEN", "t"),
                ("SWITCHBOARD__TWILIO__FROM", "+15550100"),
            ],
        );
        assert!(c.twilio.enabled);
    }

    #[test]
    fn imap_rules() {
        let base = "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"a@example.com\"\n";
        let e = load_err(base, &[]);
        assert_eq!(key(&e), "imap[0].password");
        let e = load_err(
            &format!("{base}password = \"p\"\nafter_ingest = \"move\"\n"),
            &[],
        );
        assert_eq!(key(&e), "imap[0].move_to");
        let e = load_err(
            &format!("{base}password = \"p\"\nsecurity = \"ssl\"\n"),
            &[],
        );
        assert_eq!(key(&e), "imap[0].security");
        let e = load_err(
            &format!("{base}password = \"p\"\n{base}password = \"p\"\n"),
            &[],
        );
        assert_eq!(key(&e), "imap[1].name");
        let e = load_err(
            "[[imap]]\nname = \"a\"\nusername = \"a@x\"\npassword = \"p\"\n",
            &[],
        );
        assert_eq!(key(&e), "imap[0].host");
        let e = load_err(
            "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"support\"\npassword = \"p\"\n",
            &[],
        );
        assert_eq!(key(&e), "imap[0].address");
        let e = load_err(
            &format!(
                "{base}password = \"p\"\n[imap.oauth2]\ntoken_url = \"https://t\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n"
            ),
            &[],
        );
        assert_eq!(key(&e), "imap[0].oauth2");
        let c = load_ok(
            &format!(
                "{base}security = \"starttls\"\nafter_ingest = \"delete\"\n[imap.oauth2]\ntoken_url = \"https://t\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n"
            ),
            &[],
        );
        assert_eq!(c.imap[0].security, Security::StartTls);
        assert_eq!(c.imap[0].after_ingest, AfterIngest::Delete);
        assert_eq!(c.imap[0].port(), 143);
        assert_eq!(c.imap[0].address(), "a@example.com");
    }

    #[test]
    fn other_rules_are_named() {
        let e = load_err("[attachments]\nmax_files = 0\n", &[]);
        assert_eq!(key(&e), "attachments.max_files");
        let e = load_err("[threading]\ndefault_region = \"USA\"\n", &[]);
        assert_eq!(key(&e), "threading.default_region");
        let e = load_err("[threading]\ndefault_region = \"QQ\"\n", &[]);
        assert_eq!(key(&e), "threading.default_region");
        let c = load_ok("[threading]\ndefault_region = \"gb\"\n", &[]);
        assert_eq!(c.threading.default_region, phonenumber::country::Id::GB);
        let e = load_err("[logging]\nlevel = \"infoo\"\n", &[]);
        assert_eq!(key(&e), "logging.level");
        let e = load_err("[logging]\nlevel = \"info,sqlx=loud\"\n", &[]);
        assert_eq!(key(&e), "logging.level");
        let e = load_err("[logging]\nformat = \"xml\"\n", &[]);
        assert_eq!(key(&e), "logging.format");
        let e = load_err("[smtp]\nhost = \"smtp.example.com\"\n", &[]);
        assert_eq!(key(&e), "smtp.from");
        let e = load_err(
            "[smtp]\nhost = \"h\"\nfrom = \"a@b\"\nusername = \"u\"\n",
            &[],
        );
        assert_eq!(key(&e), "smtp.password");
        let e = load_err("[auto_ack]\nenabled = true\nmax_per_hour = 0\n", &[]);
        assert_eq!(key(&e), "auto_ack.max_per_hour");
        let e = load_err("[retention]\nraw_mail = \"0d\"\n", &[]);
        assert_eq!(key(&e), "retention.raw_mail");
        let e = load_err("[retention]\nrejected = \"0s\"\n", &[]);
        assert_eq!(key(&e), "retention.rejected");
        let e = load_err("[retention]\nrejected = \"a while\"\n", &[]);
        assert_eq!(key(&e), "retention.rejected");
        let c = load_ok("[retention]\nrejected = \"7d\"\n", &[]);
        assert_eq!(c.retention.rejected, Dur::from_secs(7 * 86_400));
        assert_eq!(
            Config::default().retention.rejected,
            Dur::from_secs(30 * 86_400)
        );
    }

    #[test]
    fn toml_syntax_error_and_missing_file() {
        let e = load_err("[server\nlisten = 1", &[]);
        assert_eq!(e.key, None);
        assert!(e.message.contains("cannot parse config file"), "{e}");
        let e = Config::load_with_env(Some(Path::new("/nonexistent/sb.toml")), env(&[]))
            .expect_err("missing file");
        assert!(e.message.contains("/nonexistent/sb.toml"), "{e}");
    }

    // --- systemd STATE_DIRECTORY ---------------------------------------

    #[test]
    fn state_directory_moves_default_paths() {
        let c = Config::load_with_env(
            None,
            env(&[("STATE_DIRECTORY", "/var/lib/switchboard:/var/lib/other")]),
        )
        .expect("loads");
        assert_eq!(
            c.database.url,
            "sqlite:///var/lib/switchboard/switchboard.db"
        );
        assert_eq!(
            c.attachments.dir,
            PathBuf::from("/var/lib/switchboard/attachments")
        );

        // Configured values are left alone.
        let c = load_ok(
            "[database]\nurl = \"postgres://h/db\"\n",
            &[
                ("STATE_DIRECTORY", "/var/lib/switchboard"),
                ("SWITCHBOARD__ATTACHMENTS__DIR", "/srv/att"),
            ],
        );
        assert_eq!(c.database.url, "postgres://h/db");
        assert_eq!(c.attachments.dir, PathBuf::from("/srv/att"));
    }

    // --- value types ----------------------------------------------------

    #[test]
    fn durations_parse_and_print() {
        let cases = [
            ("0s", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("7d", 604_800_000),
            ("1h30m", 5_400_000),
        ];
        for (text, ms) in cases {
            let d = Dur::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.get().as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), text.replace("1h30m", "90m"));
        }
        for bad in [
            "",
            "5",
            "m",
            "1.5h",
            "-1s",
            "5 m",
            "3w",
            "99999999999999999999d",
        ] {
            assert!(Dur::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
