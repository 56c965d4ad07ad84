//! Drift watch (`centossrv-agent watch DESIRED.json [--enforce]`): observe once and report
//! the current drift, then wait on inotify watches of the directories holding managed paths
//! (and a timer for what has no events: packages, users, groups, sysctls, services), debounce, re-observe
//! only the resources concerned, re-plan them with the shared `state::plan()` and report one
//! event per drifted property. With `--enforce`, drifted resources are applied back through
//! the normal apply path (a generation is recorded, the report is an event).
//!
//! An event is a hint, never the truth: the watch always re-observes, and reports only what
//! changed against what it knew. So the agent's own writes (enforcement, by temporary file and
//! rename) wake it once more, find the resources in sync, and report nothing: it cannot loop
//! on itself. Idle, the process sleeps in one `poll(2)` without timeout (with a timeout only
//! while a debounce is pending or when there are resources for the timer).

pub mod command;
pub mod drift;
pub mod event;
pub mod paths;
pub mod source;

use crate::apply::{self, ApplyError, ApplyOptions, Outcome};
use crate::generations::Store;
use crate::host::{Host, RealHost};
use crate::observe::{observe, supported};
use drift::{DriftProps, drift_of, transition};
use event::{EnforceFailure, WatchEvent};
use paths::PathIndex;
use source::{EventSource, SourceError, is_temp};
use state::{Action, Change, DesiredState, ResourceId};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::time::{Duration, Instant};

/// How a watch runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last event before re-observing (events within it are batched;
    /// a steady stream of events is still handled every ten debounce periods).
    pub debounce: Duration,
    /// How often resources without events are re-observed (and failed enforcements retried).
    pub interval: Duration,
    /// Apply drifted resources back to their desired state.
    pub enforce: bool,
    /// Generations to keep when enforcing.
    pub keep: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(200),
            interval: Duration::from_secs(60),
            enforce: false,
            keep: 10,
        }
    }
}

/// Why the watch stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot write an event: {0}")]
    Output(#[source] io::Error),
}

/// Receives every event; an error (a closed stdout) stops the watch.
pub type Sink<'a> = dyn FnMut(&WatchEvent) -> io::Result<()> + 'a;

fn now() -> String {
    crate::time::rfc3339(std::time::SystemTime::now())
}

/// Receives the report of every enforcement (the agent daemon forwards or queues them).
pub type ReportSink<'a> = dyn FnMut(&crate::apply::ApplyReport) + 'a;

struct Watcher<'a, 'r> {
    reports: &'r mut ReportSink<'r>,
    host: &'a RealHost,
    store: &'a Store,
    desired: &'a DesiredState,
    options: &'a WatchOptions,
    index: PathIndex,
    /// The drifted properties of every drifted resource.
    drift: HashMap<ResourceId, DriftProps>,
    /// Resources that could not be observed, with the reason last reported.
    problems: HashMap<ResourceId, String>,
    /// Resources whose enforcement failed: retried on the timer.
    retry: BTreeSet<ResourceId>,
}

/// Runs the watch until SIGTERM or SIGINT; returns the signal's name.
pub fn watch(
    host: &RealHost,
    store: &Store,
    desired: &DesiredState,
    options: &WatchOptions,
    sink: &mut Sink<'_>,
) -> Result<&'static str, WatchError> {
    apply::check_desired(desired)?;
    // Signals are routed to the event source before anything else, so a SIGTERM during the
    // first observation is not lost.
    let source = EventSource::new()?;
    watch_with(source, host, store, desired, options, sink, &mut |_| {})
}

/// [`watch`] on an event source made by the caller (who may hold its
/// [`source::Stopper`]); every enforcement's report also goes to `reports`. Returns the
/// signal's name, or `"stop"`.
pub fn watch_with(
    mut source: EventSource,
    host: &RealHost,
    store: &Store,
    desired: &DesiredState,
    options: &WatchOptions,
    sink: &mut Sink<'_>,
    reports: &mut ReportSink<'_>,
) -> Result<&'static str, WatchError> {
    apply::check_desired(desired)?;
    let mut w = Watcher {
        reports,
        host,
        store,
        desired,
        options,
        index: PathIndex::new(host, desired, supported),
        drift: HashMap::new(),
        problems: HashMap::new(),
        retry: BTreeSet::new(),
    };
    let emit = |sink: &mut Sink<'_>, e: WatchEvent| sink(&e).map_err(WatchError::Output);
    for (id, message) in w.index.unresolvable.clone() {
        emit(
            sink,
            WatchEvent::Error {
                at: now(),
                id: Some(id),
                message,
            },
        )?;
    }
    w.sync_watches(&mut source, sink)?;
    let all: BTreeSet<ResourceId> = w.index.all().cloned().collect();
    let drifted = w.reobserve(&all, sink)?;
    emit(
        sink,
        WatchEvent::Ready {
            at: now(),
            node: desired.node.clone(),
            resources: all.len(),
            directories: source.watched(),
            periodic: w.index.periodic().len(),
            interval_s: options.interval.as_secs(),
            drifted: w.drift.len(),
            not_watched: desired
                .resources
                .iter()
                .filter(|r| !supported(r.id.kind))
                .map(|r| r.id.clone())
                .collect(),
            enforce: options.enforce,
        },
    )?;
    drop(all);
    if options.enforce {
        w.enforce(drifted, sink)?;
    }

    let mut pending: BTreeSet<ResourceId> = BTreeSet::new();
    // First and last event of the batch being debounced.
    let mut batch: Option<(Instant, Instant)> = None;
    let mut next_tick = Instant::now() + options.interval;
    let flush_time = |batch: Option<(Instant, Instant)>| {
        batch.map(|(first, last)| (last + options.debounce).min(first + options.debounce * 10))
    };
    loop {
        if !w.needs_timer() {
            // Armed a full interval after it becomes needed (a failed enforcement).
            next_tick = Instant::now() + options.interval;
        }
        let flush_at = flush_time(batch);
        let tick_at = w.needs_timer().then_some(next_tick);
        let deadline = match (flush_at, tick_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let wakeup = source.wait(deadline.map(|d| d.saturating_duration_since(Instant::now())))?;
        if let Some(signal) = wakeup.signal {
            emit(
                sink,
                WatchEvent::Stopped {
                    at: now(),
                    signal: signal.to_owned(),
                },
            )?;
            return Ok(signal);
        }
        // Any event about a managed resource (even one already pending) restarts the quiet
        // time: a file written in many pieces is observed once it is done.
        let mut relevant = false;
        if wakeup.overflow {
            pending.extend(w.index.all().cloned());
            relevant = true;
        }
        for path in wakeup.paths.iter().filter(|p| !is_temp(p)) {
            if w.index.is_account_file(path) {
                host.accounts_changed();
            }
            for id in w.index.affected(path) {
                pending.insert(id.clone());
                relevant = true;
            }
        }
        if relevant {
            let t = Instant::now();
            batch = Some(batch.map_or((t, t), |(first, _)| (first, t)));
        }
        if let Some(flush) = flush_time(batch)
            && Instant::now() >= flush
        {
            batch = None;
            // Watches first: whatever changes after this is seen by a watch, whatever
            // changed before by the observation.
            w.sync_watches(&mut source, sink)?;
            let ids = std::mem::take(&mut pending);
            let changed = w.reobserve(&ids, sink)?;
            if options.enforce {
                w.enforce(changed, sink)?;
            }
        }
        if w.needs_timer() && Instant::now() >= next_tick {
            next_tick = Instant::now() + options.interval;
            host.accounts_changed();
            let mut ids: BTreeSet<ResourceId> = w.index.periodic().iter().cloned().collect();
            let retry = std::mem::take(&mut w.retry);
            ids.extend(retry.iter().cloned());
            let mut changed = w.reobserve(&ids, sink)?;
            if options.enforce {
                changed.extend(retry.into_iter().filter(|id| w.drift.contains_key(id)));
                w.enforce(changed, sink)?;
            }
        }
    }
}

impl Watcher<'_, '_> {
    fn needs_timer(&self) -> bool {
        !self.index.periodic().is_empty() || !self.retry.is_empty()
    }

    fn sync_watches(
        &self,
        source: &mut EventSource,
        sink: &mut Sink<'_>,
    ) -> Result<(), WatchError> {
        let dirs = self.index.watch_dirs(self.host.canonical_root());
        for (dir, e) in source.sync(&dirs) {
            sink(&WatchEvent::Error {
                at: now(),
                id: None,
                message: format!("cannot watch {}: {e}", dir.display()),
            })
            .map_err(WatchError::Output)?;
        }
        Ok(())
    }

    /// The desired state of `ids` only, in apply order.
    fn subset(&self, ids: &BTreeSet<ResourceId>) -> DesiredState {
        DesiredState {
            resources: self
                .desired
                .resources
                .iter()
                .filter(|r| ids.contains(&r.id))
                .cloned()
                .collect(),
            format: self.desired.format,
            node: self.desired.node.clone(),
            commit: self.desired.commit.clone(),
            labels: self.desired.labels.clone(),
        }
    }

    /// Observes `ids` again, plans them (the desired state as base, so every cause is
    /// drift) and reports what moved. Returns the resources whose drift changed to a new
    /// drift (candidates for enforcement).
    fn reobserve(
        &mut self,
        ids: &BTreeSet<ResourceId>,
        sink: &mut Sink<'_>,
    ) -> Result<BTreeSet<ResourceId>, WatchError> {
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sub = self.subset(ids);
        let observation = observe(self.host, &sub);
        let plan = state::plan(Some(&sub), Some(&observation.state), Some(&sub));
        self.absorb(&sub, &observation.problems, &plan.changes, sink)
    }

    fn absorb(
        &mut self,
        sub: &DesiredState,
        problems: &std::collections::BTreeMap<ResourceId, String>,
        changes: &[Change],
        sink: &mut Sink<'_>,
    ) -> Result<BTreeSet<ResourceId>, WatchError> {
        let changes: HashMap<&ResourceId, &Change> = changes
            .iter()
            .filter(|c| {
                !matches!(
                    c.action,
                    Action::Restart | Action::Reload | Action::Unmanage
                )
            })
            .map(|c| (&c.id, c))
            .collect();
        let at = now();
        let mut moved = BTreeSet::new();
        let empty = DriftProps::new();
        for r in &sub.resources {
            let id = &r.id;
            if let Some(problem) = problems.get(id) {
                if self.problems.get(id) != Some(problem) {
                    self.problems.insert(id.clone(), problem.clone());
                    sink(&WatchEvent::Error {
                        at: at.clone(),
                        id: Some(id.clone()),
                        message: format!("cannot observe: {problem}"),
                    })
                    .map_err(WatchError::Output)?;
                }
                continue;
            }
            self.problems.remove(id);
            let change = changes.get(id).copied();
            let new = change.map(drift_of).unwrap_or_default();
            let old = self.drift.get(id).unwrap_or(&empty);
            for event in transition(&at, id, old, &new, change) {
                sink(&event).map_err(WatchError::Output)?;
            }
            if new.is_empty() {
                self.drift.remove(id);
            } else if *old != new {
                moved.insert(id.clone());
                self.drift.insert(id.clone(), new);
            }
        }
        Ok(moved)
    }

    /// Applies the desired state of `ids` (drifted resources) through the normal apply path
    /// and reports the result; what is back in sync is reported resolved.
    fn enforce(
        &mut self,
        ids: BTreeSet<ResourceId>,
        sink: &mut Sink<'_>,
    ) -> Result<(), WatchError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sub = self.subset(&ids);
        let options = ApplyOptions {
            expect_digest: None,
            keep: self.options.keep,
        };
        let report = match apply::apply(self.host, self.store, &sub, &options) {
            Ok(report) => report,
            Err(e) => {
                self.retry.extend(ids);
                return sink(&WatchEvent::Error {
                    at: now(),
                    id: None,
                    message: format!("cannot enforce: {e}"),
                })
                .map_err(WatchError::Output);
            }
        };
        (self.reports)(&report);
        let failures: Vec<EnforceFailure> = report
            .resources
            .iter()
            .filter(|r| r.outcome == Outcome::Failed)
            .map(|r| EnforceFailure {
                id: r.id.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect();
        sink(&WatchEvent::Enforced {
            at: now(),
            status: report.status,
            generation: report.generation,
            changed: report.totals.changed,
            failed: report.totals.failed,
            failures: failures.clone(),
        })
        .map_err(WatchError::Output)?;
        self.retry.extend(failures.iter().map(|f| f.id.clone()));
        // What the apply observed afterwards, for the resources it did not fail.
        let done: BTreeSet<ResourceId> = ids
            .into_iter()
            .filter(|id| !failures.iter().any(|f| &f.id == id))
            .collect();
        if let Some(observed) = &report.observed {
            let sub = self.subset(&done);
            let plan = state::plan(Some(&sub), Some(observed), Some(&sub));
            self.absorb(&sub, &Default::default(), &plan.changes, sink)?;
        }
        Ok(())
    }
}
