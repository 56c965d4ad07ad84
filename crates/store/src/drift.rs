//! Drift events: a resource found diverged from its desired state without a change of intent.

use crate::backend::{BeginWrite as _, on_backend};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::nodes::node_ids;
use crate::records::{DriftEvent, MAX_PAGE, Newest, Page};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use state::{Change, ResourceId};

/// The change as stored: a sensitive resource never keeps a diff (plans already omit it;
/// this holds even for a change built elsewhere).
fn stored_change(change: &Change) -> Change {
    let mut change = change.clone();
    if change.sensitive {
        change.diff = None;
    }
    change
}

/// Drift events from rows of `id, name, commit_sha, resource, change, detected_at`.
macro_rules! drift_rows {
    ($rows:expr) => {{
        let rows = $rows;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id").ctx("read a drift event")?;
            let corrupt = |detail: String| StoreError::Corrupt {
                what: format!("drift event {id}"),
                detail,
            };
            let resource: String = row.try_get("resource").ctx("read a drift event")?;
            let change: String = row.try_get("change").ctx("read a drift event")?;
            events.push(DriftEvent {
                id,
                node: row.try_get("name").ctx("read a drift event")?,
                commit: row.try_get("commit_sha").ctx("read a drift event")?,
                resource: resource
                    .parse::<ResourceId>()
                    .map_err(|e| corrupt(format!("resource `{resource}`: {e}")))?,
                change: serde_json::from_str(&change).map_err(|e| corrupt(e.to_string()))?,
                detected_at: row
                    .try_get::<DateTime<Utc>, _>("detected_at")
                    .ctx("read a drift event")?,
            });
        }
        events
    }};
}

impl Store {
    /// Records that `change` would be needed to bring `node` back to its desired state at
    /// `commit`.
    pub async fn record_drift_event(
        &self,
        node: &str,
        commit: Option<&str>,
        change: &Change,
    ) -> Result<DriftEvent> {
        let change = stored_change(change);
        let text = serde_json::to_string(&change).map_err(|source| StoreError::Encode {
            what: "drift change",
            source,
        })?;
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ids = node_ids!(tx, &[node])?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO drift_events (node_id, commit_sha, resource, change, detected_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(ids[node])
            .bind(commit)
            .bind(change.id.to_string())
            .bind(&text)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .ctx("record a drift event")?;
            tx.commit().await.ctx("commit a drift event")?;
            Ok(DriftEvent {
                id,
                node: node.to_owned(),
                commit: commit.map(str::to_owned),
                resource: change.id.clone(),
                change,
                detected_at: at,
            })
        })
    }

    /// Drift events oldest first, of one node or all, `limit` (capped at [`MAX_PAGE`]) after
    /// the event id `after`.
    pub async fn list_drift(
        &self,
        node: Option<&str>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Page<DriftEvent, i64>> {
        let limit = limit.clamp(1, MAX_PAGE);
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, n.name, e.commit_sha, e.resource, e.change, e.detected_at \
                 FROM drift_events e JOIN nodes n ON n.id = e.node_id \
                 WHERE e.id > $1 AND ($2 IS NULL OR n.name = $2) ORDER BY e.id LIMIT $3",
            )
            .bind(after.unwrap_or(0))
            .bind(node)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("list drift events")?;
            let mut events = drift_rows!(rows);
            let next = if events.len() > limit as usize {
                events.truncate(limit as usize);
                events.last().map(|e| e.id)
            } else {
                None
            };
            Ok(Page { items: events, next })
        })
    }

    /// `node`'s newest drift events first, at most `limit` (capped at [`MAX_PAGE`]).
    pub async fn recent_drift(&self, node: &str, limit: u32) -> Result<Vec<DriftEvent>> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, n.name, e.commit_sha, e.resource, e.change, e.detected_at \
                 FROM drift_events e JOIN nodes n ON n.id = e.node_id \
                 WHERE n.name = $1 ORDER BY e.id DESC LIMIT $2",
            )
            .bind(node)
            .bind(i64::from(limit.clamp(1, MAX_PAGE)))
            .fetch_all(pool)
            .await
            .ctx("list recent drift events")?;
            Ok(drift_rows!(rows))
        })
    }

    /// `node`'s newest `limit` (capped at [`MAX_PAGE`]) drift events of `resource`, newest
    /// first, and whether older ones exist. One statement.
    pub async fn resource_drift(
        &self,
        node: &str,
        resource: &ResourceId,
        limit: u32,
    ) -> Result<Newest<DriftEvent>> {
        let limit = limit.clamp(1, MAX_PAGE);
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT e.id, n.name, e.commit_sha, e.resource, e.change, e.detected_at \
                 FROM drift_events e JOIN nodes n ON n.id = e.node_id \
                 WHERE n.name = $1 AND e.resource = $2 ORDER BY e.id DESC LIMIT $3",
            )
            .bind(node)
            .bind(resource.to_string())
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("list a resource's drift events")?;
            let mut items = drift_rows!(rows);
            let more = items.len() > limit as usize;
            items.truncate(limit as usize);
            Ok(Newest { items, more })
        })
    }
}
