// Shared SQL (attachments), `include!`d by each backend through `sql/mod.rs`.

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

/// Queues a job that belongs to a message (an MMS media download), or to
/// none (`message_id` `None`: broadcasts, staff mail), with its payload.
pub async fn enqueue_task(
    c: &mut Conn,
    task: &OutboxTask,
    message_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (kind, message_id, state, attempts, next_attempt_at, created_at, updated_at, payload)
         VALUES ($1, $2, 'pending', 0, $3, $3, $3, $4)",
    )
    .bind(task.stored_kind())
    .bind(message_id)
    .bind(now)
    .bind(task.payload())
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

