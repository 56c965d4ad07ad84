//! Where the engine gets commits: the head of the tracked branch and the files of one
//! commit. A trait, so the engine does not care where commits come from; the service's
//! implementation is the Git tracker (`source::tracker`, local or mirrored remote).

use model::Snapshot;

/// The engine's view of the fleet repository. Blocking; the engine calls it off the loop.
pub trait CommitSource: Send + Sync + 'static {
    /// The commit the tracked branch points at now (`None`: the branch does not exist).
    fn head(&self) -> Result<Option<String>, String>;
    /// The files of `commit`.
    fn snapshot(&self, commit: &str) -> Result<Snapshot, String>;
    /// The commit another ref points at (a pull request's head ref), fetched first when the
    /// source is remote; `None` when there is no such ref. Sources without other refs say so.
    fn resolve_ref(&self, git_ref: &str) -> Result<Option<String>, String> {
        Err(format!("this commit source cannot read {git_ref}"))
    }
}
