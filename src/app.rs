//! Build and run: wires the store, channels, workers and HTTP together.
//!
//! `Application::build` does everything that can fail at start-up (open and
//! migrate the database, create the first admin, bind the listeners) and
//! returns an app bound to real ports, so tests can bind port 0 and read
//! the address back (zero2prod). `run` takes the shutdown signal as a
//! future (atuin), so tests drive shutdown the same way SIGTERM does: stop
//! accepting, let in-flight requests and the outbox item in hand finish,
//! close the pool, return.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::sms::twilio::{Sender, TwilioClient};
use crate::config::Config;
use crate::domain::Role;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::Store;
use crate::systemd;

/// The e-mail of the admin created on an empty database.
pub const FIRST_ADMIN_EMAIL: &str = "admin@localhost";

/// Knobs that tests turn; production uses `Default`.
#[derive(Debug, Clone)]
pub struct Options {
    pub outbox_base_backoff: Duration,
    pub outbox_max_backoff: Duration,
    /// How long shutdown waits for in-flight work.
    pub drain_timeout: Duration,
    /// How long an IMAP mailbox lease lasts (renewed every third of it).
    /// It bounds failover: when an instance dies, another takes its
    /// mailboxes within this plus a third of it (issue 11: under 10 s; a
    /// restart after kill -9 waits the same).
    pub mailbox_lease: Duration,
    /// Connection limits of the HTTP listeners (see `serve`).
    pub http_limits: crate::serve::Limits,
}

/// Default [`Options::mailbox_lease`]: renewed every 2 s, so a dead
/// holder's mailboxes move within about 8 s. A holder that cannot renew in
/// time stops fetching; an overlap could at worst fetch a mail twice, and
/// ingest stores a mail once by its Message-ID.
pub const MAILBOX_LEASE: Duration = Duration::from_secs(6);

impl Default for Options {
    fn default() -> Self {
        Options {
            outbox_base_backoff: Duration::from_secs(1),
            outbox_max_backoff: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(20),
            mailbox_lease: MAILBOX_LEASE,
            http_limits: crate::serve::Limits::default(),
        }
    }
}

/// A built, bound, not yet running daemon.
pub struct Application {
    pub store: Store,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    outbox: Outbox,
    options: Options,
    smtp: Option<crate::channels::email::smtp::SmtpSender>,
    /// The first admin's token, when `build` created one.
    pub first_admin_token: Option<String>,
    /// The first admin's one-time sign-in link (SPEC §9), with the token.
    pub first_admin_link: Option<String>,
    reload_tx: tokio::sync::mpsc::Sender<Config>,
    reload_rx: tokio::sync::mpsc::Receiver<Config>,
}

/// Hands a newly loaded configuration to a running daemon (SIGHUP in
/// `serve`; tests call it directly). See `reload` for what it applies.
#[derive(Clone)]
pub struct ReloadHandle(tokio::sync::mpsc::Sender<Config>);

impl ReloadHandle {
    /// Queues `config` to be applied; false when the daemon has stopped.
    pub async fn reload(&self, config: Config) -> bool {
        self.0.send(config).await.is_ok()
    }
}

/// Installs ring as rustls' crypto provider (idempotent). reqwest's
/// default features would bring aws-lc-rs too, and rustls then cannot pick
/// one and panics at the first TLS connection.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    /// Opens the database, applies migrations (unless `auto_migrate` is
    /// off), creates the first admin on an empty database and binds.
    pub async fn build(config: Config, options: Options) -> anyhow::Result<Application> {
        install_crypto_provider();
        let config = Arc::new(config);
        systemd::status("starting: opening the database");
        let store = Store::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| {
                format!(
                    "opening the database ({})",
                    crate::redact::redact_url(&config.database.url)
                )
            })?;
        if config.database.auto_migrate {
            systemd::status("starting: applying database migrations");
            store.migrate().await.context("applying migrations")?;
        } else if !store.is_migrated().await? {
            anyhow::bail!(
                "the database has pending migrations and auto_migrate is off: run `switchboard migrate`"
            );
        }
        let (first_admin_token, first_admin_link) = match ensure_first_admin(&store).await? {
            Some((token, staff_id)) => {
                let link =
                    crate::web::signin::invite_link(&store, &config.server.public_url, staff_id)
                        .await?;
                (Some(token), Some(link))
            }
            None => (None, None),
        };

        let http_client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let twilio = config.twilio.enabled.then(|| {
            TwilioClient::new(
                &config.twilio.api_base,
                &config.twilio.account_sid,
                config
                    .twilio
                    .auth_token
                    .as_ref()
                    .map(|t| t.expose())
                    .unwrap_or_default(),
                http_client.clone(),
            )
        });
        let sender = match (&config.twilio.messaging_service_sid, &config.twilio.from) {
            (Some(mg), _) => Some(Sender::MessagingService(mg.clone())),
            (None, Some(from)) => Some(Sender::From(from.clone())),
            (None, None) => None,
        };
        let smtp = if config.smtp.enabled() {
            Some(
                crate::channels::email::smtp::SmtpSender::new(&config.smtp)
                    .map_err(|e| anyhow::anyhow!(e))?,
            )
        } else {
            None
        };
        let attachments = crate::attachments::Attachments::from_config(&config.attachments);
        let metrics = Metrics::install();
        let health = crate::channels::health::ChannelHealth::default();
        if twilio.is_some() {
            health.register("twilio");
        }
        if smtp.is_some() {
            health.register("smtp");
        }
        let wake = Arc::new(Notify::new());
        systemd::status("starting: binding listeners");
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let metrics_listener = match config.server.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            ),
            None => None,
        };
        let outbox = Outbox {
            store: store.clone(),
            twilio: twilio.clone(),
            sender,
            status_callback: Some(format!(
                "{}/webhooks/twilio/status",
                config.server.public_url.trim_end_matches('/')
            )),
            media_base: Some(format!(
                "{}/media/",
                config.server.public_url.trim_end_matches('/')
            )),
            wake: wake.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            attachments: attachments.clone(),
            email: smtp.clone().map(|smtp| crate::outbox::EmailOut {
                smtp,
                mailboxes: config
                    .imap
                    .iter()
                    .map(|m| (m.name.clone(), m.address().to_string()))
                    .collect(),
                default_from: config
                    .smtp
                    .from
                    .parse::<lettre::message::Mailbox>()
                    .map(|m| m.email.to_string())
                    .unwrap_or_else(|_| config.smtp.from.clone()),
            }),
            base_backoff: options.outbox_base_backoff,
            max_backoff: options.outbox_max_backoff,
            heartbeat: systemd::Heartbeat::new(),
        };
        let state = AppState {
            store: store.clone(),
            config,
            twilio,
            outbox_wake: wake,
            metrics,
            health,
            started: Instant::now(),
            hub: crate::notify::stream::Hub::new(),
            attachments: attachments.clone(),
            shutdown: CancellationToken::new(),
        };
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        Ok(Application {
            store,
            listener,
            metrics_listener,
            state,
            outbox,
            options,
            smtp,
            first_admin_token,
            first_admin_link,
            reload_tx,
            reload_rx,
        })
    }

    /// The address the API listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    /// Where to send a reloaded configuration.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(self.reload_tx.clone())
    }

    /// Serves until `shutdown` resolves, then drains and returns.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = self.state.shutdown.clone();
        let tracker = TaskTracker::new();
        let addr = self.local_addr();

        tracker.spawn(self.outbox.clone().run(cancel.child_token()));
        tracker.spawn(
            self.state
                .hub
                .clone()
                .run(self.store.clone(), cancel.child_token()),
        );
        let mut heartbeats = vec![
            ("outbox", self.outbox.heartbeat.clone()),
            ("stream hub", self.state.hub.heartbeat()),
        ];
        if let Some(smtp) = self.smtp.clone() {
            let config = &self.state.config;
            let heartbeat = systemd::Heartbeat::new();
            heartbeats.push(("notification email", heartbeat.clone()));
            tracker.spawn(
                crate::notify::email::EmailNotifier {
                    store: self.store.clone(),
                    smtp,
                    from: config.smtp.from.clone(),
                    public_url: config.server.public_url.trim_end_matches('/').to_string(),
                    coalesce: config.notifications.email_coalesce.0,
                    base_backoff: self.options.outbox_base_backoff,
                    max_backoff: self.options.outbox_max_backoff,
                    health: self.state.health.clone(),
                    heartbeat,
                }
                .run(cancel.child_token()),
            );
        }
        let sink = Arc::new(crate::channels::email::ingest::MailIngest {
            store: self.store.clone(),
            attachments: self.state.attachments.clone(),
            options: crate::store::IngestOptions::from_config(&self.state.config),
            metrics: self.state.metrics.clone(),
        });
        let mut long_running = Workers {
            tracker: tracker.clone(),
            cancel: cancel.clone(),
            sink,
            health: self.state.health.clone(),
            mailboxes: std::collections::HashMap::new(),
            scheduler: None,
            store: self.store.clone(),
            metrics: self.state.metrics.clone(),
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            twilio: self.state.twilio.clone(),
            smtp: self.smtp.clone(),
            mailbox_lease: self.options.mailbox_lease,
        };
        for mailbox in &self.state.config.imap {
            long_running.start_mailbox(mailbox.clone());
        }
        long_running.start_scheduler(&self.state.config);

        if let Some(ml) = self.metrics_listener {
            let metrics_router =
                axum::Router::from(http::health::router()).with_state(self.state.clone());
            let token = cancel.child_token();
            let limits = self.options.http_limits;
            tracker.spawn(async move {
                let served = crate::serve::serve(ml, metrics_router, limits, token).await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            });
        }

        let router = http::router(self.state.clone());
        let token = cancel.clone();
        let limits = self.options.http_limits;
        let server = tokio::spawn(crate::serve::serve(self.listener, router, limits, token));
        tracing::info!("listening on {addr}");
        systemd::ready(addr);
        if let Some(watchdog) = systemd::Watchdog::from_env(self.store.clone(), heartbeats) {
            tracker.spawn(watchdog.run(cancel.child_token()));
        }

        let mut running = (*self.state.config).clone();
        let mut reloads = self.reload_rx;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(new) = reloads.recv() => {
                    running = apply_reload(&running, new, &mut long_running);
                }
            }
        }
        systemd::stopping();
        tracing::info!("shutting down: no new requests; finishing in-flight work");
        cancel.cancel();
        tracker.close();
        let drained = tokio::time::timeout(self.options.drain_timeout, async {
            let served = server.await;
            tracker.wait().await;
            served
        })
        .await;
        match drained {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server error"),
            Ok(Err(e)) => tracing::error!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("in-flight work did not finish within the drain timeout"),
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The long-running workers a reload may restart: one per IMAP mailbox,
/// and the scheduler.
struct Workers {
    tracker: TaskTracker,
    cancel: CancellationToken,
    sink: Arc<crate::channels::email::ingest::MailIngest>,
    health: crate::channels::health::ChannelHealth,
    mailboxes: std::collections::HashMap<String, (CancellationToken, tokio::task::JoinHandle<()>)>,
    scheduler: Option<CancellationToken>,
    store: Store,
    metrics: Metrics,
    instance: String,
    /// Shared with the outbox and the webhook check: new credentials apply
    /// to all of them.
    twilio: Option<TwilioClient>,
    smtp: Option<crate::channels::email::smtp::SmtpSender>,
    mailbox_lease: Duration,
}

impl Workers {
    /// Starts (or restarts) a mailbox's worker. A restarted worker waits
    /// for the old one, which finishes the mail it is committing first.
    fn start_mailbox(&mut self, cfg: crate::config::ImapConfig) {
        let name = cfg.name.clone();
        let token = self.cancel.child_token();
        let worker =
            crate::channels::email::imap::Mailbox::new(cfg, self.sink.clone(), self.health.clone())
                .with_tuning(crate::channels::email::imap::Tuning {
                    lease_ttl: self.mailbox_lease,
                    ..Default::default()
                })
                .with_holder(&self.instance);
        let old = self.mailboxes.remove(&name);
        let run = token.clone();
        let handle = self.tracker.spawn(async move {
            if let Some((old_token, old_handle)) = old {
                old_token.cancel();
                let _ = old_handle.await;
            }
            worker.run(run).await
        });
        self.mailboxes.insert(name, (token, handle));
    }

    /// Starts the scheduler with the jobs `config` turns on, stopping the
    /// previous one (a job mid-run finishes; leases keep runs single).
    fn start_scheduler(&mut self, config: &Config) {
        if let Some(old) = self.scheduler.take() {
            old.cancel();
        }
        let token = self.cancel.child_token();
        crate::schedule::Scheduler {
            store: self.store.clone(),
            jobs: crate::schedule::jobs(config),
            instance: self.instance.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            clock: crate::schedule::Clock::System,
        }
        .spawn(&self.tracker, token.clone());
        self.scheduler = Some(token);
    }
}

/// Applies what can change of `new` (see `reload`), logs what was applied
/// and what needs a restart, and returns the configuration now running.
fn apply_reload(running: &Config, new: Config, workers: &mut Workers) -> Config {
    let plan = crate::reload::plan(running, &new);
    let mut failed = Vec::new();
    if plan.applied.iter().any(|k| k == "logging.level")
        && let Err(e) = crate::reload::set_log_level(&plan.config.logging.level)
    {
        failed.push(format!("logging.level: {e}"));
    }
    if plan.twilio
        && let Some(client) = &workers.twilio
    {
        let token = plan
            .config
            .twilio
            .auth_token
            .as_ref()
            .map(|t| t.expose())
            .unwrap_or_default();
        client.set_credentials(&plan.config.twilio.account_sid, token);
    }
    if plan.smtp
        && let Some(smtp) = &workers.smtp
        && let Err(e) = smtp.reconfigure(&plan.config.smtp)
    {
        failed.push(format!("smtp: {e}"));
    }
    for name in &plan.mailboxes {
        if let Some(cfg) = plan.config.imap.iter().find(|m| &m.name == name) {
            workers.start_mailbox(cfg.clone());
        }
    }
    if plan.jobs {
        workers.start_scheduler(&plan.config);
    }
    workers
        .metrics
        .config_reload(if failed.is_empty() { "ok" } else { "partial" });
    if plan.applied.is_empty() && plan.restart.is_empty() {
        tracing::info!("configuration reloaded: nothing changed");
    } else {
        tracing::info!(applied = ?plan.applied, needs_restart = ?plan.restart, "configuration reloaded");
    }
    if !plan.restart.is_empty() {
        tracing::warn!(keys = ?plan.restart, "these settings changed but take effect only after a restart");
    }
    for f in &failed {
        tracing::error!(error = %f, "could not apply a reloaded setting");
    }
    plan.config
}

/// On an empty database, creates `admin@localhost` and returns its token
/// and id.
async fn ensure_first_admin(store: &Store) -> anyhow::Result<Option<(String, i64)>> {
    if store.count_staff().await? > 0 {
        return Ok(None);
    }
    let admin = match store
        .create_staff(FIRST_ADMIN_EMAIL, "Admin", Role::Admin)
        .await
    {
        Ok(a) => a,
        // Another instance created it first.
        Err(crate::store::StoreError::Rule(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let token = store.create_token(admin.id).await?;
    tracing::info!(
        staff_id = admin.id,
        "created the first admin ({FIRST_ADMIN_EMAIL})"
    );
    Ok(Some((token, admin.id)))
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this
/// is called, not when the future is first polled: call it before the
/// daemon reports ready, or a SIGTERM that arrives in between would kill
/// the process with the default action instead of shutting it down.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
    }
}
