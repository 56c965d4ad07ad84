//! The reconciler's persistence boundary: nodes with their labels, last observed state and
//! facts; compiled commits; the desired state of each node at each commit (redacted,
//! content-addressed); approved plan digests; apply runs with per-resource results; drift
//! events (and one resource's history across them, for `centossrv blame`); agent enrollment
//! tokens and node credentials (hashes only); users, role bindings, API tokens (hashes only)
//! and holds; and an append-only, hash-chained audit log. One typed API over SQLite (the
//! embedded default) and PostgreSQL, through sqlx. The only module tree that knows sqlx.

mod access;
mod activity;
mod apply_runs;
mod approvals;
mod audit;
pub mod audit_chain;
mod backend;
mod blobs;
mod commits;
mod desired;
mod drift;
mod enrollment;
mod error;
mod forward_cursors;
mod nodes;
mod observed;
mod pr_reports;
mod records;
mod retention;
mod status;

pub use access::{
    API_TOKEN_PREFIX, ApiToken, MAX_API_TOKEN_TTL, NodeHold, RoleBinding, User, check_user_name,
};
pub use activity::ActivityMark;
pub use audit_chain::{AuditBreak, AuditVerdict, BreakKind};
pub use backend::BackendKind;
pub use enrollment::{CREDENTIAL_PREFIX, MAX_TOKEN_TTL, TOKEN_PREFIX, TokenRefusal};
pub use error::{Result, StoreError, redact_url};
pub use pr_reports::PrReport;
pub use records::*;
pub use retention::Pruned;

use backend::Backend;
use std::path::Path;

/// File name of the embedded SQLite database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "centossrv.db";

/// A handle on the database; cheap to clone (it is a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Opens the database at `url` and brings its schema up to date.
    ///
    /// `sqlite://PATH?mode=rwc` (created if missing) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    /// SQLite runs in WAL mode with foreign keys on and a busy timeout, so concurrent writers
    /// wait for each other instead of failing.
    pub async fn open(url: &str) -> Result<Store> {
        Ok(Store {
            backend: Backend::open(url).await?,
        })
    }

    /// Opens (creating if missing) the embedded database `centossrv.db` in `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Store> {
        Ok(Store {
            backend: Backend::open_sqlite_file(&data_dir.join(SQLITE_FILE_NAME)).await?,
        })
    }

    pub fn backend_kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Waits for open connections to finish and closes them.
    pub async fn close(&self) {
        self.backend.close().await;
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// The current time, truncated to microseconds (PostgreSQL's precision), so a timestamp
/// reads back exactly as it was written on both backends.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
