//! The one `plan()`: actions, causes, restarts and the digest's canonical form.

use state::digest::sha256;
use state::{
    Action, Cause, DesiredResource, DesiredState, Ensure, FileSpec, NodeStatus, NotifyAction,
    ObservedState, Origin, PackageEnsure, PackageSpec, ResourceId, ServiceSpec, ServiceState, Spec,
    plan,
};
use std::sync::Arc;

fn file(path: &str, content: &str, mode: &str) -> Spec {
    Spec::File(FileSpec {
        path: path.into(),
        ensure: Ensure::Present,
        content: Some(Arc::from(content)),
        sha256: Some(sha256(content.as_bytes())),
        mode: Some(mode.into()),
        owner: None,
        group: None,
        sensitive: false,
    })
}

fn package(name: &str, ensure: PackageEnsure) -> Spec {
    Spec::Package(PackageSpec {
        name: name.into(),
        ensure,
    })
}

fn service(name: &str) -> Spec {
    Spec::Service(ServiceSpec {
        name: name.into(),
        state: ServiceState::Running,
        enabled: Some(true),
        unit: None,
        restart: Default::default(),
        health_check: None,
        environment: Default::default(),
        on_notify: NotifyAction::Restart,
    })
}

/// `service(name)` with `on_notify: reload` and `state`.
fn reloading(name: &str, state: ServiceState) -> Spec {
    match service(name) {
        Spec::Service(s) => Spec::Service(ServiceSpec {
            on_notify: NotifyAction::Reload,
            state,
            ..s
        }),
        _ => unreachable!("a service"),
    }
}

/// `web()` whose nginx reloads on notify.
fn web_reloading(conf: &str) -> DesiredState {
    desired(vec![
        resource(package("nginx", PackageEnsure::Version("1.20".into())), &[]),
        resource(
            file("/etc/nginx/nginx.conf", conf, "0644"),
            &["service:nginx"],
        ),
        resource(reloading("nginx", ServiceState::Running), &[]),
    ])
}

fn resource(spec: Spec, notify: &[&str]) -> DesiredResource {
    let id = match &spec {
        Spec::File(f) => format!("file:{}", f.path),
        Spec::Package(p) => format!("package:{}", p.name),
        Spec::Service(s) => format!("service:{}", s.name),
        _ => unreachable!("not used here"),
    };
    DesiredResource {
        id: id.parse().expect("id"),
        spec,
        requires: Vec::new(),
        notify: notify.iter().map(|n| n.parse().expect("id")).collect(),
        origin: Origin {
            role: "web".into(),
            file: "roles/web.yaml".into(),
            line: 1,
        },
    }
}

fn desired(resources: Vec<DesiredResource>) -> DesiredState {
    DesiredState {
        format: 1,
        node: "web-01".into(),
        commit: None,
        labels: Default::default(),
        resources: resources.into_iter().map(std::sync::Arc::new).collect(),
    }
}

fn web(conf: &str, mode: &str, nginx: &str) -> DesiredState {
    desired(vec![
        resource(package("nginx", PackageEnsure::Version(nginx.into())), &[]),
        resource(
            file("/etc/nginx/nginx.conf", conf, mode),
            &["service:nginx"],
        ),
        resource(service("nginx"), &[]),
    ])
}

fn id(s: &str) -> ResourceId {
    s.parse().expect("id")
}

/// Each change's resource and action, in order.
fn actions(p: &state::NodePlan) -> Vec<(String, Action)> {
    p.changes
        .iter()
        .map(|c| (c.id.to_string(), c.action))
        .collect()
}

#[test]
fn converged_node_has_an_empty_plan() {
    let d = web("a\n", "0644", "1.20");
    let p = plan(Some(&d), Some(&ObservedState::converged(&d)), Some(&d));
    assert_eq!(p.status, NodeStatus::Known);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
}

#[test]
fn intent_drift_and_notify_restart() {
    let base = web("a\n", "0644", "1.20");
    let head = web("b\n", "0644", "1.20");
    let mut observed = ObservedState::converged(&base);
    if let Some(Spec::File(f)) = observed
        .resources
        .get_mut(&id("file:/etc/nginx/nginx.conf"))
    {
        f.mode = Some("0666".into());
    }
    let p = plan(Some(&head), Some(&observed), Some(&base));
    assert_eq!(
        actions(&p),
        [
            ("file:/etc/nginx/nginx.conf".to_owned(), Action::Update),
            ("service:nginx".to_owned(), Action::Restart)
        ]
    );
    let conf = &p.changes[0];
    let causes: Vec<(&str, Cause)> = conf
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.cause))
        .collect();
    assert_eq!(causes, [("content", Cause::Intent), ("mode", Cause::Drift)]);
    assert_eq!(conf.cause, Cause::Intent);
    assert_eq!(
        conf.diff.as_deref(),
        Some("--- a/etc/nginx/nginx.conf\n+++ b/etc/nginx/nginx.conf\n@@ -1 +1 @@\n-a\n+b\n")
    );
    assert_eq!(
        p.changes[1].triggered_by,
        [id("file:/etc/nginx/nginx.conf")]
    );
}

#[test]
fn the_agent_derives_the_same_digest_without_a_base() {
    let base = web("a\n", "0644", "1.20");
    let head = web("b\n", "0600", "1.24");
    let observed = ObservedState::converged(&base);
    let reconciler = plan(Some(&head), Some(&observed), Some(&base));
    let agent = plan(Some(&head), Some(&observed), None);
    assert_eq!(reconciler.digest, agent.digest);
    // Pinned: a change here changes which approved plans agents accept. Bump PLAN_FORMAT.
    assert_eq!(
        agent.digest,
        "sha256:e052b382d9b3049610ecbfe406c518fab0975aa1e34181fa455e0ed45f6249ab"
    );
}

#[test]
fn digest_depends_on_what_was_observed() {
    let base = web("a\n", "0644", "1.20");
    let head = web("b\n", "0644", "1.20");
    let observed = ObservedState::converged(&base);
    let first = plan(Some(&head), Some(&observed), Some(&base)).digest;
    let mut changed = observed.clone();
    if let Some(Spec::Package(p)) = changed.resources.get_mut(&id("package:nginx")) {
        p.ensure = PackageEnsure::Version("1.19".into());
    }
    assert_ne!(first, plan(Some(&head), Some(&changed), Some(&base)).digest);
    // Whether the agent sent a drifted file's text along (for diffs) does not matter.
    let mut with_text = observed.clone();
    if let Some(Spec::File(f)) = with_text
        .resources
        .get_mut(&id("file:/etc/nginx/nginx.conf"))
    {
        f.content = Some("a\n".into());
    }
    assert_eq!(
        first,
        plan(Some(&head), Some(&with_text), Some(&base)).digest
    );
    // Observations of resources the plan does not involve do not matter.
    let mut extra = observed.clone();
    extra
        .facts
        .insert("kernel".into(), serde_json::json!("5.14"));
    assert_eq!(first, plan(Some(&head), Some(&extra), Some(&base)).digest);
}

#[test]
fn packages_never_reported_nodes_and_removed_nodes() {
    let d = desired(vec![
        resource(package("telnet", PackageEnsure::Absent), &[]),
        resource(package("vim", PackageEnsure::Present), &[]),
    ]);
    let mut observed = ObservedState::new("web-01");
    observed.resources.insert(
        id("package:telnet"),
        package("telnet", PackageEnsure::Version("0.17".into())),
    );
    observed.resources.insert(
        id("package:vim"),
        package("vim", PackageEnsure::Version("9.0".into())),
    );
    let p = plan(Some(&d), Some(&observed), None);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].action, Action::Delete);
    assert!(p.changes[0].destructive);

    let unknown = plan(Some(&d), None, None);
    assert_eq!(unknown.status, NodeStatus::Unknown);
    assert!(unknown.changes.iter().all(|c| c.unobserved));

    let removed = plan(None, Some(&observed), Some(&d));
    assert_eq!(removed.status, NodeStatus::Removed);
    assert!(removed.changes.iter().all(|c| c.action == Action::Unmanage));
    assert!(!removed.has_host_changes());
}

#[test]
fn sensitive_content_appears_as_digests_only() {
    let mut secret = file("/etc/app/secret", "hunter2\n", "0600");
    if let Spec::File(f) = &mut secret {
        f.sensitive = true;
    }
    let d = desired(vec![resource(secret, &[])]);
    let mut observed = ObservedState::new("web-01");
    observed.resources.insert(
        id("file:/etc/app/secret"),
        file("/etc/app/secret", "typed by hand\n", "0600"),
    );
    let p = plan(Some(&d), Some(&observed), None);
    let json = serde_json::to_string(&p).expect("json");
    assert!(
        !json.contains("hunter2") && !json.contains("typed by hand"),
        "{json}"
    );
    assert!(p.changes[0].sensitive && p.changes[0].diff.is_none());
}

/// `plan_with` carries where observations were found from one node to the next: whatever
/// the nodes before left in `Positions` (other resources, another order, missing or extra
/// observations, no observation at all), each plan is exactly `plan()`'s.
#[test]
fn carried_positions_never_change_a_plan() {
    let files = |names: &[&str], content: &str| -> Vec<DesiredResource> {
        names
            .iter()
            .map(|n| resource(file(&format!("/etc/{n}"), content, "0644"), &[]))
            .collect()
    };
    let mut nodes: Vec<(DesiredState, Option<ObservedState>, Option<DesiredState>)> = Vec::new();
    let same = desired(files(&["a", "b", "c", "d"], "x\n"));
    // Converged, twice (the second finds everything where the first did).
    nodes.push((
        same.clone(),
        Some(ObservedState::converged(&same)),
        Some(same.clone()),
    ));
    nodes.push((
        same.clone(),
        Some(ObservedState::converged(&same)),
        Some(same.clone()),
    ));
    // Another order and one more resource: every guess is wrong.
    let reordered = desired(files(&["d", "0", "c", "a", "b"], "x\n"));
    nodes.push((
        reordered.clone(),
        Some(ObservedState::converged(&same)),
        Some(same.clone()),
    ));
    // Drifted content, an observation nothing desires any more, one never observed.
    let mut observed = ObservedState::converged(&reordered);
    observed.resources.remove(&id("file:/etc/c"));
    if let Some(Spec::File(f)) = observed.resources.get_mut(&id("file:/etc/a")) {
        f.content = Some(Arc::from("hand edit\n"));
        f.sha256 = Some(sha256(b"hand edit\n"));
    }
    observed
        .resources
        .insert(id("file:/etc/zz"), file("/etc/zz", "old\n", "0600"));
    nodes.push((reordered.clone(), Some(observed), Some(same.clone())));
    // Never reported, then fewer resources than the positions know, then a changed head.
    nodes.push((same.clone(), None, Some(same.clone())));
    let fewer = desired(files(&["b"], "x\n"));
    nodes.push((
        fewer.clone(),
        Some(ObservedState::converged(&same)),
        Some(same.clone()),
    ));
    let head = web("b\n", "0640", "1.21");
    let base = web("a\n", "0644", "1.20");
    nodes.push((head, Some(ObservedState::converged(&base)), Some(base)));
    nodes.push((same.clone(), Some(ObservedState::converged(&same)), None));

    let mut positions = state::Positions::default();
    for round in 0..2 {
        for (i, (d, o, b)) in nodes.iter().enumerate() {
            let carried = state::plan_with(Some(d), o.as_ref(), b.as_ref(), &mut positions);
            assert_eq!(
                carried,
                plan(Some(d), o.as_ref(), b.as_ref()),
                "node {i}, round {round}"
            );
        }
    }
}

#[test]
fn notify_reloads_a_service_that_asks_for_it() {
    let base = web_reloading("a\n");
    let head = web_reloading("b\n");
    // `on_notify` is not a property of the host: a converged node has nothing to do.
    let converged = ObservedState::converged(&base);
    assert!(
        plan(Some(&base), Some(&converged), Some(&base))
            .changes
            .is_empty()
    );
    let p = plan(Some(&head), Some(&converged), Some(&base));
    assert_eq!(
        actions(&p),
        [
            ("file:/etc/nginx/nginx.conf".to_owned(), Action::Update),
            ("service:nginx".to_owned(), Action::Reload)
        ]
    );
    let reload = &p.changes[1];
    assert_eq!(reload.triggered_by, [id("file:/etc/nginx/nginx.conf")]);
    assert_eq!(reload.cause, Cause::Intent);
    assert!(reload.properties.is_empty() && !reload.destructive);
    assert_eq!(Action::Reload.as_str(), "reload");
    assert_eq!(
        serde_json::to_value(Action::Reload).expect("json"),
        serde_json::json!("reload")
    );
    // The agent (no base) derives the same digest; the action is part of it, so a restart
    // plan of the same change is another plan.
    assert_eq!(p.digest, plan(Some(&head), Some(&converged), None).digest);
    let restart = plan(
        Some(&web("b\n", "0644", "1.20")),
        Some(&ObservedState::converged(&web("a\n", "0644", "1.20"))),
        None,
    );
    assert_eq!(restart.changes[1].action, Action::Restart);
    assert_ne!(p.digest, restart.digest);
}

#[test]
fn reload_is_not_added_to_created_stopped_or_updated_services() {
    let conf = |content: &str| resource(file("/etc/app.conf", content, "0644"), &["service:app"]);
    let base = |state| desired(vec![conf("a\n"), resource(reloading("app", state), &[])]);
    let head = |state| desired(vec![conf("b\n"), resource(reloading("app", state), &[])]);

    // Created by this plan: started, not also reloaded.
    let mut observed = ObservedState::converged(&base(ServiceState::Running));
    observed.resources.remove(&id("service:app"));
    let created = plan(Some(&head(ServiceState::Running)), Some(&observed), None);
    let app = created
        .changes
        .iter()
        .find(|c| c.id == id("service:app"))
        .expect("app");
    assert_eq!(app.action, Action::Create);
    assert!(app.triggered_by.is_empty());

    // Stopped: never reloaded, whether it stops now or already was stopped.
    let stopping = plan(
        Some(&head(ServiceState::Stopped)),
        Some(&ObservedState::converged(&base(ServiceState::Running))),
        None,
    );
    let app = stopping
        .changes
        .iter()
        .find(|c| c.id == id("service:app"))
        .expect("app");
    assert_eq!(app.action, Action::Update);
    assert!(app.triggered_by.is_empty());
    let stopped = plan(
        Some(&head(ServiceState::Stopped)),
        Some(&ObservedState::converged(&base(ServiceState::Stopped))),
        None,
    );
    assert_eq!(
        stopped
            .changes
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>(),
        ["file:/etc/app.conf"]
    );

    // Updated by this plan (here: enabled drifted): the update carries the trigger and no
    // separate reload is planned (the agent restarts it if its unit or drop-in changes).
    let mut drifted = ObservedState::converged(&base(ServiceState::Running));
    if let Some(Spec::Service(s)) = drifted.resources.get_mut(&id("service:app")) {
        s.enabled = Some(false);
    }
    let updated = plan(Some(&head(ServiceState::Running)), Some(&drifted), None);
    let actions: Vec<(String, Action)> = updated
        .changes
        .iter()
        .map(|c| (c.id.to_string(), c.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("file:/etc/app.conf".to_owned(), Action::Update),
            ("service:app".to_owned(), Action::Update)
        ]
    );
    assert_eq!(updated.changes[1].triggered_by, [id("file:/etc/app.conf")]);
}

#[test]
fn on_notify_is_serialized_only_when_it_is_reload() {
    let restart = serde_json::to_value(service("nginx")).expect("json");
    assert!(restart.get("on_notify").is_none(), "{restart}");
    let reload = serde_json::to_value(reloading("nginx", ServiceState::Running)).expect("json");
    assert_eq!(reload["on_notify"], "reload");
    let back: Spec = serde_json::from_value(reload).expect("parse");
    assert_eq!(back, reloading("nginx", ServiceState::Running));
    // States written before the field existed read as restart.
    let old: Spec = serde_json::from_value(restart).expect("parse");
    assert_eq!(old, service("nginx"));
    // What an agent reports never says reload.
    let observed = ObservedState::converged(&web_reloading("a\n"));
    assert!(
        !serde_json::to_string(&observed)
            .expect("json")
            .contains("on_notify")
    );
}
