//! Watches the tracked branch: resolves its head on an interval and on demand ([`PollerHandle::poke`],
//! used by the push webhook) and sends [`Event::SourceChanged`] to the engine once at start and
//! whenever the head differs from the last one seen. The blocking Git work runs in
//! `spawn_blocking`; pokes that arrive while a fetch runs are coalesced into one more fetch.

use crate::engine::Event;
use crate::source::Tracker;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// The default time between two polls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// A running poller. Cloning gives another handle to the same poller; dropping handles does
/// not stop it ([`PollerHandle::stop`] does, and so does dropping the event receiver).
#[derive(Debug, Clone)]
pub struct PollerHandle {
    inner: Arc<Inner>,
    task: tokio::task::AbortHandle,
}

#[derive(Debug, Default)]
struct Inner {
    wake: Notify,
    polls: AtomicU64,
    failures: AtomicU64,
}

impl PollerHandle {
    /// Asks for a fetch now. Any number of pokes while a fetch runs cause at most one more.
    pub fn poke(&self) {
        self.inner.wake.notify_one();
    }

    /// How many times the head was resolved (successfully or not) since start.
    pub fn polls(&self) -> u64 {
        self.inner.polls.load(Ordering::Relaxed)
    }

    /// How many of those polls failed (errors are logged, never sent to the engine).
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Stops the poller task.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Starts polling `tracker` every `interval` on the current tokio runtime, sending
/// [`Event::SourceChanged`] into `events`. The first successful poll always sends one.
pub fn spawn(
    tracker: Arc<Tracker>,
    interval: Duration,
    events: mpsc::Sender<Event>,
) -> PollerHandle {
    let inner = Arc::new(Inner::default());
    let task = tokio::spawn(run(tracker, interval, events, inner.clone()));
    PollerHandle {
        inner,
        task: task.abort_handle(),
    }
}

async fn run(
    tracker: Arc<Tracker>,
    interval: Duration,
    events: mpsc::Sender<Event>,
    inner: Arc<Inner>,
) {
    // `None` until the first successful poll; then the last head seen (itself `None` for an
    // empty repository).
    let mut last: Option<Option<String>> = None;
    let mut last_error: Option<String> = None;
    loop {
        let worker = tracker.clone();
        let result = tokio::task::spawn_blocking(move || worker.resolve_head()).await;
        inner.polls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(Ok(head)) => {
                if last_error.take().is_some() {
                    tracing::info!("the tracked branch resolves again");
                }
                if last.as_ref() != Some(&head) {
                    tracing::info!(head = head.as_deref().unwrap_or("(empty)"), "source head");
                    last = Some(head);
                    if events.send(Event::SourceChanged).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(error)) => {
                inner.failures.fetch_add(1, Ordering::Relaxed);
                // Once per distinct problem, not once per poll.
                let text = error.to_string();
                if last_error.as_deref() == Some(text.as_str()) {
                    tracing::debug!(%error, "cannot resolve the tracked branch");
                } else {
                    tracing::warn!(%error, "cannot resolve the tracked branch");
                    last_error = Some(text);
                }
            }
            Err(error) => {
                inner.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "source poll task failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = inner.wake.notified() => {}
            () = events.closed() => return,
        }
    }
}
