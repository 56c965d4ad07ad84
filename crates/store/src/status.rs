//! Node states derived in one query: each node with its newest finished run, its newest
//! successful run, its approval in force and its drift since then, and the state those give
//! (`NodeState`); filtered, keyset-paginated, or counted per state. One statement per page
//! plus one for the page's labels, whatever the page size.

use crate::Store;
use crate::backend::{BATCH_ROWS, on_backend, placeholders};
use crate::error::{QueryContext as _, Result, StoreError};
use crate::records::{
    Approval, MAX_PAGE, Node, NodeFilter, NodeState, NodeStatus, Page, RunStatus, RunSummary,
};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use std::collections::{BTreeMap, HashMap};

/// Every node with its state and the columns it was derived from. The precedence of the
/// `CASE` is the order of `NodeState`'s variants.
///
/// Timestamps are compared in SQL: `TIMESTAMPTZ` on PostgreSQL; on SQLite the RFC 3339 text
/// sqlx writes for a UTC time (always `+00:00`, fractions of 0, 3, 6 or 9 digits), which
/// sorts in time order because `+` sorts before `.` and before every digit.
const STATUS_SELECT: &str = "\
SELECT n.id, n.name, n.in_inventory, n.created_at, n.updated_at, n.reported_at, n.facts, \
  lr.id AS run_id, lr.commit_sha AS run_commit, lr.plan_digest AS run_digest, \
  lr.started_at AS run_started_at, lr.finished_at AS run_finished_at, \
  lr.status AS run_status, lr.message AS run_message, \
  la.commit_sha AS applied_commit, \
  pa.id AS approval_id, pa.commit_sha AS approval_commit, pa.digest AS approval_digest, \
  pa.approved_by AS approved_by, pa.approved_at AS approved_at, \
  (SELECT COUNT(*) FROM drift_events d WHERE d.node_id = n.id \
     AND (la.finished_at IS NULL OR d.detected_at > la.finished_at)) AS drift_count, \
  CASE \
    WHEN n.reported_at IS NULL THEN 'unknown' \
    WHEN lr.status = 'failed' THEN 'failed' \
    WHEN lr.status = 'stale' THEN 'stale' \
    WHEN EXISTS (SELECT 1 FROM drift_events d WHERE d.node_id = n.id \
      AND (la.finished_at IS NULL OR d.detected_at > la.finished_at)) THEN 'drifted' \
    WHEN pa.id IS NOT NULL AND (la.id IS NULL OR (pa.commit_sha <> la.commit_sha \
      AND (cl.compiled_at IS NULL OR ca.compiled_at > cl.compiled_at))) THEN 'pending' \
    ELSE 'converged' \
  END AS state \
FROM nodes n \
LEFT JOIN apply_runs lr ON lr.id = (SELECT MAX(r.id) FROM apply_runs r \
  WHERE r.node_id = n.id AND r.status IS NOT NULL) \
LEFT JOIN apply_runs la ON la.id = (SELECT MAX(r.id) FROM apply_runs r \
  WHERE r.node_id = n.id AND r.status = 'applied') \
LEFT JOIN plan_approvals pa ON pa.id = (SELECT MAX(a.id) FROM plan_approvals a \
  WHERE a.node_id = n.id) \
LEFT JOIN commits ca ON ca.sha = pa.commit_sha \
LEFT JOIN commits cl ON cl.sha = la.commit_sha";

/// What to select: a filter, a state, a page; or one node by name.
struct Selection<'a> {
    filter: &'a NodeFilter,
    state: Option<NodeState>,
    name: Option<&'a str>,
    after: Option<&'a str>,
    limit: u32,
}

impl Selection<'_> {
    /// The statement; parameters are bound in the order of [`Selection::bind`].
    fn sql(&self) -> String {
        let mut sql = format!("SELECT s.* FROM ({STATUS_SELECT}) s WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if self.name.is_some() {
            sql.push_str(&format!(" AND s.name = {}", next()));
        }
        if self.after.is_some() {
            sql.push_str(&format!(" AND s.name > {}", next()));
        }
        if self.state.is_some() {
            sql.push_str(&format!(" AND s.state = {}", next()));
        }
        if self.filter.in_inventory.is_some() {
            sql.push_str(&format!(" AND s.in_inventory = {}", next()));
        }
        for _ in &self.filter.labels {
            let (k, v) = (next(), next());
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM node_labels l WHERE l.node_id = s.id \
                 AND l.key = {k} AND l.value = {v})"
            ));
        }
        sql.push_str(&format!(" ORDER BY s.name LIMIT {}", next()));
        sql
    }
}

macro_rules! bind_selection {
    ($query:expr, $sel:expr) => {{
        let sel = $sel;
        let mut query = $query;
        if let Some(name) = sel.name {
            query = query.bind(name);
        }
        if let Some(after) = sel.after {
            query = query.bind(after);
        }
        if let Some(state) = sel.state {
            query = query.bind(state.as_str());
        }
        if let Some(in_inventory) = sel.filter.in_inventory {
            query = query.bind(in_inventory);
        }
        for (key, value) in &sel.filter.labels {
            query = query.bind(key).bind(value);
        }
        query.bind(i64::from(sel.limit) + 1)
    }};
}

macro_rules! status_from_row {
    ($row:expr) => {{
        let row = $row;
        let ctx = "read a node's state";
        let id: i64 = row.try_get("id").ctx(ctx)?;
        let name: String = row.try_get("name").ctx(ctx)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            what: format!("state of node {name}"),
            detail,
        };
        let facts: Option<String> = row.try_get("facts").ctx(ctx)?;
        let facts = match facts {
            Some(text) => Some(
                serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text)
                    .map_err(|e| corrupt(e.to_string()))?,
            ),
            None => None,
        };
        let state: String = row.try_get("state").ctx(ctx)?;
        let state = NodeState::parse(&state).ok_or_else(|| corrupt(format!("state `{state}`")))?;
        let run_id: Option<i64> = row.try_get("run_id").ctx(ctx)?;
        let last_run = match run_id {
            Some(run_id) => {
                let status: Option<String> = row.try_get("run_status").ctx(ctx)?;
                let status = match status {
                    Some(s) => Some(
                        RunStatus::parse(&s).ok_or_else(|| corrupt(format!("run status `{s}`")))?,
                    ),
                    None => None,
                };
                Some(RunSummary {
                    id: run_id,
                    commit: row.try_get("run_commit").ctx(ctx)?,
                    plan_digest: row.try_get("run_digest").ctx(ctx)?,
                    started_at: row.try_get::<DateTime<Utc>, _>("run_started_at").ctx(ctx)?,
                    finished_at: row
                        .try_get::<Option<DateTime<Utc>>, _>("run_finished_at")
                        .ctx(ctx)?,
                    status,
                    message: row.try_get("run_message").ctx(ctx)?,
                })
            }
            None => None,
        };
        let approval_id: Option<i64> = row.try_get("approval_id").ctx(ctx)?;
        let approval = match approval_id {
            Some(approval_id) => Some(Approval {
                id: approval_id,
                node: name.clone(),
                commit: row.try_get("approval_commit").ctx(ctx)?,
                digest: row.try_get("approval_digest").ctx(ctx)?,
                approved_by: row.try_get("approved_by").ctx(ctx)?,
                approved_at: row.try_get::<DateTime<Utc>, _>("approved_at").ctx(ctx)?,
            }),
            None => None,
        };
        Ok::<NodeStatus, StoreError>(NodeStatus {
            node: Node {
                id,
                name: name.clone(),
                labels: BTreeMap::new(),
                in_inventory: row.try_get("in_inventory").ctx(ctx)?,
                created_at: row.try_get::<DateTime<Utc>, _>("created_at").ctx(ctx)?,
                updated_at: row.try_get::<DateTime<Utc>, _>("updated_at").ctx(ctx)?,
                reported_at: row
                    .try_get::<Option<DateTime<Utc>>, _>("reported_at")
                    .ctx(ctx)?,
                facts,
            },
            state,
            last_run,
            applied_commit: row.try_get("applied_commit").ctx(ctx)?,
            drift_since_applied: row.try_get("drift_count").ctx(ctx)?,
            approval,
        })
    }};
}

impl Store {
    /// Nodes matching `filter` (and in `state`, if given) with their derived state, in name
    /// order, `limit` (at most [`MAX_PAGE`]) after the name `after`. Two statements per page
    /// (the rows, then the page's labels).
    pub async fn list_node_status(
        &self,
        filter: &NodeFilter,
        state: Option<NodeState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<NodeStatus, String>> {
        let selection = Selection {
            filter,
            state,
            name: None,
            after,
            limit: limit.clamp(1, MAX_PAGE),
        };
        self.select_status(&selection).await
    }

    /// One node with its derived state, if known.
    pub async fn node_status(&self, name: &str) -> Result<Option<NodeStatus>> {
        let filter = NodeFilter::default();
        let selection = Selection {
            filter: &filter,
            state: None,
            name: Some(name),
            after: None,
            limit: 1,
        };
        Ok(self.select_status(&selection).await?.items.pop())
    }

    /// How many nodes are in each state (every state present, zeros included).
    pub async fn node_state_counts(&self) -> Result<BTreeMap<NodeState, u64>> {
        let sql =
            format!("SELECT s.state, COUNT(*) AS n FROM ({STATUS_SELECT}) s GROUP BY s.state");
        let mut counts: BTreeMap<NodeState, u64> =
            NodeState::ALL.into_iter().map(|s| (s, 0)).collect();
        on_backend!(self, pool => {
            let rows = sqlx::query(&sql)
                .fetch_all(pool)
                .await
                .ctx("count nodes by state")?;
            for row in rows {
                let state: String = row.try_get("state").ctx("count nodes by state")?;
                let n: i64 = row.try_get("n").ctx("count nodes by state")?;
                let state = NodeState::parse(&state).ok_or_else(|| StoreError::Corrupt {
                    what: "node states".into(),
                    detail: format!("state `{state}`"),
                })?;
                counts.insert(state, u64::try_from(n).unwrap_or(0));
            }
            Ok(counts)
        })
    }

    /// Answers a trivial query (readiness probes).
    pub async fn ping(&self) -> Result<()> {
        on_backend!(self, pool => {
            let one: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(pool)
                .await
                .ctx("ping the database")?;
            debug_assert_eq!(one, 1);
            Ok(())
        })
    }

    async fn select_status(&self, selection: &Selection<'_>) -> Result<Page<NodeStatus, String>> {
        let sql = selection.sql();
        let limit = selection.limit as usize;
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("list node states")?;
            let query = bind_selection!(sqlx::query(&sql), selection);
            let rows = query.fetch_all(&mut *conn).await.ctx("list node states")?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                items.push(status_from_row!(row)?);
            }
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|s| s.node.name.clone())
            } else {
                None
            };
            let ids: Vec<i64> = items.iter().map(|s| s.node.id).collect();
            let mut labels: HashMap<i64, BTreeMap<String, String>> = HashMap::new();
            for chunk in ids.chunks(BATCH_ROWS) {
                let sql = format!(
                    "SELECT node_id, key, value FROM node_labels WHERE node_id IN ({})",
                    placeholders(chunk.len(), 1)
                );
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in query.fetch_all(&mut *conn).await.ctx("read node labels")? {
                    labels
                        .entry(row.try_get("node_id").ctx("read node labels")?)
                        .or_default()
                        .insert(
                            row.try_get("key").ctx("read node labels")?,
                            row.try_get("value").ctx("read node labels")?,
                        );
                }
            }
            for item in &mut items {
                item.node.labels = labels.remove(&item.node.id).unwrap_or_default();
            }
            Ok(Page { items, next })
        })
    }
}
