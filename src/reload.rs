//! SIGHUP: re-read the configuration and apply what can change safely.
//!
//! [`plan`] is a pure function of the running and the newly loaded
//! configuration. It returns the configuration to run from now on — the
//! running one with only the safely changeable keys taken from the new one
//! — and two lists for the log: what was applied and what needs a restart.
//! The daemon then applies the plan (`app`): a new log filter, new channel
//! credentials, restarted mailbox workers and a restarted scheduler.
//!
//! Changeable without a restart:
//! * `logging.level`;
//! * channel credentials: `twilio.account_sid` and `twilio.auth_token`
//!   (while the SMS channel stays on), the SMTP connection (`host`, `port`,
//!   `security`, `username`, `password`, `ca_file`; while outbound mail
//!   stays on), and any setting of an existing IMAP mailbox (that
//!   mailbox's worker is restarted; a commit in progress finishes first);
//! * the scheduled jobs: `[escalation]`, `[auto_close]`, `[digest]`,
//!   `[retention]` and `notifications.retention`.
//!
//! Everything else (listeners, database, turning a channel on or off,
//! adding or removing mailboxes, threading rules, …) is kept as it was
//! and named in the log as needing a restart. A configuration that does
//! not load is refused whole, and the daemon keeps running as it was.

use std::sync::OnceLock;

use crate::config::Config;

type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
static LOG_RELOADER: OnceLock<LogReloader> = OnceLock::new();

/// Registers how to change the log filter (set once, by `cli` at start).
pub fn set_log_reloader(f: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let _ = LOG_RELOADER.set(Box::new(f));
}

/// Changes the log level; `Err` when logging was not set up reloadable
/// (`RUST_LOG` chose the filter, or a test runs the daemon in-process).
pub fn set_log_level(level: &str) -> Result<(), String> {
    match LOG_RELOADER.get() {
        Some(f) => f(level),
        None => Err("the log filter was set by RUST_LOG".to_string()),
    }
}

/// What a reload does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration to run from now on.
    pub config: Config,
    /// Keys whose new values are applied.
    pub applied: Vec<String>,
    /// Keys that changed but only take effect after a restart.
    pub restart: Vec<String>,
    /// Names of the IMAP mailboxes whose workers must restart.
    pub mailboxes: Vec<String>,
    /// Whether the scheduler must restart with new jobs.
    pub jobs: bool,
    /// Whether the Twilio client takes new credentials.
    pub twilio: bool,
    /// Whether the SMTP transport is rebuilt.
    pub smtp: bool,
}

/// Works out what reloading from `old` to `new` changes.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut next = old.clone();

    next.logging.level = new.logging.level.clone();

    let twilio_stays_on = old.twilio.enabled && new.twilio.enabled;
    if twilio_stays_on {
        next.twilio.account_sid = new.twilio.account_sid.clone();
        next.twilio.auth_token = new.twilio.auth_token.clone();
        next.twilio.auth_token_file = new.twilio.auth_token_file.clone();
    }

    if old.smtp.enabled() && new.smtp.enabled() {
        let from = next.smtp.from.clone();
        next.smtp = new.smtp.clone();
        next.smtp.from = from;
    }

    let same_mailboxes = old.imap.len() == new.imap.len()
        && old
            .imap
            .iter()
            .zip(&new.imap)
            .all(|(a, b)| a.name == b.name);
    let mut mailboxes = Vec::new();
    if same_mailboxes {
        for (a, b) in old.imap.iter().zip(&new.imap) {
            if a != b {
                mailboxes.push(a.name.clone());
            }
        }
        next.imap = new.imap.clone();
    }

    next.escalation = new.escalation.clone();
    next.auto_close = new.auto_close.clone();
    next.digest = new.digest.clone();
    next.retention = new.retention.clone();
    next.notifications.retention = new.notifications.retention;

    let applied = changed_keys(old, &next);
    let restart = changed_keys(&next, new);
    let jobs = applied.iter().any(|k| {
        ["escalation", "auto_close", "digest", "retention"].contains(&k.as_str())
            || k == "notifications.retention"
    });
    let twilio = applied.iter().any(|k| k.starts_with("twilio."));
    let smtp = applied.iter().any(|k| k.starts_with("smtp."));
    Plan {
        config: next,
        applied,
        restart,
        mailboxes,
        jobs,
        twilio,
        smtp,
    }
}

/// The keys that differ between `a` and `b`: per key where a section has
/// reloadable parts, per section elsewhere. Secrets are named, never shown.
pub fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut key = |changed: bool, name: &str| {
        if changed {
            out.push(name.to_string());
        }
    };
    key(a.server != b.server, "server");
    key(a.database != b.database, "database");
    let (t, u) = (&a.twilio, &b.twilio);
    key(t.enabled != u.enabled, "twilio.enabled");
    key(t.account_sid != u.account_sid, "twilio.account_sid");
    key(
        t.auth_token != u.auth_token || t.auth_token_file != u.auth_token_file,
        "twilio.auth_token",
    );
    key(
        t.from != u.from || t.messaging_service_sid != u.messaging_service_sid,
        "twilio.from",
    );
    key(t.api_base != u.api_base, "twilio.api_base");
    let names = |c: &Config| c.imap.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        key(true, "imap (mailboxes added, removed or renamed)");
    } else {
        for (m, n) in a.imap.iter().zip(&b.imap) {
            key(m != n, &format!("imap[{}]", m.name));
        }
    }
    let (s, r) = (&a.smtp, &b.smtp);
    key(s.enabled() != r.enabled(), "smtp.host (on/off)");
    if s.enabled() && r.enabled() {
        key(
            s.host != r.host || s.port != r.port || s.security != r.security,
            "smtp.server",
        );
        key(
            s.username != r.username
                || s.password != r.password
                || s.password_file != r.password_file,
            "smtp.credentials",
        );
        key(s.ca_file != r.ca_file, "smtp.ca_file");
    }
    key(s.from != r.from, "smtp.from");
    key(a.threading != b.threading, "threading");
    key(
        a.notifications.email_coalesce != b.notifications.email_coalesce,
        "notifications.email_coalesce",
    );
    key(
        a.notifications.retention != b.notifications.retention,
        "notifications.retention",
    );
    key(a.escalation != b.escalation, "escalation");
    key(a.auto_close != b.auto_close, "auto_close");
    key(a.digest != b.digest, "digest");
    key(a.retention != b.retention, "retention");
    key(a.attachments != b.attachments, "attachments");
    key(a.auto_ack != b.auto_ack, "auto_ack");
    key(a.logging.level != b.logging.level, "logging.level");
    key(a.logging.format != b.logging.format, "logging.format");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dur, Schedule, Secret};

    fn sms_on() -> Config {
        let mut c = Config::default();
        c.twilio.enabled = true;
        c.twilio.account_sid = "AC1".into();
        c.twilio.auth_token = Some(Secret::new("old"));
        c.twilio.from = Some("+15550100".into());
        c
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let c = sms_on();
        let p = plan(&c, &c.clone());
        assert!(p.applied.is_empty() && p.restart.is_empty());
        assert!(!p.jobs && !p.twilio && !p.smtp && p.mailboxes.is_empty());
    }

    #[test]
    fn level_schedules_and_credentials_apply() {
        let old = sms_on();
        let mut new = old.clone();
        new.logging.level = "debug".into();
        new.escalation.schedule = Schedule::parse("*/10 * * * *").unwrap();
        new.notifications.retention = Dur::parse("7d").unwrap();
        new.twilio.auth_token = Some(Secret::new("new"));
        let p = plan(&old, &new);
        assert_eq!(
            p.applied,
            vec![
                "twilio.auth_token",
                "notifications.retention",
                "escalation",
                "logging.level"
            ]
        );
        assert!(p.restart.is_empty(), "{:?}", p.restart);
        assert!(p.jobs && p.twilio && !p.smtp);
        assert_eq!(p.config, new);
    }

    #[test]
    fn the_rest_waits_for_a_restart_and_keeps_its_old_value() {
        let old = sms_on();
        let mut new = old.clone();
        new.server.listen = "127.0.0.1:9999".parse().unwrap();
        new.twilio.enabled = false;
        new.threading.auto_resolve_acks = true;
        new.logging.level = "warn".into();
        let p = plan(&old, &new);
        assert_eq!(p.applied, vec!["logging.level"]);
        assert_eq!(p.restart, vec!["server", "twilio.enabled", "threading"]);
        assert_eq!(p.config.server.listen, old.server.listen);
        assert!(p.config.twilio.enabled);
        assert!(!p.config.threading.auto_resolve_acks);
        assert!(
            !p.twilio,
            "credentials of a channel being turned off are not applied"
        );
    }

    #[test]
    fn mailboxes_restart_only_when_the_set_is_the_same() {
        let mut old = Config::default();
        let a = crate::config::ImapConfig {
            name: "a".into(),
            host: "imap.example.com".into(),
            ..Default::default()
        };
        old.imap = vec![a.clone()];
        let mut new = old.clone();
        new.imap[0].password = Some(Secret::new("rotated"));
        let p = plan(&old, &new);
        assert_eq!(p.applied, vec!["imap[a]"]);
        assert_eq!(p.mailboxes, vec!["a"]);

        let mut added = old.clone();
        let mut b = a.clone();
        b.name = "b".into();
        added.imap.push(b);
        let p = plan(&old, &added);
        assert!(p.applied.is_empty());
        assert_eq!(
            p.restart,
            vec!["imap (mailboxes added, removed or renamed)"]
        );
        assert!(p.mailboxes.is_empty());
        assert_eq!(p.config.imap.len(), 1);
    }

    #[test]
    fn smtp_connection_applies_but_from_does_not() {
        let mut old = Config::default();
        old.smtp.host = "smtp.example.com".into();
        old.smtp.from = "Support <s@example.com>".into();
        let mut new = old.clone();
        new.smtp.password = Some(Secret::new("rotated"));
        new.smtp.username = Some("s".into());
        new.smtp.from = "Help <h@example.com>".into();
        let p = plan(&old, &new);
        assert_eq!(p.applied, vec!["smtp.credentials"]);
        assert_eq!(p.restart, vec!["smtp.from"]);
        assert!(p.smtp);
        assert_eq!(p.config.smtp.from, "Support <s@example.com>");
    }
}
