//! A service resource: the paths an apply touches, observing it (unit digest, the agent's
//! drop-in, enabled, running), applying it (files, daemon-reload, enable,
//! start/stop/restart/reload, the first health verdict) and restoring it on rollback, through the host's
//! [`ServiceManager`].

use super::ServiceManager;
use crate::host::{EntryKind, FileAttrs, Host, HostError};
use crate::supervisor::protocol::Health;
use crate::unit::{self, Managed};
use state::digest::sha256;
use state::plan::MAX_DIFF_BYTES;
use state::{NotifyAction, ServiceSpec, ServiceState, Spec, UnitFile};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mode of unit files and drop-ins the agent writes.
pub const UNIT_FILE_MODE: u32 = 0o644;
/// Mode of the directories the agent creates for them.
pub const UNIT_DIR_MODE: u32 = 0o755;

pub(super) fn parent(path: &str) -> &str {
    path.rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p })
}

/// Creates `dir` and its missing parents below an existing one (mode 0755): the
/// directories systemd's files live in.
pub fn ensure_dir(host: &dyn Host, dir: &str) -> Result<(), String> {
    let e = |e: HostError| e.to_string();
    match host.stat(dir).map_err(e)? {
        Some(m) if m.kind == EntryKind::Directory => return Ok(()),
        Some(_) => return Err(format!("{dir} is in the way: not a directory")),
        None => {}
    }
    let up = parent(dir);
    if up == "/" || up == "/etc" {
        if host.stat(up).map_err(e)?.is_none() {
            return Err(format!("the parent directory {up} does not exist"));
        }
    } else {
        ensure_dir(host, up)?;
    }
    host.create_dir(dir, UNIT_DIR_MODE).map_err(e)
}

/// The host paths an apply of `spec` may touch (recorded in the generation first): the
/// directories it may create, the unit file, the drop-in, and the enable links of the
/// desired unit's (or the installed unit's) `[Install]` section with their directories.
pub fn paths_of(host: &dyn Host, spec: &ServiceSpec) -> Vec<String> {
    let name = &spec.name;
    let mut paths = vec![
        "/etc/systemd".to_owned(),
        unit::UNIT_DIR.to_owned(),
        unit::drop_in_dir(name),
        unit::drop_in_path(name),
    ];
    if spec.unit.is_some() {
        paths.push(unit::unit_path(name));
    }
    let text = match &spec.unit {
        Some(u) => Some(u.content.to_string()),
        None => crate::supervisor::config::find_unit(host, name)
            .ok()
            .flatten()
            .map(|(_, t)| t),
    };
    if let Some(parsed) = text.and_then(|t| unit::Unit::parse(name, &t).ok()) {
        for link in unit::enable_links(name, &parsed.install_targets()) {
            paths.push(parent(&link).to_owned());
            paths.push(link);
        }
    }
    paths
}

fn manager_of(host: &dyn Host) -> Result<&dyn ServiceManager, String> {
    host.service_manager()
        .ok_or_else(|| "no service backend is configured for this host".to_owned())
}

fn read_optional(host: &dyn Host, path: &str) -> Result<Option<Vec<u8>>, String> {
    match host.stat(path).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(m) if m.kind == EntryKind::File => {
            host.read_file(path).map(Some).map_err(|e| e.to_string())
        }
        Some(_) => Err(format!("{path} is not a regular file")),
    }
}

/// What the agent's drop-in of `name` says now (defaults without one).
pub fn observe_managed(host: &dyn Host, name: &str) -> Result<Managed, String> {
    let path = unit::drop_in_path(name);
    match read_optional(host, &path)? {
        None => Ok(Managed::default()),
        Some(bytes) => {
            Managed::parse(&path, &String::from_utf8_lossy(&bytes)).map_err(|e| e.to_string())
        }
    }
}

/// Observes a service: unit file digest (content when it differs from the desired one and
/// is small UTF-8 text, empty otherwise), the agent's drop-in, enabled, running.
pub fn observe(host: &dyn Host, desired: &ServiceSpec) -> Result<Spec, String> {
    let manager = manager_of(host)?;
    let name = &desired.name;
    let unit = match &desired.unit {
        None => None,
        Some(want) => read_optional(host, &unit::unit_path(name))?.map(|bytes| {
            let digest = sha256(&bytes);
            let content = if digest != want.sha256 && bytes.len() < MAX_DIFF_BYTES {
                String::from_utf8(bytes).unwrap_or_default()
            } else {
                String::new()
            };
            UnitFile {
                content: Arc::from(content),
                sha256: digest,
            }
        }),
    };
    let managed = observe_managed(host, name)?;
    let enabled = manager.is_enabled(host, name)?;
    let running = manager.is_running(name)?;
    Ok(Spec::Service(ServiceSpec {
        name: name.clone(),
        state: if running {
            ServiceState::Running
        } else {
            ServiceState::Stopped
        },
        enabled: Some(enabled),
        unit,
        restart: managed.restart,
        health_check: managed.health_check,
        environment: managed.environment,
        // Not a property of the host.
        on_notify: NotifyAction::default(),
    }))
}

/// Writes `content` at `path` atomically unless it is already there; whether it wrote.
fn write_if_changed(host: &dyn Host, path: &str, content: &[u8]) -> Result<bool, String> {
    let e = |e: HostError| e.to_string();
    let current = host.stat(path).map_err(e)?;
    if let Some(m) = current.filter(|m| m.kind == EntryKind::File)
        && host.read_file(path).map_err(e)? == content
    {
        if m.mode != UNIT_FILE_MODE {
            host.set_mode(path, UNIT_FILE_MODE).map_err(e)?;
        }
        return Ok(false);
    }
    if current.is_some_and(|m| m.kind == EntryKind::Directory) {
        return Err(format!("{path} is a directory"));
    }
    ensure_dir(host, parent(path))?;
    let attrs = FileAttrs {
        mode: UNIT_FILE_MODE,
        uid: current.map(|m| m.uid),
        gid: current.map(|m| m.gid),
    };
    host.write_file_atomic(path, content, attrs).map_err(e)?;
    Ok(true)
}

/// Applies a service: unit file, drop-in, enabled, then running or stopped. A running
/// service is restarted when its unit or drop-in changed; otherwise `notified` (a
/// notifying resource changed) restarts or reloads it. After a start or restart its health
/// check must pass; a reload keeps the process, so there is no new verdict to wait for.
pub fn apply(
    host: &dyn Host,
    spec: &ServiceSpec,
    notified: Option<NotifyAction>,
) -> Result<(), String> {
    let manager = manager_of(host)?;
    let name = &spec.name;
    let mut changed = false;
    if let Some(u) = &spec.unit {
        if sha256(u.content.as_bytes()) != u.sha256 {
            return Err(format!(
                "the desired unit content does not match its digest {}",
                u.sha256
            ));
        }
        changed |= write_if_changed(host, &unit::unit_path(name), u.content.as_bytes())?;
    }
    let managed = Managed {
        restart: spec.restart,
        environment: spec.environment.clone(),
        health_check: spec.health_check.clone(),
    };
    let drop_in = unit::drop_in_path(name);
    if managed.is_empty() {
        if read_optional(host, &drop_in)?.is_some() {
            host.remove_file(&drop_in).map_err(|e| e.to_string())?;
            // Left when other drop-ins live there.
            let _ = host.remove_dir(&unit::drop_in_dir(name));
            changed = true;
        }
    } else if observe_managed(host, name).ok().as_ref() != Some(&managed) {
        changed |= write_if_changed(host, &drop_in, managed.render(name).as_bytes())?;
    }
    if changed {
        manager.reload_units()?;
    }
    if let Some(want) = spec.enabled
        && manager.is_enabled(host, name)? != want
    {
        manager.set_enabled(host, name, want)?;
    }
    let running = manager.is_running(name)?;
    match spec.state {
        ServiceState::Running if !running => {
            manager.start(name)?;
            await_health(manager, spec)
        }
        ServiceState::Running if changed || notified == Some(NotifyAction::Restart) => {
            manager.restart(name)?;
            await_health(manager, spec)
        }
        ServiceState::Running if notified == Some(NotifyAction::Reload) => manager.reload(name),
        ServiceState::Running => Ok(()),
        ServiceState::Stopped if running => manager.stop(name),
        ServiceState::Stopped => Ok(()),
    }
}

/// After a start: waits for the first health verdict, the backend's when it checks health
/// itself (the supervisor), else the agent's own probes (systemd).
fn await_health(manager: &dyn ServiceManager, spec: &ServiceSpec) -> Result<(), String> {
    let Some(check) = &spec.health_check else {
        return Ok(());
    };
    let Some(first) = manager.status(&spec.name)? else {
        return probe_until_verdict(check);
    };
    let interval = Duration::from_millis(check.interval_ms);
    let timeout = Duration::from_millis(check.timeout_ms);
    let budget = interval.min(Duration::from_millis(500))
        + (interval + timeout) * check.retries.max(1)
        // Slack for a loaded machine; reached only when the backend gives no verdict.
        + Duration::from_secs(30);
    let deadline = Instant::now() + budget;
    loop {
        let Some(s) = manager.status(&spec.name)? else {
            return Ok(());
        };
        if s.pid != first.pid {
            return Err(format!(
                "started, but the process ended while its health check ran ({}); see \
                 `centossrv-agent services events`",
                s.last_exit.as_deref().unwrap_or("no exit status")
            ));
        }
        match s.health {
            Some(Health::Healthy) | None => return Ok(()),
            Some(Health::Unhealthy) => {
                return Err(format!(
                    "started, but its health check failed {} times: {}",
                    check.retries.max(1),
                    s.health_error.as_deref().unwrap_or("no message")
                ));
            }
            Some(Health::Starting) if Instant::now() >= deadline => {
                return Err(format!(
                    "started, but its health check gave no verdict within {} ms",
                    budget.as_millis()
                ));
            }
            Some(Health::Starting) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Probes like the supervisor does until the first verdict: healthy at the first passing
/// probe, unhealthy after `retries` failures in a row (the first probe after
/// min(`interval`, 500 ms), then one every `interval`).
pub fn probe_until_verdict(check: &state::HealthCheck) -> Result<(), String> {
    let interval = Duration::from_millis(check.interval_ms.max(50));
    let timeout = Duration::from_millis(check.timeout_ms.max(10));
    let retries = check.retries.max(1);
    std::thread::sleep(interval.min(Duration::from_millis(500)));
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match crate::supervisor::health::probe(&check.probe, timeout) {
            Ok(()) => return Ok(()),
            Err(e) => {
                failures += 1;
                if failures >= retries {
                    return Err(format!(
                        "started, but its health check failed {retries} times: {e}"
                    ));
                }
            }
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// The state of a service recorded in a generation: whether it ran and was enabled.
pub fn runtime_state(host: &dyn Host, name: &str) -> Result<(bool, bool), String> {
    let manager = manager_of(host)?;
    Ok((manager.is_enabled(host, name)?, manager.is_running(name)?))
}

/// Whether `path` is one of a service's files (for rollback's restart decision).
pub fn is_service_path(name: &str, path: &str) -> bool {
    path == unit::unit_path(name) || path == unit::drop_in_path(name)
}

/// Rollback, before the service's files are restored: stops a service recorded as not
/// running, and disables one recorded as disabled (while its unit still exists). Whether
/// it changed anything.
pub fn stop_for_rollback(
    host: &dyn Host,
    name: &str,
    entry: &crate::generations::ServiceEntry,
) -> Result<bool, String> {
    let manager = manager_of(host)?;
    let mut changed = false;
    if manager.is_running(name)? {
        manager.stop(name)?;
        changed = true;
    }
    if !entry.enabled && manager.is_enabled(host, name)? {
        manager.set_enabled(host, name, false)?;
        changed = true;
    }
    Ok(changed)
}

/// Rollback, after the files are restored (`restored`: the paths rollback changed):
/// reloads units, puts back enabled, and starts a service recorded as running, or
/// restarts it when its unit or drop-in was restored. Whether it changed anything.
pub fn restore_after_paths(
    host: &dyn Host,
    entry: &crate::generations::ServiceEntry,
    restored: &[String],
) -> Result<bool, String> {
    let manager = manager_of(host)?;
    let name = &entry.name;
    let files_changed = restored.iter().any(|p| is_service_path(name, p));
    let mut changed = false;
    if files_changed {
        manager.reload_units()?;
    }
    if manager.is_enabled(host, name)? != entry.enabled {
        manager.set_enabled(host, name, entry.enabled)?;
        changed = true;
    }
    if entry.running {
        if !manager.is_running(name)? {
            manager.start(name)?;
            changed = true;
        } else if files_changed {
            manager.restart(name)?;
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::{HealthCheck, Probe};

    #[test]
    fn the_agent_probes_itself_when_the_backend_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let check = |address: &str| HealthCheck {
            probe: Probe::Tcp {
                address: address.to_owned(),
            },
            interval_ms: 50,
            timeout_ms: 1000,
            retries: 2,
        };
        assert_eq!(probe_until_verdict(&check(&address)), Ok(()));
        drop(listener);
        let e = probe_until_verdict(&check(&address)).expect_err("nothing listens");
        assert!(
            e.starts_with(&format!(
                "started, but its health check failed 2 times: tcp {address}"
            )),
            "{e}"
        );
    }
}
