//! The scheduler's clock: the system clock in production, a manual one in
//! tests, so every job can be driven through days of schedule in
//! milliseconds and deterministically.
//!
//! Not tokio's paused time: with it the runtime jumps ahead whenever it is
//! idle, which includes every wait on the database, so timeouts around
//! store calls would fire at random. A manual clock moves only when the
//! test says so.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Where "now" comes from.
#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Manual(Arc<ManualClock>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(m) => *m.tx.borrow(),
        }
    }

    /// Returns once `now()` has reached `at`.
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match self {
            Clock::System => {
                let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await
            }
            Clock::Manual(m) => {
                let mut rx = m.tx.subscribe();
                while *rx.borrow_and_update() < at {
                    if rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

/// A clock that moves only when told to.
pub struct ManualClock {
    tx: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            tx: watch::Sender::new(start),
        })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        self.tx.send_modify(|now| *now += by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_when_moved_past_their_time() {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let manual = ManualClock::new(start);
        let clock = Clock::Manual(manual.clone());
        let at = start + chrono::Duration::minutes(5);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(at).await }
        });
        manual.advance(Duration::from_secs(240));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sleeper.is_finished(), "4 of 5 minutes");
        manual.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .expect("woken at 5 minutes")
            .unwrap();
        assert_eq!(clock.now(), at);
    }
}
