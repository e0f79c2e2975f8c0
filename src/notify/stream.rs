//! The live event hub behind `GET /api/stream`.
//!
//! Every change writes a row to `stream_events` in its own transaction; this
//! hub reads that table after each commit of this instance and every 100 ms
//! (for other instances' commits), and broadcasts new rows to the SSE
//! connections of this instance. Going through the database rather than an
//! in-process channel is what makes it work with several instances on one
//! PostgreSQL (a webhook handled by instance A reaches a browser connected
//! to B) and what lets a reconnect with `Last-Event-ID` replay exactly what
//! it missed. The broadcast buffer is bounded; a subscriber that falls
//! behind is not waited for — it catches up from the database instead.
//!
//! Ids are not committed in order on PostgreSQL: a transaction that took
//! id 7 can commit after one that took id 8. So the hub does not just
//! remember the highest id it saw; [`Settled`] keeps a low-water mark below
//! which every id was seen or given up on, re-reads from there, and skips
//! what it already sent. An id still missing after [`GAP_WAIT`] belonged to
//! a rolled-back transaction (retries leave such holes) and is given up.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StreamRow};

/// How often the hub looks for new events.
const POLL: Duration = Duration::from_millis(100);
/// Events older than this are purged; a reconnect after longer starts fresh.
const KEEP: chrono::Duration = chrono::Duration::hours(24);
/// How long a hole in the ids is waited for before it is taken to be a
/// rolled-back transaction. Far longer than any write transaction here.
pub const GAP_WAIT: Duration = Duration::from_secs(10);
/// Holes tracked at most; beyond that the oldest are given up at once.
const MAX_GAPS: usize = 10_000;

/// Which event ids have been broadcast: everything up to `low`, plus the
/// ids in `seen` above it; `gaps` are the missing ids between, with when
/// they were first noticed.
#[derive(Debug, Default)]
pub struct Settled {
    low: i64,
    seen: BTreeSet<i64>,
    gaps: BTreeMap<i64, std::time::Instant>,
}

impl Settled {
    pub fn new(low: i64) -> Settled {
        Settled {
            low,
            ..Settled::default()
        }
    }

    /// Where the next read starts (exclusive).
    pub fn low(&self) -> i64 {
        self.low
    }

    /// Records `id` as read; false when it was already broadcast.
    pub fn admit(&mut self, id: i64, now: std::time::Instant) -> bool {
        if id <= self.low || !self.seen.insert(id) {
            return false;
        }
        self.gaps.remove(&id);
        let from = self
            .seen
            .range(..id)
            .next_back()
            .copied()
            .unwrap_or(self.low)
            .max(self.low);
        for missing in (from + 1)..id {
            if self.gaps.len() >= MAX_GAPS {
                break;
            }
            self.gaps.entry(missing).or_insert(now);
        }
        true
    }

    /// Moves the low-water mark over seen ids and holes older than `wait`.
    pub fn advance(&mut self, now: std::time::Instant, wait: Duration) {
        loop {
            let next = self.low + 1;
            if self.seen.remove(&next) {
                self.low = next;
            } else if self
                .gaps
                .get(&next)
                .is_some_and(|t| now.duration_since(*t) >= wait || self.gaps.len() >= MAX_GAPS)
            {
                self.gaps.remove(&next);
                self.low = next;
            } else if self.gaps.is_empty() && self.seen.is_empty() {
                return;
            } else if !self.gaps.contains_key(&next) {
                // Only possible when MAX_GAPS stopped the bookkeeping.
                match self.seen.first().copied() {
                    Some(first) if first > next => self.low = first - 1,
                    _ => return,
                }
            } else {
                return;
            }
        }
    }
}

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<StreamRow>,
    head: Arc<AtomicI64>,
    /// Beats every loop (at least every poll), for the systemd watchdog.
    heartbeat: crate::systemd::Heartbeat,
}

impl Hub {
    pub fn new() -> Hub {
        let (tx, _) = broadcast::channel(1024);
        Hub {
            tx,
            head: Arc::new(AtomicI64::new(0)),
            heartbeat: crate::systemd::Heartbeat::new(),
        }
    }

    /// New events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamRow> {
        self.tx.subscribe()
    }

    /// The hub's sign of life.
    pub fn heartbeat(&self) -> crate::systemd::Heartbeat {
        self.heartbeat.clone()
    }

    /// The newest event id this hub has broadcast.
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Polls the event log until `shutdown`.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        let last = match store.stream_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "stream hub: could not read the event log head");
                0
            }
        };
        self.head.store(last, Ordering::Release);
        let mut settled = Settled::new(last);
        let mut next_purge = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.heartbeat.beat();
            // Woken by this instance's own commits at once; another
            // instance's are found by the poll.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = store.committed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            match store.stream_since(settled.low(), None, 500).await {
                Ok(rows) => {
                    let now = std::time::Instant::now();
                    let wall = crate::store::now();
                    for row in rows {
                        if !settled.admit(row.id, now) {
                            continue;
                        }
                        self.head.fetch_max(row.id, Ordering::AcqRel);
                        if row.kind == "notification" {
                            let age = (wall - row.created_at).to_std().unwrap_or_default();
                            crate::metrics::notification_latency("in_app", age);
                        }
                        let _ = self.tx.send(row);
                    }
                    settled.advance(now, GAP_WAIT);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stream hub: could not read new events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if tokio::time::Instant::now() >= next_purge {
                next_purge = tokio::time::Instant::now() + Duration::from_secs(3600);
                match store.purge_stream(crate::store::now() - KEEP).await {
                    Ok(n) if n > 0 => tracing::debug!(purged = n, "stream hub: purged old events"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "stream hub: purge failed"),
                }
            }
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn in_order_ids_advance_the_mark() {
        let mut s = Settled::new(10);
        let t = Instant::now();
        assert!(s.admit(11, t));
        assert!(s.admit(12, t));
        s.advance(t, GAP_WAIT);
        assert_eq!(s.low(), 12);
        assert!(!s.admit(12, t), "already sent");
        assert!(!s.admit(3, t), "below the mark");
    }

    #[test]
    fn a_late_commit_is_delivered_once() {
        let mut s = Settled::new(0);
        let t = Instant::now();
        // 2 commits before 1.
        assert!(s.admit(2, t));
        s.advance(t, GAP_WAIT);
        assert_eq!(s.low(), 0, "waits for 1");
        // The next read starts at the mark again and sees 2 a second time.
        assert!(s.admit(1, t));
        assert!(!s.admit(2, t));
        s.advance(t, GAP_WAIT);
        assert_eq!(s.low(), 2);
    }

    #[test]
    fn a_rolled_back_id_is_given_up_after_the_wait() {
        let mut s = Settled::new(0);
        let t = Instant::now();
        assert!(s.admit(1, t));
        assert!(s.admit(3, t));
        s.advance(t, GAP_WAIT);
        assert_eq!(s.low(), 1);
        s.advance(t + GAP_WAIT / 2, GAP_WAIT);
        assert_eq!(s.low(), 1);
        s.advance(t + GAP_WAIT, GAP_WAIT);
        assert_eq!(s.low(), 3);
        // A very late commit after that is not sent (it would be a
        // duplicate from the client's point of view only if it was sent).
        assert!(!s.admit(2, t));
    }
}
