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

/// The actions a viewer may be offered on an issue (the web page's
/// buttons, SPEC §9): exactly those `apply` would accept from them now and
/// that would change something. Facts the page does not have (is another
/// issue of the customer open) are taken as favourable; the action itself
/// still goes through `apply`, and a refusal is shown as a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    pub take: bool,
    pub assign: bool,
    pub unassign: bool,
    pub close: bool,
    pub resolve: bool,
    pub reopen: bool,
}

/// What `actor` may be offered on an issue in `state`.
pub fn offered(state: IssueState, actor: Actor) -> Offer {
    let changes = |action| {
        matches!(
            apply(state, actor, action),
            Ok(Transition { event: Some(_), .. })
        )
    };
    Offer {
        take: changes(Action::Take),
        // Assign It is open to anyone on an open issue; who is chosen is
        // checked when it is pressed.
        assign: state.status.is_open(),
        unassign: changes(Action::Unassign),
        close: changes(Action::Close),
        resolve: changes(Action::Resolve),
        reopen: changes(Action::Reopen {
            customer_open_issue: None,
            assignee_active: true,
        }),
    }
}

/// How long the author of a private comment may edit or delete it.
pub const COMMENT_EDIT_WINDOW_HOURS: i64 = 5;

/// Why a comment may not be changed by someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommentError {
    #[error("only the author or an admin may change this comment")]
    NotAuthor,
    #[error("comments can be changed by their author for 5 hours; ask an admin")]
    WindowPassed,
}

impl CommentError {
    pub fn code(&self) -> &'static str {
        match self {
            CommentError::NotAuthor => "forbidden",
            CommentError::WindowPassed => "edit_window_expired",
        }
    }
}

/// SPEC §4: a comment's author may edit or delete it within 5 hours, an
/// admin at any time.
pub fn may_change_comment(
    author_id: Option<i64>,
    created_at: chrono::DateTime<chrono::Utc>,
    actor: Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), CommentError> {
    if actor.is_admin() {
        return Ok(());
    }
    if author_id != Some(actor.id) {
        return Err(CommentError::NotAuthor);
    }
    if now.signed_duration_since(created_at) > chrono::Duration::hours(COMMENT_EDIT_WINDOW_HOURS) {
        return Err(CommentError::WindowPassed);
    }
    Ok(())
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

/// The text of the event a staff action records: `assignee_name` is the
/// new assignee's, for an assignment.
pub fn event_text(event: EventType, actor_name: &str, assignee_name: Option<&str>) -> String {
    match (event, assignee_name) {
        (EventType::Assigned, Some(to)) => format!("{actor_name} assigned the issue to {to}"),
        (EventType::Taken, _) => format!("{actor_name} took the issue"),
        (EventType::Unassigned, _) => format!("{actor_name} unassigned the issue"),
        (EventType::Closed, _) => format!("{actor_name} closed the issue"),
        (EventType::Resolved, _) => format!("{actor_name} resolved the issue"),
        (EventType::Reopened, _) => format!("{actor_name} reopened the issue"),
        (other, _) => format!("{actor_name}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    //! One test per row and permission of SPEC §2. Agents are ids 1–3, the
    //! admin is 9; issue ids handed to `customer_has_open_issue` are 70+.

    use super::*;

    const A1: Actor = Actor {
        id: 1,
        role: Role::Agent,
    };
    const A2: Actor = Actor {
        id: 2,
        role: Role::Agent,
    };
    const A3: Actor = Actor {
        id: 3,
        role: Role::Agent,
    };
    const ADMIN: Actor = Actor {
        id: 9,
        role: Role::Admin,
    };

    /// Mark as Closed and Resolve share one rule; each test runs both.
    const CLOSES: [(Action, Resolution, EventType); 2] = [
        (Action::Close, Resolution::Closed, EventType::Closed),
        (Action::Resolve, Resolution::Resolved, EventType::Resolved),
    ];

    fn unassigned() -> IssueState {
        IssueState::new_unassigned()
    }

    fn assigned(to: i64) -> IssueState {
        IssueState {
            status: IssueStatus::Assigned,
            assignee_id: Some(to),
            resolution: None,
            closed_by: None,
        }
    }

    fn closed(assignee: Option<i64>, closed_by: Option<i64>) -> IssueState {
        IssueState {
            status: IssueStatus::Closed,
            assignee_id: assignee,
            resolution: Some(Resolution::Closed),
            closed_by,
        }
    }

    fn reopen(active: bool) -> Action {
        Action::Reopen {
            customer_open_issue: None,
            assignee_active: active,
        }
    }

    fn assign(to: i64) -> Action {
        Action::Assign {
            assignee_id: to,
            assignee_active: true,
        }
    }

    // --- Take It -------------------------------------------------------

    #[test]
    fn take_unassigned_assigns_the_caller() {
        for actor in [A1, ADMIN] {
            let t = apply(unassigned(), actor, Action::Take).unwrap();
            assert_eq!(t.to, assigned(actor.id));
            assert_eq!(t.event, Some(EventType::Taken));
        }
    }

    #[test]
    fn take_assigned_to_someone_else_is_already_assigned() {
        // Admins too: they reassign with Assign It, not by taking.
        for actor in [A2, ADMIN] {
            let err = apply(assigned(1), actor, Action::Take).unwrap_err();
            assert_eq!(err, TransitionError::AlreadyAssigned);
            assert_eq!(err.code(), "already_assigned");
        }
    }

    #[test]
    fn take_own_issue_changes_nothing_and_records_nothing() {
        let t = apply(assigned(1), A1, Action::Take).unwrap();
        assert_eq!(t.to, assigned(1));
        assert_eq!(t.event, None);
    }

    // --- Assign It -----------------------------------------------------

    #[test]
    fn assign_from_unassigned_assigns_that_person() {
        // Any staff may assign, to themselves or to someone else.
        for (actor, to) in [(A1, 2), (A1, 1), (ADMIN, 3)] {
            let t = apply(unassigned(), actor, assign(to)).unwrap();
            assert_eq!(t.to, assigned(to));
            assert_eq!(t.event, Some(EventType::Assigned));
        }
    }

    #[test]
    fn assign_from_assigned_moves_it_to_that_person() {
        // An agent who is not the assignee may reassign as well.
        for actor in [A1, A3, ADMIN] {
            let t = apply(assigned(1), actor, assign(2)).unwrap();
            assert_eq!(t.to, assigned(2));
            assert_eq!(t.event, Some(EventType::Assigned));
        }
    }

    #[test]
    fn assign_to_the_current_assignee_changes_nothing() {
        let t = apply(assigned(2), A1, assign(2)).unwrap();
        assert_eq!(t.to, assigned(2));
        assert_eq!(t.event, None);
    }

    #[test]
    fn assign_to_inactive_or_unknown_staff_is_unknown_assignee() {
        let inactive = Action::Assign {
            assignee_id: 5,
            assignee_active: false,
        };
        for state in [unassigned(), assigned(1)] {
            let err = apply(state, ADMIN, inactive).unwrap_err();
            assert_eq!(err, TransitionError::UnknownAssignee);
            assert_eq!(err.code(), "unknown_assignee");
        }
        // Even "assigning" to the inactive person who already holds it.
        let same = Action::Assign {
            assignee_id: 1,
            assignee_active: false,
        };
        assert_eq!(
            apply(assigned(1), ADMIN, same),
            Err(TransitionError::UnknownAssignee)
        );
    }

    // --- unassign ------------------------------------------------------

    #[test]
    fn unassign_by_the_assignee() {
        let t = apply(assigned(1), A1, Action::Unassign).unwrap();
        assert_eq!(t.to, unassigned());
        assert_eq!(t.event, Some(EventType::Unassigned));
    }

    #[test]
    fn unassign_by_an_admin() {
        let t = apply(assigned(1), ADMIN, Action::Unassign).unwrap();
        assert_eq!(t.to, unassigned());
        assert_eq!(t.event, Some(EventType::Unassigned));
    }

    #[test]
    fn unassign_by_another_agent_is_forbidden() {
        let err = apply(assigned(1), A2, Action::Unassign).unwrap_err();
        assert_eq!(err, TransitionError::Forbidden);
        assert_eq!(err.code(), "forbidden");
    }

    #[test]
    fn unassign_an_unassigned_issue_is_a_no_op() {
        let t = apply(unassigned(), A2, Action::Unassign).unwrap();
        assert_eq!(t.to, unassigned());
        assert_eq!(t.event, None);
    }

    // --- Mark as Closed / Resolve -------------------------------------

    #[test]
    fn close_unassigned_by_any_caller() {
        for (action, resolution, event) in CLOSES {
            for actor in [A2, ADMIN] {
                let t = apply(unassigned(), actor, action).unwrap();
                assert_eq!(t.event, Some(event));
                assert_eq!(
                    t.to,
                    IssueState {
                        status: IssueStatus::Closed,
                        assignee_id: None,
                        resolution: Some(resolution),
                        closed_by: Some(actor.id),
                    }
                );
            }
        }
    }

    #[test]
    fn close_by_the_assignee_keeps_them_as_previous_assignee() {
        for (action, resolution, event) in CLOSES {
            let t = apply(assigned(1), A1, action).unwrap();
            assert_eq!(t.event, Some(event));
            assert_eq!(
                t.to,
                IssueState {
                    status: IssueStatus::Closed,
                    assignee_id: Some(1),
                    resolution: Some(resolution),
                    closed_by: Some(1),
                }
            );
        }
    }

    #[test]
    fn close_by_another_agent_is_not_assignee() {
        for (action, _, _) in CLOSES {
            let err = apply(assigned(1), A2, action).unwrap_err();
            assert_eq!(err, TransitionError::NotAssignee);
            assert_eq!(err.code(), "not_assignee");
        }
    }

    #[test]
    fn close_by_an_admin_who_is_not_the_assignee_is_not_assignee() {
        for (action, _, _) in CLOSES {
            assert_eq!(
                apply(assigned(1), ADMIN, action),
                Err(TransitionError::NotAssignee)
            );
        }
        // An admin who holds the issue closes it like anyone else.
        let t = apply(assigned(ADMIN.id), ADMIN, Action::Close).unwrap();
        assert_eq!(t.to.closed_by, Some(ADMIN.id));
    }

    // --- reopen --------------------------------------------------------

    #[test]
    fn reopen_by_the_closer() {
        // Closed while unassigned by agent 2: no previous assignee.
        let t = apply(closed(None, Some(2)), A2, reopen(true)).unwrap();
        assert_eq!(t.to, unassigned());
        assert_eq!(t.event, Some(EventType::Reopened));
    }

    #[test]
    fn reopen_by_the_previous_assignee() {
        // Agent 1 held it; the system closed it (no closer).
        let t = apply(closed(Some(1), None), A1, reopen(true)).unwrap();
        assert_eq!(t.to, assigned(1));
        assert_eq!(t.event, Some(EventType::Reopened));
    }

    #[test]
    fn reopen_by_an_admin() {
        let t = apply(closed(Some(1), Some(1)), ADMIN, reopen(true)).unwrap();
        assert_eq!(t.to, assigned(1));
        assert_eq!(t.event, Some(EventType::Reopened));
    }

    #[test]
    fn reopen_by_anyone_else_is_forbidden() {
        for state in [closed(Some(1), Some(2)), closed(None, None)] {
            let err = apply(state, A3, reopen(true)).unwrap_err();
            assert_eq!(err, TransitionError::Forbidden);
            assert_eq!(err.code(), "forbidden");
        }
    }

    #[test]
    fn reopen_while_the_customer_has_an_open_issue_names_it() {
        let action = Action::Reopen {
            customer_open_issue: Some(77),
            assignee_active: true,
        };
        for actor in [A1, ADMIN] {
            let err = apply(closed(Some(1), Some(1)), actor, action).unwrap_err();
            assert_eq!(err, TransitionError::CustomerHasOpenIssue(77));
            assert_eq!(err.code(), "customer_has_open_issue");
        }
        // Permission is checked first, so a stranger learns nothing about
        // the customer's other issue.
        assert_eq!(
            apply(closed(Some(1), Some(1)), A3, action),
            Err(TransitionError::Forbidden)
        );
    }

    #[test]
    fn reopen_returns_to_an_active_assignee() {
        let mut state = closed(Some(1), Some(2));
        state.resolution = Some(Resolution::Resolved);
        let t = apply(state, A2, reopen(true)).unwrap();
        // Resolution and closer are cleared: open issues carry neither.
        assert_eq!(t.to, assigned(1));
    }

    #[test]
    fn reopen_is_unassigned_when_the_assignee_is_inactive() {
        let t = apply(closed(Some(1), Some(1)), ADMIN, reopen(false)).unwrap();
        assert_eq!(t.to, unassigned());
        assert_eq!(t.event, Some(EventType::Reopened));
    }

    #[test]
    fn reopened_helper_follows_the_same_rule() {
        let c = closed(Some(4), Some(4));
        assert_eq!(reopened(c, true), assigned(4));
        assert_eq!(reopened(c, false), unassigned());
        // No previous assignee: unassigned whatever the flag says.
        assert_eq!(reopened(closed(None, Some(4)), true), unassigned());
    }

    #[test]
    fn closed_rejects_every_action_but_reopen() {
        let others = [
            Action::Take,
            assign(2),
            Action::Assign {
                assignee_id: 2,
                assignee_active: false,
            },
            Action::Unassign,
            Action::Close,
            Action::Resolve,
        ];
        // Whoever asks: the closer, the previous assignee, an admin.
        for actor in [A1, A2, ADMIN] {
            for action in others {
                let err = apply(closed(Some(1), Some(2)), actor, action).unwrap_err();
                assert_eq!(err, TransitionError::IssueClosed, "{action:?} by {actor:?}");
                assert_eq!(err.code(), "issue_closed");
            }
        }
    }

    #[test]
    fn reopen_on_an_open_issue_is_not_closed() {
        for state in [unassigned(), assigned(1)] {
            for actor in [A1, ADMIN] {
                let err = apply(state, actor, reopen(true)).unwrap_err();
                assert_eq!(err, TransitionError::NotClosed);
                assert_eq!(err.code(), "not_closed");
            }
        }
    }

    #[test]
    fn error_codes_are_exact() {
        let all = [
            (TransitionError::AlreadyAssigned, "already_assigned"),
            (TransitionError::UnknownAssignee, "unknown_assignee"),
            (TransitionError::Forbidden, "forbidden"),
            (TransitionError::NotAssignee, "not_assignee"),
            (TransitionError::IssueClosed, "issue_closed"),
            (TransitionError::NotClosed, "not_closed"),
            (
                TransitionError::CustomerHasOpenIssue(1),
                "customer_has_open_issue",
            ),
        ];
        for (err, code) in all {
            assert_eq!(err.code(), code);
        }
    }

    // --- system close --------------------------------------------------

    #[test]
    fn system_close_closes_without_a_closer() {
        assert_eq!(
            system_close(assigned(1), Resolution::Resolved),
            Some(IssueState {
                status: IssueStatus::Closed,
                assignee_id: Some(1),
                resolution: Some(Resolution::Resolved),
                closed_by: None,
            })
        );
        assert_eq!(
            system_close(unassigned(), Resolution::Closed),
            Some(IssueState {
                status: IssueStatus::Closed,
                assignee_id: None,
                resolution: Some(Resolution::Closed),
                closed_by: None,
            })
        );
    }

    #[test]
    fn system_close_leaves_a_closed_issue_alone() {
        assert_eq!(
            system_close(closed(Some(1), Some(1)), Resolution::Resolved),
            None
        );
    }

    #[test]
    fn offers_follow_apply() {
        let open = IssueState::new_unassigned();
        let o = offered(open, A1);
        assert!(o.take && o.assign && o.close && o.resolve);
        assert!(!o.unassign && !o.reopen);

        let mine = IssueState {
            status: IssueStatus::Assigned,
            assignee_id: Some(1),
            ..open
        };
        let o = offered(mine, A1);
        assert!(!o.take, "taking your own issue changes nothing");
        assert!(o.unassign && o.close && o.resolve && o.assign);

        // Someone else's issue: an agent may only reassign; an admin may
        // also unassign, but not close (SPEC §2: admins too take first).
        let o = offered(mine, A2);
        assert!(!o.take && !o.unassign && !o.close && !o.resolve && o.assign);
        let o = offered(mine, ADMIN);
        assert!(o.unassign && !o.close && !o.resolve);

        let closed = IssueState {
            status: IssueStatus::Closed,
            assignee_id: Some(1),
            resolution: Some(Resolution::Closed),
            closed_by: Some(1),
        };
        assert_eq!(
            offered(closed, A1),
            Offer {
                reopen: true,
                ..Offer::default()
            }
        );
        assert_eq!(offered(closed, A2), Offer::default());
        assert!(offered(closed, ADMIN).reopen);
    }

    #[test]
    fn comments_change_by_author_within_five_hours_or_by_admin() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let later = |h| t0 + chrono::Duration::hours(h);
        assert_eq!(may_change_comment(Some(1), t0, A1, later(4)), Ok(()));
        assert_eq!(
            may_change_comment(Some(1), t0, A1, later(6)),
            Err(CommentError::WindowPassed)
        );
        assert_eq!(
            may_change_comment(Some(1), t0, A2, later(0)),
            Err(CommentError::NotAuthor)
        );
        assert_eq!(may_change_comment(Some(1), t0, ADMIN, later(100)), Ok(()));
    }

    #[test]
    fn each_staff_action_reads_as_a_sentence() {
        assert_eq!(
            event_text(EventType::Assigned, "Ann", Some("Bo")),
            "Ann assigned the issue to Bo"
        );
        assert_eq!(
            event_text(EventType::Taken, "Ann", None),
            "Ann took the issue"
        );
        assert_eq!(
            event_text(EventType::Resolved, "Ann", None),
            "Ann resolved the issue"
        );
    }
}
