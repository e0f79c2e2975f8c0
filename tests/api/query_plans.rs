//! Plan tests (issue 12): every shape of the issue list is answered from
//! an index, never by a full scan of `issues` or `messages`.
//!
//! A timing test on a laptop-sized database proves little: a full scan of
//! three thousand rows is fast. The plan is what grows with the database,
//! so I seed a few thousand rows straight into the tables, run `ANALYZE`
//! so the planner sees realistic proportions (about 1% of issues open), and
//! read the plan of each query the list runs with `EXPLAIN QUERY PLAN`
//! (SQLite) or `EXPLAIN` (PostgreSQL). A line that scans a whole table the
//! list must not scan fails the test, naming the filter and the plan.

use chrono::{TimeZone, Utc};
use switchboard::domain::IssueStatus;
use switchboard::store::{AssigneeFilter, IssueFilter, StatusFilter};

use crate::helpers::{Backend, TestStore, test_store};

/// Issues (and customers) seeded; one in a hundred is open. Enough that
/// PostgreSQL costs a scan of `issues` above 21 index lookups.
const ISSUES: i64 = 20_000;
/// Messages per issue; every third one is an event.
const MESSAGES_PER_ISSUE: i64 = 3;

/// A timestamp `minutes` after a fixed start, as the backend stores it.
fn at(b: Backend, minutes: &str) -> String {
    match b {
        Backend::Sqlite => format!(
            "strftime('%Y-%m-%dT%H:%M:%S+00:00', 1700000000 + ({minutes}) * 60, 'unixepoch')"
        ),
        Backend::Postgres => format!("to_timestamp(1700000000 + ({minutes}) * 60)"),
    }
}

/// `WITH RECURSIVE` counting 1..=n as `x`, valid on both backends.
fn upto(n: i64) -> String {
    format!("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {n}) ")
}

/// Three staff, `ISSUES` customers each with a phone and an email, one
/// issue each, `MESSAGES_PER_ISSUE` messages per issue.
async fn seed(db: &TestStore, b: Backend) {
    db.exec(&format!(
        "{} INSERT INTO staff (id, email, name, role, active, created_at)
         SELECT x, 'staff' || x || '@example.com', 'Staff ' || x, 'agent', TRUE, {} FROM n",
        upto(3),
        at(b, "0")
    ))
    .await;
    db.exec(&format!(
        "{} INSERT INTO customers (id, name, created_at)
         SELECT x, 'Customer ' || x, {} FROM n",
        upto(ISSUES),
        at(b, "x")
    ))
    .await;
    db.exec(&format!(
        "{} INSERT INTO contacts (customer_id, kind, value, created_at)
         SELECT x, 'phone', '+1555' || (1000000 + x), {} FROM n",
        upto(ISSUES),
        at(b, "x")
    ))
    .await;
    db.exec(&format!(
        "{} INSERT INTO contacts (customer_id, kind, value, created_at)
         SELECT x, 'email', 'user' || x || '@example.com', {} FROM n",
        upto(ISSUES),
        at(b, "x")
    ))
    .await;
    // x % 100 = 0: unassigned; x % 100 = 50: assigned; otherwise closed.
    db.exec(&format!(
        "{} INSERT INTO issues (id, customer_id, channel, subject, status, assignee_id,
                                resolution, created_at, updated_at, last_message_at)
         SELECT x, x, 'sms', 'Subject number ' || x,
                CASE WHEN x % 100 = 0 THEN 'unassigned'
                     WHEN x % 100 = 50 THEN 'assigned' ELSE 'closed' END,
                CASE WHEN x % 100 = 0 THEN NULL ELSE x % 3 + 1 END,
                CASE WHEN x % 100 IN (0, 50) THEN NULL ELSE 'closed' END,
                {at}, {at}, {at} FROM n",
        upto(ISSUES),
        at = at(b, "x")
    ))
    .await;
    db.exec(&format!(
        "{} INSERT INTO messages (issue_id, kind, channel, author_type, author_name, body, created_at)
         SELECT (x - 1) / {per} + 1,
                CASE WHEN x % {per} = 0 THEN 'event' ELSE 'customer' END, 'sms',
                CASE WHEN x % {per} = 0 THEN 'system' ELSE 'customer' END, 'Someone',
                'I would like a refund for order ' || x, {at} FROM n",
        upto(ISSUES * MESSAGES_PER_ISSUE),
        per = MESSAGES_PER_ISSUE,
        at = at(b, "x")
    ))
    .await;
}

/// Tables (and the aliases the store's SQL gives them) the list must
/// never read whole.
const SCANNED: [&str; 12] = [
    "i",
    "s",
    "ii",
    "issues",
    "m",
    "messages",
    "cu",
    "cn",
    "ce",
    "customers",
    "ct",
    "contacts",
];

/// The plan line that scans a table the list must never scan, if any.
fn full_scan(b: Backend, plan: &[String]) -> Option<String> {
    plan.iter()
        .find(|line| match b {
            Backend::Sqlite => {
                let words: Vec<&str> = line.split_whitespace().collect();
                // `SCAN i`, `SCAN i USING INDEX …`: every row of the table or
                // of one of its indexes. The partial index of open issues is
                // the one index small enough to read whole.
                words.first() == Some(&"SCAN")
                    && words.get(1).is_some_and(|t| SCANNED.contains(t))
                    && !line.contains("issues_open_activity")
            }
            Backend::Postgres => ["issues", "messages", "customers", "contacts"]
                .iter()
                .any(|t| line.contains(&format!("Seq Scan on {t}"))),
        })
        .cloned()
}

fn filter(
    status: Option<StatusFilter>,
    assignee: Option<AssigneeFilter>,
    customer: Option<i64>,
    q: Option<&str>,
) -> IssueFilter {
    IssueFilter {
        status,
        assignee,
        q: q.map(str::to_string),
        customer,
        limit: 21,
        cursor: None,
    }
}

/// Every shape of list request the API and the tracker make.
fn shapes() -> Vec<(String, IssueFilter)> {
    let statuses = [
        ("open", Some(StatusFilter::Open)),
        (
            "unassigned",
            Some(StatusFilter::Is(IssueStatus::Unassigned)),
        ),
        ("assigned", Some(StatusFilter::Is(IssueStatus::Assigned))),
        ("closed", Some(StatusFilter::Is(IssueStatus::Closed))),
    ];
    let assignees = [
        ("any", None),
        ("none", Some(AssigneeFilter::None)),
        ("staff", Some(AssigneeFilter::Staff(2))),
    ];
    let mut out = Vec::new();
    for (s, status) in statuses {
        for (a, assignee) in assignees {
            out.push((
                format!("status={s} assignee={a}"),
                filter(status, assignee, None, None),
            ));
            let mut deep = filter(status, assignee, None, None);
            deep.cursor = Some((
                Utc.timestamp_opt(1_700_000_000 + 15_000 * 60, 0).unwrap(),
                15_000,
            ));
            out.push((format!("status={s} assignee={a} cursor"), deep));
        }
        // Each kind of search: phone (formatted, national, a tail), email
        // (exact, a beginning), words (subject, body, name), #id.
        for text in [
            "+1 555 100 1234",
            "(555) 100-1234",
            "1001234",
            "user12345@example.com",
            "user12345",
            "refund order",
            "Customer 1234",
            "#12345",
        ] {
            out.push((
                format!("status={s} q={text}"),
                filter(status, None, None, Some(text)),
            ));
        }
        out.push((
            format!("status={s} customer"),
            filter(status, None, Some(1234), None),
        ));
    }
    out
}

/// The plans of every shape that scan what they must not, described.
async fn scans(db: &TestStore, b: Backend, when: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, f) in shapes() {
        // A search's hits are costed from full-text and range estimates
        // that, at this size, make scanning 20,000 issues look as cheap as
        // the lookups; PostgreSQL is asked to prefer indexes for those.
        let prefer_indexes = f.q.is_some();
        let plan = db
            .explain_list_issues(&f, 1, prefer_indexes)
            .await
            .expect("explain the list");
        if std::env::var_os("SHOW_PLANS").is_some() {
            eprintln!("== {name} ({when})\n{}", plan.join("\n"));
        }
        // The plans of each query, a blank line after each.
        if let Some(line) = full_scan(b, &plan) {
            failures.push(format!("{name} ({when}): {line}\n  {}", plan.join("\n  ")));
        }
    }
    failures
}

async fn list_queries_use_indexes(b: Backend) {
    let db = test_store(b).await;
    seed(&db, b).await;
    let mut failures = Vec::new();
    // A new SQLite database has no statistics (nothing runs ANALYZE), so
    // its plans must be right without them too; PostgreSQL's autovacuum
    // analyzes on its own.
    if b == Backend::Sqlite {
        failures.extend(scans(&db, b, "no statistics").await);
    }
    db.exec("ANALYZE").await;
    failures.extend(scans(&db, b, "after ANALYZE").await);
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
    db.cleanup().await;
}

both_backends!(list_queries_use_indexes);
