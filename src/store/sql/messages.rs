// Shared SQL (messages), `include!`d by each backend through `sql/mod.rs`.

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
    fn into_view(self) -> Result<MessageView, StoreError> {
        use crate::store::{stored, stored_opt};
        let kind = stored("messages", self.id, &self.kind)?;
        let delivery_status = stored_opt("messages", self.id, self.delivery_status.as_deref())?;
        let event_type = stored_opt("messages", self.id, self.event_type.as_deref())?;
        let author_kind = match self.author_type.as_str() {
            "customer" => "customer",
            "staff" => "staff",
            _ => "system",
        };
        Ok(MessageView {
            id: self.id,
            issue_id: self.issue_id,
            kind,
            channel: stored_opt("messages", self.id, self.channel.as_deref())?,
            author: Author { kind: author_kind, id: self.author_id, name: self.author_name },
            body: self.body,
            external_id: self.external_id,
            created_at: self.created_at,
            edited_at: self.edited_at,
            attachments: Vec::new(),
            refused_attachments: Vec::new(),
            threading_rule: stored_opt("messages", self.id, self.threading_rule.as_deref())?,
            delivery: delivery_status.map(
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
            event: event_type.map(|kind| EventView {
                kind,
                actor: self
                    .event_actor_id
                    .map(|id| PersonRef { id, name: self.event_actor_name.unwrap_or_default() }),
            }),
        })
    }
}

pub async fn message_view(c: &mut Conn, id: i64) -> Result<Option<MessageView>, StoreError> {
    let row: Option<MessageRow> = sqlx::query_as(concat!(message_select!(), " WHERE m.id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut views = [row.into_view()?];
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
    let mut views: Vec<MessageView> = rows.into_iter().map(MessageRow::into_view).collect::<Result<_, _>>()?;
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
    let line = format!("[#{issue_id}] {} commented: {}", author.name, domain::notify::excerpt(body));
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
