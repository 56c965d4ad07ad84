//! Where fleet repository files come from: a directory on disk, or one commit of a Git
//! repository read from its object database (never a work tree); [`tracker`] follows one
//! branch of a local or remote repository; [`commit_info`] reads commits' authors and
//! messages. The only module that knows gix.

pub mod commit_info;
pub mod tracker;

pub use tracker::{Location, RemoteAuth, SourceConfig, Tracker};

use model::Snapshot;
use std::path::{Path, PathBuf};

/// Largest single file read into a snapshot; larger files are recorded as too large by
/// reading only this many bytes plus one, so the compiler can report them.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot open Git repository at {path}: {message}")]
    OpenRepo { path: PathBuf, message: String },
    #[error("cannot resolve revision `{rev}`: {message}")]
    Revision { rev: String, message: String },
    #[error("cannot read the tree of `{rev}`: {message}")]
    Tree { rev: String, message: String },
    #[error("branch `{branch}` does not exist in {repo}")]
    BranchMissing { repo: String, branch: String },
    #[error("cannot reach Git remote {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("authentication to Git remote {url} failed: {message}")]
    AuthFailed { url: String, message: String },
    #[error("fetching `{branch}` from {url} failed: {message}")]
    Fetch {
        url: String,
        branch: String,
        message: String,
    },
    #[error("cannot prepare the mirror repository {path}: {message}")]
    Mirror { path: PathBuf, message: String },
    #[error("invalid source configuration: {message}")]
    Config { message: String },
}

/// Reads every regular file under `root` (skipping `.git` and symlinks).
pub fn read_dir(root: &Path) -> Result<Snapshot, SourceError> {
    let meta = std::fs::metadata(root).map_err(|source| SourceError::Io {
        path: root.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SourceError::NotADirectory {
            path: root.to_owned(),
        });
    }
    let mut snapshot = Snapshot::new(None);
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| SourceError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
            let name = entry.file_name();
            if kind.is_dir() {
                if name != ".git" {
                    todo.push(path);
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let bytes = read_limited(&path)?;
            snapshot.insert(relative.join("/"), bytes);
        }
    }
    Ok(snapshot)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Reads every blob of the tree of `rev` (a commit-ish: `HEAD`, `main`, `HEAD~1`, a hash)
/// in the repository at or above `repo`, with the path of `repo` inside the work tree as the
/// fleet root when `repo` is a subdirectory.
pub fn read_git(repo: &Path, rev: &str) -> Result<Snapshot, SourceError> {
    let open_err = |message: String| SourceError::OpenRepo {
        path: repo.to_owned(),
        message,
    };
    let repository = gix::discover(repo).map_err(|e| open_err(e.to_string()))?;
    // When `repo` is a folder inside the work tree, read only that folder of the commit.
    let prefix = match repository.workdir() {
        Some(workdir) => {
            let abs_repo = std::fs::canonicalize(repo).map_err(|source| SourceError::Io {
                path: repo.to_owned(),
                source,
            })?;
            let abs_work = std::fs::canonicalize(workdir).map_err(|source| SourceError::Io {
                path: workdir.to_owned(),
                source,
            })?;
            abs_repo
                .strip_prefix(&abs_work)
                .ok()
                .map(|p| {
                    p.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .unwrap_or_default()
        }
        None => String::new(),
    };
    let rev_err = |message: String| SourceError::Revision {
        rev: rev.to_owned(),
        message,
    };
    let tree_err = |message: String| SourceError::Tree {
        rev: rev.to_owned(),
        message,
    };
    let object = repository
        .rev_parse_single(rev)
        .map_err(|e| rev_err(e.to_string()))?;
    let commit = object
        .object()
        .map_err(|e| rev_err(e.to_string()))?
        .peel_to_commit()
        .map_err(|e| rev_err(e.to_string()))?;
    let commit_id = commit.id().to_string();
    let mut tree = commit.tree().map_err(|e| tree_err(e.to_string()))?;
    if !prefix.is_empty() {
        let entry = tree
            .peel_to_entry_by_path(&prefix)
            .map_err(|e| tree_err(e.to_string()))?
            .ok_or_else(|| tree_err(format!("`{prefix}` is not in the commit")))?;
        tree = entry
            .object()
            .map_err(|e| tree_err(e.to_string()))?
            .peel_to_tree()
            .map_err(|e| tree_err(e.to_string()))?;
    }
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(|e| tree_err(e.to_string()))?;
    let mut snapshot = Snapshot::new(Some(commit_id));
    for entry in recorder.records {
        if !entry.mode.is_blob() {
            continue;
        }
        let object = repository
            .find_object(entry.oid)
            .map_err(|e| tree_err(e.to_string()))?;
        snapshot.insert(entry.filepath.to_string(), object.data.clone());
    }
    Ok(snapshot)
}
