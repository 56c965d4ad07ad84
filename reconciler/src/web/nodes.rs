//! `GET /nodes`: nodes in name order with their state, filtered by labels and state through
//! a plain GET form (`?label=role=web&state=drifted`), in keyset pages (`?after=NAME`).
//! Two statements per page (rows, then the page's labels), whatever the fleet's size.

use super::WebState;
use super::error::PageError;
use super::format::{commit_link, node_link, state_badge, time_or_never, with_query, word_badge};
use super::layout::{Nav, page as shell};
use super::query::FormQuery;
use axum::extract::{RawQuery, State};
use maud::{Markup, html};
use store::{NodeFilter, NodeState};

/// Rows per page unless `limit` says otherwise.
pub const PAGE: u32 = 100;
/// The largest `limit`.
const MAX_LIMIT: u32 = 500;

pub async fn page(
    State(st): State<WebState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let q = FormQuery::parse(raw.as_deref(), &["label", "state", "after", "limit"])?;
    let mut filter = NodeFilter::default();
    // Labels as typed: `key=value`, several separated by commas or given as repeated fields.
    let mut label_text = Vec::new();
    for given in q.all("label") {
        for pair in given.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    PageError::BadRequest(format!("label filter `{pair}` is not key=value"))
                })?;
            if let Some(old) = filter.labels.insert(key.to_owned(), value.to_owned())
                && old != value
            {
                return Err(PageError::BadRequest(format!(
                    "label `{key}` given twice with different values"
                )));
            }
            label_text.push(format!("{key}={value}"));
        }
    }
    let state = q
        .one("state")?
        .map(|s| {
            NodeState::parse(s)
                .ok_or_else(|| PageError::BadRequest(format!("`{s}` is not a node state")))
        })
        .transpose()?;
    let after = q.one("after")?;
    let limit = q.limit(PAGE, MAX_LIMIT)?;
    let rows = st
        .store
        .list_node_status(&filter, state, after, limit)
        .await?;

    let label_value = label_text.join(", ");
    let mut keep: Vec<(&str, &str)> = Vec::new();
    if !label_value.is_empty() {
        keep.push(("label", &label_value));
    }
    if let Some(state) = state {
        keep.push(("state", state.as_str()));
    }
    let limit_text = limit.to_string();
    if limit != PAGE {
        keep.push(("limit", &limit_text));
    }
    let filtered = !keep.is_empty() && (state.is_some() || !label_value.is_empty());
    let next_href = rows.next.as_deref().map(|next| {
        let mut pairs = keep.clone();
        pairs.push(("after", next));
        with_query("/nodes", &pairs)
    });

    let body = html! {
        h1 { "Nodes" }
        form class="filters" method="get" action="/nodes" role="search" aria-label="Filter nodes" {
            div {
                label for="f-label" { "Labels" }
                input id="f-label" name="label" type="text" value=(label_value)
                    placeholder="role=web, env=prod" aria-describedby="f-label-hint"
                    autocomplete="off" spellcheck="false";
                span id="f-label-hint" class="hint" { "key=value; separate several with commas" }
            }
            div {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" selected[state.is_none()] { "any state" }
                    @for s in NodeState::ALL {
                        option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            div {
                button type="submit" { "Filter" }
            }
            @if filtered {
                div { a href="/nodes" { "Clear filters" } }
            }
        }
        p class="muted" id="nodes-summary" {
            (rows.items.len()) " nodes on this page"
            @if after.is_some() { ", after " code { (after.unwrap_or_default()) } }
            @if rows.next.is_some() { "; more on the next page" }
            "."
        }
        @if rows.items.is_empty() {
            p class="notice" { "No node matches these filters." }
        } @else {
            div class="table-wrap" role="region" aria-labelledby="nodes-caption" tabindex="0" {
                table id="nodes" {
                    caption id="nodes-caption" { "Nodes in name order" }
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "State" }
                            th scope="col" { "Labels" }
                            th scope="col" { "Last report" }
                            th scope="col" { "Last run" }
                            th scope="col" { "Applied commit" }
                            th scope="col" class="num" { "Drift" }
                        }
                    }
                    tbody {
                        @for s in &rows.items {
                            tr data-node=(s.node.name) data-state=(s.state.as_str()) {
                                th scope="row" { (node_link(&s.node.name)) }
                                td { (state_badge(s.state)) }
                                td { (labels(&s.node.labels)) }
                                td { (time_or_never(s.node.reported_at.as_ref())) }
                                td {
                                    @match &s.last_run {
                                        Some(r) => {
                                            (word_badge(r.status.map_or("running", |x| x.as_str())))
                                            " " (time_or_never(r.finished_at.as_ref()))
                                        }
                                        None => { span class="muted" { "none" } }
                                    }
                                }
                                td {
                                    @match &s.applied_commit {
                                        Some(c) => { (commit_link(c)) }
                                        None => { span class="muted" { "none" } }
                                    }
                                }
                                td class="num" { (s.drift_since_applied) }
                            }
                        }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            ul {
                @if after.is_some() {
                    li { a href=(with_query("/nodes", &keep)) { "First page" } }
                }
                @if let Some(href) = &next_href {
                    li { a href=(href) rel="next" { "Next page" } }
                }
            }
        }
    };
    Ok(shell("Nodes", Nav::Nodes, body))
}

/// Labels as `key=value` chips.
pub fn labels(labels: &std::collections::BTreeMap<String, String>) -> Markup {
    html! {
        @for (k, v) in labels {
            span class="label" { (k) "=" (v) }
        }
    }
}
