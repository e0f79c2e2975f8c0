//! The SQLite backend: connection settings, migrations and its dialect.
//!
//! SQLite is what a newcomer runs, so it must be as safe as PostgreSQL:
//! WAL for concurrent readers, `synchronous = FULL` so a message we have
//! acknowledged to Twilio survives a power cut, foreign keys on (SQLite
//! leaves them off per connection), and a generous busy timeout. Every
//! write transaction begins `IMMEDIATE`: a deferred transaction that reads
//! first and writes later cannot upgrade its lock when another writer
//! committed in between, and SQLite fails it at once instead of waiting.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if missing) the database file named by a `sqlite:` URL.
pub async fn connect(url: &str, max_connections: u32) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Starts a write transaction holding SQLite's write lock.
pub async fn begin(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// The shared SQL, compiled for SQLite.
pub mod q {
    type Db = sqlx::Sqlite;
    /// SQLite has no row locks; `BEGIN IMMEDIATE` serialises writers.
    macro_rules! for_update {
        () => {
            ""
        };
    }
    macro_rules! skip_locked {
        () => {
            ""
        };
    }
    /// What turns a query into its plan, and the column the plan's text
    /// is in (for the plan tests).
    macro_rules! explain {
        () => {
            "EXPLAIN QUERY PLAN "
        };
    }
    macro_rules! plan_column {
        () => {
            "detail"
        };
    }
    include!("sql.rs");
    include!("web_sql.rs");
    include!("tracker_sql.rs");
    include!("list_sql.rs");
}
