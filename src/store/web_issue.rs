//! The store's side of the issue page (SPEC §9, "Issue page", "View
//! Customer"): the few reads the JSON API never needed as separate calls,
//! and a reply that carries files.
//!
//! I keep them apart from `sql/` so the page's needs do not grow the
//! shared SQL file; each one is a thin composition of the shared queries
//! (`q::…`) with at most one small statement of its own, written once for
//! both backends (`$1` placeholders work on both).

use std::time::Duration;

use super::{Backend, MessageView, NewAttachment, Staff, Store, StoreError, now, postgres, sqlite};
use crate::domain::{Channel, Contact};

impl Store {
    /// The id of the newest message `staff_id` had read on an issue when
    /// they last marked it read (0: never). Read it *before* marking the
    /// issue read, to place the "New messages" line.
    pub async fn read_marker(&self, issue_id: i64, staff_id: i64) -> Result<i64, StoreError> {
        read!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            let up_to: Option<i64> = sqlx::query_scalar(
                "SELECT read_up_to FROM issue_reads WHERE issue_id = $1 AND staff_id = $2",
            )
            .bind(issue_id)
            .bind(staff_id)
            .fetch_optional(&mut *c)
            .await?;
            Ok(up_to.unwrap_or(0))
        })
    }

    /// Staff ids watching an issue (the same table `watch` writes).
    pub async fn watchers(&self, issue_id: i64) -> Result<Vec<i64>, StoreError> {
        read!(self, |c, q| q::watchers(c, issue_id).await)
    }

    /// The customer (after merges) owning a contact, if any.
    pub async fn customer_by_contact(&self, contact: &Contact) -> Result<Option<i64>, StoreError> {
        read!(self, |c, q| {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT customer_id FROM contacts WHERE kind = $1 AND value = $2",
            )
            .bind(contact.kind().as_str())
            .bind(contact.value())
            .fetch_optional(&mut *c)
            .await?;
            match found {
                Some(id) => q::resolve_customer(c, id).await,
                None => Ok(None),
            }
        })
    }

    /// Timeline entries newer than `after`, oldest first (at most `limit`:
    /// the live page asks for what arrived since its last row).
    pub async fn messages_after(
        &self,
        issue_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (page, _) = self.messages(issue_id, None, limit).await?;
        Ok(page.into_iter().filter(|m| m.id > after).collect())
    }

    /// `reply` with files: the reply, its outbox row and its attachment
    /// rows in one transaction, so a reply is never shown without the files
    /// it was sent with. The files are already saved (content-addressed)
    /// and checked against the attachment rules by the caller.
    pub async fn reply_with_files(
        &self,
        issue_id: i64,
        author: &Staff,
        body: &str,
        channel: Option<Channel>,
        files: &[NewAttachment],
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::create_reply(c, issue_id, author, body, channel, now).await?;
            for f in files {
                q::add_attachment(
                    c,
                    id,
                    &f.filename,
                    &f.content_type,
                    f.size,
                    f.sha256.as_deref(),
                    f.refused.as_deref(),
                    now,
                )
                .await?;
            }
            q::message_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }
}
