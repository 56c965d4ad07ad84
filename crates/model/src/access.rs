//! `access.yaml` at the fleet repository's root: who has which role on the reconciler,
//! reviewed in pull requests like everything else. Compiled with the manifests: its
//! problems are diagnostics (`E0601`) with file, line and column, so a broken file fails
//! the commit (and the pull request's plan) instead of being ignored.
//!
//! ```yaml
//! bindings:
//!   - user: alice
//!     role: operator
//!   - group: fleet-ops   # a directory (LDAP) group
//!     role: admin
//! ```

use crate::diagnostic::{Code, Diagnostic};
use crate::yaml::{self, Node, Value};

/// The file's path in the repository.
pub const FILE: &str = "access.yaml";

/// The roles a binding may name.
pub const ROLES: [&str; 4] = ["viewer", "auditor", "operator", "admin"];

/// `subject` (`user:NAME` or `group:NAME`) has `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub subject: String,
    pub role: String,
}

fn diag(node_pos: yaml::Pos, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(
        Code::AccessBinding,
        FILE,
        node_pos.line,
        node_pos.column,
        message,
    )
}

fn user_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// The bindings of `text`; every problem goes to `diags`.
pub fn parse(text: &str, diags: &mut Vec<Diagnostic>) -> Vec<Binding> {
    let docs = match yaml::parse(text) {
        Ok(docs) => docs,
        Err(e) => {
            let (pos, message) = match &e {
                yaml::YamlError::Syntax { pos, message } => (*pos, message.clone()),
                yaml::YamlError::DuplicateKey { pos, key, .. } => {
                    (*pos, format!("duplicate key `{key}`"))
                }
                other => (yaml::Pos::default(), format!("{other:?}")),
            };
            diags.push(diag(pos, format!("not valid YAML: {message}")));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let Some(doc) = docs.first() else {
        return out;
    };
    if docs.len() > 1 {
        diags.push(diag(docs[1].root.pos, "one document expected"));
    }
    let Value::Map(entries) = &doc.root.value else {
        diags.push(diag(doc.root.pos, "expected a mapping with `bindings`"));
        return out;
    };
    for (key, _) in entries {
        if key.name != "bindings" {
            diags.push(
                diag(key.pos, format!("unknown key `{}`", key.name)).hint("expected `bindings`"),
            );
        }
    }
    match doc.root.get("bindings") {
        None => {}
        Some(Node {
            value: Value::Null, ..
        }) => {}
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => {
            for item in items {
                if let Some(b) = binding(item, diags) {
                    if out.iter().any(|x: &Binding| x.subject == b.subject) {
                        diags.push(diag(item.pos, format!("`{}` is bound twice", b.subject)));
                    } else {
                        out.push(b);
                    }
                }
            }
        }
        Some(node) => diags.push(diag(node.pos, "`bindings` must be a list")),
    }
    out
}

fn binding(item: &Node, diags: &mut Vec<Diagnostic>) -> Option<Binding> {
    let Value::Map(entries) = &item.value else {
        diags.push(diag(
            item.pos,
            "a binding is a mapping with `user` or `group`, and `role`",
        ));
        return None;
    };
    let before = diags.len();
    for (key, _) in entries {
        if !matches!(key.name.as_str(), "user" | "group" | "role") {
            diags.push(
                diag(key.pos, format!("unknown key `{}`", key.name))
                    .hint("expected `user`, `group` or `role`"),
            );
        }
    }
    let mut text = |key: &str| -> Option<String> {
        let node = item.get(key)?;
        match node.as_str() {
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            _ => {
                diags.push(diag(
                    node.pos,
                    format!("`{key}` must be a non-empty string"),
                ));
                None
            }
        }
    };
    let user = text("user");
    let group = text("group");
    let role = text("role");
    let subject = match (user, group) {
        (Some(user), None) => {
            if user_name_ok(&user) {
                Some(format!("user:{user}"))
            } else {
                let pos = item.get("user").map_or(item.pos, |n| n.pos);
                diags.push(diag(
                    pos,
                    format!("`{user}`: 1 to 64 letters, digits, `.`, `_`, `-` and `@`"),
                ));
                None
            }
        }
        (None, Some(group)) => Some(format!("group:{group}")),
        (Some(_), Some(_)) => {
            diags.push(diag(
                item.pos,
                "a binding names a `user` or a `group`, not both",
            ));
            None
        }
        (None, None) => {
            if item.get("user").is_none() && item.get("group").is_none() {
                diags.push(diag(item.pos, "a binding needs `user` or `group`"));
            }
            None
        }
    };
    let role = match role {
        Some(name) if ROLES.contains(&name.as_str()) => Some(name),
        Some(name) => {
            let pos = item.get("role").map_or(item.pos, |n| n.pos);
            diags.push(
                diag(pos, format!("unknown role `{name}`"))
                    .hint("viewer, auditor, operator or admin"),
            );
            None
        }
        None => {
            if item.get("role").is_none() {
                diags.push(diag(item.pos, "a binding needs a `role`"));
            }
            None
        }
    };
    match (subject, role) {
        (Some(subject), Some(role)) if diags.len() == before => Some(Binding { subject, role }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> (Vec<Binding>, Vec<String>) {
        let mut diags = Vec::new();
        let b = parse(text, &mut diags);
        (
            b,
            diags
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect(),
        )
    }

    #[test]
    fn reads_bindings_and_reports_every_problem_with_positions() {
        let (ok, none) = problems(
            "bindings:\n  - user: alice\n    role: operator\n  - group: ops\n    role: admin\n",
        );
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(
            ok,
            [
                Binding {
                    subject: "user:alice".into(),
                    role: "operator".into()
                },
                Binding {
                    subject: "group:ops".into(),
                    role: "admin".into()
                },
            ]
        );
        let (_, errors) = problems(
            "bindings:\n  - user: alice\n    role: root\n  - group: ops\n    user: bob\n    role: admin\n  - role: viewer\n  - user: carol\n    role: viewer\n    extra: 1\nother: 2\n",
        );
        assert_eq!(
            errors,
            [
                "11:1: unknown key `other`",
                "3:11: unknown role `root`",
                "4:5: a binding names a `user` or a `group`, not both",
                "7:5: a binding needs `user` or `group`",
                "10:5: unknown key `extra`",
            ]
        );
        assert!(problems("").1.is_empty());
        assert_eq!(problems("bindings: [").1.len(), 1);
    }
}
