//! The desired state of one node at one commit: what the agent is asked to converge to.

use crate::resource::{ResourceId, Spec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Version of the `DesiredState` JSON format; bumped on any incompatible change.
pub const DESIRED_FORMAT: u32 = 1;

/// Where in the fleet repository a resource was declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub role: String,
    pub file: String,
    pub line: u32,
}

/// One resource with its edges, as the agent will apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredResource {
    pub id: ResourceId,
    pub spec: Spec,
    /// Resources that must be applied before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<ResourceId>,
    /// Services restarted (or reloaded) when this resource changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<ResourceId>,
    pub origin: Origin,
}

/// Everything one node should look like, with resources in a valid apply order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub format: u32,
    pub node: String,
    /// The commit this state was compiled from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Resources in apply order: every `requires` target comes before its dependant.
    /// Shared (`Arc`): a resource declared the same way for many nodes is one allocation
    /// that every node's state points to (it serializes as the resource itself).
    pub resources: Vec<Arc<DesiredResource>>,
}

impl DesiredState {
    /// A copy with every sensitive value replaced by its digest, safe to print or store.
    pub fn redacted(&self) -> DesiredState {
        DesiredState {
            resources: self
                .resources
                .iter()
                .map(|r| match &r.spec {
                    Spec::File(f) if f.sensitive => Arc::new(DesiredResource {
                        spec: r.spec.redacted(),
                        ..DesiredResource::clone(r)
                    }),
                    _ => Arc::clone(r),
                })
                .collect(),
            ..self.clone()
        }
    }

    pub fn get(&self, id: &ResourceId) -> Option<&DesiredResource> {
        self.resources.iter().map(|r| &**r).find(|r| &r.id == id)
    }
}
