//! Generations and rollback: apply A, apply B, roll back, and the tree is A's again, byte for
//! byte, modes included; files B created are gone. Rollbacks are undoable.

use crate::util::*;
use agent::generations::{GenerationError, RestoreOutcome};

fn state_a() -> state::DesiredState {
    desired(vec![
        dir("/etc/app", "0755"),
        file("/etc/app/app.conf", "version = 1\n", "0644"),
        file("/etc/app/keep.conf", "unchanged\n", "0644"),
        file("/etc/motd", "A\n", "0644"),
        link("/etc/app/current", "/opt/app-1"),
        sysctl("vm.swappiness", "10"),
    ])
}

fn state_b() -> state::DesiredState {
    desired(vec![
        dir("/etc/app", "0750"),
        file("/etc/app/app.conf", "version = 2\nnew = true\n", "0600"),
        file("/etc/app/keep.conf", "unchanged\n", "0644"),
        absent_file("/etc/motd"),
        link("/etc/app/current", "/opt/app-2"),
        dir("/etc/app/plugins", "0700"),
        file("/etc/app/plugins/a.conf", "plugin a\n", "0640"),
        file("/etc/new.conf", "only in B\n", "0644"),
        sysctl("vm.swappiness", "60"),
        sysctl("vm.overcommit_memory", "1"),
    ])
}

#[test]
fn rollback_restores_the_previous_apply_byte_for_byte() {
    let sb = Sandbox::new();
    sb.write("/etc/motd", "from the image\n", 0o600);
    // As on a real host, the kernel's directories exist.
    std::fs::create_dir_all(sb.path("/proc/sys/vm")).expect("mkdir");
    let pristine = sb.snapshot();

    let a = sb.apply(&state_a());
    assert_eq!(a.totals.failed, 0, "{a:#?}");
    let after_a = sb.snapshot();

    let b = sb.apply(&state_b());
    assert_eq!(b.totals.failed, 0, "{b:#?}");
    assert_eq!(b.generation, Some(2));
    let after_b = sb.snapshot();
    assert!(sb.exists("/etc/app/plugins/a.conf") && sb.exists("/etc/new.conf"));
    // Generations hold previous contents, possibly secret: readable by the agent only.
    let gen2 = sb.state.join("generations/00000002");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("stat").permissions())
            & 0o777
    };
    assert_eq!(mode(&sb.state.join("generations")), 0o700);
    assert_eq!(mode(&gen2.join("generation.json")), 0o600);
    let blob = std::fs::read_dir(gen2.join("blobs"))
        .expect("blobs")
        .next()
        .expect("a blob")
        .expect("entry");
    assert_eq!(mode(&blob.path()), 0o600);
    assert!(!sb.exists("/etc/motd"));

    // Roll back the newest generation: the state before B, which is A.
    let report = agent::rollback(&sb.host(), &sb.store(), None, 10).expect("rollback");
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert_eq!(report.generation, 2);
    assert_eq!(report.undone, [2]);
    assert_eq!(sb.snapshot(), after_a, "the tree is A's again");
    let outcome = |t: &str| {
        report
            .entries
            .iter()
            .find(|e| e.target == t)
            .map(|e| e.outcome)
    };
    assert_eq!(outcome("/etc/new.conf"), Some(RestoreOutcome::Removed));
    assert_eq!(outcome("/etc/app/plugins"), Some(RestoreOutcome::Removed));
    assert_eq!(
        outcome("/etc/app/plugins/a.conf"),
        Some(RestoreOutcome::Removed)
    );
    assert_eq!(outcome("/etc/motd"), Some(RestoreOutcome::Restored));
    assert_eq!(outcome("/etc/app/keep.conf"), None, "B did not touch it");
    assert_eq!(sb.read("/proc/sys/vm/swappiness"), "10\n");
    assert!(!sb.exists("/proc/sys/vm/overcommit_memory"));

    // The rollback recorded what it replaced: rolling back again undoes the rollback.
    let recorded = report.recorded.expect("a generation for the rollback");
    assert_eq!(recorded, 3);
    let undo = agent::rollback(&sb.host(), &sb.store(), None, 10).expect("undo");
    assert_eq!(undo.totals.failed, 0, "{undo:#?}");
    assert_eq!(sb.snapshot(), after_b, "the tree is B's again");

    // Rolling back to generation 1 undoes everything since: the pristine tree.
    let all = agent::rollback(&sb.host(), &sb.store(), Some(1), 10).expect("rollback 1");
    assert_eq!(all.totals.failed, 0, "{all:#?}");
    assert_eq!(all.undone, [4, 3, 2, 1]);
    assert_eq!(sb.snapshot(), pristine, "the tree before A");

    // And the agent converges again from there.
    assert_eq!(sb.apply(&state_b()).totals.failed, 0);
    assert_eq!(sb.snapshot(), after_b);
}

#[test]
fn generations_are_listed_and_pruned() {
    let sb = Sandbox::new();
    let options = agent::ApplyOptions {
        expect_digest: None,
        keep: 2,
    };
    for i in 0..4 {
        let d = desired(vec![file("/etc/motd", &format!("{i}\n"), "0644")]);
        let report = agent::apply(&sb.host(), &sb.store(), &d, &options).expect("apply");
        assert_eq!(report.generation, Some(i + 1));
    }
    let list = sb.store().list().expect("list");
    let numbers: Vec<u64> = list.iter().map(|g| g.number).collect();
    assert_eq!(numbers, [3, 4]);
    assert!(
        list.iter()
            .all(|g| g.finished.as_ref().is_some_and(|f| f.changed == 1))
    );
    match agent::rollback(&sb.host(), &sb.store(), Some(1), 2) {
        Err(GenerationError::NotKept { number: 1, kept }) => assert_eq!(kept, "3..4"),
        other => panic!("{other:?}"),
    }
    let report = agent::rollback(&sb.host(), &sb.store(), Some(3), 2).expect("rollback");
    assert_eq!(report.totals.restored, 1);
    assert_eq!(sb.read("/etc/motd"), "1\n");
}

#[test]
fn rollback_without_generations_is_an_error() {
    let sb = Sandbox::new();
    let err = agent::rollback(&sb.host(), &sb.store(), None, 10).expect_err("nothing");
    assert!(
        matches!(err, GenerationError::NoGenerations { .. }),
        "{err}"
    );
}

#[test]
fn rollback_keeps_a_directory_that_is_not_empty() {
    let sb = Sandbox::new();
    let report = sb.apply(&desired(vec![dir("/srv", "0755")]));
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    // Someone puts a file in the directory the agent created.
    sb.write("/srv/data", "precious\n", 0o644);
    let rollback = agent::rollback(&sb.host(), &sb.store(), None, 10).expect("rollback");
    assert_eq!(rollback.totals.failed, 1, "{rollback:#?}");
    let reason = rollback.entries[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("not empty"), "{reason}");
    assert_eq!(sb.read("/srv/data"), "precious\n");
}
