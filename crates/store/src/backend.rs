//! Opening a store: URL -> SQLite or PostgreSQL pool, connection settings, migrations; and the
//! `on_backend!` dispatch that compiles one piece of query code for both pools.

use crate::error::{Result, StoreError, redact_url};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);
const SQLITE_MAX_CONNECTIONS: u32 = 8;
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The connection pool of one of the two supported databases.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// Runs `$body` with `$pool` bound to the concrete pool (`&SqlitePool` or `&PgPool`). The body
/// is compiled once per backend, so it must be portable SQL (`$1` placeholders, `ON CONFLICT`,
/// `RETURNING`) and may use only types both drivers encode.
macro_rules! on_backend {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.backend() {
            $crate::backend::Backend::Sqlite($pool) => $body,
            $crate::backend::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Starts a transaction that writes. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes cannot fail with
/// "database is locked" when another writer got there first; it waits instead.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>>;
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|source| StoreError::Query {
                op: "begin a write transaction",
                source,
            })
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        self.begin().await.map_err(|source| StoreError::Query {
            op: "begin a write transaction",
            source,
        })
    }
}

impl Backend {
    /// Connects to `url` and migrates the schema.
    pub(crate) async fn open(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            let options =
                SqliteConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
                    url: redact_url(url),
                    source,
                })?;
            Backend::open_sqlite(options, url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
                    url: redact_url(url),
                    source,
                })?;
            // One plain connection first: a refused connection or a bad password is reported
            // at once instead of after the pool's retries time out.
            PgConnection::connect_with(&options)
                .await
                .map_err(connect_error(url))?
                .close()
                .await
                .map_err(connect_error(url))?;
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .connect_with(options)
                .await
                .map_err(connect_error(url))?;
            POSTGRES_MIGRATIONS
                .run(&pool)
                .await
                .map_err(migrate_error(url))?;
            Ok(Backend::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            })
        }
    }

    /// Opens (creating if missing) the SQLite database file at `path`.
    pub(crate) async fn open_sqlite_file(path: &Path) -> Result<Backend> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Backend::open_sqlite(options, &format!("sqlite://{}", path.display())).await
    }

    async fn open_sqlite(options: SqliteConnectOptions, url: &str) -> Result<Backend> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed audit entry or apply result survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(connect_error(url))?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(migrate_error(url))?;
        Ok(Backend::Sqlite(pool))
    }

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// `($1, $2, $3), ($4, $5, $6)`: the VALUES list of a multi-row insert, numbered from
/// `$first`.
pub(crate) fn values_list(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    let mut n = first;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&n.to_string());
            n += 1;
        }
        out.push(')');
    }
    out
}

/// `$3, $4, $5`: a placeholder list for `IN (...)`, numbered from `$first`.
pub(crate) fn placeholders(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row statement: few round trips, well under both backends' limits on
/// bound parameters (SQLite 32766, PostgreSQL 65535).
pub(crate) const BATCH_ROWS: usize = 500;

/// `StoreError::Connect` for `url`, password redacted.
fn connect_error(url: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |source| StoreError::Connect {
        url: redact_url(url),
        source,
    }
}

/// `StoreError::Migrate` for `url`, password redacted.
fn migrate_error(url: &str) -> impl Fn(sqlx::migrate::MigrateError) -> StoreError + '_ {
    move |source| StoreError::Migrate {
        url: redact_url(url),
        source,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_lists_are_numbered() {
        assert_eq!(super::values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3, 2), "$2, $3, $4");
    }
}
