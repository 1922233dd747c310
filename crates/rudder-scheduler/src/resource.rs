//! Resource arithmetic as upstream's scheduler does it: a pod's effective request (containers,
//! init and sidecar containers, overhead) and a node's allocatable, in milli-CPU, bytes and
//! counts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rudder_api::quantity;

/// Upstream's `DefaultMilliCPURequest`: what a container without a CPU request counts as when
/// scoring (never when filtering).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Upstream's `DefaultMemoryRequest` (200 MiB), likewise.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler tracks (upstream's `framework.Resource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended resources, hugepages and attachable volumes, by name.
    pub scalar: BTreeMap<String, i64>,
}

pub fn parse_quantity(q: &Quantity) -> Option<quantity::Quantity> {
    quantity::parse(q.0.trim()).ok()
}

/// Whether a resource name is tracked in `Resource::scalar` (upstream's `IsScalarResourceName`:
/// extended resources, hugepages, attachable volumes).
pub fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.starts_with("requests."))
}

impl Resource {
    /// From a `ResourceList` (a node's allocatable or a container's requests).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resource {
        let mut r = Resource::default();
        if let Some(list) = list {
            for (name, q) in list {
                let Some(v) = parse_quantity(q) else { continue };
                match name.as_str() {
                    "cpu" => r.milli_cpu += v.milli_value(),
                    "memory" => r.memory += v.value(),
                    "ephemeral-storage" => r.ephemeral_storage += v.value(),
                    "pods" => r.allowed_pod_number += v.value(),
                    n if is_scalar(n) => *r.scalar.entry(n.to_string()).or_default() += v.value(),
                    _ => {}
                }
            }
        }
        r
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pod_number += o.allowed_pod_number;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pod_number -= o.allowed_pod_number;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Element-wise maximum.
    pub fn set_max(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(o.allowed_pod_number);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    /// The amount of a named resource.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            n => self.scalar.get(n).copied().unwrap_or(0),
        }
    }
}

fn requests(r: Option<&ResourceRequirements>) -> Option<&BTreeMap<String, Quantity>> {
    r.and_then(|r| r.requests.as_ref())
}

fn container_request(c: &Container, non_zero: bool) -> Resource {
    let mut r = Resource::from_list(requests(c.resources.as_ref()));
    if non_zero {
        let list = requests(c.resources.as_ref());
        if !list.is_some_and(|l| l.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.is_some_and(|l| l.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A pod's effective request (upstream's `resourcehelper.PodRequests`): the larger of the sum of
/// its containers (plus sidecars, which keep running) and the largest init step, plus the
/// pod overhead. `non_zero` counts containers without CPU/memory requests at the scheduler's
/// defaults, as scoring does.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_request(c, non_zero));
    }
    let mut restartable_init = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_request(c, non_zero);
        let step = if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            restartable_init.add(&r);
            restartable_init.clone()
        } else {
            let mut t = r;
            t.add(&restartable_init);
            t
        };
        init_max.set_max(&step);
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add(&Resource::from_list(Some(overhead)));
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn init_containers_count_as_their_largest_step() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        let r = pod_requests(&p, false);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 1 << 30);
    }

    #[test]
    fn sidecars_add_to_the_steady_state_and_to_later_init_steps() {
        let p = pod(json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "i", "resources": {"requests": {"cpu": "1200m"}}}
            ]
        }}));
        // steady: 1 + 0.5; init step 2: 1.2 + 0.5 = 1.7
        assert_eq!(pod_requests(&p, false).milli_cpu, 1700);
    }

    #[test]
    fn non_zero_defaults_apply_per_container_without_requests() {
        let p = pod(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}]}}),
        );
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&p, false).memory == 0);
    }
}
