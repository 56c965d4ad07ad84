//! The fleet's one drift issue: its text, computed from the engine's current drift, and the
//! rule that keeps the forge in step (open it when drift appears, edit it while drift
//! changes, close it when the fleet is clean, reopen the same issue next time).

use crate::forge::{Forge, ForgeError, Issue};
use state::Change;
use std::collections::BTreeMap;

/// Hidden first line of the issue body.
pub const MARKER: &str = "<!-- centossrv-drift -->";
/// The issue's title.
pub const TITLE: &str = "centossrv: drift detected on the fleet";
/// Rows listed at most; the rest are counted. Keeps the body far below the forges' limits.
const MAX_ROWS: usize = 500;

/// What [`sync`] did to the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueAction {
    /// Nothing to say and nothing open, or the open issue already says it.
    None,
    Opened(u64),
    Reopened(u64),
    Updated(u64),
    Closed(u64),
}

/// The issue body for the current drift (`drift` empty: the fleet is clean again).
pub fn body(
    drift: &BTreeMap<String, Vec<Change>>,
    commit: Option<&str>,
    link: Option<&str>,
) -> String {
    let mut out = format!("{MARKER}\n");
    let commit = commit
        .map(|c| format!("`{}`", report::summary::short(Some(c))))
        .unwrap_or_else(|| "(none yet)".into());
    if drift.is_empty() {
        out.push_str(&format!(
            "### No drift\n\nEvery node that had drifted matches commit {commit} again. \
             This issue was closed automatically and will be reopened if drift appears.\n"
        ));
        return out;
    }
    let changes: usize = drift.values().map(Vec::len).sum();
    out.push_str(&format!(
        "### Drift on {} · {} from commit {commit}\n\n\
         These resources were changed on the hosts outside Git. The next apply reverts them \
         (merging any pull request applies), unless the repository is changed to match. \
         Open pull requests show the same reverts in their plan. This issue is updated \
         automatically and closed when the fleet is clean.\n\n\
         | Node | Resource | What differs |\n|---|---|---|\n",
        report::summary::count(drift.len(), "node"),
        report::summary::count(changes, "change"),
    ));
    let mut rows = 0;
    for (node, node_changes) in drift {
        for change in node_changes {
            if rows == MAX_ROWS {
                break;
            }
            rows += 1;
            out.push_str(&format!(
                "| `{node}` | {} `{}` | {} |\n",
                change.id.kind,
                escape(&change.id.name),
                escape(&what_differs(change)),
            ));
        }
    }
    if changes > rows {
        out.push_str(&format!("\n… and {} more.\n", changes - rows));
    }
    if let Some(link) = link {
        out.push_str(&format!("\nFleet status: {link}\n"));
    }
    out
}

/// `content`, `mode: host 0600, Git 0644`: each property with both values when short (sensitive
/// values are digests in the change already).
fn what_differs(change: &Change) -> String {
    if change.properties.is_empty() {
        return report::summary::phrase(change);
    }
    change
        .properties
        .iter()
        .map(|p| {
            let (before, after) = (p.before.as_deref(), p.after.as_deref());
            let short = |v: Option<&str>| v.is_none_or(|v| v.len() <= 40 && !v.contains('\n'));
            if p.name == "content" || !(short(before) && short(after)) {
                p.name.clone()
            } else {
                format!(
                    "{}: host {}, Git {}",
                    p.name,
                    report::summary::value(before),
                    report::summary::value(after)
                )
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Table cells: no pipes or newlines from resource names or values.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Brings the forge's drift issue (the oldest issue with `label`) in line with `body`.
pub async fn sync(
    forge: &dyn Forge,
    label: &str,
    drifting: bool,
    body: &str,
) -> Result<IssueAction, ForgeError> {
    let existing: Option<Issue> = forge.find_issue(label).await?;
    Ok(match (existing, drifting) {
        (None, false) => IssueAction::None,
        (None, true) => IssueAction::Opened(forge.create_issue(TITLE, body, label).await?.number),
        (Some(issue), false) if !issue.open => IssueAction::None,
        (Some(issue), false) => {
            forge.update_issue(issue.number, body, false).await?;
            IssueAction::Closed(issue.number)
        }
        (Some(issue), true) if !issue.open => {
            forge.update_issue(issue.number, body, true).await?;
            IssueAction::Reopened(issue.number)
        }
        (Some(issue), true) if same_text(&issue.body, body) => IssueAction::None,
        (Some(issue), true) => {
            forge.update_issue(issue.number, body, true).await?;
            IssueAction::Updated(issue.number)
        }
    })
}

/// Bodies compared as a forge stores them (it may turn `\n` into `\r\n`).
fn same_text(a: &str, b: &str) -> bool {
    a.replace("\r\n", "\n").trim_end() == b.replace("\r\n", "\n").trim_end()
}
