//! `GET /nodes/{name}/blame?resource=ID[&limit=N]`: one resource's history on the node, newest
//! first, as one table (the same timeline as `centossrv blame`, `crate::blame`): commits
//! that changed it with their authors and pull requests, apply runs with its outcome, drift.
//! Five bounded statements (up to three more for suggestions), plus the Git reads when the
//! page knows the repository. An unknown resource answers 404 with links to close names.

use super::WebState;
use super::error::PageError;
use super::format::{commit_link, node_link, segment, time, time_or_never, with_query, word_badge};
use super::layout::{Nav, page as shell};
use super::query::FormQuery;
use crate::blame::properties::Property;
use crate::blame::timeline::{ApplyEntry, CommitEntry, DriftEntry};
use crate::blame::{self, BlameError, Entry, Timeline};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// The link to `resource`'s blame on `node`.
pub fn blame_href(node: &str, resource: &str) -> String {
    with_query(
        &format!("/nodes/{}/blame", segment(node)),
        &[("resource", resource)],
    )
}

pub async fn page(
    State(st): State<WebState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = FormQuery::parse(raw.as_deref(), &["resource", "limit"])?;
    let Some(resource) = q.one("resource")? else {
        return Err(PageError::BadRequest(
            "say which resource: `?resource=type:name`, e.g. `?resource=file:/etc/motd` \
             (the node's page links each of its resources)"
                .into(),
        ));
    };
    let limit = q.limit(blame::DEFAULT_LIMIT, blame::MAX_LIMIT)?;
    let request = blame::Request {
        node: name.clone(),
        resource: resource.to_owned(),
        limit,
        repo: st.repo.clone(),
    };
    let timeline = match blame::gather(&st.store, &request).await {
        Ok(t) => t,
        Err(BlameError::Store(e)) => return Err(PageError::Store(e)),
        Err(e @ BlameError::UnknownNode { .. }) => {
            let text = e.to_string();
            let end = if text.ends_with('?') { "" } else { "." };
            return Err(PageError::NotFound(format!("There is {text}{end}")));
        }
        Err(e) => return Ok(unknown_resource(&name, resource, &e)),
    };
    let title = format!("{} on {}", timeline.resource, timeline.node);
    Ok(shell(&title, Nav::Nodes, body(&timeline, limit)).into_response())
}

/// 404 with the close names as links.
fn unknown_resource(node: &str, resource: &str, e: &BlameError) -> Response {
    let reason = match e {
        BlameError::BadResource { reason, .. } => {
            format!("“{resource}” is not a resource id: {reason}.")
        }
        _ => format!("Node {node} has no history of “{resource}”."),
    };
    let body = html! {
        h1 { "No such resource" }
        p role="alert" { (reason) }
        @if !e.suggestions().is_empty() {
            p id="suggest-h" { "Did you mean:" }
            ul aria-labelledby="suggest-h" id="suggestions" {
                @for s in e.suggestions() {
                    li { a href=(blame_href(node, s)) { code { (s) } } }
                }
            }
        }
        p { "Back to " (node_link(node)) "." }
    };
    (
        StatusCode::NOT_FOUND,
        shell("No such resource", Nav::Nodes, body),
    )
        .into_response()
}

fn body(t: &Timeline, limit: u32) -> Markup {
    html! {
        h1 { "History of " code { (t.resource) } " on " (node_link(&t.node)) }
        p id="current" {
            @match &t.current {
                Some(r) => { "Desired now, declared in " (r.origin.role) ": " code { (r.origin.file) ":" (r.origin.line) } "." }
                None => { "Not desired at the node's newest compiled commit (removed resources are left as they are, unmanaged)." }
            }
        }
        @if let Some(note) = &t.git_note {
            p class="muted" id="git-note" { (note) }
        }
        form method="get" action={ "/nodes/" (segment(&t.node)) "/blame" } class="filters" {
            label for="resource" { "Resource" }
            input type="text" id="resource" name="resource" value=(t.resource) required;
            button type="submit" { "Show" }
        }
        @if t.entries.is_empty() {
            p class="muted" { "Nothing recorded for this resource in the entries read." }
        } @else {
            div class="table-wrap" role="region" aria-labelledby="blame-caption" tabindex="0" {
                table id="blame" {
                    caption id="blame-caption" { (t.entries.len()) " entries, newest first" }
                    thead {
                        tr {
                            th scope="col" { "When" }
                            th scope="col" { "What" }
                            th scope="col" { "Details" }
                        }
                    }
                    tbody {
                        @for e in &t.entries {
                            @match e {
                                Entry::Commit(c) => { (commit_row(c)) }
                                Entry::Apply(a) => { (apply_row(a)) }
                                Entry::Drift(d) => { (drift_row(d)) }
                            }
                        }
                    }
                }
            }
        }
        @if t.truncated {
            p id="older" {
                "Older entries not shown"
                @if let Some(at) = &t.shown_since { " (before " (time(at)) ")" }
                ". "
                @if limit < blame::MAX_LIMIT {
                    a href=(with_query(
                        &format!("/nodes/{}/blame", segment(&t.node)),
                        &[("resource", &t.resource), ("limit", &(limit.saturating_mul(4)).min(blame::MAX_LIMIT).to_string())],
                    )) { "Show more" }
                }
            }
        }
    }
}

fn commit_row(c: &CommitEntry) -> Markup {
    html! {
        tr class="blame-commit" {
            th scope="row" { (time(&c.at)) }
            td { "Commit " (commit_link(&c.commit)) " " (word_badge(c.change.as_str())) }
            td {
                @if let Some(g) = &c.git {
                    p class="summary" { (g.summary) }
                    p {
                        @if let Some(pr) = &c.pr {
                            (if pr.forge == "gitlab" { "Merge request " } else { "Pull request " })
                            (pr.to_string()) ". "
                        }
                        "Author " (g.author.to_string())
                        "; committed by " (g.committer.to_string())
                        @if let Some(t) = &g.committer.time { " " (time(t)) }
                        @if g.merge { " (merge commit)" }
                        "."
                    }
                }
                (properties(&c.properties))
                @if let Some(d) = &c.declared_in {
                    p class="muted" { "Declared in " code { (d) } }
                }
            }
        }
    }
}

fn apply_row(a: &ApplyEntry) -> Markup {
    html! {
        tr class="blame-apply" {
            th scope="row" { (time(&a.at)) }
            td {
                "Apply run #" (a.run) " of " (commit_link(&a.commit)) " "
                (word_badge(a.status.unwrap_or("running")))
            }
            td {
                "Resource: " (word_badge(a.outcome.unwrap_or("no result")))
                @if let Some(x) = a.action { " (" (x) ")" }
                @if let Some(r) = &a.reason { "; " (r) }
                @if let Some(m) = &a.message { p { "Run: " (m) } }
                p class="muted" {
                    "Finished " (time_or_never(a.finished_at.as_ref()))
                    @if let Some(by) = &a.approved_by { "; plan approved by " (by) }
                    "."
                }
            }
        }
    }
}

fn drift_row(d: &DriftEntry) -> Markup {
    html! {
        tr class="blame-drift" {
            th scope="row" { (time(&d.at)) }
            td {
                span class="badge b-warn" { "drift" }
                @if let Some(c) = &d.commit { " against " (commit_link(c)) }
            }
            td { "Restoring it would " (d.action) ". " (properties(&d.properties)) }
        }
    }
}

/// Changed properties as `name: before → after` (display strings; content by digest only).
fn properties(list: &[Property]) -> Markup {
    html! {
        @if !list.is_empty() {
            ul class="props" {
                @for p in list {
                    li {
                        code { (p.name) } ": "
                        @if p.before.is_none() && p.after.is_none() {
                            "changed"
                        } @else {
                            (p.before.as_deref().unwrap_or("—")) " → " (p.after.as_deref().unwrap_or("—"))
                        }
                    }
                }
            }
        }
    }
}
