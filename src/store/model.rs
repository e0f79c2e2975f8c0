//! What the store hands out: rows in the exact JSON shapes of SPEC §4.1.
//!
//! I let the store return API-shaped values instead of raw rows plus a
//! mapping layer in `http/`: the shapes are the contract, there is exactly
//! one of each, and keeping them next to the SQL that fills them means a
//! new column cannot be forgotten in one of two places.
//!
//! For the same reason the OpenAPI schemas are derived here (`ToSchema`),
//! under the names the document uses (`Issue`, `Message`, `Customer`, …):
//! a field added to a view shows up in `/api/openapi.json` by itself.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Channel, ContactKind, EventType, IssueStatus, MessageKind, Resolution, Role, ThreadingRule,
};

/// A staff member.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Staff {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// `{id, name}` of a person.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct PersonRef {
    pub id: i64,
    pub name: String,
}

/// The customer as shown on an issue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct CustomerRef {
    pub id: i64,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// An issue, as listed and as shown alone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Issue)]
pub struct IssueView {
    pub id: i64,
    pub status: IssueStatus,
    pub subject: String,
    pub channel: Channel,
    pub customer_id: i64,
    pub customer: CustomerRef,
    pub assignee_id: Option<i64>,
    pub assignee: Option<PersonRef>,
    pub resolution: Option<Resolution>,
    pub closed_by: Option<PersonRef>,
    pub previous_issue_id: Option<i64>,
    pub ack_only: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_message_preview: Option<String>,
    pub message_count: i64,
    pub unread: bool,
}

/// Issues per status, honouring every list filter but `status`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, ToSchema)]
pub struct IssueCounts {
    pub unassigned: i64,
    pub assigned: i64,
    pub closed: i64,
}

/// Who wrote a timeline entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Author {
    /// `customer`, `staff` or `system`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: Option<i64>,
    pub name: String,
}

/// A provider's error on a failed delivery.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct DeliveryError {
    pub code: String,
    pub message: String,
}

/// Delivery state of a reply.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Delivery {
    pub status: crate::domain::DeliveryStatus,
    pub error: Option<DeliveryError>,
}

/// The `event` object of an event message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = MessageEvent)]
pub struct EventView {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub actor: Option<PersonRef>,
}

/// A stored attachment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentView {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

/// An attachment kept out of the issue, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct RefusedAttachment {
    pub filename: String,
    pub reason: String,
}

/// One entry in an issue's timeline.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    pub id: i64,
    pub issue_id: i64,
    pub kind: MessageKind,
    pub channel: Option<Channel>,
    pub author: Author,
    pub body: String,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub attachments: Vec<AttachmentView>,
    pub refused_attachments: Vec<RefusedAttachment>,
    pub threading_rule: Option<ThreadingRule>,
    pub delivery: Option<Delivery>,
    pub event: Option<EventView>,
}

/// A contact on the View Customer page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = CustomerContact)]
pub struct ContactView {
    pub kind: ContactKind,
    pub value: String,
    pub opted_out: bool,
}

/// View Customer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerView {
    pub id: i64,
    pub name: String,
    pub contacts: Vec<ContactView>,
    pub issues: Vec<IssueView>,
}

/// An entry of the rejected-inbound log.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Rejected {
    pub id: i64,
    /// `mail` or `webhook`.
    pub kind: String,
    pub reason: String,
    /// Where it came from (a webhook's client address), when repeats of
    /// it are grouped; `null` for mail, each of which is its own row.
    pub source: Option<String>,
    /// How many times this was rejected: repeats of the same reason from
    /// the same source within an hour add to one row.
    pub repeats: i64,
    pub received_at: DateTime<Utc>,
    /// The latest repeat (equal to `received_at` for a single one).
    pub last_received_at: Option<DateTime<Utc>>,
    pub detail: serde_json::Value,
}

/// A normalised inbound message from any channel, ready for §3.1.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub channel: Channel,
    /// `MessageSid`, `Message-ID`, or a content hash.
    pub external_id: String,
    pub sender: crate::domain::Contact,
    /// Display name, if the channel carries one.
    pub sender_name: Option<String>,
    /// Email subject (`None` for SMS).
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub raw: Option<Vec<u8>>,
    /// `In-Reply-To` first, then `References` newest first.
    pub references: Vec<String>,
    /// Auto-replies and bounces (SPEC §3.3).
    pub is_automated: bool,
    pub received_at: DateTime<Utc>,
    /// Media to fetch in the background (MMS): (url, content type).
    pub media: Vec<(String, String)>,
    /// The IMAP mailbox (config name) an email came in on.
    pub mailbox: Option<String>,
    /// The raw `References` header, kept for threading our replies.
    pub references_header: Option<String>,
    /// An issue named by one of our own Message-IDs in the references,
    /// for when the referenced message itself is not stored.
    pub referenced_issue: Option<i64>,
    /// A bounce (recorded as a `bounce` event rather than `auto_reply`).
    pub is_bounce: bool,
    /// Email attachments, already saved as files (or refused with the
    /// reason): recorded in the message's own transaction, so a crash never
    /// leaves a stored message without its attachments.
    pub attachments: Vec<NewAttachment>,
}

/// An attachment to record with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// The stored file's content hash; `None` when refused.
    pub sha256: Option<String>,
    /// Why it was not stored (type, size, count).
    pub refused: Option<String>,
}

/// The ingest policy (a domain type), built from the configuration here.
pub use crate::domain::ingest::IngestOptions;

impl IngestOptions {
    /// The ingest options a configuration asks for.
    pub fn from_config(c: &crate::config::Config) -> IngestOptions {
        let mut own: Vec<String> = c.imap.iter().map(|m| m.address().to_lowercase()).collect();
        if let Ok(m) = c.smtp.from.parse::<lettre::message::Mailbox>() {
            own.push(m.email.to_string().to_lowercase());
        }
        if let Some(from) = &c.twilio.from {
            own.push(from.clone());
        }
        IngestOptions {
            reopen_window: c.threading.reopen_window.0,
            ack_words: c.threading.ack_words.clone(),
            auto_resolve_acks: c.threading.auto_resolve_acks,
            auto_ack: c
                .auto_ack
                .enabled
                .then(|| (c.auto_ack.text.clone(), c.auto_ack.max_per_hour)),
            own_addresses: own,
        }
    }
}

/// What ingest did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored before (a provider retry or an IMAP re-fetch).
    Duplicate { message_id: i64, issue_id: i64 },
    /// Stored now.
    Stored {
        message_id: i64,
        issue_id: i64,
        rule: ThreadingRule,
        opened: bool,
    },
    /// An automated message recorded as an event on the issue it names.
    RecordedAutomated { message_id: i64, issue_id: i64 },
    /// An automated message that names no issue.
    DroppedAutomated,
}

/// The list filters of `GET /api/issues`.
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    /// `open` when not given.
    pub status: Option<StatusFilter>,
    pub assignee: Option<AssigneeFilter>,
    pub q: Option<String>,
    pub customer: Option<i64>,
    pub limit: i64,
    pub cursor: Option<(DateTime<Utc>, i64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    Is(IssueStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    None,
    Staff(i64),
}

/// A staff request on an issue's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueAction {
    Take,
    Assign(i64),
    Unassign,
    Close,
    Resolve,
    Reopen,
}

/// A reply or staff-initiated first message waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: i64,
    pub task: OutboxTask,
    pub attempts: i64,
    /// The reply or the inbound message (media); 0 for a job of no message.
    pub message_id: i64,
    pub issue_id: i64,
    pub channel: Channel,
    pub to: String,
    pub body: String,
}

impl OutboxJob {
    /// The job's kind, as metrics and logs name it: a reply by its channel.
    pub fn kind(&self) -> &'static str {
        match self.task {
            OutboxTask::Reply => self.channel.as_str(),
            _ => self.task.stored_kind(),
        }
    }
}

/// What an outbox item does: its `kind` column and, for every kind but a
/// reply, its parameters from the `payload` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxTask {
    /// Send the message (a reply or an acknowledgement) over its channel.
    Reply,
    /// Download one MMS media item of an inbound message.
    Media(MediaFetch),
    /// Send one broadcast recipient their copy.
    Broadcast { recipient_id: i64 },
    /// A plain email to a staff member: the digest, or a sign-in link.
    StaffMail(StaffMail),
}

/// The parameters of a media download.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaFetch {
    pub url: String,
    pub content_type: String,
    /// Its position among the message's media (for the file name).
    pub index: usize,
}

/// A plain email to one staff member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffMail {
    pub staff_id: i64,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The one-click unsubscribe link (digests).
    #[serde(default)]
    pub unsubscribe: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BroadcastPayload {
    recipient_id: i64,
}

impl OutboxTask {
    /// The `kind` column: a reply's is its channel, which `from_row` reads
    /// back as `Reply`.
    pub fn stored_kind(&self) -> &'static str {
        match self {
            OutboxTask::Reply => "reply",
            OutboxTask::Media(_) => "media",
            OutboxTask::Broadcast { .. } => "broadcast",
            // Named for the first mail it carried; kept for stored rows.
            OutboxTask::StaffMail(_) => "digest",
        }
    }

    /// The `payload` column (`None` for a reply).
    pub fn payload(&self) -> Option<String> {
        let json = match self {
            OutboxTask::Reply => return None,
            OutboxTask::Media(m) => serde_json::to_string(m),
            OutboxTask::Broadcast { recipient_id } => serde_json::to_string(&BroadcastPayload {
                recipient_id: *recipient_id,
            }),
            OutboxTask::StaffMail(m) => serde_json::to_string(m),
        };
        Some(json.expect("plain structs serialize"))
    }

    /// Reads a stored item; an unknown kind or a payload that does not fit
    /// it is an error that says which.
    pub fn from_row(kind: &str, payload: Option<&str>) -> Result<OutboxTask, String> {
        fn parse<T: serde::de::DeserializeOwned>(kind: &str, p: Option<&str>) -> Result<T, String> {
            let p = p.ok_or_else(|| format!("{kind} item without a payload"))?;
            serde_json::from_str(p).map_err(|e| format!("unreadable {kind} payload: {e}"))
        }
        match kind {
            "sms" | "email" | "reply" => Ok(OutboxTask::Reply),
            "media" => parse(kind, payload).map(OutboxTask::Media),
            "broadcast" => {
                parse::<BroadcastPayload>(kind, payload).map(|b| OutboxTask::Broadcast {
                    recipient_id: b.recipient_id,
                })
            }
            "digest" => parse(kind, payload).map(OutboxTask::StaffMail),
            other => Err(format!("unknown outbox kind {other:?}")),
        }
    }
}

/// What `POST /api/issues` asks for.
#[derive(Debug, Clone)]
pub struct NewIssue {
    pub customer_id: Option<i64>,
    pub contact: Option<crate::domain::Contact>,
    pub subject: Option<String>,
    pub body: String,
}

/// An in-app notification.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Notification)]
pub struct NotificationView {
    pub id: i64,
    pub kind: String,
    pub issue_id: Option<i64>,
    pub message_id: Option<i64>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
    /// The email copy, when the recipient's preferences asked for one.
    pub email: Option<EmailDelivery>,
}

/// Delivery of a notification's email copy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct EmailDelivery {
    /// `pending`, `sent` or `failed`.
    pub status: &'static str,
    pub error: Option<String>,
}

/// One row of the live event log behind `GET /api/stream`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StreamRow {
    pub id: i64,
    /// `issue`, `message` or `notification`.
    pub kind: String,
    /// Only this staff member may see it (notifications); `None`: everyone.
    pub staff_id: Option<i64>,
    pub issue_id: Option<i64>,
    pub ref_id: Option<i64>,
    /// When the change was written (for latency metrics).
    pub created_at: DateTime<Utc>,
}

/// A scheduled job's record, as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct JobState {
    pub name: String,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub runs: i64,
    pub failures: i64,
}

/// What an email reply needs to thread correctly.
#[derive(Debug, Clone)]
pub struct EmailContext {
    pub issue_id: i64,
    pub subject: String,
    /// The IMAP mailbox (config name) the issue came in on.
    pub mailbox: Option<String>,
    /// Our Message-ID for the reply, once assigned.
    pub external_id: Option<String>,
    /// The customer's latest email before this reply: (Message-ID, References).
    pub parent: Option<(String, Option<String>)>,
    /// A staff-initiated issue's first message.
    pub first_message: bool,
    /// Written by the system (an auto-acknowledgement), not a person.
    pub automatic: bool,
}

/// Coalesced notification emails for one person and one issue.
#[derive(Debug, Clone)]
pub struct EmailBatch {
    pub staff_id: i64,
    pub staff_email: String,
    pub staff_name: String,
    pub issue_id: Option<i64>,
    pub ids: Vec<i64>,
    pub texts: Vec<String>,
    pub attempts: i64,
    /// When the oldest of them was written (for the latency metric).
    pub oldest: Option<DateTime<Utc>>,
}

/// One recipient of a broadcast.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow, ToSchema)]
pub struct BroadcastRecipient {
    pub id: i64,
    pub customer_id: i64,
    pub channel: Option<String>,
    pub contact: Option<String>,
    pub status: String,
    pub error: Option<String>,
}

/// A broadcast with its progress.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Broadcast)]
pub struct BroadcastView {
    pub id: i64,
    pub body: String,
    pub subject: Option<String>,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    /// `sending` while any recipient is queued, else `done`.
    pub status: &'static str,
    pub total: i64,
    pub counts: std::collections::BTreeMap<String, i64>,
    pub recipients: Vec<BroadcastRecipient>,
}

/// What the worker needs to send to one recipient.
#[derive(Debug, Clone)]
pub struct BroadcastDelivery {
    pub recipient_id: i64,
    pub channel: Channel,
    pub contact: String,
    pub body: String,
    pub subject: Option<String>,
    pub status: String,
}

/// An open issue as the digest email lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DigestIssue {
    pub id: i64,
    pub subject: String,
    pub customer: String,
    pub assignee_id: Option<i64>,
    pub last_message_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outbox_task_reads_back_as_it_was_written() {
        let tasks = [
            OutboxTask::Media(MediaFetch {
                url: "https://x/1".into(),
                content_type: "image/png".into(),
                index: 2,
            }),
            OutboxTask::Broadcast { recipient_id: 7 },
            OutboxTask::StaffMail(StaffMail {
                staff_id: 3,
                to: "a@example.com".into(),
                subject: "Digest".into(),
                body: "…".into(),
                unsubscribe: None,
            }),
        ];
        for t in tasks {
            let back = OutboxTask::from_row(t.stored_kind(), t.payload().as_deref());
            assert_eq!(back, Ok(t));
        }
        assert_eq!(OutboxTask::from_row("sms", None), Ok(OutboxTask::Reply));
    }

    #[test]
    fn an_unreadable_outbox_item_says_what_is_wrong() {
        assert!(
            OutboxTask::from_row("fax", None)
                .unwrap_err()
                .contains("unknown outbox kind")
        );
        assert!(
            OutboxTask::from_row("media", None)
                .unwrap_err()
                .contains("without a payload")
        );
        let bad = OutboxTask::from_row("broadcast", Some("{\"recipient\": 1}")).unwrap_err();
        assert!(bad.contains("unreadable broadcast payload"), "{bad}");
    }
}
