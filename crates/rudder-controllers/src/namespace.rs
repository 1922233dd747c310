//! The namespace controller (upstream's `pkg/controller/namespace` and
//! `deletion/namespaced_resources_deleter.go`): a namespace with a `deletionTimestamp` has every
//! namespaced resource in discovery deleted (deletecollection where served, else list and delete
//! each), reports what is left in its deletion conditions, and once empty drops the `kubernetes`
//! finalizer through `namespaces/<name>/finalize`, which lets the API server delete it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, NamespaceStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};

use crate::controller::{is_conflict, is_not_found, Next, ReconcileError, ReconcileResult};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// The finalizer this controller owns (upstream's `FinalizerKubernetes`).
const FINALIZER_KUBERNETES: &str = "kubernetes";
/// Upstream's `finalizerEstimateSeconds`: how long to wait for content held by finalizers.
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Upstream's deletion condition types, in the order it writes them.
const CONDITION_TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// Upstream's `okReasons` / `okMessages`: each condition's `False` form.
fn ok_condition(type_: &str) -> (&'static str, &'static str) {
    match type_ {
        "NamespaceDeletionDiscoveryFailure" => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure" => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure" => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining" => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    }
}

pub struct NamespaceController {
    client: kube::Client,
    namespaces: Arc<Informer<Namespace>>,
    queue: Arc<WorkQueue>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(NamespaceController {
        client: cx.client.clone(),
        namespaces: cx.informers.get::<Namespace>(),
        // Upstream's nsControllerRateLimiter: 5 ms → 60 s per item.
        queue: WorkQueue::with_backoff(
            "namespace",
            cx.metrics.clone(),
            Duration::from_millis(5),
            Duration::from_secs(60),
        ),
    });
    let this = c.clone();
    c.namespaces.add_handler(move |ch| match ch {
        Change::Added(ns) | Change::Updated { new: ns, .. } => {
            if ns.metadata.deletion_timestamp.is_some() {
                this.queue.add(ns.metadata.name.clone().unwrap_or_default());
            }
        }
        Change::Deleted(_) => {}
    });
    let namespaces = c.namespaces.clone();
    tasks.spawn(async move {
        namespaces.wait_synced().await;
        run(c, 10).await;
    });
}

/// Upstream's worker: content still remaining requeues after half its estimate plus a second,
/// other errors back off.
async fn run(c: Arc<NamespaceController>, workers: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let c = c.clone();
        set.spawn(async move {
            while let Some(key) = c.queue.get().await {
                match c.sync(&key).await {
                    Ok(Next::Done) => c.queue.forget(&key),
                    Ok(Next::After(d)) => {
                        c.queue.forget(&key);
                        c.queue.add_after(key.clone(), d);
                    }
                    Err(e) => {
                        tracing::info!(namespace = %key, error = %e, "namespace deletion failed; retrying");
                        c.queue.add_rate_limited(key.clone());
                    }
                }
                c.queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// What is left of one resource after deleting its content.
#[derive(Default)]
struct Remaining {
    estimate: i64,
    count: usize,
    finalizers: BTreeMap<String, usize>,
}

/// Upstream's `namespaceConditionUpdater`.
#[derive(Default)]
pub struct Conditions {
    new: Vec<NamespaceCondition>,
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

impl Conditions {
    fn failed(&mut self, type_: &str, reason: &str, message: String) {
        if self.new.iter().any(|c| c.type_ == type_) {
            return;
        }
        self.new.push(NamespaceCondition {
            type_: type_.to_string(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(now()),
        });
    }

    /// Upstream's `ProcessContentTotals`.
    pub fn content_totals(
        &mut self,
        remaining: &BTreeMap<(String, String), usize>,
        finalizers: &BTreeMap<String, usize>,
    ) {
        let mut res: Vec<String> = remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((group, resource), n)| format!("{resource}.{group} has {n} resource instances"))
            .collect();
        if !res.is_empty() {
            res.sort();
            self.failed(
                "NamespaceContentRemaining",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", res.join(", ")),
            );
        }
        let mut fins: Vec<String> = finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        if !fins.is_empty() {
            fins.sort();
            self.failed(
                "NamespaceFinalizersRemaining",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    fins.join(", ")
                ),
            );
        }
    }

    /// Upstream's `Update`: every deletion condition present, `False` with its ok reason unless
    /// failing; an unchanged status keeps its transition time. Returns whether anything changed.
    pub fn apply(&self, status: &mut NamespaceStatus) -> bool {
        let old = status.conditions.clone().unwrap_or_default();
        let mut out: Vec<NamespaceCondition> = old
            .iter()
            .filter(|c| !CONDITION_TYPES.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        for t in CONDITION_TYPES {
            let new = self
                .new
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap_or_else(|| {
                    let (reason, message) = ok_condition(t);
                    NamespaceCondition {
                        type_: t.to_string(),
                        status: "False".into(),
                        reason: Some(reason.into()),
                        message: Some(message.into()),
                        last_transition_time: Some(now()),
                    }
                });
            match old.iter().find(|c| c.type_ == t) {
                Some(o) if o.status == new.status => {
                    let mut kept = o.clone();
                    kept.reason = new.reason;
                    kept.message = new.message;
                    out.push(kept);
                }
                _ => out.push(new),
            }
        }
        let changed = Some(&out) != status.conditions.as_ref()
            && !(old.len() == out.len()
                && old.iter().zip(&out).all(|(a, b)| {
                    a.type_ == b.type_
                        && a.status == b.status
                        && a.reason == b.reason
                        && a.message == b.message
                }));
        status.conditions = Some(out);
        changed
    }
}

impl NamespaceController {
    async fn sync(&self, name: &str) -> ReconcileResult {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = match api.get(name).await {
            Ok(ns) => ns,
            Err(e) if is_not_found(&e) => return Ok(Next::Done),
            Err(e) => return Err(e.into()),
        };
        let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
            return Ok(Next::Done);
        };
        let ns = self.mark_terminating(&api, ns).await?;
        let finalized = !ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER_KUBERNETES));
        if finalized {
            return Ok(Next::Done);
        }
        let estimate = self.delete_all_content(&api, ns, deleted_at.0).await?;
        if estimate > 0 {
            return Ok(Next::After(Duration::from_secs(estimate as u64 / 2 + 1)));
        }
        self.finalize(&api, name).await?;
        Ok(Next::Done)
    }

    /// Upstream's `updateNamespaceStatusFunc`: a deleting namespace reports `Terminating`.
    async fn mark_terminating(
        &self,
        api: &Api<Namespace>,
        mut ns: Namespace,
    ) -> Result<Namespace, ReconcileError> {
        let status = ns.status.get_or_insert_with(Default::default);
        if status.phase.as_deref() == Some("Terminating") {
            return Ok(ns);
        }
        status.phase = Some("Terminating".into());
        let name = ns.metadata.name.clone().unwrap_or_default();
        Ok(api
            .replace_status(&name, &PostParams::default(), &ns)
            .await?)
    }

    /// Upstream's `finalizeNamespace`: drop our finalizer through the finalize subresource,
    /// retrying on conflicts with a fresh copy.
    async fn finalize(&self, api: &Api<Namespace>, name: &str) -> Result<(), ReconcileError> {
        for _ in 0..5 {
            let mut ns = match api.get(name).await {
                Ok(ns) => ns,
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if let Some(f) = ns.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
                f.retain(|x| x != FINALIZER_KUBERNETES);
            }
            match api
                .replace_subresource("finalize", name, &PostParams::default(), &ns)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReconcileError::Other(format!(
            "finalizing namespace {name}: too many conflicts"
        )))
    }

    /// Upstream's `deleteAllContent`: the longest wait any resource asks for (0 = empty).
    async fn delete_all_content(
        &self,
        api: &Api<Namespace>,
        mut ns: Namespace,
        deleted_at: jiff::Timestamp,
    ) -> Result<i64, ReconcileError> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let mut conditions = Conditions::default();
        let mut errors: Vec<String> = Vec::new();
        let resources = match Discovery::new(self.client.clone()).run().await {
            Ok(d) => namespaced_deletable(&d),
            Err(e) => {
                conditions.failed(
                    "NamespaceDeletionDiscoveryFailure",
                    "DiscoveryFailed",
                    e.to_string(),
                );
                errors.push(e.to_string());
                Vec::new()
            }
        };
        let mut estimate = 0i64;
        let mut remaining: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for (ar, deletecollection) in &resources {
            match self
                .delete_resource(&name, ar, *deletecollection, deleted_at)
                .await
            {
                Ok(left) => {
                    estimate = estimate.max(left.estimate);
                    if left.count > 0 {
                        remaining.insert((ar.group.clone(), ar.plural.clone()), left.count);
                        for (f, n) in left.finalizers {
                            *finalizers.entry(f).or_default() += n;
                        }
                    }
                }
                Err((left, e)) => {
                    estimate = estimate.max(left.estimate);
                    if left.count > 0 {
                        remaining.insert((ar.group.clone(), ar.plural.clone()), left.count);
                    }
                    conditions.failed(
                        "NamespaceDeletionContentFailure",
                        "ContentDeletionFailed",
                        e.clone(),
                    );
                    errors.push(e);
                }
            }
        }
        conditions.content_totals(&remaining, &finalizers);
        let status = ns.status.get_or_insert_with(Default::default);
        if conditions.apply(status) {
            if let Err(e) = api.replace_status(&name, &PostParams::default(), &ns).await {
                tracing::info!(namespace = %name, error = %e, "updating namespace conditions failed");
            }
        }
        if !errors.is_empty() {
            return Err(ReconcileError::Other(errors.join(", ")));
        }
        Ok(estimate)
    }

    /// Upstream's `deleteAllContentForGroupVersionResource`.
    async fn delete_resource(
        &self,
        ns: &str,
        ar: &ApiResource,
        deletecollection: bool,
        deleted_at: jiff::Timestamp,
    ) -> Result<Remaining, (Remaining, String)> {
        let gvr = format!("{}/{}, Resource={}", ar.group, ar.version, ar.plural);
        let mut estimate = 0;
        if ar.group.is_empty() && ar.plural == "pods" {
            estimate = self
                .estimate_pods(ns, deleted_at)
                .await
                .map_err(|e| (Remaining::default(), e.to_string()))?;
        }
        let fail = |e: kube::Error| {
            (
                Remaining {
                    estimate,
                    ..Default::default()
                },
                e.to_string(),
            )
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, ar);
        let dp = DeleteParams::background();
        let mut collection_done = false;
        if deletecollection {
            match api.delete_collection(&dp, &ListParams::default()).await {
                Ok(_) => collection_done = true,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if !collection_done {
            let items = match api.list_metadata(&ListParams::default()).await {
                Ok(l) => l.items,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => Vec::new(),
                Err(e) => return Err(fail(e)),
            };
            for item in items {
                let name = item.metadata.name.unwrap_or_default();
                match api.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
                    Err(e) => return Err(fail(e)),
                }
            }
        }
        let items = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {
                return Ok(Remaining {
                    estimate,
                    ..Default::default()
                })
            }
            Err(e) => return Err(fail(e)),
        };
        if items.is_empty() {
            // Nothing left: no waiting, whatever the grace periods said.
            return Ok(Remaining::default());
        }
        let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
        for item in &items {
            for f in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(f.clone()).or_default() += 1;
            }
        }
        let count = items.len();
        if estimate != 0 {
            return Ok(Remaining {
                estimate,
                count,
                finalizers,
            });
        }
        if !finalizers.is_empty() {
            return Ok(Remaining {
                estimate: FINALIZER_ESTIMATE_SECONDS,
                count,
                finalizers,
            });
        }
        Err((
            Remaining {
                estimate,
                count,
                finalizers,
            },
            format!("unexpected items still remain in namespace: {ns} for gvr: {gvr}"),
        ))
    }

    /// Upstream's `estimateGracefulTerminationForPods`: the longest grace period of a pod still
    /// running, or 0 once that long has passed since the namespace was deleted.
    async fn estimate_pods(
        &self,
        ns: &str,
        deleted_at: jiff::Timestamp,
    ) -> Result<i64, kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = api.list(&ListParams::default()).await?;
        Ok(pod_estimate(
            &pods.items,
            deleted_at,
            jiff::Timestamp::now(),
        ))
    }
}

pub fn pod_estimate(pods: &[Pod], deleted_at: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let mut estimate = 0i64;
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        if let Some(g) = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
        {
            estimate = estimate.max(g);
        }
    }
    let elapsed = now.duration_since(deleted_at).as_secs();
    if elapsed >= estimate {
        0
    } else {
        estimate
    }
}

/// Upstream's `ServerPreferredNamespacedResources` filtered to those supporting delete, with
/// whether each supports deletecollection.
fn namespaced_deletable(d: &Discovery) -> Vec<(ApiResource, bool)> {
    let mut out = Vec::new();
    for g in d.groups() {
        for (ar, caps) in g.recommended_resources() {
            if caps.scope == Scope::Namespaced && caps.supports_operation(verbs::DELETE) {
                let dc = caps.supports_operation(verbs::DELETE_COLLECTION);
                out.push((ar, dc));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond<'a>(s: &'a NamespaceStatus, t: &str) -> &'a NamespaceCondition {
        s.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .unwrap_or_else(|| panic!("no {t}"))
    }

    #[test]
    fn content_remaining_messages_as_upstream() {
        let mut c = Conditions::default();
        let mut rem = BTreeMap::new();
        rem.insert((String::new(), "pods".to_string()), 2);
        rem.insert(("apps".to_string(), "deployments".to_string()), 1);
        let mut fins = BTreeMap::new();
        fins.insert("example.com/hold".to_string(), 3);
        c.content_totals(&rem, &fins);
        let mut st = NamespaceStatus::default();
        assert!(c.apply(&mut st));
        let r = cond(&st, "NamespaceContentRemaining");
        assert_eq!(r.status, "True");
        assert_eq!(r.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            r.message.as_deref(),
            Some("Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances")
        );
        let f = cond(&st, "NamespaceFinalizersRemaining");
        assert_eq!(
            f.message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 3 resource instances")
        );
        let d = cond(&st, "NamespaceDeletionDiscoveryFailure");
        assert_eq!(d.status, "False");
        assert_eq!(d.reason.as_deref(), Some("ResourcesDiscovered"));
        assert_eq!(
            d.message.as_deref(),
            Some("All resources successfully discovered")
        );
        assert_eq!(st.conditions.as_ref().map(Vec::len), Some(5));
        // The same totals again change nothing.
        assert!(!c.apply(&mut st));
    }

    #[test]
    fn pod_estimate_waits_for_grace_periods() {
        let pod = |grace: i64, phase: &str| Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                termination_grace_period_seconds: Some(grace),
                ..Default::default()
            }),
            status: Some(k8s_openapi::api::core::v1::PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t0 = jiff::Timestamp::now();
        let pods = vec![pod(30, "Running"), pod(90, "Succeeded")];
        assert_eq!(pod_estimate(&pods, t0, t0), 30);
        let later = t0 + jiff::SignedDuration::from_secs(31);
        assert_eq!(pod_estimate(&pods, t0, later), 0);
    }
}
