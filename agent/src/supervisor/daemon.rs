//! The supervisor daemon (`centossrv-agent supervise`): owns the processes of the services
//! it runs, each in its own process group; stops them with SIGTERM, then SIGKILL after the
//! unit's stop timeout; applies the restart policy (`always`, `on-failure`) with
//! exponential backoff; runs health checks on their interval; logs every event; answers
//! the control protocol on its unix socket.
//!
//! Threads, all blocked when there is nothing to do (no polling): the accept loop, one
//! signal thread, one runner per running service (blocked in `waitid` on its process), one
//! health thread per running service with a health check (sleeping on its interval), and a
//! short-lived thread per control connection. A runner observes its process's exit with
//! `waitid(WNOWAIT)`, marks it gone under the service's lock, kills what is left of its
//! process group and only then reaps it: a signal sent under the lock to a process marked
//! running can never reach a recycled pid.

use super::config::{self, ServiceConfig};
use super::events::{self, EventKind, EventLog};
use super::health;
use super::protocol::{self, Health, MAX_REQUEST_BYTES, Op, Request, Response, ServiceStatus};
use crate::host::{Host, RealHost};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use state::{HealthCheck, RestartPolicy};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// Control connections served at once; more are refused.
const MAX_CONNECTIONS: usize = 32;
/// A service's output log is truncated at its start past this size.
const MAX_OUTPUT_LOG_BYTES: u64 = 4 * 1024 * 1024;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another supervisor runs for this state directory (lock {path} is held)")]
    Locked { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DaemonError + 'a {
    move |source| DaemonError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Default)]
struct SvcState {
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
struct Svc {
    name: String,
    st: Mutex<SvcState>,
    changed: Condvar,
}

impl Svc {
    fn lock(&self) -> MutexGuard<'_, SvcState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self, st: &SvcState) -> ServiceStatus {
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

#[derive(Debug)]
struct Shared {
    host: RealHost,
    state_dir: PathBuf,
    log: Mutex<Option<EventLog>>,
    services: Mutex<BTreeMap<String, Arc<Svc>>>,
    shutting_down: AtomicBool,
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

    fn known(&self, name: &str) -> Option<Arc<Svc>> {
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

fn spawn(shared: &Shared, name: &str, c: &ServiceConfig) -> Result<Child, String> {
    let logs = shared.state_dir.join("supervisor").join("logs");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)
        .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let log_path = logs.join(format!("{name}.log"));
    let truncate = fs::metadata(&log_path).is_ok_and(|m| m.len() > MAX_OUTPUT_LOG_BYTES);
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
        .ok_or_else(|| "ExecStart= is empty".to_owned())?;
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

fn start(shared: &Arc<Shared>, name: &str, restart: bool) -> Result<ServiceStatus, String> {
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

fn stop(shared: &Shared, name: &str) -> ServiceStatus {
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

fn handle(shared: &Arc<Shared>, stream: &UnixStream) -> Response {
    let own = rustix::process::geteuid();
    match rustix::net::sockopt::socket_peercred(stream) {
        Ok(cred) if cred.uid == own || cred.uid.is_root() => {}
        Ok(_) => return Response::error("permission denied: another user"),
        Err(e) => return Response::error(format!("cannot check the peer: {e}")),
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let line = match protocol::read_line(stream, MAX_REQUEST_BYTES) {
        Ok(Some(line)) => line,
        Ok(None) => {
            return Response::error(format!("request larger than {MAX_REQUEST_BYTES} bytes"));
        }
        Err(e) => return Response::error(format!("cannot read the request: {e}")),
    };
    let request: Request = match serde_json::from_slice(&line) {
        Ok(r) => r,
        Err(e) => return Response::error(format!("invalid request: {e}")),
    };
    if request.v != protocol::PROTOCOL_VERSION {
        return Response::error(format!(
            "unsupported protocol version {} (this supervisor speaks {})",
            request.v,
            protocol::PROTOCOL_VERSION
        ));
    }
    let valid = |name: &str| {
        !name.is_empty()
            && name.len() <= 200
            && !name.contains(['/', '\0'])
            && !name.starts_with('.')
    };
    match request.op {
        Op::Status { service } => {
            let services: Vec<Arc<Svc>> = match service {
                Some(name) => shared.known(&name).into_iter().collect(),
                None => shared
                    .services
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect(),
            };
            Response::ok(services.iter().map(|s| s.status(&s.lock())).collect())
        }
        Op::Start { service } | Op::Restart { service } | Op::Stop { service }
            if !valid(&service) =>
        {
            Response::error(format!("`{service}` is not a service name"))
        }
        Op::Start { service } => match start(shared, &service, false) {
            Ok(s) => Response::ok(vec![s]),
            Err(e) => Response::error(e),
        },
        Op::Restart { service } => match start(shared, &service, true) {
            Ok(s) => Response::ok(vec![s]),
            Err(e) => Response::error(e),
        },
        Op::Stop { service } => Response::ok(vec![stop(shared, &service)]),
    }
}

fn respond(stream: &UnixStream, response: &Response) {
    let Ok(mut line) = serde_json::to_vec(response) else {
        return;
    };
    line.push(b'\n');
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = (&*stream).write_all(&line);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Unread input (an oversized request) would turn the close into a reset that loses
    // the answer: read a bounded amount of it first.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = io::copy(
        &mut std::io::Read::take(stream, 4 * MAX_REQUEST_BYTES),
        &mut io::sink(),
    );
}

/// Services enabled under the root: those with a link in some `*.wants`/`*.requires`
/// directory of `/etc/systemd/system`.
pub fn enabled_services(host: &dyn Host) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(Some(dirs)) = host.list_dir(crate::unit::UNIT_DIR) else {
        return names;
    };
    for d in dirs
        .iter()
        .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
    {
        let path = format!("{}/{d}", crate::unit::UNIT_DIR);
        if let Ok(Some(links)) = host.list_dir(&path) {
            names.extend(
                links
                    .iter()
                    .filter_map(|l| l.strip_suffix(".service"))
                    .map(str::to_owned),
            );
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Runs the supervisor for `root` with its files in `state_dir`, until SIGTERM or SIGINT,
/// which stop every service before it exits. Enabled services are started first.
pub fn run(root: &Path, state_dir: &Path) -> Result<(), DaemonError> {
    let host = RealHost::new(root).map_err(|e| DaemonError::Io {
        op: "use as root",
        path: root.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    let dir = state_dir.join("supervisor");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err("create", &dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", &dir))?;
    let lock_path = dir.join("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            return Err(DaemonError::Locked { path: lock_path });
        }
        Err(e) => return Err(io_err("lock", &lock_path)(e.into())),
    }
    let log = EventLog::open(events::log_path(state_dir))
        .map_err(io_err("open the event log", &events::log_path(state_dir)))?;
    let socket = protocol::socket_path(state_dir);
    // Left by a supervisor that was killed: the lock proves nobody serves it.
    match fs::remove_file(&socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_err("remove the stale socket", &socket)(e));
        }
        _ => {}
    }
    let listener = UnixListener::bind(&socket).map_err(io_err("listen on", &socket))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod", &socket))?;
    let shared = Arc::new(Shared {
        host,
        state_dir: state_dir.to_path_buf(),
        log: Mutex::new(Some(log)),
        services: Mutex::new(BTreeMap::new()),
        shutting_down: AtomicBool::new(false),
    });

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(io_err("handle signals in", &dir))?;
    {
        let shared = shared.clone();
        let socket = socket.clone();
        thread("signals", move || {
            if signals.forever().next().is_some() {
                shutdown(&shared);
                let _ = fs::remove_file(&socket);
                drop(lock);
                std::process::exit(0);
            }
        })
        .map_err(io_err("start the signal thread for", &dir))?;
    }

    for name in enabled_services(&shared.host) {
        if let Err(e) = start(&shared, &name, false) {
            eprintln!("supervisor: cannot start enabled service {name}: {e}");
        }
    }

    let connections = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // Out of descriptors, say: do not spin on the error.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            connections.fetch_sub(1, Ordering::SeqCst);
            respond(&stream, &Response::error("too many connections"));
            continue;
        }
        let (shared, connections2) = (shared.clone(), connections.clone());
        let served = thread("connection", move || {
            let response = handle(&shared, &stream);
            respond(&stream, &response);
            connections2.fetch_sub(1, Ordering::SeqCst);
        });
        if served.is_err() {
            connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// Stack of the daemon's threads: they parse small files and format short messages.
const THREAD_STACK: usize = 256 * 1024;

/// Spawns a named thread with a small stack; an error instead of a panic when the system
/// cannot create one.
fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(drop)
}

/// Stops every service (in parallel, each with its own stop timeout).
fn shutdown(shared: &Arc<Shared>) {
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
