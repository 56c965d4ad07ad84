//! Services: the [`ServiceManager`] boundary with its two backends, and how a service
//! resource is observed and applied through it.
//!
//! A service is its unit file (`/etc/systemd/system/NAME.service`, written atomically like
//! any managed file), the agent's drop-in (`NAME.service.d/50-centossrv.conf`: restart
//! policy, environment, health check), whether it is enabled (the links `[Install]` asks
//! for) and whether it runs. Both backends read the same files:
//!
//! - [`SystemdManager`]: `systemctl` (`--root DIR` for enable/disable under a sandbox root;
//!   starting, stopping and reloading needs the host's running systemd, so under a sandbox
//!   root nothing runs and a start, restart or reload fails with a reason).
//! - [`SupervisorManager`]: the built-in supervisor daemon (`centossrv-agent supervise`),
//!   over its unix socket; enabling creates the same links `systemctl enable` would.

//!
//! `systemd.rs` and `supervised.rs` are the backends; `resource.rs` observes and applies a
//! service resource (and restores one on rollback) through whichever is configured.

mod resource;
mod supervised;
mod systemd;

pub use resource::{
    UNIT_DIR_MODE, UNIT_FILE_MODE, apply, ensure_dir, is_service_path, observe, observe_managed,
    paths_of, probe_until_verdict, restore_after_paths, runtime_state, stop_for_rollback,
};
pub use supervised::SupervisorManager;
pub use systemd::SystemdManager;

use crate::host::Host;
use crate::supervisor::protocol::ServiceStatus;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Which service manager runs a host's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Systemd,
    Supervisor,
}

impl Backend {
    /// `auto`: systemd when this machine runs it (`/run/systemd/system` exists, on the real
    /// host whatever the root), the built-in supervisor otherwise.
    pub fn detect() -> Backend {
        if Path::new("/run/systemd/system").is_dir() {
            Backend::Systemd
        } else {
            Backend::Supervisor
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Systemd => "systemd",
            Backend::Supervisor => "supervisor",
        }
    }
}

/// Starts, stops and enables services. Errors are reasons for the apply report.
pub trait ServiceManager: fmt::Debug + Send + Sync {
    fn backend(&self) -> Backend;
    /// Whether the service starts at boot.
    fn is_enabled(&self, host: &dyn Host, name: &str) -> Result<bool, String>;
    fn set_enabled(&self, host: &dyn Host, name: &str, enabled: bool) -> Result<(), String>;
    /// Whether the service is running (or being kept running, between restarts).
    fn is_running(&self, name: &str) -> Result<bool, String>;
    fn start(&self, name: &str) -> Result<(), String>;
    fn stop(&self, name: &str) -> Result<(), String>;
    fn restart(&self, name: &str) -> Result<(), String>;
    /// Asks a running service to reload its configuration without restarting it: the
    /// unit's `ExecReload=` when it has one, SIGHUP to the main process otherwise. An error
    /// when it does not run.
    fn reload(&self, name: &str) -> Result<(), String>;
    /// Unit files changed on disk (systemd: `daemon-reload`).
    fn reload_units(&self) -> Result<(), String>;
    /// The status of a service, when this backend runs health checks itself.
    fn status(&self, name: &str) -> Result<Option<ServiceStatus>, String>;
}

/// The manager for `backend` under `root`, with the supervisor's socket in `state_dir`.
pub fn manager(backend: Backend, root: &Path, state_dir: &Path) -> Arc<dyn ServiceManager> {
    match backend {
        Backend::Systemd => Arc::new(SystemdManager::new("systemctl", root)),
        Backend::Supervisor => Arc::new(SupervisorManager::new(state_dir)),
    }
}
