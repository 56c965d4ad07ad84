//! Compiled commits: whether the commit compiled, its diagnostics and when.

use crate::backend::on_backend;
use crate::error::{QueryContext as _, Result, StoreError};
use crate::records::{CommitRecord, MAX_PAGE, Page};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// The longest commit id accepted (a SHA-256 object id in hex is 64).
const MAX_SHA: usize = 128;

pub(crate) fn check_sha(sha: &str) -> Result<()> {
    if sha.is_empty() || sha.len() > MAX_SHA || !sha.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(StoreError::Invalid {
            what: "commit id",
            detail: format!(
                "`{}` must be 1 to {MAX_SHA} letters or digits",
                sha.escape_debug()
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Records (or re-records) the outcome of compiling a commit.
    pub async fn record_commit(&self, commit: &CommitRecord) -> Result<()> {
        check_sha(&commit.sha)?;
        let diagnostics =
            serde_json::to_string(&commit.diagnostics).map_err(|source| StoreError::Encode {
                what: "diagnostics",
                source,
            })?;
        on_backend!(self, pool => {
            sqlx::query(
                "INSERT INTO commits (sha, ok, diagnostics, compiled_at, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha) DO UPDATE SET ok = excluded.ok, \
                 diagnostics = excluded.diagnostics, compiled_at = excluded.compiled_at",
            )
            .bind(&commit.sha)
            .bind(commit.ok)
            .bind(&diagnostics)
            .bind(commit.compiled_at)
            .bind(now())
            .execute(pool)
            .await
            .ctx("record a commit")?;
            Ok(())
        })
    }

    /// The recorded commit `sha`, if any.
    pub async fn commit(&self, sha: &str) -> Result<Option<CommitRecord>> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT sha, ok, diagnostics, compiled_at FROM commits WHERE sha = $1",
            )
                .bind(sha)
                .fetch_optional(pool)
                .await
                .ctx("read a commit")?;
            let Some(row) = row else { return Ok(None) };
            let diagnostics: String = row.try_get("diagnostics").ctx("read a commit")?;
            Ok(Some(CommitRecord {
                sha: row.try_get("sha").ctx("read a commit")?,
                ok: row.try_get("ok").ctx("read a commit")?,
                diagnostics: serde_json::from_str(&diagnostics).map_err(|e| StoreError::Corrupt {
                    what: format!("diagnostics of commit {sha}"),
                    detail: e.to_string(),
                })?,
                compiled_at: row.try_get::<DateTime<Utc>, _>("compiled_at").ctx("read a commit")?,
            }))
        })
    }

    /// Commits newest compiled first (ties by sha, descending), `limit` (capped at
    /// [`MAX_PAGE`]) after the commit `after` (the previous page's `next`). An `after` that
    /// names no recorded commit gives an empty page.
    pub async fn list_commits(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<CommitRecord, String>> {
        let limit = limit.clamp(1, MAX_PAGE);
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT c.sha, c.ok, c.diagnostics, c.compiled_at FROM commits c \
                 WHERE $1 IS NULL OR (c.compiled_at, c.sha) < \
                 (SELECT p.compiled_at, p.sha FROM commits p WHERE p.sha = $1) \
                 ORDER BY c.compiled_at DESC, c.sha DESC LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("list commits")?;
            let mut commits = Vec::with_capacity(rows.len());
            for row in rows {
                let sha: String = row.try_get("sha").ctx("read a commit")?;
                let diagnostics: String = row.try_get("diagnostics").ctx("read a commit")?;
                commits.push(CommitRecord {
                    diagnostics: serde_json::from_str(&diagnostics).map_err(|e| {
                        StoreError::Corrupt {
                            what: format!("diagnostics of commit {sha}"),
                            detail: e.to_string(),
                        }
                    })?,
                    sha,
                    ok: row.try_get("ok").ctx("read a commit")?,
                    compiled_at: row
                        .try_get::<DateTime<Utc>, _>("compiled_at")
                        .ctx("read a commit")?,
                });
            }
            let next = if commits.len() > limit as usize {
                commits.truncate(limit as usize);
                commits.last().map(|c| c.sha.clone())
            } else {
                None
            };
            Ok(Page { items: commits, next })
        })
    }
}
