//! `actions/ci.sh`, the script behind the GitHub Action and the GitLab template, run for real
//! with the `centossrv` binary on a Git history: outputs, job summary, report files and exit
//! statuses for changes, no changes, `fail-on-changes`, compile errors and a missing binary.

mod common;

use common::{NODE, ROLE, git, write};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../actions/ci.sh")
}

/// A work tree whose fleet lives in `fleet/`, with two commits: base and a changed motd.
fn history(root: &Path) {
    write(root, "fleet/nodes/web-01.yaml", NODE);
    write(root, "fleet/roles/web.yaml", ROLE);
    write(root, "fleet/files/motd.j2", "v1 {{ node.name }}\n");
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "base"]);
    write(root, "fleet/files/motd.j2", "v2 {{ node.name }}\n");
    git(root, &["commit", "-qam", "motd v2"]);
}

struct Run {
    output: Output,
    outputs: BTreeMap<String, String>,
    summary: String,
    report: PathBuf,
}

fn run(root: &Path, env: &[(&str, &str)]) -> Run {
    let gh_output = root.join("gh-output");
    let summary = root.join("gh-summary.md");
    let report = root.join("report");
    let _ = std::fs::remove_file(&gh_output);
    let _ = std::fs::remove_file(&summary);
    let _ = std::fs::remove_dir_all(&report);
    let output = Command::new("bash")
        .arg(script())
        .current_dir(root)
        .env("CENTOSSRV", env!("CARGO_BIN_EXE_centossrv"))
        .env("CENTOSSRV_PATH", "fleet")
        .env("CENTOSSRV_OUT", &report)
        .env("GITHUB_OUTPUT", &gh_output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .envs(env.iter().copied())
        .output()
        .expect("run ci.sh");
    let outputs = std::fs::read_to_string(&gh_output)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Run {
        output,
        outputs,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        report,
    }
}

fn describe(r: &Run) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        r.output.status,
        String::from_utf8_lossy(&r.output.stdout),
        String::from_utf8_lossy(&r.output.stderr)
    )
}

#[test]
fn a_change_is_planned_into_the_summary_outputs_and_report_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    history(root);
    let r = run(
        root,
        &[
            ("CENTOSSRV_BASE", "HEAD~1"),
            ("CENTOSSRV_HEAD", "HEAD"),
            ("CENTOSSRV_PR", "7"),
            ("CENTOSSRV_LINK", "https://ci.example.org/run/1"),
        ],
    );
    assert_eq!(r.output.status.code(), Some(0), "{}", describe(&r));
    assert_eq!(r.outputs["changes"], "true");
    assert_eq!(r.outputs["exit-code"], "0");
    assert_eq!(r.outputs["report-dir"], r.report.to_string_lossy());
    assert!(
        r.summary.starts_with("<!-- centossrv-plan: "),
        "{}",
        r.summary
    );
    assert!(r.summary.contains("/etc/motd"), "{}", r.summary);
    assert!(r.summary.contains("https://ci.example.org/run/1"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.report.join("plan.json")).expect("plan.json"))
            .expect("plan.json is JSON");
    assert_eq!(json["pr"], 7, "{json:#}");
    let text = std::fs::read_to_string(r.report.join("plan.txt")).expect("plan.txt");
    assert!(text.contains("web-01"), "{text}");
    assert!(!text.contains('\x1b'), "colour in a CI log file");
    let diagnostics: serde_json::Value = serde_json::from_slice(
        &std::fs::read(r.report.join("diagnostics.json")).expect("diagnostics.json"),
    )
    .expect("diagnostics.json is JSON");
    assert!(diagnostics.is_object() || diagnostics.is_array());
    // The sensitive file's content reaches no file, no log and no summary.
    for entry in std::fs::read_dir(&r.report).expect("report dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));
    }
    assert!(!describe(&r).contains("hunter2"));
    assert!(!r.summary.contains("hunter2"));
}

#[test]
fn no_changes_and_fail_on_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    history(root);
    let same = run(
        root,
        &[("CENTOSSRV_BASE", "HEAD"), ("CENTOSSRV_HEAD", "HEAD")],
    );
    // Without observed state the node is planned as "state unknown" on top of base: with
    // base == head nothing would change.
    assert_eq!(same.output.status.code(), Some(0), "{}", describe(&same));
    assert_eq!(same.outputs["changes"], "false");
    assert_eq!(same.outputs["exit-code"], "0");
    let changed = run(
        root,
        &[
            ("CENTOSSRV_BASE", "HEAD~1"),
            ("CENTOSSRV_FAIL_ON_CHANGES", "true"),
        ],
    );
    assert_eq!(
        changed.output.status.code(),
        Some(2),
        "{}",
        describe(&changed)
    );
    assert_eq!(changed.outputs["changes"], "true");
    assert_eq!(changed.outputs["exit-code"], "2");
}

#[test]
fn compile_errors_fail_with_located_diagnostics_in_the_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    history(root);
    write(
        root,
        "fleet/roles/bad.yaml",
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: bad}\nspec:\n  selector: {}\n  resources:\n    - file: etc/x\n",
    );
    let r = run(root, &[("CENTOSSRV_BASE", "HEAD~1")]);
    assert_eq!(r.output.status.code(), Some(1), "{}", describe(&r));
    assert_eq!(r.outputs["exit-code"], "1");
    assert_eq!(r.outputs["changes"], "unknown");
    assert!(
        r.summary.contains("does not compile") && r.summary.contains("roles/bad.yaml:7:13"),
        "{}",
        r.summary
    );
    assert!(!r.report.join("plan.md").exists());
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(dir.path(), &[("CENTOSSRV", "/nonexistent/centossrv")]);
    assert_eq!(r.output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.output.stderr).contains("centossrv binary"),
        "{}",
        describe(&r)
    );
}
