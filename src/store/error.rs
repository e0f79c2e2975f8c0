//! Why a store call failed, and which failures a retry resolves.

use super::*;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{}", .0.message)]
    Rule(Refusal),
    /// A conflict that running the transaction again resolves.
    #[error("transaction conflict, retry")]
    Retry,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (use sqlite:// or postgres://)")]
    BadUrl,
    /// A stored value this binary cannot read, and the row it is in.
    #[error("{table} row {id}: {source}")]
    Unreadable {
        table: &'static str,
        id: i64,
        source: domain::UnknownValue,
    },
}

/// Reads an enum stored in row `id` of `table`; an unknown spelling is an
/// error that names the row, never a silent default.
pub fn stored<T>(table: &'static str, id: i64, value: &str) -> Result<T, StoreError>
where
    T: for<'a> TryFrom<&'a str, Error = domain::UnknownValue>,
{
    T::try_from(value).map_err(|source| StoreError::Unreadable { table, id, source })
}

/// `stored` for a column that may be NULL.
pub fn stored_opt<T>(
    table: &'static str,
    id: i64,
    value: Option<&str>,
) -> Result<Option<T>, StoreError>
where
    T: for<'a> TryFrom<&'a str, Error = domain::UnknownValue>,
{
    value.map(|v| stored(table, id, v)).transpose()
}

impl From<TransitionError> for StoreError {
    fn from(e: TransitionError) -> Self {
        StoreError::Rule(Refusal::from(e))
    }
}

impl StoreError {
    pub fn conflict(code: &'static str, message: &str) -> Self {
        StoreError::Rule(Refusal::new(RefusalKind::Conflict, code, message))
    }
    pub fn forbidden(code: &'static str, message: &str) -> Self {
        StoreError::Rule(Refusal::new(RefusalKind::Forbidden, code, message))
    }
    pub fn invalid(code: &'static str, message: &str) -> Self {
        StoreError::Rule(Refusal::new(RefusalKind::Invalid, code, message))
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

    pub(super) fn is_retryable(&self) -> bool {
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
