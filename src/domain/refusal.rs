//! A rule's refusal: what the caller did that the rules do not allow, in
//! words the caller sees. The domain says which kind of refusal it is; the
//! HTTP layer alone decides which status each kind becomes
//! (`http::error::refusal_status`), for the API and the web page alike.

use super::TransitionError;

/// The kind of refusal, which the edge maps to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request clashes with the current state (409).
    Conflict,
    /// The caller may not do this (403).
    Forbidden,
    /// The request names something that does not make sense (422).
    Invalid,
}

/// A refusal the API shows as-is: kind, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub code: &'static str,
    pub message: String,
    /// For `customer_has_open_issue`: the open issue.
    pub issue_id: Option<i64>,
}

impl Refusal {
    pub fn new(kind: RefusalKind, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            kind,
            code,
            message: message.into(),
            issue_id: None,
        }
    }

    /// The customer already has an open issue: the one to use instead.
    pub fn customer_has_open_issue(open: i64) -> Self {
        Refusal {
            issue_id: Some(open),
            ..Refusal::new(
                RefusalKind::Conflict,
                "customer_has_open_issue",
                "the customer already has an open issue: reply there",
            )
        }
    }
}

impl From<TransitionError> for Refusal {
    fn from(e: TransitionError) -> Self {
        let kind = match e {
            TransitionError::UnknownAssignee => RefusalKind::Invalid,
            TransitionError::Forbidden | TransitionError::NotAssignee => RefusalKind::Forbidden,
            _ => RefusalKind::Conflict,
        };
        let issue_id = match e {
            TransitionError::CustomerHasOpenIssue(id) => Some(id),
            _ => None,
        };
        Refusal {
            kind,
            code: e.code(),
            message: e.to_string(),
            issue_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_errors_become_the_kind_the_api_shows() {
        let r = Refusal::from(TransitionError::UnknownAssignee);
        assert_eq!((r.kind, r.code), (RefusalKind::Invalid, "unknown_assignee"));
        assert_eq!(
            Refusal::from(TransitionError::NotAssignee).kind,
            RefusalKind::Forbidden
        );
        assert_eq!(
            Refusal::from(TransitionError::AlreadyAssigned).kind,
            RefusalKind::Conflict
        );
        let open = Refusal::from(TransitionError::CustomerHasOpenIssue(7));
        assert_eq!((open.kind, open.issue_id), (RefusalKind::Conflict, Some(7)));
    }
}
