//! Apply order of one node's resources: explicit `requires` and `notify` edges, a managed
//! parent directory before what it contains, and otherwise packages, groups, users,
//! directories, files, symlinks, sysctls, services, each in declaration order. Cycles are
//! found and named.

use state::{DesiredResource, ResourceId, ResourceKind, Spec};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

fn rank(kind: ResourceKind) -> usize {
    ResourceKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

fn path_of(spec: &Spec) -> Option<&str> {
    match spec {
        Spec::File(f) => Some(&f.path),
        Spec::Directory(d) => Some(&d.path),
        Spec::Symlink(s) => Some(&s.path),
        _ => None,
    }
}

/// Orders `resources` (declaration order in, apply order out). On a cycle returns the ids on
/// it, each one depending on (applied after) the next and the last on the first, and leaves
/// `resources` as it was.
pub fn order(resources: &mut [Arc<DesiredResource>]) -> Result<(), Vec<ResourceId>> {
    let sequence = sequence(resources)?;
    // Permute in place: `dest[i]` is where the resource now at `i` goes; every swap puts one
    // resource in its final place. (Moving them through a second vector cost a copy of
    // every node's resources.)
    let mut dest = vec![0usize; resources.len()];
    for (k, &i) in sequence.iter().enumerate() {
        dest[i] = k;
    }
    for i in 0..resources.len() {
        while dest[i] != i {
            let j = dest[i];
            resources.swap(i, j);
            dest.swap(i, j);
        }
    }
    Ok(())
}

/// The apply order of `resources` (in declaration order) as their indices; on a cycle, the
/// ids on it as [`order`] reports them.
pub fn sequence(resources: &[Arc<DesiredResource>]) -> Result<Vec<usize>, Vec<ResourceId>> {
    let n = resources.len();
    let index: HashMap<&ResourceId, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (&r.id, i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    // A self-edge (`package:a` requiring itself, a service notifying itself) is kept: it can
    // never be satisfied and is reported as a cycle of one.
    let mut add = |from: usize, to: usize, edges: &mut Vec<Vec<usize>>| {
        if !edges[from].contains(&to) {
            edges[from].push(to);
            indegree[to] += 1;
        }
    };
    for (i, r) in resources.iter().enumerate() {
        for dep in &r.requires {
            if let Some(&j) = index.get(dep) {
                add(j, i, &mut edges);
            }
        }
        for target in &r.notify {
            if let Some(&j) = index.get(target) {
                add(i, j, &mut edges);
            }
        }
        if let Some(path) = path_of(&r.spec) {
            let mut parent = path;
            while let Some((p, _)) = parent.rsplit_once('/') {
                parent = p;
                if parent.is_empty() {
                    break;
                }
                let dir = ResourceId::new(ResourceKind::Directory, parent);
                if let Some(&j) = index.get(&dir) {
                    add(j, i, &mut edges);
                    break;
                }
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<(usize, usize)>> = (0..n)
        .filter(|&i| indegree[i] == 0)
        .map(|i| Reverse((rank(resources[i].id.kind), i)))
        .collect();
    let mut sequence = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = ready.pop() {
        sequence.push(i);
        for &j in &edges[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse((rank(resources[j].id.kind), j)));
            }
        }
    }
    if sequence.len() < n {
        return Err(find_cycle(&edges, &indegree)
            .into_iter()
            .map(|i| resources[i].id.clone())
            .collect());
    }
    Ok(sequence)
}

/// A cycle among the nodes Kahn's algorithm could not place (indegree still > 0).
fn find_cycle(edges: &[Vec<usize>], indegree: &[usize]) -> Vec<usize> {
    let stuck = |i: usize| indegree[i] > 0;
    let Some(start) = (0..edges.len()).find(|&i| stuck(i)) else {
        return Vec::new();
    };
    // Walk backwards: a stuck node waits on at least one stuck predecessor, so following
    // stuck predecessors always reaches a node again, and what lies between is a cycle.
    // (Walking forward is wrong: a stuck node downstream of a cycle may have no successor.)
    // Walking backwards also lists the cycle the way `requires` reads: each entry depends on
    // (is applied after) the next.
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos {
            preds[to].push(from);
        }
    }
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = start;
    loop {
        if let Some(&pos) = seen.get(&at) {
            let mut cycle = path[pos..].to_vec();
            // Rotate so the smallest index leads: the same cycle is reported the same way.
            if let Some(min_pos) = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| **v)
                .map(|(p, _)| p)
            {
                cycle.rotate_left(min_pos);
            }
            return cycle;
        }
        seen.insert(at, path.len());
        path.push(at);
        match preds[at].iter().copied().find(|&j| stuck(j)) {
            Some(prev) => at = prev,
            None => return path,
        }
    }
}
