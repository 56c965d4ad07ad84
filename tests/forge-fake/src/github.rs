//! A strict fake GitHub REST API for one repository. Every request is checked against the
//! vendored subset of GitHub's OpenAPI description ([`openapi`]): operation (method + path
//! template), path and query parameters, JSON body, and the `Authorization` header; anything
//! wrong is answered like GitHub would (404, 401, 400, 422) *and* recorded as a violation.
//! Answers start from the operation's documented example, carry the fake's state (see
//! [`resources`]) and are validated against the documented response schema.
//!
//! Issues and pull requests share one number space, as on GitHub. Lists honour
//! `per_page`/`page` and carry `Link` headers. Faults: [`FakeGitHub::rate_limit_next`].

mod openapi;
mod resources;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use openapi::Spec;
use resources::Reply;

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The raw query string (`""` when none).
    pub query: String,
    pub status: u16,
}

/// A check run or commit status, in the order they were created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub head_sha: String,
    /// Check run name / commit status context.
    pub name: String,
    /// Check run: its conclusion when completed, else its status (`in_progress`);
    /// commit status: its state (`success`, `pending`, ...).
    pub state_or_conclusion: String,
    /// Check run `output.title` / commit status description.
    pub title: String,
    /// Check run `output.summary` (empty for commit statuses).
    pub summary: String,
    /// `details_url` / `target_url`.
    pub details_url: Option<String>,
    /// `check_run` or `status`.
    pub kind: &'static str,
}

/// An issue (not a pull request) as the fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRecord {
    pub number: u64,
    pub open: bool,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub head_sha: String,
    pub base_sha: String,
    pub base_ref: String,
    pub title: String,
    pub open: bool,
    pub merged: bool,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub title: String,
    pub body: String,
    pub open: bool,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CommentState {
    pub issue: u64,
    pub body: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// 429 with `Retry-After`.
    TooMany { retry_after: u64 },
    /// 403 "secondary rate limit" with `Retry-After`.
    Secondary { retry_after: u64 },
    /// 403 with `x-ratelimit-remaining: 0` and a reset time, no `Retry-After`.
    Primary { reset_in: u64 },
}

#[derive(Debug)]
struct App {
    app_id: u64,
    installation_id: u64,
    public_key_pem: String,
}

/// The fake's whole state; `resources` reads and writes it under one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub owner: String,
    pub repo: String,
    pub base_url: String,
    next_number: u64,
    pub next_id: u64,
    pub pulls: BTreeMap<u64, Pull>,
    pub issues: BTreeMap<u64, Issue>,
    pub labels: BTreeMap<u64, Vec<String>>,
    pub label_ids: HashMap<String, u64>,
    pub comments: BTreeMap<u64, CommentState>,
    pub statuses: Vec<StatusRecord>,
    /// login -> role name (`admin`, `maintain`, `write`, `triage`, `read`, `none`, custom).
    pub permissions: HashMap<String, String>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
    faults: VecDeque<Fault>,
    tokens: HashSet<String>,
    app: Option<App>,
    token_lifetime_secs: u64,
    /// Installation tokens handed out: token -> expiry (unix seconds).
    issued: HashMap<String, u64>,
    token_exchanges: usize,
}

impl State {
    /// The next issue/PR number (shared, as on GitHub).
    pub fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    pub fn violation(&mut self, message: String) {
        self.violations.push(message);
    }

    pub fn exists(&self, number: u64) -> bool {
        self.pulls.contains_key(&number) || self.issues.contains_key(&number)
    }
}

/// A running fake GitHub for `owner/repo`; stopped when dropped.
#[derive(Debug)]
pub struct FakeGitHub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// Starts the fake on `127.0.0.1:0` for repository `owner/repo`. Until
    /// [`FakeGitHub::accept_token`] or [`FakeGitHub::enable_app`] is called, any non-empty
    /// token is accepted.
    pub async fn start(owner: &str, repo: &str) -> FakeGitHub {
        // Compile the description before serving, so a broken subset fails loudly here.
        let _ = Spec::get();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            base_url: format!("http://{addr}"),
            next_number: 1,
            next_id: 1000,
            pulls: BTreeMap::new(),
            issues: BTreeMap::new(),
            labels: BTreeMap::new(),
            label_ids: HashMap::new(),
            comments: BTreeMap::new(),
            statuses: Vec::new(),
            permissions: HashMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            faults: VecDeque::new(),
            tokens: HashSet::new(),
            app: None,
            token_lifetime_secs: 3600,
            issued: HashMap::new(),
            token_exchanges: 0,
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeGitHub {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, the API root (like `https://api.github.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on only this token (and others accepted, and installation tokens the fake
    /// issued) authenticates.
    pub fn accept_token(&self, token: &str) {
        self.lock().tokens.insert(token.to_owned());
    }

    /// Acts as GitHub for App `app_id` installed as `installation_id`: the access-token
    /// endpoint requires an RS256 JWT signed with the key whose public half is
    /// `public_key_pem`, issued by `app_id`, valid for at most 10 minutes; it answers with a
    /// fresh installation token, which later requests must carry.
    pub fn enable_app(&self, app_id: u64, installation_id: u64, public_key_pem: &str) {
        self.lock().app = Some(App {
            app_id,
            installation_id,
            public_key_pem: public_key_pem.to_owned(),
        });
    }

    /// Lifetime of the installation tokens issued from now on (default one hour).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().token_lifetime_secs = secs;
    }

    /// How many installation tokens were issued.
    pub fn token_exchanges(&self) -> usize {
        self.lock().token_exchanges
    }

    /// Adds an open pull request (its number is taken from the shared issue/PR numbers).
    pub fn add_pull(
        &self,
        number: u64,
        head_sha: &str,
        base_sha: &str,
        base_ref: &str,
        title: &str,
    ) {
        let mut state = self.lock();
        assert!(
            !state.exists(number),
            "issue or pull request #{number} exists"
        );
        state.next_number = state.next_number.max(number + 1);
        state.pulls.insert(
            number,
            Pull {
                head_sha: head_sha.to_owned(),
                base_sha: base_sha.to_owned(),
                base_ref: base_ref.to_owned(),
                title: title.to_owned(),
                open: true,
                merged: false,
                created_at: resources::now(),
            },
        );
    }

    /// A push to the pull request's branch.
    pub fn set_pull_head(&self, number: u64, sha: &str) {
        let mut state = self.lock();
        let pull = state.pulls.get_mut(&number).expect("no such pull request");
        pull.head_sha = sha.to_owned();
    }

    /// Closes the pull request, merged or not.
    pub fn close_pull(&self, number: u64, merged: bool) {
        let mut state = self.lock();
        let pull = state.pulls.get_mut(&number).expect("no such pull request");
        pull.open = false;
        pull.merged = merged;
    }

    /// Comments on issue or pull request `number`, oldest first: `(id, body)`.
    pub fn comments(&self, number: u64) -> Vec<(u64, String)> {
        self.lock()
            .comments
            .iter()
            .filter(|(_, c)| c.issue == number)
            .map(|(id, c)| (*id, c.body.clone()))
            .collect()
    }

    /// Adds a comment as someone else would (for tests of reading comments).
    pub fn add_comment(&self, number: u64, body: &str) -> u64 {
        let mut state = self.lock();
        assert!(state.exists(number), "no issue or pull request #{number}");
        let id = state.next_id;
        state.next_id += 1;
        state.comments.insert(
            id,
            CommentState {
                issue: number,
                body: body.to_owned(),
                created_at: resources::now(),
            },
        );
        id
    }

    /// Every check run and commit status created, oldest first.
    pub fn statuses(&self) -> Vec<StatusRecord> {
        self.lock().statuses.clone()
    }

    /// Labels on issue or pull request `number`, in the order they were added.
    pub fn labels(&self, number: u64) -> Vec<String> {
        self.lock().labels.get(&number).cloned().unwrap_or_default()
    }

    /// Every issue (pull requests excluded), by number.
    pub fn issues(&self) -> Vec<IssueRecord> {
        let state = self.lock();
        state
            .issues
            .iter()
            .map(|(number, issue)| IssueRecord {
                number: *number,
                open: issue.open,
                title: issue.title.clone(),
                body: issue.body.clone(),
                labels: state.labels.get(number).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Gives `login` a role on the repository: `admin`, `maintain`, `write`, `triage`,
    /// `read`, `none` or a custom role name. Logins never given one are unknown users, and
    /// GitHub answers 404 for them.
    pub fn set_permission(&self, login: &str, role: &str) {
        self.lock()
            .permissions
            .insert(login.to_owned(), role.to_owned());
    }

    /// Every request answered, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Every contract violation seen (requests GitHub would refuse or that break its
    /// description, and any response of the fake that breaks it).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The next `n` requests are refused as rate limited with `Retry-After:
    /// retry_after_secs`: alternately 403 "secondary rate limit" and 429, starting with 403.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let mut state = self.lock();
        for i in 0..n {
            state.faults.push_back(if i % 2 == 0 {
                Fault::Secondary {
                    retry_after: retry_after_secs,
                }
            } else {
                Fault::TooMany {
                    retry_after: retry_after_secs,
                }
            });
        }
    }

    /// The next `n` requests are refused by the primary rate limit: 403 with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `reset_in_secs` from now.
    pub fn primary_rate_limit_next(&self, n: usize, reset_in_secs: u64) {
        let mut state = self.lock();
        for _ in 0..n {
            state.faults.push_back(Fault::Primary {
                reset_in: reset_in_secs,
            });
        }
    }

    /// The version of `@octokit/openapi` the checked description comes from.
    pub fn openapi_version() -> &'static str {
        &Spec::get().version
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn handle(AxumState(state): AxumState<Arc<Mutex<State>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let reply = answer(&mut state, &method, &path, &query, &parts.headers, &bytes);
    state.requests.push(RequestRecord {
        method,
        path,
        query,
        status: reply.status,
    });
    into_response(reply)
}

fn into_response(reply: Reply) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let reset = (unix_now() + 3600).to_string();
    let defaults = [
        ("x-github-api-version-selected", "2022-11-28"),
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4999"),
        ("x-ratelimit-used", "1"),
        ("x-ratelimit-resource", "core"),
    ];
    let mut headers = HeaderMap::new();
    for (k, v) in defaults {
        headers.insert(k, HeaderValue::from_static(v));
    }
    if let Ok(v) = HeaderValue::from_str(&reset) {
        headers.insert("x-ratelimit-reset", v);
    }
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(k, v);
        }
    }
    let body = match &reply.body {
        Some(value) => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    if let Some(h) = builder.headers_mut() {
        h.extend(headers);
    }
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Checks one request and answers it.
fn answer(
    state: &mut State,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let what = format!("{method} {path}");
    if let Some(fault) = state.faults.pop_front() {
        return fault_reply(fault);
    }
    let spec = Spec::get();
    let Some(matched) = spec.find(method, path) else {
        state.violation(format!("{what}: no such operation in GitHub's description"));
        return Reply::error(404, "Not Found");
    };
    let op = matched.op;
    let what = format!("{what} ({})", op.id);

    // Headers GitHub documents for every request.
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("user-agent").is_none_or(str::is_empty) {
        state.violation(format!(
            "{what}: no User-Agent (GitHub refuses such requests)"
        ));
        return Reply::error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        );
    }
    match header("accept") {
        Some(accept)
            if accept.contains("application/vnd.github") || accept.contains("application/json") => {
        }
        other => state.violation(format!(
            "{what}: Accept is {other:?}, not application/vnd.github+json"
        )),
    }
    if let Some(version) = header("x-github-api-version")
        && version != "2022-11-28"
    {
        state.violation(format!(
            "{what}: unsupported X-GitHub-Api-Version {version:?}"
        ));
        return Reply::error(400, "Unsupported API version");
    }

    // Authentication.
    let credential = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("token "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    });
    let Some(credential) = credential else {
        state.violation(format!(
            "{what}: no `Authorization: Bearer|token ...` header"
        ));
        return Reply::error(401, "Requires authentication");
    };
    let is_token_exchange = op.id == "apps/create-installation-access-token";
    let credential = credential.to_owned();
    if is_token_exchange {
        if let Err(problem) = check_jwt(state, &credential) {
            state.violation(format!("{what}: {problem}"));
            return Reply::error(401, "A JSON web token could not be decoded");
        }
    } else if let Err(problem) = check_token(state, &credential) {
        state.violation(format!("{what}: {problem}"));
        return Reply::error(401, "Bad credentials");
    }

    // Parameters.
    let query_pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
        Ok(pairs) => pairs,
        Err(e) => {
            state.violation(format!("{what}: unreadable query string: {e}"));
            return Reply::error(400, "Bad query string");
        }
    };
    let (path_problems, query_problems) = op.check_params(&matched.path, &query_pairs);
    if let (Some(owner), Some(repo)) = (matched.path.get("owner"), matched.path.get("repo"))
        && (*owner != state.owner || *repo != state.repo)
    {
        state.violation(format!(
            "{what}: repository {owner}/{repo} is not the fake's"
        ));
        return Reply::error(404, "Not Found");
    }
    if !path_problems.is_empty() {
        for p in path_problems {
            state.violation(format!("{what}: {p}"));
        }
        return Reply::error(404, "Not Found");
    }
    if !query_problems.is_empty() {
        for p in &query_problems {
            state.violation(format!("{what}: {p}"));
        }
        return Reply::invalid(&query_problems.join("; "));
    }

    // Body.
    let json_body = if body.is_empty() {
        None
    } else {
        if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            state.violation(format!(
                "{what}: a body without Content-Type: application/json"
            ));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => Some(v),
            Err(e) => {
                state.violation(format!("{what}: body is not JSON: {e}"));
                return Reply::error(400, "Problems parsing JSON");
            }
        }
    };
    let body_problems = op.check_body(json_body.as_ref());
    if !body_problems.is_empty() {
        for p in &body_problems {
            state.violation(format!("{what}: {p}"));
        }
        return Reply::invalid(&body_problems.join("; "));
    }
    let body = json_body.unwrap_or(Value::Null);

    let reply = if is_token_exchange {
        issue_token(state, op, &matched.path)
    } else {
        resources::dispatch(state, op, &matched.path, &query_pairs, &body, path)
    };
    if reply.status == op.success
        && let Some(body) = &reply.body
    {
        for p in op.check_response(body) {
            state.violation(format!(
                "{what}: the fake's own answer breaks the description: {p}"
            ));
        }
    }
    reply
}

fn fault_reply(fault: Fault) -> Reply {
    match fault {
        Fault::TooMany { retry_after } => Reply {
            status: 429,
            body: Some(
                json!({"message": "Too Many Requests", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api", "status": "429"}),
            ),
            headers: vec![("retry-after".into(), retry_after.to_string())],
        },
        Fault::Secondary { retry_after } => Reply {
            status: 403,
            body: Some(
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits", "status": "403"}),
            ),
            headers: vec![("retry-after".into(), retry_after.to_string())],
        },
        Fault::Primary { reset_in } => Reply {
            status: 403,
            body: Some(
                json!({"message": "API rate limit exceeded for installation ID 1.", "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api", "status": "403"}),
            ),
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-used".into(), "5000".into()),
                (
                    "x-ratelimit-reset".into(),
                    (unix_now() + reset_in).to_string(),
                ),
            ],
        },
    }
}

fn check_token(state: &mut State, token: &str) -> Result<(), String> {
    if token.split('.').count() == 3 && token.starts_with("ey") {
        return Err("a JWT (App credential) used on a repository endpoint; exchange it for an installation token first".into());
    }
    if let Some(expiry) = state.issued.get(token) {
        return if *expiry > unix_now() {
            Ok(())
        } else {
            Err("an expired installation token was used (not refreshed)".into())
        };
    }
    if state.tokens.contains(token) || (state.tokens.is_empty() && state.app.is_none()) {
        Ok(())
    } else {
        Err("unknown token".into())
    }
}

fn check_jwt(state: &mut State, jwt: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: Value,
        iat: u64,
        exp: u64,
    }
    let app = state
        .app
        .as_ref()
        .ok_or("no GitHub App is configured in the fake")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("malformed JWT: {e}"))?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(format!(
            "JWT algorithm is {:?}, GitHub requires RS256",
            header.alg
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes())
        .map_err(|e| format!("the fake's App public key: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub takes the App id as a number (octocrab sends one) or a
    // string, while jsonwebtoken only counts a string as present.
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
        .map_err(|e| format!("JWT refused: {e}"))?
        .claims;
    let iss_ok = match &claims.iss {
        Value::Number(n) => n.as_u64() == Some(app.app_id),
        Value::String(s) => s == &app.app_id.to_string(),
        _ => false,
    };
    if !iss_ok {
        return Err(format!(
            "JWT issuer {} is not App {}",
            claims.iss, app.app_id
        ));
    }
    let now = unix_now();
    if claims.exp > now + 600 + 5 {
        return Err("JWT expires more than 10 minutes from now".into());
    }
    if claims.iat > now + 60 {
        return Err("JWT issued in the future".into());
    }
    Ok(())
}

fn issue_token(
    state: &mut State,
    op: &openapi::Operation,
    path: &BTreeMap<String, String>,
) -> Reply {
    let installation = path
        .get("installation_id")
        .and_then(|s| s.parse::<u64>().ok());
    let expected = state.app.as_ref().map(|a| a.installation_id);
    if installation != expected {
        state.violation(format!(
            "access token requested for installation {installation:?}, not {expected:?}"
        ));
        return Reply::error(404, "Not Found");
    }
    state.token_exchanges += 1;
    let token = format!("ghs_fake{:08}{:012}", state.token_exchanges, unix_now());
    let expiry = unix_now() + state.token_lifetime_secs;
    state.issued.insert(token.clone(), expiry);
    let mut body = op.example();
    body["token"] = json!(token);
    body["expires_at"] = json!(resources::timestamp(expiry));
    Reply::new(op.success, body)
}
