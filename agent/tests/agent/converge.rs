//! Idempotence and drift: applying twice changes nothing the second time; a hand edit shows
//! up as exactly one change in the plan, which itself changes nothing.

use crate::util::*;
use agent::{ApplyStatus, Outcome};
use state::Action;

fn example() -> state::DesiredState {
    desired(vec![
        dir("/etc/app", "0750"),
        dir("/etc/app/conf.d", "2755"),
        owned_file("/etc/app/app.conf", "listen = 8080\nworkers = 4\n", "0640"),
        file("/etc/app/conf.d/extra.conf", "# extra\n", "0600"),
        file("/etc/motd", "Welcome\n", "0644"),
        absent_file("/etc/old.conf"),
        absent_dir("/etc/old.d"),
        link("/etc/localtime", "/usr/share/zoneinfo/UTC"),
        sysctl("net.core.somaxconn", "4096"),
        sysctl("net.ipv4.ip_local_port_range", "32768 60999"),
    ])
}

#[test]
fn second_apply_changes_nothing() {
    let sb = Sandbox::new();
    sb.write("/etc/old.conf", "stale\n", 0o644);
    std::fs::create_dir(sb.path("/etc/old.d")).expect("mkdir");
    sb.write("/etc/motd", "Hello from the image\n", 0o600);
    let desired = example();

    let first = sb.apply(&desired);
    assert_eq!(first.status, ApplyStatus::Applied, "{first:#?}");
    assert_eq!(first.totals.failed, 0);
    assert_eq!(first.totals.changed, desired.resources.len());
    assert!(first.generation.is_some());
    assert_eq!(sb.read("/etc/app/app.conf"), "listen = 8080\nworkers = 4\n");
    assert_eq!(sb.mode("/etc/app"), 0o750);
    assert_eq!(sb.mode("/etc/app/conf.d"), 0o2755);
    assert_eq!(sb.mode("/etc/app/app.conf"), 0o640);
    assert_eq!(sb.mode("/etc/app/conf.d/extra.conf"), 0o600);
    assert_eq!(sb.read("/etc/motd"), "Welcome\n");
    assert_eq!(sb.mode("/etc/motd"), 0o644);
    assert!(!sb.exists("/etc/old.conf"));
    assert!(!sb.exists("/etc/old.d"));
    assert_eq!(
        std::fs::read_link(sb.path("/etc/localtime")).expect("link"),
        std::path::Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(sb.read("/proc/sys/net/core/somaxconn"), "4096\n");
    let persisted = sb.read("/etc/sysctl.d/99-centossrv.conf");
    assert!(
        persisted.contains("net.core.somaxconn = 4096\n"),
        "{persisted}"
    );
    assert!(persisted.contains("net.ipv4.ip_local_port_range = 32768 60999\n"));
    // The observed state after apply is converged: planning against it is empty.
    let observed = first.observed.as_ref().expect("observed");
    assert!(!state::plan(Some(&desired), Some(observed), None).has_host_changes());

    let before = sb.snapshot();
    let second = sb.apply(&desired);
    assert_eq!(second.status, ApplyStatus::Applied);
    assert_eq!(second.totals.changed, 0, "{second:#?}");
    assert_eq!(second.totals.failed, 0);
    assert_eq!(second.totals.unchanged, desired.resources.len());
    assert!(
        second
            .resources
            .iter()
            .all(|r| r.outcome == Outcome::Unchanged)
    );
    assert_eq!(
        second.generation, None,
        "nothing to change, nothing recorded"
    );
    assert_eq!(sb.snapshot(), before);
    // Exactly one generation: the first apply's.
    assert_eq!(sb.store().list().expect("list").len(), 1);
}

#[test]
fn hand_edit_is_exactly_one_drifted_resource() {
    let sb = Sandbox::new();
    let desired = example();
    assert_eq!(sb.apply(&desired).totals.failed, 0);

    // A hand edit of one file.
    std::fs::write(sb.path("/etc/app/app.conf"), "listen = 9090\nworkers = 4\n").expect("edit");
    let before = sb.snapshot();
    let (_, plan) = agent::apply::plan_now(&sb.host(), &desired);
    assert_eq!(sb.snapshot(), before, "planning changed the host");
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unmanage)
        .collect();
    assert_eq!(changes.len(), 1, "{plan:#?}");
    let change = changes[0];
    assert_eq!(change.id.to_string(), "file:/etc/app/app.conf");
    assert_eq!(change.action, Action::Update);
    let props: Vec<&str> = change.properties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(props, ["content"]);
    let diff = change.diff.as_deref().expect("a diff of the drift");
    assert!(
        diff.contains("-listen = 9090") && diff.contains("+listen = 8080"),
        "{diff}"
    );

    // A mode change by hand and a live sysctl change are drift too.
    std::fs::set_permissions(
        sb.path("/etc/motd"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    std::fs::write(sb.path("/proc/sys/net/core/somaxconn"), "128\n").expect("sysctl");
    let (_, plan) = agent::apply::plan_now(&sb.host(), &desired);
    let ids: Vec<String> = plan.changes.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "file:/etc/app/app.conf",
            "file:/etc/motd",
            "sysctl:net.core.somaxconn"
        ]
    );

    let report = sb.apply(&desired);
    assert_eq!(report.totals.changed, 3, "{report:#?}");
    assert_eq!(report.totals.failed, 0);
    assert_eq!(sb.read("/etc/app/app.conf"), "listen = 8080\nworkers = 4\n");
    assert_eq!(sb.mode("/etc/motd"), 0o644);
    assert_eq!(sb.read("/proc/sys/net/core/somaxconn"), "4096\n");
    let (_, plan) = agent::apply::plan_now(&sb.host(), &desired);
    assert!(!plan.has_host_changes(), "{plan:#?}");

    // Files only: just the fixed file is observed again; the reported observed state is
    // still the whole converged host, equal to a fresh observation.
    std::fs::write(sb.path("/etc/app/app.conf"), "listen = 9090\nworkers = 4\n").expect("edit");
    let report = sb.apply(&desired);
    assert_eq!((report.totals.changed, report.totals.failed), (1, 0));
    let reported = report.observed.expect("observed");
    let fresh = agent::observe::observe(&sb.host(), &desired).state;
    assert_eq!(reported.resources, fresh.resources);
    assert!(!state::plan(Some(&desired), Some(&reported), None).has_host_changes());
}

#[test]
fn sysctl_not_persisted_is_a_change() {
    let sb = Sandbox::new();
    let desired = desired(vec![sysctl("kernel.dmesg_restrict", "1")]);
    // Live value already right, but nothing persisted: the plan says so.
    std::fs::create_dir_all(sb.path("/proc/sys/kernel")).expect("mkdir");
    std::fs::write(sb.path("/proc/sys/kernel/dmesg_restrict"), "1\n").expect("write");
    let (observation, plan) = agent::apply::plan_now(&sb.host(), &desired);
    let observed = observation
        .state
        .resources
        .values()
        .next()
        .expect("observed");
    assert!(matches!(observed, state::Spec::Sysctl(s) if s.value == "1 (not persisted)"));
    assert_eq!(plan.changes.len(), 1);
    let report = sb.apply(&desired);
    assert_eq!(report.totals.changed, 1);
    assert!(
        sb.read("/etc/sysctl.d/99-centossrv.conf")
            .contains("kernel.dmesg_restrict = 1\n")
    );
    assert_eq!(sb.apply(&desired).totals.changed, 0);
}

#[test]
fn observe_reports_what_is_there() {
    let sb = Sandbox::new();
    sb.write("/etc/app.conf", "old text\n", 0o640);
    sb.write("/etc/same.conf", "same\n", 0o644);
    let mut secret = match file("/etc/secret", "new secret\n", "0600") {
        state::Spec::File(f) => f,
        _ => unreachable!(),
    };
    secret.sensitive = true;
    sb.write("/etc/secret", "old secret\n", 0o600);
    let desired = desired(vec![
        file("/etc/app.conf", "new text\n", "0644"),
        file("/etc/same.conf", "same\n", "0644"),
        state::Spec::File(secret),
        file("/etc/missing", "x", "0644"),
        package("nginx"),
    ]);
    let obs = agent::observe(&sb.host(), &desired);
    assert!(obs.problems.is_empty(), "{:?}", obs.problems);
    let get = |id: &str| match obs.state.resources.get(&id.parse().expect("id")) {
        Some(state::Spec::File(f)) => f.clone(),
        other => panic!("{id}: {other:?}"),
    };
    let app = get("file:/etc/app.conf");
    assert_eq!(app.mode.as_deref(), Some("0640"));
    assert_eq!(app.owner.as_deref(), Some("root"));
    assert_eq!(app.group.as_deref(), Some("root"));
    assert_eq!(
        app.sha256.as_deref(),
        Some(state::digest::sha256(b"old text\n").as_str())
    );
    assert_eq!(
        app.content.as_deref(),
        Some("old text\n"),
        "differs: content shown"
    );
    assert_eq!(
        get("file:/etc/same.conf").content,
        None,
        "same: digest only"
    );
    assert_eq!(get("file:/etc/secret").content, None, "sensitive: never");
    assert_eq!(get("file:/etc/missing").ensure, state::Ensure::Absent);
    // The sandbox has no rpm database: the package is observed as not installed.
    assert_eq!(
        obs.state
            .resources
            .get(&"package:nginx".parse().expect("id")),
        Some(&state::Spec::Package(state::PackageSpec {
            name: "nginx".into(),
            ensure: state::PackageEnsure::Absent,
        })),
        "packages are observed with rpm"
    );
}

#[test]
fn a_second_agent_is_refused_while_the_lock_is_held() {
    let sb = Sandbox::new();
    let store = sb.store();
    let _held = store.lock().expect("lock");
    let err = agent::apply(
        &sb.host(),
        &store,
        &desired(vec![file("/etc/motd", "x\n", "0644")]),
        &agent::ApplyOptions::default(),
    )
    .expect_err("locked");
    assert!(err.to_string().contains("lock"), "{err}");
    assert!(!sb.exists("/etc/motd"));
}

#[test]
fn missing_parent_and_unknown_owner_fail_with_reasons() {
    let sb = Sandbox::new();
    let mut owned = match file("/etc/owned", "x\n", "0644") {
        state::Spec::File(f) => f,
        _ => unreachable!(),
    };
    owned.owner = Some("nginx".into());
    let desired = desired(vec![
        file("/opt/app/config", "x\n", "0644"),
        state::Spec::File(owned),
        file("/etc/fine", "ok\n", "0644"),
    ]);
    let report = sb.apply(&desired);
    assert_eq!(report.status, ApplyStatus::Failed);
    let reason = |id: &str| {
        report
            .resources
            .iter()
            .find(|r| r.id.to_string() == id)
            .and_then(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("file:/opt/app/config").contains("parent directory /opt/app does not exist"),
        "{report:#?}"
    );
    assert!(reason("file:/etc/owned").contains("unknown user `nginx`"));
    assert_eq!(report.totals.changed, 1);
    assert!(!sb.exists("/etc/owned"));
    assert_eq!(sb.read("/etc/fine"), "ok\n");
}

#[test]
fn other_types_in_the_way_are_replaced_or_refused() {
    let sb = Sandbox::new();
    // A symlink where a file belongs, an empty directory where a link belongs, a non-empty
    // directory where a file belongs, a file where a directory belongs.
    std::os::unix::fs::symlink("/etc/elsewhere", sb.path("/etc/hosts")).expect("symlink");
    std::fs::create_dir(sb.path("/etc/localtime")).expect("mkdir");
    std::fs::create_dir(sb.path("/etc/busy")).expect("mkdir");
    sb.write("/etc/busy/data", "keep me\n", 0o644);
    sb.write("/etc/app", "a file\n", 0o644);
    let desired = desired(vec![
        file("/etc/hosts", "127.0.0.1 localhost\n", "0644"),
        link("/etc/localtime", "/usr/share/zoneinfo/UTC"),
        file("/etc/busy", "x\n", "0644"),
        dir("/etc/app", "0755"),
    ]);
    let (_, plan) = agent::apply::plan_now(&sb.host(), &desired);
    assert!(plan.changes.iter().all(|c| c.destructive), "{plan:#?}");
    let report = sb.apply(&desired);
    let outcome = |id: &str| outcome_of(&report, id);
    assert_eq!(outcome("file:/etc/hosts").0, Outcome::Changed);
    assert_eq!(sb.read("/etc/hosts"), "127.0.0.1 localhost\n");
    assert_eq!(outcome("symlink:/etc/localtime").0, Outcome::Changed);
    assert!(sb.path("/etc/localtime").is_symlink());
    let (busy, reason) = outcome("file:/etc/busy");
    assert_eq!(busy, Outcome::Failed);
    assert!(reason.contains("non-empty directory"), "{reason}");
    assert_eq!(sb.read("/etc/busy/data"), "keep me\n");
    assert_eq!(outcome("directory:/etc/app").0, Outcome::Changed);
    assert!(sb.path("/etc/app").is_dir());
    // Rollback puts every one of them back.
    let rollback = agent::rollback(&sb.host(), &sb.store(), None, 10).expect("rollback");
    assert_eq!(rollback.totals.failed, 0, "{rollback:#?}");
    assert_eq!(
        std::fs::read_link(sb.path("/etc/hosts")).expect("link"),
        std::path::Path::new("/etc/elsewhere")
    );
    assert!(sb.path("/etc/localtime").is_dir());
    assert_eq!(sb.read("/etc/app"), "a file\n");
}

/// A file whose parent directory is missing or is not a directory fails with a reason that
/// says what to declare; a temporary file left by an interrupted run is replaced, not an
/// obstacle; nothing else is touched.
#[test]
fn missing_parents_and_leftover_temporary_files() {
    let sb = Sandbox::new();
    sb.write("/etc/not-a-dir", "x\n", 0o644);
    // What an agent killed between creating and renaming leaves behind.
    sb.write("/etc/motd", "old\n", 0o644);
    sb.write("/etc/.motd.centossrv-tmp", "half-writ", 0o600);
    let desired = desired(vec![
        file("/etc/missing/app.conf", "a\n", "0644"),
        file("/etc/not-a-dir/app.conf", "b\n", "0644"),
        file("/etc/motd", "Welcome\n", "0644"),
    ]);
    let report = sb.apply(&desired);
    let reason = |id: &str| outcome_of(&report, id);
    let (outcome, why) = reason("file:/etc/missing/app.conf");
    assert_eq!(outcome, Outcome::Failed);
    assert!(
        why.contains("/etc/missing does not exist (declare it as a directory resource)"),
        "{why}"
    );
    let (outcome, why) = reason("file:/etc/not-a-dir/app.conf");
    assert_eq!(outcome, Outcome::Failed);
    // (Found by the observation already: the path cannot even be looked at.)
    assert!(
        why.to_lowercase().contains("not a directory") && why.contains("/etc/not-a-dir"),
        "{why}"
    );
    assert_eq!(reason("file:/etc/motd").0, Outcome::Changed);
    assert_eq!(sb.read("/etc/motd"), "Welcome\n");
    assert!(!sb.exists("/etc/.motd.centossrv-tmp"));
    assert!(!sb.exists("/etc/missing"));
    assert_eq!(sb.read("/etc/not-a-dir"), "x\n");
}
