//! What an agent found on its node: for each resource it was asked about, the same `Spec`
//! vocabulary describing what *is* (a missing file is a `FileSpec` with `ensure: absent`).

use crate::resource::{ResourceId, Spec};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Version of the `ObservedState` JSON format.
pub const OBSERVED_FORMAT: u32 = 1;

/// A node's observed state, as its agent reports it.
///
/// File content is reported for text files whose digest differs from the desired one (so
/// plans can show a diff) and never for sensitive files; otherwise only the digest is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedState {
    pub format: u32,
    pub node: String,
    /// When the agent observed, RFC 3339; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// Host facts (OS, kernel, CPU, memory...), free-form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, Json>,
    /// What each resource looks like now. A resource missing here was not observed.
    #[serde(default)]
    pub resources: BTreeMap<ResourceId, Spec>,
}

impl ObservedState {
    pub fn new(node: impl Into<String>) -> ObservedState {
        ObservedState {
            format: OBSERVED_FORMAT,
            node: node.into(),
            observed_at: None,
            facts: BTreeMap::new(),
            resources: BTreeMap::new(),
        }
    }
}

impl ObservedState {
    /// What an agent that has applied `desired` exactly reports: every resource as desired,
    /// file and unit content by digest only (agents send content only when it differs).
    pub fn converged(desired: &crate::DesiredState) -> ObservedState {
        let mut observed = ObservedState::new(desired.node.clone());
        for r in &desired.resources {
            let spec = match &r.spec {
                Spec::File(f) => Spec::File(crate::FileSpec {
                    content: None,
                    ..f.clone()
                }),
                // What to do on a notification is not observed: an agent reports the
                // default.
                Spec::Service(s) => Spec::Service(crate::ServiceSpec {
                    on_notify: crate::NotifyAction::default(),
                    ..s.clone()
                }),
                other => other.clone(),
            };
            observed.resources.insert(r.id.clone(), spec);
        }
        observed
    }
}
