//! Per-channel health for `/readyz` and `/metrics`.
//!
//! A channel (Twilio, each IMAP mailbox, SMTP) reports its successes and
//! failures here; readiness shows them without making the instance unready
//! (SPEC §4.1), so one broken mailbox never stops webhooks from flowing.

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

    pub fn failure(&self, name: &str, error: &str) {
        if let Ok(mut m) = self.inner.lock() {
            let s = m.entry(name.to_string()).or_default();
            s.ok = false;
            s.error = Some(error.to_string());
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
        h.failure("twilio", "connection refused");
        let s = &h.snapshot()["twilio"];
        assert!(!s.ok);
        assert_eq!(s.error.as_deref(), Some("connection refused"));
        h.success("twilio");
        let s = &h.snapshot()["twilio"];
        assert!(s.ok && s.error.is_none() && s.last_success.is_some());
    }
}
