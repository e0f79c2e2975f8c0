// Shared SQL of the issue list (`GET /api/issues` and the tracker's tabs),
// `include!`d after `sql.rs` by each backend, so it uses that file's `Conn`,
// `Db`, `IssueRow` and `issue_select_*!` pieces.
//
// The list used to be one static statement with every filter written as
// `($1 IS NULL OR i.customer_id = $1)`. That reads well and binds simply,
// but a planner has to pick one plan for all the filters at once, and the
// only plan that fits all of them is a scan of `issues` in activity order.
// At a million issues that is half a second a page. So I build the WHERE
// clause per request with `QueryBuilder`: only the filters actually given
// appear, each one the plain comparison an index of migration 0010 can
// serve. Every value is bound with `push_bind`; only fixed SQL text is
// pushed, never anything the caller sent.
//
// The page is chosen first (ids only, through an index in activity order)
// and the per-row columns (contacts, names, unread) are computed for those
// rows alone.

/// Starts the next condition: ` WHERE ` for the first, ` AND ` after.
fn push_and(qb: &mut sqlx::QueryBuilder<Db>, started: &mut bool) {
    qb.push(if *started { " AND " } else { " WHERE " });
    *started = true;
}

/// `f.q` trimmed, or `None` when there is no search.
fn search_text(f: &IssueFilter) -> Option<&str> {
    f.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
}

/// The FROM of the inner queries: `customers` is joined only when the
/// search needs the customer's name.
fn push_from(qb: &mut sqlx::QueryBuilder<Db>, f: &IssueFilter) {
    qb.push(" FROM issues i");
    if search_text(f).is_some() {
        qb.push(" JOIN customers cu ON cu.id = i.customer_id");
    }
}

/// The conditions every list filter but `status` adds (what `counts`
/// honour). The assignee is not here: see `push_assignee`.
fn push_filters(qb: &mut sqlx::QueryBuilder<Db>, f: &IssueFilter, started: &mut bool) {
    if let Some(customer) = f.customer {
        push_and(qb, started);
        qb.push("i.customer_id = ").push_bind(customer);
    }
    if let Some(q) = search_text(f) {
        push_and(qb, started);
        push_search(qb, q);
    }
}

/// `assignee=none` or `assignee=<id>`.
fn push_assignee(qb: &mut sqlx::QueryBuilder<Db>, f: &IssueFilter, started: &mut bool) {
    match f.assignee {
        None => {}
        Some(AssigneeFilter::None) => {
            push_and(qb, started);
            qb.push("i.assignee_id IS NULL");
        }
        Some(AssigneeFilter::Staff(id)) => {
            push_and(qb, started);
            qb.push("i.assignee_id = ").push_bind(id);
        }
    }
}

/// The search condition (subject, customer name, phone, email, `#id`).
fn push_search(qb: &mut sqlx::QueryBuilder<Db>, q: &str) {
    let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    qb.push("(");
    if let Ok(id) = q.trim_start_matches('#').parse::<i64>() {
        qb.push("i.id = ").push_bind(id).push(" OR ");
    }
    qb.push("LOWER(i.subject) LIKE ")
        .push_bind(pattern.clone())
        .push(" ESCAPE '\\' OR LOWER(cu.name) LIKE ")
        .push_bind(pattern.clone())
        .push(
            " ESCAPE '\\' OR EXISTS (SELECT 1 FROM contacts ct WHERE ct.customer_id = i.customer_id
              AND LOWER(ct.value) LIKE ",
        )
        .push_bind(pattern)
        .push(" ESCAPE '\\'))");
}

/// The status condition of the list. `open` with an assignee filter is
/// one status exactly (the schema's CHECKs tie `unassigned` to a NULL
/// assignee and `assigned` to a set one), which lets the
/// `(assignee_id, status, activity)` index serve it in order.
fn push_status(qb: &mut sqlx::QueryBuilder<Db>, f: &IssueFilter, started: &mut bool) {
    let exact = match (f.status, f.assignee) {
        (Some(StatusFilter::Is(s)), _) => Some(s),
        (_, Some(AssigneeFilter::None)) => Some(IssueStatus::Unassigned),
        (_, Some(AssigneeFilter::Staff(_))) => Some(IssueStatus::Assigned),
        (_, None) => None,
    };
    push_and(qb, started);
    match exact {
        Some(s) => {
            qb.push("i.status = ").push_bind(s.as_str());
        }
        // Written exactly as the partial index's predicate.
        None => {
            qb.push("i.status <> 'closed'");
        }
    }
}

/// The list query: a page of issue ids chosen through an index in activity
/// order, then the full rows for that page.
fn list_query(explain: &str, f: &IssueFilter, caller: i64) -> sqlx::QueryBuilder<Db> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    qb.push(issue_select_head!());
    qb.push_bind(caller);
    qb.push(issue_select_mid!());
    qb.push_bind(caller);
    qb.push(issue_select_tail!());
    qb.push(" WHERE i.id IN (SELECT i.id");
    push_from(&mut qb, f);
    let mut started = false;
    push_filters(&mut qb, f, &mut started);
    push_assignee(&mut qb, f, &mut started);
    push_status(&mut qb, f, &mut started);
    if let Some((at, id)) = f.cursor {
        // (at, id) < cursor, with a plain range on the activity column
        // first so the index seeks to the cursor instead of counting up to
        // it from the top.
        push_and(&mut qb, &mut started);
        qb.push("i.last_message_at <= ")
            .push_bind(at)
            .push(" AND (i.last_message_at < ")
            .push_bind(at)
            .push(" OR i.id < ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY i.last_message_at DESC, i.id DESC LIMIT ").push_bind(f.limit);
    qb.push(") ORDER BY i.last_message_at DESC, i.id DESC");
    qb
}

pub async fn list_issues(
    c: &mut Conn,
    f: &IssueFilter,
    caller: i64,
) -> Result<Vec<IssueView>, StoreError> {
    let rows: Vec<IssueRow> = list_query("", f, caller).build_query_as().fetch_all(&mut *c).await?;
    Ok(rows.into_iter().map(IssueRow::into_view).collect())
}

/// The per-status count query over the filtered issues.
fn count_query(explain: &str, f: &IssueFilter) -> sqlx::QueryBuilder<Db> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    qb.push("SELECT i.status AS status, COUNT(*) AS n");
    push_from(&mut qb, f);
    let mut started = false;
    push_filters(&mut qb, f, &mut started);
    push_assignee(&mut qb, f, &mut started);
    qb.push(" GROUP BY i.status");
    qb
}

/// The counts from `issue_counters` (migration 0010, kept by triggers)
/// when the only filter is the assignee: a handful of rows, however many
/// issues there are. With a customer or a search the filtered set is small
/// and `count_query` counts it through its index.
fn counters_query(explain: &str, f: &IssueFilter) -> Option<sqlx::QueryBuilder<Db>> {
    if f.customer.is_some() || search_text(f).is_some() {
        return None;
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    qb.push("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM issue_counters");
    match f.assignee {
        None => {}
        Some(AssigneeFilter::None) => {
            qb.push(" WHERE assignee_id = 0");
        }
        Some(AssigneeFilter::Staff(id)) => {
            qb.push(" WHERE assignee_id = ").push_bind(id);
        }
    }
    qb.push(" GROUP BY status");
    Some(qb)
}

/// The query behind `counts`: the counters when they can answer, else a
/// count over the filtered issues.
fn counts_query(explain: &str, f: &IssueFilter) -> sqlx::QueryBuilder<Db> {
    counters_query(explain, f).unwrap_or_else(|| count_query(explain, f))
}

pub async fn count_issues(c: &mut Conn, f: &IssueFilter) -> Result<IssueCounts, StoreError> {
    let rows = counts_query("", f).build().fetch_all(&mut *c).await?;
    let mut counts = IssueCounts::default();
    for r in rows {
        let status: String = r.try_get("status")?;
        let n: i64 = r.try_get("n")?;
        match IssueStatus::parse(&status) {
            Some(IssueStatus::Unassigned) => counts.unassigned = n,
            Some(IssueStatus::Assigned) => counts.assigned = n,
            Some(IssueStatus::Closed) => counts.closed = n,
            None => {}
        }
    }
    Ok(counts)
}

/// The plans of the queries one list request runs (the page and its
/// counts), one line per plan node, as `EXPLAIN QUERY PLAN` (SQLite) or
/// `EXPLAIN` (PostgreSQL) prints them. For the plan tests
/// (`tests/api/query_plans.rs`), which fail on a full scan.
pub async fn explain_list_issues(
    c: &mut Conn,
    f: &IssueFilter,
    caller: i64,
) -> Result<Vec<String>, StoreError> {
    let mut lines = Vec::new();
    for mut qb in [list_query(explain!(), f, caller), counts_query(explain!(), f)] {
        for r in qb.build().fetch_all(&mut *c).await? {
            lines.push(r.try_get::<String, _>(plan_column!())?);
        }
        lines.push(String::new());
    }
    Ok(lines)
}
