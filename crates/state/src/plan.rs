//! The one `plan()`: desired state x observed state (x the base revision's desired state, to
//! tell intent from drift) -> the exact changes, each property with before, after and cause,
//! and a digest the agent re-derives before applying. Used by the reconciler (pull-request
//! reports, dispatch) and by the agent (re-check just before apply).

use crate::desired::DesiredState;
use crate::observed::ObservedState;
use crate::resource::{
    Ensure, NotifyAction, PackageEnsure, ResourceId, ResourceKind, ServiceState, Spec,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Hash maps of the per-node lookups: foldhash (randomly seeded, much faster than SipHash on
/// short ids).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Version of the plan's canonical form (what the digest is computed over).
pub const PLAN_FORMAT: u32 = 1;

/// Text files larger than this are not diffed line by line.
pub const MAX_DIFF_BYTES: usize = 256 * 1024;

/// Why a property would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The desired state changed between base and head: this change is what the PR asks for.
    Intent,
    /// The desired state did not change; the node diverged from it (a hand edit, say).
    Drift,
}

/// What applying would do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// A service restarted because a resource that notifies it changes.
    Restart,
    /// A running service asked to reload its configuration because a resource that notifies
    /// it changes (its spec says `on_notify: reload`); the process keeps running.
    Reload,
    /// No longer in the desired state: left on the host as it is, no longer managed.
    Unmanage,
}

impl Action {
    /// The verb reports use: `create`, `update`, `delete`, `restart`, `reload`, `unmanage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Restart => "restart",
            Action::Reload => "reload",
            Action::Unmanage => "unmanage",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One property's change. Values are display strings; file content appears as its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyChange {
    pub name: String,
    /// `None`: the property does not exist yet, or its current value was not observed.
    pub before: Option<String>,
    /// `None`: the property goes away.
    pub after: Option<String>,
    pub cause: Cause,
}

/// One resource's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub id: ResourceId,
    pub action: Action,
    /// `intent` if any property's cause is intent, `drift` otherwise.
    pub cause: Cause,
    pub properties: Vec<PropertyChange>,
    /// Unified diff of file (or unit) content, when both sides are known text and not
    /// sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Removes something from the host (a package, user, group, file, directory, link), or
    /// replaces a resource of another type at the same path.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destructive: bool,
    /// The resource is sensitive: values are digests and there is no diff.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// For a restart or reload (or an update of a notified service): the resources whose
    /// change triggers it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_by: Vec<ResourceId>,
    /// The resource's current state was not observed (new to this node); `before` values
    /// are unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unobserved: bool,
}

/// How much is known about the node the plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    /// Planned against the state its agent reported.
    Known,
    /// The agent never reported: planned against the base revision as if it were applied.
    Unknown,
    /// The node left the inventory: everything it had is no longer managed.
    Removed,
}

/// The plan of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub node: String,
    pub status: NodeStatus,
    /// Changes in apply order (unmanaged resources last).
    pub changes: Vec<Change>,
    /// `sha256:` over the canonical form of the changes and the observed state they were
    /// computed from; see [`digest`].
    pub digest: String,
}

impl NodePlan {
    /// Whether applying would touch the host (unmanaging does not).
    pub fn has_host_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unmanage)
    }
}

/// Plans one node. `desired` is `None` when the node left the inventory, `observed` is
/// `None` when its agent never reported, `base` is the desired state at the base revision
/// (`None` for a node new in head, or when there is no base, as on the agent).
pub fn plan(
    desired: Option<&DesiredState>,
    observed: Option<&ObservedState>,
    base: Option<&DesiredState>,
) -> NodePlan {
    plan_with(desired, observed, base, &mut Positions::default())
}

/// Where the observations of a node's desired resources were found, by the resource's
/// place in the desired state: a guess for the next node planned with the same
/// `Positions`. Nodes of a fleet mostly have the same resources in the same order, so
/// planning them one after the other with one `Positions` finds each observation with one
/// comparison instead of a search. A wrong guess costs one comparison and a search, and
/// never changes the plan.
#[derive(Debug, Default, Clone)]
pub struct Positions(Vec<u32>);

impl Positions {
    /// The index in `entries` (sorted by id, as an [`ObservedState`]'s resources iterate)
    /// of `id`, the `at`-th desired resource, remembered for the next node.
    fn find(
        &mut self,
        at: usize,
        id: &ResourceId,
        entries: &[(&ResourceId, &Spec)],
    ) -> Option<usize> {
        if let Some(&guess) = self.0.get(at)
            && entries.get(guess as usize).is_some_and(|(k, _)| *k == id)
        {
            return Some(guess as usize);
        }
        let found = entries.binary_search_by(|(k, _)| (*k).cmp(id)).ok()?;
        if self.0.len() <= at {
            self.0.resize(at + 1, u32::MAX);
        }
        self.0[at] = u32::try_from(found).unwrap_or(u32::MAX);
        Some(found)
    }
}

/// [`plan`], with `positions` carried from the node planned before (see [`Positions`]).
/// The result is exactly `plan`'s.
pub fn plan_with(
    desired: Option<&DesiredState>,
    observed: Option<&ObservedState>,
    base: Option<&DesiredState>,
    positions: &mut Positions,
) -> NodePlan {
    let node = desired
        .map(|d| d.node.clone())
        .or_else(|| base.map(|b| b.node.clone()))
        .or_else(|| observed.map(|o| o.node.clone()))
        .unwrap_or_default();
    let status = match (desired, observed) {
        (None, _) => NodeStatus::Removed,
        (Some(_), None) => NodeStatus::Unknown,
        (Some(_), Some(_)) => NodeStatus::Known,
    };
    let mut changes = Vec::new();
    let mut used_observations: BTreeMap<&ResourceId, &Spec> = BTreeMap::new();
    let empty = Vec::new();
    let desired_resources = desired.map_or(&empty, |d| &d.resources);
    let base_resources = base.map_or(&empty, |b| &b.resources);
    // Base's resources are usually head's, in the same order: found by position, and by id
    // (an index built on first need) only where the two differ.
    let mut base_index: Option<FastMap<&ResourceId, &Spec>> = None;
    let mut base_in_step = desired_resources.len() == base_resources.len();
    // The observed entries in id order, and which of them desired resources were found in.
    let entries: Vec<(&ResourceId, &Spec)> =
        observed.map_or_else(Vec::new, |o| o.resources.iter().collect());
    let mut hit = vec![false; entries.len()];
    let mut hits = 0;
    for (i, r) in desired_resources.iter().enumerate() {
        let base_spec = match base_resources.get(i) {
            Some(b) if Arc::ptr_eq(b, r) || b.id == r.id => Some(&b.spec),
            _ => {
                base_in_step = false;
                base_index
                    .get_or_insert_with(|| {
                        base_resources.iter().map(|r| (&r.id, &r.spec)).collect()
                    })
                    .get(&r.id)
                    .copied()
            }
        };
        let (before, unobserved) = match observed {
            Some(_) => match positions.find(i, &r.id, &entries) {
                Some(at) => {
                    let spec = entries[at].1;
                    if !hit[at] {
                        hit[at] = true;
                        hits += 1;
                    }
                    if in_sync(&r.spec, spec) {
                        debug_assert!(
                            resource_change(&r.id, &r.spec, Some(spec), base_spec, false).is_none(),
                            "fast path disagrees with the full comparison for {}",
                            r.id
                        );
                        continue;
                    }
                    used_observations.insert(&r.id, spec);
                    (Some(spec), false)
                }
                None => (None, true),
            },
            // Never reported: assume the base revision was applied.
            None => (base_spec, base_spec.is_none()),
        };
        if let Some(change) = resource_change(&r.id, &r.spec, before, base_spec, unobserved) {
            changes.push(change);
        }
    }
    add_restarts(desired_resources, &mut changes);
    // Resources managed before (base, or reported by the agent) but not any more. None from
    // base when base has head's resources in the same order; none from the observed state
    // when every observed entry is one a desired resource was found in.
    let observed_all_desired = hits == entries.len();
    let mut gone: BTreeSet<&ResourceId> = BTreeSet::new();
    if !(base_in_step && observed_all_desired) {
        let desired_ids: FastSet<&ResourceId> = desired_resources.iter().map(|r| &r.id).collect();
        let previously = base_resources
            .iter()
            .filter(|_| !base_in_step)
            .map(|r| &r.id)
            .chain(
                observed
                    .into_iter()
                    .filter(|_| !observed_all_desired)
                    .flat_map(|o| o.resources.keys()),
            );
        gone.extend(previously.filter(|id| !desired_ids.contains(id)));
    }
    for id in gone {
        changes.push(Change {
            id: id.clone(),
            action: Action::Unmanage,
            cause: Cause::Intent,
            properties: Vec::new(),
            diff: None,
            destructive: false,
            sensitive: false,
            triggered_by: Vec::new(),
            unobserved: false,
        });
    }
    let digest = digest(&node, &changes, &used_observations);
    NodePlan {
        node,
        status,
        changes,
        digest,
    }
}

/// The canonical form hashed into a plan digest: format version, node, and for every change
/// that touches the host its id, action, triggers and properties (name, before, after) in
/// apply order, then the digest of the observed state of every resource that would change,
/// by id, file content counted by its digest only. (Observations of resources in sync need not be hashed: if one of them changes
/// before apply, the agent's plan gains a change and its digest differs anyway.) Causes, diffs and unmanaged resources are not part of it: they do not change what
/// the agent would do, and the agent has no base revision to derive causes from.
pub fn digest(node: &str, changes: &[Change], observed: &BTreeMap<&ResourceId, &Spec>) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        v: u32,
        node: &'a str,
        changes: Vec<CanonicalChange<'a>>,
        observed: Vec<(&'a ResourceId, String)>,
    }
    #[derive(Serialize)]
    struct CanonicalChange<'a> {
        id: &'a ResourceId,
        action: Action,
        triggered_by: &'a [ResourceId],
        properties: Vec<(&'a str, Option<&'a str>, Option<&'a str>)>,
    }
    let canonical = Canonical {
        v: PLAN_FORMAT,
        node,
        changes: changes
            .iter()
            .filter(|c| c.action != Action::Unmanage)
            .map(|c| CanonicalChange {
                id: &c.id,
                action: c.action,
                triggered_by: &c.triggered_by,
                properties: c
                    .properties
                    .iter()
                    .map(|p| (p.name.as_str(), p.before.as_deref(), p.after.as_deref()))
                    .collect(),
            })
            .collect(),
        observed: observed
            .iter()
            .map(|(id, spec)| {
                // File content is covered by its `sha256`; whether an agent also sent the
                // text (for diffs) must not change the digest.
                let digest = match spec {
                    Spec::File(f) if f.content.is_some() => {
                        crate::digest::sha256_json(&Spec::File(crate::FileSpec {
                            content: None,
                            ..f.clone()
                        }))
                    }
                    other => crate::digest::sha256_json(other),
                };
                (*id, digest)
            })
            .collect(),
    };
    crate::digest::sha256_json(&canonical)
}

/// Whether `observed` already satisfies `desired`: the fast path for the common case of a
/// converged resource, without building property lists. Must agree with
/// `resource_change` returning `None`; the slow path is authoritative when unsure.
fn in_sync(desired: &Spec, observed: &Spec) -> bool {
    fn managed<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
        want.is_none() || want == have
    }
    match (desired, observed) {
        (Spec::File(d), Spec::File(o)) => {
            d.ensure == o.ensure
                && (d.ensure == Ensure::Absent
                    || (managed(&d.sha256, &o.sha256)
                        && managed(&d.mode, &o.mode)
                        && managed(&d.owner, &o.owner)
                        && managed(&d.group, &o.group)))
        }
        (Spec::Directory(d), Spec::Directory(o)) => {
            d.ensure == o.ensure
                && (d.ensure == Ensure::Absent
                    || (managed(&d.mode, &o.mode)
                        && managed(&d.owner, &o.owner)
                        && managed(&d.group, &o.group)))
        }
        (Spec::Symlink(d), Spec::Symlink(o)) => {
            d.ensure == o.ensure && (d.ensure == Ensure::Absent || managed(&d.target, &o.target))
        }
        (Spec::Package(d), Spec::Package(o)) => match (&d.ensure, &o.ensure) {
            (PackageEnsure::Absent, PackageEnsure::Absent) => true,
            (PackageEnsure::Present | PackageEnsure::Latest, PackageEnsure::Version(_)) => true,
            (PackageEnsure::Version(want), PackageEnsure::Version(have)) => want == have,
            _ => false,
        },
        (Spec::Sysctl(d), Spec::Sysctl(o)) => d.value == o.value,
        (Spec::Service(d), Spec::Service(o)) => {
            d.state == o.state
                && managed(&d.enabled, &o.enabled)
                && (d.unit.is_none()
                    || d.unit.as_ref().map(|u| &u.sha256) == o.unit.as_ref().map(|u| &u.sha256))
                && d.restart == o.restart
                && managed(&d.health_check, &o.health_check)
                && d.environment == o.environment
        }
        _ => false,
    }
}

/// The properties a spec manages, as display strings; `None` values are unmanaged.
fn properties(spec: &Spec) -> Vec<(&'static str, Option<String>)> {
    let s = |v: &Option<String>| v.clone();
    match spec {
        Spec::File(f) => vec![
            ("content", f.sha256.clone()),
            ("mode", s(&f.mode)),
            ("owner", s(&f.owner)),
            ("group", s(&f.group)),
        ],
        Spec::Directory(d) => vec![
            ("mode", s(&d.mode)),
            ("owner", s(&d.owner)),
            ("group", s(&d.group)),
        ],
        Spec::Symlink(l) => vec![("target", s(&l.target))],
        Spec::Package(_) => Vec::new(),
        Spec::Service(v) => vec![
            (
                "state",
                Some(match v.state {
                    ServiceState::Running => "running".to_owned(),
                    ServiceState::Stopped => "stopped".to_owned(),
                }),
            ),
            ("enabled", v.enabled.map(|e| e.to_string())),
            ("unit", v.unit.as_ref().map(|u| u.sha256.clone())),
            (
                "restart",
                Some(
                    serde_json::to_value(v.restart)
                        .ok()
                        .and_then(|j| j.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
            ),
            (
                "healthCheck",
                v.health_check
                    .as_ref()
                    .map(|h| serde_json::to_string(h).unwrap_or_default()),
            ),
            (
                "environment",
                Some(
                    v.environment
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ),
        ],
        Spec::User(u) => vec![
            ("uid", u.uid.map(|x| x.to_string())),
            ("group", s(&u.group)),
            ("groups", Some(u.groups.join(","))),
            ("shell", s(&u.shell)),
            ("home", s(&u.home)),
            ("comment", s(&u.comment)),
        ],
        Spec::Group(g) => vec![("gid", g.gid.map(|x| x.to_string()))],
        Spec::Sysctl(c) => vec![("value", Some(c.value.clone()))],
    }
}

fn present(spec: &Spec) -> bool {
    match spec {
        Spec::File(f) => f.ensure == Ensure::Present,
        Spec::Directory(d) => d.ensure == Ensure::Present,
        Spec::Symlink(l) => l.ensure == Ensure::Present,
        Spec::Package(p) => p.ensure != PackageEnsure::Absent,
        Spec::User(u) => u.ensure == Ensure::Present,
        Spec::Group(g) => g.ensure == Ensure::Present,
        Spec::Service(_) | Spec::Sysctl(_) => true,
    }
}

fn package_version(spec: &Spec) -> Option<String> {
    match spec {
        Spec::Package(p) => match &p.ensure {
            PackageEnsure::Version(v) => Some(v.clone()),
            PackageEnsure::Present => Some("any version".into()),
            PackageEnsure::Latest => Some("latest".into()),
            PackageEnsure::Absent => None,
        },
        _ => None,
    }
}

fn is_sensitive(spec: &Spec) -> bool {
    matches!(spec, Spec::File(f) if f.sensitive)
}

fn content_text(spec: &Spec) -> Option<&str> {
    match spec {
        Spec::File(f) => f.content.as_deref(),
        Spec::Service(s) => s.unit.as_ref().map(|u| &*u.content),
        _ => None,
    }
}

/// The property (by name) of `spec`, for cause detection against the base.
fn property(spec: Option<&Spec>, name: &str) -> Option<Option<String>> {
    let spec = spec?;
    if name == "ensure" {
        return Some(Some(
            if present(spec) { "present" } else { "absent" }.to_owned(),
        ));
    }
    if name == "version" {
        return Some(package_version(spec));
    }
    properties(spec)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn resource_change(
    id: &ResourceId,
    desired: &Spec,
    before: Option<&Spec>,
    base: Option<&Spec>,
    unobserved: bool,
) -> Option<Change> {
    let cause_of = |name: &str, after: &Option<String>| -> Cause {
        match base {
            None => Cause::Intent,
            Some(_) => {
                if property(base, name).as_ref() == Some(after) {
                    Cause::Drift
                } else {
                    Cause::Intent
                }
            }
        }
    };
    let sensitive = is_sensitive(desired) || before.is_some_and(is_sensitive);
    let mut props = Vec::new();
    let mut destructive = false;
    let kind_mismatch = before.is_some_and(|b| b.kind() != desired.kind());
    let before_present = before.is_some_and(|b| !kind_mismatch && present(b));
    let action;
    if kind_mismatch {
        let b = before.map(|b| b.kind().to_string());
        let after = Some(desired.kind().to_string());
        props.push(PropertyChange {
            name: "type".into(),
            before: b,
            after: after.clone(),
            cause: Cause::Drift,
        });
        destructive = true;
    }
    if !present(desired) {
        if !before_present && !unobserved {
            return None;
        }
        action = Action::Delete;
        destructive = before_present || unobserved;
        let after = Some("absent".to_owned());
        props.push(PropertyChange {
            name: "ensure".into(),
            before: if unobserved {
                None
            } else {
                Some("present".into())
            },
            after: after.clone(),
            cause: cause_of("ensure", &after),
        });
    } else if !before_present {
        action = Action::Create;
        if let Some(v) = package_version(desired) {
            let after = Some(v);
            props.push(PropertyChange {
                name: "version".into(),
                before: None,
                after: after.clone(),
                cause: cause_of("version", &after),
            });
        } else {
            let after = Some("present".to_owned());
            let cause = cause_of("ensure", &after);
            for (name, value) in properties(desired) {
                if value.is_some() {
                    props.push(PropertyChange {
                        name: name.into(),
                        before: None,
                        after: value.clone(),
                        cause: if cause == Cause::Intent {
                            Cause::Intent
                        } else {
                            cause_of(name, &value)
                        },
                    });
                }
            }
        }
    } else {
        let b = before.unwrap_or(desired);
        if let (Spec::Package(_), PackageEnsure::Version(want)) = (desired, package_ensure(desired))
        {
            let have = package_version(b);
            if have.as_deref() != Some(want.as_str()) {
                let after = Some(want.clone());
                props.push(PropertyChange {
                    name: "version".into(),
                    before: have,
                    after: after.clone(),
                    cause: cause_of("version", &after),
                });
            }
        }
        let observed_props = properties(b);
        for (name, value) in properties(desired) {
            let Some(want) = value else { continue };
            let have = observed_props
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.clone());
            if have.as_deref() != Some(want.as_str()) {
                let after = Some(want);
                props.push(PropertyChange {
                    name: name.into(),
                    before: have,
                    after: after.clone(),
                    cause: cause_of(name, &after),
                });
            }
        }
        if props.is_empty() {
            return None;
        }
        action = Action::Update;
    }
    let diff = if sensitive {
        None
    } else if props
        .iter()
        .any(|p| p.name == "content" || p.name == "unit")
    {
        let old = before
            .filter(|_| before_present)
            .and_then(content_text)
            .or_else(|| {
                // Not reported by the agent: the base revision's content is the best knowledge.
                base.and_then(content_text)
                    .filter(|_| before_present || unobserved)
            });
        content_text(desired).map(|new| unified_diff(&id.name, old.unwrap_or(""), new))
    } else {
        None
    };
    let cause = if props.iter().any(|p| p.cause == Cause::Intent) {
        Cause::Intent
    } else {
        Cause::Drift
    };
    Some(Change {
        id: id.clone(),
        action,
        cause,
        properties: props,
        diff,
        destructive,
        sensitive,
        triggered_by: Vec::new(),
        unobserved,
    })
}

fn package_ensure(spec: &Spec) -> &PackageEnsure {
    match spec {
        Spec::Package(p) => &p.ensure,
        _ => &PackageEnsure::Present,
    }
}

/// A unified diff with three lines of context; very large texts are summarized.
pub fn unified_diff(name: &str, old: &str, new: &str) -> String {
    if old.len() > MAX_DIFF_BYTES || new.len() > MAX_DIFF_BYTES {
        return format!(
            "@@ {name}: content too large to diff ({} -> {} bytes) @@\n",
            old.len(),
            new.len()
        );
    }
    let diff = similar::TextDiff::from_lines(old, new);
    diff.unified_diff()
        .context_radius(3)
        .missing_newline_hint(true)
        .header(&format!("a{name}"), &format!("b{name}"))
        .to_string()
}

/// Adds a restart (or, for a service whose spec says `on_notify: reload`, a reload) for
/// every service notified by a changed resource, unless the service is itself created or
/// stopped by the plan. A service the plan already updates keeps its update, with
/// `triggered_by` set: the agent restarts it when its unit or drop-in changed (restart wins
/// over reload) and otherwise does what its spec says.
fn add_restarts(
    desired: &[std::sync::Arc<crate::desired::DesiredResource>],
    changes: &mut Vec<Change>,
) {
    let mut triggers: BTreeMap<ResourceId, (Vec<ResourceId>, Cause)> = BTreeMap::new();
    for change in changes.iter() {
        let Some(r) = desired.iter().find(|r| r.id == change.id) else {
            continue;
        };
        for target in &r.notify {
            let entry = triggers
                .entry(target.clone())
                .or_insert((Vec::new(), Cause::Drift));
            entry.0.push(change.id.clone());
            entry.1 = entry.1.min(change.cause);
        }
    }
    for (service, (by, cause)) in triggers {
        let spec = desired.iter().find_map(|r| match &r.spec {
            Spec::Service(s) if r.id == service => Some(s),
            _ => None,
        });
        let stops = spec.is_some_and(|s| s.state == ServiceState::Stopped);
        if stops || service.kind != ResourceKind::Service {
            continue;
        }
        let action = match spec.map(|s| s.on_notify) {
            Some(NotifyAction::Reload) => Action::Reload,
            _ => Action::Restart,
        };
        match changes.iter_mut().find(|c| c.id == service) {
            Some(existing) if existing.action == Action::Create => {}
            Some(existing) => existing.triggered_by = by,
            None => {
                let position = desired
                    .iter()
                    .position(|r| r.id == service)
                    .and_then(|p| {
                        changes.iter().position(|c| {
                            desired
                                .iter()
                                .position(|r| r.id == c.id)
                                .is_some_and(|q| q > p)
                        })
                    })
                    .unwrap_or(changes.len());
                changes.insert(
                    position,
                    Change {
                        id: service,
                        action,
                        cause,
                        properties: Vec::new(),
                        diff: None,
                        destructive: false,
                        sensitive: false,
                        triggered_by: by,
                        unobserved: false,
                    },
                );
            }
        }
    }
}
