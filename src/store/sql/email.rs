// Shared SQL (email), `include!`d by each backend through `sql/mod.rs`.

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
