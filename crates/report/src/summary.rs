//! Short human phrases shared by the printers: one change in a few words, a change set's
//! disruption, numbers with thousands separators.

use crate::ChangeSet;
use state::{Action, Cause, Change, ResourceKind};

/// A commit id shortened to 7 characters.
pub fn short(commit: Option<&str>) -> String {
    commit.map_or_else(
        || "working tree".to_owned(),
        |c| c.chars().take(7).collect(),
    )
}

/// `1204` -> `1,204`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 node`, `1,204 nodes`.
pub fn count(n: usize, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

fn shorten(value: &str) -> String {
    if let Some(hex) = value.strip_prefix("sha256:") {
        format!("sha256:{}", &hex[..hex.len().min(12)])
    } else if value.chars().count() > 40 {
        let cut: String = value.chars().take(37).collect();
        format!("{cut}...")
    } else {
        value.to_owned()
    }
}

/// A property value for display: `∅` for none, digests shortened.
pub fn value(v: Option<&str>) -> String {
    match v {
        None => "∅".to_owned(),
        Some("") => "\"\"".to_owned(),
        Some(v) => shorten(v),
    }
}

/// A change in a few words: `package nginx 1.20→1.24`, `file /etc/motd`, `restart nginx`.
pub fn phrase(c: &Change) -> String {
    let name = &c.id.name;
    let kind = c.id.kind;
    match c.action {
        Action::Restart => format!("restart {name}"),
        Action::Reload => format!("reload {name}"),
        Action::Unmanage => format!("stop managing {kind} {name}"),
        Action::Delete => format!("remove {kind} {name}"),
        Action::Create if kind == ResourceKind::Package => {
            let v = c
                .properties
                .iter()
                .find(|p| p.name == "version")
                .and_then(|p| p.after.as_deref());
            match v {
                Some(v) if v != "any version" => format!("install {name} {v}"),
                _ => format!("install {name}"),
            }
        }
        Action::Create => format!("create {kind} {name}"),
        Action::Update => {
            if kind == ResourceKind::Package
                && let Some(p) = c.properties.iter().find(|p| p.name == "version")
            {
                return format!(
                    "package {name} {}→{}",
                    value(p.before.as_deref()),
                    value(p.after.as_deref())
                );
            }
            let props: Vec<&str> = c.properties.iter().map(|p| p.name.as_str()).collect();
            format!("{kind} {name} ({})", props.join(", "))
        }
    }
}

/// The set's disruption: `destructive`, `restart`, `reload`, `reverts drift` or `—`.
pub fn disruption(set: &ChangeSet) -> &'static str {
    if set.destructive() {
        "destructive"
    } else if set.restarts() {
        "restart"
    } else if set.reloads() {
        "reload"
    } else if set.has_drift() {
        "reverts drift"
    } else {
        "—"
    }
}

/// `(drift)` for a drift-only change, empty for intent.
pub fn cause_tag(cause: Cause) -> &'static str {
    match cause {
        Cause::Intent => "",
        Cause::Drift => " (drift)",
    }
}
