//! A real SMTP server on loopback for the tests: Python's aiosmtpd running
//! `tests/support/smtp_sink.py`, which stores every message it accepts.
//! `scripts/test.sh` installs aiosmtpd when it is missing.
//!
//! [`SmtpSink::start_tls`] makes it speak TLS (implicit or STARTTLS) with a
//! given certificate and offer AUTH, recording who tried to log in
//! ([`SmtpSink::auth_log`]) so a test can tell that no password went to a
//! server the client should not have trusted.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: String,
}

impl Received {
    /// The value of a header (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let mut out: Option<String> = None;
        let mut current = false;
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                if current && let Some(v) = out.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            current = false;
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
                && out.is_none()
            {
                out = Some(v.trim().to_string());
                current = true;
            }
        }
        out
    }

    pub fn body(&self) -> String {
        self.raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

pub struct SmtpSink {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Extra arguments for the script (the TLS mode and certificate).
    tls_args: Vec<OsString>,
}

/// How a TLS sink speaks TLS.
#[derive(Debug, Clone, Copy)]
pub enum SinkTls {
    /// TLS from the first byte (SMTPS, port 465 style).
    Implicit,
    /// Plain greeting, STARTTLS required before mail.
    StartTls,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let mut sink = SmtpSink {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls_args: Vec::new(),
        };
        sink.up();
        sink
    }

    /// A sink that speaks TLS with `cert` and `key` (PEM files) and offers
    /// AUTH (any password is accepted and recorded).
    pub fn start_tls(mode: SinkTls, cert: &Path, key: &Path) -> SmtpSink {
        let flag = match mode {
            SinkTls::Implicit => "--tls",
            SinkTls::StartTls => "--starttls",
        };
        let mut sink = SmtpSink {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls_args: vec![flag.into(), cert.into(), key.into()],
        };
        sink.up();
        sink
    }

    /// One line per AUTH attempt: the mechanism and the user name.
    pub fn auth_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("auth.log")).unwrap_or_default()
    }

    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py")
    }

    /// Starts (or restarts) the server on the same port.
    pub fn up(&mut self) {
        let mut child = Command::new("python3")
            .arg(Self::script())
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .args(&self.tls_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink (python3 with aiosmtpd; run scripts/test.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start: is aiosmtpd installed?"
        );
        self.child = Some(child);
    }

    /// Stops the server (connections are then refused).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let base = n.trim_end_matches(".json");
                let meta: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(self.dir.path().join(&n)).unwrap(),
                )
                .unwrap();
                Received {
                    mail_from: meta["mail_from"].as_str().unwrap_or("").to_string(),
                    rcpt_tos: meta["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect(),
                    raw: String::from_utf8_lossy(
                        &std::fs::read(self.dir.path().join(format!("{base}.eml"))).unwrap(),
                    )
                    .to_string(),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} message(s), got {}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.down();
    }
}
