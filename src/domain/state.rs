//! The issue state machine of SPEC §2 as one pure function.
//!
//! `apply` takes the issue's current state, who is acting and what they
//! want, and answers either the new state plus the event to record, or the
//! exact error the API must show. The store calls it inside the transaction
//! that holds the issue row locked, so "two staff press Take It at once"
//! is decided here on fresh data and exactly one wins.

use super::{EventType, IssueStatus, Resolution, Role};

/// The part of an issue the state machine reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueState {
    pub status: IssueStatus,
    /// Kept after closing: it is "the previous assignee" a reopen returns to.
    pub assignee_id: Option<i64>,
    pub resolution: Option<Resolution>,
    /// `Some(None)`-free: `None` means open or closed by the system.
    pub closed_by: Option<i64>,
}

impl IssueState {
    /// A freshly opened issue.
    pub fn new_unassigned() -> Self {
        IssueState {
            status: IssueStatus::Unassigned,
            assignee_id: None,
            resolution: None,
            closed_by: None,
        }
    }
}

/// A staff member acting on an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// What staff asked for. Facts only the store knows (is the assignee an
/// active staff member, does the customer have another open issue) travel
/// inside the action so the decision stays pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Take,
    Assign {
        assignee_id: i64,
        assignee_active: bool,
    },
    Unassign,
    Close,
    Resolve,
    Reopen {
        customer_open_issue: Option<i64>,
        assignee_active: bool,
    },
}

/// Why an action was refused; each maps to one API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the issue is already assigned to someone else")]
    AlreadyAssigned,
    #[error("the assignee is not an active staff member")]
    UnknownAssignee,
    #[error("you may not do that")]
    Forbidden,
    #[error("only the assignee may close this issue; take it or reassign it first")]
    NotAssignee,
    #[error("the issue is closed")]
    IssueClosed,
    #[error("the issue is not closed")]
    NotClosed,
    #[error("the customer already has an open issue")]
    CustomerHasOpenIssue(i64),
}

impl TransitionError {
    /// The snake_case code of SPEC §2.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::AlreadyAssigned => "already_assigned",
            TransitionError::UnknownAssignee => "unknown_assignee",
            TransitionError::Forbidden => "forbidden",
            TransitionError::NotAssignee => "not_assignee",
            TransitionError::IssueClosed => "issue_closed",
            TransitionError::NotClosed => "not_closed",
            TransitionError::CustomerHasOpenIssue(_) => "customer_has_open_issue",
        }
    }
}

/// The outcome of an accepted action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub to: IssueState,
    /// The event to record; `None` when the action changed nothing (taking
    /// an issue you already own), which is answered 200 without an event.
    pub event: Option<EventType>,
}

impl Transition {
    fn unchanged(state: IssueState) -> Self {
        Transition {
            to: state,
            event: None,
        }
    }
}

/// Decides an action by staff (SPEC §2).
pub fn apply(
    state: IssueState,
    actor: Actor,
    action: Action,
) -> Result<Transition, TransitionError> {
    use IssueStatus::*;
    if state.status == Closed && !matches!(action, Action::Reopen { .. }) {
        return Err(TransitionError::IssueClosed);
    }
    match action {
        Action::Take => match (state.status, state.assignee_id) {
            (Assigned, Some(a)) if a == actor.id => Ok(Transition::unchanged(state)),
            (Assigned, _) => Err(TransitionError::AlreadyAssigned),
            _ => Ok(Transition {
                to: IssueState {
                    status: Assigned,
                    assignee_id: Some(actor.id),
                    ..state
                },
                event: Some(EventType::Taken),
            }),
        },
        Action::Assign {
            assignee_id,
            assignee_active,
        } => {
            if !assignee_active {
                return Err(TransitionError::UnknownAssignee);
            }
            if state.status == Assigned && state.assignee_id == Some(assignee_id) {
                return Ok(Transition::unchanged(state));
            }
            Ok(Transition {
                to: IssueState {
                    status: Assigned,
                    assignee_id: Some(assignee_id),
                    ..state
                },
                event: Some(EventType::Assigned),
            })
        }
        Action::Unassign => {
            if state.status == Unassigned {
                return Ok(Transition::unchanged(state));
            }
            if state.assignee_id != Some(actor.id) && !actor.is_admin() {
                return Err(TransitionError::Forbidden);
            }
            Ok(Transition {
                to: IssueState {
                    status: Unassigned,
                    assignee_id: None,
                    ..state
                },
                event: Some(EventType::Unassigned),
            })
        }
        Action::Close | Action::Resolve => {
            let may = match state.status {
                Unassigned => true,
                _ => state.assignee_id == Some(actor.id),
            };
            if !may {
                return Err(TransitionError::NotAssignee);
            }
            let (resolution, event) = if action == Action::Close {
                (Resolution::Closed, EventType::Closed)
            } else {
                (Resolution::Resolved, EventType::Resolved)
            };
            Ok(Transition {
                to: IssueState {
                    status: Closed,
                    resolution: Some(resolution),
                    closed_by: Some(actor.id),
                    ..state
                },
                event: Some(event),
            })
        }
        Action::Reopen {
            customer_open_issue,
            assignee_active,
        } => {
            if state.status != Closed {
                return Err(TransitionError::NotClosed);
            }
            let allowed = actor.is_admin()
                || state.closed_by == Some(actor.id)
                || state.assignee_id == Some(actor.id);
            if !allowed {
                return Err(TransitionError::Forbidden);
            }
            if let Some(open) = customer_open_issue {
                return Err(TransitionError::CustomerHasOpenIssue(open));
            }
            Ok(Transition {
                to: reopened(state, assignee_active),
                event: Some(EventType::Reopened),
            })
        }
    }
}

/// The state a closed issue returns to when it is reopened, by staff or by
/// the customer writing again within the reopen window: back to its
/// assignee if that person is still active, else unassigned.
pub fn reopened(state: IssueState, assignee_active: bool) -> IssueState {
    match state.assignee_id {
        Some(a) if assignee_active => IssueState {
            status: IssueStatus::Assigned,
            assignee_id: Some(a),
            resolution: None,
            closed_by: None,
        },
        _ => IssueState::new_unassigned(),
    }
}

/// A close decided by the system (auto-resolve of acknowledgements,
/// auto-close of idle issues): no actor, `closed_by` stays empty.
pub fn system_close(state: IssueState, resolution: Resolution) -> Option<IssueState> {
    state.status.is_open().then_some(IssueState {
        status: IssueStatus::Closed,
        resolution: Some(resolution),
        closed_by: None,
        ..state
    })
}
