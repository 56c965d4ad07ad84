//! Command-line interface of `centossrv`: argument parsing and the commands, each returning
//! its exit code. Exit codes: 0 success, 1 the fleet has errors, 2 usage or IO error.

use crate::diagnostics_output;
use crate::source;
use clap::{Parser, Subcommand, ValueEnum};
use model::{Compiled, Snapshot};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "centossrv", version, about = "GitOps for CentOS/RHEL fleets")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Where to read the fleet repository from.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    /// The fleet repository (a directory, or with --rev a Git repository or a folder in one).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Read this revision from the Git object database instead of the files on disk.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the fleet repository: every problem at once, with file:line:column.
    Validate {
        #[command(flatten)]
        repo: RepoArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print one node's desired state as JSON (sensitive values as digests).
    Render {
        /// The node's name.
        #[arg(long)]
        node: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { repo, format } => validate(&repo, format),
        Command::Render { node, repo } => render(&repo, &node),
    }
}

fn load(repo: &RepoArgs) -> Result<Snapshot, ExitCode> {
    let result = match &repo.rev {
        Some(rev) => source::read_git(&repo.path, rev),
        None => source::read_dir(&repo.path),
    };
    result.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn print_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not a failure of the fleet.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(2)
        }
    }
}

fn closing_line(compiled: &Compiled) -> String {
    let (errors, warnings) = diagnostics_output::summary(&compiled.diagnostics);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let what = format!(
        "{}, {}",
        plural(compiled.model.nodes.len(), "node"),
        plural(compiled.model.roles.len(), "role")
    );
    if errors > 0 {
        format!(
            "error: fleet has {} and {} ({what})\n",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    } else {
        format!("ok: {what}, {}\n", plural(warnings, "warning"))
    }
}

fn validate(repo: &RepoArgs, format: Format) -> ExitCode {
    let snapshot = match load(repo) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let compiled = model::compile(&snapshot);
    let text = match format {
        Format::Human => {
            let mut text = diagnostics_output::human(&snapshot, &compiled.diagnostics);
            text.push_str(&closing_line(&compiled));
            text
        }
        Format::Json => {
            let mut text = diagnostics_output::json(&compiled);
            text.push('\n');
            text
        }
    };
    let code = print_stdout(&text);
    if code != ExitCode::SUCCESS {
        return code;
    }
    if compiled.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn render(repo: &RepoArgs, node: &str) -> ExitCode {
    let snapshot = match load(repo) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let compiled = model::compile(&snapshot);
    if compiled.has_errors() {
        let mut text = diagnostics_output::human(&snapshot, &compiled.diagnostics);
        text.push_str(&closing_line(&compiled));
        eprint!("{text}");
        return ExitCode::from(1);
    }
    let Some(desired) = compiled.model.desired_for(node) else {
        let names = compiled.model.nodes.keys().map(String::as_str);
        let hint = model::diagnostic::did_you_mean(node, names)
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        eprintln!("error: no node `{node}` in the inventory{hint}");
        return ExitCode::from(2);
    };
    match serde_json::to_string_pretty(&desired.redacted()) {
        Ok(mut json) => {
            json.push('\n');
            print_stdout(&json)
        }
        Err(e) => {
            eprintln!("error: cannot serialize the desired state: {e}");
            ExitCode::from(2)
        }
    }
}
