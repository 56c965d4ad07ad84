//! Pull requests as change control: the service that keeps one plan comment, one status and
//! the destructive label on every open pull/merge request into the tracked branch, answers
//! comment commands, and keeps the fleet's drift issue in step with the engine's drift.
//!
//! Level-triggered like the engine: events only mark pull requests (or the drift issue)
//! dirty; the loop then recomputes each dirty one from scratch (the forge's current head and
//! base, the store's observations) and writes only what differs. A burst of pushes to one
//! pull request within [`PrConfig::coalesce`] is one update; a push arriving while its pull
//! request is being planned marks it dirty again, so the last head is always the one shown.
//! Forge failures are retried after [`PrConfig::retry_after`].

pub mod command;
pub mod comment;
pub mod drift_issue;
pub mod planner;

use crate::engine::{CommitSource, Live};
use crate::forge::{
    ChangeRequest, ChangeRequestAction, ChangeRequestState, CommitStatus, Forge, ForgeError,
    ForgeEvent, ForgeKind,
};
use crate::poller::PollerHandle;
use command::Command;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use store::{AuditRecord, PrReport, Store};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Settings of the pull request service.
#[derive(Debug, Clone)]
pub struct PrConfig {
    /// The tracked branch (`main`); only pull requests into it are planned.
    pub branch: String,
    /// Name of the status / check run branch protection can require.
    pub status_name: String,
    /// Label set while a plan is destructive, removed when it no longer is.
    pub destructive_label: String,
    /// Label that marks the fleet's drift issue.
    pub drift_label: String,
    /// Keep a drift issue on the forge.
    pub drift_issue: bool,
    /// Base address of the status page, for links (`https://centossrv.example/`).
    pub link: Option<String>,
    /// How long events are gathered before planning, so a burst is one update.
    pub coalesce: Duration,
    /// How long a pull request whose update failed waits before it is tried again.
    pub retry_after: Duration,
}

impl Default for PrConfig {
    fn default() -> Self {
        PrConfig {
            branch: "main".into(),
            status_name: "centossrv/plan".into(),
            destructive_label: "centossrv: destructive".into(),
            drift_label: "centossrv: drift".into(),
            drift_issue: true,
            link: None,
            coalesce: Duration::from_millis(200),
            retry_after: Duration::from_secs(30),
        }
    }
}

/// The service; [`PrService::run`] is its loop.
pub struct PrService {
    forge: Arc<dyn Forge>,
    source: Arc<dyn CommitSource>,
    store: Store,
    live: Live,
    poller: Option<PollerHandle>,
    config: PrConfig,
    /// The status last set per pull request: (head, conclusion, title), to send only changes.
    statuses: HashMap<u64, (String, crate::forge::Conclusion, String)>,
}

impl std::fmt::Debug for PrService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrService")
            .field("forge", &self.forge)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the loop has to do.
#[derive(Debug, Default)]
struct Dirty {
    prs: BTreeSet<u64>,
    /// List the open pull requests and plan each (start-up, base branch moved, drift).
    all: bool,
    drift_issue: bool,
}

impl Dirty {
    fn any(&self) -> bool {
        self.all || self.drift_issue || !self.prs.is_empty()
    }
}

const ACTOR: &str = "reconciler";

impl PrService {
    pub fn new(
        forge: Arc<dyn Forge>,
        source: Arc<dyn CommitSource>,
        store: Store,
        live: Live,
        config: PrConfig,
    ) -> PrService {
        PrService {
            forge,
            source,
            store,
            live,
            poller: None,
            config,
            statuses: HashMap::new(),
        }
    }

    /// Pokes `poller` when the tracked branch is pushed to (the forge's push webhook).
    pub fn with_poller(mut self, poller: PollerHandle) -> PrService {
        self.poller = Some(poller);
        self
    }

    fn branch(&self) -> &str {
        self.config
            .branch
            .strip_prefix("refs/heads/")
            .unwrap_or(&self.config.branch)
    }

    fn forge_name(&self) -> &'static str {
        match self.forge.kind() {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }

    /// Runs until every sender of `events` is gone. Starts with a full pass: every open pull
    /// request planned, the drift issue brought in line.
    pub async fn run(mut self, mut events: mpsc::Receiver<ForgeEvent>) {
        let mut drift = self.live.watch_drift();
        let mut dirty = Dirty {
            all: true,
            drift_issue: self.config.drift_issue,
            ..Dirty::default()
        };
        // What failed, to be marked dirty again at `retry_at`.
        let mut retry = Dirty::default();
        let mut retry_at: Option<Instant> = None;
        loop {
            if !dirty.any() {
                let retry_sleep = async {
                    match retry_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    event = events.recv() => match event {
                        Some(event) => self.absorb(event, &mut dirty).await,
                        None => break,
                    },
                    changed = drift.changed() => {
                        if changed.is_err() { break; }
                        self.drift_changed(&mut dirty);
                    }
                    _ = retry_sleep => {
                        let again = std::mem::take(&mut retry);
                        dirty.prs.extend(again.prs);
                        dirty.all |= again.all;
                        dirty.drift_issue |= again.drift_issue;
                        retry_at = None;
                    }
                }
                // Gather the rest of a burst.
                let deadline = Instant::now() + self.config.coalesce;
                loop {
                    tokio::select! {
                        event = events.recv() => match event {
                            Some(event) => self.absorb(event, &mut dirty).await,
                            None => break,
                        },
                        changed = drift.changed() => {
                            if changed.is_err() { break; }
                            self.drift_changed(&mut dirty);
                        }
                        _ = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
            if dirty.drift_issue {
                dirty.drift_issue = false;
                if let Err(e) = self.sync_drift_issue().await {
                    tracing::warn!(error = %e, "cannot update the drift issue; retrying later");
                    retry.drift_issue = true;
                    retry_at.get_or_insert(Instant::now() + self.config.retry_after);
                }
            }
            if dirty.all {
                dirty.all = false;
                match self.forge.open_change_requests().await {
                    Ok(open) => dirty.prs.extend(
                        open.iter()
                            .filter(|cr| cr.base_ref == self.branch())
                            .map(|cr| cr.number),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list open pull requests; retrying later");
                        retry.all = true;
                        retry_at.get_or_insert(Instant::now() + self.config.retry_after);
                    }
                }
            }
            while let Some(number) = dirty.prs.pop_first() {
                if let Err(e) = self.update(number).await {
                    tracing::warn!(pr = number, error = %e, "cannot update the pull request; retrying later");
                    retry.prs.insert(number);
                    retry_at.get_or_insert(Instant::now() + self.config.retry_after);
                }
                // Events that arrived meanwhile (another push to this or another pull
                // request) are taken in before the next one is planned.
                while let Ok(event) = events.try_recv() {
                    self.absorb(event, &mut dirty).await;
                }
            }
        }
        tracing::info!("pull request service stopped: every event sender is gone");
    }

    fn drift_changed(&self, dirty: &mut Dirty) {
        dirty.drift_issue = self.config.drift_issue;
        // Every open pull request's plan reverts the drift too: merging applies to all nodes.
        dirty.all = true;
    }

    /// Takes one forge event into `dirty`.
    async fn absorb(&mut self, event: ForgeEvent, dirty: &mut Dirty) {
        match event {
            ForgeEvent::ChangeRequest {
                number,
                action,
                base_ref,
                ..
            } => {
                let base = base_ref.strip_prefix("refs/heads/").unwrap_or(&base_ref);
                if !base.is_empty() && base != self.branch() {
                    tracing::debug!(pr = number, %base_ref, "pull request into another branch: not planned");
                    return;
                }
                match action {
                    ChangeRequestAction::Opened
                    | ChangeRequestAction::Pushed
                    | ChangeRequestAction::Reopened => {
                        dirty.prs.insert(number);
                    }
                    ChangeRequestAction::Closed | ChangeRequestAction::Merged => {
                        dirty.prs.remove(&number);
                        self.statuses.remove(&number);
                        if let Err(e) = self.store.delete_pr_report(self.forge_name(), number).await
                        {
                            tracing::warn!(pr = number, error = %e, "cannot forget a pull request report");
                        }
                        if action == ChangeRequestAction::Merged
                            && let Some(poller) = &self.poller
                        {
                            poller.poke();
                        }
                    }
                }
            }
            ForgeEvent::Push { git_ref, .. } => {
                if git_ref.strip_prefix("refs/heads/") == Some(self.branch()) {
                    if let Some(poller) = &self.poller {
                        poller.poke();
                    }
                    // Base moved: every open pull request is compared with a new base.
                    dirty.all = true;
                }
            }
            ForgeEvent::Comment {
                number,
                author,
                body,
                comment_id,
            } => {
                let Some(command) = command::parse(&body) else {
                    return;
                };
                let permission = match self.forge.permission(&author).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(pr = number, user = %author.login, error = %e, "cannot check a commenter's permission");
                        self.audit(
                            &format!("{}:{}", self.forge_name(), author.login),
                            "pr.command",
                            number,
                            None,
                            "failed",
                            serde_json::json!({"comment": comment_id, "reason": "permission check failed"}),
                        )
                        .await;
                        return;
                    }
                };
                let actor = format!("{}:{}", self.forge_name(), author.login);
                let name = match &command {
                    Command::Plan => "plan",
                    Command::Help => "help",
                    Command::Unknown(_) => "unknown",
                };
                if !permission.may_write() {
                    tracing::info!(pr = number, user = %author.login, "comment command refused: no write access");
                    self.audit(
                        &actor,
                        "pr.command",
                        number,
                        None,
                        "denied",
                        serde_json::json!({"command": name, "comment": comment_id, "permission": format!("{permission:?}").to_lowercase()}),
                    )
                    .await;
                    return;
                }
                self.audit(
                    &actor,
                    "pr.command",
                    number,
                    None,
                    "ok",
                    serde_json::json!({"command": name, "comment": comment_id}),
                )
                .await;
                match command {
                    Command::Plan => {
                        dirty.prs.insert(number);
                    }
                    Command::Help | Command::Unknown(_) => {
                        let unknown = match &command {
                            Command::Unknown(word) => Some(word.as_str()),
                            _ => None,
                        };
                        if let Err(e) = self
                            .forge
                            .create_comment(number, &command::help_text(unknown))
                            .await
                        {
                            tracing::warn!(pr = number, error = %e, "cannot answer a help command");
                        }
                    }
                }
            }
        }
    }

    /// Plans pull request `number` and brings its comment, status and label in line.
    async fn update(&mut self, number: u64) -> Result<(), UpdateError> {
        let cr = self.forge.change_request(number).await?;
        if cr.state != ChangeRequestState::Open || cr.base_ref != self.branch() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let (head, base) = self.snapshots(&cr).await?;
        let observed: BTreeMap<String, state::ObservedState> = self
            .store
            .observed_all()
            .await?
            .into_iter()
            .map(|(name, record)| (name, record.state))
            .collect();
        let previous = match self.store.pr_report(self.forge_name(), number).await? {
            Some(stored) => match serde_json::from_str::<report::Report>(&stored.report) {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::warn!(pr = number, error = %e, "the stored previous report is unreadable; shown without what moved");
                    None
                }
            },
            None => None,
        };
        let link = self
            .config
            .link
            .as_ref()
            .map(|base| format!("{}/commits/{}", base.trim_end_matches('/'), cr.head_sha));
        let forge_kind = self.forge.kind();
        let head_sha = cr.head_sha.clone();
        let base_sha = cr.base_sha.clone();
        let planned = tokio::task::spawn_blocking(move || {
            planner::plan(&planner::PlanRequest {
                number,
                head_sha: &head_sha,
                base_sha: base.as_ref().map(|_| base_sha.as_str()),
                head: &head,
                base: base.as_ref(),
                observed: &observed,
                previous: previous.as_ref(),
                link: link.as_deref(),
                forge: forge_kind,
            })
        })
        .await
        .map_err(|e| UpdateError::Plan(e.to_string()))?;
        let upserted = comment::upsert(self.forge.as_ref(), number, &planned.comment).await?;
        let status_key = (
            cr.head_sha.clone(),
            planned.conclusion,
            planned.title.clone(),
        );
        if self.statuses.get(&number) != Some(&status_key) {
            self.forge
                .set_status(&CommitStatus {
                    head_sha: cr.head_sha.clone(),
                    name: self.config.status_name.clone(),
                    conclusion: planned.conclusion,
                    title: planned.title.clone(),
                    summary: planned.summary.clone(),
                    details_url: self.config.link.clone(),
                })
                .await?;
            self.statuses.insert(number, status_key);
        }
        let labels = self.forge.labels(number).await?;
        let label = &self.config.destructive_label;
        let labelled = labels.iter().any(|l| l == label);
        if planned.destructive && !labelled {
            self.forge.add_label(number, label).await?;
        } else if !planned.destructive && labelled {
            self.forge.remove_label(number, label).await?;
        }
        let report_json = report::json::json(&planned.report);
        self.store
            .save_pr_report(&PrReport {
                forge: self.forge_name().into(),
                number,
                head_sha: cr.head_sha.clone(),
                base_sha: Some(cr.base_sha.clone()),
                report: report_json,
            })
            .await?;
        let outcome = match upserted {
            comment::Upserted::Created(_) => "created",
            comment::Upserted::Updated(_) => "updated",
            comment::Upserted::Unchanged(_) => "unchanged",
        };
        tracing::info!(
            pr = number,
            head = %cr.head_sha,
            comment = outcome,
            would_change = planned.report.would_change,
            ms = started.elapsed().as_millis() as u64,
            "pull request planned"
        );
        if !matches!(upserted, comment::Upserted::Unchanged(_)) {
            self.audit(
                ACTOR,
                "pr.plan",
                number,
                Some(&cr.head_sha),
                match planned.conclusion {
                    crate::forge::Conclusion::Failure => "failed",
                    _ => "ok",
                },
                serde_json::json!({
                    "comment": outcome,
                    "comment_id": upserted.id(),
                    "would_change": planned.report.would_change,
                    "nodes": planned.report.nodes,
                    "destructive": planned.destructive,
                    "errors": planned.report.errors.len(),
                }),
            )
            .await;
        }
        Ok(())
    }

    /// Head's files (fetching the pull request's ref) and base's when readable.
    async fn snapshots(
        &self,
        cr: &ChangeRequest,
    ) -> Result<(model::Snapshot, Option<model::Snapshot>), UpdateError> {
        let source = Arc::clone(&self.source);
        let head_ref = self.forge.head_ref(cr.number);
        let head_sha = cr.head_sha.clone();
        let base_sha = cr.base_sha.clone();
        tokio::task::spawn_blocking(move || {
            let head = match source.snapshot(&head_sha) {
                Ok(head) => head,
                Err(_) => {
                    // Not fetched yet: fetch the pull request's ref, then read the commit
                    // the forge names (the ref may already be newer; the next event says so).
                    source.resolve_ref(&head_ref).map_err(UpdateError::Source)?;
                    source.snapshot(&head_sha).map_err(UpdateError::Source)?
                }
            };
            let base = if base_sha.is_empty() {
                None
            } else {
                match source.snapshot(&base_sha) {
                    Ok(base) => Some(base),
                    Err(_) => {
                        // The branch moved on since the last fetch.
                        let _ = source.head();
                        source.snapshot(&base_sha).ok()
                    }
                }
            };
            Ok((head, base))
        })
        .await
        .map_err(|e| UpdateError::Plan(e.to_string()))?
    }

    /// Opens, updates, closes or reopens the drift issue to match the engine's drift.
    async fn sync_drift_issue(&self) -> Result<(), ForgeError> {
        let drift = self.live.drift();
        let commit = self.live.get().commit;
        let body = drift_issue::body(&drift, commit.as_deref(), self.config.link.as_deref());
        let action = drift_issue::sync(
            self.forge.as_ref(),
            &self.config.drift_label,
            !drift.is_empty(),
            &body,
        )
        .await?;
        let (name, number) = match action {
            drift_issue::IssueAction::None => return Ok(()),
            drift_issue::IssueAction::Opened(n) => ("opened", n),
            drift_issue::IssueAction::Reopened(n) => ("reopened", n),
            drift_issue::IssueAction::Updated(n) => ("updated", n),
            drift_issue::IssueAction::Closed(n) => ("closed", n),
        };
        tracing::info!(
            issue = number,
            action = name,
            nodes = drift.len(),
            "drift issue"
        );
        self.audit(
            ACTOR,
            "drift.issue",
            number,
            commit.as_deref(),
            name,
            serde_json::json!({"nodes": drift.keys().collect::<Vec<_>>()}),
        )
        .await;
        Ok(())
    }

    async fn audit(
        &self,
        actor: &str,
        action: &str,
        number: u64,
        commit: Option<&str>,
        outcome: &str,
        details: serde_json::Value,
    ) {
        let record = AuditRecord {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: format!("{}#{number}", self.forge_name()),
            commit: commit.map(str::to_owned),
            outcome: outcome.to_owned(),
            details,
        };
        if let Err(e) = self.store.audit_append(&record).await {
            tracing::error!(error = %e, "cannot append to the audit log");
        }
    }
}

/// Why one pull request could not be updated (it is retried).
#[derive(Debug, thiserror::Error)]
enum UpdateError {
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error("repository: {0}")]
    Source(String),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("planning failed: {0}")]
    Plan(String),
}
