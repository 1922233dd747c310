//! Static pods (upstream's file pod source): manifests in `--pod-manifest-path` run on this
//! node without the API, each mirrored into the API as a read-only "mirror pod" (annotation
//! `kubernetes.io/config.mirror`, owned by the Node) that reports its status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::{PodManager, PodUpdate};

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// How often the directory is read (upstream's `fileCheckFrequency` is 20 s).
const CHECK_EVERY: Duration = Duration::from_secs(5);

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// FNV-1a over the manifest and the node: a stable UID for a static pod, new when the file
/// changes (so an edited manifest replaces the pod, as upstream).
fn hash(bytes: &[u8], node: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut h2: u64 = 0x84222325cbf29ce4;
    for b in bytes.iter().chain(node.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
        h2 = (h2 ^ u64::from(*b))
            .wrapping_mul(0x100000001b3)
            .rotate_left(5);
    }
    format!("{h:016x}{h2:016x}")
}

/// Reads one manifest into the pod the kubelet runs (upstream's `tryDecodeSinglePod` plus
/// `applyDefaults`).
pub fn load(path: &Path, node: &str, bytes: &[u8]) -> Result<Pod, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    if value.get("kind").and_then(|k| k.as_str()) != Some("Pod") {
        return Err(format!("{}: not a Pod manifest", path.display()));
    }
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{}: the pod has no name", path.display()))?;
    let uid = hash(bytes, node);
    pod.metadata.name = Some(format!("{name}-{node}"));
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(CONFIG_HASH.into(), uid);
    ann.insert(CONFIG_SOURCE.into(), "file".into());
    ann.insert(CONFIG_SEEN.into(), jiff::Timestamp::now().to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.enable_service_links.get_or_insert(true);
    // Static pods cannot use API credentials: no service account token is mounted.
    spec.automount_service_account_token = Some(false);
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
    Ok(pod)
}

fn mirror_of(pod: &Pod, node_uid: &str, node: &str) -> Pod {
    let mut m = pod.clone();
    m.metadata.uid = None;
    m.metadata.resource_version = None;
    m.status = None;
    let hash = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH).cloned())
        .unwrap_or_default();
    m.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR.into(), hash);
    m.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_string(),
            uid: node_uid.to_string(),
            // As upstream's kubelet: NodeRestriction admits only a controller reference.
            controller: Some(true),
            block_owner_deletion: None,
        },
    ]);
    m
}

impl PodManager {
    /// Reads the manifest directory, runs what it holds and keeps a mirror pod for each.
    pub async fn run_static_pods(self: Arc<Self>, dir: PathBuf, node_uid: String) {
        let mut running: BTreeMap<PathBuf, Arc<Pod>> = BTreeMap::new();
        let mut reported: BTreeMap<PathBuf, String> = BTreeMap::new();
        loop {
            let mut seen: BTreeMap<PathBuf, Arc<Pod>> = BTreeMap::new();
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                paths.sort();
                for p in paths {
                    let hidden = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_none_or(|n| n.starts_with('.'));
                    if hidden || !p.is_file() {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&p) else {
                        continue;
                    };
                    match load(&p, &self.cfg.node_name, &bytes) {
                        Ok(pod) => {
                            reported.remove(&p);
                            let keep = running
                                .get(&p)
                                .filter(|old| old.metadata.uid == pod.metadata.uid)
                                .cloned();
                            seen.insert(p, keep.unwrap_or_else(|| Arc::new(pod)));
                        }
                        Err(e) => {
                            if reported.get(&p) != Some(&e) {
                                tracing::warn!(error = %e, "cannot read static pod manifest");
                                reported.insert(p.clone(), e);
                            }
                            // A broken edit keeps the pod that was running.
                            if let Some(old) = running.get(&p) {
                                seen.insert(p, old.clone());
                            }
                        }
                    }
                }
            }
            for (path, old) in &running {
                let replaced = seen
                    .get(path)
                    .is_none_or(|p| p.metadata.uid != old.metadata.uid);
                if replaced {
                    self.dispatch(PodUpdate {
                        pod: old.clone(),
                        removed: true,
                    });
                    self.delete_mirror(old).await;
                }
            }
            for (path, pod) in &seen {
                let new = running
                    .get(path)
                    .is_none_or(|p| p.metadata.uid != pod.metadata.uid);
                if new {
                    tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), "static pod");
                    self.dispatch(PodUpdate {
                        pod: pod.clone(),
                        removed: false,
                    });
                }
                self.ensure_mirror(pod, &node_uid).await;
            }
            running = seen;
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    async fn ensure_mirror(&self, pod: &Pod, node_uid: &str) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let hash = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_HASH))
            .cloned();
        match api.get_opt(&name).await {
            Ok(Some(m)) => {
                let mirror_hash = m
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CONFIG_MIRROR))
                    .cloned();
                let stale = mirror_hash.is_none()
                    || mirror_hash != hash
                    || m.metadata.deletion_timestamp.is_some();
                if !stale {
                    return;
                }
                // An outdated mirror (or a regular pod squatting the name) goes first.
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: m.metadata.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let _ = api.delete(&name, &dp).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading mirror pod failed");
                return;
            }
        }
        let mirror = mirror_of(pod, node_uid, &self.cfg.node_name);
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => {
                // The mirror starts Pending: the next sync writes the running pod's status.
                tracing::info!(pod = %name, uid = ?created.metadata.uid, "created mirror pod");
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.forget_status(uid);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "creating mirror pod failed"),
        }
    }

    async fn delete_mirror(&self, pod: &Pod) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        let _ = api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &dp)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_pods() {
        let y = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let p = load(Path::new("/m/web.yaml"), "n1", y).unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let ann = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[CONFIG_SOURCE], "file");
        assert_eq!(&ann[CONFIG_HASH], p.metadata.uid.as_ref().unwrap());
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        // Same file, same UID; another node or an edit, another one.
        let again = load(Path::new("/m/web.yaml"), "n1", y).unwrap();
        assert_eq!(again.metadata.uid, p.metadata.uid);
        let other = load(Path::new("/m/web.yaml"), "n2", y).unwrap();
        assert_ne!(other.metadata.uid, p.metadata.uid);
        let m = mirror_of(&p, "node-uid", "n1");
        assert_eq!(
            m.metadata.annotations.as_ref().unwrap()[CONFIG_MIRROR],
            *p.metadata.uid.as_ref().unwrap()
        );
        assert!(m.metadata.uid.is_none());
        assert_eq!(
            m.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Node"
        );
        assert!(load(Path::new("/m/x.yaml"), "n1", b"kind: Service\n").is_err());
        assert!(load(Path::new("/m/x.yaml"), "n1", b"kind: Pod\nspec: {}\n")
            .unwrap_err()
            .contains("no name"));
    }
}
