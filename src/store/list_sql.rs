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

/// What a search text can mean. Each part is an index lookup; the issues
/// they find are united (`push_hits`).
struct Terms {
    /// `123` or `#123`: that issue.
    id: Option<i64>,
    /// A phone number in any formatting (`+1 555-010-1234`,
    /// `(555) 010-1234`, `5550101234`, or just its last digits, 7 or more
    /// typed): its digits reversed, a prefix of the reversed E.164 value.
    phone_reversed: Option<String>,
    /// One word that may be an email address or its beginning, lowercased.
    email: Option<String>,
    /// The words for the full-text indexes, in the backend's syntax: each
    /// a whole word, and the same with the last one a prefix (`None` when
    /// it is too short to be a cheap one).
    words: Option<FtsQuery>,
}

/// The fewest digits a phone search needs, and the fewest characters an
/// email prefix needs: shorter ones match too many to be useful.
const MIN_PHONE_DIGITS: usize = 7;
const MIN_EMAIL_PREFIX: usize = 3;
/// The most customers a phone or email search brings into the list.
const MAX_CONTACT_HITS: i64 = 1000;
/// The most hits a word search reads from each full-text source (customer
/// names, email words, subjects, message bodies): the newest ones, by the
/// source's row id. A common word (`refund`, in one subject in forty) has
/// tens of thousands of hits at a million issues; reading and sorting all
/// of them to show twenty took most of a second. With the cap a search
/// lists, pages through and counts the issues of its newest hits; when a
/// source has more, the older ones are left out of the list and the counts
/// (README, "The Issue Tracker at scale"). Below the cap nothing changes.
const MAX_WORD_HITS: i64 = 500;

impl Terms {
    fn parse(q: &str) -> Terms {
        let id = q.strip_prefix('#').unwrap_or(q).parse::<i64>().ok();
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        let phoneish = q.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        // A national trunk prefix (`020 7946 0123` for `+44 20 7946 0123`)
        // is not part of the E.164 number: leading zeros are dropped.
        let phone_reversed = (phoneish && digits.len() >= MIN_PHONE_DIGITS)
            .then(|| digits.trim_start_matches('0').chars().rev().collect());
        let email = (!phoneish
            && q.chars().count() >= MIN_EMAIL_PREFIX
            && !q.contains(char::is_whitespace))
        .then(|| q.to_lowercase());
        let words: Vec<String> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        // A phone number's digit groups are not words to look for, nor are
        // the parts of a whole address (the range finds it; `example` and
        // `com` are in every other address). A domain alone is words.
        let words = (phone_reversed.is_none() && !q.contains('@') && !words.is_empty())
            .then(|| FtsQuery::new(&words));
        Terms { id, phone_reversed, email, words }
    }
}

/// Words as full-text queries in the backend's syntax (FTS5 or
/// `tsquery`), all required. A word is letters and digits only, so it
/// needs no escaping in either syntax.
struct FtsQuery {
    /// Every word whole.
    exact: String,
    /// The last word a prefix, when it is long enough to be a cheap one.
    prefix: Option<String>,
}

impl FtsQuery {
    fn new(words: &[String]) -> FtsQuery {
        let (last, rest) = words.split_last().expect("at least one word");
        let mut terms: Vec<String> = rest.iter().map(|w| format!(fts_word!(), w)).collect();
        let prefix = (last.chars().count() >= 3).then(|| {
            let mut terms = terms.clone();
            terms.push(format!(fts_prefix!(), last));
            terms.join(FTS_AND)
        });
        terms.push(format!(fts_word!(), last));
        FtsQuery { exact: terms.join(FTS_AND), prefix }
    }

    /// The queries to try, in order: whole words rank first; the prefix
    /// form (which finds the same and more) only when the whole words
    /// found fewer than the cap. A prefix that begins many words (`refund*`
    /// also finds `refunds`, `refunded`) makes the index merge every
    /// matching word's list before it can give the newest hits, which at
    /// ten million messages costs more than the whole request may.
    fn tiers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.exact.as_str()).chain(self.prefix.as_deref())
    }
}

/// A search, with its contact and full-text lookups already done.
pub struct Search {
    terms: Terms,
    /// Customers whose phone or email matched, or whose name or email has
    /// the words.
    customers: Vec<i64>,
    /// Issues whose subject or one of whose messages has the words.
    issues: Vec<i64>,
}

/// The query that finds the customers a phone or email search names, or
/// `None` when the text is neither.
fn contacts_query(explain: &str, t: &Terms) -> Option<sqlx::QueryBuilder<Db>> {
    if t.phone_reversed.is_none() && t.email.is_none() {
        return None;
    }
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    if let Some(rev) = &t.phone_reversed {
        qb.push(concat!(
            "SELECT ct.customer_id FROM contacts ct WHERE ct.kind = 'phone' AND ",
            phone_reversed!(),
            " >= "
        ))
        .push_bind(rev.clone())
        .push(concat!(" AND ", phone_reversed!(), " < "))
        // ':' follows '9': every string that starts with `rev`.
        .push_bind(format!("{rev}:"));
    }
    if let Some(email) = &t.email {
        if t.phone_reversed.is_some() {
            qb.push(" UNION ");
        }
        qb.push(concat!(
            "SELECT ct.customer_id FROM contacts ct WHERE ct.kind = 'email' AND ",
            byte_order!("ct.value"),
            " >= "
        ))
        .push_bind(email.clone())
        .push(concat!(" AND ", byte_order!("ct.value"), " < "))
        // Above every string that starts with `email`.
        .push_bind(format!("{email}\u{10FFFF}"));
    }
    qb.push(" LIMIT ").push_bind(MAX_CONTACT_HITS);
    Some(qb)
}

/// The full-text lookups of a search: for each source, the statements
/// that give its newest hits (tried in turn until one gives the cap; each
/// takes the words as `$1` and the cap as `$2`), and whether it finds
/// customers (else issues).
const WORD_SOURCES: [(&[&str], bool); 4] = [
    (fts_name_hits!(), true),
    (fts_email_hits!(), true),
    (fts_subject_hits!(), false),
    (fts_body_hits!(), false),
];

/// Reads `f.q` and looks up the contacts and words it may name. I do that
/// as queries of their own, not subqueries of the list: the list then gets
/// a few hundred ids as values, and no planner has to guess how many a
/// range over an expression index or a full-text match finds. Each word
/// source gives at most `MAX_WORD_HITS` of its newest hits.
pub async fn search(c: &mut Conn, f: &IssueFilter) -> Result<Option<Search>, StoreError> {
    let Some(q) = search_text(f) else { return Ok(None) };
    let terms = Terms::parse(q);
    let mut customers: Vec<i64> = match contacts_query("", &terms) {
        Some(mut qb) => qb.build_query_scalar().fetch_all(&mut *c).await?,
        None => Vec::new(),
    };
    let mut issues: Vec<i64> = Vec::new();
    if let Some(words) = &terms.words {
        for (statements, finds_customers) in WORD_SOURCES {
            let mut hits: Vec<i64> = Vec::new();
            'tiers: for query in words.tiers() {
                for &sql in statements {
                    if hits.len() as i64 >= MAX_WORD_HITS {
                        break 'tiers;
                    }
                    hits = sqlx::query_scalar(sql)
                        .bind(query)
                        .bind(MAX_WORD_HITS)
                        .fetch_all(&mut *c)
                        .await?;
                }
            }
            if finds_customers { &mut customers } else { &mut issues }.extend(hits);
        }
    }
    for ids in [&mut customers, &mut issues] {
        ids.sort_unstable();
        ids.dedup();
    }
    Ok(Some(Search { terms, customers, issues }))
}

/// The ids of the issues a search finds, as one compound SELECT (column
/// `id`), or one that finds none when the text has nothing to look up.
fn push_hits(qb: &mut sqlx::QueryBuilder<Db>, s: &Search) {
    let mut parts = 0;
    let mut union = |qb: &mut sqlx::QueryBuilder<Db>| {
        qb.push(if parts == 0 { "" } else { " UNION " });
        parts += 1;
    };
    if let Some(id) = s.terms.id {
        union(qb);
        qb.push("SELECT ").push_bind(id).push(" AS id");
    }
    if !s.customers.is_empty() {
        union(qb);
        qb.push("SELECT s.id AS id FROM issues s WHERE s.customer_id IN (");
        let mut list = qb.separated(", ");
        for id in &s.customers {
            list.push_bind(*id);
        }
        qb.push(")");
    }
    if !s.issues.is_empty() {
        union(qb);
        qb.push("SELECT s.id AS id FROM issues s WHERE s.id IN (");
        let mut list = qb.separated(", ");
        for id in &s.issues {
            list.push_bind(*id);
        }
        qb.push(")");
    }
    if parts == 0 {
        qb.push("SELECT 0 AS id WHERE 1 = 0");
    }
}

/// The FROM of the inner queries. A search drives the query from its hits
/// (`CROSS JOIN` keeps SQLite from scanning issues in order and probing the
/// hits instead); without one, the filters pick the index.
fn push_from(qb: &mut sqlx::QueryBuilder<Db>, s: Option<&Search>, started: &mut bool) {
    match s {
        Some(s) => {
            qb.push(" FROM (");
            push_hits(qb, s);
            qb.push(") h CROSS JOIN issues i WHERE i.id = h.id");
            *started = true;
        }
        None => {
            qb.push(" FROM issues i");
        }
    }
}

/// The conditions every list filter but `status` adds (what `counts`
/// honour), besides the search (`push_from`). The assignee is apart: see
/// `push_assignee`.
fn push_filters(qb: &mut sqlx::QueryBuilder<Db>, f: &IssueFilter, started: &mut bool) {
    if let Some(customer) = f.customer {
        push_and(qb, started);
        qb.push("i.customer_id = ").push_bind(customer);
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
fn list_query(
    explain: &str,
    f: &IssueFilter,
    s: Option<&Search>,
    caller: i64,
) -> sqlx::QueryBuilder<Db> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    qb.push(issue_select_head!());
    qb.push_bind(caller);
    qb.push(issue_select_mid!());
    qb.push_bind(caller);
    qb.push(issue_select_tail!());
    qb.push(" WHERE i.id IN (SELECT i.id");
    let mut started = false;
    push_from(&mut qb, s, &mut started);
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

/// A page of the list; `s` is `search(f)`.
pub async fn list_issues(
    c: &mut Conn,
    f: &IssueFilter,
    s: Option<&Search>,
    caller: i64,
) -> Result<Vec<IssueView>, StoreError> {
    let rows: Vec<IssueRow> =
        list_query("", f, s, caller).build_query_as().fetch_all(&mut *c).await?;
    rows.into_iter().map(IssueRow::into_view).collect()
}

/// The per-status count query over the filtered issues.
fn count_query(explain: &str, f: &IssueFilter, s: Option<&Search>) -> sqlx::QueryBuilder<Db> {
    let mut qb = sqlx::QueryBuilder::<Db>::new(explain);
    qb.push("SELECT i.status AS status, COUNT(*) AS n");
    let mut started = false;
    push_from(&mut qb, s, &mut started);
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
fn counts_query(explain: &str, f: &IssueFilter, s: Option<&Search>) -> sqlx::QueryBuilder<Db> {
    counters_query(explain, f).unwrap_or_else(|| count_query(explain, f, s))
}

/// The list's `counts`; `s` is `search(f)`.
pub async fn count_issues(
    c: &mut Conn,
    f: &IssueFilter,
    s: Option<&Search>,
) -> Result<IssueCounts, StoreError> {
    let rows = counts_query("", f, s).build().fetch_all(&mut *c).await?;
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

/// The plans of the queries one list request runs (the contact lookup of
/// a search, the page and its counts), one line per plan node, as `EXPLAIN QUERY PLAN` (SQLite) or
/// `EXPLAIN` (PostgreSQL) prints them. For the plan tests
/// (`tests/api/query_plans.rs`), which fail on a full scan.
///
/// `prefer_indexes` asks the planner to cost a sequential scan as a last
/// resort (PostgreSQL's `enable_seqscan = off`; SQLite has no such switch
/// and needs none), for test databases too small for the planner to see
/// what an index saves. A plan that still scans has no index to use.
pub async fn explain_list_issues(
    c: &mut Conn,
    f: &IssueFilter,
    caller: i64,
    prefer_indexes: bool,
) -> Result<Vec<String>, StoreError> {
    if let (true, Some((set, _))) = (prefer_indexes, PREFER_INDEXES) {
        sqlx::query(set).execute(&mut *c).await?;
    }
    let lines = explain_all(c, f, caller).await;
    if let (true, Some((_, reset))) = (prefer_indexes, PREFER_INDEXES) {
        sqlx::query(reset).execute(&mut *c).await?;
    }
    lines
}

async fn explain_all(c: &mut Conn, f: &IssueFilter, caller: i64) -> Result<Vec<String>, StoreError> {
    let s = search(c, f).await?;
    let mut queries: Vec<sqlx::QueryBuilder<Db>> = s
        .as_ref()
        .and_then(|s| contacts_query(explain!(), &s.terms))
        .into_iter()
        .collect();
    queries.push(list_query(explain!(), f, s.as_ref(), caller));
    queries.push(counts_query(explain!(), f, s.as_ref()));
    let mut lines = Vec::new();
    for mut qb in queries {
        for r in qb.build().fetch_all(&mut *c).await? {
            lines.push(r.try_get::<String, _>(plan_column!())?);
        }
        lines.push(String::new());
    }
    if let Some(words) = s.as_ref().and_then(|s| s.terms.words.as_ref()) {
        for (statements, _) in WORD_SOURCES {
            for (query, &sql) in words.tiers().flat_map(|q| statements.iter().map(move |s| (q, s))) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(explain!());
                qb.push(sql);
                let plan = qb.build().bind(query).bind(MAX_WORD_HITS).fetch_all(&mut *c).await?;
                for r in plan {
                    lines.push(r.try_get::<String, _>(plan_column!())?);
                }
                lines.push(String::new());
            }
        }
    }
    Ok(lines)
}
