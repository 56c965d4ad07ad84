//! `centossrv-agent watch`, the real binary on a sandbox root: every drifted property is one
//! event with before and after, sensitive content shows as digests only, unmanaged files are
//! not reported, `--enforce` puts things back without looping on its own writes. Waits poll
//! with generous timeouts; nothing relies on a fixed sleep.

use crate::util::*;
use serde_json::Value;
use state::Spec;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Generous: a loaded CI machine may be slow, a passing run never waits this long.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running `watch`, killed when dropped (even when the test fails).
pub(crate) struct Watch {
    child: Child,
    events: Receiver<Value>,
    /// Every event received so far.
    pub(crate) seen: Vec<Value>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    pub(crate) fn start(sb: &Sandbox, desired: &std::path::Path, extra: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
            .arg("watch")
            .arg(desired)
            .args(["--format", "json"])
            .args(extra)
            .arg("--root")
            .arg(&sb.root)
            .arg("--state-dir")
            .arg(&sb.state)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start centossrv-agent watch");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut w = Watch {
            child,
            events: rx,
            seen: Vec::new(),
        };
        w.until(|e| e["event"] == "ready");
        w
    }

    /// Receives events until one satisfies `done`; returns the events received meanwhile,
    /// that one included.
    pub(crate) fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    let stop = done(&event);
                    got.push(event);
                    if stop {
                        return got;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no expected event within {TIMEOUT:?}; received: {got:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("watch exited; received: {got:#?}")
                }
            }
        }
    }
}

/// The marker is the last resource: within one batch its events come last, so once its
/// event is seen, everything changed before it has been reported.
const MARKER: &str = "/etc/zz-marker";

fn is_marker(e: &Value) -> bool {
    e["id"] == format!("file:{MARKER}")
}

/// Toggles the marker's mode and waits for its event: returns the events of everything
/// else since the last call.
fn settle(sb: &Sandbox, w: &mut Watch, toggle: &mut bool) -> Vec<Value> {
    *toggle = !*toggle;
    let mode = if *toggle { 0o600 } else { 0o644 };
    std::fs::set_permissions(sb.path(MARKER), std::fs::Permissions::from_mode(mode))
        .expect("chmod marker");
    let want = if mode == 0o600 { "0600" } else { "0644" };
    let events = w.until(|e| is_marker(e) && e["after"] == want);
    events.into_iter().filter(|e| !is_marker(e)).collect()
}

/// With `--enforce`: drifts the marker and waits for its resolution (enforcement puts it
/// back); returns the events of everything else since the last call, the marker's
/// enforcement report included.
fn settle_enforced(sb: &Sandbox, w: &mut Watch) -> Vec<Value> {
    std::fs::set_permissions(sb.path(MARKER), std::fs::Permissions::from_mode(0o600))
        .expect("chmod marker");
    let events = w.until(|e| is_marker(e) && e["event"] == "resolved");
    events.into_iter().filter(|e| !is_marker(e)).collect()
}

/// `(event, id, property, before, after)` of drift and resolved events.
fn brief(events: &[Value]) -> Vec<(String, String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("null").to_owned();
    events
        .iter()
        .filter(|e| e["event"] == "drift" || e["event"] == "resolved")
        .map(|e| {
            (
                s(&e["event"]),
                s(&e["id"]),
                s(&e["property"]),
                s(&e["before"]),
                s(&e["after"]),
            )
        })
        .collect()
}

fn row(
    event: &str,
    id: &str,
    property: &str,
    before: &str,
    after: &str,
) -> (String, String, String, String, String) {
    (
        event.into(),
        id.into(),
        property.into(),
        before.into(),
        after.into(),
    )
}

fn digest(text: &str) -> String {
    state::digest::sha256(text.as_bytes())
}

fn sensitive_file(path: &str, content: &str) -> Spec {
    match file(path, content, "0600") {
        Spec::File(mut f) => {
            f.sensitive = true;
            Spec::File(f)
        }
        other => other,
    }
}

fn fleet() -> state::DesiredState {
    desired(vec![
        file("/etc/a.conf", "alpha\n", "0644"),
        file("/etc/b.conf", "bravo\n", "0644"),
        file("/etc/c.conf", "charlie\n", "0644"),
        file("/etc/d.conf", "delta\n", "0644"),
        sensitive_file("/etc/secret.key", "s3cret-one\n"),
        dir("/srv", "0755"),
        file("/srv/e.conf", "echo\n", "0644"),
        file(MARKER, "marker\n", "0644"),
    ])
}

#[test]
fn watch_reports_each_drifted_property_once_and_nothing_unmanaged() {
    let sb = Sandbox::new();
    let desired = fleet();
    let report = sb.apply(&desired);
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    // Drifted before the watch starts: reported at startup, before the ready event.
    sb.write("/etc/d.conf", "delta, edited offline\n", 0o644);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &[]);
    assert_eq!(
        brief(&w.seen),
        [row(
            "drift",
            "file:/etc/d.conf",
            "content",
            &digest("delta\n"),
            &digest("delta, edited offline\n")
        )]
    );
    let ready = w.seen.last().expect("ready").clone();
    assert_eq!(ready["drifted"], 1);
    assert_eq!(ready["resources"], 8);
    assert_eq!(ready["enforce"], false);
    let mut toggle = false;

    // Content edited in place: one event, digests before and after, a diff.
    sb.write("/etc/a.conf", "alpha, edited\n", 0o644);
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row(
            "drift",
            "file:/etc/a.conf",
            "content",
            &digest("alpha\n"),
            &digest("alpha, edited\n")
        )]
    );
    assert_eq!(events[0]["desired"], digest("alpha\n"));
    assert_eq!(events[0]["cause"], "drift");
    let diff = events[0]["diff"].as_str().expect("a diff");
    assert!(diff.contains("-alpha, edited\n+alpha\n"), "{diff}");

    // Mode, unmanaged files (a new one, one next to managed ones, one in an unmanaged
    // directory) and the agent's temporary names: only the mode.
    std::fs::set_permissions(
        sb.path("/etc/b.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    sb.write("/etc/unmanaged.conf", "whatever\n", 0o644);
    sb.write("/srv/unmanaged", "whatever\n", 0o644);
    sb.write("/var/tmp/unmanaged", "whatever\n", 0o644);
    sb.write("/etc/.b.conf.centossrv-tmp", "temp\n", 0o644);
    std::fs::remove_file(sb.path("/etc/.b.conf.centossrv-tmp")).expect("rm");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row("drift", "file:/etc/b.conf", "mode", "0644", "0600")]
    );

    // Deleted: one `ensure` event.
    std::fs::remove_file(sb.path("/etc/c.conf")).expect("rm");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row(
            "drift",
            "file:/etc/c.conf",
            "ensure",
            "present",
            "absent"
        )]
    );

    // Replaced by rename (an editor's save) with other content and mode: both.
    sb.write("/etc/.a.conf.swp", "alpha, replaced\n", 0o600);
    std::fs::rename(sb.path("/etc/.a.conf.swp"), sb.path("/etc/a.conf")).expect("rename");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [
            row(
                "drift",
                "file:/etc/a.conf",
                "content",
                &digest("alpha, edited\n"),
                &digest("alpha, replaced\n")
            ),
            row("drift", "file:/etc/a.conf", "mode", "0644", "0600"),
        ]
    );

    // A sensitive file: digests only, no diff, the content never printed.
    sb.write("/etc/secret.key", "s3cret-two\n", 0o600);
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row(
            "drift",
            "file:/etc/secret.key",
            "content",
            &digest("s3cret-one\n"),
            &digest("s3cret-two\n")
        )]
    );
    assert_eq!(events[0]["sensitive"], true);
    assert!(events[0].get("diff").is_none(), "{:#}", events[0]);

    // A directory's mode, and a managed file in it deleted with the directory's content.
    std::fs::set_permissions(sb.path("/srv"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    std::fs::remove_file(sb.path("/srv/e.conf")).expect("rm");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [
            row("drift", "directory:/srv", "mode", "0755", "0700"),
            row("drift", "file:/srv/e.conf", "ensure", "present", "absent"),
        ]
    );

    // Put back by hand: resolved.
    sb.write("/etc/b.conf", "bravo\n", 0o644);
    std::fs::set_permissions(sb.path("/srv"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [
            row("resolved", "file:/etc/b.conf", "mode", "0600", "0644"),
            row("resolved", "directory:/srv", "mode", "0700", "0755"),
        ]
    );

    // Report only: nothing was changed, no generation recorded beyond the first apply, and
    // the plan shows exactly the drifted resources.
    assert_eq!(sb.read("/etc/a.conf"), "alpha, replaced\n");
    assert!(!sb.exists("/etc/c.conf"));
    assert_eq!(sb.store().list().expect("generations").len(), 1);
    let plan = agent::apply::plan_now(&sb.host(), &desired).1;
    let mut planned: Vec<String> = plan.changes.iter().map(|c| c.id.to_string()).collect();
    planned.sort();
    let mut drifted = vec![
        "file:/etc/a.conf",
        "file:/etc/c.conf",
        "file:/etc/d.conf",
        "file:/etc/secret.key",
        "file:/srv/e.conf",
    ];
    if toggle {
        drifted.push("file:/etc/zz-marker");
        drifted.sort();
    }
    assert_eq!(planned, drifted);

    // Nothing anywhere contains the secret's content.
    let all = serde_json::to_string(&w.seen).expect("json");
    assert!(!all.contains("s3cret"), "{all}");
    assert!(
        w.seen.iter().all(|e| e["event"] != "error"),
        "{:#?}",
        w.seen
    );
}

#[test]
fn watch_enforce_restores_and_does_not_loop_on_its_own_writes() {
    let sb = Sandbox::new();
    let desired = fleet();
    assert_eq!(sb.apply(&desired).totals.failed, 0);
    let before = sb.snapshot();
    // Deleted before the start: restored at startup.
    std::fs::remove_file(sb.path("/etc/d.conf")).expect("rm");
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &["--enforce"]);
    let startup = w.until(|e| e["event"] == "resolved");
    assert_eq!(
        brief(&startup),
        [row(
            "resolved",
            "file:/etc/d.conf",
            "ensure",
            "absent",
            "present"
        )]
    );
    assert!(
        startup
            .iter()
            .any(|e| e["event"] == "enforced" && e["changed"] == 1 && e["failed"] == 0),
        "{startup:#?}"
    );
    assert_eq!(sb.read("/etc/d.conf"), "delta\n");

    sb.write("/etc/a.conf", "alpha, edited\n", 0o644);
    std::fs::set_permissions(
        sb.path("/etc/b.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::remove_file(sb.path("/etc/c.conf")).expect("rm");
    sb.write("/etc/.secret.swp", "s3cret-two\n", 0o644);
    std::fs::rename(sb.path("/etc/.secret.swp"), sb.path("/etc/secret.key")).expect("rename");
    let events = settle_enforced(&sb, &mut w);
    // Whatever the batching, every drift is followed by its resolution.
    let drifts: Vec<_> = brief(&events)
        .into_iter()
        .filter(|r| r.0 == "drift")
        .map(|r| (r.1, r.2))
        .collect();
    let resolved: Vec<_> = brief(&events)
        .into_iter()
        .filter(|r| r.0 == "resolved")
        .map(|r| (r.1, r.2))
        .collect();
    let mut expected = vec![
        ("file:/etc/a.conf".to_owned(), "content".to_owned()),
        ("file:/etc/b.conf".to_owned(), "mode".to_owned()),
        ("file:/etc/c.conf".to_owned(), "ensure".to_owned()),
        ("file:/etc/secret.key".to_owned(), "content".to_owned()),
        ("file:/etc/secret.key".to_owned(), "mode".to_owned()),
    ];
    expected.sort();
    let mut sorted = drifts.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{events:#?}");
    let mut sorted = resolved.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{events:#?}");
    assert!(events.iter().all(|e| e["event"] != "error"), "{events:#?}");

    // The root is as applied: contents, modes, owners (the marker's mode aside).
    let settle_marker = |sb: &Sandbox| {
        let mut now = sb.snapshot();
        let mut then = before.clone();
        for m in [&mut now, &mut then] {
            if let Some(e) = m.get_mut(MARKER) {
                e.mode = 0;
            }
            m.retain(|p, _| !p.starts_with("/var/lib"));
        }
        (now, then)
    };
    let (now, then) = settle_marker(&sb);
    assert_eq!(now, then);

    // No loop: the marker's own drift and enforcement are all that follow, and another
    // round produces no event about anything else.
    let generations = sb.store().list().expect("generations").len();
    let events = settle_enforced(&sb, &mut w);
    assert!(brief(&events).is_empty(), "{events:#?}");
    assert!(
        sb.store().list().expect("generations").len() <= generations + 1,
        "only the marker's enforcement was recorded"
    );
    let all = serde_json::to_string(&w.seen).expect("json");
    assert!(!all.contains("s3cret"), "{all}");
}

#[test]
fn watch_stops_cleanly_on_sigterm() {
    let sb = Sandbox::new();
    let desired = desired(vec![file(MARKER, "marker\n", "0644")]);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &[]);
    // Not applied: the startup reports it missing.
    assert_eq!(
        brief(&w.seen),
        [row(
            "drift",
            &format!("file:{MARKER}"),
            "ensure",
            "present",
            "absent"
        )]
    );
    let pid = w.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let last = w.until(|e| e["event"] == "stopped");
    assert_eq!(last.last().expect("stopped")["signal"], "SIGTERM");
    let status = w.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(!sb.exists(MARKER), "report only: nothing written");
}

#[test]
fn watch_follows_directories_deleted_and_recreated() {
    let sb = Sandbox::new();
    let desired = fleet();
    assert_eq!(sb.apply(&desired).totals.failed, 0);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &[]);
    let mut toggle = false;

    std::fs::remove_dir_all(sb.path("/srv")).expect("rm -r");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [
            row("drift", "directory:/srv", "ensure", "present", "absent"),
            row("drift", "file:/srv/e.conf", "ensure", "present", "absent"),
        ]
    );

    // Recreated by hand: the watch moves back to the directory, whatever the timing.
    std::fs::create_dir(sb.path("/srv")).expect("mkdir");
    std::fs::set_permissions(sb.path("/srv"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    sb.write("/srv/e.conf", "echo\n", 0o644);
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [
            row("resolved", "directory:/srv", "ensure", "absent", "present"),
            row(
                "resolved",
                "file:/srv/e.conf",
                "ensure",
                "absent",
                "present"
            ),
        ]
    );
    std::fs::set_permissions(
        sb.path("/srv/e.conf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row("drift", "file:/srv/e.conf", "mode", "0644", "0640")]
    );
}

#[test]
fn watch_reobserves_sysctls_on_the_timer_and_owners_when_accounts_change() {
    let sb = Sandbox::new();
    let desired = desired(vec![
        owned_file("/etc/owned.conf", "owned\n", "0644"),
        sysctl("net.core.somaxconn", "1024"),
        file(MARKER, "marker\n", "0644"),
    ]);
    assert_eq!(sb.apply(&desired).totals.failed, 0);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &["--interval", "1s"]);
    let ready = w.seen.last().expect("ready").clone();
    assert_eq!(ready["periodic"], 1, "{ready:#}");
    let mut toggle = false;

    // The live value has no events (under a real /proc/sys no file event either): the
    // timer finds it.
    sb.write("/proc/sys/net/core/somaxconn", "4096\n", 0o644);
    let events = w.until(|e| e["id"] == "sysctl:net.core.somaxconn");
    assert_eq!(
        brief(&events),
        [row(
            "drift",
            "sysctl:net.core.somaxconn",
            "value",
            "1024",
            "4096 (not persisted)"
        )]
    );

    // The owner's uid is renamed in etc/passwd (replaced by rename, as shadow-utils does):
    // the file's owner is now another name.
    let passwd = sb.read("/etc/passwd").replacen("root:", "admin:", 1);
    sb.write("/etc/passwd.new", &passwd, 0o644);
    std::fs::rename(sb.path("/etc/passwd.new"), sb.path("/etc/passwd")).expect("rename");
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row(
            "drift",
            "file:/etc/owned.conf",
            "owner",
            "root",
            "admin"
        )]
    );
}

#[test]
fn watch_enforce_reports_failures_and_retries_them_on_the_timer() {
    let sb = Sandbox::new();
    // The parent directory is not declared and does not exist: enforcement fails.
    let desired = desired(vec![file("/opt/app/app.conf", "app\n", "0644")]);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let mut w = Watch::start(&sb, &path, &["--enforce", "--interval", "1s"]);
    let events = w.until(|e| e["event"] == "enforced");
    let failed = events.last().expect("enforced");
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["failures"][0]["id"], "file:/opt/app/app.conf");
    let reason = failed["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("parent directory /opt/app does not exist"),
        "{reason}"
    );

    // Once the directory exists, the next retry succeeds.
    std::fs::create_dir_all(sb.path("/opt/app")).expect("mkdir");
    let events = w.until(|e| e["event"] == "resolved");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "enforced" && e["status"] == "applied"),
        "{events:#?}"
    );
    assert_eq!(
        brief(&events),
        [row(
            "resolved",
            "file:/opt/app/app.conf",
            "ensure",
            "absent",
            "present"
        )]
    );
    assert_eq!(sb.read("/opt/app/app.conf"), "app\n");
}

#[test]
fn watch_sees_accounts_changed_by_shadow_utils_without_waiting_for_the_timer() {
    let sb = crate::accounts::account_sandbox();
    let desired = desired(vec![
        Spec::Group(state::GroupSpec {
            name: "ops".into(),
            ensure: state::Ensure::Present,
            gid: Some(1500),
            system: false,
        }),
        file(MARKER, "marker\n", "0644"),
    ]);
    assert_eq!(sb.apply(&desired).totals.failed, 0);
    let path = write_desired(&sb.base, "desired.json", &desired);
    // The timer is an hour away: only the event on etc/group can report this.
    let mut w = Watch::start(&sb, &path, &["--interval", "1h"]);
    let mut toggle = false;
    let out = Command::new("groupmod")
        .args(["--root"])
        .arg(&sb.root)
        .args(["--gid", "1600", "ops"])
        .output()
        .expect("groupmod");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = settle(&sb, &mut w, &mut toggle);
    assert_eq!(
        brief(&events),
        [row("drift", "group:ops", "gid", "1500", "1600")]
    );
}
