//! The PostgreSQL backend: connection settings, migrations and its dialect.
//!
//! Several instances may share one database (SPEC §7), so rows that a
//! decision reads are locked (`FOR UPDATE`) and work queues are claimed with
//! `FOR UPDATE SKIP LOCKED`: two instances never take the same outbox item,
//! and two staff pressing Take It at once are decided one after the other.
//! Transactions run at READ COMMITTED; the unique indexes are the last line
//! of defence and a violation makes the store retry the whole transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreError;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects to the database named by a `postgres:` URL.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?.application_name("switchboard");
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await?;
    Ok(pool)
}

pub async fn begin(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    Ok(pool.begin().await?)
}

/// The shared SQL, compiled for PostgreSQL.
pub mod q {
    type Db = sqlx::Postgres;
    macro_rules! for_update {
        () => {
            " FOR UPDATE"
        };
    }
    macro_rules! skip_locked {
        () => {
            " FOR UPDATE SKIP LOCKED"
        };
    }
    /// What turns a query into its plan, and the column the plan's text
    /// is in (for the plan tests).
    macro_rules! explain {
        () => {
            "EXPLAIN "
        };
    }
    /// How to make the planner shun sequential scans, and undo it.
    const PREFER_INDEXES: Option<(&str, &str)> =
        Some(("SET enable_seqscan = off", "RESET enable_seqscan"));
    macro_rules! plan_column {
        () => {
            0
        };
    }
    /// Search (list_sql.rs): the reversed phone contact, byte-ordered, as
    /// the expression index of migration 0010 spells it.
    macro_rules! phone_reversed {
        () => {
            "reverse(ct.value) COLLATE \"C\""
        };
    }
    /// A column compared byte by byte, so that a range is a prefix.
    macro_rules! byte_order {
        ($col:literal) => {
            concat!($col, " COLLATE \"C\"")
        };
    }
    /// Full-text lookups: the expression GIN indexes of migration 0010, the
    /// words bound as a `tsquery`.
    macro_rules! fts_subject {
        () => {
            "SELECT ii.id AS id FROM issues ii
             WHERE to_tsvector('simple', ii.subject) @@ to_tsquery('simple', "
        };
    }
    macro_rules! fts_body {
        () => {
            "SELECT m.issue_id AS id FROM messages m
             WHERE m.kind <> 'event' AND to_tsvector('simple', m.body) @@ to_tsquery('simple', "
        };
    }
    macro_rules! fts_name {
        () => {
            "SELECT cn.id FROM customers cn
             WHERE to_tsvector('simple', cn.name) @@ to_tsquery('simple', "
        };
    }
    macro_rules! fts_email {
        () => {
            "SELECT ce.customer_id FROM contacts ce WHERE ce.kind = 'email'
             AND to_tsvector('simple', translate(ce.value, '@.', '  ')) @@ to_tsquery('simple', "
        };
    }
    macro_rules! fts_end {
        () => {
            ")"
        };
    }
    /// A word of a full-text query, the same as a prefix, and what joins
    /// words that must all be there (`fts_query` in list_sql.rs).
    macro_rules! fts_word {
        () => {
            "{}"
        };
    }
    macro_rules! fts_prefix {
        () => {
            "{}:*"
        };
    }
    const FTS_AND: &str = " & ";
    include!("sql/all.rs");
    include!("web_sql.rs");
    include!("tracker_sql.rs");
    include!("media_sql.rs");
    include!("list_sql.rs");
}
