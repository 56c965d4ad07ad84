//! The typed records the store takes and returns.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use state::{Action, ObservedState, ResourceId};
use std::collections::BTreeMap;

/// The most rows one list call returns; larger limits are lowered to this.
pub const MAX_PAGE: u32 = 1000;

/// A node as the fleet repository declares it (or as its agent announced it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUpsert {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Declared in the inventory at the latest commit (false: known only from its agent, or
    /// it left the inventory).
    pub in_inventory: bool,
}

/// A stored node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub in_inventory: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the last observed state arrived; `None` if the agent never reported.
    pub reported_at: Option<DateTime<Utc>>,
    /// Host facts from the last observation.
    pub facts: Option<BTreeMap<String, Json>>,
}

/// Which nodes `list_nodes` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Every pair must match (equality selector).
    pub labels: BTreeMap<String, String>,
    /// Only nodes in (true) or out of (false) the inventory.
    pub in_inventory: Option<bool>,
}

/// One page of a listing and the cursor of the next (`None` on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// A node's last observed state with its arrival time.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRecord {
    /// Sensitive file content redacted; `node`, `observed_at` and `facts` filled in.
    pub state: ObservedState,
    pub reported_at: DateTime<Utc>,
}

/// One compiled commit.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitRecord {
    pub sha: String,
    /// Compiled without errors.
    pub ok: bool,
    /// The diagnostics, as the JSON the `validate` command prints.
    pub diagnostics: Json,
    pub compiled_at: DateTime<Utc>,
}

/// What `set_desired` stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DesiredSummary {
    pub nodes: usize,
    /// Documents not stored before (the rest were identical to stored ones).
    pub new_blobs: usize,
}

/// An approved plan: the digest an agent must re-derive before applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub node: String,
    pub commit: String,
    pub digest: String,
    pub approved_by: String,
    pub approved_at: DateTime<Utc>,
}

/// How an apply run ended: the agent's `ApplyStatus`.
pub use state::ApplyStatus as RunStatus;
/// What happened to one resource in an apply: the agent's `Outcome`.
pub use state::Outcome;

/// One resource's result in an apply run, in apply order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceResult {
    pub resource: ResourceId,
    /// The planned action; `None` when the resource was already in sync.
    pub action: Option<Action>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub duration_ms: u64,
}

/// An apply run: started when the reconciler dispatches, finished with the agent's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRun {
    pub id: i64,
    pub node: String,
    pub commit: String,
    pub plan_digest: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
    pub message: Option<String>,
    pub results: Vec<ResourceResult>,
}

/// A resource found diverged from its desired state without a change of intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftEvent {
    pub id: i64,
    pub node: String,
    /// The commit whose desired state the node diverged from.
    pub commit: Option<String>,
    pub resource: ResourceId,
    /// The planned change that would restore the desired state (sensitive values as digests).
    pub change: state::Change,
    pub detected_at: DateTime<Utc>,
}

/// An action to record in the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Who acted: a user, a token's name, `reconciler`, `agent:<node>`.
    pub actor: String,
    /// What was done, e.g. `plan.approve`, `apply.start`, `node.enroll`.
    pub action: String,
    /// What it was done to, e.g. a node name or `fleet`.
    pub target: String,
    pub commit: Option<String>,
    /// `ok`, `denied`, `failed`...
    pub outcome: String,
    /// Anything else worth keeping. Never put secrets here: the log is kept forever.
    pub details: Json,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// 1, 2, 3... without gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub record: AuditRecord,
    /// The previous entry's hash (a fixed all-zero digest for the first entry).
    pub prev_hash: String,
    /// `sha256:` over the previous hash and this entry's canonical content.
    pub hash: String,
}

/// A node's state, derived from what the store holds, in order of precedence: the first that
/// applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeState {
    /// The agent never reported.
    Unknown,
    /// The last finished apply run failed.
    Failed,
    /// The last finished apply run was stale (the agent derived another plan digest).
    Stale,
    /// Drift events arrived after the last successful run (or there was none).
    Drifted,
    /// The approval in force is for a commit newer than the one last applied.
    Pending,
    /// None of the above.
    Converged,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Unknown,
        NodeState::Failed,
        NodeState::Stale,
        NodeState::Drifted,
        NodeState::Pending,
        NodeState::Converged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Failed => "failed",
            NodeState::Stale => "stale",
            NodeState::Drifted => "drifted",
            NodeState::Pending => "pending",
            NodeState::Converged => "converged",
        }
    }

    pub fn parse(s: &str) -> Option<NodeState> {
        NodeState::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// An apply run without its per-resource results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub id: i64,
    pub commit: String,
    pub plan_digest: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: Option<RunStatus>,
    pub message: Option<String>,
}

/// A node with its derived state and what the state was derived from.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub node: Node,
    pub state: NodeState,
    /// The newest finished apply run.
    pub last_run: Option<RunSummary>,
    /// The commit of the newest successful (`applied`) run.
    pub applied_commit: Option<String>,
    /// Drift events since the newest successful run (all of them if there was none).
    pub drift_since_applied: i64,
    /// The approval in force (the node's newest).
    pub approval: Option<Approval>,
}

/// Newest-first rows up to a limit, and whether older ones exist beyond them.
#[derive(Debug, Clone, PartialEq)]
pub struct Newest<T> {
    pub items: Vec<T>,
    /// Older rows exist that were not returned.
    pub more: bool,
}

/// One resource as a node's desired state had it at one compiled commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceVersion {
    pub commit: String,
    pub compiled_at: DateTime<Utc>,
    /// The resource as desired (redacted: sensitive content as its digest only); `None` when
    /// the node's desired state at that commit did not have it.
    pub resource: Option<std::sync::Arc<state::DesiredResource>>,
}

/// An apply run of a node with its result for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRun {
    pub run: RunSummary,
    /// The run's result for the resource; `None` when the run has no per-resource results
    /// at all (still running, stale, or failed before applying anything).
    pub result: Option<ResourceResult>,
    /// Who approved the plan the run applied (the newest matching approval), if recorded.
    pub approved_by: Option<String>,
}
