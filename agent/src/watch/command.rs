//! The `watch` subcommand's arguments and its run: events printed one per line as they
//! happen (text, or JSON lines with `--format json`).

use super::{WatchError, WatchOptions, watch};
use crate::generations::Store;
use crate::host::RealHost;
use state::DesiredState;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `centossrv-agent watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// A DesiredState JSON file (`centossrv render --node NAME`), `-` for stdin.
    pub desired: PathBuf,
    /// Apply drifted resources back to the desired state (a generation per enforcement);
    /// without it, drift is only reported.
    #[arg(long)]
    pub enforce: bool,
    /// Quiet time after a file event before re-observing (events within it are batched).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub debounce: Duration,
    /// How often packages, users, groups and sysctls (which have no file events) are
    /// re-observed, and failed enforcements retried.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Generations to keep when enforcing.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{s}`: must be more than zero"));
    }
    Ok(d)
}

/// Runs the watch until SIGTERM/SIGINT, printing each event to stdout and flushing it.
pub fn run(
    host: &RealHost,
    store: &Store,
    desired: &DesiredState,
    args: &WatchArgs,
    json: bool,
) -> Result<&'static str, WatchError> {
    let options = WatchOptions {
        debounce: args.debounce,
        interval: args.interval,
        enforce: args.enforce,
        keep: usize::try_from(args.keep).unwrap_or(usize::MAX),
    };
    let mut sink = |event: &super::event::WatchEvent| -> io::Result<()> {
        let mut line = if json { event.json() } else { event.text() };
        line.push('\n');
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.flush()
    };
    watch(host, store, desired, &options, &mut sink)
}
