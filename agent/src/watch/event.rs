//! The drift watch's events, one per line: JSON (`--format json`, the serialized type) or
//! text. Values are the plan's display strings, so file content is always a digest, and a
//! sensitive file never has a diff.

use crate::apply::ApplyStatus;
use serde::{Deserialize, Serialize};
use state::{Cause, ResourceId};
use std::fmt::Write as _;

/// One resource that enforcement could not bring back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforceFailure {
    pub id: ResourceId,
    pub reason: String,
}

/// What the watch reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum WatchEvent {
    /// Startup is done: the first observation is reported and the watches are in place.
    Ready {
        at: String,
        node: String,
        /// Resources watched (by events or on the timer).
        resources: usize,
        /// Directories with an inotify watch.
        directories: usize,
        /// Resources re-observed every `interval_s` seconds (packages, users, groups,
        /// sysctls: nothing tells when they change).
        periodic: usize,
        interval_s: u64,
        /// Resources drifted at startup.
        drifted: usize,
        /// Resources of types this agent build does not observe (services).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        not_watched: Vec<ResourceId>,
        enforce: bool,
    },
    /// One property of one resource moved away from the desired state, or moved again.
    Drift {
        at: String,
        id: ResourceId,
        property: String,
        /// The value the watch knew before: the desired value when the resource was in sync
        /// (and at startup), the previous drifted value otherwise.
        before: Option<String>,
        /// The value observed now.
        after: Option<String>,
        /// The desired value.
        desired: Option<String>,
        cause: Cause,
        /// Unified diff from the file's content to the desired one, as in a plan (what
        /// enforcing would change; non-sensitive text files only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sensitive: bool,
    },
    /// A drifted property is back at its desired value (by hand or by enforcement).
    Resolved {
        at: String,
        id: ResourceId,
        property: String,
        /// The drifted value.
        before: Option<String>,
        /// The value observed now (the desired one).
        after: Option<String>,
    },
    /// `--enforce` applied the desired state of the drifted resources.
    Enforced {
        at: String,
        status: ApplyStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<u64>,
        changed: usize,
        failed: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failures: Vec<EnforceFailure>,
    },
    /// Something could not be observed, watched or enforced; the watch goes on.
    Error {
        at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<ResourceId>,
        message: String,
    },
    /// The watch stopped on a signal.
    Stopped { at: String, signal: String },
}

fn value(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

impl WatchEvent {
    /// The event as one JSON line (without the newline).
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"event\":\"error\",\"message\":\"cannot serialize an event: {e}\"}}")
        })
    }

    /// The event as text for people (one line, plus a diff when there is one).
    pub fn text(&self) -> String {
        let mut out = String::new();
        match self {
            WatchEvent::Ready {
                at,
                node,
                resources,
                directories,
                periodic,
                interval_s,
                drifted,
                not_watched,
                enforce,
            } => {
                let _ = write!(
                    out,
                    "{at} ready     {node}: watching {resources} resources ({directories} directories; {periodic} re-observed every {interval_s}s), {drifted} drifted{}",
                    if *enforce {
                        ", enforcing"
                    } else {
                        ", report only"
                    }
                );
                if !not_watched.is_empty() {
                    let _ = write!(
                        out,
                        "; not watched (not supported by this agent build yet): {}",
                        not_watched.len()
                    );
                }
            }
            WatchEvent::Drift {
                at,
                id,
                property,
                before,
                after,
                desired,
                diff,
                ..
            } => {
                let _ = write!(
                    out,
                    "{at} drift     {id} {property}: {} -> {} (desired {})",
                    value(before),
                    value(after),
                    value(desired)
                );
                if let Some(diff) = diff {
                    for line in diff.lines() {
                        let _ = write!(out, "\n    {line}");
                    }
                }
            }
            WatchEvent::Resolved {
                at,
                id,
                property,
                before,
                after,
            } => {
                let _ = write!(
                    out,
                    "{at} resolved  {id} {property}: {} -> {}",
                    value(before),
                    value(after)
                );
            }
            WatchEvent::Enforced {
                at,
                status,
                generation,
                changed,
                failed,
                failures,
            } => {
                let _ = write!(
                    out,
                    "{at} enforced  {}: {changed} changed, {failed} failed{}",
                    match status {
                        ApplyStatus::Applied => "applied",
                        ApplyStatus::Failed => "FAILED",
                        ApplyStatus::Stale => "stale",
                    },
                    generation
                        .map(|g| format!(" (generation {g})"))
                        .unwrap_or_default()
                );
                for f in failures {
                    let _ = write!(out, "\n    FAILED {}: {}", f.id, f.reason);
                }
            }
            WatchEvent::Error { at, id, message } => {
                let _ = write!(out, "{at} error    ");
                if let Some(id) = id {
                    let _ = write!(out, " {id}:");
                }
                let _ = write!(out, " {message}");
            }
            WatchEvent::Stopped { at, signal } => {
                let _ = write!(out, "{at} stopped   on {signal}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::ResourceKind;

    #[test]
    fn text_lines_name_resource_property_before_after_and_desired() {
        let drift = WatchEvent::Drift {
            at: "2026-01-01T00:00:00Z".into(),
            id: ResourceId::new(ResourceKind::File, "/etc/motd"),
            property: "mode".into(),
            before: Some("0644".into()),
            after: Some("0600".into()),
            desired: Some("0644".into()),
            cause: Cause::Drift,
            diff: None,
            sensitive: false,
        };
        assert_eq!(
            drift.text(),
            "2026-01-01T00:00:00Z drift     file:/etc/motd mode: 0644 -> 0600 (desired 0644)"
        );
        let json: serde_json::Value = serde_json::from_str(&drift.json()).expect("json");
        assert_eq!(json["event"], "drift");
        assert_eq!(json["id"], "file:/etc/motd");
        assert!(json.get("diff").is_none() && json.get("sensitive").is_none());
        let back: WatchEvent = serde_json::from_str(&drift.json()).expect("round trip");
        assert_eq!(back, drift);
        let resolved = WatchEvent::Resolved {
            at: "t".into(),
            id: ResourceId::new(ResourceKind::File, "/etc/motd"),
            property: "ensure".into(),
            before: Some("absent".into()),
            after: Some("present".into()),
        };
        assert_eq!(
            resolved.text(),
            "t resolved  file:/etc/motd ensure: absent -> present"
        );
    }
}
