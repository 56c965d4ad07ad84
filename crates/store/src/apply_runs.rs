//! Apply runs: started when a desired state is dispatched to a node, finished with the
//! agent's per-resource results.

use crate::approvals::desired_node_id;
use crate::backend::{BATCH_ROWS, BeginWrite as _, on_backend, placeholders, values_list};
use crate::commits::check_sha;
use crate::error::{QueryContext as _, Result, StoreError};
use crate::nodes::node_ids;
use crate::records::{
    ApplyRun, MAX_PAGE, Newest, Outcome, Page, ResourceResult, ResourceRun, RunStatus, RunSummary,
};
use crate::{Store, now};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use state::{Action, ResourceId};
use std::collections::HashMap;

fn corrupt(run: i64, detail: String) -> StoreError {
    StoreError::Corrupt {
        what: format!("apply run {run}"),
        detail,
    }
}

fn parse_action(run: i64, s: &str) -> Result<Action> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| corrupt(run, format!("unknown action `{s}`")))
}

macro_rules! runs_with_results {
    ($conn:expr, $rows:expr) => {{
        let rows = $rows;
        let mut runs: Vec<ApplyRun> = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id").ctx("read an apply run")?;
            let status: Option<String> = row.try_get("status").ctx("read an apply run")?;
            let status = match status {
                Some(s) => Some(
                    RunStatus::parse(&s)
                        .ok_or_else(|| corrupt(id, format!("unknown status `{s}`")))?,
                ),
                None => None,
            };
            runs.push(ApplyRun {
                id,
                node: row.try_get("name").ctx("read an apply run")?,
                commit: row.try_get("commit_sha").ctx("read an apply run")?,
                plan_digest: row.try_get("plan_digest").ctx("read an apply run")?,
                started_at: row
                    .try_get::<DateTime<Utc>, _>("started_at")
                    .ctx("read an apply run")?,
                finished_at: row
                    .try_get::<Option<DateTime<Utc>>, _>("finished_at")
                    .ctx("read an apply run")?,
                status,
                message: row.try_get("message").ctx("read an apply run")?,
                results: Vec::new(),
            });
        }
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let mut results: HashMap<i64, Vec<ResourceResult>> = HashMap::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let sql = format!(
                "SELECT run_id, resource, action, outcome, reason, duration_ms FROM apply_results \
                 WHERE run_id IN ({}) ORDER BY run_id, position",
                placeholders(chunk.len(), 1)
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query
                .fetch_all(&mut *$conn)
                .await
                .ctx("read apply results")?
            {
                let run: i64 = row.try_get("run_id").ctx("read apply results")?;
                let resource: String = row.try_get("resource").ctx("read apply results")?;
                let action: Option<String> = row.try_get("action").ctx("read apply results")?;
                let outcome: String = row.try_get("outcome").ctx("read apply results")?;
                let duration: i64 = row.try_get("duration_ms").ctx("read apply results")?;
                results.entry(run).or_default().push(ResourceResult {
                    resource: resource
                        .parse::<ResourceId>()
                        .map_err(|e| corrupt(run, format!("resource `{resource}`: {e}")))?,
                    action: action
                        .as_deref()
                        .map(|a| parse_action(run, a))
                        .transpose()?,
                    outcome: Outcome::parse(&outcome)
                        .ok_or_else(|| corrupt(run, format!("unknown outcome `{outcome}`")))?,
                    reason: row.try_get("reason").ctx("read apply results")?,
                    duration_ms: u64::try_from(duration).unwrap_or(0),
                });
            }
        }
        for run in &mut runs {
            run.results = results.remove(&run.id).unwrap_or_default();
        }
        Ok::<Vec<ApplyRun>, StoreError>(runs)
    }};
}

const RUN_COLUMNS: &str = "r.id, n.name, r.commit_sha, r.plan_digest, r.started_at, \
                           r.finished_at, r.status, r.message";

impl Store {
    /// Starts an apply run of the plan `plan_digest` of `commit` on `node`; returns its id.
    pub async fn start_apply_run(
        &self,
        node: &str,
        commit: &str,
        plan_digest: &str,
    ) -> Result<i64> {
        check_sha(commit)?;
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ids = node_ids!(tx, &[node])?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO apply_runs (node_id, commit_sha, plan_digest, started_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(ids[node])
            .bind(commit)
            .bind(plan_digest)
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .ctx("start an apply run")?;
            tx.commit().await.ctx("commit an apply run")?;
            Ok(id)
        })
    }

    /// Approves the plan `digest` of `node` at `commit` and starts its apply run, in one
    /// transaction: a run never exists without its approval. Returns the run's id. The node
    /// must have a desired state at that commit.
    pub async fn approve_and_start_run(
        &self,
        commit: &str,
        node: &str,
        digest: &str,
        approved_by: &str,
    ) -> Result<i64> {
        check_sha(commit)?;
        let at = now();
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let node_id = desired_node_id!(tx, commit, node)?;
            sqlx::query(
                "INSERT INTO plan_approvals \
                 (node_id, commit_sha, digest, approved_by, approved_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(node_id)
            .bind(commit)
            .bind(digest)
            .bind(approved_by)
            .bind(at)
            .execute(&mut *tx)
            .await
            .ctx("approve a plan")?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO apply_runs (node_id, commit_sha, plan_digest, started_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(node_id)
            .bind(commit)
            .bind(digest)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .ctx("start an apply run")?;
            tx.commit().await.ctx("commit an approval and its run")?;
            Ok(id)
        })
    }

    /// Finishes run `id` with its status and per-resource results (in apply order). A run
    /// finishes once.
    pub async fn finish_apply_run(
        &self,
        id: i64,
        status: RunStatus,
        message: Option<&str>,
        results: &[ResourceResult],
    ) -> Result<()> {
        on_backend!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE apply_runs SET finished_at = $1, status = $2, message = $3 \
                 WHERE id = $4 AND finished_at IS NULL",
            )
            .bind(now())
            .bind(status.as_str())
            .bind(message)
            .bind(id)
            .execute(&mut *tx)
            .await
            .ctx("finish an apply run")?;
            if done.rows_affected() == 0 {
                let exists = sqlx::query("SELECT id FROM apply_runs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("look up an apply run")?;
                return Err(if exists.is_some() {
                    StoreError::RunFinished { id }
                } else {
                    StoreError::UnknownRun { id }
                });
            }
            let numbered: Vec<(i64, &ResourceResult)> =
                (0i64..).zip(results.iter()).collect();
            for chunk in numbered.chunks(BATCH_ROWS) {
                let sql = format!(
                    "INSERT INTO apply_results (run_id, position, resource, action, outcome, \
                     reason, duration_ms) VALUES {}",
                    values_list(chunk.len(), 7, 1)
                );
                let mut query = sqlx::query(&sql);
                for (position, result) in chunk {
                    query = query
                        .bind(id)
                        .bind(*position)
                        .bind(result.resource.to_string())
                        .bind(result.action.map(Action::as_str))
                        .bind(result.outcome.as_str())
                        .bind(result.reason.as_deref())
                        .bind(i64::try_from(result.duration_ms).unwrap_or(i64::MAX));
                }
                query.execute(&mut *tx).await.ctx("store apply results")?;
            }
            tx.commit().await.ctx("commit apply results")?;
            Ok(())
        })
    }

    /// Run `id` with its results, if it exists.
    pub async fn apply_run(&self, id: i64) -> Result<Option<ApplyRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM apply_runs r JOIN nodes n ON n.id = r.node_id \
             WHERE r.id = $1"
        );
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("read an apply run")?;
            let rows = sqlx::query(&sql)
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .ctx("read an apply run")?;
            Ok(runs_with_results!(conn, rows)?.pop())
        })
    }

    /// `node`'s newest runs first, at most `limit` (capped at [`MAX_PAGE`]).
    pub async fn apply_runs_for(&self, node: &str, limit: u32) -> Result<Vec<ApplyRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM apply_runs r JOIN nodes n ON n.id = r.node_id \
             WHERE n.name = $1 ORDER BY r.id DESC LIMIT $2"
        );
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("read apply runs")?;
            let rows = sqlx::query(&sql)
                .bind(node)
                .bind(i64::from(limit.clamp(1, MAX_PAGE)))
                .fetch_all(&mut *conn)
                .await
                .ctx("read apply runs")?;
            runs_with_results!(conn, rows)
        })
    }

    /// `node`'s runs newest first, `limit` (capped at [`MAX_PAGE`]) older than the run id
    /// `before` (the previous page's `next`).
    pub async fn apply_runs_page(
        &self,
        node: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<ApplyRun, i64>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM apply_runs r JOIN nodes n ON n.id = r.node_id \
             WHERE n.name = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
        );
        on_backend!(self, pool => {
            let mut conn = pool.acquire().await.ctx("read apply runs")?;
            let rows = sqlx::query(&sql)
                .bind(node)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit) + 1)
                .fetch_all(&mut *conn)
                .await
                .ctx("read apply runs")?;
            let mut runs = runs_with_results!(conn, rows)?;
            let next = if runs.len() > limit as usize {
                runs.truncate(limit as usize);
                runs.last().map(|r| r.id)
            } else {
                None
            };
            Ok(Page { items: runs, next })
        })
    }

    /// `node`'s newest `limit` (capped at [`MAX_PAGE`]) apply runs that concern `resource`,
    /// newest first, each with its result for it, and whether older ones exist. A run
    /// concerns the resource when it has a result for it, or has no per-resource results at
    /// all (still running, stale, failed before applying). One statement.
    pub async fn resource_runs(
        &self,
        node: &str,
        resource: &ResourceId,
        limit: u32,
    ) -> Result<Newest<ResourceRun>> {
        let limit = limit.clamp(1, MAX_PAGE);
        let id = resource.to_string();
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "SELECT r.id, r.commit_sha, r.plan_digest, r.started_at, r.finished_at, \
                 r.status, r.message, a.position, a.action, a.outcome, a.reason, a.duration_ms, \
                 (SELECT p.approved_by FROM plan_approvals p WHERE p.node_id = r.node_id \
                  AND p.commit_sha = r.commit_sha AND p.digest = r.plan_digest \
                  ORDER BY p.id DESC LIMIT 1) AS approved_by \
                 FROM apply_runs r JOIN nodes n ON n.id = r.node_id \
                 LEFT JOIN apply_results a ON a.run_id = r.id AND a.resource = $2 \
                 WHERE n.name = $1 AND (a.run_id IS NOT NULL OR NOT EXISTS \
                 (SELECT 1 FROM apply_results x WHERE x.run_id = r.id)) \
                 ORDER BY r.id DESC, a.position LIMIT $3",
            )
            .bind(node)
            .bind(&id)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("read a resource's apply runs")?;
            let mut items: Vec<ResourceRun> = Vec::with_capacity(rows.len());
            for row in rows {
                let run_id: i64 = row.try_get("id").ctx("read an apply run")?;
                // A resource listed twice in one run keeps its first result.
                if items.last().is_some_and(|r| r.run.id == run_id) {
                    continue;
                }
                let status: Option<String> = row.try_get("status").ctx("read an apply run")?;
                let status = match status {
                    Some(s) => Some(
                        RunStatus::parse(&s)
                            .ok_or_else(|| corrupt(run_id, format!("unknown status `{s}`")))?,
                    ),
                    None => None,
                };
                let outcome: Option<String> = row.try_get("outcome").ctx("read apply results")?;
                let result = match outcome {
                    None => None,
                    Some(outcome) => {
                        let action: Option<String> =
                            row.try_get("action").ctx("read apply results")?;
                        let duration: i64 =
                            row.try_get("duration_ms").ctx("read apply results")?;
                        Some(ResourceResult {
                            resource: resource.clone(),
                            action: action
                                .as_deref()
                                .map(|a| parse_action(run_id, a))
                                .transpose()?,
                            outcome: Outcome::parse(&outcome).ok_or_else(|| {
                                corrupt(run_id, format!("unknown outcome `{outcome}`"))
                            })?,
                            reason: row.try_get("reason").ctx("read apply results")?,
                            duration_ms: u64::try_from(duration).unwrap_or(0),
                        })
                    }
                };
                items.push(ResourceRun {
                    run: RunSummary {
                        id: run_id,
                        commit: row.try_get("commit_sha").ctx("read an apply run")?,
                        plan_digest: row.try_get("plan_digest").ctx("read an apply run")?,
                        started_at: row
                            .try_get::<DateTime<Utc>, _>("started_at")
                            .ctx("read an apply run")?,
                        finished_at: row
                            .try_get::<Option<DateTime<Utc>>, _>("finished_at")
                            .ctx("read an apply run")?,
                        status,
                        message: row.try_get("message").ctx("read an apply run")?,
                    },
                    result,
                    approved_by: row.try_get("approved_by").ctx("read an apply run")?,
                });
            }
            let more = items.len() > limit as usize;
            items.truncate(limit as usize);
            Ok(Newest { items, more })
        })
    }
}
