//! The fake GitHub's operations on its state: each answer starts from the operation's
//! documented example and has the fake's values patched in (numbers, ids, bodies, states,
//! labels, permissions); lists are paginated with `Link` headers like GitHub's.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::openapi::Operation;
use super::{CommentState, Issue, State, StatusRecord};

/// GitHub's limit on comment and issue bodies.
const MAX_BODY: usize = 65536;

/// An answer: status, JSON body, extra headers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    /// GitHub's `basic-error` shape.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::new(
            status,
            json!({
                "message": message,
                "documentation_url": "https://docs.github.com/rest",
                "status": status.to_string(),
            }),
        )
    }

    /// 422 in GitHub's `validation-error` shape.
    pub fn invalid(message: &str) -> Reply {
        Reply::new(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{"code": "invalid", "message": message}],
                "documentation_url": "https://docs.github.com/rest",
                "status": "422",
            }),
        )
    }
}

/// Now, as GitHub writes times (`2011-04-14T16:00:49Z`).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A unix time, as GitHub writes times.
pub(crate) fn timestamp(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(i64::MAX), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = value.pointer_mut(pointer) {
        *slot = new;
    }
}

/// Runs operation `op` (already checked) on the state.
pub(crate) fn dispatch(
    state: &mut State,
    op: &Operation,
    path: &BTreeMap<String, String>,
    query: &[(String, String)],
    body: &Value,
    raw_path: &str,
) -> Reply {
    let number = |key: &str| {
        path.get(key)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let q = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match op.id.as_str() {
        "pulls/get" => match state.pulls.contains_key(&number("pull_number")) {
            true => Reply::new(op.success, pull_json(state, op, number("pull_number"))),
            false => Reply::error(404, "Not Found"),
        },
        "pulls/list" => {
            let wanted = q("state").unwrap_or("open");
            let mut numbers: Vec<u64> = state
                .pulls
                .iter()
                .filter(|(_, p)| wanted == "all" || p.open == (wanted == "open"))
                .map(|(n, _)| *n)
                .collect();
            if q("direction") != Some("asc") {
                numbers.reverse();
            }
            let items = numbers.iter().map(|n| pull_json(state, op, *n)).collect();
            paginate(state, op, items, query, raw_path)
        }
        "issues/list-for-repo" => {
            let wanted = q("state").unwrap_or("open");
            let labels: Vec<&str> = q("labels")
                .map(|l| {
                    l.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let mut numbers: Vec<u64> = state
                .issues
                .iter()
                .map(|(n, i)| (*n, i.open))
                .chain(state.pulls.iter().map(|(n, p)| (*n, p.open)))
                .filter(|(_, open)| wanted == "all" || *open == (wanted == "open"))
                .map(|(n, _)| n)
                .filter(|n| {
                    let have = state.labels.get(n).cloned().unwrap_or_default();
                    labels.iter().all(|l| have.iter().any(|h| h == l))
                })
                .collect();
            numbers.sort_unstable();
            if q("direction") != Some("asc") {
                numbers.reverse();
            }
            let items = numbers.iter().map(|n| issue_json(state, op, *n)).collect();
            paginate(state, op, items, query, raw_path)
        }
        "issues/create" => {
            let title = match &body["title"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let text = body["body"].as_str().unwrap_or_default().to_owned();
            if text.chars().count() > MAX_BODY {
                return too_long(state, op, "body");
            }
            let n = state.take_number();
            state.issues.insert(
                n,
                Issue {
                    title,
                    body: text,
                    open: true,
                    created_at: now(),
                },
            );
            let labels = label_names(&body["labels"]);
            for label in labels {
                add_label(state, n, &label);
            }
            let mut reply = Reply::new(op.success, issue_json(state, op, n));
            reply.headers.push((
                "location".into(),
                format!(
                    "{}/repos/{}/{}/issues/{n}",
                    state.base_url, state.owner, state.repo
                ),
            ));
            reply
        }
        "issues/update" => {
            let n = number("issue_number");
            if let Some(text) = body["body"].as_str()
                && text.chars().count() > MAX_BODY
            {
                return too_long(state, op, "body");
            }
            if let Some(issue) = state.issues.get_mut(&n) {
                if let Some(text) = body["body"].as_str() {
                    issue.body = text.to_owned();
                }
                if let Some(title) = body["title"].as_str() {
                    issue.title = title.to_owned();
                }
                match body["state"].as_str() {
                    Some("open") => issue.open = true,
                    Some("closed") => issue.open = false,
                    _ => {}
                }
            } else if let Some(pull) = state.pulls.get_mut(&n) {
                match body["state"].as_str() {
                    Some("open") => pull.open = true,
                    Some("closed") => pull.open = false,
                    _ => {}
                }
            } else {
                return Reply::error(404, "Not Found");
            }
            if body.get("labels").is_some() {
                state.labels.remove(&n);
                for label in label_names(&body["labels"]) {
                    add_label(state, n, &label);
                }
            }
            Reply::new(op.success, issue_json(state, op, n))
        }
        "issues/list-comments" => {
            let n = number("issue_number");
            if !state.exists(n) {
                return Reply::error(404, "Not Found");
            }
            let ids: Vec<u64> = state
                .comments
                .iter()
                .filter(|(_, c)| c.issue == n)
                .map(|(id, _)| *id)
                .collect();
            let items = ids.iter().map(|id| comment_json(state, op, *id)).collect();
            paginate(state, op, items, query, raw_path)
        }
        "issues/create-comment" => {
            let n = number("issue_number");
            if !state.exists(n) {
                return Reply::error(404, "Not Found");
            }
            let text = body["body"].as_str().unwrap_or_default();
            if text.chars().count() > MAX_BODY {
                return too_long(state, op, "body");
            }
            let id = state.next_id;
            state.next_id += 1;
            state.comments.insert(
                id,
                CommentState {
                    issue: n,
                    body: text.to_owned(),
                    created_at: now(),
                },
            );
            let mut reply = Reply::new(op.success, comment_json(state, op, id));
            reply.headers.push((
                "location".into(),
                format!(
                    "{}/repos/{}/{}/issues/comments/{id}",
                    state.base_url, state.owner, state.repo
                ),
            ));
            reply
        }
        "issues/update-comment" => {
            let id = number("comment_id");
            let text = body["body"].as_str().unwrap_or_default();
            if text.chars().count() > MAX_BODY {
                return too_long(state, op, "body");
            }
            match state.comments.get_mut(&id) {
                Some(comment) => {
                    comment.body = text.to_owned();
                    Reply::new(op.success, comment_json(state, op, id))
                }
                None => Reply::error(404, "Not Found"),
            }
        }
        "issues/delete-comment" => match state.comments.remove(&number("comment_id")) {
            Some(_) => Reply::empty(op.success),
            None => Reply::error(404, "Not Found"),
        },
        "issues/list-labels-on-issue" => {
            let n = number("issue_number");
            if !state.exists(n) {
                return Reply::error(404, "Not Found");
            }
            let items = labels_json(state, n);
            paginate(
                state,
                op,
                items.as_array().cloned().unwrap_or_default(),
                query,
                raw_path,
            )
        }
        "issues/add-labels" => {
            let n = number("issue_number");
            if !state.exists(n) {
                return Reply::error(404, "Not Found");
            }
            let names = label_names(&body["labels"]);
            if names.is_empty() {
                state.violation(format!("{}: no labels given", op.id));
                return Reply::invalid("no labels given");
            }
            for name in names {
                add_label(state, n, &name);
            }
            Reply::new(op.success, labels_json(state, n))
        }
        "issues/remove-label" => {
            let n = number("issue_number");
            let name = path.get("name").cloned().unwrap_or_default();
            let Some(have) = state.labels.get_mut(&n) else {
                return Reply::error(404, "Label does not exist");
            };
            let before = have.len();
            have.retain(|l| *l != name);
            if have.len() == before {
                return Reply::error(404, "Label does not exist");
            }
            Reply::new(op.success, labels_json(state, n))
        }
        "checks/create" => check_run(state, op, body),
        "repos/create-commit-status" => commit_status(state, op, path, body),
        "repos/get-collaborator-permission-level" => {
            let login = path.get("username").cloned().unwrap_or_default();
            let Some(role) = state.permissions.get(&login).cloned() else {
                return Reply::error(404, "Not Found");
            };
            // `permission` is the legacy base role: maintain -> write, triage -> read.
            let permission = match role.as_str() {
                "admin" => "admin",
                "maintain" | "write" => "write",
                "triage" | "read" => "read",
                "none" => "none",
                _ => "read",
            };
            let mut out = op.example();
            out["permission"] = json!(permission);
            out["role_name"] = json!(role);
            set(&mut out, "/user/login", json!(login));
            out["user"]["role_name"] = json!(role);
            let (pull, triage, push, maintain, admin) = match role.as_str() {
                "admin" => (true, true, true, true, true),
                "maintain" => (true, true, true, true, false),
                "write" => (true, true, true, false, false),
                "triage" => (true, true, false, false, false),
                "read" => (true, false, false, false, false),
                _ => (false, false, false, false, false),
            };
            out["user"]["permissions"] = json!({
                "pull": pull, "triage": triage, "push": push, "maintain": maintain, "admin": admin
            });
            Reply::new(op.success, out)
        }
        other => {
            state.violation(format!("the fake does not implement {other}"));
            Reply::error(501, "Not Implemented")
        }
    }
}

fn too_long(state: &mut State, op: &Operation, field: &str) -> Reply {
    state.violation(format!(
        "{}: `{field}` is longer than GitHub's {MAX_BODY} characters",
        op.id
    ));
    Reply::invalid(&format!(
        "{field} is too long (maximum is {MAX_BODY} characters)"
    ))
}

/// Label names from a request's `labels` (strings or `{name}` objects).
fn label_names(labels: &Value) -> Vec<String> {
    labels
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().or_else(|| l["name"].as_str()))
        .map(str::to_owned)
        .collect()
}

fn add_label(state: &mut State, number: u64, name: &str) {
    if !state.label_ids.contains_key(name) {
        let id = state.next_id;
        state.next_id += 1;
        state.label_ids.insert(name.to_owned(), id);
    }
    let have = state.labels.entry(number).or_default();
    if !have.iter().any(|l| l == name) {
        have.push(name.to_owned());
    }
}

fn labels_json(state: &State, number: u64) -> Value {
    let names = state.labels.get(&number).cloned().unwrap_or_default();
    Value::Array(names.iter().map(|name| label_json(state, name)).collect())
}

fn label_json(state: &State, name: &str) -> Value {
    let id = state.label_ids.get(name).copied().unwrap_or(0);
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    json!({
        "id": id,
        "node_id": format!("LA_fake{id}"),
        "url": format!("{}/repos/{}/{}/labels/{encoded}", state.base_url, state.owner, state.repo),
        "name": name,
        "description": null,
        "color": "ededed",
        "default": false,
    })
}

fn repo_url(state: &State) -> String {
    format!("{}/repos/{}/{}", state.base_url, state.owner, state.repo)
}

fn html_url(state: &State) -> String {
    format!("https://github.example/{}/{}", state.owner, state.repo)
}

/// The operation's example item: the first element for lists.
fn template(op: &Operation) -> Value {
    match op.example() {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    }
}

fn pull_json(state: &State, op: &Operation, number: u64) -> Value {
    let pull = &state.pulls[&number];
    let mut out = template(op);
    let api = format!("{}/pulls/{number}", repo_url(state));
    let html = format!("{}/pull/{number}", html_url(state));
    out["id"] = json!(number + 1_000_000);
    out["number"] = json!(number);
    out["url"] = json!(api);
    out["html_url"] = json!(html);
    out["diff_url"] = json!(format!("{html}.diff"));
    out["patch_url"] = json!(format!("{html}.patch"));
    out["issue_url"] = json!(format!("{}/issues/{number}", repo_url(state)));
    out["title"] = json!(pull.title);
    out["state"] = json!(if pull.open { "open" } else { "closed" });
    out["labels"] = labels_json(state, number);
    out["created_at"] = json!(pull.created_at);
    out["updated_at"] = json!(pull.created_at);
    out["closed_at"] = if pull.open { Value::Null } else { json!(now()) };
    out["merged_at"] = if pull.merged {
        json!(now())
    } else {
        Value::Null
    };
    if out.get("merged").is_some() {
        out["merged"] = json!(pull.merged);
    }
    // The documented example lists a reviewer team that breaks the schema (no `type`).
    out["requested_teams"] = json!([]);
    out["requested_reviewers"] = json!([]);
    set(&mut out, "/head/sha", json!(pull.head_sha));
    set(&mut out, "/head/ref", json!(format!("pr-{number}")));
    set(&mut out, "/base/sha", json!(pull.base_sha));
    set(&mut out, "/base/ref", json!(pull.base_ref));
    set(
        &mut out,
        "/base/label",
        json!(format!("{}:{}", state.owner, pull.base_ref)),
    );
    out
}

fn issue_json(state: &State, op: &Operation, number: u64) -> Value {
    let mut out = template(op);
    let url = format!("{}/issues/{number}", repo_url(state));
    out["id"] = json!(number + 2_000_000);
    out["number"] = json!(number);
    out["url"] = json!(url);
    out["repository_url"] = json!(repo_url(state));
    out["labels_url"] = json!(format!("{url}/labels{{/name}}"));
    out["comments_url"] = json!(format!("{url}/comments"));
    out["events_url"] = json!(format!("{url}/events"));
    out["labels"] = labels_json(state, number);
    out["comments"] = json!(
        state
            .comments
            .values()
            .filter(|c| c.issue == number)
            .count()
    );
    if let Some(issue) = state.issues.get(&number) {
        out["html_url"] = json!(format!("{}/issues/{number}", html_url(state)));
        out["title"] = json!(issue.title);
        out["body"] = json!(issue.body);
        out["state"] = json!(if issue.open { "open" } else { "closed" });
        out["state_reason"] = if issue.open {
            Value::Null
        } else {
            json!("completed")
        };
        out["closed_at"] = if issue.open {
            Value::Null
        } else {
            json!(now())
        };
        out["created_at"] = json!(issue.created_at);
        out["updated_at"] = json!(issue.created_at);
        if let Some(obj) = out.as_object_mut() {
            obj.remove("pull_request");
        }
    } else if let Some(pull) = state.pulls.get(&number) {
        let html = format!("{}/pull/{number}", html_url(state));
        out["html_url"] = json!(html);
        out["title"] = json!(pull.title);
        out["body"] = Value::Null;
        out["state"] = json!(if pull.open { "open" } else { "closed" });
        out["state_reason"] = Value::Null;
        out["closed_at"] = if pull.open { Value::Null } else { json!(now()) };
        out["created_at"] = json!(pull.created_at);
        out["updated_at"] = json!(pull.created_at);
        out["pull_request"] = json!({
            "url": format!("{}/pulls/{number}", repo_url(state)),
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "merged_at": if pull.merged { json!(now()) } else { Value::Null },
        });
    }
    out
}

fn comment_json(state: &State, op: &Operation, id: u64) -> Value {
    let comment = &state.comments[&id];
    let mut out = template(op);
    let n = comment.issue;
    out["id"] = json!(id);
    out["node_id"] = json!(format!("IC_fake{id}"));
    out["url"] = json!(format!("{}/issues/comments/{id}", repo_url(state)));
    out["html_url"] = json!(format!("{}/issues/{n}#issuecomment-{id}", html_url(state)));
    out["issue_url"] = json!(format!("{}/issues/{n}", repo_url(state)));
    out["body"] = json!(comment.body);
    out["created_at"] = json!(comment.created_at);
    out["updated_at"] = json!(now());
    out
}

fn check_run(state: &mut State, op: &Operation, body: &Value) -> Reply {
    let status = body["status"].as_str().unwrap_or("queued");
    let conclusion = body["conclusion"].as_str();
    if status == "completed" && conclusion.is_none() {
        state.violation(format!(
            "{}: status `completed` without a conclusion",
            op.id
        ));
        return Reply::invalid("conclusion is required when status is completed");
    }
    if body.get("output").is_some()
        && (body["output"]["title"].as_str().is_none()
            || body["output"]["summary"].as_str().is_none())
    {
        state.violation(format!("{}: output needs both title and summary", op.id));
        return Reply::invalid("output requires title and summary");
    }
    let id = state.next_id;
    state.next_id += 1;
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    let head_sha = body["head_sha"].as_str().unwrap_or_default().to_owned();
    let completed = conclusion.is_some();
    let record = StatusRecord {
        head_sha: head_sha.clone(),
        name: name.clone(),
        state_or_conclusion: conclusion.unwrap_or(status).to_owned(),
        title: body["output"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        summary: body["output"]["summary"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        details_url: body["details_url"].as_str().map(str::to_owned),
        kind: "check_run",
    };
    let mut out = op.example();
    out["id"] = json!(id);
    out["node_id"] = json!(format!("CR_fake{id}"));
    out["url"] = json!(format!("{}/check-runs/{id}", repo_url(state)));
    out["html_url"] = json!(format!("{}/runs/{id}", html_url(state)));
    out["name"] = json!(name);
    out["head_sha"] = json!(head_sha);
    out["external_id"] = json!("");
    out["details_url"] = json!(record.details_url);
    out["status"] = json!(if completed { "completed" } else { status });
    out["conclusion"] = conclusion.map_or(Value::Null, |c| json!(c));
    out["started_at"] = json!(now());
    out["completed_at"] = if completed { json!(now()) } else { Value::Null };
    out["output"]["title"] = json!(record.title);
    out["output"]["summary"] = json!(record.summary);
    out["output"]["text"] = Value::Null;
    out["output"]["annotations_count"] = json!(0);
    out["output"]["annotations_url"] =
        json!(format!("{}/check-runs/{id}/annotations", repo_url(state)));
    state.statuses.push(record);
    Reply::new(op.success, out)
}

fn commit_status(
    state: &mut State,
    op: &Operation,
    path: &BTreeMap<String, String>,
    body: &Value,
) -> Reply {
    let description = body["description"].as_str().unwrap_or_default();
    if description.chars().count() > 140 {
        state.violation(format!("{}: description longer than 140 characters", op.id));
        return Reply::invalid("description is too long (maximum is 140 characters)");
    }
    let sha = path.get("sha").cloned().unwrap_or_default();
    let id = state.next_id;
    state.next_id += 1;
    let context = body["context"].as_str().unwrap_or("default").to_owned();
    let target_url = body["target_url"].as_str().map(str::to_owned);
    let record = StatusRecord {
        head_sha: sha.clone(),
        name: context.clone(),
        state_or_conclusion: body["state"].as_str().unwrap_or_default().to_owned(),
        title: description.to_owned(),
        summary: String::new(),
        details_url: target_url.clone(),
        kind: "status",
    };
    let mut out = op.example();
    out["id"] = json!(id);
    out["url"] = json!(format!("{}/statuses/{sha}", repo_url(state)));
    out["state"] = json!(record.state_or_conclusion);
    out["description"] = json!(description);
    out["target_url"] = json!(target_url);
    out["context"] = json!(context);
    out["created_at"] = json!(now());
    out["updated_at"] = json!(now());
    state.statuses.push(record);
    let mut reply = Reply::new(op.success, out);
    reply.headers.push((
        "location".into(),
        format!("{}/statuses/{sha}", repo_url(state)),
    ));
    reply
}

/// One page of `items` by `per_page` (default 30, at most 100) and `page` (from 1), with a
/// `Link` header naming the first, previous, next and last pages like GitHub's.
fn paginate(
    state: &mut State,
    op: &Operation,
    items: Vec<Value>,
    query: &[(String, String)],
    raw_path: &str,
) -> Reply {
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = get("per_page").unwrap_or(30).clamp(1, 100);
    let page = get("page").unwrap_or(1).max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut reply = Reply::new(op.success, Value::Array(chunk));
    if last > 1 {
        let url = |p: usize| {
            let mut pairs: Vec<(String, String)> = query
                .iter()
                .filter(|(k, _)| k != "page" && k != "per_page")
                .cloned()
                .collect();
            pairs.push(("per_page".into(), per_page.to_string()));
            pairs.push(("page".into(), p.to_string()));
            let q = serde_urlencoded::to_string(&pairs).unwrap_or_default();
            format!("{}{raw_path}?{q}", state.base_url)
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
        }
        if page < last {
            links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
            links.push(format!("<{}>; rel=\"last\"", url(last)));
        }
        if page > 1 {
            links.push(format!("<{}>; rel=\"first\"", url(1)));
        }
        reply.headers.push(("link".into(), links.join(", ")));
    }
    reply
}
