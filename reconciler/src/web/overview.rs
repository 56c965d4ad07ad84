//! `GET /`: the fleet at a glance: nodes by state, the commit in force, the last compile
//! result, connected agents, the newest audit entries. Five statements (four when the counts
//! are reused, see `counts.rs`), whatever the fleet's size. The region marked `data-live` is
//! what the script refreshes.

use super::WebState;
use super::error::PageError;
use super::format::{commit_link, state_badge, time, with_query, word_badge};
use super::layout::{Nav, page as shell};
use axum::extract::State;
use maud::{Markup, html};
use store::{CommitRecord, NodeState};

/// Audit entries shown on the overview.
const RECENT: u32 = 10;

pub async fn page(State(st): State<WebState>) -> Result<Markup, PageError> {
    let counts = st.counts.get(&st.store).await?;
    let total: u64 = counts.values().sum();
    let current_sha = st.live.current_commit();
    let current = match &current_sha {
        Some(sha) => st.store.commit(sha).await?,
        None => None,
    };
    let latest = st
        .store
        .list_commits(None, 1)
        .await?
        .items
        .into_iter()
        .next();
    let recent = st.store.audit_list_newest(None, RECENT).await?.items;
    let connected = st.live.connected().len();
    let queue = st.live.queue_depth();

    let body = html! {
        h1 { "Fleet overview" }
        p id="live-status" role="status" aria-live="polite" {}
        div data-live {
            section aria-labelledby="states-h" {
                h2 id="states-h" { "Nodes by state" }
                ul class="cards" {
                    li {
                        a href="/nodes" {
                            span class="n" { (total) }
                            "nodes in all"
                        }
                    }
                    @for state in NodeState::ALL {
                        @let n = counts.get(&state).copied().unwrap_or(0);
                        li {
                            a href=(with_query("/nodes", &[("state", state.as_str())])) {
                                span class="n" { (n) }
                                (state_badge(state))
                            }
                        }
                    }
                }
            }
            section aria-labelledby="commits-h" {
                h2 id="commits-h" { "Commits" }
                dl class="facts" {
                    dt { "Commit in force" }
                    dd {
                        @match (&current_sha, &current) {
                            (Some(_), Some(c)) => { (commit_line(c)) }
                            (Some(sha), None) => { (commit_link(sha)) " (not recorded yet)" }
                            (None, _) => { span class="muted" { "none yet: the engine has not compiled a commit" } }
                        }
                    }
                    dt { "Last compile" }
                    dd {
                        @match &latest {
                            Some(c) => { (commit_line(c)) }
                            None => { span class="muted" { "no commit compiled yet" } }
                        }
                    }
                    dt { "Connected agents" }
                    dd { (connected) }
                    dt { "Engine queue" }
                    dd { (queue) " events waiting" }
                }
            }
            section aria-labelledby="recent-h" {
                h2 id="recent-h" { "Recent activity" }
                @if recent.is_empty() {
                    p class="muted" { "The audit log is empty." }
                } @else {
                    div class="table-wrap" {
                        table {
                            caption { "Newest audit entries (" a href="/audit" { "full log" } ")" }
                            thead {
                                tr {
                                    th scope="col" class="num" { "#" }
                                    th scope="col" { "When" }
                                    th scope="col" { "Action" }
                                    th scope="col" { "Target" }
                                    th scope="col" { "Outcome" }
                                }
                            }
                            tbody {
                                @for e in &recent {
                                    tr {
                                        td class="num" { (e.seq) }
                                        td { (time(&e.at)) }
                                        td { code { (e.record.action) } }
                                        td { (e.record.target) }
                                        td { (word_badge(&e.record.outcome)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell("Fleet overview", Nav::Overview, body))
}

/// A commit's id, compile result and counts on one line.
fn commit_line(c: &CommitRecord) -> Markup {
    let count = |key: &str| {
        c.diagnostics
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    html! {
        (commit_link(&c.sha)) " "
        (word_badge(if c.ok { "ok" } else { "failed" }))
        " " (count("errors")) " errors, " (count("warnings")) " warnings, compiled "
        (time(&c.compiled_at))
    }
}
