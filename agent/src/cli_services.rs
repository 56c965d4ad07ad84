//! The service-related part of the command line: the `--service-backend` choice, the
//! `supervise` daemon command and `services status|events`. Kept apart from `cli.rs` so
//! the general commands and these evolve separately.

use crate::services::{self, Backend};
use crate::supervisor::{self, protocol::Op};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// `--service-backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// systemd when this machine runs it (`/run/systemd/system` exists), else the supervisor.
    #[default]
    Auto,
    Systemd,
    Supervisor,
}

impl BackendChoice {
    pub fn resolve(self) -> Backend {
        match self {
            BackendChoice::Auto => Backend::detect(),
            BackendChoice::Systemd => Backend::Systemd,
            BackendChoice::Supervisor => Backend::Supervisor,
        }
    }
}

/// `centossrv-agent services ...`: what the built-in supervisor knows.
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// The supervisor's status of one service or of all (pid, health, restarts, last exit).
    Status {
        /// A service name (without `.service`).
        name: Option<String>,
    },
    /// The supervisor's event log (started, exited, restarted, stopped, health), oldest first.
    Events {
        /// Only this service's events.
        #[arg(long)]
        service: Option<String>,
        /// Only events with a sequence number above this one.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
}

/// Why a service command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServicesCliError {
    #[error(transparent)]
    Daemon(#[from] supervisor::daemon::DaemonError),
    #[error(transparent)]
    Client(#[from] supervisor::protocol::ClientError),
    #[error("cannot read the event log {path}: {source}")]
    Events {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The service manager for a command line's choice.
pub fn manager(
    choice: BackendChoice,
    root: &Path,
    state_dir: &Path,
) -> std::sync::Arc<dyn services::ServiceManager> {
    services::manager(choice.resolve(), root, state_dir)
}

/// `supervise`: runs the daemon until SIGTERM.
pub fn supervise(root: &Path, state_dir: &Path) -> Result<(), ServicesCliError> {
    supervisor::daemon::run(root, state_dir)?;
    Ok(())
}

/// Output of `services status`.
#[derive(Debug, Serialize)]
pub struct StatusOutput {
    pub services: Vec<supervisor::protocol::ServiceStatus>,
}

/// `services status|events`: the text or JSON to print.
pub fn run(
    command: &ServicesCommand,
    state_dir: &Path,
    json: bool,
) -> Result<String, ServicesCliError> {
    match command {
        ServicesCommand::Status { name } => {
            let response = supervisor::protocol::call(
                state_dir,
                Op::Status {
                    service: name.clone(),
                },
                Duration::from_secs(10),
            )?;
            if json {
                return Ok(to_json(&StatusOutput {
                    services: response.services,
                }));
            }
            let mut out = String::new();
            if response.services.is_empty() {
                out.push_str("no services\n");
            }
            for s in &response.services {
                out.push_str(&format!(
                    "{}: {}{}{}, {} restarts{}\n",
                    s.service,
                    if s.active { "active" } else { "inactive" },
                    s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                    s.health
                        .map(|h| format!(
                            ", {}",
                            serde_json::to_value(h)
                                .unwrap_or_default()
                                .as_str()
                                .unwrap_or("")
                        ))
                        .unwrap_or_default(),
                    s.restarts,
                    s.last_exit
                        .as_deref()
                        .map(|e| format!(", last exit: {e}"))
                        .unwrap_or_default()
                ));
            }
            Ok(out)
        }
        ServicesCommand::Events { service, since } => {
            let path = supervisor::events::log_path(state_dir);
            let events: Vec<_> = supervisor::events::read(&path)
                .map_err(|source| ServicesCliError::Events { path, source })?
                .into_iter()
                .filter(|e| e.seq > *since)
                .filter(|e| service.as_ref().is_none_or(|s| *s == e.service))
                .collect();
            if json {
                return Ok(to_json(&events));
            }
            let mut out = String::new();
            for e in &events {
                out.push_str(&format!(
                    "{:>6} {} {} {}{}{}{}\n",
                    e.seq,
                    e.time,
                    e.service,
                    serde_json::to_value(e.event)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or(""),
                    e.pid.map(|p| format!(" pid {p}")).unwrap_or_default(),
                    e.status
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    e.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
            Ok(out)
        }
    }
}

fn to_json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}
