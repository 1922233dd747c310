//! The scheduler proper: informers feeding the cache and the queue, the scheduling loop on its
//! own thread (a cycle is CPU work: snapshot, filter in parallel, score, assume), and binding,
//! events and status updates as asynchronous API calls, as upstream's `scheduleOne` does them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use rayon::prelude::*;
use serde_json::json;

use crate::cache::Cache;
use crate::config::SchedulerConfig;
use crate::framework::*;
use crate::metrics::SchedulerMetrics;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};
use crate::nominator::{NominatedPods, Nominator};
use crate::plugins::Handle;
use crate::queue::{QueuePolicy, SchedulingQueue};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("building the filter thread pool: {0}")]
    Pool(String),
    #[error("the scheduling thread could not start: {0}")]
    Thread(std::io::Error),
}

/// Upstream's `ErrNoNodesAvailable`.
const NO_NODES: &str = "no nodes available to schedule pods";

/// The queue's view of the profiles (they must share one QueueSort; PreEnqueue is per profile).
struct Policy {
    profiles: Arc<HashMap<String, Profile>>,
    default: Profile,
    events: HashMap<&'static str, Vec<ClusterEvent>>,
}

impl Policy {
    fn profile(&self, pod: &PodInfo) -> &Profile {
        self.profiles
            .get(scheduler_name(pod))
            .unwrap_or(&self.default)
    }
}

impl QueuePolicy for Policy {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        self.default.less(a, b)
    }
    fn pre_enqueue(&self, pod: &PodInfo) -> Status {
        self.profile(pod).run_pre_enqueue(pod)
    }
    fn events(&self) -> &HashMap<&'static str, Vec<ClusterEvent>> {
        &self.events
    }
}

fn scheduler_name(pod: &PodInfo) -> &str {
    pod.spec()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME)
}

/// Shared by the informers, the scheduling thread and the binding tasks.
struct Shared {
    client: Client,
    profiles: Arc<HashMap<String, Profile>>,
    queue: Arc<SchedulingQueue>,
    cache: Mutex<Cache>,
    metrics: Arc<SchedulerMetrics>,
    runtime: tokio::runtime::Handle,
    events: tokio::sync::mpsc::Sender<K8sEvent>,
    /// `reportingInstance` of our events (upstream: `<schedulerName>-<hostname>`).
    instance: String,
    next_start_node: AtomicUsize,
    nominator: Mutex<Nominator>,
}

/// Stops the scheduling thread when the scheduler's future is dropped (leadership lost or
/// shutdown).
struct CloseOnDrop(Arc<SchedulingQueue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs the scheduler until the future is dropped. Every API call goes through `client`.
pub async fn run(
    client: Client,
    config: SchedulerConfig,
    metrics: Arc<SchedulerMetrics>,
    host: &str,
) -> Result<(), Error> {
    let (handle, informers) = Handle::start(client.clone());
    let built = config.build_profiles(&handle)?;
    let default = built[0].clone();
    let mut events: HashMap<&'static str, Vec<ClusterEvent>> = HashMap::new();
    for p in &built {
        for plugin in p.plugins() {
            events.insert(plugin.name(), plugin.events_to_register());
        }
    }
    let profiles: Arc<HashMap<String, Profile>> = Arc::new(
        built
            .into_iter()
            .map(|p| (p.scheduler_name.clone(), p))
            .collect(),
    );
    let queue = Arc::new(SchedulingQueue::new(
        Arc::new(Policy {
            profiles: profiles.clone(),
            default,
            events,
        }),
        Duration::from_secs(config.pod_initial_backoff_seconds.max(1) as u64),
        Duration::from_secs(config.pod_max_backoff_seconds.max(1) as u64),
    ));
    let _close = CloseOnDrop(queue.clone());
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(1000);
    let shared = Arc::new(Shared {
        client: client.clone(),
        profiles,
        queue: queue.clone(),
        cache: Mutex::new(Cache::new()),
        metrics,
        runtime: tokio::runtime::Handle::current(),
        events: event_tx,
        instance: format!("{}-{host}", crate::config::DEFAULT_SCHEDULER_NAME),
        next_start_node: AtomicUsize::new(0),
        nominator: Mutex::new(Nominator::default()),
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(publish_events(client.clone(), event_rx));
    for informer in informers {
        tasks.spawn(informer);
    }
    let (nodes_synced_tx, nodes_synced) = tokio::sync::oneshot::channel();
    let (pods_synced_tx, pods_synced) = tokio::sync::oneshot::channel();
    tasks.spawn(watch_nodes(shared.clone(), nodes_synced_tx));
    tasks.spawn(watch_pods(shared.clone(), pods_synced_tx));
    // Changes of the listers' objects that may make pods schedulable.
    let cluster_events = handle
        .listers
        .cluster_events
        .lock()
        .ok()
        .and_then(|mut rx| rx.take());
    if let Some(mut rx) = cluster_events {
        let queue = queue.clone();
        tasks.spawn(async move {
            while let Some((resource, action)) = rx.recv().await {
                queue.on_event(resource, action);
            }
        });
    }
    let _ = nodes_synced.await;
    let _ = pods_synced.await;
    handle.listers.wait_ready().await;
    tracing::info!("scheduler caches synced; scheduling");
    {
        let s = shared.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                s.queue.flush();
                s.metrics.set_pending(s.queue.pending());
            }
        });
    }

    let threads = (config.parallelism as usize).min(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("sched-filter-{i}"))
        .build()
        .map_err(|e| Error::Pool(e.to_string()))?;
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || scheduling_loop(worker, pool))
        .map_err(Error::Thread)?;
    // Runs until dropped; the informer tasks are aborted with the JoinSet and the loop thread
    // ends when `_close` closes the queue.
    while tasks.join_next().await.is_some() {}
    let _ = thread;
    Ok(())
}

async fn publish_events(client: Client, mut rx: tokio::sync::mpsc::Receiver<K8sEvent>) {
    // A few writers in parallel: events must not become the throughput limit, and upstream's
    // broadcaster drops them when it falls behind, as `try_send` does here.
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    while let Some(ev) = rx.recv().await {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        let ns = ev.metadata.namespace.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "writing an event failed");
            }
            drop(permit);
        });
    }
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

impl Shared {
    fn event(&self, pod: &Pod, type_: &str, reason: &str, action: &str, note: String) {
        self.event_related(pod, None, type_, reason, action, note)
    }

    fn event_related(
        &self,
        pod: &Pod,
        related: Option<&Pod>,
        type_: &str,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let now = jiff::Timestamp::now();
        let name = format!(
            "{}.{:x}",
            pod.metadata.name.as_deref().unwrap_or(""),
            now.as_nanosecond()
        );
        let ev = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: pod.metadata.namespace.clone(),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note),
            type_: Some(type_.into()),
            regarding: Some(pod_ref(pod)),
            related: related.map(pod_ref),
            reporting_controller: Some(crate::config::DEFAULT_SCHEDULER_NAME.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        if self.events.try_send(ev).is_err() {
            tracing::debug!("event queue full; dropping an event");
        }
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn assigned_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl Shared {
    fn nominator(&self) -> std::sync::MutexGuard<'_, Nominator> {
        self.nominator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_pod(&self, pod: Pod) {
        let pod = Arc::new(pod);
        let info = Arc::new(PodInfo::new(pod.clone()));
        if is_terminal(&pod) {
            self.on_pod_delete(&info);
            return;
        }
        match assigned_node(&pod) {
            Some(node) => {
                let node = node.to_string();
                let action = {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    let known = cache.is_assumed(&info.uid);
                    cache.add_or_update_pod(info.clone(), &node);
                    if known {
                        ActionType::Add
                    } else {
                        ActionType::Update
                    }
                };
                self.queue.delete(&info.key);
                self.nominator().remove(&info.uid);
                self.queue.on_event(EventResource::AssignedPod, action);
            }
            None => {
                if !self.profiles.contains_key(scheduler_name(&info)) {
                    return;
                }
                self.nominator().update(&info);
                let assumed = self
                    .cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_assumed(&info.uid);
                if assumed {
                    return;
                }
                if self.queue.contains(&info.key) {
                    self.queue.update(info);
                } else {
                    self.queue.add(info);
                }
            }
        }
    }

    fn on_pod_delete(&self, info: &PodInfo) {
        let was_cached = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let had = cache.pod_uids().contains(&info.uid);
            cache.remove_pod(&info.uid);
            had
        };
        self.nominator().forget(&info.uid);
        self.queue.delete(&info.key);
        if was_cached {
            self.queue
                .on_event(EventResource::AssignedPod, ActionType::Delete);
        }
    }
}

async fn watch_pods(s: Arc<Shared>, synced: tokio::sync::oneshot::Sender<()>) {
    let api: Api<Pod> = Api::all(s.client.clone());
    let cfg = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let mut stream = watcher(api, cfg).boxed();
    let mut synced = Some(synced);
    let mut seen: Option<std::collections::HashSet<String>> = None;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init) => seen = Some(Default::default()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(seen) = seen.as_mut() {
                    seen.insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                s.on_pod(pod);
            }
            Ok(watcher::Event::InitDone) => {
                // Pods gone while we were not watching.
                if let Some(seen) = seen.take() {
                    let stale: Vec<String> = {
                        let cache = s.cache.lock().unwrap_or_else(|e| e.into_inner());
                        cache
                            .pod_uids()
                            .into_iter()
                            .filter(|u| !seen.contains(u) && !cache.is_assumed(u))
                            .collect()
                    };
                    let mut cache = s.cache.lock().unwrap_or_else(|e| e.into_inner());
                    for uid in stale {
                        cache.remove_pod(&uid);
                    }
                }
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
            }
            Ok(watcher::Event::Apply(pod)) => s.on_pod(pod),
            Ok(watcher::Event::Delete(pod)) => {
                let info = PodInfo::new(Arc::new(pod));
                s.on_pod_delete(&info);
            }
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn watch_nodes(s: Arc<Shared>, synced: tokio::sync::oneshot::Sender<()>) {
    let api: Api<Node> = Api::all(s.client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut synced = Some(synced);
    let mut seen: Option<std::collections::HashSet<String>> = None;
    while let Some(ev) = stream.next().await {
        let (node, deleted) = match ev {
            Ok(watcher::Event::Init) => {
                seen = Some(Default::default());
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = seen.take() {
                    let mut cache = s.cache.lock().unwrap_or_else(|e| e.into_inner());
                    for name in cache.node_names() {
                        if !seen.contains(&name) {
                            cache.remove_node(&name);
                        }
                    }
                }
                if let Some(tx) = synced.take() {
                    let _ = tx.send(());
                }
                continue;
            }
            Ok(watcher::Event::InitApply(n)) => {
                if let Some(seen) = seen.as_mut() {
                    seen.insert(n.metadata.name.clone().unwrap_or_default());
                }
                (n, false)
            }
            Ok(watcher::Event::Apply(n)) => (n, false),
            Ok(watcher::Event::Delete(n)) => (n, true),
            Err(e) => {
                tracing::warn!(error = %e, "node watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let action = {
            let mut cache = s.cache.lock().unwrap_or_else(|e| e.into_inner());
            if deleted {
                cache.remove_node(&name);
                ActionType::Delete
            } else {
                let existed = cache.node_names().contains(&name);
                cache.add_or_update_node(Arc::new(node));
                if existed {
                    ActionType::Update
                } else {
                    ActionType::Add
                }
            }
        };
        s.queue.on_event(EventResource::Node, action);
    }
}

/// Upstream's `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, all: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    const MIN_PERCENTAGE: i64 = 5;
    if all < MIN_FEASIBLE {
        return all;
    }
    let mut pct = i64::from(percentage.unwrap_or(0));
    if pct <= 0 {
        pct = (50 - all as i64 / 125).max(MIN_PERCENTAGE);
    }
    let n = all as i64 * pct / 100;
    (n as usize).max(MIN_FEASIBLE)
}

/// Why a pod did not fit: the statuses per node and the PreFilter/PostFilter messages
/// (upstream's `Diagnosis`).
#[derive(Default)]
pub struct Diagnosis {
    pub statuses: NodeToStatus,
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
    pub unschedulable_plugins: std::collections::HashSet<&'static str>,
}

/// Upstream's `FitError.Error()`: `0/N nodes are available: <reasons histogram>.` plus the
/// PostFilter (preemption) message.
pub fn fit_error_message(all_nodes: usize, d: &Diagnosis) -> String {
    let mut msg = format!("0/{all_nodes} nodes are available:");
    if !d.pre_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", d.pre_filter_msg));
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in d.statuses.values() {
            for r in &s.reasons {
                *counts.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        if !parts.is_empty() {
            msg.push_str(&format!(" {}.", parts.join(", ")));
        }
    }
    if !d.post_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", d.post_filter_msg));
    }
    msg
}

enum Outcome {
    Scheduled {
        node: String,
    },
    Unschedulable {
        message: String,
        plugins: std::collections::HashSet<&'static str>,
        nominated: Option<String>,
        victims: Vec<Arc<Pod>>,
    },
    Error(String),
}

fn scheduling_loop(s: Arc<Shared>, pool: rayon::ThreadPool) {
    let mut snapshot = Snapshot::default();
    while let Some((qpi, cycle)) = s.queue.pop() {
        let started = Instant::now();
        let pod = qpi.pod_info.clone();
        let Some(profile) = s.profiles.get(scheduler_name(&pod)) else {
            s.queue.done(&pod.key);
            continue;
        };
        if pod.pod.metadata.deletion_timestamp.is_some() {
            s.queue.done(&pod.key);
            continue;
        }
        s.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update_snapshot(&mut snapshot);
        let mut state = CycleState::default();
        let nominated = s.nominator().snapshot();
        let outcome =
            pool.install(|| schedule_pod(&s, profile, &mut state, &pod, &snapshot, &nominated));
        let profile_name = profile.scheduler_name.clone();
        match outcome {
            Outcome::Scheduled { node } => {
                s.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .assume(pod.clone(), &node);
                s.nominator().remove(&pod.uid);
                let mut status = profile.run_reserve(&mut state, &pod, &node);
                if status.is_success() {
                    status = profile.run_permit(&mut state, &pod, &node);
                }
                if !status.is_success() {
                    profile.run_unreserve(&mut state, &pod, &node);
                    s.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .forget(&pod.uid);
                    s.metrics.attempt(&profile_name, "error", started.elapsed());
                    fail(
                        &s,
                        qpi,
                        cycle,
                        false,
                        status.message(),
                        "SchedulerError",
                        None,
                    );
                    continue;
                }
                s.metrics
                    .attempt(&profile_name, "scheduled", started.elapsed());
                let s2 = s.clone();
                let profile = profile.clone();
                s.runtime.spawn(async move {
                    bind(s2, profile, state, qpi, cycle, node).await;
                });
            }
            Outcome::Unschedulable {
                message,
                plugins,
                nominated,
                victims,
            } => {
                s.metrics
                    .attempt(&profile_name, "unschedulable", started.elapsed());
                let mut qpi = qpi;
                qpi.unschedulable_plugins = plugins;
                if let Some(node) = nominated.as_deref().filter(|n| !n.is_empty()) {
                    {
                        let mut nominator = s.nominator();
                        for v in &victims {
                            nominator.evicting(v.metadata.uid.as_deref().unwrap_or(""));
                        }
                    }
                    for v in victims {
                        let s2 = s.clone();
                        let preemptor = pod.pod.clone();
                        let node = node.to_string();
                        s.runtime
                            .spawn(async move { evict_victim(s2, preemptor, v, node).await });
                    }
                    // Lower-priority pods nominated to this node may no longer fit there:
                    // their nomination is cleared so they look elsewhere (upstream's
                    // prepareCandidate).
                    let lower: Vec<Arc<Pod>> = {
                        let mut nominator = s.nominator();
                        let lower: Vec<Arc<PodInfo>> = nominator
                            .snapshot()
                            .on_node(node)
                            .iter()
                            .filter(|p| p.priority < pod.priority)
                            .cloned()
                            .collect();
                        for p in &lower {
                            nominator.remove(&p.uid);
                        }
                        nominator.nominate(&pod, node);
                        lower.into_iter().map(|p| p.pod.clone()).collect()
                    };
                    for p in lower {
                        let s2 = s.clone();
                        s.runtime
                            .spawn(async move { clear_nomination(&s2, &p).await });
                    }
                }
                fail(&s, qpi, cycle, true, message, "Unschedulable", nominated);
            }
            Outcome::Error(message) => {
                s.metrics.attempt(&profile_name, "error", started.elapsed());
                fail(&s, qpi, cycle, false, message, "SchedulerError", None);
            }
        }
    }
}

/// Removes `nominatedNodeName` from a pod's status (upstream's `ClearNominatedNodeName`).
async fn clear_nomination(s: &Shared, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or(""),
    );
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let patch = json!({"status": {"nominatedNodeName": null}});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(pod = %name, error = %e, "clearing nominatedNodeName failed");
    }
}

/// Marks a preemption victim with the DisruptionTarget condition and deletes it, with
/// upstream's event on it (upstream's `prepareCandidate`).
async fn evict_victim(s: Arc<Shared>, preemptor: Arc<Pod>, victim: Arc<Pod>, node: String) {
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        victim.metadata.namespace.as_deref().unwrap_or(""),
    );
    let name = victim.metadata.name.clone().unwrap_or_default();
    let scheduler = preemptor
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
        "lastTransitionTime": jiff::Timestamp::now().round(jiff::Unit::Second).ok().map(|t| t.to_string()),
    }]}});
    if let Err(e) = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    {
        tracing::warn!(pod = %name, error = %e, "adding the DisruptionTarget condition to a preemption victim failed");
        s.nominator()
            .forget(victim.metadata.uid.as_deref().unwrap_or(""));
        return;
    }
    match api.delete(&name, &Default::default()).await {
        Ok(_) => s.event_related(
            &victim,
            Some(&preemptor),
            "Normal",
            "Preempted",
            "Preempting",
            format!(
                "Preempted by pod {} on node {node}",
                preemptor.metadata.uid.as_deref().unwrap_or("")
            ),
        ),
        Err(e) => {
            tracing::warn!(pod = %name, error = %e, "deleting a preemption victim failed");
            s.nominator()
                .forget(victim.metadata.uid.as_deref().unwrap_or(""));
        }
    }
}

fn fail(
    s: &Arc<Shared>,
    qpi: QueuedPodInfo,
    cycle: u64,
    unschedulable: bool,
    message: String,
    reason: &'static str,
    nominated: Option<String>,
) {
    let pod = qpi.pod_info.pod.clone();
    tracing::debug!(pod = %qpi.pod_info.key, %message, "unable to schedule pod");
    s.queue.requeue_failed(qpi, cycle, unschedulable);
    s.event(
        &pod,
        "Warning",
        "FailedScheduling",
        "Scheduling",
        message.clone(),
    );
    let s2 = s.clone();
    s.runtime.spawn(async move {
        update_pod_condition(&s2, &pod, reason, &message, nominated).await;
    });
}

/// Writes the PodScheduled=False condition (and `nominatedNodeName`) when they change.
async fn update_pod_condition(
    s: &Shared,
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated: Option<String>,
) {
    let current = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let same = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(message)
    });
    let nominated_same = match nominated.as_deref() {
        None => true,
        Some(n) => {
            pod.status
                .as_ref()
                .and_then(|st| st.nominated_node_name.as_deref())
                .unwrap_or("")
                == n
        }
    };
    if same && nominated_same {
        return;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .map(|t| serde_json::to_value(t).unwrap_or(serde_json::Value::Null))
    .unwrap_or_else(|| {
        json!(jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .ok()
            .map(|t| t.to_string()))
    });
    let mut status = json!({
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]
    });
    match nominated {
        Some(n) if n.is_empty() => status["nominatedNodeName"] = json!(null),
        Some(n) => status["nominatedNodeName"] = json!(n),
        None => {}
    }
    let api: Api<Pod> = Api::namespaced(
        s.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or(""),
    );
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let patch = json!({"status": status});
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        tracing::debug!(pod = %name, error = %e, "updating the pod's PodScheduled condition failed");
    }
}

async fn bind(
    s: Arc<Shared>,
    profile: Profile,
    mut state: CycleState,
    qpi: QueuedPodInfo,
    cycle: u64,
    node: String,
) {
    let pod = qpi.pod_info.clone();
    let mut status = Status::success();
    for p in &profile.pre_bind {
        status = p.pre_bind(&pod, &node).await.from_plugin(p.name());
        if !status.is_success() {
            break;
        }
    }
    if status.is_success() {
        status = Status::skip();
        for p in &profile.bind {
            status = p
                .bind(pod.clone(), node.clone())
                .await
                .from_plugin(p.name());
            if status.code != Code::Skip {
                break;
            }
        }
    }
    if status.is_success() {
        s.queue.done(&pod.key);
        s.metrics.bound();
        s.event(
            &pod.pod,
            "Normal",
            "Scheduled",
            "Binding",
            format!(
                "Successfully assigned {}/{} to {}",
                pod.namespace(),
                pod.name(),
                node
            ),
        );
        return;
    }
    profile.run_unreserve(&mut state, &pod, &node);
    s.cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .forget(&pod.uid);
    s.queue
        .on_event(EventResource::AssignedPod, ActionType::Delete);
    let message = format!("Binding rejected: {}", status.message());
    fail(&s, qpi, cycle, false, message, "SchedulerError", None);
}

fn schedule_pod(
    s: &Shared,
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nominated: &NominatedPods,
) -> Outcome {
    if snapshot.is_empty() {
        return Outcome::Unschedulable {
            message: NO_NODES.into(),
            plugins: Default::default(),
            nominated: None,
            victims: Vec::new(),
        };
    }
    let mut diagnosis = Diagnosis::default();
    let (feasible, all) =
        find_feasible(s, profile, state, pod, snapshot, nominated, &mut diagnosis);
    let feasible = match feasible {
        Ok(f) => f,
        Err(e) => return Outcome::Error(e),
    };
    if feasible.is_empty() {
        let mut nominated_node = None;
        let mut victims = Vec::new();
        if profile.has_post_filter() {
            let cx = PostFilterContext {
                snapshot,
                statuses: &diagnosis.statuses,
                framework: profile,
                nominated,
            };
            for p in &profile.post_filter {
                let (r, st) = p.post_filter(state, pod, &cx);
                if !st.message().is_empty() {
                    diagnosis.post_filter_msg = st.message();
                }
                if st.is_success() {
                    nominated_node = r.nominated_node;
                    victims = r.victims;
                    break;
                }
                if r.nominated_node.is_some() {
                    nominated_node = r.nominated_node;
                }
            }
        }
        return Outcome::Unschedulable {
            message: fit_error_message(all, &diagnosis),
            plugins: diagnosis.unschedulable_plugins,
            nominated: nominated_node,
            victims,
        };
    }
    if feasible.len() == 1 {
        return Outcome::Scheduled {
            node: feasible[0].name().to_string(),
        };
    }
    let st = profile.run_pre_score(state, pod, &feasible, snapshot);
    if !st.is_success() {
        return Outcome::Error(st.message());
    }
    let scores = match profile.run_score(state, pod, &feasible) {
        Ok(s) => s,
        Err(st) => return Outcome::Error(st.message()),
    };
    Outcome::Scheduled {
        node: select_host(&feasible, &scores),
    }
}

/// The highest score; ties broken uniformly at random (upstream's reservoir sampling).
fn select_host(nodes: &[Arc<NodeInfo>], scores: &[i64]) -> String {
    let mut best = 0usize;
    let mut ties = 1u64;
    for i in 1..nodes.len() {
        if scores[i] > scores[best] {
            best = i;
            ties = 1;
        } else if scores[i] == scores[best] {
            ties += 1;
            if fastrand::u64(0..ties) == 0 {
                best = i;
            }
        }
    }
    nodes[best].name().to_string()
}

/// PreFilter, then Filter over the nodes from the rotating start index until enough feasible
/// nodes are found, in parallel. Returns the feasible nodes and how many nodes there are.
fn find_feasible(
    s: &Shared,
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    snapshot: &Snapshot,
    nominated: &NominatedPods,
    diagnosis: &mut Diagnosis,
) -> (Result<Vec<Arc<NodeInfo>>, String>, usize) {
    let all = snapshot.len();
    let (result, status) = profile.run_pre_filter(state, pod, snapshot);
    if !status.is_success() {
        if status.code == Code::Error {
            return (Err(status.message()), all);
        }
        diagnosis.pre_filter_msg = status.message();
        diagnosis.unschedulable_plugins.insert(status.plugin);
        for n in &snapshot.nodes {
            diagnosis
                .statuses
                .insert(n.name().to_string(), status.clone());
        }
        return (Ok(Vec::new()), all);
    }
    // The node an earlier preemption nominated is likely the only one that fits: try it first
    // (upstream's `evaluateNominatedNode`).
    let nominated_node = pod
        .pod
        .status
        .as_ref()
        .and_then(|st| st.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    if let Some(node) = nominated_node.and_then(|n| snapshot.get(n)) {
        let st = profile.run_filter_with_nominated_pods(state, pod, node, nominated);
        if st.is_success() {
            return (Ok(vec![node.clone()]), all);
        }
        if st.code == Code::Error {
            return (Err(st.message()), all);
        }
    }
    let candidates: Vec<Arc<NodeInfo>> = match &result {
        Some(names) => {
            let mut v: Vec<Arc<NodeInfo>> = names
                .iter()
                .filter_map(|n| snapshot.get(n).cloned())
                .collect();
            v.sort_by(|a, b| a.name().cmp(b.name()));
            v
        }
        None => Vec::new(),
    };
    let nodes: &[Arc<NodeInfo>] = if result.is_some() {
        &candidates
    } else {
        &snapshot.nodes
    };
    if nodes.is_empty() {
        return (Ok(Vec::new()), all);
    }
    let want = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, nodes.len());
    let start = s.next_start_node.load(Ordering::Relaxed) % nodes.len();
    let state_ro: &CycleState = state;
    let mut feasible = Vec::with_capacity(want);
    let mut processed = 0usize;
    const CHUNK: usize = 128;
    while processed < nodes.len() && feasible.len() < want {
        let end = (processed + CHUNK).min(nodes.len());
        let idx: Vec<usize> = (processed..end)
            .map(|i| (start + i) % nodes.len())
            .collect();
        let results: Vec<Status> = if idx.len() > 16 {
            idx.par_iter()
                .map(|i| {
                    profile.run_filter_with_nominated_pods(state_ro, pod, &nodes[*i], nominated)
                })
                .collect()
        } else {
            idx.iter()
                .map(|i| {
                    profile.run_filter_with_nominated_pods(state_ro, pod, &nodes[*i], nominated)
                })
                .collect()
        };
        for (k, st) in results.into_iter().enumerate() {
            let node = &nodes[idx[k]];
            processed += 1;
            if st.is_success() {
                feasible.push(node.clone());
                if feasible.len() >= want {
                    break;
                }
            } else if st.code == Code::Error {
                return (Err(st.message()), all);
            } else {
                diagnosis.unschedulable_plugins.insert(st.plugin);
                diagnosis.statuses.insert(node.name().to_string(), st);
            }
        }
    }
    s.next_start_node
        .store((start + processed) % nodes.len(), Ordering::Relaxed);
    // Nodes PreFilter excluded count as rejected by it (so the message covers every node).
    if result.is_some() {
        for n in &snapshot.nodes {
            if !candidates.iter().any(|c| c.name() == n.name()) {
                let mut plugins = state.narrowed_by.clone();
                plugins.sort_unstable();
                diagnosis.statuses.insert(
                    n.name().to_string(),
                    Status::new(
                        Code::UnschedulableAndUnresolvable,
                        format!("node(s) didn't satisfy plugin(s) [{}]", plugins.join(" ")),
                    ),
                );
            }
        }
    }
    (Ok(feasible), all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_as_upstream() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 500), 230);
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
    }

    #[test]
    fn fit_error_histogram() {
        let mut d = Diagnosis::default();
        d.statuses.insert(
            "a".into(),
            Status::new(
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {k: v}",
            ),
        );
        d.statuses.insert(
            "b".into(),
            Status::with_reasons(Code::Unschedulable, vec!["Insufficient cpu".into()]),
        );
        d.statuses.insert(
            "c".into(),
            Status::with_reasons(Code::Unschedulable, vec!["Insufficient cpu".into()]),
        );
        assert_eq!(
            fit_error_message(3, &d),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu."
        );
        d.post_filter_msg =
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling"
                .into();
        assert!(fit_error_message(3, &d).ends_with("Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."));
    }
}
