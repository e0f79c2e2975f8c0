//! The real binary, as ops and scripts use it: subcommands' output
//! contract, first start, SIGTERM, and kill -9 right after a webhook.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard::channels::sms::twilio;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

pub(crate) fn cmd(dir: &std::path::Path) -> Command {
    switchboard::app::install_crypto_provider();
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        // Never talk to a systemd that runs the test suite itself; the
        // systemd tests set their own socket.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env(
            "SWITCHBOARD__DATABASE__URL",
            format!("sqlite://{}", dir.join("sb.db").display()),
        )
        .env("SWITCHBOARD__SERVER__LISTEN", "127.0.0.1:0");
    c
}

#[test]
fn staff_add_and_token_create_print_only_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path())
        .args([
            "staff",
            "add",
            "--email",
            "Jane@Example.com",
            "--name",
            "Jane Doe",
            "--role",
            "agent",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold the token alone: {stdout:?}"
    );
    assert!(lines[0].starts_with("sb_") && lines[0].len() > 40);

    let out = cmd(dir.path())
        .args(["token", "create", "--staff", "jane@example.com"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.lines().count(), 1);
    assert_ne!(token.trim(), lines[0]);

    let out = cmd(dir.path()).args(["staff", "list"]).output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jane@example.com"));

    let out = cmd(dir.path())
        .args(["token", "create", "--staff", "nobody@example.com"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());

    let dup = cmd(dir.path())
        .args([
            "staff",
            "add",
            "--email",
            "jane@example.com",
            "--name",
            "Again",
        ])
        .output()
        .unwrap();
    assert!(!dup.status.success());

    // `staff invite` prints a fresh one-time sign-in link alone (SPEC §9).
    let invite = |who: &str| {
        cmd(dir.path())
            .env(
                "SWITCHBOARD__SERVER__PUBLIC_URL",
                "https://sb.example.test/",
            )
            .args(["staff", "invite", "--staff", who])
            .output()
            .unwrap()
    };
    let out = invite("Jane@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap();
    assert_eq!(link.lines().count(), 1, "the link alone: {link:?}");
    assert!(
        link.starts_with("https://sb.example.test/welcome/sb_"),
        "{link}"
    );
    let again = String::from_utf8(invite("jane@example.com").stdout).unwrap();
    assert_ne!(again, link, "each invite is a new link");
    let out = invite("nobody@example.com");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sb.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:8080\"\nlissen = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.lissen"));

    std::fs::write(&file, "[escalation]\nschedule = \"every tuesday\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("escalation.schedule"));

    std::fs::write(&file, "[twilio]\naccount_sid = \"AC1\"\nauth_token_file = \"/nonexistent/token\"\nfrom = \"+15550100\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("twilio.auth_token"));

    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .env("SWITCHBOARD__DATABASE__MAX_CONNECTIONS", "many")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.max_connections"));
}

/// A running `serve`: its address and the lines it printed so far.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) token: Option<String>,
    /// The first admin's `sign-in link: …` (first start only).
    pub(crate) link: Option<String>,
    pub(crate) stdout: std::sync::mpsc::Receiver<String>,
}

// The child is waited on by `terminate`, `kill` or `Drop for Served`; only
// a failed start (which fails the test) leaves it to the OS.
#[allow(clippy::zombie_processes)]
pub(crate) fn serve(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Served {
    serve_args(dir, &[], extra_env)
}

#[allow(clippy::zombie_processes)]
pub(crate) fn serve_args(
    dir: &std::path::Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> Served {
    let mut c = cmd(dir);
    c.args(args);
    c.env("SWITCHBOARD__LOGGING__FORMAT", "json");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token = None;
    let mut link = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("serve to start");
        if let Some(t) = line.strip_prefix("admin token: ") {
            token = Some(t.to_string());
            continue;
        }
        // The first admin's sign-in link follows the token (SPEC §9).
        if let Some(l) = line.strip_prefix("sign-in link: ") {
            link = Some(l.to_string());
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
        let msg = v["fields"]["message"].as_str().unwrap_or("");
        if let Some(addr) = msg.strip_prefix("listening on ") {
            return Served {
                child,
                addr: addr.to_string(),
                token,
                link,
                stdout: rx,
            };
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failing test must not leave a daemon running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn terminate(mut s: Served) -> std::process::ExitStatus {
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            // Drain what it said on the way out.
            while s.stdout.try_recv().is_ok() {}
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The JSON log lines up to the first whose message starts with `prefix`
/// (the last one), within 10 s.
fn log_lines_until(s: &Served, prefix: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    loop {
        let line = s
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no log line starting with {prefix:?} in {out:?}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let hit = v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(prefix));
        out.push(v);
        if hit {
            return out;
        }
    }
}

fn log_line(s: &Served, prefix: &str) -> serde_json::Value {
    log_lines_until(s, prefix).pop().unwrap()
}

fn hangup(s: &Served) {
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sighup_applies_what_it_can_names_the_rest_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, "[logging]\nlevel = \"info\"\n").unwrap();
    let served = serve_args(dir.path(), &["--config", path.to_str().unwrap()], &[]);

    // A file that does not load is refused whole, naming the key.
    std::fs::write(&path, "[logging]\nlevel = \"info\"\nbogus = 1\n").unwrap();
    hangup(&served);
    let refused = log_line(&served, "configuration reload refused");
    assert_eq!(refused["level"], "ERROR");
    assert!(
        refused["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("logging.bogus"),
        "{refused}"
    );

    // A good one: the schedule applies, a new public_url waits for a restart.
    std::fs::write(
        &path,
        "[server]\npublic_url = \"https://sb.example.com\"\n[escalation]\nschedule = \"*/10 * * * *\"\n[logging]\nlevel = \"info\"\n",
    )
    .unwrap();
    hangup(&served);
    let mut lines = log_lines_until(
        &served,
        "these settings changed but take effect only after a restart",
    );
    let reloaded = lines
        .iter()
        .find(|l| l["fields"]["message"] == "configuration reloaded")
        .expect("the reload is logged")
        .clone();
    assert_eq!(
        reloaded["fields"]["applied"], "[\"escalation\"]",
        "{reloaded}"
    );
    assert_eq!(
        reloaded["fields"]["needs_restart"], "[\"server\"]",
        "{reloaded}"
    );
    // The restarted scheduler says so (its task may log a little later).
    let scheduled = |l: &serde_json::Value| {
        l["fields"]["message"] == "job scheduled" && l["fields"]["schedule"] == "*/10 * * * *"
    };
    while !lines.iter().any(scheduled) {
        lines.push(log_line(&served, "job scheduled"));
    }

    // logging.level applies at once: at `warn` the info line is gone and
    // only the warning about the restart remains.
    std::fs::write(
        &path,
        "[server]\npublic_url = \"https://sb.example.com\"\n[escalation]\nschedule = \"*/10 * * * *\"\n[logging]\nlevel = \"warn\"\n",
    )
    .unwrap();
    hangup(&served);
    let lines = log_lines_until(
        &served,
        "these settings changed but take effect only after a restart",
    );
    let warned = lines.last().unwrap();
    assert_eq!(warned["fields"]["keys"], "[\"server\"]", "{warned}");
    assert!(
        !lines
            .iter()
            .any(|l| l["fields"]["message"] == "configuration reloaded"),
        "info is below the new level: {lines:?}"
    );
    let me = reqwest::blocking::Client::new()
        .get(format!("http://{}/healthz", served.addr))
        .send()
        .unwrap();
    assert_eq!(me.status(), 200, "still serving after three reloads");
    assert!(terminate(served).success());
}

#[test]
fn first_start_prints_the_admin_token_once_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path(), &[]);
    let token = first
        .token
        .clone()
        .expect("`admin token: …` on the first start");
    assert!(token.starts_with("sb_"));
    let me = reqwest::blocking::Client::new()
        .get(format!("http://{}/api/me", first.addr))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().unwrap();
    assert_eq!(me["email"], "admin@localhost");
    assert_eq!(me["role"], "admin");
    // Then the sign-in link on the default public_url; it opens the page
    // where the admin chooses a password.
    let link = first
        .link
        .clone()
        .expect("`sign-in link: …` after the token");
    assert!(
        link.starts_with("http://127.0.0.1:8080/welcome/sb_"),
        "{link}"
    );
    let path = link.trim_start_matches("http://127.0.0.1:8080");
    let welcome = reqwest::blocking::Client::new()
        .get(format!("http://{}{path}", first.addr))
        .send()
        .unwrap();
    assert_eq!(welcome.status(), 200);
    assert!(welcome.text().unwrap().contains("Set password"));
    assert!(terminate(first).success());

    let second = serve(dir.path(), &[]);
    assert!(second.token.is_none(), "the token is shown once only");
    assert!(second.link.is_none(), "and so is the link");
    assert!(terminate(second).success());
}

#[test]
fn a_message_acknowledged_before_kill_9_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SWITCHBOARD__TWILIO__ENABLED", "true"),
        (
            "SWITCHBOARD__TWILIO__ACCOUNT_SID",
            "AC0123456789abcdef0123456789abcdef",
        ),
        ("SWITCHBOARD__TWILIO__AUTH_TOKEN", "kill9-token"),
        ("SWITCHBOARD__TWILIO__FROM", "+15550100"),
        ("SWITCHBOARD__SERVER__PUBLIC_URL", "https://sb.example.test"),
    ];
    let mut s = serve(dir.path(), &env);
    let token = s.token.clone().unwrap();
    let params: Vec<(String, String)> = [
        ("MessageSid", "SMkill9"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+15550100123"),
        ("Body", "Please don't lose me"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = twilio::compute_signature(
        "kill9-token",
        "https://sb.example.test/webhooks/twilio/sms",
        &params,
    );
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let r = reqwest::blocking::Client::new()
        .post(format!("http://{}/webhooks/twilio/sms", s.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    s.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    s.child.wait().unwrap();

    let again = serve(dir.path(), &env);
    let list: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("http://{}/api/issues", again.addr))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        list["issues"][0]["last_message_preview"],
        "Please don't lose me"
    );
    assert!(terminate(again).success());
}
