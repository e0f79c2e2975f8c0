//! What outbound email needs: threading context, Message-IDs, notification emails.

use super::*;

impl Store {
    pub async fn email_context(&self, message_id: i64) -> Result<Option<EmailContext>, StoreError> {
        read!(self, |c, q| q::email_context(c, message_id).await)
    }

    pub async fn assign_external_id(
        &self,
        message_id: i64,
        id: &str,
    ) -> Result<String, StoreError> {
        write_tx!(self, |c, q| q::assign_external_id(c, message_id, id).await)
    }

    /// Claims the notification emails due now (coalescing window passed).
    pub async fn claim_notification_emails(
        &self,
        coalesce: Duration,
        lease: Duration,
    ) -> Result<Vec<EmailBatch>, StoreError> {
        let now = now();
        let window_start =
            now - chrono::Duration::from_std(coalesce).unwrap_or(chrono::Duration::zero());
        let lease_until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        write_tx!(self, |c, q| q::claim_notification_emails(
            c,
            now,
            window_start,
            lease_until
        )
        .await)
    }

    pub async fn finish_notification_emails(
        &self,
        ids: &[i64],
        sent: bool,
        error: Option<&str>,
        next_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::finish_notification_emails(
            c, ids, sent, error, next_at, now
        )
        .await)
    }
}
