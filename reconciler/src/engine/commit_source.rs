//! Where the engine gets commits: the head of the tracked branch and the files of one
//! commit. A trait, so the engine does not care whether a local repository is read directly
//! or a remote is mirrored first; both implementations read the object database only.

use model::Snapshot;
use std::path::PathBuf;

/// The engine's view of the fleet repository. Blocking; the engine calls it off the loop.
pub trait CommitSource: Send + Sync + 'static {
    /// The commit the tracked branch points at now (`None`: the branch does not exist).
    fn head(&self) -> Result<Option<String>, String>;
    /// The files of `commit`.
    fn snapshot(&self, commit: &str) -> Result<Snapshot, String>;
}

/// A branch of a repository on this machine, read in place (bare or not).
#[derive(Debug, Clone)]
pub struct LocalBranch {
    pub repo: PathBuf,
    pub branch: String,
}

impl CommitSource for LocalBranch {
    fn head(&self) -> Result<Option<String>, String> {
        let rev = format!("refs/heads/{}", self.branch);
        match crate::source::resolve_commit(&self.repo, &rev) {
            Ok(sha) => Ok(Some(sha)),
            Err(crate::source::SourceError::Revision { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn snapshot(&self, commit: &str) -> Result<Snapshot, String> {
        crate::source::read_git(&self.repo, commit).map_err(|e| e.to_string())
    }
}
