//! The durable outbox worker: claim, send, retry with backoff, give up.
//!
//! A reply is written to the `outbox` table in the same transaction as the
//! message, so it cannot be lost between the API call and the send. This
//! worker claims due items under a lease (an item whose worker died is
//! picked up again when the lease expires; on PostgreSQL several instances
//! claim with `SKIP LOCKED` and never take the same item), sends them, and
//! records the outcome. Temporary failures (429, 5xx, network) are retried
//! with exponential backoff and jitter, honouring `Retry-After`, up to
//! `MAX_ATTEMPTS`; permanent ones (Twilio 21211, 21610, …) fail at once and
//! show on the reply as `delivery.error`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::channels::sms::twilio::{self, SendError, Sender, TwilioClient};
use crate::domain::{Channel, DeliveryStatus};
use crate::store::{MediaFetch, OutboxJob, OutboxTask, StaffMail, Store};

pub use crate::retry::MAX_ATTEMPTS;
use crate::retry::{Backoff, Next};
/// How long a claimed item is reserved for its worker.
const LEASE: Duration = Duration::from_secs(120);
/// How often the worker looks for due items without being woken.
const POLL: Duration = Duration::from_secs(1);
/// How long a reply's public media link stays valid: Twilio fetches at
/// send time, and retries a failed fetch for a while.
pub const MEDIA_LINK_TTL: Duration = Duration::from_secs(3 * 24 * 3600);

/// What the worker needs.
#[derive(Clone)]
pub struct Outbox {
    pub store: Store,
    pub twilio: Option<TwilioClient>,
    pub sender: Option<Sender>,
    /// `{public_url}/webhooks/twilio/status`.
    pub status_callback: Option<String>,
    /// `{public_url}/media/`: where Twilio fetches a reply's files (MMS).
    pub media_base: Option<String>,
    pub wake: Arc<Notify>,
    pub metrics: crate::metrics::Metrics,
    pub health: crate::channels::health::ChannelHealth,
    /// `None` while outbound mail is off.
    pub email: Option<EmailOut>,
    pub attachments: crate::attachments::Attachments,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Bumped every loop and every item, so the systemd watchdog can tell a
    /// stuck or dead worker from an idle one.
    pub heartbeat: crate::systemd::Heartbeat,
}

/// What sending email replies needs.
#[derive(Clone, Debug)]
pub struct EmailOut {
    pub smtp: crate::channels::email::smtp::SmtpSender,
    /// (name, address) of each IMAP mailbox: replies go out from the
    /// address of the mailbox the issue came in on.
    pub mailboxes: Vec<(String, String)>,
    /// The address of `smtp.from`, for issues that came in elsewhere.
    pub default_from: String,
}

/// A store error while sending: the item is tried again.
fn retry_store(e: crate::store::StoreError) -> SendError {
    SendError::Retryable {
        code: None,
        message: e.to_string(),
        retry_after: None,
    }
}

impl Outbox {
    fn backoff(&self) -> Backoff {
        Backoff::new(self.base_backoff, self.max_backoff)
    }

    /// When to try `job` again after `result`, by the one retry policy:
    /// `None` after a success, a permanent failure, or the last attempt.
    fn retry_at<T>(
        &self,
        job: &OutboxJob,
        result: &Result<T, SendError>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        match result {
            Err(SendError::Retryable { retry_after, .. }) => {
                self.backoff()
                    .retry_at(job.attempts, *retry_after, crate::store::now())
            }
            _ => None,
        }
    }

    /// Runs until `shutdown`; an item in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("outbox worker started");
        loop {
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                self.heartbeat.beat();
                match self.store.claim_outbox(LEASE).await {
                    Ok(Some(job)) => self.process(job).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: could not claim work");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    #[tracing::instrument(skip(self, job), fields(outbox_id = job.id, message_id = job.message_id, issue_id = job.issue_id, attempt = job.attempts))]
    async fn process(&self, job: OutboxJob) {
        match &job.task {
            OutboxTask::Reply => {}
            OutboxTask::Media(fetch) => return self.process_media(fetch.clone(), job).await,
            OutboxTask::Broadcast { recipient_id } => {
                return self.process_broadcast(*recipient_id, job).await;
            }
            OutboxTask::StaffMail(mail) => return self.process_staff_mail(mail.clone(), job).await,
        }
        let result = match job.channel {
            Channel::Sms => self.send_sms(&job).await,
            Channel::Email => self.send_email(&job).await,
        };
        let outcome = match result {
            Ok((sid, status)) => {
                self.metrics.outbox_result(job.kind(), "sent");
                tracing::info!(provider_id = %sid, "reply handed to the provider");
                self.store.outbox_sent(&job, Some(&sid), status).await
            }
            Err(SendError::Permanent { code, message }) => {
                self.metrics.outbox_result(job.kind(), "failed");
                tracing::warn!(%code, %message, "reply failed permanently");
                self.store.outbox_failed(&job, &code, &message).await
            }
            Err(SendError::Retryable {
                code,
                message,
                retry_after,
            }) => match self
                .backoff()
                .after_failure(job.attempts, retry_after, crate::store::now())
            {
                Next::GiveUp => {
                    self.metrics.outbox_result(job.kind(), "failed");
                    tracing::warn!(?code, %message, "reply failed: retries exhausted");
                    let code = code.unwrap_or_else(|| "retries_exhausted".into());
                    self.store
                        .outbox_failed(
                            &job,
                            &code,
                            &format!("gave up after {} attempts: {message}", job.attempts),
                        )
                        .await
                }
                Next::Retry(next) => {
                    self.metrics.outbox_result(job.kind(), "retry");
                    tracing::info!(?code, %message, retry_at = %next, "reply will be retried");
                    self.store.outbox_retry(&job, next, &message).await
                }
            },
        };
        if let Err(e) = outcome {
            // The lease expires and the item is tried again.
            tracing::error!(error = %e, "outbox: could not record the outcome");
        }
    }

    /// Records a media item that never became a file (refused by its
    /// declared type or count, or never downloaded), with the reason.
    async fn refuse_media(
        &self,
        message_id: i64,
        filename: &str,
        content_type: &str,
        reason: &str,
    ) -> Result<i64, crate::store::StoreError> {
        self.store
            .add_attachment(message_id, filename, content_type, 0, None, Some(reason))
            .await
    }

    /// Downloads one MMS media item and stores it as an attachment (or
    /// records why it was refused). Network failures are retried with the
    /// outbox's backoff; the message text was stored long before.
    async fn process_media(&self, fetch: MediaFetch, job: OutboxJob) {
        let MediaFetch {
            url,
            content_type: declared,
            index,
        } = fetch;
        let filename = |ct: &str| match crate::attachments::extension_for(ct) {
            Some(ext) => format!("mms-{}-{}.{ext}", job.message_id, index + 1),
            None => format!("mms-{}-{}", job.message_id, index + 1),
        };
        let a = &self.attachments;
        let outcome: Result<(), String> = async {
            // Refuse by declared type and count before downloading.
            if let Some(reason) = a.refusal(&filename(&declared), &declared, 0, index) {
                self.refuse_media(job.message_id, &filename(&declared), &declared, &reason)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            let Some(client) = &self.twilio else {
                return Err("the SMS channel is not configured".into());
            };
            match client.download_media(&url, a.max_bytes).await {
                Ok((bytes, ct)) => {
                    let ct = if ct.is_empty() { declared.clone() } else { ct };
                    let name = filename(&ct);
                    if let Some(reason) = a.refusal(&name, &ct, bytes.len() as u64, index) {
                        self.store
                            .add_attachment(
                                job.message_id,
                                &name,
                                &ct,
                                bytes.len() as i64,
                                None,
                                Some(&reason),
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                        return Ok(());
                    }
                    let sha = a
                        .save(&bytes)
                        .await
                        .map_err(|e| format!("storing the file: {e}"))?;
                    self.store
                        .add_attachment(
                            job.message_id,
                            &name,
                            &ct,
                            bytes.len() as i64,
                            Some(&sha),
                            None,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(())
                }
                Err(SendError::Permanent { code, message }) => {
                    let reason = format!("download failed ({code}): {message}");
                    self.refuse_media(job.message_id, &filename(&declared), &declared, &reason)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(())
                }
                Err(SendError::Retryable { message, .. }) => Err(message),
            }
        }
        .await;
        let recorded = match outcome {
            Ok(()) => {
                self.metrics.outbox_result("media", "done");
                self.store.outbox_finish_plain(&job, None).await
            }
            Err(e) => match self
                .backoff()
                .after_failure(job.attempts, None, crate::store::now())
            {
                Next::Retry(next) => {
                    self.metrics.outbox_result("media", "retry");
                    tracing::warn!(error = %e, retry_at = %next, "media download will be retried");
                    self.store.outbox_retry(&job, next, &e).await
                }
                Next::GiveUp => {
                    self.metrics.outbox_result("media", "failed");
                    let reason = format!("download failed after {} attempts: {e}", job.attempts);
                    if let Err(e) = self
                        .refuse_media(job.message_id, &filename(&declared), &declared, &reason)
                        .await
                    {
                        tracing::error!(error = %e, "outbox: could not record a refused attachment");
                    }
                    self.store.outbox_finish_plain(&job, Some(&reason)).await
                }
            },
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "outbox: could not record a media outcome");
        }
    }

    /// Sends one broadcast delivery over the recipient's channel.
    async fn process_broadcast(&self, recipient_id: i64, job: OutboxJob) {
        let delivery = match self.store.broadcast_delivery(recipient_id).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                if let Err(e) = self
                    .store
                    .outbox_finish_plain(&job, Some("recipient no longer exists"))
                    .await
                {
                    tracing::error!(error = %e, "broadcast: could not finish a job without recipient");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "broadcast: could not load the recipient");
                return;
            }
        };
        let result: Result<String, SendError> = match delivery.channel {
            Channel::Sms => match (&self.twilio, &self.sender) {
                (Some(client), Some(sender)) => client
                    .send(&delivery.contact, sender, &delivery.body, &[], None)
                    .await
                    .map(|s| s.sid),
                _ => Err(SendError::Permanent {
                    code: "channel_unavailable".into(),
                    message: "the SMS channel is not configured".into(),
                }),
            },
            Channel::Email => {
                let subject = delivery
                    .subject
                    .clone()
                    .unwrap_or_else(|| "An announcement".to_string());
                let from = self
                    .email
                    .as_ref()
                    .and_then(|e| e.mailboxes.first())
                    .map(|(_, a)| a.clone());
                self.send_plain_email(
                    from,
                    &delivery.contact,
                    &subject,
                    &delivery.body,
                    &format!("b{}", delivery.recipient_id),
                    None,
                )
                .await
            }
        };
        let retry = self.retry_at(&job, &result);
        let recorded = match (result, retry) {
            (Ok(external_id), _) => {
                self.metrics.outbox_result("broadcast", "sent");
                self.store
                    .finish_broadcast_recipient(
                        &job,
                        recipient_id,
                        "sent",
                        None,
                        Some(&external_id),
                    )
                    .await
            }
            (Err(SendError::Retryable { message, .. }), Some(next)) => {
                self.metrics.outbox_result("broadcast", "retry");
                self.store.outbox_retry(&job, next, &message).await
            }
            (Err(SendError::Retryable { code, message, .. }), None) => {
                self.metrics.outbox_result("broadcast", "failed");
                let text = format!(
                    "{}: {message}",
                    code.unwrap_or_else(|| "retries_exhausted".into())
                );
                self.store
                    .finish_broadcast_recipient(&job, recipient_id, "failed", Some(&text), None)
                    .await
            }
            (Err(SendError::Permanent { code, message }), _) => {
                self.metrics.outbox_result("broadcast", "failed");
                let text = format!("{code}: {message}");
                self.store
                    .finish_broadcast_recipient(&job, recipient_id, "failed", Some(&text), None)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "outbox: could not record a broadcast outcome");
        }
    }

    /// Sends one plain-text, automatically generated email (broadcasts,
    /// digests) from `from` (default: the address of `smtp.from`); returns
    /// the Message-ID it was given. `unsubscribe` defaults to a mailto: to
    /// the sender.
    async fn send_plain_email(
        &self,
        from: Option<String>,
        to: &str,
        subject: &str,
        body: &str,
        tag: &str,
        unsubscribe: Option<&str>,
    ) -> Result<String, SendError> {
        use crate::channels::email::smtp::{NotificationMail, build_notification, domain_of};
        let Some(email) = &self.email else {
            return Err(SendError::Permanent {
                code: "channel_unavailable".into(),
                message: "outbound email is not configured".into(),
            });
        };
        let from = from.unwrap_or_else(|| email.default_from.clone());
        let id = format!("{tag}.{:016x}@{}", rand::random::<u64>(), domain_of(&from));
        let mailto = format!("mailto:{from}?subject=unsubscribe");
        let msg = build_notification(&NotificationMail {
            from: &from,
            to,
            to_name: None,
            subject,
            body,
            unsubscribe_url: unsubscribe.unwrap_or(&mailto),
            message_id: &id,
        })
        .map_err(|e| SendError::Permanent {
            code: "invalid_message".into(),
            message: e,
        })?;
        email.smtp.send(msg).await.map(|_| id)
    }

    /// Sends a plain email to a staff member (a digest or a sign-in link).
    async fn process_staff_mail(&self, mail: StaffMail, job: OutboxJob) {
        let staff_id = mail.staff_id;
        let result = self
            .send_plain_email(
                None,
                &mail.to,
                &mail.subject,
                &mail.body,
                &format!("digest{staff_id}"),
                mail.unsubscribe.as_deref(),
            )
            .await;
        let retry = self.retry_at(&job, &result);
        let recorded = match (result, retry) {
            (Ok(id), _) => {
                self.metrics.outbox_result("digest", "sent");
                tracing::info!(staff_id, message_id = %id, "digest sent");
                self.store.outbox_finish_plain(&job, None).await
            }
            (Err(SendError::Retryable { message, .. }), Some(next)) => {
                self.metrics.outbox_result("digest", "retry");
                tracing::info!(staff_id, %message, retry_at = %next, "digest will be retried");
                self.store.outbox_retry(&job, next, &message).await
            }
            (Err(e), _) => {
                self.metrics.outbox_result("digest", "failed");
                let text = match e {
                    SendError::Permanent { code, message } => format!("{code}: {message}"),
                    SendError::Retryable { code, message, .. } => format!(
                        "{}: {message}",
                        code.unwrap_or_else(|| "retries_exhausted".into())
                    ),
                };
                tracing::warn!(staff_id, error = %text, "digest failed");
                self.store.outbox_finish_plain(&job, Some(&text)).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "outbox: could not record a digest outcome");
        }
    }

    async fn send_email(&self, job: &OutboxJob) -> Result<(String, DeliveryStatus), SendError> {
        use crate::channels::email::smtp::{ReplyMail, build_reply, domain_of, our_message_id};
        let Some(email) = &self.email else {
            return Err(SendError::Permanent {
                code: "channel_unavailable".into(),
                message: "outbound email (SMTP) is not configured".into(),
            });
        };
        let ctx = self
            .store
            .email_context(job.message_id)
            .await
            .map_err(retry_store)?
            .ok_or_else(|| SendError::Permanent {
                code: "missing_message".into(),
                message: "the reply no longer exists".into(),
            })?;
        let from = ctx
            .mailbox
            .as_deref()
            .and_then(|m| email.mailboxes.iter().find(|(n, _)| n == m))
            .or(email.mailboxes.first())
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| email.default_from.clone());
        // Assigned before the first attempt, so a retry reuses it.
        let wanted = our_message_id(ctx.issue_id, job.message_id, domain_of(&from));
        let message_id = match &ctx.external_id {
            Some(id) => id.clone(),
            None => self
                .store
                .assign_external_id(job.message_id, &wanted)
                .await
                .map_err(retry_store)?,
        };
        let (parent, references) = match &ctx.parent {
            Some((id, refs)) => {
                let refs: Vec<String> = refs
                    .as_deref()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                (Some(id.as_str()), refs)
            }
            None => (None, Vec::new()),
        };
        let files = self.reply_files(job.message_id).await?;
        let msg = build_reply(&ReplyMail {
            from_address: &from,
            from_name: None,
            to: &job.to,
            subject: &ctx.subject,
            issue_id: ctx.issue_id,
            body: &job.body,
            message_id: &message_id,
            in_reply_to: parent,
            references: &references,
            first_message: ctx.first_message && !ctx.automatic,
            automatic: ctx.automatic,
            files: &files,
        })
        .map_err(|e| SendError::Permanent {
            code: "invalid_message".into(),
            message: e,
        })?;
        match email.smtp.send(msg).await {
            Ok(()) => {
                self.health.success("smtp");
                Ok((message_id, DeliveryStatus::Sent))
            }
            Err(e) => {
                if let SendError::Retryable { .. } = &e {
                    self.health.failure("smtp", "smtp_unavailable");
                }
                Err(e)
            }
        }
    }

    /// The reply's files, read from the attachment store. A file whose
    /// bytes are gone fails the reply visibly rather than sending it
    /// without the file.
    async fn reply_files(
        &self,
        message_id: i64,
    ) -> Result<Vec<crate::channels::email::smtp::OutFile>, SendError> {
        let files = self
            .store
            .message_files(message_id)
            .await
            .map_err(retry_store)?;
        let mut out = Vec::with_capacity(files.len());
        for (meta, sha) in files {
            let data = self.attachments.read(&sha).await.map_err(|e| {
                tracing::error!(attachment_id = meta.id, error = %e, "a reply's file is missing");
                SendError::Permanent {
                    code: "attachment_missing".into(),
                    message: format!("the file {:?} could not be read", meta.filename),
                }
            })?;
            out.push(crate::channels::email::smtp::OutFile {
                filename: meta.filename,
                content_type: meta.content_type,
                data,
            });
        }
        Ok(out)
    }

    /// One fresh public link per file of the reply, for Twilio to fetch.
    async fn media_urls(&self, message_id: i64) -> Result<Vec<String>, SendError> {
        let files = self
            .store
            .message_files(message_id)
            .await
            .map_err(retry_store)?;
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let Some(base) = &self.media_base else {
            return Err(SendError::Permanent {
                code: "media_unavailable".into(),
                message: "files cannot be sent by SMS without a public_url".into(),
            });
        };
        let mut urls = Vec::with_capacity(files.len());
        for (meta, _) in files {
            let token = self
                .store
                .create_media_link(meta.id, MEDIA_LINK_TTL)
                .await
                .map_err(retry_store)?;
            urls.push(format!("{base}{token}"));
        }
        Ok(urls)
    }

    async fn send_sms(&self, job: &OutboxJob) -> Result<(String, DeliveryStatus), SendError> {
        let (Some(client), Some(sender)) = (&self.twilio, &self.sender) else {
            return Err(SendError::Permanent {
                code: "channel_unavailable".into(),
                message: "the SMS channel is not configured".into(),
            });
        };
        let media = self.media_urls(job.message_id).await?;
        let sent = match client
            .send(
                &job.to,
                sender,
                &job.body,
                &media,
                self.status_callback.as_deref(),
            )
            .await
        {
            Ok(sent) => {
                self.health.success("twilio");
                sent
            }
            Err(e) => {
                // Per-recipient refusals (21211, 21610, …) say nothing about
                // the channel; being unreachable or unauthorised does.
                match &e {
                    SendError::Retryable { code, .. } => self.health.failure(
                        "twilio",
                        &code
                            .as_ref()
                            .map(|c| format!("twilio_{c}"))
                            .unwrap_or_else(|| "twilio_unreachable".into()),
                    ),
                    SendError::Permanent { code, .. }
                        if matches!(code.as_str(), "20003" | "401" | "403" | "20404") =>
                    {
                        self.health.failure("twilio", &format!("twilio_{code}"))
                    }
                    SendError::Permanent { .. } => {}
                }
                return Err(e);
            }
        };
        // Twilio answers `queued` or `accepted`: the message is in its hands.
        let status = twilio::map_status(&sent.status)
            .and_then(DeliveryStatus::parse)
            .filter(|s| DeliveryStatus::Sending.may_become(*s))
            .unwrap_or(DeliveryStatus::Sending);
        Ok((sent.sid, status))
    }
}
