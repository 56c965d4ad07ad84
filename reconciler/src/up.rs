//! `centossrv up`: the one-command local fleet. Makes a Git repository of a fleet
//! (example-repo by default), a dev CA, starts `centossrv serve` on it with the embedded
//! SQLite and a few `centossrv-agent run` processes on sandbox roots, all under one
//! directory, then shows a commit flowing through: pushed, planned, approved, applied.
//! Every piece is the real binary; nothing is simulated.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// The fleet to run [default: example-repo of this checkout].
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Directory for everything (repository, database, roots, logs) [default: a new
    /// directory under the system's temp dir, kept after exit].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// How many of the fleet's nodes get an agent.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub agents: u16,
    /// Port of the reconciler (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Exit after the demo commit has been applied instead of running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// How long to wait for each step.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Why `up` stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Step(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpError {
    let what = what.into();
    move |source| UpError::Io { what, source }
}

/// Child processes, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug, Default)]
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(child),
                rustix::process::Signal::TERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        eprintln!("{name} did not stop on SIGTERM; killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn git(dir: &Path, args: &[&str]) -> Result<String, UpError> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=centossrv up",
            "-c",
            "user.email=up@localhost",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io("run git (is Git installed?)"))?;
    if !out.status.success() {
        return Err(UpError::Step(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn exe(name: &str) -> Result<PathBuf, UpError> {
    let me = std::env::current_exe().map_err(io("find this executable"))?;
    let path = me.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(UpError::Step(format!(
            "{} not found next to {} (run `cargo build` first)",
            name,
            me.display()
        )))
    }
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<String, UpError> {
    let out = cmd.output().map_err(io(what.to_owned()))?;
    if !out.status.success() {
        return Err(UpError::Step(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn default_repo() -> PathBuf {
    let here = PathBuf::from("example-repo");
    if here.join("centossrv.yaml").is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-repo")
}

/// Copies the fleet's files into a fresh Git repository and pushes it to a bare one.
fn make_repository(fleet: &Path, dir: &Path) -> Result<(PathBuf, PathBuf), UpError> {
    let snapshot = crate::source::read_dir(fleet).map_err(|e| UpError::Step(e.to_string()))?;
    let work = dir.join("work");
    let bare = dir.join("fleet.git");
    for (path, bytes) in &snapshot.files {
        let target = work.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&target, bytes).map_err(io(format!("write {}", target.display())))?;
    }
    git(dir, &["init", "-q", "--bare", "fleet.git"])?;
    git(&work, &["init", "-q"])?;
    git(&work, &["add", "-A"])?;
    git(
        &work,
        &["commit", "-qm", "The fleet, as centossrv up found it"],
    )?;
    git(
        &work,
        &["remote", "add", "origin", &bare.display().to_string()],
    )?;
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"])?;
    Ok((work, bare))
}

/// Waits until every node has a finished apply run of `commit`; returns them.
async fn wait_applied(
    db: &store::Store,
    nodes: &[String],
    commit: &str,
    timeout: Duration,
) -> Result<Vec<store::ApplyRun>, UpError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut done = Vec::new();
        for node in nodes {
            let runs = db
                .apply_runs_for(node, 20)
                .await
                .map_err(|e| UpError::Step(e.to_string()))?;
            if let Some(run) = runs
                .into_iter()
                .find(|r| r.commit == commit && r.finished_at.is_some())
            {
                done.push(run);
            }
        }
        if done.len() == nodes.len() {
            return Ok(done);
        }
        if Instant::now() > deadline {
            return Err(UpError::Step(format!(
                "{} of {} nodes applied {} within {timeout:?}; see the logs",
                done.len(),
                nodes.len(),
                &commit[..12.min(commit.len())]
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn show_runs(runs: &[store::ApplyRun]) {
    for run in runs {
        let count = |o: store::Outcome| run.results.iter().filter(|r| r.outcome == o).count();
        let changed: Vec<String> = run
            .results
            .iter()
            .filter(|r| r.outcome == store::Outcome::Changed)
            .map(|r| r.resource.to_string())
            .take(4)
            .collect();
        say(format!(
            "    {:<14} {:<8} {:>3} changed, {:>3} unchanged, {:>3} failed{}",
            run.node,
            run.status.map_or("running", |s| s.as_str()),
            count(store::Outcome::Changed),
            count(store::Outcome::Unchanged),
            count(store::Outcome::Failed),
            if changed.is_empty() {
                String::new()
            } else {
                format!(
                    "  ({}{})",
                    changed.join(", "),
                    if count(store::Outcome::Changed) > 4 {
                        ", ..."
                    } else {
                        ""
                    }
                )
            }
        ));
    }
}

/// Runs the local fleet.
pub async fn up(args: &UpArgs) -> Result<(), UpError> {
    let started = Instant::now();
    let fleet = args.repo.clone().unwrap_or_else(default_repo);
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("centossrv-up-")
            .tempdir()
            .map_err(io("create a temp directory"))?
            .keep(),
    };
    let dir = std::fs::canonicalize(&dir).map_err(io(format!("resolve {}", dir.display())))?;
    let centossrv = exe("centossrv")?;
    let agent_exe = exe("centossrv-agent")?;
    let compiled =
        model::compile(&crate::source::read_dir(&fleet).map_err(|e| UpError::Step(e.to_string()))?);
    if compiled.has_errors() {
        return Err(UpError::Step(format!(
            "{} does not compile; run `centossrv validate {}`",
            fleet.display(),
            fleet.display()
        )));
    }
    let nodes: Vec<String> = compiled
        .model
        .nodes
        .keys()
        .take(usize::from(args.agents))
        .cloned()
        .collect();
    say(format!("centossrv up: a local fleet in {}", dir.display()));
    let (work, bare) = make_repository(&fleet, &dir)?;
    let first = git(&work, &["rev-parse", "HEAD"])?;
    let tls = dir.join("tls");
    if !tls.join("server.pem").is_file() {
        run_tool(
            Command::new(&centossrv)
                .args(["certs", "init", "--dir"])
                .arg(&tls),
            "centossrv certs init",
        )?;
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(io("create the data directory"))?;
    let mut children = Children::default();
    let serve_log = std::fs::File::create(dir.join("serve.log")).map_err(io("create serve.log"))?;
    let mut serve = Command::new(&centossrv)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--repo")
        .arg(&bare)
        .args(["--branch", "main", "--poll", "1s", "--heartbeat", "5s"])
        // A local demo on loopback: reads open, writes still need a signed-in user.
        .arg("--anonymous-read")
        .args(["--listen", &format!("127.0.0.1:{}", args.port)])
        .arg("--tls-cert")
        .arg(tls.join("server.pem"))
        .arg("--tls-key")
        .arg(tls.join("server-key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(serve_log)
        .spawn()
        .map_err(io("start centossrv serve"))?;
    let stdout = serve.stdout.take();
    children.0.push(("centossrv serve".into(), serve));
    let addr = {
        let stdout = stdout.ok_or_else(|| UpError::Step("no stdout from serve".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        rx.recv_timeout(args.timeout).map_err(|_| {
            UpError::Step(format!(
                "the reconciler did not start; see {}",
                dir.join("serve.log").display()
            ))
        })?
    };
    say(format!(
        "  reconciler  https://{addr}   (log: {}/serve.log)",
        dir.display()
    ));
    say(format!(
        "  API         curl --cacert {0}/tls/ca.pem https://{addr}/api/v1/fleet   (also /api/v1/nodes, /api/openapi.json, /metrics)",
        dir.display()
    ));
    say(format!(
        "  repository  {} (branch main); edit {} and `git commit -a && git push`",
        bare.display(),
        work.display()
    ));
    for node in &nodes {
        let token = run_tool(
            Command::new(&centossrv)
                .args(["enroll-token", "create", "--ttl", "10m", "--data-dir"])
                .arg(&data),
            "centossrv enroll-token create",
        )?;
        let token = token
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("cset_"))
            .ok_or_else(|| UpError::Step("enroll-token create printed no token".into()))?
            .to_owned();
        let root = dir.join("roots").join(node);
        std::fs::create_dir_all(root.join("etc")).map_err(io("create a sandbox root"))?;
        let log = std::fs::File::create(dir.join(format!("agent-{node}.log")))
            .map_err(io("create an agent log"))?;
        let child = Command::new(&agent_exe)
            .args(["run", "--server", &format!("wss://{addr}"), "--node", node])
            .arg("--ca")
            .arg(tls.join("ca.pem"))
            .arg("--root")
            .arg(&root)
            .arg("--state-dir")
            .arg(dir.join("state").join(node))
            .args(["--enroll", &token])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("start centossrv-agent run"))?;
        children.0.push((format!("agent {node}"), child));
    }
    say(format!(
        "  agents      {} on sandbox roots under {}/roots (enrolled with one-time tokens)",
        nodes.join(", "),
        dir.display()
    ));
    let db = store::Store::open_data_dir(&data)
        .await
        .map_err(|e| UpError::Step(e.to_string()))?;
    say(format!(
        "\ncommit {} on main: planned against what each agent observes, approved, applied",
        &first[..12]
    ));
    let runs = wait_applied(&db, &nodes, &first, args.timeout).await?;
    show_runs(&runs);
    say(
        "    (packages and services need a package repository and systemd or the supervisor; on a sandbox root they fail, and say why in the logs)",
    );

    // A change flowing through: one template edited, committed, pushed.
    let motd = work.join("files/base/motd.j2");
    let edit_target = if motd.is_file() {
        motd
    } else {
        work.join("README.md")
    };
    let mut text = std::fs::read_to_string(&edit_target).unwrap_or_default();
    text.push_str("Managed by centossrv: this line arrived by a Git push.\n");
    std::fs::write(&edit_target, text).map_err(io("edit the demo file"))?;
    git(
        &work,
        &["commit", "-qam", "Demo: a line in the login banner"],
    )?;
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"])?;
    let second = git(&work, &["rev-parse", "HEAD"])?;
    let pushed = Instant::now();
    say(format!(
        "\ncommit {} pushed to main (edits {}):",
        &second[..12],
        edit_target
            .strip_prefix(&work)
            .unwrap_or(&edit_target)
            .display()
    ));
    let runs = wait_applied(&db, &nodes, &second, args.timeout).await?;
    show_runs(&runs);
    say(format!(
        "\napplied on {} nodes {:.1}s after the push ({:.1}s since `up` started)",
        nodes.len(),
        pushed.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    db.close().await;
    if args.exit {
        say("stopping (--exit)");
        return Ok(());
    }
    say("running; Ctrl-C stops the reconciler and the agents");
    let _ = tokio::signal::ctrl_c().await;
    say("stopping");
    Ok(())
}
