//! The Deployment controller (upstream's `pkg/controller/deployment`): owns ReplicaSets named
//! `<deployment>-<pod-template-hash>`, rolls them by RollingUpdate (maxSurge/maxUnavailable) or
//! Recreate, scales them proportionally when the Deployment is resized mid-rollout, keeps the
//! revision annotations `kubectl rollout history/undo` read, prunes history past
//! `revisionHistoryLimit`, and reports status and the Available/Progressing conditions with
//! upstream's reasons, messages and `ScalingReplicaSet` events.

pub mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSetSpec;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use crate::controller::{
    is_conflict, is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{controller_ref, owner_ref, phase, selector_is_empty, selector_matches};
use crate::workqueue::WorkQueue;
use util::*;

pub struct DeploymentController {
    client: kube::Client,
    deployments: Arc<Informer<Deployment>>,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(DeploymentController {
        client: cx.client.clone(),
        deployments: cx.informers.get::<Deployment>(),
        sets: cx.informers.get::<ReplicaSet>(),
        pods: cx.informers.get::<Pod>(),
        queue: WorkQueue::new("deployment", cx.metrics.clone()),
        recorder: Recorder::new(cx.client.clone(), "deployment-controller", &cx.host),
    });
    c.register_handlers();
    let (d, s, p) = (c.deployments.clone(), c.sets.clone(), c.pods.clone());
    let queue = c.queue.clone();
    tasks.spawn(async move {
        d.wait_synced().await;
        s.wait_synced().await;
        p.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

type Sets = Vec<Arc<ReplicaSet>>;

impl DeploymentController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.deployments.add_handler(move |ch| match ch {
            Change::Added(d) | Change::Updated { new: d, .. } | Change::Deleted(d) => {
                this.queue.add(key_of(d.as_ref()))
            }
        });
        let this = self.clone();
        self.sets.add_handler(move |ch| match ch {
            Change::Added(rs) | Change::Deleted(rs) => match this.owner(&rs.metadata) {
                Some(d) => this.queue.add(key_of(d.as_ref())),
                None if controller_ref(&rs.metadata).is_none() => this.enqueue_matching(rs),
                None => {}
            },
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let old_ref = controller_ref(&old.metadata).map(|r| r.uid.clone());
                let new_ref = controller_ref(&new.metadata).map(|r| r.uid.clone());
                if old_ref != new_ref {
                    if let Some(d) = this.owner(&old.metadata) {
                        this.queue.add(key_of(d.as_ref()));
                    }
                }
                match this.owner(&new.metadata) {
                    Some(d) => this.queue.add(key_of(d.as_ref())),
                    None if new_ref.is_none()
                        && (old.metadata.labels != new.metadata.labels || old_ref != new_ref) =>
                    {
                        this.enqueue_matching(new)
                    }
                    None => {}
                }
            }
        });
        // Recreate waits for the old pods to be gone.
        let this = self.clone();
        self.pods.add_handler(move |ch| {
            if let Change::Deleted(pod) = ch {
                let Some(r) = controller_ref(&pod.metadata).filter(|r| r.kind == "ReplicaSet")
                else {
                    return;
                };
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                if let Some(rs) = this.sets.get(ns, &r.name) {
                    if let Some(d) = this.owner(&rs.metadata) {
                        if strategy_type(&d) == "Recreate" {
                            this.queue.add(key_of(d.as_ref()));
                        }
                    }
                }
            }
        });
    }

    /// The Deployment controlling a ReplicaSet, if it still exists with that UID.
    fn owner(&self, meta: &ObjectMeta) -> Option<Arc<Deployment>> {
        let r = controller_ref(meta).filter(|r| r.kind == "Deployment")?;
        let d = self
            .deployments
            .get(meta.namespace.as_deref().unwrap_or(""), &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        for d in self.deployments.list(ns) {
            let spec = &d.spec;
            if !selector_is_empty(&spec.selector)
                && selector_matches(&spec.selector, rs.metadata.labels.as_ref())
            {
                self.queue.add(key_of(d.as_ref()));
            }
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn d_api(&self, d: &Deployment) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default())
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(cached) = self.deployments.get(ns, name) else {
            return Ok(Next::Done);
        };
        let mut d = (*cached).clone();
        let spec = d.spec.clone();
        if selector_is_empty(&spec.selector) {
            self.recorder.event(
                &d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let st = d.status.get_or_insert_with(Default::default);
            if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                st.observed_generation = d.metadata.generation;
                self.update_status(&mut d).await?;
            }
            return Ok(Next::Done);
        }
        let rs_list = self.claim(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old) = self.all_sets(&mut d, &rs_list, false).await?;
            self.sync_status(&mut d, &old, new_rs.as_ref()).await?;
            return Ok(Next::Done);
        }
        self.check_paused_conditions(&mut d).await?;
        if spec.paused == Some(true) || self.is_scaling_event(&mut d, &rs_list).await? {
            return self.sync_scale(&mut d, &rs_list).await;
        }
        if strategy_type(&d) == "Recreate" {
            self.rollout_recreate(&mut d, &rs_list).await
        } else {
            self.rollout_rolling(&mut d, &rs_list).await
        }
    }

    /// `ClaimReplicaSets`: keep owned sets that match, release the rest, adopt matching orphans.
    async fn claim(&self, d: &Deployment) -> Result<Sets, ReconcileError> {
        let ns = d.namespace().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let sel = d.spec.selector.clone();
        let api = self.rs_api(&ns);
        let mut out = Vec::new();
        for rs in self.sets.list(&ns) {
            let matches = selector_matches(&sel, rs.metadata.labels.as_ref());
            let patch = match controller_ref(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push(rs);
                        continue;
                    }
                    if d.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}],
                        "uid": rs.metadata.uid}})
                }
                Some(_) => continue,
                None => {
                    if !matches
                        || d.metadata.deletion_timestamp.is_some()
                        || rs.metadata.deletion_timestamp.is_some()
                    {
                        continue;
                    }
                    json!({"metadata": {"ownerReferences": [owner_ref(d)], "uid": rs.metadata.uid}})
                }
            };
            match api
                .patch(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(p) if matches => out.push(Arc::new(p)),
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    async fn update_status(&self, d: &mut Deployment) -> Result<(), ReconcileError> {
        match self
            .d_api(d)
            .replace_status(&d.name_any(), &PostParams::default(), d)
            .await
        {
            Ok(n) => {
                d.metadata.resource_version = n.metadata.resource_version;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `SetDeploymentRevision`. Upstream writes it with the status update (its status strategy
    /// keeps annotation changes); here it is a metadata patch, as the status subresource only
    /// changes status.
    async fn set_revision(&self, d: &mut Deployment, rev: &str) -> Result<(), ReconcileError> {
        let cur = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if cur.map(String::as_str) == Some(rev) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        match self
            .d_api(d)
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(n) => {
                d.metadata.resource_version = n.metadata.resource_version;
                d.metadata.annotations = n.metadata.annotations;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), ReconcileError> {
        if !has_progress_deadline(d) {
            return Ok(());
        }
        let status = d.status.clone().unwrap_or_default();
        let reason = condition(&status, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return Ok(());
        }
        let paused_cond = reason.as_deref() == Some(PAUSED);
        let paused = d.spec.paused == Some(true);
        let c = if paused && !paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
            )
        } else if !paused && paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        set_condition(d.status.get_or_insert_with(Default::default), c);
        self.update_status(d).await
    }

    /// `isScalingEvent`: an active set was sized for a different replica count.
    async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &Sets,
    ) -> Result<bool, ReconcileError> {
        let (new_rs, old) = self.all_sets(d, rs_list, false).await?;
        Ok(old
            .iter()
            .chain(new_rs.as_ref())
            .filter(|r| rs_replicas(r) > 0)
            .filter_map(|r| desired_annotation(r))
            .any(|desired| desired != replicas(d)))
    }

    /// `getAllReplicaSetsAndSyncRevision`: (new set, every old set).
    async fn all_sets(
        &self,
        d: &mut Deployment,
        rs_list: &Sets,
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Sets), ReconcileError> {
        let existing = find_new(d, rs_list);
        let old: Sets = rs_list
            .iter()
            .filter(|r| {
                existing
                    .as_ref()
                    .is_none_or(|n| n.metadata.uid != r.metadata.uid)
            })
            .cloned()
            .collect();
        let new_rs = self.new_set(d, existing, &old, create).await?;
        Ok((new_rs, old))
    }

    /// `getNewReplicaSet`.
    async fn new_set(
        &self,
        d: &mut Deployment,
        existing: Option<Arc<ReplicaSet>>,
        old: &Sets,
        create: bool,
    ) -> Result<Option<Arc<ReplicaSet>>, ReconcileError> {
        let ns = d.namespace().unwrap_or_default();
        let new_revision = max_revision(old) + 1;
        let spec = d.spec.clone();
        if let Some(existing) = existing {
            let mut copy = (*existing).clone();
            let annotations = set_new_rs_annotations(d, &mut copy, new_revision, true);
            let rs_spec = &mut copy.spec;
            let min_ready = rs_spec.min_ready_seconds != spec.min_ready_seconds;
            if annotations || min_ready {
                rs_spec.min_ready_seconds = spec.min_ready_seconds;
                let updated = self
                    .rs_api(&ns)
                    .replace(&copy.name_any(), &PostParams::default(), &copy)
                    .await?;
                return Ok(Some(Arc::new(updated)));
            }
            let rev = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            self.set_revision(d, &rev).await?;
            let deadline = has_progress_deadline(d);
            let status = d.status.get_or_insert_with(Default::default);
            if deadline && condition(status, "Progressing").is_none() {
                let msg = format!("Found new replica set {:?}", copy.name_any());
                set_condition(
                    status,
                    new_condition("Progressing", "True", FOUND_NEW_RS, msg),
                );
                self.update_status(d).await?;
            }
            return Ok(Some(existing));
        }
        if !create {
            return Ok(None);
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        let mut labels = tmeta.labels.clone().unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.clone());
        tmeta.labels = Some(labels.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![owner_ref(d)]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let all: Sets = old.iter().cloned().chain([Arc::new(rs.clone())]).collect();
        let count = new_rs_new_replicas(d, &all, 0);
        rs.spec.replicas = Some(count);
        set_new_rs_annotations(d, &mut rs, new_revision, false);
        let name = rs.name_any();
        let created = match self.rs_api(&ns).create(&PostParams::default(), &rs).await {
            Ok(c) => {
                if count > 0 {
                    self.recorder.event(
                        d,
                        "Normal",
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {count}"),
                    );
                }
                Some(c)
            }
            Err(e) if is_conflict(&e) => {
                // Ours already (a stale cache), or a hash collision: bump collisionCount.
                let current = self.rs_api(&ns).get(&name).await?;
                let ours = controller_ref(&current.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = current
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                if !(ours && same) {
                    let st = d.status.get_or_insert_with(Default::default);
                    st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                    self.update_status(d).await?;
                    return Err(e.into());
                }
                // Already ours: no event, no "created" condition.
                let rev = new_revision.to_string();
                self.set_revision(d, &rev).await?;
                return Ok(Some(Arc::new(current)));
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {name:?}: {e}");
                if has_progress_deadline(d) {
                    let st = d.status.get_or_insert_with(Default::default);
                    set_condition(
                        st,
                        new_condition("Progressing", "False", FAILED_RS_CREATE, msg.clone()),
                    );
                    let _ = self.update_status(d).await;
                }
                self.recorder.event(d, "Warning", FAILED_RS_CREATE, msg);
                return Err(e.into());
            }
        };
        self.set_revision(d, &new_revision.to_string()).await?;
        if has_progress_deadline(d) {
            let msg = format!("Created new replica set {name:?}");
            let st = d.status.get_or_insert_with(Default::default);
            set_condition(
                st,
                new_condition("Progressing", "True", NEW_RS_CREATED, msg),
            );
            self.update_status(d).await?;
        }
        Ok(created.map(Arc::new))
    }

    /// `scaleReplicaSet`: size and replica annotations in one update; an event when the size
    /// changed.
    async fn scale_set(
        &self,
        rs: &Arc<ReplicaSet>,
        to: i32,
        d: &Deployment,
        op: &str,
    ) -> Result<(bool, Arc<ReplicaSet>), ReconcileError> {
        let from = rs_replicas(rs);
        let max = replicas(d) + max_surge(d);
        let resize = from != to;
        if !resize && !replicas_annotations_need_update(rs, replicas(d), max) {
            return Ok((false, rs.clone()));
        }
        let mut copy = (**rs).clone();
        copy.spec.replicas = Some(to);
        set_replicas_annotations(&mut copy, replicas(d), max);
        let updated = self
            .rs_api(&rs.namespace().unwrap_or_default())
            .replace(&rs.name_any(), &PostParams::default(), &copy)
            .await?;
        if resize {
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} from {from} to {to}",
                    rs.name_any()
                ),
            );
        }
        Ok((resize, Arc::new(updated)))
    }

    /// `scaleReplicaSetAndRecordEvent`.
    async fn scale_to(
        &self,
        rs: &Arc<ReplicaSet>,
        to: i32,
        d: &Deployment,
    ) -> Result<(bool, Arc<ReplicaSet>), ReconcileError> {
        if rs_replicas(rs) == to {
            return Ok((false, rs.clone()));
        }
        let op = if rs_replicas(rs) < to { "up" } else { "down" };
        self.scale_set(rs, to, d, op).await
    }

    /// `sync`: scaling (or a paused Deployment) without rolling.
    async fn sync_scale(&self, d: &mut Deployment, rs_list: &Sets) -> ReconcileResult {
        let (new_rs, old) = self.all_sets(d, rs_list, false).await?;
        self.scale(d, new_rs.as_ref(), &old).await?;
        if d.spec.paused == Some(true) {
            self.cleanup(d, &old).await?;
        }
        self.sync_status(d, &old, new_rs.as_ref()).await?;
        Ok(Next::Done)
    }

    /// `scale` in sync.go.
    async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<&Arc<ReplicaSet>>,
        old: &Sets,
    ) -> Result<(), ReconcileError> {
        if let Some(rs) = find_active_or_latest(new_rs, old) {
            if rs_replicas(&rs) != replicas(d) {
                self.scale_to(&rs, replicas(d), d).await?;
            }
            return Ok(());
        }
        if is_saturated(d, new_rs) {
            for rs in old.iter().filter(|r| rs_replicas(r) > 0) {
                self.scale_to(rs, 0, d).await?;
            }
            return Ok(());
        }
        if is_rolling_update(d) {
            let mut active: Sets = old
                .iter()
                .chain(new_rs)
                .filter(|r| rs_replicas(r) > 0)
                .cloned()
                .collect();
            let current = sum_spec(&active);
            let allowed = if replicas(d) > 0 {
                replicas(d) + max_surge(d)
            } else {
                0
            };
            let op = if allowed > current { "up" } else { "down" };
            for (rs, size) in proportional_sizes(d, &mut active) {
                self.scale_set(&rs, size, d, op).await?;
            }
        }
        Ok(())
    }

    /// `cleanupDeployment`: delete the oldest scaled-down sets past revisionHistoryLimit.
    async fn cleanup(&self, d: &Deployment, old: &Sets) -> Result<(), ReconcileError> {
        let Some(limit) = d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut alive: Sets = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let diff = alive.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| by_creation(a, b))
        });
        for rs in alive.iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            match self
                .rs_api(&rs.namespace().unwrap_or_default())
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `syncDeploymentStatus`.
    async fn sync_status(
        &self,
        d: &mut Deployment,
        old: &Sets,
        new_rs: Option<&Arc<ReplicaSet>>,
    ) -> Result<(), ReconcileError> {
        let all: Sets = old.iter().chain(new_rs).cloned().collect();
        let status = calculate_status(&all, new_rs, d);
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    async fn rollout_rolling(&self, d: &mut Deployment, rs_list: &Sets) -> ReconcileResult {
        let (new_rs, old) = self.all_sets(d, rs_list, true).await?;
        let Some(new_rs) = new_rs else {
            return Ok(Next::Done);
        };
        let all: Sets = old.iter().cloned().chain([new_rs.clone()]).collect();
        // reconcileNewReplicaSet
        let have = rs_replicas(&new_rs);
        let want = if have > replicas(d) {
            replicas(d)
        } else {
            new_rs_new_replicas(d, &all, have)
        };
        if want != have {
            let (scaled, _) = self.scale_to(&new_rs, want, d).await?;
            if scaled {
                return self.sync_rollout_status(d, &old, Some(&new_rs)).await;
            }
        }
        // reconcileOldReplicaSets
        let active_old: Sets = old.iter().filter(|r| rs_replicas(r) > 0).cloned().collect();
        if sum_spec(&active_old) > 0 {
            let max_down = max_scaled_down(d, &all, &new_rs);
            if max_down > 0 {
                let (active_old, cleaned) = self.cleanup_unhealthy(d, active_old, max_down).await?;
                let all: Sets = active_old.iter().cloned().chain([new_rs.clone()]).collect();
                let scaled = self.scale_down_old_rolling(d, &all, active_old).await?;
                if cleaned + scaled > 0 {
                    return self.sync_rollout_status(d, &old, Some(&new_rs)).await;
                }
            }
        }
        if is_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &old, Some(&new_rs)).await
    }

    /// `cleanupUnhealthyReplicas`: scale down old sets' unavailable pods first, oldest first.
    async fn cleanup_unhealthy(
        &self,
        d: &Deployment,
        mut old: Sets,
        max: i32,
    ) -> Result<(Sets, i32), ReconcileError> {
        old.sort_by(|a, b| by_creation(a, b));
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max {
                break;
            }
            let (have, available) = (rs_replicas(rs), rs_available(rs));
            if have == 0 || have == available {
                continue;
            }
            let down = (max - total).min(have - available);
            if down < 0 {
                // A status reporting more available pods than the spec (not observed yet).
                return Err(ReconcileError::Other(format!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {} {have} -> {}",
                    key_of(rs.as_ref()),
                    have - down
                )));
            }
            let (_, updated) = self.scale_to(rs, have - down, d).await?;
            *rs = updated;
            total += down;
        }
        Ok((old, total))
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: down to minAvailable, oldest first.
    async fn scale_down_old_rolling(
        &self,
        d: &Deployment,
        all: &Sets,
        mut old: Sets,
    ) -> Result<i32, ReconcileError> {
        let min_available = replicas(d) - max_unavailable(d);
        let available = sum_status(all, rs_available);
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(|a, b| by_creation(a, b));
        let budget = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= budget {
                break;
            }
            if rs_replicas(rs) == 0 {
                continue;
            }
            let down = rs_replicas(rs).min(budget - total);
            self.scale_to(rs, rs_replicas(rs) - down, d).await?;
            total += down;
        }
        Ok(total)
    }

    async fn rollout_recreate(&self, d: &mut Deployment, rs_list: &Sets) -> ReconcileResult {
        let (mut new_rs, mut old) = self.all_sets(d, rs_list, false).await?;
        let mut scaled = false;
        for rs in old.iter().filter(|r| rs_replicas(r) > 0) {
            scaled |= self.scale_to(rs, 0, d).await?.0;
        }
        if scaled || self.old_pods_running(d, new_rs.as_ref(), &old) {
            return self.sync_rollout_status(d, &old, new_rs.as_ref()).await;
        }
        if new_rs.is_none() {
            (new_rs, old) = self.all_sets(d, rs_list, true).await?;
        }
        if let Some(rs) = new_rs.as_ref() {
            self.scale_to(rs, replicas(d), d).await?;
        }
        if is_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &old, new_rs.as_ref()).await
    }

    /// `oldPodsRunning`: any pod of an old set not yet finished (or gone).
    fn old_pods_running(
        &self,
        d: &Deployment,
        new_rs: Option<&Arc<ReplicaSet>>,
        old: &Sets,
    ) -> bool {
        if sum_status(old, status_replicas) > 0 {
            return true;
        }
        let new_uid = new_rs.and_then(|r| r.metadata.uid.clone());
        let uids: Vec<&String> = old.iter().filter_map(|r| r.metadata.uid.as_ref()).collect();
        self.pods
            .list(&d.namespace().unwrap_or_default())
            .iter()
            .filter(|p| {
                controller_ref(&p.metadata)
                    .is_some_and(|r| Some(&r.uid) != new_uid.as_ref() && uids.contains(&&r.uid))
            })
            .any(|p| !matches!(phase(p), "Succeeded" | "Failed"))
    }

    /// `syncRolloutStatus`: status plus the Progressing condition; a stuck rollout is looked
    /// at again when its deadline passes.
    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        old: &Sets,
        new_rs: Option<&Arc<ReplicaSet>>,
    ) -> ReconcileResult {
        let all: Sets = old.iter().chain(new_rs).cloned().collect();
        let mut status = calculate_status(&all, new_rs, d);
        progress_status(d, &mut status, new_rs, jiff::Timestamp::now());
        match replica_failure(&all, new_rs) {
            Some(c) => set_condition(&mut status, c),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if d.status.as_ref() == Some(&status) {
            return Ok(requeue_stuck(d, &status, jiff::Timestamp::now()));
        }
        d.status = Some(status);
        self.update_status(d).await?;
        Ok(Next::Done)
    }
}

/// The Progressing condition as `syncRolloutStatus` sets it.
pub fn progress_status(
    d: &Deployment,
    status: &mut DeploymentStatus,
    new_rs: Option<&Arc<ReplicaSet>>,
    now: jiff::Timestamp,
) {
    if !has_progress_deadline(d) {
        remove_condition(status, "Progressing");
    }
    let old_status = d.status.clone().unwrap_or_default();
    let current = condition(&old_status, "Progressing");
    let complete_before = status.replicas == status.updated_replicas
        && current.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if !has_progress_deadline(d) || complete_before {
        return;
    }
    let name = d.name_any();
    let what = |verb: &str| match new_rs {
        Some(rs) => format!("ReplicaSet {:?} {verb}", rs.name_any()),
        None => format!("Deployment {name:?} {verb}"),
    };
    if is_complete(d, status) {
        let c = new_condition(
            "Progressing",
            "True",
            NEW_RS_AVAILABLE,
            what("has successfully progressed."),
        );
        set_condition(status, c);
    } else if is_progressing(d, status) {
        let mut c = new_condition("Progressing", "True", RS_UPDATED, what("is progressing."));
        if let Some(cur) = current {
            if cur.status.as_deref() == Some("True") {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            remove_condition(status, "Progressing");
        }
        set_condition(status, c);
    } else if is_timed_out(d, status, now) {
        let c = new_condition(
            "Progressing",
            "False",
            TIMED_OUT,
            what("has timed out progressing."),
        );
        set_condition(status, c);
    }
}

/// `requeueStuckDeployment`: when an unfinished rollout would time out.
pub fn requeue_stuck(d: &Deployment, status: &DeploymentStatus, now: jiff::Timestamp) -> Next {
    let old = d.status.clone().unwrap_or_default();
    let Some(cur) = condition(&old, "Progressing") else {
        return Next::Done;
    };
    if !has_progress_deadline(d)
        || is_complete(d, status)
        || cur.reason.as_deref() == Some(TIMED_OUT)
    {
        return Next::Done;
    }
    let Some(updated) = cur.last_update_time.as_ref() else {
        return Next::Done;
    };
    let due = updated.0 + jiff::SignedDuration::from_secs(progress_deadline(d));
    let after = due.duration_since(now);
    if after < jiff::SignedDuration::from_secs(1) {
        return Next::After(Duration::from_secs(1));
    }
    Next::After(Duration::from_secs(after.as_secs() as u64 + 1))
}

/// A ReplicaFailure of the new set (else of any set) as a Deployment condition.
fn replica_failure(all: &Sets, new_rs: Option<&Arc<ReplicaSet>>) -> Option<DeploymentCondition> {
    new_rs.into_iter().chain(all.iter()).find_map(|rs| {
        let c = rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
            c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
        })?;
        Some(DeploymentCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time.clone(),
        })
    })
}

/// Upstream's `calculateStatus`.
pub fn calculate_status(
    all: &Sets,
    new_rs: Option<&Arc<ReplicaSet>>,
    d: &Deployment,
) -> DeploymentStatus {
    let available = sum_status(all, rs_available);
    let unavailable = (sum_spec(all) - available).max(0);
    let prev = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum_status(all, status_replicas)),
        updated_replicas: Some(new_rs.map(|r| status_replicas(r)).unwrap_or(0)),
        ready_replicas: Some(sum_status(all, status_ready)),
        available_replicas: Some(available),
        unavailable_replicas: Some(unavailable),
        collision_count: prev.collision_count,
        conditions: prev.conditions.clone(),
        terminating_replicas: prev.terminating_replicas,
    };
    let c = if available >= replicas(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.".into(),
        )
    } else {
        new_condition(
            "Available",
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
        )
    };
    set_condition(&mut status, c);
    status
}

impl Reconciler for DeploymentController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}
