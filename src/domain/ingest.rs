//! What a customer's message does once threading has placed it: SPEC §3.1
//! to §3.8 and §5 as pure functions.
//!
//! The store runs ingest as one transaction: it dedupes and identifies the
//! sender, gathers the threading facts and asks `threading::decide` where
//! the message goes, then asks the functions here what follows: the new
//! issue's subject and whether it is only an acknowledgement (and so
//! resolved at once), the event text of an automated message or a reopen,
//! who hears about it, whether an acknowledgement goes back, and whether an
//! SMS keyword changes the opt-out. It applies their answers in the same
//! transaction. Nothing here reads or writes anything.

use super::notify::NotifyEvent;
use super::state::{IssueState, reopened, system_close};
use super::text::{self, OptKeyword};
use super::{Channel, EventType, IssueStatus, Resolution};

/// The configured ingest policy (SPEC §3 and the `[threading]`,
/// `[auto_ack]` sections).
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub reopen_window: std::time::Duration,
    pub ack_words: Vec<String>,
    pub auto_resolve_acks: bool,
    /// SPEC §3.8: `(text, max_per_hour)` when auto-acknowledgement is on.
    pub auto_ack: Option<(String, u32)>,
    /// Our own addresses: never auto-acknowledged (no loops with ourselves).
    pub own_addresses: Vec<String>,
}

/// The message, as far as the rules here care.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub channel: Channel,
    pub body: &'a str,
    /// The email subject (`None` for SMS).
    pub subject: Option<&'a str>,
    pub is_automated: bool,
    pub is_bounce: bool,
}

/// The sender's contact as it was before this message.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    /// The normalised address or number.
    pub value: &'a str,
    pub opted_out: bool,
}

/// An event recorded on an issue, with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub text: String,
}

/// An automated message (auto-reply, bounce) that names one of our issues
/// is recorded there as an event; it changes nothing else.
pub fn automated_event(a: &Arrival) -> Event {
    let head = if a.is_bounce {
        "Delivery failure report received"
    } else {
        "Automatic reply received"
    };
    Event {
        kind: if a.is_bounce {
            EventType::Bounce
        } else {
            EventType::AutoReply
        },
        text: match a.subject {
            Some(s) => format!("{head}: {s}"),
            None => head.to_string(),
        },
    }
}

/// The customer wrote again within the reopen window: the state the issue
/// returns to, and the event that says so.
pub fn customer_reopen(state: IssueState, assignee_active: bool) -> (IssueState, Event) {
    let event = Event {
        kind: EventType::Reopened,
        text: "The customer wrote again: issue reopened".into(),
    };
    (reopened(state, assignee_active), event)
}

/// A new issue opened by a customer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIssue {
    pub subject: String,
    /// Only an acknowledgement (`ok`, `thanks`): SPEC §3.7.
    pub ack_only: bool,
    /// Set when the policy resolves acknowledgements at once: the state
    /// the issue moves to, and the event that says so.
    pub resolved: Option<(IssueState, Event)>,
}

/// The subject and first decisions of an issue this message opens.
pub fn new_issue(a: &Arrival, opts: &IngestOptions) -> NewIssue {
    let subject = match (a.channel, a.subject) {
        (Channel::Email, Some(s)) => text::clean_subject(s),
        _ => text::sms_subject(a.body),
    };
    let ack_only = text::is_ack_only(a.body, &opts.ack_words);
    let resolved = (ack_only && opts.auto_resolve_acks)
        .then(|| system_close(IssueState::new_unassigned(), Resolution::Resolved))
        .flatten()
        .map(|to| {
            let event = Event {
                kind: EventType::Resolved,
                text: "Resolved automatically: the message was only an acknowledgement".into(),
            };
            (to, event)
        });
    NewIssue {
        subject,
        ack_only,
        resolved,
    }
}

/// SPEC §5: which event a stored customer message raises, given whether it
/// opened the issue and the issue's status after it. A closed issue (an
/// acknowledgement resolved at once) tells no one.
pub fn customer_notice(opened: bool, status: IssueStatus) -> Option<NotifyEvent> {
    match status {
        IssueStatus::Closed => None,
        _ if opened => Some(NotifyEvent::IssueOpened),
        IssueStatus::Assigned => Some(NotifyEvent::CustomerReplied),
        IssueStatus::Unassigned => Some(NotifyEvent::UnassignedActivity),
    }
}

/// The text of a customer-message notification.
pub fn customer_notice_text(
    event: NotifyEvent,
    issue_id: i64,
    channel: Channel,
    customer_name: &str,
    body: &str,
) -> String {
    let excerpt = super::notify::excerpt(body);
    match event {
        NotifyEvent::IssueOpened => {
            let channel = match channel {
                Channel::Sms => "SMS",
                Channel::Email => "email",
            };
            format!("[#{issue_id}] New {channel} from {customer_name}: {excerpt}")
        }
        _ => format!("[#{issue_id}] {customer_name} wrote: {excerpt}"),
    }
}

/// An acknowledgement to send, if the hourly limit allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack<'a> {
    template: &'a str,
    max_per_hour: u32,
}

impl Ack<'_> {
    /// Whether another acknowledgement may go to this recipient, given how
    /// many went in the past hour.
    pub fn allowed(&self, sent_in_last_hour: i64) -> bool {
        sent_in_last_hour < i64::from(self.max_per_hour)
    }

    /// The text, with `{issue}` filled in.
    pub fn text(&self, issue_id: i64) -> String {
        self.template.replace("{issue}", &issue_id.to_string())
    }
}

/// SPEC §3.8: one templated acknowledgement for a new issue, never to an
/// automated sender, to ourselves, to an opted-out number, for an SMS
/// keyword, or for an issue already closed.
pub fn auto_ack<'o>(
    a: &Arrival,
    sender: &Sender,
    opened: bool,
    status: IssueStatus,
    opts: &'o IngestOptions,
) -> Option<Ack<'o>> {
    let (template, max_per_hour) = opts.auto_ack.as_ref()?;
    let wanted = opened
        && !a.is_automated
        && status != IssueStatus::Closed
        && text::opt_keyword(a.body).is_none()
        && !opts
            .own_addresses
            .iter()
            .any(|o| o.eq_ignore_ascii_case(sender.value))
        && !(sender.opted_out && a.channel == Channel::Sms);
    wanted.then_some(Ack {
        template,
        max_per_hour: *max_per_hour,
    })
}

/// SPEC §3.6: an SMS `STOP` or `START` that changes the sender's opt-out:
/// the new value and the event that records it. `None` when the message is
/// no keyword or the contact is already in that state.
pub fn opt_change(a: &Arrival, sender: &Sender) -> Option<(bool, Event)> {
    if a.channel != Channel::Sms {
        return None;
    }
    let (want, kind, text) = match text::opt_keyword(a.body)? {
        OptKeyword::OptOut => (
            true,
            EventType::OptedOut,
            "The customer opted out of SMS (STOP)",
        ),
        OptKeyword::OptIn => (
            false,
            EventType::OptedIn,
            "The customer opted back in to SMS (START)",
        ),
    };
    (sender.opted_out != want).then(|| {
        (
            want,
            Event {
                kind,
                text: text.into(),
            },
        )
    })
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
