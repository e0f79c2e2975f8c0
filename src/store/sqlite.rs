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
    /// How to make the planner shun sequential scans, and undo it.
    const PREFER_INDEXES: Option<(&str, &str)> = None;
    macro_rules! plan_column {
        () => {
            "detail"
        };
    }
    /// Search (list_sql.rs): the reversed digits of a phone contact, as
    /// the expression index of migration 0010 spells it (SQLite has no
    /// reverse(); E.164 has at most 15 digits after the `+`).
    macro_rules! phone_reversed {
        () => {
            "(substr(ct.value, 16, 1) || substr(ct.value, 15, 1) || substr(ct.value, 14, 1) ||
              substr(ct.value, 13, 1) || substr(ct.value, 12, 1) || substr(ct.value, 11, 1) ||
              substr(ct.value, 10, 1) || substr(ct.value, 9, 1) || substr(ct.value, 8, 1) ||
              substr(ct.value, 7, 1) || substr(ct.value, 6, 1) || substr(ct.value, 5, 1) ||
              substr(ct.value, 4, 1) || substr(ct.value, 3, 1) || substr(ct.value, 2, 1))"
        };
    }
    /// A column compared byte by byte (SQLite's default BINARY collation).
    macro_rules! byte_order {
        ($col:literal) => {
            $col
        };
    }
    /// Full-text lookups (list_sql.rs `search`): the newest hits of each
    /// FTS5 table, the words bound as `$1` and the cap as `$2`. FTS5 walks
    /// a word's rowids in descending order and stops at the LIMIT, so a
    /// word in every tenth row costs no more than a rare one. (One
    /// statement each; PostgreSQL's take two, see there.)
    macro_rules! fts_name_hits {
        () => {
            &[
                "SELECT rowid FROM customers_fts WHERE customers_fts MATCH $1
             ORDER BY rowid DESC LIMIT $2",
            ]
        };
    }
    macro_rules! fts_email_hits {
        () => {
            &[
                "SELECT ce.customer_id FROM (SELECT rowid AS cid FROM contacts_fts
                 WHERE contacts_fts MATCH $1 ORDER BY rowid DESC LIMIT $2) h
             CROSS JOIN contacts ce WHERE ce.id = h.cid",
            ]
        };
    }
    macro_rules! fts_subject_hits {
        () => {
            &["SELECT rowid FROM issues_fts WHERE issues_fts MATCH $1
             ORDER BY rowid DESC LIMIT $2"]
        };
    }
    macro_rules! fts_body_hits {
        () => {
            &[
                "SELECT m.issue_id FROM (SELECT rowid AS mid FROM messages_fts
                 WHERE messages_fts MATCH $1 ORDER BY rowid DESC LIMIT $2) h
             CROSS JOIN messages m WHERE m.id = h.mid",
            ]
        };
    }
    /// A word of a full-text query, the same as a prefix, and what joins
    /// words that must all be there (`FtsQuery` in list_sql.rs).
    macro_rules! fts_word {
        () => {
            "\"{}\""
        };
    }
    macro_rules! fts_prefix {
        () => {
            "\"{}\"*"
        };
    }
    const FTS_AND: &str = " ";
    include!("sql/all.rs");
    include!("web_sql.rs");
    include!("tracker_sql.rs");
    include!("media_sql.rs");
    include!("list_sql.rs");
}
