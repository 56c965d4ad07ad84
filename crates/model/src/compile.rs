//! The compiler: snapshot -> loaded documents -> cross-document checks -> one desired state
//! per node. Never panics on input; returns every problem found.

use crate::diagnostic::{Code, Diagnostic, normalize};
use crate::layout::{Layout, Slot};
use crate::loader::{self, Loads, Located};
use crate::lower::{self, Body, Decl};
use crate::manifest::{DriftMode, NodeDoc, RoleDoc, Selector, SelectorOperator, StaleApply, Vars};
use crate::order;
use crate::reuse::{LayoutKeys, Memo, MemoRole, NodeMemo, Reuse};
use crate::selector;
use crate::snapshot::Snapshot;
use crate::template::{RESERVED_VARS, Templates};
use minijinja::Value;
use state::parallel::in_parallel;
use state::{DESIRED_FORMAT, DesiredResource, DesiredState, Origin, ResourceId, Spec};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Fleet-wide settings after defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    pub name: String,
    pub drift_mode: DriftMode,
    pub drift_interval_ms: u64,
    pub stale_apply: StaleApply,
}

/// One inventory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub address: Option<String>,
    pub file: String,
    pub line: u32,
    /// Names of the roles that select this node, in role-name order.
    pub roles: Vec<String>,
}

/// One role after checks.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    pub name: String,
    pub file: String,
    pub line: u32,
    pub selector: Selector,
    /// Names of the nodes it selects.
    pub nodes: Vec<String>,
}

/// A compiled fleet: inventory, roles and every node's desired state.
#[derive(Debug, Clone)]
pub struct Model {
    pub commit: Option<String>,
    pub fleet: FleetSettings,
    pub nodes: BTreeMap<String, NodeInfo>,
    pub roles: Vec<RoleInfo>,
    /// The reconciler's role bindings declared in `access.yaml` (none without the file).
    pub access: Vec<crate::access::Binding>,
    desired: BTreeMap<String, Arc<DesiredState>>,
}

impl Model {
    /// The desired state of `node`, `None` if it is not in the inventory.
    pub fn desired_for(&self, node: &str) -> Option<&DesiredState> {
        self.desired.get(node).map(|d| &**d)
    }

    /// Every node's desired state, by node name.
    pub fn desired(&self) -> impl Iterator<Item = (&str, &DesiredState)> {
        self.desired.iter().map(|(k, v)| (k.as_str(), &**v))
    }
}

/// The result of compiling a snapshot.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub model: Model,
    /// Every problem, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A role with its lowered declarations and its vars.
pub(crate) struct LoweredRole<'a> {
    pub doc: &'a Located<RoleDoc>,
    pub decls: Vec<Decl>,
    /// Per declaration, the resource every node gets when the body is static: built once
    /// and shared by every node's desired state.
    pub shared: Vec<Option<Arc<DesiredResource>>>,
    pub vars: VarValues,
}

/// Template variables by name; `Arc<str>` names, as every template context copies them.
type VarValues = BTreeMap<Arc<str>, Value>;

/// Compiles a snapshot of a fleet repository.
pub fn compile(snapshot: &Snapshot) -> Compiled {
    compile_with(snapshot, true)
}

/// Compiles `base`, then `head` reusing base's work wherever head's inputs are the same:
/// files with the same bytes are loaded once, and a template's render on a node (and the
/// resources built from it) is taken from base when the template, the node's document, its
/// role's vars and declarations, the fleet's vars and the inventory are all the same. The
/// results are exactly those of `compile(head)` and `compile(base)`; a pull request's plan
/// compiles both revisions and usually changes a few files.
pub fn compile_pair(head: &Snapshot, base: &Snapshot) -> (Compiled, Compiled) {
    let (base_compiled, memo) = compile_inner(base, true, Mode::Record);
    let (head_compiled, _) = compile_inner(head, true, Mode::Reuse(base, &memo));
    (head_compiled, base_compiled)
}

/// Compiles `snapshot`; without `use_layouts` every node is assembled declaration by
/// declaration (what layouts must reproduce exactly; the tests compare the two).
fn compile_with(snapshot: &Snapshot, use_layouts: bool) -> Compiled {
    compile_inner(snapshot, use_layouts, Mode::Alone).0
}

/// How a compile relates to another revision's.
#[derive(Clone, Copy)]
enum Mode<'m> {
    /// On its own.
    Alone,
    /// Keeping what a compile of another revision can reuse (base, in `compile_pair`).
    Record,
    /// Reusing what the compile of the snapshot given (base) recorded.
    Reuse(&'m Snapshot, &'m Memo),
}

/// Compiles `snapshot` in `mode`; the memo is filled in `Mode::Record` only.
fn compile_inner(snapshot: &Snapshot, use_layouts: bool, mode: Mode<'_>) -> (Compiled, Memo) {
    let mut diags = Vec::new();
    let prior_loads = match mode {
        Mode::Reuse(_, memo) => Some(&memo.loads),
        _ => None,
    };
    let (mut loaded, loads) = match mode {
        Mode::Alone => (loader::load(snapshot, &mut diags), Loads::default()),
        _ => loader::load_reusing(snapshot, prior_loads, &mut diags),
    };
    let mut memo = Memo::default();
    if let Mode::Record = mode {
        memo.loads = loads;
    }
    let mut rejected = std::mem::take(&mut loaded.rejected);
    let fleet = fleet_settings(&loaded.fleets, &mut diags);
    let fleet_vars = loaded
        .fleets
        .first()
        .map(|f| vars_to_values(&f.doc.spec.vars, f, "/spec/vars", &mut diags))
        .unwrap_or_default();

    let nodes = unique_by_name(loaded.nodes, Code::DuplicateNode, "node", &mut diags);
    let roles = unique_by_name(loaded.roles, Code::DuplicateRole, "role", &mut diags);

    let templates = Templates::new(&snapshot.files);
    let mut lowered: Vec<LoweredRole<'_>> = Vec::new();
    for role in &roles {
        check_selector(role, &mut diags);
        let decls = lower::lower_role(role, snapshot, &templates, &mut diags, &mut rejected);
        let vars = vars_to_values(&role.doc.spec.vars, role, "/spec/vars", &mut diags);
        let shared = decls
            .iter()
            .map(|decl| match &decl.body {
                Body::Static(spec) => Some(Arc::new(resource(role, decl, spec.clone()))),
                _ => None,
            })
            .collect();
        lowered.push(LoweredRole {
            doc: role,
            decls,
            shared,
            vars,
        });
    }
    let fleet_vars_doc = loaded.fleets.first().map(|f| &f.doc.spec.vars);
    let reuse = match mode {
        Mode::Reuse(base, prior) => {
            let roles: Vec<_> = roles
                .iter()
                .zip(&lowered)
                .map(|(doc, l)| (doc, &l.decls[..]))
                .collect();
            Reuse::new(
                prior,
                base,
                snapshot,
                fleet_vars_doc,
                &fleet.name,
                &nodes,
                &roles,
            )
        }
        _ => None,
    };

    // Each node as templates see it (`node`, and an entry of `inventory`), built on all
    // cores once for both uses.
    let node_values: Vec<Value> = in_parallel(&nodes, NODES_PER_TASK, |slice| {
        slice.iter().map(|n| node_value(n)).collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let entries: Vec<(&Arc<Located<NodeDoc>>, &Value)> = nodes.iter().zip(&node_values).collect();
    let inventory = Value::from(node_values.clone());
    let shared = Shared {
        lowered: &lowered,
        fleet_vars: &fleet_vars,
        inventory: &inventory,
        templates: &templates,
        fleet: &fleet,
        rejected: &rejected,
        commit: &snapshot.commit,
        layouts: Mutex::new(HashMap::new()),
        use_layouts,
        record: matches!(mode, Mode::Record),
        reuse: reuse.as_ref(),
    };
    // Nodes compile independently: slices of the inventory on all cores, merged in
    // inventory order, so the result is the same as one pass over the nodes.
    let parts = in_parallel(&entries, NODES_PER_TASK, |slice| {
        compile_nodes(slice, &shared)
    });
    let mut per_node = PerNode::default();
    // Collected, then built into maps once (appending map to map would merge the whole
    // map again for every part).
    let mut node_infos = Vec::with_capacity(nodes.len());
    let mut desired = Vec::with_capacity(nodes.len());
    let mut role_nodes: Vec<Vec<String>> = vec![Vec::new(); lowered.len()];
    for mut part in parts {
        diags.append(&mut part.diags);
        per_node.absorb(part.per_node);
        node_infos.append(&mut part.node_infos);
        desired.append(&mut part.desired);
        for (all, mut some) in role_nodes.iter_mut().zip(part.role_nodes) {
            all.append(&mut some);
        }
        memo.nodes.append(&mut part.memos);
    }

    let mut role_infos = Vec::new();
    for (LoweredRole { doc: role, .. }, nodes_of_role) in lowered.iter().zip(role_nodes) {
        let pos = role.pos("/spec/selector");
        if nodes_of_role.is_empty() && !nodes.is_empty() {
            diags.push(
                Diagnostic::new(
                    Code::SelectorMatchesNothing,
                    &role.file,
                    pos.line,
                    pos.column,
                    format!(
                        "role `{}` selects no node ({})",
                        role.doc.metadata.name,
                        selector::describe(&role.doc.spec.selector)
                    ),
                )
                .hint("check the selector against the nodes' labels"),
            );
        }
        role_infos.push(RoleInfo {
            name: role.doc.metadata.name.clone(),
            file: role.file.clone(),
            line: role.pos("/metadata/name").line,
            selector: role.doc.spec.selector.clone(),
            nodes: nodes_of_role,
        });
    }
    per_node.flush(&mut diags);
    let access = match snapshot.get(crate::access::FILE) {
        None => Vec::new(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => crate::access::parse(text, &mut diags),
            Err(_) => {
                diags.push(Diagnostic::new(
                    Code::NotUtf8,
                    crate::access::FILE,
                    0,
                    0,
                    "not valid UTF-8",
                ));
                Vec::new()
            }
        },
    };
    normalize(&mut diags);
    if let Mode::Record = mode {
        memo.fleet_vars = fleet_vars_doc.cloned();
        memo.fleet_name = fleet.name.clone();
        memo.inventory = nodes.clone();
        memo.runaway = templates.runaway();
        let decls = lowered.into_iter().map(|l| l.decls);
        memo.roles = roles
            .iter()
            .zip(decls)
            .map(|(doc, decls)| MemoRole {
                doc: Arc::clone(doc),
                decls,
            })
            .collect();
    }
    let compiled = Compiled {
        model: Model {
            commit: snapshot.commit.clone(),
            fleet,
            nodes: node_infos.into_iter().collect(),
            roles: role_infos,
            access,
            desired: desired.into_iter().collect(),
        },
        diagnostics: diags,
    };
    (compiled, memo)
}

/// Slices of at least this many nodes are compiled as one task.
const NODES_PER_TASK: usize = 64;

/// What compiling a node needs from the rest of the compilation; shared by the threads.
struct Shared<'a> {
    lowered: &'a [LoweredRole<'a>],
    fleet_vars: &'a VarValues,
    inventory: &'a Value,
    templates: &'a Templates,
    fleet: &'a FleetSettings,
    rejected: &'a HashSet<ResourceId>,
    commit: &'a Option<String>,
    /// Layouts by set of roles, computed by the first node with that set.
    layouts: Mutex<HashMap<Vec<usize>, Arc<Option<Layout<'a>>>>>,
    use_layouts: bool,
    /// Whether to keep each node's renders and layout keys (base of `compile_pair`).
    record: bool,
    /// What may be taken from base (head of `compile_pair`).
    reuse: Option<&'a Reuse<'a>>,
}

/// A layout as one slice of nodes uses it.
struct Known<'a> {
    layout: Option<Layout<'a>>,
    /// Its renders and slots by role and template or declaration (when recording).
    keys: Option<Arc<LayoutKeys>>,
    /// Per render: base's role, when base's render of the template may be reused.
    base_roles: Vec<Option<usize>>,
}

/// The nodes of one slice of the inventory, compiled, with what was found on them.
struct NodesPart {
    diags: Vec<Diagnostic>,
    per_node: PerNode,
    /// By node name, in inventory order (names are unique).
    node_infos: Vec<(String, NodeInfo)>,
    desired: Vec<(String, Arc<DesiredState>)>,
    /// Per role, the nodes of this slice it selects.
    role_nodes: Vec<Vec<String>>,
    /// What base's compile keeps of its nodes (when recording).
    memos: Vec<NodeMemo>,
}

/// Compiles `nodes`, a slice of the inventory with each node's template value, in order.
fn compile_nodes(nodes: &[(&Arc<Located<NodeDoc>>, &Value)], shared: &Shared<'_>) -> NodesPart {
    let Shared {
        lowered,
        fleet_vars,
        inventory,
        templates,
        fleet,
        rejected,
        commit,
        ref layouts,
        use_layouts,
        record,
        reuse,
    } = *shared;
    let mut diags = Vec::new();
    let mut per_node = PerNode::default();
    let mut node_infos = Vec::with_capacity(nodes.len());
    let mut desired = Vec::with_capacity(nodes.len());
    let mut role_nodes: Vec<Vec<String>> = vec![Vec::new(); lowered.len()];
    let mut memos = Vec::new();
    // The layouts this slice's nodes use, taken from the shared ones.
    let mut known: HashMap<Vec<usize>, Known<'_>> = HashMap::new();
    for &(node, node_val) in nodes {
        let name = &node.doc.metadata.name;
        let labels = &node.doc.metadata.labels;
        let node_vars = vars_to_values(&node.doc.spec.vars, node, "/spec/vars", &mut diags);
        let selected: Vec<usize> = (0..lowered.len())
            .filter(|&ri| selector::matches(&lowered[ri].doc.doc.spec.selector, labels))
            .collect();
        let mut role_names = Vec::with_capacity(selected.len());
        for &ri in &selected {
            role_nodes[ri].push(name.clone());
            role_names.push(lowered[ri].doc.doc.metadata.name.clone());
        }
        let context_of = |ri: usize| {
            let role = &lowered[ri];
            context(
                fleet_vars, &role.vars, &node_vars, node_val, inventory, role.doc, fleet,
            )
        };
        if use_layouts && !known.contains_key(&selected) {
            // A copy of the shared resources for this slice: every node takes a reference to
            // each, and reference counts touched by one thread only stay in its cache.
            let layout = layout_of(layouts, &selected, lowered)
                .as_ref()
                .as_ref()
                .map(Layout::own_copy);
            let keys = layout
                .as_ref()
                .filter(|_| record)
                .map(|l| Arc::new(l.keys()));
            let base_roles = match (&layout, reuse) {
                (Some(l), Some(reuse)) => l
                    .renders
                    .iter()
                    .map(|&(ri, template)| reuse.render_role(ri, template))
                    .collect(),
                _ => Vec::new(),
            };
            let known_layout = Known {
                layout,
                keys,
                base_roles,
            };
            known.insert(selected.clone(), known_layout);
        }
        let known_layout = known.get(&selected);
        let from_layout = known_layout.and_then(|k| {
            let layout = k.layout.as_ref()?;
            let prior = reuse.and_then(|r| Some((r, r.node(node)?, &k.base_roles[..])));
            fill(layout, lowered, templates, &context_of, prior)
        });
        let mut node_renders = None;
        let resources = match from_layout {
            Some((resources, renders)) => {
                node_renders = Some(renders);
                resources
            }
            None => assemble(
                &selected,
                lowered,
                templates,
                &context_of,
                name,
                rejected,
                &mut per_node,
            ),
        };
        if role_names.is_empty() && !lowered.is_empty() {
            let pos = node.pos("/metadata/name");
            diags.push(
                Diagnostic::new(
                    Code::NodeWithoutRole,
                    &node.file,
                    pos.line,
                    pos.column,
                    format!("node `{name}` is selected by no role"),
                )
                .hint("check its labels against the roles' selectors"),
            );
        }
        let pos = node.pos("/metadata/name");
        node_infos.push((
            name.clone(),
            NodeInfo {
                name: name.clone(),
                labels: labels.clone(),
                address: node.doc.spec.address.clone(),
                file: node.file.clone(),
                line: pos.line,
                roles: role_names,
            },
        ));
        let state = Arc::new(DesiredState {
            format: DESIRED_FORMAT,
            node: name.clone(),
            commit: commit.clone(),
            labels: labels.clone(),
            resources,
        });
        if let (Some(renders), Some(keys)) =
            (node_renders, known_layout.and_then(|k| k.keys.as_ref()))
        {
            memos.push(NodeMemo {
                doc: Arc::clone(node),
                keys: Arc::clone(keys),
                renders: renders.into_iter().map(Cow::into_owned).collect(),
                desired: Arc::clone(&state),
            });
        }
        desired.push((name.clone(), state));
    }
    NodesPart {
        diags,
        per_node,
        node_infos,
        desired,
        role_nodes,
        memos,
    }
}

/// The layout of the roles `selected`, computed if no node has needed it yet. (The lock is
/// not held while computing: two threads may both compute it, and one result is kept.)
fn layout_of<'a>(
    layouts: &Mutex<HashMap<Vec<usize>, Arc<Option<Layout<'a>>>>>,
    selected: &[usize],
    lowered: &'a [LoweredRole<'a>],
) -> Arc<Option<Layout<'a>>> {
    let lock = || {
        layouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(layout) = lock().get(selected) {
        return Arc::clone(layout);
    }
    let layout = Arc::new(Layout::new(selected, lowered));
    Arc::clone(lock().entry(selected.to_vec()).or_insert(layout))
}

/// A node's resources and renders (its own, or base's).
type Filled<'m> = (Vec<Arc<DesiredResource>>, Vec<Cow<'m, Rendered>>);

/// A node's resources from the layout of its roles: shared resources as they are, templated
/// ones rendered with the node's context (`context_of(role)`), with the renders (aligned
/// with the layout's). `None` when a render fails: the node is then assembled one by one,
/// which reports it. With `prior` (base's reuse decisions, its memo of this node, and per
/// render base's role when it may be reused), renders and the resources built from them are
/// taken from base where allowed.
fn fill<'m>(
    layout: &Layout<'_>,
    lowered: &[LoweredRole<'_>],
    templates: &Templates,
    context_of: &dyn Fn(usize) -> Value,
    prior: Option<(&Reuse<'_>, &'m NodeMemo, &[Option<usize>])>,
) -> Option<Filled<'m>> {
    let mut rendered: Vec<Cow<'m, Rendered>> = Vec::with_capacity(layout.renders.len());
    let mut ctx: Option<(usize, Value)> = None;
    for (i, &(ri, template)) in layout.renders.iter().enumerate() {
        let from_base = prior.and_then(|(_, memo, base_roles)| {
            let base_role = base_roles.get(i).copied().flatten()?;
            // A template that ran away in this compile fails on every node (as it would
            // without reuse).
            if templates.ran_away(template) {
                return None;
            }
            memo.render(i, base_role, template)
        });
        if let Some(r) = from_base {
            rendered.push(Cow::Borrowed(r));
            continue;
        }
        let ctx = match ctx {
            Some((role, ref value)) if role == ri => value,
            _ => &ctx.insert((ri, context_of(ri))).1,
        };
        let text = templates.render(template, ctx).ok()?;
        let sha256 = state::digest::sha256(text.as_bytes());
        rendered.push(Cow::Owned((Arc::from(text), sha256)));
    }
    let resources = layout
        .slots
        .iter()
        .enumerate()
        .map(|(at, slot)| match slot {
            Slot::Shared(r) => Arc::clone(r),
            &Slot::Rendered { role, decl, render } => {
                // Base's resource, when its render is base's and the role declares the same.
                let reused = match (prior, &rendered[render]) {
                    (Some((reuse, memo, _)), Cow::Borrowed(_)) if reuse.same_decls(role) => reuse
                        .base_role(role)
                        .and_then(|base_role| memo.resource(at, base_role, decl)),
                    _ => None,
                };
                if let Some(r) = reused {
                    return Arc::clone(r);
                }
                let (role, decl) = (&lowered[role], &lowered[role].decls[decl]);
                let (text, sha256) = &*rendered[render];
                let spec = decl.body.with_rendered(Arc::clone(text), sha256.clone());
                Arc::new(resource(role.doc, decl, spec))
            }
        })
        .collect();
    Some((resources, rendered))
}

/// A node's resources assembled declaration by declaration, with every problem reported:
/// renders that fail, conflicting declarations, unknown edge targets, cycles.
fn assemble(
    selected: &[usize],
    lowered: &[LoweredRole<'_>],
    templates: &Templates,
    context_of: &dyn Fn(usize) -> Value,
    name: &str,
    rejected: &HashSet<ResourceId>,
    per_node: &mut PerNode,
) -> Vec<Arc<DesiredResource>> {
    // Sized up front: a node's resources are not regrown (and copied) role by role.
    let mut assembly =
        Assembly::with_capacity(selected.iter().map(|&ri| lowered[ri].decls.len()).sum());
    for &ri in selected {
        let LoweredRole {
            doc: role,
            decls,
            shared,
            ..
        } = &lowered[ri];
        let mut ctx: Option<Value> = None;
        // Renders of this role on this node, by template: the same template with the
        // same context renders the same text, so it is rendered (and digested) once.
        let mut rendered: Vec<(&str, Result<Rendered, Diagnostic>)> = Vec::new();
        for (decl, shared) in decls.iter().zip(shared) {
            let resource = match (&decl.body, shared) {
                (_, Some(shared)) => Arc::clone(shared),
                (templated, None) => {
                    let template = templated.template().unwrap_or_default();
                    let i = match rendered.iter().position(|(t, _)| *t == template) {
                        Some(i) => i,
                        None => {
                            let ctx = ctx.get_or_insert_with(|| context_of(ri));
                            let result = templates.render(template, ctx).map(|text| {
                                let sha256 = state::digest::sha256(text.as_bytes());
                                (Arc::from(text), sha256)
                            });
                            rendered.push((template, result));
                            rendered.len() - 1
                        }
                    };
                    match &rendered[i].1 {
                        Ok((text, sha256)) => Arc::new(resource(
                            role,
                            decl,
                            templated.with_rendered(Arc::clone(text), sha256.clone()),
                        )),
                        Err(d) => {
                            let d = d.clone().related(
                                &decl.file,
                                decl.pos.line,
                                decl.pos.column,
                                format!(
                                    "rendered for `{}` of role `{}`",
                                    decl.id, role.doc.metadata.name
                                ),
                            );
                            per_node.add(d, name);
                            assembly.failed.insert(decl.id.clone());
                            continue;
                        }
                    }
                }
            };
            assembly.add(role, decl, resource, name, per_node);
        }
    }
    assembly.finish(name, rejected, per_node)
}

fn fleet_settings(
    fleets: &[Arc<Located<crate::manifest::FleetDoc>>],
    diags: &mut Vec<Diagnostic>,
) -> FleetSettings {
    if let [first, rest @ ..] = fleets {
        for extra in rest {
            let pos = extra.pos("/kind");
            let first_pos = first.pos("/kind");
            diags.push(
                Diagnostic::new(
                    Code::DuplicateFleet,
                    &extra.file,
                    pos.line,
                    pos.column,
                    "a second Fleet document",
                )
                .related(
                    &first.file,
                    first_pos.line,
                    first_pos.column,
                    "the first Fleet is here",
                )
                .hint("a repository describes one fleet; merge the settings into `centossrv.yaml`"),
            );
        }
    }
    let Some(f) = fleets.first() else {
        return FleetSettings {
            name: "fleet".into(),
            drift_mode: DriftMode::Report,
            drift_interval_ms: 300_000,
            stale_apply: StaleApply::Hold,
        };
    };
    let spec = &f.doc.spec;
    let interval = match &spec.drift.interval {
        None => 300_000,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            _ => {
                let pos = f.value_pos("/spec/drift/interval");
                diags.push(
                    Diagnostic::new(
                        Code::InvalidField,
                        &f.file,
                        pos.line,
                        pos.column,
                        format!("`{text}` is not a positive duration"),
                    )
                    .hint("write durations like `30s`, `5m` or `1h`"),
                );
                300_000
            }
        },
    };
    FleetSettings {
        name: f.doc.metadata.name.clone(),
        drift_mode: spec.drift.mode,
        drift_interval_ms: interval,
        stale_apply: spec.stale_apply,
    }
}

trait Named {
    fn name(&self) -> &str;
}
impl Named for NodeDoc {
    fn name(&self) -> &str {
        &self.metadata.name
    }
}
impl Named for RoleDoc {
    fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// Keeps the first document of each name; reports the others.
fn unique_by_name<T: Named>(
    docs: Vec<Arc<Located<T>>>,
    code: Code,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Arc<Located<T>>> {
    // Positions are looked up only for duplicates: locating a key in a document is not free
    // and the inventory has thousands of nodes.
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(docs.len());
    let mut keep = vec![true; docs.len()];
    for (i, doc) in docs.iter().enumerate() {
        match first.entry(doc.doc.name()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                keep[i] = false;
                let earlier = &docs[*o.get()];
                let pos = doc.value_pos("/metadata/name");
                let at = earlier.value_pos("/metadata/name");
                diags.push(
                    Diagnostic::new(
                        code,
                        &doc.file,
                        pos.line,
                        pos.column,
                        format!("{what} `{}` is defined twice", doc.doc.name()),
                    )
                    .related(
                        &earlier.file,
                        at.line,
                        at.column,
                        "first defined here",
                    ),
                );
            }
        }
    }
    drop(first);
    docs.into_iter()
        .zip(keep)
        .filter_map(|(doc, keep)| keep.then_some(doc))
        .collect()
}

fn check_selector(role: &Located<RoleDoc>, diags: &mut Vec<Diagnostic>) {
    for (i, req) in role.doc.spec.selector.match_expressions.iter().enumerate() {
        let needs_values = matches!(req.operator, SelectorOperator::In | SelectorOperator::NotIn);
        let problem = if needs_values && req.values.is_empty() {
            Some(format!(
                "operator `{:?}` needs at least one value",
                req.operator
            ))
        } else if !needs_values && !req.values.is_empty() {
            Some(format!("operator `{:?}` takes no `values`", req.operator))
        } else {
            None
        };
        if let Some(problem) = problem {
            // At `values` when it is written, else at the requirement.
            let pos = role.pos(&format!("/spec/selector/matchExpressions/{i}/values"));
            diags.push(Diagnostic::new(
                Code::InvalidField,
                &role.file,
                pos.line,
                pos.column,
                problem,
            ));
        }
    }
}

fn vars_to_values<T>(
    vars: &Vars,
    doc: &Located<T>,
    pointer: &str,
    diags: &mut Vec<Diagnostic>,
) -> VarValues {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        if RESERVED_VARS.contains(&k.as_str()) {
            let pos = doc.pos(&format!("{pointer}/{k}"));
            diags.push(
                Diagnostic::new(
                    Code::ReservedVar,
                    &doc.file,
                    pos.line,
                    pos.column,
                    format!("variable name `{k}` is reserved"),
                )
                .hint(format!(
                    "templates get `{k}` from centossrv; rename the variable"
                )),
            );
            continue;
        }
        out.insert(
            Arc::from(k.as_str()),
            Value::from(minijinja::value::Serde(v)),
        );
    }
    out
}

fn node_value(node: &Located<NodeDoc>) -> Value {
    let mut map = BTreeMap::new();
    map.insert("name", Value::from(node.doc.metadata.name.clone()));
    map.insert(
        "labels",
        Value::from(minijinja::value::Serde(&node.doc.metadata.labels)),
    );
    map.insert(
        "address",
        node.doc
            .spec
            .address
            .clone()
            .map(Value::from)
            .unwrap_or(Value::from(())),
    );
    Value::from(map)
}

/// The template context: fleet vars < role vars < node vars, plus `node`, `inventory`,
/// `role` and `fleet`.
fn context(
    fleet_vars: &VarValues,
    role_vars: &VarValues,
    node_vars: &VarValues,
    node: &Value,
    inventory: &Value,
    role: &Located<RoleDoc>,
    fleet: &FleetSettings,
) -> Value {
    let mut map: VarValues = fleet_vars.clone();
    map.extend(role_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    map.extend(node_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    map.insert("node".into(), node.clone());
    map.insert("inventory".into(), inventory.clone());
    map.insert("role".into(), Value::from(role.doc.metadata.name.clone()));
    map.insert("fleet".into(), Value::from(fleet.name.clone()));
    Value::from(map)
}

/// A template's output and its digest.
pub(crate) type Rendered = (Arc<str>, String);

/// The resource `decl` of `role` becomes with `spec`.
pub(crate) fn resource(role: &Located<RoleDoc>, decl: &Decl, spec: Spec) -> DesiredResource {
    DesiredResource {
        id: decl.id.clone(),
        spec,
        requires: decl.requires.clone(),
        notify: decl.notify.clone(),
        origin: Origin {
            role: role.doc.metadata.name.clone(),
            file: decl.file.clone(),
            line: decl.pos.line,
        },
    }
}

/// Problems found per node, reported once with the nodes they occur on.
#[derive(Default)]
struct PerNode {
    entries: HashMap<Diagnostic, Vec<String>>,
    order: Vec<Diagnostic>,
}

impl std::hash::Hash for Diagnostic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.file, self.line, self.column, self.code, &self.message).hash(state);
    }
}

impl PerNode {
    fn add(&mut self, d: Diagnostic, node: &str) {
        match self.entries.get_mut(&d) {
            Some(nodes) => nodes.push(node.to_owned()),
            None => {
                self.order.push(d.clone());
                self.entries.insert(d, vec![node.to_owned()]);
            }
        }
    }

    /// Adds what `other` found, as if its `add` calls had been made on `self`.
    fn absorb(&mut self, mut other: PerNode) {
        for d in other.order {
            let nodes = other.entries.remove(&d).unwrap_or_default();
            match self.entries.get_mut(&d) {
                Some(all) => all.extend(nodes),
                None => {
                    self.order.push(d.clone());
                    self.entries.insert(d, nodes);
                }
            }
        }
    }

    fn flush(mut self, diags: &mut Vec<Diagnostic>) {
        for mut d in self.order {
            let nodes = self.entries.remove(&d).unwrap_or_default();
            let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
            let more = nodes.len().saturating_sub(shown.len());
            let mut list = shown.join(", ");
            if more > 0 {
                list.push_str(&format!(" and {more} more"));
            }
            let noun = if nodes.len() == 1 { "node" } else { "nodes" };
            d.message = format!("{} (on {} {noun}: {list})", d.message, nodes.len());
            diags.push(d);
        }
    }
}

/// Collects one node's resources from its roles, merging identical declarations.
#[derive(Default)]
struct Assembly<'a> {
    resources: Vec<Arc<DesiredResource>>,
    sources: Vec<(&'a Decl, &'a str)>,
    index: HashMap<&'a ResourceId, usize>,
    /// Declared for this node but failed to render: already reported.
    failed: std::collections::HashSet<ResourceId>,
}

impl<'a> Assembly<'a> {
    fn with_capacity(n: usize) -> Self {
        Assembly {
            resources: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
            ..Assembly::default()
        }
    }

    fn add(
        &mut self,
        role: &'a Located<RoleDoc>,
        decl: &'a Decl,
        resource: Arc<DesiredResource>,
        node: &str,
        per_node: &mut PerNode,
    ) {
        if let Some(&i) = self.index.get(&decl.id) {
            let (first, first_role) = self.sources[i];
            let same = Arc::ptr_eq(&self.resources[i], &resource)
                || self.resources[i].spec == resource.spec;
            if !same {
                let d = Diagnostic::new(
                    Code::Conflict,
                    &decl.file,
                    decl.pos.line,
                    decl.pos.column,
                    format!(
                        "roles `{first_role}` and `{}` declare `{}` differently",
                        role.doc.metadata.name, decl.id
                    ),
                )
                .related(
                    &first.file,
                    first.pos.line,
                    first.pos.column,
                    format!("role `{first_role}` declares it here"),
                )
                .hint("declare the resource in one role, or make both declarations identical");
                per_node.add(d, node);
            } else {
                merge_edges(&mut self.resources[i], &decl.requires, &decl.notify);
            }
            return;
        }
        self.index.insert(&decl.id, self.resources.len());
        self.sources.push((decl, &role.doc.metadata.name));
        self.resources.push(resource);
    }

    fn finish(
        mut self,
        node: &str,
        rejected: &std::collections::HashSet<ResourceId>,
        per_node: &mut PerNode,
    ) -> Vec<Arc<DesiredResource>> {
        for (r, (decl, role)) in self.resources.iter().zip(&self.sources) {
            for (edge, targets) in [("requires", &r.requires), ("notify", &r.notify)] {
                for t in targets {
                    let reported = rejected.contains(t) || self.failed.contains(t);
                    if !self.index.contains_key(t) && !reported {
                        let d = Diagnostic::new(
                            Code::UnknownTarget,
                            &decl.file,
                            decl.pos.line,
                            decl.pos.column,
                            format!("`{}` {edge} `{t}`, which is not declared on the node", r.id),
                        )
                        .hint(format!("declare `{t}` in a role that selects the node, or remove it from `{edge}` of role `{role}`"));
                        per_node.add(d, node);
                    }
                }
            }
        }
        if let Err(cycle) = order::order(&mut self.resources) {
            let decl_of = |id: &ResourceId| self.index.get(id).map(|&i| self.sources[i].0);
            if let Some(first) = cycle.first().and_then(decl_of) {
                let mut text: Vec<String> = cycle.iter().map(ToString::to_string).collect();
                text.push(cycle[0].to_string());
                let mut d = Diagnostic::new(
                    Code::Cycle,
                    &first.file,
                    first.pos.line,
                    first.pos.column,
                    format!("dependency cycle: {}", text.join(" -> ")),
                )
                .hint("`a -> b` means `a` must be applied after `b`; remove one of the `requires` or `notify` edges");
                for id in cycle.iter().skip(1) {
                    if let Some(decl) = decl_of(id) {
                        d = d.related(
                            &decl.file,
                            decl.pos.line,
                            decl.pos.column,
                            format!("`{id}` declared here"),
                        );
                    }
                }
                per_node.add(d, node);
            }
        }
        self.resources
    }
}

/// Adds the `requires` and `notify` edges of a second declaration of the same resource.
/// Returns whether any was new; only then is the (possibly shared) resource copied.
pub(crate) fn merge_edges(
    resource: &mut Arc<DesiredResource>,
    requires: &[ResourceId],
    notify: &[ResourceId],
) -> bool {
    let new_requires = requires.iter().any(|d| !resource.requires.contains(d));
    let new_notify = notify.iter().any(|n| !resource.notify.contains(n));
    if !(new_requires || new_notify) {
        return false;
    }
    let r = Arc::make_mut(resource);
    for dep in requires {
        if !r.requires.contains(dep) {
            r.requires.push(dep.clone());
        }
    }
    for n in notify {
        if !r.notify.contains(n) {
            r.notify.push(n.clone());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{compile, compile_with};
    use crate::snapshot::Snapshot;
    use std::path::Path;

    fn read_dir(root: &Path, dir: &Path, snapshot: &mut Snapshot) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                read_dir(root, &path, snapshot);
            } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
                snapshot.insert(rel.to_string_lossy().into_owned(), bytes);
            }
        }
    }

    /// Layouts (one merge and order per set of roles) give exactly what assembling every
    /// node on its own gives: the example repository, every broken repository of the corpus
    /// (conflicts, cycles, failed renders, unknown targets...), and a fleet large enough to
    /// compile on several threads with some nodes whose template fails to render.
    #[test]
    fn layouts_change_nothing() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut repos = vec![manifest.join("../../example-repo")];
        if let Ok(cases) = std::fs::read_dir(manifest.join("test_data/broken")) {
            repos.extend(cases.flatten().map(|c| c.path().join("repo")));
        }
        let mut snapshots = Vec::new();
        for repo in &repos {
            let mut snapshot = Snapshot::new(Some("test".into()));
            read_dir(repo, repo, &mut snapshot);
            if !snapshot.files.is_empty() {
                snapshots.push((repo.display().to_string(), snapshot));
            }
        }
        assert!(
            snapshots.len() > 40,
            "found {} repositories",
            snapshots.len()
        );
        let mut large = Snapshot::new(None);
        for i in 0..600 {
            let tier = ["web", "db", "cache"][i % 3];
            // Every 50th node lacks `port`: its render fails.
            let vars = if i % 50 == 7 { "{}" } else { "{port: 80}" };
            large.insert(
                format!("nodes/n{i:04}.yaml"),
                format!("apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: n{i:04}\n  labels: {{tier: {tier}}}\nspec:\n  vars: {vars}\n").into_bytes(),
            );
        }
        for (name, selector) in [
            ("all", "{}"),
            ("web", "{matchLabels: {tier: web}}"),
            ("db", "{matchLabels: {tier: db}}"),
        ] {
            large.insert(
                format!("roles/{name}.yaml"),
                format!("apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: {name}}}\nspec:\n  selector: {selector}\n  resources:\n    - directory: /etc/app\n      mode: \"0755\"\n    - file: /etc/app/{name}.conf\n      template: files/app.conf.j2\n      notify: [service:app]\n    - file: /etc/app/{name}-static.conf\n      content: \"x\\n\"\n      requires: [directory:/etc/app]\n    - service: app\n      enabled: true\n").into_bytes(),
            );
        }
        large.insert(
            "files/app.conf.j2",
            b"port = {{ port }} on {{ node.name }}\n".to_vec(),
        );
        snapshots.push(("large".into(), large));
        for (name, snapshot) in &snapshots {
            let fast = compile(snapshot);
            let slow = compile_with(snapshot, false);
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{name}");
        }
        let (_, large) = &snapshots[snapshots.len() - 1];
        let compiled = compile(large);
        assert_eq!(compiled.model.desired().count(), 600);
        assert!(
            compiled.has_errors(),
            "the nodes without `port` fail to render"
        );
    }
}
