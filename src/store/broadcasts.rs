//! Broadcasts to many customers.

use super::*;

impl Store {
    /// Creates a broadcast (`customers` = None: everyone), queued `spacing` apart.
    pub async fn create_broadcast(
        &self,
        actor: &Staff,
        body: &str,
        subject: Option<&str>,
        customers: Option<&[i64]>,
        spacing: Duration,
    ) -> Result<BroadcastView, StoreError> {
        let now = now();
        let spacing = chrono::Duration::from_std(spacing).unwrap_or(chrono::Duration::seconds(1));
        write_tx!(self, |c, q| {
            let id = q::create_broadcast(c, actor, body, subject, customers, spacing, now).await?;
            q::broadcast_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("broadcast"))
        })
    }

    pub async fn broadcast(&self, id: i64) -> Result<BroadcastView, StoreError> {
        read!(self, |c, q| q::broadcast_view(c, id).await)?.ok_or(StoreError::NotFound("broadcast"))
    }

    pub async fn broadcast_delivery(
        &self,
        recipient_id: i64,
    ) -> Result<Option<BroadcastDelivery>, StoreError> {
        read!(self, |c, q| q::broadcast_delivery(c, recipient_id).await)
    }

    /// A broadcast delivery's outcome: the recipient's result and the end
    /// of its outbox job in one transaction, so a job is never finished
    /// while its recipient still reads `queued` (if this fails, the job
    /// stays claimed and is tried again after its lease).
    pub async fn finish_broadcast_recipient(
        &self,
        job: &OutboxJob,
        recipient_id: i64,
        status: &str,
        error: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        let job_state = if status == "sent" { "done" } else { "failed" };
        write_tx!(self, |c, q| {
            q::finish_broadcast_recipient(c, recipient_id, status, error, external_id, now).await?;
            q::outbox_finish(c, job.id, job_state, error, now).await
        })
    }
}
