//! Command-line interface of `centossrv-agent`: argument parsing and the commands, each
//! returning its exit code.
//!
//! Exit codes: 0 success; 1 error (bad input, IO, lock held); `plan --detailed-exitcode`:
//! 2 changes pending; `apply`, `rollback`: 2 some resources or paths failed, 3 (apply) the
//! plan's digest differed from `--expect-digest` and nothing was changed.

use crate::apply::{self, ApplyError, ApplyOptions, ApplyStatus};
use crate::generations::{self, GenerationError, Store};
use crate::host::{HostError, RealHost};
use crate::observe::observe;
use crate::output;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use state::DesiredState;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Success; for `plan --detailed-exitcode`, no changes.
pub const EXIT_OK: u8 = 0;
/// Bad input, IO error, or another agent holds the lock.
pub const EXIT_ERROR: u8 = 1;
/// `plan --detailed-exitcode`: changes pending. `apply`/`rollback`: some resources failed.
pub const EXIT_CHANGES_OR_FAILED: u8 = 2;
/// `apply --expect-digest`: the plan is stale; nothing was changed.
pub const EXIT_STALE: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "centossrv-agent",
    version,
    about = "The centossrv node agent: observe, plan, apply desired state, roll back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Manage this directory as the host's `/` (a sandbox); every path, the account database
    /// (etc/passwd, etc/group) and sysctls (proc/sys, etc/sysctl.d) are resolved under it.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Where generations and the lock live [default: ROOT/var/lib/centossrv-agent].
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// An extra package repository for dnf (`--repofrompath NAME,URL`), on top of the root's
    /// own repository configuration; repeatable. For tests and offline use.
    #[arg(long = "repo", global = true, value_name = "NAME=URL", value_parser = parse_repo)]
    pub repos: Vec<(String, String)>,
    /// Do not check package signatures (dnf `--nogpgcheck`).
    #[arg(long, global = true)]
    pub nogpgcheck: bool,
    /// Output format [default: json for observe, text otherwise].
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Who starts, stops and enables services: systemd (`systemctl`), the built-in
    /// supervisor (`centossrv-agent supervise`), or auto (systemd when it runs here).
    #[arg(long, global = true, value_enum, default_value_t = crate::cli_services::BackendChoice::Auto)]
    pub service_backend: crate::cli_services::BackendChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what the host looks like for each resource of a desired state (ObservedState).
    Observe {
        /// A DesiredState JSON file (`centossrv render --node NAME`), `-` for stdin.
        desired: PathBuf,
    },
    /// Print the plan the agent would apply now.
    Plan {
        /// A DesiredState JSON file, `-` for stdin.
        desired: PathBuf,
        /// Exit 2 when there are changes, 0 when there are none.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply a desired state: record a generation, execute the plan, report every resource.
    Apply {
        /// A DesiredState JSON file, `-` for stdin.
        desired: PathBuf,
        /// Apply only if the plan derived now has this digest (the approved plan); otherwise
        /// report it stale (exit 3) and change nothing.
        #[arg(long, value_name = "DIGEST")]
        expect_digest: Option<String>,
        /// Generations to keep.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
    },
    /// List the recorded generations.
    Generations,
    /// Run the built-in service supervisor for ROOT until SIGTERM (services without systemd).
    Supervise,
    /// What the built-in supervisor knows: service status and its event log.
    Services {
        #[command(subcommand)]
        command: crate::cli_services::ServicesCommand,
    },
    /// Watch managed resources for drift and report it (one event per property); with
    /// --enforce, apply them back. Runs until SIGTERM or SIGINT (exit 0).
    Watch(crate::watch::command::WatchArgs),
    /// Run as a daemon linked to the reconciler: enroll once, then take its observe and
    /// apply requests over a WebSocket, send heartbeats and drift, and keep enforcing the
    /// last applied desired state while it is unreachable. Runs until SIGTERM or SIGINT.
    Run(crate::daemon::RunArgs),
    /// Restore the host to its state before generation N (default: the newest), offline.
    Rollback {
        /// The generation to roll back (it and every later one are undone).
        n: Option<u64>,
        /// Generations to keep.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
    },
}

/// Why a command could not run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a desired state: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Services(#[from] crate::cli_services::ServicesCliError),
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    #[error("cannot serialize the output: {0}")]
    Json(#[source] serde_json::Error),
}

/// Parses `NAME=URL` for `--repo` (also used by `centossrv apply --package-repo`).
pub fn parse_repo(s: &str) -> Result<(String, String), String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=URL, got `{s}`"))?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok || url.is_empty() || url.contains(',') {
        return Err(format!(
            "expected NAME=URL with a name of letters, digits, `-_.` and a URL without `,`, got `{s}`"
        ));
    }
    Ok((name.to_owned(), url.to_owned()))
}

fn read_desired(path: &Path) -> Result<DesiredState, CliError> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(path).map(|b| bytes = b)
    };
    read.map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let desired: DesiredState =
        serde_json::from_slice(&bytes).map_err(|source| CliError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    apply::check_desired(&desired)?;
    Ok(desired)
}

fn print(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Streams the JSON form to stdout: a report of 1,000 resources is about 1 MB of text,
/// which is not worth holding in memory on top of the report itself.
fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| {
        if e.is_io() {
            CliError::Output(io::Error::from(e))
        } else {
            CliError::Json(e)
        }
    })?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Runs one parsed command line.
pub fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    let state_dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(|| Store::default_dir(&cli.root));
    let host = RealHost::new(&cli.root)?
        .with_package_options(crate::host::PackageOptions {
            repos: cli.repos.clone(),
            nogpgcheck: cli.nogpgcheck,
        })
        .with_service_manager(crate::cli_services::manager(
            cli.service_backend,
            &cli.root,
            &state_dir,
        ));
    let store = Store::new(state_dir.clone());
    let text = |default_json: bool| match cli.format {
        Some(f) => f == Format::Text,
        None => !default_json,
    };
    match &cli.command {
        Command::Observe { desired } => {
            let desired = read_desired(desired)?;
            let obs = observe(&host, &desired);
            if text(true) {
                print(&output::observation(&desired, &obs))?;
            } else {
                for (id, problem) in &obs.problems {
                    eprintln!("warning: {id} not observed: {problem}");
                }
                print_json(&obs.state)?;
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Plan {
            desired,
            detailed_exitcode,
        } => {
            let desired = read_desired(desired)?;
            let (observation, plan) = apply::plan_now(&host, &desired);
            for (id, problem) in &observation.problems {
                eprintln!("warning: {id} not observed: {problem}");
            }
            if text(false) {
                print(&output::plan(&desired, &plan))?;
            } else {
                print_json(&plan)?;
            }
            Ok(ExitCode::from(
                if *detailed_exitcode && plan.has_host_changes() {
                    EXIT_CHANGES_OR_FAILED
                } else {
                    EXIT_OK
                },
            ))
        }
        Command::Apply {
            desired,
            expect_digest,
            keep,
        } => {
            let desired = read_desired(desired)?;
            let options = ApplyOptions {
                expect_digest: expect_digest.clone(),
                keep: usize::try_from(*keep).unwrap_or(usize::MAX),
            };
            let report = apply::apply(&host, &store, &desired, &options)?;
            if text(false) {
                print(&output::apply(&report))?;
            } else {
                print_json(&report)?;
            }
            Ok(ExitCode::from(match report.status {
                ApplyStatus::Applied => EXIT_OK,
                ApplyStatus::Failed => EXIT_CHANGES_OR_FAILED,
                ApplyStatus::Stale => EXIT_STALE,
            }))
        }
        Command::Supervise => {
            crate::cli_services::supervise(&cli.root, &state_dir)?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Services { command } => {
            print(&crate::cli_services::run(
                command,
                &state_dir,
                !text(false),
            )?)?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Watch(args) => {
            let desired = read_desired(&args.desired)?;
            crate::watch::command::run(&host, &store, &desired, args, !text(false))?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Run(args) => {
            crate::daemon::run(args, host, &state_dir)?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Generations => {
            let list = store.list()?;
            if text(false) {
                print(&output::generations(&list))?;
            } else {
                print_json(&list)?;
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Rollback { n, keep } => {
            let keep = usize::try_from(*keep).unwrap_or(usize::MAX);
            let report = generations::rollback(&host, &store, *n, keep)?;
            if text(false) {
                print(&output::rollback(&report))?;
            } else {
                print_json(&report)?;
            }
            Ok(ExitCode::from(if report.has_failures() {
                EXIT_CHANGES_OR_FAILED
            } else {
                EXIT_OK
            }))
        }
    }
}
