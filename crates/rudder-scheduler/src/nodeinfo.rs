//! What the scheduler knows about a node and the pods on it (upstream's `framework.NodeInfo`,
//! `PodInfo`), and the per-cycle snapshot of all nodes.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::resource::{pod_requests, Resource};

/// A pod with what the plugins read of it computed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    pub requests: Resource,
    /// Requests with containers lacking CPU/memory requests counted at the scoring defaults.
    pub non_zero_requests: Resource,
    pub priority: i32,
    /// The pod's (anti-)affinity terms parsed once (upstream's `PodInfo.RequiredAffinityTerms`
    /// and friends); `None` when it has neither pod affinity nor anti-affinity.
    pub affinity: Option<Box<crate::plugins::inter_pod_affinity::PodAffinityTerms>>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let key = pod_key(&pod);
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            affinity: crate::plugins::inter_pod_affinity::PodAffinityTerms::parse(&pod),
            key,
            pod,
        }
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    pub fn spec(&self) -> Option<&k8s_openapi::api::core::v1::PodSpec> {
        self.pod.spec.as_ref()
    }

    pub fn has_affinity(&self) -> bool {
        self.spec()
            .and_then(|s| s.affinity.as_ref())
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    }

    pub fn has_required_anti_affinity(&self) -> bool {
        self.spec()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|t| !t.is_empty())
    }
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A host port in use: (ip, protocol, port); ip `0.0.0.0` means every address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// The host ports a pod asks for (upstream's `schedutil.GetHostPorts`).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let containers = spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
    );
    for c in containers {
        for p in c.ports.iter().flatten() {
            let port = p.host_port.unwrap_or(0);
            if port <= 0 {
                continue;
            }
            out.push(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            });
        }
    }
    out
}

/// Whether a wanted host port conflicts with ports in use (upstream's `HostPortInfo.CheckConflict`:
/// `0.0.0.0` conflicts with every address on the same protocol and port).
pub fn port_conflicts(used: &[HostPort], want: &HostPort) -> bool {
    used.iter().any(|u| {
        u.port == want.port
            && u.protocol == want.protocol
            && (u.ip == want.ip || u.ip == "0.0.0.0" || want.ip == "0.0.0.0")
    })
}

/// The images a node reports, every name normalized, with their sizes.
pub fn node_images(node: &Node) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for image in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
        for name in image.names.iter().flatten() {
            out.insert(
                crate::plugins::basic::normalized_image_name(name),
                image.size_bytes.unwrap_or(0),
            );
        }
    }
    out
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub pods: Vec<Arc<PodInfo>>,
    /// Requests of the pods on the node.
    pub requested: Resource,
    /// The same with the scoring defaults for containers without requests.
    pub non_zero_requested: Resource,
    pub allocatable: Resource,
    pub used_ports: Vec<HostPort>,
    /// Pods with pod (anti-)affinity, for InterPodAffinity.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Images present on the node (normalized names) with their sizes.
    pub images: Arc<HashMap<String, i64>>,
    /// Bumped on every change; the snapshot copies only nodes whose generation moved.
    pub generation: u64,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable =
            Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        let images = Arc::new(node_images(&node));
        NodeInfo {
            node,
            pods: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            allocatable,
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            generation: 0,
            images,
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.node.metadata.labels.as_ref()
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable =
            Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        self.images = Arc::new(node_images(&node));
        self.node = node;
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero_requests);
        self.used_ports.extend(host_ports(&p.pod));
        if p.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if p.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    /// Removes the pod with `uid`; false when it was not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero_requests);
        for hp in host_ports(&p.pod) {
            if let Some(j) = self.used_ports.iter().position(|u| *u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if p.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}

/// The nodes as one scheduling cycle sees them: immutable for the cycle, cheap to take.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    pub index: HashMap<String, usize>,
    /// How many nodes have each image (ImageLocality spreads by it).
    pub image_counts: Arc<HashMap<String, usize>>,
}

impl Snapshot {
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
