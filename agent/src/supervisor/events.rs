//! The supervisor's event log: one JSON object per line in `STATE/supervisor/events.jsonl`
//! (started, exited with status, restarted, reloaded, reload failed, stopped, start failed,
//! health failed and recovered), appended as they happen and read back by `centossrv-agent services events`.
//! The file is rotated to `events.jsonl.1` past [`MAX_LOG_BYTES`].

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Size at which the log is rotated (one older file is kept).
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A process was started on request (`start`, `restart`, or at the daemon's start).
    Started,
    /// The main process ended (`status` says how).
    Exited,
    /// The restart policy (or a failed health check) started the service again.
    Restarted,
    /// Asked to reload on request (`ExecReload=` ran, or SIGHUP went to the main process;
    /// `message` says which); the process kept running.
    Reloaded,
    /// A reload request failed (`message` says why); the process was not restarted.
    ReloadFailed,
    /// Stopped on request.
    Stopped,
    /// The unit could not be run (bad unit, missing program); `message` says why.
    StartFailed,
    /// The health check failed `retries` times in a row.
    HealthFailed,
    /// A passing probe after the service was unhealthy.
    HealthRecovered,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing across the log's lifetime (also across daemon restarts).
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    pub service: String,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// For `exited`: `exit N` or `signal N (NAME)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The log file of a supervisor's state directory.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("supervisor").join("events.jsonl")
}

/// Appends events; owned by the daemon.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
}

impl EventLog {
    /// Opens (creates) the log, continuing its sequence numbers.
    pub fn open(path: PathBuf) -> io::Result<EventLog> {
        let last = read(&path)?.last().map_or(0, |e| e.seq);
        let mut file = Self::open_file(&path)?;
        // A line torn by a crash is ended so the next event starts on its own line.
        let torn = fs::read(&path).map(|b| b.last().is_some_and(|c| *c != b'\n'))?;
        if torn {
            file.write_all(b"\n")?;
        }
        Ok(EventLog {
            path,
            file,
            next_seq: last + 1,
        })
    }

    fn open_file(path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
    }

    /// Appends one event (one `write` of a whole line) and returns it. Errors are
    /// returned, never fatal to the daemon.
    pub fn append(
        &mut self,
        service: &str,
        event: EventKind,
        pid: Option<u32>,
        status: Option<String>,
        message: Option<String>,
    ) -> io::Result<Event> {
        let e = Event {
            seq: self.next_seq,
            time: crate::time::rfc3339(std::time::SystemTime::now()),
            service: service.to_owned(),
            event,
            pid,
            status,
            message,
        };
        self.next_seq += 1;
        if self.file.metadata()?.len() > MAX_LOG_BYTES {
            let old = self.path.with_extension("jsonl.1");
            fs::rename(&self.path, &old)?;
            self.file = Self::open_file(&self.path)?;
        }
        let mut line = serde_json::to_vec(&e).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        Ok(e)
    }
}

/// Every event of the log at `path` (and its rotated predecessor), oldest first. Lines
/// that do not parse (a torn last line after a crash) are skipped.
pub fn read(path: &Path) -> io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for p in [path.with_extension("jsonl.1"), path.to_path_buf()] {
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(file).lines() {
            if let Ok(e) = serde_json::from_str::<Event>(&line?) {
                events.push(e);
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_continue_sequence_and_skip_torn_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut log = EventLog::open(path.clone()).expect("open");
        log.append("web", EventKind::Started, Some(7), None, None)
            .expect("append");
        drop(log);
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{\"seq\":"))
            .expect("torn line");
        let mut log = EventLog::open(path.clone()).expect("reopen");
        let e = log
            .append(
                "web",
                EventKind::Exited,
                Some(7),
                Some("exit 1".into()),
                None,
            )
            .expect("append");
        assert_eq!(e.seq, 2);
        let all = read(&path).expect("read");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].status.as_deref(), Some("exit 1"));
    }
}
