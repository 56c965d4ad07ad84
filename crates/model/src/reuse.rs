//! What a compile of head may take from the compile of base (`compile_pair`): the loaded
//! documents of files with the same bytes, template renders whose inputs are all the same,
//! and the resources built from them. Every reuse is decided by comparing the inputs the
//! result is a pure function of, so head compiles to exactly what compiling it alone gives.

use crate::compile::Rendered;
use crate::loader::{Loads, Located};
use crate::lower::Decl;
use crate::manifest::{NodeDoc, RoleDoc, Vars};
use crate::snapshot::Snapshot;
use serde_json::Value as Json;
use state::{DesiredResource, DesiredState};
use std::collections::HashMap;
use std::sync::Arc;

/// What base's compile leaves for head's.
#[derive(Default)]
pub(crate) struct Memo {
    pub loads: Loads,
    /// The Fleet document's vars (its first one), and the fleet's name.
    pub fleet_vars: Option<Vars>,
    pub fleet_name: String,
    /// The inventory, in order.
    pub inventory: Vec<Arc<Located<NodeDoc>>>,
    pub roles: Vec<MemoRole>,
    /// The nodes whose resources came from a layout (none whose render failed).
    pub nodes: Vec<NodeMemo>,
    /// Templates that ran away in base: their renders are never reused.
    pub runaway: Vec<String>,
}

/// A role of base.
pub(crate) struct MemoRole {
    pub doc: Arc<Located<RoleDoc>>,
    pub decls: Vec<Decl>,
}

/// One node of base: its document, its layout's keys, its renders and its desired state.
pub(crate) struct NodeMemo {
    pub doc: Arc<Located<NodeDoc>>,
    pub keys: Arc<LayoutKeys>,
    /// Aligned with `keys.renders`.
    pub renders: Vec<Rendered>,
    /// Its resources are aligned with `keys.slots`.
    pub desired: Arc<DesiredState>,
}

/// What a layout's renders and slots are, by role index and template or declaration.
#[derive(Debug, Default)]
pub(crate) struct LayoutKeys {
    pub renders: Vec<(usize, Box<str>)>,
    /// `(role, decl)` of a rendered slot, `None` for a shared one.
    pub slots: Vec<Option<(usize, usize)>>,
}

/// Head's view of base's memo: which roles, templates and nodes can reuse base's work.
pub(crate) struct Reuse<'a> {
    /// Per head role: base's index of the role with the same name and vars (the same
    /// template context), if any.
    role_context: Vec<Option<usize>>,
    /// Per head role: its declarations are exactly base's (so are the resources built from
    /// the same render).
    role_decls: Vec<bool>,
    /// Templates whose renders may be reused: the same bytes in both revisions, and either
    /// self-contained or every template file the same.
    templates: HashMap<String, bool>,
    nodes: HashMap<&'a str, &'a NodeMemo>,
}

impl<'a> Reuse<'a> {
    /// `None` when nothing rendered can be reused: the fleet's vars or name, or the
    /// inventory (which every template sees), differ.
    pub fn new(
        memo: &'a Memo,
        base: &Snapshot,
        head: &Snapshot,
        fleet_vars: Option<&Vars>,
        fleet_name: &str,
        inventory: &[Arc<Located<NodeDoc>>],
        roles: &[(&Arc<Located<RoleDoc>>, &[Decl])],
    ) -> Option<Reuse<'a>> {
        let same_fleet = match (fleet_vars, &memo.fleet_vars) {
            (None, None) => true,
            (Some(a), Some(b)) => same_vars(a, b),
            _ => false,
        };
        if !same_fleet || fleet_name != memo.fleet_name {
            return None;
        }
        let same_inventory = inventory.len() == memo.inventory.len()
            && inventory.iter().zip(&memo.inventory).all(|(a, b)| {
                Arc::ptr_eq(a, b)
                    || (a.doc.metadata.name == b.doc.metadata.name
                        && a.doc.metadata.labels == b.doc.metadata.labels
                        && a.doc.spec.address == b.doc.spec.address)
            });
        if !same_inventory {
            return None;
        }
        let by_name: HashMap<&str, usize> = memo
            .roles
            .iter()
            .enumerate()
            .map(|(i, r)| (r.doc.doc.metadata.name.as_str(), i))
            .collect();
        let mut role_context = Vec::with_capacity(roles.len());
        let mut role_decls = Vec::with_capacity(roles.len());
        for (doc, decls) in roles {
            let base = by_name
                .get(doc.doc.metadata.name.as_str())
                .map(|&i| (i, &memo.roles[i]));
            let context = base
                .filter(|(_, b)| {
                    Arc::ptr_eq(&b.doc, doc) || same_vars(&b.doc.doc.spec.vars, &doc.doc.spec.vars)
                })
                .map(|(i, _)| i);
            role_context.push(context);
            role_decls.push(context.is_some_and(|i| memo.roles[i].decls == *decls));
        }
        let all_same = same_templates(base, head);
        let mut templates = HashMap::new();
        for (_, decls) in roles {
            for template in decls.iter().filter_map(|d| d.body.template()) {
                if templates.contains_key(template) {
                    continue;
                }
                let same = match (base.files.get(template), head.files.get(template)) {
                    (Some(a), Some(b)) => a[..] == b[..],
                    _ => false,
                };
                let ok = same
                    && (all_same || self_contained(head.files.get(template).map_or(&[], |b| b)))
                    && !memo.runaway.iter().any(|t| t == template);
                templates.insert(template.to_owned(), ok);
            }
        }
        let nodes = memo
            .nodes
            .iter()
            .map(|n| (n.doc.doc.metadata.name.as_str(), n))
            .collect();
        Some(Reuse {
            role_context,
            role_decls,
            templates,
            nodes,
        })
    }

    /// Base's memo of the node `doc` when its document is base's (the same bytes).
    pub fn node(&self, doc: &Arc<Located<NodeDoc>>) -> Option<&'a NodeMemo> {
        self.nodes
            .get(doc.doc.metadata.name.as_str())
            .copied()
            .filter(|memo| Arc::ptr_eq(&memo.doc, doc))
    }

    /// Base's role for head's role `role` when renders of `template` by it can be reused.
    pub fn render_role(&self, role: usize, template: &str) -> Option<usize> {
        let base = self.role_context.get(role).copied().flatten()?;
        self.templates.get(template).copied()?.then_some(base)
    }

    /// Whether head's role `role` declares exactly what base's does.
    pub fn same_decls(&self, role: usize) -> bool {
        self.role_decls.get(role).copied().unwrap_or(false)
    }

    /// Base's role index of head's role `role` (the same name and vars).
    pub fn base_role(&self, role: usize) -> Option<usize> {
        self.role_context.get(role).copied().flatten()
    }
}

impl NodeMemo {
    /// The render of `template` by base's role `role` on this node; `hint` is where it
    /// usually is (the same position as in head).
    pub fn render(&self, hint: usize, role: usize, template: &str) -> Option<&Rendered> {
        let key = |(r, t): &(usize, Box<str>)| *r == role && &**t == template;
        let i = match self.keys.renders.get(hint) {
            Some(k) if key(k) => hint,
            _ => self.keys.renders.iter().position(key)?,
        };
        self.renders.get(i)
    }

    /// The resource base built for declaration `decl` of base's role `role` on this node;
    /// `hint` is where it usually is.
    pub fn resource(&self, hint: usize, role: usize, decl: usize) -> Option<&Arc<DesiredResource>> {
        let want = Some((role, decl));
        let i = match self.keys.slots.get(hint) {
            Some(k) if *k == want => hint,
            _ => self.keys.slots.iter().position(|k| *k == want)?,
        };
        self.desired.resources.get(i)
    }
}

/// Whether every template file (what the template loader can read) is the same in both.
fn same_templates(a: &Snapshot, b: &Snapshot) -> bool {
    fn templates(s: &Snapshot) -> impl Iterator<Item = (&String, &Arc<[u8]>)> {
        s.files
            .iter()
            .filter(|(p, _)| p.starts_with("files/") || p.starts_with("templates/"))
    }
    templates(a).count() == templates(b).count()
        && templates(a)
            .zip(templates(b))
            .all(|((pa, a), (pb, b))| pa == pb && a[..] == b[..])
}

/// Vars compared strictly: maps in the same order (their iteration order is what templates
/// see), numbers of the same kind (`1` and `1.0` render differently).
pub(crate) fn same_vars(a: &Vars, b: &Vars) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
}

fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Json::Number(a), Json::Number(b)) => a.to_string() == b.to_string(),
        _ => a == b,
    }
}

/// Whether a template's text can load no other template: it names none of the statements
/// that do (`include`, `import`, `from … import`, `extends`). A false "no" only costs a
/// render.
fn self_contained(bytes: &[u8]) -> bool {
    !["include", "import", "extends"]
        .iter()
        .any(|word| bytes.windows(word.len()).any(|w| w == word.as_bytes()))
}
