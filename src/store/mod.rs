//! Persistence: one `Store` over SQLite or PostgreSQL.
//!
//! STYLE.md asks for the two backends behind one interface, with sqlx's
//! `Any` driver ruled out. I tried the obvious shape first — a `Store`
//! trait with one impl per backend — and it means every method signature
//! three times (trait, SQLite impl, PostgreSQL impl) plus an enum or `dyn`
//! to keep handlers non-generic. Instead the SQL lives once in `sql.rs`,
//! which `sqlite.rs` and `postgres.rs` each `include!` after defining the
//! backend type and the two dialect differences we have (`FOR UPDATE`,
//! `SKIP LOCKED`). The compiler type-checks the same text once per backend
//! with that backend's encoders, so a query that only works on one of them
//! fails to build rather than at run time, and `Store` below is the one
//! enum that delegates (the "enum that delegates" of STYLE.md).
//!
//! Every write runs in one transaction that is retried as a whole when the
//! database reports a conflict that a second try resolves: a unique index
//! violation (two first messages from one new customer racing to create
//! the customer or the issue), a PostgreSQL serialization failure or
//! deadlock, or SQLite's busy error.

pub mod model;
pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, SubsecRound, Utc};
use std::time::Duration;

use crate::domain::notify::{Cell, NotifyEvent};
use crate::domain::{self, Channel, DeliveryStatus, Role, TransitionError};
pub use model::*;

/// A refusal the API shows as-is: status, code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// For `customer_has_open_issue`: the open issue.
    pub issue_id: Option<i64>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{}", .0.message)]
    Rule(RuleError),
    /// A conflict that running the transaction again resolves.
    #[error("transaction conflict, retry")]
    Retry,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (use sqlite:// or postgres://)")]
    BadUrl,
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        let status = match e {
            TransitionError::UnknownAssignee => 422,
            TransitionError::Forbidden | TransitionError::NotAssignee => 403,
            _ => 409,
        };
        let issue_id = match e {
            TransitionError::CustomerHasOpenIssue(id) => Some(id),
            _ => None,
        };
        StoreError::Rule(RuleError {
            status,
            code: e.code(),
            message: e.to_string(),
            issue_id,
        })
    }
}

impl StoreError {
    pub fn conflict(code: &'static str, message: &str) -> Self {
        StoreError::Rule(RuleError {
            status: 409,
            code,
            message: message.into(),
            issue_id: None,
        })
    }
    pub fn forbidden(code: &'static str, message: &str) -> Self {
        StoreError::Rule(RuleError {
            status: 403,
            code,
            message: message.into(),
            issue_id: None,
        })
    }
    pub fn invalid(code: &'static str, message: &str) -> Self {
        StoreError::Rule(RuleError {
            status: 422,
            code,
            message: message.into(),
            issue_id: None,
        })
    }

    /// Maps a unique violation to a client error; anything else passes.
    pub fn on_unique(e: sqlx::Error, code: &'static str, message: &str) -> Self {
        if is_unique_violation(&e) {
            StoreError::conflict(code, message)
        } else {
            StoreError::Db(e)
        }
    }

    /// A unique violation here means a concurrent transaction won a race
    /// that a retry will see the result of.
    pub fn retry_on_unique(e: sqlx::Error) -> Self {
        if is_unique_violation(&e) {
            StoreError::Retry
        } else {
            StoreError::Db(e)
        }
    }

    /// Same as `retry_on_unique` for an error already converted.
    pub fn retry_if_unique(e: StoreError) -> Self {
        match e {
            StoreError::Db(db) => StoreError::retry_on_unique(db),
            other => other,
        }
    }

    /// Whether the database refused this data itself, so running the same
    /// write again fails the same way: a PostgreSQL data exception (class
    /// 22, e.g. a NUL in text) or integrity violation (class 23, unique
    /// violations excepted: those are races), or SQLite's too-big,
    /// constraint, mismatch or range errors. A poison message, not an
    /// outage: an outage (pool timeout, connection lost) is never poison.
    pub fn is_poison(&self) -> bool {
        let StoreError::Db(sqlx::Error::Database(db)) = self else {
            return false;
        };
        if db.is_unique_violation() {
            return false;
        }
        let Some(code) = db.code() else { return false };
        if db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
        {
            code.starts_with("22") || code.starts_with("23")
        } else {
            // SQLite reports extended codes; the primary code is the low byte.
            code.parse::<i32>()
                .is_ok_and(|n| matches!(n & 0xff, 18 | 19 | 20 | 25))
        }
    }

    /// The database's own error code (SQLSTATE, or SQLite's number), if
    /// this is a database error: safe to show, unlike its message, which
    /// may quote the data.
    pub fn db_code(&self) -> Option<String> {
        match self {
            StoreError::Db(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            StoreError::Retry => true,
            StoreError::Db(sqlx::Error::Database(db)) => {
                db.is_unique_violation()
                    || matches!(
                        db.code().as_deref(),
                        Some("40001" | "40P01" | "5" | "517" | "6")
                    )
                    || db.message().contains("database is locked")
            }
            _ => false,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The current time as both backends store it (microseconds), so a value
/// written and read back compares equal on either.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// How many characters of a caller-supplied value the rejected log keeps.
pub const REJECTED_FIELD_CHARS: usize = 64;

/// How many characters of `key` the rejected log keeps: our own texts
/// (`error`, `expected_url`) and a signed poison message's `body` get
/// more than a caller-supplied identifier does.
fn rejected_field_cap(key: &str) -> usize {
    match key {
        "body" => domain::text::SMS_MAX_CHARS,
        "error" => 512,
        "expected_url" => 256,
        _ => REJECTED_FIELD_CHARS,
    }
}

/// `detail` with every string cut to its cap (see `record_rejected`);
/// nested values are capped too, and an array keeps its first 16 items.
fn cap_detail(detail: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    fn cap(key: &str, v: &Value) -> (Value, Option<usize>) {
        match v {
            Value::String(s) => {
                let (kept, len) = domain::text::capped(s, rejected_field_cap(key));
                (Value::String(kept), len)
            }
            Value::Array(items) => (
                Value::Array(items.iter().take(16).map(|i| cap(key, i).0).collect()),
                (items.len() > 16).then_some(items.len()),
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map.iter().take(32) {
                    let (kept, len) = cap(k, v);
                    let (k, _) = domain::text::capped(k, REJECTED_FIELD_CHARS);
                    if let Some(len) = len {
                        out.insert(format!("{k}_length"), Value::from(len));
                    }
                    out.insert(k, kept);
                }
                (Value::Object(out), None)
            }
            other => (other.clone(), None),
        }
    }
    cap("", detail).0
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The database. Cheap to clone (it holds a pool).
/// Repeats of one rejection from one source within this long share a row.
pub const REJECTED_GROUPING: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Poked after every committed write transaction, so this instance's
    /// live-event hub reads new events at once instead of at its next poll.
    committed: std::sync::Arc<tokio::sync::Notify>,
}

/// Runs `$body` in a write transaction on whichever backend this is,
/// committing on `Ok` and retrying the whole transaction on a retryable
/// conflict. `$q` names the backend's copy of the shared SQL.
macro_rules! write_tx {
    ($self:ident, |$c:ident, $q:ident| $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let result: Result<_, StoreError> = match &$self.backend {
                Backend::Sqlite(pool) => {
                    use sqlite::q as $q;
                    let mut tx = sqlite::begin(pool).await?;
                    let r = {
                        let $c: &mut $q::Conn = &mut *tx;
                        $body
                    };
                    match r {
                        Ok(v) => tx.commit().await.map(|_| v).map_err(StoreError::from),
                        Err(e) => Err(e),
                    }
                }
                Backend::Postgres(pool) => {
                    use postgres::q as $q;
                    let mut tx = postgres::begin(pool).await?;
                    let r = {
                        let $c: &mut $q::Conn = &mut *tx;
                        $body
                    };
                    match r {
                        Ok(v) => tx.commit().await.map(|_| v).map_err(StoreError::from),
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Err(e) if e.is_retryable() && attempt < 30 => {
                    tracing::debug!(attempt, error = %e, "retrying transaction");
                    let jitter = rand::random::<u64>() % (5 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) + jitter)).await;
                }
                Err(StoreError::Retry) => break Err(StoreError::conflict("conflict", "too much contention, try again")),
                other => {
                    if other.is_ok() {
                        $self.committed.notify_one();
                    }
                    break other;
                }
            }
        }
    }};
}

/// Runs `$body` on a pooled connection, outside any explicit transaction.
macro_rules! read {
    ($self:ident, |$c:ident, $q:ident| $body:expr) => {{
        match &$self.backend {
            Backend::Sqlite(pool) => {
                use sqlite::q as $q;
                let mut conn = pool.acquire().await?;
                let $c: &mut $q::Conn = &mut *conn;
                $body
            }
            Backend::Postgres(pool) => {
                use postgres::q as $q;
                let mut conn = pool.acquire().await?;
                let $c: &mut $q::Conn = &mut *conn;
                $body
            }
        }
    }};
}

impl Store {
    /// Resolves after the next committed write (or at once if one happened
    /// since the last call): the hub's cue to read new events.
    pub async fn committed(&self) {
        self.committed.notified().await
    }

    /// Connects to `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url, max_connections).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::connect(url, max_connections).await?)
        } else {
            return Err(StoreError::BadUrl);
        };
        Ok(Store {
            backend,
            committed: Default::default(),
        })
    }

    /// Which backend this is: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlite::MIGRATOR.run(pool).await?,
            Backend::Postgres(pool) => postgres::MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// Whether every migration this binary knows is applied.
    pub async fn is_migrated(&self) -> Result<bool, StoreError> {
        let latest = match &self.backend {
            Backend::Sqlite(_) => sqlite::MIGRATOR.iter().map(|m| m.version).max(),
            Backend::Postgres(_) => postgres::MIGRATOR.iter().map(|m| m.version).max(),
        };
        let applied: Result<Option<i64>, sqlx::Error> = read!(self, |c, _q| {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut *c)
                .await
        });
        match applied {
            Ok(v) => Ok(v >= latest),
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        // Executed, not decoded: `SELECT 1` is an INT4 on PostgreSQL and an
        // INTEGER (i64) on SQLite, so no one Rust type reads both.
        read!(self, |c, _q| {
            sqlx::query("SELECT 1").execute(&mut *c).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    // ------------------------------------------------------------ staff

    pub async fn create_staff(
        &self,
        email: &str,
        name: &str,
        role: Role,
    ) -> Result<Staff, StoreError> {
        let email = email.trim().to_lowercase();
        let now = now();
        write_tx!(self, |c, q| q::insert_staff(
            c,
            &email,
            name.trim(),
            role,
            now
        )
        .await)
    }

    pub async fn list_staff(&self) -> Result<Vec<Staff>, StoreError> {
        read!(self, |c, q| q::list_staff(c).await)
    }

    pub async fn get_staff(&self, id: i64) -> Result<Staff, StoreError> {
        read!(self, |c, q| q::get_staff(c, id).await)?.ok_or(StoreError::NotFound("staff member"))
    }

    pub async fn staff_by_email(&self, email: &str) -> Result<Option<Staff>, StoreError> {
        let email = email.trim().to_lowercase();
        read!(self, |c, q| q::staff_by_email(c, &email).await)
    }

    /// Changes a staff member; refuses to leave the team without an active admin.
    pub async fn update_staff(
        &self,
        id: i64,
        active: Option<bool>,
        role: Option<Role>,
        name: Option<&str>,
    ) -> Result<Staff, StoreError> {
        let may_remove_admin = active == Some(false) || role == Some(Role::Agent);
        write_tx!(self, |c, q| {
            if may_remove_admin {
                q::lock_active_admins(c).await?;
            }
            let updated = q::update_staff(c, id, active, role, name)
                .await?
                .ok_or(StoreError::NotFound("staff member"))?;
            if q::count_active_admins(c).await? == 0 {
                Err(StoreError::conflict(
                    "last_admin",
                    "the last active admin cannot be demoted or deactivated",
                ))
            } else {
                Ok(updated)
            }
        })
    }

    pub async fn count_staff(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::count_staff(c).await)
    }

    /// Creates an API token for a staff member and returns it; only its
    /// hash is stored.
    pub async fn create_token(&self, staff_id: i64) -> Result<String, StoreError> {
        let token = crate::token::generate();
        let hash = crate::token::hash(&token);
        let now = now();
        write_tx!(self, |c, q| {
            if q::get_staff(c, staff_id).await?.is_none() {
                return Err(StoreError::NotFound("staff member"));
            }
            q::insert_token(c, staff_id, &hash, now).await
        })?;
        Ok(token)
    }

    /// The active staff member a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Staff>, StoreError> {
        let hash = crate::token::hash(token);
        let found = read!(self, |c, q| q::staff_by_token(c, &hash).await)?;
        Ok(found.and_then(|(staff, stored)| {
            crate::token::hashes_equal(&stored, &hash).then_some(staff)
        }))
    }

    // ------------------------------------------------------------ issues

    pub async fn list_issues(
        &self,
        filter: &IssueFilter,
        caller: i64,
    ) -> Result<(Vec<IssueView>, IssueCounts), StoreError> {
        // A NUL in the search text would be refused by PostgreSQL with an
        // error (a 500); nothing stored contains one, so it matches nothing.
        let cleaned;
        let filter = match &filter.q {
            Some(text) if text.contains('\0') => {
                cleaned = IssueFilter {
                    q: Some(domain::text::strip_nul(text.clone())),
                    ..filter.clone()
                };
                &cleaned
            }
            _ => filter,
        };
        read!(self, |c, q| {
            let search = q::search(c, filter).await?;
            let issues = q::list_issues(c, filter, search.as_ref(), caller).await?;
            let counts = q::count_issues(c, filter, search.as_ref()).await?;
            Ok((issues, counts))
        })
    }

    /// The query plans behind `list_issues(filter, caller)`, one line per
    /// plan node and an empty line after each query. Public for the plan
    /// tests, which fail on a full scan of `issues` or `messages`;
    /// `prefer_indexes` is for databases too small for the planner to see
    /// what an index saves (see `list_sql.rs`).
    pub async fn explain_list_issues(
        &self,
        filter: &IssueFilter,
        caller: i64,
        prefer_indexes: bool,
    ) -> Result<Vec<String>, StoreError> {
        read!(self, |c, q| {
            q::explain_list_issues(c, filter, caller, prefer_indexes).await
        })
    }

    pub async fn issue(&self, id: i64, caller: i64) -> Result<IssueView, StoreError> {
        read!(self, |c, q| q::issue_view(c, id, caller).await)?.ok_or(StoreError::NotFound("issue"))
    }

    /// A page of an issue's timeline, oldest first, and the cursor for the
    /// page before it.
    pub async fn messages(
        &self,
        issue_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<MessageView>, Option<i64>), StoreError> {
        read!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            let (page, more) = q::list_messages(c, issue_id, before, limit).await?;
            let cursor = if more {
                page.first().map(|m| m.id)
            } else {
                None
            };
            Ok((page, cursor))
        })
    }

    pub async fn message(&self, id: i64) -> Result<MessageView, StoreError> {
        read!(self, |c, q| q::message_view(c, id).await)?.ok_or(StoreError::NotFound("message"))
    }

    /// Take It, Assign It, unassign, Mark as Closed, Resolve, reopen.
    pub async fn transition(
        &self,
        issue_id: i64,
        actor: &Staff,
        action: IssueAction,
    ) -> Result<IssueView, StoreError> {
        let a = domain::Actor {
            id: actor.id,
            role: actor.role,
        };
        let now = now();
        write_tx!(self, |c, q| {
            q::transition(c, issue_id, &a, &actor.name, action, now).await?;
            q::issue_view(c, issue_id, actor.id)
                .await?
                .ok_or(StoreError::NotFound("issue"))
        })
    }

    pub async fn add_comment(
        &self,
        issue_id: i64,
        author: &Staff,
        body: &str,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::add_comment(c, issue_id, author, body, now).await?;
            q::message_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn edit_comment(
        &self,
        message_id: i64,
        actor: &Staff,
        body: &str,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::edit_comment(c, message_id, actor, body, now).await?;
            q::message_view(c, message_id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn delete_comment(&self, message_id: i64, actor: &Staff) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::delete_comment(c, message_id, actor, now)
            .await)
    }

    /// Queues a reply to the customer; the outbox worker sends it.
    pub async fn reply(
        &self,
        issue_id: i64,
        author: &Staff,
        body: &str,
        channel: Option<Channel>,
    ) -> Result<MessageView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::create_reply(c, issue_id, author, body, channel, now).await?;
            q::message_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("message"))
        })
    }

    pub async fn mark_read(&self, issue_id: i64, staff_id: i64) -> Result<(), StoreError> {
        write_tx!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::mark_read(c, issue_id, staff_id).await
        })
    }

    /// View Customer; a merged-away id shows the customer it was merged into.
    pub async fn customer(&self, id: i64, caller: i64) -> Result<CustomerView, StoreError> {
        read!(self, |c, q| {
            let Some(id) = q::resolve_customer(c, id).await? else {
                return Err(StoreError::NotFound("customer"));
            };
            q::customer_view(c, id, caller).await
        })?
        .ok_or(StoreError::NotFound("customer"))
    }

    /// "New Ticket": an issue assigned to the caller with a first message.
    pub async fn create_issue(
        &self,
        actor: &Staff,
        new: &NewIssue,
    ) -> Result<IssueView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            let id = q::create_issue(c, actor, new, now).await?;
            q::issue_view(c, id, actor.id)
                .await?
                .ok_or(StoreError::NotFound("issue"))
        })
    }

    // ------------------------------------------------------------ ingest

    /// Stores one inbound message by SPEC §3.1, durably, before returning.
    pub async fn ingest(
        &self,
        msg: &Inbound,
        opts: &IngestOptions,
    ) -> Result<IngestOutcome, StoreError> {
        write_tx!(self, |c, q| q::ingest(c, msg, opts, now()).await)
    }

    // ------------------------------------------------------------ outbox

    /// Claims the next due outbox item, leased for `lease`.
    pub async fn claim_outbox(&self, lease: Duration) -> Result<Option<OutboxJob>, StoreError> {
        let now = now();
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        write_tx!(self, |c, q| q::claim_outbox(c, now, until).await)
    }

    /// The provider accepted the message.
    pub async fn outbox_sent(
        &self,
        job: &OutboxJob,
        external_id: Option<&str>,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::update_delivery(c, job.message_id, status, None, external_id).await?;
            q::outbox_finish(c, job.id, "done", None, now).await
        })
    }

    /// A temporary failure: try again at `next_at`.
    pub async fn outbox_retry(
        &self,
        job: &OutboxJob,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::outbox_retry(c, job.id, next_at, error, now)
            .await)
    }

    /// A permanent failure (or retries exhausted): the reply shows `failed`.
    pub async fn outbox_failed(
        &self,
        job: &OutboxJob,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::update_delivery(
                c,
                job.message_id,
                DeliveryStatus::Failed,
                Some((code, message)),
                None,
            )
            .await?;
            q::outbox_finish(
                c,
                job.id,
                "failed",
                Some(&format!("{code}: {message}")),
                now,
            )
            .await
        })
    }

    pub async fn outbox_depth(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::outbox_depth(c).await)
    }

    /// A provider's delivery report. Returns whether a reply matched.
    pub async fn delivery_report(
        &self,
        channel: Channel,
        external_id: &str,
        status: DeliveryStatus,
        error: Option<(&str, &str)>,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |c, q| {
            match q::reply_by_external_id(c, channel, external_id).await? {
                Some(id) => {
                    q::update_delivery(c, id, status, error, None).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    // ------------------------------------------------------------ rejected

    /// Keeps an inbound that could not be ingested, with the reason.
    ///
    /// Anyone can make a rejection (an unsigned POST is one), so what is
    /// kept is bounded here, once for every caller: each string in `detail`
    /// is cut to [`REJECTED_FIELD_CHARS`] characters (a few fields of ours
    /// get more, see [`rejected_field_cap`]) and its original length is
    /// kept beside it as `<field>_length`. Old rows are purged by the
    /// housekeeping job (`retention.rejected`).
    pub async fn record_rejected(
        &self,
        kind: &str,
        reason: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        self.record_rejected_from(kind, reason, None, detail).await
    }

    /// Records a rejection from `source` (a client address): a repeat of
    /// the same kind and reason from the same source within
    /// [`REJECTED_GROUPING`] adds one to the newest such row instead of
    /// writing another, so a flood costs a counter, not disk.
    pub async fn record_rejected_from(
        &self,
        kind: &str,
        reason: &str,
        source: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = now();
        let since = now - chrono::Duration::from_std(REJECTED_GROUPING).unwrap_or_default();
        let detail = cap_detail(detail);
        let source = source.map(|s| domain::text::capped(s, REJECTED_FIELD_CHARS).0);
        write_tx!(self, |c, q| {
            let grouped = match source.as_deref() {
                Some(src) => q::repeat_rejected(c, kind, reason, src, since, now).await,
                None => Ok(None),
            };
            match grouped {
                Ok(Some(id)) => Ok(id),
                Ok(None) => {
                    q::insert_rejected(c, kind, reason, source.as_deref(), &detail, now).await
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Retention: deletes rejected-log rows received before `before`.
    pub async fn purge_rejected(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_rejected(c, before).await)
    }

    pub async fn list_rejected(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Rejected>, StoreError> {
        read!(self, |c, q| q::list_rejected(c, before, limit).await)
    }

    // ------------------------------------------------------------ notifications

    /// A staff member's whole preference matrix.
    pub async fn preferences(
        &self,
        staff: &Staff,
    ) -> Result<std::collections::BTreeMap<NotifyEvent, Cell>, StoreError> {
        let overrides = read!(self, |c, q| q::pref_overrides(c, staff.id).await)?;
        Ok(domain::notify::matrix(staff.role, &overrides))
    }

    /// Changes some cells; returns the whole matrix.
    pub async fn set_preferences(
        &self,
        staff: &Staff,
        changes: &[(NotifyEvent, Option<bool>, Option<bool>)],
    ) -> Result<std::collections::BTreeMap<NotifyEvent, Cell>, StoreError> {
        write_tx!(self, |c, q| {
            let current =
                domain::notify::matrix(staff.role, &q::pref_overrides(c, staff.id).await?);
            for (event, in_app, email) in changes {
                let old = current[event];
                let cell = Cell {
                    in_app: in_app.unwrap_or(old.in_app),
                    email: email.unwrap_or(old.email),
                };
                q::set_pref(c, staff.id, *event, cell).await?;
            }
            Ok(domain::notify::matrix(
                staff.role,
                &q::pref_overrides(c, staff.id).await?,
            ))
        })
    }

    /// The in-app feed, newest first, and the unread count.
    pub async fn notifications(
        &self,
        staff_id: i64,
        unread_only: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<NotificationView>, i64), StoreError> {
        read!(self, |c, q| {
            let list = q::list_notifications(c, staff_id, unread_only, before, limit).await?;
            let unread = q::unread_notifications(c, staff_id).await?;
            Ok((list, unread))
        })
    }

    pub async fn notification(&self, id: i64) -> Result<Option<NotificationView>, StoreError> {
        read!(self, |c, q| q::notification(c, id).await)
    }

    /// Marks some (or, with `None`, all) of a person's notifications read;
    /// returns the unread count left.
    pub async fn mark_notifications_read(
        &self,
        staff_id: i64,
        ids: Option<&[i64]>,
    ) -> Result<i64, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::mark_notifications_read(c, staff_id, ids, now).await?;
            q::unread_notifications(c, staff_id).await
        })
    }

    /// (unread notifications, open issues with unread messages).
    pub async fn badges(&self, staff_id: i64) -> Result<(i64, i64), StoreError> {
        read!(self, |c, q| Ok((
            q::unread_notifications(c, staff_id).await?,
            q::unread_issues(c, staff_id).await?
        )))
    }

    /// Starts or stops watching an issue.
    pub async fn watch(
        &self,
        issue_id: i64,
        staff_id: i64,
        on: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::set_watch(c, issue_id, staff_id, on, now).await?;
            q::watchers(c, issue_id).await
        })
    }

    /// Live events after `after` visible to `staff_id` (`None`: all).
    pub async fn stream_since(
        &self,
        after: i64,
        staff_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StreamRow>, StoreError> {
        read!(self, |c, q| q::stream_since(c, after, staff_id, limit)
            .await)
    }

    /// The newest live event id.
    pub async fn stream_head(&self) -> Result<i64, StoreError> {
        read!(self, |c, q| q::stream_head(c).await)
    }

    /// Drops live events older than `before` (they are past replaying).
    pub async fn purge_stream(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_stream(c, before).await)
    }

    // ------------------------------------------------------------ jobs

    /// Claims the run of job `name` scheduled at `tick` (once per tick
    /// across every instance).
    pub async fn claim_job(
        &self,
        name: &str,
        tick: DateTime<Utc>,
        instance: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = now();
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(10));
        write_tx!(self, |c, q| q::claim_job(
            c, name, tick, instance, now, until
        )
        .await)
    }

    pub async fn finish_job(&self, name: &str, error: Option<&str>) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::finish_job(c, name, error, now).await)
    }

    pub async fn jobs(&self) -> Result<Vec<JobState>, StoreError> {
        read!(self, |c, q| q::jobs(c).await)
    }

    /// Claims or renews `holder`'s lease on an IMAP mailbox for `ttl`.
    pub async fn claim_mailbox(
        &self,
        mailbox: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
        write_tx!(self, |c, q| q::claim_mailbox(
            c, mailbox, holder, now, until
        )
        .await)
    }

    /// Gives up `holder`'s lease on a mailbox.
    pub async fn release_mailbox(&self, mailbox: &str, holder: &str) -> Result<(), StoreError> {
        write_tx!(self, |c, q| q::release_mailbox(c, mailbox, holder).await)
    }

    /// Escalates issues unassigned since before `cutoff`; returns how many.
    pub async fn escalate_due(
        &self,
        cutoff: DateTime<Utc>,
        after: &str,
    ) -> Result<usize, StoreError> {
        let due = read!(self, |c, q| q::escalation_due(c, cutoff).await)?;
        let mut n = 0;
        for id in due {
            let now = now();
            if write_tx!(self, |c, q| q::escalate(c, id, after, now).await)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Closes issues idle since before `cutoff`; returns how many.
    pub async fn auto_close_idle(
        &self,
        cutoff: DateTime<Utc>,
        after: &str,
    ) -> Result<usize, StoreError> {
        let idle = read!(self, |c, q| q::idle_issues(c, cutoff).await)?;
        let mut n = 0;
        for id in idle {
            let now = now();
            if write_tx!(self, |c, q| q::auto_close(c, id, cutoff, after, now).await)? {
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn purge_raw_mail(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_raw_mail(c, cutoff).await)
    }

    /// Housekeeping: old notifications and delivered outbox rows.
    pub async fn purge_finished(
        &self,
        notifications_before: DateTime<Utc>,
        outbox_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        write_tx!(self, |c, q| q::purge_finished(
            c,
            notifications_before,
            outbox_before
        )
        .await)
    }

    // ------------------------------------------------------------ email

    pub async fn email_context(&self, message_id: i64) -> Result<Option<EmailContext>, StoreError> {
        read!(self, |c, q| q::email_context(c, message_id).await)
    }

    pub async fn assign_external_id(
        &self,
        message_id: i64,
        id: &str,
    ) -> Result<String, StoreError> {
        write_tx!(self, |c, q| q::assign_external_id(c, message_id, id).await)
    }

    /// Claims the notification emails due now (coalescing window passed).
    pub async fn claim_notification_emails(
        &self,
        coalesce: Duration,
        lease: Duration,
    ) -> Result<Vec<EmailBatch>, StoreError> {
        let now = now();
        let window_start =
            now - chrono::Duration::from_std(coalesce).unwrap_or(chrono::Duration::zero());
        let lease_until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
        write_tx!(self, |c, q| q::claim_notification_emails(
            c,
            now,
            window_start,
            lease_until
        )
        .await)
    }

    pub async fn finish_notification_emails(
        &self,
        ids: &[i64],
        sent: bool,
        error: Option<&str>,
        next_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::finish_notification_emails(
            c, ids, sent, error, next_at, now
        )
        .await)
    }

    // ------------------------------------------------------------ merge

    /// Merges customer `from` into `into`; returns the merged customer.
    pub async fn merge_customers(
        &self,
        into: i64,
        from: i64,
        actor: &Staff,
    ) -> Result<CustomerView, StoreError> {
        let now = now();
        write_tx!(self, |c, q| {
            q::merge_customers(c, into, from, actor, now).await?;
            q::customer_view(c, into, actor.id)
                .await?
                .ok_or(StoreError::NotFound("customer"))
        })
    }

    // ------------------------------------------------------------ attachments

    #[allow(clippy::too_many_arguments)]
    pub async fn add_attachment(
        &self,
        message_id: i64,
        filename: &str,
        content_type: &str,
        size: i64,
        sha256: Option<&str>,
        refused: Option<&str>,
    ) -> Result<i64, StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::add_attachment(
            c,
            message_id,
            filename,
            content_type,
            size,
            sha256,
            refused,
            now
        )
        .await)
    }

    /// (images, documents) shared in an issue.
    pub async fn issue_attachments(
        &self,
        issue_id: i64,
    ) -> Result<(Vec<AttachmentView>, Vec<AttachmentView>), StoreError> {
        read!(self, |c, q| {
            if !q::issue_exists(c, issue_id).await? {
                return Err(StoreError::NotFound("issue"));
            }
            q::issue_attachments(c, issue_id).await
        })
    }

    /// A stored attachment's metadata and content hash.
    pub async fn attachment(&self, id: i64) -> Result<(AttachmentView, String), StoreError> {
        read!(self, |c, q| q::attachment(c, id).await)?.ok_or(StoreError::NotFound("attachment"))
    }

    /// Queues a background job for a message (e.g. `media` downloads).
    pub async fn enqueue_job(
        &self,
        kind: &str,
        message_id: i64,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::enqueue_job(
            c, kind, message_id, payload, now
        )
        .await)
    }

    /// Active staff and the open issues, for the digest.
    pub async fn digest_data(&self) -> Result<(Vec<Staff>, Vec<DigestIssue>), StoreError> {
        read!(self, |c, q| {
            let staff = q::list_staff(c).await?;
            let open = q::open_issues_for_digest(c).await?;
            Ok((staff.into_iter().filter(|s| s.active).collect(), open))
        })
    }

    /// Queues outbox items of `kind` that carry everything in their payload
    /// (digests), all in one transaction.
    pub async fn enqueue_payloads(
        &self,
        kind: &str,
        payloads: &[serde_json::Value],
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::enqueue_payloads(c, kind, payloads, now)
            .await)
    }

    /// Finishes a non-reply outbox item (done, or failed with `error`).
    pub async fn outbox_finish_plain(
        &self,
        job: &OutboxJob,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        let state = if error.is_some() { "failed" } else { "done" };
        write_tx!(self, |c, q| q::outbox_finish(c, job.id, state, error, now)
            .await)
    }

    // ------------------------------------------------------------ broadcasts

    /// Creates a broadcast (`customers` = None: everyone), queued `spacing` apart.
    pub async fn create_broadcast(
        &self,
        actor: &Staff,
        body: &str,
        subject: Option<&str>,
        customers: Option<&[i64]>,
        spacing: Duration,
    ) -> Result<BroadcastView, StoreError> {
        let now = now();
        let spacing = chrono::Duration::from_std(spacing).unwrap_or(chrono::Duration::seconds(1));
        write_tx!(self, |c, q| {
            let id = q::create_broadcast(c, actor, body, subject, customers, spacing, now).await?;
            q::broadcast_view(c, id)
                .await?
                .ok_or(StoreError::NotFound("broadcast"))
        })
    }

    pub async fn broadcast(&self, id: i64) -> Result<BroadcastView, StoreError> {
        read!(self, |c, q| q::broadcast_view(c, id).await)?.ok_or(StoreError::NotFound("broadcast"))
    }

    pub async fn broadcast_delivery(
        &self,
        recipient_id: i64,
    ) -> Result<Option<BroadcastDelivery>, StoreError> {
        read!(self, |c, q| q::broadcast_delivery(c, recipient_id).await)
    }

    /// A broadcast delivery's outcome: the recipient's result and the end
    /// of its outbox job in one transaction, so a job is never finished
    /// while its recipient still reads `queued` (if this fails, the job
    /// stays claimed and is tried again after its lease).
    pub async fn finish_broadcast_recipient(
        &self,
        job: &OutboxJob,
        recipient_id: i64,
        status: &str,
        error: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        let job_state = if status == "sent" { "done" } else { "failed" };
        write_tx!(self, |c, q| {
            q::finish_broadcast_recipient(c, recipient_id, status, error, external_id, now).await?;
            q::outbox_finish(c, job.id, job_state, error, now).await
        })
    }

    // ------------------------------------------------------------ mailboxes

    /// (UIDVALIDITY, last ingested UID) of an IMAP mailbox.
    pub async fn mailbox_cursor(&self, mailbox: &str) -> Result<Option<(i64, i64)>, StoreError> {
        read!(self, |c, q| q::mailbox_cursor(c, mailbox).await)
    }

    pub async fn set_mailbox_cursor(
        &self,
        mailbox: &str,
        uidvalidity: i64,
        last_uid: i64,
    ) -> Result<(), StoreError> {
        let now = now();
        write_tx!(self, |c, q| q::set_mailbox_cursor(
            c,
            mailbox,
            uidvalidity,
            last_uid,
            now
        )
        .await)
    }

    /// Marks the reply a bounce names as failed.
    pub async fn bounce_reply(
        &self,
        original_message_id: &str,
        code: &str,
        text: &str,
    ) -> Result<Option<i64>, StoreError> {
        write_tx!(self, |c, q| q::bounce_reply(
            c,
            original_message_id,
            code,
            text
        )
        .await)
    }
}

// Declared after the transaction macros above, which it uses.
mod media;
mod tracker;
mod web;
mod web_issue;
pub use web::WebSession;

#[cfg(test)]
mod cap_tests {
    use serde_json::json;

    #[test]
    fn rejected_details_are_capped_with_their_length() {
        let sid = "S".repeat(60_000);
        let capped = super::cap_detail(&json!({
            "message_sid": sid,
            "path": "/webhooks/twilio/sms",
            "size": 12,
            "error": "e".repeat(600),
        }));
        assert_eq!(capped["message_sid"].as_str().unwrap().len(), 64);
        assert_eq!(capped["message_sid_length"], 60_000);
        assert_eq!(capped["path"], "/webhooks/twilio/sms");
        assert!(capped.get("path_length").is_none());
        assert_eq!(capped["size"], 12);
        assert_eq!(capped["error"].as_str().unwrap().len(), 512);
        assert!(capped.to_string().len() < 1_000);
    }
}
