//! The EndpointSlice mirroring controller (upstream's `pkg/controller/endpointslicemirroring`):
//! Endpoints written by hand for a Service without a selector are mirrored into EndpointSlices
//! (managed by `endpointslicemirroring-controller.k8s.io`, owned by the Endpoints), one slice
//! per subset port set and address type, at most 1000 addresses per subset. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` (the API server's own `kubernetes`
//! endpoints) and leader-election records are not mirrored.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::ResourceExt;

use crate::controller::{run_workers, Next, ReconcileError, ReconcileResult, Reconciler};
use crate::endpointslice::reconciler::port_key;
use crate::endpointslice::util::{
    endpoint_key, endpoints_equal_beyond_hash, managed_slices, services_for_slice_change,
    slice_prefix, write_slices, EndpointKey, SliceTracker, ANNOTATION_LEADER,
    ANNOTATION_TRIGGER_TIME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SKIP_MIRROR,
};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::owner_ref;
use crate::workqueue::WorkQueue;

pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Upstream's `--mirroring-max-endpoints-per-subset` default.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub struct MirroringController {
    client: kube::Client,
    endpoints: Arc<Informer<Endpoints>>,
    services: Arc<Informer<Service>>,
    slices: Arc<Informer<EndpointSlice>>,
    queue: Arc<WorkQueue>,
    tracker: SliceTracker,
    recorder: Recorder,
}

/// Upstream's `shouldMirror`.
pub fn should_mirror(e: &Endpoints) -> bool {
    e.labels().get(LABEL_SKIP_MIRROR).map(String::as_str) != Some("true")
        && !e.annotations().contains_key(ANNOTATION_LEADER)
}

fn has_selector(s: &Service) -> bool {
    s.spec.as_ref().is_some_and(|s| s.selector.is_some())
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(MirroringController {
        client: cx.client.clone(),
        endpoints: cx.informers.get::<Endpoints>(),
        services: cx.informers.get::<Service>(),
        slices: cx.informers.get::<EndpointSlice>(),
        queue: WorkQueue::new("endpoint_slice_mirroring", cx.metrics.clone()),
        tracker: SliceTracker::default(),
        recorder: Recorder::new(
            cx.client.clone(),
            "endpoint-slice-mirroring-controller",
            &cx.host,
        ),
    });
    let this = c.clone();
    c.services.add_handler(move |ch| match ch {
        Change::Added(s) | Change::Deleted(s) if !has_selector(s) => {
            this.queue.add(key_of(s.as_ref()))
        }
        Change::Updated { old, new } if has_selector(old) != has_selector(new) => {
            this.queue.add(key_of(new.as_ref()))
        }
        _ => {}
    });
    let this = c.clone();
    c.endpoints.add_handler(move |ch| match ch {
        Change::Added(e) | Change::Deleted(e) if should_mirror(e) => {
            this.queue.add(key_of(e.as_ref()))
        }
        Change::Updated { old, new } if should_mirror(old) || should_mirror(new) => {
            this.queue.add(key_of(new.as_ref()))
        }
        _ => {}
    });
    let this = c.clone();
    c.slices.add_handler(move |ch| {
        for k in services_for_slice_change(&this.tracker, CONTROLLER_NAME, ch) {
            this.queue.add(k);
        }
    });
    let queue = c.queue.clone();
    tasks.spawn(async move {
        c.endpoints.wait_synced().await;
        c.services.wait_synced().await;
        c.slices.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

/// Upstream's `addressToEndpoint`: the address (re-formatted) and its type, or None if it is
/// not an IP.
fn address_to_endpoint(a: &EndpointAddress, ready: bool) -> Option<(Endpoint, &'static str)> {
    let ip: std::net::IpAddr = a.ip.parse().ok()?;
    let t = if ip.is_ipv6() { "IPv6" } else { "IPv4" };
    Some((
        Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                ..Default::default()
            }),
            target_ref: a.target_ref.clone(),
            node_name: a.node_name.clone(),
            hostname: a.hostname.clone().filter(|h| !h.is_empty()),
            ..Default::default()
        },
        t,
    ))
}

/// Upstream's `newEndpointSlice`: the Endpoints' labels and annotations (bar the trigger time
/// and kubectl's last-applied configuration), owned by the Endpoints.
fn new_slice(
    e: &Endpoints,
    ports: &[EndpointPort],
    address_type: &str,
    name: Option<&str>,
) -> EndpointSlice {
    let mut labels: BTreeMap<String, String> = e.labels().clone();
    labels.insert(LABEL_SERVICE_NAME.into(), e.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    let annotations: BTreeMap<String, String> = e
        .annotations()
        .iter()
        .filter(|(k, _)| k.as_str() != ANNOTATION_TRIGGER_TIME && k.as_str() != LAST_APPLIED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    EndpointSlice {
        metadata: ObjectMeta {
            name: name.map(str::to_string),
            generate_name: name.is_none().then(|| slice_prefix(&e.name_any())),
            namespace: e.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_ref(e)]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Some(Vec::new()),
        ports: Some(ports.to_vec()),
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
    /// Addresses that were not IPs.
    pub invalid: usize,
    /// Addresses left out: invalid ones and those beyond the per-subset maximum.
    pub skipped: usize,
}

/// Upstream's mirroring `reconcile`.
pub fn reconcile(e: &Endpoints, existing: &[Arc<EndpointSlice>], max_per_subset: usize) -> Plan {
    let mut plan = Plan::default();
    // (address type, port key) → (ports, endpoints).
    type Desired = BTreeMap<(String, String), (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>;
    let mut desired: Desired = BTreeMap::new();
    for subset in e.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let pk = port_key(&ports);
        for t in ["IPv4", "IPv6"] {
            desired
                .entry((t.to_string(), pk.clone()))
                .or_insert_with(|| (ports.clone(), BTreeMap::new()));
        }
        let all = subset.addresses.iter().flatten().map(|a| (a, true)).chain(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false)),
        );
        let mut added = 0;
        let mut total = 0;
        for (a, ready) in all {
            total += 1;
            if added >= max_per_subset {
                continue;
            }
            match address_to_endpoint(a, ready) {
                Some((ep, t)) => {
                    if let Some(d) = desired.get_mut(&(t.to_string(), pk.clone())) {
                        d.1.insert(endpoint_key(&ep), ep);
                    }
                    added += 1;
                }
                None => plan.invalid += 1,
            }
        }
        plan.skipped += total - added;
    }
    let mut existing_by_key: BTreeMap<(String, String), Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for s in existing {
        existing_by_key
            .entry((
                s.address_type.clone(),
                port_key(s.ports.as_deref().unwrap_or(&[])),
            ))
            .or_default()
            .push(s.clone());
    }
    for (key, (ports, set)) in desired.iter() {
        let have = existing_by_key.get(key).map(Vec::as_slice).unwrap_or(&[]);
        if set.is_empty() {
            plan.delete.extend(have.iter().map(|s| s.as_ref().clone()));
            continue;
        }
        let mut want = new_slice(
            e,
            ports,
            &key.0,
            have.first().and_then(|s| s.metadata.name.as_deref()),
        );
        if let Some(first) = have.first() {
            plan.delete
                .extend(have[1..].iter().map(|s| s.as_ref().clone()));
            if slice_matches(first, set, &want) {
                continue;
            }
            want.metadata.resource_version = first.metadata.resource_version.clone();
        }
        want.endpoints = Some(set.values().take(max_per_subset).cloned().collect());
        if want.metadata.name.is_some() {
            plan.update.push(want);
        } else {
            plan.create.push(want);
        }
    }
    for (key, slices) in &existing_by_key {
        if !desired.contains_key(key) {
            plan.delete
                .extend(slices.iter().map(|s| s.as_ref().clone()));
        }
    }
    recycle(&mut plan);
    plan
}

/// Whether a slice already mirrors the desired endpoints, labels and annotations
/// (upstream's `totalChanges` being zero).
fn slice_matches(
    s: &EndpointSlice,
    want: &BTreeMap<EndpointKey, Endpoint>,
    meta: &EndpointSlice,
) -> bool {
    let eps = s.endpoints.as_deref().unwrap_or(&[]);
    eps.len() == want.len()
        && eps.iter().all(|ep| {
            want.get(&endpoint_key(ep))
                .is_some_and(|w| endpoints_equal_beyond_hash(w, ep))
        })
        && s.labels() == meta.labels()
        && s.annotations() == meta.annotations()
}

/// Upstream's `recycleSlices`: creates of an address type reuse slices of that type about to
/// be deleted.
fn recycle(plan: &mut Plan) {
    for t in ["IPv4", "IPv6"] {
        loop {
            let c = plan.create.iter().position(|s| s.address_type == t);
            let d = plan.delete.iter().position(|s| s.address_type == t);
            let (Some(c), Some(d)) = (c, d) else {
                break;
            };
            let mut slice = plan.create.remove(c);
            let old = plan.delete.remove(d);
            slice.metadata.name = old.metadata.name;
            slice.metadata.resource_version = old.metadata.resource_version;
            plan.update.push(slice);
        }
    }
}

impl MirroringController {
    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let mirrored = managed_slices(&self.slices, ns, name, CONTROLLER_NAME);
        let endpoints = self.endpoints.get(ns, name);
        let service = self.services.get(ns, name);
        let mirror = match (&endpoints, &service) {
            (Some(e), Some(s)) => should_mirror(e) && !has_selector(s),
            _ => false,
        };
        let Some(endpoints) = endpoints.filter(|_| mirror) else {
            self.tracker.delete_service(&key);
            let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
            let all = mirrored.iter().map(|s| s.as_ref().clone()).collect();
            write_slices(
                &api,
                &SliceTracker::default(),
                &key,
                [vec![], vec![], all],
                false,
            )
            .await?;
            return Ok(Next::Done);
        };
        let live: Vec<Arc<EndpointSlice>> = mirrored
            .into_iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .collect();
        if self.tracker.stale(&key, &live) {
            return Err(ReconcileError::Other(
                "EndpointSlice informer cache is out of date".into(),
            ));
        }
        let plan = reconcile(&endpoints, &live, MAX_ENDPOINTS_PER_SUBSET);
        if plan.invalid > 0 {
            self.recorder.event(
                endpoints.as_ref(),
                "Warning",
                "InvalidIPAddress",
                format!(
                    "Skipped {} invalid IP addresses when mirroring to EndpointSlices",
                    plan.invalid
                ),
            );
        }
        if plan.skipped > plan.invalid {
            self.recorder.event(
                endpoints.as_ref(),
                "Warning",
                "TooManyAddressesToMirror",
                format!(
                    "A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to EndpointSlices per Endpoints subset. {} addresses were skipped",
                    plan.skipped
                ),
            );
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        write_slices(
            &api,
            &self.tracker,
            &key,
            [plan.create, plan.update, plan.delete],
            endpoints.metadata.deletion_timestamp.is_none(),
        )
        .await?;
        Ok(Next::Done)
    }
}

impl Reconciler for MirroringController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints(subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(
            json!({"metadata": {"name": "ext", "namespace": "ns", "uid": "ep-uid",
                "labels": {"team": "a"},
                "annotations": {"note": "x", ANNOTATION_TRIGGER_TIME: "t", LAST_APPLIED: "{}"}},
            "subsets": subsets}),
        )
        .unwrap()
    }

    fn apply(plan: Plan) -> Vec<Arc<EndpointSlice>> {
        plan.create
            .into_iter()
            .chain(plan.update)
            .enumerate()
            .map(|(i, mut s)| {
                if s.metadata.name.is_none() {
                    s.metadata.name = Some(format!("ext-{i}"));
                }
                Arc::new(s)
            })
            .collect()
    }

    #[test]
    fn mirrors_addresses_ports_labels_and_annotations() {
        let e = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1", "hostname": "a", "nodeName": "n1"}],
            "notReadyAddresses": [{"ip": "10.0.0.2"}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]),
        );
        let plan = reconcile(&e, &[], 1000);
        assert_eq!(plan.create.len(), 1);
        let s = &plan.create[0];
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.metadata.generate_name.as_deref(), Some("ext-"));
        assert_eq!(
            s.labels().get(LABEL_MANAGED_BY).map(String::as_str),
            Some(CONTROLLER_NAME)
        );
        assert_eq!(
            s.labels().get(LABEL_SERVICE_NAME).map(String::as_str),
            Some("ext")
        );
        assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));
        assert_eq!(s.annotations().keys().collect::<Vec<_>>(), ["note"]);
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Endpoints", "ep-uid")
        );
        assert_eq!(
            serde_json::to_value(&s.endpoints).unwrap(),
            json!([{"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "hostname": "a", "nodeName": "n1"},
                   {"addresses": ["10.0.0.2"], "conditions": {"ready": false}}])
        );
        assert_eq!(
            serde_json::to_value(&s.ports).unwrap(),
            json!([{"name": "http", "port": 80, "protocol": "TCP"}])
        );
        // Mirrored again: nothing to do.
        let existing = apply(plan);
        let again = reconcile(&e, &existing, 1000);
        assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
    }

    #[test]
    fn address_types_and_port_sets_get_their_own_slices() {
        let e = endpoints(json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80, "protocol": "TCP"}]},
            {"addresses": [{"ip": "10.0.0.2"}, {"ip": "not-an-ip"}], "ports": [{"port": 81, "protocol": "TCP"}]}]));
        let plan = reconcile(&e, &[], 1000);
        assert_eq!(plan.create.len(), 3);
        assert_eq!(plan.invalid, 1);
        assert_eq!(plan.skipped, 1);
        let mut types: Vec<&str> = plan
            .create
            .iter()
            .map(|s| s.address_type.as_str())
            .collect();
        types.sort();
        assert_eq!(types, ["IPv4", "IPv4", "IPv6"]);
    }

    #[test]
    fn per_subset_maximum_and_changes_update_the_same_slice() {
        let addrs: Vec<_> = (0..5)
            .map(|i| json!({"ip": format!("10.0.0.{i}")}))
            .collect();
        let e =
            endpoints(json!([{"addresses": addrs, "ports": [{"port": 80, "protocol": "TCP"}]}]));
        let plan = reconcile(&e, &[], 3);
        assert_eq!(plan.skipped, 2);
        assert_eq!(plan.create[0].endpoints.as_ref().unwrap().len(), 3);
        let existing = apply(plan);
        // The port changes: the old slice is recycled rather than deleted and created.
        let e2 = endpoints(
            json!([{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 8080, "protocol": "TCP"}]}]),
        );
        let plan = reconcile(&e2, &existing, 3);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].metadata.name, existing[0].metadata.name);
        // No addresses left: the slice goes.
        let empty = endpoints(json!([]));
        let plan = reconcile(&empty, &existing, 3);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 0, 1)
        );
    }

    #[test]
    fn skip_mirror_and_leader_election_are_not_mirrored() {
        let mut e = endpoints(json!([]));
        assert!(should_mirror(&e));
        e.metadata.labels = Some([(LABEL_SKIP_MIRROR.to_string(), "true".to_string())].into());
        assert!(!should_mirror(&e));
        let mut e = endpoints(json!([]));
        e.metadata.annotations = Some([(ANNOTATION_LEADER.to_string(), "{}".to_string())].into());
        assert!(!should_mirror(&e));
    }
}
