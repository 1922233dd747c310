//! The Endpoints controller (upstream's `pkg/controller/endpoint/endpoints_controller.go`): for
//! every Service with a selector, the `Endpoints` object of the same name listing the selected
//! pods as ready or not-ready addresses per resolved port set (upstream's `RepackSubsets`), at
//! most 1000 addresses (`endpoints.kubernetes.io/over-capacity: truncated`), with the service's
//! labels, the headless marker and the last-change trigger time; deleted with the Service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::ResourceExt;

use crate::controller::{
    ignore_not_found, is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::endpointslice::util::{
    find_port, is_external_name, is_namespace_terminating, is_service_ip_set, pod_ips,
    pod_reference, pods_for_service, same_reference, selector, services_for_pod_change,
    set_trigger_time, should_pod_be_in_endpoints, should_set_hostname, TriggerTimeTracker,
    ANNOTATION_LEADER, LABEL_HEADLESS,
};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::is_ready;
use crate::workqueue::WorkQueue;

/// Upstream's `maxCapacity`: addresses an Endpoints object holds at most.
pub const MAX_CAPACITY: usize = 1000;
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

pub struct EndpointsController {
    client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    queue: Arc<WorkQueue>,
    triggers: TriggerTimeTracker,
    /// Upstream's `staleEndpointsTracker`: the resourceVersion each Endpoints had before this
    /// controller last updated it; seeing it again in the cache means the cache lags.
    stale: Mutex<HashMap<String, String>>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(EndpointsController {
        client: cx.client.clone(),
        services: cx.informers.get::<Service>(),
        pods: cx.informers.get::<Pod>(),
        endpoints: cx.informers.get::<Endpoints>(),
        queue: WorkQueue::new("endpoint", cx.metrics.clone()),
        triggers: TriggerTimeTracker::default(),
        stale: Mutex::default(),
        recorder: Recorder::new(cx.client.clone(), "endpoint-controller", &cx.host),
    });
    let this = c.clone();
    c.services.add_handler(move |ch| match ch {
        Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => {
            this.queue.add(key_of(s.as_ref()))
        }
    });
    let this = c.clone();
    c.pods.add_handler(move |ch| {
        for k in services_for_pod_change(&this.services, ch) {
            this.queue.add(k);
        }
    });
    let this = c.clone();
    c.endpoints.add_handler(move |ch| {
        if let Change::Deleted(e) = ch {
            this.queue.add(key_of(e.as_ref()))
        }
    });
    let queue = c.queue.clone();
    tasks.spawn(async move {
        c.services.wait_synced().await;
        c.pods.wait_synced().await;
        c.endpoints.wait_synced().await;
        // Upstream's `checkLeftoverEndpoints`: Endpoints whose service went away while the
        // controller was down are found once at start.
        for e in c.endpoints.list_all() {
            if !e.annotations().contains_key(ANNOTATION_LEADER) {
                c.queue.add(key_of(e.as_ref()));
            }
        }
        run_workers(queue, c, 5).await;
    });
}

/// Upstream's `podToEndpointAddressForService`: the pod's IP of the service's (first) family.
fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let ips = pod_ips(pod);
    let v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(f) => f == "IPv6",
        None if is_service_ip_set(svc) => spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| ip.contains(':')),
        None => ips.first().is_some_and(|ip| ip.contains(':')),
    };
    let ip = ips.into_iter().find(|ip| ip.contains(':') == v6)?;
    Some(EndpointAddress {
        ip: ip.to_string(),
        node_name: Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        target_ref: Some(pod_reference(pod)),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten()
            .filter(|h| !h.is_empty()),
    })
}

/// The subsets of a service's endpoints (before repacking: one per pod and port).
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.unwrap_or_default();
    let mut out = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(addr) = pod_address(svc, pod) else {
            continue;
        };
        let ready = publish || is_ready(pod);
        let subset = |port: Option<EndpointPort>| EndpointSubset {
            addresses: ready.then(|| vec![addr.clone()]),
            not_ready_addresses: (!ready).then(|| vec![addr.clone()]),
            ports: port.map(|p| vec![p]),
        };
        if ports.is_empty() {
            if headless {
                out.push(subset(None));
            }
            continue;
        }
        for sp in &ports {
            let Some(port) = find_port(pod, sp) else {
                continue;
            };
            out.push(subset(Some(EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })));
        }
    }
    repack_subsets(out)
}

/// An address's identity when repacking: its IP and target pod.
fn address_key(a: &EndpointAddress) -> (String, String) {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

fn port_sort_key(p: &EndpointPort) -> (Option<String>, i32, Option<String>, Option<String>) {
    (
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    )
}

/// Upstream's `RepackSubsets`: one subset per distinct set of (address, readiness) sharing
/// the same ports; addresses ready on any subset are ready; everything sorted.
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    type AddrKey = (String, String);
    type PortKey = (Option<String>, i32, Option<String>, Option<String>);
    type Readiness = BTreeMap<AddrKey, bool>;
    let mut addrs: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    // Port (None: the sentinel for subsets without ports) → address → ready.
    let mut by_port: BTreeMap<Option<PortKey>, (Option<EndpointPort>, Readiness)> = BTreeMap::new();
    for s in &subsets {
        let ports: Vec<Option<&EndpointPort>> = match s.ports.as_deref() {
            Some(p) if !p.is_empty() => p.iter().map(Some).collect(),
            _ => vec![None],
        };
        for port in ports {
            let entry = by_port
                .entry(port.map(port_sort_key))
                .or_insert_with(|| (port.cloned(), BTreeMap::new()));
            let all = s
                .addresses
                .iter()
                .flatten()
                .map(|a| (a, true))
                .chain(s.not_ready_addresses.iter().flatten().map(|a| (a, false)));
            for (a, ready) in all {
                let k = address_key(a);
                addrs.entry(k.clone()).or_insert_with(|| a.clone());
                let r = entry.1.entry(k).or_insert(ready);
                *r |= ready;
            }
        }
    }
    // Address sets → the ports they serve.
    let mut by_set: BTreeMap<Vec<(AddrKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (_, (port, set)) in by_port {
        let ports = by_set.entry(set.into_iter().collect()).or_default();
        ports.extend(port);
    }
    let mut out: Vec<EndpointSubset> = by_set
        .into_iter()
        .map(|(set, mut ports)| {
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, r)| *r == want)
                    .filter_map(|(k, _)| addrs.get(k).cloned())
                    .collect();
                (!v.is_empty()).then_some(v)
            };
            ports.sort_by_key(port_sort_key);
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    out.sort_by_key(|s| serde_json::to_string(s).unwrap_or_default());
    out
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream's `truncateEndpoints`: keeps at most [`MAX_CAPACITY`] addresses, ready ones
/// first, each subset keeping its proportional share; whether it truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut can_add = max;
    for s in subsets.iter_mut() {
        let n = if truncate_ready {
            s.addresses.as_ref().map_or(0, Vec::len)
        } else {
            s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        };
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let take = share.min(can_add);
        if truncate_ready {
            if let Some(a) = s.addresses.as_mut() {
                a.truncate(take);
                can_add -= a.len();
            }
            s.not_ready_addresses = None;
        } else if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(take);
            can_add -= a.len();
        }
    }
    true
}

/// Subsets compared as upstream compares them (target resourceVersions ignored, empty lists
/// and absent ones the same).
fn subsets_equal(a: &[EndpointSubset], b: &[EndpointSubset]) -> bool {
    let addrs_eq = |x: &Option<Vec<EndpointAddress>>, y: &Option<Vec<EndpointAddress>>| {
        let (x, y) = (x.as_deref().unwrap_or(&[]), y.as_deref().unwrap_or(&[]));
        x.len() == y.len()
            && x.iter().zip(y).all(|(p, q)| {
                p.ip == q.ip
                    && p.hostname.as_deref().unwrap_or("") == q.hostname.as_deref().unwrap_or("")
                    && p.node_name == q.node_name
                    && same_reference(p.target_ref.as_ref(), q.target_ref.as_ref())
            })
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            addrs_eq(&x.addresses, &y.addresses)
                && addrs_eq(&x.not_ready_addresses, &y.not_ready_addresses)
                && x.ports.as_deref().unwrap_or(&[]) == y.ports.as_deref().unwrap_or(&[])
        })
}

/// Upstream's `capacityAnnotationSetCorrectly`.
fn capacity_annotation_ok(e: &Endpoints) -> bool {
    let (r, n) = count(e.subsets.as_deref().unwrap_or(&[]));
    r + n <= MAX_CAPACITY && !e.annotations().contains_key(ANNOTATION_OVER_CAPACITY)
}

impl EndpointsController {
    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get(ns, name) else {
            // The service is gone: so are its endpoints.
            ignore_not_found(api.delete(name, &DeleteParams::default()).await)?;
            self.triggers.delete(&key);
            self.stale_lock().remove(&key);
            return Ok(Next::Done);
        };
        if is_external_name(&svc) || selector(&svc).is_none() {
            return Ok(Next::Done);
        }
        let pods = pods_for_service(&self.pods, &svc);
        let trigger = self.triggers.compute(&key, &svc, &pods);
        let subsets = desired_subsets(&svc, &pods);
        let current = self.endpoints.get(ns, name);
        if let Some(cur) = &current {
            if self.stale_lock().get(&key) == cur.metadata.resource_version.as_ref() {
                return Err(ReconcileError::Other(format!(
                    "endpoints informer cache is out of date, resource version {} already processed for endpoints {key}",
                    cur.metadata.resource_version.as_deref().unwrap_or("")
                )));
            }
        }
        let svc_labels = svc.metadata.labels.clone().unwrap_or_default();
        if let Some(cur) = &current {
            let mut labels = cur.metadata.labels.clone().unwrap_or_default();
            labels.remove(LABEL_HEADLESS);
            if subsets_equal(cur.subsets.as_deref().unwrap_or(&[]), &subsets)
                && labels == svc_labels
                && capacity_annotation_ok(cur)
            {
                return Ok(Next::Done);
            }
        }
        let mut new = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                ..Default::default()
            },
            subsets: None,
        });
        let mut subsets = subsets;
        let truncated = truncate(&mut subsets);
        new.subsets = Some(subsets);
        let mut labels = svc_labels;
        if is_service_ip_set(&svc) {
            labels.remove(LABEL_HEADLESS);
        } else {
            labels.insert(LABEL_HEADLESS.into(), String::new());
        }
        new.metadata.labels = Some(labels);
        set_trigger_time(&mut new.metadata.annotations, trigger);
        let annotations = new.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if truncated {
            annotations.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(ANNOTATION_OVER_CAPACITY);
        }
        let pp = PostParams::default();
        match &current {
            None => match api.create(&pp, &new).await {
                Ok(_) => {}
                Err(e) if is_namespace_terminating(&e) => {}
                Err(e) => {
                    self.recorder.event(
                        &new,
                        "Warning",
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {key}: {e}"),
                    );
                    return Err(e.into());
                }
            },
            Some(cur) => match api.replace(name, &pp, &new).await {
                Ok(updated) => {
                    if updated.metadata.resource_version != cur.metadata.resource_version {
                        if let Some(rv) = cur.metadata.resource_version.clone() {
                            self.stale_lock().insert(key.clone(), rv);
                        }
                    }
                }
                Err(e) => {
                    if !is_not_found(&e) {
                        self.recorder.event(
                            &new,
                            "Warning",
                            "FailedToUpdateEndpoint",
                            format!("Failed to update endpoint {key}: {e}"),
                        );
                    }
                    return Err(e.into());
                }
            },
        }
        Ok(Next::Done)
    }

    fn stale_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.stale.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reconciler for EndpointsController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    fn svc(spec: serde_json::Value) -> Service {
        let mut s = json!({"selector": {"app": "foo"}, "clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "foo", "namespace": "ns", "uid": "u"}, "spec": s}),
        )
        .unwrap()
    }

    fn pod(i: usize, ready: bool, ports: serde_json::Value) -> Arc<Pod> {
        let ip = format!("1.2.{}.{}", i / 250, i % 250 + 1);
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": format!("pod{i}"), "namespace": "ns",
                    "uid": format!("uid{i}"), "labels": {"app": "foo"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
            .unwrap(),
        )
    }

    fn addresses(subsets: &[EndpointSubset]) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut ready = BTreeSet::new();
        let mut not_ready = BTreeSet::new();
        for s in subsets {
            ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
            not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        }
        (ready, not_ready)
    }

    fn v(s: &[EndpointSubset]) -> serde_json::Value {
        serde_json::to_value(s).unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset() {
        let pods = [
            pod(0, true, json!([])),
            pod(1, false, json!([])),
            pod(2, true, json!([])),
        ];
        let got = desired_subsets(&svc(json!({})), &pods);
        let addr = |i: usize| {
            json!({"ip": format!("1.2.0.{}", i + 1), "nodeName": "n1",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": format!("pod{i}"), "uid": format!("uid{i}")}})
        };
        assert_eq!(
            v(&got),
            json!([{"addresses": [addr(0), addr(2)], "notReadyAddresses": [addr(1)],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
        );
        // publishNotReadyAddresses: every address is ready.
        let got = desired_subsets(&svc(json!({"publishNotReadyAddresses": true})), &pods);
        assert_eq!(addresses(&got).0.len(), 3);
        assert!(addresses(&got).1.is_empty());
    }

    #[test]
    fn named_ports_resolve_per_pod_into_separate_subsets() {
        let s = svc(
            json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web"}]}),
        );
        let pods = [
            pod(
                0,
                true,
                json!([{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            ),
            pod(
                1,
                true,
                json!([{"name": "web", "containerPort": 9090, "protocol": "TCP"}]),
            ),
            pod(
                2,
                true,
                json!([{"name": "other", "containerPort": 7070, "protocol": "TCP"}]),
            ),
        ];
        let got = desired_subsets(&s, &pods);
        assert_eq!(got.len(), 2);
        let ports: Vec<i32> = got
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port)
            .collect();
        assert_eq!(ports, [8080, 9090]);
    }

    #[test]
    fn multiple_ports_one_subset_and_headless_without_ports() {
        let s = svc(
            json!({"ports": [{"name": "a", "port": 80, "protocol": "TCP", "targetPort": 8080},
                                   {"name": "b", "port": 81, "protocol": "UDP", "targetPort": 8081}]}),
        );
        let got = desired_subsets(&s, &[pod(0, true, json!([])), pod(1, true, json!([]))]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ports.as_ref().unwrap().len(), 2);
        assert_eq!(got[0].addresses.as_ref().unwrap().len(), 2);
        let headless = svc(json!({"clusterIP": "None", "ports": null}));
        let got = desired_subsets(&headless, &[pod(0, true, json!([]))]);
        assert_eq!(v(&got)[0]["ports"], json!(null));
        assert_eq!(got[0].addresses.as_ref().unwrap().len(), 1);
        // A service with a cluster IP and no ports has no endpoints.
        assert!(
            desired_subsets(&svc(json!({"ports": null})), &[pod(0, true, json!([]))]).is_empty()
        );
    }

    #[test]
    fn terminating_pods_only_with_publish_not_ready() {
        let mut p = (*pod(0, true, json!([]))).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
        let p = Arc::new(p);
        assert!(desired_subsets(&svc(json!({})), std::slice::from_ref(&p)).is_empty());
        assert_eq!(
            desired_subsets(&svc(json!({"publishNotReadyAddresses": true})), &[p]).len(),
            1
        );
    }

    #[test]
    fn truncation_keeps_ready_first_and_shares_proportionally() {
        let addrs = |n: usize, tag: &str| -> Option<Vec<EndpointAddress>> {
            Some(
                (0..n)
                    .map(|i| EndpointAddress {
                        ip: format!("{tag}{i}"),
                        ..Default::default()
                    })
                    .collect(),
            )
        };
        // 600 ready + 600 not ready: all ready kept, 400 not-ready split 300/100 as 3:1.
        let mut s = vec![
            EndpointSubset {
                addresses: addrs(450, "a"),
                not_ready_addresses: addrs(450, "b"),
                ports: None,
            },
            EndpointSubset {
                addresses: addrs(150, "c"),
                not_ready_addresses: addrs(150, "d"),
                ports: None,
            },
        ];
        assert!(truncate(&mut s));
        assert_eq!(count(&s), (600, 400));
        assert_eq!(s[0].not_ready_addresses.as_ref().unwrap().len(), 300);
        assert_eq!(s[1].not_ready_addresses.as_ref().unwrap().len(), 100);
        // Over 1000 ready: not-ready ones all go.
        let mut s = vec![EndpointSubset {
            addresses: addrs(1001, "a"),
            not_ready_addresses: addrs(5, "b"),
            ports: None,
        }];
        assert!(truncate(&mut s));
        assert_eq!(count(&s), (1000, 0));
        let mut small = vec![EndpointSubset {
            addresses: addrs(1000, "a"),
            ..Default::default()
        }];
        assert!(!truncate(&mut small));
    }

    #[test]
    fn comparison_ignores_target_resource_version() {
        let pods = [pod(0, true, json!([]))];
        let a = desired_subsets(&svc(json!({})), &pods);
        let mut b = a.clone();
        b[0].addresses.as_mut().unwrap()[0]
            .target_ref
            .as_mut()
            .unwrap()
            .resource_version = Some("7".into());
        assert!(subsets_equal(&a, &b));
        b[0].addresses.as_mut().unwrap()[0].ip = "9.9.9.9".into();
        assert!(!subsets_equal(&a, &b));
    }
}
