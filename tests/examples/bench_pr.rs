//! Benchmark (not a test): the time from a GitHub `pull_request` webhook reaching the real
//! `centossrv serve` to the plan comment request reaching GitHub (the strict fake GitHub in
//! this process), for a fleet of N nodes (default 1,000) whose observed states are in the
//! reconciler's SQLite store, 10% of them drifted.
//!
//! Each run pushes a new head to the pull request (so the comment must change), then times
//! webhook delivery (TLS, signature check) -> coalescing window -> fetch, compile head and
//! base, plan every node, render -> comment request. The service's coalescing window is part
//! of the figure; `--coalesce 0s` shows the time without it.
//!
//! `cargo run --release -p tests --example bench_pr -- [--nodes 1000] [--runs 10] [--coalesce 200ms]`

use forge_fake::github::FakeGitHub;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-webhook-secret";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// N nodes in three roles, about 20 resources each, templates rendered per node.
fn fleet(work: &Path, nodes: usize, motd: &str) {
    write(
        work,
        "centossrv.yaml",
        "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: bench}\n",
    );
    for i in 0..nodes {
        let role = ["web", "db", "cache"][i % 3];
        write(
            work,
            &format!("nodes/node-{i:05}.yaml"),
            &format!(
                "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: node-{i:05}\n  labels: {{role: {role}, dc: dc{}}}\n",
                i % 4
            ),
        );
    }
    for role in ["web", "db", "cache"] {
        let mut resources = String::from(
            "    - directory: /etc/app\n    - file: /etc/motd\n      template: files/motd.j2\n",
        );
        for k in 0..18 {
            resources.push_str(&format!(
                "    - file: /etc/app/{role}-{k}.conf\n      content: \"{role} setting {k}\\n\"\n      mode: \"0644\"\n"
            ));
        }
        write(
            work,
            &format!("roles/{role}.yaml"),
            &format!(
                "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: {role}}}\nspec:\n  selector: {{matchLabels: {{role: {role}}}}}\n  resources:\n{resources}"
            ),
        );
    }
    write(
        work,
        "files/motd.j2",
        &format!("{motd} {{{{ node.name }}}}\n"),
    );
}

fn sign(body: &[u8]) -> String {
    // GitHub's `X-Hub-Signature-256` has the generic webhook's format.
    reconciler::webhook::sign(SECRET.as_bytes(), body)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes: usize = arg(&args, "--nodes", 1000);
    let runs: usize = arg(&args, "--runs", 10);
    let coalesce: String = arg(&args, "--coalesce", "200ms".to_owned());
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("fleet");
    let data = dir.path().join("data");
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::create_dir_all(&data).expect("mkdir");
    git(&work, &["init", "-q"]);
    fleet(&work, nodes, "v1");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "v1"]);
    let base = git(&work, &["rev-parse", "HEAD"]);
    let exe = std::env::current_exe().expect("exe");
    let bin_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned();
    let centossrv = bin_dir.join("centossrv");
    assert!(
        centossrv.exists(),
        "build the binary first: cargo build --release -p reconciler"
    );
    let status = Command::new(&centossrv)
        .args(["certs", "init", "--dir", tls.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .status()
        .expect("certs init");
    assert!(status.success());

    // Observed states: every node as v1 says, 10% with a hand-edited file.
    let compiled = model::compile(&reconciler::source::read_dir(&work).expect("read fleet"));
    assert!(!compiled.has_errors(), "the generated fleet compiles");
    let store = rt
        .block_on(store::Store::open_data_dir(&data))
        .expect("store");
    let started = Instant::now();
    for (i, (name, desired)) in compiled.model.desired().enumerate() {
        let mut observed = state::ObservedState::new(name);
        observed.observed_at = Some("2026-11-24T00:00:00Z".into());
        for resource in &desired.resources {
            observed
                .resources
                .insert(resource.id.clone(), resource.spec.clone());
        }
        if i % 10 == 0 {
            let motd = desired
                .resources
                .iter()
                .find(|r| r.id.name == "/etc/motd")
                .expect("motd");
            if let state::Spec::File(mut file) = motd.spec.clone() {
                let text = format!("hand edit on {name}\n");
                file.sha256 = Some(state::digest::sha256(text.as_bytes()));
                file.content = Some(Arc::from(text.as_str()));
                observed
                    .resources
                    .insert(motd.id.clone(), state::Spec::File(file));
            }
        }
        rt.block_on(store.record_observed(&observed))
            .expect("record");
    }
    rt.block_on(store.close());
    eprintln!(
        "{nodes} observed states stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let fake = rt.block_on(FakeGitHub::start("acme", "fleet"));
    let token = dir.path().join("token");
    private(&token, "ghp_benchtoken");
    let hook = dir.path().join("hook");
    private(&hook, SECRET);
    let mut server = Command::new(&centossrv)
        .arg("serve")
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .args(["--repo", work.to_str().expect("utf-8"), "--branch", "main"])
        .args(["--listen", "127.0.0.1:0", "--poll", "1h"])
        .args(["--tls-cert", &tls.join("server.pem").display().to_string()])
        .args([
            "--tls-key",
            &tls.join("server-key.pem").display().to_string(),
        ])
        .args(["--forge", "github", "--forge-url", &fake.base_url()])
        .args(["--forge-repository", "acme/fleet"])
        .args(["--forge-token-file", token.to_str().expect("utf-8")])
        .args(["--forge-webhook-secret-file", hook.to_str().expect("utf-8")])
        .args(["--forge-coalesce", &coalesce])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve");
    let stdout = server.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(stdout);
    let addr = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        assert!(n > 0, "the reconciler exited before listening");
        if let Some(rest) = line.split("listening on https://").nth(1) {
            break rest.split_whitespace().next().expect("addr").to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = format!("https://{addr}/api/v1/webhooks/github");
    let ca = tls.join("ca.pem");

    git(&work, &["checkout", "-qb", "change"]);
    let mut times = Vec::new();
    for run in 0..runs {
        fleet(&work, nodes, &format!("v{}", run + 2));
        git(&work, &["commit", "-qam", &format!("run {run}")]);
        let head = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["update-ref", "refs/pull/1/head", &head]);
        if run == 0 {
            fake.add_pull(1, &head, &base, "main", "bench");
        } else {
            fake.set_pull_head(1, &head);
        }
        let payload = serde_json::json!({
            "action": if run == 0 { "opened" } else { "synchronize" },
            "number": 1,
            "pull_request": {"number": 1, "state": "open", "merged": false,
                "head": {"sha": head, "ref": "change"}, "base": {"sha": base, "ref": "main"}},
            "repository": {"full_name": "acme/fleet"},
            "sender": {"login": "bench", "id": 1}
        });
        let body = serde_json::to_vec(&payload).expect("json");
        let file = dir.path().join("payload.json");
        std::fs::write(&file, &body).expect("write");
        let short = head[..7].to_owned();
        let t0 = Instant::now();
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--cacert", ca.to_str().expect("utf-8")])
            .args([
                "-H",
                "Content-Type: application/json",
                "-H",
                "X-GitHub-Event: pull_request",
            ])
            .args(["-H", &format!("X-GitHub-Delivery: bench-{run}")])
            .args(["-H", &format!("X-Hub-Signature-256: {}", sign(&body))])
            .args(["--data-binary", &format!("@{}", file.display()), &url])
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "202",
            "webhook refused"
        );
        let deadline = t0 + Duration::from_secs(60);
        loop {
            if fake
                .comments(1)
                .iter()
                .any(|(_, body)| body.contains(&short))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no comment for {short} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = t0.elapsed();
        times.push(took);
        eprintln!("run {run}: {:.0} ms", took.as_secs_f64() * 1000.0);
    }
    let _ = server.kill();
    let _ = server.wait();
    let violations = fake.violations();
    assert!(
        violations.is_empty(),
        "GitHub contract violations: {violations:#?}"
    );
    let comments = fake.comments(1).len();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    println!("| nodes | runs | coalesce | min ms | median ms | max ms | comments on the PR |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {nodes} | {runs} | {coalesce} | {:.0} | {:.0} | {:.0} | {comments} |",
        ms(times[0]),
        ms(median),
        ms(times[times.len() - 1])
    );
}
