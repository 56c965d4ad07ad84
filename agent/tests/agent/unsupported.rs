//! Resources that cannot be applied fail with a clear reason and are never skipped or
//! faked: packages, users and groups with the tool's own message, services whose
//! requirements failed with that reason.

use crate::util::*;
use agent::{ApplyStatus, Outcome};
use state::{Action, DesiredState, ResourceKind};

fn rendered() -> DesiredState {
    // `centossrv render --node web-fra1-01 example-repo`
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/test_data/web-fra1-01.desired.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("a desired state")
}

#[test]
fn rendered_example_node_reports_failing_resources() {
    let sb = Sandbox::new();
    for d in ["/etc/yum.repos.d", "/etc/modprobe.d", "/srv", "/var/spool"] {
        std::fs::create_dir_all(sb.path(d)).expect("mkdir");
    }
    let desired = rendered();
    let report = sb.apply(&desired);
    assert_eq!(report.status, ApplyStatus::Failed);

    let mut services = 0;
    for r in &report.resources {
        let kind = r.id.kind;
        let reason = r.reason.as_deref().unwrap_or_default();
        match kind {
            ResourceKind::Service => {
                services += 1;
                assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
                assert!(
                    reason.starts_with("not applied: requires `package:"),
                    "{r:?}"
                );
            }
            // The sandbox has no repositories: dnf's own error, never "not supported".
            ResourceKind::Package if r.id.name == "telnet-server" => {
                assert_eq!(r.outcome, Outcome::Unchanged, "already absent: {r:?}");
            }
            ResourceKind::Package => {
                assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
                assert!(
                    reason.starts_with("dnf install ") || reason.starts_with("not applied: "),
                    "{reason}"
                );
            }
            _ => assert!(!reason.contains("not supported"), "{r:?}"),
        }
    }
    assert!(services >= 6, "the fixture has services");
    let by_id = |id: &str| {
        report
            .resources
            .iter()
            .find(|r| r.id.to_string() == id)
            .unwrap_or_else(|| panic!("{id} missing from the report"))
    };
    // Dependants of an unsupported resource are not applied, and say why.
    let chrony = by_id("file:/etc/chrony.conf");
    assert_eq!(chrony.outcome, Outcome::Failed);
    assert_eq!(
        chrony.reason.as_deref(),
        Some("not applied: requires `package:chrony`, which failed")
    );
    assert!(!sb.exists("/etc/chrony.conf"));
    // Independent resources are applied.
    for id in [
        "file:/etc/motd",
        "file:/etc/yum.repos.d/prometheus-rpm.repo",
        "directory:/srv/www",
        "directory:/var/spool/rsyslog",
        "symlink:/etc/localtime",
        "sysctl:net.core.somaxconn",
    ] {
        assert_eq!(by_id(id).outcome, Outcome::Changed, "{id}");
    }
    assert!(sb.read("/etc/motd").contains("web-fra1-01"));
    // Every resource is accounted for; nothing is silently skipped.
    assert_eq!(report.resources.len(), desired.resources.len());
    assert_eq!(
        report.totals.changed + report.totals.failed + report.totals.unchanged,
        desired.resources.len()
    );

    // The group is created with the real groupadd; the user fails on the missing `wheel`
    // group with useradd's message, and what requires it is not applied.
    assert_eq!(by_id("group:ops").outcome, Outcome::Changed);
    let ops = by_id("user:ops");
    assert_eq!(ops.outcome, Outcome::Failed);
    let reason = ops.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("useradd failed"), "{reason}");
    assert!(reason.contains("wheel"), "{reason}");
    assert_eq!(
        by_id("directory:/home/ops/.ssh").reason.as_deref(),
        Some("not applied: requires `user:ops`, which failed")
    );

    // Everything is observed: services as stopped and disabled (no unit file here).
    let observed = report.observed.as_ref().expect("observed");
    let nginx = observed
        .resources
        .get(&"service:nginx".parse().expect("id"))
        .expect("services are observed");
    assert!(
        matches!(nginx, state::Spec::Service(s) if s.state == state::ServiceState::Stopped && s.enabled == Some(false)),
        "{nginx:?}"
    );
    let plan = state::plan(Some(&desired), Some(observed), None);
    for c in &plan.changes {
        assert!(!c.unobserved, "{c:?}");
        assert_ne!(
            c.action,
            Action::Restart,
            "notifying resources failed: {c:?}"
        );
    }

    // A second apply fails the same way and changes nothing else.
    let again = sb.apply(&desired);
    assert_eq!(again.totals.changed, 0, "{again:#?}");
    assert_eq!(again.totals.failed, report.totals.failed);
}

#[test]
fn redacted_sensitive_content_fails_instead_of_writing_nothing() {
    let sb = Sandbox::new();
    let mut secret = match file("/etc/secret.key", "s3cret\n", "0600") {
        state::Spec::File(f) => f,
        _ => unreachable!(),
    };
    secret.sensitive = true;
    let full = desired(vec![state::Spec::File(secret)]);
    let redacted = full.redacted();
    let report = sb.apply(&redacted);
    assert_eq!(report.totals.failed, 1);
    let reason = report.resources[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("only the digest"), "{reason}");
    assert!(!sb.exists("/etc/secret.key"));
    // With the content, it is written, and never shown.
    let report = sb.apply(&full);
    assert_eq!(report.totals.changed, 1);
    assert_eq!(sb.read("/etc/secret.key"), "s3cret\n");
    let json = serde_json::to_string(&report).expect("json");
    assert!(!json.contains("s3cret"), "{json}");
}
