//! Which properties of a resource's desired form differ between two commits, as short
//! display strings: the spec's fields, then `requires` and `notify`. File content is compared
//! but never shown (its digest is). Pure.

use serde::Serialize;
use state::{DesiredResource, ResourceId};

/// Longest value shown for a changed property; longer ones are cut with `…`.
const MAX_VALUE: usize = 80;

/// One property of the desired form, before and after (display strings; file content only
/// by its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Property {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The properties of the desired form that differ: the spec's fields, then `requires` and
/// `notify`. File content is compared and named but never shown (its digest is).
pub fn changed_properties(old: &DesiredResource, new: &DesiredResource) -> Vec<Property> {
    let fields = |r: &DesiredResource| -> Vec<(String, serde_json::Value)> {
        let mut out: Vec<(String, serde_json::Value)> = match serde_json::to_value(&r.spec) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            Ok(other) => vec![("spec".to_owned(), other)],
            Err(_) => Vec::new(),
        };
        let ids = |list: &[ResourceId]| {
            serde_json::Value::Array(
                list.iter()
                    .map(|id| serde_json::Value::String(id.to_string()))
                    .collect(),
            )
        };
        out.push(("requires".to_owned(), ids(&r.requires)));
        out.push(("notify".to_owned(), ids(&r.notify)));
        out
    };
    let before = fields(old);
    let after = fields(new);
    let mut names: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in &after {
        if !names.contains(&k.as_str()) {
            names.push(k);
        }
    }
    let find = |list: &[(String, serde_json::Value)], name: &str| {
        list.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !is_empty(v))
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (b, a) = (find(&before[..], name), find(&after[..], name));
            if b == a {
                return None;
            }
            let hidden = name == "content";
            Some(Property {
                name: name.to_owned(),
                before: b.filter(|_| !hidden).map(|v| display(&v)),
                after: a.filter(|_| !hidden).map(|v| display(&v)),
            })
        })
        .collect()
}

fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A value as one short line: strings as they are, lists joined by commas, anything else
/// as compact JSON, cut at [`MAX_VALUE`] characters.
fn display(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let line = text.replace(['\n', '\r'], " ");
    if line.chars().count() > MAX_VALUE {
        let mut cut: String = line.chars().take(MAX_VALUE).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::{Ensure, FileSpec, Origin, ResourceKind, Spec};
    use std::sync::Arc;

    fn file(content: &str, mode: &str) -> DesiredResource {
        DesiredResource {
            id: ResourceId::new(ResourceKind::File, "/etc/motd"),
            spec: Spec::File(FileSpec {
                path: "/etc/motd".into(),
                ensure: Ensure::Present,
                content: Some(Arc::from(content)),
                sha256: Some(state::digest::sha256(content.as_bytes())),
                mode: Some(mode.into()),
                owner: None,
                group: None,
                sensitive: false,
            }),
            requires: Vec::new(),
            notify: Vec::new(),
            origin: Origin {
                role: "base".into(),
                file: "roles/base.yaml".into(),
                line: 3,
            },
        }
    }

    #[test]
    fn properties_show_values_but_never_content() {
        let old = file("hello\n", "0644");
        let mut new = file("hello\n", "0600");
        new.requires = vec![ResourceId::new(ResourceKind::Package, "nginx")];
        new.origin.line = 99;
        let props = changed_properties(&old, &new);
        let shown: Vec<(String, Option<String>, Option<String>)> = props
            .into_iter()
            .map(|p| (p.name, p.before, p.after))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("mode".into(), Some("0644".into()), Some("0600".into())),
                ("requires".into(), None, Some("package:nginx".into())),
            ],
            "same content; a moved declaration is not a change"
        );
        let changed = changed_properties(&file("a\n", "0644"), &file("b\n", "0644"));
        let content = changed
            .iter()
            .find(|p| p.name == "content")
            .expect("content");
        assert_eq!(
            (content.before.as_deref(), content.after.as_deref()),
            (None, None)
        );
        let digest = changed.iter().find(|p| p.name == "sha256").expect("digest");
        assert!(
            digest
                .after
                .as_deref()
                .is_some_and(|d| d.starts_with("sha256:"))
        );
        let long = display(&serde_json::Value::String("x".repeat(200)));
        assert_eq!(long.chars().count(), MAX_VALUE + 1);
    }
}
