//! What the Endpoints, EndpointSlice and mirroring controllers share (upstream's
//! `staging/src/k8s.io/endpointslice/util`): which pods belong in endpoints, port lookup, which
//! services a pod change touches, the last-change trigger time and the tracker that tells a
//! controller its EndpointSlice cache has not caught up with its own writes yet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::informer::{Change, Informer};
use crate::podutil::{is_ready, phase};

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Endpoints written by client-go's leader election (never a service's endpoints).
pub const ANNOTATION_LEADER: &str = "control-plane.alpha.kubernetes.io/leader";

/// Upstream's `FindPort`: a numeric targetPort is used as is; a named one is looked up among
/// the pod's container ports (and restartable init containers') with the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match sp.target_port.as_ref() {
        Some(IntOrString::Int(n)) => Some(*n),
        // An unset targetPort is defaulted to the port by the API server.
        None => Some(sp.port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(st) = pod.status.as_ref() else {
        return Vec::new();
    };
    match st.pod_ips.as_ref().filter(|v| !v.is_empty()) {
        Some(ips) => ips.iter().map(|p| p.ip.as_str()).collect(),
        None => st.pod_ip.as_deref().into_iter().collect(),
    }
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and not terminating unless
/// terminating pods are wanted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if matches!(phase(pod), "Succeeded" | "Failed") {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Upstream's `ShouldSetHostname`: the pod named itself and chose this service as subdomain.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.as_deref()).unwrap_or("");
    !hostname.is_empty()
        && spec.and_then(|s| s.subdomain.as_deref()) == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace
}

pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref().and_then(|s| s.selector.as_ref())
}

pub fn is_external_name(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

/// A set selector (`spec.selector`): every pair must be in the labels; `{}` selects everything.
pub fn set_selector_matches(
    sel: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of `svc`'s namespace its selector picks.
pub fn pods_for_service(pods: &Informer<Pod>, svc: &Service) -> Vec<std::sync::Arc<Pod>> {
    let Some(sel) = selector(svc) else {
        return Vec::new();
    };
    pods.list(svc.metadata.namespace.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|p| set_selector_matches(sel, p.metadata.labels.as_ref()))
        .collect()
}

/// Keys of the services (with a selector) in `namespace` whose selector matches `labels`.
fn services_matching(
    services: &Informer<Service>,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> BTreeSet<String> {
    services
        .list(namespace)
        .into_iter()
        .filter(|s| selector(s).is_some_and(|sel| set_selector_matches(sel, labels)))
        .map(|s| format!("{namespace}/{}", s.name_any()))
        .collect()
}

/// The services a pod added or deleted belongs to (upstream's `GetPodServiceMemberships`).
pub fn services_for_pod(services: &Informer<Service>, pod: &Pod) -> BTreeSet<String> {
    services_matching(
        services,
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.labels.as_ref(),
    )
}

/// Upstream's `podEndpointsChanged`: (the pod changed in a way its endpoints show, its labels
/// or hostname/subdomain changed).
pub fn pod_endpoints_changed(old: &Pod, new: &Pod) -> (bool, bool) {
    let host = |p: &Pod| {
        p.spec
            .as_ref()
            .map(|s| (s.hostname.clone(), s.subdomain.clone()))
    };
    let labels_changed = old.metadata.labels != new.metadata.labels || host(old) != host(new);
    let pod_changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_ready(old) != is_ready(new)
        || pod_ips(old) != pod_ips(new);
    (pod_changed, labels_changed)
}

/// Upstream's `GetServicesToUpdateOnPodChange`.
pub fn services_to_update(services: &Informer<Service>, old: &Pod, new: &Pod) -> BTreeSet<String> {
    if old.metadata.resource_version == new.metadata.resource_version {
        return BTreeSet::new();
    }
    let (pod_changed, labels_changed) = pod_endpoints_changed(old, new);
    if !pod_changed && !labels_changed {
        return BTreeSet::new();
    }
    let ns = new.metadata.namespace.as_deref().unwrap_or("");
    let now = services_matching(services, ns, new.metadata.labels.as_ref());
    if !labels_changed {
        return now;
    }
    let before = services_matching(services, ns, old.metadata.labels.as_ref());
    if pod_changed {
        now.union(&before).cloned().collect()
    } else {
        now.symmetric_difference(&before).cloned().collect()
    }
}

/// The services to sync for a pod change (add and delete: the pod's services; update: as
/// upstream's `GetServicesToUpdateOnPodChange`).
pub fn services_for_pod_change(
    services: &Informer<Service>,
    ch: &Change<'_, Pod>,
) -> BTreeSet<String> {
    match ch {
        Change::Added(p) | Change::Deleted(p) => services_for_pod(services, p),
        Change::Updated { old, new } => services_to_update(services, old, new),
    }
}

/// The services to sync for a slice change seen by the controller managing slices as
/// `controller_name` (upstream's `onEndpointSlice{Add,Update,Delete}`): changes of its own
/// slices it did not write itself, and slices moving between services or managers.
pub fn services_for_slice_change(
    tracker: &SliceTracker,
    controller_name: &str,
    ch: &Change<'_, EndpointSlice>,
) -> Vec<String> {
    let ours = |s: &EndpointSlice| managed_by(s) == Some(controller_name);
    match ch {
        Change::Added(s) => slice_service_key(s)
            .filter(|k| ours(s) && !tracker.observe(k, s))
            .into_iter()
            .collect(),
        Change::Updated { old, new } => {
            let (k_old, k_new) = (slice_service_key(old), slice_service_key(new));
            if k_old != k_new || ours(old) != ours(new) {
                [k_old, k_new].into_iter().flatten().collect()
            } else {
                k_new
                    .filter(|k| ours(new) && !tracker.observe(k, new))
                    .into_iter()
                    .collect()
            }
        }
        Change::Deleted(s) => slice_service_key(s)
            .filter(|k| ours(s) && !tracker.observe_deletion(k, s))
            .into_iter()
            .collect(),
    }
}

/// `kind: Pod` reference of an endpoint.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// References compared as upstream's `semanticIgnoreResourceVersion`.
pub fn same_reference(a: Option<&ObjectReference>, b: Option<&ObjectReference>) -> bool {
    let strip = |r: Option<&ObjectReference>| {
        r.map(|r| ObjectReference {
            resource_version: None,
            ..r.clone()
        })
    };
    strip(a) == strip(b)
}

/// The identity of an endpoint in a set (upstream's `endpointHash`): its sorted addresses,
/// hostname and target, so condition or topology changes are in-place updates.
pub type EndpointKey = (Vec<String>, String, String, String);

pub fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addrs = ep.addresses.clone();
    addrs.sort();
    let r = ep.target_ref.as_ref();
    (
        addrs,
        ep.hostname.clone().unwrap_or_default(),
        r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        r.and_then(|r| r.name.clone()).unwrap_or_default(),
    )
}

/// Upstream's `EndpointsEqualBeyondHash`.
pub fn endpoints_equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let cond = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && cond(a) == cond(b)
        && same_reference(a.target_ref.as_ref(), b.target_ref.as_ref())
}

/// Upstream's `getEndpointSlicePrefix`: `<name>-` unless that is too long for a name.
pub fn slice_prefix(name: &str) -> String {
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_string()
    }
}

/// The service key (`ns/name`) a managed slice belongs to.
pub fn slice_service_key(slice: &EndpointSlice) -> Option<String> {
    let name = slice
        .labels()
        .get(LABEL_SERVICE_NAME)
        .filter(|n| !n.is_empty())?;
    Some(format!("{}/{name}", slice.namespace().unwrap_or_default()))
}

pub fn managed_by(slice: &EndpointSlice) -> Option<&str> {
    slice.labels().get(LABEL_MANAGED_BY).map(String::as_str)
}

/// Go's `time.RFC3339Nano` of a timestamp (trailing zeros of the fraction dropped).
pub fn format_trigger_time(t: jiff::Timestamp) -> String {
    t.to_string()
}

/// Upstream's `TriggerTimeTracker`: the `last-change-trigger-time` of a sync is the earliest
/// trigger (a pod's Ready transition, the service's creation) that changed since the previous
/// sync of the same service; the service's creation time on its first sync.
#[derive(Default)]
pub struct TriggerTimeTracker {
    states: Mutex<HashMap<String, TriggerState>>,
}

#[derive(Default, Clone)]
struct TriggerState {
    pods: HashMap<String, jiff::Timestamp>,
    service: Option<jiff::Timestamp>,
}

fn pod_trigger_time(pod: &Pod) -> Option<jiff::Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

impl TriggerTimeTracker {
    pub fn compute(
        &self,
        key: &str,
        svc: &Service,
        pods: &[std::sync::Arc<Pod>],
    ) -> Option<jiff::Timestamp> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let known = states.get(key).cloned();
        let last = known.clone().unwrap_or_default();
        let mut min: Option<jiff::Timestamp> = None;
        let mut now = TriggerState::default();
        for pod in pods {
            if let Some(t) = pod_trigger_time(pod) {
                let name = pod.name_any();
                if last.pods.get(&name).is_none_or(|prev| t > *prev) {
                    min = Some(min.map_or(t, |m| m.min(t)));
                }
                now.pods.insert(name, t);
            }
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created {
            if last.service.is_none_or(|prev| t > prev) {
                min = Some(min.map_or(t, |m| m.min(t)));
            }
        }
        now.service = created;
        states.insert(key.to_string(), now);
        if known.is_none() {
            return created;
        }
        min
    }

    pub fn delete(&self, key: &str) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Sets or clears the trigger-time annotation.
pub fn set_trigger_time(
    annotations: &mut Option<BTreeMap<String, String>>,
    t: Option<jiff::Timestamp>,
) {
    let a = annotations.get_or_insert_with(BTreeMap::new);
    match t {
        Some(t) => {
            a.insert(ANNOTATION_TRIGGER_TIME.into(), format_trigger_time(t));
        }
        None => {
            a.remove(ANNOTATION_TRIGGER_TIME);
        }
    }
}

/// How long an expectation about the slice cache is trusted before it is dropped (a watch
/// that re-listed may never show the exact version written).
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

enum Expect {
    /// The slice (by UID) was written at this resourceVersion.
    Written(String, Instant),
    Deleted(Instant),
}

/// Upstream's `EndpointSliceTracker`, over resourceVersions (Rudder keeps no generation on
/// EndpointSlices): per service, the slices this controller wrote or deleted and not yet seen
/// so in the informer cache. A sync against a cache that lags its own writes would create
/// duplicate slices, so it waits (`stale`) instead.
#[derive(Default)]
pub struct SliceTracker {
    by_service: Mutex<HashMap<String, HashMap<String, Expect>>>,
}

fn rv_at_least(cached: &str, written: &str) -> bool {
    cached == written
        || matches!((cached.parse::<u64>(), written.parse::<u64>()), (Ok(c), Ok(w)) if c >= w)
}

impl SliceTracker {
    pub fn written(&self, key: &str, slice: &EndpointSlice) {
        let (Some(uid), Some(rv)) = (
            slice.metadata.uid.clone(),
            slice.metadata.resource_version.clone(),
        ) else {
            return;
        };
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key.to_string())
            .or_default()
            .insert(uid, Expect::Written(rv, Instant::now()));
    }

    pub fn deleted(&self, key: &str, slice: &EndpointSlice) {
        let Some(uid) = slice.metadata.uid.clone() else {
            return;
        };
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key.to_string())
            .or_default()
            .insert(uid, Expect::Deleted(Instant::now()));
    }

    /// An informer add/update: whether it is one of this controller's own writes (then the
    /// service need not be synced again for it).
    pub fn observe(&self, key: &str, slice: &EndpointSlice) -> bool {
        let (Some(uid), Some(rv)) = (
            slice.metadata.uid.as_deref(),
            slice.metadata.resource_version.as_deref(),
        ) else {
            return false;
        };
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        let Some(svc) = m.get_mut(key) else {
            return false;
        };
        match svc.get(uid) {
            Some(Expect::Written(w, _)) if rv_at_least(rv, w) => {
                let own = rv == w;
                svc.remove(uid);
                own
            }
            _ => false,
        }
    }

    /// An informer delete: whether this controller deleted it.
    pub fn observe_deletion(&self, key: &str, slice: &EndpointSlice) -> bool {
        let Some(uid) = slice.metadata.uid.as_deref() else {
            return false;
        };
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        let Some(svc) = m.get_mut(key) else {
            return false;
        };
        matches!(svc.remove(uid), Some(Expect::Deleted(_)))
    }

    /// Whether `cached` (the service's slices in the cache) misses a write or still has a
    /// slice deleted by this controller.
    pub fn stale(&self, key: &str, cached: &[std::sync::Arc<EndpointSlice>]) -> bool {
        let mut m = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        let Some(svc) = m.get_mut(key) else {
            return false;
        };
        let by_uid: HashMap<&str, &str> = cached
            .iter()
            .filter_map(|s| {
                Some((
                    s.metadata.uid.as_deref()?,
                    s.metadata.resource_version.as_deref().unwrap_or(""),
                ))
            })
            .collect();
        let mut stale = false;
        svc.retain(|uid, e| match e {
            Expect::Written(_, at) | Expect::Deleted(at) if at.elapsed() > EXPECTATION_TTL => false,
            Expect::Written(rv, _) => match by_uid.get(uid.as_str()) {
                Some(cached) if rv_at_least(cached, rv) => false,
                _ => {
                    stale = true;
                    true
                }
            },
            Expect::Deleted(_) => {
                let present = by_uid.contains_key(uid.as_str());
                stale |= present;
                present
            }
        });
        stale
    }

    pub fn delete_service(&self, key: &str) {
        self.by_service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The slices of service (or Endpoints) `name` in `ns` managed as `controller_name`.
pub fn managed_slices(
    slices: &Informer<EndpointSlice>,
    ns: &str,
    name: &str,
    controller_name: &str,
) -> Vec<std::sync::Arc<EndpointSlice>> {
    slices
        .list(ns)
        .into_iter()
        .filter(|s| {
            s.labels().get(LABEL_SERVICE_NAME).map(String::as_str) == Some(name)
                && managed_by(s) == Some(controller_name)
        })
        .collect()
}

/// Upstream's `finalize` writes: creates (unless `allow_create` is false: the owner is being
/// deleted), updates, deletes, each recorded in the tracker under `key`.
pub async fn write_slices(
    api: &kube::Api<EndpointSlice>,
    tracker: &SliceTracker,
    key: &str,
    writes: [Vec<EndpointSlice>; 3],
    allow_create: bool,
) -> Result<(), crate::controller::ReconcileError> {
    let [create, update, delete] = writes;
    let pp = kube::api::PostParams::default();
    if allow_create {
        for s in &create {
            match api.create(&pp, s).await {
                Ok(created) => tracker.written(key, &created),
                Err(e) if is_namespace_terminating(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    for s in &update {
        let updated = api.replace(&s.name_any(), &pp, s).await?;
        tracker.written(key, &updated);
    }
    for s in &delete {
        crate::controller::ignore_not_found(
            api.delete(&s.name_any(), &kube::api::DeleteParams::default())
                .await,
        )?;
        tracker.deleted(key, s);
    }
    Ok(())
}

/// A create refused because the namespace is terminating: nothing to retry.
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let p = pod(json!({"metadata": {"name": "a"}, "spec": {
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                                   {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}],
            "initContainers": [{"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                               {"name": "init", "ports": [{"name": "setup", "containerPort": 7000}]}]}}));
        let sp = |v: serde_json::Value| -> ServicePort { serde_json::from_value(v).unwrap() };
        assert_eq!(
            find_port(
                &p,
                &sp(json!({"port": 80, "targetPort": "http", "protocol": "TCP"}))
            ),
            Some(8080)
        );
        assert_eq!(
            find_port(
                &p,
                &sp(json!({"port": 53, "targetPort": "dns", "protocol": "TCP"}))
            ),
            None
        );
        assert_eq!(
            find_port(
                &p,
                &sp(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}))
            ),
            Some(53)
        );
        assert_eq!(
            find_port(&p, &sp(json!({"port": 1, "targetPort": "metrics"}))),
            Some(9090)
        );
        assert_eq!(
            find_port(&p, &sp(json!({"port": 1, "targetPort": "setup"}))),
            None
        );
        assert_eq!(
            find_port(&p, &sp(json!({"port": 1, "targetPort": 81}))),
            Some(81)
        );
    }

    #[test]
    fn pods_in_endpoints_as_upstream() {
        let base = json!({"metadata": {"name": "a"}, "spec": {"containers": []},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}});
        assert!(should_pod_be_in_endpoints(&pod(base.clone()), false));
        let mut failed = base.clone();
        failed["status"]["phase"] = json!("Failed");
        assert!(!should_pod_be_in_endpoints(&pod(failed), true));
        let mut no_ip = base.clone();
        no_ip["status"] = json!({"phase": "Pending"});
        assert!(!should_pod_be_in_endpoints(&pod(no_ip), true));
        let mut terminating = base;
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!should_pod_be_in_endpoints(
            &pod(terminating.clone()),
            false
        ));
        assert!(should_pod_be_in_endpoints(&pod(terminating), true));
    }

    #[test]
    fn trigger_time_is_the_earliest_changed_trigger() {
        let t = TriggerTimeTracker::default();
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "s", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
        )
        .unwrap();
        let ready = |name: &str, at: &str| {
            std::sync::Arc::new(pod(
                json!({"metadata": {"name": name}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": at}]}}),
            ))
        };
        let first = t.compute("ns/s", &svc, &[ready("a", "2026-01-01T00:00:05Z")]);
        assert_eq!(first.unwrap().to_string(), "2026-01-01T00:00:00Z");
        // Nothing changed: no trigger time (the annotation is cleared).
        assert_eq!(
            t.compute("ns/s", &svc, &[ready("a", "2026-01-01T00:00:05Z")]),
            None
        );
        let pods = [
            ready("a", "2026-01-01T00:00:09Z"),
            ready("b", "2026-01-01T00:00:07Z"),
        ];
        assert_eq!(
            t.compute("ns/s", &svc, &pods).unwrap().to_string(),
            "2026-01-01T00:00:07Z"
        );
    }

    #[test]
    fn tracker_waits_for_own_writes() {
        let tr = SliceTracker::default();
        let slice = |uid: &str, rv: &str| -> EndpointSlice {
            serde_json::from_value(
                json!({"metadata": {"name": uid, "uid": uid, "resourceVersion": rv},
                "addressType": "IPv4", "endpoints": []}),
            )
            .unwrap()
        };
        tr.written("ns/s", &slice("a", "10"));
        assert!(tr.stale("ns/s", &[]));
        assert!(tr.stale("ns/s", &[std::sync::Arc::new(slice("a", "9"))]));
        assert!(!tr.stale("ns/s", &[std::sync::Arc::new(slice("a", "10"))]));
        tr.written("ns/s", &slice("a", "12"));
        assert!(tr.observe("ns/s", &slice("a", "12")));
        assert!(!tr.observe("ns/s", &slice("a", "13")));
        tr.deleted("ns/s", &slice("b", "3"));
        assert!(tr.stale("ns/s", &[std::sync::Arc::new(slice("b", "3"))]));
        assert!(tr.observe_deletion("ns/s", &slice("b", "3")));
        assert!(!tr.stale("ns/s", &[]));
    }
}
