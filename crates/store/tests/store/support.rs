//! Runs each test against SQLite (a temp directory) and, when DATABASE_URL is set,
//! PostgreSQL (a fresh database per test, dropped afterwards), and gives tests raw SQL
//! access for tampering and scanning.

use sqlx::{Connection as _, PgConnection, PgPool, Row as _, SqlitePool};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use store::{BackendKind, Store};

/// A database one test runs against.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub url: String,
    pub kind: BackendKind,
}

impl TestDb {
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("the store opens")
    }

    /// Runs `sql` directly, bypassing the store (to tamper with it).
    pub async fn exec(&self, sql: &str) {
        match self.kind {
            BackendKind::Sqlite => {
                let pool = SqlitePool::connect(&self.url)
                    .await
                    .expect("raw connection");
                sqlx::raw_sql(sql)
                    .execute(&pool)
                    .await
                    .expect("raw SQL runs");
                pool.close().await;
            }
            BackendKind::Postgres => {
                let pool = PgPool::connect(&self.url).await.expect("raw connection");
                sqlx::raw_sql(sql)
                    .execute(&pool)
                    .await
                    .expect("raw SQL runs");
                pool.close().await;
            }
        }
    }

    /// Drops the triggers that keep `audit_log` append-only, as someone tampering would.
    pub async fn drop_audit_guards(&self) {
        match self.kind {
            BackendKind::Sqlite => {
                self.exec("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
                    .await
            }
            BackendKind::Postgres => {
                self.exec(
                    "DROP TRIGGER audit_log_no_change ON audit_log; \
                     DROP TRIGGER audit_log_no_truncate ON audit_log;",
                )
                .await
            }
        }
    }

    /// Runs `sql` directly and returns its error message, if it fails.
    pub async fn try_exec(&self, sql: &str) -> Option<String> {
        let result = match self.kind {
            BackendKind::Sqlite => {
                let pool = SqlitePool::connect(&self.url)
                    .await
                    .expect("raw connection");
                let r = sqlx::raw_sql(sql).execute(&pool).await.map(|_| ());
                pool.close().await;
                r
            }
            BackendKind::Postgres => {
                let pool = PgPool::connect(&self.url).await.expect("raw connection");
                let r = sqlx::raw_sql(sql).execute(&pool).await.map(|_| ());
                pool.close().await;
                r
            }
        };
        result.err().map(|e| e.to_string())
    }

    /// One integer from `sql`.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.kind {
            BackendKind::Sqlite => {
                let pool = SqlitePool::connect(&self.url)
                    .await
                    .expect("raw connection");
                let n = sqlx::query_scalar(sql)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
            BackendKind::Postgres => {
                let pool = PgPool::connect(&self.url).await.expect("raw connection");
                let n = sqlx::query_scalar(sql)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
        }
    }

    /// Every table's every row as text, `(table, text)` (binary columns in hex); for SQLite also the raw bytes of
    /// the database file and its write-ahead log as one last "table".
    pub async fn dump(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self.kind {
            BackendKind::Sqlite => {
                let pool = SqlitePool::connect(&self.url)
                    .await
                    .expect("raw connection");
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&pool)
                        .await
                        .expect("list tables");
                for table in tables {
                    let columns: Vec<String> = sqlx::query_scalar(&format!(
                        "SELECT name FROM pragma_table_info('{table}')"
                    ))
                    .fetch_all(&pool)
                    .await
                    .expect("list columns");
                    let select = columns
                        .iter()
                        .map(|c| {
                            format!(
                                "coalesce(CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") \
                                 ELSE CAST(\"{c}\" AS TEXT) END, '')"
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" || '|' || ");
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT {select} FROM \"{table}\""))
                            .fetch_all(&pool)
                            .await
                            .expect("dump a table");
                    out.extend(rows.into_iter().map(|r| (table.clone(), r)));
                }
                pool.close().await;
                let path = self
                    .url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .expect("a path")
                    .to_owned();
                for file in [path.clone(), format!("{path}-wal")] {
                    if let Ok(bytes) = std::fs::read(&file) {
                        out.push((file, String::from_utf8_lossy(&bytes).into_owned()));
                    }
                }
            }
            BackendKind::Postgres => {
                let pool = PgPool::connect(&self.url).await.expect("raw connection");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(&pool)
                .await
                .expect("list tables");
                for table in tables {
                    let rows =
                        sqlx::query(&format!("SELECT CAST(t AS TEXT) AS row FROM \"{table}\" t"))
                            .fetch_all(&pool)
                            .await
                            .expect("dump a table");
                    for row in rows {
                        out.push((table.clone(), row.get::<String, _>("row")));
                    }
                }
                pool.close().await;
            }
        }
        out
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "store_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, tail) = url.split_at(authority_start);
    let path_start = tail.find('/').unwrap_or(tail.len());
    let query_start = tail.find('?').unwrap_or(tail.len()).max(path_start);
    format!("{head}{}/{db}{}", &tail[..path_start], &tail[query_start..])
}

/// Runs `test` on SQLite, then on PostgreSQL if DATABASE_URL is set.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}/store.db?mode=rwc", dir.path().display());
    test(TestDb {
        url,
        kind: BackendKind::Sqlite,
    })
    .await;

    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        // Once per run, and past the test harness's output capture, so it is seen.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped PostgreSQL: DATABASE_URL not set (the store tests ran on SQLite only)"
            );
        });
        return;
    };
    let name = unique_name();
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("DATABASE_URL accepts connections");
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let db = TestDb {
        url: with_database(&admin_url, &name),
        kind: BackendKind::Postgres,
    };
    // Spawned so a failing test still drops its database before the panic goes on.
    let outcome = tokio::spawn(test(db)).await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
        "postgres://u:p@h/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
}
