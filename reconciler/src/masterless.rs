//! `centossrv apply --node NAME [--root DIR] REPO`: compile the fleet repository and apply one
//! node's desired state with the agent library, in one process, for masterless and offline
//! use (as `puppet apply`). Exit codes are the agent's `apply`: 0 applied, 1 error (the fleet
//! does not compile, unknown node, IO, another apply holds the lock), 2 some resources
//! failed, 3 stale (`--expect-digest` differs; nothing changed).

use crate::cli::RepoArgs;
use crate::diagnostics_output;
use agent::cli::{EXIT_CHANGES_OR_FAILED, EXIT_ERROR, EXIT_OK, EXIT_STALE};
use agent::{ApplyOptions, ApplyStatus, PackageOptions, RealHost, Store};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ApplyFormat {
    Text,
    Json,
}

/// Arguments of `centossrv apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The node whose desired state is applied.
    #[arg(long)]
    pub node: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Manage this directory as the host's `/` (a sandbox), as the agent's `--root`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Where generations and the lock live [default: ROOT/var/lib/centossrv-agent].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ApplyFormat::Text)]
    pub format: ApplyFormat,
    /// Apply only if the plan derived now has this digest; otherwise report it stale (exit
    /// 3) and change nothing.
    #[arg(long, value_name = "DIGEST")]
    pub expect_digest: Option<String>,
    /// Generations to keep.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// An extra package repository for dnf (the agent's `--repo`); repeatable.
    #[arg(long = "package-repo", value_name = "NAME=URL", value_parser = agent::cli::parse_repo)]
    pub package_repos: Vec<(String, String)>,
    /// Do not check package signatures (dnf `--nogpgcheck`).
    #[arg(long)]
    pub nogpgcheck: bool,
    /// Who starts, stops and enables services: systemd, the agent's built-in supervisor
    /// (`centossrv-agent supervise` must run for the same root and state directory), or auto
    /// (systemd when it runs here).
    #[arg(long, value_enum, default_value_t = agent::cli_services::BackendChoice::Auto)]
    pub service_backend: agent::cli_services::BackendChoice,
}

fn error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_ERROR)
}

/// Runs `centossrv apply`.
pub fn apply(args: &ApplyArgs) -> ExitCode {
    let snapshot = match &args.repo.rev {
        Some(rev) => crate::source::read_git(&args.repo.path, rev),
        None => crate::source::read_dir(&args.repo.path),
    };
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let compiled = model::compile(&snapshot);
    if !compiled.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostics_output::human(&snapshot, &compiled.diagnostics)
        );
    }
    if compiled.has_errors() {
        let (errors, _) = diagnostics_output::summary(&compiled.diagnostics);
        return error(format!(
            "the fleet does not compile ({errors} error{}): nothing applied",
            if errors == 1 { "" } else { "s" }
        ));
    }
    let Some(desired) = compiled.model.desired_for(&args.node) else {
        let names = compiled.model.nodes.keys().map(String::as_str);
        let hint = model::diagnostic::did_you_mean(&args.node, names)
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        return error(format!("no node `{}` in the inventory{hint}", args.node));
    };
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| Store::default_dir(&args.root));
    let host = match RealHost::new(&args.root) {
        Ok(h) => h
            .with_package_options(PackageOptions {
                repos: args.package_repos.clone(),
                nogpgcheck: args.nogpgcheck,
            })
            .with_service_manager(agent::cli_services::manager(
                args.service_backend,
                &args.root,
                &state_dir,
            )),
        Err(e) => return error(e),
    };
    let store = Store::new(state_dir);
    let options = ApplyOptions {
        expect_digest: args.expect_digest.clone(),
        keep: usize::try_from(args.keep).unwrap_or(usize::MAX),
    };
    let report = match agent::apply(&host, &store, desired, &options) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let text = match args.format {
        ApplyFormat::Text => agent::output::apply(&report),
        ApplyFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(mut json) => {
                json.push('\n');
                json
            }
            Err(e) => return error(format!("cannot serialize the report: {e}")),
        },
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        // The host has changed by now: say so, with the agent's error code.
        return error(format!("cannot write the report: {e}"));
    }
    ExitCode::from(match report.status {
        ApplyStatus::Applied => EXIT_OK,
        ApplyStatus::Failed => EXIT_CHANGES_OR_FAILED,
        ApplyStatus::Stale => EXIT_STALE,
    })
}
