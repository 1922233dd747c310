//! The ReplicaSet controller (upstream's `pkg/controller/replicaset`): creates and deletes pods
//! to match `spec.replicas` (creates in slow-start batches of 1, 2, 4, …, at most 500 per sync;
//! deletes the pods upstream's ranking puts first), adopts matching orphans and releases
//! children that stopped matching, and reports status (replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas, observedGeneration, the ReplicaFailure condition) with
//! upstream's events. ReplicationControllers run through the same code, converted to
//! ReplicaSets on the way in and out as upstream's `pkg/controller/replication` does.

use crate::podutil::create_pods_slow_start;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::controller::{
    is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{
    claim_pods, controller_ref, delete_first, is_active, is_available, is_ready, owner_ref,
    selector_is_empty, selector_matches,
};
use crate::workqueue::WorkQueue;

/// Upstream's `BurstReplicas`: at most this many creates or deletes per sync.
pub const BURST_REPLICAS: usize = 500;

/// A kind this controller runs for, seen as a ReplicaSet.
pub trait Kind:
    crate::informer::Object + serde::Serialize + Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    /// The work queue's name (upstream's `replicaset`, `replicationmanager`).
    const QUEUE: &'static str;
    /// The events' source component.
    const COMPONENT: &'static str;
    fn to_rs(&self) -> ReplicaSet;
    fn with_status(&self, status: ReplicaSetStatus) -> Self;
}

impl Kind for ReplicaSet {
    const QUEUE: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";
    fn to_rs(&self) -> ReplicaSet {
        self.clone()
    }
    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        ReplicaSet {
            status: Some(status),
            ..self.clone()
        }
    }
}

/// The two status types have the same fields and JSON; conversion goes through it.
fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned + Default>(a: &A) -> B {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

impl Kind for ReplicationController {
    const QUEUE: &'static str = "replicationmanager";
    const COMPONENT: &'static str = "replication-controller";
    fn to_rs(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels: spec.selector,
                    match_expressions: None,
                },
                template: spec.template,
            },
            status: self.status.as_ref().map(convert),
        }
    }
    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        ReplicationController {
            status: Some(convert(&status)),
            ..self.clone()
        }
    }
}

pub struct ReplicaSetController<K: Kind = ReplicaSet> {
    client: kube::Client,
    sets: Arc<Informer<K>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    start_kind::<ReplicaSet>(cx, tasks)
}

/// The ReplicationController controller (upstream's `replicationcontroller-controller`).
pub fn start_rc(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    start_kind::<ReplicationController>(cx, tasks)
}

fn start_kind<K: Kind>(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(ReplicaSetController::<K> {
        client: cx.client.clone(),
        sets: cx.informers.get::<K>(),
        pods: cx.informers.get::<Pod>(),
        queue: WorkQueue::new(K::QUEUE, cx.metrics.clone()),
        expectations: Arc::default(),
        recorder: Recorder::new(cx.client.clone(), K::COMPONENT, &cx.host),
    });
    c.register_handlers();
    let (sets, pods) = (c.sets.clone(), c.pods.clone());
    let queue = c.queue.clone();
    tasks.spawn(async move {
        sets.wait_synced().await;
        pods.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

fn template_labels(rs: &ReplicaSet) -> Option<&std::collections::BTreeMap<String, String>> {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
}

impl<K: Kind> ReplicaSetController<K> {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.sets.add_handler(move |ch| match ch {
            Change::Added(rs) | Change::Updated { new: rs, .. } => {
                this.queue.add(key_of(rs.as_ref()))
            }
            Change::Deleted(rs) => {
                let key = key_of(rs.as_ref());
                this.expectations.delete(&key);
                this.queue.add(key);
            }
        });
        let this = self.clone();
        self.pods.add_handler(move |ch| match ch {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    this.pod_gone(pod);
                    return;
                }
                match this.owner(pod) {
                    Some(rs) => {
                        let key = key_of(rs.as_ref());
                        this.expectations.creation_observed(&key);
                        this.queue.add(key);
                    }
                    None if controller_ref(&pod.metadata).is_none() => this.enqueue_matching(pod),
                    None => {}
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    this.pod_gone(new);
                    if labels_changed {
                        this.pod_gone(old);
                    }
                    return;
                }
                let old_ref = controller_ref(&old.metadata).map(|r| r.uid.clone());
                let new_ref = controller_ref(&new.metadata).map(|r| r.uid.clone());
                if old_ref != new_ref {
                    if let Some(rs) = this.owner(old) {
                        this.queue.add(key_of(rs.as_ref()));
                    }
                }
                match this.owner(new) {
                    Some(rs) => {
                        let key = key_of(rs.as_ref());
                        // A pod turning ready becomes available minReadySeconds later.
                        let min_ready = rs.to_rs().spec.min_ready_seconds.unwrap_or(0);
                        if min_ready > 0 && !is_ready(old) && is_ready(new) {
                            this.queue
                                .add_after(key.clone(), Duration::from_secs(min_ready as u64 + 1));
                        }
                        this.queue.add(key);
                    }
                    None if new_ref.is_none() && (labels_changed || old_ref != new_ref) => {
                        this.enqueue_matching(new)
                    }
                    None => {}
                }
            }
            Change::Deleted(pod) => this.pod_gone(pod),
        });
    }

    /// The ReplicaSet that controls `pod`, if it still exists with that UID.
    fn owner(&self, pod: &Pod) -> Option<Arc<K>> {
        let r = controller_ref(&pod.metadata)?;
        if r.kind != K::kind(&()) {
            return None;
        }
        let rs = self
            .sets
            .get(pod.metadata.namespace.as_deref().unwrap_or(""), &r.name)?;
        (rs.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    fn pod_gone(&self, pod: &Pod) {
        if let Some(rs) = self.owner(pod) {
            let key = key_of(rs.as_ref());
            self.expectations.deletion_observed(&key, &key_of(pod));
            self.queue.add(key);
        }
    }

    /// An orphan: every ReplicaSet that could adopt it looks again.
    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for owner in self.sets.list(ns) {
            let rs = owner.to_rs();
            let sel = &rs.spec.selector;
            if !selector_is_empty(sel) && selector_matches(sel, pod.metadata.labels.as_ref()) {
                self.queue.add(key_of(owner.as_ref()));
            }
        }
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(owner) = self.sets.get(ns, name) else {
            self.expectations.delete(&key);
            return Ok(Next::Done);
        };
        let owner = owner.as_ref();
        let rs = owner.to_rs();
        let spec = &rs.spec;
        let needs_sync = self.expectations.satisfied(&key);
        // Upstream's `FilterPodsByOwner` with orphans: its own pods and the namespace's
        // orphans, from the informer's controller index.
        let uid = owner.meta().uid.as_deref().unwrap_or("");
        let mut active = self.pods.list_controlled_by(uid);
        active.extend(self.pods.list_orphans(ns));
        active.retain(|p| is_active(p));
        let mine = self.claim(owner, &rs, active).await?;
        let mut manage_err = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage_err = self.manage(owner, &rs, &key, &mine).await.err();
        }
        let status = calculate_status(&rs, &mine, manage_err.as_ref());
        self.update_status(owner, &rs, status.clone()).await?;
        if let Some(e) = manage_err {
            return Err(e);
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let replicas = spec.replicas.unwrap_or(1);
        if min_ready > 0
            && status.ready_replicas.unwrap_or(0) == replicas
            && status.available_replicas.unwrap_or(0) != replicas
        {
            return Ok(Next::After(Duration::from_secs(min_ready as u64)));
        }
        Ok(Next::Done)
    }

    /// Upstream's `ClaimPods`: keep owned pods that match, release owned pods that no longer
    /// match, adopt matching orphans.
    async fn claim(
        &self,
        owner: &K,
        rs: &ReplicaSet,
        pods: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, ReconcileError> {
        let sel = &rs.spec.selector;
        let matches = |pod: &Pod| {
            !selector_is_empty(sel) && selector_matches(sel, pod.metadata.labels.as_ref())
        };
        claim_pods(&self.client, owner, pods, matches, async || Ok(true)).await
    }

    async fn manage(
        &self,
        owner: &K,
        rs: &ReplicaSet,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> Result<(), ReconcileError> {
        let want = rs.spec.replicas.unwrap_or(1).max(0) as usize;
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if pods.len() < want {
            let diff = (want - pods.len()).min(BURST_REPLICAS);
            self.expectations.expect(key, diff as i64, Vec::new());
            let template = rs.spec.template.clone().unwrap_or_default();
            let pod = pod_from_template(&template, owner);
            let (created, errors) = create_pods_slow_start(
                &api,
                owner,
                &self.recorder,
                &self.expectations,
                key,
                diff,
                |_| pod.clone(),
            )
            .await;
            let first_err = errors.into_iter().next();
            tracing::debug!(replicaset = %key, created, "created pods");
            if let Some(e) = first_err {
                return Err(e.into());
            }
        } else if pods.len() > want {
            let diff = (pods.len() - want).min(BURST_REPLICAS);
            let victims = pods_to_delete(pods, diff);
            self.expectations
                .expect(key, 0, victims.iter().map(|p| key_of(p.as_ref())));
            let dp = DeleteParams::default();
            let results = futures::future::join_all(
                victims
                    .iter()
                    .map(|p| api.delete(p.metadata.name.as_deref().unwrap_or(""), &dp)),
            )
            .await;
            let mut first_err = None;
            for (p, r) in victims.iter().zip(results) {
                match r {
                    Ok(_) => self.recorder.event(
                        owner,
                        "Normal",
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    ),
                    Err(e) if is_not_found(&e) => self
                        .expectations
                        .deletion_observed(key, &key_of(p.as_ref())),
                    Err(e) => {
                        self.expectations
                            .deletion_observed(key, &key_of(p.as_ref()));
                        self.recorder.event(
                            owner,
                            "Warning",
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn update_status(
        &self,
        owner: &K,
        rs: &ReplicaSet,
        status: ReplicaSetStatus,
    ) -> Result<(), ReconcileError> {
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        let name = rs.name_any();
        // Upstream's `updateReplicaSetStatus`: a failed update is retried once on the object
        // read afresh (statusUpdateRetries = 1). The informer's copy lags this controller's
        // own previous status write whenever pods change quickly; without the retry every
        // such sync was a 409 and a rate-limited requeue.
        let mut base = owner.clone();
        for attempt in 0..2 {
            let updated = base.with_status(status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if attempt > 0 => return Err(e.into()),
                Err(_) => match api.get(&name).await {
                    Ok(fresh) => base = fresh,
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
            }
        }
        Ok(())
    }
}

impl<K: Kind> Reconciler for ReplicaSetController<K> {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

/// Upstream's `GetPodFromTemplate`: the template's labels, annotations, finalizers and spec,
/// `generateName` `<owner>-`, and the controller reference.
pub fn pod_from_template<K: kube::Resource<DynamicType = ()>>(
    template: &PodTemplateSpec,
    owner: &K,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let name = owner.meta().name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: owner.meta().namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The `n` pods upstream deletes first, ranking each by how many siblings share its node.
pub fn pods_to_delete(pods: &[Arc<Pod>], n: usize) -> Vec<Arc<Pod>> {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in pods {
        let n = node(p);
        if !n.is_empty() {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let rank = |p: &Pod| per_node.get(&node(p)).copied().unwrap_or(0);
    let mut sorted: Vec<Arc<Pod>> = pods.to_vec();
    sorted.sort_by(|a, b| delete_first(a, rank(a), b, rank(b)));
    sorted.truncate(n);
    sorted
}

/// Upstream's `calculateStatus`.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_err: Option<&ReconcileError>,
) -> ReplicaSetStatus {
    let now = jiff::Timestamp::now();
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let template = template_labels(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in pods {
        let labels = p.metadata.labels.as_ref();
        if template.is_none_or(|t| {
            t.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        }) {
            fully_labeled += 1;
        }
        if is_ready(p) {
            ready += 1;
            if is_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut status = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = status.conditions.take().unwrap_or_default();
    let has_failure = conditions
        .iter()
        .any(|c| c.type_.as_deref() == Some("ReplicaFailure"));
    match manage_err {
        Some(e) if !has_failure => {
            let want = rs.spec.replicas.unwrap_or(1) as usize;
            let reason = if pods.len() < want {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: Some("ReplicaFailure".into()),
                status: Some("True".into()),
                reason: Some(reason.into()),
                message: Some(e.to_string()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_.as_deref() != Some("ReplicaFailure")),
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.observed_generation = rs.metadata.generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs() -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d", "uid": "u1", "generation": 3},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    }

    fn pod(name: &str, labels: serde_json::Value, ready: bool) -> Arc<Pod> {
        let conds = if ready {
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}])
        } else {
            json!([])
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "labels": labels},
                "spec": {"containers": [], "nodeName": "n"}, "status": {"phase": "Running", "conditions": conds}}))
            .unwrap(),
        )
    }

    #[test]
    fn pods_come_from_the_template_with_the_controller_ref() {
        let r = rs();
        let p = pod_from_template(r.spec.template.as_ref().unwrap(), &r);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "fe");
        let o = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.uid.as_str(),
                o.controller,
                o.block_owner_deletion
            ),
            ("ReplicaSet", "u1", Some(true), Some(true))
        );
        assert_eq!(o.api_version, "apps/v1");
    }

    #[test]
    fn status_counts_as_upstream() {
        let r = rs();
        let pods = vec![
            pod("a", json!({"app": "web", "tier": "fe"}), true),
            pod("b", json!({"app": "web"}), true),
            pod("c", json!({"app": "web", "tier": "fe"}), false),
        ];
        let s = calculate_status(&r, &pods, None);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(2));
        assert_eq!(s.observed_generation, Some(3));
        let err = ReconcileError::Other("quota".into());
        let s = calculate_status(&r, &pods[..1], Some(&err));
        let c = &s.conditions.unwrap()[0];
        assert_eq!(
            (
                c.type_.as_deref().unwrap(),
                c.reason.as_deref(),
                c.message.as_deref()
            ),
            ("ReplicaFailure", Some("FailedCreate"), Some("quota"))
        );
    }

    #[test]
    fn scale_down_takes_not_ready_pods_first() {
        let pods = vec![
            pod("ready", json!({}), true),
            pod("notready", json!({}), false),
        ];
        let v = pods_to_delete(&pods, 1);
        assert_eq!(v[0].metadata.name.as_deref(), Some("notready"));
    }
}
