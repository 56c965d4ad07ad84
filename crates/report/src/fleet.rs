//! Plans a whole fleet: every node of head (and every node that left the inventory since
//! base) against its observed state, with base's desired state as the reference for causes.

use model::{Compiled, Snapshot};
use state::{NodePlan, ObservedState, Positions, plan_with};
use std::collections::{BTreeMap, BTreeSet};

/// Compiles base, then head reusing base's work for everything identical in both
/// (`model::compile_pair`: unchanged files are loaded once, unchanged renders and the
/// resources built from them are shared). The results are those of two separate
/// `model::compile` calls.
pub fn compile_revisions(head: &Snapshot, base: Option<&Snapshot>) -> (Compiled, Option<Compiled>) {
    match base {
        None => (model::compile(head), None),
        Some(base) => {
            let (head, base) = model::compile_pair(head, base);
            (head, Some(base))
        }
    }
}

/// One plan per node, sorted by node name. When head does not compile, nothing is planned:
/// the report shows the errors instead of plans computed from a broken model.
pub fn plan_fleet(
    head: &Compiled,
    base: Option<&Compiled>,
    observed: &BTreeMap<String, ObservedState>,
) -> Vec<NodePlan> {
    if head.has_errors() {
        return Vec::new();
    }
    let mut names: BTreeSet<&str> = head.model.nodes.keys().map(String::as_str).collect();
    if let Some(b) = base {
        names.extend(b.model.nodes.keys().map(String::as_str));
    }
    let names: Vec<&str> = names.into_iter().collect();
    // Nodes plan independently: slices on all cores, joined in name order. Within a slice,
    // each node's observations are first looked for where the node before had them.
    state::parallel::in_parallel(&names, 64, |slice| {
        let mut positions = Positions::default();
        slice
            .iter()
            .map(|name| {
                plan_with(
                    head.model.desired_for(name),
                    observed.get(*name),
                    base.and_then(|b| b.model.desired_for(name)),
                    &mut positions,
                )
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// Labels of every node of head, for change-set selectors.
pub fn labels(head: &Compiled) -> BTreeMap<String, BTreeMap<String, String>> {
    head.model
        .nodes
        .iter()
        .map(|(name, info)| (name.clone(), info.labels.clone()))
        .collect()
}
