//! Notifications: routing lives in `domain::notify`, rows are written by
//! the store in the transaction of the change, and `stream` fans the live
//! event log out to `GET /api/stream` subscribers.
//!
//! Not built yet: email notifications (they need the SMTP sender of the
//! email channel). Preferences already record who wants email
//! (`notifications.email`), so the sender only has to pick those rows up.

pub mod email;
pub mod stream;
