//! Services on real processes: the built-in supervisor daemon (the real
//! `centossrv-agent supervise` binary) runs `python3 -m http.server` and `sh` loops under
//! sandbox roots; health checks probe them over real sockets and commands; processes are
//! SIGKILLed to exercise the restart policy. `systemctl --root` (real) manages enablement
//! for the systemd backend; only the runtime commands of systemd (start, stop, restart,
//! is-active, daemon-reload), which need a running systemd, are checked against a strict
//! fake `systemctl` that accepts exactly the expected arguments.
//!
//! Every daemon is owned by a [`Supervisor`] guard whose `Drop` stops it (SIGTERM, which
//! stops its services) and then SIGKILLs whatever is left, also when a test fails.

use crate::util::*;
use agent::services::{ServiceManager, SupervisorManager, SystemdManager};
use agent::supervisor::events::{self, Event, EventKind};
use agent::supervisor::protocol::{self, Op};
use agent::{ApplyOptions, ApplyReport, ApplyStatus, Outcome, RealHost};
use state::digest::sha256;
use state::{
    DesiredState, HealthCheck, NotifyAction, Probe, RestartPolicy, ServiceSpec, ServiceState, Spec,
    UnitFile,
};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded. Polls return as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(60);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `centossrv-agent supervise` for a sandbox; stopped on drop.
struct Supervisor {
    child: Option<Child>,
    state: PathBuf,
}

impl Supervisor {
    fn start(sb: &Sandbox) -> Supervisor {
        let child = Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
            .arg("supervise")
            .arg("--root")
            .arg(&sb.root)
            .arg("--state-dir")
            .arg(&sb.state)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the supervisor");
        let s = Supervisor {
            child: Some(child),
            state: sb.state.clone(),
        };
        wait_for("the supervisor's socket", || {
            protocol::call(
                &s.state,
                Op::Status { service: None },
                Duration::from_secs(5),
            )
            .is_ok()
        });
        s
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM and wait for the daemon to stop its services and exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let leftover = self.service_pids();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the daemon did not stop (it should have stopped everything).
        for pid in leftover {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }

    fn service_pids(&self) -> Vec<u32> {
        protocol::call(
            &self.state,
            Op::Status { service: None },
            Duration::from_secs(5),
        )
        .map(|r| r.services.iter().filter_map(|s| s.pid).collect())
        .unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn host(sb: &Sandbox) -> RealHost {
    RealHost::new(&sb.root)
        .expect("host")
        .with_service_manager(Arc::new(SupervisorManager::new(&sb.state)))
}

fn apply_with(sb: &Sandbox, host: &RealHost, desired: &DesiredState) -> ApplyReport {
    agent::apply(host, &sb.store(), desired, &ApplyOptions::default()).expect("apply runs")
}

fn outcome<'a>(report: &'a ApplyReport, id: &str) -> &'a agent::apply::ResourceReport {
    report
        .resources
        .iter()
        .find(|r| r.id.to_string() == id)
        .unwrap_or_else(|| panic!("{id} missing from {report:#?}"))
}

fn status(sb: &Sandbox, name: &str) -> protocol::ServiceStatus {
    protocol::call(
        &sb.state,
        Op::Status {
            service: Some(name.to_owned()),
        },
        Duration::from_secs(10),
    )
    .expect("status")
    .services
    .into_iter()
    .next()
    .unwrap_or_else(|| panic!("the supervisor does not know {name}"))
}

fn events_of(sb: &Sandbox, name: &str) -> Vec<Event> {
    events::read(&events::log_path(&sb.state))
        .expect("event log")
        .into_iter()
        .filter(|e| e.service == name)
        .collect()
}

fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for the service tests");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// A unit running `python3 -m http.server $PORT` in `dir`.
fn web_unit(dir: &Path) -> String {
    format!(
        "[Unit]\nDescription=test web server\n\n[Service]\nExecStart={} -m http.server ${{PORT}} --bind 127.0.0.1\nWorkingDirectory={}\n\n[Install]\nWantedBy=multi-user.target\n",
        python(),
        dir.display()
    )
}

/// A unit running a shell loop.
fn loop_unit(script: &str) -> String {
    format!(
        "[Service]\nExecStart=/bin/sh -c '{script}'\nRestartSec=100ms\nTimeoutStopSec=5s\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

fn service(name: &str, unit: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        state: ServiceState::Running,
        enabled: Some(true),
        unit: Some(UnitFile {
            content: Arc::from(unit),
            sha256: sha256(unit.as_bytes()),
        }),
        restart: RestartPolicy::No,
        health_check: None,
        environment: BTreeMap::new(),
        on_notify: NotifyAction::Restart,
    }
}

/// A check that fails only after 3 probes in a row.
fn check(probe: Probe) -> HealthCheck {
    HealthCheck {
        probe,
        interval_ms: 200,
        timeout_ms: 1000,
        retries: 3,
    }
}

/// A check patient enough for a Python server starting on a loaded machine: unhealthy
/// only after 40 failed probes in a row (about 20 s).
fn patient_check(probe: Probe) -> HealthCheck {
    HealthCheck {
        interval_ms: 500,
        retries: 40,
        ..check(probe)
    }
}

fn www(sb: &Sandbox) -> PathBuf {
    let dir = sb.base.join("www");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("hello.txt"), "hello from the supervised server\n").expect("write");
    dir
}

#[test]
fn supervised_web_service_runs_healthy_enabled_and_converges() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let port = free_port();
    let mut web = service("web", &web_unit(&www(&sb)));
    web.environment.insert("PORT".into(), port.to_string());
    web.restart = RestartPolicy::OnFailure;
    web.health_check = Some(patient_check(Probe::Http {
        url: format!("http://127.0.0.1:{port}/hello.txt"),
    }));
    let tcp_port = free_port();
    let mut tcp = service("tcp", &web_unit(&www(&sb)));
    tcp.environment.insert("PORT".into(), tcp_port.to_string());
    tcp.health_check = Some(patient_check(Probe::Tcp {
        address: format!("127.0.0.1:{tcp_port}"),
    }));
    let desired = desired(vec![Spec::Service(web), Spec::Service(tcp)]);

    let report = apply_with(&sb, &host, &desired);
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    assert_eq!(report.totals.changed, 2);
    for id in ["service:web", "service:tcp"] {
        assert_eq!(outcome(&report, id).outcome, Outcome::Changed);
    }
    // Running, healthy (apply waited for the first verdict), serving.
    let s = status(&sb, "web");
    assert!(s.active && s.pid.is_some(), "{s:?}");
    assert_eq!(s.health, Some(protocol::Health::Healthy), "{s:?}");
    assert_eq!(status(&sb, "tcp").health, Some(protocol::Health::Healthy));
    let body = http_get(port, "/hello.txt").expect("the server answers");
    assert!(body.contains("hello from the supervised server"), "{body}");
    // Files as systemd has them: the unit, the agent's drop-in, the enable link.
    assert!(
        sb.read("/etc/systemd/system/web.service")
            .contains("http.server")
    );
    let drop_in = sb.read("/etc/systemd/system/web.service.d/50-centossrv.conf");
    assert!(drop_in.contains("Restart=on-failure"), "{drop_in}");
    assert!(
        drop_in.contains(&format!("Environment=PORT={port}")),
        "{drop_in}"
    );
    let link = sb.path("/etc/systemd/system/multi-user.target.wants/web.service");
    assert_eq!(
        std::fs::read_link(&link).expect("enable link"),
        Path::new("/etc/systemd/system/web.service")
    );
    // The real systemctl agrees that the supervisor's links mean "enabled".
    let is_enabled = Command::new("systemctl")
        .arg(format!("--root={}", sb.root.display()))
        .args(["is-enabled", "web.service"])
        .output()
        .expect("systemctl");
    assert_eq!(
        String::from_utf8_lossy(&is_enabled.stdout).trim(),
        "enabled"
    );

    // Observed as desired: the second apply changes nothing and keeps the same process.
    let pid = s.pid;
    let again = apply_with(&sb, &host, &desired);
    assert_eq!(again.totals.changed, 0, "{again:#?}");
    assert_eq!(again.totals.unchanged, 2);
    assert_eq!(again.generation, None);
    assert_eq!(status(&sb, "web").pid, pid);
    let observed = again.observed.expect("observed");
    let plan = state::plan(Some(&desired), Some(&observed), None);
    assert!(plan.changes.is_empty(), "{plan:#?}");

    // Drift: the unit's drop-in edited by hand is put back, and the service restarted.
    std::fs::write(
        sb.path("/etc/systemd/system/web.service.d/50-centossrv.conf"),
        "[Service]\nRestart=always\n",
    )
    .expect("edit");
    let fixed = apply_with(&sb, &host, &desired);
    assert_eq!(outcome(&fixed, "service:web").outcome, Outcome::Changed);
    assert_eq!(
        sb.read("/etc/systemd/system/web.service.d/50-centossrv.conf"),
        drop_in
    );
    assert_ne!(
        status(&sb, "web").pid,
        pid,
        "restarted with the repaired drop-in"
    );
}

#[test]
fn failing_exec_health_check_is_reported() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let mut svc = service("sick", &loop_unit("while true; do sleep 1; done"));
    svc.health_check = Some(check(Probe::Exec {
        command: vec!["/bin/sh".into(), "-c".into(), "echo nope; exit 7".into()],
    }));
    let report = apply_with(&sb, &host, &desired(vec![Spec::Service(svc)]));
    assert_eq!(report.status, ApplyStatus::Failed);
    let r = outcome(&report, "service:sick");
    assert_eq!(r.outcome, Outcome::Failed);
    let reason = r.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("started, but its health check failed 3 times: exec"),
        "{reason}"
    );
    assert!(reason.contains("exit status: 7"), "{reason}");
    // Restart policy `no`: reported unhealthy, left running.
    let s = status(&sb, "sick");
    assert_eq!(s.health, Some(protocol::Health::Unhealthy));
    assert!(s.pid.is_some());
    let kinds: Vec<EventKind> = events_of(&sb, "sick").iter().map(|e| e.event).collect();
    assert_eq!(kinds, vec![EventKind::Started, EventKind::HealthFailed]);

    // Under `on-failure`, an unhealthy service is stopped and started again.
    let mut healing = service("healing", &loop_unit("while true; do sleep 1; done"));
    healing.restart = RestartPolicy::OnFailure;
    healing.health_check = Some(check(Probe::Exec {
        command: vec!["/bin/false".into()],
    }));
    let report = apply_with(&sb, &host, &desired(vec![Spec::Service(healing)]));
    let reason = outcome(&report, "service:healing")
        .reason
        .clone()
        .unwrap_or_default();
    assert!(
        reason.starts_with("started, but its health check failed")
            || reason.starts_with("started, but the process ended while its health check ran"),
        "{reason}"
    );
    wait_for("a restart for health", || {
        events_of(&sb, "healing")
            .iter()
            .any(|e| e.event == EventKind::Restarted)
    });
    let events = events_of(&sb, "healing");
    let kinds: Vec<EventKind> = events.iter().take(4).map(|e| e.event).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Started,
            EventKind::HealthFailed,
            EventKind::Exited,
            EventKind::Restarted
        ]
    );
    assert_eq!(events[2].status.as_deref(), Some("signal 15 (TERM)"));
    assert_eq!(
        events[3].message.as_deref(),
        Some("unhealthy; after 100 ms")
    );
}

#[test]
fn killed_services_are_restarted_by_policy_with_backoff_and_reported() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let mut always = service("always", &loop_unit("while true; do sleep 1; done"));
    always.restart = RestartPolicy::Always;
    // Fails after a moment, every time.
    let mut flaky = service("flaky", &loop_unit("sleep 0.2; exit 3"));
    flaky.restart = RestartPolicy::OnFailure;
    // Exits cleanly: `on-failure` does not restart it.
    let mut done = service("done", &loop_unit("exit 0"));
    done.restart = RestartPolicy::OnFailure;
    done.enabled = None;
    let report = apply_with(
        &sb,
        &host,
        &desired(vec![
            Spec::Service(always.clone()),
            Spec::Service(flaky.clone()),
            Spec::Service(done),
        ]),
    );
    assert_eq!(outcome(&report, "service:always").outcome, Outcome::Changed);
    assert_eq!(outcome(&report, "service:flaky").outcome, Outcome::Changed);

    // SIGKILL the main process: the supervisor starts a new one and says so.
    let first = status(&sb, "always").pid.expect("running");
    let killed = Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for("a new process of `always`", || {
        status(&sb, "always").pid.is_some_and(|p| p != first)
    });
    let s = status(&sb, "always");
    assert_eq!(s.restarts, 1);
    assert_eq!(s.last_exit.as_deref(), Some("signal 9 (KILL)"));
    assert!(!alive(first));
    let events = events_of(&sb, "always");
    let exited = events
        .iter()
        .find(|e| e.event == EventKind::Exited)
        .expect("an exited event");
    assert_eq!(exited.pid, Some(first));
    assert_eq!(exited.status.as_deref(), Some("signal 9 (KILL)"));
    let restarted = events
        .iter()
        .find(|e| e.event == EventKind::Restarted)
        .expect("a restarted event");
    assert_eq!(restarted.pid, s.pid);
    assert_eq!(
        restarted.message.as_deref(),
        Some("signal 9 (KILL); after 100 ms")
    );
    // The CLI shows the same log.
    let cli = Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
        .args([
            "services",
            "events",
            "--service",
            "always",
            "--format",
            "json",
        ])
        .arg("--root")
        .arg(&sb.root)
        .arg("--state-dir")
        .arg(&sb.state)
        .output()
        .expect("run");
    assert_eq!(cli.status.code(), Some(0));
    let listed: Vec<Event> = serde_json::from_slice(&cli.stdout).expect("events json");
    assert_eq!(listed, events_of(&sb, "always"));

    // on-failure: a SIGKILL is a failure too.
    let mut guarded = service("guarded", &loop_unit("while true; do sleep 1; done"));
    guarded.restart = RestartPolicy::OnFailure;
    apply_with(&sb, &host, &desired(vec![Spec::Service(guarded)]));
    let first = status(&sb, "guarded").pid.expect("running");
    let killed = Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for("a new process of `guarded`", || {
        status(&sb, "guarded").pid.is_some_and(|p| p != first)
    });
    assert_eq!(status(&sb, "guarded").restarts, 1);

    // on-failure: each failure restarts it, each time after twice the delay.
    wait_for("three restarts of `flaky`", || {
        events_of(&sb, "flaky")
            .iter()
            .filter(|e| e.event == EventKind::Restarted)
            .count()
            >= 3
    });
    let delays: Vec<String> = events_of(&sb, "flaky")
        .iter()
        .filter(|e| e.event == EventKind::Restarted)
        .take(3)
        .map(|e| e.message.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        delays,
        vec![
            "exit 3; after 100 ms",
            "exit 3; after 200 ms",
            "exit 3; after 400 ms"
        ]
    );
    // A clean exit is not a failure.
    wait_for("`done` to be given up on", || !status(&sb, "done").active);
    assert_eq!(status(&sb, "done").last_exit.as_deref(), Some("exit 0"));
    assert!(
        !events_of(&sb, "done")
            .iter()
            .any(|e| e.event == EventKind::Restarted)
    );

    // `state: stopped` stops it for good: SIGTERM to the group, no restart.
    always.state = ServiceState::Stopped;
    flaky.state = ServiceState::Stopped;
    let pid = status(&sb, "always").pid.expect("running");
    let report = apply_with(
        &sb,
        &host,
        &desired(vec![Spec::Service(always), Spec::Service(flaky)]),
    );
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    assert_eq!(outcome(&report, "service:always").outcome, Outcome::Changed);
    let s = status(&sb, "always");
    assert!(!s.active && s.pid.is_none(), "{s:?}");
    assert!(!alive(pid));
    assert_eq!(s.last_exit.as_deref(), Some("signal 15 (TERM)"));
    assert!(!status(&sb, "flaky").active);
    assert_eq!(
        events_of(&sb, "always").last().map(|e| e.event),
        Some(EventKind::Stopped)
    );
}

#[test]
fn notify_restarts_the_service_and_skips_when_the_trigger_failed() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("/etc/app")).expect("mkdir");
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let app = service("app", &loop_unit("while true; do sleep 1; done"));
    let with_config = |content: &str| {
        let mut conf = resource(file("/etc/app/app.conf", content, "0644"));
        conf.notify = vec!["service:app".parse().expect("id")];
        desired_resources(vec![conf, resource(Spec::Service(app.clone()))])
    };
    let first = apply_with(&sb, &host, &with_config("v1\n"));
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    let pid = status(&sb, "app").pid.expect("running");

    // The file changes: the plan restarts the service, which gets a new process.
    let desired = with_config("v2\n");
    let plan = agent::apply::plan_now(&host, &desired).1;
    let restart = plan
        .changes
        .iter()
        .find(|c| c.id.to_string() == "service:app")
        .expect("a restart");
    assert_eq!(restart.action, state::Action::Restart);
    let report = apply_with(&sb, &host, &desired);
    assert_eq!(outcome(&report, "service:app").outcome, Outcome::Changed);
    assert_eq!(
        outcome(&report, "service:app").action,
        Some(state::Action::Restart)
    );
    let new_pid = status(&sb, "app").pid.expect("running");
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    // Nothing changed: nothing restarted.
    let again = apply_with(&sb, &host, &desired);
    assert_eq!(again.totals.changed, 0, "{again:#?}");
    assert_eq!(status(&sb, "app").pid, Some(new_pid));

    // The notifying file cannot be written: the restart is skipped, with the reason.
    std::fs::remove_dir_all(sb.path("/etc/app")).expect("rm");
    let broken = apply_with(&sb, &host, &with_config("v3\n"));
    assert_eq!(
        outcome(&broken, "file:/etc/app/app.conf").outcome,
        Outcome::Failed
    );
    let r = outcome(&broken, "service:app");
    assert_eq!(r.outcome, Outcome::Skipped, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "not restarted: `file:/etc/app/app.conf` notifying it failed, so nothing it depends on changed"
        )
    );
    assert_eq!(broken.totals.skipped, 1);
    assert_eq!(status(&sb, "app").pid, Some(new_pid));
}

/// A desired state: `/etc/app/app.conf` with `content`, notifying service `app`.
fn notifying_config(app: &ServiceSpec, content: &str) -> DesiredState {
    let mut conf = resource(file("/etc/app/app.conf", content, "0644"));
    conf.notify = vec!["service:app".parse().expect("id")];
    desired_resources(vec![conf, resource(Spec::Service(app.clone()))])
}

#[test]
fn notify_reloads_with_sighup_keeping_the_process() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("/etc/app")).expect("mkdir");
    let hups = sb.base.join("hups");
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    // The shell records each SIGHUP; `wait` returns at once when a trapped signal arrives.
    // Without the trap, SIGHUP would end it.
    let app = ServiceSpec {
        on_notify: NotifyAction::Reload,
        ..service(
            "app",
            &loop_unit(&format!(
                "trap \"echo hup >> {}\" HUP; while true; do sleep 1 & wait $!; done",
                hups.display()
            )),
        )
    };
    let first = apply_with(&sb, &host, &notifying_config(&app, "v1\n"));
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    let pid = status(&sb, "app").pid.expect("running");
    assert!(!hups.exists(), "a start is no reload");

    // The file changes: the plan reloads the service, which keeps its process.
    let desired = notifying_config(&app, "v2\n");
    let plan = agent::apply::plan_now(&host, &desired).1;
    let change = plan
        .changes
        .iter()
        .find(|c| c.id.to_string() == "service:app")
        .expect("a reload");
    assert_eq!(change.action, state::Action::Reload);
    assert_eq!(
        change.triggered_by,
        ["file:/etc/app/app.conf".parse().expect("id")]
    );
    let report = apply_with(&sb, &host, &desired);
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    let r = outcome(&report, "service:app");
    assert_eq!(r.outcome, Outcome::Changed, "{r:?}");
    assert_eq!(r.action, Some(state::Action::Reload));
    wait_for("the SIGHUP to be handled", || {
        std::fs::read_to_string(&hups).is_ok_and(|t| t == "hup\n")
    });
    assert_eq!(
        status(&sb, "app").pid,
        Some(pid),
        "a reload keeps the process"
    );
    assert!(alive(pid));
    let reloaded = events_of(&sb, "app");
    let last = reloaded.last().expect("events");
    assert_eq!(last.event, EventKind::Reloaded);
    assert_eq!(last.pid, Some(pid));
    assert_eq!(last.message.as_deref(), Some("SIGHUP to the main process"));
    assert_eq!(
        reloaded
            .iter()
            .filter(|e| e.event == EventKind::Started)
            .count(),
        1,
        "{reloaded:#?}"
    );

    // Nothing changed: nothing reloaded.
    let again = apply_with(&sb, &host, &desired);
    assert_eq!(again.totals.changed, 0, "{again:#?}");
    assert_eq!(std::fs::read_to_string(&hups).expect("hups"), "hup\n");

    // The notifying file cannot be written: the reload is skipped, with the reason.
    std::fs::remove_dir_all(sb.path("/etc/app")).expect("rm");
    let broken = apply_with(&sb, &host, &notifying_config(&app, "v3\n"));
    let r = outcome(&broken, "service:app");
    assert_eq!(r.outcome, Outcome::Skipped, "{r:?}");
    assert_eq!(
        r.reason.as_deref(),
        Some(
            "not reloaded: `file:/etc/app/app.conf` notifying it failed, so nothing it depends on changed"
        )
    );
    std::fs::create_dir_all(sb.path("/etc/app")).expect("mkdir");

    // A notified service whose unit also changes is restarted, not reloaded: the plan
    // keeps the update (with its trigger) and the agent restarts it.
    let changed_unit = ServiceSpec {
        environment: BTreeMap::from([("MODE".to_owned(), "new".to_owned())]),
        ..app.clone()
    };
    let desired = notifying_config(&changed_unit, "v4\n");
    let plan = agent::apply::plan_now(&host, &desired).1;
    let change = plan
        .changes
        .iter()
        .find(|c| c.id.to_string() == "service:app")
        .expect("an update");
    assert_eq!(change.action, state::Action::Update);
    assert!(!change.triggered_by.is_empty());
    let report = apply_with(&sb, &host, &desired);
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    let restarted = status(&sb, "app").pid.expect("running");
    assert_ne!(
        restarted, pid,
        "restart wins over reload when the drop-in changed"
    );
    assert_eq!(std::fs::read_to_string(&hups).expect("hups"), "hup\n");

    // A service that does not run cannot be reloaded; the supervisor says why.
    let manager = SupervisorManager::new(&sb.state);
    assert_eq!(manager.stop("app"), Ok(()));
    assert_eq!(
        manager.reload("app"),
        Err("the supervisor refused: cannot reload app: it is not running".to_owned())
    );
    assert_eq!(
        manager.reload("ghost"),
        Err("the supervisor refused: cannot reload ghost: it is not running".to_owned())
    );
}

#[test]
fn notify_reload_runs_exec_reload_with_mainpid() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("/etc/app")).expect("mkdir");
    let marker = sb.base.join("reloads");
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    // No HUP trap: a SIGHUP would end the process, so an unchanged pid shows that
    // `ExecReload=` ran instead. `${MAINPID}` is expanded by the supervisor (argument),
    // `$MAINPID` by the shell from the environment.
    let unit = format!(
        "[Service]\nExecStart=/bin/sh -c 'while true; do sleep 1; done'\n\
         ExecReload=/bin/sh -c 'echo \"reload $0 $MAINPID\" >> {}' ${{MAINPID}}\n\
         TimeoutStopSec=5s\n\n[Install]\nWantedBy=multi-user.target\n",
        marker.display()
    );
    let app = ServiceSpec {
        on_notify: NotifyAction::Reload,
        ..service("app", &unit)
    };
    let first = apply_with(&sb, &host, &notifying_config(&app, "v1\n"));
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    let pid = status(&sb, "app").pid.expect("running");

    let report = apply_with(&sb, &host, &notifying_config(&app, "v2\n"));
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    let r = outcome(&report, "service:app");
    assert_eq!(
        (r.action, r.outcome),
        (Some(state::Action::Reload), Outcome::Changed),
        "{r:?}"
    );
    // The command ran to its end before the supervisor answered.
    assert_eq!(
        std::fs::read_to_string(&marker).expect("ExecReload= ran"),
        format!("reload {pid} {pid}\n")
    );
    assert_eq!(status(&sb, "app").pid, Some(pid));
    assert!(alive(pid));
    assert_eq!(
        events_of(&sb, "app").last().and_then(|e| e.message.clone()),
        Some("ExecReload= (1 command)".to_owned())
    );

    // A failing `ExecReload=` fails the reload (the supervisor reads the unit anew) and
    // leaves the process alone; with the `-` prefix its failure is ignored.
    let manager = SupervisorManager::new(&sb.state);
    let unit_path = sb.path("/etc/systemd/system/app.service");
    std::fs::write(
        &unit_path,
        unit.replace("ExecReload=", "ExecReload=/bin/sh -c 'exit 3'\nExecReload="),
    )
    .expect("write unit");
    assert_eq!(
        manager.reload("app"),
        Err(
            "the supervisor refused: cannot reload app: ExecReload= `/bin/sh -c exit 3` failed \
             (exit 3)"
                .to_owned()
        )
    );
    assert_eq!(
        events_of(&sb, "app").last().map(|e| e.event),
        Some(EventKind::ReloadFailed)
    );
    std::fs::write(
        &unit_path,
        unit.replace(
            "ExecReload=",
            "ExecReload=-/bin/sh -c 'exit 3'\nExecReload=",
        ),
    )
    .expect("write unit");
    assert_eq!(manager.reload("app"), Ok(()));
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        format!("reload {pid} {pid}\nreload {pid} {pid}\n")
    );
    assert_eq!(status(&sb, "app").pid, Some(pid));
}

#[test]
fn rollback_restores_unit_files_enablement_and_running_state() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let v1 = loop_unit("echo one; while true; do sleep 1; done");
    let v2 = loop_unit("echo two; while true; do sleep 1; done").replace(
        "[Install]\nWantedBy=multi-user.target\n",
        "[Install]\nWantedBy=graphical.target\n",
    );
    let first = apply_with(
        &sb,
        &host,
        &desired(vec![Spec::Service(service("app", &v1))]),
    );
    assert_eq!(first.generation, Some(1));
    let pid1 = status(&sb, "app").pid.expect("running");
    let second = apply_with(
        &sb,
        &host,
        &desired(vec![Spec::Service(service("app", &v2))]),
    );
    assert_eq!(second.generation, Some(2));
    assert_eq!(outcome(&second, "service:app").outcome, Outcome::Changed);
    let pid2 = status(&sb, "app").pid.expect("running");
    assert_ne!(pid1, pid2, "a changed unit restarts the service");
    assert!(sb.exists("/etc/systemd/system/graphical.target.wants/app.service"));

    // Undo the second apply: unit v1 back, the service runs it (restarted).
    let back = agent::rollback(&host, &sb.store(), Some(2), 10).expect("rollback");
    assert!(!back.has_failures(), "{back:#?}");
    assert_eq!(sb.read("/etc/systemd/system/app.service"), v1);
    let pid3 = status(&sb, "app").pid.expect("running");
    assert_ne!(pid3, pid2);
    let service_entry = back
        .entries
        .iter()
        .find(|e| e.target == "service:app")
        .expect("the service is restored");
    assert_eq!(
        service_entry.outcome,
        agent::generations::RestoreOutcome::Restored
    );
    assert!(!sb.exists("/etc/systemd/system/graphical.target.wants/app.service"));
    assert!(sb.exists("/etc/systemd/system/multi-user.target.wants/app.service"));
    // The restarted process runs unit v1 (its output lands in the service's log).
    wait_for("unit v1's output", || {
        std::fs::read_to_string(sb.state.join("supervisor/logs/app.log"))
            .is_ok_and(|log| log == "one\ntwo\none\n")
    });

    // Undo everything: not running, not enabled, no unit, no directories the agent made.
    let before = sb.snapshot();
    assert!(before.contains_key("/etc/systemd/system/app.service"));
    let all = agent::rollback(&host, &sb.store(), Some(1), 10).expect("rollback");
    assert!(!all.has_failures(), "{all:#?}");
    let s = status(&sb, "app");
    assert!(!s.active && s.pid.is_none(), "{s:?}");
    assert!(!alive(pid3));
    assert!(!sb.exists("/etc/systemd"), "{:#?}", sb.snapshot().keys());
}

#[test]
fn supervisor_refuses_what_it_cannot_run_and_bad_requests() {
    let sb = Sandbox::new();
    let supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let forking = "[Service]\nType=forking\nExecStart=/usr/sbin/daemon\n";
    let missing = "[Service]\nExecStart=/nonexistent/program --flag\n";
    let report = apply_with(
        &sb,
        &host,
        &desired(vec![
            Spec::Service(ServiceSpec {
                enabled: None,
                ..service("forking", forking)
            }),
            Spec::Service(ServiceSpec {
                enabled: None,
                ..service("missing", missing)
            }),
        ]),
    );
    let reason = |id: &str| outcome(&report, id).reason.clone().unwrap_or_default();
    assert_eq!(
        reason("service:forking"),
        "the supervisor refused: service forking: Type=forking is not supported by the built-in supervisor"
    );
    assert!(
        reason("service:missing").starts_with(
            "the supervisor refused: cannot start `/nonexistent/program --flag`: No such file"
        ),
        "{}",
        reason("service:missing")
    );
    assert_eq!(
        events_of(&sb, "missing").last().map(|e| e.event),
        Some(EventKind::StartFailed)
    );

    // Raw protocol abuse: oversized, malformed, wrong version. Each gets an error answer,
    // and the daemon keeps serving.
    let socket = protocol::socket_path(&sb.state);
    let exchange = |bytes: &[u8]| -> protocol::Response {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        serde_json::from_str(&answer).expect("a response")
    };
    let big = vec![b'x'; protocol::MAX_REQUEST_BYTES as usize + 10];
    let r = exchange(&big);
    assert!(
        !r.ok
            && r.error
                .as_deref()
                .is_some_and(|e| e.contains("larger than"))
    );
    let r = exchange(b"{\"v\":1,\"op\":\"explode\"}\n");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("invalid request")),
        "{r:?}"
    );
    let r = exchange(b"{\"v\":99,\"op\":\"status\"}\n");
    assert!(
        r.error.as_deref().is_some_and(|e| e.contains("version 99")),
        "{r:?}"
    );
    let r = exchange(b"{\"v\":1,\"op\":\"start\",\"service\":\"../etc\"}\n");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("not a service name")),
        "{r:?}"
    );
    assert!(
        protocol::call(
            &sb.state,
            Op::Status { service: None },
            Duration::from_secs(5)
        )
        .is_ok()
    );

    // A second supervisor for the same state directory refuses to start.
    let second = Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
        .arg("supervise")
        .arg("--root")
        .arg(&sb.root)
        .arg("--state-dir")
        .arg(&sb.state)
        .output()
        .expect("run");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another supervisor runs"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(supervisor.pid() > 0);
}

#[test]
fn without_a_running_supervisor_services_fail_with_the_reason() {
    let sb = Sandbox::new();
    let host = host(&sb);
    let report = apply_with(
        &sb,
        &host,
        &desired(vec![Spec::Service(service("app", &loop_unit("sleep 100")))]),
    );
    let r = outcome(&report, "service:app");
    assert_eq!(r.outcome, Outcome::Failed);
    let reason = r.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("cannot observe: the supervisor is not running"),
        "{reason}"
    );
    assert!(
        !sb.exists("/etc/systemd/system/app.service"),
        "nothing applied"
    );
}

#[test]
fn enabled_services_start_with_the_supervisor_and_stop_with_it() {
    let sb = Sandbox::new();
    let mut supervisor = Supervisor::start(&sb);
    let host = host(&sb);
    let report = apply_with(
        &sb,
        &host,
        &desired(vec![Spec::Service(service(
            "boot",
            &loop_unit("while true; do sleep 1; done"),
        ))]),
    );
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    let pid = status(&sb, "boot").pid.expect("running");
    supervisor.stop();
    assert!(!alive(pid), "the daemon stops its services when it stops");
    let _again = Supervisor::start(&sb);
    wait_for("the enabled service to start at the daemon's start", || {
        protocol::call(
            &sb.state,
            Op::Status {
                service: Some("boot".into()),
            },
            Duration::from_secs(5),
        )
        .is_ok_and(|r| r.services.first().is_some_and(|s| s.pid.is_some()))
    });
}

/// The systemd backend under a sandbox root: unit files and the real `systemctl --root`
/// for enable/disable; nothing of a sandbox runs under the host's systemd.
#[test]
fn systemd_backend_enables_and_disables_with_systemctl_root() {
    let sb = Sandbox::new();
    let host = RealHost::new(&sb.root)
        .expect("host")
        .with_service_manager(Arc::new(SystemdManager::new("systemctl", &sb.root)));
    let unit = "[Service]\nExecStart=/usr/bin/sleep 100\n\n[Install]\nWantedBy=multi-user.target\nRequiredBy=network.target\n";
    let mut spec = ServiceSpec {
        state: ServiceState::Stopped,
        ..service("idle", unit)
    };
    let report = apply_with(&sb, &host, &desired(vec![Spec::Service(spec.clone())]));
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    for link in [
        "/etc/systemd/system/multi-user.target.wants/idle.service",
        "/etc/systemd/system/network.target.requires/idle.service",
    ] {
        assert_eq!(
            std::fs::read_link(sb.path(link)).expect("link made by systemctl"),
            Path::new("/etc/systemd/system/idle.service"),
            "{link}"
        );
    }
    let again = apply_with(&sb, &host, &desired(vec![Spec::Service(spec.clone())]));
    assert_eq!(again.totals.changed, 0, "{again:#?}");

    spec.enabled = Some(false);
    let disabled = apply_with(&sb, &host, &desired(vec![Spec::Service(spec.clone())]));
    assert_eq!(disabled.totals.changed, 1, "{disabled:#?}");
    assert!(!sb.exists("/etc/systemd/system/multi-user.target.wants/idle.service"));
    assert!(!sb.exists("/etc/systemd/system/network.target.requires/idle.service"));

    // Rollback of the disable enables it again (links restored).
    let back = agent::rollback(&host, &sb.store(), None, 10).expect("rollback");
    assert!(!back.has_failures(), "{back:#?}");
    assert!(sb.exists("/etc/systemd/system/multi-user.target.wants/idle.service"));

    // Running cannot be had under a sandbox root with systemd: a clear failure.
    spec.state = ServiceState::Running;
    spec.enabled = Some(true);
    let run = apply_with(&sb, &host, &desired(vec![Spec::Service(spec)]));
    let reason = outcome(&run, "service:idle")
        .reason
        .clone()
        .unwrap_or_default();
    assert!(
        reason.starts_with("cannot start idle: under --root"),
        "{reason}"
    );
    assert!(reason.contains("--service-backend supervisor"), "{reason}");
    // Nor can a reload: the same reason.
    let reload = SystemdManager::new("systemctl", &sb.root)
        .reload("idle")
        .expect_err("nothing runs under a sandbox root");
    assert!(
        reload.starts_with("cannot reload idle: under --root"),
        "{reload}"
    );
}

/// systemd's runtime commands need a running systemd, which this machine does not have:
/// they are checked against a strict fake `systemctl` that accepts exactly the expected
/// command lines (and fails the test on anything else).
#[test]
fn systemd_runtime_commands_are_exact() {
    let dir = tempfile::tempdir_in(temp_base()).expect("tempdir");
    let calls = dir.path().join("calls");
    let fake = dir.path().join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             echo \"$*\" >> '{calls}'\n\
             case \"$*\" in\n\
               'is-active web.service') echo active ;;\n\
               'is-active idle.service') echo inactive; exit 3 ;;\n\
               'start web.service'|'stop web.service'|'restart web.service'|'daemon-reload') ;;\n\
               'start bad.service') echo 'Job for bad.service failed.' >&2; exit 1 ;;\n\
               'is-enabled web.service') echo enabled ;;\n\
               'is-active plain.service') echo active ;;\n\
               'show --property=CanReload --value web.service') echo yes ;;\n\
               'show --property=CanReload --value plain.service') echo no ;;\n\
               'reload web.service'|'kill --kill-who=main --signal=SIGHUP plain.service') ;;\n\
               'enable web.service'|'disable web.service') ;;\n\
               *) echo \"unexpected: $*\" >&2; exit 99 ;;\n\
             esac\n",
            calls = calls.display()
        ),
    )
    .expect("fake");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // Root `/`: commands go to the host's systemd (here, the fake); nothing is written.
    let m = SystemdManager::new(&fake, Path::new("/"));
    let host = RealHost::new("/").expect("host");
    assert_eq!(m.is_running("web"), Ok(true));
    assert_eq!(m.is_running("idle"), Ok(false));
    assert_eq!(m.start("web"), Ok(()));
    assert_eq!(m.stop("web"), Ok(()));
    assert_eq!(m.restart("web"), Ok(()));
    assert_eq!(m.reload_units(), Ok(()));
    // `ExecReload=` (CanReload=yes): systemctl reload; without: SIGHUP to the main process.
    assert_eq!(m.reload("web"), Ok(()));
    assert_eq!(m.reload("plain"), Ok(()));
    assert_eq!(
        m.reload("idle"),
        Err("cannot reload idle: it is not running".into())
    );
    assert_eq!(m.is_enabled(&host, "web"), Ok(true));
    assert_eq!(m.set_enabled(&host, "web", true), Ok(()));
    assert_eq!(m.set_enabled(&host, "web", false), Ok(()));
    assert_eq!(
        m.start("bad"),
        Err("systemctl start bad.service failed (exit 1): Job for bad.service failed.".into())
    );
    assert_eq!(
        m.status("web"),
        Ok(None),
        "systemd runs no health checks for us"
    );
    let log = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(
        log,
        "is-active web.service\nis-active idle.service\nstart web.service\nstop web.service\n\
         restart web.service\ndaemon-reload\n\
         is-active web.service\nshow --property=CanReload --value web.service\nreload web.service\n\
         is-active plain.service\nshow --property=CanReload --value plain.service\n\
         kill --kill-who=main --signal=SIGHUP plain.service\nis-active idle.service\n\
         is-enabled web.service\nenable web.service\n\
         disable web.service\nstart bad.service\n"
    );
}

#[test]
fn cli_applies_services_through_the_supervisor() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let spec = service("cli", &loop_unit("while true; do sleep 1; done"));
    let path = write_desired(
        &sb.base,
        "desired.json",
        &desired(vec![Spec::Service(spec)]),
    );
    let agent = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
            .args(args)
            .arg("--root")
            .arg(&sb.root)
            .arg("--state-dir")
            .arg(&sb.state)
            .args(["--service-backend", "supervisor"])
            .output()
            .expect("run centossrv-agent")
    };
    let path = path.to_str().expect("utf-8");
    let applied = agent(&["apply", path]);
    let text = String::from_utf8_lossy(&applied.stdout);
    assert_eq!(applied.status.code(), Some(0), "{text}");
    assert!(text.contains("changed  service:cli (update"), "{text}");
    let plan = agent(&["plan", path, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let observed = agent(&["observe", path, "--format", "text"]);
    let text = String::from_utf8_lossy(&observed.stdout);
    assert!(
        text.contains("service:cli  service running, enabled, unit sha256:"),
        "{text}"
    );
    let status = agent(&["services", "status", "cli"]);
    let text = String::from_utf8_lossy(&status.stdout);
    let pid = status_pid(&sb, "cli");
    assert_eq!(text, format!("cli: active (pid {pid}), 0 restarts\n"));
    let generations = agent(&["generations"]);
    assert!(
        String::from_utf8_lossy(&generations.stdout).contains("1 services; 1 changed, 0 failed"),
        "{}",
        String::from_utf8_lossy(&generations.stdout)
    );
}

fn status_pid(sb: &Sandbox, name: &str) -> u32 {
    status(sb, name).pid.expect("running")
}

#[test]
fn watch_reports_service_drift_from_unit_edits_and_stopped_processes() {
    let sb = Sandbox::new();
    let _supervisor = Supervisor::start(&sb);
    let spec = service("watched", &loop_unit("while true; do sleep 1; done"));
    let desired = desired(vec![Spec::Service(spec)]);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let report = apply_with(&sb, &host(&sb), &desired);
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    let mut w = crate::watch::Watch::start(
        &sb,
        &path,
        &["--service-backend", "supervisor", "--interval", "1s"],
    );
    assert_eq!(
        w.seen.last().expect("ready")["periodic"],
        1,
        "{:#?}",
        w.seen
    );
    // A hand edit of the unit file is seen through its directory's events.
    let unit = sb.path("/etc/systemd/system/watched.service");
    let mut text = std::fs::read_to_string(&unit).expect("unit");
    text.push_str("# edited by hand\n");
    std::fs::write(&unit, text).expect("edit unit");
    let got = w.until(|e| e["event"] == "drift" && e["id"] == "service:watched");
    let drift = got.last().expect("drift");
    assert!(
        drift["before"] != drift["after"],
        "a drift names what changed: {drift:#}"
    );
    // Put it back: resolved.
    std::fs::write(&unit, loop_unit("while true; do sleep 1; done")).expect("restore");
    w.until(|e| e["event"] == "resolved" && e["id"] == "service:watched");
    // A stopped process has no event: the timer finds it.
    protocol::call(
        &sb.state,
        Op::Stop {
            service: "watched".into(),
        },
        Duration::from_secs(10),
    )
    .expect("stop");
    let got = w.until(|e| e["event"] == "drift" && e["id"] == "service:watched");
    let drift = got.last().expect("drift");
    assert_eq!(drift["property"], "state", "{drift:#}");
}
