//! The store's side of the Issue Tracker page (SPEC §9): the unread
//! message count behind each row's red badge.
//!
//! The API's list says only whether an issue is `unread` for the caller;
//! the page shows how many messages are. I count them here, for the ids of
//! one page at once (a single grouped query, never one per row), so a page
//! of 20 rows costs one extra round trip whatever its contents.

use std::collections::HashMap;

use super::{Backend, Store, StoreError, postgres, sqlite};

/// The most ids one call counts (a page of the list is at most 100).
const MAX_IDS: usize = 200;

impl Store {
    /// Unread messages per issue for `staff_id`: customer messages, replies
    /// and comments (not events) after the person's read marker that they
    /// did not write themselves. Issues with none are absent from the map.
    pub async fn unread_counts(
        &self,
        staff_id: i64,
        issue_ids: &[i64],
    ) -> Result<HashMap<i64, i64>, StoreError> {
        if issue_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = &issue_ids[..issue_ids.len().min(MAX_IDS)];
        read!(self, |c, q| q::unread_counts(c, staff_id, ids).await)
    }
}
