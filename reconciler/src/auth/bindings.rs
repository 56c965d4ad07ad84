//! Role bindings declared in the fleet repository (`access.yaml` at its root), reviewed in
//! pull requests like everything else. The engine replaces the store's `git` bindings with
//! these each time a commit comes into force; bindings made with the CLI (`cli`) stay.
//!
//! ```yaml
//! bindings:
//!   - user: alice
//!     role: operator
//!   - group: ops        # a directory (LDAP) group
//!     role: admin
//! ```

use super::Role;
use model::yaml::{self, Node, Value};

/// The file's path in the repository.
pub const FILE: &str = "access.yaml";

/// Every problem of the file at once, each as `access.yaml:LINE:COLUMN: message`.
pub fn parse(text: &str) -> Result<Vec<(String, Role)>, Vec<String>> {
    let docs = yaml::parse(text).map_err(|e| vec![format!("{FILE}: {}", describe(&e))])?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let Some(doc) = docs.first() else {
        return Ok(out);
    };
    if docs.len() > 1 {
        errors.push(format!(
            "{FILE}: one document expected, found {}",
            docs.len()
        ));
    }
    let at = |node: &Node, message: String| {
        format!("{FILE}:{}:{}: {message}", node.pos.line, node.pos.column)
    };
    let Value::Map(entries) = &doc.root.value else {
        return Err(vec![at(
            &doc.root,
            "expected a mapping with `bindings`".into(),
        )]);
    };
    for (key, _) in entries {
        if key.name != "bindings" {
            errors.push(format!(
                "{FILE}:{}:{}: unknown key `{}` (expected `bindings`)",
                key.pos.line, key.pos.column, key.name
            ));
        }
    }
    match doc.root.get("bindings").map(|n| (n, &n.value)) {
        None => {}
        Some((_, Value::Null)) => {}
        Some((_, Value::Seq(items))) => {
            for item in items {
                match binding(item) {
                    Ok(b) => {
                        if out.iter().any(|(s, _)| *s == b.0) {
                            errors.push(at(item, format!("`{}` is bound twice", b.0)));
                        } else {
                            out.push(b);
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        Some((node, _)) => errors.push(at(node, "`bindings` must be a list".into())),
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn binding(item: &Node) -> Result<(String, Role), Vec<String>> {
    let at = |node: &Node, message: String| {
        format!("{FILE}:{}:{}: {message}", node.pos.line, node.pos.column)
    };
    let Value::Map(entries) = &item.value else {
        return Err(vec![at(
            item,
            "a binding is a mapping with `user` or `group`, and `role`".into(),
        )]);
    };
    let mut errors = Vec::new();
    for (key, _) in entries {
        if !matches!(key.name.as_str(), "user" | "group" | "role") {
            errors.push(format!(
                "{FILE}:{}:{}: unknown key `{}` (expected `user`, `group` or `role`)",
                key.pos.line, key.pos.column, key.name
            ));
        }
    }
    let text = |key: &str| -> Option<Result<String, String>> {
        item.get(key).map(|n| match n.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(at(n, format!("`{key}` must be a non-empty string"))),
        })
    };
    let subject = match (text("user"), text("group")) {
        (Some(Ok(user)), None) => match store::check_user_name(&user) {
            Ok(()) => Some(format!("user:{user}")),
            Err(e) => {
                errors.push(at(item.get("user").unwrap_or(item), e.to_string()));
                None
            }
        },
        (None, Some(Ok(group))) => Some(format!("group:{group}")),
        (Some(_), Some(_)) => {
            errors.push(at(
                item,
                "a binding names a `user` or a `group`, not both".into(),
            ));
            None
        }
        (None, None) => {
            errors.push(at(item, "a binding needs `user` or `group`".into()));
            None
        }
        (Some(Err(e)), None) | (None, Some(Err(e))) => {
            errors.push(e);
            None
        }
    };
    let role = match text("role") {
        Some(Ok(name)) => match Role::parse(&name) {
            Some(role) => Some(role),
            None => {
                errors.push(at(
                    item.get("role").unwrap_or(item),
                    format!("unknown role `{name}` (viewer, auditor, operator, admin)"),
                ));
                None
            }
        },
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => {
            errors.push(at(item, "a binding needs a `role`".into()));
            None
        }
    };
    match (subject, role) {
        (Some(s), Some(r)) if errors.is_empty() => Ok((s, r)),
        _ => Err(errors),
    }
}

fn describe(e: &yaml::YamlError) -> String {
    match e {
        yaml::YamlError::Syntax { pos, message } => {
            format!("{}:{}: {message}", pos.line, pos.column)
        }
        yaml::YamlError::DuplicateKey { pos, key, first } => format!(
            "{}:{}: duplicate key `{key}` (first at {}:{})",
            pos.line, pos.column, first.line, first.column
        ),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bindings_and_reports_every_problem_with_positions() {
        let ok = parse(
            "bindings:\n  - user: alice\n    role: operator\n  - group: ops\n    role: admin\n",
        )
        .expect("valid");
        assert_eq!(
            ok,
            [
                ("user:alice".to_owned(), Role::Operator),
                ("group:ops".to_owned(), Role::Admin)
            ]
        );
        let errors = parse(
            "bindings:\n  - user: alice\n    role: root\n  - group: ops\n    user: bob\n    role: admin\n  - role: viewer\n  - user: carol\n    role: viewer\n    extra: 1\nother: 2\n",
        )
        .expect_err("invalid");
        assert_eq!(
            errors,
            [
                "access.yaml:11:1: unknown key `other` (expected `bindings`)",
                "access.yaml:3:11: unknown role `root` (viewer, auditor, operator, admin)",
                "access.yaml:4:5: a binding names a `user` or a `group`, not both",
                "access.yaml:7:5: a binding needs `user` or `group`",
                "access.yaml:10:5: unknown key `extra` (expected `user`, `group` or `role`)",
            ]
        );
        assert_eq!(parse("").expect("empty"), []);
    }
}
