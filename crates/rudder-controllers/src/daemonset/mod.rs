//! The DaemonSet controller (upstream's `pkg/controller/daemon`): one pod per eligible node
//! (`NodeShouldRunDaemonPod`: nodeName, nodeSelector, required node affinity, taints against the
//! template's tolerations plus the automatic daemon tolerations), each pod handed to the default
//! scheduler through a required node affinity on the node's name; creates in slow-start
//! batches, deletes pods on nodes that stopped qualifying and duplicates (keeping the oldest),
//! deletes failed pods under a per-node back-off so they are recreated; RollingUpdate with
//! maxUnavailable or maxSurge, OnDelete; `controller-revision-hash` labels and
//! ControllerRevisions (what `kubectl rollout history|undo daemonset` read); status counts with
//! upstream's events.

pub mod util;

use crate::controller::api_message;
use crate::podutil::create_pods_slow_start;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::controller::{
    is_conflict, is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::deployment::util::{canonical, compute_hash};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::history::{max_revision, revision_of, sort_revisions, History};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{
    claim_pods, controller_ref, is_available, is_ready, owner_ref, phase, selector_is_empty,
    selector_matches,
};
use crate::replicaset::pod_from_template;
use crate::workqueue::WorkQueue;
use util::*;

/// Upstream's `BurstReplicas`: at most this many creates (and deletes) per sync.
pub const BURST_REPLICAS: usize = 250;
/// Upstream's `BackoffGCInterval`.
const BACKOFF_GC_INTERVAL: Duration = Duration::from_secs(60);
/// kube-controller-manager's `--concurrent-daemonset-syncs` default.
const WORKERS: usize = 2;

/// Pods grouped by the node they are for (scheduled or not yet), by node name.
pub type NodePods = BTreeMap<String, Vec<Arc<Pod>>>;

/// An event the planner wants recorded on the DaemonSet: (type, reason, message).
pub type PlannedEvent = (&'static str, &'static str, String);

/// What one pass of `manage` or `rollingUpdate` decided.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that need a new daemon pod.
    pub create: Vec<String>,
    /// Pods (names) to delete.
    pub delete: Vec<String>,
    pub events: Vec<PlannedEvent>,
    /// Look again after this long (a failed pod still in back-off).
    pub requeue_after: Option<Duration>,
}

pub struct DaemonSetsController {
    client: kube::Client,
    sets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    history: History,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
    backoff: Arc<FailedPodsBackoff>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(DaemonSetsController {
        client: cx.client.clone(),
        sets: cx.informers.get::<DaemonSet>(),
        pods: cx.informers.get::<Pod>(),
        nodes: cx.informers.get::<Node>(),
        revisions: cx.informers.get::<ControllerRevision>(),
        history: History::new(cx.client.clone()),
        queue: WorkQueue::new("daemonset", cx.metrics.clone()),
        expectations: Arc::default(),
        recorder: Recorder::new(cx.client.clone(), "daemonset-controller", &cx.host),
        backoff: Arc::default(),
    });
    c.register_handlers();
    let backoff = c.backoff.clone();
    tasks.spawn(async move {
        loop {
            tokio::time::sleep(BACKOFF_GC_INTERVAL).await;
            backoff.gc(Instant::now());
        }
    });
    let queue = c.queue.clone();
    tasks.spawn(async move {
        c.pods.wait_synced().await;
        c.nodes.wait_synced().await;
        c.revisions.wait_synced().await;
        c.sets.wait_synced().await;
        run_workers(queue, c, WORKERS).await;
    });
}

fn ns_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

impl DaemonSetsController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.sets.add_handler(move |ch| match ch {
            Change::Added(ds) => this.queue.add(key_of(ds.as_ref())),
            Change::Updated { old, new } => {
                if old.metadata.uid != new.metadata.uid {
                    this.expectations.delete(&key_of(old.as_ref()));
                }
                this.queue.add(key_of(new.as_ref()))
            }
            Change::Deleted(ds) => {
                let key = key_of(ds.as_ref());
                this.expectations.delete(&key);
                this.queue.add(key);
            }
        });

        let this = self.clone();
        self.pods.add_handler(move |ch| match ch {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    this.pod_gone(pod);
                } else if let Some(ds) = this.owner(&pod.metadata) {
                    let key = key_of(ds.as_ref());
                    this.expectations.creation_observed(&key);
                    this.queue.add(key);
                } else if controller_ref(&pod.metadata).is_none() {
                    this.enqueue_selecting(&pod.metadata);
                }
            }
            Change::Updated { old, new } => this.pod_updated(old, new),
            Change::Deleted(pod) => this.pod_gone(pod),
        });

        let this = self.clone();
        self.nodes.add_handler(move |ch| match ch {
            Change::Added(node) => {
                for ds in this.sets.list_all() {
                    if node_should_run(node, &ds).0 {
                        this.queue.add(key_of(ds.as_ref()));
                    }
                }
            }
            Change::Updated { old, new } => {
                if should_ignore_node_update(old, new) {
                    return;
                }
                for ds in this.sets.list_all() {
                    if node_should_run(old, &ds) != node_should_run(new, &ds) {
                        this.queue.add(key_of(ds.as_ref()));
                    }
                }
            }
            // Upstream does not watch node deletions: the pod GC removes their pods, whose
            // deletion brings the DaemonSet back here.
            Change::Deleted(_) => {}
        });

        let this = self.clone();
        self.revisions.add_handler(move |ch| match ch {
            Change::Added(rev) => {
                if rev.metadata.deletion_timestamp.is_some() {
                    this.enqueue_owner(&rev.metadata);
                } else if controller_ref(&rev.metadata).is_none() {
                    this.enqueue_selecting(&rev.metadata);
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let (old_ref, new_ref) =
                    (controller_ref(&old.metadata), controller_ref(&new.metadata));
                if old_ref != new_ref {
                    this.enqueue_owner(&old.metadata);
                }
                if new_ref.is_some() {
                    this.enqueue_owner(&new.metadata);
                } else if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
                    this.enqueue_selecting(&new.metadata);
                }
            }
            Change::Deleted(rev) => this.enqueue_owner(&rev.metadata),
        });
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        if new.metadata.deletion_timestamp.is_some() {
            // A graceful delete: replace the pod now, not when the kubelet is done with it.
            self.pod_gone(new);
            return;
        }
        let (old_ref, new_ref) = (controller_ref(&old.metadata), controller_ref(&new.metadata));
        if old_ref != new_ref {
            self.enqueue_owner(&old.metadata);
        }
        if new_ref.is_some() {
            if let Some(ds) = self.owner(&new.metadata) {
                let key = key_of(ds.as_ref());
                self.queue.add(key.clone());
                let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
                if min_ready > 0 && !is_ready(old) && is_ready(new) {
                    // A second more, so the pod is available when we look.
                    self.queue
                        .add_after(key, Duration::from_secs(min_ready as u64 + 1));
                }
            }
        } else if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
            self.enqueue_selecting(&new.metadata);
        }
    }

    /// The DaemonSet a controller reference names, if it still exists with that UID.
    fn owner(&self, meta: &ObjectMeta) -> Option<Arc<DaemonSet>> {
        let r = controller_ref(meta)?;
        if r.kind != "DaemonSet" {
            return None;
        }
        let ds = self.sets.get(ns_of(meta), &r.name)?;
        (ds.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(ds)
    }

    fn enqueue_owner(&self, meta: &ObjectMeta) {
        if let Some(ds) = self.owner(meta) {
            self.queue.add(key_of(ds.as_ref()));
        }
    }

    fn pod_gone(&self, pod: &Pod) {
        if let Some(ds) = self.owner(&pod.metadata) {
            let key = key_of(ds.as_ref());
            self.expectations.deletion_observed(&key, &key_of(pod));
            self.queue.add(key);
        }
    }

    /// An orphan (pod or revision): every DaemonSet whose selector takes it looks again.
    fn enqueue_selecting(&self, meta: &ObjectMeta) {
        for ds in self.sets.list(ns_of(meta)) {
            let sel = &ds.spec.selector;
            if !selector_is_empty(sel) && selector_matches(sel, meta.labels.as_ref()) {
                self.queue.add(key_of(ds.as_ref()));
            }
        }
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(ds) = self.sets.get(ns, name) else {
            self.expectations.delete(&key);
            return Ok(Next::Done);
        };
        let mut nodes = self.nodes.list_all();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if selector_is_empty(&ds.spec.selector) {
            self.recorder.event(
                ds.as_ref(),
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.".into(),
            );
            return Ok(Next::Done);
        }
        // Its revisions may already be gone or orphaned: no status can be trusted now.
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let (cur, old) = self.construct_history(&ds).await?;
        let hash = cur
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .unwrap_or_default();
        let pods = self.claim(&ds).await?;
        if !self.expectations.satisfied(&key) {
            // Status only; the generation was not acted on yet.
            self.update_status(&ds, &nodes, &pods, &hash, false).await?;
            return Ok(Next::Done);
        }
        let result = self
            .update_daemon_set(&ds, &key, &nodes, &pods, &hash, &old)
            .await;
        let status = self.update_status(&ds, &nodes, &pods, &hash, true).await;
        match (result, status) {
            (Err(e), Err(se)) => {
                tracing::info!(daemonset = %key, error = %se, "failed to update status");
                Err(e)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(Next::Done),
        }
    }

    /// Upstream's `getDaemonPods`: `ClaimPods` over the namespace's pods, adopting only after a
    /// fresh read shows the DaemonSet still there and not being deleted.
    async fn claim(&self, ds: &DaemonSet) -> Result<Vec<Arc<Pod>>, ReconcileError> {
        let sel = &ds.spec.selector;
        let matches = |pod: &Pod| {
            !selector_is_empty(sel) && selector_matches(sel, pod.metadata.labels.as_ref())
        };
        let pods = self
            .pods
            .list(ds.metadata.namespace.as_deref().unwrap_or(""));
        claim_pods(&self.client, ds, pods, matches, async || {
            let api: Api<DaemonSet> =
                Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
            match api.get(&ds.name_any()).await {
                Ok(fresh) => Ok(fresh.metadata.uid == ds.metadata.uid
                    && fresh.metadata.deletion_timestamp.is_none()),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn update_daemon_set(
        &self,
        ds: &DaemonSet,
        key: &str,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
        old: &[Arc<ControllerRevision>],
    ) -> Result<(), ReconcileError> {
        let map = node_to_daemon_pods(pods, false);
        let plan = plan_manage(
            ds,
            nodes,
            &map,
            hash,
            &self.backoff,
            Instant::now(),
            jiff::Timestamp::now(),
        );
        for (type_, reason, msg) in &plan.events {
            self.recorder.event(ds, type_, reason, msg.clone());
        }
        if let Some(d) = plan.requeue_after {
            self.queue.add_after(key.to_string(), d);
        }
        self.sync_nodes(ds, key, &plan.delete, &plan.create, hash)
            .await?;
        if self.expectations.satisfied(key) && is_rolling_update(ds) {
            let plan = plan_rolling_update(ds, nodes, &map, hash, jiff::Timestamp::now()).map_err(
                |e| ReconcileError::Other(format!("couldn't get unavailable numbers: {e}")),
            )?;
            self.sync_nodes(ds, key, &plan.delete, &plan.create, hash)
                .await?;
        }
        self.cleanup_history(ds, pods, old).await.map_err(|e| {
            ReconcileError::Other(format!("failed to clean up revisions of DaemonSet: {e}"))
        })
    }

    /// Upstream's `syncNodes`: deletes `to_delete` and creates a pod for each of `nodes`
    /// (slow-start batches 1, 2, 4, …), at most [`BURST_REPLICAS`] of each, under expectations.
    async fn sync_nodes(
        &self,
        ds: &DaemonSet,
        key: &str,
        to_delete: &[String],
        nodes: &[String],
        hash: &str,
    ) -> Result<(), ReconcileError> {
        let ns = ds.namespace().unwrap_or_default();
        let create_n = nodes.len().min(BURST_REPLICAS);
        let delete_n = to_delete.len().min(BURST_REPLICAS);
        if create_n == 0 && delete_n == 0 {
            return Ok(());
        }
        self.expectations.expect(
            key,
            create_n as i64,
            to_delete[..delete_n].iter().map(|n| format!("{ns}/{n}")),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let template = create_pod_template(&ds.spec.template, template_generation(ds), hash);
        let base = pod_from_template(&template, ds);
        let (_, mut errors) = create_pods_slow_start(
            &api,
            ds,
            &self.recorder,
            &self.expectations,
            key,
            create_n,
            |i| {
                let mut pod = base.clone();
                if let Some(spec) = pod.spec.as_mut() {
                    spec.affinity =
                        Some(replace_node_name_affinity(spec.affinity.take(), &nodes[i]));
                }
                pod
            },
        )
        .await;

        let dp = DeleteParams::default();
        let deletes = to_delete[..delete_n].iter().map(|name| {
            let api = api.clone();
            let dp = dp.clone();
            async move { (name, api.delete(name, &dp).await) }
        });
        for (name, r) in futures::future::join_all(deletes).await {
            match r {
                Ok(_) => self.recorder.event(
                    ds,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations
                        .deletion_observed(key, &format!("{ns}/{name}"));
                    if !is_not_found(&e) {
                        self.recorder.event(
                            ds,
                            "Warning",
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        );
                        errors.push(e);
                    }
                }
            }
        }
        match errors.into_iter().next() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Upstream's `updateDaemonSetStatus` + `storeDaemonSetStatus`: written only when a count
    /// changed or the generation was not observed yet; one retry on a conflict.
    async fn update_status(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        pods: &[Arc<Pod>],
        hash: &str,
        observe_generation: bool,
    ) -> Result<(), ReconcileError> {
        let map = node_to_daemon_pods(pods, false);
        let counts = calculate_status(ds, nodes, &map, hash, jiff::Timestamp::now());
        let cur = ds.status.clone().unwrap_or_default();
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && counts.number_ready != counts.number_available.unwrap_or(0) {
            // Last line of defence against clock skew in the ready → available handoff.
            self.queue
                .add_after(key_of(ds.as_ref()), Duration::from_secs(min_ready as u64));
        }
        if same_counts(&cur, &counts)
            && cur.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0)
        {
            return Ok(());
        }
        let api: Api<DaemonSet> =
            Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
        let mut to_update = ds.as_ref().clone();
        for attempt in 0..2 {
            let generation = to_update.metadata.generation;
            let status = to_update.status.get_or_insert_with(Default::default);
            if observe_generation {
                status.observed_generation = generation;
            }
            status.desired_number_scheduled = counts.desired_number_scheduled;
            status.current_number_scheduled = counts.current_number_scheduled;
            status.number_misscheduled = counts.number_misscheduled;
            status.number_ready = counts.number_ready;
            status.updated_number_scheduled = counts.updated_number_scheduled;
            status.number_available = counts.number_available;
            status.number_unavailable = counts.number_unavailable;
            match api
                .replace_status(&ds.name_any(), &PostParams::default(), &to_update)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if attempt == 0 && is_conflict(&e) => {
                    to_update = api.get(&ds.name_any()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    // ---------- history (upstream's update.go) ----------

    /// Upstream's `constructHistory`: the current revision (created, deduplicated or renumbered
    /// as needed) and the old ones.
    async fn construct_history(
        &self,
        ds: &DaemonSet,
    ) -> Result<(Arc<ControllerRevision>, Vec<Arc<ControllerRevision>>), ReconcileError> {
        let ns = ds.namespace().unwrap_or_default();
        let histories = self
            .history
            .claim(ds, &ds.spec.selector, &self.revisions.list(&ns))
            .await
            .map_err(history_err)?;
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let mut current = Vec::new();
        let mut old = Vec::new();
        for h in histories {
            let h = if h.labels().contains_key(HASH_LABEL) {
                h
            } else {
                // Revisions from before the label: the name stands in for the hash.
                let mut up = h.as_ref().clone();
                let name = up.name_any();
                up.labels_mut().insert(HASH_LABEL.into(), name.clone());
                Arc::new(api.replace(&name, &PostParams::default(), &up).await?)
            };
            if revision_matches(ds, &h) {
                current.push(h);
            } else {
                old.push(h);
            }
        }
        let next = max_revision(&old) + 1;
        let cur = if current.is_empty() {
            Arc::new(self.snapshot(ds, next).await?)
        } else {
            let cur = self.dedup_current(ds, current).await?;
            if revision_of(&cur) < next {
                Arc::new(
                    self.history
                        .update_revision(&cur, next)
                        .await
                        .map_err(history_err)?,
                )
            } else {
                cur
            }
        };
        Ok((cur, old))
    }

    /// Upstream's `dedupCurHistories`: keeps the highest-numbered of several revisions equal to
    /// the template, relabels the pods to its hash and deletes the others.
    async fn dedup_current(
        &self,
        ds: &DaemonSet,
        mut current: Vec<Arc<ControllerRevision>>,
    ) -> Result<Arc<ControllerRevision>, ReconcileError> {
        if current.len() == 1 {
            return Ok(current.remove(0));
        }
        let keep = current
            .iter()
            .fold(None::<&Arc<ControllerRevision>>, |best, c| match best {
                Some(b) if revision_of(c) < revision_of(b) => Some(b),
                _ => Some(c),
            })
            .cloned()
            .ok_or_else(|| ReconcileError::Other("no current revision".into()))?;
        let keep_hash = keep.labels().get(HASH_LABEL).cloned().unwrap_or_default();
        let ns = ds.namespace().unwrap_or_default();
        let pods = self.claim(ds).await?;
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        for pod in pods {
            if pod.labels().get(HASH_LABEL) != Some(&keep_hash) {
                let patch = json!({"metadata": {"labels": {HASH_LABEL: keep_hash}}});
                pod_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
        }
        for c in current.iter().filter(|c| c.name_any() != keep.name_any()) {
            self.history.delete(c).await.map_err(history_err)?;
        }
        Ok(keep)
    }

    /// Upstream's `snapshot`: a revision named `<ds>-<hash of template and collisionCount>`;
    /// a name taken by different data bumps `status.collisionCount` and fails the sync, which
    /// retries under the new name.
    async fn snapshot(
        &self,
        ds: &DaemonSet,
        revision: i64,
    ) -> Result<ControllerRevision, ReconcileError> {
        let ns = ds.namespace().unwrap_or_default();
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&ds.spec.template, collision);
        let name = format!("{}-{hash}", ds.name_any());
        let mut labels = ds
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash);
        let rev = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone(),
                owner_references: Some(vec![owner_ref(ds)]),
                ..Default::default()
            },
            data: RawExtension(revision_data(ds)),
            revision: Some(revision),
        };
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let err = match api.create(&PostParams::default(), &rev).await {
            Ok(r) => return Ok(r),
            Err(e) if is_conflict(&e) => e,
            Err(e) => return Err(e.into()),
        };
        let existing = api.get(&name).await?;
        if revision_matches(ds, &existing) {
            return Ok(existing);
        }
        let ds_api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
        let mut fresh = ds_api.get(&ds.name_any()).await?;
        let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
        if fresh_count != collision {
            return Err(ReconcileError::Other(format!(
                "found a stale collision count ({collision:?}, expected {fresh_count:?}) of DaemonSet {:?} while processing; will retry until it is updated",
                ds.name_any()
            )));
        }
        let status = fresh.status.get_or_insert_with(Default::default);
        status.collision_count = Some(collision.unwrap_or(0) + 1);
        ds_api
            .replace_status(&ds.name_any(), &PostParams::default(), &fresh)
            .await?;
        Err(err.into())
    }

    /// Upstream's `cleanupHistory`: old revisions beyond `revisionHistoryLimit`, oldest first,
    /// except those a live pod still carries the hash of.
    async fn cleanup_history(
        &self,
        ds: &DaemonSet,
        pods: &[Arc<Pod>],
        old: &[Arc<ControllerRevision>],
    ) -> Result<(), ReconcileError> {
        let keep = ds.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut to_kill = old.len().saturating_sub(keep);
        if to_kill == 0 {
            return Ok(());
        }
        let live: HashSet<&String> = pods
            .iter()
            .filter_map(|p| p.labels().get(HASH_LABEL))
            .filter(|h| !h.is_empty())
            .collect();
        let mut old = old.to_vec();
        sort_revisions(&mut old);
        for rev in old {
            if to_kill == 0 {
                break;
            }
            if rev
                .labels()
                .get(HASH_LABEL)
                .is_some_and(|h| live.contains(h))
            {
                continue;
            }
            self.history.delete(&rev).await.map_err(history_err)?;
            to_kill -= 1;
        }
        Ok(())
    }
}

impl Reconciler for DaemonSetsController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

fn history_err(e: crate::history::HistoryError) -> ReconcileError {
    match e {
        crate::history::HistoryError::Api(e) => ReconcileError::Api(e),
        e => ReconcileError::Other(e.to_string()),
    }
}

/// Upstream's `getPatch`: the revision data, a strategic merge patch that puts the template
/// back whole (`kubectl rollout undo` applies it as is).
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = serde_json::to_value(&ds.spec.template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut template {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Upstream's `Match`: the revision holds this template. Compared as values with empty fields
/// dropped (upstream compares Go's bytes, which agree for the revisions it wrote itself).
pub fn revision_matches(ds: &DaemonSet, rev: &ControllerRevision) -> bool {
    canonical(rev.data.0.clone()) == canonical(revision_data(ds))
}

/// Upstream's `getNodesToDaemonPods`: claimed pods by target node; terminal pods already being
/// deleted are left out unless asked for (the history cleanup keeps their hashes alive).
pub fn node_to_daemon_pods(pods: &[Arc<Pod>], include_deleted_terminal: bool) -> NodePods {
    let mut out = NodePods::new();
    for pod in pods {
        let terminal = matches!(phase(pod), "Succeeded" | "Failed");
        if !include_deleted_terminal && terminal && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node_name(pod) {
            out.entry(node).or_default().push(pod.clone());
        }
    }
    out
}

/// Upstream's `podsShouldBeOnNode` for one node, into `plan`.
#[allow(clippy::too_many_arguments)]
fn pods_should_be_on_node(
    plan: &mut Plan,
    node: &Node,
    map: &NodePods,
    ds: &DaemonSet,
    hash: &str,
    backoff: &FailedPodsBackoff,
    now: Instant,
    now_ts: jiff::Timestamp,
) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let (should_run, should_continue) = node_should_run(node, ds);
    let pods = map.get(&name);
    if should_run && pods.is_none() {
        plan.create.push(name);
        return;
    }
    let pods = pods.map(Vec::as_slice).unwrap_or(&[]);
    if !should_continue {
        plan.delete.extend(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.name_any()),
        );
        return;
    }
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");
    let mut running: Vec<&Arc<Pod>> = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        match phase(pod) {
            "Failed" => {
                // Kubelets rejecting a pod would have us recreate it in a hot loop.
                let key = failed_pods_backoff_key(ds, &name);
                if backoff.in_backoff(&key, now) {
                    let delay = backoff.get(&key);
                    plan.requeue_after = Some(plan.requeue_after.map_or(delay, |d| d.min(delay)));
                    continue;
                }
                backoff.next(&key, now);
                plan.events.push((
                    "Warning",
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {ns}/{} on node {name}, will try to kill it",
                        pod.name_any()
                    ),
                ));
                plan.delete.push(pod.name_any());
            }
            "Succeeded" => {
                plan.events.push((
                    "Normal",
                    "SucceededDaemonPod",
                    format!(
                        "Found succeeded daemon pod {ns}/{} on node {name}, will try to delete it",
                        pod.name_any()
                    ),
                ));
                plan.delete.push(pod.name_any());
            }
            _ => running.push(pod),
        }
    }
    running.sort_by(|a, b| by_creation_and_phase(a, b));
    if !allows_surge(ds) {
        // One pod per node: the oldest stays.
        plan.delete
            .extend(running.iter().skip(1).map(|p| p.name_any()));
        return;
    }
    if running.len() <= 1 {
        if running.is_empty() && should_run {
            plan.create.push(name);
        }
        return;
    }
    // Surging: an old and a new pod may share the node while the new one is not available
    // and the old one is ready; everything else goes.
    let mut oldest_new: Option<&Arc<Pod>> = None;
    let mut oldest_old: Option<&Arc<Pod>> = None;
    for pod in running {
        let slot = if pod.labels().get(HASH_LABEL).map(String::as_str) == Some(hash) {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(pod);
        } else {
            plan.delete.push(pod.name_any());
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        if !is_ready(old) || is_available(new, min_ready, now_ts) {
            plan.delete.push(old.name_any());
        }
    }
}

/// Upstream's `manage` decisions: per node, then the unscheduled pods aimed at nodes that no
/// longer exist (the pod GC never sees them).
pub fn plan_manage(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    map: &NodePods,
    hash: &str,
    backoff: &FailedPodsBackoff,
    now: Instant,
    now_ts: jiff::Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    for node in nodes {
        pods_should_be_on_node(&mut plan, node, map, ds, hash, backoff, now, now_ts);
    }
    let existing: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    for (node, pods) in map {
        if existing.contains(node.as_str()) {
            continue;
        }
        for pod in pods {
            let unscheduled = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty);
            if unscheduled {
                plan.delete.push(pod.name_any());
            }
        }
    }
    plan
}

/// `findUpdatedPodsOnNode`: the node's one new and one old pod (not being deleted), or `None`
/// when it has more of either (the manage pass prunes those first).
#[allow(clippy::type_complexity)]
fn updated_pods_on_node<'a>(
    ds: &DaemonSet,
    pods: &'a [Arc<Pod>],
    hash: &str,
) -> Option<(Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>)> {
    let generation = template_generation(ds);
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Upstream's `rollingUpdate` decisions. Without surge, old pods are deleted while fewer than
/// maxUnavailable nodes are unavailable (old unavailable pods always); with surge, a new pod is
/// created beside an old one on up to maxSurge nodes, and the old one deleted once the new one
/// is available.
pub fn plan_rolling_update(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    map: &NodePods,
    hash: &str,
    now: jiff::Timestamp,
) -> Result<Plan, crate::deployment::util::BadIntOrString> {
    let mut map = map.clone();
    let mut desired = 0;
    let mut eligible: BTreeMap<String, &Node> = BTreeMap::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        if node_should_run(node, ds).0 {
            desired += 1;
            map.entry(name.clone()).or_default();
        }
        eligible.insert(name, node.as_ref());
    }
    let mut max_unavailable = unavailable_count(ds, desired)?;
    let max_surge = surge_count(ds, desired)?;
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        // An impossible configuration from the API: accept unavailability, as upstream does.
        max_unavailable = 1;
    }
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let available = |p: &Pod| is_available(p, min_ready, now);
    let should_run = |node: &str| eligible.get(node).is_some_and(|n| node_should_run(n, ds).0);
    let mut plan = Plan::default();

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in map.values() {
            let Some((new, old)) = updated_pods_on_node(ds, pods, hash) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replacements.push(old.name_any());
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        plan.delete = replacements;
        plan.delete.extend(candidates.into_iter().take(room));
        return Ok(plan);
    }

    let mut to_delete = Vec::new();
    let mut should_not_run = Vec::new();
    let mut candidate_nodes = Vec::new();
    let mut allowed_nodes = Vec::new();
    let mut surging = 0;
    let mut num_available = 0;
    for (node, pods) in &map {
        let Some((new, old)) = updated_pods_on_node(ds, pods, hash) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new) {
            if available(p) {
                num_available += 1;
            }
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if should_run(node) {
                        allowed_nodes.push(node.clone());
                    } else {
                        to_delete.push(old.name_any());
                    }
                } else if !should_run(node) {
                    should_not_run.push(old.name_any());
                } else if surging < max_surge {
                    candidate_nodes.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    to_delete.push(old.name_any());
                } else {
                    surging += 1;
                }
            }
        }
    }
    // With surge the owner expects full availability: a pod on a node that no longer
    // qualifies goes only once enough pods elsewhere are available.
    let deletable = (num_available - desired).clamp(0, should_not_run.len() as i32) as usize;
    to_delete.extend(should_not_run.into_iter().take(deletable));
    let room = (max_surge - surging).clamp(0, candidate_nodes.len() as i32) as usize;
    allowed_nodes.extend(candidate_nodes.into_iter().take(room));
    plan.delete = to_delete;
    plan.create = allowed_nodes;
    Ok(plan)
}

/// Upstream's `updateDaemonSetStatus` counts (the oldest pod of each node stands for it).
pub fn calculate_status(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    map: &NodePods,
    hash: &str,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0, 0, 0, 0, 0, 0);
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let generation = template_generation(ds);
    for node in nodes {
        let (should_run, _) = node_should_run(node, ds);
        let pods = map
            .get(node.metadata.name.as_deref().unwrap_or(""))
            .filter(|p| !p.is_empty());
        match (should_run, pods) {
            (true, None) => desired += 1,
            (true, Some(pods)) => {
                desired += 1;
                current += 1;
                let Some(pod) = pods.iter().min_by(|a, b| by_creation_and_phase(a, b)) else {
                    continue;
                };
                if is_ready(pod) {
                    ready += 1;
                    if is_available(pod, min_ready, now) {
                        available += 1;
                    }
                }
                if is_pod_updated(pod, hash, generation) {
                    updated += 1;
                }
            }
            (false, Some(_)) => misscheduled += 1,
            (false, None) => {}
        }
    }
    // These three are `omitempty` upstream: a zero is not written at all.
    let nonzero = |n: i32| (n != 0).then_some(n);
    DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: misscheduled,
        number_ready: ready,
        updated_number_scheduled: nonzero(updated),
        number_available: nonzero(available),
        number_unavailable: nonzero(desired - available),
        ..Default::default()
    }
}

fn same_counts(a: &DaemonSetStatus, b: &DaemonSetStatus) -> bool {
    a.desired_number_scheduled == b.desired_number_scheduled
        && a.current_number_scheduled == b.current_number_scheduled
        && a.number_misscheduled == b.number_misscheduled
        && a.number_ready == b.number_ready
        && a.updated_number_scheduled.unwrap_or(0) == b.updated_number_scheduled.unwrap_or(0)
        && a.number_available.unwrap_or(0) == b.number_available.unwrap_or(0)
        && a.number_unavailable.unwrap_or(0) == b.number_unavailable.unwrap_or(0)
}

#[cfg(test)]
mod tests;
