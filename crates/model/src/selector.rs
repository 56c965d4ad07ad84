//! Label selectors: `matchLabels` and `matchExpressions`, Kubernetes semantics.

use crate::manifest::{Selector, SelectorOperator};
use std::collections::BTreeMap;

/// Whether a node with `labels` is selected. Every condition must hold; `{}` selects all.
pub fn matches(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|req| {
            let value = labels.get(&req.key);
            match req.operator {
                SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

/// A short human form of a selector, e.g. `role=web, env in (prod, staging)`.
pub fn describe(selector: &Selector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for req in &selector.match_expressions {
        parts.push(match req.operator {
            SelectorOperator::In => format!("{} in ({})", req.key, req.values.join(", ")),
            SelectorOperator::NotIn => format!("{} notin ({})", req.key, req.values.join(", ")),
            SelectorOperator::Exists => req.key.clone(),
            SelectorOperator::DoesNotExist => format!("!{}", req.key),
        });
    }
    if parts.is_empty() {
        "every node".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn semantics() {
        let sel = Selector {
            match_labels: labels(&[("role", "web")]),
            match_expressions: vec![
                SelectorRequirement {
                    key: "env".into(),
                    operator: SelectorOperator::In,
                    values: vec!["prod".into(), "staging".into()],
                },
                SelectorRequirement {
                    key: "decommissioned".into(),
                    operator: SelectorOperator::DoesNotExist,
                    values: vec![],
                },
            ],
        };
        assert!(matches(&sel, &labels(&[("role", "web"), ("env", "prod")])));
        assert!(!matches(&sel, &labels(&[("role", "web"), ("env", "dev")])));
        assert!(!matches(&sel, &labels(&[("role", "web")])));
        assert!(!matches(
            &sel,
            &labels(&[("role", "web"), ("env", "prod"), ("decommissioned", "yes")])
        ));
        assert!(matches(&Selector::default(), &labels(&[])));
        assert_eq!(
            describe(&sel),
            "role=web, env in (prod, staging), !decommissioned"
        );
    }
}
