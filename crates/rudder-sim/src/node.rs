//! Node registration, Lease renewal and status heartbeats, as upstream's kubelet does them
//! (`kubelet_node_status.go`, `nodestatus/setters.go`, `nodelease`), for all nodes from a few
//! shared tasks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

use crate::ipam::{Cidr, Pool};
use crate::util::{hex64, micro_time, now, uuid_like, with_retries};
use crate::{Error, Shared, SimNode, SimOptions};

const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Lease renewals in flight at once (500/s at 5,000 nodes needs ~50 at 100 ms each).
const LEASE_CALLS_IN_FLIGHT: usize = 256;
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

/// The four conditions the kubelet reports, in its order, with its reasons and messages.
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

fn labels(opts: &SimOptions, index: usize, name: &str) -> BTreeMap<String, String> {
    // initialNode: hostname, GA and legacy beta os/arch; no instance-type (that comes from a
    // cloud provider only); then --node-labels on top.
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_string(), name.to_string());
    l.insert("kubernetes.io/os".into(), "linux".into());
    l.insert("kubernetes.io/arch".into(), "amd64".into());
    l.insert("beta.kubernetes.io/os".into(), "linux".into());
    l.insert("beta.kubernetes.io/arch".into(), "amd64".into());
    if !opts.zones.is_empty() {
        l.insert(
            "topology.kubernetes.io/zone".into(),
            opts.zones[index % opts.zones.len()].clone(),
        );
    }
    l.extend(opts.labels.clone());
    l
}

fn resources(opts: &SimOptions, allocatable: bool) -> Value {
    let pick = |a: &Option<String>, c: &String| {
        if allocatable {
            a.clone().unwrap_or_else(|| c.clone())
        } else {
            c.clone()
        }
    };
    json!({
        "cpu": pick(&opts.allocatable_cpu, &opts.cpu),
        "memory": pick(&opts.allocatable_memory, &opts.memory),
        "pods": pick(&opts.allocatable_pods, &opts.pods),
        "ephemeral-storage": opts.ephemeral_storage,
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    })
}

fn conditions(heartbeat: &str, since: &str) -> Value {
    Value::Array(
        CONDITIONS
            .iter()
            .map(|(t, s, reason, message)| {
                json!({
                    "type": t, "status": s,
                    "lastHeartbeatTime": heartbeat, "lastTransitionTime": since,
                    "reason": reason, "message": message,
                })
            })
            .collect(),
    )
}

/// The Node a kubelet registers (`initialNode` plus the first `setNodeStatus`).
pub(crate) fn node_object(opts: &SimOptions, index: usize, now: &str) -> Value {
    let name = opts.node_name(index);
    let ip = opts.node_ip_cidr.nth(index as u64 + 1).to_string();
    let mut spec = json!({});
    if !opts.taints.is_empty() {
        spec["taints"] = opts
            .taints
            .iter()
            .map(|t| {
                let mut v = json!({"key": t.key, "effect": t.effect});
                if !t.value.is_empty() {
                    v["value"] = json!(t.value);
                }
                v
            })
            .collect();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels(opts, index, &name),
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": spec,
        "status": {
            "capacity": resources(opts, false),
            "allocatable": resources(opts, true),
            "conditions": conditions(now, now),
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": &hex64(&["machine", &name])[..32],
                "systemUUID": uuid_like(&["system", &name]),
                "bootID": uuid_like(&["boot", &name, now]),
                "kernelVersion": "6.12.0-rudder-sim",
                "osImage": "Rudder simulated node",
                "containerRuntimeVersion": "sim://0.1.0",
                "kubeletVersion": opts.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

fn pool_for(opts: &SimOptions, index: usize, node: Option<&Node>) -> Pool {
    let from_spec = node
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse::<Cidr>().ok());
    Pool::new(from_spec.unwrap_or_else(|| opts.pod_cidr.subnet24(index)))
}

async fn register(
    api: &Api<Node>,
    opts: &SimOptions,
    index: usize,
    now: &str,
) -> Result<SimNode, Error> {
    let name = opts.node_name(index);
    let wrap = |source| Error::Register {
        node: name.clone(),
        source,
    };
    let body: Node = serde_json::from_value(node_object(opts, index, now))
        .map_err(|e| wrap(kube::Error::SerdeError(e)))?;
    let pp = PostParams::default();
    let node = match with_retries(|| api.create(&pp, &body)).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.is_already_exists() => {
            // tryRegisterWithAPIServer: the node exists (a restart); reconcile the default
            // labels and report a fresh status.
            let patch = json!({
                "metadata": {"labels": body.metadata.labels},
                "status": node_object(opts, index, now)["status"],
            });
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": patch["metadata"]})),
            )
            .await
            .map_err(wrap)?;
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": patch["status"]})),
            )
            .await
            .map_err(wrap)?
        }
        Err(e) => return Err(wrap(e)),
    };
    Ok(SimNode {
        index,
        uid: node.metadata.uid.clone().unwrap_or_default(),
        ip: opts.node_ip_cidr.nth(index as u64 + 1),
        pool: std::sync::Mutex::new(pool_for(opts, index, Some(&node))),
        name,
    })
}

pub(crate) async fn register_all(
    client: &kube::Client,
    opts: &SimOptions,
    permits: &Arc<tokio::sync::Semaphore>,
) -> Result<Vec<SimNode>, Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = now();
    let mut nodes: Vec<SimNode> = futures::stream::iter(0..opts.nodes)
        .map(|i| {
            let (api, now, permits) = (&api, &now, permits.clone());
            async move {
                let _p = permits.acquire_owned().await;
                register(api, opts, i, now).await
            }
        })
        .buffer_unordered(opts.concurrency)
        .try_collect()
        .await?;
    nodes.sort_by_key(|n| n.index);
    Ok(nodes)
}

/// What the renew loop remembers of each Lease: its resourceVersion (kubelet updates the copy
/// it got back last time; a conflict makes it read the Lease again).
pub(crate) struct LeaseState {
    rv: std::sync::Mutex<Option<String>>,
    /// A renewal is in flight (a slow one is not overlapped by the next round).
    busy: std::sync::atomic::AtomicBool,
}

#[derive(serde::Deserialize)]
struct RvOnly {
    metadata: RvMeta,
}

#[derive(serde::Deserialize)]
struct RvMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

fn lease_body(shared: &Shared, node: &SimNode, rv: Option<&str>) -> Vec<u8> {
    let mut meta = json!({
        "name": node.name,
        "namespace": LEASE_NAMESPACE,
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}],
    });
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    serde_json::to_vec(&json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": node.name,
            "leaseDurationSeconds": shared.opts.lease_duration_seconds,
            "renewTime": micro_time(jiff::Timestamp::now()),
        },
    }))
    .unwrap_or_default()
}

fn request(method: http::Method, uri: String, body: Vec<u8>) -> http::Request<Vec<u8>> {
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    if let Ok(u) = uri.parse() {
        *req.uri_mut() = u;
    }
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// One renewal (or creation, when there is no resourceVersion to update): the new
/// resourceVersion. After a failure the caller starts again from no resourceVersion: a
/// conflict or a missing Lease both resolve through the create path.
async fn renew(shared: &Shared, node: &SimNode, rv: Option<&str>) -> Result<String, kube::Error> {
    let c = &shared.client;
    let url = format!("{LEASES}/{}", node.name);
    let result = match rv {
        Some(rv) => {
            c.request::<RvOnly>(request(
                http::Method::PUT,
                url,
                lease_body(shared, node, Some(rv)),
            ))
            .await
        }
        None => match c
            .request::<RvOnly>(request(
                http::Method::POST,
                LEASES.to_string(),
                lease_body(shared, node, None),
            ))
            .await
        {
            // It exists (a previous run, or a conflict last round): read it, and renew it
            // with that resourceVersion right away.
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let current = c
                    .request::<RvOnly>(request(http::Method::GET, url.clone(), Vec::new()))
                    .await?;
                let rv = current.metadata.resource_version.unwrap_or_default();
                c.request::<RvOnly>(request(
                    http::Method::PUT,
                    url,
                    lease_body(shared, node, Some(&rv)),
                ))
                .await
            }
            other => other,
        },
    };
    match result {
        Ok(r) => {
            shared
                .stats
                .leases_renewed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(r.metadata.resource_version.unwrap_or_default())
        }
        Err(e) => {
            shared
                .stats
                .api_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(node = %node.name, error = %e, "lease renewal failed");
            Err(e)
        }
    }
}

pub(crate) async fn create_leases(shared: &Arc<Shared>) -> Result<Vec<LeaseState>, Error> {
    let states: Vec<(usize, Result<String, kube::Error>)> =
        futures::stream::iter(shared.nodes.iter())
            .map(|n| async move { (n.index, renew(shared, n, None).await) })
            .buffer_unordered(shared.opts.concurrency)
            .collect()
            .await;
    let mut out: Vec<LeaseState> = (0..shared.nodes.len())
        .map(|_| LeaseState {
            rv: std::sync::Mutex::new(None),
            busy: Default::default(),
        })
        .collect();
    for (i, rv) in states {
        match rv {
            Ok(rv) => out[i].rv = std::sync::Mutex::new(Some(rv)),
            Err(source) => {
                return Err(Error::Lease {
                    node: shared.nodes[i].name.clone(),
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Renews every Lease once per `leaseDuration / 4` (the kubelet's 10 s), the nodes spread over
/// the interval in slots so that the API server sees a steady rate, not a burst. Each slot's
/// batch runs on its own, so a slow API server delays renewals without stretching the cycle.
pub(crate) async fn renew_leases(shared: Arc<Shared>, leases: Vec<LeaseState>) {
    const SLOTS: usize = 100;
    let period = Duration::from_secs(u64::from(shared.opts.lease_duration_seconds) / 4);
    let n = shared.nodes.len();
    let leases = Arc::new(leases);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(LEASE_CALLS_IN_FLIGHT));
    let mut tick = tokio::time::interval(period / SLOTS as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Dropped (aborting the batches) when this task is.
    let mut batches = tokio::task::JoinSet::new();
    let mut slot = 0usize;
    loop {
        tick.tick().await;
        while batches.try_join_next().is_some() {}
        let range = slot * n / SLOTS..(slot + 1) * n / SLOTS;
        slot = (slot + 1) % SLOTS;
        let (shared, leases, in_flight) = (shared.clone(), leases.clone(), in_flight.clone());
        batches.spawn(async move {
            futures::stream::iter(range)
                .for_each_concurrent(shared.opts.concurrency, |i| {
                    let (shared, leases, in_flight) = (&shared, &leases, &in_flight);
                    async move {
                        let lease = &leases[i];
                        if lease.busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                            return;
                        }
                        let rv = lease.rv.lock().ok().and_then(|mut rv| rv.take());
                        // Their own, larger bound than the shared permits: renewals are
                        // latency-bound (kubelets each have their own connection), but a slow
                        // server must not pile up requests here without limit.
                        let new = match in_flight.acquire().await {
                            Ok(_p) => renew(shared, &shared.nodes[i], rv.as_deref()).await.ok(),
                            Err(_) => None,
                        };
                        if let Ok(mut rv) = lease.rv.lock() {
                            *rv = new;
                        }
                        lease
                            .busy
                            .store(false, std::sync::atomic::Ordering::Release);
                    }
                })
                .await;
        });
    }
}

/// The status heartbeat: each node patches its conditions' `lastHeartbeatTime` once per
/// `nodeStatusReportFrequency` when nothing changed (the kubelet's rule with a Lease). The
/// first reports are spread over the second half of the first interval.
pub(crate) async fn report_status(shared: Arc<Shared>) {
    let n = shared.nodes.len().max(1);
    let every = shared.opts.status_report_interval;
    let start = Instant::now();
    let mut due: Vec<Instant> = (0..shared.nodes.len())
        .map(|i| start + every.mul_f64(0.5 + 0.5 * i as f64 / n as f64))
        .collect();
    let api: Api<Node> = Api::all(shared.client.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now_i = Instant::now();
        let batch: Vec<usize> = (0..due.len()).filter(|i| due[*i] <= now_i).collect();
        if batch.is_empty() {
            continue;
        }
        let heartbeat = now();
        futures::stream::iter(batch.iter().copied())
            .map(|i| {
                let (api, shared, heartbeat) = (&api, &shared, &heartbeat);
                async move {
                    let node = &shared.nodes[i];
                    let order: Vec<Value> =
                        CONDITIONS.iter().map(|c| json!({"type": c.0})).collect();
                    let conds: Vec<Value> = CONDITIONS
                        .iter()
                        .map(|c| json!({"type": c.0, "lastHeartbeatTime": heartbeat}))
                        .collect();
                    let patch = json!({"status": {
                        "$setElementOrder/conditions": order,
                        "conditions": conds,
                    }});
                    match api
                        .patch_status(
                            &node.name,
                            &PatchParams::default(),
                            &Patch::Strategic(&patch),
                        )
                        .await
                    {
                        Ok(_) => shared
                            .stats
                            .status_reports
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!(node = %node.name, error = %e, "status report failed");
                            shared
                                .stats
                                .api_errors
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        }
                    };
                }
            })
            .buffer_unordered(shared.opts.concurrency)
            .collect::<()>()
            .await;
        for i in batch {
            due[i] = now_i + every;
        }
    }
}

/// Follows the nodes' `spec.podCIDR` (set by an IPAM controller after registration): new pods
/// get addresses from it, as the kubelet's `updatePodCIDR` does.
pub(crate) async fn watch_nodes(shared: Arc<Shared>) {
    let api: Api<Node> = Api::all(shared.client.clone());
    let stream = watcher(api, watcher::Config::default().any_semantic());
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        let node = match ev {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "node watch error");
                continue;
            }
        };
        let Some(&i) = node
            .metadata
            .name
            .as_ref()
            .and_then(|n| shared.by_name.get(n))
        else {
            continue;
        };
        let Some(cidr) = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Cidr>().ok())
        else {
            continue;
        };
        if let Ok(mut pool) = shared.nodes[i].pool.lock() {
            if pool.cidr != cidr {
                tracing::info!(node = %shared.nodes[i].name, pod_cidr = %cidr, "pod CIDR changed");
                *pool = Pool::new(cidr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_object_is_what_the_kubelet_registers() {
        let opts = SimOptions {
            zones: vec!["a".into(), "b".into()],
            taints: vec!["k=v:NoSchedule".parse().unwrap()],
            ..Default::default()
        };
        let n = node_object(&opts, 3, "2026-01-01T00:00:00Z");
        assert_eq!(n["metadata"]["name"], "sim-node-3");
        let labels = &n["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], "sim-node-3");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["beta.kubernetes.io/arch"], "amd64");
        assert_eq!(labels["topology.kubernetes.io/zone"], "b");
        assert!(labels.get("node.kubernetes.io/instance-type").is_none());
        assert_eq!(
            n["spec"]["taints"],
            json!([{"key": "k", "value": "v", "effect": "NoSchedule"}])
        );
        let types: Vec<&str> = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(n["status"]["conditions"][3]["reason"], "KubeletReady");
        assert_eq!(n["status"]["addresses"][0]["address"], "10.127.0.4");
        assert_eq!(n["status"]["capacity"]["cpu"], "4");
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        // It decodes as the API type (the create body).
        serde_json::from_value::<Node>(n).unwrap();
    }
}
