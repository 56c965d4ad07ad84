//! Starts the service: store, Git tracker and poller, engine, and the HTTPS listener with
//! the API, the agent link and the webhook; stops it all on SIGTERM or Ctrl-C.

use super::Config;
use crate::engine::{CommitSource, Engine, EngineConfig, Event, Live};
use crate::http::{self, ApiState, LiveView};
use crate::link::{self, LinkConfig, LinkState};
use crate::metrics::Metrics;
use crate::source::tracker::{SourceConfig, Tracker};
use crate::{poller, tls, webhook};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::sync::mpsc;

/// Events waiting for the engine before senders wait (agents' frames, source changes).
const EVENT_QUEUE: usize = 16 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("repository: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl CommitSource for Tracker {
    fn head(&self) -> Result<Option<String>, String> {
        self.resolve_head().map_err(|e| e.to_string())
    }

    fn snapshot(&self, commit: &str) -> Result<model::Snapshot, String> {
        self.read_commit(commit).map_err(|e| e.to_string())
    }

    fn resolve_ref(&self, git_ref: &str) -> Result<Option<String>, String> {
        Tracker::resolve_ref(self, git_ref).map_err(|e| e.to_string())
    }
}

impl LiveView for Live {
    fn connected(&self) -> Vec<String> {
        self.get().connected.into_iter().collect()
    }
    fn current_commit(&self) -> Option<String> {
        self.get().commit
    }
    fn queue_depth(&self) -> usize {
        self.get().queue_depth
    }
    fn ready(&self) -> bool {
        self.get().ready
    }
}

/// Runs the service until SIGTERM or Ctrl-C. Prints `listening on https://ADDR` on stdout
/// once it accepts connections (tests and `centossrv up` read it).
pub async fn serve(config: Config) -> Result<(), ServeError> {
    tls::ring_provider();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = match &config.database_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_data_dir(&config.data_dir).await?,
    };
    let tracker = Arc::new(Tracker::new(SourceConfig {
        location: config.repo.clone(),
        branch: config.branch.clone(),
        data_dir: config.data_dir.clone(),
    })?);
    let metrics = Metrics::new();
    let engine = Engine::new(
        store.clone(),
        Arc::clone(&tracker) as Arc<dyn CommitSource>,
        EngineConfig::default(),
    )
    .with_metrics(metrics.clone());
    let live = engine.live();
    let (events, rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    let engine_task = tokio::spawn(engine.run(rx));
    let poller = poller::spawn(tracker, config.poll, events.clone());
    let link_state = LinkState::new(
        store.clone(),
        events.clone(),
        LinkConfig {
            heartbeat: config.heartbeat,
            ..LinkConfig::default()
        },
    )
    .with_metrics(metrics.clone());
    drop(events);
    let mut app = link::router(link_state).merge(http::api::router(ApiState {
        store: store.clone(),
        live: Arc::new(live),
        metrics,
    }));
    if config.webhook_secret.is_some() {
        app = app.merge(webhook::router(
            config.webhook_secret.clone(),
            poller.clone(),
        ));
    }
    let tls_config = tls::server_config(&config.tls_cert, &config.tls_key)?;
    let server = tls::serve(app, config.listen, tls_config)?;
    println!(
        "listening on https://{}  (repository {}, branch {}, database {})",
        server.addr,
        match &config.repo {
            crate::source::tracker::Location::Local(p) => p.display().to_string(),
            crate::source::tracker::Location::Remote { url, .. } =>
                crate::source::tracker::redact_url(url),
        },
        config.branch,
        format!("{:?}", store.backend_kind()).to_lowercase(),
    );
    tracing::info!(addr = %server.addr, "serving");
    shutdown_signal().await;
    tracing::info!("stopping");
    poller.stop();
    if let Err(e) = server.shutdown(Duration::from_secs(5)).await {
        tracing::warn!(error = %e, "the listener did not stop cleanly");
    }
    engine_task.abort();
    let _ = engine_task.await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
}
