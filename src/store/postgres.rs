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
    // No JIT: every query here is a short index read, but a full-text one
    // over ten million messages is *costed* high enough to be compiled
    // first, which took 15-80 ms of a 2 ms query (issue 12).
    let options = PgConnectOptions::from_str(url)?
        .application_name("switchboard")
        .options([("jit", "off")]);
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
    /// Full-text lookups (list_sql.rs `search`): the newest hits of each
    /// expression GIN index of migration 0010, the words bound as a
    /// `tsquery` in `$1` and the cap as `$2`, each as two statements tried
    /// in turn. A GIN index gives its hits in no order, so the newest are
    /// found by reading every hit's row and sorting; for a word in one
    /// message in sixty that is 150,000 rows at ten million messages
    /// (seconds). The first statement reads only the hits among the newest
    /// 100,000 rows (a BitmapAnd of the GIN index and the primary key),
    /// the next among the newest million; only when those are fewer than
    /// the cap does the last read them all, which is then cheap enough, as
    /// the word is rare (under one row in two thousand). `id + 0` keeps the
    /// planner from walking the primary key backwards instead and testing
    /// every row's text until it has enough: it guesses the same number of
    /// hits for every word, and for a rare one that walk reads the whole
    /// table (95 s at ten million messages).
    macro_rules! fts_hits {
        ($select:literal, $table:literal, $alias:literal, $cond:literal) => {
            &[
                fts_hits!(@window $select, $table, $alias, $cond, "100000"),
                fts_hits!(@window $select, $table, $alias, $cond, "1000000"),
                concat!(
                    $select, " FROM ", $table, " ", $alias, " WHERE ", $cond,
                    " ORDER BY ", $alias, ".id + 0 DESC LIMIT $2"
                ),
            ]
        };
        (@window $select:literal, $table:literal, $alias:literal, $cond:literal, $rows:literal) => {
            concat!(
                $select, " FROM ", $table, " ", $alias, " WHERE ", $cond,
                " AND ", $alias, ".id > (SELECT MAX(id) FROM ", $table, ") - ", $rows,
                " ORDER BY ", $alias, ".id + 0 DESC LIMIT $2"
            )
        };
    }
    macro_rules! fts_name_hits {
        () => {
            fts_hits!(
                "SELECT cn.id",
                "customers",
                "cn",
                "to_tsvector('simple', cn.name) @@ to_tsquery('simple', $1)"
            )
        };
    }
    macro_rules! fts_email_hits {
        () => {
            fts_hits!(
                "SELECT ce.customer_id",
                "contacts",
                "ce",
                "ce.kind = 'email' AND to_tsvector('simple', translate(ce.value, '@.', '  '))
                     @@ to_tsquery('simple', $1)"
            )
        };
    }
    macro_rules! fts_subject_hits {
        () => {
            fts_hits!(
                "SELECT ii.id",
                "issues",
                "ii",
                "to_tsvector('simple', ii.subject) @@ to_tsquery('simple', $1)"
            )
        };
    }
    macro_rules! fts_body_hits {
        () => {
            fts_hits!(
                "SELECT m.issue_id",
                "messages",
                "m",
                "m.kind <> 'event' AND to_tsvector('simple', m.body) @@ to_tsquery('simple', $1)"
            )
        };
    }
    /// A word of a full-text query, the same as a prefix, and what joins
    /// words that must all be there (`FtsQuery` in list_sql.rs).
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
