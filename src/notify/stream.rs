//! The live event hub behind `GET /api/stream`.
//!
//! Every change writes a row to `stream_events` in its own transaction; this
//! hub polls that table (100 ms) and broadcasts new rows to the SSE
//! connections of this instance. Going through the database rather than an
//! in-process channel is what makes it work with several instances on one
//! PostgreSQL (a webhook handled by instance A reaches a browser connected
//! to B) and what lets a reconnect with `Last-Event-ID` replay exactly what
//! it missed. The broadcast buffer is bounded; a subscriber that falls
//! behind is not waited for — it catches up from the database instead.

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

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<StreamRow>,
    head: Arc<AtomicI64>,
}

impl Hub {
    pub fn new() -> Hub {
        let (tx, _) = broadcast::channel(1024);
        Hub {
            tx,
            head: Arc::new(AtomicI64::new(0)),
        }
    }

    /// New events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamRow> {
        self.tx.subscribe()
    }

    /// The newest event id this hub has broadcast.
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Polls the event log until `shutdown`.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        let mut last = match store.stream_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "stream hub: could not read the event log head");
                0
            }
        };
        self.head.store(last, Ordering::Release);
        let mut next_purge = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
            match store.stream_since(last, None, 500).await {
                Ok(rows) => {
                    for row in rows {
                        last = row.id;
                        self.head.store(last, Ordering::Release);
                        let _ = self.tx.send(row);
                    }
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
