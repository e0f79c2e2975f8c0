//! The worker: connect, log in, select, fetch in batches, acknowledge, IDLE or poll, and back off.

use super::*;

/// Anything async-imap can run over: plain TCP or either TLS flavour.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub(super) type Conn = Box<dyn Io>;
pub(super) type Session = async_imap::Session<Conn>;

/// Why a session ended.
pub(super) enum Stop {
    Shutdown,
    Failed(Failure),
}

#[derive(Debug)]
pub(super) enum Failure {
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
pub(super) enum Round {
    /// Everything the server had is ingested and acknowledged.
    Complete,
    /// The sink could not store a message (or the cursor): retry later, on
    /// the same connection.
    SinkFailed(String),
}

/// An access token and when to fetch a new one.
pub(super) struct CachedToken {
    pub(super) token: Secret,
    pub(super) refresh_at: Instant,
}

pub(super) struct Worker<S: MailSink> {
    pub(super) cfg: ImapConfig,
    pub(super) sink: Arc<S>,
    pub(super) health: ChannelHealth,
    pub(super) tuning: Tuning,
    pub(super) health_name: String,
    pub(super) holder: String,
    pub(super) shutdown: CancellationToken,
    pub(super) token: Option<CachedToken>,
    pub(super) http: Option<reqwest::Client>,
    /// Set once a session completed a fetch round: the next failure starts
    /// the backoff from the bottom again.
    pub(super) progressed: bool,
}

impl<S: MailSink> Worker<S> {
    pub(super) async fn run(mut self) {
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
    pub(super) async fn acquire(&self, holder: &str) -> bool {
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
    pub(super) async fn session(&mut self) -> Stop {
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
    pub(super) async fn open(&mut self) -> Result<Session, Stop> {
        let client = self.connect().await?;
        self.authenticate(client).await
    }

    /// Selects the folder, then fetches and waits until something ends the
    /// connection. Hands the session back when it may still be usable.
    pub(super) async fn serve(&mut self, mut session: Session) -> (Stop, Option<Session>) {
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
    pub(super) async fn connect(&self) -> Result<async_imap::Client<Conn>, Stop> {
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

    pub(super) async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(
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

    pub(super) async fn tls_handshake(
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
    pub(super) async fn authenticate(
        &mut self,
        client: async_imap::Client<Conn>,
    ) -> Result<Session, Stop> {
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
    pub(super) async fn access_token(&mut self, oauth: &OAuth2Config) -> Result<Secret, Stop> {
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

    pub(super) async fn load_cursor(&self, uidvalidity: u32) -> Result<u32, Stop> {
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
    pub(super) async fn fetch_round(
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
    pub(super) async fn fetch_batch(
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
    pub(super) async fn acknowledge(
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

    pub(super) async fn store_flag(
        &self,
        session: &mut Session,
        set: &str,
        flag: &str,
    ) -> Result<(), Stop> {
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
    pub(super) async fn expunge(
        &self,
        session: &mut Session,
        ack: &Ack,
        set: &str,
    ) -> Result<(), Stop> {
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
    pub(super) async fn ensure_folder(
        &self,
        session: &mut Session,
        folder: &str,
    ) -> Result<(), Stop> {
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
    pub(super) async fn idle(
        &self,
        session: Session,
        pending: &impl Fn() -> bool,
    ) -> Result<Session, Stop> {
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

    pub(super) async fn sleep(&self, delay: Duration) -> Result<(), Stop> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Stop::Shutdown),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    // -- plumbing -------------------------------------------------------------

    /// Runs one server call with the command timeout, giving up at shutdown.
    pub(super) async fn step<T, E: Display>(
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
    pub(super) async fn race<T>(&self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            _ = self.shutdown.cancelled() => Err(Stop::Shutdown),
            v = fut => Ok(v),
        }
    }
}

/// What to do with a stored message, and what the server can do.
#[derive(Debug)]
pub(super) struct Ack {
    pub(super) mode: AfterIngest,
    pub(super) folder: String,
    pub(super) can_move: bool,
    pub(super) uidplus: bool,
}
