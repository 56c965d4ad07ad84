//! What to do about one node, decided from what is known about it and nothing else: pure,
//! never told why it runs (level-triggered). The engine calls it after every event that
//! touches the node and on every tick; the same inputs always give the same decision.

use state::{DesiredState, NodePlan, ObservedState};
use std::time::{Duration, Instant};

/// A request sent to the node's agent and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlight {
    Observe {
        request: u64,
        commit: String,
        sent: Instant,
    },
    Apply {
        request: u64,
        commit: String,
        run: i64,
        digest: String,
        sent: Instant,
    },
}

impl InFlight {
    pub fn request(&self) -> u64 {
        match self {
            InFlight::Observe { request, .. } | InFlight::Apply { request, .. } => *request,
        }
    }

    pub fn sent(&self) -> Instant {
        match self {
            InFlight::Observe { sent, .. } | InFlight::Apply { sent, .. } => *sent,
        }
    }
}

/// What the engine knows about one node. Rebuilt from empty on restart: every field starts
/// at "unknown", which leads to a fresh observation, never to an assumption.
#[derive(Debug, Default)]
pub struct NodeView {
    /// An authenticated agent connection is open.
    pub connected: bool,
    pub in_flight: Option<InFlight>,
    /// The agent's answer to `Observe` for the desired state of this commit.
    pub observed: Option<(String, ObservedState)>,
    /// The node was found in sync with (or applied) the desired state of this commit.
    pub converged: Option<String>,
    /// A stale apply of this commit waits for an operator (fleet setting `stale_apply: hold`).
    pub held: Option<String>,
    /// The last apply of this commit failed at this time.
    pub failed: Option<(String, Instant)>,
}

/// The desired state the node should have now, with the fleet settings that govern it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub commit: &'a str,
    pub desired: &'a DesiredState,
}

/// Why nothing is done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No compiled commit yet, or the node is not in the inventory at it (discovered).
    NoTarget,
    Offline,
    InFlight,
    Held,
    BackingOff,
    Converged,
}

/// The decision for one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Wait(Wait),
    /// Ask the agent what it sees for the target's desired state.
    Observe,
    /// The fresh observation shows nothing to do.
    MarkConverged,
    /// Approve this plan's digest and send `Apply`.
    Apply(Box<NodePlan>),
}

/// Decides for one node. `retry_after` is how long a failed apply waits before another try.
pub fn decide(
    view: &NodeView,
    target: Option<Target<'_>>,
    now: Instant,
    retry_after: Duration,
) -> Decision {
    let Some(target) = target else {
        return Decision::Wait(Wait::NoTarget);
    };
    if !view.connected {
        return Decision::Wait(Wait::Offline);
    }
    if view.in_flight.is_some() {
        return Decision::Wait(Wait::InFlight);
    }
    if view.held.as_deref() == Some(target.commit) {
        return Decision::Wait(Wait::Held);
    }
    if let Some((commit, at)) = &view.failed
        && commit == target.commit
        && now.duration_since(*at) < retry_after
    {
        return Decision::Wait(Wait::BackingOff);
    }
    if view.converged.as_deref() == Some(target.commit) {
        return Decision::Wait(Wait::Converged);
    }
    let Some((commit, observed)) = &view.observed else {
        return Decision::Observe;
    };
    if commit != target.commit {
        return Decision::Observe;
    }
    // The agent plans without a base; so does the approval, or the digests could differ.
    let plan = state::plan(Some(target.desired), Some(observed), None);
    if plan.has_host_changes() {
        Decision::Apply(Box::new(plan))
    } else {
        Decision::MarkConverged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(content: &str) -> DesiredState {
        let digest = state::digest::sha256(content.as_bytes());
        serde_json::from_value(serde_json::json!({
            "format": state::DESIRED_FORMAT,
            "node": "web-1",
            "commit": "c1",
            "resources": [{
                "id": "file:/etc/motd",
                "spec": {"type": "file", "path": "/etc/motd", "content": content, "sha256": digest},
                "origin": {"role": "base", "file": "roles/base.yaml", "line": 1}
            }]
        }))
        .expect("desired state")
    }

    fn connected() -> NodeView {
        NodeView {
            connected: true,
            ..NodeView::default()
        }
    }

    const RETRY: Duration = Duration::from_secs(60);

    #[test]
    fn walks_from_unknown_to_apply_to_converged() {
        let d = desired("hello\n");
        let target = Some(Target {
            commit: "c1",
            desired: &d,
        });
        let now = Instant::now();
        assert_eq!(
            decide(&NodeView::default(), target, now, RETRY),
            Decision::Wait(Wait::Offline)
        );
        let mut view = connected();
        assert_eq!(
            decide(&view, None, now, RETRY),
            Decision::Wait(Wait::NoTarget)
        );
        assert_eq!(decide(&view, target, now, RETRY), Decision::Observe);
        // Observed for an older commit: observe again.
        view.observed = Some(("c0".into(), ObservedState::new("web-1")));
        assert_eq!(decide(&view, target, now, RETRY), Decision::Observe);
        view.observed = Some(("c1".into(), ObservedState::new("web-1")));
        let Decision::Apply(plan) = decide(&view, target, now, RETRY) else {
            panic!("expected an apply");
        };
        assert_eq!(plan.changes.len(), 1);
        view.in_flight = Some(InFlight::Apply {
            request: 1,
            commit: "c1".into(),
            run: 1,
            digest: plan.digest.clone(),
            sent: now,
        });
        assert_eq!(
            decide(&view, target, now, RETRY),
            Decision::Wait(Wait::InFlight)
        );
        view.in_flight = None;
        view.observed = Some(("c1".into(), ObservedState::converged(&d)));
        assert_eq!(decide(&view, target, now, RETRY), Decision::MarkConverged);
        view.converged = Some("c1".into());
        assert_eq!(
            decide(&view, target, now, RETRY),
            Decision::Wait(Wait::Converged)
        );
    }

    #[test]
    fn holds_and_backs_off_only_for_their_commit() {
        let d = desired("x\n");
        let target = Some(Target {
            commit: "c1",
            desired: &d,
        });
        let now = Instant::now();
        let mut view = connected();
        view.held = Some("c1".into());
        assert_eq!(
            decide(&view, target, now, RETRY),
            Decision::Wait(Wait::Held)
        );
        view.held = Some("c0".into());
        assert_eq!(decide(&view, target, now, RETRY), Decision::Observe);
        view.failed = Some(("c1".into(), now));
        assert_eq!(
            decide(&view, target, now, RETRY),
            Decision::Wait(Wait::BackingOff)
        );
        assert_eq!(decide(&view, target, now + RETRY, RETRY), Decision::Observe);
    }
}
