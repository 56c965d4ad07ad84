//! How an apply ended, as a whole and per resource, and the apply report that carries it:
//! what the agent reports and the reconciler records (one definition for both sides).

use crate::{NodePlan, ObservedState, ResourceId, plan::Action};
use serde::{Deserialize, Serialize};

/// How an apply as a whole ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyStatus {
    /// Every resource is unchanged, changed or skipped with a reason.
    Applied,
    /// At least one resource failed.
    Failed,
    /// The plan's digest differed from the approved one: nothing was touched.
    Stale,
}

impl ApplyStatus {
    pub const ALL: [ApplyStatus; 3] = [
        ApplyStatus::Applied,
        ApplyStatus::Failed,
        ApplyStatus::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyStatus::Applied => "applied",
            ApplyStatus::Failed => "failed",
            ApplyStatus::Stale => "stale",
        }
    }

    /// The inverse of [`ApplyStatus::as_str`].
    pub fn parse(s: &str) -> Option<ApplyStatus> {
        ApplyStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Unchanged,
    Changed,
    Failed,
    /// Deliberately not done; the reason says why (a restart whose triggers all failed).
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Unchanged,
        Outcome::Changed,
        Outcome::Failed,
        Outcome::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Changed => "changed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }

    /// The inverse of [`Outcome::as_str`].
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Version of the apply report's JSON form.
pub const APPLY_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub id: ResourceId,
    /// The planned action; `None` when the resource was already in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub unchanged: usize,
    pub changed: usize,
    pub failed: usize,
    #[serde(default)]
    pub skipped: usize,
}

/// The result of `apply`, as JSON for the reconciler and as text for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub format: u32,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub status: ApplyStatus,
    /// The digest of the plan this agent derived (and, unless stale, executed).
    pub plan_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_digest: Option<String>,
    /// For a stale apply: the plan the agent derived instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<NodePlan>,
    /// The generation recorded before changing anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Every desired resource in apply order, then the ones no longer managed.
    pub resources: Vec<ResourceReport>,
    pub totals: Totals,
    pub duration_ms: u64,
    /// What the agent observed after applying (absent for a stale apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedState>,
    /// Problems of the agent's own bookkeeping that did not stop the apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_string(&o).expect("json"),
                format!("\"{}\"", o.as_str())
            );
        }
        for s in ApplyStatus::ALL {
            assert_eq!(ApplyStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Outcome::parse("nope"), None);
    }
}
