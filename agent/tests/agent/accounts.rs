//! Users and groups with the real shadow-utils (`useradd --root` and friends) on sandbox
//! roots. No mocks; a missing tool fails the test.

use crate::packages::require_tool;
use crate::util::*;
use agent::{ApplyStatus, Outcome};
use state::{Action, Ensure, GroupSpec, Spec, UserSpec};

pub fn account_sandbox() -> Sandbox {
    for tool in [
        "useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel",
    ] {
        require_tool(tool, "passwd");
    }
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id -u");
    assert!(
        String::from_utf8_lossy(&uid.stdout).trim() == "0",
        "shadow-utils' --root chroots into the sandbox: these tests must run as root"
    );
    let sb = Sandbox::new();
    // The sandbox's passwd/group name the test's own ids `root`; add a wheel group and the
    // shadow files shadow-utils keeps in step.
    let group = sb.read("/etc/group");
    std::fs::write(sb.path("/etc/group"), format!("{group}wheel:x:10:\n")).expect("group");
    sb.write("/etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600);
    sb.write("/etc/gshadow", "root:*::\nwheel:*::\n", 0o600);
    sb
}

fn group(name: &str, gid: Option<u32>) -> Spec {
    Spec::Group(GroupSpec {
        name: name.into(),
        ensure: Ensure::Present,
        gid,
        system: false,
    })
}

fn alice(shell: &str, groups: &[&str]) -> Spec {
    Spec::User(UserSpec {
        name: "alice".into(),
        ensure: Ensure::Present,
        uid: Some(2001),
        group: Some("web".into()),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        shell: Some(shell.into()),
        home: Some("/home/alice".into()),
        comment: Some("Alice A".into()),
        system: false,
    })
}

fn line(sb: &Sandbox, file: &str, name: &str) -> Option<String> {
    sb.read(file)
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .map(str::to_owned)
}

#[test]
fn create_modify_delete_with_idempotence_and_rollback() {
    let sb = account_sandbox();
    let before_passwd = sb.read("/etc/passwd");
    let before_group = sb.read("/etc/group");

    // Create a group and a user in it with supplementary groups.
    let d1 = desired(vec![
        group("web", Some(2000)),
        group("ops", None),
        alice("/bin/sh", &["ops", "wheel"]),
    ]);
    let (_, plan) = agent::apply::plan_now(&sb.host(), &d1);
    assert_eq!(plan.changes.len(), 3, "{plan:#?}");
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    let user = &plan.changes[2];
    let shell = user
        .properties
        .iter()
        .find(|p| p.name == "shell")
        .expect("shell");
    assert_eq!(
        (shell.before.as_deref(), shell.after.as_deref()),
        (None, Some("/bin/sh"))
    );
    let g1 = sb.apply(&d1);
    assert_eq!(g1.status, ApplyStatus::Applied, "{g1:#?}");
    assert_eq!(g1.totals.changed, 3);
    assert_eq!(
        line(&sb, "/etc/passwd", "alice").as_deref(),
        Some("alice:x:2001:2000:Alice A:/home/alice:/bin/sh")
    );
    assert_eq!(
        line(&sb, "/etc/group", "wheel").as_deref(),
        Some("wheel:x:10:alice")
    );
    assert!(
        line(&sb, "/etc/group", "ops")
            .expect("ops")
            .ends_with(":alice")
    );
    assert!(line(&sb, "/etc/shadow", "alice").is_some());
    let again = sb.apply(&d1);
    assert_eq!(again.totals.changed, 0, "{again:#?}");
    assert_eq!(again.totals.unchanged, 3);

    // Observation matches: uid, group, sorted groups, shell, home, comment.
    let obs = agent::observe(&sb.host(), &d1);
    match obs.state.resources.get(&"user:alice".parse().expect("id")) {
        Some(Spec::User(u)) => {
            assert_eq!(u.uid, Some(2001));
            assert_eq!(u.group.as_deref(), Some("web"));
            assert_eq!(u.groups, vec!["ops".to_owned(), "wheel".to_owned()]);
        }
        other => panic!("{other:?}"),
    }

    // Modify the shell and drop a supplementary group: one update, only those properties.
    let d2 = desired(vec![
        group("web", Some(2000)),
        group("ops", None),
        alice("/bin/bash", &["wheel"]),
    ]);
    let (_, plan) = agent::apply::plan_now(&sb.host(), &d2);
    assert_eq!(plan.changes.len(), 1, "{plan:#?}");
    let names: Vec<(&str, Option<&str>, Option<&str>)> = plan.changes[0]
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.before.as_deref(), p.after.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("groups", Some("ops,wheel"), Some("wheel")),
            ("shell", Some("/bin/sh"), Some("/bin/bash")),
        ]
    );
    let g2 = sb.apply(&d2);
    assert_eq!(g2.totals.changed, 1, "{g2:#?}");
    assert!(
        line(&sb, "/etc/passwd", "alice")
            .expect("alice")
            .ends_with(":/bin/bash")
    );
    assert!(line(&sb, "/etc/group", "ops").expect("ops").ends_with(":"));
    assert_eq!(sb.apply(&d2).totals.changed, 0);

    // Roll the modification back: shell and groups as before.
    let rb = agent::rollback(&sb.host(), &sb.store(), g2.generation, 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(
        line(&sb, "/etc/passwd", "alice").as_deref(),
        Some("alice:x:2001:2000:Alice A:/home/alice:/bin/sh")
    );
    assert!(
        line(&sb, "/etc/group", "ops")
            .expect("ops")
            .ends_with(":alice")
    );

    // Delete user and groups: deletes, then nothing to do.
    let d3 = desired(vec![
        Spec::User(UserSpec {
            ensure: Ensure::Absent,
            ..match alice("/bin/sh", &[]) {
                Spec::User(u) => u,
                _ => unreachable!(),
            }
        }),
        Spec::Group(GroupSpec {
            name: "web".into(),
            ensure: Ensure::Absent,
            gid: None,
            system: false,
        }),
    ]);
    // The user goes first: a group cannot be deleted while it is a user's primary group.
    let (_, plan) = agent::apply::plan_now(&sb.host(), &d3);
    assert_eq!(plan.changes.len(), 2, "{plan:#?}");
    assert!(
        plan.changes
            .iter()
            .all(|c| c.action == Action::Delete && c.destructive)
    );
    let g3 = sb.apply(&d3);
    assert_eq!(g3.status, ApplyStatus::Applied, "{g3:#?}");
    assert!(line(&sb, "/etc/passwd", "alice").is_none());
    assert!(line(&sb, "/etc/group", "web").is_none());
    assert_eq!(sb.apply(&d3).totals.changed, 0);

    // Roll back the deletion: the group, then the user, with its supplementary groups.
    let rb = agent::rollback(&sb.host(), &sb.store(), g3.generation, 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(
        line(&sb, "/etc/passwd", "alice").as_deref(),
        Some("alice:x:2001:2000:Alice A:/home/alice:/bin/sh")
    );
    assert_eq!(
        line(&sb, "/etc/group", "web").as_deref(),
        Some("web:x:2000:")
    );
    assert_eq!(
        line(&sb, "/etc/group", "wheel").as_deref(),
        Some("wheel:x:10:alice")
    );

    // Roll back everything: no alice, no web, no ops, wheel without members.
    let rb = agent::rollback(&sb.host(), &sb.store(), g1.generation, 10).expect("rollback");
    assert!(!rb.has_failures(), "{rb:#?}");
    assert_eq!(sb.read("/etc/passwd"), before_passwd);
    assert_eq!(sb.read("/etc/group"), before_group);
}

#[test]
fn tool_failures_carry_stderr() {
    let sb = account_sandbox();
    let d = desired(vec![alice("/bin/sh", &["no-such-group"])]);
    let report = sb.apply(&d);
    assert_eq!(report.status, ApplyStatus::Failed);
    let r = &report.resources[0];
    assert_eq!(r.outcome, Outcome::Failed);
    let reason = r.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("useradd failed (exit 6): ") && reason.contains("web"),
        "{reason}"
    );
}
