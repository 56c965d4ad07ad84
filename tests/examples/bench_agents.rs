//! Benchmark (not a test): N real agent links (WebSocket over TLS on loopback, the agent
//! library's own session code, one thread each, in this one load-generator process, each on
//! its own sandbox root) against one real `centossrv serve` process. Measures the time from
//! a commit reaching main to every node reporting it applied, and the reconciler's memory.
//!
//! `cargo run --release -p tests --example bench_agents -- [--agents 1000] [--poll 100ms]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

fn fleet(work: &Path, agents: usize, motd: &str) {
    write(
        work,
        "centossrv.yaml",
        "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: bench}\nspec:\n  staleApply: replan\n",
    );
    for i in 0..agents {
        let n = node_name(i);
        write(
            work,
            &format!("nodes/{n}.yaml"),
            &format!(
                "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: {n}\n  labels: {{role: web}}\n"
            ),
        );
    }
    write(
        work,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - directory: /etc/app\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/app/app.conf\n      content: \"workers = 4\\n\"\n",
    );
    write(
        work,
        "files/motd.j2",
        &format!("{motd} {{{{ node.name }}}}\n"),
    );
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn applied(db: &sqlx::SqlitePool, commit: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT node_id) FROM apply_runs WHERE commit_sha = $1 AND status = 'applied'",
    )
    .bind(commit)
    .fetch_one(db)
    .await
    .unwrap_or(0)
}

async fn wait_applied(
    db: &sqlx::SqlitePool,
    commit: &str,
    agents: usize,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let n = applied(db, commit).await;
        if n as usize >= agents {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            panic!("only {n} of {agents} applied {commit} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn head(work: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(work)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn main() {
    let mut agents = 1000usize;
    let mut poll = "100ms".to_owned();
    // The agents' roots and state: on real fleets every agent writes to its own disk, so by
    // default they live on tmpfs here, and only the reconciler's database is on this disk.
    let mut agent_dir = PathBuf::from("/dev/shm");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agents" => {
                agents = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--agents N")
            }
            "--poll" => poll = args.next().expect("--poll DURATION"),
            "--agent-dir" => agent_dir = PathBuf::from(args.next().expect("--agent-dir DIR")),
            other => panic!("unknown argument {other}"),
        }
    }
    let exe = std::env::current_exe().expect("exe");
    let bin_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let centossrv: PathBuf = bin_dir.join("centossrv");
    assert!(
        centossrv.is_file(),
        "build the binaries first: cargo build --release -p reconciler"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let agents_dir = tempfile::tempdir_in(&agent_dir).expect("agent dir");
    let work = dir.path().join("work");
    let bare = dir.path().join("fleet.git");
    let data = dir.path().join("data");
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(
        dir.path(),
        &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
    );
    git(&work, &["init", "-q"]);
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    fleet(&work, agents, "v1");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "v1"]);
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    let v1 = head(&work);
    let status = Command::new(&centossrv)
        .args(["certs", "init", "--dir"])
        .arg(&tls)
        .stdout(Stdio::null())
        .status()
        .expect("certs");
    assert!(status.success());
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
    let mut server = Command::new(&centossrv)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--repo")
        .arg(&bare)
        .args([
            "--poll",
            &poll,
            "--heartbeat",
            "30s",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(tls.join("server.pem"))
        .arg("--tls-key")
        .arg(tls.join("server-key.pem"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("serve");
    let pid = server.id();
    let addr = {
        use std::io::BufRead as _;
        let stdout = server.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read");
        line.split("listening on https://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("address")
            .to_owned()
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(store::Store::open_data_dir(&data))
        .expect("store");
    let db = rt
        .block_on(sqlx::SqlitePool::connect(&format!(
            "sqlite://{}?mode=ro",
            data.join(store::SQLITE_FILE_NAME).display()
        )))
        .expect("read-only pool");
    let setup = Instant::now();
    let tokens: Vec<String> = (0..agents)
        .map(|_| {
            rt.block_on(store.create_enrollment_token(Duration::from_secs(3600), "bench", None))
                .expect("token")
        })
        .collect();
    let tls_config = agent::link::endpoint::client_config(Some(&tls.join("ca.pem"))).expect("tls");
    let endpoint =
        agent::link::endpoint::Endpoint::parse(&format!("wss://{addr}"), false).expect("url");
    let shutdown = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let node = node_name(i);
        let root = agents_dir.path().join("roots").join(&node);
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        let config = agent::link::LinkConfig {
            server: endpoint.clone(),
            node: node.clone(),
            enroll_token: Some(token),
            tls: Arc::clone(&tls_config),
            state_dir: agents_dir.path().join("state").join(&node),
            enforce: false,
            offline_interval: Duration::from_secs(3600),
            watch: agent::watch::WatchOptions {
                interval: Duration::from_secs(3600),
                ..agent::watch::WatchOptions::default()
            },
            keep: 2,
            agent_version: "bench".into(),
        };
        let host = Arc::new(agent::RealHost::new(&root).expect("host"));
        let stop = Arc::clone(&shutdown);
        threads.push(
            std::thread::Builder::new()
                .name(node)
                .stack_size(512 * 1024)
                .spawn(move || {
                    if let Err(e) = agent::link::run(config, host, &stop) {
                        eprintln!("agent stopped: {e}");
                    }
                })
                .expect("thread"),
        );
    }
    let first = rt.block_on(wait_applied(&db, &v1, agents, Duration::from_secs(600)));
    let (rss_v1, _) = rss_kib(pid);
    println!(
        "setup (tokens, {agents} threads) {:.2}s; first convergence of {agents} agents (enroll, connect, observe, apply v1): {:.2}s",
        setup.elapsed().as_secs_f64() - first.as_secs_f64(),
        first.as_secs_f64()
    );
    // The measured change: a new commit on main, one file changes on every node.
    fleet(&work, agents, "v2");
    git(&work, &["commit", "-qam", "v2"]);
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    let v2 = head(&work);
    let took = rt.block_on(wait_applied(&db, &v2, agents, Duration::from_secs(600)));
    let (rss, hwm) = rss_kib(pid);
    println!(
        "| agents | push on main -> all applied | reconciler RSS after | peak RSS | poll | reconciler data | agents' roots |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {agents} | {:.2} s | {:.0} MB | {:.0} MB | {poll} | {} | {} |",
        took.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        dir.path().display(),
        agents_dir.path().display()
    );
    println!(
        "(RSS after first convergence: {:.0} MB)",
        rss_v1 as f64 / 1024.0
    );
    shutdown.store(true, Ordering::SeqCst);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.wait();
    for t in threads {
        let _ = t.join();
    }
}
