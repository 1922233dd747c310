//! Volume plugins over PVCs and PVs (upstream's `plugins/volumebinding` and
//! `plugins/volumerestrictions`): a pod's claims must exist; a bound claim's PV must accept the
//! node (local PVs with node affinity); a WaitForFirstConsumer claim needs an available PV the
//! node can use (bound in PreBind as upstream's binder does) or a class that provisions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use rudder_api::selector::Selector;
use serde::Deserialize;
use serde_json::json;

use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};
use crate::plugins::node_affinity::selector_matches;
use crate::resource::parse_quantity;

/// Upstream's binder conflict reasons.
pub const REASON_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
pub const REASON_RWOP_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";
const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// The claims a pod's volumes name: `persistentVolumeClaim` volumes, and generic ephemeral
/// volumes (`<pod>-<volume>`, which must be owned by the pod).
pub(super) fn pod_claims(pod: &Pod) -> Vec<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some((c.claim_name.clone(), false))
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| (format!("{pod_name}-{}", v.name), true))
            }
        })
        .collect()
}

pub(super) fn claim_ref(ns: &str, name: &str) -> ObjectRef<PersistentVolumeClaim> {
    ObjectRef::new(name).within(ns)
}

/// The claims of `pod`, each checked as upstream's `podHasPVCs`: present, not lost, not being
/// deleted, and (ephemeral) owned by the pod. The error is the reason shown.
fn lookup_claims(
    pod: &PodInfo,
    pvcs: &Store<PersistentVolumeClaim>,
) -> Result<Vec<Arc<PersistentVolumeClaim>>, String> {
    let mut out = Vec::new();
    for (name, ephemeral) in pod_claims(&pod.pod) {
        let Some(pvc) = pvcs.get(&claim_ref(pod.namespace(), &name)) else {
            return Err(if ephemeral {
                format!("waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}")
            } else {
                format!("persistentvolumeclaim {name:?} not found")
            });
        };
        if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
            return Err(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                volume_name(&pvc)
            ));
        }
        if pvc.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        if ephemeral {
            let owned = pvc
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == pod.uid);
            if !owned {
                return Err(format!(
                    "PVC {}/{name} was not created for pod {} (pod is not owner)",
                    pod.namespace(),
                    pod.key
                ));
            }
        }
        out.push(pvc);
    }
    Ok(out)
}

pub(super) fn volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

/// A class from the beta annotation, else the spec field (upstream's
/// `GetPersistentVolume(Claim)Class`).
fn class_name<'a>(
    annotations: Option<&'a std::collections::BTreeMap<String, String>>,
    spec_class: Option<&'a String>,
) -> &'a str {
    annotations
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
        .or(spec_class)
        .map(String::as_str)
        .unwrap_or("")
}

pub(super) fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    class_name(
        pvc.metadata.annotations.as_ref(),
        pvc.spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_ref()),
    )
}

fn pv_class(pv: &PersistentVolume) -> &str {
    class_name(
        pv.metadata.annotations.as_ref(),
        pv.spec.as_ref().and_then(|s| s.storage_class_name.as_ref()),
    )
}

/// Bound by the PV controller: a volume name and the bind-completed annotation.
fn fully_bound(pvc: &PersistentVolumeClaim) -> bool {
    !volume_name(pvc).is_empty()
        && pvc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED))
}

/// Whether the PV's required node affinity accepts the node (upstream's `CheckNodeAffinity`).
fn pv_accepts_node(pv: &PersistentVolume, node: &NodeInfo) -> bool {
    match pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        Some(req) => selector_matches(req, node),
        None => true,
    }
}

/// The nodes a local PV is pinned to by `kubernetes.io/hostname In` terms (upstream's
/// `GetLocalPersistentVolumeNodeNames`); empty when it is not.
fn local_pv_node_names(pv: &PersistentVolume) -> HashSet<String> {
    let mut out = HashSet::new();
    let Some(req) = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return out;
    };
    for term in &req.node_selector_terms {
        let mut nodes: Option<HashSet<String>> = None;
        for e in term.match_expressions.iter().flatten() {
            if e.key == LABEL_HOSTNAME && e.operator == "In" {
                let vals: HashSet<String> = e.values.iter().flatten().cloned().collect();
                nodes = Some(match nodes {
                    None => vals,
                    Some(n) => n.intersection(&vals).cloned().collect(),
                });
            }
        }
        out.extend(nodes.unwrap_or_default());
    }
    out
}

fn storage_request(pvc: &PersistentVolumeClaim) -> Option<rudder_api::quantity::Quantity> {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(parse_quantity)
}

fn pv_capacity(pv: &PersistentVolume) -> Option<rudder_api::quantity::Quantity> {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(parse_quantity)
}

/// The PV is reserved for this claim (upstream's `IsVolumeBoundToClaim`).
fn pv_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name == pvc.metadata.name
        && r.namespace == pvc.metadata.namespace
        && (r.uid.as_deref().unwrap_or("").is_empty() || r.uid == pvc.metadata.uid)
}

fn access_modes_ok(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let have: HashSet<&str> = pv
        .spec
        .iter()
        .flat_map(|s| s.access_modes.iter().flatten())
        .map(String::as_str)
        .collect();
    pvc.spec
        .iter()
        .flat_map(|s| s.access_modes.iter().flatten())
        .all(|m| have.contains(m.as_str()))
}

fn volume_mode(mode: Option<&String>) -> &str {
    mode.map(String::as_str).unwrap_or("Filesystem")
}

/// Upstream's `FindMatchingVolume` on the scheduler path: the PV pre-bound to the claim if the
/// node accepts it, else the smallest available PV of the claim's class that is big enough,
/// matches its selector, access and volume modes, and accepts the node.
fn find_matching_volume(
    pvc: &PersistentVolumeClaim,
    pvs: &[Arc<PersistentVolume>],
    node: &NodeInfo,
    excluded: &HashSet<String>,
) -> Option<Arc<PersistentVolume>> {
    let requested = storage_request(pvc).unwrap_or_else(rudder_api::quantity::Quantity::zero);
    let selector = pvc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|s| Selector::from_label_selector(Some(s)).unwrap_or_else(|_| Selector::nothing()));
    let class = claim_class(pvc);
    let claim_mode = volume_mode(pvc.spec.as_ref().and_then(|s| s.volume_mode.as_ref()));
    let mut best: Option<(&Arc<PersistentVolume>, rudder_api::quantity::Quantity)> = None;
    for pv in pvs {
        let name = pv.metadata.name.as_deref().unwrap_or("");
        if excluded.contains(name) {
            continue;
        }
        let pre_bound = pv_bound_to_claim(pv, pvc);
        if pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some()
            && !pre_bound
        {
            continue;
        }
        let Some(size) = pv_capacity(pv) else {
            continue;
        };
        if size < requested {
            continue;
        }
        if volume_mode(pv.spec.as_ref().and_then(|s| s.volume_mode.as_ref())) != claim_mode {
            continue;
        }
        if pv.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let affinity_ok = pv_accepts_node(pv, node);
        if pre_bound {
            return affinity_ok.then(|| pv.clone());
        }
        if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Available") {
            continue;
        }
        if let Some(sel) = &selector {
            let labels = pv.metadata.labels.clone().unwrap_or_default();
            if !sel.matches(&labels) {
                continue;
            }
        }
        if pv_class(pv) != class || !affinity_ok || !access_modes_ok(pvc, pv) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, q)| *q > size) {
            best = Some((pv, size));
        }
    }
    best.map(|(pv, _)| pv.clone())
}

// ---------- VolumeBinding ----------

/// `VolumeBindingArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeBindingArgs {
    #[serde(default = "bind_timeout")]
    pub bind_timeout_seconds: i64,
    #[serde(default)]
    pub shape: Option<serde_json::Value>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

fn bind_timeout() -> i64 {
    600
}

impl Default for VolumeBindingArgs {
    fn default() -> Self {
        VolumeBindingArgs {
            bind_timeout_seconds: bind_timeout(),
            shape: None,
            api_version: None,
            kind: None,
        }
    }
}

impl VolumeBindingArgs {
    /// Upstream's `ValidateVolumeBindingArgs` (the timeout part).
    pub fn validate(&self, path: &str) -> Result<(), String> {
        if self.bind_timeout_seconds < 0 {
            return Err(format!(
                "{path}.bindTimeoutSeconds: Invalid value: {}: invalid BindTimeoutSeconds, should not be a negative value",
                self.bind_timeout_seconds
            ));
        }
        Ok(())
    }
}

/// What binding a pod's unbound claims on one node takes.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Available PVs chosen for claims: (PV, claim).
    pub static_bindings: Vec<(Arc<PersistentVolume>, Arc<PersistentVolumeClaim>)>,
    /// Claims the class's provisioner is to provision on the node.
    pub dynamic_provisions: Vec<Arc<PersistentVolumeClaim>>,
}

/// The claims of the pod being scheduled, sorted as upstream's `GetPodVolumeClaims`.
#[derive(Clone, Default)]
struct VolumeState {
    bound: Vec<Arc<PersistentVolumeClaim>>,
    to_bind: Vec<Arc<PersistentVolumeClaim>>,
    /// The classes' PVs, for `to_bind` (by class name).
    pvs_by_class: HashMap<String, Vec<Arc<PersistentVolume>>>,
    /// Filter's choice per node, read by Reserve (Filter runs in parallel).
    by_node: Arc<Mutex<HashMap<String, PodVolumes>>>,
}

const VOLUME_BINDING: &str = "VolumeBinding";

pub struct VolumeBinding {
    pub args: VolumeBindingArgs,
    client: kube::Client,
    pvcs: Store<PersistentVolumeClaim>,
    pvs: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    /// Bindings assumed at Reserve, by pod uid, carried out at PreBind.
    assumed: Arc<Mutex<HashMap<String, PodVolumes>>>,
}

impl VolumeBinding {
    pub fn new(args: VolumeBindingArgs, h: &super::Handle) -> VolumeBinding {
        VolumeBinding {
            args,
            client: h.client.clone(),
            pvcs: h.listers.pvcs.clone(),
            pvs: h.listers.pvs.clone(),
            classes: h.listers.storage_classes.clone(),
            assumed: Default::default(),
        }
    }

    fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.get(&ObjectRef::new(name))
    }

    /// Upstream's `IsDelayBindingMode`.
    fn delay_binding(&self, pvc: &PersistentVolumeClaim) -> Result<bool, String> {
        let name = claim_class(pvc);
        if name.is_empty() {
            return Ok(false);
        }
        let Some(class) = self.class(name) else {
            return Ok(false);
        };
        match class.volume_binding_mode.as_deref() {
            None => Err(format!(
                "VolumeBindingMode not set for StorageClass {name:?}"
            )),
            Some(m) => Ok(m == "WaitForFirstConsumer"),
        }
    }

    /// Upstream's `checkVolumeProvisions`: every claim left without a PV needs a class that
    /// provisions and whose allowed topologies accept the node.
    fn can_provision(&self, claims: &[Arc<PersistentVolumeClaim>], node: &NodeInfo) -> bool {
        claims.iter().all(|c| {
            let Some(class) = self.class(claim_class(c)) else {
                return false;
            };
            if class.provisioner == NO_PROVISIONER {
                return false;
            }
            match class.allowed_topologies.as_deref() {
                None | Some([]) => true,
                Some(terms) => terms.iter().any(|t| {
                    t.match_label_expressions.iter().flatten().all(|e| {
                        node.labels()
                            .and_then(|l| l.get(&e.key))
                            .is_some_and(|v| e.values.contains(v))
                    })
                }),
            }
        })
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        VOLUME_BINDING
    }
    fn points(&self) -> &'static [Point] {
        &[
            Point::PreFilter,
            Point::Filter,
            Point::Reserve,
            Point::PreBind,
        ]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::PersistentVolumeClaim, ADD_UPDATE),
            ClusterEvent::new(EventResource::PersistentVolume, ADD_UPDATE),
            ClusterEvent::new(EventResource::StorageClass, ADD_UPDATE),
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        if pod_claims(&pod.pod).is_empty() {
            state.write(VOLUME_BINDING, VolumeState::default());
            return (None, Status::skip());
        }
        let claims = match lookup_claims(pod, &self.pvcs) {
            Ok(c) => c,
            Err(msg) => return (None, Status::new(Code::UnschedulableAndUnresolvable, msg)),
        };
        let mut vs = VolumeState::default();
        let mut immediate = false;
        for pvc in claims {
            if fully_bound(&pvc) {
                vs.bound.push(pvc);
                continue;
            }
            match self.delay_binding(&pvc) {
                Err(e) => return (None, Status::error(e)),
                Ok(true) if volume_name(&pvc).is_empty() => vs.to_bind.push(pvc),
                // Immediate claims (and pre-bound ones) are the PV controller's to bind.
                Ok(_) => immediate = true,
            }
        }
        if immediate {
            return (
                None,
                Status::new(
                    Code::UnschedulableAndUnresolvable,
                    "pod has unbound immediate PersistentVolumeClaims",
                ),
            );
        }
        // Claims bound to local PVs narrow the cycle to those PVs' nodes.
        let mut eligible: Option<HashSet<String>> = None;
        for pvc in &vs.bound {
            let Some(pv) = self.pvs.get(&ObjectRef::new(volume_name(pvc))) else {
                continue;
            };
            let names = local_pv_node_names(&pv);
            if names.is_empty() {
                continue;
            }
            eligible = Some(match eligible {
                None => names,
                Some(e) => e.intersection(&names).cloned().collect(),
            });
        }
        if !vs.to_bind.is_empty() {
            for pv in self.pvs.state() {
                vs.pvs_by_class
                    .entry(pv_class(&pv).to_string())
                    .or_default()
                    .push(pv);
            }
        }
        state.write(VOLUME_BINDING, vs);
        (eligible, Status::success())
    }

    /// Upstream's `FindPodVolumes`.
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(vs) = state.read::<VolumeState>(VOLUME_BINDING) else {
            return Status::error(format!("reading {VOLUME_BINDING:?} from cycle state"));
        };
        let mut reasons = Vec::new();
        let mut satisfied = true;
        let mut found = true;
        for pvc in &vs.bound {
            match self.pvs.get(&ObjectRef::new(volume_name(pvc))) {
                None => {
                    found = false;
                    break;
                }
                Some(pv) if !pv_accepts_node(&pv, node) => {
                    satisfied = false;
                    break;
                }
                Some(_) => {}
            }
        }
        if !satisfied {
            reasons.push(REASON_NODE_CONFLICT.to_string());
        }
        if !found {
            reasons.push(REASON_PV_NOT_EXIST.to_string());
        }
        let mut volumes = PodVolumes::default();
        if !vs.to_bind.is_empty() {
            let mut chosen = HashSet::new();
            let mut to_provision = Vec::new();
            // Claims with a selector are harder to satisfy: they choose first (upstream sorts
            // the claims by this before matching).
            let mut claims: Vec<&Arc<PersistentVolumeClaim>> = vs.to_bind.iter().collect();
            claims.sort_by_key(|c| c.spec.as_ref().and_then(|s| s.selector.as_ref()).is_none());
            for pvc in claims {
                let empty = Vec::new();
                let pvs = vs.pvs_by_class.get(claim_class(pvc)).unwrap_or(&empty);
                match find_matching_volume(pvc, pvs, node, &chosen) {
                    Some(pv) => {
                        chosen.insert(pv.metadata.name.clone().unwrap_or_default());
                        volumes.static_bindings.push((pv, pvc.clone()));
                    }
                    None => to_provision.push(pvc.clone()),
                }
            }
            if !to_provision.is_empty() {
                if self.can_provision(&to_provision, node) {
                    volumes.dynamic_provisions = to_provision;
                } else {
                    reasons.push(REASON_BIND_CONFLICT.to_string());
                }
            }
        }
        if !reasons.is_empty() {
            return Status::with_reasons(Code::UnschedulableAndUnresolvable, reasons);
        }
        if let Ok(mut m) = vs.by_node.lock() {
            m.insert(node.name().to_string(), volumes);
        }
        Status::success()
    }

    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(vs) = state.read::<VolumeState>(VOLUME_BINDING) else {
            return Status::success();
        };
        let volumes = vs
            .by_node
            .lock()
            .ok()
            .and_then(|m| m.get(node).cloned())
            .unwrap_or_default();
        if volumes.static_bindings.is_empty() && volumes.dynamic_provisions.is_empty() {
            return Status::success();
        }
        if let Ok(mut a) = self.assumed.lock() {
            a.insert(pod.uid.clone(), volumes);
        }
        Status::success()
    }

    fn unreserve(&self, _state: &mut CycleState, pod: &PodInfo, _node: &str) {
        if let Ok(mut a) = self.assumed.lock() {
            a.remove(&pod.uid);
        }
    }

    /// Upstream's `BindPodVolumes`: reserve the chosen PVs for their claims (claimRef, as the
    /// PV controller would), mark claims to provision with the selected node, then wait for
    /// the PV controller to finish binding them.
    fn pre_bind(&self, pod: &PodInfo, node: &str) -> BoxFuture<'static, Status> {
        let volumes = self
            .assumed
            .lock()
            .ok()
            .and_then(|mut a| a.remove(&pod.uid));
        let Some(volumes) = volumes else {
            return Box::pin(async { Status::success() });
        };
        let client = self.client.clone();
        let pvcs = self.pvcs.clone();
        let node = node.to_string();
        let timeout = Duration::from_secs(self.args.bind_timeout_seconds.max(0) as u64);
        Box::pin(async move {
            match bind_pod_volumes(client, pvcs, volumes, node, timeout).await {
                Ok(()) => Status::success(),
                Err(e) => Status::error(format!("binding volumes: {e}")),
            }
        })
    }
}

async fn bind_pod_volumes(
    client: kube::Client,
    pvcs: Store<PersistentVolumeClaim>,
    volumes: PodVolumes,
    node: String,
    timeout: Duration,
) -> Result<(), String> {
    let pv_api: Api<PersistentVolume> = Api::all(client.clone());
    for (pv, pvc) in &volumes.static_bindings {
        let name = pv.metadata.name.as_deref().unwrap_or("");
        let patch = json!({
            "metadata": {
                "annotations": {ANN_BOUND_BY_CONTROLLER: "yes"},
                "resourceVersion": pv.metadata.resource_version,
            },
            "spec": {"claimRef": {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "namespace": pvc.metadata.namespace,
                "name": pvc.metadata.name,
                "uid": pvc.metadata.uid,
                "resourceVersion": pvc.metadata.resource_version,
            }},
        });
        pv_api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| e.to_string())?;
    }
    for pvc in &volumes.dynamic_provisions {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            client.clone(),
            pvc.metadata.namespace.as_deref().unwrap_or(""),
        );
        let patch = json!({"metadata": {
            "annotations": {ANN_SELECTED_NODE: node},
            "resourceVersion": pvc.metadata.resource_version,
        }});
        api.patch(
            pvc.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let claims: Vec<(String, String)> = volumes
        .static_bindings
        .iter()
        .map(|(_, c)| c)
        .chain(&volumes.dynamic_provisions)
        .map(|c| {
            (
                c.metadata.namespace.clone().unwrap_or_default(),
                c.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut done = true;
        for (ns, name) in &claims {
            let Some(pvc) = pvcs.get(&claim_ref(ns, name)) else {
                return Err(format!("persistentvolumeclaim {name:?} not found"));
            };
            if fully_bound(&pvc) {
                continue;
            }
            let provisioning = volumes
                .dynamic_provisions
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(name.as_str()));
            let selected = pvc
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_SELECTED_NODE))
                .is_some();
            if provisioning && !selected {
                // The provisioner gave up on this node and asked for another.
                return Err(format!("selectedNode annotation reset for PVC {name:?}"));
            }
            done = false;
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("context deadline exceeded".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------- VolumeRestrictions ----------

const VOLUME_RESTRICTIONS: &str = "VolumeRestrictions";

/// The ReadWriteOncePod claims of the pod being scheduled and how many other pods use them.
#[derive(Clone, Default)]
struct RestrictionsState {
    rwop_claims: HashSet<String>,
    conflicting: i64,
}

pub struct VolumeRestrictions {
    pub pvcs: Store<PersistentVolumeClaim>,
}

/// `namespace/claim` keys of the claims a pod uses.
fn claim_keys(pod: &PodInfo) -> impl Iterator<Item = String> + '_ {
    pod_claims(&pod.pod)
        .into_iter()
        .map(|(c, _)| format!("{}/{c}", pod.namespace()))
}

fn uses_count(pod: &PodInfo, claims: &HashSet<String>) -> i64 {
    claim_keys(pod).filter(|k| claims.contains(k)).count() as i64
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        VOLUME_RESTRICTIONS
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::AssignedPod, DELETE),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, ADD_UPDATE),
        ]
    }

    /// Upstream's PreFilter: the pod's claims must exist; its ReadWriteOncePod claims must not
    /// be used by another pod. (The inline GCE PD/EBS/RBD/iSCSI conflicts are not checked:
    /// those in-tree volume types are gone upstream as well.)
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut rwop = HashSet::new();
        for (name, _) in pod_claims(&pod.pod) {
            let Some(pvc) = self.pvcs.get(&claim_ref(pod.namespace(), &name)) else {
                return (
                    None,
                    Status::new(
                        Code::UnschedulableAndUnresolvable,
                        format!("persistentvolumeclaim {name:?} not found"),
                    ),
                );
            };
            let once = pvc
                .spec
                .iter()
                .flat_map(|s| s.access_modes.iter().flatten())
                .any(|m| m == "ReadWriteOncePod");
            if once {
                rwop.insert(format!("{}/{name}", pod.namespace()));
            }
        }
        if rwop.is_empty() {
            return (None, Status::skip());
        }
        let conflicting = snapshot
            .nodes
            .iter()
            .flat_map(|n| n.pods.iter())
            .filter(|p| p.uid != pod.uid)
            .map(|p| uses_count(p, &rwop))
            .sum();
        state.write(
            VOLUME_RESTRICTIONS,
            RestrictionsState {
                rwop_claims: rwop,
                conflicting,
            },
        );
        (None, Status::success())
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        added: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        if let Some(s) = state.read_mut::<RestrictionsState>(VOLUME_RESTRICTIONS) {
            s.conflicting += uses_count(added, &s.rwop_claims);
        }
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        if let Some(s) = state.read_mut::<RestrictionsState>(VOLUME_RESTRICTIONS) {
            s.conflicting -= uses_count(removed, &s.rwop_claims);
        }
        Status::success()
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        match state.read::<RestrictionsState>(VOLUME_RESTRICTIONS) {
            Some(s) if s.conflicting > 0 => Status::new(Code::Unschedulable, REASON_RWOP_CONFLICT),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::store;
    use serde_json::{json, Value};

    fn handle(pvcs: Vec<Value>, pvs: Vec<Value>, classes: Vec<Value>) -> super::super::Handle {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let mut h = super::super::Handle::new(client);
        h.listers.pvcs = store(pvcs);
        h.listers.pvs = store(pvs);
        h.listers.storage_classes = store(classes);
        h
    }

    fn pod(claims: &[&str]) -> PodInfo {
        let vols: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        PodInfo::new(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                "spec": {"containers": [{"name": "c"}], "volumes": vols}}),
            )
            .unwrap(),
        ))
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}}}))
            .unwrap(),
        ))
    }

    fn pvc(name: &str, class: &str, volume: &str, bound: bool) -> Value {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}});
        if !volume.is_empty() {
            v["spec"]["volumeName"] = json!(volume);
        }
        if bound {
            v["metadata"]["annotations"] = json!({ANN_BIND_COMPLETED: "yes"});
        }
        v
    }

    fn local_pv(name: &str, class: &str, node: &str, size: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "local": {"path": "/mnt"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
            "status": {"phase": "Available"}})
    }

    fn wffc(name: &str) -> Value {
        json!({"metadata": {"name": name}, "provisioner": NO_PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer"})
    }

    fn binding(h: &super::super::Handle) -> VolumeBinding {
        VolumeBinding::new(VolumeBindingArgs::default(), h)
    }

    #[tokio::test]
    async fn missing_claim_is_unresolvable() {
        let h = handle(vec![], vec![], vec![]);
        let (_, st) = binding(&h).pre_filter(
            &mut CycleState::default(),
            &pod(&["data"]),
            &Snapshot::default(),
        );
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(st.message(), "persistentvolumeclaim \"data\" not found");
        let r = VolumeRestrictions {
            pvcs: h.listers.pvcs,
        };
        let (_, st) = r.pre_filter(
            &mut CycleState::default(),
            &pod(&["data"]),
            &Snapshot::default(),
        );
        assert_eq!(st.message(), "persistentvolumeclaim \"data\" not found");
    }

    #[tokio::test]
    async fn bound_local_pv_narrows_to_its_node() {
        let h = handle(
            vec![pvc("data", "local", "pv-a", true)],
            vec![local_pv("pv-a", "local", "node-a", "1Gi")],
            vec![],
        );
        let vb = binding(&h);
        let mut state = CycleState::default();
        let p = pod(&["data"]);
        let (nodes, st) = vb.pre_filter(&mut state, &p, &Snapshot::default());
        assert!(st.is_success());
        assert_eq!(nodes, Some(HashSet::from(["node-a".to_string()])));
        assert!(vb.filter(&state, &p, &node("node-a")).is_success());
        let st = vb.filter(&state, &p, &node("node-b"));
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(st.reasons, vec![REASON_NODE_CONFLICT]);
    }

    #[tokio::test]
    async fn unbound_immediate_claim_waits_for_the_pv_controller() {
        let h = handle(vec![pvc("data", "", "", false)], vec![], vec![]);
        let (_, st) = binding(&h).pre_filter(
            &mut CycleState::default(),
            &pod(&["data"]),
            &Snapshot::default(),
        );
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            st.message(),
            "pod has unbound immediate PersistentVolumeClaims"
        );
    }

    #[tokio::test]
    async fn wait_for_first_consumer_claim_finds_the_smallest_fitting_pv_on_the_node() {
        let h = handle(
            vec![pvc("data", "local", "", false)],
            vec![
                local_pv("big-a", "local", "node-a", "10Gi"),
                local_pv("small-a", "local", "node-a", "2Gi"),
                local_pv("tiny-a", "local", "node-a", "500Mi"),
                local_pv("other-class", "fast", "node-b", "10Gi"),
            ],
            vec![wffc("local")],
        );
        let vb = binding(&h);
        let mut state = CycleState::default();
        let p = pod(&["data"]);
        let (nodes, st) = vb.pre_filter(&mut state, &p, &Snapshot::default());
        assert!(st.is_success() && nodes.is_none());
        let st = vb.filter(&state, &p, &node("node-b"));
        assert_eq!(st.reasons, vec![REASON_BIND_CONFLICT]);
        assert!(vb.filter(&state, &p, &node("node-a")).is_success());
        assert!(vb.reserve(&mut state, &p, "node-a").is_success());
        let assumed = vb.assumed.lock().unwrap();
        let chosen = &assumed["u"].static_bindings[0].0;
        assert_eq!(chosen.metadata.name.as_deref(), Some("small-a"));
    }

    #[tokio::test]
    async fn read_write_once_pod_claim_in_use_conflicts() {
        let mut claim = pvc("data", "", "pv", true);
        claim["spec"]["accessModes"] = json!(["ReadWriteOncePod"]);
        let h = handle(vec![claim], vec![], vec![]);
        let r = VolumeRestrictions {
            pvcs: h.listers.pvcs,
        };
        let mut other = node("node-a");
        let user = Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "q", "namespace": "ns", "uid": "q"},
                "spec": {"containers": [{"name": "c"}],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
            )
            .unwrap(),
        )));
        other.add_pod(user.clone());
        let snap = Snapshot {
            index: [("node-a".to_string(), 0)].into_iter().collect(),
            nodes: vec![Arc::new(other.clone())],
            ..Default::default()
        };
        let mut state = CycleState::default();
        let p = pod(&["data"]);
        let (_, st) = r.pre_filter(&mut state, &p, &snap);
        assert!(st.is_success());
        let st = r.filter(&state, &p, &node("node-b"));
        assert_eq!(st.code, Code::Unschedulable);
        assert_eq!(st.reasons, vec![REASON_RWOP_CONFLICT]);
        // Preemption removing the user resolves it.
        r.remove_pod(&mut state, &p, &user, &other);
        assert!(r.filter(&state, &p, &node("node-b")).is_success());
    }
}
