//! `GET /events`: a Server-Sent Events stream that says `changed` whenever what the
//! overview shows may have changed. One watcher per server reads the store's
//! [`store::ActivityMark`] and the engine's live view every interval while at least one page
//! listens, and stops when none does; pages then fetch themselves again.

use super::WebState;
use crate::http::LiveView;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{ActivityMark, Store};
use tokio::sync::watch;

/// How often the watcher looks for changes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// What the watcher compares: the store's mark and the engine's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    store: ActivityMark,
    commit: Option<String>,
    connected: usize,
}

/// The shared change watcher: a counter that goes up on every change, in a watch channel.
pub struct Activity {
    store: Store,
    live: Arc<dyn LiveView>,
    interval: Duration,
    /// The receiver kept for new subscribers while a watcher runs.
    current: Mutex<Option<watch::Receiver<u64>>>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Activity {
    pub fn new(store: Store, live: Arc<dyn LiveView>, interval: Duration) -> Activity {
        Activity {
            store,
            live,
            interval,
            current: Mutex::new(None),
        }
    }

    /// A receiver of change counts, starting the watcher if none runs.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let mut current = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(rx) = current.as_ref()
            && rx.has_changed().is_ok()
        {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(watch_changes(
            tx,
            self.store.clone(),
            Arc::clone(&self.live),
            self.interval,
        ));
        *current = Some(rx.clone());
        rx
    }
}

/// Compares marks every `interval`; bumps the counter on a change; ends when only the
/// receiver kept in [`Activity`] is left.
async fn watch_changes(
    tx: watch::Sender<u64>,
    store: Store,
    live: Arc<dyn LiveView>,
    interval: Duration,
) {
    let mut last: Option<Mark> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tx.receiver_count() <= 1 {
            return;
        }
        let store_mark = match store.activity_mark().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "status page: cannot read the activity mark");
                continue;
            }
        };
        let mark = Mark {
            store: store_mark,
            commit: live.current_commit(),
            connected: live.connected().len(),
        };
        if last.as_ref().is_some_and(|l| *l != mark) {
            tx.send_modify(|n| *n += 1);
        }
        last = Some(mark);
    }
}

/// The stream: one `changed` event (data: the change count) per change seen.
pub async fn stream(
    State(st): State<WebState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = st.activity.subscribe();
    // Changes before this page connected are not news to it.
    rx.borrow_and_update();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let n = *rx.borrow_and_update();
        Some((
            Ok(Event::default()
                .event("changed")
                .data(n.to_string())
                .retry(Duration::from_secs(5))),
            rx,
        ))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
