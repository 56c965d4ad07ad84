//! Command-line interface of `centossrv`: argument parsing and the commands, each returning
//! its exit code. Exit codes: 0 success, 1 the fleet has errors, 2 usage or IO error;
//! `apply` uses the agent's (see [`crate::masterless`]).

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Forge {
    /// 65,536 characters per comment.
    Github,
    /// 1,000,000 characters per note.
    Gitlab,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
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
    /// Plan every node: what merging head would change, against the nodes' observed state.
    ///
    /// Exit codes: 0 success, 1 error (head does not compile, bad input), 2 usage or IO error;
    /// with --detailed-exitcode: 0 no changes, 1 error, 2 changes (as `terraform plan`).
    Plan(PlanArgs),
    /// Compile the repository and apply one node's desired state to this host, in one
    /// process (masterless, offline). Exit codes as `centossrv-agent apply`: 0 applied,
    /// 1 error (the fleet does not compile, unknown node, IO), 2 some resources failed,
    /// 3 stale.
    Apply(crate::masterless::ApplyArgs),
    /// Print one node's desired state as JSON (sensitive values as digests).
    Render {
        /// The node's name.
        #[arg(long)]
        node: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Run a local fleet in one command: a Git repository of example-repo, the reconciler
    /// on the embedded SQLite and a few agents on sandbox roots; shows a commit flowing
    /// through.
    Up(crate::up::UpArgs),
    /// Run the reconciler service: track the branch, compile each commit, plan and apply
    /// it on every enrolled node through its agent; REST API, agent link and webhook over
    /// HTTPS.
    Serve(Box<crate::serve::ServeArgs>),
    /// TLS certificates for the reconciler's HTTPS side.
    Certs {
        #[command(subcommand)]
        command: crate::cli_link::CertsCommand,
    },
    /// One-time tokens agents enroll with.
    EnrollToken {
        #[command(subcommand)]
        command: crate::cli_link::EnrollTokenCommand,
    },
    /// Users and their roles (`docs/access.md`).
    User {
        #[command(subcommand)]
        command: crate::cli_access::UserCommand,
    },
    /// API tokens of users.
    Token {
        #[command(subcommand)]
        command: crate::cli_access::TokenCommand,
    },
    /// The tamper-evident audit log: verify its hash chain, export it as JSON lines.
    Audit {
        #[command(subcommand)]
        command: crate::cli_audit::AuditCommand,
    },
    /// One resource's history on one node, newest first: the commits (and pull requests)
    /// that changed it, the apply runs with its outcome, the drift between. Exit codes: 0
    /// printed, 1 unknown node or resource, 2 usage, database or IO error.
    Blame(crate::cli_blame::BlameArgs),
}

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { repo, format } => validate(&repo, format),
        Command::Render { node, repo } => render(&repo, &node),
        Command::Plan(args) => plan(&args),
        Command::Apply(args) => crate::masterless::apply(&args),
        Command::Up(args) => up(&args),
        Command::Serve(args) => serve(&args),
        Command::Certs { command } => crate::cli_link::certs(&command),
        Command::EnrollToken { command } => crate::cli_link::enroll_token(&command),
        Command::User { command } => crate::cli_access::user(&command),
        Command::Token { command } => crate::cli_access::token(&command),
        Command::Audit { command } => crate::cli_audit::run(&command),
        Command::Blame(args) => crate::cli_blame::blame(&args),
    }
}

/// A multi-threaded runtime for the commands that run services.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn serve(args: &crate::serve::ServeArgs) -> ExitCode {
    let config = match crate::serve::Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::serve::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn up(args: &crate::up::UpArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::up::up(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
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

/// Arguments of `centossrv plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The fleet repository: a Git repository or a folder in one.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The revision the change is compared with (the PR's base). Without it every change
    /// counts as intent.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The revision to plan (the PR's head).
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// A directory of ObservedState JSON files, one per node. Nodes without one are
    /// planned as "state unknown".
    #[arg(long, value_name = "DIR")]
    pub observed: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// The previous JSON report of the same pull request, to show what moved since.
    #[arg(long, value_name = "FILE")]
    pub previous: Option<PathBuf>,
    /// The pull/merge request number recorded in the report.
    #[arg(long)]
    pub pr: Option<u64>,
    /// Whose comment size limit the Markdown must fit.
    #[arg(long, value_enum, default_value_t = Forge::Github)]
    pub forge: Forge,
    /// Link to the full plan, shown at the end of the report.
    #[arg(long)]
    pub link: Option<String>,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn plan(args: &PlanArgs) -> ExitCode {
    let head_snapshot = match source::read_git(&args.path, &args.head) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let base_snapshot = match &args.base {
        Some(rev) => match source::read_git(&args.path, rev) {
            Ok(s) => Some(s),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let observed = match &args.observed {
        Some(dir) => match crate::observed_dir::read(dir) {
            Ok(o) => o,
            Err(e) => return fail(e),
        },
        None => Default::default(),
    };
    let previous: Option<report::Report> = match &args.previous {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(r) => Some(r),
                Err(e) => return fail(format!("{}: not a plan report: {e}", path.display())),
            },
            Err(e) => return fail(format!("cannot read {}: {e}", path.display())),
        },
        None => None,
    };
    let (head, base) = report::fleet::compile_revisions(&head_snapshot, base_snapshot.as_ref());
    let plans = report::fleet::plan_fleet(&head, base.as_ref(), &observed);
    let labels = report::fleet::labels(&head);
    let mut built = report::build(report::ReportInput {
        head: head.model.commit.as_deref(),
        base: base.as_ref().and_then(|b| b.model.commit.as_deref()),
        pr: args.pr,
        plans: &plans,
        labels: &labels,
        diagnostics: &head.diagnostics,
        link: args.link.as_deref(),
    });
    if let Some(prev) = &previous {
        built.delta = Some(report::delta(prev, &built));
    }
    let text = match args.format {
        PlanFormat::Json => report::json::json(&built),
        PlanFormat::Markdown => report::markdown(
            &built,
            match args.forge {
                Forge::Github => report::Budget::GitHub,
                Forge::Gitlab => report::Budget::GitLab,
            },
        ),
        PlanFormat::Text => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    use std::io::IsTerminal;
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            let mut text = report::text::text(&built, color);
            if head.has_errors() {
                text.push_str(&diagnostics_output::human(
                    &head_snapshot,
                    &head.diagnostics,
                ));
            }
            text
        }
    };
    let code = print_stdout(&text);
    if code != ExitCode::SUCCESS {
        return code;
    }
    if head.has_errors() {
        ExitCode::from(1)
    } else if args.detailed_exitcode && built.would_change + built.removed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
