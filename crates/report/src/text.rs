//! The terminal printer, in the manner of `terraform plan`: one block per change set,
//! `+` create, `~` update, `-` delete, `↻` restart, `↺` reload, colour when writing to a terminal.

use crate::Report;
use crate::summary::{cause_tag, count, short, thousands, value};
use state::{Action, NodeStatus};
use std::fmt::Write as _;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const CYAN: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";

struct Paint(bool);

impl Paint {
    fn p(&self, style: &str, text: &str) -> String {
        if self.0 {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

/// Renders the report for a terminal; `color` adds ANSI colours.
pub fn text(report: &Report, color: bool) -> String {
    let paint = Paint(color);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} head {} (base {}) · {} · {} would change · {} · {} unknown",
        paint.p(BOLD, "centossrv plan:"),
        short(report.head.as_deref()),
        short(report.base.as_deref()),
        count(report.nodes, "node"),
        thousands(report.would_change),
        count(report.errors.len(), "error"),
        thousands(report.unknown)
    );
    for e in &report.errors {
        let _ = write!(
            out,
            "\n{} {}:{}:{}: [{}] {}",
            paint.p(RED, "error:"),
            e.file,
            e.line,
            e.column,
            e.code,
            e.message
        );
        if let Some(h) = &e.hint {
            let _ = write!(out, "\n  hint: {h}");
        }
        out.push('\n');
    }
    for set in &report.change_sets {
        let mut title = format!(
            "\nChange set {} · {} node{}",
            set.id,
            thousands(set.nodes.len()),
            if set.nodes.len() == 1 { "" } else { "s" }
        );
        if !set.selector.is_empty() {
            let labels: Vec<String> = set
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = write!(
                title,
                " ({}{})",
                if set.selector_exact { "" } else { "⊂ " },
                labels.join(", ")
            );
        }
        match set.status {
            NodeStatus::Known => {}
            NodeStatus::Unknown => title.push_str(" · state unknown: never reported"),
            NodeStatus::Removed => title.push_str(" · removed from inventory"),
        }
        let _ = writeln!(out, "{}", paint.p(BOLD, &title));
        let nodes: Vec<&str> = set.nodes.iter().take(10).map(String::as_str).collect();
        let more = set.nodes.len().saturating_sub(nodes.len());
        let _ = writeln!(
            out,
            "  {}",
            paint.p(
                DIM,
                &format!(
                    "{}{}",
                    nodes.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            )
        );
        for c in &set.changes {
            let (sign, style) = match c.action {
                Action::Create => ("+", GREEN),
                Action::Update => ("~", YELLOW),
                Action::Delete => ("-", RED),
                Action::Restart => ("↻", CYAN),
                Action::Reload => ("↺", CYAN),
                Action::Unmanage => ("○", DIM),
            };
            let mut line = format!("  {} {} {}", paint.p(style, sign), c.action.as_str(), c.id);
            if c.destructive {
                line.push_str(&paint.p(RED, " (destructive)"));
            }
            if c.unobserved {
                line.push_str(" (not yet observed)");
            }
            if !c.triggered_by.is_empty() {
                let by: Vec<String> = c.triggered_by.iter().map(ToString::to_string).collect();
                let _ = write!(line, " (notified by {})", by.join(", "));
            }
            let _ = writeln!(out, "{line}");
            for p in c
                .properties
                .iter()
                .filter(|p| c.diff.is_none() || (p.name != "content" && p.name != "unit"))
            {
                let _ = writeln!(
                    out,
                    "      {}: {} → {}{}",
                    p.name,
                    value(p.before.as_deref()),
                    value(p.after.as_deref()),
                    cause_tag(p.cause)
                );
            }
            if let Some(diff) = &c.diff {
                for l in diff.lines() {
                    let styled = if l.starts_with('+') && !l.starts_with("+++") {
                        paint.p(GREEN, l)
                    } else if l.starts_with('-') && !l.starts_with("---") {
                        paint.p(RED, l)
                    } else if l.starts_with("@@") {
                        paint.p(CYAN, l)
                    } else {
                        l.to_owned()
                    };
                    let _ = writeln!(out, "      {styled}");
                }
            }
        }
    }
    let unchanged = report.nodes
        - report
            .change_sets
            .iter()
            .map(|s| s.nodes.len())
            .sum::<usize>();
    let _ = writeln!(
        out,
        "\nPlan: {} node{} would change, {} unchanged, {} unknown, {} error{}.",
        thousands(report.would_change),
        if report.would_change == 1 { "" } else { "s" },
        thousands(unchanged),
        thousands(report.unknown),
        report.errors.len(),
        if report.errors.len() == 1 { "" } else { "s" }
    );
    out
}
