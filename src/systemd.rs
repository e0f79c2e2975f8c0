//! systemd integration for `serve`: `Type=notify` readiness, `STATUS=`
//! lines, `STOPPING=1`, and a watchdog that only pets systemd while the
//! daemon is really alive.
//!
//! Everything here speaks the `sd_notify(3)` datagram protocol through the
//! `sd-notify` crate, and everything is a no-op without `$NOTIFY_SOCKET`, so
//! `serve` in a terminal, in a container or in the tests behaves exactly as
//! before. I never use the crate's `*_and_unset_env` variants: they remove
//! `NOTIFY_SOCKET`/`WATCHDOG_USEC` after the first call (which would silence
//! every later watchdog ping) and `remove_var` is unsound once tokio's
//! threads run. We start no child processes, so there is nobody the
//! variables could leak to.
//!
//! # The watchdog
//!
//! A watchdog that pings from a timer proves only that the timer runs. I
//! want systemd to restart us when we are up but useless, so before each
//! ping [`Watchdog`] checks what the daemon needs to do its job:
//!
//! * the database answers `SELECT 1` within a timeout (a wedged pool or a
//!   hung connection is fixed by a restart; a database that is down is not,
//!   but then start-up fails too and `Restart=on-failure` keeps retrying
//!   until it is back, which is what ops want anyway);
//! * every background worker (today the outbox) has bumped its
//!   [`Heartbeat`] recently. A worker that panicked stops beating, and so
//!   does one stuck in an await that never returns.
//!
//! When a check fails I skip the ping and log why at `error`, so the reason
//! is in the journal right above systemd's "watchdog timeout" line. One
//! failed check is not fatal: pings go out at half of `WATCHDOG_USEC`, so it
//! takes two misses in a row (a whole `WatchdogSec=`) before systemd acts.
//!
//! The silence allowed to a worker is generous ([`WORKER_MAX_SILENCE`]): the
//! outbox beats once per item and once per idle poll, but one item may
//! legitimately take a Twilio request timeout (60 s) plus a few database
//! waits. A false restart costs little (a claimed item's lease expires and
//! it is sent again later) but is noisy, so I err on the side of patience.
//!
//! The watchdog starts with `run` (after `READY=1`), because systemd only
//! arms it once start-up is complete; migrations may take as long as they
//! need within `TimeoutStartSec=`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sd_notify::NotifyState;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Longest a `SELECT 1` may take before the database counts as unhealthy
/// (shortened to the ping interval when that is smaller).
pub const DB_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a worker may go without a heartbeat before it counts as stuck.
pub const WORKER_MAX_SILENCE: Duration = Duration::from_secs(300);

/// Whether systemd (or a test) gave us a notification socket.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// `STATUS=…`: the one-line state `systemctl status` shows.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `READY=1` with `STATUS=serving on ADDR`. Call it once the database is
/// migrated and the listeners are bound.
pub fn ready(addr: SocketAddr) {
    let text = format!("serving on {addr}");
    send(&[NotifyState::Ready, NotifyState::Status(&text)]);
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing in-flight work"),
    ]);
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, or `None` when
/// systemd asked for no watchdog (or asked another process: `$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|timeout| timeout / 2)
        .filter(|interval| !interval.is_zero())
}

/// A worker's sign of life: the time of its last loop iteration. Cloning
/// shares it; the worker calls [`Heartbeat::beat`], the watchdog reads
/// [`Heartbeat::silence`]. A fresh heartbeat counts as a beat now.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a sign of life.
    pub fn beat(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last beat.
    pub fn silence(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Why the watchdog did not ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// `SELECT 1` failed.
    Database(String),
    /// `SELECT 1` did not answer in time.
    DatabaseTimeout(Duration),
    /// A worker has not beaten for too long.
    WorkerSilent {
        worker: &'static str,
        silent_for: Duration,
    },
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhealthy::Database(e) => write!(f, "the database ping failed: {e}"),
            Unhealthy::DatabaseTimeout(t) => {
                write!(f, "the database did not answer a ping within {t:?}")
            }
            Unhealthy::WorkerSilent { worker, silent_for } => write!(
                f,
                "the {worker} worker has shown no sign of life for {}s",
                silent_for.as_secs()
            ),
        }
    }
}

/// Pings the database; a closure so tests can put a fake in.
type Ping = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Pets the systemd watchdog while the database and the workers are alive.
pub struct Watchdog {
    ping: Ping,
    workers: Vec<(&'static str, Heartbeat)>,
    interval: Duration,
    ping_timeout: Duration,
    max_silence: Duration,
}

impl Watchdog {
    /// The production watchdog, if systemd asked for one and gave us a
    /// socket to answer on: pings at half of `$WATCHDOG_USEC`.
    pub fn from_env(store: Store, workers: Vec<(&'static str, Heartbeat)>) -> Option<Watchdog> {
        if !enabled() {
            return None;
        }
        let interval = watchdog_interval()?;
        let ping: Ping = Box::new(move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
        });
        Some(Watchdog::new(ping, workers, interval))
    }

    fn new(ping: Ping, workers: Vec<(&'static str, Heartbeat)>, interval: Duration) -> Watchdog {
        Watchdog {
            ping,
            workers,
            interval,
            ping_timeout: DB_PING_TIMEOUT.min(interval),
            max_silence: WORKER_MAX_SILENCE,
        }
    }

    /// The interval between pings.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Is the daemon alive? Workers first (no I/O), then the database.
    pub async fn check(&self) -> Result<(), Unhealthy> {
        for (worker, heartbeat) in &self.workers {
            let silent_for = heartbeat.silence();
            if silent_for > self.max_silence {
                return Err(Unhealthy::WorkerSilent { worker, silent_for });
            }
        }
        match tokio::time::timeout(self.ping_timeout, (self.ping)()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Unhealthy::Database(e)),
            Err(_) => Err(Unhealthy::DatabaseTimeout(self.ping_timeout)),
        }
    }

    /// Sends `WATCHDOG=1` every interval while [`Watchdog::check`] passes,
    /// until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            interval_ms = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            "systemd watchdog enabled"
        );
        self.run_with(shutdown, || send(&[NotifyState::Watchdog]))
            .await;
    }

    async fn run_with(self, shutdown: CancellationToken, mut pet: impl FnMut()) {
        let mut tick = tokio::time::interval(self.interval);
        // After a slow check, wait a full interval rather than bursting.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut healthy = true;
        loop {
            // Shutdown wins over a tick or a check in progress: once
            // systemd is told STOPPING=1 it no longer expects pings.
            let verdict = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                verdict = async {
                    tick.tick().await;
                    self.check().await
                } => verdict,
            };
            match verdict {
                Ok(()) => {
                    if !healthy {
                        tracing::info!("healthy again: systemd watchdog pings resumed");
                    }
                    healthy = true;
                    pet();
                }
                Err(why) => {
                    tracing::error!(
                        reason = %why,
                        "unhealthy: not pinging the systemd watchdog; systemd restarts the service if this lasts"
                    );
                    healthy = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;

    fn ping_ok() -> Ping {
        Box::new(|| async { Ok(()) }.boxed())
    }

    fn watchdog(ping: Ping, heartbeat: &Heartbeat) -> Watchdog {
        Watchdog::new(
            ping,
            vec![("outbox", heartbeat.clone())],
            Duration::from_secs(15),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_when_the_database_answers_and_workers_beat() {
        let hb = Heartbeat::new();
        let wd = watchdog(ping_ok(), &hb);
        assert_eq!(wd.ping_timeout, DB_PING_TIMEOUT);
        assert_eq!(wd.check().await, Ok(()));
        tokio::time::advance(WORKER_MAX_SILENCE - Duration::from_secs(1)).await;
        assert_eq!(wd.check().await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_database_ping_is_unhealthy() {
        let hb = Heartbeat::new();
        let wd = watchdog(
            Box::new(|| async { Err("connection refused".to_string()) }.boxed()),
            &hb,
        );
        assert_eq!(
            wd.check().await,
            Err(Unhealthy::Database("connection refused".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_that_does_not_answer_in_time_is_unhealthy() {
        let hb = Heartbeat::new();
        let wd = watchdog(
            Box::new(|| {
                async {
                    tokio::time::sleep(DB_PING_TIMEOUT + Duration::from_secs(1)).await;
                    Ok(())
                }
                .boxed()
            }),
            &hb,
        );
        assert_eq!(
            wd.check().await,
            Err(Unhealthy::DatabaseTimeout(DB_PING_TIMEOUT))
        );
        // A short watchdog interval shortens the ping timeout with it, so a
        // check never outlasts the time left before systemd's deadline.
        let short = Watchdog::new(ping_ok(), Vec::new(), Duration::from_millis(200));
        assert_eq!(short.ping_timeout, Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_worker_is_unhealthy_until_it_beats_again() {
        let hb = Heartbeat::new();
        let wd = watchdog(ping_ok(), &hb);
        tokio::time::advance(WORKER_MAX_SILENCE + Duration::from_secs(1)).await;
        match wd.check().await {
            Err(Unhealthy::WorkerSilent { worker, silent_for }) => {
                assert_eq!(worker, "outbox");
                assert!(silent_for > WORKER_MAX_SILENCE);
            }
            other => panic!("expected a silent worker, got {other:?}"),
        }
        hb.beat();
        assert_eq!(hb.silence(), Duration::ZERO);
        assert_eq!(wd.check().await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_stop_while_unhealthy_and_resume_after() {
        let db_up = Arc::new(AtomicBool::new(true));
        let up = db_up.clone();
        let ping: Ping = Box::new(move || {
            let up = up.load(Ordering::SeqCst);
            async move { if up { Ok(()) } else { Err("down".to_string()) } }.boxed()
        });
        let wd = Watchdog::new(
            ping,
            vec![("outbox", Heartbeat::new())],
            Duration::from_secs(1),
        );
        let pets = Arc::new(AtomicUsize::new(0));
        let counter = pets.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(wd.run_with(shutdown.clone(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));

        // Ticks at 0 s, 1 s, 2 s: three pings.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(pets.load(Ordering::SeqCst), 3);

        // The database goes away: no pings at 3 s, 4 s.
        db_up.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pets.load(Ordering::SeqCst), 3);

        // Back: pings at 5 s and 6 s.
        db_up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pets.load(Ordering::SeqCst), 5);

        // Shutdown ends the loop promptly and no ping follows.
        shutdown.cancel();
        tokio::time::timeout(Duration::from_millis(10), task)
            .await
            .expect("the watchdog stops at shutdown")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(pets.load(Ordering::SeqCst), 5);
    }
}
