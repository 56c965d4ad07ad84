//! `compile_pair(head, base)` reuses base's work for head, and must give exactly what two
//! independent `compile` calls give: on the report crate's base/head fleets, on the example
//! repository against every broken repository of the corpus (both ways), and on generated
//! fleets where head changes one input at a time (a template, an included template, a node's
//! vars, a role's vars or declarations, a number's spelling, the inventory, a label).

use model::{Snapshot, compile, compile_pair};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn read_repo(dir: &Path, commit: &str) -> Snapshot {
    let mut snapshot = Snapshot::new(Some(commit.to_owned()));
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                todo.push(path);
            } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(dir), std::fs::read(&path)) {
                snapshot.insert(rel.to_string_lossy().replace('\\', "/"), bytes);
            }
        }
    }
    snapshot
}

/// Asserts that the pair compiles like two independent compiles; returns how many of head's
/// resources are base's own (shared, not rebuilt).
fn check(name: &str, head: &Snapshot, base: &Snapshot) -> usize {
    let (h, b) = compile_pair(head, base);
    assert_eq!(
        format!("{h:?}"),
        format!("{:?}", compile(head)),
        "{name}: head"
    );
    assert_eq!(
        format!("{b:?}"),
        format!("{:?}", compile(base)),
        "{name}: base"
    );
    let mut shared = 0;
    for (node, desired) in h.model.desired() {
        if let Some(old) = b.model.desired_for(node) {
            shared += desired
                .resources
                .iter()
                .filter(|r| old.resources.iter().any(|o| Arc::ptr_eq(o, r)))
                .count();
        }
    }
    shared
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn report_cases_compile_as_two_compiles() {
    let cases = manifest_dir().join("../report/test_data");
    let mut checked = 0;
    for case in std::fs::read_dir(&cases)
        .expect("report test_data")
        .flatten()
    {
        let (base, head) = (case.path().join("base"), case.path().join("head"));
        if base.is_dir() && head.is_dir() {
            let name = case.file_name().to_string_lossy().into_owned();
            check(&name, &read_repo(&head, "head"), &read_repo(&base, "base"));
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} cases with base and head");
}

#[test]
fn broken_repositories_against_the_example_compile_as_two_compiles() {
    let example = read_repo(&manifest_dir().join("../../example-repo"), "example");
    let corpus = manifest_dir().join("test_data/broken");
    let mut checked = 0;
    for case in std::fs::read_dir(&corpus).expect("corpus").flatten() {
        let broken = read_repo(&case.path().join("repo"), "broken");
        if broken.files.is_empty() {
            continue;
        }
        let name = case.file_name().to_string_lossy().into_owned();
        check(&format!("{name} as head"), &broken, &example);
        check(&format!("{name} as base"), &example, &broken);
        check(&format!("{name} on itself"), &broken, &broken);
        checked += 1;
    }
    assert!(checked > 40, "only {checked} broken repositories");
    // The example against itself shares every templated resource.
    assert!(check("example on itself", &example, &example) > 0);
}

/// A fleet of `nodes` nodes, 4 roles, templates (one including another), with `edit`
/// applied to the files afterwards.
fn generated(nodes: usize, seed: u64, edit: &dyn Fn(&mut Snapshot)) -> Snapshot {
    let mut s = Snapshot::new(Some(format!("{seed:040}")));
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    s.insert(
        "centossrv.yaml",
        b"apiVersion: centossrv.io/v1\nkind: Fleet\nmetadata: {name: gen}\nspec:\n  vars: {domain: example.com, limits: {a: 1, b: 2}}\n".to_vec(),
    );
    for i in 0..nodes {
        let tier = ["web", "db", "cache"][(next() % 3) as usize];
        let workers = next() % 8;
        // Every 37th node lacks `workers`: the app template fails to render there.
        let vars = if i % 37 == 5 {
            "{}".to_owned()
        } else {
            format!("{{workers: {workers}}}")
        };
        s.insert(
            format!("nodes/n{i:04}.yaml"),
            format!("apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: n{i:04}\n  labels: {{tier: {tier}}}\nspec:\n  address: 10.0.{}.{}\n  vars: {vars}\n", i / 256, i % 256).into_bytes(),
        );
    }
    for (name, selector, port) in [
        ("all", "{}", 1),
        ("web", "{matchLabels: {tier: web}}", 80),
        ("db", "{matchLabels: {tier: db}}", 5432),
        (
            "not-db",
            "{matchExpressions: [{key: tier, operator: NotIn, values: [db]}]}",
            9,
        ),
    ] {
        s.insert(
            format!("roles/{name}.yaml"),
            format!("apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: {name}}}\nspec:\n  selector: {selector}\n  vars: {{port: {port}}}\n  resources:\n    - directory: /etc/{name}\n      mode: \"0755\"\n    - file: /etc/{name}/app.conf\n      template: files/app.conf.j2\n      notify: [service:{name}]\n    - file: /etc/{name}/plain.conf\n      template: files/plain.j2\n    - file: /etc/{name}/static.conf\n      content: \"x\\n\"\n      requires: [directory:/etc/{name}]\n    - package: pkg-{name}\n      version: \"1.0\"\n    - service: {name}\n      enabled: true\n").into_bytes(),
        );
    }
    s.insert(
        "files/app.conf.j2",
        b"{% include 'files/header.j2' %}port = {{ port }} workers = {{ workers }} on {{ node.name }} ({{ role }}, {{ fleet }})\n{% for n in inventory %}{{ n.name }} {% endfor %}\n"
            .to_vec(),
    );
    s.insert("files/header.j2", b"# header {{ domain }}\n".to_vec());
    s.insert(
        "files/plain.j2",
        b"{{ node.name }} {{ node.labels.tier }} {{ limits }} {{ port }}\n".to_vec(),
    );
    edit(&mut s);
    s
}

fn replace(s: &mut Snapshot, path: &str, from: &str, to: &str) {
    let text = String::from_utf8(s.get(path).expect(path).to_vec()).expect("utf-8");
    assert!(text.contains(from), "{path} lacks {from:?}");
    s.insert(path, text.replace(from, to).into_bytes());
}

#[test]
fn generated_fleets_compile_as_two_compiles() {
    type Edit = Box<dyn Fn(&mut Snapshot)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("nothing", Box::new(|_| {})),
        (
            "a template",
            Box::new(|s| replace(s, "files/plain.j2", "{{ port }}", "{{ port + 1 }}")),
        ),
        (
            "an included template",
            Box::new(|s| replace(s, "files/header.j2", "header", "head")),
        ),
        (
            "a node's vars",
            Box::new(|s| replace(s, "nodes/n0003.yaml", "workers: ", "workers: 1")),
        ),
        (
            "a role's vars",
            Box::new(|s| replace(s, "roles/web.yaml", "port: 80", "port: 81")),
        ),
        (
            "a number's spelling",
            Box::new(|s| replace(s, "roles/db.yaml", "port: 5432", "port: 5432.0")),
        ),
        (
            "fleet vars order",
            Box::new(|s| replace(s, "centossrv.yaml", "{a: 1, b: 2}", "{b: 2, a: 1}")),
        ),
        (
            "a role's package",
            Box::new(|s| replace(s, "roles/all.yaml", "version: \"1.0\"", "version: \"2.0\"")),
        ),
        (
            "a role's file mode",
            Box::new(|s| {
                replace(
                    s,
                    "roles/web.yaml",
                    "template: files/app.conf.j2",
                    "template: files/app.conf.j2\n      mode: \"0600\"",
                )
            }),
        ),
        (
            "a node's label",
            Box::new(|s| replace(s, "nodes/n0010.yaml", "tier: ", "tier: x")),
        ),
        (
            "a node's address",
            Box::new(|s| replace(s, "nodes/n0011.yaml", "address: 10.0.", "address: 10.1.")),
        ),
        (
            "a node added",
            Box::new(|s| {
                s.insert("nodes/zz.yaml", b"apiVersion: centossrv.io/v1\nkind: Node\nmetadata:\n  name: zz\n  labels: {tier: web}\nspec:\n  vars: {workers: 1}\n".to_vec())
            }),
        ),
        (
            "a node removed",
            Box::new(|s| {
                s.files.remove("nodes/n0001.yaml");
            }),
        ),
        (
            "a role removed",
            Box::new(|s| {
                s.files.remove("roles/not-db.yaml");
            }),
        ),
        (
            "a broken role",
            Box::new(|s| replace(s, "roles/db.yaml", "- package:", "- packag:")),
        ),
        (
            "a stray file",
            Box::new(|s| s.insert("stray.yaml", b"a: 1\n".to_vec())),
        ),
    ];
    let mut shared_somewhere = false;
    for (seed, nodes) in [(1_u64, 150_usize), (7, 400)] {
        let base = generated(nodes, seed, &|_| {});
        for (name, edit) in &edits {
            let head = generated(nodes, seed, edit);
            let shared = check(&format!("seed {seed}: {name}"), &head, &base);
            shared_somewhere |= shared > 0;
            // And the other way round: head as base.
            check(&format!("seed {seed}: {name}, reversed"), &base, &head);
        }
    }
    assert!(shared_somewhere, "no resource was ever reused");
}

#[test]
fn unchanged_renders_are_shared() {
    let base = generated(120, 3, &|_| {});
    let head = generated(120, 3, &|s| {
        replace(s, "files/plain.j2", "{{ port }}", "{{ port }}!");
    });
    let (h, b) = compile_pair(&head, &base);
    // app.conf includes another template, and not every template file is the same: it is
    // rendered again. plain.j2 changed. Nothing templated is shared, static resources are
    // the roles' own.
    let (hn, bn) = (
        h.model.desired_for("n0000").expect("n0000"),
        b.model.desired_for("n0000").expect("n0000"),
    );
    assert!(
        !hn.resources
            .iter()
            .any(|r| bn.resources.iter().any(|o| Arc::ptr_eq(o, r)))
    );
    // Change a role's package only: every render is reused, and the resources of the
    // other roles are base's own.
    let head = generated(120, 3, &|s| {
        replace(s, "roles/all.yaml", "version: \"1.0\"", "version: \"2.0\"");
    });
    let (h, b) = compile_pair(&head, &base);
    let (hn, bn) = (
        h.model.desired_for("n0000").expect("n0000"),
        b.model.desired_for("n0000").expect("n0000"),
    );
    let same: Vec<_> = hn
        .resources
        .iter()
        .filter(|r| bn.resources.iter().any(|o| Arc::ptr_eq(o, r)))
        .map(|r| (r.origin.role.clone(), r.id.to_string()))
        .collect();
    assert!(!same.is_empty(), "nothing shared");
    assert!(same.iter().all(|(role, _)| role != "all"), "{same:?}");
    assert!(
        same.iter().any(|(_, id)| id.ends_with("plain.conf")),
        "{same:?}"
    );
}
