// Shared SQL (notifications), `include!`d by each backend through `sql/mod.rs`.

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
        .map(|r| -> Result<_, StoreError> {
            let role: String = r.try_get("role")?;
            Ok(domain::notify::Person {
                id: r.try_get("id")?,
                role: crate::store::stored("staff", r.try_get("id")?, &role)?,
                active: r.try_get("active")?,
            })
        })
        .collect()
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
