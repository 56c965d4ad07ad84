//! The Markdown printer for pull/merge request comments: a hidden metadata marker, the
//! summary line and change-set table outside collapsed sections, one `<details>` per change
//! set with a `diff` fence, errors, and the link line; all within the forge's size budget.
//!
//! Degradation order when over budget: (1) diff bodies are dropped, (2) node lists are
//! shortened, (3) per-change lines are dropped, (4) `<details>` sections are dropped, (5)
//! table rows beyond what fits are summarized in one row, (6) error hints are dropped and
//! long messages shortened. The marker, summary, totals, every error and the link line are
//! always kept.

use crate::summary::{cause_tag, count, disruption, phrase, short, thousands, value};
use crate::{ChangeSet, Report};
use state::{Action, NodeStatus};
use std::fmt::Write as _;

/// Comment size limits, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// GitHub's 65,536-character comment limit.
    GitHub,
    /// GitLab's 1,000,000-character note limit.
    GitLab,
    /// Any other limit.
    Chars(usize),
}

impl Budget {
    pub fn chars(self) -> usize {
        match self {
            Budget::GitHub => 65_536,
            Budget::GitLab => 1_000_000,
            Budget::Chars(n) => n,
        }
    }
}

/// The hidden marker that identifies centossrv's comment on a pull request.
pub const MARKER_PREFIX: &str = "<!-- centossrv-plan: ";

#[derive(Debug, Clone, Copy)]
struct Level {
    diffs: bool,
    node_list: usize,
    change_lines: bool,
    details: bool,
    table_rows: usize,
    error_hints: bool,
    error_message_chars: usize,
}

const LEVELS: [Level; 8] = [
    Level {
        diffs: true,
        node_list: usize::MAX,
        change_lines: true,
        details: true,
        table_rows: usize::MAX,
        error_hints: true,
        error_message_chars: 1000,
    },
    Level {
        diffs: false,
        node_list: usize::MAX,
        change_lines: true,
        details: true,
        table_rows: usize::MAX,
        error_hints: true,
        error_message_chars: 1000,
    },
    Level {
        diffs: false,
        node_list: 20,
        change_lines: true,
        details: true,
        table_rows: usize::MAX,
        error_hints: true,
        error_message_chars: 1000,
    },
    Level {
        diffs: false,
        node_list: 20,
        change_lines: false,
        details: true,
        table_rows: usize::MAX,
        error_hints: true,
        error_message_chars: 1000,
    },
    Level {
        diffs: false,
        node_list: 0,
        change_lines: false,
        details: false,
        table_rows: 200,
        error_hints: true,
        error_message_chars: 1000,
    },
    Level {
        diffs: false,
        node_list: 0,
        change_lines: false,
        details: false,
        table_rows: 50,
        error_hints: true,
        error_message_chars: 300,
    },
    Level {
        diffs: false,
        node_list: 0,
        change_lines: false,
        details: false,
        table_rows: 10,
        error_hints: false,
        error_message_chars: 200,
    },
    Level {
        diffs: false,
        node_list: 0,
        change_lines: false,
        details: false,
        table_rows: 0,
        error_hints: false,
        error_message_chars: 120,
    },
];

/// Renders the report as Markdown within `budget` characters.
pub fn markdown(report: &Report, budget: Budget) -> String {
    let limit = budget.chars();
    let mut last = String::new();
    for level in LEVELS {
        last = render(report, level);
        if last.chars().count() <= limit {
            return last;
        }
    }
    // Even the smallest form is too long (thousands of errors): keep the head and the tail,
    // where the totals, errors and link are, and cut the middle.
    let chars: Vec<char> = last.chars().collect();
    let note = "\n\n… (report shortened to fit the comment limit) …\n\n";
    let keep = limit.saturating_sub(note.chars().count());
    let head = keep / 3;
    let tail = keep - head;
    let mut out: String = chars[..head.min(chars.len())].iter().collect();
    out.push_str(note);
    out.extend(chars[chars.len().saturating_sub(tail)..].iter());
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', " ")
}

fn selector_text(set: &ChangeSet) -> String {
    if set.selector.is_empty() {
        return String::new();
    }
    let labels: Vec<String> = set
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if set.selector_exact {
        format!(" (`{}`)", labels.join(", "))
    } else {
        format!(" (all `{}`)", labels.join(", "))
    }
}

fn node_list(nodes: &[String], max: usize) -> String {
    if nodes.len() <= max {
        return nodes.join(", ");
    }
    let shown: Vec<&str> = nodes.iter().take(max).map(String::as_str).collect();
    format!(
        "{} … and {} more",
        shown.join(", "),
        thousands(nodes.len() - max)
    )
}

fn render(report: &Report, level: Level) -> String {
    let mut out = String::new();
    let meta = serde_json::json!({
        "v": 1,
        "pr": report.pr,
        "head": report.head,
        "base": report.base,
    });
    let _ = writeln!(out, "{MARKER_PREFIX}{meta} -->");
    let _ = writeln!(
        out,
        "### centossrv plan · `{}` · {} · **{} would change** · {} · {} unknown",
        short(report.head.as_deref()),
        count(report.nodes, "node"),
        thousands(report.would_change),
        count(report.errors.len(), "error"),
        thousands(report.unknown),
    );
    out.push('\n');
    let mut totals = format!(
        "Base `{}` → head `{}`.",
        short(report.base.as_deref()),
        short(report.head.as_deref())
    );
    if report.drifted > 0 {
        let _ = write!(
            totals,
            " Merging also reverts drift on **{}** node{}.",
            thousands(report.drifted),
            if report.drifted == 1 { "" } else { "s" }
        );
    }
    if report.removed > 0 {
        let _ = write!(
            totals,
            " {} left the inventory (no longer managed).",
            count(report.removed, "node")
        );
    }
    if report.unknown > 0 {
        let _ = write!(
            totals,
            " {} never reported: {} the base revision is applied.",
            count(report.unknown, "node"),
            if report.unknown == 1 {
                "its plan assumes"
            } else {
                "their plans assume"
            }
        );
    }
    let _ = writeln!(out, "{totals}");
    if let Some(delta) = report.delta.as_ref().filter(|d| !d.is_empty()) {
        let mut parts = Vec::new();
        if !delta.nodes_added.is_empty() {
            parts.push(format!(
                "+{} ({})",
                count(delta.nodes_added.len(), "node"),
                node_list(&delta.nodes_added, 5)
            ));
        }
        if !delta.nodes_removed.is_empty() {
            parts.push(format!(
                "−{} ({})",
                count(delta.nodes_removed.len(), "node"),
                node_list(&delta.nodes_removed, 5)
            ));
        }
        for (what, n) in &delta.new_destructive {
            parts.push(format!(
                "**new destructive**: {what} on {} node{}",
                thousands(*n),
                if *n == 1 { "" } else { "s" }
            ));
        }
        let _ = writeln!(
            out,
            "\n**Since `{}`:** {}.",
            short(delta.previous_head.as_deref()),
            parts.join("; ")
        );
    } else if report.delta.is_some() {
        let _ = writeln!(
            out,
            "\nNo change in affected nodes since the previous push."
        );
    }
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\n#### Errors\n");
        for e in &report.errors {
            let mut message: String = e.message.chars().take(level.error_message_chars).collect();
            if message.len() < e.message.len() {
                message.push('…');
            }
            let _ = write!(
                out,
                "- `{}:{}:{}` **{}** {}",
                e.file,
                e.line,
                e.column,
                e.code,
                escape(&message)
            );
            if let (true, Some(h)) = (level.error_hints, &e.hint) {
                let _ = write!(out, " — hint: {}", escape(h));
            }
            out.push('\n');
        }
    }
    if !report.change_sets.is_empty() {
        let _ = writeln!(
            out,
            "\n| Change set | Nodes | What changes | Disruption |\n|---|---|---|---|"
        );
        let shown = report.change_sets.len().min(level.table_rows);
        for set in &report.change_sets[..shown] {
            let mut what: Vec<String> = set
                .changes
                .iter()
                .take(6)
                .map(|c| escape(&format!("{}{}", phrase(c), cause_tag(c.cause))))
                .collect();
            if set.changes.len() > 6 {
                what.push(format!("… +{} more", set.changes.len() - 6));
            }
            let status = match set.status {
                NodeStatus::Known => "",
                NodeStatus::Unknown => " · state unknown",
                NodeStatus::Removed => " · removed",
            };
            let dis = match disruption(set) {
                "destructive" => "**destructive**",
                other => other,
            };
            let _ = writeln!(
                out,
                "| {} | {}{}{} | {} | {} |",
                set.id,
                thousands(set.nodes.len()),
                selector_text(set),
                status,
                what.join(", "),
                dis
            );
        }
        if shown < report.change_sets.len() {
            let rest = &report.change_sets[shown..];
            let nodes: usize = rest.iter().map(|s| s.nodes.len()).sum();
            let destructive = rest.iter().filter(|s| s.destructive()).count();
            let _ = writeln!(
                out,
                "| {}–{} | {} | {} more change sets (see the full plan) | {} |",
                rest[0].id,
                rest[rest.len() - 1].id,
                thousands(nodes),
                thousands(rest.len()),
                if destructive > 0 {
                    format!("**{destructive} destructive**")
                } else {
                    "—".to_owned()
                }
            );
        }
    }
    if level.details {
        for set in &report.change_sets {
            details(&mut out, set, level);
        }
    }
    out.push('\n');
    let link = match &report.link {
        Some(l) => format!("Full plan: {l}"),
        None => "Full plan: run `centossrv plan` locally.".to_owned(),
    };
    let _ = writeln!(out, "Computed from the state agents last reported. {link}");
    out
}

fn details(out: &mut String, set: &ChangeSet, level: Level) {
    let (added, removed) = set.diff_lines();
    let _ = writeln!(
        out,
        "\n<details><summary>Change set {} · {} node{} · +{} −{} lines{}</summary>\n",
        set.id,
        thousands(set.nodes.len()),
        if set.nodes.len() == 1 { "" } else { "s" },
        added,
        removed,
        if set.destructive() {
            " · destructive"
        } else {
            ""
        }
    );
    if level.change_lines {
        for c in &set.changes {
            let mut line = format!("- **{}** `{}`", c.action.as_str(), c.id);
            if c.destructive {
                line.push_str(" ⚠️ destructive");
            }
            if c.unobserved {
                line.push_str(" (current state not yet observed)");
            }
            let props: Vec<String> = c
                .properties
                .iter()
                .map(|p| {
                    if c.diff.is_some() && level.diffs && (p.name == "content" || p.name == "unit")
                    {
                        format!("{} changed, diff below{}", p.name, cause_tag(p.cause))
                    } else {
                        format!(
                            "{} {} → {}{}",
                            p.name,
                            value(p.before.as_deref()),
                            value(p.after.as_deref()),
                            cause_tag(p.cause)
                        )
                    }
                })
                .collect();
            if !props.is_empty() {
                let _ = write!(line, ": {}", escape(&props.join("; ")));
            }
            if matches!(c.action, Action::Restart | Action::Reload) || !c.triggered_by.is_empty() {
                let by: Vec<String> = c.triggered_by.iter().map(ToString::to_string).collect();
                let _ = write!(line, " (notified by {})", escape(&by.join(", ")));
            }
            if c.sensitive {
                line.push_str(" (sensitive: digests only)");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if level.diffs {
        let diffs: Vec<&str> = set
            .changes
            .iter()
            .filter_map(|c| c.diff.as_deref())
            .collect();
        if !diffs.is_empty() {
            let body = diffs.concat();
            let fence = if body.contains("```") { "````" } else { "```" };
            let _ = writeln!(
                out,
                "\n{fence}diff\n{}{fence}",
                if body.ends_with('\n') {
                    body
                } else {
                    format!("{body}\n")
                }
            );
        }
    }
    if level.node_list > 0 {
        let _ = writeln!(out, "\nNodes: {}", node_list(&set.nodes, level.node_list));
    }
    let _ = writeln!(out, "</details>");
}
