//! Property tests for the two rules where a bug costs the most: the issue
//! state machine (two people working one issue) and the threading decision
//! (a customer's message landing on someone else's issue, or a second open
//! issue for one customer).
//!
//! The unit tests next to each rule pin the table of SPEC §2 and the order
//! of §3.1 case by case. Here I drive the rules with long random sequences
//! instead, and check what must hold after every step. For the state
//! machine that includes a small oracle written straight from the SPEC
//! table, so a permission mistake in a state the unit tests never built
//! still shows up. For threading I keep a model of every customer's issues
//! and perform each decision on it, the way the store would, because the
//! invariant ("at most one open issue per customer") is a property of the
//! whole history rather than of one call.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use std::time::Duration;

use super::state::{apply, reopened};
use super::threading::{IssueRef, decide};
use super::{
    Action, Actor, EventType, IssueState, IssueStatus, Placement, Resolution, Role, ThreadingFacts,
    ThreadingRule, TransitionError,
};

// ---------------------------------------------------------------------
// (a) The state machine
// ---------------------------------------------------------------------

const AGENTS: [i64; 3] = [1, 2, 3];
const ADMIN: i64 = 9;

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        prop::sample::select(AGENTS.to_vec()).prop_map(|id| Actor {
            id,
            role: Role::Agent,
        }),
        Just(Actor {
            id: ADMIN,
            role: Role::Admin,
        }),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Take),
        // 1–3 agents, 9 the admin, 5 someone who is not (or no longer) staff.
        (prop::sample::select(vec![1i64, 2, 3, 5, 9]), any::<bool>()).prop_map(
            |(assignee_id, assignee_active)| Action::Assign {
                assignee_id,
                assignee_active,
            }
        ),
        Just(Action::Unassign),
        Just(Action::Close),
        Just(Action::Resolve),
        (prop::option::weighted(0.2, 70i64..80), any::<bool>()).prop_map(
            |(customer_open_issue, assignee_active)| Action::Reopen {
                customer_open_issue,
                assignee_active,
            }
        ),
    ]
}

/// Every action, for sweeping a state with all of them.
fn every_action() -> Vec<Action> {
    vec![
        Action::Take,
        Action::Assign {
            assignee_id: 2,
            assignee_active: true,
        },
        Action::Assign {
            assignee_id: 5,
            assignee_active: false,
        },
        Action::Unassign,
        Action::Close,
        Action::Resolve,
    ]
}

fn state_invariants(s: &IssueState) -> Result<(), TestCaseError> {
    match s.status {
        IssueStatus::Unassigned => {
            prop_assert_eq!(s.assignee_id, None, "unassigned with an assignee: {:?}", s);
        }
        IssueStatus::Assigned => {
            prop_assert!(s.assignee_id.is_some(), "assigned to nobody: {:?}", s);
        }
        // A closed issue keeps (or not) its previous assignee: no rule.
        IssueStatus::Closed => {
            prop_assert!(s.resolution.is_some(), "closed without resolution: {:?}", s);
        }
    }
    if s.status.is_open() {
        prop_assert_eq!(s.resolution, None, "open with a resolution: {:?}", s);
        prop_assert_eq!(s.closed_by, None, "open with a closer: {:?}", s);
    }
    Ok(())
}

/// The error SPEC §2 prescribes, read off the table row by row. Where the
/// table names two errors for one request (a stranger reopening while the
/// customer has another open issue) permission comes first.
fn spec_error(s: &IssueState, actor: Actor, action: Action) -> Option<TransitionError> {
    use IssueStatus::*;
    let admin = actor.role == Role::Admin;
    match (s.status, action) {
        (
            Closed,
            Action::Reopen {
                customer_open_issue,
                ..
            },
        ) => {
            if !(admin || s.closed_by == Some(actor.id) || s.assignee_id == Some(actor.id)) {
                Some(TransitionError::Forbidden)
            } else {
                customer_open_issue.map(TransitionError::CustomerHasOpenIssue)
            }
        }
        (Closed, _) => Some(TransitionError::IssueClosed),
        (_, Action::Reopen { .. }) => Some(TransitionError::NotClosed),
        (Assigned, Action::Take) if s.assignee_id != Some(actor.id) => {
            Some(TransitionError::AlreadyAssigned)
        }
        (
            _,
            Action::Assign {
                assignee_active: false,
                ..
            },
        ) => Some(TransitionError::UnknownAssignee),
        (Assigned, Action::Unassign) if !admin && s.assignee_id != Some(actor.id) => {
            Some(TransitionError::Forbidden)
        }
        (Assigned, Action::Close | Action::Resolve) if s.assignee_id != Some(actor.id) => {
            Some(TransitionError::NotAssignee)
        }
        _ => None,
    }
}

/// Checks one accepted transition against what the action promises.
fn accepted(
    before: &IssueState,
    actor: Actor,
    action: Action,
    to: &IssueState,
) -> Result<(), TestCaseError> {
    match action {
        Action::Take => {
            prop_assert_eq!(to.status, IssueStatus::Assigned);
            prop_assert_eq!(to.assignee_id, Some(actor.id), "Take left someone else");
        }
        Action::Assign { assignee_id, .. } => {
            prop_assert_eq!(to.status, IssueStatus::Assigned);
            prop_assert_eq!(to.assignee_id, Some(assignee_id));
        }
        Action::Unassign => {
            prop_assert_eq!(to.status, IssueStatus::Unassigned);
        }
        Action::Close | Action::Resolve => {
            let resolution = if action == Action::Close {
                Resolution::Closed
            } else {
                Resolution::Resolved
            };
            prop_assert_eq!(to.status, IssueStatus::Closed);
            prop_assert_eq!(to.resolution, Some(resolution));
            prop_assert_eq!(to.closed_by, Some(actor.id));
            prop_assert_eq!(
                to.assignee_id,
                before.assignee_id,
                "closing lost the assignee"
            );
        }
        Action::Reopen {
            assignee_active, ..
        } => {
            prop_assert_eq!(*to, reopened(*before, assignee_active));
            prop_assert!(to.status.is_open());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn state_machine_keeps_its_invariants(
        steps in prop::collection::vec((actor(), action()), 1..60)
    ) {
        let mut state = IssueState::new_unassigned();
        for (actor, action) in steps {
            state_invariants(&state)?;
            if state.status == IssueStatus::Closed {
                for other in every_action() {
                    for who in [1, 2, 3, ADMIN] {
                        let role = if who == ADMIN { Role::Admin } else { Role::Agent };
                        prop_assert_eq!(
                            apply(state, Actor { id: who, role }, other),
                            Err(TransitionError::IssueClosed)
                        );
                    }
                }
            }

            let before = state;
            let result = apply(state, actor, action);
            prop_assert_eq!(
                result.err(),
                spec_error(&before, actor, action),
                "{:?} by {:?} on {:?}", action, actor, before
            );
            // An error carries no state, so a refused action cannot change
            // the issue; only an accepted one moves us on.
            if let Ok(t) = result {
                accepted(&before, actor, action, &t.to)?;
                // An event is recorded exactly when something changed.
                prop_assert_eq!(t.event.is_none(), t.to == before, "{:?} -> {:?}", before, t);
                if let Some(event) = t.event {
                    let expected = match action {
                        Action::Take => EventType::Taken,
                        Action::Assign { .. } => EventType::Assigned,
                        Action::Unassign => EventType::Unassigned,
                        Action::Close => EventType::Closed,
                        Action::Resolve => EventType::Resolved,
                        Action::Reopen { .. } => EventType::Reopened,
                    };
                    prop_assert_eq!(event, expected);
                }
                state = t.to;
            }
        }
        state_invariants(&state)?;
    }
}

// ---------------------------------------------------------------------
// (b) Threading over a model of customers and their issues
// ---------------------------------------------------------------------

const CUSTOMERS: i64 = 4;

#[derive(Debug, Clone)]
struct Issue {
    id: i64,
    customer_id: i64,
    status: IssueStatus,
    closed_at: Option<DateTime<Utc>>,
    /// Customer messages appended (the first one included).
    messages: usize,
    /// Automated messages recorded as events.
    automated: usize,
    previous_issue_id: Option<i64>,
}

impl Issue {
    fn to_ref(&self) -> IssueRef {
        IssueRef {
            id: self.id,
            customer_id: self.customer_id,
            status: self.status,
            closed_at: self.closed_at,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Inbound {
        customer_id: i64,
        reference: Option<Index>,
        token: Option<Index>,
        automated: bool,
        advance: u64,
        reopen_window: Duration,
    },
    StaffClose {
        pick: Index,
        advance: u64,
    },
    StaffReopen {
        pick: Index,
        advance: u64,
    },
}

/// Seconds between two steps, with the window edges over-represented.
fn advance() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=2,
        prop::sample::select(vec![59u64, 60, 61, 3599, 3600, 3601]),
        0u64..10_000,
    ]
}

fn window() -> impl Strategy<Value = Duration> {
    prop::sample::select(vec![0u64, 0, 60, 3600, 7200, 86_400]).prop_map(Duration::from_secs)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            1..=CUSTOMERS,
            prop::option::of(any::<Index>()),
            prop::option::of(any::<Index>()),
            prop::bool::weighted(0.25),
            advance(),
            window(),
        )
            .prop_map(|(customer_id, reference, token, automated, advance, reopen_window)| {
                Op::Inbound {
                    customer_id,
                    reference,
                    token,
                    automated,
                    advance,
                    reopen_window,
                }
            }),
        2 => (any::<Index>(), advance()).prop_map(|(pick, advance)| Op::StaffClose { pick, advance }),
        1 => (any::<Index>(), advance()).prop_map(|(pick, advance)| Op::StaffReopen { pick, advance }),
    ]
}

struct Model {
    issues: Vec<Issue>,
    now: DateTime<Utc>,
}

impl Model {
    fn new() -> Self {
        Model {
            issues: Vec::new(),
            now: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    fn pick(&self, index: Option<&Index>) -> Option<&Issue> {
        let index = index?;
        (!self.issues.is_empty()).then(|| &self.issues[index.index(self.issues.len())])
    }

    fn get_mut(&mut self, id: i64) -> Option<&mut Issue> {
        self.issues.iter_mut().find(|i| i.id == id)
    }

    fn open_issue(&self, customer_id: i64) -> Option<i64> {
        self.issues
            .iter()
            .find(|i| i.customer_id == customer_id && i.status.is_open())
            .map(|i| i.id)
    }

    /// The customer's most recently closed issue, as the store would find
    /// it (`ORDER BY closed_at DESC, id DESC`).
    fn latest_closed(&self, customer_id: i64) -> Option<IssueRef> {
        self.issues
            .iter()
            .filter(|i| i.customer_id == customer_id && !i.status.is_open())
            .max_by_key(|i| (i.closed_at, i.id))
            .map(Issue::to_ref)
    }

    fn invariants(&self) -> Result<(), TestCaseError> {
        for c in 1..=CUSTOMERS {
            let open = self
                .issues
                .iter()
                .filter(|i| i.customer_id == c && i.status.is_open())
                .count();
            prop_assert!(open <= 1, "customer {} has {} open issues", c, open);
        }
        for i in &self.issues {
            prop_assert_eq!(i.closed_at.is_some(), !i.status.is_open(), "{:?}", i);
        }
        Ok(())
    }

    fn close(&mut self, pick: &Index) {
        let now = self.now;
        let open: Vec<i64> = self
            .issues
            .iter()
            .filter(|i| i.status.is_open())
            .map(|i| i.id)
            .collect();
        if open.is_empty() {
            return;
        }
        let id = open[pick.index(open.len())];
        if let Some(issue) = self.get_mut(id) {
            issue.status = IssueStatus::Closed;
            issue.closed_at = Some(now);
        }
    }

    /// An admin reopens a closed issue through the state machine, with the
    /// fact the store would load.
    fn staff_reopen(&mut self, pick: &Index) -> Result<(), TestCaseError> {
        let closed: Vec<i64> = self
            .issues
            .iter()
            .filter(|i| !i.status.is_open())
            .map(|i| i.id)
            .collect();
        if closed.is_empty() {
            return Ok(());
        }
        let id = closed[pick.index(closed.len())];
        let customer_id = self
            .issues
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.customer_id);
        let customer_open_issue = customer_id.and_then(|c| self.open_issue(c));
        let state = IssueState {
            status: IssueStatus::Closed,
            assignee_id: None,
            resolution: Some(Resolution::Closed),
            closed_by: None,
        };
        let admin = Actor {
            id: ADMIN,
            role: Role::Admin,
        };
        let action = Action::Reopen {
            customer_open_issue,
            assignee_active: false,
        };
        match apply(state, admin, action) {
            Ok(t) => {
                prop_assert_eq!(customer_open_issue, None);
                if let Some(issue) = self.get_mut(id) {
                    issue.status = t.to.status;
                    issue.closed_at = None;
                }
            }
            Err(e) => {
                let open = customer_open_issue.unwrap_or(-1);
                prop_assert_eq!(e, TransitionError::CustomerHasOpenIssue(open));
            }
        }
        Ok(())
    }

    /// Builds the facts the store would load, asks `decide`, checks the
    /// answer against the facts, and performs it.
    fn inbound(
        &mut self,
        customer_id: i64,
        reference: Option<&Index>,
        token: Option<&Index>,
        is_automated: bool,
        reopen_window: Duration,
    ) -> Result<(), TestCaseError> {
        let by_reference = self.pick(reference).map(Issue::to_ref);
        let by_token = self.pick(token).map(Issue::to_ref);
        let own_token = by_token.filter(|t| t.customer_id == customer_id);
        let open_issue = self.open_issue(customer_id);
        let latest_closed = self.latest_closed(customer_id);
        let facts = ThreadingFacts {
            customer_id,
            by_reference,
            by_token,
            open_issue,
            latest_closed,
            is_automated,
            now: self.now,
            reopen_window,
        };
        let placement = decide(&facts);
        let count_before = self.issues.len();

        // Automated messages only ever attach to what they name.
        prop_assert_eq!(
            is_automated,
            matches!(
                placement,
                Placement::RecordAutomated { .. } | Placement::DropAutomated
            ),
            "{:?} for {:?}",
            placement,
            facts
        );

        match placement {
            Placement::Append { issue_id, rule } => {
                let expected = match rule {
                    ThreadingRule::Reference => by_reference.map(|r| r.id),
                    ThreadingRule::Token => own_token.map(|t| t.id),
                    ThreadingRule::Customer => open_issue,
                    ThreadingRule::Reopened | ThreadingRule::New => None,
                };
                prop_assert_eq!(Some(issue_id), expected, "{:?} for {:?}", placement, facts);
                // Rule 3 before rule 4: an open referenced issue wins.
                if let Some(r) = by_reference.filter(|r| r.status.is_open()) {
                    prop_assert_eq!(issue_id, r.id, "skipped the reference: {:?}", facts);
                }
                let issue = self.get_mut(issue_id);
                prop_assert!(issue.is_some(), "appended to a missing issue {}", issue_id);
                if let Some(issue) = issue {
                    prop_assert!(issue.status.is_open(), "appended to closed {:?}", issue);
                    if rule == ThreadingRule::Token {
                        prop_assert_eq!(issue.customer_id, customer_id, "token of a stranger");
                    }
                    issue.messages += 1;
                }
            }
            Placement::Reopen { issue_id } => {
                prop_assert!(!reopen_window.is_zero(), "reopened with a zero window");
                prop_assert_eq!(open_issue, None, "reopened beside an open issue");
                prop_assert_eq!(Some(issue_id), latest_closed.map(|c| c.id));
                let now = self.now;
                let issue = self.get_mut(issue_id);
                prop_assert!(issue.is_some());
                if let Some(issue) = issue {
                    prop_assert_eq!(issue.customer_id, customer_id);
                    prop_assert_eq!(issue.status, IssueStatus::Closed);
                    let closed_at = issue.closed_at.unwrap_or(now);
                    prop_assert!(
                        (now - closed_at).to_std().unwrap_or_default() < reopen_window,
                        "reopened outside the window"
                    );
                    issue.status = IssueStatus::Unassigned;
                    issue.closed_at = None;
                    issue.messages += 1;
                }
            }
            Placement::Open { previous_issue_id } => {
                prop_assert_eq!(open_issue, None, "a second open issue");
                if let Some(prev) = previous_issue_id {
                    let issue = self.issues.iter().find(|i| i.id == prev);
                    prop_assert!(issue.is_some_and(|i| !i.status.is_open()));
                    // The predecessor is the closed issue the message named
                    // (a stranger's token does not count) or the customer's
                    // own latest closed one.
                    let named = [by_reference, own_token]
                        .into_iter()
                        .flatten()
                        .any(|r| r.id == prev);
                    let latest = latest_closed.map(|c| c.id) == Some(prev);
                    prop_assert!(named || latest, "previous {} from nowhere", prev);
                } else {
                    prop_assert!(latest_closed.is_none(), "lost the predecessor");
                }
                let id = 100 + self.issues.len() as i64;
                self.issues.push(Issue {
                    id,
                    customer_id,
                    status: IssueStatus::Unassigned,
                    closed_at: None,
                    messages: 1,
                    automated: 0,
                    previous_issue_id,
                });
            }
            Placement::RecordAutomated { issue_id } => {
                let named = by_reference.or(own_token).map(|r| r.id);
                prop_assert_eq!(Some(issue_id), named);
                if let Some(issue) = self.get_mut(issue_id) {
                    issue.automated += 1;
                }
            }
            Placement::DropAutomated => {
                prop_assert!(by_reference.is_none() && own_token.is_none());
            }
        }
        if is_automated {
            prop_assert_eq!(self.issues.len(), count_before, "automated opened an issue");
        }
        Ok(())
    }
}

proptest! {
    #[test]
    fn threading_keeps_one_open_issue_per_customer(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut model = Model::new();
        for op in &ops {
            let statuses: Vec<IssueStatus> = model.issues.iter().map(|i| i.status).collect();
            match op {
                Op::Inbound {
                    customer_id,
                    reference,
                    token,
                    automated,
                    advance,
                    reopen_window,
                } => {
                    model.now += chrono::Duration::seconds(*advance as i64);
                    model.inbound(
                        *customer_id,
                        reference.as_ref(),
                        token.as_ref(),
                        *automated,
                        *reopen_window,
                    )?;
                    if *automated {
                        // Nothing was opened, reopened or closed.
                        let after: Vec<IssueStatus> =
                            model.issues.iter().map(|i| i.status).collect();
                        prop_assert_eq!(statuses, after, "automated changed a status");
                    }
                }
                Op::StaffClose { pick, advance } => {
                    model.now += chrono::Duration::seconds(*advance as i64);
                    model.close(pick);
                }
                Op::StaffReopen { pick, advance } => {
                    model.now += chrono::Duration::seconds(*advance as i64);
                    model.staff_reopen(pick)?;
                }
            }
            model.invariants()?;
        }
        // Every issue was opened by a customer message, so none is empty.
        for issue in &model.issues {
            prop_assert!(issue.messages >= 1, "{:?}", issue);
            if let Some(prev) = issue.previous_issue_id {
                prop_assert!(prev < issue.id, "{:?} follows a later issue", issue);
            }
        }
    }
}

// ---------------------------------------------------------------------
// Text rules that must hold for any input
// ---------------------------------------------------------------------

proptest! {
    #[test]
    fn clean_subject_is_token_free_and_idempotent(
        subject in r"((Re|RE|re|Fwd|FW|Aw|SV)(\[[0-9]{1,2}\])? ?: ?|\[#[0-9]{1,3}\]|\[#|\]|[0-9]|[a-zé İ]{1,4}|\s)*"
    ) {
        let once = super::text::clean_subject(&subject);
        prop_assert!(super::text::subject_tokens(&once).is_empty(), "{:?} -> {:?}", subject, once);
        prop_assert_eq!(super::text::clean_subject(&once), once.clone(), "{:?}", subject);
    }

    #[test]
    fn sms_subject_is_at_most_80_characters_of_the_body(body in "\\PC{0,200}") {
        let s = super::text::sms_subject(&body);
        prop_assert!(s.chars().count() <= 80);
        prop_assert_eq!(s.trim(), s.as_str());
        let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert!(collapsed.starts_with(&s));
    }
}
