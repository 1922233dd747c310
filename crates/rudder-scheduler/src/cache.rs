//! The scheduler's cache (upstream's `internal/cache`): nodes and the pods on them, including
//! pods *assumed* on a node between the scheduling decision and the API confirming the binding,
//! so the next cycle already counts them. The per-cycle snapshot is updated incrementally: only
//! nodes that changed since the last one are copied.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

struct PodState {
    info: Arc<PodInfo>,
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    /// Every node name with pods or a Node object; `real` says which have the object.
    nodes: HashMap<String, Arc<NodeInfo>>,
    real: HashSet<String>,
    pods: HashMap<String, PodState>,
    image_counts: HashMap<String, usize>,
    generation: u64,
    /// Nodes changed since the last snapshot; `None` after an add or removal (rebuild).
    dirty: Option<HashSet<String>>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache {
            dirty: None,
            ..Default::default()
        }
    }

    fn touch(&mut self, name: &str) {
        if let Some(d) = self.dirty.as_mut() {
            d.insert(name.to_string());
        }
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        self.generation += 1;
        let generation = self.generation;
        self.touch(name);
        let entry = self.nodes.entry(name.to_string()).or_insert_with(|| {
            let mut placeholder = Node::default();
            placeholder.metadata.name = Some(name.to_string());
            Arc::new(NodeInfo::new(Arc::new(placeholder)))
        });
        let ni = Arc::make_mut(entry);
        ni.generation = generation;
        ni
    }

    fn count_images(&mut self, images: &HashMap<String, i64>, add: bool) {
        for name in images.keys() {
            let c = self.image_counts.entry(name.clone()).or_default();
            if add {
                *c += 1;
            } else {
                *c = c.saturating_sub(1);
            }
        }
    }

    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if self.real.insert(name.clone()) {
            self.dirty = None;
        } else if let Some(old) = self.nodes.get(&name).map(|n| n.images.clone()) {
            self.count_images(&old, false);
        }
        let ni = self.node_mut(&name);
        ni.set_node(node);
        let images = ni.images.clone();
        self.count_images(&images, true);
    }

    pub fn remove_node(&mut self, name: &str) {
        if !self.real.remove(name) {
            return;
        }
        self.dirty = None;
        if let Some(old) = self.nodes.get(name).map(|n| n.images.clone()) {
            self.count_images(&old, false);
        }
        // Pods still bound to it keep a placeholder until they go (upstream keeps the NodeInfo).
        if self.nodes.get(name).is_some_and(|n| n.pods.is_empty()) {
            self.nodes.remove(name);
        }
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// The scheduling decision, before the binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        self.node_mut(node).add_pod(pod.clone());
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                info: pod,
                node: node.to_string(),
                assumed: true,
            },
        );
    }

    /// The binding failed: take the assumed pod off its node.
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// A pod the API says is on `node` (confirms an assumed one).
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        if let Some(state) = self.pods.get(&pod.uid) {
            if state.node == node && state.assumed {
                // Confirmed where we put it: swap in the API's copy.
                let uid = pod.uid.clone();
                let ni = self.node_mut(node);
                ni.remove_pod(&uid);
                ni.add_pod(pod.clone());
                self.pods.insert(
                    uid,
                    PodState {
                        info: pod,
                        node: node.to_string(),
                        assumed: false,
                    },
                );
                return;
            }
            if state.node == node
                && state.info.requests == pod.requests
                && state.info.pod.metadata.labels == pod.pod.metadata.labels
                && state.info.pod.spec == pod.pod.spec
            {
                // Only the status moved: nothing the scheduler reads changed.
                return;
            }
        }
        self.remove_pod(&pod.uid);
        self.node_mut(node).add_pod(pod.clone());
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                info: pod,
                node: node.to_string(),
                assumed: false,
            },
        );
    }

    pub fn remove_pod(&mut self, uid: &str) {
        let Some(state) = self.pods.remove(uid) else {
            return;
        };
        let node = state.node;
        self.node_mut(&node).remove_pod(uid);
        let orphan =
            !self.real.contains(&node) && self.nodes.get(&node).is_some_and(|n| n.pods.is_empty());
        if orphan {
            self.nodes.remove(&node);
        }
    }

    /// Pod UIDs the cache holds as bound or assumed (for reconciling after a re-list).
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.real.iter().cloned().collect()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Brings `snap` up to date: only changed nodes are copied unless nodes came or went.
    pub fn update_snapshot(&mut self, snap: &mut Snapshot) {
        match self.dirty.take() {
            Some(dirty) => {
                for name in &dirty {
                    if let (Some(i), Some(ni)) = (snap.index.get(name), self.nodes.get(name)) {
                        snap.nodes[*i] = ni.clone();
                    }
                }
            }
            None => {
                let mut names: Vec<&String> = self.real.iter().collect();
                names.sort();
                snap.nodes = names
                    .iter()
                    .filter_map(|n| self.nodes.get(*n).cloned())
                    .collect();
                snap.index = snap
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.name().to_string(), i))
                    .collect();
            }
        }
        snap.image_counts = Arc::new(self.image_counts.clone());
        self.dirty = Some(HashSet::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .unwrap(),
        )
    }
    fn pod(name: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "d", "uid": name},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}),
            )
            .unwrap(),
        )))
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = Cache::new();
        c.add_or_update_node(node("n1"));
        c.add_or_update_node(node("n2"));
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert_eq!(snap.len(), 2);
        c.assume(pod("p"), "n1");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 1000);
        c.forget("p");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 0);
        c.assume(pod("p"), "n2");
        c.add_or_update_pod(pod("p"), "n2");
        assert!(!c.is_assumed("p"));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n2").unwrap().pods.len(), 1);
        c.remove_pod("p");
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("n2").unwrap().pods.len(), 0);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_the_node() {
        let mut c = Cache::new();
        c.add_or_update_pod(pod("p"), "later");
        let mut snap = Snapshot::default();
        c.update_snapshot(&mut snap);
        assert!(snap.is_empty());
        c.add_or_update_node(node("later"));
        c.update_snapshot(&mut snap);
        assert_eq!(snap.get("later").unwrap().pods.len(), 1);
        assert_eq!(snap.get("later").unwrap().allocatable.milli_cpu, 4000);
    }
}
