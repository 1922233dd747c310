//! NodeResourcesFit (filter on requests, score by a strategy) and
//! NodeResourcesBalancedAllocation, as upstream's `noderesources` package.

use serde::Deserialize;

use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};
use crate::resource::{is_scalar, Resource};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: "cpu".into(),
            weight: 1,
        },
        ResourceSpec {
            name: "memory".into(),
            weight: 1,
        },
    ]
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UtilizationShapePoint {
    pub utilization: i64,
    pub score: i64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedToCapacityRatioParam {
    #[serde(default)]
    pub shape: Vec<UtilizationShapePoint>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    #[serde(rename = "type", default = "least")]
    pub kind: String,
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

fn least() -> String {
    "LeastAllocated".into()
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            kind: least(),
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FitArgs {
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl FitArgs {
    /// Upstream's `ValidateNodeResourcesFitArgs`, with its messages.
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let s = &self.scoring_strategy;
        match s.kind.as_str() {
            "LeastAllocated" | "MostAllocated" => {}
            "RequestedToCapacityRatio" => {
                let shape = s
                    .requested_to_capacity_ratio
                    .as_ref()
                    .map(|r| r.shape.as_slice())
                    .unwrap_or(&[]);
                if shape.is_empty() {
                    return Err(format!(
                        "{path}.scoringStrategy.requestedToCapacityRatio.shape: Required value: at least one point must be specified"
                    ));
                }
                for (i, p) in shape.iter().enumerate() {
                    if !(0..=100).contains(&p.utilization) {
                        return Err(format!("{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: Invalid value: {}: not in valid range [0, 100]", p.utilization));
                    }
                    if !(0..=10).contains(&p.score) {
                        return Err(format!("{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].score: Invalid value: {}: not in valid range [0, 10]", p.score));
                    }
                    if i > 0 && shape[i - 1].utilization >= p.utilization {
                        return Err(format!("{path}.scoringStrategy.requestedToCapacityRatio.shape[{i}].utilization: Invalid value: {}: utilization values must be sorted in increasing order", p.utilization));
                    }
                }
            }
            other => {
                return Err(format!(
                    "{path}.scoringStrategy.type: Unsupported value: \"{other}\": supported values: \"LeastAllocated\", \"MostAllocated\", \"RequestedToCapacityRatio\""
                ))
            }
        }
        for (i, r) in s.resources.iter().enumerate() {
            if !(1..=100).contains(&r.weight) {
                return Err(format!(
                    "{path}.scoringStrategy.resources[{i}].weight: Invalid value: {}: resource weight of {} not in valid range [1, 100]",
                    r.weight, r.name
                ));
            }
        }
        Ok(())
    }
}

pub struct NodeResourcesFit {
    pub args: FitArgs,
}

#[derive(Clone)]
struct FitState {
    requests: Resource,
}

fn pod_request_for(pod: &PodInfo, name: &str, non_zero: bool) -> i64 {
    if non_zero {
        pod.non_zero_requests.get(name)
    } else {
        pod.requests.get(name)
    }
}

/// (allocatable, requested-after-placing-the-pod) of one resource on a node; `None` when the
/// resource is skipped (upstream skips extended resources the pod does not request and
/// resources the node has none of).
fn allocatable_and_requested(
    node: &NodeInfo,
    pod: &PodInfo,
    name: &str,
    use_requested: bool,
) -> Option<(i64, i64)> {
    let pod_req = pod_request_for(pod, name, !use_requested);
    if pod_req == 0 && is_scalar(name) {
        return None;
    }
    let node_req = if use_requested || is_scalar(name) || name == "ephemeral-storage" {
        node.requested.get(name)
    } else {
        node.non_zero_requested.get(name)
    };
    let alloc = node.allocatable.get(name);
    if alloc == 0 {
        return None;
    }
    Some((alloc, node_req + pod_req))
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// Upstream's piecewise-linear `buildBrokenLinearFunction` over a shape scaled to
/// [0, MaxNodeScore].
fn broken_linear(shape: &[UtilizationShapePoint], p: i64) -> i64 {
    let scaled: Vec<(i64, i64)> = shape
        .iter()
        .map(|s| (s.utilization, s.score * (MAX_NODE_SCORE / 10)))
        .collect();
    for i in 0..scaled.len() {
        if p <= scaled[i].0 {
            if i == 0 {
                return scaled[0].1;
            }
            let (u0, s0) = scaled[i - 1];
            let (u1, s1) = scaled[i];
            return s0 + (s1 - s0) * (p - u0) / (u1 - u0);
        }
    }
    scaled.last().map_or(0, |s| s.1)
}

impl NodeResourcesFit {
    fn fits(&self, req: &Resource, node: &NodeInfo) -> (Vec<String>, bool) {
        let mut reasons = Vec::new();
        let mut unresolvable = false;
        if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
            reasons.push("Too many pods".to_string());
        }
        if req.is_zero() {
            return (reasons, unresolvable);
        }
        let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
            if want > 0 && want > alloc - used {
                reasons.push(format!("Insufficient {name}"));
                if want > alloc {
                    unresolvable = true;
                }
            }
        };
        check(
            "cpu",
            req.milli_cpu,
            node.allocatable.milli_cpu,
            node.requested.milli_cpu,
        );
        check(
            "memory",
            req.memory,
            node.allocatable.memory,
            node.requested.memory,
        );
        check(
            "ephemeral-storage",
            req.ephemeral_storage,
            node.allocatable.ephemeral_storage,
            node.requested.ephemeral_storage,
        );
        for (name, want) in &req.scalar {
            if *want == 0 || self.ignored(name) {
                continue;
            }
            check(
                name,
                *want,
                node.allocatable.get(name),
                node.requested.get(name),
            );
        }
        (reasons, unresolvable)
    }

    fn ignored(&self, name: &str) -> bool {
        if self.args.ignored_resources.iter().any(|r| r == name) {
            return true;
        }
        let group = name.split('/').next().unwrap_or("");
        name.contains('/') && self.args.ignored_resource_groups.iter().any(|g| g == group)
    }
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn points(&self) -> &'static [Point] {
        &[
            Point::PreFilter,
            Point::Filter,
            Point::PreScore,
            Point::Score,
        ]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(
                EventResource::AssignedPod,
                &[ActionType::Delete, ActionType::Update],
            ),
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
            ClusterEvent::new(EventResource::Pod, &[ActionType::Update]),
        ]
    }
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        state.write(
            "NodeResourcesFit",
            FitState {
                requests: pod.requests.clone(),
            },
        );
        (None, Status::success())
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let req = state
            .read::<FitState>("NodeResourcesFit")
            .map_or(&pod.requests, |s| &s.requests);
        let (reasons, unresolvable) = self.fits(req, node);
        if reasons.is_empty() {
            return Status::success();
        }
        let code = if unresolvable {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Status::with_reasons(code, reasons)
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let s = &self.args.scoring_strategy;
        let mut total = 0i64;
        let mut weights = 0i64;
        for r in &s.resources {
            let Some((alloc, req)) = allocatable_and_requested(node, pod, &r.name, false) else {
                continue;
            };
            let score = match s.kind.as_str() {
                "MostAllocated" => most_requested(req, alloc),
                "RequestedToCapacityRatio" => {
                    let shape = s
                        .requested_to_capacity_ratio
                        .as_ref()
                        .map(|p| p.shape.as_slice())
                        .unwrap_or(&[]);
                    let utilization = if req > alloc { 100 } else { req * 100 / alloc };
                    broken_linear(shape, utilization)
                }
                _ => least_requested(req, alloc),
            };
            total += score * r.weight;
            weights += r.weight;
        }
        if weights == 0 {
            return (0, Status::success());
        }
        (total / weights, Status::success())
    }
}

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BalancedArgs {
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl Default for BalancedArgs {
    fn default() -> Self {
        BalancedArgs {
            resources: default_resources(),
            api_version: None,
            kind: None,
        }
    }
}

pub struct BalancedAllocation {
    pub args: BalancedArgs,
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreScore, Point::Score]
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let mut fractions = Vec::new();
        for r in &self.args.resources {
            let Some((alloc, req)) = allocatable_and_requested(node, pod, &r.name, true) else {
                continue;
            };
            fractions.push((req as f64 / alloc as f64).min(1.0));
        }
        let std = match fractions.len() {
            0 | 1 => 0.0,
            2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
            n => {
                let mean = fractions.iter().sum::<f64>() / n as f64;
                (fractions
                    .iter()
                    .map(|f| (f - mean) * (f - mean))
                    .sum::<f64>()
                    / n as f64)
                    .sqrt()
            }
        };
        (
            ((1.0 - std) * MAX_NODE_SCORE as f64) as i64,
            Status::success(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(cpu: &str, mem: &str) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p", "uid": format!("{cpu}{mem}")},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}))
            .unwrap(),
        ))
    }

    fn node(cpu: &str, mem: &str, pods: &str) -> NodeInfo {
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": pods}}}))
            .unwrap(),
        ))
    }

    fn fit() -> NodeResourcesFit {
        NodeResourcesFit {
            args: FitArgs::default(),
        }
    }

    #[test]
    fn insufficient_resources_are_all_reported() {
        let mut n = node("1", "1Gi", "110");
        n.add_pod(Arc::new(pod("800m", "900Mi")));
        let p = pod("500m", "200Mi");
        let s = fit().filter(&CycleState::default(), &p, &n);
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        // More than the node has at all: preemption cannot help.
        let huge = pod("2", "1Mi");
        assert_eq!(
            fit().filter(&CycleState::default(), &huge, &n).code,
            Code::UnschedulableAndUnresolvable
        );
    }

    #[test]
    fn pod_count_is_checked_even_without_requests() {
        let mut n = node("4", "4Gi", "1");
        n.add_pod(Arc::new(pod("0", "0")));
        let p = PodInfo::new(Arc::new(
            serde_json::from_value(json!({"spec": {"containers": [{"name": "c"}]}})).unwrap(),
        ));
        assert_eq!(
            fit().filter(&CycleState::default(), &p, &n).reasons,
            vec!["Too many pods"]
        );
    }

    #[test]
    fn least_allocated_scores_as_upstream() {
        // Upstream's test: node 4000m/10000, pod 3000m/5000 on an empty node:
        // cpu (4000-3000)*100/4000 = 25, memory (10000-5000)*100/10000 = 50 → 37.
        let n = node("4", "10000", "110");
        let p = pod("3", "5000");
        assert_eq!(fit().score(&CycleState::default(), &p, &n).0, 37);
    }

    #[test]
    fn most_allocated_and_ratio() {
        let n = node("4", "10000", "110");
        let p = pod("3", "5000");
        let most = NodeResourcesFit {
            args: FitArgs {
                scoring_strategy: ScoringStrategy {
                    kind: "MostAllocated".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        // cpu 75, memory 50 → 62.
        assert_eq!(most.score(&CycleState::default(), &p, &n).0, 62);
        let ratio = NodeResourcesFit {
            args: FitArgs {
                scoring_strategy: ScoringStrategy {
                    kind: "RequestedToCapacityRatio".into(),
                    requested_to_capacity_ratio: Some(RequestedToCapacityRatioParam {
                        shape: vec![
                            UtilizationShapePoint {
                                utilization: 0,
                                score: 10,
                            },
                            UtilizationShapePoint {
                                utilization: 100,
                                score: 0,
                            },
                        ],
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        // Like least allocated with this shape: cpu 25, memory 50 → 37.
        assert_eq!(ratio.score(&CycleState::default(), &p, &n).0, 37);
    }

    #[test]
    fn balanced_allocation() {
        let n = node("4", "10000", "110");
        let p = pod("3", "5000");
        // fractions 0.75 and 0.5: std 0.125 → 87.
        let b = BalancedAllocation {
            args: BalancedArgs::default(),
        };
        assert_eq!(b.score(&CycleState::default(), &p, &n).0, 87);
    }

    #[test]
    fn args_validation_names_the_field() {
        let mut a = FitArgs::default();
        a.scoring_strategy.kind = "Bogus".into();
        let e = a.validate("profiles[0].pluginConfig[0].args").unwrap_err();
        assert!(e.starts_with("profiles[0].pluginConfig[0].args.scoringStrategy.type: Unsupported value: \"Bogus\""), "{e}");
    }
}
