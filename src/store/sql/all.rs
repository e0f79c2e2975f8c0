// Shared SQL for both backends. This file, and through it one file per
// resource beside it, is `include!`d twice, once by `sqlite.rs` and once by
// `postgres.rs`, each of which defines `Db` and the dialect macros
// (`for_update!`, `skip_locked!`) before including it. The text is written
// once; the compiler type-checks it once per backend, with that backend's
// own encoders and decoders. See `store/mod.rs` for why. All the files share
// one module (`q`), so the imports below serve them all.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::domain::{
    self, Channel, ContactKind, DeliveryStatus, EventType, IssueState, IssueStatus, MessageKind,
    Resolution, Role, ThreadingRule,
};
use crate::store::StoreError;
use crate::store::model::*;

pub type Conn = <Db as sqlx::Database>::Connection;

/// The longest preview of a message shown in the issue list.
const PREVIEW_CHARS: usize = 140;

include!("staff.rs");
include!("issues.rs");
include!("messages.rs");
include!("replies.rs");
include!("customers.rs");
include!("ingest.rs");
include!("outbox.rs");
include!("rejected.rs");
include!("notifications.rs");
include!("jobs.rs");
include!("email.rs");
include!("merge.rs");
include!("attachments.rs");
include!("broadcasts.rs");
include!("mailboxes.rs");
