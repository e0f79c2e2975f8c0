//! The redacted summary printed by `check-config` and at start-up.

use super::*;

impl Config {
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
pub(super) struct Summary(String);

impl Summary {
    pub(super) fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        self.0.push_str(&format!("[{name}]\n"));
    }

    pub(super) fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    pub(super) fn kv(&mut self, key: &str, value: impl fmt::Display) {
        self.0.push_str(&format!("{key} = {value}\n"));
    }

    pub(super) fn secret(&mut self, key: &str, value: &Option<Secret>, file: &Option<PathBuf>) {
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

pub(super) fn quote(s: &str) -> String {
    format!("{s:?}")
}

pub(super) fn quote_opt(s: Option<String>) -> String {
    quote(s.as_deref().unwrap_or(""))
}

pub(super) fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", inner.join(", "))
}

pub(super) fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
