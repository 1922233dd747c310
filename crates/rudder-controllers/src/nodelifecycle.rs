//! The node lifecycle controller (upstream's `pkg/controller/nodelifecycle`): every
//! `--node-monitor-period` it checks each node's health signals (its `kube-node-lease` Lease
//! and its Ready condition's heartbeat); a node not heard from for `--node-monitor-grace-period`
//! gets every kubelet condition set to Unknown ("Kubelet stopped posting node status."), its
//! pods marked not ready, and then the `unreachable` NoExecute taint (`not-ready` when the
//! node itself says Ready=False), which the taint eviction controller acts on. The NoSchedule
//! taints mirror the node's conditions (TaintNodesByCondition).
//!
//! Upstream's per-zone rate-limited tainting queues are simplified: a node due for a NoExecute
//! taint is tainted in the same pass (upstream: 0.1 node/s per zone, burst 1, which for a
//! single failing node is also immediate). What the zones protect against is kept: when every
//! zone is fully disrupted (no Ready node at all, usually the control plane's own network),
//! NoExecute taints are removed and none are added; a small zone (≤ 50 nodes) in partial
//! disruption (more than 2 and at least 55 % of its nodes not Ready) adds none.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::events::Recorder;
use crate::informer::{Change, Informer};
use crate::manager::{Context, Options};
use crate::nodeutil::{self, taint, TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::workqueue::WorkQueue;

/// Upstream's `nodeConditionToTaintKeyStatusMap`.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", nodeutil::TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", nodeutil::TAINT_DISK_PRESSURE),
    (
        "NetworkUnavailable",
        "True",
        nodeutil::TAINT_NETWORK_UNAVAILABLE,
    ),
    ("PIDPressure", "True", nodeutil::TAINT_PID_PRESSURE),
];

/// Conditions the kubelet owns, set to Unknown when it goes silent (NetworkUnavailable is the
/// control plane's, as upstream leaves it).
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Upstream's `labelReconcileInfo`: the beta OS/arch labels follow the stable ones.
const LABEL_RECONCILE: &[(&str, &str)] = &[
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";
/// Upstream's `--large-cluster-size-threshold` and `--unhealthy-zone-threshold`.
const LARGE_CLUSTER_THRESHOLD: usize = 50;
const UNHEALTHY_ZONE_THRESHOLD: f32 = 0.55;

/// What the controller last saw of a node (upstream's `nodeHealthData`); timestamps are this
/// controller's clock, never the kubelet's.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    pub probe: Timestamp,
    pub ready_transition: Timestamp,
    /// The Ready condition last seen (heartbeat, transition, status).
    pub ready: Option<NodeCondition>,
    pub lease_renew: Option<Timestamp>,
}

/// What one health check decided.
#[derive(Debug)]
pub struct Checked {
    pub health: Health,
    /// The Ready condition as the node carried it before this check.
    pub observed: NodeCondition,
    /// The Ready condition now (after marking Unknown, if it was).
    pub current: Option<NodeCondition>,
    /// The node's status was changed and must be written.
    pub write: bool,
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}

/// Upstream's `tryUpdateNodeHealth`, pure: `node` is changed in place when it must be marked
/// Unknown (then `write` is set).
pub fn check_node_health(
    saved: Option<&Health>,
    node: &mut Node,
    lease: Option<&Lease>,
    now: Timestamp,
    opts: &Options,
) -> Checked {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let current = nodeutil::condition(node, "Ready").cloned();
    let (observed, grace) = match &current {
        Some(c) => (c.clone(), opts.node_monitor_grace_period),
        None => (
            NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: node.metadata.creation_timestamp.clone(),
                ..Default::default()
            },
            opts.node_startup_grace_period,
        ),
    };
    let fresh = |probe: Timestamp, transition: Timestamp| Health {
        probe,
        ready_transition: transition,
        ready: current.clone(),
        lease_renew: saved.and_then(|h| h.lease_renew),
    };
    let mut health = match (saved, saved.and_then(|h| h.ready.as_ref()), &current) {
        (None, _, None) => fresh(created, created),
        (None, _, Some(_)) => fresh(now, now),
        (Some(_), None, Some(_)) | (Some(_), Some(_), None) => fresh(now, now),
        (Some(h), Some(s), Some(c)) if ts(&s.last_heartbeat_time) != ts(&c.last_heartbeat_time) => {
            let transition = if ts(&s.last_transition_time) != ts(&c.last_transition_time) {
                now
            } else {
                h.ready_transition
            };
            fresh(now, transition)
        }
        (Some(h), _, _) => h.clone(),
    };
    // A renewed Lease is as good as a status heartbeat.
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    if let Some(r) = renewed {
        if health.lease_renew.is_none_or(|saved| saved < r) {
            health.lease_renew = Some(r);
            health.probe = now;
        }
    }
    let mut current = current;
    let mut write = false;
    if now > add(health.probe, grace) {
        let now_t = Some(Time(now));
        let status = node.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in KUBELET_CONDITIONS {
            match conditions.iter_mut().find(|c| c.type_ == *type_) {
                None => conditions.push(NodeCondition {
                    type_: (*type_).into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: now_t.clone(),
                }),
                Some(c) if c.status != "Unknown" => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = now_t.clone();
                }
                Some(_) => {}
            }
        }
        current = nodeutil::condition(node, "Ready").cloned();
        if current.as_ref() != Some(&observed) {
            write = true;
            health = Health {
                probe: health.probe,
                ready_transition: now,
                ready: current.clone(),
                lease_renew: renewed.or(health.lease_renew),
            };
        }
    }
    Checked {
        health,
        observed,
        current,
        write,
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

/// Upstream's `GetZoneKey`: region and zone (stable labels, else the beta ones).
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |stable: &str, beta: &str| {
        labels
            .and_then(|l| l.get(stable).or_else(|| l.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// Upstream's `ComputeZoneState` over the Ready conditions of a zone's nodes.
pub fn zone_state(ready: &[bool]) -> ZoneState {
    let ready_n = ready.iter().filter(|r| **r).count();
    let not_ready = ready.len() - ready_n;
    if ready_n == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f32 / ready.len() as f32 >= UNHEALTHY_ZONE_THRESHOLD {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Upstream's `doNoScheduleTaintingPass`: the NoSchedule taints the node's conditions (and
/// `spec.unschedulable`) call for, against the condition taints it has: (add, remove).
pub fn no_schedule_taints(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut want = Vec::new();
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        for (type_, status, key) in CONDITION_TAINTS {
            if c.type_ == *type_ && c.status == *status {
                want.push(taint(key, "NoSchedule"));
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push(taint(nodeutil::TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    let have: Vec<_> = nodeutil::taints(node)
        .iter()
        .filter(|t| {
            t.effect == "NoSchedule"
                && (t.key == nodeutil::TAINT_UNSCHEDULABLE
                    || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
        })
        .cloned()
        .collect();
    let add = want
        .iter()
        .filter(|w| !have.iter().any(|h| h.key == w.key))
        .cloned()
        .collect();
    let remove = have
        .into_iter()
        .filter(|h| !want.iter().any(|w| w.key == h.key))
        .collect();
    (add, remove)
}

#[derive(Default)]
struct State {
    health: HashMap<String, Health>,
    /// Node name → UID of the nodes seen (upstream's `knownNodeSet`).
    known: HashMap<String, String>,
    /// Nodes whose pods must still be marked not ready.
    to_retry: HashSet<String>,
    /// Nodes due a NoExecute taint (upstream's `zoneNoExecuteTainter` queues).
    to_taint: HashSet<String>,
    zones: HashMap<String, ZoneState>,
}

pub struct NodeLifecycle {
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    leases: Arc<Informer<Lease>>,
    recorder: Recorder,
    opts: Arc<Options>,
    state: Mutex<State>,
}

struct NodeWorker(Arc<NodeLifecycle>);
struct PodWorker(Arc<NodeLifecycle>);

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(NodeLifecycle {
        client: cx.client.clone(),
        nodes: cx.informers.get::<Node>(),
        pods: cx.informers.get::<Pod>(),
        leases: cx.informers.get::<Lease>(),
        recorder: Recorder::new(cx.client.clone(), "node-controller", &cx.host),
        opts: cx.options.clone(),
        state: Mutex::default(),
    });
    let node_queue = WorkQueue::new("node_lifecycle_controller", cx.metrics.clone());
    let pod_queue = WorkQueue::new("node_lifecycle_controller_pods", cx.metrics.clone());
    let q = node_queue.clone();
    c.nodes.add_handler(move |ch| match ch {
        Change::Added(n) | Change::Updated { new: n, .. } => {
            q.add(n.metadata.name.clone().unwrap_or_default())
        }
        Change::Deleted(_) => {}
    });
    let q = pod_queue.clone();
    c.pods.add_handler(move |ch| {
        let (old, new) = match ch {
            Change::Added(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
            Change::Deleted(_) => return,
        };
        let node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.clone());
        if node(new).is_some() && old.is_none_or(|o| node(o) != node(new)) {
            q.add(nodeutil::pod_key(new));
        }
    });
    let this = c.clone();
    let synced = move |c: Arc<NodeLifecycle>| async move {
        c.nodes.wait_synced().await;
        c.pods.wait_synced().await;
        c.leases.wait_synced().await;
    };
    tasks.spawn(async move {
        synced(this.clone()).await;
        let period = this.opts.node_monitor_period;
        loop {
            this.clone().monitor_node_health().await;
            tokio::time::sleep(period).await;
        }
    });
    let this = c.clone();
    tasks.spawn(async move {
        synced(this.clone()).await;
        run_workers(node_queue, Arc::new(NodeWorker(this)), 8).await;
    });
    tasks.spawn(async move {
        synced(c.clone()).await;
        run_workers(pod_queue, Arc::new(PodWorker(c)), 4).await;
    });
}

impl NodeLifecycle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn node_event(&self, name: &str, uid: &str, reason: &str, message: String) {
        let r = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..Default::default()
        };
        self.recorder
            .event_for(r, "default".into(), "Normal", reason, message);
    }

    /// Upstream's `monitorNodeHealth`.
    async fn monitor_node_health(self: Arc<Self>) {
        let nodes = self.nodes.list_all();
        let (added, deleted) = {
            let st = self.state();
            let names: HashSet<&str> = nodes
                .iter()
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            let added: Vec<Arc<Node>> = nodes
                .iter()
                .filter(|n| {
                    !st.known
                        .contains_key(n.metadata.name.as_deref().unwrap_or(""))
                })
                .cloned()
                .collect();
            let deleted: Vec<(String, String)> = st
                .known
                .iter()
                .filter(|(n, _)| !names.contains(n.as_str()))
                .map(|(n, u)| (n.clone(), u.clone()))
                .collect();
            (added, deleted)
        };
        for n in &added {
            let name = n.metadata.name.clone().unwrap_or_default();
            let uid = n.metadata.uid.clone().unwrap_or_default();
            self.node_event(
                &name,
                &uid,
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            );
            self.state().known.insert(name, uid);
            self.mark_reachable(n).await;
        }
        for (name, uid) in deleted {
            self.node_event(
                &name,
                &uid,
                "RemovingNode",
                format!("Node {name} event: Removing Node {name} from Controller"),
            );
            let mut st = self.state();
            st.known.remove(&name);
            st.health.remove(&name);
            st.to_retry.remove(&name);
            st.to_taint.remove(&name);
        }

        let mut zones: HashMap<String, Vec<bool>> = HashMap::new();
        for n in &nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let Some((observed, current)) = self.update_node(n).await else {
                continue;
            };
            if !n
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION_LABEL))
            {
                zones
                    .entry(zone_key(n))
                    .or_default()
                    .push(current.as_ref().is_some_and(|c| c.status == "True"));
            }
            let Some(current) = current else { continue };
            self.taint_based_eviction(n, &observed).await;
            let retry = self.state().to_retry.contains(&name);
            let transitioned = current.status != "True" && observed.status == "True";
            if transitioned {
                self.node_event(
                    &name,
                    n.metadata.uid.as_deref().unwrap_or(""),
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
            }
            if transitioned || (retry && observed.status != "True") {
                let pods = nodeutil::pods_on_node(&self.pods.list_all(), &name);
                if self.mark_pods_not_ready(&pods, &name).await {
                    self.state().to_retry.remove(&name);
                } else {
                    self.state().to_retry.insert(name);
                }
            } else {
                self.state().to_retry.remove(&name);
            }
        }
        self.handle_disruption(zones, &nodes).await;
    }

    /// Checks one node; writes its status when it turned Unknown. (observed, current) Ready.
    async fn update_node(&self, n: &Node) -> Option<(NodeCondition, Option<NodeCondition>)> {
        let name = n.metadata.name.clone().unwrap_or_default();
        let lease = self.leases.get("kube-node-lease", &name);
        let mut node = n.clone();
        let saved = self.state().health.get(&name).cloned();
        let checked = check_node_health(
            saved.as_ref(),
            &mut node,
            lease.as_deref(),
            Timestamp::now(),
            &self.opts,
        );
        self.state().health.insert(name.clone(), checked.health);
        if checked.write {
            let api: Api<Node> = Api::all(self.client.clone());
            if let Err(e) = api
                .replace_status(&name, &PostParams::default(), &node)
                .await
            {
                // The next pass sees the node still stale and tries again.
                tracing::info!(node = %name, error = %e, "marking a node's status Unknown failed");
                self.state().health.remove(&name);
                if let Some(s) = saved {
                    self.state().health.insert(name, s);
                }
                return None;
            }
        }
        Some((checked.observed, checked.current))
    }

    /// Upstream's `processTaintBaseEviction`, on the Ready condition the node carried.
    async fn taint_based_eviction(&self, node: &Node, observed: &NodeCondition) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let (unreachable, not_ready) = (
            taint(TAINT_UNREACHABLE, "NoExecute"),
            taint(TAINT_NOT_READY, "NoExecute"),
        );
        let swap = |add: Taint, remove: Taint| async move {
            if let Err(e) = nodeutil::swap_node_taints(&self.client, name, &[add], &[remove]).await
            {
                tracing::info!(node = %name, error = %e, "swapping NoExecute taints failed; next pass retries");
            }
        };
        match observed.status.as_str() {
            "False" if nodeutil::has_taint(node, &unreachable) => {
                swap(not_ready, unreachable).await
            }
            "Unknown" if nodeutil::has_taint(node, &not_ready) => {
                swap(unreachable, not_ready).await
            }
            "False" | "Unknown" => {
                self.state().to_taint.insert(name.to_string());
            }
            "True" => self.mark_reachable(node).await,
            _ => {}
        }
    }

    /// Upstream's `markNodeAsReachable`: no NoExecute node-lifecycle taint, nothing queued.
    async fn mark_reachable(&self, node: &Node) {
        let name = node.metadata.name.as_deref().unwrap_or("");
        self.state().to_taint.remove(name);
        let remove = [
            taint(TAINT_UNREACHABLE, "NoExecute"),
            taint(TAINT_NOT_READY, "NoExecute"),
        ];
        if remove.iter().any(|t| nodeutil::has_taint(node, t)) {
            if let Err(e) = nodeutil::swap_node_taints(&self.client, name, &[], &remove).await {
                tracing::info!(node = %name, error = %e, "removing NoExecute taints failed");
            }
        }
    }

    /// Upstream's `MarkPodsNotReady`; false if a write failed (the node is retried).
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> bool {
        let mut ok = true;
        for pod in pods {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
            let Some(ready) = ready else { continue };
            if ready.status == "False" {
                continue;
            }
            let cond = json!({
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": nodeutil::now_time(),
            });
            match ignore_not_found(
                nodeutil::patch_pod_condition(&self.client, pod, cond, None).await,
            ) {
                Ok(()) => self.recorder.event(
                    pod.as_ref(),
                    "Warning",
                    "NodeNotReady",
                    "Node is not ready".into(),
                ),
                Err(e) => {
                    tracing::info!(node, pod = %nodeutil::pod_key(pod), error = %e, "marking a pod not ready failed");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Upstream's `handleDisruption` and `doNoExecuteTaintingPass`.
    async fn handle_disruption(&self, zones: HashMap<String, Vec<bool>>, nodes: &[Arc<Node>]) {
        let new: HashMap<String, ZoneState> = zones
            .iter()
            .map(|(k, v)| (k.clone(), zone_state(v)))
            .collect();
        let all_now = !new.is_empty() && new.values().all(|s| *s == ZoneState::FullDisruption);
        // A zone seen for the first time starts in upstream's Initial state, never fully
        // disrupted.
        let all_before = {
            let st = self.state();
            !new.is_empty()
                && new
                    .keys()
                    .all(|k| st.zones.get(k) == Some(&ZoneState::FullDisruption))
        };
        if all_now {
            if !all_before {
                tracing::info!(
                    "every node is not ready: entering master disruption mode (no evictions)"
                );
                for n in nodes {
                    self.mark_reachable(n).await;
                }
            }
            self.state().to_taint.clear();
            self.state().zones = new;
            return;
        }
        if all_before {
            tracing::info!("some nodes are ready: exiting master disruption mode");
            let now = Timestamp::now();
            let mut st = self.state();
            for h in st.health.values_mut() {
                h.probe = now;
                h.ready_transition = now;
            }
        }
        self.state().zones = new.clone();
        let queued: Vec<String> = self.state().to_taint.iter().cloned().collect();
        for name in queued {
            let Some(node) = self.nodes.get("", &name) else {
                self.state().to_taint.remove(&name);
                continue;
            };
            let zone = new
                .get(&zone_key(&node))
                .copied()
                .unwrap_or(ZoneState::Normal);
            let size = zones.get(&zone_key(&node)).map_or(0, Vec::len);
            if zone == ZoneState::PartialDisruption && size <= LARGE_CLUSTER_THRESHOLD {
                continue;
            }
            let (add, remove) = match nodeutil::condition(&node, "Ready").map(|c| c.status.as_str())
            {
                Some("False") => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                Some("Unknown") => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                Some(_) => {
                    self.state().to_taint.remove(&name);
                    continue;
                }
                None => continue,
            };
            match nodeutil::swap_node_taints(
                &self.client,
                &name,
                &[taint(add, "NoExecute")],
                &[taint(remove, "NoExecute")],
            )
            .await
            {
                Ok(()) => {
                    self.state().to_taint.remove(&name);
                }
                Err(e) => {
                    tracing::info!(node = %name, error = %e, "adding a NoExecute taint failed")
                }
            }
        }
    }

    /// NoSchedule condition taints and the beta OS/arch labels of one node.
    async fn sync_node(&self, name: &str) -> ReconcileResult {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(Next::Done);
        };
        let (add, remove) = no_schedule_taints(&node);
        if !add.is_empty() || !remove.is_empty() {
            ignore_not_found(nodeutil::swap_node_taints(&self.client, name, &add, &remove).await)?;
        }
        if let Some(labels) = node.metadata.labels.as_ref() {
            let mut patch = serde_json::Map::new();
            for (stable, beta) in LABEL_RECONCILE {
                if let Some(v) = labels.get(*stable) {
                    if labels.get(*beta) != Some(v) {
                        patch.insert((*beta).into(), json!(v));
                    }
                }
            }
            if !patch.is_empty() {
                let api: Api<Node> = Api::all(self.client.clone());
                let p = json!({"metadata": {"labels": patch}});
                ignore_not_found(
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
                        .await,
                )?;
            }
        }
        Ok(Next::Done)
    }

    /// Upstream's `processPod`: a pod newly bound to a node that is not Ready is marked not
    /// ready too.
    async fn sync_pod(&self, key: &str) -> ReconcileResult {
        let (ns, name) = crate::informer::split_key(key);
        let Some(pod) = self.pods.get(ns, name) else {
            return Ok(Next::Done);
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return Ok(Next::Done);
        };
        let ready = self.state().health.get(&node).and_then(|h| h.ready.clone());
        match ready {
            Some(r) if r.status != "True" && self.nodes.get("", &node).is_some() => {
                if self.mark_pods_not_ready(&[pod], &node).await {
                    Ok(Next::Done)
                } else {
                    Err(crate::controller::ReconcileError::Other(format!(
                        "marking pod {key} not ready failed"
                    )))
                }
            }
            _ => Ok(Next::Done),
        }
    }
}

impl Reconciler for NodeWorker {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move { self.0.sync_node(&key).await })
    }
}

impl Reconciler for PodWorker {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move { self.0.sync_pod(&key).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn cond(type_: &str, status: &str, heartbeat: i64, transition: i64) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: Some(Time(at(heartbeat))),
            last_transition_time: Some(Time(at(transition))),
            ..Default::default()
        }
    }

    fn node(conds: Vec<NodeCondition>) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "node0", "creationTimestamp": Time(at(0))},
            "status": {"conditions": conds},
        }))
        .unwrap()
    }

    fn lease(renew: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(at(renew))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn status_of<'a>(n: &'a Node, t: &str) -> (&'a str, Option<&'a str>) {
        let c = nodeutil::condition(n, t).unwrap();
        (c.status.as_str(), c.reason.as_deref())
    }

    // Cases of upstream's TestMonitorNodeHealthUpdateStatus / ...NodeLease.
    #[test]
    fn fresh_node_is_left_alone() {
        let opts = Options::default();
        let mut n = node(vec![cond("Ready", "True", 0, 0)]);
        let c = check_node_health(None, &mut n, None, at(10), &opts);
        assert!(!c.write);
        assert_eq!(c.health.probe, at(10));
    }

    #[test]
    fn node_silent_past_the_grace_period_becomes_unknown() {
        let opts = Options::default();
        let mut n = node(vec![
            cond("Ready", "True", 0, 0),
            cond("MemoryPressure", "False", 0, 0),
            cond("NetworkUnavailable", "False", 0, 0),
        ]);
        let first = check_node_health(None, &mut n, None, at(1), &opts);
        assert!(!first.write);
        // Same heartbeat 50 s later: still within the grace period.
        let c = check_node_health(Some(&first.health), &mut n, None, at(51), &opts);
        assert!(!c.write);
        let c = check_node_health(Some(&first.health), &mut n, None, at(52), &opts);
        assert!(c.write);
        assert_eq!(c.observed.status, "True");
        assert_eq!(c.current.as_ref().unwrap().status, "Unknown");
        assert_eq!(
            status_of(&n, "Ready"),
            ("Unknown", Some("NodeStatusUnknown"))
        );
        assert_eq!(
            nodeutil::condition(&n, "Ready").unwrap().message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(status_of(&n, "MemoryPressure").0, "Unknown");
        // Never reported: added as NodeStatusNeverUpdated; NetworkUnavailable is untouched.
        assert_eq!(
            status_of(&n, "DiskPressure"),
            ("Unknown", Some("NodeStatusNeverUpdated"))
        );
        assert_eq!(status_of(&n, "NetworkUnavailable").0, "False");
        // Unchanged afterwards: no second write.
        let again = check_node_health(Some(&c.health), &mut n, None, at(60), &opts);
        assert!(!again.write);
        assert_eq!(again.observed.status, "Unknown");
    }

    #[test]
    fn a_renewed_lease_keeps_the_node_healthy() {
        let opts = Options::default();
        let mut n = node(vec![cond("Ready", "True", 0, 0)]);
        let h = check_node_health(None, &mut n, Some(&lease(0)), at(1), &opts).health;
        let h = check_node_health(Some(&h), &mut n, Some(&lease(40)), at(45), &opts).health;
        assert_eq!(h.probe, at(45));
        let c = check_node_health(Some(&h), &mut n, Some(&lease(40)), at(90), &opts);
        assert!(!c.write, "45 s since the lease renewal");
        let c = check_node_health(Some(&h), &mut n, Some(&lease(40)), at(96), &opts);
        assert!(c.write, "the lease stopped being renewed");
    }

    #[test]
    fn node_without_status_gets_the_startup_grace_period() {
        let opts = Options::default();
        let mut n = node(vec![]);
        let c = check_node_health(None, &mut n, None, at(59), &opts);
        assert!(!c.write);
        assert_eq!(c.health.probe, at(0));
        let c = check_node_health(Some(&c.health), &mut n, None, at(61), &opts);
        assert!(c.write);
        assert_eq!(
            status_of(&n, "Ready"),
            ("Unknown", Some("NodeStatusNeverUpdated"))
        );
        assert_eq!(
            nodeutil::condition(&n, "Ready").unwrap().message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }

    #[test]
    fn new_heartbeat_refreshes_the_probe() {
        let opts = Options::default();
        let mut n = node(vec![cond("Ready", "True", 0, 0)]);
        let h = check_node_health(None, &mut n, None, at(1), &opts).health;
        let mut n2 = node(vec![cond("Ready", "False", 40, 40)]);
        let c = check_node_health(Some(&h), &mut n2, None, at(41), &opts);
        assert_eq!(c.health.probe, at(41));
        assert_eq!(c.health.ready_transition, at(41));
        assert!(!c.write);
        assert_eq!(c.observed.status, "False");
    }

    // Cases of upstream's TestTaintsNodeByCondition.
    #[test]
    fn no_schedule_taints_follow_conditions() {
        let mut n = node(vec![
            cond("Ready", "False", 0, 0),
            cond("MemoryPressure", "True", 0, 0),
            cond("NetworkUnavailable", "True", 0, 0),
        ]);
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            taints: Some(vec![
                taint(nodeutil::TAINT_DISK_PRESSURE, "NoSchedule"),
                taint("user", "NoSchedule"),
                taint(TAINT_UNREACHABLE, "NoExecute"),
            ]),
            ..Default::default()
        });
        let (add, remove) = no_schedule_taints(&n);
        let keys = |ts: &[Taint]| ts.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&add),
            [
                TAINT_NOT_READY,
                nodeutil::TAINT_MEMORY_PRESSURE,
                nodeutil::TAINT_NETWORK_UNAVAILABLE,
                nodeutil::TAINT_UNSCHEDULABLE
            ]
        );
        assert_eq!(keys(&remove), [nodeutil::TAINT_DISK_PRESSURE]);
        let n = node(vec![cond("Ready", "Unknown", 0, 0)]);
        assert_eq!(keys(&no_schedule_taints(&n).0), [TAINT_UNREACHABLE]);
    }

    // Cases of upstream's TestComputeZoneState.
    #[test]
    fn zone_states() {
        assert_eq!(zone_state(&[true, false]), ZoneState::Normal);
        assert_eq!(zone_state(&[false, false]), ZoneState::FullDisruption);
        assert_eq!(
            zone_state(&[true, false, false, false]),
            ZoneState::PartialDisruption
        );
        assert_eq!(zone_state(&[true, true, false, false]), ZoneState::Normal);
        assert_eq!(zone_state(&[]), ZoneState::Normal);
    }
}
