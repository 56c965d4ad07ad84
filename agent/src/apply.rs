//! Apply: observe, re-derive the plan with the shared `state::plan()`, refuse a stale digest,
//! record a generation, execute the plan's changes in order (notified services restarted or
//! reloaded), re-observe, and report every
//! resource's outcome. Resource types this build does not handle fail with a reason; they
//! are never skipped silently or reported as done.

use crate::generations::{self, Finished, GenerationError, GenerationKind, Header, Store, Target};
use crate::host::{EntryKind, FileAttrs, Host, HostError, Meta, SYSCTL_PERSIST_PATH, Staged};
use crate::observe::{self, observe, supported, unsupported_reason};
use state::digest::sha256;
use state::{
    Action, DESIRED_FORMAT, DesiredState, Ensure, NodePlan, NotifyAction, ResourceId, Spec,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Default file mode when neither the desired state nor an existing file says.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Default directory mode when the desired state does not say.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// Why an apply could not run at all (per-resource failures are outcomes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("unsupported desired state format {found} (this agent reads format {DESIRED_FORMAT})")]
    Format { found: u32 },
    #[error(transparent)]
    Generation(#[from] GenerationError),
}

/// Options of one apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Apply only if the re-derived plan has this digest.
    pub expect_digest: Option<String>,
    /// Generations to keep.
    pub keep: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            expect_digest: None,
            keep: 10,
        }
    }
}

pub use state::{APPLY_FORMAT, ApplyReport, ApplyStatus, Outcome, ResourceReport, Totals};

/// Checks what only the agent can check about a desired state before using it.
pub fn check_desired(desired: &DesiredState) -> Result<(), ApplyError> {
    if desired.format != DESIRED_FORMAT {
        return Err(ApplyError::Format {
            found: desired.format,
        });
    }
    Ok(())
}

/// The plan this agent would execute now: observe, then the shared `plan()` without a base.
pub fn plan_now(host: &dyn Host, desired: &DesiredState) -> (observe::Observation, NodePlan) {
    let observation = observe(host, desired);
    let plan = state::plan(Some(desired), Some(&observation.state), None);
    (observation, plan)
}

/// What a change will touch, for the generation.
fn targets_of(host: &dyn Host, spec: &Spec, targets: &mut BTreeSet<Target>) {
    match spec {
        Spec::File(f) => {
            targets.insert(Target::Path(f.path.clone()));
        }
        Spec::Directory(d) => {
            targets.insert(Target::Path(d.path.clone()));
        }
        Spec::Symlink(l) => {
            targets.insert(Target::Path(l.path.clone()));
        }
        Spec::Sysctl(s) => {
            targets.insert(Target::Path(SYSCTL_PERSIST_PATH.to_owned()));
            targets.insert(Target::Sysctl(s.key.clone()));
        }
        Spec::Package(p) => {
            targets.insert(Target::Package(p.name.clone()));
        }
        Spec::User(u) => {
            targets.insert(Target::User(u.name.clone()));
        }
        Spec::Group(g) => {
            targets.insert(Target::Group(g.name.clone()));
        }
        Spec::Service(s) => {
            targets.insert(Target::Service(s.name.clone()));
            for path in crate::services::paths_of(host, s) {
                targets.insert(Target::Path(path));
            }
        }
    }
}

/// Applies `desired` to `host`. Errors only when nothing could be attempted (bad format, the
/// state directory is locked or unwritable); every resource-level problem is an outcome.
pub fn apply(
    host: &dyn Host,
    store: &Store,
    desired: &DesiredState,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    check_desired(desired)?;
    let lock = store.lock()?;
    let (observation, plan) = plan_now(host, desired);
    if let Some(expected) = &options.expect_digest
        && *expected != plan.digest
    {
        return Ok(ApplyReport {
            format: APPLY_FORMAT,
            node: desired.node.clone(),
            commit: desired.commit.clone(),
            status: ApplyStatus::Stale,
            plan_digest: plan.digest.clone(),
            expected_digest: Some(expected.clone()),
            plan: Some(plan),
            generation: None,
            resources: Vec::new(),
            totals: Totals::default(),
            duration_ms: generations::millis(started),
            observed: None,
            warnings: Vec::new(),
        });
    }
    let specs: HashMap<&ResourceId, &state::DesiredResource> =
        desired.resources.iter().map(|r| (&r.id, &**r)).collect();
    // Resources that fail whatever happens (unsupported type, not observable) and those
    // that require them are not attempted, so the generation does not record them.
    let mut doomed: HashSet<&ResourceId> = HashSet::new();
    let mut targets = BTreeSet::new();
    for change in &plan.changes {
        if change.action == Action::Unmanage {
            continue;
        }
        let resource = specs.get(&change.id);
        let blocked = resource.is_some_and(|r| r.requires.iter().any(|q| doomed.contains(q)));
        if !supported(change.id.kind) || observation.problems.contains_key(&change.id) || blocked {
            doomed.insert(&change.id);
        } else if let Some(r) = resource {
            targets_of(host, &r.spec, &mut targets);
        }
    }
    let generation = if targets.is_empty() {
        None
    } else {
        let header = Header {
            kind: GenerationKind::Apply,
            node: Some(desired.node.clone()),
            commit: desired.commit.clone(),
            plan_digest: Some(plan.digest.clone()),
            rollback_of: None,
        };
        let n = store.record(&lock, host, header, &targets)?;
        store.prune(&lock, options.keep)?;
        Some(n)
    };

    let mut done: HashMap<&ResourceId, ResourceReport> = HashMap::new();
    let mut failed: HashSet<&ResourceId> = HashSet::new();
    // Files written under their temporary names, not yet durable nor renamed: committed
    // together (one sync for all) before any other kind of change, before a file that
    // requires one of them, and at the end. Until then they are reported changed; a
    // commit that fails turns them into failures before anything depending on them runs.
    let mut pending: Vec<(&ResourceId, Staged)> = Vec::new();
    // Whether anything was attempted on the host.
    let mut touched = false;
    for change in &plan.changes {
        if change.action == Action::Unmanage {
            continue;
        }
        let resource = specs.get(&change.id);
        let batchable = resource.is_some_and(|r| {
            matches!(r.spec, Spec::File(_))
                && !r
                    .requires
                    .iter()
                    .any(|q| pending.iter().any(|(p, _)| *p == q))
        });
        if !batchable {
            commit(host, &mut pending, &mut done, &mut failed);
        }
        let t = Instant::now();
        let failed_requirement =
            resource.and_then(|r| r.requires.iter().find(|q| failed.contains(q)));
        // A notified restart or reload is needed only if a resource that notifies it changed.
        let triggered = change
            .triggered_by
            .iter()
            .any(|t| done.get(t).is_some_and(|r| r.outcome == Outcome::Changed));
        let notified = matches!(change.action, Action::Restart | Action::Reload);
        let skip = (notified && !triggered).then(|| {
            let failed: Vec<String> = change
                .triggered_by
                .iter()
                .filter(|t| failed.contains(t))
                .map(|t| format!("`{t}`"))
                .collect();
            format!(
                "not {}: {} notifying it failed, so nothing it depends on changed",
                if change.action == Action::Reload {
                    "reloaded"
                } else {
                    "restarted"
                },
                if failed.is_empty() {
                    "the resources".to_owned()
                } else {
                    failed.join(", ")
                }
            )
        });
        let result = if !supported(change.id.kind) {
            Err(unsupported_reason(change.id.kind))
        } else if let Some(problem) = observation.problems.get(&change.id) {
            Err(format!("cannot observe: {problem}"))
        } else if let Some(requirement) = failed_requirement {
            Err(format!(
                "not applied: requires `{requirement}`, which failed"
            ))
        } else if skip.is_some() {
            Ok(())
        } else if let Some(r) = resource {
            touched = true;
            execute(host, &r.spec, change.action, triggered).map(|staged| {
                if let Some(staged) = staged {
                    pending.push((&change.id, staged));
                }
            })
        } else {
            Err("not in the desired state".to_owned())
        };
        let (outcome, reason) = match (result, skip) {
            (Ok(()), Some(reason)) => (Outcome::Skipped, Some(reason)),
            (Ok(()), None) => (Outcome::Changed, None),
            (Err(reason), _) => {
                failed.insert(&change.id);
                (Outcome::Failed, Some(reason))
            }
        };
        done.insert(
            &change.id,
            ResourceReport {
                id: change.id.clone(),
                action: Some(change.action),
                outcome,
                reason,
                duration_ms: generations::millis(t),
            },
        );
    }

    commit(host, &mut pending, &mut done, &mut failed);

    // Verify: a resource reported changed must now be in sync. When nothing was attempted
    // (the common no-op run) the host is as observed: observing it again would double the
    // cost of a no-op apply (one stat and one read per file) and find nothing new.
    // When only files were attempted, nothing else can have changed through them (no
    // owner renamed, no package installed, no symlink re-pointed above a managed path): only
    // those files are observed again, the rest keeps the first observation.
    let only_files = done.keys().all(|id| id.kind == state::ResourceKind::File);
    let after = if touched && only_files {
        let fresh = observe::observe_where(host, desired, |id| done.contains_key(id));
        let mut after = observation;
        for id in done.keys() {
            after.state.resources.remove(*id);
            after.problems.remove(*id);
        }
        after.state.resources.extend(fresh.state.resources);
        after.problems.extend(fresh.problems);
        after.state.observed_at = fresh.state.observed_at;
        after
    } else if touched {
        // Not needed any more: do not hold two observations at once.
        drop(observation);
        observe(host, desired)
    } else {
        observation
    };
    let replan_changes = if touched {
        state::plan(Some(desired), Some(&after.state), None).changes
    } else {
        Vec::new()
    };
    for change in &replan_changes {
        if change.action == Action::Unmanage || !supported(change.id.kind) {
            continue;
        }
        if let Some(entry) = done.get_mut(&change.id)
            && entry.outcome == Outcome::Changed
        {
            let props: Vec<String> = change
                .properties
                .iter()
                .map(|p| format!("{} is {}", p.name, p.before.as_deref().unwrap_or("not set")))
                .collect();
            entry.outcome = Outcome::Failed;
            entry.reason = Some(format!(
                "applied but still differs from the desired state: {}",
                props.join(", ")
            ));
        }
    }

    let mut resources = Vec::new();
    let mut totals = Totals::default();
    let unmanaged = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Unmanage)
        .map(|c| (&c.id, Some(Action::Unmanage)));
    let ids = desired
        .resources
        .iter()
        .map(|r| (&r.id, None))
        .chain(unmanaged);
    for (id, action) in ids {
        let report = done.remove(id).unwrap_or_else(|| ResourceReport {
            id: id.clone(),
            action,
            outcome: Outcome::Unchanged,
            reason: None,
            duration_ms: 0,
        });
        match report.outcome {
            Outcome::Unchanged => totals.unchanged += 1,
            Outcome::Changed => totals.changed += 1,
            Outcome::Failed => totals.failed += 1,
            Outcome::Skipped => totals.skipped += 1,
        }
        resources.push(report);
    }
    let mut warnings = Vec::new();
    if let Some(n) = generation {
        let finished = Finished {
            finished_at: crate::time::rfc3339(host.now()),
            changed: totals.changed,
            failed: totals.failed,
        };
        // The host has changed by now: report it even if the marker cannot be written.
        if let Err(e) = store.finish(n, &finished) {
            warnings.push(format!("cannot mark generation {n} finished: {e}"));
        }
    }
    Ok(ApplyReport {
        format: APPLY_FORMAT,
        node: desired.node.clone(),
        commit: desired.commit.clone(),
        status: if totals.failed > 0 {
            ApplyStatus::Failed
        } else {
            ApplyStatus::Applied
        },
        plan_digest: plan.digest,
        expected_digest: options.expect_digest.clone(),
        plan: None,
        generation,
        resources,
        totals,
        duration_ms: generations::millis(started),
        observed: Some(after.state),
        warnings,
    })
}

/// Commits staged files (see [`Host::commit_staged`]) and turns the ones that could not be
/// committed into failures.
fn commit<'a>(
    host: &dyn Host,
    pending: &mut Vec<(&'a ResourceId, Staged)>,
    done: &mut HashMap<&'a ResourceId, ResourceReport>,
    failed: &mut HashSet<&'a ResourceId>,
) {
    if pending.is_empty() {
        return;
    }
    let t = Instant::now();
    let (ids, staged): (Vec<&ResourceId>, Vec<Staged>) = pending.drain(..).unzip();
    let results = host.commit_staged(staged);
    // The commit's time is shared by the files it made durable.
    let share = generations::millis(t) / u64::try_from(ids.len()).unwrap_or(1).max(1);
    for (id, result) in ids.into_iter().zip(results) {
        if let Some(entry) = done.get_mut(id) {
            entry.duration_ms += share;
            if let Err(e) = result {
                entry.outcome = Outcome::Failed;
                entry.reason = Some(e.to_string());
                failed.insert(id);
            }
        }
    }
}

/// Parses a desired mode (`0644`, `644`, `2755`).
fn parse_mode(mode: &str) -> Result<u32, String> {
    let ok = (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return Err(format!(
            "invalid mode `{mode}` (expected octal like `0644`)"
        ));
    }
    u32::from_str_radix(mode, 8).map_err(|_| format!("invalid mode `{mode}`"))
}

/// The uid of a desired owner: a name in the root's `etc/passwd`, or a number.
fn resolve_user(host: &dyn Host, name: &str) -> Result<u32, String> {
    host.user_id(name)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| {
            format!(
                "unknown user `{name}` (not in {})",
                host.root().join("etc/passwd").display()
            )
        })
}

/// The gid of a desired group: a name in the root's `etc/group`, or a number.
fn resolve_group(host: &dyn Host, name: &str) -> Result<u32, String> {
    host.group_id(name)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| {
            format!(
                "unknown group `{name}` (not in {})",
                host.root().join("etc/group").display()
            )
        })
}

fn host_err(e: HostError) -> String {
    e.to_string()
}

/// Removes an empty directory standing where something else must go.
fn clear_directory(host: &dyn Host, path: &str) -> Result<(), String> {
    host.remove_dir(path).map_err(|e| {
        if e.io_kind() == Some(std::io::ErrorKind::DirectoryNotEmpty) {
            format!("{path} is a non-empty directory; centossrv replaces only empty directories")
        } else {
            e.to_string()
        }
    })
}

/// Owner and group changes (as ids) needed for `current` to match the desired names.
fn ownership(
    host: &dyn Host,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<u32>, Option<u32>), String> {
    let uid = owner.map(|o| resolve_user(host, o)).transpose()?;
    let gid = group.map(|g| resolve_group(host, g)).transpose()?;
    Ok((uid, gid))
}

/// Brings owner, group and mode of an existing file or directory in line.
fn fix_meta(
    host: &dyn Host,
    path: &str,
    current: Meta,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
) -> Result<(), String> {
    let uid = uid.filter(|u| *u != current.uid);
    let gid = gid.filter(|g| *g != current.gid);
    if uid.is_some() || gid.is_some() {
        host.set_owner(path, uid, gid).map_err(host_err)?;
        // chown may clear setuid/setgid bits: set the mode again.
        host.set_mode(path, mode.unwrap_or(current.mode))
            .map_err(host_err)?;
    } else if let Some(mode) = mode.filter(|m| *m != current.mode) {
        host.set_mode(path, mode).map_err(host_err)?;
    }
    Ok(())
}

/// Fails unless the parent directory of `path` exists: the agent creates only the
/// directories the desired state declares.
fn require_parent(host: &dyn Host, path: &str) -> Result<(), String> {
    let Some(parent) = std::path::Path::new(path).parent() else {
        return Ok(());
    };
    let parent = parent.to_string_lossy();
    match host.stat(&parent).map_err(host_err)? {
        Some(m) if m.kind == EntryKind::Directory => Ok(()),
        Some(_) => Err(format!("the parent {parent} is not a directory")),
        None => Err(format!(
            "the parent directory {parent} does not exist (declare it as a directory resource)"
        )),
    }
}

/// Executes one planned change of a supported resource. A file whose content must be
/// replaced is only staged (written under its temporary name, see [`Host::stage_file`]):
/// the caller commits staged files in batches, so that 1,000 files cost a few syncs rather
/// than 2,000 (see [`Host::commit_staged`]).
/// `triggered`: a resource notifying this service changed.
fn execute(
    host: &dyn Host,
    spec: &Spec,
    action: Action,
    triggered: bool,
) -> Result<Option<Staged>, String> {
    let done = |r: Result<(), String>| r.map(|()| None);
    match spec {
        Spec::File(f) => {
            let current = host.stat(&f.path).map_err(host_err)?;
            if f.ensure == Ensure::Absent {
                return done(match current {
                    Some(m) if m.kind != EntryKind::Directory => {
                        host.remove_file(&f.path).map_err(host_err)
                    }
                    _ => Ok(()),
                });
            }
            let mode = f.mode.as_deref().map(parse_mode).transpose()?;
            let (uid, gid) = ownership(host, f.owner.as_deref(), f.group.as_deref())?;
            let existing = current.filter(|m| m.kind == EntryKind::File);
            let content_ok = match (existing, &f.sha256) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(_), Some(want)) => {
                    sha256(&host.read_file(&f.path).map_err(host_err)?) == *want
                }
            };
            if let Some(m) = existing.filter(|_| content_ok) {
                return done(fix_meta(host, &f.path, m, uid, gid, mode));
            }
            let bytes: &[u8] = match (&f.content, &f.sha256) {
                (Some(content), Some(want)) => {
                    if sha256(content.as_bytes()) != *want {
                        return Err(format!(
                            "the desired content does not match its digest {want}"
                        ));
                    }
                    content.as_bytes()
                }
                (Some(content), None) => content.as_bytes(),
                (None, Some(_)) => {
                    return Err("the desired state carries only the digest of this file's \
                                content (a redacted sensitive file?): the agent needs the \
                                content to write it"
                        .to_owned());
                }
                (None, None) => b"",
            };
            if current.is_some_and(|m| m.kind == EntryKind::Directory) {
                clear_directory(host, &f.path)?;
            }
            // Unmanaged properties keep the values of the file being replaced.
            let attrs = FileAttrs {
                mode: mode
                    .or(existing.map(|m| m.mode))
                    .unwrap_or(DEFAULT_FILE_MODE),
                uid: uid.or(existing.map(|m| m.uid)),
                gid: gid.or(existing.map(|m| m.gid)),
            };
            // A missing parent makes the create fail; only then is it looked at, for an
            // error that says what to declare (most files go into directories that exist).
            host.stage_file(&f.path, bytes, attrs)
                .map(Some)
                .map_err(|e| match current {
                    None => require_parent(host, &f.path)
                        .err()
                        .unwrap_or_else(|| host_err(e)),
                    Some(_) => host_err(e),
                })
        }
        Spec::Directory(d) => done(execute_directory(host, d)),
        Spec::Symlink(l) => done(execute_symlink(host, l)),
        Spec::Sysctl(s) => done(apply_sysctl(host, &s.key, &s.value)),
        Spec::Package(p) => done(crate::packages::set_package(host, &p.name, &p.ensure)),
        Spec::User(u) => done(crate::accounts::set_user(host, u)),
        Spec::Group(g) => done(crate::accounts::set_group(host, g)),
        Spec::Service(s) => {
            // A service the plan also updates carries its triggers on the update: the
            // spec says what a notification does (a changed unit restarts it anyway).
            let notified = match action {
                Action::Restart => Some(NotifyAction::Restart),
                Action::Reload => Some(NotifyAction::Reload),
                _ if triggered => Some(s.on_notify),
                _ => None,
            };
            done(crate::services::apply(host, s, notified))
        }
    }
}

fn execute_directory(host: &dyn Host, d: &state::DirectorySpec) -> Result<(), String> {
    {
        {
            let current = host.stat(&d.path).map_err(host_err)?;
            if d.ensure == Ensure::Absent {
                return match current {
                    Some(m) if m.kind == EntryKind::Directory => clear_directory(host, &d.path),
                    _ => Ok(()),
                };
            }
            let mode = d.mode.as_deref().map(parse_mode).transpose()?;
            let (uid, gid) = ownership(host, d.owner.as_deref(), d.group.as_deref())?;
            match current {
                Some(m) if m.kind == EntryKind::Directory => {
                    fix_meta(host, &d.path, m, uid, gid, mode)
                }
                other => {
                    if other.is_some() {
                        host.remove_file(&d.path).map_err(host_err)?;
                    } else {
                        require_parent(host, &d.path)?;
                    }
                    let mode = mode.unwrap_or(DEFAULT_DIR_MODE);
                    host.create_dir(&d.path, mode).map_err(host_err)?;
                    let m = host
                        .stat(&d.path)
                        .map_err(host_err)?
                        .ok_or_else(|| format!("{} vanished after it was created", d.path))?;
                    fix_meta(host, &d.path, m, uid, gid, Some(mode))
                }
            }
        }
    }
}

fn execute_symlink(host: &dyn Host, l: &state::SymlinkSpec) -> Result<(), String> {
    {
        {
            let current = host.stat(&l.path).map_err(host_err)?;
            if l.ensure == Ensure::Absent {
                return match current {
                    Some(m) if m.kind == EntryKind::Symlink => {
                        host.remove_file(&l.path).map_err(host_err)
                    }
                    _ => Ok(()),
                };
            }
            let Some(target) = &l.target else {
                return Err("the desired state gives no target for this link".to_owned());
            };
            if current.is_none() {
                require_parent(host, &l.path)?;
            }
            if current.is_some_and(|m| m.kind == EntryKind::Directory) {
                clear_directory(host, &l.path)?;
            }
            host.symlink_atomic(&l.path, target).map_err(host_err)
        }
    }
}

/// Persists `key = value` in the agent's drop-in file (atomically), then sets the live value.
fn apply_sysctl(host: &dyn Host, key: &str, value: &str) -> Result<(), String> {
    crate::host::sysctl_path(key).map_err(host_err)?;
    let mut persisted = observe::persisted_sysctls(host).map_err(host_err)?;
    let value = observe::normalize_sysctl(value);
    let canonical = observe::canonical_sysctl_key(key);
    if persisted.get(&canonical) != Some(&value) {
        persisted.insert(canonical, value.clone());
        let mut text = String::from(
            "# Managed by centossrv-agent: the sysctl values of this node's desired state.\n",
        );
        for (k, v) in &persisted {
            text.push_str(&format!("{k} = {v}\n"));
        }
        let current = host.stat(SYSCTL_PERSIST_PATH).map_err(host_err)?;
        if current.is_none() {
            require_parent(host, SYSCTL_PERSIST_PATH)?;
        }
        let attrs = FileAttrs {
            mode: current.map_or(DEFAULT_FILE_MODE, |m| m.mode),
            uid: current.map(|m| m.uid),
            gid: current.map(|m| m.gid),
        };
        host.write_file_atomic(SYSCTL_PERSIST_PATH, text.as_bytes(), attrs)
            .map_err(host_err)?;
    }
    let live = host.read_sysctl(key).map_err(host_err)?;
    if live.as_deref().map(observe::normalize_sysctl) != Some(value.clone()) {
        host.write_sysctl(key, &value).map_err(host_err)?;
    }
    Ok(())
}
