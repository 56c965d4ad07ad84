//! Packages with the real rpm, rpmbuild, createrepo_c and dnf: two tiny noarch RPMs in
//! versions 1.0 and 2.0 in a local repository, installed into sandbox roots. No mocks; a
//! missing tool fails the test with the command that installs it.

use crate::util::*;
use agent::{ApplyOptions, ApplyReport, ApplyStatus, Outcome, PackageOptions, RealHost};
use state::{Action, PackageEnsure, PackageSpec, Spec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PKG: &str = "cshello";
const OTHER: &str = "csworld";

/// Fails the test (never skips it) when a tool is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: these tests need the real tool \
         (Debian: `apt-get install -y {package}`)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Built once per test run: `full` holds both versions of both packages, `only_new` only
/// the 2.0 versions.
struct Repos {
    _dir: tempfile::TempDir,
    full: PathBuf,
    only_new: PathBuf,
}

fn repos() -> &'static Repos {
    static REPOS: OnceLock<Repos> = OnceLock::new();
    REPOS.get_or_init(|| {
        require_tool("rpmbuild", "rpm");
        require_tool("createrepo_c", "createrepo-c");
        let dir = tempfile::tempdir_in(temp_base()).expect("tempdir");
        let t = dir.path();
        let full = t.join("repo-full");
        let only_new = t.join("repo-new");
        std::fs::create_dir_all(&full).expect("mkdir");
        std::fs::create_dir_all(&only_new).expect("mkdir");
        for name in [PKG, OTHER] {
            for version in ["1.0", "2.0"] {
                let spec = t.join(format!("{name}-{version}.spec"));
                std::fs::write(
                    &spec,
                    format!(
                        "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test\n\
                         License: MIT\nBuildArch: noarch\n%description\ntest\n%install\n\
                         mkdir -p %{{buildroot}}/usr/share/{name}\n\
                         echo {version} > %{{buildroot}}/usr/share/{name}/version\n\
                         %files\n/usr/share/{name}/version\n"
                    ),
                )
                .expect("spec");
                run(Command::new("rpmbuild")
                    .arg("--quiet")
                    .arg("--define")
                    .arg(format!("_topdir {}", t.join("rpmbuild").display()))
                    .arg("-bb")
                    .arg(&spec));
                let rpm = t
                    .join("rpmbuild/RPMS/noarch")
                    .join(format!("{name}-{version}-1.noarch.rpm"));
                std::fs::copy(&rpm, full.join(rpm.file_name().expect("name"))).expect("copy");
                if version == "2.0" {
                    std::fs::copy(&rpm, only_new.join(rpm.file_name().expect("name")))
                        .expect("copy");
                }
            }
        }
        run(Command::new("createrepo_c").arg("-q").arg(&full));
        run(Command::new("createrepo_c").arg("-q").arg(&only_new));
        Repos {
            _dir: dir,
            full,
            only_new,
        }
    })
}

fn package_sandbox() -> Sandbox {
    require_tool("rpm", "rpm");
    require_tool("dnf", "dnf");
    let sb = Sandbox::new();
    std::fs::write(
        sb.path("/etc/os-release"),
        "NAME=\"Test\"\nVERSION_ID=\"9\"\n",
    )
    .expect("os-release");
    sb
}

fn host(sb: &Sandbox, repo: &Path) -> RealHost {
    sb.host().with_package_options(PackageOptions {
        repos: vec![("local".into(), format!("file://{}", repo.display()))],
        nogpgcheck: true,
    })
}

fn pkg(name: &str, ensure: PackageEnsure) -> Spec {
    Spec::Package(PackageSpec {
        name: name.into(),
        ensure,
    })
}

fn version(v: &str) -> PackageEnsure {
    PackageEnsure::Version(v.into())
}

fn apply(host: &RealHost, sb: &Sandbox, desired: &state::DesiredState) -> ApplyReport {
    agent::apply(host, &sb.store(), desired, &ApplyOptions::default()).expect("apply runs")
}

fn observed(host: &RealHost, name: &str, desired: &state::DesiredState) -> PackageEnsure {
    let obs = agent::observe(host, desired);
    assert!(obs.problems.is_empty(), "{:?}", obs.problems);
    match obs
        .state
        .resources
        .get(&format!("package:{name}").parse().expect("id"))
    {
        Some(Spec::Package(p)) => p.ensure.clone(),
        other => panic!("package:{name} observed as {other:?}"),
    }
}

/// Plans, checks the one change's version property, applies, checks it took, and applies
/// again to check nothing changes the second time.
fn step(
    host: &RealHost,
    sb: &Sandbox,
    ensure: PackageEnsure,
    action: Action,
    before: Option<&str>,
    after: Option<&str>,
) -> ApplyReport {
    let d = desired(vec![pkg(PKG, ensure.clone())]);
    let (_, plan) = agent::apply::plan_now(host, &d);
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    let change = &plan.changes[0];
    assert_eq!(change.action, action, "{change:#?}");
    let prop = change
        .properties
        .iter()
        .find(|p| {
            p.name
                == if action == Action::Delete {
                    "ensure"
                } else {
                    "version"
                }
        })
        .unwrap_or_else(|| panic!("{change:#?}"));
    assert_eq!(prop.before.as_deref(), before, "{change:#?}");
    assert_eq!(prop.after.as_deref(), after, "{change:#?}");
    let report = apply(host, sb, &d);
    assert_eq!(report.status, ApplyStatus::Applied, "{report:#?}");
    assert_eq!(report.totals.changed, 1, "{report:#?}");
    let again = apply(host, sb, &d);
    assert_eq!(again.status, ApplyStatus::Applied, "{again:#?}");
    assert_eq!(again.totals.changed, 0, "second apply: {again:#?}");
    assert_eq!(again.totals.unchanged, 1);
    assert!(
        !agent::apply::plan_now(host, &d).1.has_host_changes(),
        "in sync after apply"
    );
    report
}

fn installed_file(sb: &Sandbox) -> Option<String> {
    let p = format!("/usr/share/{PKG}/version");
    sb.exists(&p).then(|| sb.read(&p))
}

#[test]
fn install_upgrade_downgrade_remove_and_roll_back() {
    let repos = repos();
    let sb = package_sandbox();
    let host = host(&sb, &repos.full);
    let d1 = desired(vec![pkg(PKG, version("1.0-1"))]);
    assert_eq!(observed(&host, PKG, &d1), PackageEnsure::Absent);

    let g1 = step(
        &host,
        &sb,
        version("1.0-1"),
        Action::Create,
        None,
        Some("1.0-1"),
    );
    assert_eq!(observed(&host, PKG, &d1), version("1.0-1"));
    assert_eq!(installed_file(&sb).as_deref(), Some("1.0\n"));
    // rpm and dnf agree on the database in the root (not `~/.rpmdb`).
    assert!(sb.exists("/var/lib/rpm"));

    step(
        &host,
        &sb,
        version("2.0-1"),
        Action::Update,
        Some("1.0-1"),
        Some("2.0-1"),
    );
    assert_eq!(installed_file(&sb).as_deref(), Some("2.0\n"));

    // An equivalent spelling with epoch 0 is in sync.
    let d0 = desired(vec![pkg(PKG, version("0:2.0-1"))]);
    assert!(!agent::apply::plan_now(&host, &d0).1.has_host_changes());

    let g3 = step(
        &host,
        &sb,
        version("1.0-1"),
        Action::Update,
        Some("2.0-1"),
        Some("1.0-1"),
    );
    assert_eq!(installed_file(&sb).as_deref(), Some("1.0\n"));

    // Rolling back the downgrade puts 2.0 back.
    let g3 = g3.generation.expect("a generation");
    let rb = agent::rollback(&host, &sb.store(), Some(g3), 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(rb.totals.restored, 1, "{rb:#?}");
    assert_eq!(observed(&host, PKG, &d1), version("2.0-1"));

    let g4 = step(
        &host,
        &sb,
        PackageEnsure::Absent,
        Action::Delete,
        Some("present"),
        Some("absent"),
    );
    assert_eq!(observed(&host, PKG, &d1), PackageEnsure::Absent);
    assert_eq!(installed_file(&sb), None);

    // Rolling back the removal reinstalls the version that was there.
    let rb = agent::rollback(&host, &sb.store(), g4.generation, 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(observed(&host, PKG, &d1), version("2.0-1"));

    // Rolling back to before the first apply removes it.
    let rb = agent::rollback(&host, &sb.store(), g1.generation, 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(rb.totals.removed, 1, "{rb:#?}");
    assert_eq!(observed(&host, PKG, &d1), PackageEnsure::Absent);
}

#[test]
fn latest_and_present_install_the_newest_and_failures_carry_dnf_stderr() {
    let repos = repos();
    let sb = package_sandbox();
    let host = host(&sb, &repos.full);
    let d = desired(vec![
        pkg(PKG, PackageEnsure::Latest),
        pkg(OTHER, PackageEnsure::Present),
        pkg("cs-no-such-package", PackageEnsure::Present),
    ]);
    let report = apply(&host, &sb, &d);
    assert_eq!(report.status, ApplyStatus::Failed);
    let by = |name: &str| {
        report
            .resources
            .iter()
            .find(|r| r.id.name == name)
            .expect("reported")
    };
    assert_eq!(by(PKG).outcome, Outcome::Changed);
    assert_eq!(by(OTHER).outcome, Outcome::Changed);
    let missing = by("cs-no-such-package");
    assert_eq!(missing.outcome, Outcome::Failed);
    let reason = missing.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("dnf install cs-no-such-package failed (exit 1): ")
            && reason.contains("cs-no-such-package"),
        "{reason}"
    );
    assert_eq!(observed(&host, PKG, &d), version("2.0-1"));
    assert_eq!(observed(&host, OTHER, &d), version("2.0-1"));
    // A version no repository has fails, with dnf's message.
    let d = desired(vec![pkg(PKG, version("9.9-1"))]);
    let report = apply(&host, &sb, &d);
    let reason = report.resources[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("cshello-9.9-1"), "{reason}");
    assert_eq!(observed(&host, PKG, &d), version("2.0-1"));
}

#[test]
fn rollback_fails_when_the_old_version_is_gone_from_the_repository() {
    let repos = repos();
    let sb = package_sandbox();
    let old = host(&sb, &repos.full);
    let d = desired(vec![pkg(PKG, version("1.0-1"))]);
    assert_eq!(apply(&old, &sb, &d).totals.changed, 1);
    // Upgrade with a repository that only has 2.0, then roll back with it.
    let new = host(&sb, &repos.only_new);
    let d = desired(vec![pkg(PKG, version("2.0-1"))]);
    let report = apply(&new, &sb, &d);
    assert_eq!(report.totals.changed, 1, "{report:#?}");
    let rb = agent::rollback(&new, &sb.store(), None, 10).expect("rollback");
    assert!(rb.has_failures(), "{rb:#?}");
    let entry = rb
        .entries
        .iter()
        .find(|e| e.target == format!("package:{PKG}"))
        .expect("entry");
    let reason = entry.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("cshello-1.0-1"), "{reason}");
    assert_eq!(observed(&new, PKG, &d), version("2.0-1"));
}

#[test]
fn cli_repo_flag_adds_a_repository() {
    let repos = repos();
    let sb = package_sandbox();
    let d = desired(vec![pkg(PKG, version("1.0-1"))]);
    let path = write_desired(&sb.base, "desired.json", &d);
    let repo = format!("local=file://{}", repos.full.display());
    let agent = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
            .args(args)
            .arg("--root")
            .arg(&sb.root)
            .args(["--repo", &repo, "--nogpgcheck"])
            .output()
            .expect("run centossrv-agent")
    };
    let path = path.to_str().expect("utf-8");
    let plan = agent(&["plan", path, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("package:cshello"), "{text}");
    let applied = agent(&["apply", path]);
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&applied.stdout),
        String::from_utf8_lossy(&applied.stderr)
    );
    let plan = agent(&["plan", path, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0));
    let bad = agent(&["plan", path, "--repo", "no-equals-sign"]);
    assert_eq!(bad.status.code(), Some(2), "clap usage error");
}
