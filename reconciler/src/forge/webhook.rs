//! GitHub and GitLab webhooks in: each delivery authenticated, de-duplicated, size-limited and
//! parsed into one [`ForgeEvent`] for the planner.
//!
//! Routes (each mounted only when its secret is configured, else 404, like the generic push
//! webhook in [`crate::webhook`], whose helpers this module shares):
//!
//! - [`GITHUB_PATH`]: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` checked
//!   in constant time; `X-GitHub-Event` picks the parser; `X-GitHub-Delivery` de-duplicates.
//!   `pull_request` (opened, synchronize, reopened, closed), `push`, `issue_comment` (created,
//!   on pull requests only) become events; `ping` is answered 200; the rest 202 `ignored`.
//! - [`GITLAB_PATH`]: `X-Gitlab-Token` equal to the secret (constant time); `X-Gitlab-Event`
//!   picks the parser (`object_kind` for `System Hook`, and it must agree otherwise);
//!   `Idempotency-Key` (same across GitLab's retries) or else `X-Gitlab-Event-UUID`
//!   de-duplicates. Merge Request Hook, Push Hook and Note Hook (on merge requests) become
//!   events.
//!
//! Answers: 202 `{"status":"accepted"}` (event sent), 202 `ignored`, 202 `duplicate` (a
//! delivery id among the last [`crate::webhook::DELIVERY_MEMORY`]; nothing sent), 401 bad
//! signature or token, 400 malformed (a clear message, never a panic), 413 body over
//! [`MAX_BODY`] (not read further), 503 `busy` when the planner's queue is full.
//!
//! Sending: `try_send`, never waiting. A full (or closed) queue answers 503 and the delivery
//! id is forgotten, so a redelivery (GitHub's "Redeliver", GitLab's "Resend request", by hand
//! or through their APIs; neither forge is relied on to retry by itself) is handled like a
//! new one; the webhook handler never holds a connection open waiting for the planner.
//!
//! Every refusal (bad signature or token, replayed delivery, oversized or malformed body) is
//! appended to the audit log as `webhook.refused` by `webhook:github` / `webhook:gitlab`,
//! target the route, outcome `denied`, `details.reason` the refusal's code, with the delivery
//! id and event name when well-formed; never the body, the signature or the token. At most
//! [`REFUSAL_AUDIT_PER_MINUTE`] refusals per route and minute are recorded one by one; the
//! rest are counted and recorded as one `webhook.refused.suppressed` entry (with the count)
//! before the route's next recorded refusal, so a flood cannot grow the log without bound.

use crate::forge::{Actor, ChangeRequestAction, ForgeEvent};
use crate::secret::Secret;
use crate::webhook::{Refusal, delivery_id, read_body, status, token_matches, verify};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{AuditRecord, Store};
use tokio::sync::mpsc::{self, error::TrySendError};

pub use crate::webhook::MAX_BODY;

/// GitHub's route.
pub const GITHUB_PATH: &str = "/api/v1/webhooks/github";
/// GitLab's route.
pub const GITLAB_PATH: &str = "/api/v1/webhooks/gitlab";
/// Refusals per route and minute recorded one by one in the audit log.
pub const REFUSAL_AUDIT_PER_MINUTE: u32 = 30;
/// The audit action of a refused delivery.
pub const AUDIT_REFUSED: &str = "webhook.refused";
/// The audit action summing up refusals over the per-minute budget.
pub const AUDIT_SUPPRESSED: &str = "webhook.refused.suppressed";
const AUDIT_WINDOW: Duration = Duration::from_secs(60);
/// Longest event name kept in an audit entry.
const MAX_EVENT_NAME: usize = 100;

/// The forge webhooks' secrets; a route whose secret is `None` is not mounted.
#[derive(Debug, Clone, Default)]
pub struct ForgeHookConfig {
    /// The GitHub webhook's secret (HMAC key of `X-Hub-Signature-256`).
    pub github_secret: Option<Secret>,
    /// The GitLab webhook's secret token (`X-Gitlab-Token`).
    pub gitlab_secret: Option<Secret>,
}

/// The forge webhook routes ([`GITHUB_PATH`], [`GITLAB_PATH`]) for the configured secrets;
/// accepted deliveries go to `events`, refusals to `store`'s audit log.
pub fn router(config: ForgeHookConfig, events: mpsc::Sender<ForgeEvent>, store: Store) -> Router {
    let mut app = Router::new();
    let routes = [
        (Dialect::Github, config.github_secret),
        (Dialect::Gitlab, config.gitlab_secret),
    ];
    for (dialect, secret) in routes {
        let Some(secret) = secret else { continue };
        let hook = Arc::new(Hook {
            dialect,
            secret,
            events: events.clone(),
            store: store.clone(),
            seen: Default::default(),
            budget: Mutex::new(AuditBudget::new(Instant::now())),
        });
        app = app.merge(
            Router::new()
                .route(dialect.path(), post(receive))
                .layer(DefaultBodyLimit::max(MAX_BODY))
                .with_state(hook),
        );
    }
    app
}

/// Which forge's conventions a route follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Github,
    Gitlab,
}

impl Dialect {
    fn path(self) -> &'static str {
        match self {
            Dialect::Github => GITHUB_PATH,
            Dialect::Gitlab => GITLAB_PATH,
        }
    }

    fn actor(self) -> &'static str {
        match self {
            Dialect::Github => "webhook:github",
            Dialect::Gitlab => "webhook:gitlab",
        }
    }

    fn event_header(self) -> &'static str {
        match self {
            Dialect::Github => "x-github-event",
            Dialect::Gitlab => "x-gitlab-event",
        }
    }

    fn authenticate(
        self,
        secret: &Secret,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let secret = secret.expose().as_bytes();
        match self {
            Dialect::Github => verify(secret, headers, "x-hub-signature-256", body),
            Dialect::Gitlab => match headers.get("x-gitlab-token") {
                None => Err(Refusal::unauthorized("missing X-Gitlab-Token header")),
                Some(token) if token_matches(secret, token.as_bytes()) => Ok(()),
                Some(_) => Err(Refusal::unauthorized("X-Gitlab-Token does not match")),
            },
        }
    }

    fn delivery(self, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
        match self {
            Dialect::Github => delivery_id(headers, "x-github-delivery"),
            Dialect::Gitlab => match delivery_id(headers, "idempotency-key")? {
                Some(key) => Ok(Some(key)),
                None => delivery_id(headers, "x-gitlab-event-uuid"),
            },
        }
    }

    fn parse(self, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, Refusal> {
        let event = event_name(headers, self.event_header())?;
        match self {
            Dialect::Github => github::parse(event, body),
            Dialect::Gitlab => gitlab::parse(event, body),
        }
    }
}

/// What a delivery amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Event(ForgeEvent),
    /// Not an event for the reconciler (another action or kind); the reason is logged.
    Ignored(String),
    /// GitHub's `ping` on webhook creation.
    Ping,
}

#[derive(Debug)]
struct Hook {
    dialect: Dialect,
    secret: Secret,
    events: mpsc::Sender<ForgeEvent>,
    store: Store,
    seen: crate::webhook::DeliveryMemory,
    budget: Mutex<AuditBudget>,
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match read_body(body) {
        Ok(body) => body,
        Err(refusal) => return hook.refuse(refusal, &headers, None).await,
    };
    if let Err(refusal) = hook.dialect.authenticate(&hook.secret, &headers, &body) {
        return hook.refuse(refusal, &headers, None).await;
    }
    let delivery = match hook.dialect.delivery(&headers) {
        Ok(delivery) => delivery,
        Err(refusal) => return hook.refuse(refusal, &headers, None).await,
    };
    let delivery = delivery.as_deref();
    if let Some(id) = delivery
        && !hook.seen.remember(id)
    {
        let refusal = Refusal::new(
            StatusCode::ACCEPTED,
            "duplicate_delivery",
            "delivery already received",
        );
        hook.audit(&refusal, &headers, delivery).await;
        return status(StatusCode::ACCEPTED, "duplicate", delivery);
    }
    let forget = || {
        if let Some(id) = delivery {
            hook.seen.forget(id);
        }
    };
    let event = match hook.dialect.parse(&headers, &body) {
        Ok(Parsed::Event(event)) => event,
        Ok(Parsed::Ignored(why)) => {
            tracing::debug!(
                route = hook.dialect.path(),
                delivery,
                why,
                "webhook ignored"
            );
            return status(StatusCode::ACCEPTED, "ignored", delivery);
        }
        Ok(Parsed::Ping) => return status(StatusCode::OK, "accepted", delivery),
        Err(refusal) => {
            forget();
            return hook.refuse(refusal, &headers, delivery).await;
        }
    };
    match hook.events.try_send(event) {
        Ok(()) => {
            tracing::info!(
                route = hook.dialect.path(),
                delivery,
                "forge webhook accepted"
            );
            status(StatusCode::ACCEPTED, "accepted", delivery)
        }
        Err(e) => {
            forget();
            let why = match e {
                TrySendError::Full(_) => "the planner's queue is full",
                TrySendError::Closed(_) => "the planner is not running",
            };
            tracing::warn!(
                route = hook.dialect.path(),
                delivery,
                why,
                "forge webhook not taken"
            );
            let mut response = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("{why}; deliver again later"),
            )
            .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("10"),
            );
            response
        }
    }
}

impl Hook {
    /// Audits `refusal` and answers it.
    async fn refuse(
        &self,
        refusal: Refusal,
        headers: &HeaderMap,
        delivery: Option<&str>,
    ) -> Response {
        tracing::warn!(
            route = self.dialect.path(),
            reason = refusal.code,
            message = refusal.message,
            "forge webhook refused"
        );
        self.audit(&refusal, headers, delivery).await;
        refusal.into_response()
    }

    /// Appends `webhook.refused` (within the per-minute budget); a failure to audit is
    /// logged, not fatal.
    async fn audit(&self, refusal: &Refusal, headers: &HeaderMap, delivery: Option<&str>) {
        let admitted = {
            let mut budget = match self.budget.lock() {
                Ok(budget) => budget,
                Err(poisoned) => poisoned.into_inner(),
            };
            budget.admit(Instant::now())
        };
        let Admitted::Record { suppressed_before } = admitted else {
            return;
        };
        let delivery = delivery
            .map(str::to_owned)
            .or_else(|| self.dialect.delivery(headers).ok().flatten());
        let event = headers
            .get(self.dialect.event_header())
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_EVENT_NAME);
        let record = |action: &str, details: serde_json::Value| AuditRecord {
            actor: self.dialect.actor().into(),
            action: action.into(),
            target: self.dialect.path().into(),
            commit: None,
            outcome: "denied".into(),
            details,
        };
        let mut records = Vec::with_capacity(2);
        if suppressed_before > 0 {
            records.push(record(
                AUDIT_SUPPRESSED,
                serde_json::json!({
                    "suppressed": suppressed_before,
                    "limit_per_minute": REFUSAL_AUDIT_PER_MINUTE,
                }),
            ));
        }
        records.push(record(
            AUDIT_REFUSED,
            serde_json::json!({
                "reason": refusal.code,
                "status": refusal.status.as_u16(),
                "delivery": delivery,
                "event": event,
            }),
        ));
        if let Err(e) = self.store.audit_append_many(&records).await {
            tracing::error!(error = %e, "cannot audit a refused forge webhook");
        }
    }
}

/// The per-route budget of refusal audit entries: [`REFUSAL_AUDIT_PER_MINUTE`] per window,
/// the rest counted.
#[derive(Debug)]
struct AuditBudget {
    window_start: Instant,
    recorded: u32,
    suppressed: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Admitted {
    /// Record this refusal, after a summary of `suppressed_before` refusals when non-zero.
    Record { suppressed_before: u64 },
    /// Over budget: counted only.
    Counted,
}

impl AuditBudget {
    fn new(now: Instant) -> Self {
        AuditBudget {
            window_start: now,
            recorded: 0,
            suppressed: 0,
        }
    }

    fn admit(&mut self, now: Instant) -> Admitted {
        if now.duration_since(self.window_start) >= AUDIT_WINDOW {
            self.window_start = now;
            self.recorded = 0;
        }
        if self.recorded < REFUSAL_AUDIT_PER_MINUTE {
            self.recorded += 1;
            Admitted::Record {
                suppressed_before: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Admitted::Counted
        }
    }
}

/// The event name header, required.
fn event_name<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Refusal> {
    match headers.get(name).map(|v| v.to_str()) {
        Some(Ok(event)) if !event.is_empty() => Ok(event),
        Some(_) => Err(Refusal::malformed(format!(
            "{name} is not a valid event name"
        ))),
        None => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "missing_event",
            format!("missing {name} header"),
        )),
    }
}

/// `body` as `T`, or 400 naming the event and what is wrong (serde's message: the missing
/// field or wrong type, with its position).
fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::malformed(format!("cannot read the {event} payload: {e}")))
}

/// A payload's `action` alone, to ignore actions without requiring the rest of their shape.
#[derive(Deserialize)]
struct ActionOnly {
    action: String,
}

mod github {
    //! GitHub's payloads (only the fields the reconciler uses).

    use super::*;

    pub(super) fn parse(event: &str, body: &[u8]) -> Result<Parsed, Refusal> {
        match event {
            "ping" => Ok(Parsed::Ping),
            "pull_request" => pull_request(body),
            "push" => {
                let push: Push = decode(event, body)?;
                Ok(Parsed::Event(ForgeEvent::Push {
                    git_ref: push.git_ref,
                    after: push.after,
                }))
            }
            "issue_comment" => issue_comment(body),
            other => Ok(Parsed::Ignored(format!("event {other}"))),
        }
    }

    #[derive(Deserialize)]
    struct PullRequestEvent {
        number: u64,
        pull_request: PullRequest,
    }

    #[derive(Deserialize)]
    struct PullRequest {
        head: Branch,
        base: Branch,
        #[serde(default)]
        merged: Option<bool>,
    }

    #[derive(Deserialize)]
    struct Branch {
        sha: String,
        #[serde(rename = "ref")]
        git_ref: String,
    }

    #[derive(Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        git_ref: String,
        after: String,
    }

    #[derive(Deserialize)]
    struct IssueCommentEvent {
        issue: Issue,
        comment: IssueComment,
    }

    #[derive(Deserialize)]
    struct Issue {
        number: u64,
        /// Present (an object of links) when the issue is a pull request.
        #[serde(default)]
        pull_request: Option<serde_json::Value>,
    }

    #[derive(Deserialize)]
    struct IssueComment {
        id: u64,
        body: String,
        user: User,
    }

    #[derive(Deserialize)]
    struct User {
        login: String,
        id: u64,
    }

    fn pull_request(body: &[u8]) -> Result<Parsed, Refusal> {
        let ActionOnly { action } = decode("pull_request", body)?;
        let known = match action.as_str() {
            "opened" => Some(ChangeRequestAction::Opened),
            "synchronize" => Some(ChangeRequestAction::Pushed),
            "reopened" => Some(ChangeRequestAction::Reopened),
            "closed" => None,
            other => return Ok(Parsed::Ignored(format!("pull_request action {other}"))),
        };
        let event: PullRequestEvent = decode("pull_request", body)?;
        let action = match known {
            Some(action) => action,
            None => match event.pull_request.merged {
                Some(true) => ChangeRequestAction::Merged,
                Some(false) => ChangeRequestAction::Closed,
                None => {
                    return Err(Refusal::malformed(
                        "cannot read the pull_request payload: a closed pull request without `pull_request.merged`",
                    ));
                }
            },
        };
        Ok(Parsed::Event(ForgeEvent::ChangeRequest {
            number: event.number,
            action,
            head_sha: event.pull_request.head.sha,
            base_sha: event.pull_request.base.sha,
            base_ref: event.pull_request.base.git_ref,
        }))
    }

    fn issue_comment(body: &[u8]) -> Result<Parsed, Refusal> {
        let ActionOnly { action } = decode("issue_comment", body)?;
        if action != "created" {
            return Ok(Parsed::Ignored(format!("issue_comment action {action}")));
        }
        let event: IssueCommentEvent = decode("issue_comment", body)?;
        if event.issue.pull_request.is_none() {
            return Ok(Parsed::Ignored("comment on an issue".into()));
        }
        Ok(Parsed::Event(ForgeEvent::Comment {
            number: event.issue.number,
            comment_id: event.comment.id,
            author: Actor {
                login: event.comment.user.login,
                id: event.comment.user.id,
            },
            body: event.comment.body,
        }))
    }
}

mod gitlab {
    //! GitLab's payloads (only the fields the reconciler uses).
    //!
    //! A Merge Request Hook carries the head (`object_attributes.last_commit.id`) and the
    //! target branch but not the target branch's commit the merge request is compared
    //! against: its events have `base_sha` empty, and the planner resolves the base itself
    //! (the target branch's head, or the merge request's `diff_refs` from the API).

    use super::*;

    pub(super) fn parse(event: &str, body: &[u8]) -> Result<Parsed, Refusal> {
        let kind = match event {
            "Merge Request Hook" => Some("merge_request"),
            "Push Hook" => Some("push"),
            "Note Hook" => Some("note"),
            // System hooks name the kind in the body only.
            "System Hook" => None,
            other => return Ok(Parsed::Ignored(format!("event {other}"))),
        };
        let Kind { object_kind } = decode(event, body)?;
        let kind = match (kind, object_kind.as_deref()) {
            (Some(kind), Some(said)) if kind != said => {
                return Err(Refusal::malformed(format!(
                    "X-Gitlab-Event is {event} but object_kind is {said}"
                )));
            }
            (Some(kind), _) => kind,
            (None, Some(said)) => said,
            (None, None) => {
                return Err(Refusal::malformed(
                    "cannot read the System Hook payload: missing field `object_kind`",
                ));
            }
        };
        match kind {
            "merge_request" => merge_request(event, body),
            "push" => {
                let push: Push = decode(event, body)?;
                Ok(Parsed::Event(ForgeEvent::Push {
                    git_ref: push.git_ref,
                    after: push.after,
                }))
            }
            "note" => note(event, body),
            other => Ok(Parsed::Ignored(format!("object_kind {other}"))),
        }
    }

    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        object_kind: Option<String>,
    }

    #[derive(Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        git_ref: String,
        after: String,
    }

    #[derive(Deserialize)]
    struct MergeRequestEvent {
        object_attributes: MergeRequest,
    }

    #[derive(Deserialize)]
    struct MergeRequest {
        iid: u64,
        #[serde(default)]
        action: Option<String>,
        /// The previous head; only present when the update brought new commits.
        #[serde(default)]
        oldrev: Option<String>,
        target_branch: String,
        last_commit: Commit,
    }

    #[derive(Deserialize)]
    struct Commit {
        id: String,
    }

    #[derive(Deserialize)]
    struct NoteEvent {
        user: User,
        object_attributes: Note,
        #[serde(default)]
        merge_request: Option<NotedMergeRequest>,
    }

    #[derive(Deserialize)]
    struct Note {
        id: u64,
        note: String,
        noteable_type: String,
        /// `create` or `update` (GitLab 16.11+); absent before.
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        system: bool,
    }

    #[derive(Deserialize)]
    struct NotedMergeRequest {
        iid: u64,
    }

    #[derive(Deserialize)]
    struct User {
        username: String,
        id: u64,
    }

    fn merge_request(event: &str, body: &[u8]) -> Result<Parsed, Refusal> {
        let MergeRequestEvent {
            object_attributes: mr,
        } = decode(event, body)?;
        let action = match mr.action.as_deref() {
            Some("open") => ChangeRequestAction::Opened,
            Some("update") if mr.oldrev.as_deref().is_some_and(|r| !r.is_empty()) => {
                ChangeRequestAction::Pushed
            }
            Some("update") => {
                return Ok(Parsed::Ignored(
                    "merge request update without new commits".into(),
                ));
            }
            Some("reopen") => ChangeRequestAction::Reopened,
            Some("close") => ChangeRequestAction::Closed,
            Some("merge") => ChangeRequestAction::Merged,
            Some(other) => return Ok(Parsed::Ignored(format!("merge request action {other}"))),
            None => return Ok(Parsed::Ignored("merge request event without action".into())),
        };
        Ok(Parsed::Event(ForgeEvent::ChangeRequest {
            number: mr.iid,
            action,
            head_sha: mr.last_commit.id,
            base_sha: String::new(),
            base_ref: mr.target_branch,
        }))
    }

    fn note(event: &str, body: &[u8]) -> Result<Parsed, Refusal> {
        let note: NoteEvent = decode(event, body)?;
        let attrs = note.object_attributes;
        if attrs.noteable_type != "MergeRequest" {
            return Ok(Parsed::Ignored(format!(
                "comment on a {}",
                attrs.noteable_type
            )));
        }
        if attrs.system {
            return Ok(Parsed::Ignored("system note".into()));
        }
        if let Some(action) = attrs.action.as_deref()
            && action != "create"
        {
            return Ok(Parsed::Ignored(format!("note action {action}")));
        }
        let Some(mr) = note.merge_request else {
            return Err(Refusal::malformed(format!(
                "cannot read the {event} payload: a merge request note without `merge_request`"
            )));
        };
        Ok(Parsed::Event(ForgeEvent::Comment {
            number: mr.iid,
            comment_id: attrs.id,
            author: Actor {
                login: note.user.username,
                id: note.user.id,
            },
            body: attrs.note,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_budget_counts_over_the_limit_and_summarises_in_the_next_window() {
        let start = Instant::now();
        let mut budget = AuditBudget::new(start);
        for _ in 0..REFUSAL_AUDIT_PER_MINUTE {
            assert_eq!(
                budget.admit(start),
                Admitted::Record {
                    suppressed_before: 0
                }
            );
        }
        for _ in 0..7 {
            assert_eq!(
                budget.admit(start + Duration::from_secs(59)),
                Admitted::Counted
            );
        }
        let later = start + AUDIT_WINDOW;
        assert_eq!(
            budget.admit(later),
            Admitted::Record {
                suppressed_before: 7
            }
        );
        assert_eq!(
            budget.admit(later),
            Admitted::Record {
                suppressed_before: 0
            }
        );
    }

    #[test]
    fn gitlab_kind_must_agree_with_the_header() {
        let body = br#"{"object_kind":"push","ref":"refs/heads/main","after":"abc"}"#;
        let refusal = gitlab::parse("Note Hook", body).expect_err("disagreeing kinds");
        assert_eq!(refusal.code, "malformed");
        assert_eq!(
            gitlab::parse("System Hook", body),
            Ok(Parsed::Event(ForgeEvent::Push {
                git_ref: "refs/heads/main".into(),
                after: "abc".into()
            }))
        );
    }
}
