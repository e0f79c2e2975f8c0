//! Where an inbound message goes: SPEC §3.1 rules 3–5 as one pure function.
//!
//! The store gathers the facts (which issue the headers or a `[#N]` token
//! name, the customer's open issue, their latest closed one) inside the
//! ingest transaction and asks `decide`. Dedupe (rule 1) and identifying the
//! customer (rule 2) happen before, because they need the database.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{IssueStatus, ThreadingRule};

/// An issue that a message points at, with what the rules need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueRef {
    pub id: i64,
    pub customer_id: i64,
    pub status: IssueStatus,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Everything `decide` reads.
#[derive(Debug, Clone)]
pub struct ThreadingFacts {
    /// The sender, already identified.
    pub customer_id: i64,
    /// The issue that holds a message named in `In-Reply-To`/`References`.
    pub by_reference: Option<IssueRef>,
    /// The issue named by a `[#N]` subject token, if it exists.
    pub by_token: Option<IssueRef>,
    /// The customer's open issue (at most one, by the invariant).
    pub open_issue: Option<i64>,
    /// The customer's most recently closed issue.
    pub latest_closed: Option<IssueRef>,
    /// Auto-replies and bounces never open or reopen anything.
    pub is_automated: bool,
    pub now: DateTime<Utc>,
    pub reopen_window: Duration,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Append to an open issue; status and assignee do not change.
    Append { issue_id: i64, rule: ThreadingRule },
    /// Reopen the customer's recently closed issue and append there.
    Reopen { issue_id: i64 },
    /// Open a new unassigned issue.
    Open { previous_issue_id: Option<i64> },
    /// An automated message that names an issue: record it there as an
    /// event, change nothing else.
    RecordAutomated { issue_id: i64 },
    /// An automated message that names no issue: nothing to attach it to.
    DropAutomated,
}

/// Applies rules 3–5 in order.
pub fn decide(f: &ThreadingFacts) -> Placement {
    // A token only counts when the sender is that issue's customer: a
    // stranger quoting `[#N]` must not land on someone else's issue.
    let token = f.by_token.filter(|t| t.customer_id == f.customer_id);

    if f.is_automated {
        return match f.by_reference.or(token) {
            Some(r) => Placement::RecordAutomated { issue_id: r.id },
            None => Placement::DropAutomated,
        };
    }

    // Rule 3: thread by reference, then by token.
    if let Some(r) = f.by_reference.filter(|r| r.status.is_open()) {
        return Placement::Append {
            issue_id: r.id,
            rule: ThreadingRule::Reference,
        };
    }
    if let Some(t) = token.filter(|t| t.status.is_open()) {
        return Placement::Append {
            issue_id: t.id,
            rule: ThreadingRule::Token,
        };
    }
    // Rule 4: the customer's open issue.
    if let Some(id) = f.open_issue {
        return Placement::Append {
            issue_id: id,
            rule: ThreadingRule::Customer,
        };
    }
    // Rule 5: reopen within the window, else open a new issue.
    if let Some(latest) = f.latest_closed
        && !f.reopen_window.is_zero()
        && let Some(closed_at) = latest.closed_at
        && let Ok(window) = chrono::Duration::from_std(f.reopen_window)
        && f.now.signed_duration_since(closed_at) < window
    {
        return Placement::Reopen {
            issue_id: latest.id,
        };
    }
    let referenced_closed = f
        .by_reference
        .filter(|r| !r.status.is_open())
        .or(token.filter(|t| !t.status.is_open()))
        .map(|r| r.id);
    Placement::Open {
        previous_issue_id: referenced_closed.or(f.latest_closed.map(|c| c.id)),
    }
}
