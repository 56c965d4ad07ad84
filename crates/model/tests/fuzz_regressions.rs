//! Inputs found by fuzzing `model::compile` (see `crates/model/fuzz/`), minimized, kept here so
//! plain `cargo test` checks them without the fuzzer.

use model::{Code, Snapshot, compile};

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    let mut s = Snapshot::new(None);
    for (path, text) in files {
        s.insert(*path, text.as_bytes().to_vec());
    }
    s
}

const NODE: &str = "apiVersion: centossrv.io/v1\nkind: Node\nmetadata: {name: n0}\n";

fn role(resources: &str) -> String {
    format!(
        "apiVersion: centossrv.io/v1\nkind: Role\nmetadata: {{name: r}}\nspec:\n  selector: {{}}\n  resources:\n{resources}"
    )
}

fn messages(files: &[(&str, &str)]) -> Vec<String> {
    compile(&snapshot(files))
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A resource that requires itself was accepted, and its desired state broke the promise
/// that every `requires` target comes before its dependant.
#[test]
fn requiring_itself_is_a_cycle() {
    let role = role("    - package: a\n      requires: [package:a]\n");
    let compiled = compile(&snapshot(&[
        ("nodes/n0.yaml", NODE),
        ("roles/r.yaml", &role),
    ]));
    let cycles: Vec<String> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::Cycle)
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        cycles,
        ["dependency cycle: package:a -> package:a (on 1 node: n0)"]
    );
}

/// Same for a service that notifies itself: no order satisfies the edge.
#[test]
fn notifying_itself_is_a_cycle() {
    let role = role("    - service: a\n      notify: [service:a]\n");
    let compiled = compile(&snapshot(&[
        ("nodes/n0.yaml", NODE),
        ("roles/r.yaml", &role),
    ]));
    assert!(
        compiled.diagnostics.iter().any(|d| d.code == Code::Cycle
            && d.message
                .starts_with("dependency cycle: service:a -> service:a")),
        "{:?}",
        compiled.diagnostics
    );
}

/// The cycle finder walked forward from the first stuck resource; a resource that only
/// depends on a cycle (here `package:z`, declared first) has no stuck successor, and was
/// reported as a cycle of its own: "package:z -> package:z".
#[test]
fn a_dependant_of_a_cycle_is_not_reported_as_the_cycle() {
    let role = role(
        "    - package: z\n      requires: [package:a]\n    - package: a\n      requires: [package:b]\n    - package: b\n      requires: [package:a]\n",
    );
    let diags = messages(&[("nodes/n0.yaml", NODE), ("roles/r.yaml", &role)]);
    let cycles: Vec<&String> = diags.iter().filter(|d| d.contains("E0303")).collect();
    assert_eq!(cycles.len(), 1, "{diags:?}");
    assert!(
        cycles[0].contains("dependency cycle: package:a -> package:b -> package:a "),
        "{diags:?}"
    );
}
