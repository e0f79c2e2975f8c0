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

#[cfg(test)]
mod tests {
    //! SPEC §3.1 rules 3–5, in order. The sender is customer 1; customer 2
    //! is a stranger whose issues must never receive customer 1's mail by
    //! token.

    use super::*;
    use chrono::TimeZone;

    const ME: i64 = 1;
    const STRANGER: i64 = 2;
    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn facts() -> ThreadingFacts {
        ThreadingFacts {
            customer_id: ME,
            by_reference: None,
            by_token: None,
            open_issue: None,
            latest_closed: None,
            is_automated: false,
            now: now(),
            reopen_window: Duration::ZERO,
        }
    }

    fn open(id: i64, customer_id: i64) -> IssueRef {
        IssueRef {
            id,
            customer_id,
            status: IssueStatus::Assigned,
            closed_at: None,
        }
    }

    /// An issue closed `ago` before `now()`.
    fn closed(id: i64, customer_id: i64, ago: Duration) -> IssueRef {
        IssueRef {
            id,
            customer_id,
            status: IssueStatus::Closed,
            closed_at: Some(now() - chrono::Duration::from_std(ago).unwrap()),
        }
    }

    fn append(issue_id: i64, rule: ThreadingRule) -> Placement {
        Placement::Append { issue_id, rule }
    }

    // --- rule 3: reference, then token --------------------------------

    #[test]
    fn reference_to_an_open_issue_beats_token_and_customer_issue() {
        let f = ThreadingFacts {
            by_reference: Some(open(10, ME)),
            by_token: Some(open(11, ME)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(10, ThreadingRule::Reference));
    }

    #[test]
    fn reference_counts_whoever_sends_it() {
        // Headers name a stored Message-ID, which a stranger cannot guess:
        // a colleague on Cc answering the thread lands on it.
        let f = ThreadingFacts {
            by_reference: Some(open(20, STRANGER)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(20, ThreadingRule::Reference));
    }

    #[test]
    fn own_token_beats_the_customer_rule() {
        let f = ThreadingFacts {
            by_token: Some(open(12, ME)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(12, ThreadingRule::Token));
    }

    #[test]
    fn token_beats_a_reference_to_a_closed_issue() {
        let f = ThreadingFacts {
            by_reference: Some(closed(5, ME, HOUR)),
            by_token: Some(open(12, ME)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(12, ThreadingRule::Token));
    }

    #[test]
    fn strangers_token_goes_to_their_own_open_issue() {
        let f = ThreadingFacts {
            by_token: Some(open(20, STRANGER)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(12, ThreadingRule::Customer));
    }

    #[test]
    fn strangers_token_without_an_open_issue_opens_a_new_one() {
        let f = ThreadingFacts {
            by_token: Some(open(20, STRANGER)),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: None
            }
        );
        // Nor does a stranger's token to a closed issue become the new
        // issue's predecessor, or get it reopened.
        let f = ThreadingFacts {
            by_token: Some(closed(21, STRANGER, Duration::from_secs(60))),
            latest_closed: Some(closed(8, ME, HOUR * 48)),
            reopen_window: HOUR,
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: Some(8)
            }
        );
    }

    #[test]
    fn reference_to_a_closed_issue_opens_a_new_one_that_follows_it() {
        let f = ThreadingFacts {
            by_reference: Some(closed(5, ME, HOUR * 48)),
            latest_closed: Some(closed(9, ME, HOUR * 24)),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: Some(5)
            }
        );
    }

    #[test]
    fn own_token_to_a_closed_issue_opens_a_new_one_that_follows_it() {
        let f = ThreadingFacts {
            by_token: Some(closed(5, ME, HOUR * 48)),
            latest_closed: Some(closed(9, ME, HOUR * 24)),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: Some(5)
            }
        );
    }

    // --- rule 4: the customer's open issue -----------------------------

    #[test]
    fn customers_open_issue_takes_the_message() {
        let f = ThreadingFacts {
            open_issue: Some(12),
            latest_closed: Some(closed(9, ME, Duration::from_secs(1))),
            reopen_window: HOUR,
            ..facts()
        };
        assert_eq!(decide(&f), append(12, ThreadingRule::Customer));
    }

    #[test]
    fn closed_reference_still_goes_to_the_customers_open_issue() {
        let f = ThreadingFacts {
            by_reference: Some(closed(5, ME, HOUR)),
            open_issue: Some(12),
            ..facts()
        };
        assert_eq!(decide(&f), append(12, ThreadingRule::Customer));
    }

    // --- rule 5: reopen or open ----------------------------------------

    #[test]
    fn first_message_of_a_new_customer_opens_an_issue() {
        assert_eq!(
            decide(&facts()),
            Placement::Open {
                previous_issue_id: None
            }
        );
    }

    #[test]
    fn zero_window_never_reopens() {
        let f = ThreadingFacts {
            latest_closed: Some(closed(9, ME, Duration::ZERO)),
            reopen_window: Duration::ZERO,
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: Some(9)
            }
        );
        // Not even when another instance's clock runs ahead and the close
        // seems to lie in the future.
        let mut skewed = closed(9, ME, Duration::ZERO);
        skewed.closed_at = Some(now() + chrono::Duration::seconds(5));
        let f = ThreadingFacts {
            latest_closed: Some(skewed),
            ..facts()
        };
        assert_eq!(
            decide(&f),
            Placement::Open {
                previous_issue_id: Some(9)
            }
        );
    }

    #[test]
    fn within_the_window_reopens_the_latest_closed_issue() {
        for ago in [
            Duration::ZERO,
            Duration::from_secs(1),
            HOUR - Duration::from_secs(1),
        ] {
            let f = ThreadingFacts {
                latest_closed: Some(closed(9, ME, ago)),
                reopen_window: HOUR,
                ..facts()
            };
            assert_eq!(decide(&f), Placement::Reopen { issue_id: 9 }, "{ago:?}");
        }
        // Even when the message references an older closed issue.
        let f = ThreadingFacts {
            by_reference: Some(closed(5, ME, HOUR * 48)),
            latest_closed: Some(closed(9, ME, Duration::from_secs(60))),
            reopen_window: HOUR,
            ..facts()
        };
        assert_eq!(decide(&f), Placement::Reopen { issue_id: 9 });
    }

    #[test]
    fn just_outside_the_window_opens_a_new_issue_after_the_latest() {
        for ago in [HOUR, HOUR + Duration::from_secs(1)] {
            let f = ThreadingFacts {
                latest_closed: Some(closed(9, ME, ago)),
                reopen_window: HOUR,
                ..facts()
            };
            assert_eq!(
                decide(&f),
                Placement::Open {
                    previous_issue_id: Some(9)
                },
                "{ago:?}"
            );
        }
    }

    // --- automated messages --------------------------------------------

    #[test]
    fn automated_with_a_reference_is_recorded_there() {
        for referenced in [open(10, ME), closed(5, ME, HOUR), open(20, STRANGER)] {
            let f = ThreadingFacts {
                by_reference: Some(referenced),
                open_issue: Some(12),
                is_automated: true,
                ..facts()
            };
            assert_eq!(
                decide(&f),
                Placement::RecordAutomated {
                    issue_id: referenced.id
                }
            );
        }
    }

    #[test]
    fn automated_with_own_token_is_recorded_there() {
        let f = ThreadingFacts {
            by_token: Some(closed(5, ME, Duration::from_secs(1))),
            latest_closed: Some(closed(5, ME, Duration::from_secs(1))),
            reopen_window: HOUR,
            is_automated: true,
            ..facts()
        };
        assert_eq!(decide(&f), Placement::RecordAutomated { issue_id: 5 });
    }

    #[test]
    fn automated_without_a_reference_never_opens_or_reopens() {
        let cases = [
            // Nothing at all: would open a new issue.
            facts(),
            // A stranger's token does not count.
            ThreadingFacts {
                by_token: Some(open(20, STRANGER)),
                ..facts()
            },
            // Within the reopen window: would reopen.
            ThreadingFacts {
                latest_closed: Some(closed(9, ME, Duration::from_secs(1))),
                reopen_window: HOUR,
                ..facts()
            },
            // The customer's open issue is not a reference either.
            ThreadingFacts {
                open_issue: Some(12),
                ..facts()
            },
        ];
        for f in cases {
            let f = ThreadingFacts {
                is_automated: true,
                ..f
            };
            assert_eq!(decide(&f), Placement::DropAutomated, "{f:?}");
        }
    }
}
