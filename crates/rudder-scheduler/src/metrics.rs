//! The scheduler's metrics, with upstream's names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::queue::Pending;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub result: String,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

pub struct SchedulerMetrics {
    pub schedule_attempts: Family<AttemptLabels, Counter>,
    pub attempt_duration: Family<AttemptLabels, Histogram>,
    pub pending_pods: Family<QueueLabels, Gauge>,
    pub bound_pods: Counter,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            schedule_attempts: Family::default(),
            // Upstream: exponential buckets from 1 ms, factor 2, 15 buckets.
            attempt_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            pending_pods: Family::default(),
            bound_pods: Counter::default(),
        }
    }
}

impl SchedulerMetrics {
    pub fn attempt(&self, profile: &str, result: &str, took: Duration) {
        let labels = AttemptLabels {
            result: result.into(),
            profile: profile.into(),
        };
        self.schedule_attempts.get_or_create(&labels).inc();
        self.attempt_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn bound(&self) {
        self.bound_pods.inc();
    }

    pub fn set_pending(&self, p: Pending) {
        for (q, n) in [
            ("active", p.active),
            ("backoff", p.backoff),
            ("unschedulable", p.unschedulable),
            ("gated", p.gated),
        ] {
            self.pending_pods
                .get_or_create(&QueueLabels { queue: q.into() })
                .set(n as i64);
        }
    }

    /// Registers every metric under upstream's names.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
            self.schedule_attempts.clone(),
        );
        r.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            self.attempt_duration.clone(),
        );
        r.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            self.pending_pods.clone(),
        );
        r.register(
            "scheduler_pods_bound",
            "Number of pods bound by this scheduler.",
            self.bound_pods.clone(),
        );
    }
}
