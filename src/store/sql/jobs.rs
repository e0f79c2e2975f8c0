// Shared SQL (jobs), `include!`d by each backend through `sql/mod.rs`.

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
    let Some(to) = domain::state::system_close(row.state()?, Resolution::Closed) else { return Ok(false) };
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
