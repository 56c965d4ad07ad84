//! `centossrv blame NODE RESOURCE`: one resource's history on one node from the
//! reconciler's store (and its Git repository for authors and pull requests), newest first,
//! as text or JSON. Exit codes: 0 the timeline was printed, 1 unknown node or resource
//! (with close names), 2 usage, database or IO error.

use crate::blame::{self, BlameError, Entry, Timeline};
use crate::cli::Format;
use crate::cli_link::StoreArgs;
use clap::Args;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct BlameArgs {
    /// The node's name.
    pub node: String,
    /// The resource's id, `type:name` (e.g. `file:/etc/motd`, `service:nginx`).
    pub resource: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The Git repository the reconciler tracks, for authors, committers and pull requests
    /// (default with --data-dir: its mirror DIR/source.git, when present).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Entries read from each source (commits, apply runs, drift events), 1 to 1000.
    #[arg(long, default_value_t = blame::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(blame::MAX_LIMIT)))]
    pub limit: u32,
}

pub fn blame(args: &BlameArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.store.data_dir {
        let file = dir.join(store::SQLITE_FILE_NAME);
        if !file.is_file() {
            eprintln!(
                "error: no store at {} (--data-dir is the reconciler's data directory)",
                file.display()
            );
            return ExitCode::from(2);
        }
    }
    let repo = args.repo.clone().or_else(|| {
        args.store
            .data_dir
            .as_ref()
            .map(|d| d.join("source.git"))
            .filter(|p| p.is_dir())
    });
    let request = blame::Request {
        node: args.node.clone(),
        resource: args.resource.clone(),
        limit: args.limit,
        repo,
    };
    let result: Result<Timeline, BlameError> = runtime.block_on(async {
        let store = match args.store.open().await {
            Ok(store) => store,
            Err(e) => return Err(BlameError::Store(e)),
        };
        let result = blame::gather(&store, &request).await;
        store.close().await;
        result
    });
    let timeline = match result {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                BlameError::Store(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            };
        }
    };
    let text = match args.format {
        crate::cli::Format::Human => human(&timeline),
        crate::cli::Format::Json => match serde_json::to_string_pretty(&timeline) {
            Ok(mut s) => {
                s.push('\n');
                s
            }
            Err(e) => {
                eprintln!("error: cannot encode the timeline: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::from(2)
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The timeline as text: a header, one block per entry, newest first.
pub fn human(t: &Timeline) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} on {}", t.resource, t.node);
    match &t.current {
        Some(r) => {
            let _ = writeln!(
                s,
                "  desired now, declared in {}: {}:{}",
                r.origin.role, r.origin.file, r.origin.line
            );
        }
        None => {
            let _ = writeln!(s, "  not desired at the newest compiled commit");
        }
    }
    if let Some(note) = &t.git_note {
        let _ = writeln!(s, "  ({note})");
    }
    let _ = writeln!(s);
    if t.entries.is_empty() {
        let _ = writeln!(s, "no entries");
    }
    for e in &t.entries {
        let _ = write!(s, "{}  ", when(&e.at()));
        match e {
            Entry::Commit(c) => {
                let _ = writeln!(s, "commit {}  {}", short(&c.commit), c.change.as_str());
                if let Some(g) = &c.git {
                    let _ = writeln!(s, "    {}", g.summary);
                    let pr =
                        c.pr.as_ref()
                            .map(|p| format!("{} {p}, ", p.forge))
                            .unwrap_or_default();
                    let committer = if (&g.committer.name, &g.committer.email)
                        == (&g.author.name, &g.author.email)
                    {
                        String::new()
                    } else {
                        format!(", committed by {}", g.committer)
                    };
                    let _ = writeln!(
                        s,
                        "    {pr}author {}{committer}{}",
                        g.author,
                        if g.merge { " (merge)" } else { "" }
                    );
                }
                for p in &c.properties {
                    let _ = match (&p.before, &p.after) {
                        (None, None) => writeln!(s, "    {}: changed", p.name),
                        (b, a) => writeln!(
                            s,
                            "    {}: {} -> {}",
                            p.name,
                            b.as_deref().unwrap_or("-"),
                            a.as_deref().unwrap_or("-")
                        ),
                    };
                }
                if let Some(d) = &c.declared_in {
                    let _ = writeln!(s, "    declared in {d}");
                }
            }
            Entry::Apply(a) => {
                let _ = writeln!(
                    s,
                    "apply  run {} of {}  {}  resource {}{}",
                    a.run,
                    short(&a.commit),
                    a.status.unwrap_or("running"),
                    a.outcome.unwrap_or("no result"),
                    a.action.map(|x| format!(" ({x})")).unwrap_or_default()
                );
                if let Some(r) = &a.reason {
                    let _ = writeln!(s, "    reason: {r}");
                }
                if let Some(m) = &a.message {
                    let _ = writeln!(s, "    run: {m}");
                }
                if let Some(by) = &a.approved_by {
                    let _ = writeln!(s, "    approved by {by}");
                }
            }
            Entry::Drift(d) => {
                let _ = writeln!(
                    s,
                    "drift  event {}  would {}{}",
                    d.id,
                    d.action,
                    d.commit
                        .as_deref()
                        .map(|c| format!(" (against {})", short(c)))
                        .unwrap_or_default()
                );
                for p in &d.properties {
                    let _ = writeln!(
                        s,
                        "    {}: {} -> {}",
                        p.name,
                        p.before.as_deref().unwrap_or("-"),
                        p.after.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    if t.truncated {
        let _ = writeln!(
            s,
            "\nolder entries not shown{}; raise --limit to see more",
            t.shown_since
                .map(|at| format!(" (before {})", when(&at)))
                .unwrap_or_default()
        );
    }
    s
}
