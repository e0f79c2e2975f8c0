//! What the benchmarks share: starting a real release `switchboard serve`
//! on a fresh database (SQLite in a temporary directory, or a fresh
//! PostgreSQL schema), percentiles, and form bodies.
//!
//! Included by each bench with `#[path = "common.rs"] mod common;`, so each
//! bench stays one self-contained binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const ACCOUNT_SID: &str = "ACbench0000000000000000000000000000";
pub const AUTH_TOKEN: &str = "bench-auth-token";
pub const PUBLIC_URL: &str = "https://bench.example.test";

pub struct Server {
    child: Child,
    pub base: String,
    pub token: String,
    /// The first admin's one-time sign-in link.
    pub sign_in_link: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is waited on by `Drop for Server`; only a failed start (which
// ends the benchmark) leaves it to the OS.
#[allow(clippy::zombie_processes)]
pub fn start(db_url: &str, dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env("SWITCHBOARD__DATABASE__URL", db_url)
        .env("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "16")
        .env("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD__SERVER__PUBLIC_URL", PUBLIC_URL)
        .env("SWITCHBOARD__TWILIO__ENABLED", "true")
        .env("SWITCHBOARD__TWILIO__ACCOUNT_SID", ACCOUNT_SID)
        .env("SWITCHBOARD__TWILIO__AUTH_TOKEN", AUTH_TOKEN)
        .env("SWITCHBOARD__TWILIO__FROM", "+15550100")
        .env("SWITCHBOARD__TWILIO__API_BASE", "http://127.0.0.1:9")
        .env("SWITCHBOARD__LOGGING__LEVEL", "warn,switchboard::app=info")
        .env("SWITCHBOARD__LOGGING__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start switchboard");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut token = None;
    let mut sign_in_link = None;
    let mut lines = out.lines().map_while(Result::ok);
    while let Some(line) = lines.next() {
        if let Some(t) = line.strip_prefix("admin token: ") {
            token = Some(t.to_string());
            continue;
        }
        if let Some(l) = line.strip_prefix("sign-in link: ") {
            sign_in_link = Some(l.to_string());
            continue;
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["fields"]["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("listening on "))
        {
            // Keep reading, or the daemon's logging meets a closed pipe.
            std::thread::spawn(move || for _ in lines {});
            return Server {
                child,
                base: format!("http://{addr}"),
                token: token.expect("admin token on a fresh database"),
                sign_in_link,
            };
        }
    }
    panic!("switchboard exited before listening");
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn pg_schema_url(base: &str) -> String {
    let schema = format!("bench_{}", std::process::id());
    let psql = |sql: &str| {
        let ok = Command::new("psql")
            .args([base, "-qc", sql])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "psql {sql}");
    };
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    psql(&format!("CREATE SCHEMA {schema}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// `application/x-www-form-urlencoded` body.
pub fn serde_urlencoded_form(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish()
}

/// The database a bench runs on: `SB_BENCH_BACKEND=postgres` (with
/// `SB_BENCH_PG_URL`, default the local `test` database, in a fresh
/// schema), else a SQLite file in `dir`. Returns (backend name, URL).
pub fn bench_database(dir: &std::path::Path) -> (String, String) {
    let backend = std::env::var("SB_BENCH_BACKEND").unwrap_or_else(|_| "sqlite".into());
    let url = if backend == "postgres" {
        let base = std::env::var("SB_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        pg_schema_url(&base)
    } else {
        format!("sqlite://{}", dir.join("bench.db").display())
    };
    (backend, url)
}
