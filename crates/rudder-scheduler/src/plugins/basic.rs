//! The small plugins: SchedulingGates, PrioritySort, NodeName, NodeUnschedulable, NodePorts,
//! TaintToleration and ImageLocality, each as upstream's of the same name.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::*;
use crate::nodeinfo::{host_ports, port_conflicts, NodeInfo, PodInfo, Snapshot};

// ---------- SchedulingGates ----------

pub struct SchedulingGates;

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        "SchedulingGates"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreEnqueue]
    }
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        let gates: Vec<&str> = pod
            .spec()
            .and_then(|s| s.scheduling_gates.as_ref())
            .map(|g| g.iter().map(|g| g.name.as_str()).collect())
            .unwrap_or_default();
        if gates.is_empty() {
            return Status::success();
        }
        // Go's %v of a []string.
        Status::new(
            Code::UnschedulableAndUnresolvable,
            format!("waiting for scheduling gates: [{}]", gates.join(" ")),
        )
    }
}

// ---------- PrioritySort ----------

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        "PrioritySort"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::QueueSort]
    }
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        let (pa, pb) = (a.pod_info.priority, b.pod_info.priority);
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

// ---------- NodeName ----------

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(EventResource::Node, &[ActionType::Add])]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.spec().and_then(|s| s.node_name.as_deref()) {
            Some(n) if !n.is_empty() && n != node.name() => Status::new(
                Code::UnschedulableAndUnresolvable,
                "node(s) didn't match the requested node name",
            ),
            _ => Status::success(),
        }
    }
}

// ---------- NodeUnschedulable ----------

pub struct NodeUnschedulable;

/// Upstream's `v1.TaintNodeUnschedulable`.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(EventResource::Node, ADD_UPDATE)]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let unschedulable = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerations(pod).iter().any(|t| tolerates(t, &taint)) {
            return Status::success();
        }
        Status::new(
            Code::UnschedulableAndUnresolvable,
            "node(s) were unschedulable",
        )
    }
}

// ---------- NodePorts ----------

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::AssignedPod, DELETE),
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
        ]
    }
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let ports = host_ports(&pod.pod);
        if ports.is_empty() {
            return (None, Status::skip());
        }
        state.write("NodePorts", ports);
        (None, Status::success())
    }
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(want) = state.read::<Vec<crate::nodeinfo::HostPort>>("NodePorts") else {
            return Status::success();
        };
        if want.iter().any(|w| port_conflicts(&node.used_ports, w)) {
            return Status::new(
                Code::Unschedulable,
                "node(s) didn't have free ports for the requested pod ports",
            );
        }
        Status::success()
    }
}

// ---------- TaintToleration ----------

pub struct TaintToleration;

pub fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.spec()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    rudder_api::selector::node::tolerates(t, taint)
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::Filter, Point::PreScore, Point::Score]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
            ClusterEvent::new(EventResource::Pod, &[ActionType::Update]),
        ]
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        for taint in taints(node) {
            if taint.effect != "NoSchedule" && taint.effect != "NoExecute" {
                continue;
            }
            if !tols.iter().any(|t| tolerates(t, taint)) {
                return Status::new(
                    Code::UnschedulableAndUnresolvable,
                    format!(
                        "node(s) had untolerated taint {{{}: {}}}",
                        taint.key,
                        taint.value.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        Status::success()
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        // Tolerations that can tolerate PreferNoSchedule (no effect or that effect).
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        let n = taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count();
        (n as i64, Status::success())
    }
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

// ---------- ImageLocality ----------

pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Upstream's `normalizedImageName`: an image without tag or digest means `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreScore, Point::Score]
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        state.write(
            "ImageLocality",
            (snapshot.len(), snapshot.image_counts.clone()),
        );
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        type Counts = (usize, Arc<std::collections::HashMap<String, usize>>);
        let Some((total, counts)) = state.read::<Counts>("ImageLocality") else {
            return (0, Status::success());
        };
        let total = (*total).max(1);
        let Some(spec) = pod.spec() else {
            return (0, Status::success());
        };
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let mut sum: i64 = 0;
        let mut n = 0i64;
        for c in containers {
            n += 1;
            let Some(image) = c.image.as_deref() else {
                continue;
            };
            let want = normalized_image_name(image);
            if let Some(size) = node.images.get(&want) {
                let nodes = counts.get(&want).copied().unwrap_or(1);
                sum += (*size as f64 * (nodes as f64 / total as f64)) as i64;
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * n.max(1);
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        (
            MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD),
            Status::success(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodInfo {
        PodInfo::new(Arc::new(serde_json::from_value(v).unwrap()))
    }
    fn node(v: serde_json::Value) -> NodeInfo {
        NodeInfo::new(Arc::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn gates_block_with_upstream_message() {
        let p = pod(
            json!({"spec": {"containers": [], "schedulingGates": [{"name": "a"}, {"name": "b"}]}}),
        );
        let s = SchedulingGates.pre_enqueue(&p);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "waiting for scheduling gates: [a b]");
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let t = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(&t(json!({"key": "k", "value": "v"})), &taint));
        assert!(tolerates(
            &t(json!({"key": "k", "operator": "Exists"})),
            &taint
        ));
        assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
        assert!(!tolerates(&t(json!({"key": "k", "value": "w"})), &taint));
        assert!(!tolerates(
            &t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &taint
        ));
    }

    #[test]
    fn untolerated_taint_message() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}));
        let p = pod(json!({"spec": {"containers": []}}));
        let s = TaintToleration.filter(&CycleState::default(), &p, &n);
        assert_eq!(
            s.message(),
            "node(s) had untolerated taint {dedicated: gpu}"
        );
        let (score, _) = TaintToleration.score(&CycleState::default(), &p, &n);
        assert_eq!(score, 1);
    }

    #[test]
    fn taint_scores_normalize_in_reverse() {
        let mut s = vec![
            NodeScore {
                name: "a".into(),
                score: 0,
            },
            NodeScore {
                name: "b".into(),
                score: 2,
            },
            NodeScore {
                name: "c".into(),
                score: 1,
            },
        ];
        TaintToleration.normalize_score(&CycleState::default(), &pod(json!({})), &mut s);
        assert_eq!(
            s.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![100, 0, 50]
        );
    }

    #[test]
    fn host_port_conflicts() {
        let mut n = node(json!({"metadata": {"name": "n"}}));
        n.add_pod(Arc::new(pod(
            json!({"metadata": {"name": "a", "uid": "1"}, "spec": {"containers": [
            {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        )));
        let p = pod(
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]}]}}),
        );
        let mut st = CycleState::default();
        let (_, s) = NodePorts.pre_filter(&mut st, &p, &Snapshot::default());
        assert!(s.is_success());
        assert_eq!(
            NodePorts.filter(&st, &p, &n).message(),
            "node(s) didn't have free ports for the requested pod ports"
        );
        let udp = pod(
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}]}}),
        );
        let mut st = CycleState::default();
        NodePorts.pre_filter(&mut st, &udp, &Snapshot::default());
        assert!(NodePorts.filter(&st, &udp, &n).is_success());
    }

    #[test]
    fn unschedulable_nodes_unless_tolerated() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        let p = pod(json!({"spec": {"containers": []}}));
        assert_eq!(
            NodeUnschedulable
                .filter(&CycleState::default(), &p, &n)
                .message(),
            "node(s) were unschedulable"
        );
        let tol = pod(json!({"spec": {"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}));
        assert!(NodeUnschedulable
            .filter(&CycleState::default(), &tol, &n)
            .is_success());
    }

    #[test]
    fn image_names_normalize() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.2"), "nginx:1.2");
        assert_eq!(
            normalized_image_name("reg:5000/nginx"),
            "reg:5000/nginx:latest"
        );
        assert_eq!(normalized_image_name("a@sha256:00"), "a@sha256:00");
    }
}
