//! `GET /prs`: the plan reports of open pull (merge) requests, read through [`PrPlans`].
//!
//! `centossrv serve` reads them from the store's `pr_reports` table ([`StoredPrPlans`]), where
//! the pull request service keeps the latest report of each open pull request; without a
//! forge the table is empty and the page says so.

use super::WebState;
use super::error::PageError;
use super::format::{commit_link, time_or_never};
use super::layout::{Nav, page as shell};
use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// One open pull request's latest plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrPlan {
    /// `github` or `gitlab`.
    pub forge: String,
    pub number: u64,
    pub head_sha: String,
    pub base_sha: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    /// Nodes whose plan would change, when the report says.
    pub nodes_changing: Option<u64>,
    /// Compile errors at the head, when the report says.
    pub errors: Option<u64>,
    /// Where the forge shows the pull request, if known.
    pub url: Option<String>,
}

/// Where the page reads open pull requests' plans.
#[async_trait::async_trait]
pub trait PrPlans: Send + Sync {
    /// Open pull requests with their latest plan, newest first.
    async fn open_pr_plans(&self) -> Result<Vec<PrPlan>, store::StoreError>;
}

/// No source of pull request reports (none wired yet): always empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrReports;

#[async_trait::async_trait]
impl PrPlans for NoPrReports {
    async fn open_pr_plans(&self) -> Result<Vec<PrPlan>, store::StoreError> {
        Ok(Vec::new())
    }
}

/// The reports the pull request service stored (`pr_reports`), summarised from their JSON
/// form (`docs/plan-report.md`): `would_change` and the number of `errors`.
#[derive(Debug, Clone)]
pub struct StoredPrPlans {
    store: store::Store,
}

impl StoredPrPlans {
    pub fn new(store: store::Store) -> StoredPrPlans {
        StoredPrPlans { store }
    }
}

#[async_trait::async_trait]
impl PrPlans for StoredPrPlans {
    async fn open_pr_plans(&self) -> Result<Vec<PrPlan>, store::StoreError> {
        let reports = self.store.pr_reports().await?;
        Ok(reports
            .into_iter()
            .map(|(stored, updated_at)| {
                let json: Option<serde_json::Value> = serde_json::from_str(&stored.report).ok();
                let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
                PrPlan {
                    forge: stored.forge,
                    number: stored.number,
                    head_sha: stored.head_sha,
                    base_sha: stored.base_sha,
                    updated_at: Some(updated_at),
                    nodes_changing: field("would_change").and_then(serde_json::Value::as_u64),
                    errors: field("errors")
                        .and_then(serde_json::Value::as_array)
                        .map(|errors| errors.len() as u64),
                    url: None,
                }
            })
            .collect())
    }
}

pub async fn page(State(st): State<WebState>) -> Result<Markup, PageError> {
    let plans = st.prs.open_pr_plans().await?;
    let body = html! {
        h1 { "Open pull requests" }
        @if plans.is_empty() {
            p class="notice" { "No pull request reports." }
            p class="muted" {
                "Plans of open pull requests appear here once the reconciler posts them to the forge."
            }
        } @else {
            (table(&plans))
        }
    };
    Ok(shell("Open pull requests", Nav::Prs, body))
}

fn table(plans: &[PrPlan]) -> Markup {
    html! {
        div class="table-wrap" role="region" aria-labelledby="prs-caption" tabindex="0" {
            table id="prs" {
                caption id="prs-caption" { (plans.len()) " open pull requests with a plan" }
                thead {
                    tr {
                        th scope="col" { "Pull request" }
                        th scope="col" { "Head" }
                        th scope="col" { "Base" }
                        th scope="col" class="num" { "Nodes changing" }
                        th scope="col" class="num" { "Errors" }
                        th scope="col" { "Updated" }
                    }
                }
                tbody {
                    @for p in plans {
                        tr {
                            th scope="row" {
                                @match &p.url {
                                    Some(url) if url.starts_with("https://") => {
                                        a href=(url) { (p.forge) " #" (p.number) }
                                    }
                                    _ => { (p.forge) " #" (p.number) }
                                }
                            }
                            td { (commit_link(&p.head_sha)) }
                            td {
                                @match &p.base_sha {
                                    Some(b) => { (commit_link(b)) }
                                    None => { span class="muted" { "unknown" } }
                                }
                            }
                            td class="num" { (opt(p.nodes_changing)) }
                            td class="num" { (opt(p.errors)) }
                            td { (time_or_never(p.updated_at.as_ref())) }
                        }
                    }
                }
            }
        }
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "—".to_owned(), |n| n.to_string())
}
