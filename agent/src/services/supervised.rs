//! The built-in supervisor backend: start, stop, restart, reload and status over the daemon's
//! control socket; enabling creates and removes the links `systemctl enable` would, so the
//! daemon (and systemd, should the host get it) starts the service at boot.

use super::resource::{ensure_dir, parent};
use super::{Backend, ServiceManager};
use crate::host::{EntryKind, Host, HostError};
use crate::supervisor::protocol::{self, Op, ServiceStatus};
use crate::unit;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the agent waits for the supervisor to start, stop or restart a service.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(120);

/// The built-in supervisor, through its control socket.
#[derive(Debug, Clone)]
pub struct SupervisorManager {
    state_dir: PathBuf,
}

impl SupervisorManager {
    pub fn new(state_dir: &Path) -> SupervisorManager {
        SupervisorManager {
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn call(&self, op: Op, timeout: Duration) -> Result<Option<ServiceStatus>, String> {
        protocol::call(&self.state_dir, op, timeout)
            .map(|r| r.services.into_iter().next())
            .map_err(|e| e.to_string())
    }
}

impl ServiceManager for SupervisorManager {
    fn backend(&self) -> Backend {
        Backend::Supervisor
    }

    fn is_enabled(&self, host: &dyn Host, name: &str) -> Result<bool, String> {
        let Some((_, text)) = crate::supervisor::config::find_unit(host, name)? else {
            return Ok(false);
        };
        let parsed = unit::Unit::parse(name, &text).map_err(|e| e.to_string())?;
        for link in unit::enable_links(name, &parsed.install_targets()) {
            if host
                .stat(&link)
                .map_err(|e| e.to_string())?
                .is_some_and(|m| m.kind == EntryKind::Symlink)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn set_enabled(&self, host: &dyn Host, name: &str, enabled: bool) -> Result<(), String> {
        let e = |e: HostError| e.to_string();
        if !enabled {
            // Like `systemctl disable`: every link to the unit in a .wants/.requires dir.
            let Some(dirs) = host.list_dir(unit::UNIT_DIR).map_err(e)? else {
                return Ok(());
            };
            for d in dirs
                .iter()
                .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
            {
                let link = format!("{}/{d}/{name}.service", unit::UNIT_DIR);
                if host
                    .stat(&link)
                    .map_err(e)?
                    .is_some_and(|m| m.kind == EntryKind::Symlink)
                {
                    host.remove_file(&link).map_err(e)?;
                }
            }
            return Ok(());
        }
        let Some((path, text)) = crate::supervisor::config::find_unit(host, name)? else {
            return Err(format!("cannot enable {name}: it has no unit file"));
        };
        let parsed = unit::Unit::parse(&path, &text).map_err(|e| e.to_string())?;
        let targets = parsed.install_targets();
        if targets.is_empty() {
            return Err(format!(
                "cannot enable {name}: {path} has no [Install] WantedBy= or RequiredBy="
            ));
        }
        for link in unit::enable_links(name, &targets) {
            let dir = parent(&link);
            ensure_dir(host, dir)?;
            host.symlink_atomic(&link, &path).map_err(e)?;
        }
        Ok(())
    }

    fn is_running(&self, name: &str) -> Result<bool, String> {
        let status = self.call(
            Op::Status {
                service: Some(name.to_owned()),
            },
            Duration::from_secs(10),
        )?;
        Ok(status.is_some_and(|s| s.active))
    }

    fn start(&self, name: &str) -> Result<(), String> {
        self.call(
            Op::Start {
                service: name.to_owned(),
            },
            SUPERVISOR_TIMEOUT,
        )
        .map(drop)
    }

    fn stop(&self, name: &str) -> Result<(), String> {
        self.call(
            Op::Stop {
                service: name.to_owned(),
            },
            SUPERVISOR_TIMEOUT,
        )
        .map(drop)
    }

    fn restart(&self, name: &str) -> Result<(), String> {
        self.call(
            Op::Restart {
                service: name.to_owned(),
            },
            SUPERVISOR_TIMEOUT,
        )
        .map(drop)
    }

    fn reload(&self, name: &str) -> Result<(), String> {
        self.call(
            Op::Reload {
                service: name.to_owned(),
            },
            SUPERVISOR_TIMEOUT,
        )
        .map(drop)
    }

    fn reload_units(&self) -> Result<(), String> {
        // The supervisor reads the unit at every start.
        Ok(())
    }

    fn status(&self, name: &str) -> Result<Option<ServiceStatus>, String> {
        self.call(
            Op::Status {
                service: Some(name.to_owned()),
            },
            Duration::from_secs(10),
        )
    }
}
