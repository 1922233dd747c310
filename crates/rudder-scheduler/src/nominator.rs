//! Pods nominated to a node by preemption and not bound yet (upstream's `PodNominator`): later
//! cycles count them on their node as if they were there, when they are at least as important
//! as the pod being scheduled, so the room preemption made is not taken by a lesser pod.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::nodeinfo::PodInfo;

/// Nominations and preemptions under way, as one cycle sees them.
#[derive(Clone, Default)]
pub struct NominatedPods {
    /// Nominated pods by node name.
    pub by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    /// uid → node: also nominations whose status patch has not come back yet.
    pub node_of: HashMap<String, String>,
    /// Victims whose eviction this scheduler started and that are not gone yet: they count
    /// as terminating by preemption even before their deletion shows in the cache.
    pub evicting: HashSet<String>,
}

impl NominatedPods {
    pub fn on_node(&self, node: &str) -> &[Arc<PodInfo>] {
        self.by_node.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[derive(Default)]
pub struct Nominator {
    state: NominatedPods,
}

impl Nominator {
    /// Records an unassigned pod's `status.nominatedNodeName`. An update without one keeps a
    /// nomination made in memory whose status patch has not come back yet (upstream's
    /// `updateNominatedPodUnlocked`), unless the stored pod had one (then it was removed).
    pub fn update(&mut self, pod: &Arc<PodInfo>) {
        let node = nominated_node_name(pod);
        let node = if node.is_empty() {
            let Some(current) = self.state.node_of.get(&pod.uid).cloned() else {
                return;
            };
            let recorded = self
                .state
                .by_node
                .get(&current)
                .and_then(|v| v.iter().find(|p| p.uid == pod.uid))
                .is_some_and(|p| !nominated_node_name(p).is_empty());
            if recorded {
                self.remove(&pod.uid);
                return;
            }
            current
        } else {
            node.to_string()
        };
        self.nominate(pod, &node);
    }

    /// Nominates a pod on `node` right away (the status patch that records it comes back
    /// through the watch later).
    pub fn nominate(&mut self, pod: &Arc<PodInfo>, node: &str) {
        self.remove(&pod.uid);
        if node.is_empty() {
            return;
        }
        self.state
            .by_node
            .entry(node.to_string())
            .or_default()
            .push(pod.clone());
        self.state.node_of.insert(pod.uid.clone(), node.to_string());
    }

    /// Drops a pod's nomination.
    pub fn remove(&mut self, uid: &str) {
        let Some(node) = self.state.node_of.remove(uid) else {
            return;
        };
        if let Some(pods) = self.state.by_node.get_mut(&node) {
            pods.retain(|p| p.uid != uid);
            if pods.is_empty() {
                self.state.by_node.remove(&node);
            }
        }
    }

    /// A pod is gone: it is neither nominated nor being evicted any more.
    pub fn forget(&mut self, uid: &str) {
        self.remove(uid);
        self.state.evicting.remove(uid);
    }

    pub fn evicting(&mut self, uid: &str) {
        self.state.evicting.insert(uid.to_string());
    }

    /// A copy for one cycle (empty, and free, in the common case of no preemption).
    pub fn snapshot(&self) -> NominatedPods {
        self.state.clone()
    }
}

fn nominated_node_name(pod: &PodInfo) -> &str {
    pod.pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(nominated: &str) -> Arc<PodInfo> {
        let mut v = json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"containers": []}});
        if !nominated.is_empty() {
            v["status"] = json!({"nominatedNodeName": nominated});
        }
        Arc::new(PodInfo::new(Arc::new(serde_json::from_value(v).unwrap())))
    }

    #[test]
    fn in_memory_nomination_survives_updates_until_the_status_drops_it() {
        let mut n = Nominator::default();
        n.nominate(&pod(""), "n1");
        // An update without the field (the patch is not back yet) keeps it.
        n.update(&pod(""));
        assert_eq!(n.snapshot().on_node("n1").len(), 1);
        // The patch comes back, then a status without it: dropped.
        n.update(&pod("n1"));
        n.update(&pod(""));
        assert!(n.snapshot().on_node("n1").is_empty());
        n.update(&pod("n2"));
        assert_eq!(
            n.snapshot().node_of.get("u").map(String::as_str),
            Some("n2")
        );
        n.evicting("v");
        n.forget("v");
        assert!(n.snapshot().evicting.is_empty());
    }
}
