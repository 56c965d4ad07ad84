//! The `/api/v1` handlers: read the store (and the engine's live view), answer `dto::v1`.
//! Each is documented with `#[utoipa::path]`; `api::router` registers route and document
//! together.

use super::dto::v1::{
    Approval, AuditBreak, AuditEntry, AuditList, AuditVerification, Commit, CommitList,
    CommitSummary, DriftEvent, DriftList, DriftProperty, ErrorBody, Fleet, NodeDetail, NodeList,
    NodeState, NodeSummary, PlanList, ResourceResult, Run, RunList, RunSummary, StateCounts,
};
use super::error::ApiError;
use super::query::Params;
use super::state::ApiState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use store::{AuditVerdict, BreakKind, NodeFilter};

/// Drift events shown with a node.
const RECENT_DRIFT: u32 = 20;

#[utoipa::path(
    get, path = "/fleet", tag = "fleet",
    description = "Node counts by state, the current and latest commits, connected agents.",
    responses(
        (status = 200, body = Fleet),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn fleet(State(st): State<ApiState>) -> Result<Json<Fleet>, ApiError> {
    let counts = st.store.node_state_counts().await?;
    let count = |s: store::NodeState| counts.get(&s).copied().unwrap_or(0);
    let states = StateCounts {
        unknown: count(store::NodeState::Unknown),
        failed: count(store::NodeState::Failed),
        stale: count(store::NodeState::Stale),
        drifted: count(store::NodeState::Drifted),
        pending: count(store::NodeState::Pending),
        converged: count(store::NodeState::Converged),
    };
    let current_commit = match st.live.current_commit() {
        Some(sha) => st.store.commit(&sha).await?.map(commit_summary),
        None => None,
    };
    let latest_commit = st
        .store
        .list_commits(None, 1)
        .await?
        .items
        .into_iter()
        .next()
        .map(commit_summary);
    Ok(Json(Fleet {
        nodes: counts.values().sum(),
        states,
        current_commit,
        latest_commit,
        connected_agents: st.live.connected().len() as u64,
        queue_depth: st.live.queue_depth() as u64,
    }))
}

#[utoipa::path(
    get, path = "/nodes", tag = "nodes",
    description = "Nodes in name order, filtered by labels and state, in pages.",
    params(
        ("label" = Option<Vec<String>>, Query, explode = true,
         description = "`key=value`; repeatable, every one must match"),
        ("state" = Option<NodeState>, Query, description = "only nodes in this state"),
        ("after" = Option<String>, Query, description = "the previous page's `next`"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = NodeList),
        (status = 400, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn list_nodes(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NodeList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["label", "state", "after", "limit"])?;
    let mut filter = NodeFilter::default();
    for pair in params.all("label") {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ApiError::bad_param("label", format!("`{pair}` is not key=value")))?;
        if let Some(old) = filter.labels.insert(key.to_owned(), value.to_owned())
            && old != value
        {
            return Err(ApiError::bad_param(
                "label",
                format!("`{key}` given twice with different values"),
            ));
        }
    }
    let state = params
        .one("state")?
        .map(|s| {
            store::NodeState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = store::NodeState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_param("state", format!("`{s}` is not one of {}", all.join(", ")))
            })
        })
        .transpose()?;
    let page = st
        .store
        .list_node_status(&filter, state, params.one("after")?, params.limit()?)
        .await?;
    Ok(Json(NodeList {
        items: page.items.into_iter().map(node_summary).collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/nodes/{name}", tag = "nodes",
    description = "One node: labels, facts, observed state, state, latest run with results, \
                   recent drift, approved plan digest.",
    params(("name" = String, Path, description = "node name")),
    responses(
        (status = 200, body = NodeDetail),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn get_node(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<NodeDetail>, ApiError> {
    let status = st
        .store
        .node_status(&name)
        .await?
        .ok_or_else(|| no_node(&name))?;
    let facts = status.node.facts.clone().unwrap_or_default();
    let observed = st
        .store
        .observed(&name)
        .await?
        .map(|o| serde_json::to_value(&o.state))
        .transpose()
        .map_err(|e| {
            ApiError::Store(store::StoreError::Encode {
                what: "observed state",
                source: e,
            })
        })?;
    let latest_run = st
        .store
        .apply_runs_for(&name, 1)
        .await?
        .into_iter()
        .next()
        .map(run);
    let recent_drift = st
        .store
        .recent_drift(&name, RECENT_DRIFT)
        .await?
        .into_iter()
        .map(drift_event)
        .collect();
    Ok(Json(NodeDetail {
        summary: node_summary(status),
        facts,
        observed,
        latest_run,
        recent_drift,
    }))
}

#[utoipa::path(
    get, path = "/nodes/{name}/runs", tag = "nodes",
    description = "A node's apply runs with their results, newest first, in pages.",
    params(
        ("name" = String, Path, description = "node name"),
        ("before" = Option<i64>, Query, description = "the previous page's `next` (a run id)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = RunList),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn node_runs(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RunList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["before", "limit"])?;
    let (before, limit) = (params.int("before")?, params.limit()?);
    st.store.node(&name).await?.ok_or_else(|| no_node(&name))?;
    let page = st.store.apply_runs_page(&name, before, limit).await?;
    Ok(Json(RunList {
        items: page.items.into_iter().map(run).collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/nodes/{name}/drift", tag = "nodes",
    description = "A node's drift events, oldest first, in pages.",
    params(
        ("name" = String, Path, description = "node name"),
        ("after" = Option<i64>, Query, description = "the previous page's `next`"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = DriftList),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn node_drift(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<DriftList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["after", "limit"])?;
    let (after, limit) = (params.int("after")?, params.limit()?);
    st.store.node(&name).await?.ok_or_else(|| no_node(&name))?;
    let page = st.store.list_drift(Some(&name), after, limit).await?;
    Ok(Json(DriftList {
        items: page.items.into_iter().map(drift_event).collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/commits", tag = "commits",
    description = "Compiled commits, newest first, in pages.",
    params(
        ("after" = Option<String>, Query, description = "the previous page's `next`"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = CommitList),
        (status = 400, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn list_commits(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CommitList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["after", "limit"])?;
    let page = st
        .store
        .list_commits(params.one("after")?, params.limit()?)
        .await?;
    Ok(Json(CommitList {
        items: page.items.into_iter().map(commit_summary).collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/commits/{sha}", tag = "commits",
    description = "One compiled commit with its diagnostics.",
    params(("sha" = String, Path, description = "commit id")),
    responses(
        (status = 200, body = Commit),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn get_commit(
    State(st): State<ApiState>,
    Path(sha): Path<String>,
) -> Result<Json<Commit>, ApiError> {
    let record = st
        .store
        .commit(&sha)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no compiled commit `{sha}`")))?;
    let diagnostics = record.diagnostics.clone();
    Ok(Json(Commit {
        summary: commit_summary(record),
        diagnostics,
    }))
}

#[utoipa::path(
    get, path = "/plans", tag = "commits",
    description = "The plan digest approved for each node at a commit, in node-name order.",
    params(
        ("commit" = String, Query, description = "commit id (required)"),
        ("after" = Option<String>, Query, description = "the previous page's `next`"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = PlanList),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn list_plans(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PlanList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["commit", "after", "limit"])?;
    let commit = params
        .one("commit")?
        .ok_or_else(|| ApiError::bad_param("commit", "required"))?;
    let (after, limit) = (params.one("after")?, params.limit()?);
    if st.store.commit(commit).await?.is_none() {
        return Err(ApiError::NotFound(format!("no compiled commit `{commit}`")));
    }
    let page = st.store.approvals_for_commit(commit, after, limit).await?;
    Ok(Json(PlanList {
        commit: commit.to_owned(),
        items: page.items.into_iter().map(approval).collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/runs/{id}", tag = "nodes",
    description = "One apply run with its per-resource results.",
    params(("id" = i64, Path, description = "run id")),
    responses(
        (status = 200, body = Run),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn get_run(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!("path parameter `id`: `{id}` is not a run id"))
    })?;
    let found = st
        .store
        .apply_run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no apply run {id}")))?;
    Ok(Json(run(found)))
}

#[utoipa::path(
    get, path = "/audit", tag = "audit",
    description = "Audit entries in sequence order, in pages.",
    params(
        ("after" = Option<i64>, Query, description = "the previous page's `next` (a seq)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = AuditList),
        (status = 400, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn list_audit(
    State(st): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["after", "limit"])?;
    let page = st
        .store
        .audit_list(params.int("after")?, params.limit()?)
        .await?;
    Ok(Json(AuditList {
        items: page
            .items
            .into_iter()
            .map(|e| AuditEntry {
                seq: e.seq,
                at: e.at,
                actor: e.record.actor,
                action: e.record.action,
                target: e.record.target,
                commit: e.record.commit,
                outcome: e.record.outcome,
                details: e.record.details,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect(),
        next: page.next,
    }))
}

#[utoipa::path(
    get, path = "/audit/verify", tag = "audit",
    description = "Walks the whole hash chain; names the first altered, removed or reordered entry.",
    responses(
        (status = 200, body = AuditVerification),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn verify_audit(State(st): State<ApiState>) -> Result<Json<AuditVerification>, ApiError> {
    Ok(Json(match st.store.audit_verify().await? {
        AuditVerdict::Intact { entries, head } => AuditVerification {
            intact: true,
            entries: Some(entries),
            head: Some(head),
            broken: None,
        },
        AuditVerdict::Broken(b) => AuditVerification {
            intact: false,
            entries: None,
            head: None,
            broken: Some(AuditBreak {
                seq: b.seq,
                kind: match b.kind {
                    BreakKind::Altered => "altered",
                    BreakKind::Removed => "removed",
                    BreakKind::Reordered => "reordered",
                }
                .to_owned(),
                message: b.to_string(),
            }),
        },
    }))
}

fn no_node(name: &str) -> ApiError {
    ApiError::NotFound(format!("no node named `{name}`"))
}

fn count(diagnostics: &serde_json::Value, key: &str) -> u64 {
    diagnostics
        .get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

fn commit_summary(c: store::CommitRecord) -> CommitSummary {
    CommitSummary {
        errors: count(&c.diagnostics, "errors"),
        warnings: count(&c.diagnostics, "warnings"),
        sha: c.sha,
        ok: c.ok,
        compiled_at: c.compiled_at,
    }
}

fn approval(a: store::Approval) -> Approval {
    Approval {
        node: a.node,
        commit: a.commit,
        digest: a.digest,
        approved_by: a.approved_by,
        approved_at: a.approved_at,
    }
}

fn node_summary(s: store::NodeStatus) -> NodeSummary {
    NodeSummary {
        name: s.node.name,
        labels: s.node.labels,
        state: s.state.into(),
        in_inventory: s.node.in_inventory,
        reported_at: s.node.reported_at,
        last_run: s.last_run.map(|r| RunSummary {
            id: r.id,
            commit: r.commit,
            plan_digest: r.plan_digest,
            started_at: r.started_at,
            finished_at: r.finished_at,
            status: r.status.map(|s| s.as_str().to_owned()),
            message: r.message,
        }),
        applied_commit: s.applied_commit,
        drift_since_applied: s.drift_since_applied,
        approval: s.approval.map(approval),
    }
}

fn run(r: store::ApplyRun) -> Run {
    Run {
        id: r.id,
        node: r.node,
        commit: r.commit,
        plan_digest: r.plan_digest,
        started_at: r.started_at,
        finished_at: r.finished_at,
        status: r.status.map(|s| s.as_str().to_owned()),
        message: r.message,
        results: r
            .results
            .into_iter()
            .map(|x| ResourceResult {
                resource: x.resource.to_string(),
                action: x.action.map(|a| a.as_str().to_owned()),
                outcome: x.outcome.as_str().to_owned(),
                reason: x.reason,
                duration_ms: x.duration_ms,
            })
            .collect(),
    }
}

fn drift_event(e: store::DriftEvent) -> DriftEvent {
    DriftEvent {
        id: e.id,
        node: e.node,
        commit: e.commit,
        resource: e.resource.to_string(),
        action: e.change.action.as_str().to_owned(),
        properties: e
            .change
            .properties
            .into_iter()
            .map(|p| DriftProperty {
                name: p.name,
                before: p.before,
                after: p.after,
            })
            .collect(),
        diff: e.change.diff,
        detected_at: e.detected_at,
    }
}
