//! Per-type strategies: upstream's `pkg/registry/<group>/<resource>/strategy.go`, one module
//! per kind that behaves differently from the generic default.

mod events;
mod namespace;

use std::sync::Arc;

use rudder_api::resources::ResourceInfo;
use rudder_registry::{DefaultStrategy, Strategy};

/// Kinds whose `metadata.generation` upstream maintains (they have a spec users change).
const GENERATION_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "CustomResourceDefinition",
    "Pod",
];

/// The strategy of a built-in resource.
pub fn strategy_for(info: &ResourceInfo) -> Arc<dyn Strategy> {
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => Arc::new(namespace::NamespaceStrategy),
        ("", "Event") => Arc::new(events::CoreEventStrategy),
        ("events.k8s.io", "Event") => Arc::new(events::EventsV1Strategy),
        (_, kind) => Arc::new(DefaultStrategy {
            tracks_generation: GENERATION_KINDS.contains(&kind),
        }),
    }
}
