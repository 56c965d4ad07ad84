//! The pure step of `centossrv blame`: one resource's desired form at each compiled commit
//! of a node, the apply runs that concern it and its drift events, merged into one
//! chronological timeline, newest first. A commit enters the timeline when the resource's
//! desired form (spec, `requires`, `notify`; not where it is declared) differs from the
//! node's previous compiled commit. Each source is read newest first up to a limit; where
//! one was cut, older entries of every source are left out too, so the timeline has no
//! silent gaps ("older entries not shown").

use super::pr::{PrRef, pr_ref};
use super::properties::{Property, changed_properties};
use crate::source::commit_info::{CommitInfo, Person};
use chrono::{DateTime, Utc};
use serde::Serialize;
use state::{DesiredResource, ResourceId};
use std::collections::HashMap;
use store::{DriftEvent, Newest, ResourceRun, ResourceVersion};

/// Version of the JSON form of [`Timeline`].
pub const BLAME_FORMAT: u32 = 1;

/// Everything the timeline is merged from, each source newest first.
#[derive(Debug, Clone)]
pub struct Sources {
    pub node: String,
    pub resource: ResourceId,
    /// The resource at the node's compiled commits; when `more`, the oldest is only the base
    /// its successor is compared with.
    pub versions: Newest<ResourceVersion>,
    pub runs: Newest<ResourceRun>,
    pub drift: Newest<DriftEvent>,
    /// What Git says of the commits, by sha (any may be missing).
    pub git: HashMap<String, CommitInfo>,
    /// Why Git metadata is missing, when it is (no repository given, unreadable).
    pub git_note: Option<String>,
}

/// One resource's history on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub format: u32,
    pub node: String,
    pub resource: String,
    /// The resource as desired at the node's newest compiled commit (redacted), if it is
    /// desired there.
    pub current: Option<DesiredResource>,
    /// Newest first.
    pub entries: Vec<Entry>,
    /// Older entries exist that are not shown.
    pub truncated: bool,
    /// When truncated: entries older than this are not shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shown_since: Option<DateTime<Utc>>,
    /// Why commits carry no Git metadata, when they do not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_note: Option<String>,
}

/// One event in the resource's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// A compiled commit changed the resource's desired form.
    Commit(CommitEntry),
    /// An apply run on the node that concerned the resource.
    Apply(ApplyEntry),
    /// The resource was found diverged from its desired state.
    Drift(DriftEntry),
}

impl Entry {
    /// When it happened, on the reconciler's clock (compiled, started, detected).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Entry::Commit(c) => c.at,
            Entry::Apply(a) => a.at,
            Entry::Drift(d) => d.at,
        }
    }

    /// Order among entries at the same instant: a commit is compiled before it is applied,
    /// and drift is found against what was applied.
    fn rank(&self) -> (u8, i64) {
        match self {
            Entry::Commit(_) => (0, 0),
            Entry::Apply(a) => (1, a.run),
            Entry::Drift(d) => (2, d.id),
        }
    }
}

/// How a commit changed the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Desired from this commit on.
    Added,
    /// Desired differently.
    Changed,
    /// No longer desired (unmanaged from now on, not deleted).
    Removed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommitEntry {
    /// When the reconciler compiled the commit.
    pub at: DateTime<Utc>,
    pub commit: String,
    pub change: ChangeKind,
    /// The properties that differ from the previous compiled commit (empty when added or
    /// removed).
    pub properties: Vec<Property>,
    /// Where the resource is declared after the change (before it, when removed).
    pub declared_in: Option<String>,
    /// What Git says of the commit, when the repository has it.
    pub git: Option<GitCommit>,
    /// The pull or merge request the commit message names.
    pub pr: Option<PrRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitCommit {
    pub summary: String,
    pub author: Signature,
    /// Who committed (for a merge through a forge: the forge or whoever merged).
    pub committer: Signature,
    pub merge: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub name: String,
    pub email: String,
    pub time: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyEntry {
    /// When the run started.
    pub at: DateTime<Utc>,
    pub run: i64,
    pub commit: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// `applied`, `failed`, `stale`; `None` while running.
    pub status: Option<&'static str>,
    /// The resource's outcome (`unchanged`, `changed`, `failed`, `skipped`); `None` when the
    /// run has no per-resource results.
    pub outcome: Option<&'static str>,
    /// The planned action on the resource, if any.
    pub action: Option<&'static str>,
    pub reason: Option<String>,
    /// The run's message.
    pub message: Option<String>,
    pub approved_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftEntry {
    pub at: DateTime<Utc>,
    pub id: i64,
    /// The commit whose desired state the node diverged from.
    pub commit: Option<String>,
    /// What restoring the desired state would do.
    pub action: &'static str,
    pub properties: Vec<Property>,
}

/// Merges `sources` into the timeline.
pub fn merge(sources: &Sources) -> Timeline {
    let versions = &sources.versions.items;
    let mut entries = Vec::new();
    // Each version compared with the next older one; with nothing older stored, with absence.
    let compared = if sources.versions.more {
        versions.len().saturating_sub(1)
    } else {
        versions.len()
    };
    for (i, version) in versions.iter().enumerate().take(compared) {
        let older = versions.get(i + 1).and_then(|v| v.resource.as_deref());
        if let Some(entry) = commit_entry(version, older, sources) {
            entries.push(Entry::Commit(entry));
        }
    }
    let desired_at: HashMap<&str, bool> = versions
        .iter()
        .map(|v| (v.commit.as_str(), v.resource.is_some()))
        .collect();
    for run in &sources.runs.items {
        // A run without results is shown unless its commit did not desire the resource.
        if run.result.is_none() && desired_at.get(run.run.commit.as_str()) == Some(&false) {
            continue;
        }
        entries.push(Entry::Apply(apply_entry(run)));
    }
    for event in &sources.drift.items {
        entries.push(Entry::Drift(drift_entry(event)));
    }

    let horizon = [
        sources
            .versions
            .more
            .then(|| versions.last().map(|v| v.compiled_at))
            .flatten(),
        sources
            .runs
            .more
            .then(|| sources.runs.items.last().map(|r| r.run.started_at))
            .flatten(),
        sources
            .drift
            .more
            .then(|| sources.drift.items.last().map(|d| d.detected_at))
            .flatten(),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(horizon) = horizon {
        entries.retain(|e| e.at() >= horizon);
    }
    entries.sort_by_key(|e| std::cmp::Reverse((e.at(), e.rank())));

    Timeline {
        format: BLAME_FORMAT,
        node: sources.node.clone(),
        resource: sources.resource.to_string(),
        current: versions
            .first()
            .and_then(|v| v.resource.as_deref())
            .cloned(),
        entries,
        truncated: sources.versions.more || sources.runs.more || sources.drift.more,
        shown_since: horizon,
        git_note: sources.git_note.clone(),
    }
}

fn commit_entry(
    version: &ResourceVersion,
    older: Option<&DesiredResource>,
    sources: &Sources,
) -> Option<CommitEntry> {
    let newer = version.resource.as_deref();
    let (change, properties) = match (older, newer) {
        (None, None) => return None,
        (None, Some(_)) => (ChangeKind::Added, Vec::new()),
        (Some(_), None) => (ChangeKind::Removed, Vec::new()),
        (Some(old), Some(new)) => {
            let properties = changed_properties(old, new);
            if properties.is_empty() {
                return None;
            }
            (ChangeKind::Changed, properties)
        }
    };
    let declared = newer
        .or(older)
        .map(|r| format!("{}: {}:{}", r.origin.role, r.origin.file, r.origin.line));
    let info = sources.git.get(&version.commit);
    Some(CommitEntry {
        at: version.compiled_at,
        commit: version.commit.clone(),
        change,
        properties,
        declared_in: declared,
        git: info.map(|i| GitCommit {
            summary: i.summary().to_owned(),
            author: signature(&i.author),
            committer: signature(&i.committer),
            merge: i.parents > 1,
        }),
        pr: info.and_then(|i| pr_ref(&i.message)),
    })
}

fn signature(p: &Person) -> Signature {
    Signature {
        name: p.name.clone(),
        email: p.email.clone(),
        time: p.time,
    }
}

fn apply_entry(r: &ResourceRun) -> ApplyEntry {
    ApplyEntry {
        at: r.run.started_at,
        run: r.run.id,
        commit: r.run.commit.clone(),
        finished_at: r.run.finished_at,
        status: r.run.status.map(|s| s.as_str()),
        outcome: r.result.as_ref().map(|x| x.outcome.as_str()),
        action: r.result.as_ref().and_then(|x| x.action).map(|a| a.as_str()),
        reason: r.result.as_ref().and_then(|x| x.reason.clone()),
        message: r.run.message.clone(),
        approved_by: r.approved_by.clone(),
    }
}

fn drift_entry(e: &DriftEvent) -> DriftEntry {
    DriftEntry {
        at: e.detected_at,
        id: e.id,
        commit: e.commit.clone(),
        action: e.change.action.as_str(),
        properties: e
            .change
            .properties
            .iter()
            .map(|p| Property {
                name: p.name.clone(),
                before: p.before.clone(),
                after: p.after.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use state::{
        Action, Cause, Change, Ensure, FileSpec, Origin, Outcome, PropertyChange, ResourceKind,
        Spec,
    };
    use std::sync::Arc;
    use store::{ResourceResult, RunStatus, RunSummary};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
            + Duration::minutes(minute)
    }

    fn motd() -> ResourceId {
        ResourceId::new(ResourceKind::File, "/etc/motd")
    }

    /// The resource with `content` (and mode 0644), or with mode given as `mode=NNNN`.
    fn file(form: &str) -> Arc<DesiredResource> {
        let (content, mode) = match form.strip_prefix("mode=") {
            Some(mode) => ("hello\n", mode),
            None => (form, "0644"),
        };
        Arc::new(DesiredResource {
            id: motd(),
            spec: Spec::File(FileSpec {
                path: "/etc/motd".into(),
                ensure: Ensure::Present,
                content: Some(Arc::from(content)),
                sha256: Some(state::digest::sha256(content.as_bytes())),
                mode: Some(mode.into()),
                owner: None,
                group: None,
                sensitive: false,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: Origin {
                role: "base".into(),
                file: "roles/base.yaml".into(),
                line: 3,
            },
        })
    }

    /// Versions as `(sha, minute, form)`, form `-` for absent.
    fn versions(list: &[(&str, i64, &str)], more: bool) -> Newest<ResourceVersion> {
        Newest {
            items: list
                .iter()
                .map(|(sha, minute, form)| ResourceVersion {
                    commit: (*sha).into(),
                    compiled_at: at(*minute),
                    resource: (*form != "-").then(|| file(form)),
                })
                .collect(),
            more,
        }
    }

    /// Runs as `(id, minute, commit, outcome)`, outcome `-` for a run without results.
    fn runs(list: &[(i64, i64, &str, &str)], more: bool) -> Newest<ResourceRun> {
        Newest {
            items: list
                .iter()
                .map(|(id, minute, commit, outcome)| ResourceRun {
                    run: RunSummary {
                        id: *id,
                        commit: (*commit).into(),
                        plan_digest: "sha256:00".into(),
                        started_at: at(*minute),
                        finished_at: Some(at(*minute)),
                        status: Some(if *outcome == "failed" {
                            RunStatus::Failed
                        } else if *outcome == "-" {
                            RunStatus::Stale
                        } else {
                            RunStatus::Applied
                        }),
                        message: None,
                    },
                    result: Outcome::parse(outcome).map(|outcome| ResourceResult {
                        resource: motd(),
                        action: Some(Action::Update),
                        outcome,
                        reason: None,
                        duration_ms: 1,
                    }),
                    approved_by: Some("reconciler".into()),
                })
                .collect(),
            more,
        }
    }

    /// Drift events as `(id, minute)`.
    fn drift(list: &[(i64, i64)], more: bool) -> Newest<DriftEvent> {
        Newest {
            items: list
                .iter()
                .map(|(id, minute)| DriftEvent {
                    id: *id,
                    node: "web-1".into(),
                    commit: Some("c1".into()),
                    resource: motd(),
                    change: Change {
                        id: motd(),
                        action: Action::Update,
                        cause: Cause::Drift,
                        properties: vec![PropertyChange {
                            name: "mode".into(),
                            before: Some("0666".into()),
                            after: Some("0644".into()),
                            cause: Cause::Drift,
                        }],
                        diff: None,
                        destructive: false,
                        sensitive: false,
                        triggered_by: Vec::new(),
                        unobserved: false,
                    },
                    detected_at: at(*minute),
                })
                .collect(),
            more,
        }
    }

    /// An entry as one word list: `commit c2 changed content,sha256`, `apply 4 failed`,
    /// `drift 7`.
    fn line(e: &Entry) -> String {
        match e {
            Entry::Commit(c) => {
                let names: Vec<&str> = c.properties.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "commit {} {} {}",
                    c.commit,
                    c.change.as_str(),
                    names.join(",")
                )
                .trim_end()
                .to_owned()
            }
            Entry::Apply(a) => format!("apply {} {}", a.run, a.outcome.unwrap_or("none")),
            Entry::Drift(d) => format!("drift {}", d.id),
        }
    }

    struct Case {
        name: &'static str,
        versions: Newest<ResourceVersion>,
        runs: Newest<ResourceRun>,
        drift: Newest<DriftEvent>,
        want: &'static [&'static str],
        truncated: bool,
    }

    #[test]
    fn sources_merge_into_one_timeline_newest_first() {
        let cases = vec![
            Case {
                name: "added, unchanged, changed, with an apply and drift between",
                versions: versions(
                    &[
                        ("c4", 40, "bye\n"),
                        ("c3", 30, "hello\n"),
                        ("c2", 20, "hello\n"),
                        ("c1", 10, "-"),
                    ],
                    false,
                ),
                runs: runs(&[(2, 41, "c4", "changed"), (1, 21, "c2", "changed")], false),
                drift: drift(&[(7, 25)], false),
                want: &[
                    "apply 2 changed",
                    "commit c4 changed content,sha256",
                    "drift 7",
                    "apply 1 changed",
                    "commit c2 added",
                ],
                truncated: false,
            },
            Case {
                name: "the oldest stored commit counts as added when nothing older exists",
                versions: versions(&[("c2", 20, "mode=0600"), ("c1", 10, "mode=0644")], false),
                runs: runs(&[], false),
                drift: drift(&[], false),
                want: &["commit c2 changed mode", "commit c1 added"],
                truncated: false,
            },
            Case {
                name: "removed from the desired state; a stale run of a commit without it is left out",
                versions: versions(&[("c3", 30, "-"), ("c2", 20, "hello\n")], false),
                runs: runs(&[(5, 31, "c3", "-"), (4, 21, "c2", "-")], false),
                drift: drift(&[], false),
                want: &["commit c3 removed", "apply 4 none", "commit c2 added"],
                truncated: false,
            },
            Case {
                name: "the oldest version is only a base when older ones exist",
                versions: versions(&[("c3", 30, "b\n"), ("c2", 20, "a\n")], true),
                runs: runs(&[(1, 5, "c0", "changed")], false),
                drift: drift(&[(3, 25), (2, 15)], false),
                want: &["commit c3 changed content,sha256", "drift 3"],
                truncated: true,
            },
            Case {
                name: "cut runs hide older commits and drift too",
                versions: versions(
                    &[("c3", 30, "b\n"), ("c2", 20, "a\n"), ("c1", 10, "-")],
                    false,
                ),
                runs: runs(
                    &[(9, 35, "c3", "changed"), (8, 22, "c2", "unchanged")],
                    true,
                ),
                drift: drift(&[(4, 21)], false),
                want: &[
                    "apply 9 changed",
                    "commit c3 changed content,sha256",
                    "apply 8 unchanged",
                ],
                truncated: true,
            },
            Case {
                name: "same instant: commit, then apply, then drift",
                versions: versions(&[("c1", 10, "a\n")], false),
                runs: runs(&[(1, 10, "c1", "changed")], false),
                drift: drift(&[(1, 10)], false),
                want: &["drift 1", "apply 1 changed", "commit c1 added"],
                truncated: false,
            },
            Case {
                name: "nothing at all",
                versions: versions(&[], false),
                runs: runs(&[], false),
                drift: drift(&[], false),
                want: &[],
                truncated: false,
            },
        ];
        for case in cases {
            let timeline = merge(&Sources {
                node: "web-1".into(),
                resource: motd(),
                versions: case.versions,
                runs: case.runs,
                drift: case.drift,
                git: HashMap::new(),
                git_note: None,
            });
            let got: Vec<String> = timeline.entries.iter().map(line).collect();
            assert_eq!(got, case.want, "{}", case.name);
            assert_eq!(timeline.truncated, case.truncated, "{}", case.name);
            assert_eq!(
                timeline.shown_since.is_some(),
                case.truncated,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn commits_carry_git_metadata_and_the_request_they_merged() {
        let person = |name: &str| Person {
            name: name.into(),
            email: format!("{name}@example.com"),
            time: Some(at(0)),
        };
        let git = HashMap::from([(
            "c2".to_owned(),
            CommitInfo {
                sha: "c2".into(),
                author: person("alice"),
                committer: person("GitHub"),
                message: "Merge pull request #42 from alice/motd\n\nNew motd\n".into(),
                parents: 2,
            },
        )]);
        let timeline = merge(&Sources {
            node: "web-1".into(),
            resource: motd(),
            versions: versions(&[("c2", 20, "b\n"), ("c1", 10, "a\n")], false),
            runs: runs(&[], false),
            drift: drift(&[], false),
            git,
            git_note: None,
        });
        let Entry::Commit(c) = &timeline.entries[0] else {
            panic!("a commit first: {:?}", timeline.entries);
        };
        let git = c.git.as_ref().expect("git metadata");
        assert_eq!(git.summary, "Merge pull request #42 from alice/motd");
        assert_eq!(git.author.to_string(), "alice <alice@example.com>");
        assert_eq!(git.committer.name, "GitHub");
        assert!(git.merge);
        assert_eq!(c.pr.as_ref().map(|p| p.to_string()).as_deref(), Some("#42"));
        assert_eq!(c.declared_in.as_deref(), Some("base: roles/base.yaml:3"));
        let Entry::Commit(first) = &timeline.entries[1] else {
            panic!("the oldest commit second");
        };
        assert!(first.git.is_none() && first.pr.is_none());
        assert_eq!(
            timeline.current.as_ref().map(|r| r.id.clone()),
            Some(motd())
        );
    }
}
