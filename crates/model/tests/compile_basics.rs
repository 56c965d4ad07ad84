//! Compiler behaviour on small inline fleets: resources per node, vars precedence, ordering.

use model::{Snapshot, compile};

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    let mut s = Snapshot::new(Some("abc123".into()));
    for (path, text) in files {
        s.insert(*path, text.as_bytes().to_vec());
    }
    s
}

const NODE_WEB: &str = "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: web-01\n  labels: {role: web, dc: fra1}\nspec:\n  address: 10.0.1.11\n  vars: {workers: 8}\n";
const NODE_DB: &str =
    "apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: db-01\n  labels: {role: db}\n";

#[test]
fn roles_land_on_selected_nodes_with_precedence_and_order() {
    let role = r#"apiVersion: centossrv.io/v1
kind: Role
metadata: {name: web}
spec:
  selector:
    matchLabels: {role: web}
  vars: {workers: 2, greeting: hello}
  resources:
    - service: nginx
      enabled: true
    - file: /etc/nginx/nginx.conf
      template: files/nginx.conf.j2
      mode: "644"
      notify: [service:nginx]
    - package: nginx
      version: "1.20.1-14.el9"
"#;
    let fleet = "apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: demo}\nspec:\n  vars: {greeting: hi, domain: example.org}\n";
    let snap = snapshot(&[
        ("centossrv.yaml", fleet),
        ("nodes/web-01.yaml", NODE_WEB),
        ("nodes/db-01.yaml", NODE_DB),
        ("roles/web.yaml", role),
        (
            "files/nginx.conf.j2",
            "workers {{ workers }}; # {{ greeting }} {{ domain }} {{ node.name }} {{ inventory | length }}\n",
        ),
    ]);
    let compiled = compile(&snap);
    let errors: Vec<String> = compiled.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        errors,
        vec![
            "nodes/db-01.yaml:4:3: warning[W0202]: node `db-01` is selected by no role (hint: check its labels against the roles' selectors)"
        ]
    );
    let web = compiled.model.desired_for("web-01").expect("web-01");
    let ids: Vec<String> = web.resources.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "package:nginx",
            "file:/etc/nginx/nginx.conf",
            "service:nginx"
        ]
    );
    let state::Spec::File(file) = &web.resources[1].spec else {
        panic!("not a file")
    };
    assert_eq!(
        file.content.as_deref(),
        Some("workers 8; # hello example.org web-01 2\n")
    );
    assert_eq!(file.mode.as_deref(), Some("0644"));
    assert_eq!(web.resources[1].origin.line, 11);
    assert!(
        compiled
            .model
            .desired_for("db-01")
            .expect("db")
            .resources
            .is_empty()
    );
}

#[test]
fn on_notify_lowers_to_the_service_spec_and_defaults_to_restart() {
    let role = r#"apiVersion: centossrv.io/v1
kind: Role
metadata: {name: web}
spec:
  selector:
    matchLabels: {role: web}
  resources:
    - service: nginx
      onNotify: reload
    - service: app
      onNotify: restart
    - service: db
    - file: /etc/nginx/nginx.conf
      content: "x\n"
      notify: [service:nginx, service:app, service:db]
"#;
    let snap = snapshot(&[("nodes/web-01.yaml", NODE_WEB), ("roles/web.yaml", role)]);
    let compiled = compile(&snap);
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
    let web = compiled.model.desired_for("web-01").expect("web-01");
    let on_notify = |name: &str| {
        web.resources
            .iter()
            .find_map(|r| match &r.spec {
                state::Spec::Service(s) if s.name == name => Some(s.on_notify),
                _ => None,
            })
            .expect("declared")
    };
    assert_eq!(on_notify("nginx"), state::NotifyAction::Reload);
    assert_eq!(on_notify("app"), state::NotifyAction::Restart);
    assert_eq!(on_notify("db"), state::NotifyAction::Restart);
    // The default is left out of the desired state's JSON (digests of existing states do
    // not change); `reload` is written.
    let json = serde_json::to_string(web).expect("json");
    assert_eq!(json.matches("\"on_notify\"").count(), 1, "{json}");
    assert!(json.contains("\"on_notify\":\"reload\""), "{json}");
}
