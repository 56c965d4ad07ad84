//! Drift bookkeeping, pure: what the shared plan says is drifted on one resource, and the
//! events that a move from one drift to the next produces (a property drifting, drifting
//! again, or coming back).

use super::event::WatchEvent;
use state::{Action, Cause, Change, ResourceId};
use std::collections::BTreeMap;

/// One drifted property: the value observed and the value desired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drifted {
    pub observed: Option<String>,
    pub desired: Option<String>,
}

/// The drifted properties of one resource by name; empty when it is in sync.
pub type DriftProps = BTreeMap<String, Drifted>;

/// The drift a plan's change describes. A resource that is missing altogether is one
/// `ensure` property (absent, desired present) rather than every property it would be
/// created with.
pub fn drift_of(change: &Change) -> DriftProps {
    let mut props = DriftProps::new();
    if change.action == Action::Create && !change.unobserved {
        props.insert(
            "ensure".to_owned(),
            Drifted {
                observed: Some("absent".to_owned()),
                desired: Some("present".to_owned()),
            },
        );
        return props;
    }
    for p in &change.properties {
        props.insert(
            p.name.clone(),
            Drifted {
                observed: p.before.clone(),
                desired: p.after.clone(),
            },
        );
    }
    props
}

/// The events for `id` moving from drift `old` to drift `new`; `change` is the plan's
/// change behind `new` (for the cause, the diff and sensitivity).
pub fn transition(
    at: &str,
    id: &ResourceId,
    old: &DriftProps,
    new: &DriftProps,
    change: Option<&Change>,
) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    for (name, now) in new {
        let before = match old.get(name) {
            Some(was) if was.observed == now.observed => continue,
            Some(was) => was.observed.clone(),
            // In sync until now: the property had its desired value.
            None => now.desired.clone(),
        };
        let cause = change
            .and_then(|c| c.properties.iter().find(|p| &p.name == name))
            .map_or(Cause::Drift, |p| p.cause);
        let diff = change
            .filter(|c| !c.sensitive && name == "content")
            .and_then(|c| c.diff.clone());
        events.push(WatchEvent::Drift {
            at: at.to_owned(),
            id: id.clone(),
            property: name.clone(),
            before,
            after: now.observed.clone(),
            desired: now.desired.clone(),
            cause,
            diff,
            sensitive: change.is_some_and(|c| c.sensitive),
        });
    }
    // A resource that went missing: its other drifted properties are not "resolved", they
    // are part of the `ensure` drift.
    let missing = new.contains_key("ensure") && !old.contains_key("ensure");
    for (name, was) in old {
        if !new.contains_key(name) && !missing {
            events.push(WatchEvent::Resolved {
                at: at.to_owned(),
                id: id.clone(),
                property: name.clone(),
                before: was.observed.clone(),
                after: was.desired.clone(),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::{PropertyChange, ResourceKind};

    fn change(action: Action, props: &[(&str, Option<&str>, Option<&str>)]) -> Change {
        Change {
            id: ResourceId::new(ResourceKind::File, "/etc/motd"),
            action,
            cause: Cause::Drift,
            properties: props
                .iter()
                .map(|(n, b, a)| PropertyChange {
                    name: (*n).to_owned(),
                    before: b.map(str::to_owned),
                    after: a.map(str::to_owned),
                    cause: Cause::Drift,
                })
                .collect(),
            diff: None,
            destructive: false,
            sensitive: false,
            triggered_by: Vec::new(),
            unobserved: false,
        }
    }

    fn kinds(events: &[WatchEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                WatchEvent::Drift {
                    property,
                    before,
                    after,
                    ..
                } => format!("drift {property} {before:?} -> {after:?}"),
                WatchEvent::Resolved {
                    property,
                    before,
                    after,
                    ..
                } => format!("resolved {property} {before:?} -> {after:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn drift_moves_and_resolves_per_property() {
        let id = ResourceId::new(ResourceKind::File, "/etc/motd");
        let mode = change(Action::Update, &[("mode", Some("0600"), Some("0644"))]);
        let first = drift_of(&mode);
        let events = transition("t", &id, &DriftProps::new(), &first, Some(&mode));
        assert_eq!(
            kinds(&events),
            ["drift mode Some(\"0644\") -> Some(\"0600\")"]
        );
        // The same drift observed again: nothing.
        assert!(transition("t", &id, &first, &first, Some(&mode)).is_empty());
        // Mode moves on, content drifts too.
        let both = change(
            Action::Update,
            &[
                ("content", Some("sha256:b"), Some("sha256:a")),
                ("mode", Some("0640"), Some("0644")),
            ],
        );
        let second = drift_of(&both);
        assert_eq!(
            kinds(&transition("t", &id, &first, &second, Some(&both))),
            [
                "drift content Some(\"sha256:a\") -> Some(\"sha256:b\")",
                "drift mode Some(\"0600\") -> Some(\"0640\")"
            ]
        );
        // Deleted: one `ensure` property, which subsumes the others.
        let gone = change(
            Action::Create,
            &[
                ("content", None, Some("sha256:a")),
                ("mode", None, Some("0644")),
            ],
        );
        let third = drift_of(&gone);
        assert_eq!(
            kinds(&transition("t", &id, &second, &third, Some(&gone))),
            ["drift ensure Some(\"present\") -> Some(\"absent\")"]
        );
        // Back in sync.
        assert_eq!(
            kinds(&transition("t", &id, &third, &DriftProps::new(), None)),
            ["resolved ensure Some(\"absent\") -> Some(\"present\")"]
        );
    }
}
