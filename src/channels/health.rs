//! Per-channel health for `/readyz` and `/metrics`.
//!
//! A channel (Twilio, each IMAP mailbox, SMTP) reports its successes and
//! failures here; readiness shows them without making the instance unready
//! (SPEC §4.1), so one broken mailbox never stops webhooks from flowing.
//!
//! `/readyz` answers anyone, so a failure is reported as a short reason
//! code (`twilio_503`, `imap_auth`, `job_failed`); the error text, which
//! can name the Account SID, hosts and internal URLs, goes to the log at
//! the call site and nowhere else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What `/readyz` shows for one channel.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ChannelState {
    pub ok: bool,
    pub error: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// For scheduled jobs: when the next run is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run: Option<DateTime<Utc>>,
    /// For IMAP mailboxes: why this instance is not polling it although it
    /// is fine (another instance holds the mailbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby: Option<String>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ChannelHealth {
    inner: Arc<Mutex<BTreeMap<String, ChannelState>>>,
}

impl ChannelHealth {
    /// Registers a configured channel as healthy until it says otherwise.
    pub fn register(&self, name: &str) {
        if let Ok(mut m) = self.inner.lock() {
            m.entry(name.to_string()).or_insert(ChannelState {
                ok: true,
                ..Default::default()
            });
        }
    }

    pub fn success(&self, name: &str) {
        if let Ok(mut m) = self.inner.lock() {
            let s = m.entry(name.to_string()).or_default();
            s.ok = true;
            s.error = None;
            s.standby = None;
            s.last_success = Some(Utc::now());
        }
    }

    /// Healthy but idle on purpose: `why` says what another instance does.
    pub fn standby(&self, name: &str, why: &str) {
        if let Ok(mut m) = self.inner.lock() {
            let s = m.entry(name.to_string()).or_default();
            s.ok = true;
            s.error = None;
            s.standby = Some(why.to_string());
        }
    }

    /// A failure, as a reason code: only `[a-z0-9_]` of it is kept, at most
    /// 40 characters, so no text from an error message reaches `/readyz`.
    pub fn failure(&self, name: &str, reason: &str) {
        let code: String = reason
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        if let Ok(mut m) = self.inner.lock() {
            let s = m.entry(name.to_string()).or_default();
            s.ok = false;
            s.error = Some(if code.is_empty() {
                "error".into()
            } else {
                code
            });
            s.last_error_at = Some(Utc::now());
        }
    }

    pub fn set_next_run(&self, name: &str, at: DateTime<Utc>) {
        if let Ok(mut m) = self.inner.lock() {
            m.entry(name.to_string())
                .or_insert(ChannelState {
                    ok: true,
                    ..Default::default()
                })
                .next_run = Some(at);
        }
    }

    /// Every channel's state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ChannelState> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_recoveries_are_reported() {
        let h = ChannelHealth::default();
        h.register("twilio");
        assert!(h.snapshot()["twilio"].ok);
        h.failure("twilio", "twilio_unreachable");
        let s = &h.snapshot()["twilio"];
        assert!(!s.ok);
        assert_eq!(s.error.as_deref(), Some("twilio_unreachable"));
        // Whatever a caller passes, only a code's characters are shown.
        h.failure("twilio", "AC123: https://api.example/x failed");
        let shown = h.snapshot()["twilio"].error.clone().unwrap();
        assert!(
            shown.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{shown}"
        );
        h.success("twilio");
        let s = &h.snapshot()["twilio"];
        assert!(s.ok && s.error.is_none() && s.last_success.is_some());
    }
}
