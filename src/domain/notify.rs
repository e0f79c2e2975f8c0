//! Who is told about what (SPEC §5), as pure functions.
//!
//! The store calls `recipients` inside the transaction that makes the
//! change, with the facts it loaded (staff, watchers, preferences), and
//! writes one notification row per person and channel in that same
//! transaction. Keeping the table here means one place to read the rules
//! and to test every cell of the preference matrix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EventType, Role};

/// The events staff can be notified of, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    IssueOpened,
    CustomerReplied,
    UnassignedActivity,
    IssueAssigned,
    IssueClosed,
    CommentAdded,
    IssueEscalated,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::IssueOpened,
        NotifyEvent::CustomerReplied,
        NotifyEvent::UnassignedActivity,
        NotifyEvent::IssueAssigned,
        NotifyEvent::IssueClosed,
        NotifyEvent::CommentAdded,
        NotifyEvent::IssueEscalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::IssueOpened => "issue_opened",
            NotifyEvent::CustomerReplied => "customer_replied",
            NotifyEvent::UnassignedActivity => "unassigned_activity",
            NotifyEvent::IssueAssigned => "issue_assigned",
            NotifyEvent::IssueClosed => "issue_closed",
            NotifyEvent::CommentAdded => "comment_added",
            NotifyEvent::IssueEscalated => "issue_escalated",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One cell pair of the preference matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cell {
    pub in_app: bool,
    pub email: bool,
}

/// SPEC §5's defaults: in-app on for everything; email on for replies,
/// assignments, comments and escalations, and for new issues if admin.
pub fn default_cell(event: NotifyEvent, role: Role) -> Cell {
    let email = match event {
        NotifyEvent::IssueOpened => role == Role::Admin,
        NotifyEvent::CustomerReplied
        | NotifyEvent::IssueAssigned
        | NotifyEvent::CommentAdded
        | NotifyEvent::IssueEscalated => true,
        NotifyEvent::UnassignedActivity | NotifyEvent::IssueClosed => false,
    };
    Cell {
        in_app: true,
        email,
    }
}

/// A person's whole matrix: the defaults with their overrides applied.
pub fn matrix(role: Role, overrides: &[(NotifyEvent, Cell)]) -> BTreeMap<NotifyEvent, Cell> {
    let mut m: BTreeMap<NotifyEvent, Cell> = NotifyEvent::ALL
        .into_iter()
        .map(|e| (e, default_cell(e, role)))
        .collect();
    for (e, c) in overrides {
        m.insert(*e, *c);
    }
    m
}

/// A staff member as the routing rules see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub role: Role,
    pub active: bool,
}

/// The facts about the issue an event happened on.
#[derive(Debug, Clone, Default)]
pub struct Audience<'a> {
    /// Who caused the event; never told about it. `None`: the system.
    pub actor: Option<i64>,
    /// The issue's assignee after the change.
    pub assignee: Option<i64>,
    pub watchers: &'a [i64],
    pub staff: &'a [Person],
}

/// Who is told about `event`, before preferences: SPEC §5's table, never
/// the actor, never inactive staff, each person once, in id order.
pub fn recipients(event: NotifyEvent, a: &Audience<'_>) -> Vec<i64> {
    let active = |id: i64| a.staff.iter().any(|p| p.id == id && p.active);
    let mut ids: Vec<i64> = match event {
        NotifyEvent::IssueOpened | NotifyEvent::UnassignedActivity => {
            a.staff.iter().filter(|p| p.active).map(|p| p.id).collect()
        }
        NotifyEvent::CustomerReplied | NotifyEvent::IssueClosed | NotifyEvent::CommentAdded => a
            .assignee
            .into_iter()
            .chain(a.watchers.iter().copied())
            .collect(),
        NotifyEvent::IssueAssigned => a.assignee.into_iter().collect(),
        NotifyEvent::IssueEscalated => a
            .staff
            .iter()
            .filter(|p| p.active && p.role == Role::Admin)
            .map(|p| p.id)
            .collect(),
    };
    ids.retain(|id| Some(*id) != a.actor && active(*id));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The notification a staff action's event raises, if any (SPEC §5).
pub fn for_event(event: EventType) -> Option<NotifyEvent> {
    match event {
        EventType::Assigned => Some(NotifyEvent::IssueAssigned),
        EventType::Closed | EventType::Resolved => Some(NotifyEvent::IssueClosed),
        _ => None,
    }
}

/// How long an excerpt in a notification text may be, in characters.
pub const EXCERPT_CHARS: usize = 80;

/// A short excerpt for notification texts: whitespace folded to single
/// spaces, cut with an ellipsis at `EXCERPT_CHARS`.
pub fn excerpt(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let mut s: String = flat.chars().take(EXCERPT_CHARS - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> Vec<Person> {
        vec![
            Person {
                id: 1,
                role: Role::Admin,
                active: true,
            },
            Person {
                id: 2,
                role: Role::Agent,
                active: true,
            },
            Person {
                id: 3,
                role: Role::Agent,
                active: true,
            },
            Person {
                id: 4,
                role: Role::Agent,
                active: false,
            },
            Person {
                id: 5,
                role: Role::Admin,
                active: false,
            },
        ]
    }

    #[test]
    fn each_event_reaches_the_people_of_spec_5() {
        let s = staff();
        let w = [3, 4];
        let a = |actor, assignee| Audience {
            actor,
            assignee,
            watchers: &w,
            staff: &s,
        };
        assert_eq!(
            recipients(NotifyEvent::IssueOpened, &a(None, None)),
            vec![1, 2, 3]
        );
        assert_eq!(
            recipients(NotifyEvent::UnassignedActivity, &a(None, None)),
            vec![1, 2, 3]
        );
        assert_eq!(
            recipients(NotifyEvent::CustomerReplied, &a(None, Some(2))),
            vec![2, 3]
        );
        assert_eq!(
            recipients(NotifyEvent::CommentAdded, &a(Some(2), Some(2))),
            vec![3]
        );
        assert_eq!(
            recipients(NotifyEvent::IssueClosed, &a(Some(1), Some(2))),
            vec![2, 3]
        );
        assert_eq!(
            recipients(NotifyEvent::IssueClosed, &a(Some(2), Some(2))),
            vec![3]
        );
        assert_eq!(
            recipients(NotifyEvent::IssueAssigned, &a(Some(1), Some(2))),
            vec![2]
        );
        assert_eq!(
            recipients(NotifyEvent::IssueAssigned, &a(Some(2), Some(2))),
            Vec::<i64>::new()
        );
        assert_eq!(
            recipients(NotifyEvent::IssueEscalated, &a(None, None)),
            vec![1]
        );
    }

    #[test]
    fn the_actor_and_inactive_staff_are_never_told() {
        let s = staff();
        let a = Audience {
            actor: Some(1),
            assignee: Some(4),
            watchers: &[5, 1],
            staff: &s,
        };
        for e in NotifyEvent::ALL {
            let r = recipients(e, &a);
            assert!(!r.contains(&1), "{e:?} told the actor");
            assert!(
                !r.contains(&4) && !r.contains(&5),
                "{e:?} told inactive staff"
            );
        }
    }

    #[test]
    fn defaults_follow_spec_5_and_overrides_apply() {
        for e in NotifyEvent::ALL {
            assert!(default_cell(e, Role::Agent).in_app);
        }
        assert!(!default_cell(NotifyEvent::IssueOpened, Role::Agent).email);
        assert!(default_cell(NotifyEvent::IssueOpened, Role::Admin).email);
        assert!(default_cell(NotifyEvent::CustomerReplied, Role::Agent).email);
        assert!(!default_cell(NotifyEvent::UnassignedActivity, Role::Agent).email);
        assert!(default_cell(NotifyEvent::IssueAssigned, Role::Agent).email);
        assert!(!default_cell(NotifyEvent::IssueClosed, Role::Agent).email);
        assert!(default_cell(NotifyEvent::CommentAdded, Role::Agent).email);
        assert!(default_cell(NotifyEvent::IssueEscalated, Role::Admin).email);
        let m = matrix(
            Role::Agent,
            &[(
                NotifyEvent::IssueOpened,
                Cell {
                    in_app: false,
                    email: true,
                },
            )],
        );
        assert_eq!(m.len(), 7);
        assert_eq!(
            m[&NotifyEvent::IssueOpened],
            Cell {
                in_app: false,
                email: true
            }
        );
        assert_eq!(
            m[&NotifyEvent::CommentAdded],
            Cell {
                in_app: true,
                email: true
            }
        );
    }

    #[test]
    fn wire_names_round_trip() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                serde_json::json!(e.as_str())
            );
        }
    }

    #[test]
    fn staff_actions_that_tell_someone() {
        assert_eq!(
            for_event(EventType::Assigned),
            Some(NotifyEvent::IssueAssigned)
        );
        assert_eq!(
            for_event(EventType::Resolved),
            Some(NotifyEvent::IssueClosed)
        );
        assert_eq!(for_event(EventType::Closed), Some(NotifyEvent::IssueClosed));
        assert_eq!(for_event(EventType::Taken), None);
        assert_eq!(for_event(EventType::Reopened), None);
    }

    #[test]
    fn an_excerpt_is_one_line_of_at_most_eighty_characters() {
        assert_eq!(excerpt("  a\n\tb  "), "a b");
        let long = excerpt(&"x".repeat(200));
        assert_eq!(long.chars().count(), EXCERPT_CHARS);
        assert!(long.ends_with('…'));
    }
}
