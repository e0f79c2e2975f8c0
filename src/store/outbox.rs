//! The outbox: replies and jobs waiting to go out, and their delivery reports.

use super::*;

impl Store {
    /// Claims the next due outbox item, leased for `lease`.
    pub async fn claim_outbox(&self, lease: Duration) -> Result<Option<OutboxJob>, StoreError> {
        let now = now();
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        write_tx!(self, |c, q| q::claim_outbox(c, now, until).await)
    }

    /// The provider accepted the message.
    pub async fn outbox_sent(
        &self,
        job: &OutboxJob,
        external_id: Option<&str>,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::update_delivery(c, job.message_id, status, None, external_id).await?;
            q::outbox_finish(c, job.id, "done", None, now).await
        })
    }

    /// A temporary failure: try again at `next_at`.
    pub async fn outbox_retry(
        &self,
        job: &OutboxJob,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::outbox_retry(c, job.id, next_at, error, now)
            .await)
    }

    /// A permanent failure (or retries exhausted): the reply shows `failed`.
    pub async fn outbox_failed(
        &self,
        job: &OutboxJob,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::update_delivery(
                c,
                job.message_id,
                DeliveryStatus::Failed,
                Some((code, message)),
                None,
            )
            .await?;
            q::outbox_finish(
                c,
                job.id,
                "failed",
                Some(&format!("{code}: {message}")),
                now,
            )
            .await
        })
    }

    pub async fn outbox_depth(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::outbox_depth(c).await)
    }

    /// A provider's delivery report. Returns whether a reply matched.
    pub async fn delivery_report(
        &self,
        channel: Channel,
        external_id: &str,
        status: DeliveryStatus,
        error: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |c, q| {
            match q::reply_by_external_id(c, channel, external_id).await? {
                Some(id) => {
                    q::update_delivery(c, id, status, error, None).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }
}
