//! One IMAP mailbox: connect, authenticate, fetch new mail, hand it to a
//! [`MailSink`], acknowledge it on the server, then wait (IDLE or polling)
//! and do it again, forever, until shutdown.
//!
//! # Why it is shaped so
//!
//! The worker knows nothing about the database. Everything durable goes
//! through [`MailSink`]: `ingest` parses, threads and commits one raw
//! message; `cursor`/`set_cursor` keep `(UIDVALIDITY, last UID)`. That keeps
//! this file about IMAP only and lets the tests drive it against a real
//! Dovecot with an in-memory sink.
//!
//! The rules I hold to (SPEC §3.3, PROTOCOL-NOTES "IMAP"):
//!
//! * **Progress is the cursor, never `\Seen`.** A person may have read a mail
//!   in another client before we saw it; it is still ingested. The listing is
//!   `UID FETCH last+1:* (UID RFC822.SIZE)` and I drop every UID `<= last`
//!   myself, because `n:*` always returns the highest UID even when it is
//!   below `n`.
//! * **Commit, then acknowledge, then advance.** For each batch: `ingest`
//!   every message in UID order, stop at the first one the sink could not
//!   store, acknowledge (`after_ingest`) only the stored ones, then move the
//!   cursor past them. A crash after the commit and before the acknowledgement
//!   fetches the mail again, and the sink's dedupe makes that harmless; a
//!   message the sink refused is never acknowledged and never skipped, it is
//!   the first one of the next round. Bodies are fetched with `BODY.PEEK[]`
//!   so fetching alone never sets `\Seen`.
//! * **Every server call has a deadline.** async-imap has none of its own; each
//!   call goes through [`Worker::step`], which races it against
//!   `command_timeout` and the shutdown token. The sink's calls are the one
//!   thing I never cancel, so shutdown never lands in the middle of a commit.
//! * **IDLE has an absolute deadline.** async-imap's `wait_with_timeout` is an
//!   inactivity timeout that Dovecot's `* OK Still here` keepalives reset, so
//!   on such servers it never fires. I put my own `timeout_at` around it and
//!   re-issue IDLE after `idle_reissue` (10 min; RFC 2177 says at most 29).
//!   Each wake-up runs a fetch round, which also refreshes `last_success` in
//!   `/readyz`. Without IDLE (config or server) I poll every `poll_interval`.
//! * **Reconnect forever, never in a tight loop.** Any failure drops the
//!   connection and retries after an exponential backoff with jitter, capped
//!   at `backoff_max`. An authentication failure (or a bad CA file) starts at
//!   `auth_backoff` (a minute) instead: hammering a server with a wrong
//!   password gets the account locked, and the fix is a human's. Either way
//!   `/readyz` shows `ok: false` and the error under `imap:<name>`.
//! * **Unsolicited responses are drained.** async-imap parks them in a bounded
//!   channel (100) and silently drops the overflow; I empty it between rounds
//!   and treat an `EXISTS` found there as "fetch again before idling".
//! * **Secrets stay secret.** Passwords and tokens live in [`Secret`] and are
//!   exposed only at the call that sends them. Note that async-imap itself
//!   `log::trace!`s every command it writes, LOGIN included: the daemon's log
//!   filter must keep `async_imap` below trace (see [`LOG_FILTER_GUARD`]).
//!
//! TLS is rustls with the ring provider (STYLE.md: one provider), trusting
//! Mozilla's roots (webpki-roots, compiled in) plus the PEM certificates in
//! `ca_file`. I build the rustls config per connection: it is cheap, and a
//! rotated CA file is picked up without a restart.

use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_imap::error::Error as ImapError;
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Fetch, UnsolicitedResponse};
use futures::TryStreamExt;
use rand::Rng;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::channels::health::ChannelHealth;
use crate::config::{AfterIngest, ImapConfig, OAuth2Config, Secret, Security};

/// A `tracing` filter directive the daemon should append to whatever level
/// ops configure: async-imap logs every command it sends at trace level,
/// `LOGIN user password` and the XOAUTH2 token included.
pub const LOG_FILTER_GUARD: &str = "async_imap=info";

/// Where mail goes. Implemented by the store-backed ingest in the daemon and
/// by an in-memory sink in the tests.
pub trait MailSink: Send + Sync + 'static {
    /// Durably stores one raw message (parse, thread, commit). `Ok(())` also
    /// for duplicates and for mail recorded in the rejected log; `Err` only
    /// when it could not be stored at all (then the message must NOT be
    /// acknowledged and will be fetched again).
    fn ingest(
        &self,
        mailbox: &str,
        uid: u32,
        raw: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// The stored cursor for this mailbox: `(uidvalidity, last_uid)` or `None`.
    fn cursor(
        &self,
        mailbox: &str,
    ) -> impl Future<Output = Result<Option<(u32, u32)>, String>> + Send;

    /// Stores the cursor: every UID `<= last_uid` of this `uidvalidity` is done.
    fn set_cursor(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        last_uid: u32,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Claims or renews `holder`'s lease on this mailbox for `ttl` (SPEC §7:
    /// one poller per mailbox across instances); `Ok(false)` while another
    /// holder's lease runs. A sink shared by no one may always say yes.
    fn claim(
        &self,
        _mailbox: &str,
        _holder: &str,
        _ttl: Duration,
    ) -> impl Future<Output = Result<bool, String>> + Send {
        async { Ok(true) }
    }

    /// Gives the lease up on a clean stop, so another instance takes over
    /// at once instead of when it runs out.
    fn release(&self, _mailbox: &str, _holder: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Renews the mailbox lease every third of `ttl` for as long as the
/// session runs; returns why it was lost (taken over, or not renewable for
/// two thirds of `ttl`), which ends the session.
async fn keep_lease<S: MailSink>(sink: &S, mailbox: &str, holder: &str, ttl: Duration) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match sink.claim(mailbox, holder, ttl).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return "another instance took the mailbox over".to_string(),
            Err(e) => {
                warn!(error = %e, "could not renew the mailbox lease");
                if renewed.elapsed() >= ttl * 2 / 3 {
                    return format!("could not renew the mailbox lease: {e}");
                }
            }
        }
    }
}

/// Who holds mailbox leases from this process.
fn holder_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("{}-{:08x}", std::process::id(), rand::random::<u32>()))
}

/// Timings and limits. The defaults are for production; tests shrink them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Deadline of every single server call (connect, TLS, each command, a
    /// whole FETCH response) and of the OAuth2 token request.
    pub command_timeout: Duration,
    /// IDLE is ended and re-issued after this long even if nothing happened.
    pub idle_reissue: Duration,
    /// First delay after a failure; doubles per consecutive failure.
    pub backoff_min: Duration,
    /// Cap of every backoff.
    pub backoff_max: Duration,
    /// First delay after an authentication or configuration failure.
    pub auth_backoff: Duration,
    /// At most this many messages per `UID FETCH … BODY.PEEK[]`.
    pub batch_size: usize,
    /// And at most about this many bytes (by `RFC822.SIZE`; a single larger
    /// message still goes alone).
    pub batch_bytes: u64,
    /// How long a mailbox lease lasts; it is renewed every third of that,
    /// and an instance that stops renewing loses the mailbox after it.
    pub lease_ttl: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            command_timeout: Duration::from_secs(30),
            idle_reissue: Duration::from_secs(10 * 60),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            auth_backoff: Duration::from_secs(60),
            batch_size: 100,
            batch_bytes: 32 * 1024 * 1024,
            lease_ttl: crate::app::MAILBOX_LEASE,
        }
    }
}

/// One configured mailbox, ready to [`run`](Mailbox::run).
pub struct Mailbox<S: MailSink> {
    cfg: ImapConfig,
    sink: Arc<S>,
    health: ChannelHealth,
    tuning: Tuning,
    health_name: String,
    /// Who this worker claims the mailbox lease as: one id per instance.
    holder: String,
}

impl<S: MailSink> Mailbox<S> {
    /// Registers the mailbox in `health` as `imap:<name>`.
    pub fn new(cfg: ImapConfig, sink: Arc<S>, health: ChannelHealth) -> Self {
        let health_name = format!("imap:{}", cfg.name);
        health.register(&health_name);
        Mailbox {
            cfg,
            sink,
            health,
            tuning: Tuning::default(),
            health_name,
            holder: holder_id().to_string(),
        }
    }

    /// Claims the mailbox lease as `holder` (the daemon's instance id; by
    /// default one per process).
    pub fn with_holder(mut self, holder: &str) -> Self {
        self.holder = holder.to_string();
        self
    }

    /// Replaces the default timings (tests).
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The key this mailbox reports under in [`ChannelHealth`].
    pub fn health_name(&self) -> &str {
        &self.health_name
    }

    /// Runs until `shutdown` is cancelled: connects, ingests, idles or polls,
    /// reconnects with backoff after any failure. Returns promptly on
    /// shutdown, but never while the sink is committing.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = info_span!("imap", mailbox = %self.cfg.name);
        Worker {
            cfg: self.cfg,
            sink: self.sink,
            health: self.health,
            tuning: self.tuning,
            health_name: self.health_name,
            holder: self.holder,
            shutdown,
            token: None,
            http: None,
            progressed: false,
        }
        .run()
        .instrument(span)
        .await
    }
}

// ---------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------

/// Anything async-imap can run over: plain TCP or either TLS flavour.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

type Conn = Box<dyn Io>;
type Session = async_imap::Session<Conn>;

/// Why a session ended.
enum Stop {
    Shutdown,
    Failed(Failure),
}

#[derive(Debug)]
enum Failure {
    /// The server (or the token endpoint) refused our credentials.
    Auth(String),
    /// Something only a human can fix: no credentials, unreadable CA file.
    Config(String),
    /// Network, TLS, timeouts, protocol errors: retry soon.
    Transient(String),
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Auth(m) => write!(f, "authentication failed: {m}"),
            Failure::Config(m) => write!(f, "configuration: {m}"),
            Failure::Transient(m) => f.write_str(m),
        }
    }
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

/// How a fetch round ended when the connection is still fine.
enum Round {
    /// Everything the server had is ingested and acknowledged.
    Complete,
    /// The sink could not store a message (or the cursor): retry later, on
    /// the same connection.
    SinkFailed(String),
}

/// An access token and when to fetch a new one.
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

struct Worker<S: MailSink> {
    cfg: ImapConfig,
    sink: Arc<S>,
    health: ChannelHealth,
    tuning: Tuning,
    health_name: String,
    holder: String,
    shutdown: CancellationToken,
    token: Option<CachedToken>,
    http: Option<reqwest::Client>,
    /// Set once a session completed a fetch round: the next failure starts
    /// the backoff from the bottom again.
    progressed: bool,
}

impl<S: MailSink> Worker<S> {
    async fn run(mut self) {
        info!(
            host = %self.cfg.host,
            port = self.cfg.port(),
            security = self.cfg.security.as_str(),
            folder = %self.cfg.mailbox,
            "mailbox worker started"
        );
        let mut attempt: u32 = 0;
        let holder = self.holder.clone();
        let name = self.cfg.name.clone();
        loop {
            // SPEC §7: only the instance holding the lease polls.
            if !self.acquire(&holder).await {
                break;
            }
            self.progressed = false;
            let sink = self.sink.clone();
            let ttl = self.tuning.lease_ttl;
            let stop = tokio::select! {
                stop = self.session() => stop,
                lost = keep_lease(&*sink, &name, &holder, ttl) => {
                    Stop::Failed(Failure::Transient(lost))
                }
            };
            let failure = match stop {
                Stop::Shutdown => break,
                Stop::Failed(f) => f,
            };
            if self.progressed {
                attempt = 0;
            }
            let delay = match failure {
                Failure::Auth(_) | Failure::Config(_) => {
                    backoff(attempt, self.tuning.auth_backoff, self.tuning.backoff_max)
                        .max(self.tuning.auth_backoff.min(self.tuning.backoff_max))
                }
                Failure::Transient(_) => {
                    backoff(attempt, self.tuning.backoff_min, self.tuning.backoff_max)
                }
            };
            attempt = attempt.saturating_add(1);
            let message = failure.to_string();
            let reason = match &failure {
                Failure::Auth(_) => "imap_auth",
                Failure::Config(_) => "imap_config",
                Failure::Transient(_) if message.contains("TLS handshake") => "imap_tls",
                Failure::Transient(_) => "imap_unavailable",
            };
            self.health.failure(&self.health_name, reason);
            warn!(error = %message, retry_in = ?delay, "mailbox failed; reconnecting later");
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.sink.release(&name, &holder).await;
        info!("mailbox worker stopped");
    }

    /// Waits until this instance holds the mailbox's lease; false on
    /// shutdown. While another instance holds it, this one stands by.
    async fn acquire(&self, holder: &str) -> bool {
        let mut standing_by = false;
        loop {
            match self
                .sink
                .claim(&self.cfg.name, holder, self.tuning.lease_ttl)
                .await
            {
                Ok(true) => {
                    if standing_by {
                        info!("took the mailbox over");
                    }
                    return true;
                }
                Ok(false) => {
                    if !standing_by {
                        info!("another instance polls this mailbox; standing by");
                        self.health
                            .standby(&self.health_name, "another instance polls this mailbox");
                        standing_by = true;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "could not claim the mailbox lease");
                    self.health
                        .failure(&self.health_name, "mailbox_lease_error");
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                _ = tokio::time::sleep(self.tuning.lease_ttl / 3) => {}
            }
        }
    }

    /// One connection, from TCP connect to the failure or shutdown that ends it.
    async fn session(&mut self) -> Stop {
        let session = match self.open().await {
            Ok(s) => s,
            Err(stop) => return stop,
        };
        match self.serve(session).await {
            (Stop::Shutdown, Some(mut session)) => {
                // Polite LOGOUT, briefly; the connection is dropped either way.
                let _ = tokio::time::timeout(
                    self.tuning.command_timeout.min(Duration::from_secs(1)),
                    session.logout(),
                )
                .await;
                Stop::Shutdown
            }
            (stop, _) => stop,
        }
    }

    /// Connects and authenticates.
    async fn open(&mut self) -> Result<Session, Stop> {
        let client = self.connect().await?;
        self.authenticate(client).await
    }

    /// Selects the folder, then fetches and waits until something ends the
    /// connection. Hands the session back when it may still be usable.
    async fn serve(&mut self, mut session: Session) -> (Stop, Option<Session>) {
        macro_rules! attempt {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(stop) => return (stop, Some(session)),
                }
            };
        }
        let caps = attempt!(self.step("CAPABILITY", session.capabilities()).await);
        let can_idle = caps.has_str("IDLE");
        let ack = Ack {
            mode: self.cfg.after_ingest,
            folder: self.cfg.move_to.clone().unwrap_or_default(),
            can_move: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        drop(caps);
        if ack.mode == AfterIngest::Move {
            if ack.folder.is_empty() {
                let f = Failure::Config("after_ingest = \"move\" needs move_to".into());
                return (f.into(), Some(session));
            }
            attempt!(self.ensure_folder(&mut session, &ack.folder).await);
        }

        let selected = attempt!(self.step("SELECT", session.select(&self.cfg.mailbox)).await);
        let Some(uidvalidity) = selected.uid_validity else {
            let f = Failure::Transient(format!(
                "SELECT {}: the server sent no UIDVALIDITY",
                self.cfg.mailbox
            ));
            return (f.into(), Some(session));
        };
        let mut last = attempt!(self.load_cursor(uidvalidity).await);
        debug!(
            uidvalidity,
            last_uid = last,
            can_idle,
            ?ack,
            "mailbox selected"
        );

        let rx = session.unsolicited_responses.clone();
        // Empties async-imap's unsolicited-response channel; true when it
        // held an EXISTS (new mail may be waiting).
        let pending = move || {
            let mut exists = false;
            while let Ok(r) = rx.try_recv() {
                exists |= matches!(r, UnsolicitedResponse::Exists(_));
            }
            exists
        };
        let mut sink_attempt: u32 = 0;
        loop {
            let round = self.fetch_round(&mut session, &ack, uidvalidity, &mut last);
            match attempt!(round.await) {
                Round::Complete => {
                    self.health.success(&self.health_name);
                    crate::metrics::imap_success(&self.cfg.name);
                    self.progressed = true;
                    sink_attempt = 0;
                }
                Round::SinkFailed(message) => {
                    let delay = backoff(
                        sink_attempt,
                        self.tuning.backoff_min,
                        self.tuning.backoff_max,
                    );
                    sink_attempt = sink_attempt.saturating_add(1);
                    self.health.failure(&self.health_name, "store_error");
                    warn!(error = %message, retry_in = ?delay, "could not store mail; retrying");
                    attempt!(self.sleep(delay).await);
                    continue;
                }
            }
            if self.shutdown.is_cancelled() {
                return (Stop::Shutdown, Some(session));
            }
            // New mail reported while we were busy: fetch before waiting.
            if pending() {
                continue;
            }
            if self.cfg.idle && can_idle {
                session = match self.idle(session, &pending).await {
                    Ok(s) => s,
                    Err(stop) => return (stop, None),
                };
            } else {
                attempt!(self.sleep(self.cfg.poll_interval.get()).await);
            }
        }
    }

    // -- connection ---------------------------------------------------------

    /// TCP, then TLS per `security`, then the greeting.
    async fn connect(&self) -> Result<async_imap::Client<Conn>, Stop> {
        let host = self.cfg.host.clone();
        let port = self.cfg.port();
        let tcp = self
            .step("connect", TcpStream::connect((host.as_str(), port)))
            .await?;
        let _ = tcp.set_nodelay(true);
        match self.cfg.security {
            Security::Plain => {
                let mut client = async_imap::Client::new(Box::new(tcp) as Conn);
                self.greeting(&mut client).await?;
                Ok(client)
            }
            Security::Tls => {
                let tls = self.tls_handshake(tcp).await?;
                let mut client = async_imap::Client::new(Box::new(tls) as Conn);
                self.greeting(&mut client).await?;
                Ok(client)
            }
            Security::StartTls => {
                let mut client = async_imap::Client::new(tcp);
                self.greeting(&mut client).await?;
                self.step(
                    "STARTTLS",
                    client.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                // Anything the server sent after its OK is dropped with the
                // plain-text buffer, as RFC 3501 §6.2.1 wants.
                let tls = self.tls_handshake(client.into_inner()).await?;
                Ok(async_imap::Client::new(Box::new(tls) as Conn))
            }
        }
    }

    async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(
        &self,
        client: &mut async_imap::Client<T>,
    ) -> Result<(), Stop> {
        let greeting = self.step("greeting", client.read_response()).await?;
        let Some(greeting) = greeting else {
            return Err(
                Failure::Transient("server closed the connection before greeting".into()).into(),
            );
        };
        match greeting.parsed() {
            Response::Data {
                status: Status::Ok, ..
            } => Ok(()),
            Response::Data {
                status, outcome, ..
            } => Err(Failure::Transient(format!(
                "server greeted with {status:?}: {}",
                outcome.information.as_deref().unwrap_or("")
            ))
            .into()),
            other => Err(Failure::Transient(format!("unexpected greeting {other:?}")).into()),
        }
    }

    async fn tls_handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Stop> {
        let config = tls_config(self.cfg.ca_file.as_deref())
            .await
            .map_err(Failure::Config)?;
        let name = ServerName::try_from(self.cfg.host.clone())
            .map_err(|e| Failure::Config(format!("host {:?}: {e}", self.cfg.host)))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        self.step("TLS handshake", connector.connect(name, tcp))
            .await
    }

    /// LOGIN with the password, or AUTHENTICATE XOAUTH2 with an access token.
    async fn authenticate(&mut self, client: async_imap::Client<Conn>) -> Result<Session, Stop> {
        let timeout = self.tuning.command_timeout;
        let username = self.cfg.username.clone();
        let result = if let Some(oauth) = self.cfg.oauth2.clone() {
            let token = self.access_token(&oauth).await?;
            let auth = XOAuth2::new(&username, token.expose());
            let r = self
                .race(tokio::time::timeout(
                    timeout,
                    client.authenticate("XOAUTH2", auth),
                ))
                .await?;
            if matches!(r, Ok(Err((ImapError::No(_) | ImapError::Bad(_), _)))) {
                // Revoked or expired early: the next attempt asks for a new one.
                self.token = None;
            }
            r
        } else if let Some(password) = self.cfg.password.clone() {
            self.race(tokio::time::timeout(
                timeout,
                client.login(&username, password.expose()),
            ))
            .await?
        } else {
            return Err(Failure::Config("neither password nor oauth2 is configured".into()).into());
        };
        match result {
            Err(_) => Err(Failure::Transient(format!("login timed out after {timeout:?}")).into()),
            Ok(Ok(session)) => {
                debug!("logged in");
                Ok(session)
            }
            Ok(Err((e, _client))) => Err(match e {
                ImapError::No(m) | ImapError::Bad(m) => Failure::Auth(m),
                // The only validation is "no CR/LF"; its message would quote
                // a character of the password.
                ImapError::Validate(_) => {
                    Failure::Config("the username or password contains a line break".into())
                }
                other => Failure::Transient(format!("login: {other}")),
            }
            .into()),
        }
    }

    /// A cached access token, or a new one from the token endpoint.
    async fn access_token(&mut self, oauth: &OAuth2Config) -> Result<Secret, Stop> {
        if let Some(cached) = &self.token
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let http = match &self.http {
            Some(http) => http.clone(),
            None => {
                let tls = tls_config(self.cfg.ca_file.as_deref())
                    .await
                    .map_err(Failure::Config)?;
                let http = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .connect_timeout(self.tuning.command_timeout)
                    .timeout(self.tuning.command_timeout)
                    .build()
                    .map_err(|e| Failure::Config(format!("HTTP client: {e}")))?;
                self.http = Some(http.clone());
                http
            }
        };
        let fresh = self.race(exchange_refresh_token(&http, oauth)).await??;
        let lifetime = fresh.expires_in;
        let margin = Duration::from_secs(60).min(lifetime / 2);
        debug!(expires_in = ?lifetime, "got an OAuth2 access token");
        self.token = Some(CachedToken {
            token: fresh.token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(fresh.token)
    }

    // -- fetching -------------------------------------------------------------

    async fn load_cursor(&self, uidvalidity: u32) -> Result<u32, Stop> {
        let stored = self
            .sink
            .cursor(&self.cfg.name)
            .await
            .map_err(|e| Failure::Transient(format!("reading the cursor: {e}")))?;
        match stored {
            Some((v, last)) if v == uidvalidity => Ok(last),
            Some((v, _)) => {
                warn!(
                    old = v,
                    new = uidvalidity,
                    "UIDVALIDITY changed: rescanning the whole mailbox"
                );
                self.sink
                    .set_cursor(&self.cfg.name, uidvalidity, 0)
                    .await
                    .map_err(|e| Failure::Transient(format!("storing the cursor: {e}")))?;
                Ok(0)
            }
            None => Ok(0),
        }
    }

    /// Ingests everything above `last`, batch by batch, until the server has
    /// nothing new.
    async fn fetch_round(
        &self,
        session: &mut Session,
        ack: &Ack,
        uidvalidity: u32,
        last: &mut u32,
    ) -> Result<Round, Stop> {
        let mut total = 0usize;
        loop {
            let listing = format!("{}:*", last.saturating_add(1));
            let listed: Vec<Fetch> = self
                .step("UID FETCH (list)", async {
                    session
                        .uid_fetch(&listing, "(UID RFC822.SIZE)")
                        .await?
                        .try_collect()
                        .await
                })
                .await?;
            // `n:*` returns the highest UID even when it is below n; other
            // clients' flag changes arrive as FETCH responses too.
            let mut new: Vec<(u32, u64)> = listed
                .iter()
                .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
                .filter(|(uid, _)| *uid > *last)
                .collect();
            new.sort_unstable();
            new.dedup_by_key(|(uid, _)| *uid);
            if new.is_empty() {
                if total > 0 {
                    info!(count = total, last_uid = *last, "ingested new mail");
                }
                return Ok(Round::Complete);
            }
            for batch in batches(&new, self.tuning.batch_size, self.tuning.batch_bytes) {
                let (outcome, n) = self
                    .fetch_batch(session, ack, uidvalidity, last, batch)
                    .await?;
                total += n;
                if let Some(message) = outcome {
                    return Ok(Round::SinkFailed(message));
                }
                if self.shutdown.is_cancelled() {
                    return Err(Stop::Shutdown);
                }
            }
        }
    }

    /// Fetches one batch, ingests it in UID order, acknowledges what was
    /// stored and advances the cursor. Returns the sink's error, if any, and
    /// how many messages were stored.
    async fn fetch_batch(
        &self,
        session: &mut Session,
        ack: &Ack,
        uidvalidity: u32,
        last: &mut u32,
        batch: &[(u32, u64)],
    ) -> Result<(Option<String>, usize), Stop> {
        let (first, end) = (batch[0].0, batch[batch.len() - 1].0);
        let range = format!("{first}:{end}");
        let fetched: Vec<Fetch> = self
            .step("UID FETCH (bodies)", async {
                session
                    .uid_fetch(&range, "(UID INTERNALDATE BODY.PEEK[])")
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        // (uid, raw, INTERNALDATE): when the server received it.
        type Fetched = (u32, Vec<u8>, Option<chrono::DateTime<chrono::Utc>>);
        let mut bodies: Vec<Fetched> = fetched
            .iter()
            .filter_map(|f| {
                let arrived = f.internal_date().map(|d| d.with_timezone(&chrono::Utc));
                Some((f.uid?, f.body()?.to_vec(), arrived))
            })
            .filter(|(uid, _, _)| *uid > *last && (first..=end).contains(uid))
            .collect();
        drop(fetched);
        bodies.sort_unstable_by_key(|(uid, _, _)| *uid);
        bodies.dedup_by_key(|(uid, _, _)| *uid);

        // A listed UID without a body was either expunged meanwhile (fine:
        // nothing left to ingest) or the server failed to send it (not fine:
        // retry rather than skip it).
        let missing: Vec<u32> = batch
            .iter()
            .map(|(uid, _)| *uid)
            .filter(|uid| bodies.binary_search_by_key(uid, |(u, _, _)| *u).is_err())
            .collect();
        if !missing.is_empty() {
            let set = uid_set(&missing);
            let still_there = self
                .step("UID SEARCH", session.uid_search(format!("UID {set}")))
                .await?;
            if let Some(uid) = missing.iter().find(|uid| still_there.contains(uid)) {
                return Err(
                    Failure::Transient(format!("server sent no body for UID {uid}")).into(),
                );
            }
            debug!(uids = %set, "listed messages were expunged before their bodies were fetched");
        }

        let mut stored: Vec<u32> = Vec::with_capacity(bodies.len());
        let mut sink_error = None;
        for (uid, raw, arrived) in bodies {
            // Never raced against shutdown: a commit runs to its end.
            match self.sink.ingest(&self.cfg.name, uid, raw).await {
                Ok(()) => {
                    stored.push(uid);
                    if let Some(arrived) = arrived {
                        let lag = (chrono::Utc::now() - arrived).to_std().unwrap_or_default();
                        crate::metrics::imap_fetched(&self.cfg.name, lag);
                    }
                }
                Err(e) => {
                    sink_error = Some(format!("could not store UID {uid}: {e}"));
                    break;
                }
            }
            if self.shutdown.is_cancelled() {
                break;
            }
        }
        let count = stored.len();
        if let Some(&newest) = stored.last() {
            self.acknowledge(session, ack, &stored).await?;
            if let Err(e) = self
                .sink
                .set_cursor(&self.cfg.name, uidvalidity, newest)
                .await
            {
                return Ok((Some(format!("storing the cursor: {e}")), count));
            }
            *last = newest;
        } else if sink_error.is_none() && !missing.is_empty() {
            // Only expunged UIDs in this batch: step over them.
            *last = (*last).max(end);
        }
        Ok((sink_error, count))
    }

    /// `after_ingest` for the given (stored) UIDs.
    async fn acknowledge(
        &self,
        session: &mut Session,
        ack: &Ack,
        uids: &[u32],
    ) -> Result<(), Stop> {
        let set = uid_set(uids);
        match ack.mode {
            AfterIngest::Seen => self.store_flag(session, &set, "\\Seen").await,
            AfterIngest::Move if ack.can_move => {
                self.step("UID MOVE", session.uid_mv(&set, &ack.folder))
                    .await
            }
            AfterIngest::Move => {
                // RFC 6851 §3.3's fallback: COPY, mark deleted, expunge.
                self.step("UID COPY", session.uid_copy(&set, &ack.folder))
                    .await?;
                self.store_flag(session, &set, "\\Deleted").await?;
                self.expunge(session, ack, &set).await
            }
            AfterIngest::Delete => {
                self.store_flag(session, &set, "\\Deleted").await?;
                self.expunge(session, ack, &set).await
            }
        }
    }

    async fn store_flag(&self, session: &mut Session, set: &str, flag: &str) -> Result<(), Stop> {
        let query = format!("+FLAGS.SILENT ({flag})");
        self.step("UID STORE", async {
            session
                .uid_store(set, &query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
        .map(drop)
    }

    /// `UID EXPUNGE` where the server has UIDPLUS; else a plain `EXPUNGE`,
    /// which also removes what others marked `\Deleted` in this folder.
    async fn expunge(&self, session: &mut Session, ack: &Ack, set: &str) -> Result<(), Stop> {
        if ack.uidplus {
            self.step("UID EXPUNGE", async {
                session
                    .uid_expunge(set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await
            .map(drop)
        } else {
            self.step("EXPUNGE", async {
                session.expunge().await?.try_collect::<Vec<_>>().await
            })
            .await
            .map(drop)
        }
    }

    /// Creates the `move_to` folder when it does not exist yet.
    async fn ensure_folder(&self, session: &mut Session, folder: &str) -> Result<(), Stop> {
        let names: Vec<_> = self
            .step("LIST", async {
                session
                    .list(Some(""), Some(folder))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        if names.is_empty() {
            self.step("CREATE", session.create(folder)).await?;
            info!(folder, "created the folder for processed mail");
        }
        Ok(())
    }

    // -- waiting --------------------------------------------------------------

    /// One IDLE: until the server reports something, the absolute deadline
    /// passes, or shutdown.
    async fn idle(&self, session: Session, pending: &impl Fn() -> bool) -> Result<Session, Stop> {
        let deadline = Instant::now() + self.tuning.idle_reissue;
        let mut handle = session.idle();
        self.step("IDLE", handle.init()).await?;
        // An EXISTS sent together with the IDLE continuation lands in the
        // unsolicited channel, not in `wait()`.
        let woke = if pending() {
            "mail arrived as IDLE started"
        } else {
            // The StopSource must live until `wait` is dropped: dropping it
            // interrupts the wait at once.
            let (wait, _interrupt) = handle.wait();
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Stop::Shutdown),
                r = tokio::time::timeout_at(deadline, wait) => match r {
                    Err(_) => "re-issue deadline",
                    Ok(Ok(IdleResponse::NewData(_))) => "server reported a change",
                    Ok(Ok(IdleResponse::Timeout)) => "inactivity timeout",
                    Ok(Ok(IdleResponse::ManualInterrupt)) => {
                        return Err(Failure::Transient("connection closed during IDLE".into()).into());
                    }
                    Ok(Err(e)) => return Err(Failure::Transient(format!("IDLE: {e}")).into()),
                },
            }
        };
        debug!(reason = woke, "IDLE ended");
        self.step("DONE", handle.done()).await
    }

    async fn sleep(&self, delay: Duration) -> Result<(), Stop> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Stop::Shutdown),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    // -- plumbing -------------------------------------------------------------

    /// Runs one server call with the command timeout, giving up at shutdown.
    async fn step<T, E: Display>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Stop> {
        let timeout = self.tuning.command_timeout;
        match self.race(tokio::time::timeout(timeout, fut)).await? {
            Err(_) => {
                Err(Failure::Transient(format!("{what}: no answer within {timeout:?}")).into())
            }
            Ok(Err(e)) => Err(Failure::Transient(format!("{what}: {e}")).into()),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// `fut`, unless shutdown comes first.
    async fn race<T>(&self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Stop::Shutdown),
            v = fut => Ok(v),
        }
    }
}

/// What to do with a stored message, and what the server can do.
#[derive(Debug)]
struct Ack {
    mode: AfterIngest,
    folder: String,
    can_move: bool,
    uidplus: bool,
}

// ---------------------------------------------------------------------------
// Small pure helpers
// ---------------------------------------------------------------------------

/// `base * 2^attempt`, capped, then scaled by a random factor in [0.5, 1]
/// so a fleet of workers does not reconnect in lockstep.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Splits sorted `(uid, size)` pairs into batches of at most `max_count`
/// messages and about `max_bytes` (a larger single message goes alone).
fn batches(items: &[(u32, u64)], max_count: usize, max_bytes: u64) -> Vec<&[(u32, u64)]> {
    let max_count = max_count.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, (_, size)) in items.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_count || bytes.saturating_add(*size) > max_bytes) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Sorted UIDs as a compact IMAP set: `1:3,7,9:10`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// The trust store: Mozilla's roots plus every certificate in `ca_file`.
async fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file.filter(|p| !p.as_os_str().is_empty()) {
        let pem = tokio::fs::read(path)
            .await
            .map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "ca_file {}: no PEM certificate in it",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

// ---------------------------------------------------------------------------
// XOAUTH2
// ---------------------------------------------------------------------------

/// The SASL XOAUTH2 initial response (before base64, which async-imap adds):
/// `user=U ^A auth=Bearer T ^A ^A`.
fn xoauth2_initial_response(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// Answers the first challenge with the initial response and any later one
/// (Gmail's second `+` carrying a base64 JSON error) with an empty line, after
/// which the server sends the tagged NO.
struct XOAuth2 {
    initial: Option<String>,
}

impl XOAuth2 {
    fn new(user: &str, token: &str) -> Self {
        XOAuth2 {
            initial: Some(xoauth2_initial_response(user, token)),
        }
    }
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.initial
            .take()
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

struct FreshToken {
    token: Secret,
    expires_in: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `POST token_url` with `grant_type=refresh_token` (RFC 6749 §6). A 400 or
/// 401 means the refresh token or client is refused: an authentication
/// failure, backed off long. Anything else is transient.
async fn exchange_refresh_token(
    http: &reqwest::Client,
    oauth: &OAuth2Config,
) -> Result<FreshToken, Failure> {
    let Some(refresh_token) = oauth.refresh_token.as_ref() else {
        return Err(Failure::Config("oauth2.refresh_token is not set".into()));
    };
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", &oauth.client_id),
    ];
    if let Some(secret) = &oauth.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    let response = http
        .post(&oauth.token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("token endpoint: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| Failure::Transient(format!("token endpoint: {e}")))?;
    if status.is_success() {
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Failure::Transient(format!("token endpoint: unexpected answer ({e})")))?;
        if parsed.access_token.is_empty() {
            return Err(Failure::Transient(
                "token endpoint: empty access_token".into(),
            ));
        }
        return Ok(FreshToken {
            token: Secret::new(parsed.access_token),
            expires_in: Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1)),
        });
    }
    // Only the standard error fields: never echo the body, it may hold tokens.
    let err: TokenError = serde_json::from_slice(&body).unwrap_or_default();
    let detail = match (err.error, err.error_description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        (None, Some(d)) => d,
        (None, None) => String::new(),
    };
    let message = format!("token endpoint answered {status} {detail}");
    if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED {
        Err(Failure::Auth(message.trim_end().to_string()))
    } else {
        Err(Failure::Transient(message.trim_end().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use wiremock::matchers::{body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    struct NullSink;

    impl MailSink for NullSink {
        async fn ingest(&self, _: &str, _: u32, _: Vec<u8>) -> Result<(), String> {
            Ok(())
        }
        async fn cursor(&self, _: &str) -> Result<Option<(u32, u32)>, String> {
            Ok(None)
        }
        async fn set_cursor(&self, _: &str, _: u32, _: u32) -> Result<(), String> {
            Ok(())
        }
    }

    fn oauth(token_url: &str) -> OAuth2Config {
        OAuth2Config {
            token_url: token_url.to_string(),
            client_id: "client-1".into(),
            client_secret: Some(Secret::new("s3cret")),
            refresh_token: Some(Secret::new("1//refresh+token/x")),
            ..OAuth2Config::default()
        }
    }

    fn worker(oauth: Option<OAuth2Config>) -> Worker<NullSink> {
        let cfg = ImapConfig {
            name: "support".into(),
            host: "imap.example.com".into(),
            username: "support@example.com".into(),
            oauth2: oauth,
            ..ImapConfig::default()
        };
        let tuning = Tuning {
            command_timeout: Duration::from_secs(5),
            ..Tuning::default()
        };
        Worker {
            cfg,
            sink: Arc::new(NullSink),
            health: ChannelHealth::default(),
            tuning,
            health_name: "imap:support".into(),
            holder: "test".into(),
            shutdown: CancellationToken::new(),
            token: None,
            http: None,
            progressed: false,
        }
    }

    #[test]
    fn xoauth2_initial_response_matches_googles_example() {
        // developers.google.com/gmail/imap/xoauth2-protocol
        let raw = xoauth2_initial_response(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        );
        assert_eq!(
            raw,
            "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(raw),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
    }

    #[test]
    fn xoauth2_answers_the_error_challenge_with_an_empty_response() {
        use async_imap::Authenticator as _;
        let mut auth = XOAuth2::new("u@example.com", "tok");
        assert_eq!(
            auth.process(b""),
            b"user=u@example.com\x01auth=Bearer tok\x01\x01".to_vec()
        );
        let gmail_error =
            br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
        assert!(auth.process(gmail_error).is_empty());
    }

    /// A scripted server: the SASL exchange exactly as Gmail does it on a bad
    /// token, over an in-memory stream through async-imap.
    #[tokio::test]
    async fn xoauth2_failure_on_the_wire_is_an_auth_failure_and_drops_the_token() {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(server_io);
            let mut lines = BufReader::new(r).lines();
            let cmd = lines.next_line().await.unwrap().unwrap();
            let (tag, rest) = cmd.split_once(' ').unwrap();
            assert_eq!(rest, "AUTHENTICATE XOAUTH2");
            w.write_all(b"+ \r\n").await.unwrap();
            let answer = lines.next_line().await.unwrap().unwrap();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(answer)
                .unwrap();
            assert_eq!(
                decoded,
                b"user=support@example.com\x01auth=Bearer expired-token\x01\x01"
            );
            w.write_all(b"+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n")
                .await
                .unwrap();
            let empty = lines.next_line().await.unwrap().unwrap();
            assert_eq!(
                empty, "",
                "the second challenge is answered with an empty line"
            );
            w.write_all(
                format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        });
        let mut w = worker(Some(oauth("http://127.0.0.1:9/unused")));
        w.token = Some(CachedToken {
            token: Secret::new("expired-token"),
            refresh_at: Instant::now() + Duration::from_secs(600),
        });
        let client = async_imap::Client::new(Box::new(client_io) as Conn);
        match w.authenticate(client).await {
            Err(Stop::Failed(Failure::Auth(m))) => {
                assert!(m.contains("Invalid credentials"), "{m}")
            }
            Err(Stop::Failed(f)) => panic!("expected an auth failure, got {f}"),
            Err(Stop::Shutdown) => panic!("shutdown?"),
            Ok(_) => panic!("authentication should have failed"),
        }
        assert!(w.token.is_none(), "a refused token is not reused");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn the_refresh_token_is_exchanged_once_and_cached() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains(
                "refresh_token=1%2F%2Frefresh%2Btoken%2Fx",
            ))
            .and(body_string_contains("client_id=client-1"))
            .and(body_string_contains("client_secret=s3cret"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "ya29.access",
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://mail.google.com/"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let o = oauth(&format!("{}/token", server.uri()));
        let mut w = worker(Some(o.clone()));
        for _ in 0..3 {
            match w.access_token(&o).await {
                Ok(t) => assert_eq!(t.expose(), "ya29.access"),
                Err(_) => panic!("token exchange failed"),
            }
        }
        // MockServer checks `expect(1)` when dropped.
    }

    #[tokio::test]
    async fn an_expiring_token_is_exchanged_again() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "short", "expires_in": 1
            })))
            .expect(2)
            .mount(&server)
            .await;
        let o = oauth(&format!("{}/token", server.uri()));
        let mut w = worker(Some(o.clone()));
        assert!(w.access_token(&o).await.is_ok());
        assert!(w.access_token(&o).await.is_ok()); // cached
        tokio::time::sleep(Duration::from_millis(600)).await; // past expiry minus margin
        assert!(w.access_token(&o).await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_refresh_token_is_an_auth_failure_without_secrets_in_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked."
            })))
            .mount(&server)
            .await;
        let o = oauth(&format!("{}/token", server.uri()));
        let mut w = worker(Some(o.clone()));
        match w.access_token(&o).await {
            Err(Stop::Failed(Failure::Auth(m))) => {
                assert!(m.contains("invalid_grant"), "{m}");
                assert!(!m.contains("refresh") || !m.contains("1//"), "{m}");
                assert!(!m.contains("s3cret"), "{m}");
            }
            _ => panic!("expected an auth failure"),
        }
    }

    #[tokio::test]
    async fn a_token_endpoint_outage_is_transient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let o = oauth(&format!("{}/token", server.uri()));
        let mut w = worker(Some(o.clone()));
        assert!(matches!(
            w.access_token(&o).await,
            Err(Stop::Failed(Failure::Transient(_)))
        ));
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1]), "1");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4294967294, 4294967295]), "4294967294:4294967295");
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let items: Vec<(u32, u64)> = (1..=5).map(|u| (u, 10)).collect();
        let b = batches(&items, 2, 1000);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        let b = batches(&items, 100, 25);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        // A message bigger than the byte budget still goes, alone.
        let big = vec![(1, 10), (2, 5000), (3, 10)];
        let b = batches(&big, 100, 100);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert!(batches(&[], 10, 10).is_empty());
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        for attempt in 0..40 {
            let d = backoff(attempt, base, cap);
            let full = base.saturating_mul(1 << attempt.min(20)).min(cap);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
