//! `serve` under systemd's `Type=notify` protocol, seen from the service
//! manager's side. The test binds the notification socket itself (a Unix
//! datagram socket in a temporary directory, exactly what systemd creates),
//! starts the real binary with `NOTIFY_SOCKET` pointing at it, and reads
//! what the daemon says: status lines while starting, `READY=1` only once
//! the HTTP port answers, `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` on SIGTERM before a clean exit.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cli::{serve, terminate};

/// One datagram as the service manager received it.
#[derive(Debug)]
struct Note {
    lines: Vec<String>,
    /// For a `READY=1`: did `GET /healthz` answer 200 right then?
    http_answered: Option<bool>,
}

impl Note {
    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }
}

/// The test's end of `NOTIFY_SOCKET`, read on a thread.
struct NotifySocket {
    path: String,
    notes: mpsc::Receiver<Note>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl NotifySocket {
    /// Binds the socket. When `READY=1` arrives, the reader immediately asks
    /// `http_addr` for `/healthz`, before reading anything else: that is how
    /// a unit ordered `After=` us would see the service at that moment.
    fn bind(http_addr: SocketAddr) -> NotifySocket {
        switchboard::app::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (tx, notes) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::SeqCst) {
                let n = match sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => panic!("reading the notify socket: {e}"),
                };
                let lines: Vec<String> = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
                let http_answered = lines.iter().any(|l| l == "READY=1").then(|| {
                    http.get(format!("http://{http_addr}/healthz"))
                        .send()
                        .is_ok_and(|r| r.status() == 200)
                });
                if tx
                    .send(Note {
                        lines,
                        http_answered,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        NotifySocket {
            path: path.to_str().unwrap().to_string(),
            notes,
            stop,
            _dir: dir,
        }
    }

    /// Notes until one satisfies `until` (returned last), or panics after `within`.
    fn until(&self, within: Duration, what: &str, until: impl Fn(&Note) -> bool) -> Vec<Note> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notes.recv_timeout(left) {
                Ok(note) => {
                    let done = until(&note);
                    seen.push(note);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no {what} within {within:?}; received: {seen:?}"),
            }
        }
    }

    /// Every note received during the next `window`.
    fn during(&self, window: Duration) -> Vec<Note> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        while let Ok(note) = self
            .notes
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(note);
        }
        seen
    }
}

/// A port nobody listens on right now, so the test knows the address before
/// the daemon logs it.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn count(notes: &[Note], line: &str) -> usize {
    notes.iter().filter(|n| n.has(line)).count()
}

#[test]
fn serve_reports_status_then_ready_pets_the_watchdog_and_says_stopping_on_sigterm() {
    let addr = free_addr();
    let notify = NotifySocket::bind(addr);
    let dir = tempfile::tempdir().unwrap();
    let listen = addr.to_string();
    let served = serve(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", &notify.path),
            ("WATCHDOG_USEC", "400000"),
            ("SWITCHBOARD__SERVER__LISTEN", &listen),
        ],
    );
    assert_eq!(served.addr, listen);

    let startup = notify.until(Duration::from_secs(30), "READY=1", |n| n.has("READY=1"));
    let ready = startup.last().unwrap();
    assert_eq!(
        ready.http_answered,
        Some(true),
        "READY=1 came before the HTTP port answered"
    );
    assert!(
        ready.has(&format!("STATUS=serving on {listen}")),
        "{ready:?}"
    );
    let before = &startup[..startup.len() - 1];
    assert!(
        before
            .iter()
            .any(|n| n.has("STATUS=starting: applying database migrations")),
        "start-up stages are reported as STATUS= lines: {before:?}"
    );
    assert_eq!(
        count(before, "WATCHDOG=1"),
        0,
        "no watchdog pings before READY=1"
    );

    // WATCHDOG_USEC=400000: a ping every 200 ms, each after a liveness check.
    let second = notify.during(Duration::from_secs(1));
    let pings = count(&second, "WATCHDOG=1");
    assert!(
        (2..=10).contains(&pings),
        "expected about 5 WATCHDOG=1 in 1 s, got {pings}: {second:?}"
    );

    let status = terminate(served);
    assert!(status.success(), "serve exited with {status}");
    let stopping = notify.until(Duration::from_secs(5), "STOPPING=1", |n| {
        n.has("STOPPING=1")
    });
    assert_eq!(
        count(&stopping, "READY=1"),
        0,
        "READY=1 was sent more than once"
    );
}

#[test]
fn a_watchdog_meant_for_another_process_is_not_pinged() {
    // systemd sets WATCHDOG_PID to the main process; a child that inherits
    // the variables must leave the watchdog alone (sd_watchdog_enabled(3)).
    let addr = free_addr();
    let notify = NotifySocket::bind(addr);
    let dir = tempfile::tempdir().unwrap();
    let listen = addr.to_string();
    let served = serve(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", &notify.path),
            ("WATCHDOG_USEC", "400000"),
            ("WATCHDOG_PID", "1"),
            ("SWITCHBOARD__SERVER__LISTEN", &listen),
        ],
    );
    notify.until(Duration::from_secs(30), "READY=1", |n| n.has("READY=1"));
    let second = notify.during(Duration::from_secs(1));
    assert_eq!(count(&second, "WATCHDOG=1"), 0, "{second:?}");
    assert!(terminate(served).success());
}

#[test]
fn the_shipped_production_config_is_valid_and_reads_secrets_from_credentials() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/switchboard.toml");
    let check = |config: &std::path::Path, creds: Option<&std::path::Path>| {
        let mut c = std::process::Command::new(crate::cli::BIN);
        c.args(["--config", config.to_str().unwrap(), "check-config"])
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWITCHBOARD__")) {
            c.env_remove(k);
        }
        if let Some(dir) = creds {
            c.env("CREDENTIALS_DIRECTORY", dir);
        }
        let out = c.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check(std::path::Path::new(shipped), None);
    assert!(ok, "deploy/switchboard.toml: {err}");
    assert!(err.contains("/var/lib/switchboard/switchboard.db"), "{err}");

    // Turn on the commented-out SMS section, as the comments tell ops to.
    let text = std::fs::read_to_string(shipped).unwrap();
    let mut sms = String::new();
    let mut in_twilio = false;
    for line in text.lines() {
        if line == "#[twilio]" {
            in_twilio = true;
        } else if !line.starts_with('#') || line.starts_with("# ") {
            in_twilio = false;
        }
        let line = match line.strip_prefix('#') {
            Some(rest) if in_twilio => rest.replace("AC…", "AC0123456789abcdef0123456789abcdef"),
            _ => line.to_string(),
        };
        sms.push_str(&line);
        sms.push('\n');
    }
    assert!(
        sms.contains("\n[twilio]\n") && sms.contains("\nauth_token_file = \"twilio-auth-token\"")
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, sms).unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();

    let (ok, err) = check(&config, Some(&creds));
    assert!(!ok, "a missing credential must fail the check");
    assert!(err.contains("twilio.auth_token_file"), "{err}");

    std::fs::write(creds.join("twilio-auth-token"), "s3cret\n").unwrap();
    let (ok, err) = check(&config, Some(&creds));
    assert!(ok, "{err}");
    assert!(
        !err.contains("s3cret"),
        "check-config printed the secret: {err}"
    );
}
