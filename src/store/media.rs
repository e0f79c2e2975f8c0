//! A reply's own files, and the short-lived public links that MMS sends
//! them by (Twilio fetches every `MediaUrl` itself, without credentials).
//! A link is a random token; only its SHA-256 is stored, as for API tokens.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{AttachmentView, Backend, Store, StoreError, now, postgres, sqlite};

impl Store {
    /// The files sent with a message (refused ones are never sent).
    pub async fn message_files(
        &self,
        message_id: i64,
    ) -> Result<Vec<(AttachmentView, String)>, StoreError> {
        read!(self, |c, q| q::message_files(c, message_id).await)
    }

    /// A new public link to an attachment, valid for `ttl`; returns the
    /// token (shown once, stored hashed).
    pub async fn create_media_link(
        &self,
        attachment_id: i64,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let token = crate::token::generate();
        let hash = crate::token::hash(&token);
        let now = now();
        let expires = now + ChronoDuration::from_std(ttl).unwrap_or(ChronoDuration::days(1));
        write_tx!(self, |c, q| q::insert_media_link(
            c,
            &hash,
            attachment_id,
            now,
            expires
        )
        .await)?;
        Ok(token)
    }

    /// The file behind a link, while it is valid.
    pub async fn media_link(
        &self,
        token: &str,
    ) -> Result<Option<(AttachmentView, String)>, StoreError> {
        let hash = crate::token::hash(token);
        let now = now();
        read!(self, |c, q| q::media_link(c, &hash, now).await)
    }

    /// Housekeeping: links past their time.
    pub async fn purge_media_links(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_media_links(c, now).await)
    }
}
