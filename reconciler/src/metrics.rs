//! The reconciler's Prometheus metrics: one registry, plain methods for the modules that
//! observe something (engine, agent link, compiler), and the text encoding `/metrics` serves.
//! Cheap to clone: every clone shares the same registry and values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use state::wire::FrameError;
use std::sync::Arc;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Why a frame from an agent was refused: the label of `centossrv_frames_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    TooLarge,
    Malformed,
    Version,
}

impl RejectReason {
    pub const ALL: [RejectReason; 3] = [
        RejectReason::TooLarge,
        RejectReason::Malformed,
        RejectReason::Version,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed",
            RejectReason::Version => "version",
        }
    }
}

impl From<&FrameError> for RejectReason {
    fn from(error: &FrameError) -> RejectReason {
        match error {
            FrameError::TooLarge { .. } => RejectReason::TooLarge,
            FrameError::Malformed(_) => RejectReason::Malformed,
            FrameError::Version { .. } => RejectReason::Version,
        }
    }
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    connected_agents: Gauge,
    plan_duration: Histogram,
    apply_duration: Histogram,
    drift_events: Counter,
    queue_depth: Gauge,
    commits: Family<ResultLabel, Counter>,
    frames_rejected: Family<ReasonLabel, Counter>,
}

/// The reconciler's metrics; clones share one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let connected_agents = Gauge::default();
        registry.register(
            "centossrv_connected_agents",
            "Agents connected to this reconciler",
            connected_agents.clone(),
        );
        // 5 ms .. ~82 s
        let plan_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        registry.register(
            "centossrv_plan_duration_seconds",
            "Time to compile a commit and plan the fleet",
            plan_duration.clone(),
        );
        let apply_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "centossrv_apply_duration_seconds",
            "Round trip of one node's apply, dispatch to report",
            apply_duration.clone(),
        );
        let drift_events = Counter::default();
        registry.register(
            "centossrv_drift_events",
            "Drift events received from agents",
            drift_events.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "centossrv_engine_queue_depth",
            "Events waiting in the engine's queue",
            queue_depth.clone(),
        );
        let commits = Family::<ResultLabel, Counter>::default();
        for result in ["ok", "error"] {
            let _ = commits.get_or_create(&ResultLabel { result });
        }
        registry.register(
            "centossrv_commits",
            "Commits compiled, by result",
            commits.clone(),
        );
        let frames_rejected = Family::<ReasonLabel, Counter>::default();
        for reason in RejectReason::ALL {
            let _ = frames_rejected.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        registry.register(
            "centossrv_frames_rejected",
            "Frames from agents refused, by reason",
            frames_rejected.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                connected_agents,
                plan_duration,
                apply_duration,
                drift_events,
                queue_depth,
                commits,
                frames_rejected,
            }),
        }
    }

    pub fn agent_connected(&self) {
        self.inner.connected_agents.inc();
    }

    pub fn agent_disconnected(&self) {
        self.inner.connected_agents.dec();
    }

    pub fn set_connected_agents(&self, n: usize) {
        self.inner
            .connected_agents
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn observe_plan(&self, took: Duration) {
        self.inner.plan_duration.observe(took.as_secs_f64());
    }

    pub fn observe_apply(&self, took: Duration) {
        self.inner.apply_duration.observe(took.as_secs_f64());
    }

    pub fn drift_events(&self, n: u64) {
        self.inner.drift_events.inc_by(n);
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.inner
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn commit_compiled(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.inner
            .commits
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn frame_rejected(&self, reason: RejectReason) {
        self.inner
            .frames_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_encoded_with_its_values() {
        let m = Metrics::new();
        m.agent_connected();
        m.agent_connected();
        m.agent_disconnected();
        m.observe_plan(Duration::from_millis(20));
        m.observe_apply(Duration::from_secs(1));
        m.drift_events(3);
        m.set_queue_depth(7);
        m.commit_compiled(false);
        m.frame_rejected(RejectReason::from(&FrameError::Version { found: 9 }));
        let text = m.clone().encode();
        for line in [
            "centossrv_connected_agents 1",
            "centossrv_plan_duration_seconds_count 1",
            "centossrv_apply_duration_seconds_count 1",
            "centossrv_drift_events_total 3",
            "centossrv_engine_queue_depth 7",
            "centossrv_commits_total{result=\"error\"} 1",
            "centossrv_commits_total{result=\"ok\"} 0",
            "centossrv_frames_rejected_total{reason=\"version\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
