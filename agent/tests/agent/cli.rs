//! The `centossrv-agent` binary: commands, formats and exit codes.

use crate::util::*;
use std::process::{Command, Output};

fn agent(sb: &Sandbox, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
        .args(args)
        .arg("--root")
        .arg(&sb.root)
        .output()
        .expect("run centossrv-agent")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn plan_apply_generations_rollback() {
    let sb = Sandbox::new();
    let desired = desired(vec![
        file("/etc/motd", "hello\n", "0644"),
        sysctl("net.core.somaxconn", "1024"),
        service("nginx"),
    ]);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let path = path.to_str().expect("utf-8 path");

    // The service backend (auto: the built-in supervisor here) is not running.
    let observe = agent(&sb, &["observe", path, "--service-backend", "supervisor"]);
    assert_eq!(observe.status.code(), Some(0));
    let observed: state::ObservedState =
        serde_json::from_slice(&observe.stdout).expect("observe prints an ObservedState");
    assert_eq!(observed.resources.len(), 2, "the service is not observed");
    assert!(
        String::from_utf8_lossy(&observe.stderr)
            .contains("warning: service:nginx not observed: the supervisor is not running"),
        "{}",
        String::from_utf8_lossy(&observe.stderr)
    );

    let plan = agent(&sb, &["plan", path, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", stdout(&plan));
    let text = stdout(&plan);
    assert!(text.contains("+ create file:/etc/motd"), "{text}");
    assert!(
        String::from_utf8_lossy(&plan.stderr)
            .contains("warning: service:nginx not observed: the supervisor is not running"),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );

    let plan = agent(&sb, &["plan", path, "--format", "json"]);
    assert_eq!(plan.status.code(), Some(0));
    let plan: state::NodePlan = serde_json::from_slice(&plan.stdout).expect("a NodePlan");
    // The reconciler's plan against the agent's observation has the same digest.
    let reconciler_plan = state::plan(Some(&desired), Some(&observed), None);
    assert_eq!(plan.digest, reconciler_plan.digest);

    // A digest that is not the plan's: stale, exit 3, nothing touched.
    let stale = agent(
        &sb,
        &[
            "apply",
            path,
            "--expect-digest",
            "sha256:0000",
            "--format",
            "json",
        ],
    );
    assert_eq!(stale.status.code(), Some(3), "{}", stdout(&stale));
    let report: serde_json::Value = serde_json::from_slice(&stale.stdout).expect("json");
    assert_eq!(report["status"], "stale");
    assert_eq!(report["plan_digest"], plan.digest.as_str());
    assert!(report["plan"]["changes"].is_array());
    assert!(!sb.exists("/etc/motd"));

    // The approved digest: applied; the service fails, so exit 2.
    let applied = agent(
        &sb,
        &[
            "apply",
            path,
            "--expect-digest",
            &plan.digest,
            "--format",
            "json",
        ],
    );
    assert_eq!(applied.status.code(), Some(2), "{}", stdout(&applied));
    let report: agent::ApplyReport = serde_json::from_slice(&applied.stdout).expect("report");
    assert_eq!(report.totals.changed, 2);
    assert_eq!(report.totals.failed, 1);
    assert_eq!(report.generation, Some(1));
    assert_eq!(sb.read("/etc/motd"), "hello\n");
    // The default state directory is under the root.
    assert!(sb.exists("/var/lib/centossrv-agent/generations/00000001/generation.json"));

    let plan = agent(&sb, &["plan", path, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "the service is still a change");

    let generations = agent(&sb, &["generations"]);
    assert_eq!(generations.status.code(), Some(0));
    assert!(
        stdout(&generations).contains("2 changed, 1 failed"),
        "{}",
        stdout(&generations)
    );

    let rollback = agent(&sb, &["rollback", "1"]);
    assert_eq!(rollback.status.code(), Some(0), "{}", stdout(&rollback));
    assert!(
        stdout(&rollback).contains("removed  /etc/motd"),
        "{}",
        stdout(&rollback)
    );
    assert!(!sb.exists("/etc/motd"));
}

#[test]
fn no_changes_exit_zero_and_errors_exit_one() {
    let sb = Sandbox::new();
    let desired = desired(vec![file("/etc/motd", "hello\n", "0644")]);
    let path = write_desired(&sb.base, "desired.json", &desired);
    let path = path.to_str().expect("utf-8 path");
    let applied = agent(&sb, &["apply", path]);
    assert_eq!(applied.status.code(), Some(0), "{}", stdout(&applied));
    assert!(stdout(&applied).contains("1 changed, 0 unchanged, 0 failed"));
    let plan = agent(&sb, &["plan", path, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));

    let missing = agent(&sb, &["plan", "/nonexistent/desired.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("error: cannot read"));

    let not_json = write_desired(&sb.base, "bad.json", &desired);
    std::fs::write(&not_json, "{}").expect("write");
    let bad = agent(&sb, &["apply", not_json.to_str().expect("utf-8")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a desired state"));

    let none = agent(&sb, &["rollback", "7"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("not kept"));
}
