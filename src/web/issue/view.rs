//! What the issue page's templates show, computed here so the templates
//! hold no rules: which buttons (`domain::state::offered`), who may edit a
//! comment (`domain::state::may_change_comment`), where the "New messages"
//! line goes (the same rule as the API's `unread`), and every label.
//!
//! The header (`Head`) and the timeline rows (`Row`) are rendered by their
//! own partial templates, which the page includes and the live fragments
//! (`/issues/{id}/head`, `/issues/{id}/timeline`) render alone, so a live
//! update is the very same markup as a fresh page.

use askama::Template;
use chrono::{DateTime, Utc};

use crate::domain::state::{self, Actor, IssueState, Offer};
use crate::domain::{Channel, ContactKind, DeliveryStatus, IssueStatus, MessageKind, Resolution};
use crate::store::{
    AttachmentView, CustomerView, IssueView, MessageView, RefusedAttachment, Staff,
};

/// The viewer as the rules see them.
pub fn actor(s: &Staff) -> Actor {
    Actor {
        id: s.id,
        role: s.role,
    }
}

/// An issue's state as the state machine reads it.
pub fn issue_state(i: &IssueView) -> IssueState {
    IssueState {
        status: i.status,
        assignee_id: i.assignee_id,
        resolution: i.resolution,
        closed_by: i.closed_by.as_ref().map(|p| p.id),
    }
}

/// `2024-05-01 14:03 UTC`, the same for every viewer (no time zones on
/// the server); the `<time>` element carries the exact instant.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The status word and its colour class (SPEC §9: unassigned red,
/// assigned blue with the assignee, closed green with who closed it).
pub fn status_line(i: &IssueView) -> (&'static str, String) {
    match i.status {
        IssueStatus::Unassigned => ("unassigned", "Unassigned".to_string()),
        IssueStatus::Assigned => (
            "assigned",
            match &i.assignee {
                Some(a) => format!("Assigned to {}", a.name),
                None => "Assigned".to_string(),
            },
        ),
        IssueStatus::Closed => {
            let word = match i.resolution {
                Some(Resolution::Resolved) => "Resolved",
                _ => "Closed",
            };
            (
                "closed",
                match &i.closed_by {
                    Some(p) => format!("{word} by {}", p.name),
                    None => format!("{word} by the system"),
                },
            )
        }
    }
}

pub fn channel_word(c: Channel) -> &'static str {
    match c {
        Channel::Sms => "SMS",
        Channel::Email => "Email",
    }
}

/// The header alone: the `/issues/{id}/head` fragment. The partial reads
/// `head`, as the page's own field is named.
#[derive(Template)]
#[template(path = "issue_head.html")]
pub struct HeadFragment {
    pub head: Head,
}

/// The page header and its buttons.
pub struct Head {
    pub id: i64,
    pub subject: String,
    pub status_class: &'static str,
    pub status_text: String,
    pub assignee: String,
    pub channel: &'static str,
    pub customer_id: i64,
    pub customer_name: String,
    pub offer: Offer,
    /// Open issues take replies (the script shows or hides the reply box
    /// when a live refresh changes this).
    pub open: bool,
    pub watching: bool,
    /// Active staff for the `Assignee` select.
    pub staff: Vec<StaffOption>,
    pub csrf: String,
}

impl Head {
    pub fn new(
        issue: &IssueView,
        viewer: &Staff,
        watching: bool,
        staff: &[Staff],
        csrf: &str,
    ) -> Head {
        let (status_class, status_text) = status_line(issue);
        Head {
            id: issue.id,
            subject: issue.subject.clone(),
            status_class,
            status_text,
            assignee: issue
                .assignee
                .as_ref()
                .filter(|_| issue.status == IssueStatus::Assigned)
                .map(|a| a.name.clone())
                .unwrap_or_else(|| "Nobody".to_string()),
            channel: channel_word(issue.channel),
            customer_id: issue.customer.id,
            customer_name: issue.customer.name.clone(),
            offer: state::offered(issue_state(issue), actor(viewer)),
            open: issue.status.is_open(),
            watching,
            staff: staff
                .iter()
                .filter(|s| s.active)
                .map(|s| StaffOption {
                    id: s.id,
                    name: s.name.clone(),
                    selected: issue.assignee_id == Some(s.id),
                })
                .collect(),
            csrf: csrf.to_string(),
        }
    }
}

/// One choice of the `Assignee` select.
pub struct StaffOption {
    pub id: i64,
    pub name: String,
    pub selected: bool,
}

/// A reply's delivery state.
pub struct DeliveryLine {
    /// `queued`, `sending`, `sent`, `delivered` or `failed` (CSS class).
    pub class: &'static str,
    pub label: &'static str,
    /// The provider's error text and code; empty unless failed.
    pub error: String,
}

/// One contact on View Customer.
pub struct ContactLine {
    pub kind: &'static str,
    pub value: String,
    pub opted_out: bool,
}

/// One timeline entry, ready to show.
pub struct Row {
    pub id: i64,
    /// `customer`, `reply`, `comment` or `event` (the CSS class).
    pub kind: &'static str,
    pub author: String,
    pub when: String,
    pub when_iso: String,
    pub body: String,
    pub channel: &'static str,
    /// The `Private` mark of comments.
    pub private: bool,
    pub edited: bool,
    /// Edit and Delete for this viewer.
    pub can_change: bool,
    pub delivery: Option<DeliveryLine>,
    pub images: Vec<AttachmentView>,
    pub documents: Vec<AttachmentView>,
    pub refused: Vec<RefusedAttachment>,
    /// The "New messages" line goes before this row.
    pub first_unread: bool,
}

fn delivery_label(s: DeliveryStatus) -> (&'static str, &'static str) {
    match s {
        DeliveryStatus::Queued => ("queued", "Queued"),
        DeliveryStatus::Sending => ("sending", "Sending"),
        DeliveryStatus::Sent => ("sent", "Sent"),
        DeliveryStatus::Delivered => ("delivered", "Delivered"),
        DeliveryStatus::Failed => ("failed", "Failed"),
    }
}

impl Row {
    pub fn new(m: MessageView, viewer: &Staff, now: DateTime<Utc>) -> Row {
        let kind = match m.kind {
            MessageKind::Customer => "customer",
            MessageKind::Reply => "reply",
            MessageKind::Comment => "comment",
            MessageKind::Event => "event",
        };
        let can_change = m.kind == MessageKind::Comment
            && state::may_change_comment(m.author.id, m.created_at, actor(viewer), now).is_ok();
        let delivery = m.delivery.as_ref().map(|d| {
            let (class, label) = delivery_label(d.status);
            let error = d
                .error
                .as_ref()
                .map(|e| format!("{} (code {})", e.message, e.code))
                .unwrap_or_default();
            DeliveryLine {
                class,
                label,
                error,
            }
        });
        let (images, documents) = m
            .attachments
            .into_iter()
            .partition(|a| crate::attachments::is_image(&a.content_type));
        Row {
            id: m.id,
            kind,
            author: m.author.name,
            when: when(m.created_at),
            when_iso: when_iso(m.created_at),
            body: m.body,
            channel: m.channel.map(channel_word).unwrap_or(""),
            private: m.kind == MessageKind::Comment,
            edited: m.edited_at.is_some(),
            can_change,
            delivery,
            images,
            documents,
            refused: m.refused_attachments,
            first_unread: false,
        }
    }
}

/// Rows for messages, with the "New messages" line before the first one
/// the viewer had not read: newer than their read marker and not written
/// by themselves (the API's `unread` rule). `marker` is `None` when no
/// line is wanted (live fragments, older pages).
pub fn rows(
    messages: Vec<MessageView>,
    viewer: &Staff,
    marker: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Row> {
    let first_unread = marker.and_then(|up_to| {
        messages
            .iter()
            .find(|m| m.id > up_to && !(m.author.kind == "staff" && m.author.id == Some(viewer.id)))
            .map(|m| m.id)
    });
    messages
        .into_iter()
        .map(|m| {
            let unread = Some(m.id) == first_unread;
            let mut r = Row::new(m, viewer, now);
            r.first_unread = unread;
            r
        })
        .collect()
}

/// Timeline rows alone: the `/issues/{id}/timeline` fragment.
#[derive(Template)]
#[template(path = "issue_rows.html")]
pub struct RowsFragment {
    pub rows: Vec<Row>,
    pub csrf: String,
}

/// A past issue on View Customer.
pub struct PastIssue {
    pub id: i64,
    pub subject: String,
    pub status_class: &'static str,
    pub status_text: String,
}

/// View Customer's content, for the dialog and for `/customers/{id}`.
pub struct CustomerBlock {
    pub id: i64,
    pub name: String,
    pub contacts: Vec<ContactLine>,
    pub issues: Vec<PastIssue>,
    /// Admins get `Merge`.
    pub may_merge: bool,
    /// Where a merge returns to (the issue page the dialog is on).
    pub return_to: String,
}

impl CustomerBlock {
    pub fn new(c: CustomerView, viewer: &Staff, return_to: &str) -> CustomerBlock {
        CustomerBlock {
            id: c.id,
            name: c.name,
            contacts: c
                .contacts
                .into_iter()
                .map(|k| {
                    let kind = match k.kind {
                        ContactKind::Phone => "Phone",
                        ContactKind::Email => "Email",
                    };
                    ContactLine {
                        kind,
                        value: k.value,
                        opted_out: k.opted_out,
                    }
                })
                .collect(),
            issues: c
                .issues
                .iter()
                .map(|i| {
                    let (status_class, status_text) = status_line(i);
                    PastIssue {
                        id: i.id,
                        subject: i.subject.clone(),
                        status_class,
                        status_text,
                    }
                })
                .collect(),
            may_merge: viewer.role == crate::domain::Role::Admin,
            return_to: return_to.to_string(),
        }
    }
}
