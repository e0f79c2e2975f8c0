//! Raw email in → SPEC §3.1 ingest, or the rejected-mail log.
//!
//! The IMAP worker hands every fetched message here and acknowledges it on
//! the server only when this returns `Ok`: after the message is committed,
//! or after it was recorded in the rejected log with its reason (mail that
//! cannot be ingested is never silently dropped and never blocks the
//! mailbox). An `Err` means nothing was stored and the message will be
//! fetched again; dedupe on Message-ID (or a content hash) makes that safe.

use serde_json::json;

use super::parse::{self, ParseError, ParsedMail};
use crate::attachments::{Attachments, sanitize_filename};
use crate::domain::{Channel, Contact, EmailAddress};
use crate::store::{Inbound, IngestOptions, IngestOutcome, NewAttachment, Store};

/// The largest message we ingest.
pub const MAX_MAIL_BYTES: usize = 50 * 1024 * 1024;

/// Everything ingest needs; cheap to clone.
#[derive(Clone)]
pub struct MailIngest {
    pub store: Store,
    pub attachments: Attachments,
    pub options: IngestOptions,
    pub metrics: crate::metrics::Metrics,
}

fn detail(mailbox: &str, uid: u32, size: usize, mail: Option<&ParsedMail>) -> serde_json::Value {
    json!({
        "mailbox": mailbox,
        "uid": uid,
        "size": size,
        "from": mail.and_then(|m| m.from_address.clone()),
        "subject": mail.map(|m| m.subject.clone()),
        "message_id": mail.and_then(|m| m.message_id.clone()),
    })
}

impl MailIngest {
    async fn reject(
        &self,
        mailbox: &str,
        uid: u32,
        reason: &str,
        detail: serde_json::Value,
    ) -> Result<(), String> {
        self.metrics.rejected("mail", reason);
        tracing::warn!(mailbox, uid, reason, "mail rejected");
        self.store
            .record_rejected("mail", reason, &detail)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Ingests one raw message from `mailbox`.
    #[tracing::instrument(skip(self, raw), fields(size = raw.len()))]
    pub async fn ingest(&self, mailbox: &str, uid: u32, raw: Vec<u8>) -> Result<(), String> {
        if raw.len() > MAX_MAIL_BYTES {
            return self
                .reject(
                    mailbox,
                    uid,
                    "too_large",
                    detail(mailbox, uid, raw.len(), None),
                )
                .await;
        }
        let size = raw.len();
        let (raw, parsed) = parse::parse_off_thread(raw).await;
        let mail = match parsed {
            Ok(m) => m,
            Err(ParseError::NoSender) => {
                return self
                    .reject(mailbox, uid, "no_sender", detail(mailbox, uid, size, None))
                    .await;
            }
            Err(ParseError::Unparseable(why)) => {
                let mut d = detail(mailbox, uid, size, None);
                d["error"] = json!(why);
                return self.reject(mailbox, uid, "unparseable", d).await;
            }
        };
        // A bounce of one of our replies marks it failed.
        if let Some(b) = &mail.bounce
            && let Some(original) = &b.original_message_id
        {
            let code = b.status.clone().unwrap_or_else(|| "bounce".into());
            let text = b
                .diagnostic
                .clone()
                .unwrap_or_else(|| "the message bounced".into());
            match self.store.bounce_reply(original, &code, &text).await {
                Ok(Some(issue)) => tracing::info!(issue_id = issue, %code, "a reply bounced"),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let sender = match mail.from_address.as_deref().map(EmailAddress::parse) {
            Some(Ok(a)) => a,
            // Automated mail (bounces from MAILER-DAEMON) may lack a usable
            // sender; it was handled above as far as it can be.
            _ if mail.automated.is_some() => {
                let mut d = detail(mailbox, uid, size, Some(&mail));
                d["automated"] = json!(mail.automated.as_ref().map(|a| a.to_string()));
                return self
                    .reject(mailbox, uid, "automated_without_sender", d)
                    .await;
            }
            _ => {
                return self
                    .reject(
                        mailbox,
                        uid,
                        "invalid_sender",
                        detail(mailbox, uid, size, Some(&mail)),
                    )
                    .await;
            }
        };
        let mut references: Vec<String> = mail.in_reply_to.clone();
        references.extend(mail.references.iter().rev().cloned());
        if let Some(original) = mail
            .bounce
            .as_ref()
            .and_then(|b| b.original_message_id.clone())
        {
            references.insert(0, original);
        }
        let referenced_issue = references
            .iter()
            .find_map(|r| parse::issue_from_our_message_id(r));
        let external_id = match &mail.message_id {
            Some(id) => id.clone(),
            None => format!("sha256:{}", parse::content_hash(&mail)),
        };
        let body = if mail.visible_text.trim().is_empty() {
            mail.text.clone()
        } else {
            mail.visible_text.clone()
        };
        let attachments = self.save_attachments(&mail).await?;
        let inbound = Inbound {
            channel: Channel::Email,
            external_id,
            sender: Contact::Email(sender),
            sender_name: mail.from_name.clone(),
            subject: Some(mail.subject.clone()),
            body,
            html: mail.html.clone(),
            raw: Some(raw.clone()),
            references,
            is_automated: mail.automated.is_some(),
            received_at: crate::store::now(),
            media: Vec::new(),
            mailbox: Some(mailbox.to_string()),
            references_header: (!mail.references.is_empty() || !mail.in_reply_to.is_empty()).then(
                || {
                    let mut all = mail.references.clone();
                    for r in &mail.in_reply_to {
                        if !all.contains(r) {
                            all.push(r.clone());
                        }
                    }
                    all.join(" ")
                },
            ),
            referenced_issue,
            is_bounce: mail.bounce.is_some(),
            attachments,
        };
        let outcome = self
            .store
            .ingest(&inbound, &self.options)
            .await
            .map_err(|e| e.to_string())?;
        match outcome {
            IngestOutcome::Stored {
                message_id,
                issue_id,
                rule,
                ..
            } => {
                self.metrics.ingested("email", rule.as_str());
                tracing::info!(issue_id, message_id, rule = rule.as_str(), "email ingested");
            }
            IngestOutcome::Duplicate { issue_id, .. } => {
                self.metrics.ingested("email", "duplicate");
                tracing::info!(issue_id, "duplicate email acknowledged");
            }
            IngestOutcome::RecordedAutomated { issue_id, .. } => {
                self.metrics.ingested("email", "automated");
                tracing::info!(issue_id, "automated email recorded on its issue");
            }
            IngestOutcome::DroppedAutomated => {
                let mut d = detail(mailbox, uid, size, Some(&mail));
                d["automated"] = json!(mail.automated.as_ref().map(|a| a.to_string()));
                return self.reject(mailbox, uid, "automated", d).await;
            }
        }
        Ok(())
    }

    /// Saves the mail's attachments as files (SPEC §3.4), before the
    /// message is committed, and returns the rows to record with it;
    /// refusals (type, size, count) are rows too, with their reason. A
    /// file that cannot be written fails the whole mail, which is then not
    /// acknowledged and is fetched again later: an attachment is never
    /// lost to a full disk. Files are content-addressed, so a retry (or a
    /// crash before the commit) leaves at most an unreferenced file.
    async fn save_attachments(&self, mail: &ParsedMail) -> Result<Vec<NewAttachment>, String> {
        let mut out = Vec::with_capacity(mail.attachments.len());
        for (index, a) in mail.attachments.iter().enumerate() {
            let filename = sanitize_filename(&a.filename, &a.content_type);
            let refused =
                self.attachments
                    .refusal(&filename, &a.content_type, a.data.len() as u64, index);
            let sha256 = match refused {
                Some(_) => None,
                None => Some(
                    self.attachments
                        .save(&a.data)
                        .await
                        .map_err(|e| format!("saving attachment {filename:?}: {e}"))?,
                ),
            };
            out.push(NewAttachment {
                filename,
                content_type: a.content_type.clone(),
                size: a.data.len() as i64,
                sha256,
                refused,
            });
        }
        Ok(out)
    }
}

/// The IMAP worker's sink: ingest into the store, cursors in the database.
impl super::imap::MailSink for MailIngest {
    fn ingest(
        &self,
        mailbox: &str,
        uid: u32,
        raw: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send {
        let this = self.clone();
        let mailbox = mailbox.to_string();
        async move { MailIngest::ingest(&this, &mailbox, uid, raw).await }
    }

    fn cursor(
        &self,
        mailbox: &str,
    ) -> impl std::future::Future<Output = Result<Option<(u32, u32)>, String>> + Send {
        let store = self.store.clone();
        let mailbox = mailbox.to_string();
        async move {
            let c = store
                .mailbox_cursor(&mailbox)
                .await
                .map_err(|e| e.to_string())?;
            Ok(c.and_then(|(v, u)| Some((u32::try_from(v).ok()?, u32::try_from(u).ok()?))))
        }
    }

    fn set_cursor(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        last_uid: u32,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send {
        let store = self.store.clone();
        let mailbox = mailbox.to_string();
        async move {
            store
                .set_mailbox_cursor(&mailbox, i64::from(uidvalidity), i64::from(last_uid))
                .await
                .map_err(|e| e.to_string())
        }
    }

    fn claim(
        &self,
        mailbox: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl std::future::Future<Output = Result<bool, String>> + Send {
        let store = self.store.clone();
        let (mailbox, holder) = (mailbox.to_string(), holder.to_string());
        async move {
            store
                .claim_mailbox(&mailbox, &holder, ttl)
                .await
                .map_err(|e| e.to_string())
        }
    }

    fn release(&self, mailbox: &str, holder: &str) -> impl std::future::Future<Output = ()> + Send {
        let store = self.store.clone();
        let (mailbox, holder) = (mailbox.to_string(), holder.to_string());
        async move {
            if let Err(e) = store.release_mailbox(&mailbox, &holder).await {
                tracing::warn!(%mailbox, error = %e, "could not release the mailbox lease");
            }
        }
    }
}
