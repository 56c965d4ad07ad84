//! Change sets: nodes whose plans are identical (same changes, same causes, same diffs)
//! grouped together, with the label selector that best describes them.

use serde::{Deserialize, Serialize};
use state::{Action, Change, NodePlan, NodeStatus};
use std::collections::{BTreeMap, HashMap};

/// Nodes that would undergo exactly the same changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// 1-based position in the report.
    pub id: usize,
    /// `sha256:` of the canonical change list (without node names): equal plans, equal key.
    pub key: String,
    pub status: NodeStatus,
    pub nodes: Vec<String>,
    /// Labels every node of the set has, e.g. `role=web`.
    pub selector: BTreeMap<String, String>,
    /// Whether `selector` selects exactly these nodes among the fleet.
    pub selector_exact: bool,
    pub changes: Vec<Change>,
}

impl ChangeSet {
    pub fn destructive(&self) -> bool {
        self.changes.iter().any(|c| c.destructive)
    }

    pub fn has_drift(&self) -> bool {
        self.changes.iter().any(|c| {
            c.properties.iter().any(|p| p.cause == state::Cause::Drift)
                || c.cause == state::Cause::Drift
        })
    }

    /// Whether a service restarts: a notified restart, or a notified service that is also
    /// updated (the agent restarts it when its unit or drop-in changed).
    pub fn restarts(&self) -> bool {
        self.changes.iter().any(|c| {
            c.action == Action::Restart
                || (c.action != Action::Reload && !c.triggered_by.is_empty())
        })
    }

    /// Whether a service reloads (`on_notify: reload`): it keeps running.
    pub fn reloads(&self) -> bool {
        self.changes.iter().any(|c| c.action == Action::Reload)
    }

    /// Lines added and removed across the set's diffs.
    pub fn diff_lines(&self) -> (usize, usize) {
        let mut added = 0;
        let mut removed = 0;
        for diff in self.changes.iter().filter_map(|c| c.diff.as_deref()) {
            for line in diff.lines() {
                if line.starts_with('+') && !line.starts_with("+++") {
                    added += 1;
                } else if line.starts_with('-') && !line.starts_with("---") {
                    removed += 1;
                }
            }
        }
        (added, removed)
    }
}

/// Plans are grouped by their changes; where a content change has a diff, the diff stands
/// for the content digests (a template rendered per node differs in digest, not in diff).
fn key(plan: &NodePlan) -> String {
    #[derive(Serialize)]
    struct Key {
        status: NodeStatus,
        changes: Vec<Change>,
        /// Kept so that keys stay what they were.
        _marker: (),
    }
    let changes = plan
        .changes
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.diff.is_some() {
                for p in &mut c.properties {
                    if p.name == "content" || p.name == "unit" {
                        p.before = None;
                        p.after = None;
                    }
                }
            }
            c
        })
        .collect();
    state::digest::sha256_json(&Key {
        status: plan.status,
        changes,
        _marker: (),
    })
}

/// Groups node plans with changes into change sets, largest first (then by first node).
pub fn group(
    plans: &[NodePlan],
    labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<ChangeSet> {
    let mut sets: Vec<ChangeSet> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for plan in plans.iter().filter(|p| !p.changes.is_empty()) {
        let k = key(plan);
        match by_key.get(&k) {
            Some(&i) => sets[i].nodes.push(plan.node.clone()),
            None => {
                by_key.insert(k.clone(), sets.len());
                sets.push(ChangeSet {
                    id: 0,
                    key: k,
                    status: plan.status,
                    nodes: vec![plan.node.clone()],
                    selector: BTreeMap::new(),
                    selector_exact: false,
                    changes: plan.changes.clone(),
                });
            }
        }
    }
    let mut index: LabelIndex<'_> = HashMap::new();
    for l in labels.values() {
        for (k, v) in l {
            index.entry((k.clone(), v.clone())).or_default().push(l);
        }
    }
    for set in &mut sets {
        set.nodes.sort();
        let (selector, exact) = best_selector(&set.nodes, labels, &index);
        set.selector = selector;
        set.selector_exact = exact;
    }
    sets.sort_by(|a, b| {
        b.nodes
            .len()
            .cmp(&a.nodes.len())
            .then_with(|| a.nodes.first().cmp(&b.nodes.first()))
    });
    for (i, set) in sets.iter_mut().enumerate() {
        set.id = i + 1;
    }
    sets
}

/// For each label `(key, value)`, the label sets of the nodes that have it.
type LabelIndex<'l> = HashMap<(String, String), Vec<&'l BTreeMap<String, String>>>;

/// The labels all `nodes` share, and whether they select exactly `nodes` in the fleet.
/// `index` lists, for each label, the label sets of the nodes that have it.
fn best_selector(
    nodes: &[String],
    labels: &BTreeMap<String, BTreeMap<String, String>>,
    index: &LabelIndex<'_>,
) -> (BTreeMap<String, String>, bool) {
    let empty = BTreeMap::new();
    let mut common: BTreeMap<String, String> = nodes
        .first()
        .and_then(|n| labels.get(n))
        .cloned()
        .unwrap_or_default();
    for n in nodes.iter().skip(1) {
        let l = labels.get(n).unwrap_or(&empty);
        common.retain(|k, v| l.get(k) == Some(v));
        if common.is_empty() {
            break;
        }
    }
    fn holders<'i, 'l>(
        index: &'i LabelIndex<'l>,
        k: &str,
        v: &str,
    ) -> &'i [&'l BTreeMap<String, String>] {
        index
            .get(&(k.to_owned(), v.to_owned()))
            .map_or(&[][..], Vec::as_slice)
    }
    // Prefer one label that selects exactly the set.
    for (k, v) in &common {
        if holders(index, k, v).len() == nodes.len() {
            return ([(k.clone(), v.clone())].into(), true);
        }
    }
    // Otherwise all common labels: count the nodes that have them, starting from the
    // rarest label.
    let Some((rk, rv)) = common
        .iter()
        .min_by_key(|(k, v)| holders(index, k, v).len())
    else {
        return (common, false);
    };
    let selected = holders(index, rk, rv)
        .iter()
        .filter(|l| common.iter().all(|(k, v)| l.get(k) == Some(v)))
        .count();
    let exact = selected == nodes.len();
    (common, exact)
}
