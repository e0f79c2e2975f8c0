// Shared SQL for both backends. This file is `include!`d twice, once by
// `sqlite.rs` and once by `postgres.rs`, each of which defines `Db` and the
// dialect macros (`for_update!`, `skip_locked!`) before including it. The
// text is written once; the compiler type-checks it once per backend, with
// that backend's own encoders and decoders. See `store/mod.rs` for why.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::domain::{
    self, Channel, ContactKind, DeliveryStatus, EventType, IssueState, IssueStatus, MessageKind,
    Resolution, Role, ThreadingRule,
};
use crate::store::StoreError;
use crate::store::model::*;

pub type Conn = <Db as sqlx::Database>::Connection;

/// The longest preview of a message shown in the issue list.
const PREVIEW_CHARS: usize = 140;

// ---------------------------------------------------------------- staff

#[derive(sqlx::FromRow)]
struct StaffRow {
    id: i64,
    email: String,
    name: String,
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
}

impl StaffRow {
    fn into_staff(self) -> Staff {
        Staff {
            id: self.id,
            email: self.email,
            name: self.name,
            role: Role::parse(&self.role).unwrap_or(Role::Agent),
            active: self.active,
            created_at: self.created_at,
        }
    }
}

pub async fn insert_staff(
    c: &mut Conn,
    email: &str,
    name: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Staff, StoreError> {
    let row: StaffRow = sqlx::query_as(
        "INSERT INTO staff (email, name, role, active, created_at) VALUES ($1, $2, $3, TRUE, $4)
         RETURNING id, email, name, role, active, created_at",
    )
    .bind(email)
    .bind(name)
    .bind(role.as_str())
    .bind(now)
    .fetch_one(&mut *c)
    .await
    .map_err(|e| StoreError::on_unique(e, "email_taken", "a staff member with that email exists"))?;
    Ok(row.into_staff())
}

pub async fn list_staff(c: &mut Conn) -> Result<Vec<Staff>, StoreError> {
    let rows: Vec<StaffRow> =
        sqlx::query_as("SELECT id, email, name, role, active, created_at FROM staff ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    Ok(rows.into_iter().map(StaffRow::into_staff).collect())
}

pub async fn get_staff(c: &mut Conn, id: i64) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> =
        sqlx::query_as("SELECT id, email, name, role, active, created_at FROM staff WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    Ok(row.map(StaffRow::into_staff))
}

pub async fn staff_by_email(c: &mut Conn, email: &str) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> = sqlx::query_as(
        "SELECT id, email, name, role, active, created_at FROM staff WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(StaffRow::into_staff))
}

pub async fn update_staff(
    c: &mut Conn,
    id: i64,
    active: Option<bool>,
    role: Option<Role>,
    name: Option<&str>,
) -> Result<Option<Staff>, StoreError> {
    let row: Option<StaffRow> = sqlx::query_as(
        "UPDATE staff SET active = COALESCE($2, active), role = COALESCE($3, role),
                name = COALESCE($4, name)
         WHERE id = $1 RETURNING id, email, name, role, active, created_at",
    )
    .bind(id)
    .bind(active)
    .bind(role.map(|r| r.as_str()))
    .bind(name)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(StaffRow::into_staff))
}

pub async fn count_staff(c: &mut Conn) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff").fetch_one(&mut *c).await?)
}

pub async fn count_active_admins(c: &mut Conn) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM staff WHERE role = 'admin' AND active")
            .fetch_one(&mut *c)
            .await?,
    )
}

/// Locks the active admins' rows (PostgreSQL; SQLite's write transaction
/// already holds the database). Two admins stepping down at once would
/// otherwise each count the other as still active and both commit,
/// leaving no admin: with the rows locked, the second waits for the first
/// and its count sees the first one's change.
pub async fn lock_active_admins(c: &mut Conn) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "SELECT id FROM staff WHERE role = 'admin' AND active ORDER BY id",
        for_update!()
    ))
    .fetch_all(&mut *c)
    .await?;
    Ok(())
}

pub async fn insert_token(
    c: &mut Conn,
    staff_id: i64,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO api_tokens (staff_id, token_hash, created_at) VALUES ($1, $2, $3)")
        .bind(staff_id)
        .bind(token_hash)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The active staff member holding a token. The hash is looked up by the
/// unique index; the caller compares it again in constant time.
pub async fn staff_by_token(
    c: &mut Conn,
    token_hash: &str,
) -> Result<Option<(Staff, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT s.id, s.email, s.name, s.role, s.active, s.created_at, t.token_hash
         FROM api_tokens t JOIN staff s ON s.id = t.staff_id
         WHERE t.token_hash = $1 AND s.active",
    )
    .bind(token_hash)
    .fetch_optional(&mut *c)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let staff = StaffRow {
                id: r.try_get("id")?,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                role: r.try_get("role")?,
                active: r.try_get("active")?,
                created_at: r.try_get("created_at")?,
            };
            Ok(Some((staff.into_staff(), r.try_get("token_hash")?)))
        }
    }
}

// ---------------------------------------------------------------- issues

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
    fn into_view(self) -> IssueView {
        IssueView {
            id: self.id,
            status: IssueStatus::parse(&self.status).unwrap_or(IssueStatus::Unassigned),
            subject: self.subject,
            channel: Channel::parse(&self.channel).unwrap_or(Channel::Sms),
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
            resolution: self.resolution.as_deref().and_then(Resolution::parse),
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
        }
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
    Ok(row.map(IssueRow::into_view))
}

#[derive(sqlx::FromRow)]
struct StateRow {
    customer_id: i64,
    status: String,
    assignee_id: Option<i64>,
    resolution: Option<String>,
    closed_by: Option<i64>,
}

impl StateRow {
    fn state(&self) -> IssueState {
        IssueState {
            status: IssueStatus::parse(&self.status).unwrap_or(IssueStatus::Unassigned),
            assignee_id: self.assignee_id,
            resolution: self.resolution.as_deref().and_then(Resolution::parse),
            closed_by: self.closed_by,
        }
    }
}

/// Loads an issue's state, locking the row on PostgreSQL. (SQLite write
/// transactions begin IMMEDIATE and so already hold the database's lock.)
async fn lock_issue(c: &mut Conn, id: i64) -> Result<Option<StateRow>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT customer_id, status, assignee_id, resolution, closed_by FROM issues WHERE id = $1",
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
    let state = row.state();
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
    let text = match (event, action) {
        (EventType::Assigned, IssueAction::Assign(to)) => {
            let to_name = staff_name(c, to).await?;
            format!("{actor_name} assigned the issue to {to_name}")
        }
        (EventType::Taken, _) => format!("{actor_name} took the issue"),
        (EventType::Unassigned, _) => format!("{actor_name} unassigned the issue"),
        (EventType::Closed, _) => format!("{actor_name} closed the issue"),
        (EventType::Resolved, _) => format!("{actor_name} resolved the issue"),
        (EventType::Reopened, _) => format!("{actor_name} reopened the issue"),
        (other, _) => format!("{actor_name}: {other}"),
    };
    let event_id = insert_event(c, issue_id, event, Some((actor.id, actor_name)), &text, now).await?;
    let notify_event = match event {
        EventType::Assigned => Some(domain::notify::NotifyEvent::IssueAssigned),
        EventType::Closed | EventType::Resolved => Some(domain::notify::NotifyEvent::IssueClosed),
        _ => None,
    };
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
    Ok(excerpt(&s.unwrap_or_default()))
}

// ---------------------------------------------------------------- messages

/// A new timeline entry.
pub struct NewMessage<'a> {
    pub issue_id: i64,
    pub kind: MessageKind,
    pub channel: Option<Channel>,
    pub author_type: &'static str,
    pub author_id: Option<i64>,
    pub author_name: &'a str,
    pub body: &'a str,
    pub html: Option<&'a str>,
    pub raw: Option<&'a [u8]>,
    pub external_id: Option<&'a str>,
    pub threading_rule: Option<ThreadingRule>,
    pub contact_value: Option<&'a str>,
    pub delivery_status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
    pub event_actor_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub references_header: Option<&'a str>,
    pub mailbox: Option<&'a str>,
}

impl<'a> NewMessage<'a> {
    fn base(issue_id: i64, kind: MessageKind, body: &'a str, now: DateTime<Utc>) -> Self {
        NewMessage {
            issue_id,
            kind,
            channel: None,
            author_type: "system",
            author_id: None,
            author_name: "Switchboard",
            body,
            html: None,
            raw: None,
            external_id: None,
            threading_rule: None,
            contact_value: None,
            delivery_status: None,
            event_type: None,
            event_actor_id: None,
            created_at: now,
            references_header: None,
            mailbox: None,
        }
    }
}

pub async fn insert_message(c: &mut Conn, m: &NewMessage<'_>) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (issue_id, kind, channel, author_type, author_id, author_name, body,
                               html, raw, external_id, threading_rule, contact_value,
                               delivery_status, event_type, event_actor_id, created_at,
                               references_header, mailbox)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         RETURNING id",
    )
    .bind(m.issue_id)
    .bind(m.kind.as_str())
    .bind(m.channel.map(|c| c.as_str()))
    .bind(m.author_type)
    .bind(m.author_id)
    .bind(m.author_name)
    .bind(m.body)
    .bind(m.html)
    .bind(m.raw)
    .bind(m.external_id)
    .bind(m.threading_rule.map(|r| r.as_str()))
    .bind(m.contact_value)
    .bind(m.delivery_status.map(|d| d.as_str()))
    .bind(m.event_type.map(|e| e.as_str()))
    .bind(m.event_actor_id)
    .bind(m.created_at)
    .bind(m.references_header)
    .bind(m.mailbox)
    .fetch_one(&mut *c)
    .await?;
    if m.kind != MessageKind::Event {
        // The list's preview and count, kept on the issue (migration 0010).
        sqlx::query(
            "UPDATE issues SET message_count = message_count + 1, last_message_preview = $2
             WHERE id = $1",
        )
        .bind(m.issue_id)
        .bind(preview(m.body))
        .execute(&mut *c)
        .await?;
    }
    stream_event(c, "message", None, Some(m.issue_id), Some(id), m.created_at).await?;
    Ok(id)
}

/// Recomputes an issue's stored preview and message count from its
/// messages, after a message was edited or deleted (rare: comments only).
async fn refresh_summary(c: &mut Conn, issue_id: i64) -> Result<(), StoreError> {
    let last: Option<String> = sqlx::query_scalar(
        "SELECT body FROM messages WHERE issue_id = $1 AND kind <> 'event' ORDER BY id DESC LIMIT 1",
    )
    .bind(issue_id)
    .fetch_optional(&mut *c)
    .await?;
    sqlx::query(
        "UPDATE issues SET last_message_preview = $2, message_count =
             (SELECT COUNT(*) FROM messages m WHERE m.issue_id = $1 AND m.kind <> 'event')
         WHERE id = $1",
    )
    .bind(issue_id)
    .bind(last.as_deref().map(preview))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records an `event` message; `actor` is `None` for the system.
pub async fn insert_event(
    c: &mut Conn,
    issue_id: i64,
    event: EventType,
    actor: Option<(i64, &str)>,
    text: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let mut m = NewMessage::base(issue_id, MessageKind::Event, text, now);
    m.event_type = Some(event);
    if let Some((id, name)) = actor {
        m.author_type = "staff";
        m.author_id = Some(id);
        m.author_name = name;
        m.event_actor_id = Some(id);
    }
    insert_message(c, &m).await
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    issue_id: i64,
    kind: String,
    channel: Option<String>,
    author_type: String,
    author_id: Option<i64>,
    author_name: String,
    body: String,
    external_id: Option<String>,
    threading_rule: Option<String>,
    delivery_status: Option<String>,
    delivery_error_code: Option<String>,
    delivery_error_message: Option<String>,
    event_type: Option<String>,
    event_actor_id: Option<i64>,
    event_actor_name: Option<String>,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
}

macro_rules! message_select {
    () => {
        "SELECT m.id, m.issue_id, m.kind, m.channel, m.author_type, m.author_id, m.author_name,
                m.body, m.external_id, m.threading_rule, m.delivery_status,
                m.delivery_error_code, m.delivery_error_message, m.event_type,
                m.event_actor_id, ea.name AS event_actor_name, m.created_at, m.edited_at
         FROM messages m LEFT JOIN staff ea ON ea.id = m.event_actor_id "
    };
}

impl MessageRow {
    fn into_view(self) -> MessageView {
        let kind = MessageKind::parse(&self.kind).unwrap_or(MessageKind::Event);
        let author_kind = match self.author_type.as_str() {
            "customer" => "customer",
            "staff" => "staff",
            _ => "system",
        };
        MessageView {
            id: self.id,
            issue_id: self.issue_id,
            kind,
            channel: self.channel.as_deref().and_then(Channel::parse),
            author: Author { kind: author_kind, id: self.author_id, name: self.author_name },
            body: self.body,
            external_id: self.external_id,
            created_at: self.created_at,
            edited_at: self.edited_at,
            attachments: Vec::new(),
            refused_attachments: Vec::new(),
            threading_rule: self.threading_rule.as_deref().and_then(ThreadingRule::parse),
            delivery: self.delivery_status.as_deref().and_then(DeliveryStatus::parse).map(
                |status| Delivery {
                    status,
                    error: self.delivery_error_code.map(|code| DeliveryError {
                        message: self
                            .delivery_error_message
                            .unwrap_or_else(|| "delivery failed".to_string()),
                        code,
                    }),
                },
            ),
            event: self.event_type.as_deref().and_then(EventType::parse).map(|kind| EventView {
                kind,
                actor: self
                    .event_actor_id
                    .map(|id| PersonRef { id, name: self.event_actor_name.unwrap_or_default() }),
            }),
        }
    }
}

pub async fn message_view(c: &mut Conn, id: i64) -> Result<Option<MessageView>, StoreError> {
    let row: Option<MessageRow> = sqlx::query_as(concat!(message_select!(), " WHERE m.id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut views = [row.into_view()];
    let rows = attachments_of(c, views[0].issue_id, Some(id)).await?;
    attach(&mut views, rows);
    let [view] = views;
    Ok(Some(view))
}

/// A page of the timeline: the newest `limit` messages older than `before`,
/// returned oldest first, and whether older ones remain.
pub async fn list_messages(
    c: &mut Conn,
    issue_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<MessageView>, bool), StoreError> {
    let mut rows: Vec<MessageRow> = sqlx::query_as(concat!(
        message_select!(),
        " WHERE m.issue_id = $1 AND ($2 IS NULL OR m.id < $2) ORDER BY m.id DESC LIMIT $3"
    ))
    .bind(issue_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&mut *c)
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    let mut views: Vec<MessageView> = rows.into_iter().map(MessageRow::into_view).collect();
    if !views.is_empty() {
        let files = attachments_of(c, issue_id, None).await?;
        attach(&mut views, files);
    }
    Ok((views, more))
}

pub async fn issue_exists(c: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM issues WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(found.is_some())
}

async fn touch_issue(
    c: &mut Conn,
    issue_id: i64,
    last_message: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if last_message {
        sqlx::query("UPDATE issues SET last_message_at = $2, updated_at = $2 WHERE id = $1")
            .bind(issue_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
    } else {
        sqlx::query("UPDATE issues SET updated_at = $2 WHERE id = $1")
            .bind(issue_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
    }
    stream_event(c, "issue", None, Some(issue_id), Some(issue_id), now).await
}

pub async fn add_comment(
    c: &mut Conn,
    issue_id: i64,
    author: &Staff,
    body: &str,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    if !issue_exists(c, issue_id).await? {
        return Err(StoreError::NotFound("issue"));
    }
    let mut m = NewMessage::base(issue_id, MessageKind::Comment, body, now);
    m.author_type = "staff";
    m.author_id = Some(author.id);
    m.author_name = &author.name;
    let id = insert_message(c, &m).await?;
    touch_issue(c, issue_id, false, now).await?;
    let line = format!("[#{issue_id}] {} commented: {}", author.name, excerpt(body));
    notify(c, domain::notify::NotifyEvent::CommentAdded, issue_id, Some(author.id), Some(id), &line, now).await?;
    Ok(id)
}

/// Checks that `actor` may change a comment: its author within five hours,
/// an admin at any time. Returns the issue id.
async fn comment_guard(
    c: &mut Conn,
    message_id: i64,
    actor: &Staff,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT issue_id, kind, author_id, created_at FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    let kind: String = row.try_get("kind")?;
    if kind != MessageKind::Comment.as_str() {
        return Err(StoreError::conflict(
            "not_editable",
            "only private comments can be edited or deleted; sent replies cannot be unsent",
        ));
    }
    let author_id: Option<i64> = row.try_get("author_id")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let who = domain::Actor { id: actor.id, role: actor.role };
    domain::state::may_change_comment(author_id, created_at, who, now)
        .map_err(|e| StoreError::forbidden(e.code(), &e.to_string()))?;
    Ok(row.try_get("issue_id")?)
}

pub async fn edit_comment(
    c: &mut Conn,
    message_id: i64,
    actor: &Staff,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    comment_guard(c, message_id, actor, now).await?;
    sqlx::query("UPDATE messages SET body = $2, edited_at = $3 WHERE id = $1")
        .bind(message_id)
        .bind(body)
        .bind(now)
        .execute(&mut *c)
        .await?;
    let issue_id: i64 = sqlx::query_scalar("SELECT issue_id FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&mut *c)
        .await?;
    refresh_summary(c, issue_id).await?;
    stream_event(c, "message", None, Some(issue_id), Some(message_id), now).await
}

pub async fn delete_comment(
    c: &mut Conn,
    message_id: i64,
    actor: &Staff,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let issue_id = comment_guard(c, message_id, actor, now).await?;
    sqlx::query("DELETE FROM messages WHERE id = $1").bind(message_id).execute(&mut *c).await?;
    refresh_summary(c, issue_id).await?;
    touch_issue(c, issue_id, false, now).await?;
    Ok(())
}

pub async fn mark_read(c: &mut Conn, issue_id: i64, staff_id: i64) -> Result<(), StoreError> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE issue_id = $1")
        .bind(issue_id)
        .fetch_one(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO issue_reads (staff_id, issue_id, read_up_to) VALUES ($1, $2, $3)
         ON CONFLICT (staff_id, issue_id) DO UPDATE SET read_up_to = excluded.read_up_to",
    )
    .bind(staff_id)
    .bind(issue_id)
    .bind(max.unwrap_or(0))
    .execute(&mut *c)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- replies

struct ContactRow {
    customer_id: i64,
    value: String,
    opted_out: bool,
}

/// The contact a reply on `channel` goes to: the address the customer last
/// wrote from on this issue, else their first contact of that kind.
async fn reply_contact(
    c: &mut Conn,
    issue_id: i64,
    customer_id: i64,
    channel: Channel,
) -> Result<Option<ContactRow>, StoreError> {
    let kind = match channel {
        Channel::Sms => ContactKind::Phone,
        Channel::Email => ContactKind::Email,
    };
    let last: Option<String> = sqlx::query_scalar(
        "SELECT contact_value FROM messages
         WHERE issue_id = $1 AND kind = 'customer' AND channel = $2 AND contact_value IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(issue_id)
    .bind(channel.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let row = sqlx::query(
        "SELECT customer_id, value, opted_out FROM contacts
         WHERE customer_id = $1 AND kind = $2 AND ($3 IS NULL OR value = $3)
         ORDER BY id LIMIT 1",
    )
    .bind(customer_id)
    .bind(kind.as_str())
    .bind(last.clone())
    .fetch_optional(&mut *c)
    .await?;
    let row = match (row, last) {
        (Some(r), _) => Some(r),
        // The customer wrote from an address that was since merged away.
        (None, Some(_)) => {
            sqlx::query(
                "SELECT customer_id, value, opted_out FROM contacts
                 WHERE customer_id = $1 AND kind = $2 ORDER BY id LIMIT 1",
            )
            .bind(customer_id)
            .bind(kind.as_str())
            .fetch_optional(&mut *c)
            .await?
        }
        (None, None) => None,
    };
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(ContactRow {
            customer_id: r.try_get("customer_id")?,
            value: r.try_get("value")?,
            opted_out: r.try_get("opted_out")?,
        })),
    }
}

async fn enqueue(
    c: &mut Conn,
    kind: &str,
    message_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3)",
    )
    .bind(kind)
    .bind(message_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn no_contact(channel: Channel) -> StoreError {
    match channel {
        Channel::Sms => StoreError::invalid("no_contact", "the customer has no phone number"),
        Channel::Email => StoreError::invalid("no_contact", "the customer has no email address"),
    }
}

fn opted_out() -> StoreError {
    StoreError::conflict(
        "contact_opted_out",
        "the customer opted out of SMS (STOP); they must text START before you can reply",
    )
}

/// Queues a reply: the message (delivery `queued`) and its outbox row in one
/// transaction, so a reply is never shown as sent without being queued.
pub async fn create_reply(
    c: &mut Conn,
    issue_id: i64,
    author: &Staff,
    body: &str,
    channel: Option<Channel>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
    if row.state().status == IssueStatus::Closed {
        return Err(domain::TransitionError::IssueClosed.into());
    }
    let issue_channel: String = sqlx::query_scalar("SELECT channel FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_one(&mut *c)
        .await?;
    let channel = channel.or(Channel::parse(&issue_channel)).unwrap_or(Channel::Sms);
    let contact = reply_contact(c, issue_id, row.customer_id, channel)
        .await?
        .ok_or_else(|| no_contact(channel))?;
    if contact.opted_out && channel == Channel::Sms {
        return Err(opted_out());
    }
    let mut m = NewMessage::base(issue_id, MessageKind::Reply, body, now);
    m.channel = Some(channel);
    m.author_type = "staff";
    m.author_id = Some(author.id);
    m.author_name = &author.name;
    m.contact_value = Some(&contact.value);
    m.delivery_status = Some(DeliveryStatus::Queued);
    let id = insert_message(c, &m).await?;
    enqueue(c, channel.as_str(), id, now).await?;
    touch_issue(c, issue_id, true, now).await?;
    Ok(id)
}

// ---------------------------------------------------------------- customers

async fn find_contact(
    c: &mut Conn,
    contact: &domain::Contact,
) -> Result<Option<ContactRow>, StoreError> {
    let row = sqlx::query("SELECT customer_id, value, opted_out FROM contacts WHERE kind = $1 AND value = $2")
        .bind(contact.kind().as_str())
        .bind(contact.value())
        .fetch_optional(&mut *c)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(ContactRow {
            customer_id: r.try_get("customer_id")?,
            value: r.try_get("value")?,
            opted_out: r.try_get("opted_out")?,
        })),
    }
}

/// Finds the customer owning a contact, creating both when unknown. When a
/// concurrent transaction creates the same contact first, this answers
/// `StoreError::Retry` so the whole transaction runs again and finds it.
async fn identify(
    c: &mut Conn,
    contact: &domain::Contact,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ContactRow, StoreError> {
    if let Some(found) = find_contact(c, contact).await? {
        return Ok(found);
    }
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(contact.value());
    let customer_id: i64 =
        sqlx::query_scalar("INSERT INTO customers (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now)
            .fetch_one(&mut *c)
            .await?;
    let inserted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
         VALUES ($1, $2, $3, FALSE, $4) ON CONFLICT (kind, value) DO NOTHING RETURNING id",
    )
    .bind(customer_id)
    .bind(contact.kind().as_str())
    .bind(contact.value())
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if inserted.is_none() {
        return Err(StoreError::Retry);
    }
    Ok(ContactRow { customer_id, value: contact.value().to_string(), opted_out: false })
}

pub async fn customer_view(
    c: &mut Conn,
    id: i64,
    caller: i64,
) -> Result<Option<CustomerView>, StoreError> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(name) = name else { return Ok(None) };
    let contacts = sqlx::query("SELECT kind, value, opted_out FROM contacts WHERE customer_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(ContactView {
                kind: ContactKind::parse(&kind).unwrap_or(ContactKind::Phone),
                value: r.try_get("value")?,
                opted_out: r.try_get("opted_out")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let rows: Vec<IssueRow> = sqlx::query_as(concat!(
        issue_select!("$1"),
        " WHERE i.customer_id = $2 ORDER BY i.last_message_at DESC, i.id DESC LIMIT 100"
    ))
    .bind(caller)
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    Ok(Some(CustomerView {
        id,
        name,
        contacts,
        issues: rows.into_iter().map(IssueRow::into_view).collect(),
    }))
}

pub async fn customer_exists(c: &mut Conn, id: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(found.is_some())
}

/// "New Ticket": opens an issue assigned to the caller and queues the first
/// message to the customer.
pub async fn create_issue(
    c: &mut Conn,
    actor: &Staff,
    new: &NewIssue,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let (customer_id, channel) = match (&new.contact, new.customer_id) {
        (Some(contact), _) => (identify(c, contact, None, now).await?.customer_id, contact.channel()),
        (None, Some(id)) => {
            if !customer_exists(c, id).await? {
                return Err(StoreError::invalid("unknown_customer", "no customer with that id"));
            }
            let first: Option<String> =
                sqlx::query_scalar("SELECT kind FROM contacts WHERE customer_id = $1 ORDER BY id LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await?;
            let channel = match first.as_deref() {
                Some("email") => Channel::Email,
                Some(_) => Channel::Sms,
                None => return Err(StoreError::invalid("no_contact", "the customer has no contact")),
            };
            (id, channel)
        }
        (None, None) => {
            return Err(StoreError::invalid("missing_customer", "give customer_id or contact"));
        }
    };
    if let Some(open) = open_issue_of(c, customer_id, 0).await? {
        return Err(StoreError::Rule(crate::store::RuleError {
            status: 409,
            code: "customer_has_open_issue",
            message: "the customer already has an open issue: reply there".into(),
            issue_id: Some(open),
        }));
    }
    let subject = match &new.subject {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => domain::text::sms_subject(&new.body),
    };
    let issue_id: i64 = sqlx::query_scalar(
        "INSERT INTO issues (customer_id, channel, subject, status, assignee_id, ack_only,
                             created_at, updated_at, last_message_at)
         VALUES ($1, $2, $3, 'assigned', $4, FALSE, $5, $5, $5) RETURNING id",
    )
    .bind(customer_id)
    .bind(channel.as_str())
    .bind(&subject)
    .bind(actor.id)
    .bind(now)
    .fetch_one(&mut *c)
    .await
    .map_err(StoreError::retry_on_unique)?;
    let contact = match &new.contact {
        Some(ct) => find_contact(c, ct).await?,
        None => reply_contact(c, issue_id, customer_id, channel).await?,
    }
    .ok_or_else(|| no_contact(channel))?;
    if contact.opted_out && channel == Channel::Sms {
        return Err(opted_out());
    }
    let mut m = NewMessage::base(issue_id, MessageKind::Reply, &new.body, now);
    m.channel = Some(channel);
    m.author_type = "staff";
    m.author_id = Some(actor.id);
    m.author_name = &actor.name;
    m.contact_value = Some(&contact.value);
    m.delivery_status = Some(DeliveryStatus::Queued);
    let message_id = insert_message(c, &m).await?;
    enqueue(c, channel.as_str(), message_id, now).await?;
    stream_event(c, "issue", None, Some(issue_id), Some(issue_id), now).await?;
    Ok(issue_id)
}

// ---------------------------------------------------------------- ingest

#[derive(sqlx::FromRow)]
struct RefRow {
    id: i64,
    customer_id: i64,
    status: String,
    closed_at: Option<DateTime<Utc>>,
}

impl RefRow {
    fn into_ref(self) -> domain::threading::IssueRef {
        domain::threading::IssueRef {
            id: self.id,
            customer_id: self.customer_id,
            status: IssueStatus::parse(&self.status).unwrap_or(IssueStatus::Closed),
            closed_at: self.closed_at,
        }
    }
}

async fn issue_ref(c: &mut Conn, id: i64) -> Result<Option<domain::threading::IssueRef>, StoreError> {
    let row: Option<RefRow> =
        sqlx::query_as("SELECT id, customer_id, status, closed_at FROM issues WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    Ok(row.map(RefRow::into_ref))
}

/// The issue holding the first of `references` that we stored.
async fn issue_by_reference(
    c: &mut Conn,
    channel: Channel,
    references: &[String],
) -> Result<Option<domain::threading::IssueRef>, StoreError> {
    for r in references.iter().take(50) {
        let row: Option<RefRow> = sqlx::query_as(
            "SELECT i.id, i.customer_id, i.status, i.closed_at FROM messages m
             JOIN issues i ON i.id = m.issue_id WHERE m.channel = $1 AND m.external_id = $2",
        )
        .bind(channel.as_str())
        .bind(r)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(row) = row {
            return Ok(Some(row.into_ref()));
        }
    }
    Ok(None)
}

/// SPEC §3.1 in one transaction: dedupe, identify, decide, store.
pub async fn ingest(
    c: &mut Conn,
    msg: &Inbound,
    opts: &IngestOptions,
    now: DateTime<Utc>,
) -> Result<IngestOutcome, StoreError> {
    // Rule 1: dedupe.
    let dup = sqlx::query("SELECT id, issue_id FROM messages WHERE channel = $1 AND external_id = $2")
        .bind(msg.channel.as_str())
        .bind(&msg.external_id)
        .fetch_optional(&mut *c)
        .await?;
    if let Some(r) = dup {
        return Ok(IngestOutcome::Duplicate {
            message_id: r.try_get("id")?,
            issue_id: r.try_get("issue_id")?,
        });
    }
    // Rule 2: identify.
    let contact = identify(c, &msg.sender, msg.sender_name.as_deref(), now).await?;
    let customer_id = contact.customer_id;
    let customer_name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(customer_id)
        .fetch_one(&mut *c)
        .await?;
    // Rules 3–5: gather the facts, let the domain decide.
    let by_reference = match issue_by_reference(c, msg.channel, &msg.references).await? {
        Some(r) => Some(r),
        None => match msg.referenced_issue {
            Some(id) => issue_ref(c, id).await?,
            None => None,
        },
    };
    let by_token = match msg.subject.as_deref().map(domain::text::subject_tokens) {
        Some(tokens) if !tokens.is_empty() => issue_ref(c, tokens[0]).await?,
        _ => None,
    };
    let open_issue: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM issues WHERE customer_id = $1 AND status <> 'closed'",
    )
    .bind(customer_id)
    .fetch_optional(&mut *c)
    .await?;
    let latest_closed: Option<RefRow> = sqlx::query_as(
        "SELECT id, customer_id, status, closed_at FROM issues
         WHERE customer_id = $1 AND status = 'closed' ORDER BY closed_at DESC, id DESC LIMIT 1",
    )
    .bind(customer_id)
    .fetch_optional(&mut *c)
    .await?;
    let facts = domain::ThreadingFacts {
        customer_id,
        by_reference,
        by_token,
        open_issue,
        latest_closed: latest_closed.map(RefRow::into_ref),
        is_automated: msg.is_automated,
        now,
        reopen_window: opts.reopen_window,
    };
    let placement = domain::threading::decide(&facts);

    let mut m = NewMessage::base(0, MessageKind::Customer, &msg.body, msg.received_at);
    m.channel = Some(msg.channel);
    m.author_type = "customer";
    m.author_id = Some(customer_id);
    m.author_name = &customer_name;
    m.html = msg.html.as_deref();
    m.raw = msg.raw.as_deref();
    m.external_id = Some(&msg.external_id);
    m.contact_value = Some(&contact.value);
    m.references_header = msg.references_header.as_deref();
    m.mailbox = msg.mailbox.as_deref();

    let mut opened = false;
    let (issue_id, rule) = match placement {
        domain::Placement::DropAutomated => return Ok(IngestOutcome::DroppedAutomated),
        domain::Placement::RecordAutomated { issue_id } => {
            m.issue_id = issue_id;
            m.kind = MessageKind::Event;
            m.event_type = Some(if msg.is_bounce { EventType::Bounce } else { EventType::AutoReply });
            let text = format!(
                "{}{}",
                if msg.is_bounce { "Delivery failure report received" } else { "Automatic reply received" },
                msg.subject.as_deref().map(|s| format!(": {s}")).unwrap_or_default()
            );
            m.body = &text;
            let message_id = insert_message(c, &m).await?;
            touch_issue(c, issue_id, false, now).await?;
            return Ok(IngestOutcome::RecordedAutomated { message_id, issue_id });
        }
        domain::Placement::Append { issue_id, rule } => (issue_id, rule),
        domain::Placement::Reopen { issue_id } => {
            let row = lock_issue(c, issue_id).await?.ok_or(StoreError::NotFound("issue"))?;
            let state = row.state();
            let active = match state.assignee_id {
                Some(a) => staff_is_active(c, a).await?,
                None => false,
            };
            let to = domain::state::reopened(state, active);
            write_state(c, issue_id, &to, None, now).await.map_err(StoreError::retry_if_unique)?;
            insert_event(c, issue_id, EventType::Reopened, None, "The customer wrote again: issue reopened", now)
                .await?;
            (issue_id, ThreadingRule::Reopened)
        }
        domain::Placement::Open { previous_issue_id } => {
            let subject = match (msg.channel, msg.subject.as_deref()) {
                (Channel::Email, Some(s)) => domain::text::clean_subject(s),
                _ => domain::text::sms_subject(&msg.body),
            };
            let ack_only = domain::text::is_ack_only(&msg.body, &opts.ack_words);
            let issue_id: i64 = sqlx::query_scalar(
                "INSERT INTO issues (customer_id, channel, subject, status, previous_issue_id,
                                     ack_only, created_at, updated_at, last_message_at, mailbox)
                 VALUES ($1, $2, $3, 'unassigned', $4, $5, $6, $6, $6, $7) RETURNING id",
            )
            .bind(customer_id)
            .bind(msg.channel.as_str())
            .bind(&subject)
            .bind(previous_issue_id)
            .bind(ack_only)
            .bind(now)
            .bind(msg.mailbox.as_deref())
            .fetch_one(&mut *c)
            .await
            .map_err(StoreError::retry_on_unique)?;
            opened = true;
            (issue_id, ThreadingRule::New)
        }
    };
    m.issue_id = issue_id;
    m.threading_rule = Some(rule);
    let message_id = insert_message(c, &m).await.map_err(StoreError::retry_if_unique)?;
    // Media downloads are queued with the message: the text is never held
    // up by them, and a failed download is retried from the outbox.
    for (index, (url, content_type)) in msg.media.iter().enumerate() {
        let payload = serde_json::json!({ "url": url, "content_type": content_type, "index": index });
        enqueue_job(c, "media", message_id, &payload, now).await?;
    }
    for a in &msg.attachments {
        insert_attachment(c, message_id, issue_id, a, now).await?;
    }
    touch_issue(c, issue_id, true, now).await?;

    // SPEC §3.7: acknowledgement-only new issues may be resolved at once.
    if opened && opts.auto_resolve_acks && domain::text::is_ack_only(&msg.body, &opts.ack_words) {
        let state = IssueState::new_unassigned();
        if let Some(to) = domain::state::system_close(state, Resolution::Resolved) {
            write_state(c, issue_id, &to, Some(now), now).await?;
            insert_event(
                c,
                issue_id,
                EventType::Resolved,
                None,
                "Resolved automatically: the message was only an acknowledgement",
                now,
            )
            .await?;
        }
    }

    // SPEC §5: who hears about it.
    let status: String = sqlx::query_scalar("SELECT status FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_one(&mut *c)
        .await?;
    let channel_name = match msg.channel {
        Channel::Sms => "SMS",
        Channel::Email => "email",
    };
    let (event, line) = if opened {
        (
            domain::notify::NotifyEvent::IssueOpened,
            format!("[#{issue_id}] New {channel_name} from {customer_name}: {}", excerpt(&msg.body)),
        )
    } else if status == IssueStatus::Assigned.as_str() {
        (
            domain::notify::NotifyEvent::CustomerReplied,
            format!("[#{issue_id}] {customer_name} wrote: {}", excerpt(&msg.body)),
        )
    } else {
        (
            domain::notify::NotifyEvent::UnassignedActivity,
            format!("[#{issue_id}] {customer_name} wrote: {}", excerpt(&msg.body)),
        )
    };
    if status != IssueStatus::Closed.as_str() {
        notify(c, event, issue_id, None, Some(message_id), &line, now).await?;
    }

    // SPEC §3.8: one templated acknowledgement for a new issue, never to an
    // automated sender or ourselves, at most `max_per_hour` per recipient.
    if opened
        && !msg.is_automated
        && status != IssueStatus::Closed.as_str()
        && domain::text::opt_keyword(&msg.body).is_none()
        && !opts.own_addresses.iter().any(|a| a.eq_ignore_ascii_case(&contact.value))
        && !(contact.opted_out && msg.channel == Channel::Sms)
        && let Some((template, max_per_hour)) = &opts.auto_ack
    {
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE kind = 'reply' AND author_type = 'system'
             AND contact_value = $1 AND created_at > $2",
        )
        .bind(&contact.value)
        .bind(now - chrono::Duration::hours(1))
        .fetch_one(&mut *c)
        .await?;
        if recent < i64::from(*max_per_hour) {
            let text = template.replace("{issue}", &issue_id.to_string());
            let mut ack = NewMessage::base(issue_id, MessageKind::Reply, &text, now);
            ack.channel = Some(msg.channel);
            ack.contact_value = Some(&contact.value);
            ack.delivery_status = Some(DeliveryStatus::Queued);
            let ack_id = insert_message(c, &ack).await?;
            enqueue(c, msg.channel.as_str(), ack_id, now).await?;
        }
    }

    // SPEC §3.6: STOP / START.
    if msg.channel == Channel::Sms
        && let Some(k) = domain::text::opt_keyword(&msg.body)
    {
        let (want, event, text) = match k {
            domain::text::OptKeyword::OptOut => {
                (true, EventType::OptedOut, "The customer opted out of SMS (STOP)")
            }
            domain::text::OptKeyword::OptIn => {
                (false, EventType::OptedIn, "The customer opted back in to SMS (START)")
            }
        };
        if contact.opted_out != want {
            sqlx::query("UPDATE contacts SET opted_out = $3 WHERE kind = $1 AND value = $2")
                .bind(msg.sender.kind().as_str())
                .bind(msg.sender.value())
                .bind(want)
                .execute(&mut *c)
                .await?;
            insert_event(c, issue_id, event, None, text, now).await?;
        }
    }
    Ok(IngestOutcome::Stored { message_id, issue_id, rule, opened })
}

// ---------------------------------------------------------------- outbox

/// Claims the next due outbox item for `lease`; `None` when nothing is due.
pub async fn claim_outbox(
    c: &mut Conn,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<OutboxJob>, StoreError> {
    let row = sqlx::query(concat!(
        "UPDATE outbox SET locked_until = $2, attempts = attempts + 1, updated_at = $1
         WHERE id = (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1
                     AND (locked_until IS NULL OR locked_until <= $1)
                     ORDER BY next_attempt_at, id LIMIT 1",
        skip_locked!(),
        ") RETURNING id, kind, message_id, attempts, payload"
    ))
    .bind(now)
    .bind(lease_until)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    let message_id: Option<i64> = row.try_get("message_id")?;
    let attempts: i64 = row.try_get("attempts")?;
    let payload: Option<String> = row.try_get("payload")?;
    let Some(message_id) = message_id else {
        // Jobs that belong to no message (broadcasts) carry everything in
        // their payload.
        if let Some(p) = payload.as_deref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()) {
            return Ok(Some(OutboxJob {
                id,
                kind,
                attempts,
                message_id: 0,
                issue_id: 0,
                channel: Channel::Sms,
                to: String::new(),
                body: String::new(),
                payload: Some(p),
            }));
        }
        outbox_finish(c, id, "failed", Some("outbox item without a message"), now).await?;
        return Ok(None);
    };
    let m = sqlx::query("SELECT issue_id, channel, contact_value, body FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(m) = m else {
        outbox_finish(c, id, "failed", Some("message no longer exists"), now).await?;
        return Ok(None);
    };
    let channel: Option<String> = m.try_get("channel")?;
    let to: Option<String> = m.try_get("contact_value")?;
    if payload.is_none() {
        sqlx::query("UPDATE messages SET delivery_status = 'sending' WHERE id = $1 AND delivery_status = 'queued'")
            .bind(message_id)
            .execute(&mut *c)
            .await?;
    }
    Ok(Some(OutboxJob {
        id,
        kind,
        attempts,
        message_id,
        issue_id: m.try_get("issue_id")?,
        channel: channel.as_deref().and_then(Channel::parse).unwrap_or(Channel::Sms),
        to: to.unwrap_or_default(),
        body: m.try_get("body")?,
        payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
    }))
}

pub async fn outbox_finish(
    c: &mut Conn,
    id: i64,
    state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET state = $2, last_error = $3, locked_until = NULL, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(state)
        .bind(error)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn outbox_retry(
    c: &mut Conn,
    id: i64,
    next_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $2, last_error = $3, locked_until = NULL, updated_at = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(next_at)
    .bind(error)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn outbox_depth(c: &mut Conn) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        .fetch_one(&mut *c)
        .await?)
}

/// Moves a reply's delivery forward (never back: reports arrive out of
/// order). `external_id` records the provider's id once it is known.
pub async fn update_delivery(
    c: &mut Conn,
    message_id: i64,
    status: DeliveryStatus,
    error: Option<(&str, &str)>,
    external_id: Option<&str>,
) -> Result<bool, StoreError> {
    let current: Option<Option<String>> =
        sqlx::query_scalar("SELECT delivery_status FROM messages WHERE id = $1")
            .bind(message_id)
            .fetch_optional(&mut *c)
            .await?;
    let Some(current) = current else { return Ok(false) };
    if let Some(ext) = external_id {
        sqlx::query("UPDATE messages SET external_id = $2 WHERE id = $1")
            .bind(message_id)
            .bind(ext)
            .execute(&mut *c)
            .await?;
    }
    let current = current.as_deref().and_then(DeliveryStatus::parse).unwrap_or(DeliveryStatus::Queued);
    if !current.may_become(status) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE messages SET delivery_status = $2, delivery_error_code = $3,
                delivery_error_message = $4 WHERE id = $1",
    )
    .bind(message_id)
    .bind(status.as_str())
    .bind(error.map(|e| e.0))
    .bind(error.map(|e| e.1))
    .execute(&mut *c)
    .await?;
    let issue_id: i64 = sqlx::query_scalar("SELECT issue_id FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&mut *c)
        .await?;
    stream_event(c, "message", None, Some(issue_id), Some(message_id), crate::store::now()).await?;
    Ok(true)
}

/// The reply a provider's message id belongs to.
pub async fn reply_by_external_id(
    c: &mut Conn,
    channel: Channel,
    external_id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM messages WHERE channel = $1 AND external_id = $2 AND kind = 'reply'",
    )
    .bind(channel.as_str())
    .bind(external_id)
    .fetch_optional(&mut *c)
    .await?)
}

// ---------------------------------------------------------------- rejected

pub async fn insert_rejected(
    c: &mut Conn,
    kind: &str,
    reason: &str,
    source: Option<&str>,
    detail: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO rejected (kind, reason, source, detail, received_at, last_received_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(kind)
    .bind(reason)
    .bind(source)
    .bind(detail.to_string())
    .bind(now)
    .fetch_one(&mut *c)
    .await?)
}

/// Counts one more of the newest row with this kind, reason and source
/// seen since `since`; `None` when there is none to add to.
pub async fn repeat_rejected(
    c: &mut Conn,
    kind: &str,
    reason: &str,
    source: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE rejected SET repeats = repeats + 1, last_received_at = $5
         WHERE id = (SELECT id FROM rejected WHERE kind = $1 AND reason = $2 AND source = $3
                     AND last_received_at >= $4 ORDER BY id DESC LIMIT 1)
         RETURNING id",
    )
    .bind(kind)
    .bind(reason)
    .bind(source)
    .bind(since)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?)
}

pub async fn purge_rejected(c: &mut Conn, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM rejected WHERE COALESCE(last_received_at, received_at) < $1")
        .bind(before)
        .execute(&mut *c)
        .await?
        .rows_affected())
}

pub async fn list_rejected(
    c: &mut Conn,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Rejected>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, kind, reason, source, repeats, detail, received_at, last_received_at FROM rejected
         WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?;
    rows.into_iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(Rejected {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                reason: r.try_get("reason")?,
                source: r.try_get("source")?,
                repeats: r.try_get("repeats")?,
                received_at: r.try_get("received_at")?,
                last_received_at: r.try_get("last_received_at")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

// ---------------------------------------------------------------- notifications

/// Appends to the live event log (SSE), in the caller's transaction.
pub async fn stream_event(
    c: &mut Conn,
    kind: &str,
    staff_id: Option<i64>,
    issue_id: Option<i64>,
    ref_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO stream_events (kind, staff_id, issue_id, ref_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(kind)
    .bind(staff_id)
    .bind(issue_id)
    .bind(ref_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn people(c: &mut Conn) -> Result<Vec<domain::notify::Person>, StoreError> {
    let rows = sqlx::query("SELECT id, role, active FROM staff").fetch_all(&mut *c).await?;
    rows.into_iter()
        .map(|r| {
            let role: String = r.try_get("role")?;
            Ok(domain::notify::Person {
                id: r.try_get("id")?,
                role: Role::parse(&role).unwrap_or(Role::Agent),
                active: r.try_get("active")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(StoreError::from)
}

pub async fn watchers(c: &mut Conn, issue_id: i64) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT staff_id FROM watchers WHERE issue_id = $1 ORDER BY staff_id")
        .bind(issue_id)
        .fetch_all(&mut *c)
        .await?)
}

/// A staff member's preference overrides.
pub async fn pref_overrides(
    c: &mut Conn,
    staff_id: i64,
) -> Result<Vec<(domain::notify::NotifyEvent, domain::notify::Cell)>, StoreError> {
    let rows = sqlx::query("SELECT event, in_app, email FROM notification_prefs WHERE staff_id = $1")
        .bind(staff_id)
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let event: String = r.try_get("event")?;
        if let Some(e) = domain::notify::NotifyEvent::parse(&event) {
            out.push((e, domain::notify::Cell { in_app: r.try_get("in_app")?, email: r.try_get("email")? }));
        }
    }
    Ok(out)
}

pub async fn set_pref(
    c: &mut Conn,
    staff_id: i64,
    event: domain::notify::NotifyEvent,
    cell: domain::notify::Cell,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_prefs (staff_id, event, in_app, email) VALUES ($1, $2, $3, $4)
         ON CONFLICT (staff_id, event) DO UPDATE SET in_app = excluded.in_app, email = excluded.email",
    )
    .bind(staff_id)
    .bind(event.as_str())
    .bind(cell.in_app)
    .bind(cell.email)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Routes one event (SPEC §5) and writes the in-app notifications, in the
/// transaction that made the change.
pub async fn notify(
    c: &mut Conn,
    event: domain::notify::NotifyEvent,
    issue_id: i64,
    actor: Option<i64>,
    message_id: Option<i64>,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let staff = people(c).await?;
    let watchers = watchers(c, issue_id).await?;
    let assignee: Option<i64> = sqlx::query_scalar("SELECT assignee_id FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut *c)
        .await?
        .flatten();
    let audience = domain::notify::Audience { actor, assignee, watchers: &watchers, staff: &staff };
    for staff_id in domain::notify::recipients(event, &audience) {
        let role = staff.iter().find(|p| p.id == staff_id).map(|p| p.role).unwrap_or(Role::Agent);
        let overrides = pref_overrides(c, staff_id).await?;
        let cell = domain::notify::matrix(role, &overrides)[&event];
        if !cell.in_app && !cell.email {
            continue;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notifications (staff_id, kind, issue_id, message_id, text, in_app, email, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(staff_id)
        .bind(event.as_str())
        .bind(issue_id)
        .bind(message_id)
        .bind(text)
        .bind(cell.in_app)
        .bind(cell.email)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        if cell.in_app {
            stream_event(c, "notification", Some(staff_id), Some(issue_id), Some(id), now).await?;
        }
    }
    Ok(())
}

/// A short excerpt for notification texts.
fn excerpt(body: &str) -> String {
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 80 {
        flat
    } else {
        let mut s: String = flat.chars().take(79).collect();
        s.push('…');
        s
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: i64,
    kind: String,
    issue_id: Option<i64>,
    message_id: Option<i64>,
    text: String,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
    email: bool,
    emailed_at: Option<DateTime<Utc>>,
    email_failed: bool,
    email_error: Option<String>,
}

impl NotificationRow {
    fn into_view(self) -> NotificationView {
        let email = self.email.then(|| EmailDelivery {
            status: if self.emailed_at.is_some() {
                "sent"
            } else if self.email_failed {
                "failed"
            } else {
                "pending"
            },
            error: self.email_error,
        });
        NotificationView {
            id: self.id,
            kind: self.kind,
            issue_id: self.issue_id,
            message_id: self.message_id,
            text: self.text,
            created_at: self.created_at,
            read_at: self.read_at,
            email,
        }
    }
}

/// The in-app feed, newest first. Email-only records are not shown.
pub async fn list_notifications(
    c: &mut Conn,
    staff_id: i64,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<NotificationView>, StoreError> {
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT n.id, n.kind, n.issue_id, n.message_id, n.text, n.created_at, n.read_at,
                n.email, n.emailed_at, n.email_failed, n.email_error
         FROM notifications n
         WHERE n.staff_id = $1 AND n.in_app AND ($2 = FALSE OR n.read_at IS NULL)
           AND ($3 IS NULL OR n.id < $3)
         ORDER BY n.id DESC LIMIT $4",
    )
    .bind(staff_id)
    .bind(unread_only)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.into_iter().map(NotificationRow::into_view).collect())
}

pub async fn notification(c: &mut Conn, id: i64) -> Result<Option<NotificationView>, StoreError> {
    let row: Option<NotificationRow> = sqlx::query_as(
        "SELECT id, kind, issue_id, message_id, text, created_at, read_at, email, emailed_at, email_failed,
                email_error FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(NotificationRow::into_view))
}

pub async fn unread_notifications(c: &mut Conn, staff_id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE staff_id = $1 AND in_app AND read_at IS NULL")
        .bind(staff_id)
        .fetch_one(&mut *c)
        .await?)
}

pub async fn mark_notifications_read(
    c: &mut Conn,
    staff_id: i64,
    ids: Option<&[i64]>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match ids {
        None => {
            sqlx::query("UPDATE notifications SET read_at = $2 WHERE staff_id = $1 AND read_at IS NULL")
                .bind(staff_id)
                .bind(now)
                .execute(&mut *c)
                .await?;
        }
        Some(ids) => {
            for id in ids {
                sqlx::query(
                    "UPDATE notifications SET read_at = $3 WHERE staff_id = $1 AND id = $2 AND read_at IS NULL",
                )
                .bind(staff_id)
                .bind(id)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
        }
    }
    Ok(())
}

/// Open issues with messages the caller has not read (the red badge).
pub async fn unread_issues(c: &mut Conn, staff_id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        // The open issues (1%) from the partial index of migration 0012,
        // each compared with the caller's read marker: the newest message
        // the caller did not write is kept on the issue (issue 12).
        "SELECT COUNT(*) FROM issues i WHERE i.status <> 'closed'
           AND CASE WHEN i.last_message_staff_id = $1 THEN COALESCE(i.last_other_message_id, 0)
                    ELSE COALESCE(i.last_message_id, 0) END
             > COALESCE((SELECT r.read_up_to FROM issue_reads r
                         WHERE r.issue_id = i.id AND r.staff_id = $1), 0)",
    )
    .bind(staff_id)
    .fetch_one(&mut *c)
    .await?)
}

pub async fn set_watch(c: &mut Conn, issue_id: i64, staff_id: i64, on: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
    if on {
        sqlx::query(
            "INSERT INTO watchers (issue_id, staff_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (issue_id, staff_id) DO NOTHING",
        )
        .bind(issue_id)
        .bind(staff_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    } else {
        sqlx::query("DELETE FROM watchers WHERE issue_id = $1 AND staff_id = $2")
            .bind(issue_id)
            .bind(staff_id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Live events after `after` that `staff_id` may see.
pub async fn stream_since(
    c: &mut Conn,
    after: i64,
    staff_id: Option<i64>,
    limit: i64,
) -> Result<Vec<StreamRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, staff_id, issue_id, ref_id, created_at FROM stream_events
         WHERE id > $1 AND ($2 IS NULL OR staff_id IS NULL OR staff_id = $2)
         ORDER BY id LIMIT $3",
    )
    .bind(after)
    .bind(staff_id)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?)
}

pub async fn stream_head(c: &mut Conn) -> Result<i64, StoreError> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM stream_events").fetch_one(&mut *c).await?;
    Ok(max.unwrap_or(0))
}

pub async fn purge_stream(c: &mut Conn, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM stream_events WHERE created_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await?
        .rows_affected())
}

// ---------------------------------------------------------------- jobs

/// Claims the run of `name` scheduled at `tick`: succeeds for exactly one
/// caller per tick, and not while another run holds the lease.
pub async fn claim_job(
    c: &mut Conn,
    name: &str,
    tick: DateTime<Utc>,
    instance: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    sqlx::query("INSERT INTO job_leases (name, runs, failures) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(&mut *c)
        .await?;
    let claimed = sqlx::query(
        "UPDATE job_leases SET last_tick = $2, locked_until = $5, locked_by = $3, last_started = $4
         WHERE name = $1 AND (last_tick IS NULL OR last_tick < $2)
           AND (locked_until IS NULL OR locked_until <= $4)",
    )
    .bind(name)
    .bind(tick)
    .bind(instance)
    .bind(now)
    .bind(lease_until)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

pub async fn finish_job(
    c: &mut Conn,
    name: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE job_leases SET locked_until = NULL, last_finished = $2, last_error = $3,
                runs = runs + 1, failures = failures + (CASE WHEN $3 IS NULL THEN 0 ELSE 1 END)
         WHERE name = $1",
    )
    .bind(name)
    .bind(now)
    .bind(error)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Claims or renews the lease on an IMAP mailbox for `holder` until
/// `until`; false while another holder's lease runs.
pub async fn claim_mailbox(
    c: &mut Conn,
    mailbox: &str,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO mailbox_leases (mailbox, holder, locked_until) VALUES ($1, $2, $4)
         ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder, locked_until = excluded.locked_until
         WHERE mailbox_leases.holder = excluded.holder OR mailbox_leases.locked_until <= $3",
    )
    .bind(mailbox)
    .bind(holder)
    .bind(now)
    .bind(until)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Gives a mailbox's lease up (a clean stop), if `holder` still has it.
pub async fn release_mailbox(c: &mut Conn, mailbox: &str, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mailbox_leases WHERE mailbox = $1 AND holder = $2")
        .bind(mailbox)
        .bind(holder)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Issues unassigned since before `cutoff` and not yet escalated.
pub async fn escalation_due(c: &mut Conn, cutoff: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM issues WHERE status = 'unassigned' AND escalated_at IS NULL AND created_at <= $1
         ORDER BY id LIMIT 500",
    )
    .bind(cutoff)
    .fetch_all(&mut *c)
    .await?)
}

/// Escalates one issue (once): event and `issue_escalated` to admins.
pub async fn escalate(c: &mut Conn, issue_id: i64, after: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE issues SET escalated_at = $2 WHERE id = $1 AND status = 'unassigned' AND escalated_at IS NULL",
    )
    .bind(issue_id)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    let text = format!("Unassigned for more than {after}: escalated to admins");
    let event_id = insert_event(c, issue_id, EventType::Escalated, None, &text, now).await?;
    let subject = issue_subject(c, issue_id).await?;
    let line = format!("[#{issue_id}] Unassigned for more than {after}: {subject}");
    notify(c, domain::notify::NotifyEvent::IssueEscalated, issue_id, None, Some(event_id), &line, now).await?;
    Ok(true)
}

/// Open issues with no message since before `cutoff`.
pub async fn idle_issues(c: &mut Conn, cutoff: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM issues WHERE status <> 'closed' AND last_message_at <= $1 ORDER BY id LIMIT 500",
    )
    .bind(cutoff)
    .fetch_all(&mut *c)
    .await?)
}

/// Closes an idle issue on behalf of the system.
pub async fn auto_close(c: &mut Conn, issue_id: i64, cutoff: DateTime<Utc>, after: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let Some(row) = lock_issue(c, issue_id).await? else { return Ok(false) };
    let last: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT last_message_at FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut *c)
        .await?;
    if last.is_none_or(|l| l > cutoff) {
        return Ok(false);
    }
    let Some(to) = domain::state::system_close(row.state(), Resolution::Closed) else { return Ok(false) };
    write_state(c, issue_id, &to, Some(now), now).await?;
    let text = format!("Closed automatically after {after} without activity");
    let event_id = insert_event(c, issue_id, EventType::AutoClosed, None, &text, now).await?;
    let subject = issue_subject(c, issue_id).await?;
    let line = format!("[#{issue_id}] {text}: {subject}");
    notify(c, domain::notify::NotifyEvent::IssueClosed, issue_id, None, Some(event_id), &line, now).await?;
    Ok(true)
}

/// Drops raw email older than `cutoff`, keeping the parsed message.
pub async fn purge_raw_mail(c: &mut Conn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("UPDATE messages SET raw = NULL WHERE raw IS NOT NULL AND created_at < $1")
        .bind(cutoff)
        .execute(&mut *c)
        .await?
        .rows_affected())
}

/// Housekeeping. Deletes notifications created before `notifications_before`, read or
/// not (an email still unsent after the retention period would be stale
/// news), and delivered outbox rows last touched before `outbox_before`.
pub async fn purge_finished(
    c: &mut Conn,
    notifications_before: DateTime<Utc>,
    outbox_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let n = sqlx::query("DELETE FROM notifications WHERE created_at < $1")
        .bind(notifications_before)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let o = sqlx::query("DELETE FROM outbox WHERE state = 'done' AND updated_at < $1")
        .bind(outbox_before)
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(n + o)
}

pub async fn jobs(c: &mut Conn) -> Result<Vec<JobState>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, last_started, last_finished, last_error, runs, failures FROM job_leases ORDER BY name",
    )
    .fetch_all(&mut *c)
    .await?)
}

// ---------------------------------------------------------------- email

pub async fn email_context(c: &mut Conn, message_id: i64) -> Result<Option<EmailContext>, StoreError> {
    let Some(r) = sqlx::query(
        "SELECT m.issue_id, m.external_id, m.author_type, i.subject, i.mailbox FROM messages m
         JOIN issues i ON i.id = m.issue_id
         WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(None);
    };
    let issue_id: i64 = r.try_get("issue_id")?;
    let parent = sqlx::query(
        "SELECT external_id, references_header FROM messages
         WHERE issue_id = $1 AND kind = 'customer' AND channel = 'email' AND id < $2 AND external_id IS NOT NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(issue_id)
    .bind(message_id)
    .fetch_optional(&mut *c)
    .await?;
    let parent = match parent {
        Some(p) => Some((p.try_get::<String, _>("external_id")?, p.try_get::<Option<String>, _>("references_header")?)),
        None => None,
    };
    let earlier: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE issue_id = $1 AND id < $2 AND kind <> 'event'")
        .bind(issue_id)
        .bind(message_id)
        .fetch_one(&mut *c)
        .await?;
    Ok(Some(EmailContext {
        issue_id,
        subject: r.try_get("subject")?,
        mailbox: r.try_get("mailbox")?,
        external_id: r.try_get("external_id")?,
        parent,
        first_message: earlier == 0,
        automatic: r.try_get::<String, _>("author_type")? == "system",
    }))
}

/// Gives a reply its Message-ID before the first send attempt, so retries
/// reuse it; returns the id in force.
pub async fn assign_external_id(c: &mut Conn, message_id: i64, id: &str) -> Result<String, StoreError> {
    sqlx::query("UPDATE messages SET external_id = $2 WHERE id = $1 AND external_id IS NULL")
        .bind(message_id)
        .bind(id)
        .execute(&mut *c)
        .await?;
    let current: Option<String> = sqlx::query_scalar("SELECT external_id FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&mut *c)
        .await?;
    Ok(current.unwrap_or_else(|| id.to_string()))
}

/// Notification emails whose coalescing window has passed, one batch per
/// person and issue, claimed until `lease_until`.
pub async fn claim_notification_emails(
    c: &mut Conn,
    now: DateTime<Utc>,
    window_start: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<EmailBatch>, StoreError> {
    let groups = sqlx::query(
        "SELECT n.staff_id, n.issue_id FROM notifications n
         WHERE n.email AND n.emailed_at IS NULL AND NOT n.email_failed
           AND (n.email_next_at IS NULL OR n.email_next_at <= $1)
         GROUP BY n.staff_id, n.issue_id
         HAVING MIN(n.created_at) <= $2
         LIMIT 50",
    )
    .bind(now)
    .bind(window_start)
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::new();
    for g in groups {
        let staff_id: i64 = g.try_get("staff_id")?;
        let issue_id: Option<i64> = g.try_get("issue_id")?;
        let rows = sqlx::query(concat!(
            "SELECT id, text, email_attempts, created_at FROM notifications
             WHERE staff_id = $1 AND (issue_id = $2 OR ($2 IS NULL AND issue_id IS NULL))
               AND email AND emailed_at IS NULL AND NOT email_failed
               AND (email_next_at IS NULL OR email_next_at <= $3)
             ORDER BY id",
            for_update!()
        ))
        .bind(staff_id)
        .bind(issue_id)
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
        if rows.is_empty() {
            continue;
        }
        let mut ids = Vec::new();
        let mut texts = Vec::new();
        let mut attempts = 0;
        let mut oldest: Option<DateTime<Utc>> = None;
        for r in rows {
            let created: DateTime<Utc> = r.try_get("created_at")?;
            oldest = Some(oldest.map_or(created, |o| o.min(created)));
            ids.push(r.try_get::<i64, _>("id")?);
            texts.push(r.try_get::<String, _>("text")?);
            attempts = attempts.max(r.try_get::<i64, _>("email_attempts")?);
        }
        for id in &ids {
            sqlx::query("UPDATE notifications SET email_next_at = $2 WHERE id = $1")
                .bind(id)
                .bind(lease_until)
                .execute(&mut *c)
                .await?;
        }
        let staff = sqlx::query("SELECT email, name, active FROM staff WHERE id = $1")
            .bind(staff_id)
            .fetch_one(&mut *c)
            .await?;
        if !staff.try_get::<bool, _>("active")? {
            for id in &ids {
                sqlx::query("UPDATE notifications SET email_failed = TRUE, email_error = 'staff member inactive' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
            }
            continue;
        }
        out.push(EmailBatch {
            staff_id,
            staff_email: staff.try_get("email")?,
            staff_name: staff.try_get("name")?,
            issue_id,
            ids,
            texts,
            attempts,
            oldest,
        });
    }
    Ok(out)
}

/// Records the outcome of a notification email: sent, retry at
/// `next_at`, or failed for good.
pub async fn finish_notification_emails(
    c: &mut Conn,
    ids: &[i64],
    sent: bool,
    error: Option<&str>,
    next_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for id in ids {
        if sent {
            sqlx::query("UPDATE notifications SET emailed_at = $2, email_error = NULL WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *c)
                .await?;
        } else {
            sqlx::query(
                "UPDATE notifications SET email_attempts = email_attempts + 1, email_error = $2,
                        email_next_at = $3, email_failed = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(next_at)
            .bind(next_at.is_none())
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- merge

/// Merges customer `from` into `into` (SPEC §3.5): contacts and issues move;
/// refused when both have an open issue, so the one-open-issue invariant
/// holds without choosing for staff which conversation to end.
pub async fn merge_customers(
    c: &mut Conn,
    into: i64,
    from: i64,
    actor: &Staff,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if into == from {
        return Err(StoreError::invalid("invalid_request", "a customer cannot be merged into itself"));
    }
    let names = sqlx::query("SELECT id, name, merged_into FROM customers WHERE id = $1 OR id = $2")
        .bind(into)
        .bind(from)
        .fetch_all(&mut *c)
        .await?;
    let mut from_name = None;
    for r in &names {
        let id: i64 = r.try_get("id")?;
        let merged: Option<i64> = r.try_get("merged_into")?;
        if merged.is_some() {
            return Err(StoreError::conflict("already_merged", "that customer was already merged into another"));
        }
        if id == from {
            from_name = Some(r.try_get::<String, _>("name")?);
        }
    }
    if names.len() != 2 {
        return Err(StoreError::NotFound("customer"));
    }
    let open_into = open_issue_of(c, into, 0).await?;
    let open_from = open_issue_of(c, from, 0).await?;
    if open_into.is_some() && open_from.is_some() {
        return Err(StoreError::conflict(
            "both_have_open_issues",
            "both customers have an open issue: close one of them first",
        ));
    }
    sqlx::query("UPDATE contacts SET customer_id = $1 WHERE customer_id = $2").bind(into).bind(from).execute(&mut *c).await?;
    sqlx::query("UPDATE issues SET customer_id = $1 WHERE customer_id = $2").bind(into).bind(from).execute(&mut *c).await?;
    sqlx::query("UPDATE messages SET author_id = $1 WHERE author_type = 'customer' AND author_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE customers SET merged_into = $1 WHERE id = $2").bind(into).bind(from).execute(&mut *c).await?;
    if let Some(issue_id) = open_into.or(open_from) {
        let text = format!(
            "{} merged customer #{from} ({}) into customer #{into}",
            actor.name,
            from_name.unwrap_or_default()
        );
        insert_event(c, issue_id, EventType::Merged, Some((actor.id, &actor.name)), &text, now).await?;
        touch_issue(c, issue_id, false, now).await?;
    }
    Ok(())
}

/// The customer a (possibly merged-away) id now lives on.
pub async fn resolve_customer(c: &mut Conn, id: i64) -> Result<Option<i64>, StoreError> {
    let mut current = id;
    for _ in 0..16 {
        let merged: Option<Option<i64>> = sqlx::query_scalar("SELECT merged_into FROM customers WHERE id = $1")
            .bind(current)
            .fetch_optional(&mut *c)
            .await?;
        match merged {
            None => return Ok(None),
            Some(None) => return Ok(Some(current)),
            Some(Some(next)) => current = next,
        }
    }
    Ok(Some(current))
}

// ---------------------------------------------------------------- attachments

/// One attachment row (no live event: the caller emits one).
async fn insert_attachment(
    c: &mut Conn,
    message_id: i64,
    issue_id: i64,
    a: &NewAttachment,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO attachments (message_id, issue_id, filename, content_type, size, sha256, refused, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(message_id)
    .bind(issue_id)
    .bind(&a.filename)
    .bind(&a.content_type)
    .bind(a.size)
    .bind(&a.sha256)
    .bind(&a.refused)
    .bind(now)
    .fetch_one(&mut *c)
    .await?)
}

/// Records a stored (`sha256` set) or refused (`refused` set) attachment.
#[allow(clippy::too_many_arguments)]
pub async fn add_attachment(
    c: &mut Conn,
    message_id: i64,
    filename: &str,
    content_type: &str,
    size: i64,
    sha256: Option<&str>,
    refused: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let issue_id: i64 = sqlx::query_scalar("SELECT issue_id FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound("message"))?;
    let a = NewAttachment {
        filename: filename.to_string(),
        content_type: content_type.to_string(),
        size,
        sha256: sha256.map(str::to_string),
        refused: refused.map(str::to_string),
    };
    let id = insert_attachment(c, message_id, issue_id, &a, now).await?;
    stream_event(c, "message", None, Some(issue_id), Some(message_id), now).await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct AttachmentRow {
    id: i64,
    message_id: i64,
    filename: String,
    content_type: String,
    size: i64,
    refused: Option<String>,
}

/// Attachments of an issue's messages, by message id.
async fn attachments_of(
    c: &mut Conn,
    issue_id: i64,
    message_id: Option<i64>,
) -> Result<Vec<AttachmentRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, message_id, filename, content_type, size, refused FROM attachments
         WHERE issue_id = $1 AND ($2 IS NULL OR message_id = $2) ORDER BY id",
    )
    .bind(issue_id)
    .bind(message_id)
    .fetch_all(&mut *c)
    .await?)
}

fn attach(views: &mut [MessageView], rows: Vec<AttachmentRow>) {
    for r in rows {
        if let Some(v) = views.iter_mut().find(|v| v.id == r.message_id) {
            match r.refused {
                Some(reason) => v.refused_attachments.push(RefusedAttachment { filename: r.filename, reason }),
                None => v.attachments.push(AttachmentView {
                    id: r.id,
                    filename: r.filename,
                    content_type: r.content_type,
                    size: r.size,
                }),
            }
        }
    }
}

/// Every file shared in an issue: (images, documents).
pub async fn issue_attachments(
    c: &mut Conn,
    issue_id: i64,
) -> Result<(Vec<AttachmentView>, Vec<AttachmentView>), StoreError> {
    let rows = attachments_of(c, issue_id, None).await?;
    let (mut images, mut documents) = (Vec::new(), Vec::new());
    for r in rows.into_iter().filter(|r| r.refused.is_none()) {
        let v = AttachmentView { id: r.id, filename: r.filename, content_type: r.content_type, size: r.size };
        if crate::attachments::is_image(&v.content_type) {
            images.push(v);
        } else {
            documents.push(v);
        }
    }
    Ok((images, documents))
}

/// An attachment's metadata and content hash.
pub async fn attachment(c: &mut Conn, id: i64) -> Result<Option<(AttachmentView, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, filename, content_type, size, sha256 FROM attachments WHERE id = $1 AND sha256 IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(stored_file).transpose()
}

/// Queues a background job (e.g. an MMS media download) with a payload.
pub async fn enqueue_job(
    c: &mut Conn,
    kind: &str,
    message_id: i64,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at, payload)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3, $4)",
    )
    .bind(kind)
    .bind(message_id)
    .bind(now)
    .bind(payload.to_string())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Open issues with their customer, newest activity first (the digest).
pub async fn open_issues_for_digest(c: &mut Conn) -> Result<Vec<DigestIssue>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT i.id, i.subject, cu.name AS customer, i.assignee_id, i.last_message_at
         FROM issues i JOIN customers cu ON cu.id = i.customer_id
         WHERE i.status <> 'closed'
         ORDER BY i.last_message_at DESC, i.id DESC",
    )
    .fetch_all(&mut *c)
    .await?)
}

/// Queues outbox items that belong to no message, one per payload.
pub async fn enqueue_payloads(
    c: &mut Conn,
    kind: &str,
    payloads: &[serde_json::Value],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for p in payloads {
        sqlx::query(
            "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at, payload)
             VALUES ($1, NULL, 'pending', 0, $2, $2, $2, $3)",
        )
        .bind(kind)
        .bind(now)
        .bind(p.to_string())
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- broadcasts

/// Creates a broadcast and queues one delivery per reachable recipient,
/// `spacing` apart (the rate limit). Opted-out and unreachable customers
/// are recorded as skipped with the reason.
pub async fn create_broadcast(
    c: &mut Conn,
    actor: &Staff,
    body: &str,
    subject: Option<&str>,
    customers: Option<&[i64]>,
    spacing: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let ids: Vec<i64> = match customers {
        None => sqlx::query_scalar("SELECT id FROM customers WHERE merged_into IS NULL ORDER BY id")
            .fetch_all(&mut *c)
            .await?,
        Some(list) => {
            let mut out = Vec::new();
            for id in list {
                match resolve_customer(c, *id).await? {
                    Some(r) if !out.contains(&r) => out.push(r),
                    Some(_) => {}
                    None => return Err(StoreError::invalid("unknown_customer", &format!("no customer #{id}"))),
                }
            }
            out
        }
    };
    let broadcast_id: i64 = sqlx::query_scalar(
        "INSERT INTO broadcasts (body, subject, created_by, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(body)
    .bind(subject)
    .bind(actor.id)
    .bind(now)
    .fetch_one(&mut *c)
    .await?;
    let mut slot = 0i32;
    for customer_id in ids {
        // Their own channel: that of their latest issue, else their first contact.
        let latest: Option<String> =
            sqlx::query_scalar("SELECT channel FROM issues WHERE customer_id = $1 ORDER BY id DESC LIMIT 1")
                .bind(customer_id)
                .fetch_optional(&mut *c)
                .await?;
        let contacts = sqlx::query("SELECT kind, value, opted_out FROM contacts WHERE customer_id = $1 ORDER BY id")
            .bind(customer_id)
            .fetch_all(&mut *c)
            .await?;
        let want_kind = match latest.as_deref() {
            Some("email") => Some("email"),
            Some(_) => Some("phone"),
            None => None,
        };
        let pick = contacts
            .iter()
            .find(|r| want_kind.is_none_or(|k| r.try_get::<String, _>("kind").is_ok_and(|v| v == k)))
            .or(contacts.first());
        let (channel, contact, status, error) = match pick {
            None => (None, None, "skipped", Some("the customer has no contact")),
            Some(r) => {
                let kind: String = r.try_get("kind")?;
                let value: String = r.try_get("value")?;
                let opted: bool = r.try_get("opted_out")?;
                let channel = if kind == "email" { "email" } else { "sms" };
                if opted && channel == "sms" {
                    (Some(channel), Some(value), "skipped", Some("opted out (STOP)"))
                } else {
                    (Some(channel), Some(value), "queued", None)
                }
            }
        };
        let recipient_id: i64 = sqlx::query_scalar(
            "INSERT INTO broadcast_recipients (broadcast_id, customer_id, channel, contact, status, error, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(broadcast_id)
        .bind(customer_id)
        .bind(channel)
        .bind(&contact)
        .bind(status)
        .bind(error)
        .bind(now)
        .fetch_one(&mut *c)
        .await?;
        // The rule replies follow (SPEC: Twilio refuses longer bodies),
        // checked against who actually gets an SMS; refusing rolls back
        // the whole broadcast.
        if status == "queued"
            && channel == Some("sms")
            && body.chars().count() > crate::domain::text::SMS_MAX_CHARS
        {
            return Err(StoreError::invalid(
                "body_too_long",
                &format!(
                    "a broadcast that reaches SMS customers may be at most {} characters",
                    crate::domain::text::SMS_MAX_CHARS
                ),
            ));
        }
        if status == "queued" {
            let at = now + spacing * slot;
            slot += 1;
            sqlx::query(
                "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at, payload)
                 VALUES ('broadcast', NULL, 'pending', 0, $1, $2, $2, $3)",
            )
            .bind(at)
            .bind(now)
            .bind(serde_json::json!({ "recipient_id": recipient_id }).to_string())
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(broadcast_id)
}

pub async fn broadcast_view(c: &mut Conn, id: i64) -> Result<Option<BroadcastView>, StoreError> {
    let Some(b) = sqlx::query("SELECT id, body, subject, created_by, created_at FROM broadcasts WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
    else {
        return Ok(None);
    };
    let recipients: Vec<BroadcastRecipient> = sqlx::query_as(
        "SELECT id, customer_id, channel, contact, status, error FROM broadcast_recipients
         WHERE broadcast_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    let mut counts = std::collections::BTreeMap::new();
    for s in ["queued", "sent", "failed", "skipped"] {
        counts.insert(s.to_string(), recipients.iter().filter(|r| r.status == s).count() as i64);
    }
    Ok(Some(BroadcastView {
        id,
        body: b.try_get("body")?,
        subject: b.try_get("subject")?,
        created_by: b.try_get("created_by")?,
        created_at: b.try_get("created_at")?,
        status: if counts["queued"] > 0 { "sending" } else { "done" },
        total: recipients.len() as i64,
        counts,
        recipients,
    }))
}

pub async fn broadcast_delivery(c: &mut Conn, recipient_id: i64) -> Result<Option<BroadcastDelivery>, StoreError> {
    let row = sqlx::query(
        "SELECT r.id, r.channel, r.contact, r.status, b.body, b.subject FROM broadcast_recipients r
         JOIN broadcasts b ON b.id = r.broadcast_id WHERE r.id = $1",
    )
    .bind(recipient_id)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let channel: Option<String> = r.try_get("channel")?;
    Ok(Some(BroadcastDelivery {
        recipient_id,
        channel: channel.as_deref().and_then(Channel::parse).unwrap_or(Channel::Sms),
        contact: r.try_get::<Option<String>, _>("contact")?.unwrap_or_default(),
        body: r.try_get("body")?,
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
    }))
}

pub async fn finish_broadcast_recipient(
    c: &mut Conn,
    recipient_id: i64,
    status: &str,
    error: Option<&str>,
    external_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE broadcast_recipients SET status = $2, error = $3, external_id = $4, updated_at = $5 WHERE id = $1")
        .bind(recipient_id)
        .bind(status)
        .bind(error)
        .bind(external_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- mailboxes

pub async fn mailbox_cursor(c: &mut Conn, mailbox: &str) -> Result<Option<(i64, i64)>, StoreError> {
    let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_cursors WHERE mailbox = $1")
        .bind(mailbox)
        .fetch_optional(&mut *c)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((r.try_get("uidvalidity")?, r.try_get("last_uid")?))),
    }
}

pub async fn set_mailbox_cursor(
    c: &mut Conn,
    mailbox: &str,
    uidvalidity: i64,
    last_uid: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mailbox_cursors (mailbox, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid,
                                             updated_at = excluded.updated_at",
    )
    .bind(mailbox)
    .bind(uidvalidity)
    .bind(last_uid)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// A bounce of one of our replies: marks that reply failed with the DSN's
/// status and diagnostic. Returns the reply's issue, if it was ours.
pub async fn bounce_reply(
    c: &mut Conn,
    original_message_id: &str,
    code: &str,
    text: &str,
) -> Result<Option<i64>, StoreError> {
    let Some(id) = reply_by_external_id(c, Channel::Email, original_message_id).await? else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE messages SET delivery_status = 'failed', delivery_error_code = $2, delivery_error_message = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(code)
    .bind(text)
    .execute(&mut *c)
    .await?;
    let issue_id: i64 = sqlx::query_scalar("SELECT issue_id FROM messages WHERE id = $1").bind(id).fetch_one(&mut *c).await?;
    stream_event(c, "message", None, Some(issue_id), Some(id), crate::store::now()).await?;
    Ok(Some(issue_id))
}
