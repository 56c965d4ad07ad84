//! Which resources a changed path concerns, and which directories to watch so that every
//! managed path is seen: for each path, the deepest existing directory above it (its parent
//! when that exists; an ancestor while the parent is missing, so its re-creation is seen).

use crate::host::{RealHost, SYSCTL_PERSIST_PATH};
use state::{DesiredState, ResourceId, ResourceKind, Spec};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The account database files; a change renames owners and groups.
pub const ACCOUNT_FILES: [&str; 2] = ["/etc/passwd", "/etc/group"];

/// Resources by the real paths (under the root) whose changes concern them.
#[derive(Debug, Default)]
pub struct PathIndex {
    by_path: BTreeMap<PathBuf, Vec<ResourceId>>,
    /// Resources re-observed on a timer: no event tells when they change.
    periodic: Vec<ResourceId>,
    /// Managed paths that cannot be resolved under the root (reported once, not watched).
    pub unresolvable: Vec<(ResourceId, String)>,
    /// The real paths of the account database files.
    account_paths: Vec<PathBuf>,
}

fn owner_managed(spec: &Spec) -> bool {
    match spec {
        Spec::File(f) => f.owner.is_some() || f.group.is_some(),
        Spec::Directory(d) => d.owner.is_some() || d.group.is_some(),
        _ => false,
    }
}

impl PathIndex {
    /// Indexes the resources of `desired` that `watched` accepts.
    pub fn new(
        host: &RealHost,
        desired: &DesiredState,
        watched: impl Fn(ResourceKind) -> bool,
    ) -> PathIndex {
        let mut index = PathIndex {
            account_paths: ACCOUNT_FILES
                .iter()
                .filter_map(|f| host.resolve(f).ok())
                .collect(),
            ..PathIndex::default()
        };
        let add = |index: &mut PathIndex, path: &str, id: &ResourceId| match host.resolve(path) {
            Ok(full) => index.by_path.entry(full).or_default().push(id.clone()),
            Err(e) => index.unresolvable.push((id.clone(), e.to_string())),
        };
        for r in desired.resources.iter().filter(|r| watched(r.id.kind)) {
            match &r.spec {
                Spec::File(f) => add(&mut index, &f.path, &r.id),
                Spec::Directory(d) => add(&mut index, &d.path, &r.id),
                Spec::Symlink(l) => add(&mut index, &l.path, &r.id),
                Spec::Sysctl(_) => {
                    // The live value in /proc/sys has no events; the persisted one has.
                    add(&mut index, SYSCTL_PERSIST_PATH, &r.id);
                    index.periodic.push(r.id.clone());
                }
                Spec::User(_) | Spec::Group(_) => {
                    for file in ACCOUNT_FILES {
                        add(&mut index, file, &r.id);
                    }
                    index.periodic.push(r.id.clone());
                }
                Spec::Package(_) => index.periodic.push(r.id.clone()),
                Spec::Service(svc) => {
                    // Unit file and drop-in have events; enabled and running do not.
                    add(&mut index, &crate::unit::unit_path(&svc.name), &r.id);
                    add(&mut index, &crate::unit::drop_in_path(&svc.name), &r.id);
                    index.periodic.push(r.id.clone());
                }
            }
            if owner_managed(&r.spec) {
                for file in ACCOUNT_FILES {
                    add(&mut index, file, &r.id);
                }
            }
        }
        index
    }

    /// The resources concerned by an event at `path`: those at `path` and, when `path` is a
    /// directory that was deleted, moved or recreated, every one below it.
    pub fn affected(&self, path: &Path) -> impl Iterator<Item = &ResourceId> {
        self.by_path
            .range(path.to_path_buf()..)
            .take_while(move |(p, _)| p.starts_with(path))
            .flat_map(|(_, ids)| ids.iter())
    }

    /// Every indexed resource (after lost events).
    pub fn all(&self) -> impl Iterator<Item = &ResourceId> {
        self.by_path.values().flatten().chain(self.periodic.iter())
    }

    pub fn periodic(&self) -> &[ResourceId] {
        &self.periodic
    }

    /// Whether `path` is one of the account database files.
    pub fn is_account_file(&self, path: &Path) -> bool {
        self.account_paths.iter().any(|p| p == path)
    }

    /// The directories to watch now: for every indexed path, the deepest existing directory
    /// above it, never above the root.
    pub fn watch_dirs(&self, root: &Path) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        let mut known: BTreeMap<&Path, PathBuf> = BTreeMap::new();
        for path in self.by_path.keys() {
            let Some(parent) = path.parent() else {
                continue;
            };
            if let Some(dir) = known.get(parent) {
                dirs.insert(dir.clone());
                continue;
            }
            let mut dir = parent;
            while dir != root && !dir.is_dir() {
                match dir.parent() {
                    Some(up) if up.starts_with(root) => dir = up,
                    _ => break,
                }
            }
            known.insert(parent, dir.to_path_buf());
            dirs.insert(dir.to_path_buf());
        }
        dirs
    }
}
