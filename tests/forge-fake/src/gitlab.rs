//! A strict fake GitLab (REST API v4) for one project: it serves the endpoints the
//! reconciler uses, checks each request against the attributes GitLab documents for it
//! (`data/gitlab-endpoints.json`, one entry per endpoint with its docs.gitlab.com page), keeps
//! state (merge requests, notes, commit statuses, labels, issues, members) and answers with
//! bodies shaped like GitLab's documented examples (`data/gitlab-*.json`) with that state
//! patched in.
//!
//! Checked on every request: the method and path (the project addressed by numeric id or by
//! its URL-encoded path; an unencoded slash is a violation), the `PRIVATE-TOKEN` header (401
//! when missing or wrong), the body's encoding (JSON object or form), required attributes,
//! unknown attributes, attribute types, enums and documented length limits. Every deviation
//! is recorded in [`FakeGitLab::violations`] and answered 400 `{"message": ...}` (401 for the
//! token, 404 for paths GitLab does not have). Things that are not there (a merge request, a
//! member, a commit) are answered 404 like GitLab and are not violations.
//!
//! GitLab behaviour the fake reproduces: pagination (`page`, `per_page` up to 100 and the
//! `x-page`, `x-per-page`, `x-next-page`, `x-prev-page`, `x-total`, `x-total-pages` and `link`
//! headers), merge request lists without `diff_refs`, system notes, comma-separated label
//! lists (whitespace around each label stripped), commit status transitions (a status still
//! pending or running with the same name is moved on, and an impossible move such as running
//! to running is a 400 "Cannot transition status ..."), and rate limiting on demand
//! ([`FakeGitLab::rate_limit_next`]: 429 with `Retry-After` and `RateLimit-*` headers).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The access token the fake accepts unless told otherwise ([`FakeGitLab::token`]).
pub const TOKEN: &str = "glpat-centossrv-fake-0123456789";
/// The project's numeric id.
pub const PROJECT_ID: u64 = 42;
/// Largest request body read (a note may hold 1,000,000 characters of up to 4 bytes).
const BODY_LIMIT: usize = 8 << 20;

const ENDPOINTS: &str = include_str!("../data/gitlab-endpoints.json");
const MERGE_REQUEST: &str = include_str!("../data/gitlab-merge-request.json");
const NOTE: &str = include_str!("../data/gitlab-note.json");
const COMMIT_STATUS: &str = include_str!("../data/gitlab-commit-status.json");
const MEMBER: &str = include_str!("../data/gitlab-member.json");
const ISSUE: &str = include_str!("../data/gitlab-issue.json");

/// A commit status as the fake holds it (the latest per status id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub sha: String,
    pub name: String,
    /// GitLab's state: pending, running, success, failed, canceled or skipped.
    pub state: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
}

/// An issue as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    pub iid: u64,
    pub open: bool,
    pub title: String,
    pub description: Option<String>,
    pub labels: Vec<String>,
}

/// One request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// The path exactly as sent (percent-encoding kept).
    pub path: String,
    pub query: Option<String>,
    pub body: String,
}

/// A running fake GitLab; the server stops when this is dropped.
#[derive(Debug)]
pub struct FakeGitLab {
    inner: Arc<Mutex<Inner>>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitLab {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitLab {
    /// Starts a fake for the project at `project_path` (`group/project`, `group/sub/project`),
    /// numeric id [`PROJECT_ID`], accepting [`TOKEN`]; listens on 127.0.0.1, a free port.
    pub async fn start(project_path: &str) -> FakeGitLab {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Mutex::new(Inner::new(
            project_path.to_owned(),
            format!("http://{addr}"),
        )));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitLab { inner, addr, task }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT/api/v4`, the API root a client is configured with.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v4", self.addr)
    }

    /// The project's numeric id ([`PROJECT_ID`]).
    pub fn project_id(&self) -> u64 {
        PROJECT_ID
    }

    /// The project's full path, as given to [`FakeGitLab::start`].
    pub fn project_path(&self) -> String {
        self.lock().project_path.clone()
    }

    /// The token the fake accepts.
    pub fn token(&self) -> String {
        self.lock().token.clone()
    }

    /// Accepts `token` instead of [`TOKEN`] from now on.
    pub fn set_token(&self, token: &str) {
        self.lock().token = token.to_owned();
    }

    /// Opens merge request `!iid` from branch `change-IID` into `target_branch` (replacing one
    /// with the same iid).
    pub fn add_merge_request(
        &self,
        iid: u64,
        head_sha: &str,
        base_sha: &str,
        target_branch: &str,
        title: &str,
    ) {
        let mut inner = self.lock();
        let now = inner.tick();
        inner.known_shas.insert(head_sha.to_owned());
        inner.known_shas.insert(base_sha.to_owned());
        inner.mrs.insert(
            iid,
            MergeRequest {
                id: 1000 + iid,
                iid,
                title: title.to_owned(),
                description: String::new(),
                state: "opened",
                head_sha: head_sha.to_owned(),
                base_sha: base_sha.to_owned(),
                target_branch: target_branch.to_owned(),
                labels: Vec::new(),
                created: now,
                updated: now,
            },
        );
    }

    /// Pushes `sha` as the new head of merge request `!iid`.
    pub fn set_head(&self, iid: u64, sha: &str) {
        let mut inner = self.lock();
        let now = inner.tick();
        inner.known_shas.insert(sha.to_owned());
        if let Some(mr) = inner.mrs.get_mut(&iid) {
            mr.head_sha = sha.to_owned();
            mr.updated = now;
        }
    }

    /// Closes merge request `!iid`, or merges it when `merged`.
    pub fn close(&self, iid: u64, merged: bool) {
        let mut inner = self.lock();
        let now = inner.tick();
        if let Some(mr) = inner.mrs.get_mut(&iid) {
            mr.state = if merged { "merged" } else { "closed" };
            mr.updated = now;
        }
    }

    /// Adds a note to merge request `!iid` as someone else would (`system` for GitLab's own
    /// "added 1 commit" notes); returns its id.
    pub fn add_note(&self, iid: u64, body: &str, system: bool) -> u64 {
        let mut inner = self.lock();
        inner.insert_note(iid, body.to_owned(), system)
    }

    /// The user (non-system) notes on merge request `!iid`, oldest first: (id, body).
    pub fn notes(&self, iid: u64) -> Vec<(u64, String)> {
        self.lock()
            .notes
            .iter()
            .filter(|n| n.mr_iid == iid && !n.system)
            .map(|n| (n.id, n.body.clone()))
            .collect()
    }

    /// Every commit status, in creation order (a status moved from running to success is one
    /// record in its latest state).
    pub fn statuses(&self) -> Vec<StatusRecord> {
        self.lock()
            .statuses
            .iter()
            .map(|s| StatusRecord {
                sha: s.sha.clone(),
                name: s.name.clone(),
                state: s.state.clone(),
                description: s.description.clone(),
                target_url: s.target_url.clone(),
            })
            .collect()
    }

    /// The labels on merge request `!iid`, sorted (as GitLab lists them).
    pub fn labels(&self, iid: u64) -> Vec<String> {
        self.lock()
            .mrs
            .get(&iid)
            .map(|mr| mr.labels.clone())
            .unwrap_or_default()
    }

    /// Creates an issue as someone else would; returns its iid.
    pub fn add_issue(&self, title: &str, description: &str, labels: &[&str], open: bool) -> u64 {
        let mut inner = self.lock();
        let labels = labels.iter().map(|l| (*l).to_owned()).collect();
        let iid = inner.insert_issue(title.to_owned(), Some(description.to_owned()), labels);
        if let Some(issue) = inner.issues.get_mut(&iid) {
            issue.open = open;
        }
        iid
    }

    /// Every issue, by iid.
    pub fn issues(&self) -> Vec<IssueRecord> {
        self.lock()
            .issues
            .values()
            .map(|i| IssueRecord {
                iid: i.iid,
                open: i.open,
                title: i.title.clone(),
                description: i.description.clone(),
                labels: i.labels.clone(),
            })
            .collect()
    }

    /// Makes user `user_id` a member with GitLab access level `level` (10 guest, 15 planner,
    /// 20 reporter, 30 developer, 40 maintainer, 50 owner).
    pub fn set_access_level(&self, user_id: u64, level: u32) {
        self.lock().members.insert(user_id, level);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Every contract violation seen, as "METHOD PATH: what".
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Answers the next `n` requests with 429 and `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
        let mut inner = self.lock();
        inner.rate_limited = n;
        inner.retry_after = retry_after_secs;
    }
}

#[derive(Debug)]
struct MergeRequest {
    id: u64,
    iid: u64,
    title: String,
    description: String,
    state: &'static str,
    head_sha: String,
    base_sha: String,
    target_branch: String,
    labels: Vec<String>,
    created: u64,
    updated: u64,
}

#[derive(Debug)]
struct Note {
    id: u64,
    mr_iid: u64,
    body: String,
    system: bool,
    created: u64,
    updated: u64,
}

#[derive(Debug)]
struct Status {
    id: u64,
    sha: String,
    name: String,
    git_ref: Option<String>,
    state: String,
    description: Option<String>,
    target_url: Option<String>,
    created: u64,
}

#[derive(Debug)]
struct IssueState {
    id: u64,
    iid: u64,
    title: String,
    description: Option<String>,
    labels: Vec<String>,
    open: bool,
    created: u64,
    updated: u64,
}

#[derive(Debug)]
struct Inner {
    project_path: String,
    token: String,
    origin: String,
    clock: u64,
    mrs: BTreeMap<u64, MergeRequest>,
    notes: Vec<Note>,
    next_note_id: u64,
    statuses: Vec<Status>,
    known_shas: HashSet<String>,
    issues: BTreeMap<u64, IssueState>,
    members: HashMap<u64, u32>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
    rate_limited: u32,
    retry_after: u64,
}

/// What a handler answers: status, extra headers, JSON body (or none for 204).
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn message(status: StatusCode, message: &str) -> Reply {
        Reply::json(status, json!({ "message": message }))
    }

    /// GitLab's 404 for a thing that is not there (`404 Not found`, `404 Commit Not Found`).
    fn not_found(message: &str) -> Reply {
        Reply::message(StatusCode::NOT_FOUND, message)
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let reply = {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.handle(&parts.method, &parts.uri, &parts.headers, &bytes)
    };
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value.as_str());
    }
    let response = match reply.body {
        Some(Value::String(text)) if reply.status == StatusCode::TOO_MANY_REQUESTS => response
            .header("content-type", "text/plain")
            .body(Body::from(text)),
        Some(body) => response
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => response.body(Body::empty()),
    };
    response.unwrap_or_else(|_| Response::new(Body::empty()))
}

/// The endpoint table (`data/gitlab-endpoints.json`).
#[derive(Debug, Deserialize)]
struct Endpoints {
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    name: String,
    #[allow(dead_code)] // documentation, kept in the table next to each endpoint
    doc: String,
    method: String,
    path: String,
    #[serde(default)]
    paginated: bool,
    attributes: BTreeMap<String, Attribute>,
    #[serde(default)]
    at_least_one_of: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Attribute {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default, rename = "enum")]
    allowed: Option<Vec<String>>,
    #[serde(default)]
    max_chars: Option<usize>,
}

fn endpoints() -> &'static [Endpoint] {
    static TABLE: OnceLock<Endpoints> = OnceLock::new();
    &TABLE
        .get_or_init(|| serde_json::from_str(ENDPOINTS).expect("data/gitlab-endpoints.json"))
        .endpoints
}

fn template(text: &str) -> Value {
    serde_json::from_str(text).expect("data/gitlab-*.json template")
}

/// One attribute as received: typed when it came as JSON, text when from a query string or
/// a form.
#[derive(Debug, Clone)]
enum Param {
    Json(Value),
    Text(Vec<String>),
}

impl Param {
    fn as_str(&self) -> Option<&str> {
        match self {
            Param::Json(Value::String(s)) => Some(s),
            Param::Text(values) if values.len() == 1 => Some(&values[0]),
            _ => None,
        }
    }

    /// Checks the value against the documented type, enum and length.
    fn check(&self, name: &str, attribute: &Attribute) -> Result<(), String> {
        let bad_type = || format!("{name} is invalid (expected {})", attribute.kind);
        let is_int = |s: &str| {
            let digits = s.strip_prefix('-').unwrap_or(s);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        match (attribute.kind.as_str(), self) {
            ("string", Param::Json(Value::String(_))) => {}
            ("string", Param::Text(v)) if v.len() == 1 => {}
            ("integer", Param::Json(Value::Number(n))) if n.is_i64() || n.is_u64() => {}
            ("integer", Param::Text(v)) if v.len() == 1 && is_int(&v[0]) => {}
            ("boolean", Param::Json(Value::Bool(_))) => {}
            ("boolean", Param::Text(v))
                if v.len() == 1 && matches!(v[0].as_str(), "true" | "false" | "1" | "0") => {}
            ("float", Param::Json(Value::Number(_))) => {}
            ("float", Param::Text(v)) if v.len() == 1 && v[0].parse::<f64>().is_ok() => {}
            ("integer_array", Param::Json(Value::Array(items)))
                if items.iter().all(|i| i.is_u64() || i.is_i64()) => {}
            ("integer_array", Param::Text(v)) if v.iter().all(|s| is_int(s)) => {}
            _ => return Err(bad_type()),
        }
        if let Some(text) = self.as_str() {
            if let Some(allowed) = &attribute.allowed
                && !allowed.iter().any(|a| a == text)
            {
                return Err(format!(
                    "{name} does not have a valid value (`{text}`; one of {})",
                    allowed.join(", ")
                ));
            }
            let count = text.chars().count();
            if let Some(max) = attribute.max_chars
                && count > max
            {
                return Err(format!(
                    "{name} is too long ({count} characters; maximum is {max})"
                ));
            }
        }
        Ok(())
    }
}

type Params = BTreeMap<String, Param>;

/// Splits `a, b ,c` into trimmed, non-empty labels (GitLab's reading of a label list).
fn split_labels(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Fake timestamps: one second per event from 2024-05-02T09:00:00Z.
fn timestamp(tick: u64) -> String {
    let secs = 9 * 3600 + tick;
    let day = 2 + secs / 86_400;
    let rem = secs % 86_400;
    format!(
        "2024-05-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Inner {
    fn new(project_path: String, origin: String) -> Inner {
        Inner {
            project_path,
            token: TOKEN.to_owned(),
            origin,
            clock: 0,
            mrs: BTreeMap::new(),
            notes: Vec::new(),
            next_note_id: 3001,
            statuses: Vec::new(),
            known_shas: HashSet::new(),
            issues: BTreeMap::new(),
            members: HashMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            rate_limited: 0,
            retry_after: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn insert_note(&mut self, mr_iid: u64, body: String, system: bool) -> u64 {
        let now = self.tick();
        let id = self.next_note_id;
        self.next_note_id += 1;
        self.notes.push(Note {
            id,
            mr_iid,
            body,
            system,
            created: now,
            updated: now,
        });
        id
    }

    fn insert_issue(
        &mut self,
        title: String,
        description: Option<String>,
        labels: Vec<String>,
    ) -> u64 {
        let now = self.tick();
        let iid = self.issues.keys().next_back().map_or(1, |last| last + 1);
        let mut labels = labels;
        labels.sort();
        labels.dedup();
        self.issues.insert(
            iid,
            IssueState {
                id: 500 + iid,
                iid,
                title,
                description,
                labels,
                open: true,
                created: now,
                updated: now,
            },
        );
        iid
    }

    fn handle(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
        let path = uri.path().to_owned();
        self.requests.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        let violation = |inner: &mut Inner, status: StatusCode, what: String| {
            inner.violations.push(format!("{method} {path}: {what}"));
            Reply::message(status, &what)
        };

        // Rack::Attack throttles before the API authenticates.
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + self.retry_after;
            return Reply {
                status: StatusCode::TOO_MANY_REQUESTS,
                headers: vec![
                    ("retry-after", self.retry_after.to_string()),
                    ("ratelimit-limit", "600".to_owned()),
                    ("ratelimit-observed", "601".to_owned()),
                    ("ratelimit-remaining", "0".to_owned()),
                    ("ratelimit-reset", reset.to_string()),
                ],
                body: Some(Value::String("Retry later\n".to_owned())),
            };
        }

        match headers.get("private-token").map(HeaderValue::to_str) {
            None => {
                return violation(
                    self,
                    StatusCode::UNAUTHORIZED,
                    "401 Unauthorized (PRIVATE-TOKEN header missing)".to_owned(),
                );
            }
            Some(Ok(token)) if token == self.token => {}
            Some(_) => {
                return violation(
                    self,
                    StatusCode::UNAUTHORIZED,
                    "401 Unauthorized (PRIVATE-TOKEN does not match)".to_owned(),
                );
            }
        }

        // The project segment: numeric id or URL-encoded path.
        let Some(rest) = path.strip_prefix("/api/v4/projects/") else {
            return violation(
                self,
                StatusCode::NOT_FOUND,
                "404 Not Found (not under /api/v4/projects/:id)".to_owned(),
            );
        };
        let project_path = self.project_path.clone();
        if project_path.contains('/')
            && (rest == project_path || rest.starts_with(&format!("{project_path}/")))
        {
            return violation(
                self,
                StatusCode::NOT_FOUND,
                format!(
                    "404 Project Not Found (the project path must be URL-encoded: {})",
                    project_path.replace('/', "%2F")
                ),
            );
        }
        let (raw_project, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let project = percent_decode(raw_project);
        if project.as_deref() != Some(&PROJECT_ID.to_string())
            && project.as_deref() != Some(project_path.as_str())
        {
            return violation(
                self,
                StatusCode::NOT_FOUND,
                format!("404 Project Not Found (`{raw_project}` is not this project)"),
            );
        }
        let Some(segments) = tail
            .split('/')
            .map(percent_decode)
            .collect::<Option<Vec<String>>>()
        else {
            return violation(self, StatusCode::BAD_REQUEST, "malformed path".to_owned());
        };

        // The endpoint and its path parameters.
        let found = endpoints().iter().find_map(|endpoint| {
            let pattern: Vec<&str> = endpoint.path.split('/').collect();
            if endpoint.method != method.as_str() || pattern.len() != segments.len() {
                return None;
            }
            let mut vars = HashMap::new();
            for (p, s) in pattern.iter().zip(&segments) {
                match p.strip_prefix(':') {
                    Some(var) => {
                        vars.insert(var.to_owned(), s.clone());
                    }
                    None if p == s => {}
                    None => return None,
                }
            }
            Some((endpoint, vars))
        });
        let Some((endpoint, vars)) = found else {
            return violation(
                self,
                StatusCode::NOT_FOUND,
                format!("404 Not Found (no documented endpoint {method} .../{tail})"),
            );
        };
        let mut ids = HashMap::new();
        for (var, value) in &vars {
            if var == "sha" {
                if value.is_empty() {
                    return violation(self, StatusCode::BAD_REQUEST, "sha is missing".to_owned());
                }
                continue;
            }
            match value.parse::<u64>() {
                Ok(n) => {
                    ids.insert(var.as_str(), n);
                }
                Err(_) => {
                    return violation(self, StatusCode::BAD_REQUEST, format!("{var} is invalid"));
                }
            }
        }

        // Attributes from the query string and the body.
        let params = match collect_params(method, uri, headers, body) {
            Ok(p) => p,
            Err(what) => return violation(self, StatusCode::BAD_REQUEST, what),
        };
        if let Err(what) = check_params(endpoint, &params) {
            return violation(self, StatusCode::BAD_REQUEST, what);
        }

        let id = |name: &str| ids.get(name).copied().unwrap_or_default();
        match endpoint.name.as_str() {
            "get_merge_request" => self.get_merge_request(id("merge_request_iid")),
            "list_merge_requests" => self.list_merge_requests(&params),
            "update_merge_request" => self.update_merge_request(id("merge_request_iid"), &params),
            "list_notes" => self.list_notes(id("merge_request_iid"), &params),
            "create_note" => self.create_note(id("merge_request_iid"), &params),
            "update_note" => self.update_note(id("merge_request_iid"), id("note_id"), &params),
            "delete_note" => self.delete_note(id("merge_request_iid"), id("note_id")),
            "set_status" => {
                let sha = vars.get("sha").cloned().unwrap_or_default();
                self.set_status(&sha, &params)
            }
            "get_member" => self.get_member(id("user_id")),
            "list_issues" => self.list_issues(&params),
            "create_issue" => self.create_issue(&params),
            "update_issue" => self.update_issue(id("issue_iid"), &params),
            other => violation(
                self,
                StatusCode::NOT_FOUND,
                format!("endpoint {other} is in the table but not served"),
            ),
        }
    }

    fn project_web_url(&self) -> String {
        format!("{}/{}", self.origin, self.project_path)
    }

    fn merge_request_json(&self, mr: &MergeRequest) -> Value {
        let mut v = template(MERGE_REQUEST);
        let reference = format!("!{}", mr.iid);
        v["id"] = json!(mr.id);
        v["iid"] = json!(mr.iid);
        v["project_id"] = json!(PROJECT_ID);
        v["source_project_id"] = json!(PROJECT_ID);
        v["target_project_id"] = json!(PROJECT_ID);
        v["title"] = json!(mr.title);
        v["description"] = json!(mr.description);
        v["state"] = json!(mr.state);
        v["created_at"] = json!(timestamp(mr.created));
        v["updated_at"] = json!(timestamp(mr.updated));
        v["target_branch"] = json!(mr.target_branch);
        v["source_branch"] = json!(format!("change-{}", mr.iid));
        v["labels"] = json!(mr.labels);
        v["sha"] = json!(mr.head_sha);
        v["user_notes_count"] = json!(
            self.notes
                .iter()
                .filter(|n| n.mr_iid == mr.iid && !n.system)
                .count()
        );
        v["reference"] = json!(reference);
        v["references"] = json!({
            "short": reference,
            "relative": reference,
            "full": format!("{}{reference}", self.project_path),
        });
        v["web_url"] = json!(format!(
            "{}/-/merge_requests/{}",
            self.project_web_url(),
            mr.iid
        ));
        v["diff_refs"] = json!({
            "base_sha": mr.base_sha,
            "head_sha": mr.head_sha,
            "start_sha": mr.base_sha,
        });
        match mr.state {
            "merged" => {
                v["merged_at"] = json!(timestamp(mr.updated));
                v["merge_commit_sha"] = json!(mr.head_sha);
            }
            "closed" => v["closed_at"] = json!(timestamp(mr.updated)),
            _ => {}
        }
        v
    }

    fn note_json(&self, note: &Note) -> Value {
        let mut v = template(NOTE);
        v["id"] = json!(note.id);
        v["body"] = json!(note.body);
        v["system"] = json!(note.system);
        v["created_at"] = json!(timestamp(note.created));
        v["updated_at"] = json!(timestamp(note.updated));
        v["noteable_id"] = json!(self.mrs.get(&note.mr_iid).map_or(0, |mr| mr.id));
        v["noteable_iid"] = json!(note.mr_iid);
        v["project_id"] = json!(PROJECT_ID);
        v
    }

    fn issue_json(&self, issue: &IssueState) -> Value {
        let mut v = template(ISSUE);
        let web = format!("{}/-/issues/{}", self.project_web_url(), issue.iid);
        let api = format!("{}/api/v4/projects/{PROJECT_ID}", self.origin);
        v["id"] = json!(issue.id);
        v["iid"] = json!(issue.iid);
        v["project_id"] = json!(PROJECT_ID);
        v["title"] = json!(issue.title);
        v["description"] = json!(issue.description);
        v["state"] = json!(if issue.open { "opened" } else { "closed" });
        v["created_at"] = json!(timestamp(issue.created));
        v["updated_at"] = json!(timestamp(issue.updated));
        if !issue.open {
            v["closed_at"] = json!(timestamp(issue.updated));
            v["closed_by"] = v["author"].clone();
        }
        v["labels"] = json!(issue.labels);
        v["web_url"] = json!(web);
        v["_links"]["self"] = json!(format!("{api}/issues/{}", issue.iid));
        v["_links"]["notes"] = json!(format!("{api}/issues/{}/notes", issue.iid));
        v["_links"]["award_emoji"] = json!(format!("{api}/issues/{}/award_emoji", issue.iid));
        v["_links"]["project"] = json!(api);
        v["references"] = json!({
            "short": format!("#{}", issue.iid),
            "relative": format!("#{}", issue.iid),
            "full": format!("{}#{}", self.project_path, issue.iid),
        });
        v
    }

    // https://docs.gitlab.com/api/merge_requests/#get-single-mr
    fn get_merge_request(&self, iid: u64) -> Reply {
        match self.mrs.get(&iid) {
            Some(mr) => Reply::json(StatusCode::OK, self.merge_request_json(mr)),
            None => Reply::not_found("404 Not found"),
        }
    }

    // https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
    fn list_merge_requests(&self, params: &Params) -> Reply {
        let state = text(params, "state").unwrap_or("all");
        let target = text(params, "target_branch");
        let mut mrs: Vec<&MergeRequest> = self
            .mrs
            .values()
            .filter(|mr| match state {
                "all" => true,
                "opened" => mr.state == "opened",
                other => mr.state == other,
            })
            .filter(|mr| target.is_none_or(|t| t == mr.target_branch))
            .collect();
        match text(params, "order_by").unwrap_or("created_at") {
            "updated_at" => mrs.sort_by_key(|mr| (mr.updated, mr.iid)),
            "title" => mrs.sort_by(|a, b| a.title.cmp(&b.title)),
            _ => mrs.sort_by_key(|mr| (mr.created, mr.iid)),
        }
        if text(params, "sort").unwrap_or("desc") == "desc" {
            mrs.reverse();
        }
        let items = mrs
            .into_iter()
            .map(|mr| {
                let mut v = self.merge_request_json(mr);
                // The list shape: no diff_refs and none of the single-MR extras.
                if let Some(object) = v.as_object_mut() {
                    for key in [
                        "diff_refs",
                        "user",
                        "changes_count",
                        "merge_error",
                        "first_contribution",
                        "pipeline",
                        "head_pipeline",
                        "latest_build_started_at",
                        "latest_build_finished_at",
                        "first_deployed_to_production_at",
                        "subscribed",
                    ] {
                        object.remove(key);
                    }
                }
                v
            })
            .collect();
        self.paginate(items, params, "merge_requests")
    }

    // https://docs.gitlab.com/api/merge_requests/#update-mr
    fn update_merge_request(&mut self, iid: u64, params: &Params) -> Reply {
        let now = self.tick();
        let Some(mr) = self.mrs.get_mut(&iid) else {
            return Reply::not_found("404 Not found");
        };
        if let Some(title) = text(params, "title") {
            mr.title = title.to_owned();
        }
        if let Some(description) = text(params, "description") {
            mr.description = description.to_owned();
        }
        if let Some(target) = text(params, "target_branch") {
            mr.target_branch = target.to_owned();
        }
        if let Some(labels) = text(params, "labels") {
            mr.labels = split_labels(labels);
        }
        if let Some(add) = text(params, "add_labels") {
            mr.labels.extend(split_labels(add));
        }
        if let Some(remove) = text(params, "remove_labels") {
            let remove = split_labels(remove);
            mr.labels.retain(|l| !remove.contains(l));
        }
        mr.labels.sort();
        mr.labels.dedup();
        match (text(params, "state_event"), mr.state) {
            (Some("close"), "opened") => mr.state = "closed",
            (Some("reopen"), "closed") => mr.state = "opened",
            _ => {}
        }
        mr.updated = now;
        let reply = self.merge_request_json(&self.mrs[&iid]);
        Reply::json(StatusCode::OK, reply)
    }

    // https://docs.gitlab.com/api/notes/#list-all-merge-request-notes
    fn list_notes(&self, iid: u64, params: &Params) -> Reply {
        if !self.mrs.contains_key(&iid) {
            return Reply::not_found("404 Not found");
        }
        let mut notes: Vec<&Note> = self.notes.iter().filter(|n| n.mr_iid == iid).collect();
        match text(params, "order_by").unwrap_or("created_at") {
            "updated_at" => notes.sort_by_key(|n| (n.updated, n.id)),
            _ => notes.sort_by_key(|n| (n.created, n.id)),
        }
        if text(params, "sort").unwrap_or("desc") == "desc" {
            notes.reverse();
        }
        let items = notes.into_iter().map(|n| self.note_json(n)).collect();
        self.paginate(items, params, &format!("merge_requests/{iid}/notes"))
    }

    // https://docs.gitlab.com/api/notes/#create-new-merge-request-note
    fn create_note(&mut self, iid: u64, params: &Params) -> Reply {
        if !self.mrs.contains_key(&iid) {
            return Reply::not_found("404 Not found");
        }
        let body = text(params, "body").unwrap_or_default().to_owned();
        if body.trim().is_empty() {
            return Reply::json(
                StatusCode::BAD_REQUEST,
                json!({ "message": { "note": ["can't be blank"] } }),
            );
        }
        let id = self.insert_note(iid, body, false);
        let reply = self.note_json(&self.notes[self.notes.len() - 1]);
        debug_assert_eq!(reply["id"], json!(id));
        Reply::json(StatusCode::CREATED, reply)
    }

    // https://docs.gitlab.com/api/notes/#modify-existing-merge-request-note
    fn update_note(&mut self, iid: u64, note_id: u64, params: &Params) -> Reply {
        let now = self.tick();
        let Some(index) = self
            .notes
            .iter()
            .position(|n| n.id == note_id && n.mr_iid == iid)
        else {
            return Reply::message(StatusCode::NOT_FOUND, "404 Not found");
        };
        if self.notes[index].system {
            return Reply::message(StatusCode::FORBIDDEN, "403 Forbidden");
        }
        let note = &mut self.notes[index];
        note.body = text(params, "body").unwrap_or_default().to_owned();
        note.updated = now;
        let reply = self.note_json(&self.notes[index]);
        Reply::json(StatusCode::OK, reply)
    }

    // https://docs.gitlab.com/api/notes/#delete-a-merge-request-note
    fn delete_note(&mut self, iid: u64, note_id: u64) -> Reply {
        let Some(index) = self
            .notes
            .iter()
            .position(|n| n.id == note_id && n.mr_iid == iid)
        else {
            return Reply::message(StatusCode::NOT_FOUND, "404 Not found");
        };
        if self.notes[index].system {
            return Reply::message(StatusCode::FORBIDDEN, "403 Forbidden");
        }
        self.notes.remove(index);
        Reply {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    // https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
    fn set_status(&mut self, sha: &str, params: &Params) -> Reply {
        if !self.known_shas.contains(sha) {
            return Reply::not_found("404 Commit Not Found");
        }
        let state = text(params, "state").unwrap_or_default().to_owned();
        let name = text(params, "name")
            .or_else(|| text(params, "context"))
            .unwrap_or("default")
            .to_owned();
        let git_ref = text(params, "ref").map(str::to_owned);
        if let Some(url) = text(params, "target_url")
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Reply::json(
                StatusCode::BAD_REQUEST,
                json!({ "message": { "target_url": ["is blocked: Only allowed schemes are http, https"] } }),
            );
        }
        let now = self.tick();
        // GitLab moves a status with this name that is still pending or running; otherwise
        // it creates one.
        let existing = self.statuses.iter().rposition(|s| {
            s.sha == sha
                && s.name == name
                && s.git_ref == git_ref
                && matches!(s.state.as_str(), "pending" | "running")
        });
        let index = match existing {
            Some(index) => {
                let from = self.statuses[index].state.as_str();
                let event = match state.as_str() {
                    "pending" => "enqueue",
                    "running" => "run",
                    "success" => "success",
                    "failed" => "drop",
                    "canceled" => "cancel",
                    _ => "skip",
                };
                // enqueue from pending, run from running, enqueue or skip from running.
                let allowed = !matches!(
                    (from, state.as_str()),
                    ("pending", "pending") | ("running", "running" | "pending" | "skipped")
                );
                if !allowed {
                    return Reply::message(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")"
                        ),
                    );
                }
                index
            }
            None => {
                let id = 9000 + self.statuses.len() as u64;
                self.statuses.push(Status {
                    id,
                    sha: sha.to_owned(),
                    name: name.clone(),
                    git_ref: git_ref.clone(),
                    state: String::new(),
                    description: None,
                    target_url: None,
                    created: now,
                });
                self.statuses.len() - 1
            }
        };
        let status = &mut self.statuses[index];
        status.state = state;
        status.description = text(params, "description").map(str::to_owned);
        status.target_url = text(params, "target_url").map(str::to_owned);
        let mut v = template(COMMIT_STATUS);
        v["id"] = json!(status.id);
        v["sha"] = json!(status.sha);
        v["ref"] = json!(status.git_ref);
        v["status"] = json!(status.state);
        v["name"] = json!(status.name);
        v["target_url"] = json!(status.target_url);
        v["description"] = json!(status.description);
        v["created_at"] = json!(timestamp(status.created));
        v["pipeline_id"] = json!(700 + index as u64);
        if status.state != "pending" {
            v["started_at"] = json!(timestamp(status.created));
        }
        if !matches!(status.state.as_str(), "pending" | "running") {
            v["finished_at"] = json!(timestamp(now));
        }
        Reply::json(StatusCode::CREATED, v)
    }

    // https://docs.gitlab.com/api/members/#get-a-member-of-a-group-or-project-including-inherited-and-invited-members
    fn get_member(&self, user_id: u64) -> Reply {
        let Some(level) = self.members.get(&user_id) else {
            return Reply::message(StatusCode::NOT_FOUND, "404 Not found");
        };
        let mut v = template(MEMBER);
        let username = format!("user{user_id}");
        v["id"] = json!(user_id);
        v["name"] = json!(format!("User {user_id}"));
        v["web_url"] = json!(format!("{}/{username}", self.origin));
        v["username"] = json!(username);
        v["access_level"] = json!(level);
        Reply::json(StatusCode::OK, v)
    }

    // https://docs.gitlab.com/api/issues/#list-project-issues
    fn list_issues(&self, params: &Params) -> Reply {
        let state = text(params, "state").unwrap_or("all");
        let wanted = text(params, "labels");
        let mut issues: Vec<&IssueState> = self
            .issues
            .values()
            .filter(|i| match state {
                "opened" => i.open,
                "closed" => !i.open,
                _ => true,
            })
            .filter(|i| match wanted {
                None => true,
                Some(w) if w.eq_ignore_ascii_case("none") => i.labels.is_empty(),
                Some(w) if w.eq_ignore_ascii_case("any") => !i.labels.is_empty(),
                Some(w) => split_labels(w).iter().all(|l| i.labels.contains(l)),
            })
            .collect();
        match text(params, "order_by").unwrap_or("created_at") {
            "updated_at" => issues.sort_by_key(|i| (i.updated, i.iid)),
            "title" => issues.sort_by(|a, b| a.title.cmp(&b.title)),
            _ => issues.sort_by_key(|i| (i.created, i.iid)),
        }
        if text(params, "sort").unwrap_or("desc") == "desc" {
            issues.reverse();
        }
        let items = issues.into_iter().map(|i| self.issue_json(i)).collect();
        self.paginate(items, params, "issues")
    }

    // https://docs.gitlab.com/api/issues/#new-issue
    fn create_issue(&mut self, params: &Params) -> Reply {
        let title = text(params, "title").unwrap_or_default().to_owned();
        if title.trim().is_empty() {
            return Reply::json(
                StatusCode::BAD_REQUEST,
                json!({ "message": { "title": ["can't be blank"] } }),
            );
        }
        let description = text(params, "description").map(str::to_owned);
        let labels = text(params, "labels").map(split_labels).unwrap_or_default();
        let iid = self.insert_issue(title, description, labels);
        let reply = self.issue_json(&self.issues[&iid]);
        Reply::json(StatusCode::CREATED, reply)
    }

    // https://docs.gitlab.com/api/issues/#edit-an-issue
    fn update_issue(&mut self, iid: u64, params: &Params) -> Reply {
        let now = self.tick();
        let Some(issue) = self.issues.get_mut(&iid) else {
            return Reply::not_found("404 Not found");
        };
        if let Some(title) = text(params, "title") {
            issue.title = title.to_owned();
        }
        if let Some(description) = text(params, "description") {
            issue.description = Some(description.to_owned());
        }
        if let Some(labels) = text(params, "labels") {
            issue.labels = split_labels(labels);
        }
        if let Some(add) = text(params, "add_labels") {
            issue.labels.extend(split_labels(add));
        }
        if let Some(remove) = text(params, "remove_labels") {
            let remove = split_labels(remove);
            issue.labels.retain(|l| !remove.contains(l));
        }
        issue.labels.sort();
        issue.labels.dedup();
        // An event that does not change the state is ignored, as GitLab does.
        match text(params, "state_event") {
            Some("close") => issue.open = false,
            Some("reopen") => issue.open = true,
            _ => {}
        }
        issue.updated = now;
        let reply = self.issue_json(&self.issues[&iid]);
        Reply::json(StatusCode::OK, reply)
    }

    /// One page of `items` with GitLab's pagination headers.
    fn paginate(&self, items: Vec<Value>, params: &Params, resource: &str) -> Reply {
        let page = text(params, "page")
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let per_page = text(params, "per_page")
            .and_then(|p| p.parse::<usize>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(20)
            .min(100);
        let total = items.len();
        let total_pages = total.div_ceil(per_page).max(1);
        let body: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let next = if page < total_pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        let link_to = |p: usize, rel: &str| {
            format!(
                "<{}/api/v4/projects/{PROJECT_ID}/{resource}?page={p}&per_page={per_page}>; rel=\"{rel}\"",
                self.origin
            )
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link_to(page - 1, "prev"));
        }
        if page < total_pages {
            links.push(link_to(page + 1, "next"));
        }
        links.push(link_to(1, "first"));
        links.push(link_to(total_pages, "last"));
        Reply {
            status: StatusCode::OK,
            headers: vec![
                ("x-page", page.to_string()),
                ("x-per-page", per_page.to_string()),
                ("x-next-page", next),
                ("x-prev-page", prev),
                ("x-total", total.to_string()),
                ("x-total-pages", total_pages.to_string()),
                ("link", links.join(", ")),
            ],
            body: Some(Value::Array(body)),
        }
    }
}

/// A single text value of an attribute (JSON string or the one query/form value).
fn text<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Param::as_str)
}

/// Query string and body (JSON object or form) attributes, as GitLab merges them.
fn collect_params(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, String> {
    let mut params = Params::new();
    let add_text = |params: &mut Params, key: String, value: String| -> Result<(), String> {
        let (key, array) = match key.strip_suffix("[]") {
            Some(k) => (k.to_owned(), true),
            None => (key, false),
        };
        match params.get_mut(&key) {
            Some(Param::Text(values)) if array => values.push(value),
            Some(_) => return Err(format!("{key} is given more than once")),
            None => {
                params.insert(key, Param::Text(vec![value]));
            }
        }
        Ok(())
    };
    if let Some(query) = uri.query() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| format!("malformed query string: {e}"))?;
        for (key, value) in pairs {
            add_text(&mut params, key, value)?;
        }
    }
    if body.is_empty() {
        return Ok(params);
    }
    if matches!(*method, Method::GET | Method::DELETE) {
        return Err(format!("{method} requests take no body"));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| format!("malformed JSON body: {e}"))?;
            let Value::Object(object) = value else {
                return Err("the JSON body must be an object".to_owned());
            };
            for (key, value) in object {
                if params.contains_key(&key) {
                    return Err(format!("{key} is given more than once"));
                }
                params.insert(key, Param::Json(value));
            }
        }
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8")?;
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text)
                .map_err(|e| format!("malformed form body: {e}"))?;
            for (key, value) in pairs {
                add_text(&mut params, key, value)?;
            }
        }
        other => {
            return Err(format!(
                "body of content type `{other}`; GitLab reads JSON or form bodies"
            ));
        }
    }
    Ok(params)
}

/// Required, unknown, typed, enumerated and length-limited attributes of `endpoint`.
fn check_params(endpoint: &Endpoint, params: &Params) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, attribute) in &endpoint.attributes {
        if attribute.required && !params.contains_key(name) {
            problems.push(format!("{name} is missing"));
        }
    }
    for (name, value) in params {
        let paging = endpoint.paginated && matches!(name.as_str(), "page" | "per_page");
        let attribute = if paging {
            &Attribute {
                kind: "integer".to_owned(),
                required: false,
                allowed: None,
                max_chars: None,
            }
        } else if let Some(attribute) = endpoint.attributes.get(name) {
            attribute
        } else {
            problems.push(format!("{name} is not a documented attribute"));
            continue;
        };
        if let Err(problem) = value.check(name, attribute) {
            problems.push(problem);
        }
    }
    if !endpoint.at_least_one_of.is_empty()
        && !endpoint
            .at_least_one_of
            .iter()
            .any(|a| params.contains_key(a))
    {
        problems.push(format!(
            "{} are missing, at least one parameter must be provided",
            endpoint.at_least_one_of.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_table_parses_and_types_are_known() {
        for endpoint in endpoints() {
            assert!(endpoint.doc.starts_with("https://docs.gitlab.com/api/"));
            for (name, attribute) in &endpoint.attributes {
                assert!(
                    ["string", "integer", "boolean", "float", "integer_array"]
                        .contains(&attribute.kind.as_str()),
                    "{}: {name}",
                    endpoint.name
                );
            }
        }
        for data in [MERGE_REQUEST, NOTE, COMMIT_STATUS, MEMBER, ISSUE] {
            assert!(template(data).is_object());
        }
    }

    #[test]
    fn timestamps_carry_over() {
        assert_eq!(timestamp(0), "2024-05-02T09:00:00.000Z");
        assert_eq!(timestamp(3661), "2024-05-02T10:01:01.000Z");
        assert_eq!(timestamp(15 * 3600), "2024-05-03T00:00:00.000Z");
    }

    #[test]
    fn labels_split_like_gitlab() {
        assert_eq!(
            split_labels(" centossrv: destructive ,b,,"),
            vec!["centossrv: destructive".to_owned(), "b".to_owned()]
        );
    }
}
