//! Pods on this node: one worker per pod (upstream's pod workers) driven by the API's view of
//! the pod and by the runtime's (a relist every second, upstream's PLEG), each syncing the
//! runtime towards the spec and reporting status.

pub mod backoff;
pub mod env;
pub mod prober;
pub mod runtime;
pub mod static_pods;
pub mod status;
mod sync;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use tokio::sync::{watch, Notify};

use crate::config::KubeletConfig;
use crate::cri::{labels, Cri};
use rudder_component::events::Recorder;

/// What a worker is told about its pod: the latest object, or that it is gone from the API.
#[derive(Clone)]
pub struct PodUpdate {
    pub pod: Arc<Pod>,
    pub removed: bool,
}

fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(static_pods::CONFIG_SOURCE))
        .is_some_and(|s| s == "file")
}

/// Whether two versions of a pod differ only in status and bookkeeping metadata.
fn same_intent(a: &Pod, b: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut m = p.metadata.clone();
        m.resource_version = None;
        m.managed_fields = None;
        (m, p.spec.clone())
    };
    strip(a) == strip(b)
}

struct Worker {
    tx: watch::Sender<PodUpdate>,
    wake: Arc<Notify>,
}

/// Readiness/startup/liveness results a prober records per (pod uid, container).
pub type ProbeStore = Mutex<HashMap<(String, String), (Option<bool>, Option<bool>)>>;

pub struct PodManager {
    pub client: kube::Client,
    pub cfg: Arc<KubeletConfig>,
    pub cri: Cri,
    pub recorder: Recorder,
    pub services: reflector::Store<Service>,
    pub pods: reflector::Store<Pod>,
    pub tokens: volumes::TokenCache,
    pub backoff: backoff::Backoffs,
    pub probes: ProbeStore,
    pub probe_workers: prober::Workers,
    /// The node's allocatable (for resourceFieldRef defaults) and memory capacity (OOM scores).
    pub allocatable: Mutex<BTreeMap<String, String>>,
    pub memory_capacity: i64,
    workers: Mutex<HashMap<String, Worker>>,
    /// Pods whose status must be written again in full (a new mirror pod).
    rewrite_status: Mutex<HashSet<String>>,
    /// Pods the eviction manager evicted: uid → message.
    pub(crate) evicted: Mutex<HashMap<String, String>>,
}

impl PodManager {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        cfg: Arc<KubeletConfig>,
        cri: Cri,
        recorder: Recorder,
        services: reflector::Store<Service>,
        pods: reflector::Store<Pod>,
        allocatable: BTreeMap<String, String>,
        memory_capacity: i64,
    ) -> Arc<PodManager> {
        Arc::new(PodManager {
            client,
            cfg,
            cri,
            recorder,
            services,
            pods,
            tokens: Default::default(),
            backoff: Default::default(),
            probes: Default::default(),
            probe_workers: Default::default(),
            allocatable: Mutex::new(allocatable),
            memory_capacity,
            workers: Mutex::new(HashMap::new()),
            rewrite_status: Mutex::new(HashSet::new()),
            evicted: Mutex::new(HashMap::new()),
        })
    }

    /// Hands the latest pod to its worker, starting one for a pod seen the first time.
    pub fn dispatch(self: &Arc<Self>, update: PodUpdate) {
        let uid = runtime::pod_uid(&update.pod);
        if uid.is_empty() {
            return;
        }
        let Ok(mut workers) = self.workers.lock() else {
            return;
        };
        if let Some(w) = workers.get(&uid) {
            // The kubelet's own status writes come back through the watch: they are stored
            // but do not trigger a sync (upstream's pod config only signals spec or metadata
            // changes).
            w.tx.send_if_modified(|cur| {
                let significant =
                    update.removed != cur.removed || !same_intent(&cur.pod, &update.pod);
                *cur = update;
                significant
            });
            return;
        }
        if update.removed {
            // Never seen alive: the orphan sweep cleans whatever the runtime may hold.
            return;
        }
        let (tx, rx) = watch::channel(update);
        let wake = Arc::new(Notify::new());
        workers.insert(
            uid.clone(),
            Worker {
                tx,
                wake: wake.clone(),
            },
        );
        let this = self.clone();
        tokio::spawn(async move {
            this.clone().worker(uid.clone(), rx, wake).await;
            if let Ok(mut w) = this.workers.lock() {
                w.remove(&uid);
            }
        });
    }

    pub fn forget_status(&self, uid: &str) {
        if let Ok(mut r) = self.rewrite_status.lock() {
            r.insert(uid.to_string());
        }
        self.wake(uid);
    }

    pub(crate) fn take_rewrite(&self, uid: &str) -> bool {
        self.rewrite_status
            .lock()
            .map(|mut r| r.remove(uid))
            .unwrap_or(false)
    }

    /// Evicts the first pod in upstream's order for a crossed threshold.
    pub async fn evict_one(&self, t: &crate::eviction::Threshold, available: i64) {
        let pods: Vec<Arc<Pod>> = self
            .workers
            .lock()
            .map(|w| w.values().map(|w| w.tx.borrow().pod.clone()).collect())
            .unwrap_or_default();
        let already = self.evicted.lock().map(|e| e.clone()).unwrap_or_default();
        let mut candidates = Vec::new();
        for p in &pods {
            let uid = runtime::pod_uid(p);
            let terminal = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            // Static and critical pods are not evicted (upstream's IsCriticalPod).
            if terminal || already.contains_key(&uid) || is_static(p) || priority >= 2_000_000_000 {
                continue;
            }
            let qos = p
                .spec
                .as_ref()
                .map(status::qos_class)
                .unwrap_or("BestEffort");
            let parent = runtime::cgroup_parent(&self.cfg.cgroup_root, qos, &uid);
            let cgroup = |controller: &str| {
                std::path::Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(parent.trim_start_matches('/'))
            };
            // Under PID pressure upstream ranks by priority, then by process count
            // (`rankPIDPressure`): the count with no request ranks every busy pod as over.
            let (usage, request) = if t.signal == crate::eviction::Signal::PidAvailable {
                (
                    crate::eviction::process_count(&cgroup("pids")).unwrap_or(0),
                    0,
                )
            } else {
                (
                    crate::eviction::working_set(&cgroup("memory")).unwrap_or(0),
                    crate::eviction::memory_request(p),
                )
            };
            candidates.push(crate::eviction::Candidate {
                uid,
                priority,
                usage,
                request,
            });
        }
        let Some(victim) = crate::eviction::rank(candidates).into_iter().next() else {
            return;
        };
        let Some(pod) = pods.iter().find(|p| runtime::pod_uid(p) == victim.uid) else {
            return;
        };
        let mut message = format!(
            "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
            t.signal.resource(),
            t.text,
            if matches!(
                t.signal,
                crate::eviction::Signal::NodefsInodesFree | crate::eviction::Signal::PidAvailable
            ) {
                available.to_string()
            } else {
                crate::eviction::format_bytes(available)
            },
        );
        if t.signal == crate::eviction::Signal::MemoryAvailable && victim.usage > 0 {
            message.push_str(&format!(
                "Pod {} was using {}, request is {}, has larger consumption of memory. ",
                pod.metadata.name.as_deref().unwrap_or_default(),
                crate::eviction::format_bytes(victim.usage),
                crate::eviction::format_bytes(victim.request),
            ));
        }
        tracing::warn!(pod = %runtime::pod_full_name(pod), %message, "evicting pod");
        self.recorder
            .event(pod.as_ref(), "Warning", "Evicted", message.clone());
        if let Ok(mut e) = self.evicted.lock() {
            e.insert(victim.uid.clone(), message);
        }
        self.wake(&victim.uid);
    }

    /// Every pod this node runs (API and static pods).
    pub fn all_pods(&self) -> Vec<Arc<Pod>> {
        self.workers
            .lock()
            .map(|w| w.values().map(|w| w.tx.borrow().pod.clone()).collect())
            .unwrap_or_default()
    }

    /// A pod this node runs, by namespace and name (API pods and static pods).
    pub fn find_pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        let workers = self.workers.lock().ok()?;
        workers
            .values()
            .map(|w| w.tx.borrow().pod.clone())
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
    }

    pub fn wake(&self, uid: &str) {
        if let Ok(w) = self.workers.lock() {
            if let Some(w) = w.get(uid) {
                w.wake.notify_one();
            }
        }
    }

    fn has_worker(&self, uid: &str) -> bool {
        self.workers
            .lock()
            .map(|w| w.contains_key(uid))
            .unwrap_or(true)
    }

    async fn worker(
        self: Arc<Self>,
        uid: String,
        mut rx: watch::Receiver<PodUpdate>,
        wake: Arc<Notify>,
    ) {
        let mut state = sync::WorkerState::default();
        loop {
            let update = rx.borrow_and_update().clone();
            let next = self.sync_pod(&update, &mut state).await;
            let delay = match next {
                sync::Next::Done => break,
                sync::Next::After(d) => d,
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                _ = wake.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!(pod_uid = %uid, "pod worker finished");
    }

    /// Watches the pods bound to this node and feeds the workers.
    pub async fn run_pod_source(
        self: Arc<Self>,
        writer: reflector::store::Writer<Pod>,
        synced: Arc<Notify>,
    ) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let cfg =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.cfg.node_name));
        let stream = watcher(api, cfg).default_backoff().reflect(writer);
        futures::pin_mut!(stream);
        let mut seen_initial = false;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    self.dispatch(PodUpdate {
                        pod: Arc::new(p),
                        removed: false,
                    })
                }
                Ok(watcher::Event::Delete(p)) => self.dispatch(PodUpdate {
                    pod: Arc::new(p),
                    removed: true,
                }),
                Ok(watcher::Event::InitDone) => {
                    // Pods that vanished while the watch was down: their workers learn it.
                    let live: HashSet<String> = self
                        .pods
                        .state()
                        .iter()
                        .filter_map(|p| p.metadata.uid.clone())
                        .collect();
                    let gone: Vec<(String, PodUpdate)> = self
                        .workers
                        .lock()
                        .map(|w| {
                            w.iter()
                                .filter(|(uid, w)| {
                                    !live.contains(*uid) && !is_static(&w.tx.borrow().pod)
                                })
                                .map(|(uid, w)| (uid.clone(), w.tx.borrow().clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    for (_, mut u) in gone {
                        u.removed = true;
                        self.dispatch(u);
                    }
                    if !seen_initial {
                        seen_initial = true;
                        synced.notify_waiters();
                        synced.notify_one();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pod watch error"),
            }
        }
    }

    /// The PLEG: relists the runtime every second and wakes the workers of pods whose
    /// containers or sandboxes changed; cleans up what belongs to no known pod.
    pub async fn run_pleg(self: Arc<Self>, synced: Arc<Notify>) {
        synced.notified().await;
        let mut previous: HashMap<String, Vec<(String, i32)>> = HashMap::new();
        let mut orphan_seen: HashMap<String, u32> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let snap = match runtime::Snapshot::take(&self.cri).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "relist failed");
                    continue;
                }
            };
            let mut current: HashMap<String, Vec<(String, i32)>> = HashMap::new();
            for s in &snap.sandboxes {
                if let Some(uid) = s.labels.get(labels::POD_UID) {
                    current
                        .entry(uid.clone())
                        .or_default()
                        .push((s.id.clone(), s.state));
                }
            }
            for c in &snap.containers {
                if let Some(uid) = c.labels.get(labels::POD_UID) {
                    current
                        .entry(uid.clone())
                        .or_default()
                        .push((c.id.clone(), c.state + 10));
                }
            }
            for v in current.values_mut() {
                v.sort();
            }
            for (uid, v) in &current {
                if previous.get(uid) != Some(v) {
                    self.wake(uid);
                }
            }
            // Orphans: runtime objects of pods with no worker, seen on three relists in a row
            // (a worker for a just-created pod may be starting).
            let known: HashSet<String> = self
                .pods
                .state()
                .iter()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            let orphans: Vec<String> = current
                .keys()
                .filter(|uid| !known.contains(*uid) && !self.has_worker(uid))
                .cloned()
                .collect();
            orphan_seen.retain(|k, _| orphans.contains(k));
            for uid in orphans {
                let n = orphan_seen.entry(uid.clone()).or_default();
                *n += 1;
                if *n == 3 {
                    let this = self.clone();
                    tokio::spawn(async move { this.remove_orphan(&uid).await });
                }
            }
            previous = current;
        }
    }

    async fn remove_orphan(&self, uid: &str) {
        tracing::info!(pod_uid = %uid, "removing containers of a pod that no longer exists");
        if let Err(e) = sync::remove_all(&self.cri, uid, 0).await {
            tracing::warn!(pod_uid = %uid, error = %e, "orphan clean-up failed");
        }
        let _ = volumes::teardown(&self.cfg.pods_dir().join(uid));
        for qos in ["Guaranteed", "Burstable", "BestEffort"] {
            tokio::spawn(runtime::remove_pod_cgroup_eventually(
                runtime::cgroup_parent(&self.cfg.cgroup_root, qos, uid),
            ));
        }
    }
}
