//! NodeAffinity: `nodeSelector`, required and preferred node affinity terms (every operator,
//! `matchFields` on `metadata.name`), and the scheduler-enforced `addedAffinity`, as upstream.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{
    NodeAffinity as NodeAffinitySpec, NodeSelector, NodeSelectorTerm, PreferredSchedulingTerm,
};
use serde::Deserialize;

use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";

/// `NodeAffinityArgs`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinityArgs {
    #[serde(default)]
    pub added_affinity: Option<NodeAffinitySpec>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

pub struct NodeAffinity {
    pub args: NodeAffinityArgs,
}

/// A term matches when all its expressions and fields do; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    rudder_api::selector::node::term_matches(term, node.labels(), node.name())
}

/// Terms are ORed.
pub fn selector_matches(sel: &NodeSelector, node: &NodeInfo) -> bool {
    rudder_api::selector::node::selector_matches(sel, node.labels(), node.name())
}

/// Whether the pod's `nodeSelector` and required node affinity accept the node (upstream's
/// `RequiredNodeAffinity.Match`, also used by other plugins' node inclusion policies).
pub fn pod_matches_node_selector_and_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec() else { return true };
    if let Some(sel) = spec.node_selector.as_ref() {
        let labels = node.labels();
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    match required(pod) {
        Some(req) => selector_matches(req, node),
        None => true,
    }
}

fn required(pod: &PodInfo) -> Option<&NodeSelector> {
    pod.spec()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
}

fn preferred(pod: &PodInfo) -> &[PreferredSchedulingTerm] {
    pod.spec()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or(&[])
}

/// The node names a required affinity restricts the pod to through `matchFields`
/// `metadata.name In`, when every term does so (upstream's PreFilterResult).
fn node_names(sel: &NodeSelector) -> Option<HashSet<String>> {
    let mut out = HashSet::new();
    for term in &sel.node_selector_terms {
        let mut names: Option<HashSet<String>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let set: HashSet<String> = r.values.iter().flatten().cloned().collect();
                names = Some(match names {
                    None => set,
                    Some(prev) => prev.intersection(&set).cloned().collect(),
                });
            }
        }
        out.extend(names?);
    }
    Some(out)
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
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
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
            ClusterEvent::new(EventResource::Pod, &[ActionType::Update]),
        ]
    }
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let has_selector = pod
            .spec()
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let req = required(pod);
        if !has_selector && req.is_none() && self.args.added_affinity.is_none() {
            return (None, Status::skip());
        }
        let names = req.and_then(node_names);
        if names.as_ref().is_some_and(|n| n.is_empty()) {
            return (
                None,
                Status::new(
                    Code::UnschedulableAndUnresolvable,
                    "node(s) didn't match Pod's node affinity/selector",
                ),
            );
        }
        (names, Status::success())
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if let Some(added) = self.args.added_affinity.as_ref().and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
            if !selector_matches(added, node) {
                return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_ENFORCED);
            }
        }
        if !pod_matches_node_selector_and_affinity(pod, node) {
            return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_POD);
        }
        Status::success()
    }
    fn pre_score(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[std::sync::Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let added = self
            .args
            .added_affinity
            .as_ref()
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|p| !p.is_empty());
        if preferred(pod).is_empty() && !added {
            return Status::skip();
        }
        Status::success()
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let added = self
            .args
            .added_affinity
            .as_ref()
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or(&[]);
        let score = preferred(pod)
            .iter()
            .chain(added)
            .filter(|t| t.weight != 0 && term_matches(&t.preference, node))
            .map(|t| i64::from(t.weight))
            .sum();
        (score, Status::success())
    }
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(spec: serde_json::Value) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({"spec": spec})).unwrap(),
        ))
    }
    fn node(name: &str, labels: serde_json::Value) -> NodeInfo {
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        ))
    }
    fn plugin() -> NodeAffinity {
        NodeAffinity {
            args: NodeAffinityArgs::default(),
        }
    }
    fn fits(p: &PodInfo, n: &NodeInfo) -> bool {
        plugin().filter(&CycleState::default(), p, n).is_success()
    }

    #[test]
    fn node_selector() {
        let p = pod(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert!(fits(&p, &node("a", json!({"disk": "ssd", "x": "y"}))));
        let s = plugin().filter(
            &CycleState::default(),
            &p,
            &node("b", json!({"disk": "hdd"})),
        );
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_POD);
    }

    #[test]
    fn operators() {
        let req = |op: &str, values: serde_json::Value| {
            pod(
                json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": op, "values": values}]}]}}}}),
            )
        };
        let n5 = node("a", json!({"k": "5"}));
        let none = node("b", json!({}));
        assert!(fits(&req("In", json!(["5", "6"])), &n5));
        assert!(!fits(&req("In", json!(["6"])), &n5));
        assert!(fits(&req("NotIn", json!(["6"])), &n5));
        assert!(fits(&req("NotIn", json!(["6"])), &none));
        assert!(fits(&req("Exists", json!(null)), &n5));
        assert!(!fits(&req("Exists", json!(null)), &none));
        assert!(fits(&req("DoesNotExist", json!(null)), &none));
        assert!(fits(&req("Gt", json!(["4"])), &n5));
        assert!(!fits(&req("Gt", json!(["5"])), &n5));
        assert!(fits(&req("Lt", json!(["6"])), &n5));
        assert!(!fits(&req("Lt", json!(["6"])), &none));
    }

    #[test]
    fn terms_are_ored_and_match_fields_narrow_nodes() {
        let p = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}
            ]}}}}),
        );
        assert!(fits(&p, &node("x", json!({"zone": "z1"}))));
        assert!(fits(&p, &node("special", json!({}))));
        assert!(!fits(&p, &node("y", json!({"zone": "z2"}))));
        // The first term is not a name restriction, so PreFilter cannot narrow.
        let (r, _) = plugin().pre_filter(&mut CycleState::default(), &p, &Snapshot::default());
        assert!(r.is_none());
        let only = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}}),
        );
        let (r, _) = plugin().pre_filter(&mut CycleState::default(), &only, &Snapshot::default());
        assert_eq!(r.unwrap().len(), 2);
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let p = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "b", "operator": "Exists"}]}}
            ]}}}),
        );
        let pl = plugin();
        let st = CycleState::default();
        let mut scores: Vec<NodeScore> = [
            ("n1", json!({"a": ""})),
            ("n2", json!({"a": "", "b": ""})),
            ("n3", json!({})),
        ]
        .into_iter()
        .map(|(n, l)| NodeScore {
            name: n.into(),
            score: pl.score(&st, &p, &node(n, l)).0,
        })
        .collect();
        pl.normalize_score(&st, &p, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            vec![28, 100, 0]
        );
    }
}
