//! `centossrv-agent run`: the agent as a daemon linked to the reconciler. Parses the
//! arguments into a [`crate::link::LinkConfig`], installs SIGTERM/SIGINT handlers that set
//! the shutdown flag, and runs [`crate::link::run`] until one arrives.

use crate::host::RealHost;
use crate::link::{self, LinkConfig, LinkError, endpoint};
use crate::watch::WatchOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Arguments of `centossrv-agent run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The reconciler: wss://HOST[:PORT] (https:// is the same).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// This node's name in the inventory.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// One-time enrollment token (used only when the state directory has no credential yet).
    /// Prefer --enroll-file or the environment: a command line is visible to other users.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CENTOSSRV_ENROLL_TOKEN",
        hide_env_values = true,
        conflicts_with = "enroll_file"
    )]
    pub enroll: Option<String>,
    /// A file holding the one-time enrollment token.
    #[arg(long, value_name = "FILE")]
    pub enroll_file: Option<PathBuf>,
    /// A PEM bundle of the CA certificates to trust (the only trust root); default: the
    /// webpki roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Revert drift as soon as it is seen (the drift watch enforces).
    #[arg(long)]
    pub enforce: bool,
    /// Accept ws:// (no TLS). For debugging only: the credential travels in clear.
    #[arg(long)]
    pub allow_plaintext: bool,
    /// While the reconciler is unreachable (and without --enforce), re-apply the cached
    /// desired state this often.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub offline_interval: Duration,
    /// The drift watch's quiet time after a file event.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// How often the drift watch re-observes what has no file events.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub watch_interval: Duration,
    /// Generations to keep.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be more than zero"));
    }
    Ok(d)
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    #[error("cannot read the enrollment token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the enrollment token is empty")]
    EmptyToken,
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// Builds the link configuration from the arguments.
pub fn config(args: &RunArgs, state_dir: &Path) -> Result<LinkConfig, DaemonError> {
    let server = endpoint::Endpoint::parse(&args.server, args.allow_plaintext)?;
    let tls = endpoint::client_config(args.ca.as_deref())?;
    let token = match (&args.enroll, &args.enroll_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| DaemonError::TokenFile {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        return Err(DaemonError::EmptyToken);
    }
    Ok(LinkConfig {
        server,
        node: args.node.clone(),
        enroll_token: token,
        tls,
        state_dir: state_dir.to_path_buf(),
        enforce: args.enforce,
        offline_interval: args.offline_interval,
        watch: WatchOptions {
            debounce: args.debounce,
            interval: args.watch_interval,
            ..WatchOptions::default()
        },
        keep: usize::try_from(args.keep).unwrap_or(usize::MAX),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: &RunArgs, host: RealHost, state_dir: &Path) -> Result<(), DaemonError> {
    let config = config(args, state_dir)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone()).map_err(DaemonError::Signals)?;
    }
    link::run(config, Arc::new(host), &shutdown)?;
    Ok(())
}
