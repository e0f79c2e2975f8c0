// Shared SQL (merge), `include!`d by each backend through `sql/mod.rs`.

/// Merges customer `from` into `into` (SPEC §3.5): contacts and issues move;
/// refused when both have an open issue, so the one-open-issue invariant
/// holds without choosing for staff which conversation to end.
pub async fn merge_customers(
    c: &mut Conn,
    into: i64,
    from: i64,
    actor: &Staff,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if into == from {
        return Err(StoreError::invalid("invalid_request", "a customer cannot be merged into itself"));
    }
    let names = sqlx::query("SELECT id, name, merged_into FROM customers WHERE id = $1 OR id = $2")
        .bind(into)
        .bind(from)
        .fetch_all(&mut *c)
        .await?;
    let mut from_name = None;
    for r in &names {
        let id: i64 = r.try_get("id")?;
        let merged: Option<i64> = r.try_get("merged_into")?;
        if merged.is_some() {
            return Err(StoreError::conflict("already_merged", "that customer was already merged into another"));
        }
        if id == from {
            from_name = Some(r.try_get::<String, _>("name")?);
        }
    }
    if names.len() != 2 {
        return Err(StoreError::NotFound("customer"));
    }
    let open_into = open_issue_of(c, into, 0).await?;
    let open_from = open_issue_of(c, from, 0).await?;
    if open_into.is_some() && open_from.is_some() {
        return Err(StoreError::conflict(
            "both_have_open_issues",
            "both customers have an open issue: close one of them first",
        ));
    }
    sqlx::query("UPDATE contacts SET customer_id = $1 WHERE customer_id = $2").bind(into).bind(from).execute(&mut *c).await?;
    sqlx::query("UPDATE issues SET customer_id = $1 WHERE customer_id = $2").bind(into).bind(from).execute(&mut *c).await?;
    sqlx::query("UPDATE messages SET author_id = $1 WHERE author_type = 'customer' AND author_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE customers SET merged_into = $1 WHERE id = $2").bind(into).bind(from).execute(&mut *c).await?;
    if let Some(issue_id) = open_into.or(open_from) {
        let text = format!(
            "{} merged customer #{from} ({}) into customer #{into}",
            actor.name,
            from_name.unwrap_or_default()
        );
        insert_event(c, issue_id, EventType::Merged, Some((actor.id, &actor.name)), &text, now).await?;
        touch_issue(c, issue_id, false, now).await?;
    }
    Ok(())
}

/// The customer a (possibly merged-away) id now lives on.
pub async fn resolve_customer(c: &mut Conn, id: i64) -> Result<Option<i64>, StoreError> {
    let mut current = id;
    for _ in 0..16 {
        let merged: Option<Option<i64>> = sqlx::query_scalar("SELECT merged_into FROM customers WHERE id = $1")
            .bind(current)
            .fetch_optional(&mut *c)
            .await?;
        match merged {
            None => return Ok(None),
            Some(None) => return Ok(Some(current)),
            Some(Some(next)) => current = next,
        }
    }
    Ok(Some(current))
}
