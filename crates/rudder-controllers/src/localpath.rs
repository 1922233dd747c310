//! The built-in dynamic provisioner of the default StorageClass, as k3s ships
//! rancher/local-path-provisioner: the `local-path` class (default, WaitForFirstConsumer,
//! reclaim Delete) and, for each claim the PV controller hands to `rancher.io/local-path`, a
//! hostPath PV on the node the scheduler selected (`<dir>/pvc-<uid>_<ns>_<claim>`, created
//! by the node agent as `DirectoryOrCreate`). It speaks the external-provisioner protocol
//! (sig-storage-lib-external-provisioner) through the API only, so the PV controller binds
//! what it makes, and Released volumes of its own are deleted.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::controller::{
    ignore_not_found, is_conflict, run_workers, Next, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::pvbinder::{ANN_PROVISIONED_BY, ANN_SELECTED_NODE, ANN_STORAGE_PROVISIONER};
use crate::workqueue::WorkQueue;

pub const PROVISIONER: &str = "rancher.io/local-path";
pub const CLASS: &str = "local-path";
/// Where volumes live on each node (k3s: /var/lib/rancher/k3s/storage).
pub const DEFAULT_DIR: &str = "/var/lib/rudder/storage";
const ANN_LOCAL_SELECTED_NODE: &str = "local.path.provisioner/selected-node";

/// The default StorageClass k3s's local-storage manifest creates.
pub fn storage_class() -> serde_json::Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    })
}

/// The PV provisioned for `claim` on `node` with the class's reclaim policy.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    node: &str,
    reclaim: &str,
    dir: &str,
) -> serde_json::Value {
    let uid = claim.metadata.uid.as_deref().unwrap_or("");
    let ns = claim.metadata.namespace.as_deref().unwrap_or("");
    let name = claim.metadata.name.as_deref().unwrap_or("");
    let spec = claim.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pvc-{uid}"),
            "annotations": {
                ANN_PROVISIONED_BY: PROVISIONER,
                ANN_LOCAL_SELECTED_NODE: node,
            },
        },
        "spec": {
            "capacity": {"storage": request},
            "accessModes": spec.access_modes,
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": CLASS,
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": ns,
                "name": name,
                "uid": uid,
                "resourceVersion": claim.metadata.resource_version,
            },
            "hostPath": {
                "path": format!("{dir}/pvc-{uid}_{ns}_{name}"),
                "type": "DirectoryOrCreate",
            },
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]},
            ]}]}},
        },
    })
}

struct LocalPath {
    client: Client,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    volumes: Arc<Informer<PersistentVolume>>,
    classes: Arc<Informer<StorageClass>>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
    /// The directory volumes are made under on the node.
    dir: String,
}

/// Claim keys are `namespace/name`; released volumes are queued as `pv:<name>`.
const VOLUME_KEY: &str = "pv:";

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(LocalPath {
        client: cx.client.clone(),
        claims: cx.informers.get::<PersistentVolumeClaim>(),
        volumes: cx.informers.get::<PersistentVolume>(),
        classes: cx.informers.get::<StorageClass>(),
        queue: WorkQueue::new("local-path-provisioner", cx.metrics.clone()),
        recorder: Recorder::new(
            cx.client.clone(),
            &format!("{PROVISIONER}_{}", cx.host),
            &cx.host,
        ),
        dir: cx.options.local_storage_path.clone(),
    });
    let this = c.clone();
    c.claims.add_handler(move |ch| {
        if let Change::Added(pvc) | Change::Updated { new: pvc, .. } = ch {
            if pvc
                .annotations()
                .get(ANN_STORAGE_PROVISIONER)
                .map(String::as_str)
                == Some(PROVISIONER)
            {
                this.queue.add(key_of(pvc.as_ref()));
            }
        }
    });
    let this = c.clone();
    c.volumes.add_handler(move |ch| {
        if let Change::Added(pv) | Change::Updated { new: pv, .. } = ch {
            if pv.annotations().get(ANN_PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER) {
                this.queue.add(format!("{VOLUME_KEY}{}", pv.name_any()));
            }
        }
    });
    let client = cx.client.clone();
    let (claims, volumes, classes, queue) = (
        c.claims.clone(),
        c.volumes.clone(),
        c.classes.clone(),
        c.queue.clone(),
    );
    tasks.spawn(async move {
        ensure_class(&client).await;
        claims.wait_synced().await;
        volumes.wait_synced().await;
        classes.wait_synced().await;
        run_workers(queue, c, 2).await;
    });
}

/// The class exists from the provisioner's start, as k3s's manifest makes it at server start.
async fn ensure_class(client: &Client) {
    let api: Api<StorageClass> = Api::all(client.clone());
    let class: StorageClass = match serde_json::from_value(storage_class()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the local-path StorageClass literal does not decode");
            return;
        }
    };
    for attempt in 0..30u32 {
        match api.create(&PostParams::default(), &class).await {
            Ok(_) => return,
            Err(e) if is_conflict(&e) => return,
            Err(e) => {
                tracing::warn!(error = %e, attempt, "creating the local-path StorageClass");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

impl Reconciler for LocalPath {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            match key.strip_prefix(VOLUME_KEY) {
                Some(name) => self.sync_volume(name).await,
                None => self.sync_claim(&key).await,
            }
        })
    }
}

impl LocalPath {
    async fn sync_claim(&self, key: &str) -> ReconcileResult {
        let (ns, name) = split_key(key);
        let Some(claim) = self.claims.get(ns, name) else {
            return Ok(Next::Done);
        };
        let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound");
        let unbound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .is_none_or(str::is_empty);
        if !pending || !unbound || claim.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        if self.volumes.get("", &format!("pvc-{uid}")).is_some() {
            return Ok(Next::Done);
        }
        let class_name = crate::pvbinder::claim_class(&claim);
        let Some(class) = self.classes.get("", class_name) else {
            return Ok(Next::Done);
        };
        if class.provisioner != PROVISIONER {
            return Ok(Next::Done);
        }
        let Some(node) = claim.annotations().get(ANN_SELECTED_NODE).cloned() else {
            self.recorder.event(
                claim.as_ref(),
                "Warning",
                "ProvisioningFailed",
                "failed to provision volume with StorageClass \"local-path\": configuration error, no node was specified".into(),
            );
            return Ok(Next::Done);
        };
        self.recorder.event(
            claim.as_ref(),
            "Normal",
            "Provisioning",
            format!("External provisioner is provisioning volume for claim \"{ns}/{name}\""),
        );
        let reclaim = class.reclaim_policy.as_deref().unwrap_or("Delete");
        let volume: PersistentVolume =
            serde_json::from_value(volume_for(&claim, &node, reclaim, &self.dir))
                .map_err(|e| crate::controller::ReconcileError::Other(e.to_string()))?;
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &volume).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Next::Done),
            Err(e) => return Err(e.into()),
        }
        self.recorder.event(
            claim.as_ref(),
            "Normal",
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume pvc-{uid}"),
        );
        Ok(Next::Done)
    }

    /// A Released volume of ours with reclaim policy Delete is deleted (only that
    /// incarnation: UID precondition).
    async fn sync_volume(&self, name: &str) -> ReconcileResult {
        let Some(pv) = self.volumes.get("", name) else {
            return Ok(Next::Done);
        };
        let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        if !released || !delete || pv.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pv.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        ignore_not_found(api.delete(name, &dp).await)?;
        Ok(Next::Done)
    }
}

/// Annotations as a map, for tests.
#[cfg(test)]
fn ann(v: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    serde_json::from_value(v["metadata"]["annotations"].clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_is_a_host_path_on_the_selected_node_bound_to_the_claim() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "1234", "resourceVersion": "7"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                "resources": {"requests": {"storage": "2Gi"}}},
        }))
        .unwrap();
        let v = volume_for(&claim, "node-1", "Delete", DEFAULT_DIR);
        assert_eq!(v["metadata"]["name"], "pvc-1234");
        assert_eq!(ann(&v)[ANN_PROVISIONED_BY], PROVISIONER);
        assert_eq!(
            v["spec"]["hostPath"],
            json!({"path": "/var/lib/rudder/storage/pvc-1234_ns_data", "type": "DirectoryOrCreate"})
        );
        assert_eq!(v["spec"]["capacity"]["storage"], "2Gi");
        assert_eq!(v["spec"]["claimRef"]["uid"], "1234");
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
                ["values"],
            json!(["node-1"])
        );
        // It decodes as a PV.
        let _: PersistentVolume = serde_json::from_value(v).unwrap();
    }
}
