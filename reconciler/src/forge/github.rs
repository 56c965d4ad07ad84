//! GitHub behind [`Forge`]: REST v3 through octocrab's raw requests with our own serde types,
//! a plain token or a GitHub App installation token (octocrab signs the JWT, exchanges it
//! and refreshes the token before it expires), github.com or an Enterprise `/api/v3` root,
//! and rate limits waited out up to a bound.

use std::time::Duration;

use octocrab::Octocrab;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    Actor, ChangeRequest, ChangeRequestState, Comment, CommitStatus, Conclusion, Forge, ForgeError,
    ForgeKind, Issue, Permission,
};
use crate::secret::Secret;

/// Everything but RFC 3986's unreserved characters is escaped in a path segment or query
/// value (labels such as `centossrv: destructive` carry `:` and spaces).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// GitHub's limit on a check run's `output.summary` (characters).
const MAX_SUMMARY: usize = 65535;
/// GitHub's limit on a commit status `description` (characters).
const MAX_DESCRIPTION: usize = 140;
/// A bound on pages followed, against a server that links pages in a circle.
const MAX_PAGES: usize = 1000;

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal access token (classic or fine-grained) or any other bearer token.
    Token(Secret),
    /// A GitHub App installation: the App's id and RSA private key (PEM) sign a short JWT,
    /// exchanged at `POST /app/installations/{installation_id}/access_tokens` for an
    /// installation token, renewed before it expires.
    App {
        app_id: u64,
        private_key_pem: Secret,
        installation_id: u64,
    },
}

/// Where a plan's outcome is reported on a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApi {
    /// Check runs (`POST /repos/{owner}/{repo}/check-runs`): a title, a Markdown summary and
    /// a neutral outcome. Only GitHub Apps may create check runs; a personal access token is
    /// refused (403), so tokens default to [`StatusApi::Statuses`].
    CheckRuns,
    /// Commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`): a 140-character
    /// description and no summary; `Neutral` is reported as `success`.
    Statuses,
}

/// How to reach one repository on GitHub.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise
    /// Server.
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    pub auth: GitHubAuth,
    /// `None`: check runs for Apps, commit statuses for tokens (see [`StatusApi`]).
    pub status_api: Option<StatusApi>,
    /// The longest the client waits out rate limits for one request (default 60 s); beyond
    /// it a request fails with [`ForgeError::RateLimited`].
    pub max_wait: Duration,
    /// Bound on each HTTP attempt, connecting included (default 30 s).
    pub timeout: Duration,
}

impl GitHubConfig {
    pub const DEFAULT_API_URL: &'static str = "https://api.github.com";

    /// github.com, default limits, status API chosen by the kind of credential.
    pub fn new(owner: impl Into<String>, repo: impl Into<String>, auth: GitHubAuth) -> Self {
        GitHubConfig {
            api_url: Self::DEFAULT_API_URL.to_owned(),
            owner: owner.into(),
            repo: repo.into(),
            auth,
            status_api: None,
            max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }

    /// The status API in effect: the configured one, else by credential.
    pub fn effective_status_api(&self) -> StatusApi {
        self.status_api.unwrap_or(match self.auth {
            GitHubAuth::App { .. } => StatusApi::CheckRuns,
            GitHubAuth::Token(_) => StatusApi::Statuses,
        })
    }
}

/// The GitHub client. Build it inside a Tokio runtime (octocrab spawns a worker).
pub struct GitHub {
    client: Octocrab,
    /// `api_url` without a trailing slash, to recognise the API's own pagination links.
    api_url: String,
    /// `/repos/{owner}/{repo}`, escaped.
    repo_path: String,
    status_api: StatusApi,
    max_wait: Duration,
    timeout: Duration,
    /// `owner/repo` and the kind of credential, for `Debug`.
    describe: String,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.api_url)
            .field("repository", &self.describe)
            .field("status_api", &self.status_api)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One answer, read whole.
struct Answer {
    status: u16,
    headers: ::http::HeaderMap,
    body: String,
}

impl GitHub {
    /// A client for `config`; fails only on an unusable base URL or App key.
    pub fn new(config: GitHubConfig) -> Result<GitHub, ForgeError> {
        let api_url = config.api_url.trim_end_matches('/').to_owned();
        let builder = Octocrab::builder()
            .base_uri(api_url.as_str())
            .map_err(|_| ForgeError::Transport(format!("invalid GitHub API URL {api_url:?}")))?
            .add_header(
                ::http::header::ACCEPT,
                "application/vnd.github+json".to_owned(),
            )
            .set_connect_timeout(Some(config.timeout))
            .set_read_timeout(Some(config.timeout))
            .set_write_timeout(Some(config.timeout));
        let (client, kind) = match &config.auth {
            GitHubAuth::Token(token) => {
                let client = builder
                    .personal_token(token.expose().to_owned())
                    .build()
                    .map_err(|e| ForgeError::Transport(describe_octocrab(&e)))?;
                (client, "token")
            }
            GitHubAuth::App {
                app_id,
                private_key_pem,
                installation_id,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                    .map_err(|_| {
                        ForgeError::Auth(
                            "the GitHub App private key is not an RSA key in PEM format".into(),
                        )
                    })?;
                let app = builder
                    .app(octocrab::models::AppId(*app_id), key)
                    .build()
                    .map_err(|e| ForgeError::Transport(describe_octocrab(&e)))?;
                let client = app
                    .installation(octocrab::models::InstallationId(*installation_id))
                    .map_err(|e| ForgeError::Auth(describe_octocrab(&e)))?;
                (client, "app")
            }
        };
        Ok(GitHub {
            client,
            repo_path: format!("/repos/{}/{}", encode(&config.owner), encode(&config.repo)),
            status_api: config.effective_status_api(),
            max_wait: config.max_wait,
            timeout: config.timeout,
            describe: format!("{}/{} ({kind})", config.owner, config.repo),
            api_url,
        })
    }

    /// Sends one request, waiting out rate limits (`Retry-After`, `x-ratelimit-reset`,
    /// exponential backoff from 1 s for secondary limits) up to `max_wait` in total.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let mut waited = Duration::ZERO;
        let mut backoff = Duration::from_secs(1);
        loop {
            let answer = tokio::time::timeout(self.timeout, self.attempt(method, path, body))
                .await
                .map_err(|_| {
                    ForgeError::Transport(format!(
                        "{} {path}: no answer within {:?}",
                        method.as_str(),
                        self.timeout
                    ))
                })??;
            let Some(wait) = rate_limit_wait(&answer, &mut backoff) else {
                return Ok(answer);
            };
            if waited + wait > self.max_wait {
                return Err(ForgeError::RateLimited(wait));
            }
            tracing::warn!(
                method = method.as_str(),
                path,
                status = answer.status,
                wait_secs = wait.as_secs_f64(),
                "GitHub rate limit; waiting"
            );
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let c = &self.client;
        let response = match method {
            Method::Get => c._get(path).await,
            Method::Post => c._post(path, body).await,
            Method::Patch => c._patch(path, body).await,
            Method::Delete => c._delete(path, body).await,
        }
        .map_err(octocrab_error)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = c
            .body_to_string(response)
            .await
            .map_err(|e| ForgeError::Transport(describe_octocrab(&e)))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// `send`, then any status but 2xx is an error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let answer = self.send(method, path, body).await?;
        if (200..300).contains(&answer.status) {
            Ok(answer)
        } else {
            Err(status_error(method, path, &answer))
        }
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        let answer = self.call(method, path, body).await?;
        decode(path, &answer.body)
    }

    /// One page of a list and the path of the next page, if any.
    async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(Vec<T>, Option<String>), ForgeError> {
        let answer = self.call(Method::Get, path, None).await?;
        let items = decode(path, &answer.body)?;
        let next = match next_link(&answer.headers) {
            Some(url) => Some(self.relative(&url).ok_or_else(|| ForgeError::Decode {
                path: path.to_owned(),
                message: format!("pagination link outside the API root: {url}"),
            })?),
            None => None,
        };
        Ok((items, next))
    }

    /// Every item of a paginated list, following `Link: rel="next"`.
    async fn all_pages<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ForgeError::Decode {
                    path,
                    message: format!("more than {MAX_PAGES} pages"),
                });
            }
            let (items, following) = self.page(&path).await?;
            out.extend(items);
            next = following;
        }
        Ok(out)
    }

    /// A pagination link as a path under the API root (octocrab adds the root back, and
    /// sends credentials only to it).
    fn relative(&self, url: &str) -> Option<String> {
        url.strip_prefix(&self.api_url)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_owned)
    }

    fn issue_path(&self, number: u64) -> String {
        format!("{}/issues/{number}", self.repo_path)
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

fn decode<T: DeserializeOwned>(path: &str, body: &str) -> Result<T, ForgeError> {
    serde_json::from_str(body).map_err(|e| ForgeError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// GitHub's error message from an error answer (its `message` field, else the start of the
/// body).
fn status_error(method: Method, path: &str, answer: &Answer) -> ForgeError {
    let message = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| answer.body.chars().take(200).collect());
    ForgeError::Status {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        status: answer.status,
        message,
    }
}

/// How long to wait before retrying, when the answer is a rate limit: 429, or 403 with
/// `x-ratelimit-remaining: 0` (primary) or a "secondary rate limit" message.
fn rate_limit_wait(answer: &Answer, backoff: &mut Duration) -> Option<Duration> {
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let secondary = answer
        .body
        .to_ascii_lowercase()
        .contains("secondary rate limit");
    let limited = answer.status == 429 || (answer.status == 403 && (exhausted || secondary));
    if !limited {
        return None;
    }
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if exhausted
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let wait = *backoff;
    *backoff = backoff.saturating_mul(2);
    Some(wait)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &::http::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split('<').skip(1).find_map(|part| {
        let (url, params) = part.split_once('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_owned())
    })
}

/// An octocrab error, without its backtrace.
fn describe_octocrab(e: &octocrab::Error) -> String {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            format!("HTTP {}: {}", source.status_code.as_u16(), source.message)
        }
        other => {
            let mut text = other
                .to_string()
                .split('\n')
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}

/// Errors from octocrab's raw requests: answers arrive as answers, so a GitHub error here
/// comes from exchanging the App JWT for an installation token.
fn octocrab_error(e: octocrab::Error) -> ForgeError {
    match &e {
        octocrab::Error::GitHub { .. } => ForgeError::Auth(format!(
            "installation access token: {}",
            describe_octocrab(&e)
        )),
        octocrab::Error::JWT { .. } => {
            ForgeError::Auth("cannot sign the GitHub App JWT with the configured key".into())
        }
        _ => ForgeError::Transport(describe_octocrab(&e)),
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with an ellipsis.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[derive(Deserialize)]
struct PullJson {
    number: u64,
    title: String,
    state: String,
    merged_at: Option<String>,
    html_url: String,
    head: RefJson,
    base: RefJson,
}

#[derive(Deserialize)]
struct RefJson {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
}

impl From<PullJson> for ChangeRequest {
    fn from(p: PullJson) -> Self {
        let state = if p.merged_at.is_some() {
            ChangeRequestState::Merged
        } else if p.state == "open" {
            ChangeRequestState::Open
        } else {
            ChangeRequestState::Closed
        };
        ChangeRequest {
            number: p.number,
            title: p.title,
            state,
            head_sha: p.head.sha,
            base_sha: p.base.sha,
            base_ref: p.base.git_ref,
            url: p.html_url,
        }
    }
}

#[derive(Deserialize)]
struct CommentJson {
    id: u64,
    body: Option<String>,
}

impl From<CommentJson> for Comment {
    fn from(c: CommentJson) -> Self {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
struct LabelJson {
    name: String,
}

#[derive(Deserialize)]
struct PermissionJson {
    permission: String,
    role_name: Option<String>,
}

#[derive(Deserialize)]
struct IssueJson {
    number: u64,
    state: String,
    title: String,
    body: Option<String>,
    /// Present on pull requests, which the issues API lists too.
    pull_request: Option<Value>,
}

impl From<IssueJson> for Issue {
    fn from(i: IssueJson) -> Self {
        Issue {
            number: i.number,
            open: i.state == "open",
            title: i.title,
            body: i.body.unwrap_or_default(),
        }
    }
}

fn permission_named(name: &str) -> Option<Permission> {
    Some(match name {
        "admin" => Permission::Admin,
        "maintain" => Permission::Maintain,
        "write" => Permission::Write,
        "triage" => Permission::Triage,
        "read" => Permission::Read,
        "none" => Permission::None,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Forge for GitHub {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Github
    }

    async fn change_request(&self, number: u64) -> Result<ChangeRequest, ForgeError> {
        let path = format!("{}/pulls/{number}", self.repo_path);
        let pull: PullJson = self.call_json(Method::Get, &path, None).await?;
        Ok(pull.into())
    }

    async fn open_change_requests(&self) -> Result<Vec<ChangeRequest>, ForgeError> {
        let path = format!("{}/pulls?state=open&per_page=100", self.repo_path);
        let pulls: Vec<PullJson> = self.all_pages(path).await?;
        Ok(pulls.into_iter().map(Into::into).collect())
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        let path = format!("{}/comments?per_page=100", self.issue_path(number));
        let comments: Vec<CommentJson> = self.all_pages(path).await?;
        Ok(comments.into_iter().map(Into::into).collect())
    }

    async fn create_comment(&self, number: u64, body: &str) -> Result<Comment, ForgeError> {
        let path = format!("{}/comments", self.issue_path(number));
        let comment: CommentJson = self
            .call_json(Method::Post, &path, Some(&json!({ "body": body })))
            .await?;
        Ok(comment.into())
    }

    async fn update_comment(&self, _number: u64, id: u64, body: &str) -> Result<(), ForgeError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path);
        self.call(Method::Patch, &path, Some(&json!({ "body": body })))
            .await
            .map(drop)
    }

    async fn delete_comment(&self, _number: u64, id: u64) -> Result<(), ForgeError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path);
        self.call(Method::Delete, &path, None).await.map(drop)
    }

    async fn set_status(&self, status: &CommitStatus) -> Result<(), ForgeError> {
        match self.status_api {
            StatusApi::CheckRuns => {
                let mut run = json!({
                    "name": status.name,
                    "head_sha": status.head_sha,
                    "output": {
                        "title": status.title,
                        "summary": truncate(&status.summary, MAX_SUMMARY),
                    },
                });
                match status.conclusion {
                    Conclusion::Pending => run["status"] = json!("in_progress"),
                    done => {
                        run["status"] = json!("completed");
                        run["conclusion"] = json!(match done {
                            Conclusion::Success => "success",
                            Conclusion::Neutral => "neutral",
                            _ => "failure",
                        });
                    }
                }
                if let Some(url) = &status.details_url {
                    run["details_url"] = json!(url);
                }
                let path = format!("{}/check-runs", self.repo_path);
                self.call(Method::Post, &path, Some(&run)).await.map(drop)
            }
            StatusApi::Statuses => {
                let state = match status.conclusion {
                    Conclusion::Success | Conclusion::Neutral => "success",
                    Conclusion::Failure => "failure",
                    Conclusion::Pending => "pending",
                };
                let mut body = json!({
                    "state": state,
                    "context": status.name,
                    "description": truncate(&status.title, MAX_DESCRIPTION),
                });
                if let Some(url) = &status.details_url {
                    body["target_url"] = json!(url);
                }
                let path = format!("{}/statuses/{}", self.repo_path, encode(&status.head_sha));
                self.call(Method::Post, &path, Some(&body)).await.map(drop)
            }
        }
    }

    async fn labels(&self, number: u64) -> Result<Vec<String>, ForgeError> {
        let path = format!("{}/labels?per_page=100", self.issue_path(number));
        let labels: Vec<LabelJson> = self.all_pages(path).await?;
        Ok(labels.into_iter().map(|l| l.name).collect())
    }

    async fn add_label(&self, number: u64, label: &str) -> Result<(), ForgeError> {
        let path = format!("{}/labels", self.issue_path(number));
        self.call(Method::Post, &path, Some(&json!({ "labels": [label] })))
            .await
            .map(drop)
    }

    async fn remove_label(&self, number: u64, label: &str) -> Result<(), ForgeError> {
        let path = format!("{}/labels/{}", self.issue_path(number), encode(label));
        match self.call(Method::Delete, &path, None).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    async fn permission(&self, user: &Actor) -> Result<Permission, ForgeError> {
        let path = format!(
            "{}/collaborators/{}/permission",
            self.repo_path,
            encode(&user.login)
        );
        let answer: PermissionJson = match self.call_json(Method::Get, &path, None).await {
            Err(e) if e.is_not_found() => return Ok(Permission::None),
            other => other?,
        };
        // `role_name` tells maintain from write and triage from read; a custom role falls
        // back to `permission`, the legacy base role (admin, write, read, none).
        Ok(answer
            .role_name
            .as_deref()
            .and_then(permission_named)
            .or_else(|| permission_named(&answer.permission))
            .unwrap_or(Permission::None))
    }

    async fn find_issue(&self, label: &str) -> Result<Option<Issue>, ForgeError> {
        let mut next = Some(format!(
            "{}/issues?labels={}&state=all&sort=created&direction=asc&per_page=100",
            self.repo_path,
            encode(label)
        ));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                break;
            }
            let (items, following) = self.page::<IssueJson>(&path).await?;
            if let Some(issue) = items.into_iter().find(|i| i.pull_request.is_none()) {
                return Ok(Some(issue.into()));
            }
            next = following;
        }
        Ok(None)
    }

    async fn create_issue(
        &self,
        title: &str,
        body: &str,
        label: &str,
    ) -> Result<Issue, ForgeError> {
        let path = format!("{}/issues", self.repo_path);
        let issue: IssueJson = self
            .call_json(
                Method::Post,
                &path,
                Some(&json!({ "title": title, "body": body, "labels": [label] })),
            )
            .await?;
        Ok(issue.into())
    }

    async fn update_issue(&self, number: u64, body: &str, open: bool) -> Result<(), ForgeError> {
        let state = if open { "open" } else { "closed" };
        self.call(
            Method::Patch,
            &self.issue_path(number),
            Some(&json!({ "body": body, "state": state })),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let mut headers = ::http::HeaderMap::new();
        headers.insert(
            "link",
            "<https://api.github.com/repositories/1/issues?labels=a%2Cb&page=1>; rel=\"prev\", \
             <https://api.github.com/repositories/1/issues?page=3>; rel=\"next\", \
             <https://api.github.com/repositories/1/issues?page=9>; rel=\"last\""
                .parse()
                .expect("header"),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=3")
        );
        headers.insert(
            "link",
            "<https://x/?page=1>; rel=\"first\""
                .parse()
                .expect("header"),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn labels_are_escaped_and_texts_cut() {
        assert_eq!(
            encode("centossrv: destructive"),
            "centossrv%3A%20destructive"
        );
        assert_eq!(encode("a/b"), "a%2Fb");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn status_api_follows_the_credential() {
        let token = GitHubConfig::new("o", "r", GitHubAuth::Token(Secret::new("t")));
        assert_eq!(token.effective_status_api(), StatusApi::Statuses);
        let mut app = GitHubConfig::new(
            "o",
            "r",
            GitHubAuth::App {
                app_id: 1,
                private_key_pem: Secret::new("k"),
                installation_id: 2,
            },
        );
        assert_eq!(app.effective_status_api(), StatusApi::CheckRuns);
        app.status_api = Some(StatusApi::Statuses);
        assert_eq!(app.effective_status_api(), StatusApi::Statuses);
    }
}
