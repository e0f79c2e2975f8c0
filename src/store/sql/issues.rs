// Shared SQL (issues), `include!`d by each backend through `sql/mod.rs`.

/// The SELECT behind every issue view, in three pieces so that a query
/// built with `QueryBuilder` (the list, `list_sql.rs`) can bind the caller
/// where `issue_select!` writes a numbered parameter: the columns up to the
/// first caller placeholder, the text between the two, and the FROM.
macro_rules! issue_select_head {
    () => {
        "SELECT i.id, i.customer_id, i.channel, i.subject, i.status, i.assignee_id,
                i.resolution, i.previous_issue_id, i.ack_only, i.created_at, i.updated_at,
                i.last_message_at, i.closed_at, i.closed_by,
                cu.name AS customer_name,
                (SELECT ct.value FROM contacts ct WHERE ct.customer_id = i.customer_id
                    AND ct.kind = 'phone' ORDER BY ct.id LIMIT 1) AS customer_phone,
                (SELECT ct.value FROM contacts ct WHERE ct.customer_id = i.customer_id
                    AND ct.kind = 'email' ORDER BY ct.id LIMIT 1) AS customer_email,
                a.name AS assignee_name,
                cb.name AS closed_by_name,
                i.last_message_preview, i.message_count,
                (CASE WHEN i.last_message_staff_id = "
    };
}
// Unread: the newest message the caller did not write (kept on the issue
// by migration 0012's triggers) is newer than what they have read.
macro_rules! issue_select_mid {
    () => {
        " THEN COALESCE(i.last_other_message_id, 0) ELSE COALESCE(i.last_message_id, 0) END
                    > COALESCE((SELECT r.read_up_to FROM issue_reads r
                        WHERE r.issue_id = i.id AND r.staff_id = "
    };
}
macro_rules! issue_select_tail {
    () => {
        "), 0)) AS unread
         FROM issues i
         JOIN customers cu ON cu.id = i.customer_id
         LEFT JOIN staff a ON a.id = i.assignee_id
         LEFT JOIN staff cb ON cb.id = i.closed_by "
    };
}

/// The SELECT behind every issue view; `$caller` is the parameter holding
/// the caller's staff id (for `unread`).
macro_rules! issue_select {
    ($caller:literal) => {
        concat!(
            issue_select_head!(),
            $caller,
            issue_select_mid!(),
            $caller,
            issue_select_tail!()
        )
    };
}

#[derive(sqlx::FromRow)]
struct IssueRow {
    id: i64,
    customer_id: i64,
    channel: String,
    subject: String,
    status: String,
    assignee_id: Option<i64>,
    resolution: Option<String>,
    previous_issue_id: Option<i64>,
    ack_only: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_message_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    closed_by: Option<i64>,
    customer_name: String,
    customer_phone: Option<String>,
    customer_email: Option<String>,
    assignee_name: Option<String>,
    closed_by_name: Option<String>,
    last_message_preview: Option<String>,
    message_count: i64,
    unread: bool,
}

impl IssueRow {
    fn into_view(self) -> Result<IssueView, StoreError> {
        Ok(IssueView {
            id: self.id,
            status: crate::store::stored("issues", self.id, &self.status)?,
            subject: self.subject,
            channel: crate::store::stored("issues", self.id, &self.channel)?,
            customer_id: self.customer_id,
            customer: CustomerRef {
                id: self.customer_id,
                name: self.customer_name,
                phone: self.customer_phone,
                email: self.customer_email,
            },
            assignee_id: self.assignee_id,
            assignee: self
                .assignee_id
                .map(|id| PersonRef { id, name: self.assignee_name.unwrap_or_default() }),
            resolution: crate::store::stored_opt("issues", self.id, self.resolution.as_deref())?,
            closed_by: self
                .closed_by
                .map(|id| PersonRef { id, name: self.closed_by_name.unwrap_or_default() }),
            previous_issue_id: self.previous_issue_id,
            ack_only: self.ack_only,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_message_at: self.last_message_at,
            closed_at: self.closed_at,
            last_message_preview: self.last_message_preview.map(|p| preview(&p)),
            message_count: self.message_count,
            unread: self.unread,
        })
    }
}

fn preview(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= PREVIEW_CHARS {
        flat
    } else {
        let mut s: String = flat.chars().take(PREVIEW_CHARS - 1).collect();
        s.push('…');
        s
    }
}

pub async fn issue_view(
    c: &mut Conn,
    id: i64,
    caller: i64,
) -> Result<Option<IssueView>, StoreError> {
    let row: Option<IssueRow> = sqlx::query_as(concat!(issue_select!("$1"), " WHERE i.id = $2"))
        .bind(caller)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.map(IssueRow::into_view).transpose()
}

#[derive(sqlx::FromRow)]
struct StateRow {
    id: i64,
    customer_id: i64,
    status: String,
    assignee_id: Option<i64>,
    resolution: Option<String>,
    closed_by: Option<i64>,
}

impl StateRow {
    fn state(&self) -> Result<IssueState, StoreError> {
        Ok(IssueState {
            status: crate::store::stored("issues", self.id, &self.status)?,
            assignee_id: self.assignee_id,
            resolution: crate::store::stored_opt("issues", self.id, self.resolution.as_deref())?,
            closed_by: self.closed_by,
        })
    }
}

/// Loads an issue's state, locking the row on PostgreSQL. (SQLite write
/// transactions begin IMMEDIATE and so already hold the database's lock.)
async fn lock_issue(c: &mut Conn, id: i64) -> Result<Option<StateRow>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT id, customer_id, status, assignee_id, resolution, closed_by FROM issues WHERE id = $1",
        for_update!()
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await?)
}

async fn write_state(
    c: &mut Conn,
    id: i64,
    s: &IssueState,
    closed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE issues SET status = $2, assignee_id = $3, resolution = $4, closed_by = $5,
                closed_at = $6, updated_at = $7
         WHERE id = $1",
    )
    .bind(id)
    .bind(s.status.as_str())
    .bind(s.assignee_id)
    .bind(s.resolution.map(|r| r.as_str()))
    .bind(s.closed_by)
    .bind(closed_at)
    .bind(now)
    .execute(&mut *c)
    .await?;
    stream_event(c, "issue", None, Some(id), Some(id), now).await
}

async fn staff_is_active(c: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let active: Option<bool> = sqlx::query_scalar("SELECT active FROM staff WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(active.unwrap_or(false))
}

async fn staff_name(c: &mut Conn, id: i64) -> Result<String, StoreError> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM staff WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(name.unwrap_or_else(|| format!("staff #{id}")))
}

async fn open_issue_of(
    c: &mut Conn,
    customer_id: i64,
    except: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM issues WHERE customer_id = $1 AND status <> 'closed' AND id <> $2",
    )
    .bind(customer_id)
    .bind(except)
    .fetch_optional(&mut *c)
    .await?)
}

/// Runs one staff action through the state machine and records it.
pub async fn transition(
    c: &mut Conn,
    issue_id: i64,
    actor: &domain::Actor,
    actor_name: &str,
    action: IssueAction,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
    let state = row.state()?;
    let domain_action = match action {
        IssueAction::Take => domain::Action::Take,
        IssueAction::Assign(assignee_id) => domain::Action::Assign {
            assignee_id,
            assignee_active: staff_is_active(c, assignee_id).await?,
        },
        IssueAction::Unassign => domain::Action::Unassign,
        IssueAction::Close => domain::Action::Close,
        IssueAction::Resolve => domain::Action::Resolve,
        IssueAction::Reopen => domain::Action::Reopen {
            customer_open_issue: if state.status == IssueStatus::Closed {
                open_issue_of(c, row.customer_id, issue_id).await?
            } else {
                None
            },
            assignee_active: match state.assignee_id {
                Some(a) => staff_is_active(c, a).await?,
                None => false,
            },
        },
    };
    let t = domain::state::apply(state, *actor, domain_action)?;
    let Some(event) = t.event else { return Ok(()) };
    let closed_at = (t.to.status == IssueStatus::Closed).then_some(now);
    write_state(c, issue_id, &t.to, closed_at, now).await?;
    let assignee_name = match action {
        IssueAction::Assign(to) if event == EventType::Assigned => Some(staff_name(c, to).await?),
        _ => None,
    };
    let text = domain::state::event_text(event, actor_name, assignee_name.as_deref());
    let event_id = insert_event(c, issue_id, event, Some((actor.id, actor_name)), &text, now).await?;
    let notify_event = domain::notify::for_event(event);
    if let Some(ne) = notify_event {
        let subject = issue_subject(c, issue_id).await?;
        let line = format!("[#{issue_id}] {text}: {subject}");
        notify(c, ne, issue_id, Some(actor.id), Some(event_id), &line, now).await?;
    }
    Ok(())
}

async fn issue_subject(c: &mut Conn, issue_id: i64) -> Result<String, StoreError> {
    let s: Option<String> = sqlx::query_scalar("SELECT subject FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(domain::notify::excerpt(&s.unwrap_or_default()))
}
