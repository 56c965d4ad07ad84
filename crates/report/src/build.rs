//! The computed report: totals, change sets, errors and the delta since the previous report
//! of the same pull request. Every printer renders this one value.

use crate::changeset::{self, ChangeSet};
use model::{Diagnostic, Severity};
use serde::{Deserialize, Serialize};
use state::{Action, NodePlan, NodeStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Version of the report's JSON form.
pub const REPORT_FORMAT: u32 = 1;

/// What a report is computed from.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    pub head: Option<&'a str>,
    pub base: Option<&'a str>,
    /// Pull/merge request number, when the report is for one.
    pub pr: Option<u64>,
    pub plans: &'a [NodePlan],
    /// Labels of every node in head's inventory, for change-set selectors.
    pub labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Compile diagnostics of head.
    pub diagnostics: &'a [Diagnostic],
    /// Where the full plan can be read (status page, CI job), if anywhere.
    pub link: Option<&'a str>,
}

/// One compile error, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    pub code: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What moved since the previous report of the same pull request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub previous_head: Option<String>,
    /// Nodes that would change now and did not before.
    pub nodes_added: Vec<String>,
    /// Nodes that would change before and do not now.
    pub nodes_removed: Vec<String>,
    /// Destructive changes (`action resource`) that are new, with their node count.
    pub new_destructive: Vec<(String, usize)>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.nodes_added.is_empty()
            && self.nodes_removed.is_empty()
            && self.new_destructive.is_empty()
    }
}

/// A fleet-wide plan report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub head: Option<String>,
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    /// Nodes in head's inventory plus nodes removed from it.
    pub nodes: usize,
    /// Nodes whose plan touches the host.
    pub would_change: usize,
    /// Nodes whose agent never reported.
    pub unknown: usize,
    /// Nodes that left the inventory.
    pub removed: usize,
    /// Nodes with drift the plan would revert.
    pub drifted: usize,
    pub errors: Vec<ErrorLine>,
    pub warnings: usize,
    pub change_sets: Vec<ChangeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

/// Computes the report.
pub fn build(input: ReportInput<'_>) -> Report {
    let change_sets = changeset::group(input.plans, input.labels);
    let count = |f: &dyn Fn(&NodePlan) -> bool| input.plans.iter().filter(|p| f(p)).count();
    let errors = input
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| ErrorLine {
            code: d.code.as_str().to_owned(),
            file: d.file.clone(),
            line: d.line,
            column: d.column,
            message: d.message.clone(),
            hint: d.hint.clone(),
        })
        .collect();
    Report {
        format: REPORT_FORMAT,
        head: input.head.map(str::to_owned),
        base: input.base.map(str::to_owned),
        pr: input.pr,
        // Without plans (head does not compile) the inventory still says how many nodes.
        nodes: if input.plans.is_empty() {
            input.labels.len()
        } else {
            input.plans.len()
        },
        would_change: count(&|p| p.has_host_changes()),
        unknown: count(&|p| p.status == NodeStatus::Unknown),
        removed: count(&|p| p.status == NodeStatus::Removed),
        drifted: count(&|p| {
            p.changes.iter().any(|c| {
                c.properties.iter().any(|x| x.cause == state::Cause::Drift)
                    || (c.cause == state::Cause::Drift && c.action != Action::Unmanage)
            })
        }),
        errors,
        warnings: input
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count(),
        change_sets,
        link: input.link.map(str::to_owned),
        delta: None,
    }
}

fn changing_nodes(report: &Report) -> BTreeSet<&str> {
    report
        .change_sets
        .iter()
        .filter(|s| s.changes.iter().any(|c| c.action != Action::Unmanage))
        .flat_map(|s| s.nodes.iter().map(String::as_str))
        .collect()
}

fn destructive(report: &Report) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for set in &report.change_sets {
        for c in set.changes.iter().filter(|c| c.destructive) {
            *out.entry(format!("{} {}", c.action.as_str(), c.id))
                .or_default() += set.nodes.len();
        }
    }
    out
}

/// What changed between `previous` and `current` reports of the same pull request.
pub fn delta(previous: &Report, current: &Report) -> Delta {
    let before = changing_nodes(previous);
    let now = changing_nodes(current);
    let old_destructive = destructive(previous);
    Delta {
        previous_head: previous.head.clone(),
        nodes_added: now.difference(&before).map(|s| (*s).to_owned()).collect(),
        nodes_removed: before.difference(&now).map(|s| (*s).to_owned()).collect(),
        new_destructive: destructive(current)
            .into_iter()
            .filter(|(k, _)| !old_destructive.contains_key(k))
            .collect(),
    }
}
