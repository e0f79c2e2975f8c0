//! Prometheus metrics, rendered on our own route.
//!
//! The `metrics` facade has one global recorder per process; tests start
//! many apps in one process, so I install it once and hand every app the
//! same handle. Names follow Prometheus conventions (`_total`, `_seconds`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// A handle to the process's metrics.
#[derive(Clone)]
pub struct Metrics {
    handle: Option<PrometheusHandle>,
}

impl Metrics {
    /// Installs the recorder the first time; later calls share it.
    pub fn install() -> Metrics {
        let handle = HANDLE
            .get_or_init(|| {
                PrometheusBuilder::new()
                    .set_buckets(&[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ])
                    .ok()
                    .and_then(|b| b.install_recorder().ok())
            })
            .clone();
        Metrics { handle }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.handle.as_ref().map(|h| h.render()).unwrap_or_default()
    }

    /// One HTTP request. `route` must be a matched route template (or
    /// `unmatched`), never the request's path: every distinct label value is
    /// a series kept until restart, so no caller-supplied text becomes one.
    pub fn http_request(
        &self,
        method: &axum::http::Method,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        metrics::histogram!(
            "switchboard_http_request_duration_seconds",
            "method" => method_label(method),
            "route" => route.to_string(),
            "status" => status.to_string()
        )
        .record(elapsed.as_secs_f64());
    }

    pub fn ingested(&self, channel: &str, rule: &str) {
        metrics::counter!("switchboard_ingest_total", "channel" => channel.to_string(), "rule" => rule.to_string())
            .increment(1);
    }

    pub fn rejected(&self, kind: &str, reason: &str) {
        metrics::counter!("switchboard_rejected_total", "kind" => kind.to_string(), "reason" => reason.to_string())
            .increment(1);
    }

    pub fn outbox_result(&self, kind: &str, result: &str) {
        metrics::counter!("switchboard_outbox_attempts_total", "kind" => kind.to_string(), "result" => result.to_string())
            .increment(1);
    }

    pub fn job_run(&self, job: &str, result: &str) {
        metrics::counter!("switchboard_job_runs_total", "job" => job.to_string(), "result" => result.to_string())
            .increment(1);
    }

    /// Web sign-in attempts by outcome: `ok`, `failed`, `locked`.
    pub fn sign_in(&self, result: &'static str) {
        metrics::counter!("switchboard_sign_ins_total", "result" => result).increment(1);
    }

    /// A configuration reload (SIGHUP): `ok`, `partial` or `failed`.
    pub fn config_reload(&self, result: &str) {
        metrics::counter!("switchboard_config_reloads_total", "result" => result.to_string())
            .increment(1);
    }

    pub fn outbox_depth(&self, depth: i64) {
        metrics::gauge!("switchboard_outbox_depth").set(depth as f64);
    }
}

/// The `method` label: one of the standard verbs, or `other`. hyper accepts
/// any token as a method (50 KB ones included), and each distinct one used
/// to become a new series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, label)| *label)
        .unwrap_or("other")
}

/// One mail ingested from `mailbox`: how long it sat in the mailbox
/// (IMAP INTERNALDATE to commit). A free function: the IMAP worker has no
/// `Metrics` handle, and the recorder is global anyway.
pub fn imap_fetched(mailbox: &str, lag: Duration) {
    metrics::histogram!("switchboard_imap_fetch_lag_seconds", "mailbox" => mailbox.to_string())
        .record(lag.as_secs_f64());
}

/// A successful fetch round on `mailbox`, as a Unix timestamp.
pub fn imap_success(mailbox: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("switchboard_imap_last_success_timestamp_seconds", "mailbox" => mailbox.to_string())
        .set(now.as_secs_f64());
}

/// From a notification's commit to its delivery (`in_app`: broadcast to
/// the live stream; `email`: handed to SMTP, coalescing window included).
pub fn notification_latency(channel: &str, elapsed: Duration) {
    metrics::histogram!("switchboard_notification_latency_seconds", "channel" => channel.to_string())
        .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn only_standard_methods_are_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREWCOFFEE").unwrap();
        assert_eq!(method_label(&made_up), "other");
        let long = Method::from_bytes("X".repeat(5000).as_bytes()).unwrap();
        assert_eq!(method_label(&long), "other");
    }
}
