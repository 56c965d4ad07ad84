//! Measures the built-in supervisor: resident memory and CPU time of an idle daemon, with no
//! services and with N supervised services (each with a TCP health check), and how long a
//! SIGKILLed service takes to run again.
//!
//! ```sh
//! cargo build --release -p agent && \
//! cargo run --release -p agent --example bench_supervisor -- --services 10 --idle-secs 10
//! ```
//!
//! `--agent PATH` names the binary (default `target/release/centossrv-agent`).

use agent::supervisor::protocol::{self, Op, ServiceStatus};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// (RSS in KiB, user+system CPU ticks) of a process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (rss, ticks(11) + ticks(12))
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn statuses(state: &Path) -> Vec<ServiceStatus> {
    protocol::call(state, Op::Status { service: None }, Duration::from_secs(10))
        .map(|r| r.services)
        .unwrap_or_default()
}

fn main() {
    let agent = PathBuf::from(arg("--agent", "target/release/centossrv-agent"));
    let n: usize = arg("--services", "10").parse().unwrap_or(10);
    let idle = Duration::from_secs(arg("--idle-secs", "10").parse().unwrap_or(10));
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let state = dir.path().join("state");
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).expect("mkdir");
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .expect("python3");
    let mut daemon = Command::new(&agent)
        .arg("supervise")
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", agent.display()));
    let pid = daemon.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while protocol::call(&state, Op::Status { service: None }, Duration::from_secs(2)).is_err() {
        assert!(Instant::now() < deadline, "the supervisor did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let measure = |label: &str| {
        let (_, before) = usage(pid);
        std::thread::sleep(idle);
        let (rss, after) = usage(pid);
        let tick_ms = 10; // USER_HZ = 100
        println!(
            "{label:<40} RSS {:>6.1} MiB, {:>3} threads, CPU {:>4} ms over {} s idle",
            rss as f64 / 1024.0,
            threads(pid),
            (after - before) * tick_ms,
            idle.as_secs()
        );
    };
    measure("no services");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let base_port = listener.local_addr().map(|a| a.port()).unwrap_or(20000);
    drop(listener);
    for i in 0..n {
        let port = 40000 + (usize::from(base_port) + i) % 20000;
        let unit = format!(
            "[Service]\nExecStart={python} -m http.server {port} --bind 127.0.0.1\nRestart=always\n\n[X-Centossrv]\nHealthCheck={{\"probe\":{{\"tcp\":{{\"address\":\"127.0.0.1:{port}\"}}}},\"interval_ms\":1000,\"timeout_ms\":500,\"retries\":3}}\n"
        );
        std::fs::write(units.join(format!("s{i}.service")), unit).expect("unit");
        protocol::call(
            &state,
            Op::Start {
                service: format!("s{i}"),
            },
            Duration::from_secs(60),
        )
        .expect("start");
    }
    measure(&format!("{n} services, TCP checks every 1 s"));

    // Restart latency: SIGKILL the main process, time until a new one runs.
    let mut samples = Vec::new();
    for round in 0..n.min(10) {
        let name = format!("s{round}");
        let Some(old) = statuses(&state)
            .into_iter()
            .find(|s| s.service == name)
            .and_then(|s| s.pid)
        else {
            continue;
        };
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-KILL", &old.to_string()])
            .status();
        loop {
            let new = statuses(&state)
                .into_iter()
                .find(|s| s.service == name)
                .and_then(|s| s.pid);
            if new.is_some_and(|p| p != old) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    if let Some(median) = samples.get(samples.len() / 2) {
        println!(
            "{:<40} median {:.0} ms over {} kills (RestartSec=100ms included)",
            "SIGKILL -> new process (Restart=always)",
            median.as_secs_f64() * 1000.0,
            samples.len()
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = daemon.wait();
}
