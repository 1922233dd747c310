//! The EndpointSlice reconciler (upstream's `staging/src/k8s.io/endpointslice/reconciler.go`
//! and `utils.go`), pure: from a service, its pods and the slices it has, the slices to create,
//! update and delete. Endpoints are grouped by the ports they resolve to (a named targetPort
//! can differ per pod), each group packed into slices of at most `max_endpoints` with
//! upstream's minimal-churn strategy: endpoints stay where they are, slices already being
//! updated are filled first, leftovers go to the unchanged slice they fit best, and only then
//! are new slices created; creates replace deletes by reusing the slice's name.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::util::{
    endpoint_key, endpoints_equal_beyond_hash, find_port, is_service_ip_set, pod_ips,
    pod_reference, should_pod_be_in_endpoints, should_set_hostname, slice_prefix, EndpointKey,
    LABEL_HEADLESS, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
};
use crate::podutil::{is_ready, owner_ref};

/// Slices to write.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

/// What the reconciler needs of a pod's node: `None` if the node does not exist, else its
/// `topology.kubernetes.io/zone`.
pub type NodeZone<'a> = &'a dyn Fn(&str) -> Option<Option<String>>;

pub struct Input<'a> {
    pub service: &'a Service,
    pub pods: &'a [Arc<Pod>],
    pub existing: &'a [Arc<EndpointSlice>],
    pub node_zone: NodeZone<'a>,
    pub max_endpoints: usize,
    pub controller_name: &'a str,
}

/// Upstream's `getAddressTypesForService`.
pub fn address_types(svc: &Service) -> Vec<&'static str> {
    let spec = svc.spec.as_ref();
    let mut out = Vec::new();
    for f in spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        match f.as_str() {
            "IPv4" if !out.contains(&"IPv4") => out.push("IPv4"),
            "IPv6" if !out.contains(&"IPv6") => out.push("IPv6"),
            _ => {}
        }
    }
    if !out.is_empty() {
        return out;
    }
    if is_service_ip_set(svc) {
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
        return vec![if ip.contains(':') { "IPv6" } else { "IPv4" }];
    }
    vec!["IPv4", "IPv6"]
}

fn is_ipv6(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6())
}

/// Upstream's `getEndpointPorts`, sorted so that equal port sets compare equal.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut out = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(port) = find_port(pod, sp) else {
            continue;
        };
        out.push(EndpointPort {
            name: Some(sp.name.clone().unwrap_or_default()),
            port: Some(port),
            protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: sp.app_protocol.clone(),
        });
    }
    sort_ports(&mut out);
    out
}

fn sort_ports(ports: &mut [EndpointPort]) {
    ports.sort_by(|a, b| {
        (&a.name, a.port, &a.protocol, &a.app_protocol).cmp(&(
            &b.name,
            b.port,
            &b.protocol,
            &b.app_protocol,
        ))
    });
}

/// A port set's identity (upstream's `PortMapKey`).
pub fn port_key(ports: &[EndpointPort]) -> String {
    let mut p = ports.to_vec();
    sort_ports(&mut p);
    p.iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or(""),
                p.port.unwrap_or(0),
                p.protocol.as_deref().unwrap_or(""),
                p.app_protocol.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream's `podToEndpoint`.
pub fn pod_to_endpoint(
    pod: &Pod,
    zone: Option<String>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let addresses = pod_ips(pod)
        .into_iter()
        .filter(|ip| is_ipv6(ip) == (address_type == "IPv6"))
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok().map(|a| a.to_string()))
        .collect();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pod_reference(pod)),
        node_name: node,
        zone: zone.filter(|z| !z.is_empty()),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        ..Default::default()
    }
}

/// Upstream's `setEndpointSliceLabels`: the service's labels (reserved keys aside), the
/// headless marker, and the two reserved labels; and whether the non-reserved ones differ.
pub fn slice_labels(
    slice: &EndpointSlice,
    svc: &Service,
    controller_name: &str,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &str| k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == LABEL_HEADLESS;
    let own: BTreeMap<String, String> = slice
        .labels()
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed = own != labels;
    if !is_service_ip_set(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), controller_name.into());
    (labels, changed)
}

/// Upstream's `newEndpointSlice`.
pub fn new_slice(
    svc: &Service,
    ports: Vec<EndpointPort>,
    address_type: &str,
    controller_name: &str,
) -> EndpointSlice {
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(slice_prefix(&svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            owner_references: Some(vec![owner_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    };
    slice.metadata.labels = Some(slice_labels(&slice, svc, controller_name).0);
    slice
}

/// Upstream's `ownedBy`.
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice.owner_references().iter().any(|o| {
        Some(&o.uid) == svc.metadata.uid.as_ref() && o.kind == "Service" && o.api_version == "v1"
    })
}

fn endpoints_of(s: &EndpointSlice) -> &[Endpoint] {
    s.endpoints.as_deref().unwrap_or(&[])
}

/// Desired endpoints of one port set, by identity (popped in a stable order).
type EndpointSet = BTreeMap<EndpointKey, Endpoint>;

/// The whole reconcile of one service; errors are pods skipped because their node is
/// unknown (the service is retried, the rest is written).
pub fn reconcile(input: &Input<'_>) -> (Plan, Vec<String>) {
    let svc = input.service;
    let types = address_types(svc);
    let mut plan = Plan::default();
    let mut errors = Vec::new();
    let mut by_type: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in input.existing {
        if types.contains(&s.address_type.as_str()) {
            by_type
                .entry(s.address_type.clone())
                .or_default()
                .push(s.clone());
        } else {
            plan.delete.push(s.as_ref().clone());
        }
    }
    for t in &types {
        let existing = by_type.remove(*t).unwrap_or_default();
        let p = reconcile_address_type(input, &existing, t, &mut errors);
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        plan.delete.extend(p.delete);
    }
    (plan, errors)
}

fn reconcile_address_type(
    input: &Input<'_>,
    existing: &[Arc<EndpointSlice>],
    address_type: &str,
    errors: &mut Vec<String>,
) -> Plan {
    let svc = input.service;
    let mut to_delete: Vec<EndpointSlice> = Vec::new();
    let mut existing_by_ports: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            existing_by_ports
                .entry(port_key(s.ports.as_deref().unwrap_or(&[])))
                .or_default()
                .push(s.clone());
        } else {
            to_delete.push(s.as_ref().clone());
        }
    }
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, EndpointSet)> = BTreeMap::new();
    for pod in input.pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = port_key(&ports);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let zone = match (input.node_zone)(node) {
            Some(z) => z,
            None if publish => None,
            None => {
                errors.push(format!(
                    "skipping Pod {} for Service {}/{}: Node {node} Not Found",
                    pod.name_any(),
                    svc.namespace().unwrap_or_default(),
                    svc.name_any()
                ));
                continue;
            }
        };
        let entry = desired
            .entry(key)
            .or_insert_with(|| (ports, EndpointSet::new()));
        let ep = pod_to_endpoint(pod, zone, svc, address_type);
        if !ep.addresses.is_empty() {
            entry.1.insert(endpoint_key(&ep), ep);
        }
    }

    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    for (key, (ports, set)) in desired.iter_mut() {
        let p = reconcile_port_mapping(
            input,
            existing_by_ports.get(key).map(Vec::as_slice).unwrap_or(&[]),
            std::mem::take(set),
            ports,
            address_type,
        );
        to_create.extend(p.create);
        to_update.extend(p.update);
        to_delete.extend(p.delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            to_delete.extend(slices.iter().map(|s| s.as_ref().clone()));
        }
    }
    // A service with no endpoints keeps one empty placeholder slice.
    if existing.len() == to_delete.len() && to_create.is_empty() {
        let placeholder = new_slice(svc, Vec::new(), address_type, input.controller_name);
        if to_delete.len() == 1 && is_placeholder_of(&to_delete[0], &placeholder) {
            to_delete.clear();
        } else {
            to_create.push(placeholder);
        }
    }
    Plan {
        create: to_create,
        update: to_update,
        delete: to_delete,
    }
}

/// Upstream's `placeholderSliceCompare`: namespace, labels, owners, type, no ports, no
/// endpoints.
fn is_placeholder_of(s: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    s.metadata.namespace == placeholder.metadata.namespace
        && s.labels() == placeholder.labels()
        && s.owner_references() == placeholder.owner_references()
        && s.address_type == placeholder.address_type
        && s.ports.as_ref().is_none_or(|p| p.is_empty())
        && endpoints_of(s).is_empty()
}

/// Upstream's `reconcileByPortMapping`.
fn reconcile_port_mapping(
    input: &Input<'_>,
    existing: &[Arc<EndpointSlice>],
    mut desired: EndpointSet,
    ports: &[EndpointPort],
    address_type: &str,
) -> Plan {
    let max = input.max_endpoints.max(1);
    let svc = input.service;
    // Slices by name in their existing order, with their working copies.
    let mut slices: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<usize> = Vec::new();
    let mut updated: Vec<usize> = Vec::new();
    let mut deleted: Vec<usize> = Vec::new();

    // 1. Keep desired endpoints where they are (updating them in place), drop the others.
    for s in existing {
        let mut kept = Vec::new();
        let mut changed = false;
        for ep in endpoints_of(s) {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                if !endpoints_equal_beyond_hash(&want, ep) {
                    changed = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(s, svc, input.controller_name);
        let mut copy = s.as_ref().clone();
        let idx = slices.len();
        if changed || kept.len() != endpoints_of(s).len() {
            if kept.is_empty() {
                deleted.push(idx);
            } else {
                copy.endpoints = Some(kept);
                copy.metadata.labels = Some(labels);
                updated.push(idx);
            }
        } else if labels_changed {
            copy.metadata.labels = Some(labels);
            updated.push(idx);
        } else {
            unchanged.push(idx);
        }
        slices.push(copy);
    }

    let pop = |set: &mut EndpointSet| set.pop_first().map(|(_, e)| e);

    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !updated.is_empty() {
        let mut order = updated.clone();
        order.sort_by_key(|i| std::cmp::Reverse(endpoints_of(&slices[*i]).len()));
        for i in order {
            let eps = slices[i].endpoints.get_or_insert_with(Vec::new);
            while eps.len() < max {
                match pop(&mut desired) {
                    Some(e) => eps.push(e),
                    None => break,
                }
            }
        }
    }

    // 3. Put what is left into the unchanged slice it fits best, else into new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut target = None;
        if desired.len() < max && !unchanged.is_empty() {
            target = slice_to_fill(&slices, &unchanged, desired.len(), max);
        }
        match target {
            Some(i) => {
                let eps = slices[i].endpoints.get_or_insert_with(Vec::new);
                while eps.len() < max {
                    match pop(&mut desired) {
                        Some(e) => eps.push(e),
                        None => break,
                    }
                }
                unchanged.retain(|u| *u != i);
                updated.push(i);
            }
            None => {
                let mut s = new_slice(svc, ports.to_vec(), address_type, input.controller_name);
                let eps = s.endpoints.get_or_insert_with(Vec::new);
                while eps.len() < max {
                    match pop(&mut desired) {
                        Some(e) => eps.push(e),
                        None => break,
                    }
                }
                create.push(s);
            }
        }
    }
    let updated: HashSet<usize> = updated.into_iter().collect();
    let deleted: HashSet<usize> = deleted.into_iter().collect();
    let mut plan = Plan {
        create,
        ..Default::default()
    };
    for (i, s) in slices.into_iter().enumerate() {
        if updated.contains(&i) {
            plan.update.push(s);
        } else if deleted.contains(&i) {
            plan.delete.push(s);
        }
    }
    plan
}

/// Upstream's `getSliceToFill`: the unchanged slice closest to full once `n` are added.
fn slice_to_fill(
    slices: &[EndpointSlice],
    candidates: &[usize],
    n: usize,
    max: usize,
) -> Option<usize> {
    let mut best = None;
    let mut closest = max;
    for &i in candidates {
        let have = endpoints_of(&slices[i]).len();
        if n + have <= max {
            let diff = max - (n + have);
            if diff < closest {
                closest = diff;
                best = Some(i);
                if diff == 0 {
                    break;
                }
            }
        }
    }
    best
}

/// Upstream's `finalize` first step: a create and a delete of the same address type become
/// an update of the slice that would be deleted (keeping its name).
pub fn recycle(plan: &mut Plan, svc: &Service) {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let last = plan.create.len() - 1;
        let del = &plan.delete[i];
        if del.address_type == plan.create[last].address_type && owned_by(del, svc) {
            let mut slice = plan.create.remove(last);
            slice.metadata.name = del.metadata.name.clone();
            slice.metadata.resource_version = del.metadata.resource_version.clone();
            slice.metadata.uid = del.metadata.uid.clone();
            plan.update.push(slice);
            plan.delete.remove(i);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONTROLLER: &str = "endpointslice-controller.k8s.io";

    fn svc(extra: serde_json::Value) -> Service {
        let mut v = json!({"metadata": {"name": "foo", "namespace": "default", "uid": "svc-uid",
                "labels": {"app": "foo"}},
            "spec": {"selector": {"app": "foo"}, "clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        json_merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pod(i: usize, ready: bool) -> Arc<Pod> {
        pod_with(i, ready, json!({}))
    }

    fn pod_with(i: usize, ready: bool, extra: serde_json::Value) -> Arc<Pod> {
        let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        let mut v = json!({"metadata": {"name": format!("pod{i}"), "namespace": "default",
                "uid": format!("uid{i}"), "labels": {"app": "foo"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        json_merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn zone_a(_: &str) -> Option<Option<String>> {
        Some(Some("zone-a".into()))
    }

    fn run(s: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>], max: usize) -> Plan {
        let (mut plan, errs) = reconcile(&Input {
            service: s,
            pods,
            existing,
            node_zone: &zone_a,
            max_endpoints: max,
            controller_name: CONTROLLER,
        });
        assert!(errs.is_empty(), "{errs:?}");
        recycle(&mut plan, s);
        plan
    }

    /// Applies a plan the way the API server would: creates get names.
    fn apply(
        existing: &[Arc<EndpointSlice>],
        plan: Plan,
        next: &mut usize,
    ) -> Vec<Arc<EndpointSlice>> {
        let deleted: HashSet<_> = plan
            .delete
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        let updated: BTreeMap<_, _> = plan
            .update
            .into_iter()
            .map(|s| (s.metadata.name.clone(), s))
            .collect();
        let mut out: Vec<Arc<EndpointSlice>> = existing
            .iter()
            .filter(|s| !deleted.contains(&s.metadata.name))
            .map(|s| {
                Arc::new(
                    updated
                        .get(&s.metadata.name)
                        .cloned()
                        .unwrap_or_else(|| s.as_ref().clone()),
                )
            })
            .collect();
        for mut s in plan.create {
            *next += 1;
            s.metadata.name = Some(format!("foo-{next}"));
            out.push(Arc::new(s));
        }
        out
    }

    #[test]
    fn no_pods_gives_one_placeholder_and_keeps_it() {
        let s = svc(json!({}));
        let plan = run(&s, &[], &[], 100);
        assert_eq!(plan.create.len(), 1);
        let p = &plan.create[0];
        assert_eq!(p.address_type, "IPv4");
        assert_eq!(p.endpoints.as_deref(), Some(&[][..]));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("foo-"));
        assert_eq!(
            p.labels().get(LABEL_SERVICE_NAME).map(String::as_str),
            Some("foo")
        );
        assert_eq!(
            p.labels().get(LABEL_MANAGED_BY).map(String::as_str),
            Some(CONTROLLER)
        );
        assert_eq!(p.labels().get("app").map(String::as_str), Some("foo"));
        let owner = &p.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
        let mut n = 0;
        let existing = apply(&[], plan, &mut n);
        let again = run(&s, &[], &existing, 100);
        assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
    }

    #[test]
    fn endpoints_carry_conditions_node_zone_and_target() {
        let s = svc(json!({}));
        let terminating = pod_with(
            2,
            true,
            json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        let plan = run(&s, &[pod(0, true), pod(1, false), terminating], &[], 100);
        assert_eq!(plan.create.len(), 1);
        let slice = &plan.create[0];
        let ports = slice.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (
                ports[0].name.as_deref(),
                ports[0].port,
                ports[0].protocol.as_deref()
            ),
            (Some("http"), Some(8080), Some("TCP"))
        );
        let eps = slice.endpoints.as_ref().unwrap();
        let by_name = |n: &str| {
            eps.iter()
                .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some(n))
                .unwrap()
        };
        let c = |e: &Endpoint| {
            let c = e.conditions.clone().unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        };
        assert_eq!(c(by_name("pod0")), (true, true, false));
        assert_eq!(c(by_name("pod1")), (false, false, false));
        // Terminating pods stay, serving but not ready.
        assert_eq!(c(by_name("pod2")), (false, true, true));
        let e = by_name("pod0");
        assert_eq!(e.addresses, ["10.1.0.1"]);
        assert_eq!(e.node_name.as_deref(), Some("node-1"));
        assert_eq!(e.zone.as_deref(), Some("zone-a"));
        let r = e.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.namespace.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("default"), Some("uid0"))
        );
        assert_eq!(e.hostname, None);
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let s = svc(json!({"spec": {"publishNotReadyAddresses": true}}));
        let plan = run(&s, &[pod(1, false)], &[], 100);
        let c = plan.create[0].endpoints.as_ref().unwrap()[0]
            .conditions
            .clone()
            .unwrap();
        assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
    }

    #[test]
    fn hostname_when_subdomain_is_the_service() {
        let s = svc(json!({}));
        let p = pod_with(
            0,
            true,
            json!({"spec": {"hostname": "web-0", "subdomain": "foo"}}),
        );
        let other = pod_with(
            1,
            true,
            json!({"spec": {"hostname": "web-1", "subdomain": "bar"}}),
        );
        let plan = run(&s, &[p, other], &[], 100);
        let eps = plan.create[0].endpoints.as_ref().unwrap();
        assert_eq!(eps[0].hostname.as_deref(), Some("web-0"));
        assert_eq!(eps[1].hostname, None);
    }

    #[test]
    fn headless_service_label_and_no_ports() {
        let s = svc(json!({"spec": {"clusterIP": "None", "ports": null}}));
        let plan = run(&s, &[pod(0, true)], &[], 100);
        let slice = &plan.create[0];
        assert_eq!(
            slice.labels().get(LABEL_HEADLESS).map(String::as_str),
            Some("")
        );
        assert_eq!(slice.ports.as_deref(), Some(&[][..]));
        assert_eq!(slice.endpoints.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn named_target_port_splits_slices_by_resolved_port() {
        let s = svc(
            json!({"spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}}),
        );
        let other_port = pod_with(
            1,
            true,
            json!({"spec": {"containers": [{"name": "c",
            "ports": [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]}]}}),
        );
        let plan = run(&s, &[pod(0, true), other_port], &[], 100);
        assert_eq!(plan.create.len(), 2);
        let mut ports: Vec<i32> = plan
            .create
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
            .collect();
        ports.sort();
        assert_eq!(ports, [8080, 9090]);
        assert!(plan
            .create
            .iter()
            .all(|s| s.endpoints.as_ref().unwrap().len() == 1));
    }

    #[test]
    fn pods_without_ip_or_finished_are_left_out_and_unknown_nodes_retried() {
        let s = svc(json!({}));
        let no_ip = pod_with(
            1,
            false,
            json!({"status": {"podIP": null, "podIPs": null, "phase": "Pending"}}),
        );
        let done = pod_with(2, false, json!({"status": {"phase": "Succeeded"}}));
        let lost = pod_with(3, true, json!({"spec": {"nodeName": "gone"}}));
        let pods = [pod(0, true), no_ip, done, lost];
        let (plan, errs) = reconcile(&Input {
            service: &s,
            pods: &pods,
            existing: &[],
            node_zone: &|n: &str| (n != "gone").then_some(None),
            max_endpoints: 100,
            controller_name: CONTROLLER,
        });
        assert_eq!(plan.create[0].endpoints.as_ref().unwrap().len(), 1);
        assert_eq!(
            errs,
            ["skipping Pod pod3 for Service default/foo: Node gone Not Found"]
        );
    }

    #[test]
    fn scale_up_splits_at_max_and_reuses_slices() {
        let s = svc(json!({}));
        let pods: Vec<_> = (0..250).map(|i| pod(i, true)).collect();
        let mut n = 0;
        let plan = run(&s, &pods, &[], 100);
        let mut sizes: Vec<usize> = plan
            .create
            .iter()
            .map(|s| s.endpoints.as_ref().unwrap().len())
            .collect();
        sizes.sort();
        assert_eq!(sizes, [50, 100, 100]);
        let existing = apply(&[], plan, &mut n);
        // Unchanged: nothing to write.
        let plan = run(&s, &pods, &existing, 100);
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
        // 30 more pods go into the half-full slice, no new slice.
        let more: Vec<_> = (0..280).map(|i| pod(i, true)).collect();
        let plan = run(&s, &more, &existing, 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].endpoints.as_ref().unwrap().len(), 80);
    }

    #[test]
    fn changed_endpoints_update_in_place_and_fill_that_slice_first() {
        let s = svc(json!({}));
        let pods: Vec<_> = (0..150).map(|i| pod(i, true)).collect();
        let mut n = 0;
        let existing = apply(&[], run(&s, &pods, &[], 100), &mut n);
        // pod0 turns not ready (an in-place update of its slice) and 20 new pods arrive.
        let mut next: Vec<_> = (1..170).map(|i| pod(i, true)).collect();
        next.push(pod(0, false));
        let plan = run(&s, &next, &existing, 100);
        assert!(plan.delete.is_empty());
        let total: usize = plan
            .update
            .iter()
            .chain(&plan.create)
            .map(|s| s.endpoints.as_ref().unwrap().len())
            .sum();
        // The full slice holding pod0 cannot take more: the new ones go to the other slice.
        assert_eq!(plan.create.len(), 0);
        assert_eq!(total, 170);
        let all = apply(&existing, plan, &mut n);
        assert_eq!(all.len(), 2);
        let ep0 = all
            .iter()
            .flat_map(|s| s.endpoints.clone().unwrap())
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("pod0"))
            .unwrap();
        assert_eq!(ep0.conditions.unwrap().ready, Some(false));
    }

    #[test]
    fn scale_down_deletes_emptied_slices_and_recycles_for_creates() {
        let s = svc(json!({}));
        let pods: Vec<_> = (0..200).map(|i| pod(i, true)).collect();
        let mut n = 0;
        let existing = apply(&[], run(&s, &pods, &[], 100), &mut n);
        assert_eq!(existing.len(), 2);
        // Only the pods of the first slice remain: the second one is deleted, the first
        // one is left alone.
        let first: HashSet<_> = existing[0]
            .endpoints
            .iter()
            .flatten()
            .map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap())
            .collect();
        let keep: Vec<_> = pods
            .iter()
            .filter(|p| first.contains(p.metadata.name.as_ref().unwrap()))
            .cloned()
            .collect();
        let plan = run(&s, &keep, &existing, 100);
        assert!(plan.create.is_empty() && plan.update.is_empty());
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].metadata.name, existing[1].metadata.name);
        // Everything gone: the last slice is recycled as the placeholder (an update, not a
        // delete and a create).
        let existing = apply(&existing, plan, &mut n);
        let plan = run(&s, &[], &existing, 100);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].metadata.name, existing[0].metadata.name);
        assert!(plan.update[0].endpoints.as_ref().unwrap().is_empty());
        assert!(plan.update[0].ports.as_ref().unwrap().is_empty());
    }

    #[test]
    fn service_label_changes_update_slices_and_foreign_slices_are_deleted() {
        let s = svc(json!({}));
        let mut n = 0;
        let existing = apply(&[], run(&s, &[pod(0, true)], &[], 100), &mut n);
        let relabelled = svc(json!({"metadata": {"labels": {"app": "foo", "tier": "web"}}}));
        let plan = run(&relabelled, &[pod(0, true)], &existing, 100);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(
            plan.update[0].labels().get("tier").map(String::as_str),
            Some("web")
        );
        // A slice owned by an older service of the same name is replaced.
        let mut newer = svc(json!({}));
        newer.metadata.uid = Some("other".into());
        let plan = run(&newer, &[pod(0, true)], &existing, 100);
        assert_eq!((plan.create.len(), plan.delete.len()), (1, 1));
    }

    #[test]
    fn address_types_follow_ip_families() {
        assert_eq!(address_types(&svc(json!({}))), ["IPv4"]);
        assert_eq!(
            address_types(&svc(json!({"spec": {"ipFamilies": ["IPv6", "IPv4"]}}))),
            ["IPv6", "IPv4"]
        );
        assert_eq!(
            address_types(&svc(
                json!({"spec": {"ipFamilies": null, "clusterIP": "None"}})
            )),
            ["IPv4", "IPv6"]
        );
        assert_eq!(
            address_types(&svc(
                json!({"spec": {"ipFamilies": null, "clusterIP": "fd00::1"}})
            )),
            ["IPv6"]
        );
    }
}
