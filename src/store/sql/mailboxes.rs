// Shared SQL (mailboxes), `include!`d by each backend through `sql/mod.rs`.

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
