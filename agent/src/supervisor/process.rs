//! The supervisor's services: the state of each, its runner thread (spawn in a process
//! group, wait for the exit, apply the restart policy with backoff), its health thread, and
//! the start, stop, restart and reload requests the daemon serves.
//!
//! A runner observes its process's exit with `waitid(WNOWAIT)`, marks it gone under the
//! service's lock, kills what is left of its process group and only then reaps it: a
//! signal sent under the lock to a process marked running can never reach a recycled pid.

use super::config::{self, ServiceConfig};
use super::events::{EventKind, EventLog};
use super::health;
use super::protocol::{Health, ServiceStatus};
use crate::host::RealHost;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use state::{HealthCheck, RestartPolicy};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest delay between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long resets the backoff.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);
/// How long a start request waits for the process to be spawned.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for a process to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// A service's output log is truncated at its start past this size.
const MAX_OUTPUT_LOG_BYTES: u64 = 4 * 1024 * 1024;
/// How long a reload's `ExecReload=` commands may take together before the one running is
/// killed and the reload fails.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(super) struct SvcState {
    /// Keep it running.
    want: bool,
    /// Bumped by every start, stop and restart request.
    request: u64,
    /// Bumped for every process spawned.
    instance: u64,
    /// The main process, until it is reaped.
    pid: Option<u32>,
    /// A runner thread exists for this service.
    runner: bool,
    health: Option<Health>,
    health_error: Option<String>,
    /// The current process is being stopped for failing its health check.
    health_kill: bool,
    restarts: u32,
    last_exit: Option<String>,
    /// Why the last start failed (cleared by the next request).
    start_error: Option<String>,
    stop_timeout: Duration,
}

#[derive(Debug)]
pub(super) struct Svc {
    name: String,
    st: Mutex<SvcState>,
    changed: Condvar,
}

impl Svc {
    pub(super) fn lock(&self) -> MutexGuard<'_, SvcState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn status(&self, st: &SvcState) -> ServiceStatus {
        ServiceStatus {
            service: self.name.clone(),
            active: st.want,
            pid: st.pid,
            health: st.health,
            health_error: st.health_error.clone(),
            restarts: st.restarts,
            last_exit: st.last_exit.clone(),
        }
    }

    /// Waits on the service's condition until `done` or `deadline`; returns whether done.
    fn wait_until<'a>(
        &'a self,
        mut st: MutexGuard<'a, SvcState>,
        deadline: Instant,
        done: impl Fn(&SvcState) -> bool,
    ) -> (MutexGuard<'a, SvcState>, bool) {
        loop {
            if done(&st) {
                return (st, true);
            }
            let now = Instant::now();
            if now >= deadline {
                return (st, false);
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What every thread of the daemon shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) host: RealHost,
    pub(super) state_dir: PathBuf,
    pub(super) log: Mutex<Option<EventLog>>,
    pub(super) services: Mutex<BTreeMap<String, Arc<Svc>>>,
    pub(super) shutting_down: AtomicBool,
}

impl Shared {
    fn event(
        &self,
        service: &str,
        kind: EventKind,
        pid: Option<u32>,
        status: Option<String>,
        message: Option<String>,
    ) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = log.as_mut()
            && let Err(e) = log.append(service, kind, pid, status, message)
        {
            eprintln!("supervisor: cannot write the event log: {e}");
        }
    }

    fn service(&self, name: &str) -> Arc<Svc> {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Svc {
                    name: name.to_owned(),
                    st: Mutex::new(SvcState {
                        stop_timeout: config::DEFAULT_STOP_TIMEOUT,
                        ..SvcState::default()
                    }),
                    changed: Condvar::new(),
                })
            })
            .clone()
    }

    pub(super) fn known(&self, name: &str) -> Option<Arc<Svc>> {
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services.get(name).cloned()
    }
}

fn pid_of(pid: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(pid).ok()?)
}

/// Signals the process group of a process the caller holds the lock of and knows is not
/// reaped (`st.pid == Some(pid)`).
fn signal_group(pid: u32, signal: Signal) {
    if let Some(p) = pid_of(pid) {
        let _ = rustix::process::kill_process_group(p, signal);
    }
}

/// SIGTERM to the group of the current process, SIGKILL after the stop timeout; returns
/// once the process is reaped (or after the kill wait).
fn terminate<'a>(svc: &'a Svc, st: MutexGuard<'a, SvcState>) -> MutexGuard<'a, SvcState> {
    let Some(pid) = st.pid else { return st };
    signal_group(pid, Signal::TERM);
    let timeout = st.stop_timeout;
    let (st, gone) = svc.wait_until(st, Instant::now() + timeout, |s| s.pid != Some(pid));
    if gone {
        return st;
    }
    signal_group(pid, Signal::KILL);
    svc.wait_until(st, Instant::now() + KILL_WAIT, |s| s.pid != Some(pid))
        .0
}

/// `exit N`, `signal N (NAME)`.
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                1 => " (HUP)",
                2 => " (INT)",
                6 => " (ABRT)",
                9 => " (KILL)",
                11 => " (SEGV)",
                15 => " (TERM)",
                _ => "",
            };
            format!("signal {sig}{name}")
        }
        None => status.to_string(),
    }
}

/// Spawns `c.argv` as the service's main process, in its own process group, its output
/// appended to the service's log (truncated first when it grew too large).
fn spawn(shared: &Shared, name: &str, c: &ServiceConfig) -> Result<Child, String> {
    spawn_command(shared, name, c, true)
}

/// Spawns `c.argv` with the service's environment, user, group and working directory in a
/// process group of its own, its output appended to the service's log. `may_truncate`:
/// only a start may cut the log, not a command run beside the running process.
fn spawn_command(
    shared: &Shared,
    name: &str,
    c: &ServiceConfig,
    may_truncate: bool,
) -> Result<Child, String> {
    let logs = shared.state_dir.join("supervisor").join("logs");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)
        .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{name}.log"));
    let truncate =
        may_truncate && fs::metadata(&log_path).is_ok_and(|m| m.len() > MAX_OUTPUT_LOG_BYTES);
    let out = OpenOptions::new()
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let (program, args) = c
        .argv
        .split_first()
        .ok_or_else(|| "the command line is empty".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&c.environment)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if let Some(dir) = &c.working_directory {
        cmd.current_dir(dir);
    }
    if let Some(gid) = c.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = c.uid {
        cmd.uid(uid);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", c.argv.join(" ")))
}

/// Blocks until `pid` has exited, without reaping it.
fn wait_exit(pid: u32) {
    let Some(p) = pid_of(pid) else { return };
    loop {
        match rustix::process::waitid(
            WaitId::Pid(p),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(e) if e == rustix::io::Errno::INTR => continue,
            _ => return,
        }
    }
}

/// Keeps one service running: spawns its process, waits for it to end, applies the
/// restart policy. Ends when the service is stopped or given up on.
fn runner(shared: Arc<Shared>, svc: Arc<Svc>) {
    let mut consecutive: u32 = 0;
    // Why the next start happens, when it is not a request.
    let mut restart_reason: Option<String> = None;
    loop {
        let mut st = svc.lock();
        if !st.want || shared.shutting_down.load(Ordering::SeqCst) {
            st.runner = false;
            svc.changed.notify_all();
            return;
        }
        let request = st.request;
        let spawned = config::load(&shared.host, &svc.name)
            .and_then(|c| spawn(&shared, &svc.name, &c).map(|child| (c, child)));
        let (config, mut child) = match spawned {
            Ok(ok) => ok,
            Err(e) => {
                st.want = false;
                st.runner = false;
                st.start_error = Some(e.clone());
                st.last_exit = Some(format!("start failed: {e}"));
                shared.event(&svc.name, EventKind::StartFailed, None, None, Some(e));
                svc.changed.notify_all();
                return;
            }
        };
        let pid = child.id();
        st.pid = Some(pid);
        st.instance += 1;
        st.health = config.health_check.as_ref().map(|_| Health::Starting);
        st.health_error = None;
        st.health_kill = false;
        st.stop_timeout = config.stop_timeout;
        match restart_reason.take() {
            Some(reason) => {
                st.restarts += 1;
                shared.event(
                    &svc.name,
                    EventKind::Restarted,
                    Some(pid),
                    None,
                    Some(reason),
                );
            }
            None => shared.event(&svc.name, EventKind::Started, Some(pid), None, None),
        }
        if let Some(check) = config.health_check.clone() {
            let (shared2, svc2, instance) = (shared.clone(), svc.clone(), st.instance);
            let policy = config.restart;
            if let Err(e) = thread(&format!("health {}", svc.name), move || {
                health_loop(&shared2, &svc2, instance, &check, policy);
            }) {
                st.health_error = Some(format!("health checks not running: {e}"));
            }
        }
        svc.changed.notify_all();
        drop(st);

        let started = Instant::now();
        wait_exit(pid);
        let mut st = svc.lock();
        st.pid = None;
        // What is left of the group goes with its main process (KillMode=control-group);
        // the unreaped process still holds the group's id.
        signal_group(pid, Signal::KILL);
        let status = child.wait();
        let failed = !status.as_ref().is_ok_and(|s| s.success());
        let text = status.map_or_else(|e| format!("unknown ({e})"), describe);
        st.last_exit = Some(text.clone());
        st.health = None;
        shared.event(
            &svc.name,
            EventKind::Exited,
            Some(pid),
            Some(text.clone()),
            None,
        );
        svc.changed.notify_all();
        if !st.want || shared.shutting_down.load(Ordering::SeqCst) {
            continue;
        }
        if st.request != request {
            // Restart requested: start again at once.
            consecutive = 0;
            continue;
        }
        let health_kill = st.health_kill;
        let restart = match config.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed || health_kill,
            RestartPolicy::No => false,
        };
        if !restart {
            st.want = false;
            continue;
        }
        if started.elapsed() >= BACKOFF_RESET_AFTER {
            consecutive = 0;
        }
        let delay = config
            .restart_sec
            .saturating_mul(1u32 << consecutive.min(16))
            .min(MAX_BACKOFF);
        consecutive = consecutive.saturating_add(1);
        let (st, interrupted) = svc.wait_until(st, Instant::now() + delay, |s| {
            !s.want || s.request != request
        });
        if !interrupted {
            restart_reason = Some(if health_kill {
                format!("unhealthy; after {} ms", delay.as_millis())
            } else {
                format!("{text}; after {} ms", delay.as_millis())
            });
        }
        drop(st);
    }
}

/// Probes one process of a service on the check's interval until the process is gone.
fn health_loop(
    shared: &Shared,
    svc: &Svc,
    instance: u64,
    check: &HealthCheck,
    policy: RestartPolicy,
) {
    let interval = Duration::from_millis(check.interval_ms.max(50));
    let timeout = Duration::from_millis(check.timeout_ms.max(10));
    let retries = check.retries.max(1);
    let mut next = Instant::now() + interval.min(Duration::from_millis(500));
    let mut failures = 0;
    loop {
        let st = svc.lock();
        let (st, gone) = svc.wait_until(st, next, |s| s.instance != instance || s.pid.is_none());
        if gone {
            return;
        }
        drop(st);
        let result = health::probe(&check.probe, timeout);
        next = Instant::now() + interval;
        let mut st = svc.lock();
        if st.instance != instance || st.pid.is_none() {
            return;
        }
        match result {
            Ok(()) => {
                failures = 0;
                if st.health == Some(Health::Unhealthy) {
                    shared.event(&svc.name, EventKind::HealthRecovered, st.pid, None, None);
                }
                st.health = Some(Health::Healthy);
                st.health_error = None;
                svc.changed.notify_all();
            }
            Err(e) => {
                failures += 1;
                st.health_error = Some(e.clone());
                if failures >= retries && st.health != Some(Health::Unhealthy) {
                    st.health = Some(Health::Unhealthy);
                    shared.event(
                        &svc.name,
                        EventKind::HealthFailed,
                        st.pid,
                        None,
                        Some(format!("{failures} probes failed: {e}")),
                    );
                    svc.changed.notify_all();
                    if policy != RestartPolicy::No {
                        st.health_kill = true;
                        drop(terminate(svc, st));
                        return;
                    }
                }
                svc.changed.notify_all();
            }
        }
    }
}

/// Starts a service (no-op when it runs), or restarts it; returns once a process runs.
pub(super) fn start(
    shared: &Arc<Shared>,
    name: &str,
    restart: bool,
) -> Result<ServiceStatus, String> {
    if shared.shutting_down.load(Ordering::SeqCst) {
        return Err("the supervisor is shutting down".to_owned());
    }
    let svc = shared.service(name);
    let mut st = svc.lock();
    if !restart && st.want && st.pid.is_some() {
        return Ok(svc.status(&st));
    }
    let before = st.instance;
    st.want = true;
    st.request += 1;
    st.start_error = None;
    svc.changed.notify_all();
    if restart && st.pid.is_some() {
        st = terminate(&svc, st);
    }
    if !st.runner {
        let (shared, svc2) = (shared.clone(), svc.clone());
        thread(&format!("run {name}"), move || runner(shared, svc2))
            .map_err(|e| format!("cannot start a thread for {name}: {e}"))?;
        st.runner = true;
    }
    let (st, _) = svc.wait_until(st, Instant::now() + START_WAIT, |s| {
        s.start_error.is_some() || !s.want || (s.instance > before && s.pid.is_some())
    });
    if let Some(e) = &st.start_error {
        return Err(e.clone());
    }
    if st.instance > before && st.pid.is_some() {
        return Ok(svc.status(&st));
    }
    Err(format!(
        "service {name} did not start: {}",
        st.last_exit.as_deref().unwrap_or("no process within 10 s")
    ))
}

/// Reloads a running service without restarting it: runs its `ExecReload=` commands one
/// after another (each like the service's process: its environment plus `MAINPID`, user,
/// group, working directory, output to its log; a failure fails the reload unless the line
/// has the `-` prefix), or sends SIGHUP to the main process when the unit has none. The
/// unit is read anew. An error when the service does not run (also between restarts), like
/// `systemctl reload`.
///
/// The service's lock is held throughout: its main process cannot be reaped, so its pid
/// cannot be reused while the signal or a command (through `$MAINPID`) addresses it.
pub(super) fn reload(shared: &Shared, name: &str) -> Result<ServiceStatus, String> {
    if shared.shutting_down.load(Ordering::SeqCst) {
        return Err("the supervisor is shutting down".to_owned());
    }
    let not_running = || format!("cannot reload {name}: it is not running");
    let svc = shared.known(name).ok_or_else(not_running)?;
    let st = svc.lock();
    let Some(pid) = st.pid.filter(|_| st.want) else {
        return Err(not_running());
    };
    let result = config::load(&shared.host, name)
        .and_then(|c| run_reload(shared, name, &c, pid))
        .map_err(|e| format!("cannot reload {name}: {e}"));
    match &result {
        Ok(how) => shared.event(
            name,
            EventKind::Reloaded,
            Some(pid),
            None,
            Some(how.clone()),
        ),
        Err(e) => shared.event(
            name,
            EventKind::ReloadFailed,
            Some(pid),
            None,
            Some(e.clone()),
        ),
    }
    result.map(|_| svc.status(&st))
}

/// What a reload of the process `pid` does (see [`reload`]); says what it did.
fn run_reload(shared: &Shared, name: &str, c: &ServiceConfig, pid: u32) -> Result<String, String> {
    if c.reload.is_empty() {
        let p = pid_of(pid).ok_or_else(|| format!("invalid pid {pid}"))?;
        rustix::process::kill_process(p, Signal::HUP)
            .map_err(|e| format!("cannot send SIGHUP to process {pid}: {e}"))?;
        return Ok("SIGHUP to the main process".to_owned());
    }
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    let commands = c.reload_commands(name, pid)?;
    let environment = c.reload_environment(pid);
    for (argv, ignore_failure) in &commands {
        let command = ServiceConfig {
            argv: argv.clone(),
            environment: environment.clone(),
            ..c.clone()
        };
        let line = argv.join(" ");
        let mut child = spawn_command(shared, name, &command, false)
            .map_err(|e| format!("ExecReload=: {e}"))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    // Not reaped yet: the group id is still this child's.
                    signal_group(child.id(), Signal::KILL);
                    let _ = child.wait();
                    return Err(format!(
                        "ExecReload= `{line}` did not finish within {} s",
                        RELOAD_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("ExecReload= `{line}`: cannot wait for it: {e}")),
            }
        };
        if !status.success() && !ignore_failure {
            return Err(format!(
                "ExecReload= `{line}` failed ({})",
                describe(status)
            ));
        }
    }
    Ok(format!(
        "ExecReload= ({} command{})",
        commands.len(),
        if commands.len() == 1 { "" } else { "s" }
    ))
}

/// Stops a service and waits for its process (and runner) to go.
pub(super) fn stop(shared: &Shared, name: &str) -> ServiceStatus {
    let Some(svc) = shared.known(name) else {
        return ServiceStatus {
            service: name.to_owned(),
            active: false,
            pid: None,
            health: None,
            health_error: None,
            restarts: 0,
            last_exit: None,
        };
    };
    let mut st = svc.lock();
    let was_running = st.pid;
    st.want = false;
    st.request += 1;
    st.start_error = None;
    svc.changed.notify_all();
    st = terminate(&svc, st);
    let (st, _) = svc.wait_until(st, Instant::now() + KILL_WAIT, |s| !s.runner);
    if let Some(pid) = was_running {
        shared.event(name, EventKind::Stopped, Some(pid), None, None);
    }
    svc.status(&st)
}

/// Stack of the daemon's threads: they parse small files and format short messages.
const THREAD_STACK: usize = 256 * 1024;

/// Spawns a named thread with a small stack; an error instead of a panic when the system
/// cannot create one.
pub(super) fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Stops every service (in parallel, each with its own stop timeout).
pub(super) fn shutdown(shared: &Arc<Shared>) {
    shared.shutting_down.store(true, Ordering::SeqCst);
    let names: Vec<String> = shared
        .services
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    std::thread::scope(|s| {
        for name in &names {
            s.spawn(|| stop(shared, name));
        }
    });
}
