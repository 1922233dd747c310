//! Upstream's persistentvolume-binder-controller (pkg/controller/volume/persistentvolume,
//! `pv_controller.go`): binds claims to volumes (the smallest Available PV that matches the
//! claim's class, access modes, size, volume mode and selector), asks external provisioners
//! for a volume when none matches, finishes the bindings the scheduler starts for
//! WaitForFirstConsumer claims, and keeps both sides' phases (Pending/Bound/Lost for claims,
//! Available/Bound/Released/Failed for volumes). The two halves of a binding are written in
//! upstream's order (volume, volume status, claim, claim status), so a crash in between is
//! finished by the next sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::selector_matches;
use crate::workqueue::WorkQueue;

pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// `volume.beta.kubernetes.io/storage-class`, else `spec.storageClassName` (upstream's
/// `GetPersistentVolumeClaimClass`).
pub fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    pvc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
        .or(pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_ref()))
        .map_or("", String::as_str)
}

pub fn volume_class(pv: &PersistentVolume) -> &str {
    pv.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_BETA_STORAGE_CLASS))
        .or(pv.spec.as_ref().and_then(|s| s.storage_class_name.as_ref()))
        .map_or("", String::as_str)
}

fn annotation<'a, K: ResourceExt>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

fn claim_volume_name(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn volume_phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn claim_phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether `pv.spec.claimRef` names this claim (and this incarnation of it, if the ref has a
/// UID): upstream's `IsVolumeBoundToClaim`.
pub fn volume_bound_to_claim(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name.as_deref() == pvc.metadata.name.as_deref()
        && r.namespace.as_deref() == pvc.metadata.namespace.as_deref()
        && (r.uid.as_deref().is_none_or(str::is_empty) || r.uid == pvc.metadata.uid)
}

fn storage_bytes(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| rudder_api::quantity::parse(q.0.trim()).ok())
        .map_or(0, |q| i128::from(q.value()))
}

fn requested_bytes(pvc: &PersistentVolumeClaim) -> i128 {
    storage_bytes(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    )
}

fn capacity_bytes(pv: &PersistentVolume) -> i128 {
    storage_bytes(
        pv.spec
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage")),
    )
}

fn volume_mode(m: Option<&String>) -> &str {
    m.map_or("Filesystem", String::as_str)
}

/// Upstream's `CheckAccessModes`: the volume offers every mode the claim asks for.
fn access_modes_ok(pvc: &PersistentVolumeClaim, pv: &PersistentVolume) -> bool {
    let offered: Vec<&String> = pv
        .spec
        .iter()
        .flat_map(|s| s.access_modes.iter().flatten())
        .collect();
    pvc.spec
        .iter()
        .flat_map(|s| s.access_modes.iter().flatten())
        .all(|m| offered.contains(&m))
}

fn node_accepts(pv: &PersistentVolume, node: &Node) -> bool {
    match pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    {
        None => true,
        Some(sel) => rudder_api::selector::node::selector_matches(
            sel,
            node.metadata.labels.as_ref(),
            node.metadata.name.as_deref().unwrap_or(""),
        ),
    }
}

/// Upstream's `FindMatchingVolume`: a volume already pre-bound to the claim wins; else the
/// smallest Available, unclaimed one of the claim's class that satisfies it. With `node` the
/// volume must also be reachable from it; without one, a WaitForFirstConsumer claim
/// (`delay_binding`) only takes a pre-bound volume: the scheduler chooses the others.
pub fn find_matching_volume<'a>(
    pvc: &PersistentVolumeClaim,
    volumes: &'a [Arc<PersistentVolume>],
    node: Option<&Node>,
    delay_binding: bool,
) -> Option<&'a Arc<PersistentVolume>> {
    let requested = requested_bytes(pvc);
    let class = claim_class(pvc);
    let mode = volume_mode(pvc.spec.as_ref().and_then(|s| s.volume_mode.as_ref()));
    let selector = pvc.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<&Arc<PersistentVolume>> = None;
    for pv in volumes {
        if volume_mode(pv.spec.as_ref().and_then(|s| s.volume_mode.as_ref())) != mode {
            continue;
        }
        if node.is_some_and(|n| !node_accepts(pv, n)) {
            continue;
        }
        if volume_bound_to_claim(pv, pvc) {
            return Some(pv);
        }
        if node.is_none() && delay_binding {
            continue;
        }
        let claimed = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some();
        if claimed
            || volume_phase(pv) != "Available"
            || pv.metadata.deletion_timestamp.is_some()
            || volume_class(pv) != class
            || !access_modes_ok(pvc, pv)
            || capacity_bytes(pv) < requested
            || selector.is_some_and(|s| !selector_matches(s, pv.metadata.labels.as_ref()))
        {
            continue;
        }
        if best.is_none_or(|b| capacity_bytes(pv) < capacity_bytes(b)) {
            best = Some(pv);
        }
    }
    best
}

struct Binder {
    client: Client,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    volumes: Arc<Informer<PersistentVolume>>,
    classes: Arc<Informer<StorageClass>>,
    claim_queue: Arc<WorkQueue>,
    volume_queue: Arc<WorkQueue>,
    recorder: Recorder,
}

struct ClaimWorker(Arc<Binder>);
struct VolumeWorker(Arc<Binder>);

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let b = Arc::new(Binder {
        client: cx.client.clone(),
        claims: cx.informers.get::<PersistentVolumeClaim>(),
        volumes: cx.informers.get::<PersistentVolume>(),
        classes: cx.informers.get::<StorageClass>(),
        claim_queue: WorkQueue::new("claims", cx.metrics.clone()),
        volume_queue: WorkQueue::new("volumes", cx.metrics.clone()),
        recorder: Recorder::new(cx.client.clone(), "persistentvolume-controller", &cx.host),
    });
    let this = b.clone();
    b.claims.add_handler(move |ch| {
        let (Change::Added(c) | Change::Updated { new: c, .. } | Change::Deleted(c)) = ch;
        this.claim_queue.add(key_of(c.as_ref()));
        // The claim's volume learns it was bound, or that its claim is gone.
        let volume = claim_volume_name(c);
        if !volume.is_empty() {
            this.volume_queue.add(volume.to_string());
        }
    });
    let this = b.clone();
    b.volumes.add_handler(move |ch| {
        let (Change::Added(v) | Change::Updated { new: v, .. } | Change::Deleted(v)) = ch;
        this.volume_queue.add(v.name_any());
        if let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
            this.claim_queue.add(format!(
                "{}/{}",
                r.namespace.as_deref().unwrap_or(""),
                r.name.as_deref().unwrap_or("")
            ));
        }
        // A new volume may be what a pending claim waits for.
        if matches!(ch, Change::Added(_)) {
            for c in this.claims.list_all() {
                if claim_phase(&c) == "Pending" && claim_volume_name(&c).is_empty() {
                    this.claim_queue.add(key_of(c.as_ref()));
                }
            }
        }
    });
    let (claims, volumes, classes) = (b.claims.clone(), b.volumes.clone(), b.classes.clone());
    tasks.spawn(async move {
        claims.wait_synced().await;
        volumes.wait_synced().await;
        classes.wait_synced().await;
        let (cq, vq) = (b.claim_queue.clone(), b.volume_queue.clone());
        tokio::join!(
            run_workers(cq, Arc::new(ClaimWorker(b.clone())), 2),
            run_workers(vq, Arc::new(VolumeWorker(b)), 2),
        );
    });
}

impl Reconciler for ClaimWorker {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let (ns, name) = split_key(&key);
            let Some(claim) = self.0.claims.get(ns, name) else {
                return Ok(Next::Done);
            };
            if annotation(claim.as_ref(), ANN_BIND_COMPLETED).is_some() {
                self.0.sync_bound_claim(&claim).await
            } else {
                self.0.sync_unbound_claim(&claim).await
            }
        })
    }
}

impl Reconciler for VolumeWorker {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(volume) = self.0.volumes.get("", &key) else {
                return Ok(Next::Done);
            };
            self.0.sync_volume(&volume).await
        })
    }
}

impl Binder {
    fn claims_api(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn volumes_api(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    /// Upstream's `syncUnboundClaim`.
    async fn sync_unbound_claim(&self, claim: &Arc<PersistentVolumeClaim>) -> ReconcileResult {
        let volume_name = claim_volume_name(claim);
        if volume_name.is_empty() {
            let class_name = claim_class(claim);
            let class = (!class_name.is_empty())
                .then(|| self.classes.get("", class_name))
                .flatten();
            let delayed = class
                .as_ref()
                .and_then(|c| c.volume_binding_mode.as_deref())
                == Some("WaitForFirstConsumer");
            let volumes = self.volumes.list_all();
            if let Some(volume) = find_matching_volume(claim, &volumes, None, delayed) {
                let volume = volume.clone();
                return self.bind(&volume, claim).await;
            }
            let provisioning = annotation(claim.as_ref(), ANN_SELECTED_NODE).is_some();
            if delayed && !provisioning {
                // The scheduler binds or provisions once a pod using the claim is placed.
                self.recorder.event(
                    claim.as_ref(),
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding".into(),
                );
            } else if !class_name.is_empty() {
                // Upstream's `findProvisionablePlugin`: there are no in-tree provisioners
                // here, so `kubernetes.io/…` names match no plugin; others are external.
                match class {
                    None => self.recorder.event(
                        claim.as_ref(),
                        "Warning",
                        "ProvisioningFailed",
                        format!("storageclass.storage.k8s.io {class_name:?} not found"),
                    ),
                    Some(c) if c.provisioner.starts_with("kubernetes.io/") => self.recorder.event(
                        claim.as_ref(),
                        "Warning",
                        "ProvisioningFailed",
                        format!("no volume plugin matched name: {}", c.provisioner),
                    ),
                    Some(c) => self.provision(claim, &c.provisioner).await?,
                }
            } else {
                self.recorder.event(
                    claim.as_ref(),
                    "Normal",
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set"
                        .into(),
                );
            }
            return self.set_claim_phase(claim, "Pending").await;
        }
        // Pre-bound to a volume by the user (or the scheduler's half of a binding).
        let Some(volume) = self.volumes.get("", volume_name) else {
            return self.set_claim_phase(claim, "Pending").await;
        };
        let refusal = format!("volume {volume_name:?} already bound to a different claim.");
        self.bind_unless_taken(&volume, claim, ("FailedBinding", refusal, "Pending"))
            .await
    }

    /// Binds (or finishes binding) `claim` to `volume` unless the volume is another claim's;
    /// then records `(reason, message)` and sets the claim's `phase`.
    async fn bind_unless_taken(
        &self,
        volume: &Arc<PersistentVolume>,
        claim: &Arc<PersistentVolumeClaim>,
        (reason, message, phase): (&str, String, &str),
    ) -> ReconcileResult {
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if claim_ref.is_none() || volume_bound_to_claim(volume, claim) {
            // Every write of a binding is skipped when already done.
            return self.bind(volume, claim).await;
        }
        self.recorder
            .event(claim.as_ref(), "Warning", reason, message);
        self.set_claim_phase(claim, phase).await
    }

    /// Upstream's `syncBoundClaim`.
    async fn sync_bound_claim(&self, claim: &Arc<PersistentVolumeClaim>) -> ReconcileResult {
        let volume_name = claim_volume_name(claim);
        if volume_name.is_empty() {
            return self
                .lose_claim(
                    claim,
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
                )
                .await;
        }
        let Some(volume) = self.volumes.get("", volume_name) else {
            return self
                .lose_claim(
                    claim,
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
                .await;
        };
        let refusal =
            "Two claims are bound to the same volume, this one is bound incorrectly".to_string();
        self.bind_unless_taken(&volume, claim, ("ClaimMisbound", refusal, "Lost"))
            .await
    }

    async fn lose_claim(&self, claim: &Arc<PersistentVolumeClaim>, msg: &str) -> ReconcileResult {
        if claim_phase(claim) != "Lost" {
            self.recorder
                .event(claim.as_ref(), "Warning", "ClaimLost", msg.into());
        }
        self.set_claim_phase(claim, "Lost").await
    }

    /// Upstream's `syncVolume`.
    async fn sync_volume(&self, volume: &Arc<PersistentVolume>) -> ReconcileResult {
        let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
            return self.set_volume_phase(volume, "Available").await;
        };
        let ns = claim_ref.namespace.as_deref().unwrap_or("");
        let name = claim_ref.name.as_deref().unwrap_or("");
        let claim = self.claims.get(ns, name).filter(|c| {
            claim_ref.uid.as_deref().is_none_or(str::is_empty) || c.metadata.uid == claim_ref.uid
        });
        if claim_ref.uid.as_deref().is_none_or(str::is_empty) {
            // Pre-bound by the user, not bound yet: the claim's sync binds it.
            if let Some(c) = &claim {
                self.claim_queue.add(key_of(c.as_ref()));
            }
            return self.set_volume_phase(volume, "Available").await;
        }
        let Some(claim) = claim else {
            // The claim is gone: the volume is released to its reclaim policy.
            return self.release(volume).await;
        };
        let bound_to = claim_volume_name(&claim);
        if bound_to.is_empty() {
            // The volume side is written first; the claim's sync writes its side.
            self.claim_queue.add(key_of(claim.as_ref()));
            return Ok(Next::Done);
        }
        if bound_to == volume.name_any() {
            return self.set_volume_phase(volume, "Bound").await;
        }
        // The claim is bound to another volume: a binding of ours that lost the race is
        // undone; a user's pre-binding is left for the user.
        if annotation(volume.as_ref(), ANN_BOUND_BY_CONTROLLER).is_some() {
            let mut v = (**volume).clone();
            if let Some(s) = v.spec.as_mut() {
                s.claim_ref = None;
            }
            v.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .remove(ANN_BOUND_BY_CONTROLLER);
            ignore_not_found(
                self.volumes_api()
                    .replace(&v.name_any(), &PostParams::default(), &v)
                    .await,
            )?;
            return Ok(Next::Done);
        }
        self.set_volume_phase(volume, "Released").await
    }

    /// A released volume: `Retain` keeps it Released; `Delete` is the provisioner's job for
    /// volumes an external provisioner made (it watches for Released volumes of its own);
    /// anything else has no in-tree plugin here to delete or recycle it, as upstream reports.
    async fn release(&self, volume: &Arc<PersistentVolume>) -> ReconcileResult {
        if volume_phase(volume) != "Released" && volume_phase(volume) != "Failed" {
            self.set_volume_phase(volume, "Released").await?;
        }
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        let external = annotation(volume.as_ref(), ANN_PROVISIONED_BY).is_some();
        match policy {
            "Retain" => Ok(Next::Done),
            "Delete" if external => Ok(Next::Done),
            other => {
                if volume_phase(volume) != "Failed" {
                    let (reason, msg) = if other == "Recycle" {
                        (
                            "VolumeFailedRecycle",
                            "No recycler plugin found for the volume!".to_string(),
                        )
                    } else {
                        (
                            "VolumeFailedDelete",
                            format!(
                                "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                                volume.name_any()
                            ),
                        )
                    };
                    self.recorder
                        .event(volume.as_ref(), "Warning", reason, msg.clone());
                    self.set_volume_status(volume, "Failed", Some(msg)).await?;
                }
                Ok(Next::Done)
            }
        }
    }

    /// Upstream's `provisionClaim` for external provisioners: the claim is annotated with the
    /// provisioner that should make its volume.
    async fn provision(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        provisioner: &str,
    ) -> Result<(), crate::controller::ReconcileError> {
        let has = |k| annotation(claim.as_ref(), k) == Some(provisioner);
        if !(has(ANN_STORAGE_PROVISIONER) && has(ANN_BETA_STORAGE_PROVISIONER)) {
            let mut c = (**claim).clone();
            let ann = c.metadata.annotations.get_or_insert_with(BTreeMap::new);
            ann.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.into());
            ann.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.into());
            let ns = c.namespace().unwrap_or_default();
            ignore_not_found(
                self.claims_api(&ns)
                    .replace(&c.name_any(), &PostParams::default(), &c)
                    .await,
            )?;
        }
        self.recorder.event(
            claim.as_ref(),
            "Normal",
            "ExternalProvisioning",
            format!("Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."),
        );
        Ok(())
    }

    /// Upstream's `bind`: volume → volume status → claim → claim status, each write skipped
    /// when already done.
    async fn bind(
        &self,
        volume: &Arc<PersistentVolume>,
        claim: &Arc<PersistentVolumeClaim>,
    ) -> ReconcileResult {
        let vname = volume.name_any();
        // 1. The volume's claimRef.
        let mut volume = (**volume).clone();
        let ref_ok = volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| {
                r.uid == claim.metadata.uid
                    && r.name == claim.metadata.name
                    && r.namespace == claim.metadata.namespace
            });
        if !ref_ok {
            let had_ref = volume
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .is_some();
            let spec = volume.spec.get_or_insert_with(Default::default);
            spec.claim_ref = Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                ..Default::default()
            });
            if !had_ref {
                volume
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            volume = self
                .volumes_api()
                .replace(&vname, &PostParams::default(), &volume)
                .await?;
        }
        // 2. The volume's phase.
        if volume_phase(&volume) != "Bound" {
            volume.status = Some(PersistentVolumeStatus {
                phase: Some("Bound".into()),
                ..volume.status.clone().unwrap_or_default()
            });
            volume = self
                .volumes_api()
                .replace_status(&vname, &PostParams::default(), &volume)
                .await?;
        }
        // 3. The claim's volumeName and annotations.
        let ns = claim.namespace().unwrap_or_default();
        let cname = claim.name_any();
        let mut claim = (**claim).clone();
        let ann_ok = annotation(&claim, ANN_BIND_COMPLETED).is_some();
        if claim_volume_name(&claim) != vname || !ann_ok {
            let was_empty = claim_volume_name(&claim).is_empty();
            claim.spec.get_or_insert_with(Default::default).volume_name = Some(vname.clone());
            let ann = claim.metadata.annotations.get_or_insert_with(BTreeMap::new);
            ann.insert(ANN_BIND_COMPLETED.into(), "yes".into());
            if was_empty {
                ann.insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            claim = self
                .claims_api(&ns)
                .replace(&cname, &PostParams::default(), &claim)
                .await?;
        }
        // 4. The claim's status from the volume.
        let modes = volume.spec.as_ref().and_then(|s| s.access_modes.clone());
        let capacity = volume.spec.as_ref().and_then(|s| s.capacity.clone());
        let status = claim.status.clone().unwrap_or_default();
        if status.phase.as_deref() != Some("Bound")
            || status.access_modes != modes
            || status.capacity != capacity
        {
            claim.status = Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                access_modes: modes,
                capacity,
                ..status
            });
            self.claims_api(&ns)
                .replace_status(&cname, &PostParams::default(), &claim)
                .await?;
        }
        Ok(Next::Done)
    }

    async fn set_claim_phase(
        &self,
        claim: &Arc<PersistentVolumeClaim>,
        phase: &str,
    ) -> ReconcileResult {
        if claim_phase(claim) == phase {
            return Ok(Next::Done);
        }
        let mut c = (**claim).clone();
        let mut status = c.status.clone().unwrap_or_default();
        status.phase = Some(phase.into());
        if phase == "Lost" || phase == "Pending" {
            // Upstream clears what only a bound claim has.
            status.access_modes = None;
            status.capacity = None;
        }
        c.status = Some(status);
        let ns = c.namespace().unwrap_or_default();
        ignore_not_found(
            self.claims_api(&ns)
                .replace_status(&c.name_any(), &PostParams::default(), &c)
                .await,
        )?;
        Ok(Next::Done)
    }

    async fn set_volume_phase(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
    ) -> ReconcileResult {
        if volume_phase(volume) == phase {
            return Ok(Next::Done);
        }
        self.set_volume_status(volume, phase, None).await?;
        Ok(Next::Done)
    }

    async fn set_volume_status(
        &self,
        volume: &Arc<PersistentVolume>,
        phase: &str,
        message: Option<String>,
    ) -> Result<(), crate::controller::ReconcileError> {
        let mut v = (**volume).clone();
        let mut status = v.status.clone().unwrap_or_default();
        status.phase = Some(phase.into());
        status.message = message;
        status.reason = None;
        v.status = Some(status);
        ignore_not_found(
            self.volumes_api()
                .replace_status(&v.name_any(), &PostParams::default(), &v)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(
        name: &str,
        class: &str,
        size: &str,
        modes: &[&str],
        phase: &str,
    ) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"tier": if size == "5Gi" {"gold"} else {"plain"}}},
                "spec": {"storageClassName": class, "capacity": {"storage": size},
                    "accessModes": modes, "hostPath": {"path": "/tmp"}},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    fn pvc(name: &str, class: &str, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"storageClassName": class, "accessModes": modes,
                "resources": {"requests": {"storage": size}}},
        }))
        .unwrap()
    }

    fn name(v: Option<&Arc<PersistentVolume>>) -> Option<String> {
        v.map(|v| v.name_any())
    }

    #[test]
    fn the_smallest_matching_available_volume_is_chosen() {
        let volumes = vec![
            pv("big", "", "10Gi", &["ReadWriteOnce"], "Available"),
            pv(
                "gold",
                "",
                "5Gi",
                &["ReadWriteOnce", "ReadOnlyMany"],
                "Available",
            ),
            pv("small", "", "1Gi", &["ReadWriteOnce"], "Available"),
            pv("bound", "", "3Gi", &["ReadWriteOnce"], "Bound"),
            pv(
                "other-class",
                "fast",
                "3Gi",
                &["ReadWriteOnce"],
                "Available",
            ),
        ];
        let c = pvc("c", "", "2Gi", &["ReadWriteOnce"]);
        assert_eq!(
            name(find_matching_volume(&c, &volumes, None, false)),
            Some("gold".into())
        );
        // Access modes must all be offered.
        let c = pvc("c", "", "2Gi", &["ReadWriteMany"]);
        assert_eq!(name(find_matching_volume(&c, &volumes, None, false)), None);
        // The class must match exactly ("" only matches "").
        let c = pvc("c", "fast", "1Gi", &["ReadWriteOnce"]);
        assert_eq!(
            name(find_matching_volume(&c, &volumes, None, false)),
            Some("other-class".into())
        );
        // A selector narrows by the volume's labels.
        let mut c = pvc("c", "", "1Gi", &["ReadWriteOnce"]);
        c.spec.as_mut().unwrap().selector =
            Some(serde_json::from_value(json!({"matchLabels": {"tier": "plain"}})).unwrap());
        assert_eq!(
            name(find_matching_volume(&c, &volumes, None, false)),
            Some("small".into())
        );
    }

    #[test]
    fn a_volume_pre_bound_to_the_claim_wins_even_if_larger() {
        let mut pre: PersistentVolume =
            (*pv("pre", "", "50Gi", &["ReadWriteOnce"], "Available")).clone();
        pre.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("c".into()),
            ..Default::default()
        });
        let volumes = vec![
            pv("small", "", "1Gi", &["ReadWriteOnce"], "Available"),
            Arc::new(pre),
        ];
        let c = pvc("c", "", "1Gi", &["ReadWriteOnce"]);
        assert_eq!(
            name(find_matching_volume(&c, &volumes, None, false)),
            Some("pre".into())
        );
        // Another claim does not get it.
        let other = pvc("other", "", "1Gi", &["ReadWriteOnce"]);
        assert_eq!(
            name(find_matching_volume(&other, &volumes, None, false)),
            Some("small".into())
        );
    }
}
