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

/// The alias-expansion limit was counted per YAML document and reset at each `---`: a file
/// of many small alias bombs, each just under the limit, expanded without bound (5 node
/// documents of 300 bytes each: 5 million nodes, 17 s and 2 GB). It now holds per file.
#[test]
fn alias_expansion_is_limited_per_file_not_per_document() {
    // About 345,000 nodes once expanded: under the limit alone, over it four times over.
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e]\n";
    assert!(model::yaml::parse(bomb).is_ok());
    let four = [bomb; 4].join("---\n");
    assert!(matches!(
        model::yaml::parse(&four),
        Err(model::yaml::YamlError::TooLarge { .. })
    ));
}

const NODES_3: &str = "apiVersion: centossrv.io/v1\nkind: Node\nmetadata: {name: n0}\n---\napiVersion: centossrv.io/v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: centossrv.io/v1\nkind: Node\nmetadata: {name: n2}\n";

fn templated(template: &str) -> Vec<String> {
    let role = role("    - file: /x\n      template: files/t.j2\n");
    messages(&[
        ("nodes/n.yaml", NODES_3),
        ("roles/r.yaml", &role),
        ("files/t.j2", template),
    ])
}

/// `{{ 'x' * 100000000 }}` put 100 MB into the desired state of every node (40 nodes: 20 s
/// and 4 GB). Rendered output is capped.
#[test]
fn rendered_output_is_capped() {
    let diags = templated("{{ 'x' * 100000000 }}");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].starts_with("files/t.j2:0:0: error[E0403]: rendered output is larger than 4 MiB (on 3 nodes: n0, n1, n2)"),
        "{diags:?}"
    );
    // Just under the cap is fine.
    let diags = templated("{{ 'x' * 4000000 }}");
    assert!(diags.is_empty(), "{diags:?}");
}

/// A runaway loop burnt the whole fuel once per node (40 nodes: 5 s in release, over 30 s
/// under the fuzzer). A template that runs out of fuel is not rendered again.
#[test]
fn a_runaway_template_is_rendered_once() {
    let diags = templated(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    );
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].contains("error[E0403]: engine ran out of fuel (on 3 nodes: n0, n1, n2)"),
        "{diags:?}"
    );
}
