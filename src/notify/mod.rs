//! Notifications: routing lives in `domain::notify`, rows are written by
//! the store in the transaction of the change, and `stream` fans the live
//! event log out to `GET /api/stream` subscribers; `email` sends the
//! coalesced notification emails and `digest` composes the scheduled
//! digest.

pub mod digest;
pub mod email;
pub mod stream;
