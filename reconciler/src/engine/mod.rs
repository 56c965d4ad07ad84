//! The reconciler service's one loop: a closed [`Event`] in, level-triggered decisions out.
//!
//! The engine owns the in-memory view of every node ([`decide::NodeView`]) and the compiled
//! current commit. Every event updates facts (what the agent said, what Git holds) and then
//! asks [`decide::decide`] what to do about the nodes it touched; a periodic tick asks about
//! every node. Start-up is the same path from an empty view: nothing is assumed about a node
//! until its agent has answered an `Observe`.

pub mod commit_source;
pub mod decide;
pub mod event;
pub mod live;

pub use commit_source::CommitSource;
pub use event::{ConnId, Event};
pub use live::{Live, LiveState};

use crate::metrics::Metrics;
use decide::{Decision, InFlight, NodeView, Target};
use model::manifest::{DriftMode, StaleApply};
use state::wire::{AgentMessage, DriftReport, PROTOCOL_VERSION, ServerMessage};
use state::{ApplyReport, ApplyStatus, Cause, Change, ObservedState, PropertyChange};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{AuditRecord, CommitRecord, NodeFilter, NodeUpsert, ResourceResult, Store};
use tokio::sync::mpsc;

/// Timings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often every node is re-examined even without events.
    pub tick: Duration,
    /// An `Observe` not answered within this is forgotten (and asked again).
    pub observe_timeout: Duration,
    /// An `Apply` not answered within this is recorded as failed.
    pub apply_timeout: Duration,
    /// How long a failed apply of a commit waits before it is tried again.
    pub retry_after: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tick: Duration::from_secs(10),
            observe_timeout: Duration::from_secs(60),
            apply_timeout: Duration::from_secs(15 * 60),
            retry_after: Duration::from_secs(5 * 60),
        }
    }
}

/// The commit in force: the last one that compiled.
#[derive(Debug)]
struct Current {
    commit: String,
    model: Arc<model::Model>,
}

/// One node's engine-side bookkeeping beyond what [`decide`] reads.
#[derive(Debug, Default)]
struct Node {
    view: NodeView,
    conn: Option<(ConnId, mpsc::Sender<ServerMessage>)>,
    /// The commit whose desired state the agent caches (from hello and applies).
    agent_commit: Option<String>,
    facts: BTreeMap<String, serde_json::Value>,
    /// Digest of the drift last recorded from a heartbeat, to record each divergence once.
    last_drift: Option<String>,
}

/// The reconciler's engine.
pub struct Engine {
    store: Store,
    source: Arc<dyn CommitSource>,
    config: EngineConfig,
    live: Live,
    current: Option<Current>,
    /// The last head read from the source, compiled or not.
    last_head: Option<String>,
    nodes: HashMap<String, Node>,
    next_request: u64,
    metrics: Metrics,
    /// Audit records of actions taken, appended in one transaction when the event queue
    /// runs dry (or the batch is full): one commit for a burst of agent reports.
    pending_audit: Vec<AuditRecord>,
    /// Nodes under an operator's break-glass hold: observed, never applied to.
    holds: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("current", &self.current.as_ref().map(|c| &c.commit))
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

const ACTOR: &str = "reconciler";

/// Audit records appended per transaction at most.
const AUDIT_BATCH: usize = 512;

impl Engine {
    pub fn new(store: Store, source: Arc<dyn CommitSource>, config: EngineConfig) -> Engine {
        Engine {
            store,
            source,
            config,
            live: Live::default(),
            current: None,
            last_head: None,
            nodes: HashMap::new(),
            next_request: 1,
            metrics: Metrics::new(),
            pending_audit: Vec::new(),
            holds: std::collections::HashSet::new(),
        }
    }

    /// Records into `metrics` (plan and apply durations, commits, drift, queue, agents).
    pub fn with_metrics(mut self, metrics: Metrics) -> Engine {
        self.metrics = metrics;
        self
    }

    /// What the API and the status page may read while the engine runs.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// Runs until every sender of `events` is dropped. Starts by reading the source: the
    /// same path as a new commit, from an empty view.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) {
        self.load_holds().await;
        self.source_changed().await;
        self.live.update(|l| l.ready = true);
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let event = tokio::select! {
                event = events.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = tick.tick() => Event::Tick,
            };
            let depth = events.len();
            self.live.update(|l| l.queue_depth = depth);
            self.metrics.set_queue_depth(depth);
            self.handle(event).await;
            if events.is_empty() || self.pending_audit.len() >= AUDIT_BATCH {
                self.flush_audit().await;
            }
        }
        self.flush_audit().await;
        tracing::info!("engine stopped: every event sender is gone");
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::SourceChanged => self.source_changed().await,
            Event::AgentConnected { node, conn, tx } => {
                let entry = self.nodes.entry(node.clone()).or_default();
                // A new connection: what was asked on an older one will not be answered,
                // and what the agent did meanwhile is unknown until it is observed again.
                entry.conn = Some((conn, tx));
                entry.view = NodeView {
                    connected: true,
                    held: entry.view.held.take(),
                    failed: entry.view.failed.take(),
                    ..NodeView::default()
                };
                self.publish_connected();
                self.reconcile(&node).await;
            }
            Event::AgentDisconnected { node, conn } => {
                if let Some(entry) = self.nodes.get_mut(&node)
                    && entry.conn.as_ref().is_some_and(|(c, _)| *c == conn)
                {
                    entry.conn = None;
                    entry.view.connected = false;
                    if let Some(InFlight::Apply { run, .. }) = entry.view.in_flight.take() {
                        self.fail_run(run, "the agent disconnected before reporting")
                            .await;
                    }
                    self.publish_connected();
                }
            }
            Event::AgentMessage {
                node,
                conn,
                message,
            } => {
                let current_conn = self
                    .nodes
                    .get(&node)
                    .and_then(|n| n.conn.as_ref())
                    .is_some_and(|(c, _)| *c == conn);
                if !current_conn {
                    tracing::debug!(%node, conn, "frame from a replaced connection ignored");
                    return;
                }
                self.agent_message(&node, message).await;
                self.reconcile(&node).await;
            }
            Event::HoldChanged { node } => {
                self.load_holds().await;
                self.reconcile(&node).await;
            }
            Event::Release { node, actor } => {
                let released = self.nodes.get_mut(&node).and_then(|n| n.view.held.take());
                self.pending_audit.push(AuditRecord {
                    actor,
                    action: "apply.release".into(),
                    target: node.clone(),
                    commit: released.clone(),
                    outcome: if released.is_some() {
                        "ok"
                    } else {
                        "nothing held"
                    }
                    .into(),
                    details: serde_json::json!({}),
                });
                self.reconcile(&node).await;
            }
            Event::Tick => {
                self.expire_requests().await;
                let names: Vec<String> = self.nodes.keys().cloned().collect();
                for name in names {
                    self.reconcile(&name).await;
                }
            }
        }
    }

    /// Replaces the role bindings declared in Git with those of `commit`'s `access.yaml`
    /// (none without the file). Only a commit that compiled gets here, so a file with
    /// problems never changes the bindings: its diagnostics failed the commit.
    async fn apply_access_bindings(&mut self, commit: &str, bindings: &[model::access::Binding]) {
        let list: Vec<(String, String)> = bindings
            .iter()
            .map(|b| (b.subject.clone(), b.role.clone()))
            .collect();
        if let Err(e) = self.store.replace_role_bindings("git", &list).await {
            tracing::error!(error = %e, "cannot store the role bindings of access.yaml");
            return;
        }
        self.audit(
            "access.bindings",
            "fleet",
            Some(commit),
            "ok",
            serde_json::json!({ "bindings": list.len() }),
        );
    }

    /// Reads the operators' holds from the store (the store is their source of truth; a
    /// failed read keeps the holds known before, never drops them).
    async fn load_holds(&mut self) {
        match self.store.holds().await {
            Ok(holds) => self.holds = holds.into_iter().map(|h| h.node).collect(),
            Err(e) => tracing::error!(error = %e, "cannot read holds; the holds known before stay"),
        }
    }

    fn publish_connected(&self) {
        let connected = self
            .nodes
            .iter()
            .filter(|(_, n)| n.conn.is_some())
            .map(|(name, _)| name.clone())
            .collect::<std::collections::BTreeSet<_>>();
        self.metrics.set_connected_agents(connected.len());
        self.live.update(|l| l.connected = connected);
    }

    /// Reads the tracked head; compiles and stores it if it is new; reconciles everyone.
    async fn source_changed(&mut self) {
        let source = Arc::clone(&self.source);
        let head = match tokio::task::spawn_blocking(move || source.head()).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the tracked branch; the current commit stays in force");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the tracked branch panicked");
                return;
            }
        };
        let Some(head) = head else {
            tracing::info!("the tracked branch does not exist yet");
            return;
        };
        if self.last_head.as_deref() != Some(head.as_str()) {
            self.last_head = Some(head.clone());
            if let Err(e) = self.compile(&head).await {
                tracing::error!(commit = %head, error = %e, "commit not taken into force");
            }
        }
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in names {
            self.reconcile(&name).await;
        }
    }

    /// Compiles `commit`, records it with its diagnostics, and, when it compiles, stores
    /// the inventory and every node's desired state and puts it in force.
    async fn compile(&mut self, commit: &str) -> anyhow::Result<()> {
        let source = Arc::clone(&self.source);
        let sha = commit.to_owned();
        let compiled = tokio::task::spawn_blocking(move || {
            source
                .snapshot(&sha)
                .map(|snapshot| model::compile(&snapshot))
        })
        .await?
        .map_err(|e| anyhow::anyhow!(e))?;
        let ok = !compiled.has_errors();
        let diagnostics: serde_json::Value =
            serde_json::from_str(&crate::diagnostics_output::json(&compiled))?;
        self.store
            .record_commit(&CommitRecord {
                sha: commit.to_owned(),
                ok,
                diagnostics,
                compiled_at: chrono::Utc::now(),
            })
            .await?;
        self.metrics.commit_compiled(ok);
        let (errors, _) = crate::diagnostics_output::summary(&compiled.diagnostics);
        self.audit(
            "commit.compile",
            "fleet",
            Some(commit),
            if ok { "ok" } else { "failed" },
            serde_json::json!({ "errors": errors, "nodes": compiled.model.nodes.len() }),
        );
        self.flush_audit().await;
        if !ok {
            tracing::warn!(%commit, errors, "commit does not compile: never dispatched; the last good commit stays in force");
            return Ok(());
        }
        let model = compiled.model;
        self.apply_access_bindings(commit, &model.access).await;
        let mut inventory: Vec<NodeUpsert> = model
            .nodes
            .values()
            .map(|n| NodeUpsert {
                name: n.name.clone(),
                labels: n.labels.clone(),
                in_inventory: true,
            })
            .collect();
        // Nodes that left the inventory stay known (history) but are no longer managed.
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_nodes(
                    &NodeFilter {
                        in_inventory: Some(true),
                        ..NodeFilter::default()
                    },
                    after.as_deref(),
                    store::MAX_PAGE,
                )
                .await?;
            for node in page.items {
                if !model.nodes.contains_key(&node.name) {
                    inventory.push(NodeUpsert {
                        name: node.name,
                        labels: node.labels,
                        in_inventory: false,
                    });
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.store.upsert_nodes(&inventory).await?;
        let states: Vec<state::DesiredState> = model.desired().map(|(_, d)| d.clone()).collect();
        self.store.set_desired(commit, &states).await?;
        for name in model.nodes.keys() {
            self.nodes.entry(name.clone()).or_default();
        }
        tracing::info!(%commit, nodes = model.nodes.len(), "commit in force");
        self.current = Some(Current {
            commit: commit.to_owned(),
            model: Arc::new(model),
        });
        self.live.update(|l| l.commit = Some(commit.to_owned()));
        Ok(())
    }

    fn fleet_settings(&self) -> (DriftMode, StaleApply) {
        match &self.current {
            Some(c) => (c.model.fleet.drift_mode, c.model.fleet.stale_apply),
            None => (DriftMode::default(), StaleApply::default()),
        }
    }

    async fn agent_message(&mut self, node: &str, message: AgentMessage) {
        match message {
            AgentMessage::Hello { cached_commit, .. } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.agent_commit = cached_commit;
                }
            }
            AgentMessage::Heartbeat {
                facts, observed, ..
            } => self.heartbeat(node, facts, observed).await,
            AgentMessage::Observed {
                request, observed, ..
            } => {
                let Some(n) = self.nodes.get_mut(node) else {
                    return;
                };
                match n.view.in_flight.take() {
                    Some(InFlight::Observe {
                        request: asked,
                        commit,
                        ..
                    }) if asked == request => {
                        // Stored when it turns out converged; an apply's report
                        // carries a newer observation otherwise.
                        n.view.observed = Some((commit, observed));
                    }
                    other => {
                        n.view.in_flight = other;
                        tracing::debug!(%node, request, "answer to a request not in flight ignored");
                    }
                }
            }
            AgentMessage::Applied {
                request, report, ..
            } => {
                self.applied(node, request, *report).await;
            }
            AgentMessage::Drift { events, .. } => self.drift_reported(node, events).await,
            AgentMessage::Error {
                request, message, ..
            } => {
                tracing::warn!(%node, %message, "agent could not handle a request");
                let Some(n) = self.nodes.get_mut(node) else {
                    return;
                };
                if request.is_some() && n.view.in_flight.as_ref().map(InFlight::request) == request
                {
                    let commit = match n.view.in_flight.take() {
                        Some(InFlight::Apply { run, commit, .. }) => {
                            self.fail_run(run, &message).await;
                            commit
                        }
                        Some(InFlight::Observe { commit, .. }) => commit,
                        None => return,
                    };
                    if let Some(n) = self.nodes.get_mut(node) {
                        n.view.failed = Some((commit, Instant::now()));
                    }
                }
            }
        }
    }

    async fn heartbeat(
        &mut self,
        node: &str,
        facts: BTreeMap<String, serde_json::Value>,
        observed: Option<ObservedState>,
    ) {
        let current = self.current.as_ref().map(|c| c.commit.clone());
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        n.facts = facts;
        let Some(observed) = observed else {
            if let Err(e) = self.store.record_facts(node, &n.facts).await {
                tracing::error!(%node, error = %e, "cannot record facts");
            }
            return;
        };
        // Drift is judged only against the desired state the agent holds and the engine
        // has in force; an agent on an older commit is converging, not drifting.
        let desired = match (&self.current, &current) {
            (Some(c), Some(commit))
                if n.agent_commit.as_ref() == Some(commit)
                    && n.view.converged.as_ref() == Some(commit) =>
            {
                c.model.desired_for(node).cloned()
            }
            _ => None,
        };
        if let Some(desired) = desired {
            let plan = state::plan(Some(&desired), Some(&observed), Some(&desired));
            if plan.has_host_changes() {
                if n.last_drift.as_ref() != Some(&plan.digest) {
                    n.last_drift = Some(plan.digest.clone());
                    let changes: Vec<Change> = plan
                        .changes
                        .iter()
                        .filter(|c| c.action != state::Action::Unmanage)
                        .cloned()
                        .collect();
                    self.live.set_drift(node, Some(changes.clone()));
                    self.record_drift(node, current.as_deref(), &changes).await;
                    self.drifted(node);
                }
            } else {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.last_drift = None;
                }
                self.live.set_drift(node, None);
            }
        }
        self.record_observed(node, observed).await;
    }

    /// After drift: in enforce mode the node is observed and planned again, which applies
    /// the reverting plan; in report mode it is only recorded.
    fn drifted(&mut self, node: &str) {
        let (mode, _) = self.fleet_settings();
        if mode == DriftMode::Enforce
            && let Some(n) = self.nodes.get_mut(node)
        {
            n.view.converged = None;
            n.view.observed = None;
        }
    }

    async fn drift_reported(&mut self, node: &str, events: Vec<DriftReport>) {
        let commit = self.current.as_ref().map(|c| c.commit.clone());
        // A node that has not converged to the commit in force is not drifting from it:
        // what its watch sees is an apply that has not happened or has failed.
        let converged = self
            .nodes
            .get(node)
            .is_some_and(|n| commit.is_some() && n.view.converged == commit);
        if !converged {
            tracing::debug!(%node, events = events.len(), "drift report from a node not converged: not recorded");
            return;
        }
        let all_enforced = events.iter().all(|e| e.enforced);
        let changes: Vec<Change> = events
            .into_iter()
            .map(|e| Change {
                id: e.resource,
                action: state::Action::Update,
                cause: Cause::Drift,
                properties: vec![PropertyChange {
                    name: e.property,
                    before: e.before,
                    after: e.after,
                    cause: Cause::Drift,
                }],
                diff: None,
                destructive: false,
                sensitive: false,
                triggered_by: Vec::new(),
                unobserved: false,
            })
            .collect();
        // The published drift set follows observations only (the heartbeat's full plan):
        // a watch event says something changed, not whether the node still differs (an
        // edit undone by hand is reported as a change too).
        self.record_drift(node, commit.as_deref(), &changes).await;
        if !all_enforced {
            self.drifted(node);
        }
    }

    async fn record_drift(&mut self, node: &str, commit: Option<&str>, changes: &[Change]) {
        self.metrics.drift_events(changes.len() as u64);
        for change in changes {
            if let Err(e) = self.store.record_drift_event(node, commit, change).await {
                tracing::error!(%node, error = %e, "cannot record a drift event");
            }
        }
        tracing::info!(%node, events = changes.len(), "drift recorded");
    }

    async fn applied(&mut self, node: &str, request: Option<u64>, report: ApplyReport) {
        let (_, stale_mode) = self.fleet_settings();
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let answered = match (&n.view.in_flight, request) {
            (Some(InFlight::Apply { request: asked, .. }), Some(r)) if *asked == r => {
                n.view.in_flight.take()
            }
            _ => None,
        };
        let (run, commit) = match answered {
            Some(InFlight::Apply {
                run, commit, sent, ..
            }) => {
                self.metrics.observe_apply(sent.elapsed());
                (Some(run), commit)
            }
            _ => match &report.commit {
                // An apply the agent made on its own (offline enforcement): record it.
                Some(commit) => (None, commit.clone()),
                None => {
                    tracing::warn!(%node, "apply report without a commit ignored");
                    return;
                }
            },
        };
        let run = match run {
            Some(run) => Some(run),
            None => match self
                .store
                .start_apply_run(node, &commit, &report.plan_digest)
                .await
            {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(%node, %commit, error = %e, "cannot record an offline apply");
                    None
                }
            },
        };
        if let Some(run) = run {
            let results: Vec<ResourceResult> = report
                .resources
                .iter()
                .map(|r| ResourceResult {
                    resource: r.id.clone(),
                    action: r.action,
                    outcome: r.outcome,
                    reason: r.reason.clone(),
                    duration_ms: r.duration_ms,
                })
                .collect();
            let message = match report.status {
                ApplyStatus::Stale => Some(format!(
                    "stale: the node's plan is {} (approved {})",
                    report.plan_digest,
                    report.expected_digest.as_deref().unwrap_or("-")
                )),
                _ => None,
            };
            if let Err(e) = self
                .store
                .finish_apply_run(run, report.status, message.as_deref(), &results)
                .await
            {
                tracing::error!(%node, run, error = %e, "cannot record an apply run");
            }
        }
        let now = Instant::now();
        let observed = report.observed.clone();
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let current = self.current.as_ref().map(|c| c.commit.as_str());
        match report.status {
            ApplyStatus::Applied => {
                n.agent_commit = Some(commit.clone());
                n.view.failed = None;
                if current == Some(commit.as_str()) {
                    n.view.converged = Some(commit.clone());
                    // The apply brought every managed resource back to the desired state.
                    self.live.set_drift(node, None);
                }
                if let Some(o) = &observed {
                    n.view.observed = Some((commit.clone(), o.clone()));
                }
            }
            ApplyStatus::Failed => {
                n.agent_commit = Some(commit.clone());
                n.view.failed = Some((commit.clone(), now));
                n.view.observed = None;
            }
            ApplyStatus::Stale => {
                n.view.observed = None;
                if stale_mode == StaleApply::Hold && request.is_some() {
                    n.view.held = Some(commit.clone());
                }
            }
        }
        let held = report.status == ApplyStatus::Stale && stale_mode == StaleApply::Hold;
        self.audit(
            "apply.finish",
            node,
            Some(&commit),
            report.status.as_str(),
            serde_json::json!({
                "run": run,
                "plan_digest": report.plan_digest,
                "changed": report.totals.changed,
                "failed": report.totals.failed,
                "held": held,
            }),
        );
        if held {
            self.audit(
                "apply.hold",
                node,
                Some(&commit),
                "ok",
                serde_json::json!({ "reason": "the node changed since the plan was approved" }),
            );
        }
        if let Some(observed) = observed {
            self.record_observed(node, observed).await;
        }
    }

    async fn record_observed(&mut self, node: &str, mut observed: ObservedState) {
        if let Some(n) = self.nodes.get(node) {
            observed.facts = n.facts.clone();
        }
        observed.node = node.to_owned();
        if let Err(e) = self.store.record_observed(&observed).await {
            tracing::error!(%node, error = %e, "cannot record an observed state");
        }
    }

    async fn fail_run(&self, run: i64, message: &str) {
        if let Err(e) = self
            .store
            .finish_apply_run(run, ApplyStatus::Failed, Some(message), &[])
            .await
        {
            tracing::error!(run, error = %e, "cannot record a failed apply run");
        }
    }

    async fn expire_requests(&mut self) {
        let now = Instant::now();
        let mut failed_runs = Vec::new();
        for (name, n) in &mut self.nodes {
            let expired = match &n.view.in_flight {
                Some(f @ InFlight::Observe { .. }) => {
                    now.duration_since(f.sent()) > self.config.observe_timeout
                }
                Some(f @ InFlight::Apply { .. }) => {
                    now.duration_since(f.sent()) > self.config.apply_timeout
                }
                None => false,
            };
            if expired {
                tracing::warn!(node = %name, "request not answered in time");
                if let Some(InFlight::Apply { run, commit, .. }) = n.view.in_flight.take() {
                    failed_runs.push(run);
                    n.view.failed = Some((commit, now));
                }
            }
        }
        for run in failed_runs {
            self.fail_run(run, "the agent did not report in time").await;
        }
    }

    /// Decides for one node and carries the decision out.
    async fn reconcile(&mut self, node: &str) {
        let decision = {
            let Some(n) = self.nodes.get(node) else {
                return;
            };
            let target = self.current.as_ref().and_then(|c| {
                c.model.desired_for(node).map(|desired| Target {
                    commit: &c.commit,
                    desired,
                })
            });
            let started = Instant::now();
            let mut decision = decide::decide(&n.view, target, started, self.config.retry_after);
            if self.holds.contains(node) && matches!(decision, Decision::Apply(_)) {
                decision = Decision::Wait(decide::Wait::Held);
            }
            if matches!(decision, Decision::Apply(_) | Decision::MarkConverged) {
                self.metrics.observe_plan(started.elapsed());
            }
            decision
        };
        let Some(current) = &self.current else {
            return;
        };
        let commit = current.commit.clone();
        let model = Arc::clone(&current.model);
        match decision {
            Decision::Wait(_) => {}
            Decision::MarkConverged => {
                let observed = self.nodes.get_mut(node).and_then(|n| {
                    n.view.converged = Some(commit);
                    n.view.observed.as_ref().map(|(_, o)| o.clone())
                });
                self.live.set_drift(node, None);
                if let Some(observed) = observed {
                    self.record_observed(node, observed).await;
                }
            }
            Decision::Observe => {
                let Some(desired) = model.desired_for(node) else {
                    return;
                };
                let request = self.request_id();
                let message = ServerMessage::Observe {
                    v: PROTOCOL_VERSION,
                    request,
                    desired: Box::new(desired.clone()),
                };
                if self.send(node, message)
                    && let Some(n) = self.nodes.get_mut(node)
                {
                    n.view.in_flight = Some(InFlight::Observe {
                        request,
                        commit,
                        sent: Instant::now(),
                    });
                }
            }
            Decision::Apply(plan) => {
                let Some(desired) = model.desired_for(node) else {
                    return;
                };
                let run = match self
                    .store
                    .approve_and_start_run(&commit, node, &plan.digest, ACTOR)
                    .await
                {
                    Ok(run) => run,
                    Err(e) => {
                        tracing::error!(%node, error = %e, "cannot record the approval; not dispatched");
                        return;
                    }
                };
                self.audit(
                    "plan.approve",
                    node,
                    Some(&commit),
                    "ok",
                    serde_json::json!({
                        "digest": plan.digest,
                        "changes": plan.changes.len(),
                        "run": run,
                    }),
                );
                let request = self.request_id();
                let message = ServerMessage::Apply {
                    v: PROTOCOL_VERSION,
                    request,
                    desired: Box::new(desired.clone()),
                    approved_digest: plan.digest.clone(),
                };
                if self.send(node, message) {
                    if let Some(n) = self.nodes.get_mut(node) {
                        n.view.in_flight = Some(InFlight::Apply {
                            request,
                            commit,
                            run,
                            digest: plan.digest.clone(),
                            sent: Instant::now(),
                        });
                    }
                } else {
                    self.fail_run(run, "the agent's connection was gone").await;
                }
            }
        }
    }

    fn request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    /// Queues `message` for `node`'s connection; false (and the connection forgotten) if
    /// it is gone or not draining.
    fn send(&mut self, node: &str, message: ServerMessage) -> bool {
        let Some(n) = self.nodes.get_mut(node) else {
            return false;
        };
        let Some((_, tx)) = &n.conn else {
            return false;
        };
        match tx.try_send(message) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%node, error = %e, "agent connection not accepting frames; dropped");
                n.conn = None;
                n.view.connected = false;
                self.publish_connected();
                false
            }
        }
    }

    /// Records an action for the audit log; appended by [`Engine::flush_audit`].
    fn audit(
        &mut self,
        action: &str,
        target: &str,
        commit: Option<&str>,
        outcome: &str,
        details: serde_json::Value,
    ) {
        self.pending_audit.push(AuditRecord {
            actor: ACTOR.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            commit: commit.map(str::to_owned),
            outcome: outcome.to_owned(),
            details,
        });
    }

    async fn flush_audit(&mut self) {
        if self.pending_audit.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending_audit);
        if let Err(e) = self.store.audit_append_many(&batch).await {
            tracing::error!(entries = batch.len(), error = %e, "cannot append to the audit log");
        }
    }
}
