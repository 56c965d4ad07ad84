//! `GET /audit`: the audit log newest first, in pages (`?before=SEQ`), under the verdict of
//! the hash chain (`audit verify`): intact with its head, or the first broken entry.
//! Two statements per page; the verdict walks the log in batches.

use super::WebState;
use super::error::PageError;
use super::format::{time, with_query, word_badge};
use super::layout::{Nav, page as shell};
use super::query::FormQuery;
use axum::extract::{RawQuery, State};
use maud::{Markup, html};
use store::AuditVerdict;

const PAGE: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub async fn page(
    State(st): State<WebState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, PageError> {
    let q = FormQuery::parse(raw.as_deref(), &["before", "limit"])?;
    let before = q.int("before")?;
    let limit = q.limit(PAGE, MAX_LIMIT)?;
    let verdict = st.store.audit_verify().await?;
    let entries = st.store.audit_list_newest(before, limit).await?;
    let limit_text = limit.to_string();
    let mut keep: Vec<(&str, &str)> = Vec::new();
    if limit != PAGE {
        keep.push(("limit", &limit_text));
    }
    let older = entries.next.map(|seq| {
        let seq = seq.to_string();
        let mut pairs = keep.clone();
        pairs.push(("before", &seq));
        with_query("/audit", &pairs)
    });

    let body = html! {
        h1 { "Audit log" }
        section aria-labelledby="chain-h" {
            h2 id="chain-h" { "Hash chain" }
            @match &verdict {
                AuditVerdict::Intact { entries, head } => {
                    p class="notice ok" id="verdict" {
                        (word_badge("intact")) " All " (entries) " entries link up to the head "
                        code title=(head) { (head.get(..19).unwrap_or(head)) "…" } "."
                    }
                }
                AuditVerdict::Broken(b) => {
                    p class="notice bad" id="verdict" role="alert" {
                        (word_badge("broken")) " " (b.to_string())
                    }
                }
            }
        }
        section aria-labelledby="entries-h" {
            h2 id="entries-h" { "Entries" }
            @if entries.items.is_empty() {
                p class="muted" { "No entries." }
            } @else {
                div class="table-wrap" role="region" aria-labelledby="audit-caption" tabindex="0" {
                    table id="audit" {
                        caption id="audit-caption" { "Newest first" }
                        thead {
                            tr {
                                th scope="col" class="num" { "#" }
                                th scope="col" { "When" }
                                th scope="col" { "Actor" }
                                th scope="col" { "Action" }
                                th scope="col" { "Target" }
                                th scope="col" { "Commit" }
                                th scope="col" { "Outcome" }
                                th scope="col" { "Details" }
                            }
                        }
                        tbody {
                            @for e in &entries.items {
                                tr {
                                    th scope="row" class="num" { (e.seq) }
                                    td { (time(&e.at)) }
                                    td { (e.record.actor) }
                                    td { code { (e.record.action) } }
                                    td { (e.record.target) }
                                    td {
                                        @if let Some(c) = &e.record.commit { (super::format::commit_link(c)) }
                                    }
                                    td { (word_badge(&e.record.outcome)) }
                                    td { (details(&e.record.details)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            ul {
                @if before.is_some() {
                    li { a href=(with_query("/audit", &keep)) { "Newest entries" } }
                }
                @if let Some(href) = &older {
                    li { a href=(href) rel="next" { "Older entries" } }
                }
            }
        }
    };
    Ok(shell("Audit log", Nav::Audit, body))
}

/// Details as compact `key: value` text (the log never holds secrets).
fn details(d: &serde_json::Value) -> Markup {
    match d.as_object() {
        Some(map) if map.is_empty() => html! {},
        Some(map) => html! {
            @for (i, (k, v)) in map.iter().enumerate() {
                @if i > 0 { ", " }
                (k) ": " (match v { serde_json::Value::String(s) => s.clone(), other => other.to_string() })
            }
        },
        None => html! { (d.to_string()) },
    }
}
