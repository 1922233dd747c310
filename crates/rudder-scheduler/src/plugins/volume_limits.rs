//! The two volume plugins that look at where a volume can be and how many a node can take:
//! upstream's `plugins/volumezone` (a bound PV's zone/region labels must match the node's) and
//! `plugins/nodevolumelimits` (`NodeVolumeLimits`: CSI volumes per driver must stay within
//! the node's CSINode `allocatable.count`).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::{BTreeSet, HashMap};

use super::volume::{claim_class, claim_ref, pod_claims, volume_name};
use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

pub const VOLUME_ZONE: &str = "VolumeZone";
pub const NODE_VOLUME_LIMITS: &str = "NodeVolumeLimits";

/// Upstream's `ErrReasonConflict` of VolumeZone.
pub const REASON_ZONE_CONFLICT: &str = "node(s) had no available volume zone";
/// Upstream's `ErrReasonMaxVolumeCountExceeded`.
pub const REASON_MAX_VOLUME_COUNT: &str = "node(s) exceed max volume count";

const ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
const REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
/// Upstream's `topologyLabels`, in its order.
const TOPOLOGY_LABELS: [&str; 4] = [ZONE_BETA, REGION_BETA, ZONE, REGION];

/// A PV's topology label with the values it allows (`a__b` lists several zones, upstream's
/// `LabelZonesToSet`).
#[derive(Clone, Debug, PartialEq)]
struct PvTopology {
    key: &'static str,
    values: BTreeSet<String>,
}

fn pv_topologies(pv: &PersistentVolume) -> Vec<PvTopology> {
    let labels = pv.metadata.labels.as_ref();
    TOPOLOGY_LABELS
        .iter()
        .filter_map(|key| {
            let value = labels?.get(*key)?;
            let values: BTreeSet<String> = value
                .split("__")
                .map(str::trim)
                .filter(|z| !z.is_empty())
                .map(String::from)
                .collect();
            // An unparsable label is ignored, as upstream does.
            (!values.is_empty()).then_some(PvTopology { key, values })
        })
        .collect()
}

/// The GA label a beta one stands for.
fn ga_label(key: &str) -> &str {
    match key {
        REGION_BETA => REGION,
        ZONE_BETA => ZONE,
        other => other,
    }
}

pub struct VolumeZone {
    pub pvcs: Store<PersistentVolumeClaim>,
    pub pvs: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
}

#[derive(Clone)]
struct ZoneState(Vec<PvTopology>);

impl VolumeZone {
    /// Upstream's `getPVbyPod`: the topologies of the PVs bound to the pod's claims; unbound
    /// WaitForFirstConsumer claims are skipped (VolumeBinding places them).
    fn topologies(&self, pod: &PodInfo) -> Result<Vec<PvTopology>, Status> {
        let unresolvable = |m: String| Status::new(Code::UnschedulableAndUnresolvable, m);
        let mut out = Vec::new();
        let spec = pod.pod.spec.as_ref();
        let claims = spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str());
        for name in claims {
            if name.is_empty() {
                return Err(unresolvable("PersistentVolumeClaim had no name".into()));
            }
            let Some(pvc) = self.pvcs.get(&claim_ref(pod.namespace(), name)) else {
                return Err(unresolvable(format!(
                    "persistentvolumeclaim {name:?} not found"
                )));
            };
            let pv_name = volume_name(&pvc);
            if pv_name.is_empty() {
                let class = claim_class(&pvc);
                if class.is_empty() {
                    return Err(unresolvable(
                        "PersistentVolumeClaim had no pv name and storageClass name".into(),
                    ));
                }
                let Some(sc) = self.classes.get(&ObjectRef::new(class)) else {
                    return Err(unresolvable(format!(
                        "storageclass.storage.k8s.io {class:?} not found"
                    )));
                };
                match sc.volume_binding_mode.as_deref() {
                    None => {
                        return Err(unresolvable(format!(
                            "VolumeBindingMode not set for StorageClass {class:?}"
                        )))
                    }
                    Some("WaitForFirstConsumer") => continue,
                    Some(_) => return Err(unresolvable("PersistentVolume had no name".into())),
                }
            }
            let Some(pv) = self.pvs.get(&ObjectRef::new(pv_name)) else {
                return Err(unresolvable(format!(
                    "persistentvolume {pv_name:?} not found"
                )));
            };
            out.extend(pv_topologies(&pv));
        }
        Ok(out)
    }
}

impl Plugin for VolumeZone {
    fn name(&self) -> &'static str {
        VOLUME_ZONE
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::StorageClass, &[ActionType::Add]),
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, ADD_UPDATE),
            ClusterEvent::new(EventResource::PersistentVolume, ADD_UPDATE),
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        match self.topologies(pod) {
            Err(st) => (None, st),
            Ok(t) if t.is_empty() => (None, Status::skip()),
            Ok(t) => {
                state.write(VOLUME_ZONE, ZoneState(t));
                (None, Status::success())
            }
        }
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(ZoneState(topologies)) = state.read::<ZoneState>(VOLUME_ZONE) else {
            return Status::success();
        };
        let labels = node.labels();
        let get = |k: &str| labels.and_then(|l| l.get(k));
        // A node with no topology labels at all is a single-zone cluster's node: it fits.
        if !TOPOLOGY_LABELS.iter().any(|k| get(k).is_some()) {
            return Status::success();
        }
        for t in topologies {
            let value = get(t.key).or_else(|| get(ga_label(t.key)));
            if !value.is_some_and(|v| t.values.contains(v)) {
                return Status::new(Code::UnschedulableAndUnresolvable, REASON_ZONE_CONFLICT);
            }
        }
        Status::success()
    }
}

/// Upstream's `GetCSIAttachLimitKey` for driver names that fit a resource name; the longer
/// ones (hashed upstream) are only ever compared with each other here, so the plain form
/// serves as their key too.
fn limit_key(driver: &str) -> String {
    format!("attachable-volumes-csi-{driver}")
}

pub struct NodeVolumeLimits {
    pub pvcs: Store<PersistentVolumeClaim>,
    pub pvs: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    pub csi_nodes: Store<CSINode>,
    /// Stands in for the handle of a volume that is not provisioned yet (upstream's
    /// `randomVolumeIDPrefix`), so it cannot collide with a real one.
    pub random_prefix: String,
}

impl NodeVolumeLimits {
    pub fn new(h: &super::Handle) -> NodeVolumeLimits {
        NodeVolumeLimits {
            pvcs: h.listers.pvcs.clone(),
            pvs: h.listers.pvs.clone(),
            classes: h.listers.storage_classes.clone(),
            csi_nodes: h.listers.csi_nodes.clone(),
            random_prefix: (0..32).map(|_| fastrand::alphanumeric()).collect(),
        }
    }

    /// Upstream's `getCSIDriverInfo`: the driver and handle of a claim's PV, or for a claim
    /// not bound yet its class's provisioner and a made-up handle.
    fn driver_info(&self, pvc: &PersistentVolumeClaim) -> Option<(String, String)> {
        let pv_name = volume_name(pvc);
        if !pv_name.is_empty() {
            if let Some(pv) = self.pvs.get(&ObjectRef::new(pv_name)) {
                // Non-CSI PVs are not counted: the in-tree plugins that migrated to CSI are
                // gone from upstream's API types too.
                let csi = pv.spec.as_ref()?.csi.as_ref()?;
                return Some((csi.driver.clone(), csi.volume_handle.clone()));
            }
        }
        let class = claim_class(pvc);
        if class.is_empty() {
            return None;
        }
        let sc = self.classes.get(&ObjectRef::new(class))?;
        let handle = format!(
            "{}-{}/{}",
            self.random_prefix,
            pvc.metadata.namespace.as_deref().unwrap_or(""),
            pvc.metadata.name.as_deref().unwrap_or("")
        );
        Some((sc.provisioner.clone(), handle))
    }

    /// Upstream's `filterAttachableVolumes`: `driver/handle` → limit key of the pod's CSI
    /// volumes. A missing claim is an error for the pod being scheduled only.
    fn attachable(
        &self,
        pod: &PodInfo,
        new_pod: bool,
        out: &mut HashMap<String, String>,
    ) -> Result<(), Status> {
        for (name, ephemeral) in pod_claims(&pod.pod) {
            let Some(pvc) = self.pvcs.get(&claim_ref(pod.namespace(), &name)) else {
                if new_pod {
                    return Err(Status::new(
                        Code::UnschedulableAndUnresolvable,
                        format!(
                            "looking up PVC {}/{name}: persistentvolumeclaim {name:?} not found",
                            pod.namespace()
                        ),
                    ));
                }
                continue;
            };
            if ephemeral {
                let owned = pvc
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == pod.uid);
                if !owned {
                    return Err(Status::error(format!(
                        "PVC {}/{name} was not created for pod {} (pod is not owner)",
                        pod.namespace(),
                        pod.key
                    )));
                }
            }
            if let Some((driver, handle)) = self.driver_info(&pvc) {
                if !driver.is_empty() && !handle.is_empty() {
                    out.insert(format!("{driver}/{handle}"), limit_key(&driver));
                }
            }
        }
        Ok(())
    }

    /// The node's limits: `attachable-volumes-*` allocatable (the old way), overridden by
    /// CSINode's per-driver counts.
    fn limits(&self, node: &NodeInfo) -> HashMap<String, i64> {
        let mut limits: HashMap<String, i64> = node
            .node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.starts_with("attachable-volumes-"))
            .filter_map(|(k, q)| crate::resource::parse_quantity(q).map(|v| (k.clone(), v.value())))
            .collect();
        if let Some(csi) = self.csi_nodes.get(&ObjectRef::new(node.name())) {
            for d in &csi.spec.drivers {
                if let Some(count) = d.allocatable.as_ref().and_then(|a| a.count) {
                    limits.insert(limit_key(&d.name), i64::from(count));
                }
            }
        }
        limits
    }
}

impl Plugin for NodeVolumeLimits {
    fn name(&self) -> &'static str {
        NODE_VOLUME_LIMITS
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::CSINode, &[ActionType::Add]),
            ClusterEvent::new(EventResource::AssignedPod, DELETE),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, &[ActionType::Add]),
        ]
    }

    /// Pods without claims (configMap, secret, emptyDir … only) skip the filter.
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        if pod_claims(&pod.pod).is_empty() {
            (None, Status::skip())
        } else {
            (None, Status::success())
        }
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mut new_volumes = HashMap::new();
        if let Err(st) = self.attachable(pod, true, &mut new_volumes) {
            return st;
        }
        if new_volumes.is_empty() {
            return Status::success();
        }
        let limits = self.limits(node);
        if limits.is_empty() {
            return Status::success();
        }
        let mut attached = HashMap::new();
        for existing in &node.pods {
            if let Err(st) = self.attachable(existing, false, &mut attached) {
                return st;
            }
        }
        let mut attached_count: HashMap<&str, i64> = HashMap::new();
        for (volume, key) in &attached {
            // A volume the node already has is not attached again.
            new_volumes.remove(volume);
            *attached_count.entry(key.as_str()).or_default() += 1;
        }
        let mut new_count: HashMap<&str, i64> = HashMap::new();
        for key in new_volumes.values() {
            *new_count.entry(key.as_str()).or_default() += 1;
        }
        for (key, count) in new_count {
            if let Some(max) = limits.get(key) {
                if attached_count.get(key).copied().unwrap_or(0) + count > *max {
                    return Status::new(Code::Unschedulable, REASON_MAX_VOLUME_COUNT);
                }
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::store;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn pod(name: &str, claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "spec": {"containers": [{"name": "c"}], "volumes": vols}}))
            .unwrap(),
        ))
    }

    fn node(name: &str, labels: Value, existing: Vec<PodInfo>) -> NodeInfo {
        let mut n = NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        ));
        for p in existing {
            n.add_pod(Arc::new(p));
        }
        n
    }

    fn pvc(name: &str, class: &str, volume: &str) -> Value {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns"},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}});
        if !volume.is_empty() {
            v["spec"]["volumeName"] = json!(volume);
        }
        v
    }

    fn zoned_pv(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "gcePersistentDisk": {"pdName": name}}})
    }

    fn csi_pv(name: &str, driver: &str) -> Value {
        json!({"metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": driver, "volumeHandle": format!("handle-{name}")}}})
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Value {
        json!({"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode})
    }

    fn zone_plugin(pvcs: Vec<Value>, pvs: Vec<Value>, classes: Vec<Value>) -> VolumeZone {
        VolumeZone {
            pvcs: store(pvcs),
            pvs: store(pvs),
            classes: store(classes),
        }
    }

    fn run_zone(z: &VolumeZone, p: &PodInfo, n: &NodeInfo) -> Status {
        let mut state = CycleState::default();
        let (_, st) = z.pre_filter(&mut state, p, &Snapshot::default());
        if !st.is_success() {
            return st;
        }
        z.filter(&state, p, n)
    }

    #[test]
    fn volume_zone_matches_pv_zone_labels_against_the_node() {
        let z = zone_plugin(
            vec![
                pvc("a", "", "pv-a"),
                pvc("multi", "", "pv-multi"),
                pvc("beta", "", "pv-beta"),
            ],
            vec![
                zoned_pv("pv-a", json!({ZONE: "us-west1-a"})),
                zoned_pv("pv-multi", json!({ZONE: "us-west1-a__us-west1-b"})),
                zoned_pv("pv-beta", json!({ZONE_BETA: "us-west1-b"})),
            ],
            vec![],
        );
        let in_a = node("a", json!({ZONE: "us-west1-a"}), vec![]);
        let in_b = node("b", json!({ZONE: "us-west1-b"}), vec![]);
        let bare = node("c", json!({"kubernetes.io/hostname": "c"}), vec![]);
        assert!(run_zone(&z, &pod("p", &["a"]), &in_a).is_success());
        let st = run_zone(&z, &pod("p", &["a"]), &in_b);
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(st.reasons, vec![REASON_ZONE_CONFLICT]);
        // A node without topology labels is a single-zone cluster's: no constraint.
        assert!(run_zone(&z, &pod("p", &["a"]), &bare).is_success());
        // Several zones in one label value.
        assert!(run_zone(&z, &pod("p", &["multi"]), &in_b).is_success());
        // A PV's beta label matches the node's GA label.
        assert!(run_zone(&z, &pod("p", &["beta"]), &in_b).is_success());
        assert!(!run_zone(&z, &pod("p", &["beta"]), &in_a).is_success());
    }

    #[test]
    fn volume_zone_skips_unbound_wait_for_first_consumer_claims_only() {
        let z = zone_plugin(
            vec![
                pvc("late", "wffc", ""),
                pvc("now", "fast", ""),
                pvc("none", "", ""),
            ],
            vec![],
            vec![
                class("wffc", "x", "WaitForFirstConsumer"),
                class("fast", "x", "Immediate"),
            ],
        );
        let (_, st) = z.pre_filter(
            &mut CycleState::default(),
            &pod("p", &["late"]),
            &Snapshot::default(),
        );
        assert_eq!(st.code, Code::Skip);
        let (_, st) = z.pre_filter(
            &mut CycleState::default(),
            &pod("p", &["now"]),
            &Snapshot::default(),
        );
        assert_eq!(st.message(), "PersistentVolume had no name");
        let (_, st) = z.pre_filter(
            &mut CycleState::default(),
            &pod("p", &["none"]),
            &Snapshot::default(),
        );
        assert_eq!(
            st.message(),
            "PersistentVolumeClaim had no pv name and storageClass name"
        );
        let (_, st) = z.pre_filter(
            &mut CycleState::default(),
            &pod("p", &["missing"]),
            &Snapshot::default(),
        );
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(st.message(), "persistentvolumeclaim \"missing\" not found");
    }

    fn limits_plugin(csi_nodes: Vec<Value>) -> NodeVolumeLimits {
        NodeVolumeLimits {
            pvcs: store(vec![
                pvc("one", "", "pv-1"),
                pvc("two", "", "pv-2"),
                pvc("three", "", "pv-3"),
                pvc("other-driver", "", "pv-other"),
                pvc("unbound", "ebs-sc", ""),
            ]),
            pvs: store(vec![
                csi_pv("pv-1", "ebs.csi.aws.com"),
                csi_pv("pv-2", "ebs.csi.aws.com"),
                csi_pv("pv-3", "ebs.csi.aws.com"),
                csi_pv("pv-other", "other.csi"),
            ]),
            classes: store(vec![class(
                "ebs-sc",
                "ebs.csi.aws.com",
                "WaitForFirstConsumer",
            )]),
            csi_nodes: store(csi_nodes),
            random_prefix: "r".into(),
        }
    }

    fn csi_node(name: &str, driver: &str, count: i32) -> Value {
        json!({"metadata": {"name": name}, "spec": {"drivers": [
            {"name": driver, "nodeID": name, "allocatable": {"count": count}}]}})
    }

    #[test]
    fn node_volume_limits_count_csi_volumes_per_driver() {
        let existing = || vec![pod("old", &["one", "two"])];
        let n = node("n", json!({}), existing());
        // Limit 2 with two attached: a third exceeds it.
        let p = limits_plugin(vec![csi_node("n", "ebs.csi.aws.com", 2)]);
        let st = p.filter(&CycleState::default(), &pod("new", &["three"]), &n);
        assert_eq!(st.code, Code::Unschedulable);
        assert_eq!(st.reasons, vec![REASON_MAX_VOLUME_COUNT]);
        // A volume the node already has is not counted twice.
        assert!(p
            .filter(&CycleState::default(), &pod("new", &["one"]), &n)
            .is_success());
        // Another driver has no limit.
        assert!(p
            .filter(&CycleState::default(), &pod("new", &["other-driver"]), &n)
            .is_success());
        // An unbound claim counts against its class's provisioner.
        let st = p.filter(&CycleState::default(), &pod("new", &["unbound"]), &n);
        assert_eq!(st.reasons, vec![REASON_MAX_VOLUME_COUNT]);
        // Limit 3 fits one more.
        let p = limits_plugin(vec![csi_node("n", "ebs.csi.aws.com", 3)]);
        assert!(p
            .filter(&CycleState::default(), &pod("new", &["three"]), &n)
            .is_success());
        // No CSINode and no allocatable limits: nothing to enforce.
        let p = limits_plugin(vec![]);
        assert!(p
            .filter(&CycleState::default(), &pod("new", &["three"]), &n)
            .is_success());
        // A missing claim of the new pod is unresolvable.
        let st = p.filter(&CycleState::default(), &pod("new", &["gone"]), &n);
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            st.message(),
            "looking up PVC ns/gone: persistentvolumeclaim \"gone\" not found"
        );
    }

    #[test]
    fn node_volume_limits_skip_pods_without_claims() {
        let p = limits_plugin(vec![]);
        let (_, st) = p.pre_filter(
            &mut CycleState::default(),
            &pod("p", &[]),
            &Snapshot::default(),
        );
        assert_eq!(st.code, Code::Skip);
    }
}
