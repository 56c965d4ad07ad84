//! The supervisor's control protocol: one JSON request and one JSON response per
//! connection on a unix socket in the state directory, each a single line, versioned
//! (`"v": 1`) and size-limited. The socket lives in a directory only the agent's user can
//! enter, and the daemon also checks the peer's uid (`SO_PEERCRED`).

use serde::{Deserialize, Serialize};
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Version of the request and response format.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request the daemon reads.
pub const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// Largest response a client reads.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// The status of one service, or of every service the daemon knows.
    Status {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// Start (no-op when running); the unit is read anew.
    Start { service: String },
    /// Stop: SIGTERM to the process group, SIGKILL after the stop timeout.
    Stop { service: String },
    /// Stop (if running) and start again with the unit read anew.
    Restart { service: String },
    /// Ask the running process to reload its configuration: the unit's `ExecReload=`
    /// commands (with `$MAINPID`), or SIGHUP to the main process when it has none. The
    /// process is not restarted; an error when the service does not run.
    Reload { service: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub op: Op,
}

/// The health of a running service with a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No verdict yet since the process started.
    Starting,
    Healthy,
    /// `retries` consecutive probes failed.
    Unhealthy,
}

/// What the daemon knows about one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: String,
    /// The daemon keeps it running (started and not stopped, not given up on).
    pub active: bool,
    /// The main process, when one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `None` without a health check or while not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The last failed probe's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_error: Option<String>,
    /// Restarts by the restart policy or for health since the daemon started it.
    pub restarts: u32,
    /// How the last process ended (`exit 0`, `signal 9 (KILL)`), or why it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
}

impl Response {
    pub fn ok(services: Vec<ServiceStatus>) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            ok: true,
            error: None,
            services,
        }
    }

    pub fn error(message: impl Into<String>) -> Response {
        Response {
            v: PROTOCOL_VERSION,
            ok: false,
            error: Some(message.into()),
            services: Vec::new(),
        }
    }
}

/// Why talking to the supervisor failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the supervisor is not running (cannot connect to {path}: {source}); start it with \
         `centossrv-agent supervise --root ROOT --state-dir STATE`"
    )]
    NotRunning {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to the supervisor at {path} failed: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the supervisor sent an invalid response: {0}")]
    Invalid(String),
    #[error("the supervisor refused: {0}")]
    Refused(String),
}

/// The socket of the supervisor whose state directory is `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("supervisor").join("control.sock")
}

/// Reads one line of at most `limit` bytes; `Ok(None)` when it is longer.
pub fn read_line(stream: &UnixStream, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut reader = BufReader::new(stream.take(limit + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(line))
}

/// Sends `op` to the supervisor of `state_dir` and returns its answer. `timeout` bounds
/// the whole exchange (a stop may take the service's stop timeout).
pub fn call(state_dir: &Path, op: Op, timeout: Duration) -> Result<Response, ClientError> {
    let path = socket_path(state_dir);
    let stream = UnixStream::connect(&path).map_err(|source| ClientError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(&Request {
        v: PROTOCOL_VERSION,
        op,
    })
    .map_err(|e| ClientError::Invalid(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io)?;
    let answer = read_line(&stream, MAX_RESPONSE_BYTES)
        .map_err(io)?
        .ok_or_else(|| ClientError::Invalid("the response is too large".to_owned()))?;
    let response: Response =
        serde_json::from_slice(&answer).map_err(|e| ClientError::Invalid(e.to_string()))?;
    if response.v != PROTOCOL_VERSION {
        return Err(ClientError::Invalid(format!(
            "protocol version {} (this agent speaks {PROTOCOL_VERSION})",
            response.v
        )));
    }
    if !response.ok {
        return Err(ClientError::Refused(
            response
                .error
                .unwrap_or_else(|| "no reason given".to_owned()),
        ));
    }
    Ok(response)
}
