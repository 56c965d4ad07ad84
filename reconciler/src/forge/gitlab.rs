//! GitLab behind [`Forge`]: REST API v4 over reqwest (rustls, ring), authenticated with a
//! project or personal access token in the `PRIVATE-TOKEN` header; gitlab.com and
//! self-managed instances (`https://HOST/api/v4`).
//!
//! Choices worth knowing:
//! - The project is addressed by numeric id or by its path, sent URL-encoded as one path
//!   segment (`group%2Fsub%2Fproject`), as GitLab requires.
//! - Lists follow `x-next-page` until it is empty (100 per page).
//! - Merge request lists do not carry `diff_refs`; each open merge request is read once more
//!   for its base commit. One whose diff GitLab has not prepared yet (no `diff_refs`) is left
//!   out of [`Forge::open_change_requests`] (a warning is logged) and is an error from
//!   [`Forge::change_request`].
//! - Commit statuses: `Pending` is sent as `running`, `Neutral` as `success` with a
//!   description starting "Needs a look: ". The description is cut to 255 characters. GitLab
//!   answers 400 "Cannot transition status via :run from :running" when a status is set to
//!   running twice; that answer counts as success for `Pending`.
//! - Labels travel as comma-separated lists, so a label containing a comma is refused before
//!   anything is sent (as a 422 [`ForgeError::Status`] whose message says so).
//! - [`Forge::update_issue`] always sends `state_event` (`close` or `reopen`); GitLab ignores an
//!   event that does not change the state, so one request suffices.
//! - 429 answers are waited out (`Retry-After`, else `RateLimit-Reset`) while the total wait
//!   stays within `max_wait`; after that [`ForgeError::RateLimited`].

use super::{
    Actor, ChangeRequest, ChangeRequestState, Comment, CommitStatus, Conclusion, Forge, ForgeError,
    ForgeKind, Issue, Permission,
};
use crate::secret::Secret;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// gitlab.com's API root.
pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";
/// The longest a request waits out rate limits by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// Whole-request timeout by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// GitLab's limit on a commit status description (and target URL), in characters.
pub const STATUS_TEXT_LIMIT: usize = 255;
/// Items per page of every list (GitLab's maximum).
const PER_PAGE: &str = "100";
/// A 429 without `Retry-After` or `RateLimit-Reset` is waited out this long (GitLab's
/// throttles count per minute).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Pages followed at most per list (100,000 items), against a server that never ends one.
const MAX_PAGES: usize = 1000;

/// How to reach one GitLab project.
#[derive(Debug, Clone)]
pub struct GitLabConfig {
    /// API root: `https://gitlab.com/api/v4` or `https://HOST/api/v4`.
    pub api_url: String,
    /// Numeric project id (`42`) or full path (`group/sub/project`).
    pub project: String,
    /// Project or personal access token (scope `api`), sent as `PRIVATE-TOKEN`.
    pub token: Secret,
    /// Longest total wait for rate limits per request before giving up.
    pub max_wait: Duration,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
}

impl GitLabConfig {
    /// gitlab.com, default wait and timeout.
    pub fn new(project: impl Into<String>, token: Secret) -> GitLabConfig {
        GitLabConfig {
            api_url: DEFAULT_API_URL.to_owned(),
            project: project.into(),
            token,
            max_wait: DEFAULT_MAX_WAIT,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A GitLab project as a [`Forge`]. `Debug` shows the API root and project, never the token.
pub struct GitLab {
    client: reqwest::Client,
    api: Url,
    project: String,
    token: Secret,
    max_wait: Duration,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab")
            .field("api", &self.api.as_str())
            .field("project", &self.project)
            .field("token", &self.token)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

impl GitLab {
    /// Checks the configuration and builds the HTTP client (installs ring as the process's
    /// rustls provider when none is).
    pub fn new(config: GitLabConfig) -> Result<GitLab, ForgeError> {
        let api = Url::parse(config.api_url.trim_end_matches('/')).map_err(|e| {
            ForgeError::Transport(format!("invalid GitLab API URL `{}`: {e}", config.api_url))
        })?;
        if !matches!(api.scheme(), "https" | "http") || api.cannot_be_a_base() {
            return Err(ForgeError::Transport(format!(
                "GitLab API URL `{}` must be an http(s) URL such as {DEFAULT_API_URL}",
                config.api_url
            )));
        }
        if config.project.is_empty() {
            return Err(ForgeError::Transport("GitLab project is empty".to_owned()));
        }
        if config.token.expose().is_empty() {
            return Err(ForgeError::Auth("GitLab token is empty".to_owned()));
        }
        HeaderValue::from_str(config.token.expose())
            .map_err(|_| ForgeError::Auth("GitLab token contains invalid characters".to_owned()))?;
        crate::tls::ring_provider();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("centossrv/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ForgeError::Transport(format!("cannot build HTTP client: {e}")))?;
        Ok(GitLab {
            client,
            api,
            project: config.project,
            token: config.token,
            max_wait: config.max_wait,
        })
    }

    /// `API/projects/PROJECT/<segments>`, every segment percent-encoded (a project path's
    /// slashes become `%2F`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        {
            // `cannot_be_a_base` was refused in `new`.
            let mut path = url.path_segments_mut().expect("checked in GitLab::new");
            path.pop_if_empty().push("projects").push(&self.project);
            path.extend(segments);
        }
        url
    }

    /// Sends one request, waiting out 429s within `max_wait`; non-2xx answers become
    /// [`ForgeError::Status`] with GitLab's `message` or `error`.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, ForgeError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ForgeError::Transport(format!("cannot encode request: {e}")))?;
        let mut token = HeaderValue::from_str(self.token.expose())
            .map_err(|_| ForgeError::Auth("GitLab token contains invalid characters".to_owned()))?;
        token.set_sensitive(true);
        let mut waited = Duration::ZERO;
        loop {
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .header("PRIVATE-TOKEN", token.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| ForgeError::Transport(e.without_url().to_string()))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(response.headers());
                if waited + wait > self.max_wait {
                    return Err(ForgeError::RateLimited(wait));
                }
                tracing::info!(
                    path = url.path(),
                    wait_secs = wait.as_secs_f64(),
                    "GitLab rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                waited += wait;
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            let message = error_message(response).await;
            return Err(ForgeError::Status {
                method: method.to_string(),
                path: url.path().to_owned(),
                status: status.as_u16(),
                message,
            });
        }
    }

    /// One request whose JSON answer is decoded as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ForgeError> {
        let path = url.path().to_owned();
        let response = self.send(method, url, body).await?;
        decode(&path, response).await
    }

    /// Every page of a list: `per_page=100`, following `x-next-page`.
    async fn get_all<T: DeserializeOwned>(&self, mut url: Url) -> Result<Vec<T>, ForgeError> {
        url.query_pairs_mut().append_pair("per_page", PER_PAGE);
        let mut items = Vec::new();
        let mut page_url = url.clone();
        for _ in 0..MAX_PAGES {
            let path = page_url.path().to_owned();
            let response = self.send(Method::GET, page_url, None).await?;
            let next = response
                .headers()
                .get("x-next-page")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let page: Vec<T> = decode(&path, response).await?;
            items.extend(page);
            let Some(next) = next else {
                return Ok(items);
            };
            if !next.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ForgeError::Decode {
                    path,
                    message: format!("x-next-page `{next}` is not a page number"),
                });
            }
            page_url = url.clone();
            page_url.query_pairs_mut().append_pair("page", &next);
        }
        Err(ForgeError::Decode {
            path: url.path().to_owned(),
            message: format!("more than {MAX_PAGES} pages"),
        })
    }

    async fn merge_request(&self, number: u64) -> Result<MergeRequestJson, ForgeError> {
        let url = self.url(&["merge_requests", &number.to_string()]);
        self.call(Method::GET, url, None).await
    }

    async fn update_merge_request(
        &self,
        number: u64,
        body: serde_json::Value,
    ) -> Result<(), ForgeError> {
        let url = self.url(&["merge_requests", &number.to_string()]);
        self.send(Method::PUT, url, Some(&body)).await.map(drop)
    }

    /// Refuses what GitLab's comma-separated label lists cannot carry.
    fn check_label(&self, method: &str, path: &[&str], label: &str) -> Result<(), ForgeError> {
        let problem = if label.contains(',') {
            "contains a comma, which GitLab's API reads as a separator"
        } else if label.trim().is_empty() {
            "is empty"
        } else if label.trim() != label {
            "starts or ends with whitespace, which GitLab strips"
        } else {
            return Ok(());
        };
        Err(ForgeError::Status {
            method: method.to_owned(),
            path: self.url(path).path().to_owned(),
            status: 422,
            message: format!("not sent: label `{label}` {problem}"),
        })
    }
}

/// How long a 429 asks to wait: `Retry-After` seconds, else `RateLimit-Reset` (a Unix time),
/// else a minute; at least one second.
fn retry_after(headers: &HeaderMap) -> Duration {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let wait = if let Some(secs) = number("retry-after") {
        Duration::from_secs(secs)
    } else if let Some(reset) = number("ratelimit-reset") {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Duration::from_secs(reset.saturating_sub(now))
    } else {
        DEFAULT_RETRY_AFTER
    };
    wait.max(Duration::from_secs(1))
}

/// GitLab's error text: `message` (a string, or an object of field errors), else `error`,
/// else the start of the body.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let field = |name| json.as_ref().and_then(|j| j.get(name)).cloned();
    match field("message").or_else(|| field("error")) {
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            }
        }
    }
}

async fn decode<T: DeserializeOwned>(
    path: &str,
    response: reqwest::Response,
) -> Result<T, ForgeError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ForgeError::Transport(e.without_url().to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ForgeError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// `text` cut to `limit` characters (the last one an ellipsis when cut).
fn truncate_chars(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Debug, Deserialize)]
struct MergeRequestJson {
    iid: u64,
    title: String,
    state: String,
    #[serde(default)]
    sha: Option<String>,
    target_branch: String,
    web_url: String,
    #[serde(default)]
    diff_refs: Option<DiffRefs>,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DiffRefs {
    #[serde(default)]
    base_sha: Option<String>,
    #[serde(default)]
    head_sha: Option<String>,
}

impl MergeRequestJson {
    /// The neutral change request, or why it cannot be one yet.
    fn into_change_request(self) -> Result<ChangeRequest, String> {
        let state = match self.state.as_str() {
            "opened" | "locked" => ChangeRequestState::Open,
            "closed" => ChangeRequestState::Closed,
            "merged" => ChangeRequestState::Merged,
            other => return Err(format!("unknown merge request state `{other}`")),
        };
        let refs = self.diff_refs.as_ref();
        let head_sha = refs
            .and_then(|r| r.head_sha.clone())
            .or(self.sha)
            .ok_or_else(|| format!("merge request !{} has no head commit", self.iid))?;
        let base_sha = refs.and_then(|r| r.base_sha.clone()).ok_or_else(|| {
            format!(
                "merge request !{} has no diff_refs.base_sha (GitLab may still be preparing it)",
                self.iid
            )
        })?;
        Ok(ChangeRequest {
            number: self.iid,
            title: self.title,
            state,
            head_sha,
            base_sha,
            base_ref: self.target_branch,
            url: self.web_url,
        })
    }
}

#[derive(Debug, Deserialize)]
struct NoteJson {
    id: u64,
    body: String,
    #[serde(default)]
    system: bool,
}

#[derive(Debug, Deserialize)]
struct MemberJson {
    access_level: u32,
}

#[derive(Debug, Deserialize)]
struct IssueJson {
    iid: u64,
    state: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
}

impl From<IssueJson> for Issue {
    fn from(issue: IssueJson) -> Issue {
        Issue {
            number: issue.iid,
            open: issue.state == "opened",
            title: issue.title,
            body: issue.description.unwrap_or_default(),
        }
    }
}

/// GitLab access levels: 10 guest, 15 planner, 20 reporter -> read; 30 developer -> write;
/// 40 maintainer -> maintain; 50 owner (and 60 admin) -> admin; 0 none, 5 minimal -> none.
pub fn permission_from_access_level(level: u32) -> Permission {
    match level {
        0..=9 => Permission::None,
        10..=29 => Permission::Read,
        30..=39 => Permission::Write,
        40..=49 => Permission::Maintain,
        _ => Permission::Admin,
    }
}

#[async_trait::async_trait]
impl Forge for GitLab {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitlab
    }

    // https://docs.gitlab.com/api/merge_requests/#get-single-mr
    async fn change_request(&self, number: u64) -> Result<ChangeRequest, ForgeError> {
        let path = self.url(&["merge_requests", &number.to_string()]);
        self.merge_request(number)
            .await?
            .into_change_request()
            .map_err(|message| ForgeError::Decode {
                path: path.path().to_owned(),
                message,
            })
    }

    // https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
    async fn open_change_requests(&self) -> Result<Vec<ChangeRequest>, ForgeError> {
        let mut url = self.url(&["merge_requests"]);
        url.query_pairs_mut()
            .append_pair("state", "opened")
            .append_pair("order_by", "created_at")
            .append_pair("sort", "asc");
        let listed: Vec<MergeRequestJson> = self.get_all(url).await?;
        let mut out = Vec::with_capacity(listed.len());
        for mr in listed {
            // The list carries no diff_refs: read each merge request for its base commit.
            let full = match mr.diff_refs {
                Some(_) => mr,
                None => self.merge_request(mr.iid).await?,
            };
            let iid = full.iid;
            match full.into_change_request() {
                Ok(cr) if cr.state == ChangeRequestState::Open => out.push(cr),
                Ok(_) => {} // closed or merged since the list was read
                Err(message) => {
                    tracing::warn!(merge_request = iid, "skipping merge request: {message}");
                }
            }
        }
        Ok(out)
    }

    // https://docs.gitlab.com/api/notes/#list-all-merge-request-notes
    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        let mut url = self.url(&["merge_requests", &number.to_string(), "notes"]);
        url.query_pairs_mut()
            .append_pair("sort", "asc")
            .append_pair("order_by", "created_at");
        let notes: Vec<NoteJson> = self.get_all(url).await?;
        Ok(notes
            .into_iter()
            .filter(|n| !n.system)
            .map(|n| Comment {
                id: n.id,
                body: n.body,
            })
            .collect())
    }

    // https://docs.gitlab.com/api/notes/#create-new-merge-request-note
    async fn create_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        let url = self.url(&["merge_requests", &number.to_string(), "notes"]);
        let note: NoteJson = self
            .call(
                Method::POST,
                url,
                Some(&serde_json::json!({ "body": body })),
            )
            .await?;
        Ok(Comment {
            id: note.id,
            body: note.body,
        })
    }

    // https://docs.gitlab.com/api/notes/#modify-existing-merge-request-note
    async fn update_comment(&self, number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let url = self.url(&[
            "merge_requests",
            &number.to_string(),
            "notes",
            &id.to_string(),
        ]);
        self.send(Method::PUT, url, Some(&serde_json::json!({ "body": body })))
            .await
            .map(drop)
    }

    // https://docs.gitlab.com/api/notes/#delete-a-merge-request-note
    async fn delete_comment(&self, number: u64, id: u64) -> Result<(), ForgeError> {
        let url = self.url(&[
            "merge_requests",
            &number.to_string(),
            "notes",
            &id.to_string(),
        ]);
        self.send(Method::DELETE, url, None).await.map(drop)
    }

    // https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
    async fn set_status(&self, status: &CommitStatus) -> Result<(), ForgeError> {
        let (state, description) = match status.conclusion {
            Conclusion::Success => ("success", status.title.clone()),
            Conclusion::Neutral => ("success", format!("Needs a look: {}", status.title)),
            Conclusion::Failure => ("failed", status.title.clone()),
            Conclusion::Pending => ("running", status.title.clone()),
        };
        let mut body = serde_json::json!({
            "state": state,
            "name": status.name,
            "description": truncate_chars(&description, STATUS_TEXT_LIMIT),
        });
        match &status.details_url {
            Some(url) if url.chars().count() <= STATUS_TEXT_LIMIT => {
                body["target_url"] = serde_json::Value::String(url.clone());
            }
            Some(url) => tracing::warn!(
                length = url.chars().count(),
                "status link left out: GitLab takes at most {STATUS_TEXT_LIMIT} characters"
            ),
            None => {}
        }
        let url = self.url(&["statuses", &status.head_sha]);
        match self.send(Method::POST, url, Some(&body)).await {
            Ok(_) => Ok(()),
            // Already running: GitLab refuses the repeated transition.
            Err(ForgeError::Status {
                status: 400,
                message,
                ..
            }) if status.conclusion == Conclusion::Pending
                && message.starts_with("Cannot transition status") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    // https://docs.gitlab.com/api/merge_requests/#get-single-mr
    async fn labels(&self, number: u64) -> Result<Vec<String>, ForgeError> {
        Ok(self.merge_request(number).await?.labels)
    }

    // https://docs.gitlab.com/api/merge_requests/#update-mr
    async fn add_label(&self, number: u64, label: &str) -> Result<(), ForgeError> {
        self.check_label("PUT", &["merge_requests", &number.to_string()], label)?;
        self.update_merge_request(number, serde_json::json!({ "add_labels": label }))
            .await
    }

    // https://docs.gitlab.com/api/merge_requests/#update-mr
    async fn remove_label(&self, number: u64, label: &str) -> Result<(), ForgeError> {
        self.check_label("PUT", &["merge_requests", &number.to_string()], label)?;
        self.update_merge_request(number, serde_json::json!({ "remove_labels": label }))
            .await
    }

    // https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members
    async fn permission(&self, user: &Actor) -> Result<Permission, ForgeError> {
        let url = self.url(&["members", "all", &user.id.to_string()]);
        match self.call::<MemberJson>(Method::GET, url, None).await {
            Ok(member) => Ok(permission_from_access_level(member.access_level)),
            Err(e) if e.is_not_found() => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    // https://docs.gitlab.com/api/issues/#list-project-issues
    async fn find_issue(&self, label: &str) -> Result<Option<Issue>, ForgeError> {
        self.check_label("GET", &["issues"], label)?;
        let mut url = self.url(&["issues"]);
        url.query_pairs_mut()
            .append_pair("labels", label)
            .append_pair("state", "all")
            .append_pair("sort", "asc")
            .append_pair("order_by", "created_at")
            .append_pair("per_page", PER_PAGE);
        // Oldest first: the first page's first issue is the answer.
        let issues: Vec<IssueJson> = self.call(Method::GET, url, None).await?;
        Ok(issues.into_iter().next().map(Issue::from))
    }

    // https://docs.gitlab.com/api/issues/#new-issue
    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        label: &str,
    ) -> Result<Issue, ForgeError> {
        self.check_label("POST", &["issues"], label)?;
        let url = self.url(&["issues"]);
        let issue: IssueJson = self
            .call(
                Method::POST,
                url,
                Some(&serde_json::json!({
                    "title": title,
                    "description": body,
                    "labels": label,
                })),
            )
            .await?;
        Ok(issue.into())
    }

    // https://docs.gitlab.com/api/issues/#edit-an-issue
    async fn update_issue(&self, number: u64, body: &str, open: bool) -> Result<(), ForgeError> {
        let url = self.url(&["issues", &number.to_string()]);
        let body = serde_json::json!({
            "description": body,
            "state_event": if open { "reopen" } else { "close" },
        });
        self.send(Method::PUT, url, Some(&body)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_levels_map_to_permissions() {
        let table = [
            (0, Permission::None),
            (5, Permission::None),
            (10, Permission::Read),
            (15, Permission::Read),
            (20, Permission::Read),
            (30, Permission::Write),
            (40, Permission::Maintain),
            (50, Permission::Admin),
            (60, Permission::Admin),
        ];
        for (level, permission) in table {
            assert_eq!(permission_from_access_level(level), permission, "{level}");
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        let cut = truncate_chars(&"é".repeat(300), 255);
        assert_eq!(cut.chars().count(), 255);
        assert!(cut.ends_with("é…"));
    }

    #[test]
    fn retry_after_prefers_the_header_and_has_a_floor() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), DEFAULT_RETRY_AFTER);
        headers.insert("retry-after", HeaderValue::from_static("0"));
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Duration::from_secs(7));
        let mut headers = HeaderMap::new();
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + 30;
        headers.insert(
            "ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap_or(HeaderValue::from_static("0")),
        );
        let wait = retry_after(&headers);
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28));
    }

    #[test]
    fn project_paths_are_one_encoded_segment() {
        let gitlab = GitLab::new(GitLabConfig {
            api_url: "https://gitlab.example.com/api/v4/".to_owned(),
            ..GitLabConfig::new("group/sub/project", Secret::new("glpat-x"))
        })
        .expect("config");
        assert_eq!(
            gitlab.url(&["merge_requests", "7"]).as_str(),
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fproject/merge_requests/7"
        );
        assert!(!format!("{gitlab:?}").contains("glpat-x"));
    }
}
