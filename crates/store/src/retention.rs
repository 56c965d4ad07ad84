//! Retention: dropping old commits with their desired states and approvals, and the
//! documents no row refers to any more. Apply runs, drift events and the audit log are kept.

use crate::Store;
use crate::backend::{BeginWrite as _, on_backend};
use crate::error::{QueryContext as _, Result};

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub commits: u64,
    pub desired_states: u64,
    pub blobs: u64,
}

impl Store {
    /// Removes every commit except the `keep` most recently compiled and those in `pin` (the
    /// commit each node last applied, say), with their desired states and approvals, then
    /// the documents nothing refers to. One transaction.
    pub async fn prune_commits(&self, keep: u32, pin: &[&str]) -> Result<Pruned> {
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let newest: Vec<String> = sqlx::query_scalar(
                "SELECT sha FROM commits ORDER BY compiled_at DESC, sha LIMIT $1",
            )
            .bind(i64::from(keep))
            .fetch_all(&mut *tx)
            .await
            .ctx("list recent commits")?;
            let all: Vec<String> = sqlx::query_scalar("SELECT sha FROM commits")
                .fetch_all(&mut *tx)
                .await
                .ctx("list commits")?;
            let doomed: Vec<String> = all
                .into_iter()
                .filter(|sha| !newest.contains(sha) && !pin.contains(&sha.as_str()))
                .collect();
            let mut pruned = Pruned::default();
            for sha in &doomed {
                pruned.desired_states +=
                    sqlx::query("DELETE FROM desired_states WHERE commit_sha = $1")
                        .bind(sha)
                        .execute(&mut *tx)
                        .await
                        .ctx("delete desired states")?
                        .rows_affected();
                sqlx::query("DELETE FROM plan_approvals WHERE commit_sha = $1")
                    .bind(sha)
                    .execute(&mut *tx)
                    .await
                    .ctx("delete approvals")?;
                pruned.commits += sqlx::query("DELETE FROM commits WHERE sha = $1")
                    .bind(sha)
                    .execute(&mut *tx)
                    .await
                    .ctx("delete a commit")?
                    .rows_affected();
            }
            pruned.blobs = sqlx::query(
                "DELETE FROM blobs WHERE NOT EXISTS \
                 (SELECT 1 FROM desired_states d WHERE d.blob_digest = blobs.digest) \
                 AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.observed_blob = blobs.digest)",
            )
            .execute(&mut *tx)
            .await
            .ctx("delete unreferenced documents")?
            .rows_affected();
            tx.commit().await.ctx("commit a prune")?;
            Ok(pruned)
        })
    }
}
