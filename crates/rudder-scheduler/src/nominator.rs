//! Pods nominated to a node by preemption and not bound yet (upstream's `PodNominator`): later
//! cycles count them on their node as if they were there, when they are at least as important
//! as the pod being scheduled, so the room preemption made is not taken by a lesser pod.

use std::collections::HashMap;
use std::sync::Arc;

use crate::nodeinfo::PodInfo;

/// Nominated pods by node name, as one cycle sees them.
pub type NominatedPods = HashMap<String, Vec<Arc<PodInfo>>>;

#[derive(Default)]
pub struct Nominator {
    by_node: NominatedPods,
    /// uid → node, to move or drop a pod's nomination.
    node_of: HashMap<String, String>,
}

impl Nominator {
    /// Records an unassigned pod's `status.nominatedNodeName` (or drops it when unset).
    pub fn update(&mut self, pod: &Arc<PodInfo>) {
        self.remove(&pod.uid);
        let node = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or("");
        if node.is_empty() {
            return;
        }
        self.by_node
            .entry(node.to_string())
            .or_default()
            .push(pod.clone());
        self.node_of.insert(pod.uid.clone(), node.to_string());
    }

    /// Nominates a pod on `node` right away (the status patch that records it comes back
    /// through the watch later).
    pub fn nominate(&mut self, pod: &Arc<PodInfo>, node: &str) {
        self.remove(&pod.uid);
        if node.is_empty() {
            return;
        }
        self.by_node
            .entry(node.to_string())
            .or_default()
            .push(pod.clone());
        self.node_of.insert(pod.uid.clone(), node.to_string());
    }

    pub fn remove(&mut self, uid: &str) {
        let Some(node) = self.node_of.remove(uid) else {
            return;
        };
        if let Some(pods) = self.by_node.get_mut(&node) {
            pods.retain(|p| p.uid != uid);
            if pods.is_empty() {
                self.by_node.remove(&node);
            }
        }
    }

    /// A copy for one cycle (empty, and free, in the common case of no preemption).
    pub fn snapshot(&self) -> NominatedPods {
        self.by_node.clone()
    }
}
