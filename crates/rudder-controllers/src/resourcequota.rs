//! The resource quota controller (upstream's `pkg/controller/resourcequota`): keeps every
//! ResourceQuota's `status.hard` equal to its spec and `status.used` equal to what the objects
//! of its namespace consume (counted by `rudder_api::quota`, the same evaluators the API
//! server's quota admission charges with). A quota is recalculated when its spec changes, when
//! an object it counts is deleted or changes its usage (a pod finishing, a service changing
//! type), and every five minutes (upstream's `--resource-quota-sync-period`), which also
//! releases what admission charged for writes that then failed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::Discovery;
use rudder_api::quota::{self, Evaluator, ResourceList};
use serde::Serialize;
use serde_json::Value;

use crate::controller::{
    ignore_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::informer::{key_of, split_key, Change, Informer, Informers, Object};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// Upstream's default `--resource-quota-sync-period`.
const FULL_RESYNC: Duration = Duration::from_secs(300);
/// Upstream's default `--concurrent-resource-quota-syncs`.
const WORKERS: usize = 5;

pub struct ResourceQuotaController {
    client: kube::Client,
    quotas: Arc<Informer<ResourceQuota>>,
    pods: Arc<Informer<Pod>>,
    services: Arc<Informer<Service>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    config_maps: Arc<Informer<ConfigMap>>,
    secrets: Arc<Informer<Secret>>,
    controllers: Arc<Informer<ReplicationController>>,
}

/// Queues every quota of a namespace (upstream's `replenishQuota`).
fn replenish(quotas: &Informer<ResourceQuota>, queue: &WorkQueue, ns: &str) {
    for q in quotas.list(ns) {
        queue.add(key_of(q.as_ref()));
    }
}

fn as_json<K: Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// Replenishes a namespace's quotas when an object of `K` is deleted, or changes what it
/// consumes.
fn watch_usage<K: Object + Serialize>(
    informers: &Informers,
    quotas: &Arc<Informer<ResourceQuota>>,
    queue: &Arc<WorkQueue>,
    evaluator: Evaluator,
) -> Arc<Informer<K>> {
    let inf = informers.get::<K>();
    let (quotas, queue) = (quotas.clone(), queue.clone());
    inf.add_handler(move |ch| match ch {
        Change::Added(_) => {}
        Change::Updated { old, new } => {
            if evaluator.handles_update() || evaluator == Evaluator::Pods {
                let now = jiff::Timestamp::now().as_second();
                let before = evaluator.usage(&as_json(old.as_ref()), now);
                let after = evaluator.usage(&as_json(new.as_ref()), now);
                if !quota::equals(&before, &after) {
                    replenish(
                        &quotas,
                        &queue,
                        new.meta().namespace.as_deref().unwrap_or(""),
                    );
                }
            }
        }
        Change::Deleted(o) => {
            replenish(&quotas, &queue, o.meta().namespace.as_deref().unwrap_or(""))
        }
    });
    inf
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let queue = WorkQueue::new("resourcequota_primary", cx.metrics.clone());
    let quotas = cx.informers.get::<ResourceQuota>();
    let ev = |g: &str, r: &str| Evaluator::for_resource(g, r);
    let c = Arc::new(ResourceQuotaController {
        client: cx.client.clone(),
        pods: watch_usage(&cx.informers, &quotas, &queue, ev("", "pods")),
        services: watch_usage(&cx.informers, &quotas, &queue, ev("", "services")),
        claims: watch_usage(
            &cx.informers,
            &quotas,
            &queue,
            ev("", "persistentvolumeclaims"),
        ),
        config_maps: watch_usage(&cx.informers, &quotas, &queue, ev("", "configmaps")),
        secrets: watch_usage(&cx.informers, &quotas, &queue, ev("", "secrets")),
        controllers: watch_usage(
            &cx.informers,
            &quotas,
            &queue,
            ev("", "replicationcontrollers"),
        ),
        quotas: quotas.clone(),
    });
    let q = queue.clone();
    let all = quotas.clone();
    quotas.add_handler(move |ch| match ch {
        Change::Added(rq) => q.add(key_of(rq.as_ref())),
        Change::Updated { old, new } => {
            // Our own status writes change neither; a new spec, or a status someone else
            // rewrote, needs a recalculation.
            if old.spec != new.spec || needs_sync(new) {
                q.add(key_of(new.as_ref()))
            }
        }
        // Deleting a quota frees usage counted as a `resourcequotas` object by the others.
        Change::Deleted(rq) => replenish(&all, &q, rq.metadata.namespace.as_deref().unwrap_or("")),
    });
    let resync = queue.clone();
    let c2 = c.clone();
    tasks.spawn(async move {
        c2.quotas.wait_synced().await;
        loop {
            tokio::time::sleep(FULL_RESYNC).await;
            for rq in c2.quotas.list_all() {
                resync.add(key_of(rq.as_ref()));
            }
        }
    });
    tasks.spawn(async move {
        c.quotas.wait_synced().await;
        c.pods.wait_synced().await;
        c.services.wait_synced().await;
        c.claims.wait_synced().await;
        c.config_maps.wait_synced().await;
        c.secrets.wait_synced().await;
        c.controllers.wait_synced().await;
        run_workers(queue, c, WORKERS).await;
    });
}

/// Whether a quota's status is missing or stale against its spec.
fn needs_sync(rq: &ResourceQuota) -> bool {
    let spec_hard = rq.spec.as_ref().and_then(|s| s.hard.as_ref());
    match rq.status.as_ref() {
        None => true,
        Some(s) => s.used.is_none() || s.hard.is_none() || s.hard.as_ref() != spec_hard,
    }
}

fn objects<K: Object + Serialize>(inf: &Informer<K>, ns: &str) -> Vec<Value> {
    inf.list(ns).iter().map(|o| as_json(o.as_ref())).collect()
}

impl ResourceQuotaController {
    /// The namespace's objects an evaluator measures: from the shared informers for the kinds
    /// with their own evaluator, else listed through discovery (upstream's quota monitors
    /// watch every resource; a `count/<resource>.<group>` of any other kind is rare enough to
    /// list at each sync).
    async fn objects_for(&self, ev: &Evaluator, ns: &str) -> Result<Vec<Value>, ReconcileError> {
        let (group, resource) = match ev {
            Evaluator::Pods => return Ok(objects(&self.pods, ns)),
            Evaluator::Services => return Ok(objects(&self.services, ns)),
            Evaluator::PersistentVolumeClaims => return Ok(objects(&self.claims, ns)),
            Evaluator::ObjectCount {
                group, resource, ..
            } => (group.as_str(), resource.as_str()),
        };
        match (group, resource) {
            ("", "configmaps") => return Ok(objects(&self.config_maps, ns)),
            ("", "secrets") => return Ok(objects(&self.secrets, ns)),
            ("", "replicationcontrollers") => return Ok(objects(&self.controllers, ns)),
            ("", "resourcequotas") => return Ok(objects(&self.quotas, ns)),
            _ => {}
        }
        let discovery = Discovery::new(self.client.clone())
            .filter(&[group])
            .run()
            .await?;
        let Some(ar) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .map(|(ar, _)| ar)
            .find(|ar| ar.group == group && ar.plural == resource)
        else {
            return Err(ReconcileError::Other(format!(
                "no resource {resource} in group {group:?} is served"
            )));
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let list = api.list(&ListParams::default()).await?;
        Ok(list.items.iter().map(as_json).collect())
    }

    /// Upstream's `syncResourceQuota` with `quota.CalculateUsage`.
    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(rq) = self.quotas.get(ns, name) else {
            return Ok(Next::Done);
        };
        let mut rq_json = as_json(rq.as_ref());
        let spec_hard = rq_json.pointer("/spec/hard").cloned();
        let hard = quota::resource_list(spec_hard.as_ref());
        // Evaluators match against the hard limits the status is about to carry.
        if let Some(m) = rq_json.as_object_mut() {
            let status = m.entry("status").or_insert_with(|| serde_json::json!({}));
            if let Some(s) = status.as_object_mut() {
                s.insert("hard".into(), spec_hard.clone().unwrap_or(Value::Null));
            }
        }
        let now = jiff::Timestamp::now().as_second();
        let evaluators = quota::evaluators_for(&hard);
        let mut matched: BTreeSet<String> = BTreeSet::new();
        for ev in &evaluators {
            matched.extend(ev.matching_resources(hard.keys()));
        }
        let mut new_usage = ResourceList::new();
        let mut errors = Vec::new();
        for ev in &evaluators {
            let resources = ev.matching_resources(matched.iter());
            if resources.is_empty() {
                continue;
            }
            match self.objects_for(ev, ns).await {
                Ok(objs) => {
                    let stats = quota::usage_stats(ev, &rq_json, &resources, objs.iter(), now);
                    new_usage = quota::add(&new_usage, &stats);
                }
                Err(e) => {
                    // Resources that could not be counted keep their last usage.
                    errors.push(e.to_string());
                    matched.retain(|r| !resources.contains(r));
                }
            }
        }
        let new_usage = quota::mask(&new_usage, &matched);
        let old_used = rq
            .status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .map(|u| quota::resource_list(Some(&as_json(u))));
        let mut used = old_used.clone().unwrap_or_default();
        used.extend(new_usage);
        let used = quota::mask(&used, &quota::names(&hard));
        let dirty = needs_sync(&rq)
            || !old_used
                .as_ref()
                .is_some_and(|old| quota::equals(old, &used));
        if dirty {
            let mut body = rq.as_ref().clone();
            body.status = serde_json::from_value(serde_json::json!({
                "hard": spec_hard.unwrap_or_else(|| serde_json::json!({})),
                "used": quota::to_json(&used),
            }))
            .map_err(|e| ReconcileError::Other(e.to_string()))?;
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), ns);
            ignore_not_found(
                api.replace_status(name, &PostParams::default(), &body)
                    .await,
            )?;
        }
        if errors.is_empty() {
            Ok(Next::Done)
        } else {
            Err(ReconcileError::Other(errors.join("; ")))
        }
    }
}

impl Reconciler for ResourceQuotaController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_needs_sync_until_it_mirrors_the_spec() {
        let mut rq: ResourceQuota = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "q", "namespace": "ns"},
            "spec": {"hard": {"pods": "2"}}
        }))
        .unwrap();
        assert!(needs_sync(&rq));
        rq.status = serde_json::from_value(serde_json::json!({"hard": {"pods": "2"}})).unwrap();
        assert!(needs_sync(&rq), "no usage yet");
        rq.status = serde_json::from_value(
            serde_json::json!({"hard": {"pods": "2"}, "used": {"pods": "0"}}),
        )
        .unwrap();
        assert!(!needs_sync(&rq));
        rq.spec = serde_json::from_value(serde_json::json!({"hard": {"pods": "3"}})).unwrap();
        assert!(needs_sync(&rq));
    }
}
