//! The agent's link to the reconciler (`centossrv-agent run`), usable as a library: enroll
//! once, then hold one WebSocket session (`state::wire`), reconnecting with exponential
//! backoff and jitter (100 ms doubling to 30 s) whenever it breaks. Between sessions the
//! agent keeps enforcing the cached desired state and queues its reports on disk.
//!
//! `endpoint.rs` the URL, TLS and connection; `enroll.rs` the HTTPS enrollment; `cache.rs`
//! the state-directory files; `enforcer.rs` the drift watch on a thread; `session.rs` one
//! connected session. [`run`] ties them together; many can run in one process (a load
//! generator), each with its own host, state directory and shutdown flag.

pub mod cache;
pub mod endpoint;
pub mod enforcer;
pub mod enroll;
pub mod session;

use crate::apply::{self, ApplyOptions};
use crate::generations::Store;
use crate::host::RealHost;
use crate::watch::WatchOptions;
use cache::{Cache, CacheError, CachedDesired};
use endpoint::Endpoint;
use enforcer::{Enforcer, Note};
use enroll::EnrollError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How one agent links to the reconciler.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub server: Endpoint,
    pub node: String,
    /// The one-time enrollment token, used only when there is no credential yet.
    pub enroll_token: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
    /// Credential, cached desired state, queued reports and generations.
    pub state_dir: PathBuf,
    /// Revert drift as soon as the watch sees it (otherwise drift is reported, and while
    /// offline the cached desired state is re-applied every `offline_interval`).
    pub enforce: bool,
    /// While offline and not enforcing: how often the cached desired state is re-applied.
    pub offline_interval: Duration,
    /// The drift watch's debounce and timer.
    pub watch: WatchOptions,
    /// Generations to keep.
    pub keep: usize,
    /// Reported in `Hello`.
    pub agent_version: String,
}

/// Why the link could not start (everything after enrollment is retried).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("node name `{0}` is not valid: 1-253 characters of letters, digits, `.`, `_`, `-`")]
    NodeName(String),
    #[error(
        "this node has no credential in {dir} and no enrollment token was given (--enroll or --enroll-file)"
    )]
    NoCredential { dir: PathBuf },
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the reconciler refused the credential (HTTP {status}); re-enroll the node")]
    Refused { status: u16 },
}

/// Writes one line to stderr with a timestamp (the daemon's log; never secrets).
pub fn log(node: &str, message: &str) {
    eprintln!(
        "{} {node}: {message}",
        crate::time::rfc3339(std::time::SystemTime::now())
    );
}

/// The state shared by the sessions of one [`run`].
#[derive(Debug)]
pub struct Agent {
    pub config: LinkConfig,
    pub host: Arc<RealHost>,
    pub store: Store,
    pub cache: Cache,
    pub cached: Option<CachedDesired>,
    pub enforcer: Option<Enforcer>,
    /// When the cached desired state was last re-applied while offline.
    last_offline_apply: Option<Instant>,
}

impl Agent {
    /// (Re)starts the watch on the cached desired state.
    pub fn restart_watch(&mut self) {
        if let Some(e) = self.enforcer.take() {
            self.absorb(e.stop(), false);
        }
        let Some(cached) = &self.cached else {
            return;
        };
        let options = WatchOptions {
            enforce: self.config.enforce,
            keep: self.config.keep,
            ..self.config.watch.clone()
        };
        match Enforcer::start(
            self.host.clone(),
            self.store.clone(),
            cached.desired.clone(),
            options,
        ) {
            Ok(e) => self.enforcer = Some(e),
            Err(e) => log(&self.config.node, &format!("cannot watch for drift: {e}")),
        }
    }

    /// Stops the watch (it must not enforce while the reconciler's apply runs).
    pub fn stop_watch(&mut self) -> Vec<Note> {
        self.enforcer.take().map(Enforcer::stop).unwrap_or_default()
    }

    /// Offline: queues enforcement reports, logs errors, drops drift events (the reports
    /// say what was reverted). Online the session forwards them instead.
    fn absorb(&self, notes: Vec<Note>, _online: bool) {
        for note in notes {
            match note {
                Note::Report(report) => self.queue(&report),
                Note::Error(e) => log(&self.config.node, &e),
                Note::Drift(_) => {}
            }
        }
    }

    fn queue(&self, report: &state::ApplyReport) {
        if let Err(e) = self.cache.enqueue(report) {
            log(&self.config.node, &format!("cannot queue a report: {e}"));
        }
    }

    /// One step of offline work: the watch's notes, and the periodic re-apply when not
    /// enforcing through the watch.
    fn offline_tick(&mut self) {
        let notes = self
            .enforcer
            .as_ref()
            .map(Enforcer::drain)
            .unwrap_or_default();
        self.absorb(notes, false);
        if self.config.enforce {
            return;
        }
        let Some(cached) = &self.cached else {
            return;
        };
        if self
            .last_offline_apply
            .is_some_and(|t| t.elapsed() < self.config.offline_interval)
        {
            return;
        }
        self.last_offline_apply = Some(Instant::now());
        let options = ApplyOptions {
            expect_digest: None,
            keep: self.config.keep,
        };
        match apply::apply(&*self.host, &self.store, &cached.desired, &options) {
            Ok(report) if report.totals.changed > 0 || report.totals.failed > 0 => {
                log(
                    &self.config.node,
                    &format!(
                        "offline: re-applied the cached desired state: {} changed, {} failed",
                        report.totals.changed, report.totals.failed
                    ),
                );
                self.queue(&report);
            }
            Ok(_) => {}
            Err(e) => log(
                &self.config.node,
                &format!("offline: cannot apply the cached desired state: {e}"),
            ),
        }
    }
}

/// Sleeps up to `d`, waking early on shutdown; `tick` runs about every 100 ms meanwhile.
fn wait(d: Duration, shutdown: &AtomicBool, tick: &mut dyn FnMut()) {
    let end = Instant::now() + d;
    loop {
        tick();
        let now = Instant::now();
        if shutdown.load(Ordering::SeqCst) || now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// A delay between `d/2` and `d`, the jitter from the clock's nanoseconds (no need for a
/// good random source: it only spreads reconnecting agents apart).
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let half = d / 2;
    half + Duration::from_nanos(
        (u64::try_from(half.as_nanos()).unwrap_or(u64::MAX)).saturating_mul(mixed) >> 32,
    )
}

/// Runs the link until `shutdown` is set: enrollment if needed, then sessions with
/// reconnects. Returns an error only for what retrying cannot fix.
pub fn run(
    config: LinkConfig,
    host: Arc<RealHost>,
    shutdown: &AtomicBool,
) -> Result<(), LinkError> {
    if !state::wire::valid_node_name(&config.node) {
        return Err(LinkError::NodeName(config.node.clone()));
    }
    let cache = Cache::new(config.state_dir.clone());
    let cached = cache.desired()?;
    let mut agent = Agent {
        store: Store::new(config.state_dir.clone()),
        cache,
        cached,
        enforcer: None,
        last_offline_apply: None,
        host,
        config,
    };
    if let Some(c) = &agent.cached {
        log(
            &agent.config.node,
            &format!(
                "enforcing the cached desired state (commit {})",
                c.commit.as_deref().unwrap_or("unknown")
            ),
        );
    }
    agent.restart_watch();
    let mut backoff = BACKOFF_MIN;
    let credential = loop {
        if let Some(c) = agent.cache.credential()? {
            break c;
        }
        let Some(token) = &agent.config.enroll_token else {
            return Err(LinkError::NoCredential {
                dir: agent.config.state_dir.clone(),
            });
        };
        match enroll::enroll(
            &agent.config.server,
            &agent.config.tls,
            &agent.config.node,
            token,
        ) {
            Ok(c) => {
                agent.cache.store_credential(&c)?;
                log(&agent.config.node, "enrolled; credential stored");
                break c;
            }
            Err(e) if e.is_transient() => {
                log(&agent.config.node, &format!("{e}; retrying"));
                wait(jittered(backoff), shutdown, &mut || agent.offline_tick());
                backoff = (backoff * 2).min(BACKOFF_MAX);
                if shutdown.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    backoff = BACKOFF_MIN;
    while !shutdown.load(Ordering::SeqCst) {
        match session::run(&mut agent, &credential, shutdown) {
            Ok(session::End::Shutdown) => break,
            Ok(session::End::Disconnected { welcomed, reason }) => {
                if welcomed {
                    backoff = BACKOFF_MIN;
                }
                log(&agent.config.node, &format!("disconnected: {reason}"));
            }
            Err(session::SessionError::Refused { status }) => {
                // Not retried quickly, but retried: the cached desired state stays enforced
                // until an operator re-enrolls or stops the node.
                log(
                    &agent.config.node,
                    &LinkError::Refused { status }.to_string(),
                );
                backoff = BACKOFF_MAX;
            }
            Err(e) => log(&agent.config.node, &e.to_string()),
        }
        let delay = jittered(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        wait(delay, shutdown, &mut || agent.offline_tick());
    }
    agent.stop_watch();
    log(&agent.config.node, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full() {
        for ms in [100u64, 1600, 30_000] {
            let d = Duration::from_millis(ms);
            for _ in 0..100 {
                let j = jittered(d);
                assert!(j >= d / 2 && j <= d, "{j:?} for {d:?}");
            }
        }
    }
}
