//! Notification preferences, in-app notifications, watching, and the live event log.

use super::*;

impl Store {
    /// A staff member's whole preference matrix.
    pub async fn preferences(
        &self,
        staff: &Staff,
    ) -> Result<std::collections::BTreeMap<NotifyEvent, Cell>, StoreError> {
        let overrides = read!(self, |c, q| q::pref_overrides(c, staff.id).await)?;
        Ok(domain::notify::matrix(staff.role, &overrides))
    }

    /// Changes some cells; returns the whole matrix.
    pub async fn set_preferences(
        &self,
        staff: &Staff,
        changes: &[(NotifyEvent, Option<bool>, Option<bool>)],
    ) -> Result<std::collections::BTreeMap<NotifyEvent, Cell>, StoreError> {
        write_tx!(self, |c, q| {
            let current =
                domain::notify::matrix(staff.role, &q::pref_overrides(c, staff.id).await?);
            for (event, in_app, email) in changes {
                let old = current[event];
                let cell = Cell {
                    in_app: in_app.unwrap_or(old.in_app),
                    email: email.unwrap_or(old.email),
                };
                q::set_pref(c, staff.id, *event, cell).await?;
            }
            Ok(domain::notify::matrix(
                staff.role,
                &q::pref_overrides(c, staff.id).await?,
            ))
        })
    }

    /// The in-app feed, newest first, and the unread count.
    pub async fn notifications(
        &self,
        staff_id: i64,
        unread_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<NotificationView>, i64), StoreError> {
        read!(self, |c, q| {
            let list = q::list_notifications(c, staff_id, unread_only, before, limit).await?;
            let unread = q::unread_notifications(c, staff_id).await?;
            Ok((list, unread))
        })
    }

    pub async fn notification(&self, id: i64) -> Result<Option<NotificationView>, StoreError> {
        read!(self, |c, q| q::notification(c, id).await)
    }

    /// Marks some (or, with `None`, all) of a person's notifications read;
    /// returns the unread count left.
    pub async fn mark_notifications_read(
        &self,
        staff_id: i64,
        ids: Option<&[i64]>,
    ) -> Result<i64, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::mark_notifications_read(c, staff_id, ids, now).await?;
            q::unread_notifications(c, staff_id).await
        })
    }

    /// (unread notifications, open issues with unread messages).
    pub async fn badges(&self, staff_id: i64) -> Result<(i64, i64), StoreError> {
        read!(self, |c, q| Ok((
            q::unread_notifications(c, staff_id).await?,
            q::unread_issues(c, staff_id).await?
        )))
    }

    /// Starts or stops watching an issue.
    pub async fn watch(
        &self,
        issue_id: i64,
        staff_id: i64,
        on: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::set_watch(c, issue_id, staff_id, on, now).await?;
            q::watchers(c, issue_id).await
        })
    }

    /// Live events after `after` visible to `staff_id` (`None`: all).
    pub async fn stream_since(
        &self,
        after: i64,
        staff_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StreamRow>, StoreError> {
        read!(self, |c, q| q::stream_since(c, after, staff_id, limit)
            .await)
    }

    /// The newest live event id.
    pub async fn stream_head(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::stream_head(c).await)
    }

    /// Drops live events older than `before` (they are past replaying).
    pub async fn purge_stream(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_stream(c, before).await)
    }
}
