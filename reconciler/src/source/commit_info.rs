//! Who wrote and who committed a commit, when, and its message: the Git side of
//! `centossrv blame`, read from the object database of a local repository or the
//! reconciler's mirror (`DATA_DIR/source.git`).

use super::SourceError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;

/// A commit's author or committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    /// `None` when the signature's time does not parse.
    pub time: Option<DateTime<Utc>>,
}

/// What Git knows of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub author: Person,
    pub committer: Person,
    /// The whole message (lossily decoded as UTF-8).
    pub message: String,
    /// How many parents: 2 or more is a merge commit.
    pub parents: usize,
}

impl CommitInfo {
    /// The message's first line.
    pub fn summary(&self) -> &str {
        self.message.lines().next().unwrap_or("").trim()
    }
}

/// The commits of `shas` found in the repository at or above `repo`, by sha. Commits the
/// repository does not have (pruned, or another repository) are left out; an id that is
/// not a full hexadecimal object id likewise. Blocking.
pub fn describe_commits(
    repo: &Path,
    shas: &[&str],
) -> Result<HashMap<String, CommitInfo>, SourceError> {
    let repository = gix::discover(repo).map_err(|e| SourceError::OpenRepo {
        path: repo.to_owned(),
        message: e.to_string(),
    })?;
    let mut found = HashMap::new();
    for sha in shas {
        let Ok(id) = gix::ObjectId::from_hex(sha.as_bytes()) else {
            continue;
        };
        let object = repository
            .try_find_object(id)
            .map_err(|e| SourceError::Revision {
                rev: (*sha).to_owned(),
                message: e.to_string(),
            })?;
        let Some(object) = object else { continue };
        let Ok(commit) = object.try_into_commit() else {
            continue;
        };
        let read_err = |e: gix::Error| SourceError::Revision {
            rev: (*sha).to_owned(),
            message: e.to_string(),
        };
        let author = person(commit.author().map_err(read_err)?);
        let committer = person(commit.committer().map_err(read_err)?);
        let message = String::from_utf8_lossy(commit.message_raw_sloppy()).into_owned();
        let parents = commit.parent_ids().count();
        found.insert(
            (*sha).to_owned(),
            CommitInfo {
                sha: (*sha).to_owned(),
                author,
                committer,
                message,
                parents,
            },
        );
    }
    Ok(found)
}

fn person(signature: gix::actor::SignatureRef<'_>) -> Person {
    Person {
        name: String::from_utf8_lossy(signature.name).into_owned(),
        email: String::from_utf8_lossy(signature.email).into_owned(),
        time: signature
            .time()
            .ok()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, 0)),
    }
}
