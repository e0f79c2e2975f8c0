//! Email notifications (SPEC §5): coalesced, reliable, visibly failing.
//!
//! The notification rows are the queue: the store writes them in the
//! transaction of the change, marking those whose recipient wants email.
//! This worker claims, per person and issue, the rows whose coalescing
//! window (`notifications.email_coalesce`) has passed — so five quick
//! messages on one issue become one email — sends one message listing
//! them, and records the outcome: sent, retry later with backoff, or
//! failed for good (shown on the notification as `email.status`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channels::email::smtp::{NotificationMail, SmtpSender, build_notification, domain_of};
use crate::channels::health::ChannelHealth;
use crate::channels::sms::twilio::SendError;
use crate::retry::Backoff;
use crate::store::{EmailBatch, Store};

pub struct EmailNotifier {
    pub store: Store,
    pub smtp: SmtpSender,
    /// `smtp.from`.
    pub from: String,
    pub public_url: String,
    pub coalesce: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub health: ChannelHealth,
    /// Beats every loop (at most 5 s apart), for the systemd watchdog.
    pub heartbeat: crate::systemd::Heartbeat,
}

/// Subject and body of one coalesced email.
pub fn compose(batch: &EmailBatch, public_url: &str) -> (String, String) {
    let headline = |t: &str| {
        t.split_once(": ")
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| t.to_string())
    };
    let first = batch.texts.first().map(|t| headline(t)).unwrap_or_default();
    let subject = match batch.texts.len() {
        0 | 1 => first,
        n => format!("{first} (and {} more)", n - 1),
    };
    let mut body = String::new();
    for t in &batch.texts {
        body.push_str("- ");
        body.push_str(t);
        body.push('\n');
    }
    body.push('\n');
    if let Some(issue) = batch.issue_id {
        body.push_str(&format!("Open the issue: {public_url}/issues/{issue}\n"));
    }
    body.push_str(&format!(
        "Change what you are notified about: {public_url}/api/me/preferences\n"
    ));
    (subject, body)
}

impl EmailNotifier {
    pub async fn run(self, shutdown: CancellationToken) {
        let tick = (self.coalesce / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            self.heartbeat.beat();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(tick) => {}
            }
            let batches = match self
                .store
                .claim_notification_emails(self.coalesce, Duration::from_secs(120))
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "notification emails: could not claim work");
                    continue;
                }
            };
            for batch in batches {
                self.deliver(batch).await;
            }
        }
    }

    async fn deliver(&self, batch: EmailBatch) {
        let (subject, body) = compose(&batch, &self.public_url);
        let message_id = format!(
            "n{}.{:016x}@{}",
            batch.ids.first().copied().unwrap_or(0),
            rand::random::<u64>(),
            domain_of(&self.from)
        );
        let unsubscribe = format!("{}/api/me/preferences", self.public_url);
        let built = build_notification(&NotificationMail {
            from: &self.from,
            to: &batch.staff_email,
            to_name: Some(&batch.staff_name),
            subject: &subject,
            body: &body,
            unsubscribe_url: &unsubscribe,
            message_id: &message_id,
        });
        let result = match built {
            Ok(msg) => self.smtp.send(msg).await,
            Err(e) => Err(SendError::Permanent {
                code: "invalid_message".into(),
                message: e,
            }),
        };
        // This was attempt `attempts + 1`; the one retry policy decides.
        let retry = match &result {
            Err(SendError::Retryable { retry_after, .. }) => Backoff::new(
                self.base_backoff,
                self.max_backoff,
            )
            .retry_at(batch.attempts + 1, *retry_after, crate::store::now()),
            _ => None,
        };
        let outcome = match result {
            Ok(()) => {
                self.health.success("smtp");
                tracing::info!(staff_id = batch.staff_id, issue_id = ?batch.issue_id, count = batch.ids.len(), "notification email sent");
                if let Some(oldest) = batch.oldest {
                    let age = (crate::store::now() - oldest).to_std().unwrap_or_default();
                    crate::metrics::notification_latency("email", age);
                }
                self.store
                    .finish_notification_emails(&batch.ids, true, None, None)
                    .await
            }
            Err(SendError::Retryable { message, .. }) if let Some(next) = retry => {
                self.health.failure("smtp", "smtp_unavailable");
                tracing::warn!(staff_id = batch.staff_id, error = %message, retry_at = %next, "notification email will be retried");
                self.store
                    .finish_notification_emails(&batch.ids, false, Some(&message), Some(next))
                    .await
            }
            Err(SendError::Retryable { message, .. })
            | Err(SendError::Permanent { message, .. }) => {
                tracing::error!(staff_id = batch.staff_id, error = %message, "notification email failed");
                self.store
                    .finish_notification_emails(&batch.ids, false, Some(&message), None)
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "notification emails: could not record the outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_emails_list_every_update() {
        let batch = EmailBatch {
            staff_id: 1,
            staff_email: "a@example.com".into(),
            staff_name: "A".into(),
            issue_id: Some(42),
            ids: vec![1, 2, 3],
            texts: vec![
                "[#42] New SMS from Jane Doe: hello".into(),
                "[#42] Jane Doe wrote: are you there".into(),
                "[#42] Jane Doe wrote: hello??".into(),
            ],
            attempts: 0,
            oldest: None,
        };
        let (subject, body) = compose(&batch, "https://sb.example.com");
        assert_eq!(subject, "[#42] New SMS from Jane Doe (and 2 more)");
        assert!(body.contains("- [#42] Jane Doe wrote: hello??\n"));
        assert!(body.contains("https://sb.example.com/issues/42"));
        let one = EmailBatch {
            ids: vec![1],
            texts: vec![batch.texts[0].clone()],
            ..batch
        };
        assert_eq!(
            compose(&one, "https://sb.example.com").0,
            "[#42] New SMS from Jane Doe"
        );
    }
}
