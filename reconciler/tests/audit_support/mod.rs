//! Databases for the audit tests: SQLite in a temp directory always, and a fresh PostgreSQL
//! database per test (dropped afterwards, also when the test fails) when DATABASE_URL is set;
//! raw SQL to tamper with the log; and the real `centossrv` binary.
#![allow(dead_code, clippy::unwrap_used)]

use sqlx::{Connection as _, PgConnection, PgPool, SqlitePool};
use std::future::Future;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use store::{AuditEntry, AuditRecord, Store};

/// A database one test runs against.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub url: String,
    pub postgres: bool,
    /// SQLite: the data directory holding `centossrv.db`.
    pub data_dir: Option<std::path::PathBuf>,
}

impl TestDb {
    pub fn name(&self) -> &'static str {
        if self.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    /// Runs `sql` directly, bypassing the store.
    pub async fn exec(&self, sql: &str) {
        if self.postgres {
            let pool = PgPool::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = SqlitePool::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    /// One text value from `sql`.
    pub async fn text(&self, sql: &str) -> String {
        if self.postgres {
            let pool = PgPool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            v
        } else {
            let pool = SqlitePool::connect(&self.url).await.unwrap();
            let v = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            v
        }
    }

    /// Drops the triggers that keep `audit_log` append-only, as someone tampering would.
    pub async fn drop_audit_guards(&self) {
        if self.postgres {
            self.exec(
                "DROP TRIGGER audit_log_no_change ON audit_log; \
                 DROP TRIGGER audit_log_no_truncate ON audit_log;",
            )
            .await;
        } else {
            self.exec("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
                .await;
        }
    }
}

/// An audit record numbered `i`.
pub fn record(actor: &str, i: usize) -> AuditRecord {
    AuditRecord {
        actor: actor.into(),
        action: if i.is_multiple_of(2) {
            "plan.approve"
        } else {
            "apply.finish"
        }
        .into(),
        target: format!("web-{i}"),
        commit: (!i.is_multiple_of(3)).then(|| format!("c0ffee{i}")),
        outcome: if i % 4 == 3 { "failed" } else { "ok" }.into(),
        details: serde_json::json!({"n": i, "z": {"b": [1, "two"], "a": null}, "note": "é\"]\\"}),
    }
}

/// Appends `n` records through the store API.
pub async fn seed(store: &Store, n: usize) -> Vec<AuditEntry> {
    let records: Vec<AuditRecord> = (1..=n).map(|i| record("alice", i)).collect();
    store.audit_append_many(&records).await.unwrap()
}

/// Runs the real `centossrv` binary with `args`, without the caller's centossrv settings.
pub fn centossrv(args: &[&str]) -> Output {
    centossrv_env(args, &[])
}

/// Runs the real `centossrv` binary with `args` and only the centossrv settings `env`.
pub fn centossrv_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_centossrv"));
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CENTOSSRV_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (head, tail) = url.split_at(authority_start);
    let path_start = tail.find('/').unwrap_or(tail.len());
    let query_start = tail.find('?').unwrap_or(tail.len()).max(path_start);
    format!("{head}{}/{db}{}", &tail[..path_start], &tail[query_start..])
}

/// Runs `test` on SQLite, then on PostgreSQL if DATABASE_URL is set (a database of its own,
/// dropped afterwards).
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    test(TestDb {
        url: format!(
            "sqlite://{}/{}?mode=rwc",
            dir.path().display(),
            store::SQLITE_FILE_NAME
        ),
        postgres: false,
        data_dir: Some(dir.path().to_owned()),
    })
    .await;

    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped PostgreSQL: DATABASE_URL not set (the audit tests ran on SQLite only)"
            );
        });
        return;
    };
    let name = format!(
        "audit_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let db = TestDb {
        url: with_database(&admin_url, &name),
        postgres: true,
        data_dir: None,
    };
    let outcome = tokio::spawn(test(db)).await;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
