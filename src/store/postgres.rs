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
    macro_rules! plan_column {
        () => {
            0
        };
    }
    include!("sql.rs");
    include!("web_sql.rs");
    include!("tracker_sql.rs");
    include!("list_sql.rs");
}
