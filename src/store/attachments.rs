//! Attachments, and the background jobs that fetch media.

use super::*;

impl Store {
    #[allow(clippy::too_many_arguments)]
    pub async fn add_attachment(
        &self,
        message_id: i64,
        filename: &str,
        content_type: &str,
        size: i64,
        sha256: Option<&str>,
        refused: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::add_attachment(
            c,
            message_id,
            filename,
            content_type,
            size,
            sha256,
            refused,
            now
        )
        .await)
    }

    /// (images, documents) shared in an issue.
    pub async fn issue_attachments(
        &self,
        issue_id: i64,
    ) -> Result<(Vec<AttachmentView>, Vec<AttachmentView>), StoreError> {
        read!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::issue_attachments(c, issue_id).await
        })
    }

    /// A stored attachment's metadata and content hash.
    pub async fn attachment(&self, id: i64) -> Result<(AttachmentView, String), StoreError> {
        read!(self, |c, q| q::attachment(c, id).await)?.ok_or(StoreError::NotFound("attachment"))
    }

    /// Active staff and the open issues, for the digest.
    pub async fn digest_data(&self) -> Result<(Vec<Staff>, Vec<DigestIssue>), StoreError> {
        read!(self, |c, q| {
            let staff = q::list_staff(c).await?;
            let open = q::open_issues_for_digest(c).await?;
            Ok((staff.into_iter().filter(|s| s.active).collect(), open))
        })
    }

    /// Queues plain emails to staff (digests, sign-in links), all in one
    /// transaction.
    pub async fn enqueue_staff_mail(&self, mails: &[StaffMail]) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            for m in mails {
                q::enqueue_task(c, &OutboxTask::StaffMail(m.clone()), None, now).await?;
            }
            Ok(())
        })
    }

    /// Finishes a non-reply outbox item (done, or failed with `error`).
    pub async fn outbox_finish_plain(
        &self,
        job: &OutboxJob,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        let state = if error.is_some() { "failed" } else { "done" };
        write_tx!(self, |c, q| q::outbox_finish(c, job.id, state, error, now)
            .await)
    }
}
