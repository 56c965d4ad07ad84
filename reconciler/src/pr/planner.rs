//! One pull request's plan report: head compiled and planned against every node's last
//! observed state, base compiled as the reference for causes (intent vs drift), the delta to
//! the previous report of the same pull request. Pure: the IO (forge, Git, store) is the
//! caller's; this is the same pipeline as `centossrv plan`.

use crate::forge::{Conclusion, ForgeKind};
use model::Snapshot;
use report::{Budget, Report};
use state::ObservedState;
use std::collections::BTreeMap;

/// What the report is about.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub number: u64,
    pub head_sha: &'a str,
    /// `None` when base's commit cannot be read (then every change counts as intent).
    pub base_sha: Option<&'a str>,
    pub head: &'a Snapshot,
    pub base: Option<&'a Snapshot>,
    pub observed: &'a BTreeMap<String, ObservedState>,
    /// The previous report of this pull request, for "what moved since the last push".
    pub previous: Option<&'a Report>,
    /// Link to the full plan (status page), if configured.
    pub link: Option<&'a str>,
    pub forge: ForgeKind,
}

/// The computed report and what the forge is told about it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub report: Report,
    /// The comment body (Markdown within the forge's size budget).
    pub comment: String,
    pub conclusion: Conclusion,
    /// One line for the status: `3 of 40 nodes would change · 0 errors`.
    pub title: String,
    /// Markdown for the check run's summary (GitHub's limit is 65,535 characters).
    pub summary: String,
    /// The plan removes packages, users, files or other resources.
    pub destructive: bool,
}

/// GitHub's limit on a check run's `output.summary`, with room to spare.
const SUMMARY_BUDGET: usize = 60_000;

/// Plans the pull request.
pub fn plan(request: &PlanRequest<'_>) -> Planned {
    let (head, base) = report::fleet::compile_revisions(request.head, request.base);
    let plans = report::fleet::plan_fleet(&head, base.as_ref(), request.observed);
    let labels = report::fleet::labels(&head);
    let mut built = report::build(report::ReportInput {
        head: Some(request.head_sha),
        base: request.base_sha,
        pr: Some(request.number),
        plans: &plans,
        labels: &labels,
        diagnostics: &head.diagnostics,
        link: request.link,
    });
    if let Some(previous) = request.previous {
        built.delta = Some(report::delta(previous, &built));
    }
    let budget = match request.forge {
        ForgeKind::Github => Budget::GitHub,
        ForgeKind::Gitlab => Budget::GitLab,
    };
    let comment = report::markdown(&built, budget);
    let summary = if comment.chars().count() <= SUMMARY_BUDGET {
        comment.clone()
    } else {
        report::markdown(&built, Budget::Chars(SUMMARY_BUDGET))
    };
    let conclusion = if !built.errors.is_empty() {
        Conclusion::Failure
    } else if built.unknown > 0 {
        Conclusion::Neutral
    } else {
        Conclusion::Success
    };
    let destructive = built.change_sets.iter().any(|s| s.destructive());
    let title = title(&built, destructive);
    Planned {
        report: built,
        comment,
        conclusion,
        title,
        summary,
        destructive,
    }
}

/// The status line.
fn title(report: &Report, destructive: bool) -> String {
    use report::summary::{count, thousands};
    if !report.errors.is_empty() {
        return format!("does not compile: {}", count(report.errors.len(), "error"));
    }
    let mut out = format!(
        "{} of {} would change",
        thousands(report.would_change),
        count(report.nodes, "node")
    );
    if destructive {
        out.push_str(" · destructive");
    }
    if report.drifted > 0 {
        out.push_str(&format!(
            " · reverts drift on {}",
            count(report.drifted, "node")
        ));
    }
    if report.unknown > 0 {
        out.push_str(&format!(
            " · {} never reported",
            count(report.unknown, "node")
        ));
    }
    out
}
