//! `/metrics` is valid Prometheus text, checked with the Prometheus
//! project's own parser (Python's prometheus_client, which `scripts/test.sh`
//! installs), and carries the series ops alert on.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::Backend;
use crate::spawn::spawn_app;

/// Parses exposition text; panics with the parser's message if invalid.
fn parse(text: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/prom_parse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families:?}"))
}

fn has_sample(f: &Value, name: &str, label: &str, value: &str) -> bool {
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == name && s["labels"][label] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_carry_the_operational_series() {
    let app = spawn_app(Backend::Sqlite).await;
    // An SMS opens an issue and notifies the admin in-app; a bad signature
    // is rejected; an API call is timed.
    let issue = app
        .sms_issue("SMm001", "+15550100181", "Is anyone there?")
        .await;
    let bad = app
        .webhook_with_signature(
            "/webhooks/twilio/sms",
            &[("MessageSid", "SMm002"), ("From", "+15550100182")],
            Some("bm90IGEgc2lnbmF0dXJl"),
        )
        .await;
    assert_eq!(bad.status, reqwest::StatusCode::FORBIDDEN);
    app.get(&format!("/api/issues/{issue}"), &app.admin_token)
        .await;
    // The hub broadcasts the notification within its 100 ms poll.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let r = app.request(Method::GET, "/metrics", None, None).await;
    let families = parse(&r.text);

    let http = family(&families, "switchboard_http_request_duration_seconds");
    assert_eq!(http["type"], "histogram");
    assert!(has_sample(
        http,
        "switchboard_http_request_duration_seconds_count",
        "route",
        "/api/issues/{id}"
    ));
    let ingest = family(&families, "switchboard_ingest");
    assert_eq!(ingest["type"], "counter");
    assert!(has_sample(
        ingest,
        "switchboard_ingest_total",
        "channel",
        "sms"
    ));
    let rejected = family(&families, "switchboard_rejected");
    assert!(
        has_sample(
            rejected,
            "switchboard_rejected_total",
            "reason",
            "bad_signature"
        ),
        "{rejected}"
    );
    let latency = family(&families, "switchboard_notification_latency_seconds");
    assert_eq!(latency["type"], "histogram");
    assert!(has_sample(
        latency,
        "switchboard_notification_latency_seconds_count",
        "channel",
        "in_app"
    ));
    assert_eq!(
        family(&families, "switchboard_outbox_depth")["type"],
        "gauge"
    );
    app.stop().await;
}
