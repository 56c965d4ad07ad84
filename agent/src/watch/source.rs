//! Where the drift watch's wake-ups come from: inotify watches on directories and a
//! self-pipe for SIGTERM/SIGINT, waited on together with one `poll(2)` and a timeout. The
//! only module that knows inotify and signals.
//!
//! Directories are watched, never the managed files themselves: a directory watch sees its
//! children written, chmodded, chowned, created, deleted and renamed over (an editor's or the
//! agent's atomic replace), and survives all of that, where a watch on a file's inode is lost
//! when the file is replaced. The mask leaves out `IN_OPEN`, `IN_ACCESS` and
//! `IN_CLOSE_NOWRITE`: reads of watched directories (every process reading `/etc`) never wake
//! the agent, and neither do its own observations.

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags, Timespec};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one wait returned: changed paths, whether events were lost, a signal.
#[derive(Debug, Default)]
pub struct Wakeup {
    /// Paths that had an event: a child of a watched directory, or the directory itself.
    pub paths: Vec<PathBuf>,
    /// The kernel's event queue overflowed: anything may have changed.
    pub overflow: bool,
    /// SIGTERM or SIGINT arrived (its name), or `"stop"` from a [`Stopper`].
    pub signal: Option<&'static str>,
}

/// Stops a watch from another thread (the agent daemon replaces its desired state): the
/// watch's next wait returns the signal `"stop"`.
#[derive(Debug, Clone)]
pub struct Stopper {
    pipe: std::sync::Arc<UnixStream>,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        // A full pipe already wakes the watch.
        let _ = (&*self.pipe).write(&[0]);
    }
}

/// Why the event source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot set up inotify: {0}")]
    Init(#[source] io::Error),
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error("cannot wait for events: {0}")]
    Wait(#[source] io::Error),
    #[error("cannot read inotify events: {0}")]
    Read(#[source] io::Error),
}

/// inotify plus the signal self-pipe.
#[derive(Debug)]
pub struct EventSource {
    inotify: Inotify,
    /// Read end of the self-pipe the signal handlers write to.
    signals: UnixStream,
    signal_ids: Vec<signal_hook::SigId>,
    /// Which signal each byte stands for is not recorded by the pipe: remembered here.
    term: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set by a [`Stopper`].
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Write end of the self-pipe, for [`Stopper`]s.
    wake: std::sync::Arc<UnixStream>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    buffer: Vec<u8>,
}

impl Drop for EventSource {
    fn drop(&mut self) {
        for id in self.signal_ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

const MASK: WatchMask = WatchMask::ATTRIB
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::EXCL_UNLINK);

impl EventSource {
    /// Sets up inotify and routes SIGTERM and SIGINT to the self-pipe (they no longer kill
    /// the process: [`EventSource::wait`] reports them).
    pub fn new() -> Result<EventSource, SourceError> {
        let inotify = Inotify::init().map_err(SourceError::Init)?;
        let (read, write) = UnixStream::pair().map_err(SourceError::Signals)?;
        read.set_nonblocking(true).map_err(SourceError::Signals)?;
        write.set_nonblocking(true).map_err(SourceError::Signals)?;
        let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut signal_ids = Vec::new();
        // The flag first, then the pipe: the flag is set when the byte is read.
        signal_ids.push(
            signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())
                .map_err(SourceError::Signals)?,
        );
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let end = write.try_clone().map_err(SourceError::Signals)?;
            signal_ids.push(
                signal_hook::low_level::pipe::register(signal, end)
                    .map_err(SourceError::Signals)?,
            );
        }
        Ok(EventSource {
            inotify,
            signals: read,
            signal_ids,
            term,
            stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            wake: std::sync::Arc::new(write),
            by_wd: HashMap::new(),
            by_dir: HashMap::new(),
            buffer: vec![0; 16 * 1024],
        })
    }

    /// A handle that stops the watch waiting on this source.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            pipe: self.wake.clone(),
            flag: self.stop.clone(),
        }
    }

    /// The directories being watched.
    pub fn watched(&self) -> usize {
        self.by_dir.len()
    }

    /// Makes the watched directories exactly `dirs`. A directory that cannot be watched
    /// (vanished meanwhile, permission denied) is returned with the error; the caller
    /// re-observes and recomputes.
    pub fn sync(&mut self, dirs: &BTreeSet<PathBuf>) -> Vec<(PathBuf, io::Error)> {
        let stale: Vec<PathBuf> = self
            .by_dir
            .keys()
            .filter(|d| !dirs.contains(*d))
            .cloned()
            .collect();
        for dir in stale {
            if let Some(wd) = self.by_dir.remove(&dir) {
                self.by_wd.remove(&wd);
                // Fails when the kernel already dropped it (directory deleted): fine.
                let _ = self.inotify.watches().remove(wd);
            }
        }
        let mut failures = Vec::new();
        for dir in dirs {
            if self.by_dir.contains_key(dir) {
                continue;
            }
            match self.inotify.watches().add(dir, MASK) {
                Ok(wd) => {
                    // The same directory under another name (a symlink) shares the watch.
                    if let Some(old) = self.by_wd.insert(wd.clone(), dir.clone()) {
                        self.by_dir.remove(&old);
                    }
                    self.by_dir.insert(dir.clone(), wd);
                }
                Err(e) => failures.push((dir.clone(), e)),
            }
        }
        failures
    }

    /// Waits until an event, a signal or the timeout (`None`: no timeout), then drains
    /// everything available without blocking.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Wakeup, SourceError> {
        let timespec = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = [
            PollFd::new(&self.inotify, PollFlags::IN),
            PollFd::new(&self.signals, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, timespec.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(SourceError::Wait(e.into())),
        }
        let mut wakeup = Wakeup::default();
        // Drain the self-pipe first, then look at the flag (signal-hook's documented order).
        let mut bytes = [0u8; 64];
        let mut signalled = false;
        loop {
            match self.signals.read(&mut bytes) {
                Ok(0) => break,
                Ok(_) => signalled = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if signalled {
            wakeup.signal = Some(if self.stop.load(std::sync::atomic::Ordering::SeqCst) {
                "stop"
            } else if self.term.load(std::sync::atomic::Ordering::SeqCst) {
                "SIGTERM"
            } else {
                "SIGINT"
            });
        }
        self.drain(&mut wakeup)?;
        Ok(wakeup)
    }

    fn drain(&mut self, wakeup: &mut Wakeup) -> Result<(), SourceError> {
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SourceError::Read(e)),
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    wakeup.overflow = true;
                    continue;
                }
                let Some(dir) = self.by_wd.get(&event.wd) else {
                    continue;
                };
                if event.mask.contains(EventMask::IGNORED) {
                    // The directory is gone (or was unwatched): forget the watch.
                    let dir = dir.clone();
                    self.by_wd.remove(&event.wd);
                    if self.by_dir.get(&dir) == Some(&event.wd) {
                        self.by_dir.remove(&dir);
                    }
                    wakeup.paths.push(dir);
                    continue;
                }
                wakeup.paths.push(match event.name {
                    Some(name) => dir.join(name),
                    None => dir.clone(),
                });
            }
            if !any {
                return Ok(());
            }
        }
    }
}

/// Whether `path` is an agent's temporary file (its own writes in progress).
pub fn is_temp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(crate::host::TEMP_SUFFIX))
}
