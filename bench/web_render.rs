//! Server-side render time of the staff web page (issue 9): the Issue
//! Tracker with 10,000 open issues and an issue page with 1,000 messages,
//! on a real release `switchboard serve`.
//!
//! Run: `cargo bench --bench web_render` (SQLite file in a temporary
//! directory; `SB_BENCH_BACKEND=postgres` for PostgreSQL in a fresh
//! schema). Knobs: `SB_BENCH_OPEN` (open issues, default 10000),
//! `SB_BENCH_MESSAGES` (messages on the long issue, default 1000),
//! `SB_BENCH_ROUNDS` (requests per page, default 200).
//!
//! Seeding goes through the product's own front door: signed Twilio
//! webhooks, 16 at a time (each from a new number opens an issue; the long
//! issue is one number writing again and again). Then the first admin
//! signs in through the printed sign-in link, as a person would, and each
//! page is requested `SB_BENCH_ROUNDS` times in a row; the figure is the
//! time to the last byte of the response on loopback, which is the
//! server's render time plus a loopback round trip.
//!
//! `cargo test --all-targets` builds this too; without cargo bench's
//! `--bench` argument it does nothing.

use std::time::{Duration, Instant};

use futures::StreamExt;
use switchboard::channels::sms::twilio::compute_signature;

#[path = "common.rs"]
mod common;
use common::*;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends signed inbound SMS, `concurrency` at a time.
async fn seed(client: &reqwest::Client, base: &str, messages: Vec<(String, String)>) {
    let url = format!("{base}/webhooks/twilio/sms");
    let signed_url = format!("{PUBLIC_URL}/webhooks/twilio/sms");
    let sends = messages.into_iter().enumerate().map(|(i, (from, body))| {
        let params: Vec<(String, String)> = vec![
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("MessageSid".into(), format!("SMseed{i:09}{}", from.len())),
            ("From".into(), from),
            ("To".into(), "+15550100".into()),
            ("Body".into(), body),
            ("NumMedia".into(), "0".into()),
        ];
        let sig = compute_signature(AUTH_TOKEN, &signed_url, &params);
        let body = serde_urlencoded_form(&params);
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(body)
                .send()
                .await;
            matches!(r, Ok(r) if r.status().is_success())
        }
    });
    let ok = futures::stream::iter(sends)
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    println!("  seeded {ok} messages");
}

/// Signs in through the welcome link: sets a password, keeps the cookie.
async fn sign_in(client: &reqwest::Client, link: &str) -> String {
    let pw = "bench password 1";
    let resp = client
        .post(link)
        .form(&[("password", pw), ("repeat", pw)])
        .send()
        .await
        .expect("welcome");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("sb_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_string())
        .expect("a session cookie from the welcome link")
}

async fn time_page(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    rounds: usize,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let resp = client
            .get(url)
            .header("cookie", format!("sb_session={cookie}"))
            .send()
            .await
            .expect("page");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        let _ = resp.bytes().await.expect("body");
        times.push(t.elapsed());
    }
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("web_render: run it with `cargo bench --bench web_render`");
        return;
    }
    switchboard::app::install_crypto_provider();
    let open = env_usize("SB_BENCH_OPEN", 10_000);
    let long = env_usize("SB_BENCH_MESSAGES", 1_000);
    let rounds = env_usize("SB_BENCH_ROUNDS", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let (backend, db_url) = bench_database(dir.path());
    let server = start(&db_url, dir.path());
    let link = server
        .sign_in_link
        .clone()
        .expect("a sign-in link on a fresh database")
        .replace(PUBLIC_URL, &server.base);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    println!(
        "web_render: {backend}, {open} open issues, one issue with {long} messages, {rounds} rounds"
    );
    let started = Instant::now();
    let mut messages: Vec<(String, String)> = (0..open)
        .map(|i| {
            (
                format!("+1555{:07}", 2_000_000 + i),
                format!("Hello, I need help with order {i}"),
            )
        })
        .collect();
    messages.extend((0..long).map(|i| {
        (
            "+15559999999".to_string(),
            format!("Message {i} of a long conversation"),
        )
    }));
    seed(&client, &server.base, messages).await;
    println!("  seeding took {:.1} s", started.elapsed().as_secs_f64());
    let cookie = sign_in(&client, &link).await;
    let long_issue = {
        let resp = client
            .get(format!("{}/api/issues?q=%2B15559999999", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("find the long issue");
        let v: serde_json::Value = resp.json().await.expect("json");
        v["issues"][0]["id"].as_i64().expect("the long issue")
    };
    for (name, path) in [
        ("tracker (Unassigned tab)", "/".to_string()),
        ("tracker, search by phone", "/?q=%2B15552000042".to_string()),
        ("issue page", format!("/issues/{long_issue}")),
    ] {
        let url = format!("{}{}", server.base, path);
        // Warm up once (first-use caches), then measure.
        let _ = time_page(&client, &url, &cookie, 3).await;
        let t = time_page(&client, &url, &cookie, rounds).await;
        println!(
            "  {name:<28} p50 {}  p99 {}  max {}",
            ms(percentile(&t, 0.5)),
            ms(percentile(&t, 0.99)),
            ms(percentile(&t, 1.0))
        );
    }
    drop(server);
}
