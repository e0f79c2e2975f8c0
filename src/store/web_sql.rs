// Shared SQL of the staff web page (SPEC §9): passwords, sessions, welcome
// links and the sign-in throttle. `include!`d next to `sql.rs` by each
// backend (see `store/mod.rs`), so it uses that file's `Conn` and rows.

/// A staff member and their password hash (None until they choose one).
pub async fn staff_with_password(
    c: &mut Conn,
    email: &str,
) -> Result<Option<(Staff, Option<String>)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, email, name, role, active, created_at, password_hash FROM staff WHERE email = $1",
    )
    .bind(email)
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
            Ok(Some((staff.into_staff()?, r.try_get("password_hash")?)))
        }
    }
}

pub async fn password_hash_of(c: &mut Conn, staff_id: i64) -> Result<Option<String>, StoreError> {
    let hash: Option<Option<String>> =
        sqlx::query_scalar("SELECT password_hash FROM staff WHERE id = $1")
            .bind(staff_id)
            .fetch_optional(&mut *c)
            .await?;
    Ok(hash.flatten())
}

pub async fn set_password(c: &mut Conn, staff_id: i64, hash: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE staff SET password_hash = $2 WHERE id = $1")
        .bind(staff_id)
        .bind(hash)
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_session(
    c: &mut Conn,
    id_hash: &str,
    staff_id: i64,
    csrf: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO web_sessions (id_hash, staff_id, csrf_token, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id_hash)
    .bind(staff_id)
    .bind(csrf)
    .bind(now)
    .bind(expires)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The live session's staff member (active only), CSRF token and when it
/// was last seen.
pub async fn session(
    c: &mut Conn,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Staff, String, DateTime<Utc>)>, StoreError> {
    let row = sqlx::query(
        "SELECT s.id, s.email, s.name, s.role, s.active, s.created_at, w.csrf_token, w.last_seen_at
         FROM web_sessions w JOIN staff s ON s.id = w.staff_id
         WHERE w.id_hash = $1 AND w.expires_at > $2 AND s.active",
    )
    .bind(id_hash)
    .bind(now)
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
            Ok(Some((staff.into_staff()?, r.try_get("csrf_token")?, r.try_get("last_seen_at")?)))
        }
    }
}

pub async fn touch_session(
    c: &mut Conn,
    id_hash: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE web_sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1")
        .bind(id_hash)
        .bind(now)
        .bind(expires)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn delete_session(c: &mut Conn, id_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Ends every session of a person, but `keep` (their current one).
pub async fn delete_sessions_of(
    c: &mut Conn,
    staff_id: i64,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM web_sessions WHERE staff_id = $1 AND ($2 IS NULL OR id_hash <> $2)",
    )
    .bind(staff_id)
    .bind(keep)
    .execute(&mut *c)
    .await?;
    Ok(done.rows_affected())
}

pub async fn insert_welcome(
    c: &mut Conn,
    code_hash: &str,
    staff_id: i64,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO welcome_links (code_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(code_hash)
    .bind(staff_id)
    .bind(now)
    .bind(expires)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The staff member an unused, unexpired welcome link is for.
pub async fn welcome_staff(
    c: &mut Conn,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Staff>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT w.staff_id FROM welcome_links w JOIN staff s ON s.id = w.staff_id
         WHERE w.code_hash = $1 AND w.used_at IS NULL AND w.expires_at > $2 AND s.active",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    match id {
        None => Ok(None),
        Some(id) => get_staff(c, id).await,
    }
}

/// Marks a welcome link used; `None` if it was used, expired or unknown.
pub async fn use_welcome(
    c: &mut Conn,
    code_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE welcome_links SET used_at = $2
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING staff_id",
    )
    .bind(code_hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?)
}

pub async fn record_login_failure(
    c: &mut Conn,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
        .bind(key)
        .bind(now)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn count_login_failures(
    c: &mut Conn,
    key: &str,
    since: DateTime<Utc>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE key = $1 AND at > $2")
        .bind(key)
        .bind(since)
        .fetch_one(&mut *c)
        .await?)
}

pub async fn clear_login_failures(c: &mut Conn, key: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(key)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Housekeeping: expired sessions, used or expired welcome links, and
/// sign-in failures too old to count.
pub async fn purge_web(c: &mut Conn, now: DateTime<Utc>, failures_before: DateTime<Utc>) -> Result<u64, StoreError> {
    let a = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let b = sqlx::query("DELETE FROM welcome_links WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let d = sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(failures_before)
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(a + b + d)
}

/// Broadcasts newest first with their progress counts, without the
/// per-recipient rows (the Broadcasts page's list).
pub async fn list_broadcasts(
    c: &mut Conn,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<BroadcastView>, StoreError> {
    let rows = sqlx::query(
        "SELECT b.id, b.body, b.subject, b.created_by, b.created_at,
                COUNT(r.id) AS total,
                COALESCE(SUM(CASE WHEN r.status = 'queued' THEN 1 ELSE 0 END), 0) AS queued,
                COALESCE(SUM(CASE WHEN r.status = 'sent' THEN 1 ELSE 0 END), 0) AS sent,
                COALESCE(SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END), 0) AS failed,
                COALESCE(SUM(CASE WHEN r.status = 'skipped' THEN 1 ELSE 0 END), 0) AS skipped
         FROM broadcasts b LEFT JOIN broadcast_recipients r ON r.broadcast_id = b.id
         WHERE ($1 IS NULL OR b.id < $1)
         GROUP BY b.id, b.body, b.subject, b.created_by, b.created_at
         ORDER BY b.id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?;
    rows.into_iter()
        .map(|r| {
            let mut counts = std::collections::BTreeMap::new();
            for s in ["queued", "sent", "failed", "skipped"] {
                counts.insert(s.to_string(), r.try_get::<i64, _>(s)?);
            }
            Ok(BroadcastView {
                id: r.try_get("id")?,
                body: r.try_get("body")?,
                subject: r.try_get("subject")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
                status: if counts["queued"] > 0 { "sending" } else { "done" },
                total: r.try_get("total")?,
                counts,
                recipients: Vec::new(),
            })
        })
        .collect()
}
