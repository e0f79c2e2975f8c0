//! Test harness: a fresh, migrated `Store` per test on either backend.
//!
//! Like zero2prod's `spawn_app()`, every test gets a database nobody else
//! touches, so tests run in parallel and never depend on each other's data.
//! SQLite gets a file in a temporary directory (a file, not `:memory:`, so
//! the pool's connections share one database, as in production). PostgreSQL
//! gets a fresh schema in the shared `test` database: creating a schema is
//! much cheaper than creating a database, and the store is pointed at it
//! through libpq's `options=-c search_path=…` connection parameter, which
//! sqlx passes on at start-up. That keeps `Store::connect(url, max)` the one
//! way in, exactly as the daemon opens its database.
//!
//! I deliberately fail, never skip, when PostgreSQL is unreachable: SPEC §7
//! says both backends pass the same suite, and a silently skipped backend
//! is how the second one rots.
//!
//! Schemas are dropped by `TestStore::cleanup` at the end of a test, or by
//! `Drop` when a test panics first. `Drop` cannot await, so it drops the
//! schema from a short-lived thread with its own runtime and connection. A
//! process killed before either leaves a schema behind; its name carries
//! its creation time, and the first PostgreSQL test of every run drops
//! those older than an hour, so they cannot accumulate.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use switchboard::store::Store;
use tempfile::TempDir;

/// The server of the test set-up: trust auth, user `postgres`, database `test`.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test schemas are named `sb_<unix seconds>_<random>`.
const SCHEMA_PREFIX: &str = "sb_";

/// Leftover schemas older than this are dropped at start-up.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use; `SWITCHBOARD_TEST_PG_URL` overrides it.
pub fn pg_base_url() -> String {
    std::env::var("SWITCHBOARD_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// Installs ring as the process's rustls provider (STYLE.md: one provider,
/// installed first thing). Idempotent: later calls find it installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A second, direct way into the test database, for the few facts the
/// `Store` API deliberately does not expose (what a token is stored as,
/// how many rows a race left behind) and for moving clocks back.
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A fresh, migrated store and what keeps its database alive.
pub struct TestStore {
    pub store: Store,
    pub backend: Backend,
    /// The URL the store was opened with.
    pub url: String,
    raw: Raw,
    /// Keeps the SQLite file's directory until the test ends.
    _dir: Option<TempDir>,
    /// The PostgreSQL schema still to drop.
    pg_schema: Option<String>,
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// A fresh store with a small pool.
pub async fn test_store(backend: Backend) -> TestStore {
    test_store_with(backend, 5).await
}

/// A fresh store whose pool holds up to `max_connections`.
pub async fn test_store_with(backend: Backend, max_connections: u32) -> TestStore {
    install_crypto_provider();
    match backend {
        Backend::Sqlite => sqlite_store(max_connections).await,
        Backend::Postgres => postgres_store(max_connections).await,
    }
}

async fn sqlite_store(max_connections: u32) -> TestStore {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("switchboard.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url, max_connections)
        .await
        .expect("open the SQLite store");
    store.migrate().await.expect("migrate the SQLite store");
    let raw = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::from_str(&url)
                .expect("parse the SQLite url")
                .busy_timeout(Duration::from_secs(30)),
        )
        .await
        .expect("open a raw SQLite pool");
    TestStore {
        store,
        backend: Backend::Sqlite,
        url,
        raw: Raw::Sqlite(raw),
        _dir: Some(dir),
        pg_schema: None,
    }
}

async fn postgres_store(max_connections: u32) -> TestStore {
    let base = pg_base_url();
    let unreachable = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "PostgreSQL is not reachable at {base}: {e}\n\
             The store conformance tests run on both backends and never skip one. \
             Start PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`, \
             database `test`) or point SWITCHBOARD_TEST_PG_URL at another server."
        )
    };
    let mut admin =
        match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&base)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => unreachable(&e),
            Err(_) => unreachable(&"no answer within 5 s"),
        };
    drop_stale_schemas(&mut admin).await;

    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let schema = format!("{SCHEMA_PREFIX}{created}_{:016x}", rand::random::<u64>());
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create the test schema");
    admin.close().await.expect("close the set-up connection");

    let url = schema_url(&base, &schema);
    let store = Store::connect(&url, max_connections)
        .await
        .expect("open the PostgreSQL store");
    store.migrate().await.expect("migrate the PostgreSQL store");
    let raw = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("open a raw PostgreSQL pool");
    // The search path is what isolates tests from each other: make sure the
    // `options` parameter reached the server.
    let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&raw)
        .await
        .expect("read the current schema");
    assert_eq!(
        current.as_deref(),
        Some(schema.as_str()),
        "the search_path in {url} did not take effect"
    );
    TestStore {
        store,
        backend: Backend::Postgres,
        url,
        raw: Raw::Postgres(raw),
        _dir: None,
        pg_schema: Some(schema),
    }
}

/// `base` with the connection option that makes `schema` the search path.
fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Drops test schemas that a killed run left behind, once per process.
async fn drop_stale_schemas(admin: &mut PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'sb\\_%'",
        )
        .fetch_all(&mut *admin)
        .await
        .expect("list test schemas");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        for name in names {
            let created = name
                .strip_prefix(SCHEMA_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            // Only names of our own shape; anything else is not ours to drop.
            let Some(created) = created else { continue };
            if now.saturating_sub(created) > STALE_AFTER.as_secs() {
                sqlx::query(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut *admin)
                .await
                .expect("drop a stale test schema");
            }
        }
    })
    .await;
}

/// Drops a test schema over a connection of its own.
async fn drop_schema(schema: &str) -> Result<(), sqlx::Error> {
    let options = PgConnectOptions::from_str(&pg_base_url())?;
    let mut conn: PgConnection = options.connect().await?;
    sqlx::query("SET lock_timeout = '10s'")
        .execute(&mut conn)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await
}

impl TestStore {
    /// Closes the pools and drops the PostgreSQL schema. Call at the end of
    /// a test; a test that panics before is cleaned up by `Drop`.
    pub async fn cleanup(mut self) {
        self.store.close().await;
        match &self.raw {
            Raw::Sqlite(p) => p.close().await,
            Raw::Postgres(p) => p.close().await,
        }
        if let Some(schema) = self.pg_schema.take() {
            drop_schema(&schema)
                .await
                .unwrap_or_else(|e| panic!("drop test schema {schema}: {e}"));
        }
    }

    /// The raw PostgreSQL pool (None on SQLite), for tests that need a
    /// transaction of their own.
    pub fn pg_raw(&self) -> Option<&PgPool> {
        match &self.raw {
            Raw::Postgres(p) => Some(p),
            Raw::Sqlite(_) => None,
        }
    }

    /// A single integer from raw SQL (e.g. a `COUNT(*)`).
    pub async fn count(&self, sql: &str) -> i64 {
        let r = match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_one(p)
                    .await
            }
            Raw::Postgres(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_one(p)
                    .await
            }
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One text column from raw SQL.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let r = match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
            }
            Raw::Postgres(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
            }
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs raw SQL with one timestamp (`$1`) and one id (`$2`), encoded as
    /// the store encodes them; for moving an entry's clock back.
    pub async fn exec_at(&self, sql: &str, at: DateTime<Utc>, id: i64) {
        let r = match &self.raw {
            Raw::Sqlite(p) => sqlx::query(AssertSqlSafe(sql.to_string()))
                .bind(at)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()),
            Raw::Postgres(p) => sqlx::query(AssertSqlSafe(sql.to_string()))
                .bind(at)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs raw SQL without parameters.
    pub async fn exec(&self, sql: &str) {
        let r = match &self.raw {
            Raw::Sqlite(p) => sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(p)
                .await
                .map(|_| ()),
            Raw::Postgres(p) => sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(p)
                .await
                .map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(schema) = self.pg_schema.take() else {
            return;
        };
        // A panicking test: drop the schema from a thread with a runtime of
        // its own, since this one may be the runtime's only worker.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a cleanup runtime");
            rt.block_on(drop_schema(&schema))
                .map_err(|e| format!("drop test schema {schema}: {e}"))
        });
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("{e}"),
            Err(_) => eprintln!("the schema cleanup thread panicked"),
        }
    }
}
