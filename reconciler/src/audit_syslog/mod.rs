//! Audit forwarding to syslog (`centossrv serve --audit-syslog URL`), level-triggered: a task
//! tails the store's audit log by sequence number, so entries appended by any writer (the
//! engine, the link, `centossrv enroll-token create` in another process) are forwarded once
//! each, in order. Its cursor moves past an entry only once the entry was sent, so while the
//! destination is unreachable entries wait in the log and go out, in order, on
//! reconnection. `serve` keeps the cursor in the store per destination ([`Forwarder::resume`]):
//! a restarted reconciler goes on where it stopped, so entries appended while it was down go
//! out too (at least once: a crash between a send and the cursor's save sends those again,
//! with the same `seq` and hash). A destination used for the first time starts at the head
//! (docs/audit.md).

pub mod message;
pub mod settings;
pub mod transport;

pub use settings::{Destination, Facility, SyslogSettings};

use std::time::Duration;
use store::{Store, StoreError};
use tokio::sync::watch;
use transport::Connection;

/// How often the log is read when there was nothing new.
pub const POLL: Duration = Duration::from_millis(500);
/// Entries read per query.
const BATCH: u32 = 200;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why a forwarding pass stopped early (it is retried after a backoff).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot read the audit log: {0}")]
    Store(#[from] StoreError),
    #[error("cannot connect to {destination}: {source}")]
    Connect {
        destination: String,
        source: std::io::Error,
    },
    #[error("cannot send audit entry {seq} to {destination}: {source}")]
    Send {
        seq: i64,
        destination: String,
        source: std::io::Error,
    },
}

/// Tails the audit log and forwards each entry.
#[derive(Debug)]
pub struct Forwarder {
    store: Store,
    settings: SyslogSettings,
    /// The last entry sent (or skipped at start).
    cursor: i64,
    hostname: String,
    procid: u32,
    connection: Option<Connection>,
    /// The store key under which the cursor is kept, when it is ([`Forwarder::resume`]).
    persist: Option<String>,
}

impl Forwarder {
    /// A forwarder that starts after the log's current newest entry.
    pub async fn at_head(store: Store, settings: SyslogSettings) -> Result<Forwarder, StoreError> {
        let newest = store.audit_list_newest(None, 1).await?;
        let head = newest.items.first().map_or(0, |e| e.seq);
        Ok(Forwarder::after(store, settings, head))
    }

    /// A forwarder that starts after entry `seq` (0: from the first entry).
    pub fn after(store: Store, settings: SyslogSettings, seq: i64) -> Forwarder {
        Forwarder {
            store,
            settings,
            cursor: seq,
            hostname: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            procid: std::process::id(),
            connection: None,
            persist: None,
        }
    }

    /// The forwarder `serve` runs: after the last entry sent to this destination (kept in
    /// the store), or after the log's current head if nothing was ever sent there.
    pub async fn resume(store: Store, settings: SyslogSettings) -> Result<Forwarder, StoreError> {
        let key = format!("syslog {}", settings.destination);
        let seq = match store.forward_cursor(&key).await? {
            Some(seq) => seq,
            None => {
                let newest = store.audit_list_newest(None, 1).await?;
                let head = newest.items.first().map_or(0, |e| e.seq);
                store.set_forward_cursor(&key, head).await?;
                head
            }
        };
        let mut forwarder = Forwarder::after(store, settings, seq);
        forwarder.persist = Some(key);
        Ok(forwarder)
    }

    /// Saves the cursor (when it is kept); a failure is logged: the entries would only be
    /// sent again after a restart.
    async fn save_cursor(&self, saved: &mut i64) {
        if let Some(key) = &self.persist
            && self.cursor != *saved
        {
            match self.store.set_forward_cursor(key, self.cursor).await {
                Ok(()) => *saved = self.cursor,
                Err(e) => tracing::warn!(error = %e, "cannot save the audit forwarding cursor"),
            }
        }
    }

    /// The last entry forwarded.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Starts the forwarding task; [`ForwarderTask::stop`] ends it.
    pub fn spawn(self) -> ForwarderTask {
        let (stop, stopped) = watch::channel(false);
        ForwarderTask {
            stop,
            task: tokio::spawn(self.run(stopped)),
        }
    }

    /// Forwards until `stop` turns true (or its sender is gone); then makes one last pass, so
    /// entries appended while the service stopped go out too.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            destination = %self.settings.destination,
            facility = self.settings.facility.name(),
            after = self.cursor,
            "forwarding the audit log to syslog"
        );
        let mut backoff = BACKOFF_MIN;
        loop {
            let stopping = *stop.borrow_and_update();
            let wait = match self.forward_pending().await {
                Ok(()) => {
                    backoff = BACKOFF_MIN;
                    POLL
                }
                Err(e) => {
                    self.connection = None;
                    tracing::warn!(error = %e, retry_in = ?backoff, "audit forwarding paused");
                    let wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    wait
                }
            };
            if stopping {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The handle is gone: one last pass, then stop.
                        let _ = self.forward_pending().await;
                        return;
                    }
                }
            }
        }
    }

    /// Sends every entry after the cursor, in order; the cursor advances past each one sent.
    pub async fn forward_pending(&mut self) -> Result<(), ForwardError> {
        let mut saved = self.cursor;
        let result = self.forward_pages(&mut saved).await;
        self.save_cursor(&mut saved).await;
        result
    }

    async fn forward_pages(&mut self, saved: &mut i64) -> Result<(), ForwardError> {
        loop {
            self.save_cursor(saved).await;
            let page = self.store.audit_list(Some(self.cursor), BATCH).await?;
            for entry in &page.items {
                let text =
                    message::format(entry, self.settings.facility, &self.hostname, self.procid);
                let mut connection = match self.connection.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => Connection::open(&self.settings.destination)
                        .await
                        .map_err(|source| ForwardError::Connect {
                            destination: self.settings.destination.to_string(),
                            source,
                        })?,
                };
                connection
                    .send(&text)
                    .await
                    .map_err(|source| ForwardError::Send {
                        seq: entry.seq,
                        destination: self.settings.destination.to_string(),
                        source,
                    })?;
                self.connection = Some(connection);
                self.cursor = entry.seq;
            }
            if page.next.is_none() {
                return Ok(());
            }
        }
    }
}

/// The running forwarder.
#[derive(Debug)]
pub struct ForwarderTask {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ForwarderTask {
    /// Asks the forwarder to make its last pass and waits up to `grace` for it.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!("audit forwarding did not finish in time; stopped");
            task.abort();
            let _ = task.await;
        }
    }
}
