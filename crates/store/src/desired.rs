//! The desired state of each node at each commit, stored redacted and content-addressed:
//! the document is the state without its node name and commit, so nodes and commits with
//! identical states share one blob.

use crate::Store;
use crate::backend::{BATCH_ROWS, BeginWrite as _, on_backend, placeholders, values_list};
use crate::blobs::{Blob, decode, distinct, put_blobs};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::nodes::node_ids;
use crate::records::{DesiredSummary, MAX_PAGE, Newest, ResourceVersion};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use state::{DesiredResource, DesiredState, ResourceId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The stored document: sensitive values replaced by their digests, node and commit taken out.
fn document(desired: &DesiredState) -> DesiredState {
    DesiredState {
        node: String::new(),
        commit: None,
        ..desired.redacted()
    }
}

impl Store {
    /// Stores the desired state of every node in `states` at `commit`, in one transaction.
    /// Nodes must exist (`upsert_nodes`) and the commit must be recorded. A node given twice
    /// keeps its last state; storing again for the same commit replaces.
    pub async fn set_desired(
        &self,
        commit: &str,
        states: &[DesiredState],
    ) -> Result<DesiredSummary> {
        let mut by_node: BTreeMap<&str, &DesiredState> = BTreeMap::new();
        for desired in states {
            if desired.format != state::DESIRED_FORMAT {
                return Err(StoreError::Invalid {
                    what: "desired state",
                    detail: format!(
                        "format {} for node `{}` (this store reads format {})",
                        desired.format,
                        desired.node,
                        state::DESIRED_FORMAT
                    ),
                });
            }
            if let Some(inner) = &desired.commit
                && inner != commit
            {
                return Err(StoreError::CommitMismatch {
                    outer: commit.to_owned(),
                    inner: inner.clone(),
                });
            }
            by_node.insert(&desired.node, desired);
        }
        let mut rows: Vec<(&str, Blob)> = Vec::with_capacity(by_node.len());
        for (node, desired) in by_node {
            rows.push((node, Blob::of("desired state", &document(desired))?));
        }
        let names: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
        let blobs: Vec<Blob> = rows.iter().map(|(_, b)| b.clone()).collect();
        let unique = distinct(&blobs);
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let known = sqlx::query("SELECT sha FROM commits WHERE sha = $1")
                .bind(commit)
                .fetch_optional(&mut *tx)
                .await
                .ctx("look up a commit")?;
            if known.is_none() {
                return Err(StoreError::UnknownCommit { sha: commit.to_owned() });
            }
            let ids = node_ids!(tx, &names)?;
            let new_blobs = put_blobs!(tx, &unique);
            for chunk in rows.chunks(BATCH_ROWS) {
                let sql = format!(
                    "INSERT INTO desired_states (commit_sha, node_id, blob_digest) VALUES {} \
                     ON CONFLICT (commit_sha, node_id) \
                     DO UPDATE SET blob_digest = excluded.blob_digest",
                    values_list(chunk.len(), 3, 1)
                );
                let mut query = sqlx::query(&sql);
                for (node, blob) in chunk {
                    query = query.bind(commit).bind(ids[*node]).bind(&blob.digest);
                }
                query.execute(&mut *tx).await.ctx("store desired states")?;
            }
            tx.commit().await.ctx("commit desired states")?;
            Ok(DesiredSummary { nodes: rows.len(), new_blobs })
        })
    }

    /// `node`'s desired state at `commit`, redacted (sensitive content as digests only).
    pub async fn desired_for(&self, commit: &str, node: &str) -> Result<Option<DesiredState>> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "SELECT b.digest, b.body FROM desired_states d \
                 JOIN nodes n ON n.id = d.node_id JOIN blobs b ON b.digest = d.blob_digest \
                 WHERE d.commit_sha = $1 AND n.name = $2",
            )
            .bind(commit)
            .bind(node)
            .fetch_optional(pool)
            .await
            .ctx("read a desired state")?;
            let Some(row) = row else { return Ok(None) };
            let digest: String = row.try_get("digest").ctx("read a desired state")?;
            let body: String = row.try_get("body").ctx("read a desired state")?;
            let mut desired: DesiredState = decode("desired state", &digest, &body)?;
            desired.node = node.to_owned();
            desired.commit = Some(commit.to_owned());
            Ok(Some(desired))
        })
    }

    /// The digest of the document `node`'s desired state at `commit` is stored as: equal
    /// digests mean equal (redacted) desired states.
    pub async fn desired_digest(&self, commit: &str, node: &str) -> Result<Option<String>> {
        on_backend!(self, pool => {
            sqlx::query_scalar::<_, String>(
                "SELECT d.blob_digest FROM desired_states d JOIN nodes n ON n.id = d.node_id \
                 WHERE d.commit_sha = $1 AND n.name = $2",
            )
            .bind(commit)
            .bind(node)
            .fetch_optional(pool)
            .await
            .ctx("read a desired state digest")
        })
    }

    /// `resource` in `node`'s desired state at each of the node's newest `limit` (capped at
    /// [`MAX_PAGE`]) compiled commits, newest compiled first (ties by sha, descending), and
    /// whether older commits exist. Two statements plus one per [`BATCH_ROWS`] distinct
    /// documents: consecutive commits usually share a document, which is read and decoded
    /// once. An unknown node has no versions.
    pub async fn resource_history(
        &self,
        node: &str,
        resource: &ResourceId,
        limit: u32,
    ) -> Result<Newest<ResourceVersion>> {
        let limit = limit.clamp(1, MAX_PAGE);
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("read a resource's history")?;
            let rows = sqlx::query(
                "SELECT d.commit_sha, c.compiled_at, d.blob_digest FROM desired_states d \
                 JOIN nodes n ON n.id = d.node_id JOIN commits c ON c.sha = d.commit_sha \
                 WHERE n.name = $1 ORDER BY c.compiled_at DESC, c.sha DESC LIMIT $2",
            )
            .bind(node)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await
            .ctx("read a resource's history")?;
            let mut listed: Vec<(String, DateTime<Utc>, String)> = Vec::with_capacity(rows.len());
            for row in rows {
                listed.push((
                    row.try_get("commit_sha").ctx("read a resource's history")?,
                    row.try_get::<DateTime<Utc>, _>("compiled_at")
                        .ctx("read a resource's history")?,
                    row.try_get("blob_digest").ctx("read a resource's history")?,
                ));
            }
            let more = listed.len() > limit as usize;
            listed.truncate(limit as usize);
            let mut digests: Vec<&str> = listed.iter().map(|(_, _, d)| d.as_str()).collect();
            digests.sort_unstable();
            digests.dedup();
            let mut found: HashMap<String, Option<Arc<DesiredResource>>> = HashMap::new();
            for chunk in digests.chunks(BATCH_ROWS) {
                let sql = format!(
                    "SELECT digest, body FROM blobs WHERE digest IN ({})",
                    placeholders(chunk.len(), 1)
                );
                let mut query = sqlx::query(&sql);
                for digest in chunk {
                    query = query.bind(*digest);
                }
                for row in query
                    .fetch_all(&mut *conn)
                    .await
                    .ctx("read desired states")?
                {
                    let digest: String = row.try_get("digest").ctx("read desired states")?;
                    let body: String = row.try_get("body").ctx("read desired states")?;
                    let desired: DesiredState = decode("desired state", &digest, &body)?;
                    let version = desired.resources.into_iter().find(|r| &r.id == resource);
                    found.insert(digest, version);
                }
            }
            let mut items = Vec::with_capacity(listed.len());
            for (commit, compiled_at, digest) in listed {
                let resource = found.get(&digest).cloned().ok_or_else(|| StoreError::Corrupt {
                    what: format!("desired state of `{node}` at commit {commit}"),
                    detail: format!("its document {digest} is missing"),
                })?;
                items.push(ResourceVersion { commit, compiled_at, resource });
            }
            Ok(Newest { items, more })
        })
    }
}
