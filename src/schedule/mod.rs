//! Scheduled jobs (SPEC §6): escalation, auto-close, digest, retention and
//! housekeeping, each on its own cron schedule.
//!
//! Every job runs in its own task: compute the next tick from the cron
//! expression (evaluated in UTC), sleep until then, claim the tick in the
//! database, run, record the outcome. The claim is a conditional UPDATE on
//! the job's lease row that succeeds only for a tick later than the last
//! one claimed and while no other run holds the lease, so with several
//! instances on one PostgreSQL each tick runs exactly once and a job never
//! overlaps itself. A failing run is logged, counted and shown in
//! `/readyz`; the next tick runs as usual.
//!
//! The digest job only queues one outbox item per person; the outbox
//! worker sends them through SMTP with its usual retry.

pub mod clock;

use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, ManualClock};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channels::health::ChannelHealth;
use crate::config::{Config, Dur, Schedule};
use crate::store::Store;

/// How long a claimed run may take before another instance may take over.
const LEASE: Duration = Duration::from_secs(600);
/// Delivered outbox rows are kept this long.
const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(30);

/// What a job does.
#[derive(Debug, Clone)]
pub enum Task {
    Escalation {
        after: Dur,
    },
    AutoClose {
        after: Dur,
    },
    Retention {
        raw_mail: Dur,
    },
    /// `public_url` is for the links in the email.
    Digest {
        public_url: String,
    },
    /// `notifications`: how long in-app notifications are kept;
    /// `rejected`: how long rejected-log rows are kept.
    Housekeeping {
        notifications: Dur,
        rejected: Dur,
    },
}

/// A job: a name, a schedule and a task.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: &'static str,
    pub schedule: Schedule,
    pub task: Task,
}

/// The jobs the configuration turns on.
pub fn jobs(config: &Config) -> Vec<Job> {
    let mut out = vec![Job {
        name: "escalation",
        schedule: config.escalation.schedule.clone(),
        task: Task::Escalation {
            after: config.escalation.after,
        },
    }];
    if let Some(after) = config.auto_close.after {
        out.push(Job {
            name: "auto_close",
            schedule: config.auto_close.schedule.clone(),
            task: Task::AutoClose { after },
        });
    }
    if config.digest.schedule.is_some() && !config.smtp.enabled() {
        tracing::warn!("digest.schedule is set but [smtp] is not configured: no digest is sent");
    } else if let Some(schedule) = &config.digest.schedule {
        out.push(Job {
            name: "digest",
            schedule: schedule.clone(),
            task: Task::Digest {
                public_url: config.server.public_url.clone(),
            },
        });
    }
    if let Some(raw_mail) = config.retention.raw_mail {
        out.push(Job {
            name: "retention",
            schedule: config.retention.schedule.clone(),
            task: Task::Retention { raw_mail },
        });
    }
    if let Ok(hourly) = Schedule::parse("17 * * * *") {
        out.push(Job {
            name: "housekeeping",
            schedule: hourly,
            task: Task::Housekeeping {
                notifications: config.notifications.retention,
                rejected: config.retention.rejected,
            },
        });
    }
    out
}

/// The next tick strictly after `after`.
pub fn next_tick(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.cron().find_next_occurrence(&after, false).ok()
}

/// Runs a job's task once as of `now` (the scheduler's clock); returns a
/// summary for the log.
pub async fn run_task(
    store: &Store,
    task: &Task,
    now: DateTime<Utc>,
) -> Result<String, crate::store::StoreError> {
    let cutoff =
        |d: &Dur| now - chrono::Duration::from_std(d.0).unwrap_or(chrono::Duration::zero());
    match task {
        Task::Escalation { after } => {
            let n = store
                .escalate_due(cutoff(after), &after.to_string())
                .await?;
            Ok(format!("{n} issue(s) escalated"))
        }
        Task::AutoClose { after } => {
            let n = store
                .auto_close_idle(cutoff(after), &after.to_string())
                .await?;
            Ok(format!("{n} idle issue(s) closed"))
        }
        Task::Retention { raw_mail } => {
            let n = store.purge_raw_mail(cutoff(raw_mail)).await?;
            Ok(format!("raw mail of {n} message(s) purged"))
        }
        Task::Digest { public_url } => {
            let (staff, open) = store.digest_data().await?;
            let mails: Vec<crate::store::StaffMail> = staff
                .iter()
                .filter_map(|s| crate::notify::digest::compose(s, &open, public_url, now))
                .map(|d| crate::store::StaffMail {
                    staff_id: d.staff_id,
                    to: d.to,
                    subject: d.subject,
                    body: d.body,
                    unsubscribe: Some(d.unsubscribe),
                })
                .collect();
            store.enqueue_staff_mail(&mails).await?;
            Ok(format!("{} digest(s) queued", mails.len()))
        }
        Task::Housekeeping {
            notifications,
            rejected,
        } => {
            let n = store
                .purge_finished(cutoff(notifications), now - KEEP_FINISHED)
                .await?;
            let r = store.purge_rejected(cutoff(rejected)).await?;
            // Expired web sessions and links, and sign-in failures too old
            // to count towards a lockout.
            let web = store.purge_web(now).await?;
            let media = store.purge_media_links(now).await?;
            Ok(format!(
                "{n} finished row(s), {r} rejected-log row(s), {web} expired sign-in row(s) and {media} expired media link(s) purged"
            ))
        }
    }
}

/// Runs every job until `shutdown`.
pub struct Scheduler {
    pub store: Store,
    pub jobs: Vec<Job>,
    pub instance: String,
    pub health: ChannelHealth,
    pub metrics: crate::metrics::Metrics,
    /// The system clock, except in tests.
    pub clock: Clock,
}

impl Scheduler {
    pub fn spawn(self, tracker: &TaskTracker, shutdown: CancellationToken) {
        let this = Arc::new(self);
        for job in this.jobs.clone() {
            let this = this.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move { this.run_job(job, shutdown).await });
        }
    }

    async fn run_job(&self, job: Job, shutdown: CancellationToken) {
        let check = format!("job:{}", job.name);
        self.health.register(&check);
        tracing::info!(
            job = job.name,
            schedule = job.schedule.as_str(),
            "job scheduled"
        );
        let mut after = self.clock.now();
        loop {
            let Some(tick) = next_tick(&job.schedule, after) else {
                tracing::error!(job = job.name, "the schedule has no next run");
                self.health.failure(&check, "no_next_run");
                return;
            };
            self.health.set_next_run(&check, tick);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.clock.sleep_until(tick) => {}
            }
            // Ticks missed while the clock jumped (a suspended machine, a
            // test) are run once, not one by one.
            let now = self.clock.now();
            after = tick.max(now);
            match self
                .store
                .claim_job(job.name, tick, &self.instance, LEASE)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(job = job.name, %tick, "another instance runs this tick");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(job = job.name, error = %e, "could not claim the job's lease");
                    continue;
                }
            }
            let started = std::time::Instant::now();
            let outcome = tokio::time::timeout(LEASE, run_task(&self.store, &job.task, now)).await;
            let error = match outcome {
                Ok(Ok(summary)) => {
                    tracing::info!(job = job.name, %summary, elapsed_ms = started.elapsed().as_millis() as u64, "job ran");
                    self.health.success(&check);
                    self.metrics.job_run(job.name, "ok");
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("timed out after {}s", LEASE.as_secs())),
            };
            if let Some(e) = &error {
                tracing::error!(job = job.name, error = %e, "job failed");
                self.health.failure(&check, "job_failed");
                self.metrics.job_run(job.name, "failed");
            }
            if let Err(e) = self.store.finish_job(job.name, error.as_deref()).await {
                tracing::warn!(job = job.name, error = %e, "could not record the job's outcome");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ticks_follow_standard_crontab() {
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 10, 3, 20).unwrap();
        assert_eq!(
            next_tick(&every5, t),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 10, 5, 0).unwrap())
        );
        let on_the_tick = Utc.with_ymd_and_hms(2026, 11, 22, 10, 5, 0).unwrap();
        assert_eq!(
            next_tick(&every5, on_the_tick),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 10, 10, 0).unwrap())
        );
        // Monday to Friday at 08:00: Sunday 22 Nov 2026 → Monday 23rd.
        let weekdays = Schedule::parse("0 8 * * 1-5").unwrap();
        assert_eq!(
            next_tick(&weekdays, t),
            Some(Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap())
        );
        // Six fields: a leading seconds field.
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(
            next_tick(&every_second, t),
            Some(Utc.with_ymd_and_hms(2026, 11, 22, 10, 3, 21).unwrap())
        );
    }

    #[test]
    fn configured_jobs() {
        let mut c = Config::default();
        assert_eq!(
            jobs(&c).iter().map(|j| j.name).collect::<Vec<_>>(),
            vec!["escalation", "housekeeping"]
        );
        c.auto_close.after = Some(Dur::parse("7d").unwrap());
        c.retention.raw_mail = Some(Dur::parse("180d").unwrap());
        c.digest.schedule = Some(Schedule::parse("0 8 * * 1-5").unwrap());
        assert!(
            !jobs(&c).iter().any(|j| j.name == "digest"),
            "no digest without SMTP"
        );
        c.smtp.host = "smtp.example.com".into();
        assert_eq!(
            jobs(&c).iter().map(|j| j.name).collect::<Vec<_>>(),
            vec![
                "escalation",
                "auto_close",
                "digest",
                "retention",
                "housekeeping"
            ]
        );
    }
}
