//! One retry policy for everything that talks to another server: the
//! outbox (replies, media downloads, broadcasts, digests), notification
//! emails and the IMAP worker's reconnects.
//!
//! Delays grow exponentially from a base to a cap, with up to 25 % random
//! jitter added so a burst of failures does not retry in lockstep. Durable
//! items (rows with an attempt count) are retried until `MAX_ATTEMPTS`
//! attempts have failed, then given up and shown as failed; a provider's
//! `Retry-After` is honoured, within the cap. Pure: the caller passes the
//! time, so tests need no clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Attempts of a durable item before a temporary failure becomes final.
pub const MAX_ATTEMPTS: i64 = 10;

/// Exponential backoff between `base` and `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// What to do after an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// `MAX_ATTEMPTS` attempts failed: record the failure.
    GiveUp,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max }
    }

    /// The delay after `failures` failures in a row (1 for the first):
    /// `base · 2^(failures - 1)`, capped at `max`, plus up to 25 % jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.clamp(1, 31) - 1;
        let raw = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max);
        raw + raw.mul_f64(rand::random::<f64>() * 0.25)
    }

    /// After the `attempts`-th attempt of a durable item failed: when to try
    /// again (the provider's `Retry-After`, at most `max`, when it sent
    /// one), or to give up.
    pub fn after_failure(
        &self,
        attempts: i64,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Next {
        if attempts >= MAX_ATTEMPTS {
            return Next::GiveUp;
        }
        let failures = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
        let delay = retry_after
            .map(|d| d.min(self.max))
            .unwrap_or_else(|| self.delay(failures));
        Next::Retry(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }

    /// [`after_failure`](Backoff::after_failure) as an `Option`: the time to
    /// try again, `None` to give up.
    pub fn retry_at(
        &self,
        attempts: i64,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.after_failure(attempts, retry_after, now) {
            Next::Retry(at) => Some(at),
            Next::GiveUp => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delays_double_from_the_base_to_the_cap_with_a_quarter_of_jitter() {
        let b = Backoff::new(secs(1), secs(60));
        for (failures, want) in [(0, 1), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            for _ in 0..20 {
                let d = b.delay(failures);
                assert!(
                    d >= secs(want) && d <= secs(want).mul_f64(1.25),
                    "{failures} failures: {d:?}, want {want} s + up to 25 %"
                );
            }
        }
    }

    #[test]
    fn durable_items_retry_until_the_tenth_attempt_then_give_up() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = Backoff::new(secs(1), secs(300));
        for attempts in 1..MAX_ATTEMPTS {
            let Next::Retry(at) = b.after_failure(attempts, None, now) else {
                panic!("attempt {attempts} is retried");
            };
            let wait = (at - now).to_std().unwrap();
            let want = secs(1 << (attempts - 1)).min(secs(300));
            assert!(
                wait >= want && wait <= want.mul_f64(1.25),
                "{attempts}: {wait:?}"
            );
        }
        assert_eq!(b.after_failure(MAX_ATTEMPTS, None, now), Next::GiveUp);
        assert_eq!(
            b.after_failure(MAX_ATTEMPTS + 5, Some(secs(1)), now),
            Next::GiveUp
        );
        // Retry-After wins, within the cap.
        assert_eq!(
            b.after_failure(1, Some(secs(30)), now),
            Next::Retry(now + chrono::Duration::seconds(30))
        );
        assert_eq!(
            b.after_failure(1, Some(secs(3600)), now),
            Next::Retry(now + chrono::Duration::seconds(300))
        );
    }
}
