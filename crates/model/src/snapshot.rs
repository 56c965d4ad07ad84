//! The input of a compilation: the files of one commit (or one directory), by path.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Every file of the fleet repository at one revision. Paths use `/` and are relative to the
/// repository root.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The commit id, when the files came from Git.
    pub commit: Option<String>,
    pub files: BTreeMap<String, Arc<[u8]>>,
}

impl Snapshot {
    pub fn new(commit: Option<String>) -> Snapshot {
        Snapshot {
            commit,
            files: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) one file.
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Arc<[u8]>>) {
        self.files.insert(path.into(), bytes.into());
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|b| &b[..])
    }
}
