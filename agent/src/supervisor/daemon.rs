//! The supervisor daemon (`centossrv-agent supervise`): one instance per state directory
//! (flock), the control socket (peer uid checked, requests size-limited and versioned),
//! SIGTERM/SIGINT handling that stops every service before exiting, and enabled services
//! started at its start. The services themselves live in `process.rs`: each in its
//! own process group, stopped with SIGTERM then SIGKILL after the unit's stop timeout,
//! restarted by policy (`always`, `on-failure`) with exponential backoff, health-checked on
//! their interval, every event logged.
//!
//! Threads, all blocked when there is nothing to do (no polling): the accept loop, one
//! signal thread, one runner per running service (blocked in `waitid` on its process), one
//! health thread per running service with a health check (sleeping on its interval), and a
//! short-lived thread per control connection.

use super::events::{self, EventLog};
use super::process::{Shared, Svc, reload, shutdown, start, stop, thread};
use super::protocol::{self, MAX_REQUEST_BYTES, Op, Request, Response};
use crate::host::{Host, RealHost};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Control connections served at once; more are refused.
const MAX_CONNECTIONS: usize = 32;

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
        Op::Start { service }
        | Op::Restart { service }
        | Op::Reload { service }
        | Op::Stop { service }
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
        Op::Reload { service } => match reload(shared, &service) {
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
