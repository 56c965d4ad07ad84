//! The forge boundary: what the reconciler asks of GitHub or GitLab, in the forge's neutral
//! words (change request = pull request / merge request, status = check run / commit status).
//!
//! Each forge is one module behind [`Forge`]: [`github`] (REST v3 through octocrab; plain
//! tokens and GitHub App installation tokens; github.com and Enterprise base URLs) and
//! [`gitlab`] (REST v4; project access tokens; gitlab.com and self-managed). Webhook parsing
//! and verification for both live in [`webhook`]; it turns a forge's delivery into one
//! [`ForgeEvent`]. Everything above this module (the PR planner, the drift issue) speaks only
//! these types, so a third forge is one more module.
//!
//! Clients handle the forge's rate limits themselves (`Retry-After`, secondary limits with
//! backoff) and surface what is left as [`ForgeError`].

pub mod github;
pub mod gitlab;
pub mod webhook;

use std::time::Duration;

/// Which forge; decides the comment size budget and the vocabulary in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
}

/// A user of the forge, as a webhook names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// GitHub login / GitLab username.
    pub login: String,
    /// The forge's numeric user id (GitLab's membership API takes it).
    pub id: u64,
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRequestState {
    Open,
    Closed,
    Merged,
}

/// A pull request (GitHub) or merge request (GitLab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    /// PR number / MR iid.
    pub number: u64,
    pub title: String,
    pub state: ChangeRequestState,
    /// The commit the change request proposes.
    pub head_sha: String,
    /// The commit of the target branch the forge compares against.
    pub base_sha: String,
    /// The target branch (`main`); only change requests into the tracked branch are planned.
    pub base_ref: String,
    /// Web address, for links.
    pub url: String,
}

/// A comment on a change request or issue (GitLab: a note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub body: String,
}

/// The outcome a status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// Planned; nothing blocks the merge.
    Success,
    /// Planned with something to look at (offline or unknown nodes); does not block.
    Neutral,
    /// Head does not compile (or planning failed): blocks the merge under branch protection.
    Failure,
    /// Planning has started; no outcome yet.
    Pending,
}

/// A commit status (GitLab) / check run (GitHub) on a change request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub head_sha: String,
    /// Stable name branch protection refers to, e.g. `centossrv/plan`.
    pub name: String,
    pub conclusion: Conclusion,
    /// One line (GitLab's description is limited to 255 characters; clients truncate).
    pub title: String,
    /// Markdown summary (GitHub check run output; GitLab ignores it).
    pub summary: String,
    /// Link to the full plan, when the status page is configured.
    pub details_url: Option<String>,
}

/// A repository member's access, ordered: `Write` and above may trigger comment commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    pub fn may_write(self) -> bool {
        self >= Permission::Write
    }
}

/// An issue (the fleet's drift issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// GitHub issue number / GitLab issue iid.
    pub number: u64,
    pub open: bool,
    pub title: String,
    pub body: String,
}

/// What went wrong talking to a forge.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge answered with an error status (after retries where they apply).
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// Still rate limited after waiting as long as the client is willing to.
    #[error("rate limited by the forge; retry after {0:?}")]
    RateLimited(Duration),
    /// Connection, TLS or timeout.
    #[error("transport: {0}")]
    Transport(String),
    /// The forge's answer did not have the expected shape.
    #[error("unexpected response from {path}: {message}")]
    Decode { path: String, message: String },
    /// Credentials missing, unreadable or refused (GitHub App JWT, installation token).
    #[error("authentication: {0}")]
    Auth(String),
}

impl ForgeError {
    /// True for 404: a thing that is not there (a label already removed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ForgeError::Status { status: 404, .. })
    }
}

/// One forge's API as the reconciler uses it. Implementations: [`github::GitHub`],
/// [`gitlab::GitLab`]. Every method is one logical request (paginated lists follow every
/// page); rate limits are waited out inside.
#[async_trait::async_trait]
pub trait Forge: Send + Sync + std::fmt::Debug + 'static {
    fn kind(&self) -> ForgeKind;

    /// The git ref under which the forge publishes a change request's head
    /// (`refs/pull/N/head`, `refs/merge-requests/N/head`), for fetching it.
    fn head_ref(&self, number: u64) -> String {
        match self.kind() {
            ForgeKind::Github => format!("refs/pull/{number}/head"),
            ForgeKind::Gitlab => format!("refs/merge-requests/{number}/head"),
        }
    }

    /// One change request.
    async fn change_request(&self, number: u64) -> Result<ChangeRequest, ForgeError>;
    /// Every open change request (all pages).
    async fn open_change_requests(&self) -> Result<Vec<ChangeRequest>, ForgeError>;

    /// Every comment on change request `number` (all pages, oldest first).
    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError>;
    async fn create_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError>;
    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError>;
    async fn delete_comment(&self, number: u64, id: u64) -> Result<(), ForgeError>;

    /// Creates or replaces the status called `status.name` on `status.head_sha`.
    async fn set_status(&self, status: &CommitStatus) -> Result<(), ForgeError>;

    /// Labels currently on change request `number`.
    async fn labels(&self, number: u64) -> Result<Vec<String>, ForgeError>;
    async fn add_label(&self, number: u64, label: &str) -> Result<(), ForgeError>;
    /// Removing a label that is not there is not an error.
    async fn remove_label(&self, number: u64, label: &str) -> Result<(), ForgeError>;

    /// `user`'s access to the repository (`None` for non-members).
    async fn permission(&self, user: &Actor) -> Result<Permission, ForgeError>;

    /// The oldest issue (open or closed) carrying `label`, if any.
    async fn find_issue(&self, label: &str) -> Result<Option<Issue>, ForgeError>;
    async fn create_issue(&self, title: &str, body: &str, label: &str)
    -> Result<Issue, ForgeError>;
    /// Sets the body and opens or closes the issue.
    async fn update_issue(&self, number: u64, body: &str, open: bool) -> Result<(), ForgeError>;
}

/// What a forge's webhook delivery means to the reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeEvent {
    /// A change request was opened, pushed to, reopened or closed.
    ChangeRequest {
        number: u64,
        action: ChangeRequestAction,
        head_sha: String,
        base_sha: String,
        base_ref: String,
    },
    /// A branch moved (`git_ref` is the full ref, `refs/heads/main`).
    Push { git_ref: String, after: String },
    /// A new comment on a change request (comments on plain issues are not events).
    Comment {
        number: u64,
        comment_id: u64,
        author: Actor,
        body: String,
    },
}

/// What happened to a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRequestAction {
    Opened,
    /// New commits pushed (GitHub `synchronize`, GitLab `update` with a new head).
    Pushed,
    Reopened,
    Closed,
    Merged,
}
