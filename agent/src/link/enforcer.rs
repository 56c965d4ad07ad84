//! The drift watch of the cached desired state, on its own thread: the existing
//! [`crate::watch`] (report-only, or enforcing with `--enforce`), whose drift events and
//! enforcement reports come back to the daemon over a channel. Stopped (and restarted)
//! whenever the desired state changes, and on shutdown.

use crate::generations::Store;
use crate::host::RealHost;
use crate::watch::event::WatchEvent;
use crate::watch::source::{EventSource, Stopper};
use crate::watch::{WatchOptions, watch_with};
use state::wire::DriftReport;
use state::{ApplyReport, DesiredState};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// What the watch thread tells the daemon.
#[derive(Debug)]
pub enum Note {
    Drift(DriftReport),
    /// An enforcement's apply report.
    Report(Box<ApplyReport>),
    /// The watch could not start or stopped with an error.
    Error(String),
}

/// A running watch.
#[derive(Debug)]
pub struct Enforcer {
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
    notes: Receiver<Note>,
}

impl Enforcer {
    /// Starts watching `desired`.
    pub fn start(
        host: Arc<RealHost>,
        store: Store,
        desired: DesiredState,
        options: WatchOptions,
    ) -> Result<Enforcer, String> {
        let source = EventSource::new().map_err(|e| e.to_string())?;
        let stopper = source.stopper();
        let (tx, notes) = channel();
        let thread = std::thread::Builder::new()
            .name("centossrv-watch".into())
            .spawn(move || run(source, &host, &store, &desired, &options, tx))
            .map_err(|e| format!("cannot start the watch thread: {e}"))?;
        Ok(Enforcer {
            stopper,
            thread: Some(thread),
            notes,
        })
    }

    /// Everything the watch reported since the last call.
    pub fn drain(&self) -> Vec<Note> {
        self.notes.try_iter().collect()
    }

    /// Stops the watch and waits for it; returns what it reported last.
    pub fn stop(mut self) -> Vec<Note> {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.drain()
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    source: EventSource,
    host: &RealHost,
    store: &Store,
    desired: &DesiredState,
    options: &WatchOptions,
    tx: Sender<Note>,
) {
    let enforce = options.enforce;
    let drift_tx = tx.clone();
    let mut sink = move |event: &WatchEvent| -> std::io::Result<()> {
        if let WatchEvent::Drift {
            at,
            id,
            property,
            before,
            after,
            ..
        } = event
        {
            let _ = drift_tx.send(Note::Drift(DriftReport {
                resource: id.clone(),
                property: property.clone(),
                before: before.clone(),
                after: after.clone(),
                enforced: enforce,
                detected_at: at.clone(),
            }));
        } else if let WatchEvent::Error { id, message, .. } = event {
            let _ = drift_tx.send(Note::Error(match id {
                Some(id) => format!("watch: {id}: {message}"),
                None => format!("watch: {message}"),
            }));
        }
        Ok(())
    };
    let report_tx = tx.clone();
    let mut reports = move |report: &ApplyReport| {
        let _ = report_tx.send(Note::Report(Box::new(report.clone())));
    };
    if let Err(e) = watch_with(
        source,
        host,
        store,
        desired,
        options,
        &mut sink,
        &mut reports,
    ) {
        let _ = tx.send(Note::Error(format!("the drift watch stopped: {e}")));
    }
}
