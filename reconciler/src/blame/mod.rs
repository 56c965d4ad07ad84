//! `centossrv blame` and the status page's blame view: one resource's history on one node.
//! [`gather`] reads the store (three bounded queries, plus one on the error path for
//! suggestions) and Git (the commits' authors and messages, blocking, off the async
//! threads), then [`timeline::merge`] builds the timeline. See `docs/blame.md`.

pub mod pr;
pub mod properties;
pub mod timeline;

pub use timeline::{BLAME_FORMAT, Entry, Timeline};

use crate::source::commit_info;
use state::ResourceId;
use std::path::PathBuf;
use store::{NodeFilter, Store, StoreError};

/// How many entries of each source are read by default (commits, runs, drift events).
pub const DEFAULT_LIMIT: u32 = 50;
/// The most a caller may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// Suggestions offered for an unknown node or resource.
const MAX_SUGGESTIONS: usize = 5;

/// Why there is no timeline.
#[derive(Debug, thiserror::Error)]
pub enum BlameError {
    #[error("no node named `{name}`{}", did_you_mean(suggestions))]
    UnknownNode {
        name: String,
        suggestions: Vec<String>,
    },
    #[error(
        "`{resource}` is not a resource id ({reason}){}",
        did_you_mean(suggestions)
    )]
    BadResource {
        resource: String,
        reason: String,
        suggestions: Vec<String>,
    },
    #[error(
        "node `{node}` has no history of `{resource}` (never desired in the commits read, \
         never applied, never drifted){}",
        did_you_mean(suggestions)
    )]
    UnknownResource {
        node: String,
        resource: String,
        suggestions: Vec<String>,
    },
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

impl BlameError {
    /// The close names offered, if any.
    pub fn suggestions(&self) -> &[String] {
        match self {
            BlameError::UnknownNode { suggestions, .. }
            | BlameError::BadResource { suggestions, .. }
            | BlameError::UnknownResource { suggestions, .. } => suggestions,
            BlameError::Store(_) => &[],
        }
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean one of: {}?",
            many.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What to blame.
#[derive(Debug, Clone)]
pub struct Request {
    pub node: String,
    /// As typed: `type:name`, e.g. `file:/etc/motd`.
    pub resource: String,
    /// Entries read per source (1 to [`MAX_LIMIT`]).
    pub limit: u32,
    /// The Git repository the reconciler tracks (or its mirror), for authors and messages.
    pub repo: Option<PathBuf>,
}

/// Reads the sources and merges them into the timeline.
pub async fn gather(store: &Store, request: &Request) -> Result<Timeline, BlameError> {
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let node = &request.node;
    if store.node(node).await?.is_none() {
        let names = store
            .list_nodes(&NodeFilter::default(), None, store::MAX_PAGE)
            .await?
            .items
            .into_iter()
            .map(|n| n.name)
            .collect::<Vec<_>>();
        return Err(BlameError::UnknownNode {
            name: node.clone(),
            suggestions: suggest(node, &names),
        });
    }
    let resource: ResourceId = match request.resource.trim().parse() {
        Ok(id) => id,
        Err(e) => {
            let ids = current_ids(store, node).await?;
            return Err(BlameError::BadResource {
                resource: request.resource.clone(),
                reason: e.to_string(),
                suggestions: suggest(request.resource.trim(), &ids),
            });
        }
    };
    // One more version than asked for: the oldest is the base of the comparison.
    let versions = store.resource_history(node, &resource, limit + 1).await?;
    let runs = store.resource_runs(node, &resource, limit).await?;
    let drift = store.resource_drift(node, &resource, limit).await?;
    let known = versions.items.iter().any(|v| v.resource.is_some())
        || runs.items.iter().any(|r| r.result.is_some())
        || !drift.items.is_empty();
    if !known {
        let ids = current_ids(store, node).await?;
        return Err(BlameError::UnknownResource {
            node: node.clone(),
            resource: resource.to_string(),
            suggestions: suggest(&resource.to_string(), &ids),
        });
    }
    let (git, git_note) = match &request.repo {
        None => (
            Default::default(),
            Some("no Git repository given: commits are shown without authors".to_owned()),
        ),
        Some(repo) => {
            let repo = repo.clone();
            let shas: Vec<String> = versions.items.iter().map(|v| v.commit.clone()).collect();
            let read = tokio::task::spawn_blocking(move || {
                let shas: Vec<&str> = shas.iter().map(String::as_str).collect();
                commit_info::describe_commits(&repo, &shas)
            })
            .await;
            match read {
                Ok(Ok(found)) => (found, None),
                Ok(Err(e)) => (Default::default(), Some(format!("Git: {e}"))),
                Err(e) => (Default::default(), Some(format!("Git: {e}"))),
            }
        }
    };
    Ok(timeline::merge(&timeline::Sources {
        node: node.clone(),
        resource,
        versions,
        runs,
        drift,
        git,
        git_note,
    }))
}

/// The resource ids of `node`'s desired state at its newest compiled commit.
async fn current_ids(store: &Store, node: &str) -> Result<Vec<String>, StoreError> {
    // Any id does: the history query lists the node's commits whatever the resource.
    let any = ResourceId::new(state::ResourceKind::File, "/");
    let newest = store.resource_history(node, &any, 1).await?;
    let Some(version) = newest.items.first() else {
        return Ok(Vec::new());
    };
    Ok(store
        .desired_for(&version.commit, node)
        .await?
        .map(|d| d.resources.iter().map(|r| r.id.to_string()).collect())
        .unwrap_or_default())
}

/// Close names for `input` among `candidates`: an id whose name is exactly the input (a
/// path typed without its `file:`), the closest by spelling, then those containing it.
pub fn suggest(input: &str, candidates: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if out.len() < MAX_SUGGESTIONS && !out.iter().any(|o| o == s) && s != input {
            out.push(s.to_owned());
        }
    };
    for c in candidates {
        if c.split_once(':').is_some_and(|(_, name)| name == input) {
            add(c);
        }
    }
    if let Some(best) =
        model::diagnostic::did_you_mean(input, candidates.iter().map(String::as_str))
    {
        add(best);
    }
    let needle = input.split_once(':').map_or(input, |(_, name)| name);
    if !needle.is_empty() {
        for c in candidates {
            if c.contains(needle) {
                add(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_close_names() {
        let ids: Vec<String> = [
            "file:/etc/motd",
            "file:/etc/hosts",
            "package:nginx",
            "service:nginx",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let cases: &[(&str, &[&str])] = &[
            ("/etc/motd", &["file:/etc/motd"]),
            ("file:/etc/mtod", &["file:/etc/motd"]),
            ("nginx", &["package:nginx", "service:nginx"]),
            ("service:ngnix", &["service:nginx"]),
            ("file:/etc/motd", &[]),
            ("user:nobody", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(suggest(input, &ids), *want, "input {input}");
        }
    }

    #[test]
    fn errors_say_what_to_type_instead() {
        let e = BlameError::UnknownResource {
            node: "web-1".into(),
            resource: "file:/etc/mtod".into(),
            suggestions: vec!["file:/etc/motd".into()],
        };
        assert!(
            e.to_string().ends_with("did you mean `file:/etc/motd`?"),
            "{e}"
        );
        let e = BlameError::UnknownNode {
            name: "web".into(),
            suggestions: vec!["web-1".into(), "web-2".into()],
        };
        assert!(e.to_string().ends_with("one of: `web-1`, `web-2`?"), "{e}");
    }
}
