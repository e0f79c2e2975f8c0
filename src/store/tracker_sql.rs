// Shared SQL of the Issue Tracker page (SPEC §9). `include!`d next to
// `sql.rs` by each backend (see `store/mod.rs`), so it uses that file's
// `Conn` and `Db`. The id list is bound value by value through
// `QueryBuilder`, which writes each backend's own placeholders.

/// Unread non-event messages per issue, for the given issues only.
pub async fn unread_counts(
    c: &mut Conn,
    staff_id: i64,
    issue_ids: &[i64],
) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(
        "SELECT m.issue_id AS issue_id, COUNT(*) AS n FROM messages m
         LEFT JOIN issue_reads r ON r.issue_id = m.issue_id AND r.staff_id = ",
    );
    qb.push_bind(staff_id);
    qb.push(" WHERE m.kind <> 'event' AND NOT (m.author_type = 'staff' AND m.author_id = ");
    qb.push_bind(staff_id);
    qb.push(") AND m.id > COALESCE(r.read_up_to, 0) AND m.issue_id IN (");
    let mut list = qb.separated(", ");
    for id in issue_ids {
        list.push_bind(*id);
    }
    qb.push(") GROUP BY m.issue_id");
    let rows = qb.build().fetch_all(&mut *c).await?;
    let mut out = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        out.insert(r.try_get::<i64, _>("issue_id")?, r.try_get::<i64, _>("n")?);
    }
    Ok(out)
}
