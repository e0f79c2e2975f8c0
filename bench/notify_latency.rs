//! Notification latency under load (issue 4): a real `switchboard serve`
//! (release build), fed signed Twilio webhooks at a fixed rate, each from a
//! new customer so each opens an issue and notifies the admin in-app; an
//! SSE client connected as that admin records when each notification
//! arrives.
//!
//! Run: `cargo bench --bench notify_latency` (SQLite file in a temporary
//! directory). Knobs, as environment variables: `SB_BENCH_BACKEND=postgres`
//! (uses `SB_BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`,
//! in a fresh schema), `SB_BENCH_RATE` (webhooks/s, default 1000),
//! `SB_BENCH_SECS` (default 10).
//!
//! What it reports, all measured on this machine's monotonic clock:
//! * webhook: request sent → 200 received. The message, its issue, the
//!   notification row and the live event are committed in one transaction
//!   before the 200, so this is also "to the notification row".
//! * stream: the webhook's 200 → its `notification` event read from
//!   `GET /api/stream` (p50/p99/max), and any that never arrived.
//!
//! `cargo test --all-targets` builds this too; without cargo bench's
//! `--bench` argument it does nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use switchboard::channels::sms::twilio::compute_signature;

#[path = "common.rs"]
mod common;
use common::*;

/// `(i, 200 received)` per webhook, and `(body index → issue id)` and
/// `(issue id → notification arrival)` from the stream.
#[derive(Default)]
struct Seen {
    responses: HashMap<usize, (Instant, Duration)>,
    issue_of: HashMap<usize, i64>,
    notified: HashMap<i64, Instant>,
    failed: usize,
}

async fn read_stream(base: String, token: String, seen: Arc<Mutex<Seen>>) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("open the stream");
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let mut s = seen.lock().expect("lock");
            match event {
                "message" => {
                    if let (Some(i), Some(issue)) = (
                        v["body"]
                            .as_str()
                            .and_then(|b| b.strip_prefix("bench "))
                            .and_then(|n| n.parse::<usize>().ok()),
                        v["issue_id"].as_i64(),
                    ) {
                        s.issue_of.insert(i, issue);
                    }
                }
                "notification" => {
                    if let Some(issue) = v["issue_id"].as_i64() {
                        s.notified.entry(issue).or_insert(now);
                    }
                }
                _ => {}
            }
        }
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("notify_latency: run it with `cargo bench --bench notify_latency`");
        return;
    }
    switchboard::app::install_crypto_provider();
    let rate: u64 = std::env::var("SB_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("SB_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let (backend, db_url) = bench_database(dir.path());
    let server = start(&db_url, dir.path());
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(read_stream(
        server.base.clone(),
        server.token.clone(),
        seen.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let total = (rate * secs) as usize;
    println!("notify_latency: {backend}, {rate} webhooks/s for {secs} s ({total} webhooks)");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let url = format!("{}/webhooks/twilio/sms", server.base);
    let signed_url = format!("{PUBLIC_URL}/webhooks/twilio/sms");
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let params: Vec<(String, String)> = vec![
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("MessageSid".into(), format!("SMbench{i:08}")),
            ("From".into(), format!("+1555{:07}", 1_000_000 + i)),
            ("To".into(), "+15550100".into()),
            ("Body".into(), format!("bench {i}")),
            ("NumMedia".into(), "0".into()),
        ];
        let sig = compute_signature(AUTH_TOKEN, &signed_url, &params);
        let body = serde_urlencoded_form(&params);
        let (client, url, seen) = (client.clone(), url.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body)
                .send()
                .await;
            let done = Instant::now();
            let mut s = seen.lock().expect("lock");
            match r {
                Ok(r) if r.status().is_success() => {
                    s.responses.insert(i, (done, done - sent));
                }
                _ => s.failed += 1,
            }
        }));
    }
    let offered = started.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    let drained = started.elapsed();
    // Let the last events arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = {
            let s = seen.lock().expect("lock");
            s.notified.len() >= s.responses.len()
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let s = seen.lock().expect("lock");
    let mut webhook: Vec<Duration> = s.responses.values().map(|(_, d)| *d).collect();
    let mut stream = Vec::new();
    let mut missing = 0;
    for (i, (answered, _)) in &s.responses {
        match s.issue_of.get(i).and_then(|issue| s.notified.get(issue)) {
            Some(at) => stream.push(at.saturating_duration_since(*answered)),
            None => missing += 1,
        }
    }
    webhook.sort();
    stream.sort();
    println!(
        "offered {:.0}/s over {:.1} s; all answered after {:.1} s; {} ok, {} failed",
        total as f64 / offered.as_secs_f64(),
        offered.as_secs_f64(),
        drained.as_secs_f64(),
        s.responses.len(),
        s.failed
    );
    println!(
        "webhook → 200 (commit incl. notification row): p50 {}  p99 {}  max {}",
        ms(percentile(&webhook, 0.5)),
        ms(percentile(&webhook, 0.99)),
        ms(percentile(&webhook, 1.0))
    );
    println!(
        "200 → SSE notification event:                p50 {}  p99 {}  max {}  ({} never arrived)",
        ms(percentile(&stream, 0.5)),
        ms(percentile(&stream, 0.99)),
        ms(percentile(&stream, 1.0)),
        missing
    );
    drop(server);
}
