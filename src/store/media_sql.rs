// A reply's own files, and the public links MMS sends them by. Included
// into `sqlite::q` and `postgres::q` like `sql.rs`.

/// An attachment row (`id, filename, content_type, size, sha256`) and its
/// content hash.
fn stored_file(r: &<Db as sqlx::Database>::Row) -> Result<(AttachmentView, String), StoreError> {
    Ok((
        AttachmentView {
            id: r.try_get("id")?,
            filename: r.try_get("filename")?,
            content_type: r.try_get("content_type")?,
            size: r.try_get("size")?,
        },
        r.try_get("sha256")?,
    ))
}

/// The files kept with a message (refused ones are not sent), oldest first,
/// each with its content hash.
pub async fn message_files(
    c: &mut Conn,
    message_id: i64,
) -> Result<Vec<(AttachmentView, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, filename, content_type, size, sha256 FROM attachments
         WHERE message_id = $1 AND sha256 IS NOT NULL AND refused IS NULL ORDER BY id",
    )
    .bind(message_id)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(stored_file).collect()
}

pub async fn insert_media_link(
    c: &mut Conn,
    token_hash: &str,
    attachment_id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO media_links (token_hash, attachment_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(attachment_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The file behind an unexpired link.
pub async fn media_link(
    c: &mut Conn,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(AttachmentView, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT a.id, a.filename, a.content_type, a.size, a.sha256
         FROM media_links l JOIN attachments a ON a.id = l.attachment_id
         WHERE l.token_hash = $1 AND l.expires_at > $2 AND a.sha256 IS NOT NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(stored_file).transpose()
}

pub async fn purge_media_links(c: &mut Conn, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM media_links WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected())
}
