//! Approved plan digests: append-only, the newest approval of a node is the one in force.

use crate::backend::{BeginWrite as _, on_backend};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::records::{Approval, MAX_PAGE, Page};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;

/// The id of `node` inside the caller's transaction, if it has a desired state at
/// `commit` (what an approval needs); `NoDesiredState` otherwise.
macro_rules! desired_node_id {
    ($tx:ident, $commit:expr, $node:expr) => {{
        let node_id: Option<i64> = sqlx::query_scalar(
            "SELECT d.node_id FROM desired_states d JOIN nodes n ON n.id = d.node_id \
             WHERE d.commit_sha = $1 AND n.name = $2",
        )
        .bind($commit)
        .bind($node)
        .fetch_optional(&mut *$tx)
        .await
        .ctx("look up a desired state")?;
        node_id.ok_or_else(|| StoreError::NoDesiredState {
            commit: $commit.to_owned(),
            node: $node.to_owned(),
        })
    }};
}
pub(crate) use desired_node_id;

impl Store {
    /// Approves the plan with `digest` for `node` at `commit`; the node must have a desired
    /// state at that commit.
    pub async fn approve_plan(
        &self,
        commit: &str,
        node: &str,
        digest: &str,
        approved_by: &str,
    ) -> Result<Approval> {
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let node_id = desired_node_id!(tx, commit, node)?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO plan_approvals \
                 (node_id, commit_sha, digest, approved_by, approved_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(node_id)
            .bind(commit)
            .bind(digest)
            .bind(approved_by)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .ctx("approve a plan")?;
            tx.commit().await.ctx("commit an approval")?;
            Ok(Approval {
                id,
                node: node.to_owned(),
                commit: commit.to_owned(),
                digest: digest.to_owned(),
                approved_by: approved_by.to_owned(),
                approved_at: at,
            })
        })
    }

    /// The approval in force for `node`: its newest.
    pub async fn approved_digest(&self, node: &str) -> Result<Option<Approval>> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT a.id, a.commit_sha, a.digest, a.approved_by, a.approved_at \
                 FROM plan_approvals a JOIN nodes n ON n.id = a.node_id \
                 WHERE n.name = $1 ORDER BY a.id DESC LIMIT 1",
            )
            .bind(node)
            .fetch_optional(pool)
            .await
            .ctx("read an approval")?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(Approval {
                id: row.try_get("id").ctx("read an approval")?,
                node: node.to_owned(),
                commit: row.try_get("commit_sha").ctx("read an approval")?,
                digest: row.try_get("digest").ctx("read an approval")?,
                approved_by: row.try_get("approved_by").ctx("read an approval")?,
                approved_at: row
                    .try_get::<DateTime<Utc>, _>("approved_at")
                    .ctx("read an approval")?,
            }))
        })
    }

    /// Per node, its newest approval at `commit`, in node-name order, `limit` (capped at
    /// [`MAX_PAGE`]) after the node name `after`.
    pub async fn approvals_for_commit(
        &self,
        commit: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Approval, String>> {
        let limit = limit.clamp(1, MAX_PAGE);
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT a.id, n.name, a.commit_sha, a.digest, a.approved_by, a.approved_at \
                 FROM plan_approvals a JOIN nodes n ON n.id = a.node_id \
                 WHERE a.commit_sha = $1 AND a.id = (SELECT MAX(b.id) FROM plan_approvals b \
                 WHERE b.node_id = a.node_id AND b.commit_sha = $1) \
                 AND ($2 IS NULL OR n.name > $2) ORDER BY n.name LIMIT $3",
            )
            .bind(commit)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("list approvals")?;
            let mut approvals = Vec::with_capacity(rows.len());
            for row in rows {
                approvals.push(Approval {
                    id: row.try_get("id").ctx("read an approval")?,
                    node: row.try_get("name").ctx("read an approval")?,
                    commit: row.try_get("commit_sha").ctx("read an approval")?,
                    digest: row.try_get("digest").ctx("read an approval")?,
                    approved_by: row.try_get("approved_by").ctx("read an approval")?,
                    approved_at: row
                        .try_get::<DateTime<Utc>, _>("approved_at")
                        .ctx("read an approval")?,
                });
            }
            let next = if approvals.len() > limit as usize {
                approvals.truncate(limit as usize);
                approvals.last().map(|a| a.node.clone())
            } else {
                None
            };
            Ok(Page { items: approvals, next })
        })
    }
}
