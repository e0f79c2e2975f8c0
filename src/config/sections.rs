//! The configuration sections and their defaults.

use super::*;

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

pub(super) fn default_true() -> bool {
    true
}
