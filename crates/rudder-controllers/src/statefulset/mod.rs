//! The StatefulSet controller (upstream's `pkg/controller/statefulset`): pods with stable ordinal
//! identities `<set>-<i>` (from `spec.ordinals.start`), created in order and each only once its
//! predecessors are Running and Ready (OrderedReady) or all at once (Parallel), deleted in
//! reverse order; claims from `volumeClaimTemplates` named `<claim>-<set>-<i>` with the
//! `persistentVolumeClaimRetentionPolicy` expressed as ownerReferences; ControllerRevisions of
//! the pod template (`currentRevision`/`updateRevision`, `revisionHistoryLimit`), RollingUpdate
//! with partition and maxUnavailable, OnDelete; status and upstream's events.
//!
//! [`plan`] is upstream's `updateStatefulSet` as a pure function: it decides which writes one
//! sync makes (with upstream's early exits) from the caches, and [`StatefulSetController`]
//! performs them.

pub mod utils;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::controller::{
    ignore_not_found, is_conflict, is_not_found, run_workers, Next, ReconcileError,
    ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::history::{self, History, HistoryError};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{claim_pods, controller_ref, is_ready, phase, selector_matches};
use crate::workqueue::WorkQueue;

use utils::*;

/// Upstream's `MaxBatchSize` for Parallel pod management.
const MAX_BATCH: usize = 500;

/// One write of a sync.
#[derive(Debug, Clone)]
pub enum Action {
    /// `CreateStatefulPod`: the claims, then the pod.
    Create(Arc<Pod>),
    /// `createMissingPersistentVolumeClaims` for a Pending pod.
    CreateMissingClaims(Arc<Pod>),
    /// `UpdateStatefulPod`: identity, storage and claim ownership brought in line.
    Update(Arc<Pod>),
    /// `UpdatePodClaimForRetentionPolicy` for a condemned pod.
    FixClaims(Arc<Pod>),
    /// `DeleteStatefulPod`; `true` when a 404 is fine (rolling update).
    Delete(Arc<Pod>, bool),
}

/// Writes that run one after another (monotonic) or in slow-start batches of per-pod groups
/// (Parallel); a failure ends the sync.
#[derive(Debug, Default)]
pub struct Step {
    pub groups: Vec<Vec<Action>>,
    pub parallel: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub status: StatefulSetStatus,
    pub steps: Vec<Step>,
}

/// The claims cache as the plan sees it: claim name → claim.
pub type Claims<'a> = &'a dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>;

/// `ClaimsMatchRetentionPolicy`: every existing claim of the pod has the refs the policy wants.
pub fn claims_match(set: &StatefulSet, pod: &Pod, claims: Claims) -> bool {
    claims_for(set, ordinal(pod)).iter().all(|(_, c)| {
        match claims(c.metadata.name.as_deref().unwrap_or("")) {
            Some(claim) => is_claim_owner_up_to_date(&claim, set, pod),
            None => true,
        }
    })
}

/// `PodClaimIsStale`: with WhenScaled=Delete, a claim still owned by an earlier pod of the same
/// name blocks the new pod until the garbage collector removes it.
pub fn pod_claim_is_stale(set: &StatefulSet, pod: &Pod, claims: Claims) -> bool {
    if retention_policy(set).when_scaled == RETAIN {
        return false;
    }
    claims_for(set, ordinal(pod)).iter().any(|(_, c)| {
        claims(c.metadata.name.as_deref().unwrap_or(""))
            .is_some_and(|claim| has_stale_owner_ref(&claim, &Owner::of_pod(pod)))
    })
}

/// The set at its current and update revisions (`ApplyRevision`), with the revisions' names.
pub struct Revisions<'a> {
    pub current_set: &'a StatefulSet,
    pub update_set: &'a StatefulSet,
    pub current: &'a str,
    pub update: &'a str,
    pub collision_count: i32,
}

/// Upstream's `updateStatefulSet` (with the MaxUnavailableStatefulSet rolling update) over the
/// caches: the status to report and the writes to make.
pub fn plan(
    set: &StatefulSet,
    revs: &Revisions,
    pods: &[Arc<Pod>],
    claims: Claims,
    now: jiff::Timestamp,
) -> Plan {
    let Revisions {
        current_set,
        update_set,
        current: current_revision,
        update: update_revision,
        collision_count,
    } = *revs;
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current_revision.to_string()),
        update_revision: Some(update_revision.to_string()),
        collision_count: Some(collision_count),
        ..Default::default()
    };
    let (start, end) = (start_ordinal(set), end_ordinal(set));
    let count = (end - start + 1).max(0) as usize;
    let mut slots: Vec<Option<Arc<Pod>>> = vec![None; count];
    let mut condemned: Vec<Arc<Pod>> = Vec::new();
    for pod in pods {
        let o = ordinal(pod);
        if in_ordinal_range(pod, set) {
            slots[(o - start) as usize] = Some(pod.clone());
        } else if o >= 0 {
            condemned.push(pod.clone());
        }
    }
    // Missing ordinals get new pods at the right revision; they are not created yet (no phase).
    let replicas: Vec<Arc<Pod>> = slots
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            p.unwrap_or_else(|| {
                Arc::new(new_versioned_pod(
                    current_set,
                    update_set,
                    current_revision,
                    update_revision,
                    start + i as i64,
                ))
            })
        })
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let first_unavailable = replicas
        .iter()
        .chain(condemned.iter().rev())
        .find(|p| is_unavailable(p, min_ready, now))
        .and_then(|p| p.metadata.name.clone());
    let all: Vec<Arc<Pod>> = replicas.iter().chain(condemned.iter()).cloned().collect();
    count_status(
        &mut status,
        min_ready,
        current_revision,
        update_revision,
        &all,
        now,
    );
    let mut out = Plan {
        status,
        steps: Vec::new(),
    };
    if set.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let monotonic = !allows_burst(set);

    // Each living replica (processReplica).
    let mut groups = Vec::new();
    let mut exit = false;
    for pod in &replicas {
        let (actions, stop) =
            process_replica(set, update_set, monotonic, pod, claims, min_ready, now);
        if !actions.is_empty() {
            groups.push(actions);
        }
        if stop && monotonic {
            exit = true;
            break;
        }
    }
    out.steps.push(Step {
        groups,
        parallel: !monotonic,
    });
    if exit {
        return out;
    }

    // Claims of condemned pods brought in line with the retention policy.
    let groups: Vec<Vec<Action>> = condemned
        .iter()
        .filter(|p| !claims_match(update_set, p, claims))
        .map(|p| vec![Action::FixClaims(p.clone())])
        .collect();
    out.steps.push(Step {
        groups,
        parallel: !monotonic,
    });

    // Condemned pods, highest ordinal first (processCondemned).
    let mut groups = Vec::new();
    for pod in &condemned {
        let is_first = first_unavailable.as_deref() == pod.metadata.name.as_deref();
        if is_terminating(pod) {
            if monotonic {
                exit = true;
                break;
            }
            continue;
        }
        if monotonic
            && !is_first
            && (!is_running_and_ready(pod) || !is_running_and_available(pod, min_ready, now))
        {
            exit = true;
            break;
        }
        groups.push(vec![Action::Delete(pod.clone(), false)]);
        if monotonic {
            exit = true;
            break;
        }
    }
    out.steps.push(Step {
        groups,
        parallel: !monotonic,
    });
    if exit || strategy_type(set) == "OnDelete" {
        return out;
    }

    // Rolling update: up to maxUnavailable pods not at the update revision, highest first,
    // never below the partition.
    let update_min = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .map_or(0, |r| i64::from(r.partition.unwrap_or(0)));
    let max_unavailable = max_unavailable(set);
    let unavailable = replicas
        .iter()
        .filter(|p| is_unavailable(p, min_ready, now))
        .count() as i64;
    if unavailable >= max_unavailable {
        return out;
    }
    let mut budget = max_unavailable - unavailable;
    let mut deletes = Vec::new();
    for (target, pod) in replicas.iter().enumerate().rev() {
        if (target as i64) < update_min || budget == 0 {
            break;
        }
        if pod_revision(pod) != update_revision && !is_terminating(pod) {
            deletes.push(vec![Action::Delete(pod.clone(), true)]);
            budget -= 1;
            let cur = out.status.current_replicas.unwrap_or(0) - 1;
            out.status.current_replicas = (cur != 0).then_some(cur);
        }
    }
    out.steps.push(Step {
        groups: deletes,
        parallel: false,
    });
    out
}

/// Upstream's `processReplica`: the writes for one replica and whether a monotonic sync stops.
fn process_replica(
    set: &StatefulSet,
    update_set: &StatefulSet,
    monotonic: bool,
    pod: &Arc<Pod>,
    claims: Claims,
    min_ready: i32,
    now: jiff::Timestamp,
) -> (Vec<Action>, bool) {
    let p = phase(pod);
    if p == "Failed" || p == "Succeeded" {
        // Restarted by deleting it; the next sync creates it anew.
        if is_terminating(pod) {
            return (vec![], true);
        }
        return (vec![Action::Delete(pod.clone(), false)], true);
    }
    if !is_created(pod) {
        if pod_claim_is_stale(set, pod, claims) {
            return (vec![], true);
        }
        return (vec![Action::Create(pod.clone())], true);
    }
    let mut actions = Vec::new();
    if p == "Pending" {
        actions.push(Action::CreateMissingClaims(pod.clone()));
    }
    if monotonic
        && (is_terminating(pod)
            || !is_running_and_ready(pod)
            || !is_running_and_available(pod, min_ready, now))
    {
        return (actions, true);
    }
    let retention_match = claims_match(update_set, pod, claims);
    if !(identity_matches(set, pod) && storage_matches(set, pod) && retention_match) {
        actions.push(Action::Update(pod.clone()));
    }
    (actions, false)
}

/// The message of an API error as Go prints it (the Status message).
fn go_err(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// A verb capitalised as `strings.Title` does for upstream's reasons.
fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub struct StatefulSetController {
    client: kube::Client,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    revisions: Arc<Informer<ControllerRevision>>,
    history: History,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(StatefulSetController {
        client: cx.client.clone(),
        sets: cx.informers.get::<StatefulSet>(),
        pods: cx.informers.get::<Pod>(),
        claims: cx.informers.get::<PersistentVolumeClaim>(),
        revisions: cx.informers.get::<ControllerRevision>(),
        history: History::new(cx.client.clone()),
        queue: WorkQueue::new("statefulset", cx.metrics.clone()),
        recorder: Recorder::new(cx.client.clone(), "statefulset-controller", &cx.host),
    });
    c.register_handlers();
    let queue = c.queue.clone();
    tasks.spawn(async move {
        c.sets.wait_synced().await;
        c.pods.wait_synced().await;
        c.claims.wait_synced().await;
        c.revisions.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl StatefulSetController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.sets.add_handler(move |ch| match ch {
            Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => {
                this.queue.add(key_of(s.as_ref()))
            }
        });
        let this = self.clone();
        self.pods.add_handler(move |ch| match ch {
            Change::Added(pod) => match this.owner(pod) {
                Some(set) => this.queue.add(key_of(set.as_ref())),
                None if controller_ref(&pod.metadata).is_none()
                    && pod.metadata.deletion_timestamp.is_none() =>
                {
                    this.enqueue_matching(pod)
                }
                None => {}
            },
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let old_ref = controller_ref(&old.metadata).cloned();
                let new_ref = controller_ref(&new.metadata).cloned();
                if old_ref != new_ref {
                    if let Some(set) = this.owner(old) {
                        this.queue.add(key_of(set.as_ref()));
                    }
                }
                match this.owner(new) {
                    Some(set) => {
                        let key = key_of(set.as_ref());
                        let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
                        if min_ready > 0 && !is_ready(old) && is_ready(new) {
                            this.queue
                                .add_after(key.clone(), Duration::from_secs(min_ready as u64 + 1));
                        }
                        this.queue.add(key);
                    }
                    None if new_ref.is_none()
                        && (old.metadata.labels != new.metadata.labels || old_ref.is_some()) =>
                    {
                        this.enqueue_matching(new)
                    }
                    None => {}
                }
            }
            Change::Deleted(pod) => {
                if let Some(set) = this.owner(pod) {
                    this.queue.add(key_of(set.as_ref()));
                }
            }
        });
    }

    /// `resolveControllerRef`: the StatefulSet controlling `pod`, if it exists with that UID.
    fn owner(&self, pod: &Pod) -> Option<Arc<StatefulSet>> {
        let r = controller_ref(&pod.metadata)?;
        if r.kind != StatefulSet::kind(&()) {
            return None;
        }
        let set = self
            .sets
            .get(pod.metadata.namespace.as_deref().unwrap_or(""), &r.name)?;
        (set.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(set)
    }

    fn enqueue_matching(&self, pod: &Pod) {
        for set in self
            .sets
            .list(pod.metadata.namespace.as_deref().unwrap_or(""))
        {
            if selector_matches(&set.spec.selector, pod.metadata.labels.as_ref()) {
                self.queue.add(key_of(set.as_ref()));
            }
        }
    }

    /// `RecheckDeletionTimestamp` before adopting: a fresh read of the set, same UID, not being
    /// deleted.
    async fn can_adopt(&self, set: &StatefulSet) -> Result<bool, ReconcileError> {
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        match api.get(&set.name_any()).await {
            Ok(fresh) => Ok(fresh.metadata.uid == set.metadata.uid
                && fresh.metadata.deletion_timestamp.is_none()),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// `adoptOrphanRevisions` + `ListRevisions`: the set's revisions, orphans adopted.
    async fn revisions_of(
        &self,
        set: &StatefulSet,
    ) -> Result<Vec<Arc<ControllerRevision>>, ReconcileError> {
        let ns = set.namespace().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let mut revs =
            history::owned_revisions(&self.revisions.list(&ns), &uid, &set.spec.selector);
        if revs.iter().any(|r| controller_ref(&r.metadata).is_none()) {
            if !self.can_adopt(set).await? {
                return Err(ReconcileError::Other(format!(
                    "can't adopt ControllerRevisions: StatefulSet {}/{} is gone or being deleted",
                    ns,
                    set.name_any()
                )));
            }
            for r in revs.iter_mut() {
                if controller_ref(&r.metadata).is_none() {
                    *r = Arc::new(self.history.adopt(set, r).await.map_err(hist_err)?);
                }
            }
        }
        history::sort_revisions(&mut revs);
        Ok(revs)
    }

    /// `getPodsForStatefulSet` (`ClaimPods` with the `isMemberOf` filter).
    async fn pods_of(&self, set: &StatefulSet) -> Result<Vec<Arc<Pod>>, ReconcileError> {
        let pods = self.pods.list(&set.namespace().unwrap_or_default());
        let matches = |pod: &Pod| {
            selector_matches(&set.spec.selector, pod.metadata.labels.as_ref())
                && is_member_of(set, pod)
        };
        claim_pods(&self.client, set, pods, matches, async || {
            self.can_adopt(set).await
        })
        .await
    }

    /// `getStatefulSetRevisions`: the current and update revisions (creating the update
    /// revision, or renumbering an equal older one on rollback) and the collision count.
    async fn revisions_for_update(
        &self,
        set: &StatefulSet,
        revs: &[Arc<ControllerRevision>],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), ReconcileError> {
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let candidate = new_revision(set, history::next_revision(revs), collision_count);
        let equal = history::find_equal_revisions(revs, &candidate);
        let update = match (equal.last(), revs.last()) {
            (Some(eq), Some(last)) if history::equal_revision(last, eq) => (**last).clone(),
            (Some(eq), _) => self
                .history
                .update_revision(eq, history::revision_of(&candidate))
                .await
                .map_err(hist_err)?,
            (None, _) => self
                .history
                .create(set, &candidate, &mut collision_count)
                .await
                .map_err(hist_err)?,
        };
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_default();
        let current = revs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(current_name.as_str()))
            .map(|r| (**r).clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(set) = self.sets.get(ns, name) else {
            return Ok(Next::Done);
        };
        let set = set.as_ref();
        let revs = self.revisions_of(set).await?;
        let pods = self.pods_of(set).await?;
        let (current, update, collision_count) = self.revisions_for_update(set, &revs).await?;
        let current_set = apply_revision(set, &current);
        let update_set = apply_revision(set, &update);
        let claims_cache = self.claims.clone();
        let claims = move |n: &str| claims_cache.get(ns, n);
        let (current_name, update_name) = (current.name_any(), update.name_any());
        let revisions = Revisions {
            current_set: &current_set,
            update_set: &update_set,
            current: &current_name,
            update: &update_name,
            collision_count,
        };
        let plan = plan(set, &revisions, &pods, &claims, jiff::Timestamp::now());
        let mut run_err = None;
        for step in plan.steps {
            if let Err(e) = self.run_step(set, &update_set, step).await {
                run_err = Some(e);
                break;
            }
        }
        let mut status = plan.status;
        complete_rolling_update(set, &mut status);
        let status_err = if inconsistent_status(set, &status) {
            self.write_status(set, status.clone()).await.err()
        } else {
            None
        };
        let trunc_err = self
            .truncate_history(set, &pods, &revs, &current, &update)
            .await
            .err();
        if let Some(e) = run_err.or(status_err).or(trunc_err) {
            return Err(e);
        }
        let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.available_replicas.unwrap_or(0) != set.spec.replicas.unwrap_or(1)
        {
            return Ok(Next::After(Duration::from_secs(min_ready as u64)));
        }
        Ok(Next::Done)
    }

    async fn run_step(
        &self,
        set: &StatefulSet,
        update_set: &StatefulSet,
        step: Step,
    ) -> Result<(), ReconcileError> {
        let run_group = |group: Vec<Action>| async move {
            for a in group {
                self.act(set, update_set, a).await?;
            }
            Ok::<(), ReconcileError>(())
        };
        if !step.parallel {
            for g in step.groups {
                run_group(g).await?;
            }
            return Ok(());
        }
        // Upstream's slowStartBatch: 1, 2, 4, … at most MAX_BATCH at a time, stopping after a
        // batch with a failure.
        let mut groups = step.groups.into_iter();
        let mut batch = 1;
        loop {
            let chunk: Vec<_> = groups.by_ref().take(batch).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            let results = futures::future::join_all(chunk.into_iter().map(run_group)).await;
            let errs: Vec<String> = results
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            match errs.len() {
                0 => {}
                1 => return Err(ReconcileError::Other(errs[0].clone())),
                _ => return Err(ReconcileError::Other(format!("[{}]", errs.join(", ")))),
            }
            batch = (batch * 2).min(MAX_BATCH);
        }
    }

    async fn act(
        &self,
        set: &StatefulSet,
        update_set: &StatefulSet,
        action: Action,
    ) -> Result<(), ReconcileError> {
        match action {
            Action::Create(pod) => self.create_pod(set, (*pod).clone()).await,
            Action::CreateMissingClaims(pod) => {
                self.create_claims(set, &pod).await?;
                if let Err(e) = self.fix_claims(set, &pod).await {
                    self.pod_event("update", set, &pod, Some(&e.to_string()));
                    return Err(e);
                }
                Ok(())
            }
            Action::Update(pod) => self.update_pod(update_set, (*pod).clone()).await,
            Action::FixClaims(pod) => self.fix_claims(update_set, &pod).await,
            Action::Delete(pod, ok_if_gone) => {
                let api: Api<Pod> =
                    Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
                let r = api.delete(&pod.name_any(), &DeleteParams::default()).await;
                self.pod_event("delete", set, &pod, r.as_ref().err().map(go_err).as_deref());
                match r {
                    Ok(_) => Ok(()),
                    Err(e) if ok_if_gone && is_not_found(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Upstream's `recordPodEvent`.
    fn pod_event(&self, verb: &str, set: &StatefulSet, pod: &Pod, err: Option<&str>) {
        let what = format!("Pod {} in StatefulSet {}", pod.name_any(), set.name_any());
        self.record(
            set,
            verb,
            err,
            format!("{verb} {what} successful"),
            &format!("{verb} {what}"),
        );
    }

    /// Upstream's `recordClaimEvent` (its success and failure messages differ in wording).
    fn claim_event(
        &self,
        verb: &str,
        set: &StatefulSet,
        pod: &Pod,
        claim: &str,
        err: Option<&str>,
    ) {
        let (pod_name, set_name) = (pod.name_any(), set.name_any());
        self.record(
            set,
            verb,
            err,
            format!("{verb} Claim {claim} Pod {pod_name} in StatefulSet {set_name} success"),
            &format!("{verb} Claim {claim} for Pod {pod_name} in StatefulSet {set_name}"),
        );
    }

    /// `Successful<Verb>` with `ok`, or `Failed<Verb>` with "`failed` failed error: `err`".
    fn record(&self, set: &StatefulSet, verb: &str, err: Option<&str>, ok: String, failed: &str) {
        match err {
            None => self
                .recorder
                .event(set, "Normal", &format!("Successful{}", title(verb)), ok),
            Some(e) => self.recorder.event(
                set,
                "Warning",
                &format!("Failed{}", title(verb)),
                format!("{failed} failed error: {e}"),
            ),
        }
    }

    /// `CreateStatefulPod`.
    async fn create_pod(&self, set: &StatefulSet, pod: Pod) -> Result<(), ReconcileError> {
        if let Err(e) = self.create_claims(set, &pod).await {
            self.pod_event("create", set, &pod, Some(&e.to_string()));
            return Err(e);
        }
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        match api.create(&PostParams::default(), &pod).await {
            // Already there (a stale cache): no event, and the sync is retried.
            Err(e) if is_conflict(&e) => Err(e.into()),
            Err(e) => {
                self.pod_event("create", set, &pod, Some(&go_err(&e)));
                Err(e.into())
            }
            Ok(created) => {
                if let Err(e) = self.fix_claims(set, &created).await {
                    self.pod_event("update", set, &created, Some(&e.to_string()));
                    return Err(e);
                }
                self.pod_event("create", set, &created, None);
                Ok(())
            }
        }
    }

    /// `createPersistentVolumeClaims`: each missing claim created (with an event), a claim being
    /// deleted an error.
    async fn create_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), ReconcileError> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let mut errs = Vec::new();
        for (_, claim) in claims_for(set, ordinal(pod)) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match self.claims.get(&ns, &name) {
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => self.claim_event("create", set, pod, &name, None),
                    Err(e) => {
                        if !is_conflict(&e) {
                            self.claim_event("create", set, pod, &name, Some(&go_err(&e)));
                        }
                        errs.push(format!("failed to create PVC {name}: {}", go_err(&e)));
                    }
                },
                Some(c) if c.metadata.deletion_timestamp.is_some() => {
                    errs.push(format!("pvc {name} is being deleted"));
                }
                Some(_) => {}
            }
        }
        match errs.len() {
            0 => Ok(()),
            1 => Err(ReconcileError::Other(errs.remove(0))),
            _ => Err(ReconcileError::Other(format!("[{}]", errs.join(", ")))),
        }
    }

    /// `UpdatePodClaimForRetentionPolicy`.
    async fn fix_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), ReconcileError> {
        let ns = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for (_, c) in claims_for(set, ordinal(pod)) {
            let name = c.metadata.name.clone().unwrap_or_default();
            let Some(claim) = self.claims.get(&ns, &name) else {
                continue;
            };
            if has_unexpected_controller(&claim, set, pod) {
                self.recorder.event(
                    set,
                    "Warning",
                    "ConflictingController",
                    format!("PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim"),
                );
            }
            if !is_claim_owner_up_to_date(&claim, set, pod) {
                let mut claim = (*claim).clone();
                update_claim_owner_refs(&mut claim, set, pod);
                api.replace(&name, &PostParams::default(), &claim)
                    .await
                    .map_err(|e| {
                        ReconcileError::Other(format!(
                            "could not update claim {name} for delete policy ownerRefs: {}",
                            go_err(&e)
                        ))
                    })?;
            }
        }
        Ok(())
    }

    /// `UpdateStatefulPod`: identity, storage (creating missing claims) and claim ownership.
    async fn update_pod(&self, set: &StatefulSet, mut pod: Pod) -> Result<(), ReconcileError> {
        let claims_cache = self.claims.clone();
        let ns = set.namespace().unwrap_or_default();
        let mut consistent = true;
        if !identity_matches(set, &pod) {
            update_identity(set, &mut pod);
            consistent = false;
        }
        if !storage_matches(set, &pod) {
            update_storage(set, &mut pod);
            consistent = false;
            if let Err(e) = self.create_claims(set, &pod).await {
                self.pod_event("update", set, &pod, Some(&e.to_string()));
                return Err(e);
            }
        }
        if !claims_match(set, &pod, &|n| claims_cache.get(&ns, n)) {
            if let Err(e) = self.fix_claims(set, &pod).await {
                self.pod_event("update", set, &pod, Some(&e.to_string()));
                return Err(e);
            }
            consistent = false;
        }
        if consistent {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let r = api
            .replace(&pod.name_any(), &PostParams::default(), &pod)
            .await;
        self.pod_event("update", set, &pod, r.as_ref().err().map(go_err).as_deref());
        r.map(|_| ()).map_err(Into::into)
    }

    async fn write_status(
        &self,
        set: &StatefulSet,
        status: StatefulSetStatus,
    ) -> Result<(), ReconcileError> {
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let updated = StatefulSet {
            status: Some(status),
            ..set.clone()
        };
        ignore_not_found(
            api.replace_status(&set.name_any(), &PostParams::default(), &updated)
                .await,
        )
    }

    /// `truncateHistory`: revisions no pod, current or update revision uses are deleted, oldest
    /// first, down to `revisionHistoryLimit`.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        revs: &[Arc<ControllerRevision>],
        current: &ControllerRevision,
        update: &ControllerRevision,
    ) -> Result<(), ReconcileError> {
        let live = |name: &str| {
            Some(name) == current.metadata.name.as_deref()
                || Some(name) == update.metadata.name.as_deref()
                || pods.iter().any(|p| pod_revision(p) == name)
        };
        let old: Vec<&Arc<ControllerRevision>> = revs
            .iter()
            .filter(|r| !live(r.metadata.name.as_deref().unwrap_or("")))
            .collect();
        let limit = set.spec.revision_history_limit.unwrap_or(10);
        if limit < 0 || old.len() <= limit as usize {
            return Ok(());
        }
        for r in &old[..old.len() - limit as usize] {
            self.history.delete(r).await.map_err(hist_err)?;
        }
        Ok(())
    }
}

fn hist_err(e: HistoryError) -> ReconcileError {
    match e {
        HistoryError::Api(e) => ReconcileError::Api(e),
        e => ReconcileError::Other(e.to_string()),
    }
}

impl Reconciler for StatefulSetController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

#[cfg(test)]
mod tests;
