//! How an apply ended, as a whole and per resource: the words the agent reports and the
//! reconciler's store records (one definition, so a new outcome reaches both).

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
