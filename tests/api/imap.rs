//! The mailbox worker against a real Dovecot (one private instance per
//! test, see `dovecot.rs`), with an in-memory [`MailSink`].
//!
//! Timings are shrunk through [`Tuning`] so the suite stays fast: IDLE is
//! re-issued every few seconds, polling and backoff are sub-second, and
//! Dovecot sends its `* OK Still here` keepalive every second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dovecot::Dovecot;
use switchboard::channels::email::imap::{MailSink, Mailbox, Tuning};
use switchboard::channels::health::{ChannelHealth, ChannelState};
use switchboard::config::{AfterIngest, Dur, ImapConfig, Secret, Security};

// ---------------------------------------------------------------------------
// In-memory sink
// ---------------------------------------------------------------------------

#[derive(Default)]
struct MemSink {
    state: Mutex<MemState>,
}

#[derive(Default)]
struct MemState {
    /// Every successful ingest, in call order: (mailbox, uid, raw).
    ingested: Vec<(String, u32, Vec<u8>)>,
    /// Every ingest call, failed ones included: the message's subject.
    attempts: Vec<String>,
    cursors: HashMap<String, (u32, u32)>,
    /// Ingest fails for messages whose raw text contains this.
    fail_marker: Option<String>,
}

impl MemSink {
    fn ingested_subjects(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.ingested.iter().map(|(_, _, raw)| subject(raw)).collect()
    }

    fn ingested_uids(&self) -> Vec<u32> {
        let s = self.state.lock().unwrap();
        s.ingested.iter().map(|(_, uid, _)| *uid).collect()
    }

    fn attempts(&self) -> Vec<String> {
        self.state.lock().unwrap().attempts.clone()
    }

    fn cursor_of(&self, mailbox: &str) -> Option<(u32, u32)> {
        self.state.lock().unwrap().cursors.get(mailbox).copied()
    }

    fn fail_on(&self, marker: Option<&str>) {
        self.state.lock().unwrap().fail_marker = marker.map(str::to_string);
    }
}

impl MailSink for MemSink {
    async fn ingest(&self, mailbox: &str, uid: u32, raw: Vec<u8>) -> Result<(), String> {
        let mut s = self.state.lock().unwrap();
        s.attempts.push(subject(&raw));
        if let Some(marker) = &s.fail_marker
            && String::from_utf8_lossy(&raw).contains(marker.as_str())
        {
            return Err("database is unavailable".into());
        }
        s.ingested.push((mailbox.to_string(), uid, raw));
        Ok(())
    }

    async fn cursor(&self, mailbox: &str) -> Result<Option<(u32, u32)>, String> {
        Ok(self.cursor_of(mailbox))
    }

    async fn set_cursor(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        last_uid: u32,
    ) -> Result<(), String> {
        self.state
            .lock()
            .unwrap()
            .cursors
            .insert(mailbox.to_string(), (uidvalidity, last_uid));
        Ok(())
    }
}

fn subject(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        .unwrap_or_default()
}

/// A small RFC 5322 message whose subject is `subject`.
fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@example.com>\r\n\
         To: support@example.com\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{id}@example.com>\r\n\
         Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello, this is {subject}.\r\n",
        id = subject.replace(' ', "-"),
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------

const USER: &str = "support@example.com";
const PASSWORD: &str = "correct horse \"battery\" staple";
const NAME: &str = "support";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn dovecot() -> Dovecot {
    init_tracing();
    let dc = Dovecot::start().await;
    dc.add_user(USER, PASSWORD).await;
    dc
}

fn config(dc: &Dovecot) -> ImapConfig {
    ImapConfig {
        name: NAME.into(),
        host: "127.0.0.1".into(),
        port: Some(dc.imap_port),
        security: Security::Plain,
        username: USER.into(),
        password: Some(Secret::new(PASSWORD)),
        poll_interval: Dur(Duration::from_millis(200)),
        ..ImapConfig::default()
    }
}

fn tuning() -> Tuning {
    Tuning {
        command_timeout: Duration::from_secs(5),
        idle_reissue: Duration::from_secs(5),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(800),
        auth_backoff: Duration::from_secs(60),
        // Small batches so the backlog tests cross batch boundaries.
        batch_size: 2,
        batch_bytes: 1024 * 1024,
        lease_ttl: Duration::from_secs(3),
    }
}

/// A running worker.
struct Running {
    token: CancellationToken,
    handle: JoinHandle<()>,
    health: ChannelHealth,
}

impl Running {
    fn state(&self) -> ChannelState {
        self.health
            .snapshot()
            .get(&format!("imap:{NAME}"))
            .cloned()
            .unwrap_or_default()
    }

    /// Cancels and asserts the worker ends promptly.
    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(3), self.handle)
            .await
            .expect("the worker did not stop within 3 s of shutdown")
            .expect("the worker panicked");
    }
}

fn spawn(cfg: ImapConfig, sink: &Arc<MemSink>, tuning: Tuning) -> Running {
    let health = ChannelHealth::default();
    let token = CancellationToken::new();
    let mailbox = Mailbox::new(cfg, sink.clone(), health.clone()).with_tuning(tuning);
    let handle = tokio::spawn(mailbox.run(token.clone()));
    Running {
        token,
        handle,
        health,
    }
}

/// Polls `cond` every 25 ms until it holds or `within` passes.
async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls the server until `mailbox` holds `n` messages: the worker moves or
/// deletes a batch after the sink took it, so right after the sink saw a
/// message the server may not show the result yet.
async fn wait_for_count(dc: &Dovecot, mailbox: &str, n: usize, within: Duration) {
    let start = Instant::now();
    loop {
        let now = dc.messages(USER, mailbox).await.len();
        if now == n {
            return;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {n} message(s) in {mailbox}, {now} there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn subjects(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn flags_by_uid(dc: &Dovecot, mailbox: &str) -> Vec<(u32, bool)> {
    dc.messages(USER, mailbox)
        .await
        .into_iter()
        .map(|(uid, flags)| (uid, flags.iter().any(|f| f == "Seen")))
        .collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn backlog_is_ingested_in_uid_order_exactly_once() {
    let dc = dovecot().await;
    for i in 1..=5 {
        dc.append(USER, "INBOX", &mail(&format!("backlog {i}")))
            .await;
    }
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning());

    wait_for("5 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() >= 5
    })
    .await;
    // A few more fetch rounds (IDLE wake-ups, keepalives) must not re-ingest.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.ingested_uids(), vec![1, 2, 3, 4, 5]);
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&[
            "backlog 1",
            "backlog 2",
            "backlog 3",
            "backlog 4",
            "backlog 5"
        ])
    );
    let v = dc.uidvalidity(USER, "INBOX").await;
    assert_eq!(sink.cursor_of(NAME), Some((v, 5)));
    let st = w.state();
    assert!(
        st.ok && st.error.is_none() && st.last_success.is_some(),
        "{st:?}"
    );
    // after_ingest defaults to seen.
    assert!(
        flags_by_uid(&dc, "INBOX")
            .await
            .iter()
            .all(|(_, seen)| *seen)
    );
    w.stop().await;
}

#[tokio::test]
async fn new_mail_arrives_during_idle_within_a_couple_of_seconds() {
    let dc = dovecot().await;
    let sink = Arc::new(MemSink::default());
    // Polling every minute: only IDLE can deliver within two seconds.
    let cfg = ImapConfig {
        poll_interval: Dur(Duration::from_secs(60)),
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("first fetch", Duration::from_secs(10), || {
        w.state().last_success.is_some()
    })
    .await;
    // Let it settle into IDLE.
    tokio::time::sleep(Duration::from_millis(300)).await;

    for i in 1..=2 {
        let sent = Instant::now();
        dc.append(USER, "INBOX", &mail(&format!("live {i}"))).await;
        wait_for("the new mail", Duration::from_secs(2), || {
            sink.ingested_uids().len() == i
        })
        .await;
        eprintln!("live {i} ingested {:?} after APPEND", sent.elapsed());
    }
    assert_eq!(sink.ingested_subjects(), subjects(&["live 1", "live 2"]));
    w.stop().await;
}

#[tokio::test]
async fn idle_is_reissued_at_the_absolute_deadline_despite_keepalives() {
    // Dovecot sends `* OK Still here` every second, which resets async-imap's
    // own inactivity timeout; only our absolute deadline ends the IDLE. Each
    // re-issue runs a fetch round, which refreshes last_success.
    let dc = dovecot().await;
    let sink = Arc::new(MemSink::default());
    let t = Tuning {
        idle_reissue: Duration::from_millis(1500),
        ..tuning()
    };
    let w = spawn(config(&dc), &sink, t);
    wait_for("first fetch", Duration::from_secs(10), || {
        w.state().last_success.is_some()
    })
    .await;
    let first = w.state().last_success.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let later = w.state().last_success.unwrap();
    let gap = (later - first).num_milliseconds();
    assert!(
        gap >= 1500,
        "IDLE was not re-issued: last_success moved {gap} ms"
    );
    w.stop().await;
}

#[tokio::test]
async fn polling_is_used_when_idle_is_off() {
    let dc = dovecot().await;
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        idle: false,
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("first fetch", Duration::from_secs(10), || {
        w.state().last_success.is_some()
    })
    .await;
    dc.append(USER, "INBOX", &mail("polled")).await;
    wait_for("the polled mail", Duration::from_secs(2), || {
        sink.ingested_uids().len() == 1
    })
    .await;
    w.stop().await;
}

#[tokio::test]
async fn after_ingest_seen_marks_read_and_keeps_the_mail() {
    let dc = dovecot().await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("seen {i}"))).await;
    }
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        after_ingest: AfterIngest::Seen,
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("3 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    w.stop().await;
    assert_eq!(
        flags_by_uid(&dc, "INBOX").await,
        vec![(1, true), (2, true), (3, true)]
    );
}

#[tokio::test]
async fn after_ingest_move_creates_the_folder_and_moves() {
    let dc = dovecot().await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("move {i}"))).await;
    }
    assert!(!dc.folder_exists(USER, "Processed").await);
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        after_ingest: AfterIngest::Move,
        move_to: Some("Processed".into()),
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("3 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    dc.append(USER, "INBOX", &mail("move 4")).await;
    wait_for("the 4th message", Duration::from_secs(3), || {
        sink.ingested_uids().len() == 4
    })
    .await;
    wait_for_count(&dc, "INBOX", 0, Duration::from_secs(10)).await;
    w.stop().await;
    assert!(dc.messages(USER, "INBOX").await.is_empty());
    let moved = dc.messages(USER, "Processed").await;
    assert_eq!(moved.len(), 4, "{moved:?}");
    // Moving does not mark as read.
    assert!(
        moved.iter().all(|(_, f)| !f.iter().any(|f| f == "Seen")),
        "{moved:?}"
    );
    assert_eq!(sink.ingested_uids(), vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn after_ingest_delete_expunges() {
    let dc = dovecot().await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("delete {i}")))
            .await;
    }
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        after_ingest: AfterIngest::Delete,
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("3 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    wait_for_count(&dc, "INBOX", 0, Duration::from_secs(10)).await;
    w.stop().await;
    assert!(dc.messages(USER, "INBOX").await.is_empty());
    assert!(!dc.folder_exists(USER, "Processed").await);
}

#[tokio::test]
async fn a_sink_error_leaves_the_message_unacknowledged_and_nothing_is_skipped() {
    let dc = dovecot().await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("order {i}"))).await;
    }
    let sink = Arc::new(MemSink::default());
    sink.fail_on(Some("order 2"));
    let w = spawn(config(&dc), &sink, tuning());

    // Message 2 fails at least twice (first round and a retry).
    wait_for("two failed attempts", Duration::from_secs(10), || {
        sink.attempts().iter().filter(|s| *s == "order 2").count() >= 2
    })
    .await;
    let st = w.state();
    assert!(!st.ok, "a sink failure shows in health: {st:?}");
    assert!(st.error.as_deref().unwrap_or("") == "store_error", "{st:?}");
    assert_eq!(sink.ingested_subjects(), subjects(&["order 1"]));
    assert!(
        !sink.attempts().contains(&"order 3".to_string()),
        "message 3 must wait for 2"
    );
    // Only message 1 is acknowledged; the cursor stops before 2.
    assert_eq!(
        flags_by_uid(&dc, "INBOX").await,
        vec![(1, true), (2, false), (3, false)]
    );
    assert_eq!(sink.cursor_of(NAME).map(|c| c.1), Some(1));

    sink.fail_on(None);
    wait_for("all 3 messages", Duration::from_secs(5), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&["order 1", "order 2", "order 3"])
    );
    wait_for("health recovers", Duration::from_secs(2), || w.state().ok).await;
    w.stop().await;
    assert_eq!(
        flags_by_uid(&dc, "INBOX").await,
        vec![(1, true), (2, true), (3, true)]
    );
}

#[tokio::test]
async fn mail_already_seen_by_a_person_is_still_ingested() {
    let dc = dovecot().await;
    dc.append_with_flags(USER, "INBOX", &mail("read elsewhere"), Some("(\\Seen)"))
        .await;
    dc.append(USER, "INBOX", &mail("unread")).await;
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning());
    wait_for("2 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 2
    })
    .await;
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&["read elsewhere", "unread"])
    );
    w.stop().await;
}

#[tokio::test]
async fn the_cursor_survives_a_restart() {
    let dc = dovecot().await;
    dc.append(USER, "INBOX", &mail("before 1")).await;
    dc.append(USER, "INBOX", &mail("before 2")).await;
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning());
    wait_for("2 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 2
    })
    .await;
    w.stop().await;

    // While the daemon is down, mail arrives; the old mail is still there
    // (after_ingest = seen), so only the cursor prevents re-ingesting it.
    dc.append(USER, "INBOX", &mail("while down")).await;
    let w = spawn(config(&dc), &sink, tuning());
    wait_for("the new mail", Duration::from_secs(10), || {
        sink.ingested_uids().len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&["before 1", "before 2", "while down"])
    );
    w.stop().await;
}

#[tokio::test]
async fn a_changed_uidvalidity_triggers_a_rescan() {
    let dc = dovecot().await;
    dc.append(USER, "INBOX", &mail("first")).await;
    dc.append(USER, "INBOX", &mail("second")).await;
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning());
    wait_for("2 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 2
    })
    .await;
    w.stop().await;
    let old = dc.uidvalidity(USER, "INBOX").await;

    dc.set_uidvalidity(USER, "INBOX", old + 1000);
    dc.append(USER, "INBOX", &mail("third")).await;
    let w = spawn(config(&dc), &sink, tuning());
    // Everything is handed over again (the store's dedupe absorbs it).
    wait_for("the rescan", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&["first", "second", "first", "second", "third"])
    );
    assert_eq!(sink.cursor_of(NAME), Some((old + 1000, 3)));
    w.stop().await;
}

#[tokio::test]
async fn a_wrong_password_shows_in_health_and_is_not_retried_in_a_tight_loop() {
    let dc = dovecot().await;
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        password: Some(Secret::new("wrong password")),
        ..config(&dc)
    };
    // Transient backoff is 100 ms here: a worker that treated the refusal as
    // transient would try ~10 times in 3 s.
    let w = spawn(cfg, &sink, tuning());
    wait_for("the failure in health", Duration::from_secs(5), || {
        !w.state().ok
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = w.state();
    assert!(!st.ok);
    let error = st.error.clone().unwrap_or_default();
    // A reason code: the server's text goes to the log only (issue 11).
    assert_eq!(error, "imap_auth");
    assert!(
        !error.contains("wrong password"),
        "the password leaked into health: {error}"
    );
    let attempts = dc.failed_logins();
    assert!(
        (1..=2).contains(&attempts),
        "{attempts} login attempts in 3 s"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_dovecot_restart_during_idle_reconnects_and_mail_still_arrives() {
    let mut dc = dovecot().await;
    dc.append(USER, "INBOX", &mail("before restart")).await;
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning());
    wait_for("the first mail", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // in IDLE now

    dc.restart().await;
    dc.append(USER, "INBOX", &mail("after restart")).await;
    wait_for(
        "the mail after the restart",
        Duration::from_secs(10),
        || sink.ingested_uids().len() == 2,
    )
    .await;
    assert_eq!(
        sink.ingested_subjects(),
        subjects(&["before restart", "after restart"])
    );
    wait_for("health recovers", Duration::from_secs(2), || w.state().ok).await;
    w.stop().await;
}

/// Delivers one mail and waits until a worker connecting to `host:port`
/// with `security` and `dc.ca_pem_path` as `ca_file` has ingested it.
async fn ingest_one_over_tls(dc: &Dovecot, host: &str, port: u16, security: Security) {
    dc.append(USER, "INBOX", &mail("over tls")).await;
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        host: host.into(),
        port: Some(port),
        security,
        ca_file: Some(dc.ca_pem_path.clone()),
        ..config(dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("the mail", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 1
    })
    .await;
    assert!(w.state().ok, "{:?}", w.state());
    w.stop().await;
}

/// The harness's own APPEND logs in over plain text ("secured" because it
/// is loopback); the worker's login must be the one over TLS.
fn assert_worker_logged_in_over_tls(dc: &Dovecot) {
    let log = dc.log();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Login: user=<support@example.com>"))
        .collect();
    assert!(
        logins.iter().any(|l| l.contains(", TLS,")),
        "no login over TLS: {logins:#?}"
    );
}

#[tokio::test]
async fn implicit_tls_with_the_test_ca() {
    let dc = dovecot().await;
    ingest_one_over_tls(&dc, "localhost", dc.imaps_port, Security::Tls).await;
    assert!(dc.log().contains("TLS"), "Dovecot saw no TLS login");
}

#[tokio::test]
async fn starttls_with_the_test_ca() {
    let dc = dovecot().await;
    // The certificate names the IP too.
    ingest_one_over_tls(&dc, "127.0.0.1", dc.imap_port, Security::StartTls).await;
    assert_worker_logged_in_over_tls(&dc);
}

/// A worker connecting over implicit TLS with `ca_file` fails with
/// `imap_tls`, ingests nothing and never logs in.
async fn assert_refused_over_tls(dc: &Dovecot, ca_file: Option<std::path::PathBuf>) {
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        host: "localhost".into(),
        port: Some(dc.imaps_port),
        security: Security::Tls,
        ca_file,
        ..config(dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("the failure in health", Duration::from_secs(5), || {
        !w.state().ok
    })
    .await;
    let error = w.state().error.unwrap_or_default();
    assert_eq!(error, "imap_tls");
    w.stop().await;
    assert!(sink.ingested_uids().is_empty());
    assert!(
        !dc.log().contains("Login: user=<support@example.com>"),
        "the worker logged in to a server it does not trust"
    );
}

#[tokio::test]
async fn tls_without_the_ca_is_refused_and_reported() {
    let dc = dovecot().await;
    assert_refused_over_tls(&dc, None).await;
}

/// A Dovecot presenting a default `openssl req -x509` certificate (self-signed,
/// `CA:TRUE`), with a mailbox user.
async fn self_signed_dovecot() -> Dovecot {
    init_tracing();
    let dc = Dovecot::start_self_signed().await;
    dc.add_user(USER, PASSWORD).await;
    dc
}

/// Issue 11, defect 1: webpki refuses a `CA:TRUE` certificate as the
/// server's own (`CaUsedAsEndEntity`); the same certificate in `ca_file` is a
/// pin and is accepted.
#[tokio::test]
async fn implicit_tls_with_a_pinned_self_signed_certificate() {
    let dc = self_signed_dovecot().await;
    ingest_one_over_tls(&dc, "localhost", dc.imaps_port, Security::Tls).await;
    assert_worker_logged_in_over_tls(&dc);
}

/// A pin stands for the server whatever name it is reached by: the
/// certificate names only `CN=localhost` (no subjectAltName at all), and the
/// worker connects to 127.0.0.1 with STARTTLS.
#[tokio::test]
async fn starttls_with_a_pinned_self_signed_certificate() {
    let dc = self_signed_dovecot().await;
    ingest_one_over_tls(&dc, "127.0.0.1", dc.imap_port, Security::StartTls).await;
    assert_worker_logged_in_over_tls(&dc);
}

/// Pinning is byte-for-byte: another self-signed certificate in `ca_file`
/// trusts nothing, and the password is never sent.
#[tokio::test]
async fn an_unrelated_self_signed_certificate_is_refused() {
    let dc = self_signed_dovecot().await;
    let other = tempfile::tempdir().unwrap();
    let (other_pem, _) = crate::dovecot::self_signed_certificate(other.path(), "other");
    assert_refused_over_tls(&dc, Some(other_pem)).await;
}

/// A server without MOVE and UIDPLUS (Dovecot told to advertise less).
const OLD_SERVER: &str =
    "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE";

#[tokio::test]
async fn move_falls_back_to_copy_delete_expunge_without_the_move_capability() {
    init_tracing();
    let dc = Dovecot::start_with(OLD_SERVER).await;
    dc.add_user(USER, PASSWORD).await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("old move {i}")))
            .await;
    }
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        after_ingest: AfterIngest::Move,
        move_to: Some("Done".into()),
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("3 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    wait_for_count(&dc, "INBOX", 0, Duration::from_secs(10)).await;
    w.stop().await;
    assert!(dc.messages(USER, "INBOX").await.is_empty());
    assert_eq!(dc.messages(USER, "Done").await.len(), 3);
}

#[tokio::test]
async fn delete_uses_plain_expunge_without_uidplus() {
    init_tracing();
    let dc = Dovecot::start_with(OLD_SERVER).await;
    dc.add_user(USER, PASSWORD).await;
    for i in 1..=3 {
        dc.append(USER, "INBOX", &mail(&format!("old delete {i}")))
            .await;
    }
    let sink = Arc::new(MemSink::default());
    let cfg = ImapConfig {
        after_ingest: AfterIngest::Delete,
        ..config(&dc)
    };
    let w = spawn(cfg, &sink, tuning());
    wait_for("3 messages", Duration::from_secs(10), || {
        sink.ingested_uids().len() == 3
    })
    .await;
    wait_for_count(&dc, "INBOX", 0, Duration::from_secs(10)).await;
    w.stop().await;
    assert!(dc.messages(USER, "INBOX").await.is_empty());
}

#[tokio::test]
async fn a_server_without_idle_is_polled() {
    init_tracing();
    let dc = Dovecot::start_with("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE").await;
    dc.add_user(USER, PASSWORD).await;
    let sink = Arc::new(MemSink::default());
    let w = spawn(config(&dc), &sink, tuning()); // idle = true, 200 ms polls
    wait_for("first fetch", Duration::from_secs(10), || {
        w.state().last_success.is_some()
    })
    .await;
    dc.append(USER, "INBOX", &mail("polled from an old server"))
        .await;
    wait_for("the polled mail", Duration::from_secs(2), || {
        sink.ingested_uids().len() == 1
    })
    .await;
    w.stop().await;
    assert!(
        !dc.log().contains("IDLE running"),
        "the worker sent IDLE anyway"
    );
}
