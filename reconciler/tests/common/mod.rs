//! Helpers shared by the reconciler's integration tests: Git with a fixed identity, files,
//! and the small one-node fleet.

use std::path::Path;
use std::process::Command;

/// Runs `git` in `dir` with a fixed author and `main` as the default branch.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} failed");
}

/// Writes `text` at `root/path`, creating parent directories.
pub fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[allow(dead_code)] // not every test binary uses the one-node fleet
pub const NODE: &str =
    "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: web-01\n  labels: {role: web}\n";
#[allow(dead_code)]
pub const ROLE: &str = "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {role: web}}\n  resources:\n    - file: /etc/motd\n      template: files/motd.j2\n    - file: /etc/secret\n      content: hunter2\n      sensitive: true\n";

/// The commit id `rev` names in `dir`.
#[allow(dead_code)] // not every test binary reads commit ids
pub fn rev_parse(dir: &Path, rev: &str) -> String {
    let out = Command::new("git")
        .args(["rev-parse", rev])
        .current_dir(dir)
        .output()
        .expect("run git rev-parse");
    assert!(out.status.success(), "git rev-parse {rev} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
