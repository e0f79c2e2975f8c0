//! Validation: every rule a field's type does not already guarantee, naming the key.

use super::*;

impl Config {
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

    pub(super) fn validate_twilio(&self) -> Result<(), ConfigError> {
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

    pub(super) fn validate_imap(&self) -> Result<(), ConfigError> {
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

    pub(super) fn validate_smtp(&self) -> Result<(), ConfigError> {
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
}

pub(super) fn check_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
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

pub(super) fn check_file_exists(key: &str, path: &Path) -> Result<(), ConfigError> {
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
pub(super) fn check_log_level(level: &str) -> Result<(), String> {
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
