// Shared SQL (outbox), `include!`d by each backend through `sql/mod.rs`.

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
    let task = match OutboxTask::from_row(&kind, payload.as_deref()) {
        Ok(t) => t,
        Err(why) => {
            tracing::error!(outbox_id = id, %why, "outbox item cannot be read: failed");
            outbox_finish(c, id, "failed", Some(&why), now).await?;
            return Ok(None);
        }
    };
    let mut job = OutboxJob {
        id,
        task,
        attempts,
        message_id: 0,
        issue_id: 0,
        channel: Channel::Sms,
        to: String::new(),
        body: String::new(),
    };
    let Some(message_id) = message_id else {
        // Jobs that belong to no message (broadcasts, staff mail) carry
        // everything in their payload.
        if job.task == OutboxTask::Reply || matches!(job.task, OutboxTask::Media(_)) {
            outbox_finish(c, id, "failed", Some("outbox item without a message"), now).await?;
            return Ok(None);
        }
        return Ok(Some(job));
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
    if job.task == OutboxTask::Reply {
        sqlx::query("UPDATE messages SET delivery_status = 'sending' WHERE id = $1 AND delivery_status = 'queued'")
            .bind(message_id)
            .execute(&mut *c)
            .await?;
    }
    job.message_id = message_id;
    job.issue_id = m.try_get("issue_id")?;
    job.channel = match (&job.task, channel) {
        (_, Some(ch)) => crate::store::stored("messages", message_id, &ch)?,
        // Only a reply needs its channel; an inbound message without one
        // is not possible, but media never reads it.
        (OutboxTask::Reply, None) => {
            outbox_finish(c, id, "failed", Some("reply without a channel"), now).await?;
            return Ok(None);
        }
        (_, None) => Channel::Sms,
    };
    job.to = to.unwrap_or_default();
    job.body = m.try_get("body")?;
    Ok(Some(job))
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
