//! Issues, their messages and comments, and customer messages coming in (ingest).

use super::*;

impl Store {
    pub async fn list_issues(
        &self,
        filter: &IssueFilter,
        caller: i64,
    ) -> Result<(Vec<IssueView>, IssueCounts), StoreError> {
        // A NUL in the search text would be refused by PostgreSQL with an
        // error (a 500); nothing stored contains one, so it matches nothing.
        let cleaned;
        let filter = match &filter.q {
            Some(text) if text.contains('\0') => {
                cleaned = IssueFilter {
                    q: Some(domain::text::strip_nul(text.clone())),
                    ..filter.clone()
                };
                &cleaned
            }
            _ => filter,
        };
        read!(self, |c, q| {
            let search = q::search(c, filter).await?;
            let issues = q::list_issues(c, filter, search.as_ref(), caller).await?;
            let counts = q::count_issues(c, filter, search.as_ref()).await?;
            Ok((issues, counts))
        })
    }

    /// The query plans behind `list_issues(filter, caller)`, one line per
    /// plan node and an empty line after each query. Public for the plan
    /// tests, which fail on a full scan of `issues` or `messages`;
    /// `prefer_indexes` is for databases too small for the planner to see
    /// what an index saves (see `list_sql.rs`).
    pub async fn explain_list_issues(
        &self,
        filter: &IssueFilter,
        caller: i64,
        prefer_indexes: bool,
    ) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| {
            q::explain_list_issues(c, filter, caller, prefer_indexes).await
        })
    }

    pub async fn issue(&self, id: i64, caller: i64) -> Result<IssueView, StoreError> {
        read!(self, |c, q| q::issue_view(c, id, caller).await)?.ok_or(StoreError::NotFound("issue"))
    }

    /// A page of an issue's timeline, oldest first, and the cursor for the
    /// page before it.
    pub async fn messages(
        &self,
        issue_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<MessageView>, Option<i64>), StoreError> {
        read!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            let (page, more) = q::list_messages(c, issue_id, before, limit).await?;
            let cursor = if more {
                page.first().map(|m| m.id)
            } else {
                None
            };
            Ok((page, cursor))
        })
    }

    pub async fn message(&self, id: i64) -> Result<MessageView, StoreError> {
        read!(self, |c, q| q::message_view(c, id).await)?.ok_or(StoreError::NotFound("message"))
    }

    /// Take It, Assign It, unassign, Mark as Closed, Resolve, reopen.
    pub async fn transition(
        &self,
        issue_id: i64,
        actor: &Staff,
        action: IssueAction,
    ) -> Result<IssueView, StoreError> {
        let a = domain::Actor {
            id: actor.id,
            role: actor.role,
        };
        let now = now();
        write_tx!(self, |c, q| {
            q::transition(c, issue_id, &a, &actor.name, action, now).await?;
            q::issue_view(c, issue_id, actor.id)
                .await?
                .ok_or(StoreError::NotFound("issue"))
        })
    }

    pub async fn add_comment(
        &self,
        issue_id: i64,
        author: &Staff,
        body: &str,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::add_comment(c, issue_id, author, body, now).await?;
            q::message_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn edit_comment(
        &self,
        message_id: i64,
        actor: &Staff,
        body: &str,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::edit_comment(c, message_id, actor, body, now).await?;
            q::message_view(c, message_id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn delete_comment(&self, message_id: i64, actor: &Staff) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::delete_comment(c, message_id, actor, now)
            .await)
    }

    /// Queues a reply to the customer; the outbox worker sends it.
    pub async fn reply(
        &self,
        issue_id: i64,
        author: &Staff,
        body: &str,
        channel: Option<Channel>,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::create_reply(c, issue_id, author, body, channel, now).await?;
            q::message_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn mark_read(&self, issue_id: i64, staff_id: i64) -> Result<(), StoreError> {
        write_tx!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::mark_read(c, issue_id, staff_id).await
        })
    }

    /// View Customer; a merged-away id shows the customer it was merged into.
    pub async fn customer(&self, id: i64, caller: i64) -> Result<CustomerView, StoreError> {
        read!(self, |c, q| {
            let Some(id) = q::resolve_customer(c, id).await? else {
                return Err(StoreError::NotFound("customer"));
            };
            q::customer_view(c, id, caller).await
        })?
        .ok_or(StoreError::NotFound("customer"))
    }

    /// "New Ticket": an issue assigned to the caller with a first message.
    pub async fn create_issue(
        &self,
        actor: &Staff,
        new: &NewIssue,
    ) -> Result<IssueView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::create_issue(c, actor, new, now).await?;
            q::issue_view(c, id, actor.id)
                .await?
                .ok_or(StoreError::NotFound("issue"))
        })
    }

    /// Stores one inbound message by SPEC §3.1, durably, before returning.
    pub async fn ingest(
        &self,
        msg: &Inbound,
        opts: &IngestOptions,
    ) -> Result<IngestOutcome, StoreError> {
        write_tx!(self, |c, q| q::ingest(c, msg, opts, now()).await)
    }
}
