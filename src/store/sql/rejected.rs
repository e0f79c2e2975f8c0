// Shared SQL (rejected), `include!`d by each backend through `sql/mod.rs`.

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
