//! Test support: a private Dovecot IMAP server per test.
//!
//! [`Dovecot::start`] runs `scripts/dovecot.sh` (which installs
//! `dovecot-imapd` from Debian's packages when it is missing, and fails
//! loudly when it cannot) in a fresh temporary directory on two free loopback
//! ports: one plain (LOGIN allowed, STARTTLS offered) and one implicit TLS,
//! with a throw-away CA at [`Dovecot::ca_pem_path`]
//! ([`Dovecot::start_self_signed`]: a lone self-signed certificate instead,
//! and `ca_pem_path` is that certificate). Every test gets its own
//! instance, so tests run in parallel; dropping the value stops it.
//!
//! Mail is delivered the way a real mailbox receives it from outside: an
//! IMAP `APPEND` over a separate plain session, so Dovecot assigns UIDs,
//! updates its indexes and wakes IDLE clients exactly as for delivered mail.
//! The helpers that look at the server's state (UIDs, flags, folders) also
//! go through IMAP; only [`Dovecot::set_uidvalidity`] uses `doveadm`, since
//! IMAP has no way to change UIDVALIDITY in place.
//!
//! Everything here panics with a readable message (and Dovecot's log)
//! instead of returning errors: it is test set-up, and a test that cannot
//! start its server must fail, never skip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::net::TcpStream;

/// The harness script, next to this crate's manifest.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dovecot.sh")
}

/// Installs Dovecot once per test binary, so parallel tests do not race
/// for the dpkg lock.
fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let out = Command::new("bash")
            .arg(script())
            .arg("install")
            .output()
            .map_err(|e| format!("running {}: {e}", script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("Dovecot is not available and could not be installed:\n{e}");
    }
}

/// A running private Dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    /// Plain IMAP (STARTTLS available).
    pub imap_port: u16,
    /// Implicit TLS.
    pub imaps_port: u16,
    /// The CA that signed the server's certificate (for `ca_file`).
    pub ca_pem_path: PathBuf,
    passwords: Mutex<HashMap<String, String>>,
    running: bool,
}

/// An IMAP session of the harness itself (plain, no TLS).
pub type HarnessSession = async_imap::Session<TcpStream>;

impl Dovecot {
    /// Starts a new instance; panics when it cannot.
    pub async fn start() -> Dovecot {
        Dovecot::start_with("").await
    }

    /// Starts a new instance with extra Dovecot settings appended to the
    /// harness's configuration, e.g. `imap_capability = IMAP4rev1 IDLE` to
    /// play a server without MOVE and UIDPLUS.
    pub async fn start_with(local_conf: &str) -> Dovecot {
        ensure_installed();
        let dir = tempfile::Builder::new()
            .prefix("dovecot-")
            .tempdir()
            .expect("creating a temp dir");
        Dovecot::start_in(dir, local_conf).await
    }

    /// Starts a new instance whose server certificate is what a plain
    /// `openssl req -x509` makes: self-signed and, with OpenSSL's default
    /// configuration (`x509_extensions = v3_ca`), `CA:TRUE`, like Debian's
    /// snakeoil certificate. [`Dovecot::ca_pem_path`] is then that very
    /// certificate, i.e. the pin a `ca_file` would hold.
    pub async fn start_self_signed() -> Dovecot {
        ensure_installed();
        let dir = tempfile::Builder::new()
            .prefix("dovecot-")
            .tempdir()
            .expect("creating a temp dir");
        let (pem, key) = self_signed_certificate(dir.path(), "server");
        // scripts/dovecot.sh keeps certificates that are already there.
        std::fs::rename(&pem, dir.path().join("server.pem")).expect("placing server.pem");
        std::fs::rename(&key, dir.path().join("server.key")).expect("placing server.key");
        std::fs::copy(dir.path().join("server.pem"), dir.path().join("ca.pem"))
            .expect("writing ca.pem");
        Dovecot::start_in(dir, "").await
    }

    async fn start_in(dir: tempfile::TempDir, local_conf: &str) -> Dovecot {
        if !local_conf.is_empty() {
            std::fs::write(dir.path().join("local.conf"), format!("{local_conf}\n"))
                .expect("writing local.conf");
        }
        let mut last_error = String::new();
        // The ports are free when we pick them but another test may grab one
        // before Dovecot binds it: try again with new ones.
        for _ in 0..3 {
            let (imap_port, imaps_port) = two_free_ports();
            match run_script(&[
                "start",
                path_str(dir.path()),
                &imap_port.to_string(),
                &imaps_port.to_string(),
            ])
            .await
            {
                Ok(_) => {
                    let ca_pem_path = dir.path().join("ca.pem");
                    return Dovecot {
                        dir,
                        imap_port,
                        imaps_port,
                        ca_pem_path,
                        passwords: Mutex::new(HashMap::new()),
                        running: true,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start Dovecot:\n{last_error}");
    }

    /// The instance's directory (config, log, Maildirs, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a mail user (Dovecot re-reads the passwd-file on its own).
    pub async fn add_user(&self, name: &str, password: &str) {
        run_script(&["user", path_str(self.dir()), name, password])
            .await
            .unwrap_or_else(|e| panic!("adding user {name}: {e}"));
        self.passwords
            .lock()
            .expect("passwords")
            .insert(name.to_string(), password.to_string());
    }

    /// Delivers one message into `mailbox` of `user` (created if missing).
    pub async fn append(&self, user: &str, mailbox: &str, raw: &[u8]) {
        self.append_with_flags(user, mailbox, raw, None).await
    }

    /// Like [`Dovecot::append`], with IMAP flags such as `(\Seen)`.
    pub async fn append_with_flags(
        &self,
        user: &str,
        mailbox: &str,
        raw: &[u8],
        flags: Option<&str>,
    ) {
        let mut s = self.session(user).await;
        if mailbox != "INBOX" && !self.folder_exists_in(&mut s, mailbox).await {
            s.create(mailbox).await.expect("CREATE");
        }
        s.append(mailbox, flags, None, raw).await.expect("APPEND");
        let _ = s.logout().await;
    }

    /// A logged-in plain session of the harness for `user`.
    pub async fn session(&self, user: &str) -> HarnessSession {
        let password = self
            .passwords
            .lock()
            .expect("passwords")
            .get(user)
            .cloned()
            .unwrap_or_else(|| panic!("unknown user {user}: add_user first"));
        let tcp = TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .expect("connecting to Dovecot");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("greeting")
            .expect("greeting");
        client
            .login(user, &password)
            .await
            .map_err(|(e, _)| e)
            .expect("harness LOGIN")
    }

    /// `(uid, flags)` of every message in `mailbox`, by UID.
    pub async fn messages(&self, user: &str, mailbox: &str) -> Vec<(u32, Vec<String>)> {
        let mut s = self.session(user).await;
        s.select(mailbox).await.expect("SELECT");
        let fetches: Vec<_> = s
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .expect("UID FETCH")
            .try_collect()
            .await
            .expect("UID FETCH");
        let mut out: Vec<(u32, Vec<String>)> = fetches
            .iter()
            .filter_map(|f| {
                let flags = f.flags().map(|fl| format!("{fl:?}")).collect();
                Some((f.uid?, flags))
            })
            .collect();
        drop(fetches);
        let _ = s.logout().await;
        out.sort();
        out
    }

    /// Whether `folder` exists for `user`.
    pub async fn folder_exists(&self, user: &str, folder: &str) -> bool {
        let mut s = self.session(user).await;
        let exists = self.folder_exists_in(&mut s, folder).await;
        let _ = s.logout().await;
        exists
    }

    async fn folder_exists_in(&self, s: &mut HarnessSession, folder: &str) -> bool {
        let names: Vec<_> = s
            .list(Some(""), Some(folder))
            .await
            .expect("LIST")
            .try_collect()
            .await
            .expect("LIST");
        !names.is_empty()
    }

    /// The folder's current UIDVALIDITY.
    pub async fn uidvalidity(&self, user: &str, mailbox: &str) -> u32 {
        let mut s = self.session(user).await;
        let mb = s.select(mailbox).await.expect("SELECT");
        let _ = s.logout().await;
        mb.uid_validity.expect("UIDVALIDITY")
    }

    /// Changes the folder's UIDVALIDITY in place (`doveadm mailbox update`),
    /// as a server restored from backup or a rebuilt index would. Messages
    /// keep their UIDs, so a client that trusted its old cursor would miss
    /// them.
    pub fn set_uidvalidity(&self, user: &str, mailbox: &str, uidvalidity: u32) {
        let conf = self.dir().join("dovecot.conf");
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&conf)
            .args(["mailbox", "update", "-u", user, "--uid-validity"])
            .arg(uidvalidity.to_string())
            .arg(mailbox)
            .output()
            .expect("running doveadm");
        assert!(
            out.status.success(),
            "doveadm mailbox update failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("dovecot.log")).unwrap_or_default()
    }

    /// How many failed logins Dovecot has logged (one line per connection
    /// whose authentication failed).
    pub fn failed_logins(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("auth failed"))
            .count()
    }

    /// Stops the server (clients are disconnected).
    pub async fn stop(&mut self) {
        if self.running {
            run_script(&["stop", path_str(self.dir())])
                .await
                .unwrap_or_else(|e| panic!("stopping Dovecot: {e}"));
            self.running = false;
        }
    }

    /// Stops and starts it again on the same ports with the same mail.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (p, s) = (self.imap_port.to_string(), self.imaps_port.to_string());
        let mut last_error = String::new();
        // The old listening sockets may linger for a moment.
        for _ in 0..20 {
            match run_script(&["start", path_str(self.dir()), &p, &s]).await {
                Ok(_) => {
                    self.running = true;
                    return;
                }
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("could not restart Dovecot:\n{last_error}");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!(
                "--- Dovecot log ({}), last lines ---\n{}",
                self.dir().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if self.running {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(self.dir.path())
                .output();
        }
    }
}

/// Makes `DIR/NAME.pem` and `DIR/NAME.key` with the default
/// `openssl req -x509` (no extensions of our own: OpenSSL's defaults make it
/// `CA:TRUE`) for `CN=localhost`, and checks that it really is `CA:TRUE`, the
/// case these tests are about. Returns the two paths.
pub fn self_signed_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let pem = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .args(["-subj", "/CN=localhost"])
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl req -x509 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&pem)
        .output()
        .expect("running openssl x509");
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "expected openssl's default self-signed certificate to be CA:TRUE"
    );
    (pem, key)
}

/// The harness's throw-away CA and the `localhost`/127.0.0.1 certificate it
/// signed, made in `dir` by `scripts/dovecot.sh certs`: `(ca.pem,
/// server.pem, server.key)`.
pub fn ca_and_leaf(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(script())
        .arg("certs")
        .arg(dir)
        .output()
        .expect("running scripts/dovecot.sh certs");
    assert!(
        out.status.success(),
        "scripts/dovecot.sh certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp dir path is UTF-8")
}

async fn run_script(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", script().display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} {} exited with {}:\n{}",
            script().display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn two_free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    )
}
