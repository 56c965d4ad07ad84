//! End to end: a bare Git repository, the real `centossrv serve` (TLS, port 0, SQLite in a
//! temp data dir, or a fresh PostgreSQL database) and three real `centossrv-agent run`
//! processes on sandbox roots. Nothing is applied from a branch; main converges everywhere;
//! a second identical push changes nothing; a hand edit is recorded as drift and reverted;
//! a restarted reconciler picks everything up again.

mod forge;
mod harness;

use harness::{Process, bin, git, run, wait_for, write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const NODES: [&str; 3] = ["web-01", "web-02", "web-03"];
const CONVERGE: Duration = Duration::from_secs(60);

fn fleet(root: &Path, motd: &str) {
    write(
        root,
        "centossrv.yaml",
        "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: e2e}\nspec:\n  drift: {mode: enforce}\n  staleApply: replan\n",
    );
    for n in NODES {
        write(
            root,
            &format!("nodes/{n}.yaml"),
            &format!(
                "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: {n}\n  labels: {{role: web}}\n"
            ),
        );
    }
    write(
        root,
        "roles/web.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - directory: /etc/app\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/app/secret.env\n      content: \"TOKEN=hunter2\\n\"\n      sensitive: true\n",
    );
    write(
        root,
        "files/motd.j2",
        &format!("{motd} {{{{ node.name }}}}\n"),
    );
}

/// Which database the reconciler uses.
enum Db {
    Sqlite,
    Postgres { admin: String, name: String },
}

impl Db {
    fn url(&self, data: &Path) -> String {
        match self {
            Db::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                data.join("centossrv.db").to_str().expect("utf-8")
            ),
            Db::Postgres { admin, name } => {
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }
}

struct Fleet {
    dir: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
    data: PathBuf,
    tls: PathBuf,
    db: Db,
}

impl Fleet {
    fn new(db: Db) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let bare = dir.path().join("fleet.git");
        let work = dir.path().join("work");
        let data = dir.path().join("data");
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&work).expect("mkdir");
        std::fs::create_dir_all(&data).expect("mkdir");
        git(
            dir.path(),
            &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
        );
        git(&work, &["init", "-q"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf-8")],
        );
        fleet(&work, "v1");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "v1"]);
        run(Command::new(bin("centossrv")).args([
            "certs",
            "init",
            "--dir",
            tls.to_str().expect("utf-8"),
        ]));
        Fleet {
            dir,
            work,
            bare,
            data,
            tls,
            db,
        }
    }

    fn db_args(&self) -> Vec<String> {
        match self.db {
            Db::Sqlite => vec!["--data-dir".into(), self.data.display().to_string()],
            Db::Postgres { .. } => vec![
                "--data-dir".into(),
                self.data.display().to_string(),
                "--database-url".into(),
                self.db.url(&self.data),
            ],
        }
    }

    /// Starts the reconciler on `port` (0: any) and returns it with its address.
    fn serve(&self, port: u16) -> (Process, String) {
        self.serve_with(port, &[])
    }

    /// [`Fleet::serve`] with more flags.
    fn serve_with(&self, port: u16, extra: &[&str]) -> (Process, String) {
        let mut cmd = Command::new(bin("centossrv"));
        cmd.arg("serve")
            .args(extra)
            .args(self.db_args())
            .args(["--repo", self.bare.to_str().expect("utf-8")])
            .args(["--branch", "main", "--poll", "500ms", "--heartbeat", "1s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--tls-cert",
                &self.tls.join("server.pem").display().to_string(),
            ])
            .args([
                "--tls-key",
                &self.tls.join("server-key.pem").display().to_string(),
            ])
            .env("RUST_LOG", "info");
        let (process, lines) = Process::start(
            "centossrv serve",
            &mut cmd,
            self.dir.path().join(format!("serve-{port}.log")),
        );
        let addr = listening(&lines, &process);
        (process, addr)
    }

    fn token(&self) -> String {
        // The database alone: `--data-dir` is only for the embedded one.
        let db = match self.db {
            Db::Sqlite => vec!["--data-dir".to_owned(), self.data.display().to_string()],
            Db::Postgres { .. } => vec!["--database-url".to_owned(), self.db.url(&self.data)],
        };
        let out = run(Command::new(bin("centossrv"))
            .args(["enroll-token", "create"])
            .args(db));
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with("cset_"))
            .unwrap_or_else(|| panic!("no token in {out:?}"))
            .to_owned()
    }

    fn root(&self, node: &str) -> PathBuf {
        self.dir.path().join("roots").join(node)
    }

    fn agent(&self, node: &str, addr: &str, token: Option<&str>) -> Process {
        let root = self.root(node);
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        let mut cmd = Command::new(bin("centossrv-agent"));
        cmd.args(["run", "--server", &format!("wss://{addr}"), "--node", node])
            .args(["--ca", &self.tls.join("ca.pem").display().to_string()])
            .args(["--root", root.to_str().expect("utf-8")])
            .args([
                "--state-dir",
                &self
                    .dir
                    .path()
                    .join("state")
                    .join(node)
                    .display()
                    .to_string(),
            ])
            .env("RUST_LOG", "info");
        if let Some(token) = token {
            cmd.args(["--enroll", token]);
        }
        let log = self.dir.path().join(format!("agent-{node}.log"));
        Process::start(&format!("agent {node}"), &mut cmd, log).0
    }

    fn push(&self, refname: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                "origin",
                &format!("HEAD:refs/heads/{refname}"),
            ],
        );
    }

    fn motd(&self, node: &str) -> Option<String> {
        std::fs::read_to_string(self.root(node).join("etc/motd")).ok()
    }

    fn store(&self, rt: &tokio::runtime::Runtime) -> store::Store {
        rt.block_on(store::Store::open(&self.db.url(&self.data)))
            .expect("open the reconciler's database")
    }
}

/// Reads the reconciler's stdout until it says where it listens.
fn listening(lines: &mpsc::Receiver<String>, process: &Process) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    return rest.split_whitespace().next().expect("address").to_owned();
                }
            }
            Err(e) => panic!(
                "the reconciler never said where it listens ({e}):\n{}",
                process.log_text()
            ),
        }
    }
}

fn runs(rt: &tokio::runtime::Runtime, store: &store::Store, node: &str) -> Vec<store::ApplyRun> {
    rt.block_on(store.apply_runs_for(node, 100)).expect("runs")
}

fn applied(rt: &tokio::runtime::Runtime, store: &store::Store, node: &str) -> usize {
    runs(rt, store, node)
        .iter()
        .filter(|r| r.status == Some(store::RunStatus::Applied))
        .count()
}

fn head(work: &Path) -> String {
    run(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(work))
    .trim()
    .to_owned()
}

/// Waits until every node's runs satisfy `done`; on timeout shows every run.
fn wait_for_runs(
    rt: &tokio::runtime::Runtime,
    db: &store::Store,
    what: &str,
    done: impl Fn(&[store::ApplyRun]) -> bool,
) {
    let deadline = std::time::Instant::now() + CONVERGE;
    while std::time::Instant::now() < deadline {
        if NODES.iter().all(|node| done(&runs(rt, db, node))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let all: Vec<String> = NODES
        .iter()
        .flat_map(|node| runs(rt, db, node))
        .map(|r| {
            format!(
                "{} {} {:?} {:?}",
                r.node,
                &r.commit[..8],
                r.status,
                r.message
            )
        })
        .collect();
    panic!("timed out waiting for {what}; runs:\n{}", all.join("\n"));
}

fn flow(db: Db) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = Fleet::new(db);
    // Reviewed on a branch: pushed before anything runs, and never applied.
    f.push("feature");
    let (mut server, addr) = f.serve(0);
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut agents: Vec<Process> = NODES
        .iter()
        .map(|n| {
            let token = f.token();
            f.agent(n, &addr, Some(&token))
        })
        .collect();
    let db = f.store(&rt);
    wait_for("three agents connected and observed", CONVERGE, || {
        NODES.iter().all(|n| {
            rt.block_on(db.node(n))
                .ok()
                .flatten()
                .is_some_and(|node| node.reported_at.is_some() || node.facts.is_some())
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    for n in NODES {
        assert_eq!(f.motd(n), None, "{n} got something from a feature branch");
        assert!(
            runs(&rt, &db, n).is_empty(),
            "{n} has an apply run from a branch"
        );
    }

    // Merged: every node converges, each with one recorded run.
    f.push("main");
    wait_for("main applied everywhere", CONVERGE, || {
        NODES
            .iter()
            .all(|n| f.motd(n).as_deref() == Some(&format!("v1 {n}\n")))
    });
    wait_for_runs(&rt, &db, "one applied run per node", |runs| {
        runs.len() == 1 && runs[0].status == Some(store::RunStatus::Applied)
    });
    for n in NODES {
        let secret = std::fs::read_to_string(f.root(n).join("etc/app/secret.env")).expect("secret");
        assert_eq!(secret, "TOKEN=hunter2\n");
    }

    // A second identical push (a commit that changes nothing for the nodes) applies nothing.
    write(&f.work, "README.md", "docs only\n");
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-qm", "docs"]);
    f.push("main");
    std::thread::sleep(Duration::from_secs(4));
    for n in NODES {
        assert_eq!(
            applied(&rt, &db, n),
            1,
            "{n} applied again for an identical state"
        );
    }

    // A hand edit is drift: recorded, and reverted (the fleet's drift mode is enforce).
    std::fs::write(f.root("web-02").join("etc/motd"), "hand edit\n").expect("edit");
    wait_for("drift recorded", CONVERGE, || {
        rt.block_on(db.list_drift(Some("web-02"), None, 100))
            .map(|p| !p.items.is_empty())
            .unwrap_or(false)
    });
    wait_for("drift reverted", CONVERGE, || {
        f.motd("web-02").as_deref() == Some("v1 web-02\n")
    });

    // The reconciler goes away; a commit lands meanwhile; it comes back on the same port.
    server.stop();
    fleet(&f.work, "v2");
    git(&f.work, &["commit", "-qam", "v2"]);
    f.push("main");
    std::thread::sleep(Duration::from_secs(1));
    let (mut server, _) = f.serve(port);
    wait_for("v2 everywhere after the restart", CONVERGE, || {
        NODES
            .iter()
            .all(|n| f.motd(n).as_deref() == Some(&format!("v2 {n}\n")))
    });
    let v2 = head(&f.work);
    wait_for_runs(&rt, &db, "v2 applied on every node", |runs| {
        runs.iter()
            .any(|r| r.commit == v2 && r.status == Some(store::RunStatus::Applied))
    });
    // Each agent's heartbeat reports its generations (the status page's node view): the
    // newest is the v2 apply.
    wait_for("generations reported", CONVERGE, || {
        NODES.iter().all(|n| {
            rt.block_on(db.node(n))
                .ok()
                .flatten()
                .and_then(|node| node.facts)
                .and_then(|facts| facts.get("centossrv_generations").cloned())
                .and_then(|g| g.as_array().and_then(|list| list.first().cloned()))
                .is_some_and(|newest| newest["commit"] == v2.as_str())
        })
    });
    let verdict = rt.block_on(db.audit_verify()).expect("verify");
    assert!(format!("{verdict:?}").contains("Intact"), "{verdict:?}");
    for agent in &mut agents {
        agent.stop();
    }
    server.stop();
    rt.block_on(db.close());
    if let Db::Sqlite = f.db {
        let bytes = std::fs::read(f.data.join("centossrv.db")).expect("db");
        assert!(
            !bytes.windows(7).any(|w| w == b"hunter2"),
            "a secret reached the database"
        );
    }
}

#[test]
fn fleet_converges_after_merge_on_sqlite() {
    flow(Db::Sqlite);
}

#[test]
fn fleet_converges_after_merge_on_postgres() {
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        eprintln!("skipped: DATABASE_URL is not set (the PostgreSQL run of the end-to-end test)");
        return;
    };
    let name = format!("centossrv_e2e_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .expect("drop");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create");
    });
    flow(Db::Postgres {
        admin: admin.clone(),
        name: name.clone(),
    });
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    });
}

/// The README's first command: `centossrv up` runs example-repo with agents and shows a
/// commit flowing through (`--exit` ends it after the demo).
#[test]
fn up_runs_the_example_fleet_and_a_commit_flows_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("centossrv"))
        .args(["up", "--exit", "--agents", "2", "--timeout", "90s", "--dir"])
        .arg(dir.path().join("up"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run centossrv up");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "reconciler  https://127.0.0.1:",
        "on main: planned against what each agent observes",
        "pushed to main (edits files/base/motd.j2)",
        "(file:/etc/motd)",
        "stopping (--exit)",
    ] {
        assert!(stdout.contains(part), "`{part}` missing from:\n{stdout}");
    }
    // The demo edit reached the sandbox roots.
    let roots = dir.path().join("up/roots");
    let mut seen = 0;
    for entry in std::fs::read_dir(&roots).expect("roots") {
        let motd =
            std::fs::read_to_string(entry.expect("entry").path().join("etc/motd")).expect("motd");
        assert!(motd.contains("this line arrived by a Git push"), "{motd}");
        seen += 1;
    }
    assert_eq!(seen, 2);
}
