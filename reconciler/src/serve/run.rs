//! Starts the service: store, Git tracker and poller, engine, and the HTTPS listener with
//! the API, the agent link and the webhook; stops it all on SIGTERM or Ctrl-C.

use super::Config;
use crate::engine::{CommitSource, Engine, EngineConfig, Event, Live};
use crate::forge::webhook::ForgeHookConfig;
use crate::forge::{self, Forge, ForgeEvent, ForgeKind};
use crate::http::{ApiState, Control, LiveView};
use crate::link::{self, LinkConfig, LinkState};
use crate::metrics::Metrics;
use crate::pr::{PrConfig, PrService};
use crate::serve::forge_config::{ForgeAuth, ForgeSettings};
use crate::source::tracker::{SourceConfig, Tracker};
use crate::{poller, tls, web, webhook};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::sync::mpsc;

/// Events waiting for the engine before senders wait (agents' frames, source changes).
const EVENT_QUEUE: usize = 16 * 1024;
/// Forge webhook events waiting for the pull request service (a full queue answers 503 and
/// the forge redelivers).
const FORGE_QUEUE: usize = 1024;
/// How long, at shutdown, the audit forwarder may take to send what is left.
const AUDIT_FORWARD_GRACE: Duration = Duration::from_secs(3);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("repository: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("forge: {0}")]
    Forge(#[from] crate::forge::ForgeError),
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
    // Started before anything of this process can append, at the log's current head.
    let audit_forwarder = match &config.audit_syslog {
        Some(settings) => Some(
            crate::audit_syslog::Forwarder::resume(store.clone(), settings.clone())
                .await?
                .spawn(),
        ),
        None => None,
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
    let poller = poller::spawn(Arc::clone(&tracker), config.poll, events.clone());
    let link_state = LinkState::new(
        store.clone(),
        events.clone(),
        LinkConfig {
            heartbeat: config.heartbeat,
            ..LinkConfig::default()
        },
    )
    .with_metrics(metrics.clone());
    let control = Control {
        events: events.clone(),
        poller: Some(poller.clone()),
    };
    drop(events);
    let mut forge_task = None;
    let mut forge_hooks = None;
    if let Some(settings) = &config.forge {
        let forge = connect_forge(settings)?;
        let (tx, rx) = mpsc::channel::<ForgeEvent>(FORGE_QUEUE);
        let service = PrService::new(
            forge,
            Arc::clone(&tracker) as Arc<dyn CommitSource>,
            store.clone(),
            live.clone(),
            PrConfig {
                branch: config.branch.clone(),
                link: settings.status_page_url.clone(),
                coalesce: settings.coalesce,
                ..PrConfig::default()
            },
        )
        .with_poller(poller.clone());
        forge_task = Some(tokio::spawn(service.run(rx)));
        let hooks = match settings.kind {
            ForgeKind::Github => ForgeHookConfig {
                github_secret: Some(settings.webhook_secret.clone()),
                gitlab_secret: None,
            },
            ForgeKind::Gitlab => ForgeHookConfig {
                github_secret: None,
                gitlab_secret: Some(settings.webhook_secret.clone()),
            },
        };
        forge_hooks = Some(forge::webhook::router(hooks, tx, store.clone()));
    }
    let live: Arc<dyn LiveView> = Arc::new(live);
    let web_state = web::WebState::new(store.clone(), Arc::clone(&live))
        .with_pr_plans(Arc::new(web::StoredPrPlans::new(store.clone())))
        .with_repository(tracker.repo_path().to_owned());
    let mut hooks: Vec<axum::Router> = forge_hooks.into_iter().collect();
    if config.webhook_secret.is_some() {
        hooks.push(webhook::router(
            config.webhook_secret.clone(),
            poller.clone(),
        ));
    }
    let auth = crate::auth::Auth::new(store.clone(), config.auth.clone());
    if config.auth.anonymous_read {
        tracing::warn!("anonymous read is on: the status page and API reads need no sign-in");
    }
    let app = super::app::router(super::app::Parts {
        api: ApiState {
            store: store.clone(),
            live: Arc::clone(&live),
            metrics,
            auth: None,
            control: Some(control),
        },
        web: web_state,
        auth,
        link: Some(link::router(link_state)),
        hooks,
    });
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
    if let Some(task) = forge_task {
        task.abort();
        let _ = task.await;
    }
    engine_task.abort();
    let _ = engine_task.await;
    if let Some(forwarder) = audit_forwarder {
        forwarder.stop(AUDIT_FORWARD_GRACE).await;
    }
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

/// The configured forge's client.
fn connect_forge(settings: &ForgeSettings) -> Result<Arc<dyn Forge>, forge::ForgeError> {
    match settings.kind {
        ForgeKind::Gitlab => {
            let ForgeAuth::Token(token) = &settings.auth else {
                return Err(forge::ForgeError::Auth(
                    "GitLab takes a project access token".into(),
                ));
            };
            let mut config = forge::gitlab::GitLabConfig::new(&settings.repository, token.clone());
            config.api_url = settings.url.clone();
            Ok(Arc::new(forge::gitlab::GitLab::new(config)?))
        }
        ForgeKind::Github => {
            use forge::github::{GitHub, GitHubAuth, GitHubConfig};
            let (owner, repo) = settings
                .repository
                .split_once('/')
                .unwrap_or((settings.repository.as_str(), ""));
            let auth = match &settings.auth {
                ForgeAuth::Token(token) => GitHubAuth::Token(token.clone()),
                ForgeAuth::GitHubApp {
                    app_id,
                    private_key,
                    installation_id,
                } => GitHubAuth::App {
                    app_id: *app_id,
                    private_key_pem: private_key.clone(),
                    installation_id: *installation_id,
                },
            };
            let mut config = GitHubConfig::new(owner, repo, auth);
            config.api_url = settings.url.clone();
            Ok(Arc::new(GitHub::new(config)?))
        }
    }
}
