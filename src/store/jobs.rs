//! Scheduled jobs, mailbox leases and IMAP cursors.

use super::*;

impl Store {
    /// Claims the run of job `name` scheduled at `tick` (once per tick
    /// across every instance).
    pub async fn claim_job(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        instance: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now();
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(10));
        write_tx!(self, |c, q| q::claim_job(
            c, name, tick, instance, now, until
        )
        .await)
    }

    pub async fn finish_job(&self, name: &str, error: Option<&str>) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::finish_job(c, name, error, now).await)
    }

    pub async fn jobs(&self) -> Result<Vec<JobState>, StoreError> {
        read!(self, |c, q| q::jobs(c).await)
    }

    /// Claims or renews `holder`'s lease on an IMAP mailbox for `ttl`.
    pub async fn claim_mailbox(
        &self,
        mailbox: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
        write_tx!(self, |c, q| q::claim_mailbox(
            c, mailbox, holder, now, until
        )
        .await)
    }

    /// Gives up `holder`'s lease on a mailbox.
    pub async fn release_mailbox(&self, mailbox: &str, holder: &str) -> Result<(), StoreError> {
        write_tx!(self, |c, q| q::release_mailbox(c, mailbox, holder).await)
    }

    /// Escalates issues unassigned since before `cutoff`; returns how many.
    pub async fn escalate_due(
        &self,
        cutoff: DateTime<Utc>,
        after: &str,
    ) -> Result<usize, StoreError> {
        let due = read!(self, |c, q| q::escalation_due(c, cutoff).await)?;
        let mut n = 0;
        for id in due {
            let now = now();
            if write_tx!(self, |c, q| q::escalate(c, id, after, now).await)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Closes issues idle since before `cutoff`; returns how many.
    pub async fn auto_close_idle(
        &self,
        cutoff: DateTime<Utc>,
        after: &str,
    ) -> Result<usize, StoreError> {
        let idle = read!(self, |c, q| q::idle_issues(c, cutoff).await)?;
        let mut n = 0;
        for id in idle {
            let now = now();
            if write_tx!(self, |c, q| q::auto_close(c, id, cutoff, after, now).await)? {
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn purge_raw_mail(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_raw_mail(c, cutoff).await)
    }

    /// Housekeeping: old notifications and delivered outbox rows.
    pub async fn purge_finished(
        &self,
        notifications_before: DateTime<Utc>,
        outbox_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_finished(
            c,
            notifications_before,
            outbox_before
        )
        .await)
    }

    /// (UIDVALIDITY, last ingested UID) of an IMAP mailbox.
    pub async fn mailbox_cursor(&self, mailbox: &str) -> Result<Option<(i64, i64)>, StoreError> {
        read!(self, |c, q| q::mailbox_cursor(c, mailbox).await)
    }

    pub async fn set_mailbox_cursor(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        last_uid: i64,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::set_mailbox_cursor(
            c,
            mailbox,
            uidvalidity,
            last_uid,
            now
        )
        .await)
    }

    /// Marks the reply a bounce names as failed.
    pub async fn bounce_reply(
        &self,
        original_message_id: &str,
        code: &str,
        text: &str,
    ) -> Result<Option<i64>, StoreError> {
        write_tx!(self, |c, q| q::bounce_reply(
            c,
            original_message_id,
            code,
            text
        )
        .await)
    }
}
