//! The Node object: registration, status (capacity, conditions, addresses, nodeInfo, images)
//! and the Lease, as upstream's kubelet keeps them (`kubelet_node_status.go`,
//! `nodestatus/setters.go`, `nodelease`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::config::{HostInfo, KubeletConfig};
use crate::cri::Cri;

const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's hard eviction default `memory.available<100Mi`, which allocatable leaves out.
const EVICTION_MEMORY_BYTES: i64 = 100 << 20;
/// … and `nodefs.available<10%`.
const EVICTION_NODEFS_PERCENT: i64 = 10;
/// The node status reports at most this many images (upstream's `nodeStatusMaxImages`).
const MAX_IMAGES: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

fn reserved_milli(cfg: &KubeletConfig, resource: &str) -> i64 {
    [&cfg.system_reserved, &cfg.kube_reserved]
        .iter()
        .filter_map(|m| m.get(resource))
        .filter_map(|q| rudder_api::quantity::parse(q).ok())
        .map(|q| {
            if resource == "cpu" {
                q.milli_value()
            } else {
                q.value()
            }
        })
        .sum()
}

fn cpu_string(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn ki(bytes: i64) -> String {
    format!("{}Ki", bytes.max(0) / 1024)
}

/// capacity and allocatable (capacity − reserved − hard eviction thresholds).
pub fn resources(cfg: &KubeletConfig, host: &HostInfo) -> (Value, Value) {
    let cpu = host.cpus as i64 * 1000;
    let mem = host.memory_bytes as i64;
    let disk = host.ephemeral_storage_bytes as i64;
    let capacity = json!({
        "cpu": cpu_string(cpu),
        "memory": ki(mem),
        "ephemeral-storage": ki(disk),
        "pods": cfg.max_pods.to_string(),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    let alloc_cpu = (cpu - reserved_milli(cfg, "cpu")).max(0);
    let alloc_mem = mem - reserved_milli(cfg, "memory") - EVICTION_MEMORY_BYTES;
    let alloc_disk =
        disk - reserved_milli(cfg, "ephemeral-storage") - disk * EVICTION_NODEFS_PERCENT / 100;
    let allocatable = json!({
        "cpu": cpu_string(alloc_cpu),
        "memory": ki(alloc_mem),
        "ephemeral-storage": alloc_disk.max(0).to_string(),
        "pods": cfg.max_pods.to_string(),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    });
    (capacity, allocatable)
}

/// What the runtime says about readiness: None when ready, else the NotReady message
/// (upstream's `container runtime network not ready: …`).
pub async fn runtime_not_ready(cri: &Cri) -> Option<String> {
    match cri.status().await {
        Err(e) => Some(format!("container runtime is down: {e}")),
        Ok(st) => {
            let cond = |t: &str| st.conditions.iter().find(|c| c.r#type == t).cloned();
            match cond("RuntimeReady") {
                Some(c) if c.status => {}
                Some(c) => {
                    return Some(format!(
                        "container runtime status check may not have completed yet: RuntimeReady=false reason:{} message:{}",
                        c.reason, c.message
                    ))
                }
                None => return Some("container runtime status check may not have completed yet".into()),
            }
            match cond("NetworkReady") {
                Some(c) if c.status => None,
                Some(c) => Some(format!(
                    "container runtime network not ready: NetworkReady=false reason:{} message:{}",
                    c.reason, c.message
                )),
                None => Some("container runtime network not ready".into()),
            }
        }
    }
}

/// (type, status, reason, message) of the four conditions, in the kubelet's order.
fn condition_values(
    not_ready: Option<&str>,
    memory_pressure: bool,
    disk_pressure: bool,
    pid_pressure: bool,
) -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![
        if memory_pressure {
            (
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available".into(),
            )
        } else {
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available".into(),
            )
        },
        if disk_pressure {
            (
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure".into(),
            )
        } else {
            (
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure".into(),
            )
        },
        if pid_pressure {
            (
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available".into(),
            )
        } else {
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available".into(),
            )
        },
        match not_ready {
            None => (
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status".into(),
            ),
            Some(m) => ("Ready", "False", "KubeletNotReady", m.to_string()),
        },
    ]
}

pub struct NodeAgent {
    pub client: kube::Client,
    pub cfg: Arc<KubeletConfig>,
    pub cri: Cri,
    pub host: HostInfo,
    pub runtime_version: String,
    pub pressure: Arc<crate::eviction::Pressure>,
}

/// What the status loop last wrote, to write again only on change (or every report interval).
#[derive(Default)]
struct Reported {
    status: Option<Value>,
    at: Option<Instant>,
    transitions: BTreeMap<String, (String, String)>,
}

impl NodeAgent {
    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert(
            "kubernetes.io/hostname".to_string(),
            self.cfg.node_name.clone(),
        );
        l.insert("kubernetes.io/os".into(), "linux".into());
        l.insert("kubernetes.io/arch".into(), self.host.architecture.clone());
        l.insert("beta.kubernetes.io/os".into(), "linux".into());
        l.insert(
            "beta.kubernetes.io/arch".into(),
            self.host.architecture.clone(),
        );
        l.extend(self.cfg.node_labels.clone());
        l
    }

    async fn images(&self) -> Value {
        let list = match self
            .cri
            .images()
            .list_images(crate::cri::api::ListImagesRequest { filter: None })
            .await
        {
            Ok(r) => r.into_inner().images,
            Err(_) => return json!([]),
        };
        let mut imgs: Vec<_> = list
            .into_iter()
            .map(|i| {
                let mut names: Vec<String> = i.repo_digests.clone();
                names.extend(i.repo_tags.clone());
                (i.size, names)
            })
            .filter(|(_, n)| !n.is_empty())
            .collect();
        imgs.sort_by_key(|i| std::cmp::Reverse(i.0));
        imgs.truncate(MAX_IMAGES);
        imgs.into_iter()
            .map(|(size, names)| json!({"names": names, "sizeBytes": size}))
            .collect()
    }

    async fn status(&self, reported: &mut Reported, heartbeat: &str) -> Value {
        let not_ready = runtime_not_ready(&self.cri).await;
        let (capacity, allocatable) = resources(&self.cfg, &self.host);
        let conditions: Vec<Value> = condition_values(
            not_ready.as_deref(),
            self.pressure.memory(),
            self.pressure.disk(),
            self.pressure.pid(),
        )
        .into_iter()
        .map(|(t, s, reason, message)| {
            let since = match reported.transitions.get(t) {
                Some((old, since)) if old == s => since.clone(),
                _ => heartbeat.to_string(),
            };
            reported
                .transitions
                .insert(t.to_string(), (s.to_string(), since.clone()));
            json!({
                "type": t, "status": s, "reason": reason, "message": message,
                "lastHeartbeatTime": heartbeat, "lastTransitionTime": since,
            })
        })
        .collect();
        json!({
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.cfg.node_ip.to_string()},
                {"type": "Hostname", "address": self.cfg.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.cfg.port}},
            "nodeInfo": {
                "machineID": self.host.machine_id,
                "systemUUID": self.host.system_uuid,
                "bootID": self.host.boot_id,
                "kernelVersion": self.host.kernel_version,
                "osImage": self.host.os_image,
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": self.cfg.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": self.host.architecture,
            },
            "images": self.images().await,
        })
    }

    /// Registers the Node (or, after a restart, reconciles its labels and reports a fresh
    /// status), as `tryRegisterWithAPIServer`.
    pub async fn register(&self) -> Result<Node, NodeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let name = self.cfg.node_name.clone();
        let wrap = |source| NodeError::Register {
            node: name.clone(),
            source,
        };
        let now = now();
        let mut reported = Reported::default();
        let status = self.status(&mut reported, &now).await;
        let mut spec = json!({});
        if !self.cfg.node_taints.is_empty() {
            spec["taints"] = serde_json::to_value(&self.cfg.node_taints).unwrap_or_default();
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "labels": self.labels(),
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": spec,
            "status": status,
        });
        let node: Node =
            serde_json::from_value(body.clone()).map_err(|e| wrap(kube::Error::SerdeError(e)))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = match api.create(&PostParams::default(), &node).await {
                Ok(n) => Ok(n),
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    let pp = PatchParams::default();
                    let meta = json!({"metadata": {"labels": self.labels()}});
                    match api.patch(&name, &pp, &Patch::Merge(&meta)).await {
                        Ok(_) => {
                            api.patch_status(&name, &pp, &Patch::Merge(&json!({"status": status})))
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(n) => {
                    tracing::info!(node = %name, "node registered");
                    return Ok(n);
                }
                // The API server may still be starting (in-process) or unreachable for a moment.
                Err(e) if attempt < 30 => {
                    tracing::warn!(node = %name, error = %e, "unable to register node, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt.min(10))).await;
                }
                Err(e) => return Err(wrap(e)),
            }
        }
    }

    /// Patches the status every `nodeStatusUpdateFrequency` when something changed and every
    /// `nodeStatusReportFrequency` otherwise (the heartbeat in the conditions).
    pub async fn status_loop(self: Arc<Self>, ready_changed: Arc<tokio::sync::Notify>) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut reported = Reported::default();
        loop {
            let now_s = now();
            let status = self.status(&mut reported, &now_s).await;
            let comparable = strip_heartbeats(&status);
            let due = reported
                .at
                .is_none_or(|t| t.elapsed() >= self.cfg.node_status_report_frequency);
            if due || reported.status.as_ref() != Some(&comparable) {
                let patch = json!({"status": status});
                match api
                    .patch_status(
                        &self.cfg.node_name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => {
                        reported.status = Some(comparable);
                        reported.at = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "updating node status failed"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.node_status_update_frequency) => {}
                _ = ready_changed.notified() => {}
            }
        }
    }

    /// Renews `kube-node-lease/<node>` every leaseDuration/4 (10 s), owned by the Node so it
    /// goes with it.
    pub async fn lease_loop(self: Arc<Self>, node_uid: String) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let period = Duration::from_secs((self.cfg.lease_duration_seconds as u64 / 4).max(1));
        let mut current: Option<Lease> = None;
        loop {
            let renew = MicroTime(jiff::Timestamp::now());
            let result = match current.take() {
                Some(mut l) => {
                    if let Some(spec) = l.spec.as_mut() {
                        spec.renew_time = Some(renew);
                    }
                    api.replace(&self.cfg.node_name, &PostParams::default(), &l)
                        .await
                }
                None => match api.get_opt(&self.cfg.node_name).await {
                    Ok(Some(mut l)) => {
                        let spec = l.spec.get_or_insert_with(Default::default);
                        spec.holder_identity = Some(self.cfg.node_name.clone());
                        spec.lease_duration_seconds = Some(self.cfg.lease_duration_seconds);
                        spec.renew_time = Some(renew);
                        api.replace(&self.cfg.node_name, &PostParams::default(), &l)
                            .await
                    }
                    Ok(None) => {
                        let lease: Result<Lease, _> = serde_json::from_value(json!({
                            "metadata": {
                                "name": self.cfg.node_name,
                                "namespace": LEASE_NAMESPACE,
                                "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                    "name": self.cfg.node_name, "uid": node_uid}],
                            },
                            "spec": {
                                "holderIdentity": self.cfg.node_name,
                                "leaseDurationSeconds": self.cfg.lease_duration_seconds,
                                "renewTime": now_micro(),
                            },
                        }));
                        match lease {
                            Ok(l) => api.create(&PostParams::default(), &l).await,
                            Err(e) => Err(kube::Error::SerdeError(e)),
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(l) => current = Some(l),
                Err(e) => tracing::warn!(error = %e, "failed to update lease"),
            }
            tokio::time::sleep(period).await;
        }
    }
}

fn strip_heartbeats(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    s
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_leaves_out_reservations_and_eviction_thresholds() {
        let mut cfg = KubeletConfig::new("n".into(), [10, 0, 0, 1].into(), "/tmp".into());
        cfg.system_reserved.insert("cpu".into(), "500m".into());
        cfg.kube_reserved.insert("memory".into(), "1Gi".into());
        let host = HostInfo {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 100 << 30,
            ..Default::default()
        };
        let (cap, alloc) = resources(&cfg, &host);
        assert_eq!(cap["cpu"], "2");
        assert_eq!(cap["memory"], "4194304Ki");
        assert_eq!(alloc["cpu"], "1500m");
        // 4 GiB − 1 GiB − 100 MiB
        assert_eq!(alloc["memory"], format!("{}Ki", (3 * 1024 - 100) * 1024));
        assert_eq!(
            alloc["ephemeral-storage"],
            ((100i64 << 30) * 9 / 10).to_string()
        );
        assert_eq!(alloc["pods"], "110");
    }

    #[test]
    fn not_ready_condition_carries_the_runtime_message() {
        let c = condition_values(
            Some("container runtime network not ready: NetworkReady=false"),
            false,
            false,
            false,
        );
        assert_eq!(c[3].0, "Ready");
        assert_eq!(c[3].1, "False");
        assert_eq!(c[3].2, "KubeletNotReady");
        let c = condition_values(None, true, false, false);
        assert_eq!((c[3].1, c[3].2), ("True", "KubeletReady"));
        assert_eq!((c[0].1, c[0].2), ("True", "KubeletHasInsufficientMemory"));
        assert_eq!(c[1].2, "KubeletHasNoDiskPressure");
        assert_eq!(c[2].2, "KubeletHasSufficientPID");
        let c = condition_values(None, false, false, true);
        assert_eq!(
            (c[2].0, c[2].1, c[2].2, c[2].3.as_str()),
            (
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available"
            )
        );
    }
}
