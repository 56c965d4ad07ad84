//! Text renderings of the agent's results for people (the JSON forms are the serialized
//! types themselves). Pure: values in, strings out.

use crate::apply::{ApplyReport, ApplyStatus, Outcome};
use crate::generations::{GenerationInfo, GenerationKind, RestoreOutcome, RollbackReport};
use crate::observe::{Observation, supported, unsupported_reason};
use state::{Action, DesiredState, Ensure, NodePlan, ResourceKind, Spec};
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// Counts of desired resources of types this build does not handle, by type.
fn unsupported_counts(desired: &DesiredState) -> BTreeMap<ResourceKind, usize> {
    let mut counts = BTreeMap::new();
    for r in desired.resources.iter().filter(|r| !supported(r.id.kind)) {
        *counts.entry(r.id.kind).or_insert(0) += 1;
    }
    counts
}

fn unsupported_line(desired: &DesiredState) -> Option<String> {
    let counts = unsupported_counts(desired);
    (!counts.is_empty()).then(|| {
        let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!(
            "not handled by this agent build yet (not observed): {}\n",
            list.join(", ")
        )
    })
}

/// `observe --format text`.
pub fn observation(desired: &DesiredState, obs: &Observation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} resources observed{}",
        obs.state.node,
        obs.state.resources.len(),
        obs.state
            .observed_at
            .as_deref()
            .map(|t| format!(" at {t}"))
            .unwrap_or_default()
    );
    for (id, spec) in &obs.state.resources {
        let what = match spec {
            Spec::File(f) if f.ensure == Ensure::Absent => "absent".to_owned(),
            Spec::File(f) => format!(
                "file {} {} {}:{}",
                f.sha256.as_deref().map(short).unwrap_or("(special file)"),
                f.mode.as_deref().unwrap_or("?"),
                f.owner.as_deref().unwrap_or("?"),
                f.group.as_deref().unwrap_or("?")
            ),
            Spec::Directory(d) if d.ensure == Ensure::Absent => "absent".to_owned(),
            Spec::Directory(d) => format!(
                "directory {} {}:{}",
                d.mode.as_deref().unwrap_or("?"),
                d.owner.as_deref().unwrap_or("?"),
                d.group.as_deref().unwrap_or("?")
            ),
            Spec::Symlink(l) if l.ensure == Ensure::Absent => "absent".to_owned(),
            Spec::Symlink(l) => format!("symlink -> {}", l.target.as_deref().unwrap_or("?")),
            Spec::Sysctl(s) => format!("= {}", s.value),
            Spec::Service(s) => format!(
                "service {}{}{}",
                match s.state {
                    state::ServiceState::Running => "running",
                    state::ServiceState::Stopped => "stopped",
                },
                match s.enabled {
                    Some(true) => ", enabled",
                    Some(false) => ", disabled",
                    None => "",
                },
                s.unit
                    .as_ref()
                    .map(|u| format!(", unit {}", short(&u.sha256)))
                    .unwrap_or_default()
            ),
            other => format!("{}", other.kind()),
        };
        let _ = writeln!(out, "  {id}  {what}");
    }
    for (id, problem) in &obs.problems {
        let _ = writeln!(out, "  {id}  NOT OBSERVED: {problem}");
    }
    if let Some(line) = unsupported_line(desired) {
        out.push_str(&line);
    }
    out
}

fn action_mark(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::Restart | Action::Reload => "!",
        Action::Unmanage => "=",
    }
}

/// `plan --format text`.
pub fn plan(desired: &DesiredState, plan: &NodePlan) -> String {
    let mut out = String::new();
    let host_changes = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unmanage)
        .count();
    let _ = writeln!(
        out,
        "{}: {} change{} (digest {})",
        plan.node,
        host_changes,
        if host_changes == 1 { "" } else { "s" },
        plan.digest
    );
    for c in &plan.changes {
        let mut notes = Vec::new();
        if c.destructive {
            notes.push("destructive".to_owned());
        }
        if !supported(c.id.kind) {
            notes.push(format!("not observed: {}", unsupported_reason(c.id.kind)));
        } else if c.unobserved {
            notes.push("not observed".to_owned());
        }
        if !c.triggered_by.is_empty() {
            let by: Vec<String> = c.triggered_by.iter().map(ToString::to_string).collect();
            notes.push(format!("triggered by {}", by.join(", ")));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        let _ = writeln!(
            out,
            "  {} {} {}{notes}",
            action_mark(c.action),
            state::Action::as_str(c.action),
            c.id
        );
        for p in &c.properties {
            let _ = writeln!(
                out,
                "      {}: {} -> {}",
                p.name,
                p.before.as_deref().unwrap_or("(none)"),
                p.after.as_deref().unwrap_or("(none)")
            );
        }
        if let Some(diff) = &c.diff {
            for line in diff.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if let Some(line) = unsupported_line(desired) {
        out.push_str(&line);
    }
    out
}

/// `apply --format text`.
pub fn apply(report: &ApplyReport) -> String {
    let mut out = String::new();
    if report.status == ApplyStatus::Stale {
        let _ = writeln!(
            out,
            "{}: stale: the plan's digest is {}, expected {}; nothing was changed",
            report.node,
            report.plan_digest,
            report.expected_digest.as_deref().unwrap_or("?")
        );
        return out;
    }
    let status = match report.status {
        ApplyStatus::Applied => "applied",
        ApplyStatus::Failed => "FAILED",
        ApplyStatus::Stale => "stale",
    };
    let _ = writeln!(
        out,
        "{}: {status}: {} changed, {} unchanged, {} failed{} ({} ms{})",
        report.node,
        report.totals.changed,
        report.totals.unchanged,
        report.totals.failed,
        if report.totals.skipped > 0 {
            format!(", {} skipped", report.totals.skipped)
        } else {
            String::new()
        },
        report.duration_ms,
        report
            .generation
            .map(|g| format!(", generation {g}"))
            .unwrap_or_default()
    );
    for r in &report.resources {
        let action = r.action.map(Action::as_str).unwrap_or("in sync");
        match r.outcome {
            Outcome::Unchanged => {}
            Outcome::Changed => {
                let _ = writeln!(out, "  changed  {} ({action}, {} ms)", r.id, r.duration_ms);
            }
            Outcome::Failed => {
                let _ = writeln!(
                    out,
                    "  FAILED   {} ({action}): {}",
                    r.id,
                    r.reason.as_deref().unwrap_or("unknown reason")
                );
            }
            Outcome::Skipped => {
                let _ = writeln!(
                    out,
                    "  skipped  {} ({action}): {}",
                    r.id,
                    r.reason.as_deref().unwrap_or("no reason given")
                );
            }
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// `generations --format text`.
pub fn generations(list: &[GenerationInfo]) -> String {
    if list.is_empty() {
        return "no generations recorded\n".to_owned();
    }
    let mut out = String::new();
    for g in list {
        let what = match g.header.kind {
            GenerationKind::Apply => format!(
                "before apply{}{}",
                g.header
                    .node
                    .as_deref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default(),
                g.header
                    .commit
                    .as_deref()
                    .map(|c| format!(" of {c}"))
                    .unwrap_or_default()
            ),
            GenerationKind::Rollback => format!(
                "before rollback to generation {}",
                g.header.rollback_of.unwrap_or_default()
            ),
        };
        let result = match &g.finished {
            Some(f) => format!("{} changed, {} failed", f.changed, f.failed),
            None => "interrupted".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:>6}  {}  {what}: {} paths, {} sysctls, {} packages, {} accounts, {} services; {result}",
            g.number, g.created_at, g.paths, g.sysctls, g.packages, g.accounts, g.services
        );
    }
    out
}

/// `rollback --format text`.
pub fn rollback(report: &RollbackReport) -> String {
    let mut out = String::new();
    let undone: Vec<String> = report.undone.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "rolled back to the state before generation {} (undid {}): {} restored, {} removed, {} unchanged, {} failed",
        report.generation,
        undone.join(", "),
        report.totals.restored,
        report.totals.removed,
        report.totals.unchanged,
        report.totals.failed
    );
    for e in &report.entries {
        let word = match e.outcome {
            RestoreOutcome::Unchanged => continue,
            RestoreOutcome::Restored => "restored",
            RestoreOutcome::Removed => "removed ",
            RestoreOutcome::Failed => "FAILED  ",
        };
        let _ = write!(
            out,
            "  {word} {} (from generation {})",
            e.target, e.generation
        );
        if let Some(reason) = &e.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
    }
    if let Some(r) = report.recorded {
        let _ = writeln!(
            out,
            "the previous state is recorded as generation {r} (`rollback {r}` undoes this rollback)"
        );
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
