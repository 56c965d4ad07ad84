//! `GET /nodes/{name}`: one node: state, labels, facts, its desired resources with what the
//! agent last observed (through the one `state::plan`), each linking to its history (the
//! blame view), the last apply run with per-resource results, the approval in force, and
//! its newest drift events. Five statements (plus the run's results), whatever the fleet's
//! size. File content is never shown: properties are the plan's display values, where
//! content appears as a digest.

use super::WebState;
use super::blame::blame_href;
use super::error::PageError;
use super::format::{commit_link, state_badge, time, time_or_never, word_badge};
use super::layout::{Nav, page as shell};
use super::nodes::labels;
use axum::extract::{Path, State};
use maud::{Markup, html};
use state::{Change, DesiredState, ObservedState};
use std::collections::HashMap;
use store::{ApplyRun, DriftEvent};

/// Drift events shown on the page (the API pages through all of them).
const RECENT_DRIFT: u32 = 20;

pub async fn page(
    State(st): State<WebState>,
    Path(name): Path<String>,
) -> Result<Markup, PageError> {
    let status = st
        .store
        .node_status(&name)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("There is no node named “{name}”.")))?;
    let observed = st.store.observed(&name).await?;
    // The desired state shown: at the commit in force, else the approved one.
    let desired_commit = st
        .live
        .current_commit()
        .or_else(|| status.approval.as_ref().map(|a| a.commit.clone()));
    let desired = match &desired_commit {
        Some(sha) => st.store.desired_for(sha, &name).await?,
        None => None,
    };
    let last_run = st.store.apply_runs_for(&name, 1).await?.into_iter().next();
    let drift = st.store.recent_drift(&name, RECENT_DRIFT).await?;

    let node = &status.node;
    let body = html! {
        h1 { "Node " (node.name) }
        dl class="facts" id="summary" {
            dt { "State" }
            dd { (state_badge(status.state)) }
            dt { "Labels" }
            dd {
                @if node.labels.is_empty() { span class="muted" { "none" } } @else { (labels(&node.labels)) }
            }
            dt { "In the inventory" }
            dd { @if node.in_inventory { "yes" } @else { "no (known only from its agent, or removed)" } }
            dt { "Last report" }
            dd { (time_or_never(node.reported_at.as_ref())) }
            dt { "Applied commit" }
            dd {
                @match &status.applied_commit {
                    Some(c) => { (commit_link(c)) }
                    None => { span class="muted" { "none" } }
                }
            }
            dt { "Approved plan" }
            dd {
                @match &status.approval {
                    Some(a) => {
                        code title=(a.digest) { (a.digest.get(..19).unwrap_or(&a.digest)) "…" }
                        " for " (commit_link(&a.commit)) ", by " (a.approved_by) " " (time(&a.approved_at))
                    }
                    None => { span class="muted" { "none" } }
                }
            }
            dt { "Drift since the last applied run" }
            dd {
                (status.drift_since_applied)
                @if status.drift_since_applied == 1 { " event" } @else { " events" }
            }
        }

        h2 id="facts-h" { "Facts" }
        @match node.facts.as_ref().filter(|f| !f.is_empty()) {
            Some(facts) => {
                dl class="facts" aria-labelledby="facts-h" {
                    @for (k, v) in facts.iter().filter(|(k, _)| k.as_str() != GENERATIONS_FACT) {
                        dt { (k) }
                        dd { (fact_text(v)) }
                    }
                }
            }
            None => { p class="muted" { "The agent has not reported facts." } }
        }

        h2 id="resources-h" { "Resources" }
        (resources(&node.name, desired.as_ref(), desired_commit.as_deref(), observed.as_ref().map(|o| &o.state)))

        h2 id="run-h" { "Last apply run" }
        (run(last_run.as_ref()))

        h2 id="drift-h" { "Drift history" }
        (drift_table(&drift))

        h2 id="generations-h" { "Generations" }
        (generations(node.facts.as_ref().and_then(|f| f.get(GENERATIONS_FACT))))
    };
    Ok(shell(&format!("Node {}", node.name), Nav::Nodes, body))
}

/// The fact under which the agent's heartbeat reports its newest generations (see
/// `agent::link::session::GENERATIONS_FACT`).
const GENERATIONS_FACT: &str = "centossrv_generations";

/// The generations the agent reported: what each apply replaced, kept on the node for
/// `centossrv-agent rollback`.
fn generations(reported: Option<&serde_json::Value>) -> Markup {
    let Some(list) = reported.and_then(serde_json::Value::as_array) else {
        return html! {
            p class="muted" {
                "The agent has not reported its generations (agents report them with each "
                "heartbeat). On the node: " code { "centossrv-agent generations" } "."
            }
        };
    };
    if list.is_empty() {
        return html! { p class="muted" { "No generations: nothing has been applied on this node yet." } };
    }
    let text = |g: &serde_json::Value, key: &str| -> String {
        match &g[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    };
    html! {
        div class="table-wrap" role="region" aria-labelledby="generations-h" tabindex="0" {
            table id="generations" {
                caption { "Newest first, as the agent last reported them; roll back on the node with "
                    code { "centossrv-agent rollback [N]" } }
                thead { tr {
                    th scope="col" class="num" { "#" }
                    th scope="col" { "Created" }
                    th scope="col" { "Kind" }
                    th scope="col" { "Commit" }
                    th scope="col" class="num" { "Files" }
                    th scope="col" class="num" { "Packages" }
                    th scope="col" class="num" { "Services" }
                    th scope="col" { "Finished" }
                } }
                tbody {
                    @for g in list {
                        tr {
                            td class="num" { (text(g, "number")) }
                            td { (text(g, "created_at")) }
                            td { (text(g, "kind")) }
                            td { code { (text(g, "commit").chars().take(12).collect::<String>()) } }
                            td class="num" { (text(g, "paths")) }
                            td class="num" { (text(g, "packages")) }
                            td class="num" { (text(g, "services")) }
                            td {
                                @match g["finished"].as_object() {
                                    Some(f) => {
                                        (f.get("finished_at").and_then(|v| v.as_str()).unwrap_or(""))
                                        " (" (f.get("changed").map(|v| v.to_string()).unwrap_or_default()) " changed, "
                                        (f.get("failed").map(|v| v.to_string()).unwrap_or_default()) " failed)"
                                    }
                                    None => { span class="badge b-bad" { "interrupted" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A fact's value: text as is, an object as `key: value` pairs, anything else as compact
/// JSON (escaped like all text).
fn fact_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", fact_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// The desired resources in apply order with what the last observation says of each; each
/// id links to its history (the blame view).
fn resources(
    node: &str,
    desired: Option<&DesiredState>,
    commit: Option<&str>,
    observed: Option<&ObservedState>,
) -> Markup {
    let Some(desired) = desired else {
        return html! {
            p class="muted" {
                "No desired state is stored for this node"
                @if let Some(c) = commit { " at commit " (commit_link(c)) }
                "."
            }
        };
    };
    let plan = observed.map(|o| state::plan(Some(desired), Some(o), None));
    let changes: HashMap<&state::ResourceId, &Change> = plan
        .as_ref()
        .map(|p| p.changes.iter().map(|c| (&c.id, c)).collect())
        .unwrap_or_default();
    html! {
        div class="table-wrap" role="region" aria-labelledby="resources-caption" tabindex="0" {
            table id="resources" {
                caption id="resources-caption" {
                    (desired.resources.len()) " resources desired"
                    @if let Some(c) = commit { " at " (commit_link(c)) }
                    ", in apply order"
                }
                thead {
                    tr {
                        th scope="col" { "Resource" }
                        th scope="col" { "Declared in" }
                        th scope="col" { "Observed" }
                        th scope="col" { "Differences" }
                    }
                }
                tbody {
                    @for r in &desired.resources {
                        tr {
                            th scope="row" {
                                a href=(blame_href(node, &r.id.to_string())) title="History of this resource" {
                                    code { (r.id.to_string()) }
                                }
                            }
                            td { (r.origin.role) ": " code { (r.origin.file) ":" (r.origin.line) } }
                            @match (observed, changes.get(&r.id)) {
                                (None, _) => {
                                    td { (word_badge("unknown")) }
                                    td { span class="muted" { "the agent has not reported" } }
                                }
                                (Some(_), None) => {
                                    td { (word_badge("ok")) " in sync" }
                                    td {}
                                }
                                (Some(_), Some(c)) => {
                                    td {
                                        @if c.unobserved { (word_badge("unknown")) " not observed" }
                                        @else { (word_badge("pending")) " would " (c.action.as_str()) }
                                    }
                                    td { (properties(c)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A change's properties as `name: before → after` (values are display strings; content is
/// a digest).
fn properties(c: &Change) -> Markup {
    html! {
        @if c.sensitive { span class="badge b-none" { "sensitive" } " " }
        @for (i, p) in c.properties.iter().enumerate() {
            @if i > 0 { "; " }
            code { (p.name) } ": "
            (p.before.as_deref().unwrap_or("—")) " → " (p.after.as_deref().unwrap_or("—"))
        }
    }
}

fn run(run: Option<&ApplyRun>) -> Markup {
    let Some(r) = run else {
        return html! { p class="muted" { "No apply run yet." } };
    };
    html! {
        dl class="facts" {
            dt { "Run" }
            dd { "#" (r.id) " of " (commit_link(&r.commit)) }
            dt { "Status" }
            dd { (word_badge(r.status.map_or("running", |s| s.as_str()))) }
            dt { "Started" }
            dd { (time(&r.started_at)) }
            dt { "Finished" }
            dd { (time_or_never(r.finished_at.as_ref())) }
            @if let Some(m) = &r.message {
                dt { "Message" }
                dd { (m) }
            }
        }
        @if r.results.is_empty() {
            p class="muted" { "No per-resource results." }
        } @else {
            div class="table-wrap" role="region" aria-labelledby="results-caption" tabindex="0" {
                table id="results" {
                    caption id="results-caption" { "Per-resource results, in apply order" }
                    thead {
                        tr {
                            th scope="col" { "Resource" }
                            th scope="col" { "Action" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "Reason" }
                            th scope="col" class="num" { "Time (ms)" }
                        }
                    }
                    tbody {
                        @for x in &r.results {
                            tr {
                                th scope="row" { code { (x.resource.to_string()) } }
                                td { (x.action.map_or("none", |a| a.as_str())) }
                                td { (word_badge(x.outcome.as_str())) }
                                td { (x.reason.as_deref().unwrap_or("")) }
                                td class="num" { (x.duration_ms) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn drift_table(events: &[DriftEvent]) -> Markup {
    if events.is_empty() {
        return html! { p class="muted" { "No drift recorded." } };
    }
    html! {
        div class="table-wrap" role="region" aria-labelledby="drift-caption" tabindex="0" {
            table id="drift" {
                caption id="drift-caption" { "Newest " (events.len()) " drift events, newest first" }
                thead {
                    tr {
                        th scope="col" { "Detected" }
                        th scope="col" { "Resource" }
                        th scope="col" { "Would" }
                        th scope="col" { "Properties" }
                    }
                }
                tbody {
                    @for e in events {
                        tr {
                            td { (time(&e.detected_at)) }
                            th scope="row" { code { (e.resource.to_string()) } }
                            td { (e.change.action.as_str()) }
                            td { (properties(&e.change)) }
                        }
                    }
                }
            }
        }
    }
}
