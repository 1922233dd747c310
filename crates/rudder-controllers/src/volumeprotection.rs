//! Upstream's persistentvolumeclaim-protection-controller and
//! persistentvolume-protection-controller (pkg/controller/volume/pvcprotection, pvprotection):
//! a claim being deleted keeps its `kubernetes.io/pvc-protection` finalizer while a pod that is
//! not terminated uses it; a volume being deleted keeps `kubernetes.io/pv-protection` while it
//! is Bound. (The finalizers are added by the StorageObjectInUseProtection admission plugin.)

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";

/// The claims a pod's volumes use: its `persistentVolumeClaim` volumes and its generic
/// ephemeral volumes' `<pod>-<volume>` claims.
fn pod_claim_names(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral
                    .as_ref()
                    .map(|_| format!("{pod_name}-{}", v.name))
            }
        })
        .collect()
}

/// Upstream's `podIsShutDown`-aware use: a pod that has finished no longer holds its claims.
fn pod_holds_claims(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn has_finalizer<K: Resource>(obj: &K, f: &str) -> bool {
    obj.meta().finalizers.iter().flatten().any(|x| x == f)
}

/// Removes `finalizer` with a merge patch carrying the resourceVersion it was computed from,
/// so a concurrent change of the finalizers makes it fail with a conflict (and the key retry)
/// instead of dropping that change.
async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let remaining: Vec<&String> = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": remaining,
        "resourceVersion": obj.meta().resource_version,
    }});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}

struct PvcProtection {
    client: Client,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
}

pub fn start_pvc(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(PvcProtection {
        client: cx.client.clone(),
        claims: cx.informers.get::<PersistentVolumeClaim>(),
        pods: cx.informers.get::<Pod>(),
        queue: WorkQueue::new("pvcprotection", cx.metrics.clone()),
    });
    let this = c.clone();
    c.claims.add_handler(move |ch| {
        if let Change::Added(pvc) | Change::Updated { new: pvc, .. } = ch {
            if pvc.metadata.deletion_timestamp.is_some()
                && has_finalizer(pvc.as_ref(), PVC_FINALIZER)
            {
                this.queue.add(key_of(pvc.as_ref()));
            }
        }
    });
    let this = c.clone();
    // A pod that finishes or goes away may release a claim being deleted.
    c.pods.add_handler(move |ch| {
        let pod = match ch {
            Change::Deleted(p) => p,
            Change::Updated { new, .. } if !pod_holds_claims(new) => new,
            _ => return,
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for name in pod_claim_names(pod) {
            this.queue.add(format!("{ns}/{name}"));
        }
    });
    let (claims, pods, queue) = (c.claims.clone(), c.pods.clone(), c.queue.clone());
    tasks.spawn(async move {
        claims.wait_synced().await;
        pods.wait_synced().await;
        run_workers(queue, c, 1).await;
    });
}

impl Reconciler for PvcProtection {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let (ns, name) = split_key(&key);
            let Some(pvc) = self.claims.get(ns, name) else {
                return Ok(Next::Done);
            };
            if pvc.metadata.deletion_timestamp.is_none()
                || !has_finalizer(pvc.as_ref(), PVC_FINALIZER)
            {
                return Ok(Next::Done);
            }
            let in_use = self
                .pods
                .list(ns)
                .iter()
                .any(|p| pod_holds_claims(p) && pod_claim_names(p).iter().any(|c| c == name));
            if in_use {
                return Ok(Next::Done);
            }
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
            ignore_not_found(remove_finalizer(&api, pvc.as_ref(), PVC_FINALIZER).await)?;
            Ok(Next::Done)
        })
    }
}

struct PvProtection {
    client: Client,
    volumes: Arc<Informer<PersistentVolume>>,
    queue: Arc<WorkQueue>,
}

pub fn start_pv(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(PvProtection {
        client: cx.client.clone(),
        volumes: cx.informers.get::<PersistentVolume>(),
        queue: WorkQueue::new("pvprotection", cx.metrics.clone()),
    });
    let this = c.clone();
    c.volumes.add_handler(move |ch| {
        if let Change::Added(pv) | Change::Updated { new: pv, .. } = ch {
            if pv.metadata.deletion_timestamp.is_some() && has_finalizer(pv.as_ref(), PV_FINALIZER)
            {
                this.queue.add(pv.name_any());
            }
        }
    });
    let (volumes, queue) = (c.volumes.clone(), c.queue.clone());
    tasks.spawn(async move {
        volumes.wait_synced().await;
        run_workers(queue, c, 1).await;
    });
}

impl Reconciler for PvProtection {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(pv) = self.volumes.get("", &key) else {
                return Ok(Next::Done);
            };
            let bound = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            if pv.metadata.deletion_timestamp.is_none()
                || !has_finalizer(pv.as_ref(), PV_FINALIZER)
                || bound
            {
                return Ok(Next::Done);
            }
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            ignore_not_found(remove_finalizer(&api, pv.as_ref(), PV_FINALIZER).await)?;
            Ok(Next::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_of_a_pod_include_its_ephemeral_volumes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0"},
            "spec": {"containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "cfg", "configMap": {"name": "x"}},
            ]},
        }))
        .unwrap();
        assert_eq!(pod_claim_names(&pod), ["data-web-0", "web-0-scratch"]);
        assert!(pod_holds_claims(&pod));
        let mut done = pod.clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert!(!pod_holds_claims(&done));
    }
}
