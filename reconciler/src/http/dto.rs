//! The API's JSON documents. They are a boundary: versioned with the path (`/api/v1` serves
//! `v1`), separate from the store's records, and the source of the OpenAPI schemas. A change
//! that removes or retypes a field needs a `v2`.

pub mod v1 {
    //! Version 1 of the API's documents.

    use chrono::{DateTime, Utc};
    use serde::Serialize;
    use serde_json::Value as Json;
    use std::collections::BTreeMap;
    use utoipa::ToSchema;

    /// The error body of every non-2xx JSON response.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct ErrorBody {
        pub error: ErrorDetail,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct ErrorDetail {
        /// Stable: `not_found`, `bad_request`, `unauthorized`, `forbidden`, `internal`
        /// (also `not_ready` from `/readyz`).
        pub code: String,
        /// For humans; may change.
        pub message: String,
    }

    /// A node's state, derived from its runs, drift and approvals (first match wins).
    #[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
    #[serde(rename_all = "snake_case")]
    pub enum NodeState {
        Unknown,
        Failed,
        Stale,
        Drifted,
        Pending,
        Converged,
    }

    impl From<store::NodeState> for NodeState {
        fn from(state: store::NodeState) -> NodeState {
            match state {
                store::NodeState::Unknown => NodeState::Unknown,
                store::NodeState::Failed => NodeState::Failed,
                store::NodeState::Stale => NodeState::Stale,
                store::NodeState::Drifted => NodeState::Drifted,
                store::NodeState::Pending => NodeState::Pending,
                store::NodeState::Converged => NodeState::Converged,
            }
        }
    }

    /// Nodes per state.
    #[derive(Debug, Default, Serialize, ToSchema)]
    pub struct StateCounts {
        pub unknown: u64,
        pub failed: u64,
        pub stale: u64,
        pub drifted: u64,
        pub pending: u64,
        pub converged: u64,
    }

    /// `GET /api/v1/fleet`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Fleet {
        pub nodes: u64,
        pub states: StateCounts,
        /// The commit the engine works towards (none without a running engine).
        pub current_commit: Option<CommitSummary>,
        /// The most recently compiled commit in the store.
        pub latest_commit: Option<CommitSummary>,
        pub connected_agents: u64,
        pub queue_depth: u64,
    }

    /// A compiled commit without its diagnostics.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct CommitSummary {
        pub sha: String,
        /// Compiled without errors.
        pub ok: bool,
        pub errors: u64,
        pub warnings: u64,
        pub compiled_at: DateTime<Utc>,
    }

    /// `GET /api/v1/commits/{sha}`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Commit {
        #[serde(flatten)]
        pub summary: CommitSummary,
        /// The diagnostics as `centossrv validate --format json` prints them.
        pub diagnostics: Json,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct CommitList {
        pub items: Vec<CommitSummary>,
        /// Pass as `after` for the next page; absent on the last page.
        pub next: Option<String>,
    }

    /// The apply run a state was derived from, without per-resource results.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct RunSummary {
        pub id: i64,
        pub commit: String,
        pub plan_digest: String,
        pub started_at: DateTime<Utc>,
        pub finished_at: Option<DateTime<Utc>>,
        /// `applied`, `failed` or `stale`; absent while the run is in progress.
        pub status: Option<String>,
        pub message: Option<String>,
    }

    /// An approved plan digest.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Approval {
        pub node: String,
        pub commit: String,
        pub digest: String,
        pub approved_by: String,
        pub approved_at: DateTime<Utc>,
    }

    /// A node in a listing.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct NodeSummary {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub state: NodeState,
        pub in_inventory: bool,
        pub reported_at: Option<DateTime<Utc>>,
        /// The newest finished apply run.
        pub last_run: Option<RunSummary>,
        /// The commit of the newest successful run.
        pub applied_commit: Option<String>,
        /// Drift events since the newest successful run.
        pub drift_since_applied: i64,
        /// The approval in force.
        pub approval: Option<Approval>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct NodeList {
        pub items: Vec<NodeSummary>,
        /// Pass as `after` for the next page; absent on the last page.
        pub next: Option<String>,
    }

    /// `GET /api/v1/nodes/{name}`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct NodeDetail {
        #[serde(flatten)]
        pub summary: NodeSummary,
        /// Host facts from the last observation.
        pub facts: BTreeMap<String, Json>,
        /// The last observed state (sensitive content redacted), as the agent reported it.
        #[schema(value_type = Option<Object>)]
        pub observed: Option<Json>,
        /// The newest apply run (finished or not) with its per-resource results.
        pub latest_run: Option<Run>,
        /// The newest drift events, newest first.
        pub recent_drift: Vec<DriftEvent>,
    }

    /// One resource's result in an apply run.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct ResourceResult {
        /// `kind:name`, e.g. `file:/etc/motd`.
        pub resource: String,
        /// The planned action; absent when the resource was in sync.
        pub action: Option<String>,
        /// `unchanged`, `changed`, `failed` or `skipped`.
        pub outcome: String,
        pub reason: Option<String>,
        pub duration_ms: u64,
    }

    /// An apply run with its per-resource results in apply order.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Run {
        pub id: i64,
        pub node: String,
        pub commit: String,
        pub plan_digest: String,
        pub started_at: DateTime<Utc>,
        pub finished_at: Option<DateTime<Utc>>,
        pub status: Option<String>,
        pub message: Option<String>,
        pub results: Vec<ResourceResult>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct RunList {
        /// Newest first.
        pub items: Vec<Run>,
        /// Pass as `before` for the next (older) page; absent on the last page.
        pub next: Option<i64>,
    }

    /// One property of a drifted resource.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct DriftProperty {
        pub name: String,
        /// What is (sensitive values as digests).
        pub before: Option<String>,
        /// What should be.
        pub after: Option<String>,
    }

    /// A resource found diverged from its desired state.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct DriftEvent {
        pub id: i64,
        pub node: String,
        pub commit: Option<String>,
        pub resource: String,
        /// The action that restores the desired state.
        pub action: String,
        pub properties: Vec<DriftProperty>,
        pub diff: Option<String>,
        pub detected_at: DateTime<Utc>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct DriftList {
        /// Oldest first.
        pub items: Vec<DriftEvent>,
        /// Pass as `after` for the next page; absent on the last page.
        pub next: Option<i64>,
    }

    /// `GET /api/v1/plans?commit=SHA`: the digest approved for each node at a commit.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct PlanList {
        pub commit: String,
        pub items: Vec<Approval>,
        pub next: Option<String>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct AuditEntry {
        pub seq: i64,
        pub at: DateTime<Utc>,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub commit: Option<String>,
        pub outcome: String,
        pub details: Json,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct AuditList {
        pub items: Vec<AuditEntry>,
        /// Pass as `after` for the next page; absent on the last page.
        pub next: Option<i64>,
    }

    /// `GET /api/v1/audit/verify`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct AuditVerification {
        pub intact: bool,
        /// Entries checked (when intact).
        pub entries: Option<i64>,
        /// The head hash (when intact).
        pub head: Option<String>,
        /// The first break (when not intact).
        pub broken: Option<AuditBreak>,
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct AuditBreak {
        pub seq: i64,
        /// `altered`, `removed` or `reordered`.
        pub kind: String,
        pub message: String,
    }

    /// `GET /healthz`, `GET /readyz` when ready.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Health {
        pub status: String,
    }
}
