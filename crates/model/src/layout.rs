//! The shape of a node's resources for one set of roles: which resources, from which
//! declarations, merged and in apply order. It depends only on the roles, so it is computed
//! once per set of roles, and each node with that set only renders its templates into it.

use crate::compile::{LoweredRole, merge_edges, resource};
use crate::order;
use crate::reuse::LayoutKeys;
use state::DesiredResource;
use std::collections::HashMap;
use std::sync::Arc;

/// One resource of the layout.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// The same resource on every node with these roles (merged, if several roles declare it).
    Shared(Arc<DesiredResource>),
    /// Declaration `decl` of role `role`, whose content is the node's render number `render`.
    Rendered {
        role: usize,
        decl: usize,
        render: usize,
    },
}

/// The resources of every node selected by exactly one set of roles, in apply order.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    pub slots: Vec<Slot>,
    /// What each node renders, once each and role by role: (role, template).
    pub renders: Vec<(usize, &'a str)>,
}

impl<'a> Layout<'a> {
    /// The layout of the roles `selected` (indices into `lowered`, in role order). `None`
    /// when the roles need a closer look on every node: a templated declaration that
    /// another declaration repeats, declarations that conflict, an edge to a resource the
    /// roles do not declare, or a cycle. Those nodes are assembled one by one, which reports
    /// the problems.
    pub fn new(selected: &[usize], lowered: &'a [LoweredRole<'a>]) -> Option<Layout<'a>> {
        let total = selected.iter().map(|&ri| lowered[ri].decls.len()).sum();
        let mut slots = Vec::with_capacity(total);
        // What `order` sees: the shared resources, and for templated ones the declaration
        // with empty content (ordering reads ids, edges and paths, never content).
        let mut resources: Vec<Arc<DesiredResource>> = Vec::with_capacity(total);
        let mut index = HashMap::with_capacity(total);
        let mut renders: Vec<(usize, &'a str)> = Vec::new();
        for &ri in selected {
            let role = &lowered[ri];
            for (di, (decl, shared)) in role.decls.iter().zip(&role.shared).enumerate() {
                if let Some(&i) = index.get(&decl.id) {
                    // Declared again: fine when both are the same static resource (edges
                    // merge, as on one node); anything else is looked at node by node.
                    let (Some(new), Slot::Shared(_)) = (shared, &slots[i]) else {
                        return None;
                    };
                    let have: &Arc<DesiredResource> = &resources[i];
                    if !Arc::ptr_eq(have, new) && have.spec != new.spec {
                        return None;
                    }
                    if merge_edges(&mut resources[i], &decl.requires, &decl.notify) {
                        slots[i] = Slot::Shared(Arc::clone(&resources[i]));
                    }
                    continue;
                }
                index.insert(&decl.id, slots.len());
                match shared {
                    Some(shared) => {
                        slots.push(Slot::Shared(Arc::clone(shared)));
                        resources.push(Arc::clone(shared));
                    }
                    None => {
                        let template = decl.body.template().unwrap_or_default();
                        let render = match renders.iter().position(|&r| r == (ri, template)) {
                            Some(render) => render,
                            None => {
                                renders.push((ri, template));
                                renders.len() - 1
                            }
                        };
                        slots.push(Slot::Rendered {
                            role: ri,
                            decl: di,
                            render,
                        });
                        let spec = decl.body.with_rendered(Arc::from(""), String::new());
                        resources.push(Arc::new(resource(role.doc, decl, spec)));
                    }
                }
            }
        }
        let complete = resources.iter().all(|r| {
            r.requires
                .iter()
                .chain(&r.notify)
                .all(|t| index.contains_key(t))
        });
        if !complete {
            return None;
        }
        let sequence = order::sequence(&resources).ok()?;
        let slots = sequence.into_iter().map(|i| slots[i].clone()).collect();
        Some(Layout { slots, renders })
    }

    /// Its renders and rendered slots by role and template or declaration, to find a node's
    /// render or resource again in another revision.
    pub fn keys(&self) -> LayoutKeys {
        LayoutKeys {
            renders: self
                .renders
                .iter()
                .map(|&(role, template)| (role, Box::from(template)))
                .collect(),
            slots: self
                .slots
                .iter()
                .map(|slot| match *slot {
                    Slot::Shared(_) => None,
                    Slot::Rendered { role, decl, .. } => Some((role, decl)),
                })
                .collect(),
        }
    }

    /// The same layout with its own copy of every shared resource.
    pub fn own_copy(&self) -> Layout<'a> {
        let slots = self
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Shared(r) => Slot::Shared(Arc::new(DesiredResource::clone(r))),
                rendered => rendered.clone(),
            })
            .collect();
        Layout {
            slots,
            renders: self.renders.clone(),
        }
    }
}
